//! Delta sync (the default mode), batching and throttling, end to end: the real component in
//! the real host against the Graph emulator over loopback HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use connector_host::error::ConnectorErrorKind;
use connector_host::RunError;
use e2e_tests::{uids, user_ids, Harness};
use graph_emulator::{
    hard_case, EmulatorConfig, Endpoint, FaultRule, RetryAfter, SimUser, Tenant, Throttle,
    DIRECTORY_ROLE_TYPE,
};
use ocsf_check::assert_all_valid;
use serde_json::{json, Value};

fn new_user(id: &str, name: &str) -> SimUser {
    serde_json::from_value(json!({
        "user": {
            "id": id,
            "displayName": name,
            "userPrincipalName": format!("{id}@contoso.onmicrosoft.com"),
            "accountEnabled": true,
            "createdDateTime": "2099-01-01T00:00:00Z",
        },
        "memberOf": [],
        "authMethods": ["#microsoft.graph.passwordAuthenticationMethod"],
    }))
    .unwrap()
}

fn id_of(h: &Harness, index: usize) -> String {
    h.emulator.users()[index].id().unwrap().to_string()
}

fn by_uid(events: &[Value]) -> BTreeMap<String, Value> {
    events
        .iter()
        .map(|e| (e["user"]["uid"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn premium_config() -> EmulatorConfig {
    EmulatorConfig {
        member_of_page_size: 100,
        ..EmulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_round_trip_reports_every_kind_of_change_and_nothing_else() {
    let h = Harness::start(Tenant::generated(51, 60), EmulatorConfig::default()).await;
    let first = h.sync().await.expect("first run");
    assert!(first.full_sync);
    assert_eq!(first.events_written, 60);
    let cursor = h.delta_cursor().expect("the delta cursor is stored");
    assert_eq!(cursor["round"], "changes");
    assert!(cursor["link"].as_str().unwrap().contains("$deltatoken="));

    // Nothing changed: the next run reads one delta page and emits nothing.
    h.emulator.reset_counters();
    let idle = h.sync().await.expect("idle run");
    assert_eq!(idle.events_written, 0);
    assert!(!idle.full_sync);
    assert_eq!(h.emulator.counters()[&Endpoint::UsersDelta], 1);

    let renamed = id_of(&h, 20);
    let disabled = id_of(&h, 21);
    let gone = id_of(&h, 22);
    let soft = id_of(&h, 23);
    h.emulator.add_user(new_user("brand-new", "Brand New"));
    assert!(h
        .emulator
        .update_user(&renamed, json!({"displayName": "Renamed Person"})));
    assert!(h
        .emulator
        .update_user(&disabled, json!({"accountEnabled": false})));
    assert!(h.emulator.remove_user(&gone));
    assert!(h.emulator.soft_delete_user(&soft));
    let before = h.events().len();
    let report = h.sync().await.expect("incremental run");
    assert!(!report.full_sync);
    let events = h.events()[before..].to_vec();
    assert_all_valid(&events);
    let got = by_uid(&events);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "brand-new".to_string(),
            renamed.clone(),
            disabled.clone(),
            gone.clone(),
            soft.clone()
        ]),
        "exactly the changed users"
    );
    assert_eq!(events.len(), 5, "each once");
    assert_eq!(got["brand-new"]["user"]["display_name"], "Brand New");
    assert_eq!(got[&renamed]["user"]["display_name"], "Renamed Person");
    assert_eq!(got[&disabled]["user"]["account"]["is_disabled"], true);
    for (id, reason) in [(&gone, "deleted"), (&soft, "changed")] {
        let e = &got[id];
        let data = &e["enrichments"][0]["data"];
        assert_eq!(data["deleted"], true, "{e}");
        assert_eq!(data["deleted_reason"], reason, "{e}");
        assert!(e["user"]["ldap_person"]["deleted_time"].is_i64(), "{e}");
        assert!(
            e["user"].get("display_name").is_none(),
            "a deletion carries no profile"
        );
    }
    // The changed users were enriched like any other.
    assert!(got[&renamed]["user"].get("groups").is_some());
}

/// Whether a user's sign-in data holds a successful sign-in the mapping reports.
fn has_successful_sign_in(user: &SimUser) -> bool {
    user.user
        .pointer("/signInActivity/lastSuccessfulSignInDateTime")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.starts_with("0001"))
}

/// Asserts that an event carries everything a full walk would: groups, roles, MFA and, where
/// the user has one, the last successful sign-in.
fn assert_complete(event: &Value, user: &SimUser) {
    assert!(event["user"].get("groups").is_some(), "groups: {event}");
    assert!(event["user"].get("has_mfa").is_some(), "has_mfa: {event}");
    assert!(
        event["enrichments"][0]["data"].get("roles").is_some(),
        "roles: {event}"
    );
    assert_eq!(
        event.pointer("/user/ldap_person/last_login_time").is_some(),
        has_successful_sign_in(user),
        "last_login_time: {event}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_role_changes_arrive_with_the_next_run_mfa_with_the_refresh() {
    let mut h = Harness::start(Tenant::generated(53, 40), EmulatorConfig::default()).await;
    h.set_config("refresh_hours", "24");
    h.sync().await.expect("first run");
    let promoted = id_of(&h, hard_case::NO_MEMBERSHIPS);
    let demoted = id_of(&h, hard_case::GLOBAL_ADMIN);
    let joined = id_of(&h, hard_case::GUEST);
    let enrolled = id_of(&h, hard_case::PASSWORD_ONLY[1]);
    let before: BTreeMap<String, Value> = by_uid(&h.events());
    assert_eq!(before[&promoted]["user"]["type_id"], 1, "not an admin yet");
    assert_eq!(before[&demoted]["user"]["type_id"], 2, "an admin");
    assert_eq!(before[&enrolled]["user"]["has_mfa"], false, "no MFA yet");

    // A role granted, every role of an admin removed, a group joined, a method registered:
    // none of them is a users/delta change.
    let global_admin = h.emulator.users()[hard_case::GLOBAL_ADMIN]
        .member_of
        .iter()
        .find(|m| m["@odata.type"] == DIRECTORY_ROLE_TYPE)
        .cloned()
        .expect("the global admin holds a role in memberOf");
    assert!(h
        .emulator
        .modify_relations(&promoted, |u| u.member_of.push(global_admin.clone())));
    assert!(h.emulator.modify_relations(&demoted, |u| {
        u.member_of
            .retain(|m| m["@odata.type"] != DIRECTORY_ROLE_TYPE);
        u.inherited_roles.clear();
        u.role_assignments.clear();
    }));
    let group = h.emulator.users()[hard_case::EVERY_AUTH_METHOD]
        .member_of
        .iter()
        .find(|m| {
            m["@odata.type"] == "#microsoft.graph.group"
                && !h.emulator.users()[hard_case::GUEST].member_of.contains(m)
        })
        .cloned()
        .expect("a group the guest is not in");
    let group_id = group["id"].as_str().unwrap().to_string();
    assert!(h
        .emulator
        .modify_relations(&joined, |u| u.member_of.push(group.clone())));
    assert!(h.emulator.modify_relations(&enrolled, |u| u
        .auth_methods
        .push("#microsoft.graph.fido2AuthenticationMethod".into())));
    let oracle = h.emulator.tenant_admin_roles();

    // The very next run emits the users whose roles or groups changed, complete.
    let n = h.events().len();
    let report = h.sync().await.expect("the next run");
    assert!(!report.full_sync);
    let got = by_uid(&h.events()[n..]);
    assert_all_valid(&h.events()[n..]);
    let mut expected: Vec<String> = vec![promoted.clone(), demoted.clone(), joined.clone()];
    expected.sort();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), expected);
    assert_eq!(got[&promoted]["user"]["type_id"], 2);
    assert_eq!(
        got[&promoted]["enrichments"][0]["data"]["roles"],
        json!(oracle[&promoted].0)
    );
    assert_eq!(
        got[&demoted]["enrichments"][0]["data"]["roles"],
        json!(oracle[&demoted].0)
    );
    assert_eq!(
        got[&demoted]["user"]["type_id"],
        if oracle[&demoted].0.is_empty() && oracle[&demoted].1.is_empty() {
            1
        } else {
            2
        }
    );
    assert!(got[&joined]["user"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["uid"] == group_id.as_str()));
    let users: BTreeMap<String, SimUser> = h
        .emulator
        .users()
        .into_iter()
        .map(|u| (u.id().unwrap().to_string(), u))
        .collect();
    for (id, event) in &got {
        assert_complete(event, &users[id]);
    }

    // The registration change waits for the refresh, a day later at most.
    h.age_delta_cursor(25);
    let n = h.events().len();
    let report = h.sync().await.expect("refresh run");
    assert!(report.full_sync, "the refresh is a full walk");
    let after = by_uid(&h.events()[n..]);
    assert_eq!(after.len(), 40);
    assert_eq!(after[&enrolled]["user"]["has_mfa"], true);
    let cursor = h.delta_cursor().unwrap();
    assert_eq!(cursor["round"], "changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_first_reports_deletions_pending_in_the_old_delta_link() {
    let h = Harness::start(Tenant::generated(55, 30), EmulatorConfig::default()).await;
    h.sync().await.expect("first run");
    let gone = id_of(&h, 7);
    assert!(h.emulator.remove_user(&gone));
    h.age_delta_cursor(25);
    let n = h.events().len();
    let report = h.sync().await.expect("refresh run");
    assert!(report.full_sync);
    let events = h.events()[n..].to_vec();
    let deletions: Vec<&Value> = events
        .iter()
        .filter(|e| e["enrichments"][0]["data"]["deleted"] == true)
        .collect();
    assert_eq!(deletions.len(), 1);
    assert_eq!(deletions[0]["user"]["uid"], gone.as_str());
    assert_eq!(events.len(), 30, "29 users walked again plus one deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_delta_token_starts_a_full_resync_with_a_warning() {
    let h = Harness::start(Tenant::generated(57, 45), EmulatorConfig::default()).await;
    h.sync().await.expect("first run");
    for (status, code) in [(410, "syncStateNotFound"), (410, "resyncRequired")] {
        h.emulator.expire_delta_tokens_with(status, code);
        h.emulator
            .add_user(new_user(&format!("after-{code}"), "After Expiry"));
        let n = h.events().len();
        let report = h.sync().await.expect("the run resyncs");
        assert!(report.full_sync, "{code}: a full sync");
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("expired") && w.contains(code)),
            "{code}: {:?}",
            report.warnings
        );
        let walked: BTreeSet<String> = uids(&h.events()[n..]).into_iter().collect();
        assert_eq!(walked, user_ids(&h.emulator), "{code}: every user again");
        // The new link works: the next run is incremental again.
        let report = h.sync().await.expect("after the resync");
        assert!(!report.full_sync);
        assert_eq!(report.events_written, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_sweep_emits_users_who_signed_in_since_the_last_sweep() {
    let mut h = Harness::start(Tenant::generated(59, 50), EmulatorConfig::default()).await;
    h.set_config("sign_in_sweep_hours", "6");
    h.sync().await.expect("first run");
    let first = by_uid(&h.events());
    assert!(
        first
            .values()
            .any(|e| e.pointer("/user/ldap_person/last_login_time").is_some()),
        "the full walk carries sign-in data from its sweep"
    );
    let active = id_of(&h, 30);
    let now = graph_now();
    // A sign-in is not a delta change in Graph; the emulator records it as a property change,
    // which delta reports, so the user is seen within the cadence too.
    assert!(h.emulator.update_user(
        &active,
        json!({"signInActivity": {"lastSignInDateTime": now.0, "lastSuccessfulSignInDateTime": now.0}})
    ));
    // Within the cadence: delta sees the user, and the event is a complete snapshot: its
    // sign-in data is read for it (delta cannot select it).
    let n = h.events().len();
    h.sync().await.expect("run within the cadence");
    let within = by_uid(&h.events()[n..]);
    assert_eq!(
        within[&active]["user"]["ldap_person"]["last_login_time"],
        now.1
    );

    // Past the cadence, the sweep emits the users who signed in since the last sweep.
    h.age_delta_cursor(7);
    let n = h.events().len();
    let report = h.sync().await.expect("sweep run");
    assert!(!report.full_sync, "a sweep is not a full walk");
    let swept = by_uid(&h.events()[n..]);
    assert_eq!(
        swept.keys().cloned().collect::<Vec<_>>(),
        vec![active.clone()],
        "only the user who signed in"
    );
    assert_eq!(
        swept[&active]["user"]["ldap_person"]["last_login_time"],
        now.1
    );
}

/// Now as a Graph timestamp (second precision) and in ms.
fn graph_now() -> (String, i64) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        / 1000
        * 1000;
    (connector_sdk::time::format_rfc3339(ms), ms)
}

/// The method vocabulary of MAPPING.md.
const VOCABULARY: [&str; 11] = [
    "microsoftAuthenticator",
    "phone",
    "softwareOath",
    "hardwareOath",
    "fido2",
    "windowsHelloForBusiness",
    "platformCredential",
    "external",
    "email",
    "temporaryAccessPass",
    "securityQuestion",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_wide_and_per_user_enrichment_agree() {
    // A full walk reads memberships, roles and MFA for the whole tenant (groups delta, role
    // assignments, the registration report). Then every user changes, and the incremental
    // round reads the same facts per user (memberOf, authentication/methods, sign-in data
    // fifteen users to a request): both must give the same events, so nothing flaps.
    // 60 users: each incremental round reads sign-in data four requests at a time, so the
    // three runs stay within Graph's 10 sign-in requests a minute.
    let h = Harness::start(Tenant::generated(61, 60), premium_config()).await;
    let walk = h.sync().await.expect("full walk");
    assert_eq!(walk.items_partial, 0, "{:?}", walk.warnings);
    let a = by_uid(&h.events());
    let counters = h.emulator.counters();
    for per_user in [
        Endpoint::MemberOf,
        Endpoint::AuthMethods,
        Endpoint::TransitiveRoles,
        Endpoint::DirectoryRoles,
    ] {
        assert_eq!(counters[&per_user], 0, "{per_user:?} on the full walk");
    }
    let ids: Vec<String> = h
        .emulator
        .users()
        .iter()
        .map(|u| u.id().unwrap().to_string())
        .collect();
    let touch = |fax: &str| {
        for id in &ids {
            // A property the mapping does not read, so the events stay comparable.
            assert!(h.emulator.update_user(id, json!({"faxNumber": fax})));
        }
    };
    // First the connector's memory of the walk serves the changed users: no request per user.
    touch("+1 555 0100");
    h.emulator.reset_counters();
    let n = h.events().len();
    let remembered = h.sync().await.expect("incremental round from memory");
    assert_eq!(remembered.items_partial, 0, "{:?}", remembered.warnings);
    let m = by_uid(&h.events()[n..]);
    assert_eq!(m.len(), 60);
    let counters = h.emulator.counters();
    assert_eq!(counters[&Endpoint::MemberOf], 0, "groups remembered");
    assert_eq!(counters[&Endpoint::AuthMethods], 0, "methods remembered");
    // Then without that memory: every user's groups and methods are read per user.
    h.forget_facts();
    touch("+1 555 0101");
    h.emulator.reset_counters();
    let n = h.events().len();
    let changes = h.sync().await.expect("incremental round");
    assert!(!changes.full_sync);
    assert_eq!(changes.items_partial, 0, "{:?}", changes.warnings);
    let b = by_uid(&h.events()[n..]);
    assert_eq!(a.len(), 60);
    assert_eq!(b.len(), 60);
    for (uid, ea) in &a {
        let em = &m[uid];
        for pointer in [
            "/user/type_id",
            "/user/groups",
            "/user/has_mfa",
            "/user/ldap_person/last_login_time",
            "/enrichments/0/data/roles",
            "/enrichments/0/data/mfa_methods",
        ] {
            assert_eq!(
                ea.pointer(pointer),
                em.pointer(pointer),
                "{uid} {pointer} (memory)"
            );
        }
        let eb = &b[uid];
        for pointer in [
            "/user/type_id",
            "/user/groups",
            "/user/has_mfa",
            "/user/ldap_person/last_login_time",
            "/enrichments/0/data/roles",
            "/enrichments/0/data/eligible_roles",
            "/enrichments/0/data/last_sign_in_attempt",
        ] {
            assert_eq!(ea.pointer(pointer), eb.pointer(pointer), "{uid} {pointer}");
        }
        // A method kind newer than the report's vocabulary is listed only by the per-user
        // source (MAPPING.md keeps unknown names as given); every known name agrees.
        let known = |e: &Value| -> Vec<Value> {
            e["enrichments"][0]["data"]["mfa_methods"]
                .as_array()
                .expect("mfa_methods read")
                .iter()
                .filter(|m| VOCABULARY.contains(&m.as_str().unwrap_or("")))
                .cloned()
                .collect()
        };
        assert_eq!(known(ea), known(eb), "{uid} mfa_methods");
    }
    let counters = h.emulator.counters();
    assert!(counters[&Endpoint::MemberOf] >= 60 && counters[&Endpoint::AuthMethods] >= 60);
    assert_eq!(counters[&Endpoint::RegistrationDetails], 0);
    assert_eq!(
        h.emulator.throttled_responses(),
        0,
        "paced below the reports limits: {counters:?} {:?}",
        changes.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_batch_item_is_retried_alone_and_pauses_the_tenant() {
    // Per-user reads go through $batch in an incremental round: 25 users are created after
    // the full walk (the connector knows nothing of them yet), and one of their memberOf items
    // is throttled once.
    let h = Harness::start(Tenant::generated(63, 30), EmulatorConfig::default()).await;
    h.sync().await.expect("the full walk");
    let changed: Vec<String> = (0..25).map(|i| format!("new-{i:02}")).collect();
    for id in &changed {
        h.emulator.add_user(new_user(id, "New"));
    }
    let victim = changed[12].clone();
    h.emulator.add_fault(FaultRule {
        path_contains: Some(victim.clone()),
        count: 1,
        ..FaultRule::throttle(Endpoint::MemberOf, 1)
    });
    h.emulator.reset_counters();
    let n = h.events().len();
    let started = Instant::now();
    let report = h.sync().await.expect("the run completes");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After inside the batch was honoured"
    );
    assert_eq!(report.items_partial, 0, "{:?}", report.warnings);
    assert_eq!(report.events_written, 25);
    let events = by_uid(&h.events()[n..]);
    assert!(events[&victim]["user"].get("groups").is_some());
    // The 25 users' memberOf (one page each: they are in no group), plus one retry of the
    // victim's.
    let member_of = h.emulator.counters()[&Endpoint::MemberOf];
    assert_eq!(member_of, 25 + 1, "only the throttled item was sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_of_429s_with_http_date_retry_after_loses_nothing() {
    let h = Harness::start(Tenant::generated(65, 80), premium_config()).await;
    h.emulator.set_throttle(Some(Throttle {
        every: 7,
        retry_after: RetryAfter::HttpDate(1),
        endpoints: None,
    }));
    let report = h.sync().await.expect("the run rides out the throttling");
    assert_eq!(report.events_written, 80);
    assert_eq!(report.items_partial, 0, "{:?}", report.warnings);
    let events = h.events();
    assert_all_valid(&events);
    assert!(events.iter().all(|e| e["user"].get("groups").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_503_and_504_back_off_and_recover() {
    let h = Harness::start(Tenant::generated(67, 40), EmulatorConfig::default()).await;
    h.emulator.add_fault(FaultRule {
        count: 2,
        ..FaultRule::unavailable(Endpoint::UsersDelta)
    });
    h.emulator.add_fault(FaultRule {
        count: 3,
        ..FaultRule::gateway_timeout(Endpoint::GroupsDelta)
    });
    let report = h.sync().await.expect("the run recovers");
    assert_eq!(report.events_written, 40);
    assert_eq!(report.items_partial, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(h.emulator.counters()[&Endpoint::UsersDelta], 3);
    assert!(
        h.emulator.counters()[&Endpoint::GroupsDelta] >= 4,
        "three 504s, then the groups were read"
    );
    assert!(h.events().iter().all(|e| e["user"].get("groups").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_retry_budget_fails_the_run_clearly_and_keeps_the_cursor() {
    let mut h = Harness::start(Tenant::generated(69, 20), EmulatorConfig::default()).await;
    h.sync().await.expect("first run");
    let cursor = h.cursor();
    h.set_config("retry_budget", "3");
    h.emulator.add_user(new_user("waiting", "Waiting"));
    h.emulator
        .add_fault(FaultRule::throttle(Endpoint::UsersDelta, 0));
    let err = h.sync().await.expect_err("Graph never stops throttling");
    assert!(
        matches!(&err, RunError::Connector { kind: ConnectorErrorKind::Upstream, message, .. }
            if message.contains("retry budget of 3 is spent") && message.contains("429")),
        "{err:?}"
    );
    assert_eq!(h.cursor(), cursor, "the cursor did not move");
    assert_eq!(
        h.emulator.counters()[&Endpoint::UsersDelta],
        1 + 1 + 3,
        "the first run's page, then one try and three retries"
    );
    h.emulator.clear_faults();
    h.sync().await.expect("the next run catches up");
    assert!(uids(&h.events()).contains(&"waiting".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_about_to_expire_is_renewed_mid_run() {
    // Tokens live 61 s and are renewed a minute early, so every second of the run needs a
    // fresh one; 20 pages at 60 ms per request take well over a second.
    let mut h = Harness::start(
        Tenant::generated(71, 200),
        EmulatorConfig {
            token_lifetime_secs: 61,
            ..EmulatorConfig::default()
        },
    )
    .await;
    h.set_config("page_size", "10");
    h.emulator.set_latency(Duration::from_millis(60));
    let report = h.sync().await.expect("the run completes");
    assert_eq!(report.events_written, 200);
    assert!(
        h.emulator.counters()[&Endpoint::Token] >= 2,
        "the token was renewed before it expired"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}
