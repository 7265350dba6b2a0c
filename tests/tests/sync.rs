//! End-to-end: the real Entra component in the real host, against the Graph emulator over
//! loopback HTTP, with a real SQLite checkpoint file and a real JSONL sink.

use std::collections::BTreeSet;

use connector_host::error::ConnectorErrorKind;
use connector_host::RunError;
use e2e_tests::{assert_no_awkward_secret, uids, user_ids, Harness, AWKWARD_SECRET};
use graph_emulator::{EmulatorConfig, Endpoint, FaultRule, Tenant};
use ocsf_check::assert_all_valid;
use serde_json::{json, Value};

fn fault(endpoint: Endpoint, skip: u32, count: u32, status: u16, body: &str) -> FaultRule {
    FaultRule {
        endpoint,
        path_contains: None,
        skip,
        count,
        status,
        body: body.into(),
        headers: vec![],
    }
}

/// A new user created at `created` (Graph's second precision).
fn new_user(id: &str, created: &str) -> graph_emulator::SimUser {
    serde_json::from_value(json!({
        "user": {
            "id": id,
            "displayName": format!("New {id}"),
            "userPrincipalName": format!("{id}@contoso.onmicrosoft.com"),
            "mail": format!("{id}@contoso.com"),
            "accountEnabled": true,
            "userType": "Member",
            "createdDateTime": created,
        },
        "memberOf": [],
        "authMethods": ["#microsoft.graph.passwordAuthenticationMethod"]
    }))
    .expect("a valid SimUser")
}

