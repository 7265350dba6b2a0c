//! Fault rules, counters, and concurrency on a multi-threaded runtime.

use graph_emulator::{Endpoint, FaultRule};

use crate::common::{start, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rules_skip_then_fail_count_requests_then_let_them_through() {
    let emulator = start(31, 25).await;
    let client = Client::new(&emulator).await;
    let target = emulator.users()[0].id().expect("id").to_owned();
    let other = emulator.users()[1].id().expect("id").to_owned();
    emulator.add_fault(FaultRule {
        endpoint: Endpoint::MemberOf,
        path_contains: Some(target.clone()),
        skip: 1,
        count: 2,
        status: 429,
        body: r#"{"error":{"code":"TooManyRequests","message":"Slow down"}}"#.into(),
        headers: vec![("Retry-After".into(), "1".into())],
    });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let answer = client
            .get(&format!("/v1.0/users/{target}/memberOf"), &[])
            .await;
        if answer.status == 429 {
            assert_eq!(answer.header("retry-after"), Some("1"));
            assert_eq!(answer.graph_code(), "TooManyRequests");
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 429, 429, 200]);
    assert_eq!(
        client
            .get(&format!("/v1.0/users/{other}/memberOf"), &[])
            .await
            .status,
        200
    );

    // Malformed text on every /users page after the first, until cleared.
    let mut broken = FaultRule::throttle(Endpoint::Users, 0);
    broken.path_contains = Some("$skiptoken".into());
    broken.status = 200;
    broken.body = "{\"value\": [ this is not json".into();
    broken.headers.clear();
    emulator.add_fault(broken);
    let first = client.get("/v1.0/users?$top=5", &[]).await;
    assert_eq!(first.status, 200);
    let second = client.get(&first.next_link().expect("more"), &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.raw, "{\"value\": [ this is not json");
    assert!(second.body.is_string(), "the body is not JSON");
    emulator.clear_faults();
    let healed = client.get(&first.next_link().expect("more"), &[]).await;
    assert_eq!(healed.values().len(), 5);

    // The token endpoint can fail too.
    emulator.add_fault(FaultRule::graph_error(
        Endpoint::Token,
        503,
        "ServiceUnavailable",
        "down",
    ));
    assert_eq!(client.request_token(&[]).await.status, 503);
    emulator.clear_faults();
    assert_eq!(client.request_token(&[]).await.status, 200);

    let counters = emulator.counters();
    assert_eq!(
        counters[&Endpoint::MemberOf],
        5,
        "faulted requests count too"
    );
    assert_eq!(counters[&Endpoint::Users], 3);
    assert_eq!(counters[&Endpoint::Token], 3);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_count_every_request_under_concurrency() {
    let emulator = start(32, 60).await;
    let client = Client::new(&emulator).await;
    let users = emulator.users();
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let http = client.http.clone();
        let url = format!(
            "{}/v1.0/users/{}/memberOf?$top=999",
            client.graph,
            user.id().expect("id")
        );
        let token = client.token.clone();
        let expected = user.member_of.len();
        tasks.push(tokio::spawn(async move {
            let response = http
                .get(url)
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status().as_u16(), 200, "user #{i}");
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
            assert_eq!(body["value"].as_array().map(Vec::len), Some(expected));
        }));
    }
    for task in tasks {
        task.await.expect("task ran");
    }
    let _ = client.get("/v1.0/users?$top=999", &[]).await;
    let _ = client.get("/v1.0/nothing", &[]).await;
    let counters = emulator.counters();
    assert_eq!(counters[&Endpoint::MemberOf], 60);
    assert_eq!(counters[&Endpoint::Users], 1);
    assert_eq!(counters[&Endpoint::Token], 1);
    assert_eq!(counters[&Endpoint::Other], 1);
    assert_eq!(counters.len(), Endpoint::ALL.len());
    assert_eq!(emulator.total_requests(), 63);
    assert_eq!(emulator.http_requests(), 63);
    emulator.reset_counters();
    assert_eq!(emulator.total_requests(), 0);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_both_ports() {
    let emulator = start(33, 5).await;
    let client = Client::new(&emulator).await;
    assert_eq!(client.get("/v1.0/users", &[]).await.status, 200);
    let (login, graph) = (
        emulator.token_url(),
        format!("{}/v1.0/users", emulator.graph_endpoint()),
    );
    emulator.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&graph).send().await.is_err(), "Graph port closed");
    assert!(
        fresh.post(&login).send().await.is_err(),
        "login port closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_requests_in_flight_first() {
    let emulator = start(34, 5).await;
    let client = Client::new(&emulator).await;
    emulator.set_latency(std::time::Duration::from_millis(300));
    let before = emulator.http_requests();
    let in_flight = tokio::spawn(async move { client.get("/v1.0/users", &[]).await.status });
    // The request is in the handler (counted, waiting out its latency) before shutdown starts.
    while emulator.http_requests() == before {
        tokio::task::yield_now().await;
    }
    emulator.shutdown().await;
    assert_eq!(in_flight.await.expect("the request task"), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_4_mib_is_refused_with_413() {
    let emulator = start(35, 5).await;
    let url = format!("{}/v1.0/$batch", emulator.graph_endpoint());
    let response = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", "application/json")
        .body(vec![b' '; 4 * 1024 * 1024 + 1])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 413);
    let text = response.text().await.expect("a body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("a JSON error");
    assert_eq!(body["error"]["code"], "RequestEntityTooLarge");
    let fits = reqwest::Client::new()
        .post(&url)
        .body(vec![b' '; 4 * 1024 * 1024])
        .send()
        .await
        .expect("sent");
    assert_eq!(
        fits.status(),
        401,
        "read whole, then refused for the missing token"
    );
    emulator.shutdown().await;
}
