//! Rate limits: the headers, the client's 50% share, the org-wide bucket a noisy neighbour
//! drains, the window reset on the clock, and the concurrency cap with its own 429.

use std::collections::HashMap;
use std::time::Duration;

use okta_emulator::{Bucket, OktaConfig};

use crate::common::{ssws, start, start_with};

fn rate(answer: &crate::common::Answer) -> (u32, u32, i64) {
    let h = |n: &str| answer.header(n).unwrap_or_else(|| panic!("{n}")).to_owned();
    (
        h("x-rate-limit-limit").parse().unwrap(),
        h("x-rate-limit-remaining").parse().unwrap(),
        h("x-rate-limit-reset").parse().unwrap(),
    )
}

#[tokio::test]
async fn every_answer_carries_the_bucket_headers_at_okta_defaults() {
    let (emulator, clock) = start(30).await;
    let reset = (clock.now_secs() / 60 + 1) * 60;
    let users = ssws(&emulator, "/api/v1/users").await;
    // The org-wide buckets (a client is refused past half of each: the next tests).
    assert_eq!(rate(&users), (600, 599, reset));
    let user = ssws(&emulator, &format!("/api/v1/users/{}", users.ids()[0])).await;
    assert_eq!(rate(&user), (2000, 1999, reset));
    let logs = ssws(&emulator, "/api/v1/logs").await;
    assert_eq!(rate(&logs), (120, 119, reset));
    let groups = ssws(&emulator, "/api/v1/groups").await;
    assert_eq!(rate(&groups).0, 500);
    let factors = ssws(
        &emulator,
        &format!("/api/v1/users/{}/factors", users.ids()[0]),
    )
    .await;
    assert_eq!(
        rate(&factors).0,
        1200,
        "the other /api/v1 endpoints' bucket"
    );
    // Date is the emulator's clock.
    assert_eq!(users.header("date"), Some("Thu, 28 May 2026 20:26:40 GMT"));
}

#[tokio::test]
async fn a_client_spending_its_share_gets_429_until_the_window_resets() {
    let config = OktaConfig {
        rate_limits: HashMap::from([(Bucket::UsersList, 10)]),
        ..OktaConfig::default()
    };
    let (emulator, clock) = start_with(30, config).await;
    // Remaining counts the org-wide 10; the client is refused at its share, 5.
    for left in (5..10).rev() {
        let answer = ssws(&emulator, "/api/v1/users?limit=1").await;
        assert_eq!(answer.status, 200);
        assert_eq!(rate(&answer).1, left);
    }
    let refused = ssws(&emulator, "/api/v1/users?limit=1").await;
    refused.assert_okta_error(429, "E0000047");
    let (limit, remaining, reset) = rate(&refused);
    assert_eq!(
        (limit, remaining),
        (10, 5),
        "the bucket has room; the share has not"
    );
    // Other buckets are untouched.
    assert_eq!(ssws(&emulator, "/api/v1/groups").await.status, 200);
    let stats = emulator.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.rate_limited_by_client.get("token:00emulat"), Some(&1));
    assert_eq!(stats.served_by_client.get("token:00emulat"), Some(&6));
    assert_eq!(stats.served.get(&Bucket::UsersList), Some(&5));
    // At Reset the window starts again.
    clock.advance(Duration::from_millis(
        (reset * 1000 - clock.now_ms()) as u64,
    ));
    assert_eq!(ssws(&emulator, "/api/v1/users?limit=1").await.status, 200);
}

#[tokio::test]
async fn a_noisy_neighbour_drains_the_org_wide_bucket() {
    let config = OktaConfig {
        rate_limits: HashMap::from([(Bucket::Logs, 10)]),
        ..OktaConfig::default()
    };
    let (emulator, clock) = start_with(30, config).await;
    emulator.consume(Bucket::Logs, 8);
    let first = ssws(&emulator, "/api/v1/logs").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        rate(&first),
        (10, 1, rate(&first).2),
        "the org-wide remainder"
    );
    assert_eq!(ssws(&emulator, "/api/v1/logs").await.status, 200);
    let refused = ssws(&emulator, "/api/v1/logs").await;
    refused.assert_okta_error(429, "E0000047");
    assert_eq!(emulator.bucket_used(Bucket::Logs), 10);
    // A standing neighbour takes 9 of every window from the next one on.
    emulator.set_noisy_neighbour(Bucket::Logs, Some(9));
    clock.advance(Duration::from_secs(60));
    let one = ssws(&emulator, "/api/v1/logs").await;
    assert_eq!((one.status, rate(&one).1), (200, 0));
    ssws(&emulator, "/api/v1/logs")
        .await
        .assert_okta_error(429, "E0000047");
    clock.advance(Duration::from_secs(60));
    assert_eq!(emulator.bucket_used(Bucket::Logs), 9);
}

#[tokio::test]
async fn the_concurrency_cap_answers_its_own_429() {
    let config = OktaConfig {
        concurrency_limit: 2,
        ..OktaConfig::default()
    };
    let (emulator, _clock) = start_with(30, config).await;
    let emulator = std::sync::Arc::new(emulator);
    emulator.hold();
    let mut held = Vec::new();
    for _ in 0..2 {
        let e = std::sync::Arc::clone(&emulator);
        held.push(tokio::spawn(async move {
            ssws(&e, "/api/v1/users?limit=1").await.status
        }));
    }
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        emulator.wait_in_flight(2),
    )
    .await
    .expect("two requests in flight");
    let refused = ssws(&emulator, "/api/v1/users?limit=1").await;
    refused.assert_okta_error(429, "E0000047");
    // rl2-monitor: "The first two header values are always `0` for concurrent rate limit
    // errors."
    assert_eq!(
        refused.header("x-rate-limit-limit"),
        Some("0"),
        "Okta's concurrent values"
    );
    assert_eq!(refused.header("x-rate-limit-remaining"), Some("0"));
    assert!(refused.body["errorCauses"][0]["errorSummary"]
        .as_str()
        .unwrap()
        .contains("concurrent"));
    emulator.release();
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    // Below the cap again: served.
    assert_eq!(ssws(&emulator, "/api/v1/users?limit=1").await.status, 200);
    let stats = emulator.stats();
    assert_eq!(stats.concurrency_limited, 1);
    assert_eq!(stats.max_in_flight, 2);
    assert_eq!(stats.rate_limited, 0);
}

#[tokio::test]
async fn injected_faults_fail_the_next_matching_requests() {
    let (emulator, _clock) = start(20).await;
    emulator.add_fault(okta_emulator::Fault {
        path_contains: "/api/v1/logs".into(),
        status: 503,
        times: 2,
    });
    ssws(&emulator, "/api/v1/logs")
        .await
        .assert_okta_error(503, "E0000009");
    assert_eq!(
        ssws(&emulator, "/api/v1/users?limit=1").await.status,
        200,
        "other paths unaffected"
    );
    ssws(&emulator, "/api/v1/logs")
        .await
        .assert_okta_error(503, "E0000009");
    assert_eq!(ssws(&emulator, "/api/v1/logs").await.status, 200);
}
