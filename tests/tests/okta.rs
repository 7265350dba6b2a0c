//! The Okta connector (`okta/`, built into the CLI by connectors/) in the real host against
//! the Okta emulator on 127.0.0.1, with an API token as a header credential
//! (`Authorization: SSWS <token>`, filled by the host): every user of the simulated org,
//! DEPROVISIONED ones included, as valid OCSF 1.8.0 events of the org's tenant.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use connector_host::doors::http::secrets::{SecretSet, SecretValue};
use connector_host::doors::http::{EgressPolicy, Origin};
use connector_host::{JsonlFileSink, Runtime, RuntimeLimits, SqliteCheckpointStore, TenantRun};
use okta_emulator::{
    AppKey, Bucket, Emulator, OktaClock, OktaConfig, Org, DEFAULT_API_TOKEN, DEFAULT_CLIENT_ID,
};
use serde_json::Value;

const OKTA: &[u8] = builtin_connectors::OKTA;

fn tenant_run(emulator: &Emulator, dir: &std::path::Path, token: &str) -> TenantRun {
    let origin = Origin::parse(&emulator.base_url()).unwrap();
    let mut policy = EgressPolicy::new(vec![origin.clone()]);
    policy.allow_loopback_http = true;
    let mut secrets = SecretSet::new();
    secrets.insert_header(
        "okta_token",
        SecretValue::new(token),
        vec![origin],
        "Authorization",
        Some("SSWS".into()),
    );
    TenantRun {
        tenant: "acme".into(),
        connector_config: vec![("org_url".into(), emulator.base_url())],
        policy,
        secrets: Arc::new(secrets),
        checkpoints: Arc::new(SqliteCheckpointStore::open(&dir.join("state.sqlite")).unwrap()),
        sink: Arc::new(JsonlFileSink::open(&dir.join("events.jsonl")).unwrap()),
        timeout: Duration::from_secs(60),
        time_scale: Default::default(),
    }
}

/// Okta's defaults with the buckets lifted: these tests are about credentials and events, and
/// their manual clocks stand still, so a spent bucket's window would never turn (pacing is
/// tested in okta_sync.rs on a compressed clock).
fn lifted() -> OktaConfig {
    let mut config = OktaConfig::default();
    for bucket in Bucket::ALL {
        config.rate_limits.insert(bucket, 1_000_000);
    }
    config
}

/// The users of `org` alone (no groups, roles or factors): an org whose walk is a few dozen
/// requests, for a test about credentials (every API request carries a host-made DPoP proof).
fn users_only(org: Org, now_ms: i64) -> Org {
    let mut small = Org::empty(&org.org_id);
    for user in org.users() {
        // Inserted a minute ago: visible to `search`, whose index lags a second behind.
        small.insert_user(user.clone(), now_ms - 60_000, false);
    }
    small
}