fn newest_created(h: &Harness) -> String {
    h.emulator
        .users()
        .iter()
        .filter_map(|u| {
            u.user
                .get("createdDateTime")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .max()
        .expect("the tenant has dated users")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_emits_one_valid_event_per_user() {
    let h = Harness::start(Tenant::generated(7, 300), EmulatorConfig::default()).await;
    let report = h.sync().await.expect("the run succeeds");
    let events = h.events();
    assert_all_valid(&events);
    let got: Vec<String> = uids(&events);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "one event per user, no duplicates");
    assert_eq!(unique, user_ids(&h.emulator), "every user delivered");
    assert_eq!(report.items_seen, 300);
    assert_eq!(report.events_emitted, 300);
    assert_eq!(report.events_written, 300);
    assert!(report.full_sync);
    assert_eq!(report.items_partial, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.http_denied, 0);
    assert_eq!(
        report.http_sent,
        h.emulator.http_requests(),
        "host and emulator agree on the request count"
    );
    // Users read with signInActivity carry last_login_time where Graph has a real one.
    assert!(events
        .iter()
        .any(|e| e.pointer("/user/ldap_person/last_login_time").is_some()));
    assert!(
        h.cursor().is_some(),
        "the cursor is committed after a successful run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_emits_exactly_the_new_users_including_the_same_second() {
    let mut h = Harness::start(Tenant::generated(11, 60), EmulatorConfig::default()).await;
    h.set_config("sync_mode", "created");
    h.sync().await.expect("first run");
    let first = h.events().len();
    assert_eq!(first, 60);
    let (_, v1) = h.cursor().expect("cursor after run 1");

    // One user created in the same second as the newest already delivered, one later.
    let boundary = newest_created(&h);
    h.emulator.add_user(new_user("same-second-user", &boundary));
    h.emulator
        .add_user(new_user("later-user", "2099-01-01T00:00:00Z"));
    let report = h.sync().await.expect("second run");
    assert!(!report.full_sync, "the second run is incremental");
    let events = h.events();
    let new: Vec<String> = uids(&events[first..]);
    assert_eq!(
        new.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["same-second-user".to_string(), "later-user".to_string()]),
        "exactly the new users, the same-second one included"
    );
    assert_eq!(new.len(), 2, "each new user once");
    assert_all_valid(&events[first..]);
    let (_, v2) = h.cursor().expect("cursor after run 2");
    assert_eq!(v2, v1 + 1);

    // Nothing new: nothing emitted, and users at the boundary are not delivered again.
    let report = h.sync().await.expect("third run");
    assert_eq!(report.events_written, 0);
    assert_eq!(h.events().len(), first + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_created_users_are_collected_by_the_first_full_run() {
    let mut h = Harness::start(Tenant::generated(3, 40), EmulatorConfig::default()).await;
    h.set_config("sync_mode", "created");
    let null_created: BTreeSet<String> = h
        .emulator
        .users()
        .iter()
        .filter(|u| u.user.get("createdDateTime").is_none_or(Value::is_null))
        .filter_map(|u| u.user.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    assert!(
        !null_created.is_empty(),
        "the generated tenant has users with a null createdDateTime"
    );
    h.sync().await.expect("first run");
    let delivered: BTreeSet<String> = uids(&h.events()).into_iter().collect();
    assert!(null_created.is_subset(&delivered));
    for e in h.events() {
        if null_created.contains(e.pointer("/user/uid").and_then(Value::as_str).unwrap_or("")) {
            assert!(
                e.pointer("/user/ldap_person/created_time").is_none(),
                "null createdDateTime is omitted, never 0"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_a_clear_auth_error_with_no_events_and_no_checkpoint() {
    let config = EmulatorConfig::default();
    let mut h = Harness::start(Tenant::generated(1, 20), config).await;
    let login = connector_host::doors::http::Origin::parse(&h.emulator.login_endpoint()).unwrap();
    let mut secrets = connector_host::doors::http::secrets::SecretSet::new();
    secrets.insert(
        "client_secret",
        connector_host::doors::http::secrets::SecretValue::new("not-the-secret"),
        vec![login],
    );
    h.run.secrets = std::sync::Arc::new(secrets);
    let err = h.sync().await.expect_err("a wrong secret fails the run");
    match &err {
        RunError::Connector {
            kind: ConnectorErrorKind::Auth,
            message,
            ..
        } => {
            assert!(
                message.contains("AADSTS7000215"),
                "the AADSTS message is shown: {message}"
            );
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    let line = err.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(
        !line.contains("not-the-secret"),
        "the secret is never in an error: {line}"
    );
    assert!(h.events().is_empty(), "no events");
    assert_eq!(h.cursor(), None, "checkpoint untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_failing_mid_run_moves_no_checkpoint_and_the_rerun_loses_nothing() {
    let mut h = Harness::start(Tenant::generated(5, 100), EmulatorConfig::default()).await;
    h.set_config("sync_mode", "created");
    h.set_config("page_size", "25");
    // First full run: page 3 of /users fails with a 500.
    h.emulator.add_fault(fault(
        Endpoint::Users,
        2,
        1,
        500,
        r#"{"error":{"code":"generalException","message":"Simulated outage."}}"#,
    ));
    let err = h.sync().await.expect_err("the run fails on page 3");
    assert!(
        matches!(&err, RunError::Connector { kind: ConnectorErrorKind::Upstream, message, .. } if message.contains("page 3")),
        "{err:?}"
    );
    assert_eq!(
        h.cursor(),
        None,
        "the cursor did not move past events that may be missing"
    );
    let partial = h.events().len();
    assert!(
        partial > 0 && partial < 100,
        "some events reached the sink before the failure: {partial}"
    );

    // The rerun completes; with what was already delivered, every user is there.
    let report = h.sync().await.expect("the rerun succeeds");
    assert!(report.full_sync);
    let all: BTreeSet<String> = uids(&h.events()).into_iter().collect();
    assert_eq!(all, user_ids(&h.emulator), "nothing lost");
    assert!(h.cursor().is_some());

    // Same on an incremental run: the cursor stays at its version until a run succeeds.
    let (_, v) = h.cursor().unwrap();
    for i in 0..60 {
        h.emulator.add_user(new_user(
            &format!("wave-{i:02}"),
            &format!("2099-02-01T00:00:{i:02}Z"),
        ));
    }
    h.emulator
        .add_fault(fault(Endpoint::Users, 1, u32::MAX, 500, "not json at all"));
    let before = h.events().len();
    assert!(h.sync().await.is_err());
    assert_eq!(
        h.cursor().map(|(_, v)| v),
        Some(v),
        "cursor version unchanged"
    );
    h.emulator.clear_faults();
    h.sync().await.expect("incremental rerun");
    let delivered: BTreeSet<String> = uids(&h.events()[before..]).into_iter().collect();
    for i in 0..60 {
        assert!(
            delivered.contains(&format!("wave-{i:02}")),
            "wave-{i:02} delivered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_host_is_refused_and_never_followed() {
    let mut h = Harness::start(Tenant::generated(9, 30), EmulatorConfig::default()).await;
    h.set_config("sync_mode", "created");
    h.set_config("page_size", "10");
    h.emulator
        .set_next_link_base(Some("http://127.0.0.2:9".into()));
    let err = h
        .sync()
        .await
        .expect_err("the foreign next link stops the run");
    let line = err.to_string();
    assert!(
        matches!(
            &err,
            RunError::Connector {
                kind: ConnectorErrorKind::Upstream,
                ..
            }
        ),
        "the connector refuses the link itself: {err:?}"
    );
    assert!(
        line.contains("points away from") && line.contains("http://127.0.0.2:9"),
        "{line}"
    );
    assert_eq!(h.cursor(), None);
    assert_eq!(
        h.events().len(),
        10,
        "the first page was delivered, nothing after the refused link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_premium_licence_users_come_without_sign_in_data_and_a_warning() {
    let config = EmulatorConfig {
        premium: false,
        ..EmulatorConfig::default()
    };
    let h = Harness::start(Tenant::generated(13, 50), config).await;
    let report = h
        .sync()
        .await
        .expect("the run succeeds without signInActivity");
    assert_eq!(
        report.unavailable,
        vec![
            "signInActivity".to_string(),
            "userRegistrationDetails".to_string()
        ]
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("signInActivity")),
        "{:?}",
        report.warnings
    );
    let events = h.events();
    assert_eq!(events.len(), 50);
    assert_all_valid(&events);
    assert!(events
        .iter()
        .all(|e| e.pointer("/user/ldap_person/last_login_time").is_none()));
    let last_logon = events
        .iter()
        .filter(|e| e["enrichments"][0]["data"].get("last_logon").is_some());
    assert_eq!(last_logon.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_failed_enrichment_does_not_abort_the_run() {
    // Per-user reads happen for users the connector does not know yet: a first run walks the
    // tenant, then three users are created and one of them cannot have its groups or methods
    // read.
    let h = Harness::start(Tenant::generated(17, 40), EmulatorConfig::default()).await;
    h.sync().await.expect("the full walk");
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let id = format!("late-{i}");
            h.emulator
                .add_user(new_user(&id, &format!("2099-01-01T00:00:0{i}Z")));
            id
        })
        .collect();
    let victim = ids[1].clone();
    let forbidden = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#;
    for endpoint in [Endpoint::MemberOf, Endpoint::AuthMethods] {
        h.emulator.add_fault(FaultRule {
            path_contains: Some(victim.clone()),
            ..fault(endpoint, 0, u32::MAX, 403, forbidden)
        });
    }
    let before = h.events().len();
    let report = h.sync().await.expect("the run completes");
    assert_eq!(report.items_partial, 1, "{:?}", report.warnings);
    assert_eq!(report.events_written, 3);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("1 users were emitted without")),
        "{:?}",
        report.warnings
    );
    let events = h.events()[before..].to_vec();
    assert_all_valid(&events);
    let e = events
        .iter()
        .find(|e| e["user"]["uid"] == victim.as_str())
        .expect("the victim is emitted");
    assert!(e["user"].get("groups").is_none(), "groups omitted");
    assert!(e["user"].get("has_mfa").is_none(), "has_mfa omitted");
    assert_eq!(
        e["user"]["type_id"], 1,
        "roles come from the tenant-wide assignments, unaffected: read, none held"
    );
    let others = events
        .iter()
        .filter(|e| e["user"]["uid"] != victim.as_str())
        .collect::<Vec<_>>();
    assert_eq!(others.len(), 2);
    assert!(others
        .iter()
        .all(|e| e["user"].get("groups").is_some() && e["user"].get("has_mfa").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_reaches_events_or_checkpoints() {
    let h = Harness::start(Tenant::generated(19, 30), EmulatorConfig::default()).await;
    let secret = h.emulator.config().client_secret;
    h.sync().await.expect("the run succeeds");
    let events = std::fs::read_to_string(h.events_path()).unwrap();
    assert!(!events.is_empty());
    assert!(!events.contains(&secret));
    let (cursor, _) = h.cursor().unwrap();
    assert!(!String::from_utf8_lossy(&cursor).contains(&secret));
    for f in std::fs::read_dir(h.dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "no file holds the secret"
        );
    }
}

/// Login and Graph on one origin (a gateway fronting both), so the secret may go to that
/// origin. Graph answers the first page of a role-assignable group's members with a next link
/// carrying `{{secret:client_secret}}`. The server never receives the secret anywhere but
/// the token request's form body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_placeholder_planted_in_a_next_link_is_never_filled() {
    let mut h = Harness::start(
        Tenant::generated(29, 30),
        EmulatorConfig {
            client_secret: AWKWARD_SECRET.into(),
            ..EmulatorConfig::default()
        },
    )
    .await;
    h.emulator.set_login_on_graph(true);
    let graph = h.emulator.graph_endpoint();
    h.set_config("login_endpoint", &graph);
    let mut secrets = connector_host::doors::http::secrets::SecretSet::new();
    secrets.insert(
        "client_secret",
        connector_host::doors::http::secrets::SecretValue::new(AWKWARD_SECRET),
        vec![connector_host::doors::http::Origin::parse(&graph).unwrap()],
    );
    h.run.secrets = std::sync::Arc::new(secrets);
    let planted = "{{secret:client_secret}}";
    h.emulator.add_fault(FaultRule {
        endpoint: Endpoint::GroupMembers,
        path_contains: None,
        skip: 0,
        count: 1,
        status: 200,
        body: json!({
            "value": [],
            "@odata.nextLink": format!("{graph}/v1.0/groups/planted/members?$skiptoken={planted}"),
        })
        .to_string(),
        headers: vec![],
    });
    h.emulator.record_requests(true);
    // Whether the run completes does not matter here; what reached the server does, and that
    // the connector said why it stopped following the list.
    let said = match h.sync().await {
        Ok(report) => report.warnings.join("\n"),
        Err(e) => e.to_string(),
    };
    assert!(said.contains("placeholder"), "{said}");

    let recorded = h.emulator.recorded_requests();
    let (token, rest): (Vec<_>, Vec<_>) = recorded
        .iter()
        .partition(|r| r.target.ends_with("/oauth2/v2.0/token"));
    // One whole form field, wherever the connector puts it in the body.
    assert!(
        token.iter().all(|r| String::from_utf8_lossy(&r.body)
            .split('&')
            .any(|field| field == "client_secret=a%2Bb%2Fc%3Dd%26e+f%25%22g%5Ch%7Ei")),
        "the token request carries the secret, form-encoded"
    );
    assert!(!token.is_empty() && !rest.is_empty());
    let mut followed = false;
    for r in rest {
        let body = String::from_utf8_lossy(&r.body);
        assert_no_awkward_secret(
            &format!("{} {}", r.method, r.target),
            &format!("{} {:?} {body}", r.target, r.headers),
        );
        followed |= r.method == "POST" && r.target.ends_with("/$batch") && body.contains(planted);
    }
    // Two layers: the connector refuses any link holding `{{` (`GraphClient::check_link`), so
    // the planted link never reaches a request at all; and were it sent, the host would leave
    // it as text (`secrets::tests::hostile_placeholder_outside_a_form_field_stays_text`).
    assert!(
        !followed,
        "the connector refuses the planted link instead of following it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_are_retried_after_retry_after() {
    let mut h = Harness::start(Tenant::generated(23, 20), EmulatorConfig::default()).await;
    h.set_config("sync_mode", "created");
    h.emulator.add_fault(FaultRule {
        headers: vec![("Retry-After".into(), "1".into())],
        ..fault(
            Endpoint::Users,
            0,
            2,
            429,
            r#"{"error":{"code":"TooManyRequests","message":"Too many requests."}}"#,
        )
    });
    let started = std::time::Instant::now();
    let report = h
        .sync()
        .await
        .expect("the run succeeds after the throttling passes");
    assert_eq!(report.events_written, 20);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After was honoured twice"
    );
    assert_eq!(
        h.emulator.counters()[&Endpoint::Users],
        3,
        "two throttled attempts and one success"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_user_without_an_id_is_skipped_and_counted() {
    let mut h = Harness::start(Tenant::generated(29, 20), EmulatorConfig::default()).await;
    h.set_config("sync_mode", "created");
    let page = json!({
        "value": [
            {"displayName": "No Id", "userPrincipalName": "noid@contoso.onmicrosoft.com"},
            {"id": "", "displayName": "Blank Id"},
            {"id": "has-an-id", "displayName": "Has Id", "userPrincipalName": "hasid@contoso.onmicrosoft.com"}
        ]
    });
    h.emulator
        .add_fault(fault(Endpoint::Users, 0, 1, 200, &page.to_string()));
    let report = h.sync().await.expect("the run completes");
    assert_eq!(report.items_seen, 3);
    assert_eq!(report.items_skipped, 2);
    assert_eq!(uids(&h.events()), vec!["has-an-id".to_string()]);
    assert!(
        report.warnings.iter().any(|w| w.contains("without an id")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rejected_mid_run_is_renewed_once() {
    let mut h = Harness::start(Tenant::generated(37, 30), EmulatorConfig::default()).await;
    h.set_config("sync_mode", "created");
    h.set_config("page_size", "10");
    // Page 2 of /users answers 401 once, as Graph does for an expired token.
    h.emulator.add_fault(fault(
        Endpoint::Users,
        1,
        1,
        401,
        r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}"#,
    ));
    let report = h
        .sync()
        .await
        .expect("the run renews its token and completes");
    assert_eq!(report.events_written, 30);
    assert_eq!(
        h.emulator.counters()[&Endpoint::Token],
        2,
        "one token at the start, one renewal"
    );

    // A token that Graph keeps refusing is not renewed in a loop: the run fails clearly.
    h.emulator.add_fault(fault(
        Endpoint::Users,
        0,
        u32::MAX,
        401,
        r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure."}}"#,
    ));
    let err = h
        .sync()
        .await
        .expect_err("a permanently refused token fails the run");
    assert!(
        matches!(&err, RunError::Connector { kind: ConnectorErrorKind::Permission, message, .. } if message.contains("InvalidAuthenticationToken")),
        "{err:?}"
    );
    assert_eq!(
        h.emulator.counters()[&Endpoint::Token],
        4,
        "this run's token and one renewal, then it gave up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_handed_to_the_connector_never_followed() {
    use connector_host::doors::http::{http_client, FetchRequest, HttpDoor};
    let h = Harness::start(Tenant::generated(41, 5), EmulatorConfig::default()).await;
    let graph = h.emulator.graph_endpoint();
    h.emulator.add_fault(FaultRule {
        headers: vec![(
            "Location".into(),
            format!("{graph}/v1.0/users?followed=yes"),
        )],
        ..fault(Endpoint::Users, 0, 1, 302, "")
    });
    let door = HttpDoor::new(
        http_client(
            std::time::Duration::from_secs(5),
            std::sync::Arc::new(connector_host::doors::http::netguard::SystemResolver),
        )
        .expect("the HTTP client builds"),
        h.run.policy.clone(),
        h.run.secrets.clone(),
        "tenant-a".into(),
    );
    let resp = door
        .fetch(FetchRequest {
            method: "GET".into(),
            url: format!("{graph}/v1.0/users"),
            headers: vec![],
            body: None,
        })
        .await
        .expect("a response");
    assert_eq!(resp.status, 302, "the 3xx comes back as it is");
    assert_eq!(
        h.emulator.counters()[&Endpoint::Users],
        1,
        "the Location was not requested"
    );
}
