//! Injected latency: every HTTP answer waits, asynchronously, so concurrent waits overlap.
//!
//! These tests run on a single-threaded runtime that the emulator shares with the client: a
//! server that blocked its thread while waiting would serialise every request and blow the
//! upper bounds below.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{start, Client};

const LATENCY: Duration = Duration::from_millis(300);

#[tokio::test]
async fn every_http_request_waits_and_concurrent_waits_overlap() {
    let emulator = start(81, 30).await;
    let client = Client::new(&emulator).await;

    let began = Instant::now();
    assert_eq!(client.get("/v1.0/users?$top=1", &[]).await.status, 200);
    assert!(began.elapsed() < LATENCY, "no latency by default");

    emulator.set_latency(LATENCY);
    let began = Instant::now();
    assert_eq!(client.request_token(&[]).await.status, 200);
    assert!(began.elapsed() >= LATENCY, "the login server waits too");
    let began = Instant::now();
    assert_eq!(client.get("/v1.0/nowhere", &[]).await.status, 404);
    assert!(began.elapsed() >= LATENCY, "errors wait too");

    let began = Instant::now();
    let ids: Vec<String> = emulator
        .users()
        .iter()
        .take(10)
        .map(|u| u.id().expect("id").to_owned())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for id in &ids {
        let (http, token) = (client.http.clone(), client.token.clone());
        let url = format!("{}/v1.0/users/{id}/memberOf", client.graph);
        tasks.spawn(async move {
            let response = http.get(url).bearer_auth(token).send().await;
            response.expect("sent").status().as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.expect("task ran"));
    }
    let elapsed = began.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(elapsed >= LATENCY, "{elapsed:?}");
    assert!(
        elapsed < LATENCY * 4,
        "10 concurrent requests overlap their latency: {elapsed:?}"
    );

    // A $batch of 20 is one HTTP request: one latency, not twenty.
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{}/memberOf", ids[i % ids.len()])}))
        .collect();
    let began = Instant::now();
    let answer = client
        .post_json("/v1.0/$batch", &json!({ "requests": batch }))
        .await;
    let elapsed = began.elapsed();
    assert_eq!(answer.status, 200);
    assert!(
        elapsed >= LATENCY && elapsed < LATENCY * 3,
        "one wait per batch: {elapsed:?}"
    );

    emulator.set_latency(Duration::ZERO);
    let began = Instant::now();
    assert_eq!(client.get("/v1.0/users?$top=1", &[]).await.status, 200);
    assert!(began.elapsed() < LATENCY, "zero removes the delay");
    emulator.shutdown().await;
}
