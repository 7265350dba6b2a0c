//! Rate throttling (every n-th request answers 429) and the outage fault rules (503, 504).

use graph_emulator::{Endpoint, FaultRule, RetryAfter, Throttle};
use serde_json::{json, Value};

use crate::common::{start, Client};

#[tokio::test]
async fn every_nth_matching_request_is_throttled_with_retry_after_seconds() {
    let emulator = start(91, 25).await;
    let client = Client::new(&emulator).await;
    let id = emulator.users()[0].id().expect("id").to_owned();
    emulator.set_throttle(Some(Throttle {
        every: 3,
        retry_after: RetryAfter::Seconds(2),
        endpoints: Some(vec![Endpoint::MemberOf]),
    }));
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let answer = client.get(&format!("/v1.0/users/{id}/memberOf"), &[]).await;
        if answer.status == 429 {
            assert_eq!(answer.header("retry-after"), Some("2"));
            assert_eq!(answer.graph_code(), "TooManyRequests");
            assert!(answer.body["error"]["innerError"]["request-id"].is_string());
        } else {
            assert!(answer.header("retry-after").is_none());
        }
        statuses.push(answer.status);
        // Other endpoints neither count nor get throttled.
        assert_eq!(client.get("/v1.0/users?$top=1", &[]).await.status, 200);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429, 200]);
    let counters = emulator.counters();
    assert_eq!(counters[&Endpoint::MemberOf], 7, "throttled requests count");
    assert_eq!(counters[&Endpoint::Users], 7);

    // Setting a throttle restarts its count; None removes it.
    emulator.set_throttle(Some(Throttle {
        every: 2,
        retry_after: RetryAfter::None,
        endpoints: None,
    }));
    let first = client.get("/v1.0/groups", &[]).await;
    let second = client.get(&format!("/v1.0/users/{id}"), &[]).await;
    assert_eq!((first.status, second.status), (200, 429));
    assert!(second.header("retry-after").is_none(), "RetryAfter::None");
    assert_eq!(
        client.request_token(&[]).await.status,
        200,
        "never the token"
    );
    assert_eq!(client.request_token(&[]).await.status, 200);
    emulator.set_throttle(None);
    for _ in 0..4 {
        assert_eq!(client.get("/v1.0/groups", &[]).await.status, 200);
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn retry_after_can_be_an_http_date() {
    let emulator = start(92, 5).await;
    let client = Client::new(&emulator).await;
    emulator.set_throttle(Some(Throttle {
        every: 1,
        retry_after: RetryAfter::HttpDate(120),
        endpoints: None,
    }));
    let answer = client.get("/v1.0/users", &[]).await;
    assert_eq!(answer.status, 429);
    let date = answer
        .header("retry-after")
        .expect("Retry-After")
        .to_owned();
    // IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT".
    let parts: Vec<&str> = date.split(' ').collect();
    assert_eq!(parts.len(), 6, "{date}");
    assert!(
        ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"].contains(&parts[0]),
        "{date}"
    );
    assert!(parts[1].len() == 2 && parts[1].bytes().all(|b| b.is_ascii_digit()));
    assert!(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .contains(&parts[2]),
        "{date}"
    );
    assert!(parts[3].len() == 4 && parts[3].parse::<u32>().is_ok_and(|y| y >= 2024));
    assert_eq!(parts[4].len(), 8);
    assert_eq!(parts[5], "GMT");
    assert_ne!(
        answer.header("date"),
        Some(date.as_str()),
        "the date is in the future"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn batch_sub_requests_are_throttled_one_by_one() {
    let emulator = start(93, 25).await;
    let client = Client::new(&emulator).await;
    let users = emulator.users();
    emulator.set_throttle(Some(Throttle {
        every: 2,
        retry_after: RetryAfter::Seconds(5),
        endpoints: None,
    }));
    let requests: Vec<Value> = (0..6)
        .map(|i| {
            let id = users[i].id().expect("id");
            let url = if i % 2 == 0 {
                format!("/users/{id}/memberOf")
            } else {
                format!("/users/{id}/authentication/methods")
            };
            json!({"id": format!("r{i}"), "method": "GET", "url": url})
        })
        .collect();
    let answer = client
        .post_json("/v1.0/$batch", &json!({ "requests": requests }))
        .await;
    assert_eq!(answer.status, 200, "the batch itself is not throttled");
    let responses = answer.body["responses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(responses.len(), 6);
    let by_id = |id: &str| answer.batch_item(id);
    for i in 0..6 {
        let sub = by_id(&format!("r{i}"));
        if i % 2 == 1 {
            assert_eq!(sub["status"], 429, "{sub}");
            assert_eq!(sub["headers"]["Retry-After"], "5");
            assert_eq!(sub["body"]["error"]["code"], "TooManyRequests");
        } else {
            assert_eq!(sub["status"], 200, "{sub}");
            assert!(sub["headers"].get("Retry-After").is_none());
        }
    }
    let counters = emulator.counters();
    assert_eq!(counters[&Endpoint::Batch], 1);
    assert_eq!(counters[&Endpoint::MemberOf], 3);
    assert_eq!(counters[&Endpoint::AuthMethods], 3);

    // Listing only one endpoint counts only its sub-requests.
    emulator.set_throttle(Some(Throttle {
        every: 1,
        retry_after: RetryAfter::Seconds(1),
        endpoints: Some(vec![Endpoint::AuthMethods]),
    }));
    let answer = client
        .post_json("/v1.0/$batch", &json!({ "requests": requests }))
        .await;
    let statuses: Vec<(String, u64)> = answer.body["responses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_owned(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for (id, status) in statuses {
        let odd = id.trim_start_matches('r').parse::<u32>().unwrap_or(0) % 2 == 1;
        assert_eq!(status, if odd { 429 } else { 200 }, "{id}");
    }

    // Listing the envelope throttles whole batches.
    emulator.set_throttle(Some(Throttle {
        every: 1,
        retry_after: RetryAfter::Seconds(9),
        endpoints: Some(vec![Endpoint::Batch]),
    }));
    let answer = client
        .post_json("/v1.0/$batch", &json!({ "requests": requests }))
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("9"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn outage_rules_make_503_and_504_bursts_without_retry_after() {
    let emulator = start(94, 5).await;
    let client = Client::new(&emulator).await;
    let mut burst = FaultRule::unavailable(Endpoint::Users);
    burst.skip = 1;
    burst.count = 2;
    emulator.add_fault(burst);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let answer = client.get("/v1.0/users", &[]).await;
        if answer.status == 503 {
            assert_eq!(answer.graph_code(), "ServiceUnavailable");
            assert!(answer.header("retry-after").is_none());
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 503, 503, 200]);

    let mut timeout = FaultRule::gateway_timeout(Endpoint::Groups);
    timeout.count = 1;
    emulator.add_fault(timeout);
    let answer = client.get("/v1.0/groups", &[]).await;
    assert_eq!(
        (answer.status, answer.graph_code()),
        (504, "GatewayTimeout")
    );
    assert!(answer.header("retry-after").is_none());
    assert_eq!(client.get("/v1.0/groups", &[]).await.status, 200);
    emulator.shutdown().await;
}