fn events(dir: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_user_of_the_org_is_one_valid_event_with_an_ssws_token() {
    let clock = OktaClock::manual(1_780_000_000_000);
    let org = Org::generated(7, 450, clock.now_ms());
    let emulator = Emulator::start(org, lifted(), clock)
        .await
        .expect("the emulator starts");
    // The oracle, from the org's own data: every user (DEPROVISIONED included), by id.
    let (org_id, want): (String, BTreeSet<(String, String, bool)>) = emulator.with_org(|o| {
        let users = o.users().map(|u| {
            let disabled = matches!(u.status.as_str(), "SUSPENDED" | "DEPROVISIONED")
                || u.transitioning_to_status.as_deref() == Some("DEPROVISIONED");
            (u.id.clone(), u.login().to_string(), disabled)
        });
        (o.org_id.clone(), users.collect())
    });
    assert!(
        want.iter().any(|u| u.2),
        "the generated org has disabled users"
    );
    let runtime = Runtime::new(OKTA, RuntimeLimits::default())
        .await
        .expect("the Okta component loads");
    assert_eq!(runtime.description().name, "okta-users");
    let dir = tempfile::tempdir().unwrap();

    let report = runtime
        .run(&tenant_run(&emulator, dir.path(), DEFAULT_API_TOKEN))
        .await
        .expect("the run succeeds");
    let got = events(dir.path());
    assert_eq!(report.events_emitted as usize, want.len());
    ocsf_check::assert_all_valid(&got);
    let got_users: BTreeSet<(String, String, bool)> = got
        .iter()
        .map(|e| {
            assert_eq!(e["metadata"]["tenant_uid"], org_id.as_str());
            let u = &e["user"];
            let disabled = u["account"]["is_disabled"].as_bool().unwrap();
            (
                u["uid"].as_str().unwrap().into(),
                u["name"].as_str().unwrap_or("").into(),
                disabled,
            )
        })
        .collect();
    assert_eq!(got_users, want);
    // 450 users at 200 a page: three pages of the users list, none refused.
    let stats = emulator.stats();
    assert_eq!(stats.served.get(&Bucket::UsersList), Some(&3));
    assert_eq!(stats.rate_limited, 0);
    assert!(!std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .contains(DEFAULT_API_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_fails_the_run_naming_the_secret() {
    let clock = OktaClock::manual(1_780_000_000_000);
    let emulator = Emulator::start(
        Org::generated(7, 5, clock.now_ms()),
        OktaConfig::default(),
        clock,
    )
    .await
    .expect("the emulator starts");
    let runtime = Runtime::new(OKTA, RuntimeLimits::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = "00wrongSSWStoken00000000000000000000000000";
    let err = runtime
        .run(&tenant_run(&emulator, dir.path(), wrong))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("answered 401: check the secret 'okta_token'"),
        "{text}"
    );
    assert!(events(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_every_scope_probe_with_an_api_token() {
    // The emulator's clock starts at the host's time: the log probe's `since` is a minute ago.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = OktaClock::manual(now_ms);
    let emulator = Emulator::start(Org::generated(7, 5, now_ms), OktaConfig::default(), clock)
        .await
        .expect("the emulator starts");
    let runtime = Runtime::new(OKTA, RuntimeLimits::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let probes = runtime
        .check(&tenant_run(&emulator, dir.path(), DEFAULT_API_TOKEN))
        .await
        .expect("the check runs");
    let got: Vec<(&str, bool)> = probes.iter().map(|p| (p.name.as_str(), p.ok)).collect();
    assert_eq!(
        got,
        [
            ("users", true),
            ("groups", true),
            ("roles", true),
            ("logs", true)
        ],
        "{probes:?}"
    );
    assert!(events(dir.path()).is_empty(), "a check emits nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_app_reads_the_org_with_bearer_and_with_dpop_tokens() {
    let keys =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/okta-emulator/tests/keys");
    let public = std::fs::read_to_string(keys.join("rsa_public.pem")).unwrap();
    for dpop in [false, true] {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut config = lifted();
        config.service_apps[0].keys = vec![AppKey::Pem(public.clone())];
        config.service_apps[0].require_dpop = dpop;
        let emulator = Emulator::start(
            users_only(Org::generated(7, 30, now_ms), now_ms),
            config,
            OktaClock::manual(now_ms),
        )
        .await
        .expect("the emulator starts");
        let key = connector_host::credentials::load(&connector_host::credentials::CredentialSpec {
            key: Some(connector_host::secrets::SecretSource::File(
                keys.join("rsa_private.pem"),
            )),
            client_id: DEFAULT_CLIENT_ID.into(),
            // Okta takes RS256/384/512 and ES256/384/512 for private_key_jwt (OKTA.md, "Auth").
            algorithm: Some("RS256".into()),
            dpop,
            ..Default::default()
        })
        .expect("the test key loads");
        let dir = tempfile::tempdir().unwrap();
        let mut run = tenant_run(&emulator, dir.path(), DEFAULT_API_TOKEN);
        let mut secrets = SecretSet::new();
        secrets.insert_private_key(
            "okta_key",
            Arc::new(key),
            vec![Origin::parse(&emulator.base_url()).unwrap()],
        );
        run.secrets = Arc::new(secrets);
        run.connector_config.extend([
            ("auth".to_string(), "service_app".to_string()),
            ("client_id".to_string(), DEFAULT_CLIENT_ID.to_string()),
            ("dpop".to_string(), dpop.to_string()),
        ]);
        let runtime = Runtime::new(OKTA, RuntimeLimits::default()).await.unwrap();
        let report = runtime
            .run(&run)
            .await
            .unwrap_or_else(|e| panic!("dpop = {dpop}: {e}"));
        assert_eq!(report.events_emitted, 30, "dpop = {dpop}");
        ocsf_check::assert_all_valid(&events(dir.path()));
    }
}
