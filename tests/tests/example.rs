//! The example connector (`examples/example-connector`, built on `connector-sdk`) in the real
//! host against its API on 127.0.0.1 (`e2e_tests::example_api`): valid OCSF events, a 429
//! retried, a second run that resumes with only the changes, a wrong key refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use connector_host::doors::http::secrets::{SecretSet, SecretValue};
use connector_host::doors::http::{EgressPolicy, Origin};
use connector_host::{JsonlFileSink, Runtime, RuntimeLimits, SqliteCheckpointStore, TenantRun};
use e2e_tests::example_api::{ApiUser, ExampleApi, PAGE_SIZE};
use serde_json::Value;

const EXAMPLE: &[u8] = include_bytes!(env!("EXAMPLE_CONNECTOR_WASM"));
const API_KEY: &str = "example-api-key-1";

fn user(n: u32, second: u32) -> ApiUser {
    ApiUser {
        id: format!("u{n}"),
        name: format!("user{n}"),
        email: format!("user{n}@example.com"),
        updated_at: format!("2026-01-01T00:00:{second:02}Z"),
    }
}

fn tenant_run(api: &ExampleApi, dir: &std::path::Path, key: &str) -> TenantRun {
    let origin = Origin::parse(&api.base_url).unwrap();
    let mut policy = EgressPolicy::new(vec![origin.clone()]);
    policy.allow_loopback_http = true;
    let mut secrets = SecretSet::new();
    secrets.insert("api_key", SecretValue::new(key), vec![origin]);
    TenantRun {
        tenant: "acme".into(),
        connector_config: vec![
            ("base_url".into(), api.base_url.clone()),
            ("tenant".into(), "acme".into()),
        ],
        policy,
        secrets: Arc::new(secrets),
        checkpoints: Arc::new(SqliteCheckpointStore::open(&dir.join("state.sqlite")).unwrap()),
        sink: Arc::new(JsonlFileSink::open(&dir.join("events.jsonl")).unwrap()),
        timeout: Duration::from_secs(30),
        time_scale: Default::default(),
    }
}

fn events(dir: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn uids(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["user"]["uid"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_connector_emits_valid_ocsf_retries_a_429_and_resumes_with_changes() {
    let api = ExampleApi::start((1..=5).map(|n| user(n, n)).collect(), API_KEY).await;
    api.state.lock().unwrap().throttle = 1;
    let runtime = Runtime::new(EXAMPLE, RuntimeLimits::default())
        .await
        .expect("the example component loads");
    assert_eq!(runtime.description().name, "example-users");
    let dir = tempfile::tempdir().unwrap();
    let run = tenant_run(&api, dir.path(), API_KEY);

    let first = runtime.run(&run).await.expect("the first run succeeds");
    assert_eq!((first.events_emitted, first.items_seen), (5, 5));
    assert!(first.full_sync);
    assert_eq!(api.answered(429), 1, "the API throttled once");
    assert_eq!(
        first.http_status.get(&429),
        Some(&1),
        "the host saw the 429 and the connector asked again"
    );
    let all = events(dir.path());
    assert_eq!(uids(&all), ["u1", "u2", "u3", "u4", "u5"]);
    for event in &all {
        // MAPPING.md's account enrichment is the Entra connector's rule, not OCSF's.
        let found: Vec<_> = ocsf_check::violations(event)
            .into_iter()
            .filter(|v| !matches!(v, ocsf_check::Violation::AccountEnrichmentNotFirst))
            .collect();
        assert!(found.is_empty(), "{found:?} in {event}");
        assert_eq!(event["metadata"]["product"]["name"], "Example Directory");
        assert_eq!(event["metadata"]["tenant_uid"], "acme");
    }
    let pages = 5usize.div_ceil(PAGE_SIZE);
    assert_eq!(
        api.state.lock().unwrap().queries.len(),
        pages + 1,
        "every page once, and the throttled request again"
    );

    // Nothing changed: nothing emitted, and the listing asked only for changes.
    let second = runtime.run(&run).await.expect("the second run succeeds");
    assert_eq!((second.events_emitted, second.full_sync), (0, false));
    assert_eq!(events(dir.path()).len(), 5, "no duplicates");
    assert_eq!(
        api.state.lock().unwrap().queries.last().map(String::as_str),
        Some("updated_after=2026-01-01T00:00:05Z")
    );

    // One user changed, one added: exactly those two.
    {
        let mut state = api.state.lock().unwrap();
        state.users[2].name = "user3-renamed".into();
        state.users[2].updated_at = "2026-01-01T00:00:30Z".into();
        state.users.push(user(6, 31));
    }
    let third = runtime.run(&run).await.expect("the third run succeeds");
    assert_eq!(third.events_emitted, 2);
    let all = events(dir.path());
    assert_eq!(uids(&all[5..]), ["u3", "u6"]);
    assert_eq!(all[5]["user"]["name"], "user3-renamed");
    let distinct: BTreeSet<&str> = all
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 7, "a changed user is a new event content");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_api_key_fails_the_run_as_an_authentication_error_and_emits_nothing() {
    let api = ExampleApi::start(vec![user(1, 1)], API_KEY).await;
    let runtime = Runtime::new(EXAMPLE, RuntimeLimits::default())
        .await
        .expect("the example component loads");
    let dir = tempfile::tempdir().unwrap();
    let err = runtime
        .run(&tenant_run(&api, dir.path(), "not-the-key"))
        .await
        .expect_err("a wrong key fails the run");
    let text = err.to_string();
    assert!(
        text.contains("answered 401: check the api_key secret"),
        "{text}"
    );
    assert!(events(dir.path()).is_empty());
    assert_eq!(api.answered(401), 1);
    assert!(
        api.state.lock().unwrap().queries.is_empty(),
        "no listing without a token"
    );
}
