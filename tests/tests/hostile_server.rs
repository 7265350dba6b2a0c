//! A hostile or broken Graph server, and an operator who moved it: the real Entra component
//! in the real host against the emulator over loopback (issue 9, "One bad link wedges a
//! tenant", "Normal-sized events overflow the per-call cap", "A next link pointing at
//! itself", "One user with a 20 MB display name").

use connector_host::RunError;
use e2e_tests::{uids, user_ids, Harness};
use graph_emulator::{Emulator, EmulatorConfig, Endpoint, FaultRule, SimUser, Tenant};
use ocsf_check::assert_all_valid;
use serde_json::{json, Value};

fn delta_harness_config(h: &mut Harness, page_size: &str) {
    h.set_config("sync_mode", "delta");
    h.set_config("page_size", page_size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_off_origin_delta_link_is_never_stored_and_the_tenant_recovers() {
    let mut h = Harness::start(Tenant::generated(21, 120), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "50");
    h.emulator
        .set_next_link_base(Some("http://169.254.169.254:80".into()));
    let err = h.sync().await.expect_err("the foreign link stops the run");
    let line = err.to_string();
    assert!(
        line.contains("points away from") && line.contains("169.254.169.254"),
        "{line}"
    );
    assert!(
        line.contains("the cursor stays at the page before it"),
        "the error says what happened to the cursor: {line}"
    );
    if let Some(cursor) = h.delta_cursor() {
        assert!(
            !cursor.to_string().contains("169.254.169.254"),
            "the bad link never reaches the cursor: {cursor}"
        );
    }
    // Graph behaves again: the next run is not wedged by anything stored.
    h.emulator.set_next_link_base(None);
    h.sync().await.expect("the tenant recovers on the next run");
    let delivered: std::collections::BTreeSet<String> = uids(&h.events()).into_iter().collect();
    assert_eq!(delivered, user_ids(&h.emulator), "every user delivered");
    let cursor = h.delta_cursor().expect("a cursor");
    assert_eq!(cursor["round"], "changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_graph_moved_to_another_origin_starts_a_full_resync_with_a_warning() {
    // The emulator of `serve`'s [simulation] comes back on a new port after a restart, or an
    // operator changes graph_endpoint: the stored links name the old origin.
    let mut h = Harness::start(Tenant::generated(22, 80), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "30");
    h.sync().await.expect("first run");
    let old = h.emulator.graph_endpoint();
    assert!(h.delta_cursor().unwrap().to_string().contains(&old));

    let moved = Emulator::start(Tenant::generated(22, 80), EmulatorConfig::default())
        .await
        .expect("a second emulator starts");
    assert_ne!(moved.graph_endpoint(), old);
    let mut run = connector_host::simulation::emulator_tenant_run(
        &moved,
        "tenant-a",
        &h.dir.path().join("checkpoints.sqlite"),
        &h.events_path(),
    )
    .expect("the run is wired to the new origin");
    for key in ["sync_mode", "page_size"] {
        let kept = h
            .run
            .connector_config
            .iter()
            .find(|(k, _)| k == key)
            .cloned();
        run.connector_config.retain(|(k, _)| k != key);
        run.connector_config.extend(kept);
    }
    let before = h.events().len();
    let report = h
        .run_with(&run)
        .await
        .expect("the moved tenant runs instead of failing on the stored link");
    assert!(report.full_sync, "a full walk: {report:?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("cannot follow") && w.contains(&old)),
        "{:?}",
        report.warnings
    );
    assert_eq!(h.events().len() - before, 80, "every user emitted again");
    let cursor = h.delta_cursor().expect("a cursor").to_string();
    assert!(
        !cursor.contains(&old) && cursor.contains(&moved.graph_endpoint()),
        "{cursor}"
    );
    // And the run after that is incremental again.
    let report = h.run_with(&run).await.expect("third run");
    assert!(!report.full_sync);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_next_link_pointing_at_itself_is_detected_not_followed() {
    let mut h = Harness::start(Tenant::generated(23, 30), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "10");
    let g = h.emulator.graph_endpoint();
    let loop_link = format!("{g}/v1.0/users/delta?$skiptoken=LOOP");
    let page = |id: &str| {
        json!({
            "value": [{"id": id, "displayName": id, "userPrincipalName": format!("{id}@contoso.com")}],
            "@odata.nextLink": loop_link,
        })
        .to_string()
    };
    for (path, skip, count, body) in [
        (Some("LOOP"), 0, u32::MAX, page("looping-user")),
        (None, 0, 1, page("first-user")),
    ] {
        h.emulator.add_fault(FaultRule {
            endpoint: Endpoint::UsersDelta,
            path_contains: path.map(str::to_string),
            skip,
            count,
            status: 200,
            body,
            headers: vec![],
        });
    }
    h.emulator.reset_counters();
    let err = h.sync().await.expect_err("the loop stops the run");
    let line = err.to_string();
    assert!(line.contains("already followed"), "{line}");
    assert_eq!(
        h.emulator.counters().get(&Endpoint::UsersDelta).copied(),
        Some(2),
        "the first page and the looping page, then nothing"
    );
    assert_eq!(
        uids(&h.events()),
        vec!["first-user".to_string(), "looping-user".to_string()],
        "each page delivered once"
    );
    // The next run resumes at the stored link and stops at once again: a broken server
    // costs one request per run, not a run's worth of duplicates.
    h.emulator.reset_counters();
    h.sync().await.expect_err("still looping");
    assert_eq!(
        h.emulator.counters().get(&Endpoint::UsersDelta).copied(),
        Some(1)
    );
}

/// `users` in the same `groups` groups each (direct memberships, served by `/groups/delta`).
fn tenant_in_many_groups(users: usize, groups: usize) -> Tenant {
    let group_objects: Vec<Value> = (0..groups)
        .map(|g| {
            json!({
                "@odata.type": "#microsoft.graph.group",
                "id": format!("00000000-0000-4000-8000-{g:012}"),
                "displayName": format!("Project group number {g} with a realistic, longish name"),
            })
        })
        .collect();
    let users: Vec<SimUser> = Tenant::generated(24, users)
        .into_users()
        .into_iter()
        .map(|mut u| {
            u.member_of = group_objects.clone();
            u.inherited_roles.clear();
            u.role_assignments.clear();
            u
        })
        .collect();
    Tenant::from_users(users).expect("a valid tenant")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_many_normal_sized_events_never_overflow_the_per_call_cap() {
    // 300 users in 700 groups each: ~70 KB per event, far below the 1 MiB event cap; 250 of
    // them in one emit call were 17 MB, over the host's 16 MiB per-call limit.
    let mut h = Harness::start(tenant_in_many_groups(300, 700), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "200");
    let report = h.sync().await.expect("the run completes");
    let events = h.events();
    assert_eq!(events.len(), 300);
    assert_eq!(report.events_emitted, 300);
    let sizes: Vec<usize> = events.iter().map(|e| e.to_string().len()).collect();
    assert!(
        sizes.iter().all(|&n| n > 60_000),
        "each event carries its 700 groups: {:?}",
        &sizes[..3]
    );
    assert!(events
        .iter()
        .all(|e| e["user"]["groups"].as_array().map(Vec::len) == Some(700)));
    assert_all_valid(&events);
    assert_eq!(h.delta_cursor().expect("a cursor")["round"], "changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_user_whose_event_cannot_fit_is_skipped_and_named_and_the_run_goes_on() {
    let mut users = Tenant::generated(25, 40).into_users();
    let giant = users[7].id().expect("an id").to_string();
    users[7].user["displayName"] = Value::String("x".repeat(2 * 1024 * 1024));
    let mut h = Harness::start(
        Tenant::from_users(users).expect("a valid tenant"),
        EmulatorConfig::default(),
    )
    .await;
    delta_harness_config(&mut h, "20");
    let report = h
        .sync()
        .await
        .expect("one giant user does not fail the run");
    let delivered = uids(&h.events());
    assert_eq!(delivered.len(), 39);
    assert!(!delivered.contains(&giant));
    assert_eq!(report.items_skipped, 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains(&giant) && w.contains("event limit")),
        "{:?}",
        report.warnings
    );
    assert_eq!(h.delta_cursor().expect("a cursor")["round"], "changes");
    // The next run is not stuck on the user either.
    h.sync().await.expect("the next run succeeds too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_bad_link_mid_walk_leaves_the_cursor_at_the_last_good_page() {
    // Delta commits after every page: the pages before the bad link stay committed.
    let mut h = Harness::start(Tenant::generated(26, 60), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "20");
    h.emulator.add_fault(FaultRule {
        endpoint: Endpoint::UsersDelta,
        path_contains: Some("skiptoken".into()),
        skip: 1,
        count: 1,
        status: 200,
        body: json!({"value": [], "@odata.nextLink": "file:///etc/passwd"}).to_string(),
        headers: vec![],
    });
    let err = h.sync().await.expect_err("the bad link stops the run");
    assert!(matches!(err, RunError::Connector { .. }), "{err:?}");
    let cursor = h
        .delta_cursor()
        .expect("pages before the bad one were committed");
    let link = cursor["link"].as_str().expect("a stored next link");
    assert!(link.starts_with(&h.emulator.graph_endpoint()), "{link}");
    h.emulator.clear_faults();
    h.sync().await.expect("resumes from the last good page");
    let delivered: std::collections::BTreeSet<String> = uids(&h.events()).into_iter().collect();
    assert_eq!(delivered, user_ids(&h.emulator));
}

/// Graph echoes the client secret encoded: base64 (standard and URL-safe, padded or not)
/// inside a longer encoded text at each of the 3 byte alignments, and hex in both cases, in
/// users' display names. The host redacts every form from the responses before the
/// connector sees them: no run of 12 characters that encodes the secret alone reaches the
/// events, and the run's report says a secret came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_graph_echoing_the_secret_base64_or_hex_encoded_finds_it_redacted() {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let secret = EmulatorConfig::default().client_secret;
    let n = secret.len();
    // (the echo, the part of it that encodes the secret alone)
    let mut echoes: Vec<(String, String)> = Vec::new();
    for prefix in ["", "{", "{\""] {
        let data = format!("{prefix}{secret}\"}}");
        let p = prefix.len();
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&data);
            let alone = encoded[(p * 8).div_ceil(6)..((p + n) * 8) / 6].to_string();
            echoes.push((encoded, alone));
        }
        let hex: String = data.bytes().map(|b| format!("{b:02x}")).collect();
        let alone = hex[2 * p..2 * (p + n)].to_string();
        echoes.push((hex.to_uppercase(), alone.to_uppercase()));
        echoes.push((hex, alone));
    }
    let mut users = Tenant::generated(27, 30).into_users();
    for (u, (echo, _)) in users.iter_mut().zip(&echoes) {
        u.user["displayName"] = Value::String(format!("token {echo} end"));
    }
    let h = Harness::start(
        Tenant::from_users(users).expect("a valid tenant"),
        EmulatorConfig::default(),
    )
    .await;
    let report = h.sync().await.expect("the run completes");
    assert_eq!(h.events().len(), 30);
    let events = std::fs::read_to_string(h.events_path()).unwrap();
    for (echo, alone) in &echoes {
        for start in 0..=alone.len() - 12 {
            let window = &alone[start..start + 12];
            assert!(
                !events.contains(window),
                "'{window}' of the echo {echo} reached the events"
            );
        }
    }
    assert!(
        events.matches("[redacted]").count() >= echoes.len(),
        "every echo was redacted"
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("a secret of this tenant came back")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_lone_surrogate_in_one_display_name_costs_that_character_not_the_tenant() {
    // Graph (or a proxy) sends `"\ud800"`: half of a UTF-16 pair, which serde_json refuses.
    // It used to fail the page, the run, and every later run at the same page.
    let mut users = Tenant::generated(27, 60).into_users();
    let marked = users[13].id().expect("an id").to_string();
    users[13].user["displayName"] = json!("Ann LONE-SURROGATE Lee");
    let mut h = Harness::start(
        Tenant::from_users(users).expect("a valid tenant"),
        EmulatorConfig::default(),
    )
    .await;
    delta_harness_config(&mut h, "20");
    h.emulator
        .set_body_rewrite(Some(("LONE-SURROGATE", "\\ud800")));
    let report = h
        .sync()
        .await
        .expect("one malformed value does not fail the run");
    let events = h.events();
    let delivered: std::collections::BTreeSet<String> = uids(&events).into_iter().collect();
    assert_eq!(delivered, user_ids(&h.emulator), "every user delivered");
    let event = events
        .iter()
        .find(|e| e["user"]["uid"] == marked.as_str())
        .expect("the user with the malformed name is delivered");
    assert_eq!(event["user"]["display_name"], "Ann \u{FFFD} Lee");
    assert_all_valid(&events);
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("U+FFFD"))
        .unwrap_or_else(|| panic!("a warning counts the mend: {:?}", report.warnings));
    // The name is in the users/delta page and in the registration report
    // (`userDisplayName`): one mend in each, each named.
    assert!(
        warning.contains(&format!("'{marked}' ('/v1.0/users/delta')"))
            && warning.contains("2 malformed value(s)"),
        "the warning names the user and counts the values: {warning}"
    );
    assert_eq!(h.delta_cursor().expect("a cursor")["round"], "changes");
    h.sync().await.expect("the next run succeeds too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_page_holding_value_twice_is_an_error_and_the_cursor_does_not_move() {
    // The last `value` used to win: the users of the first vanished and the forged delta
    // link was stored.
    let mut h = Harness::start(Tenant::generated(28, 30), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "50");
    let g = h.emulator.graph_endpoint();
    let users: Vec<Value> = h.emulator.users().iter().map(|u| u.user.clone()).collect();
    let body = format!(
        r#"{{"value":{},"value":[],"@odata.deltaLink":"{g}/v1.0/users/delta?$deltatoken=forged"}}"#,
        Value::Array(users)
    );
    h.emulator.add_fault(FaultRule {
        endpoint: Endpoint::UsersDelta,
        path_contains: None,
        skip: 0,
        count: 1,
        status: 200,
        body,
        headers: vec![],
    });
    let err = h
        .sync()
        .await
        .expect_err("a page repeating `value` is refused");
    let line = err.to_string();
    assert!(
        line.contains("'value' appears twice") && !line.contains('\n'),
        "one line naming the key: {line}"
    );
    if let Some(cursor) = h.delta_cursor() {
        assert!(
            !cursor.to_string().contains("forged"),
            "the cursor never moves past the page: {cursor}"
        );
    }
    h.emulator.clear_faults();
    h.sync().await.expect("the tenant recovers");
    let delivered: std::collections::BTreeSet<String> = uids(&h.events()).into_iter().collect();
    assert_eq!(delivered, user_ids(&h.emulator), "every user delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_report_next_link_that_is_not_a_string_is_an_error_not_the_end() {
    // A number as `@odata.nextLink` was read as "no more pages": the registration report
    // looked complete, and the users on the pages never read lost has_mfa with no warning.
    let mut h = Harness::start(Tenant::generated(29, 40), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "50");
    h.emulator.add_fault(FaultRule {
        endpoint: Endpoint::RegistrationDetails,
        path_contains: None,
        skip: 0,
        count: 1,
        status: 200,
        body: json!({"value": [], "@odata.nextLink": 42}).to_string(),
        headers: vec![],
    });
    let report = h.sync().await.expect("the run completes");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("userRegistrationDetails")
                && w.contains("@odata.nextLink is a JSON number")),
        "the broken source is named: {:?}",
        report.warnings
    );
    assert!(report
        .unavailable
        .iter()
        .any(|u| u == "userRegistrationDetails"));
    let events = h.events();
    assert_eq!(events.len(), 40);
    for e in &events {
        assert!(
            e["user"].get("has_mfa").is_some(),
            "MFA read another way, never silently unknown: {e}"
        );
    }
}

/// A canned page of `endpoint` for every request: `items`, and a next link to `path` with a
/// new skip token each time ([`FaultRule::SEQ`]), so no link repeats.
fn endless_listing(h: &Harness, endpoint: Endpoint, path: &str, items: Value) -> FaultRule {
    let g = h.emulator.graph_endpoint();
    FaultRule {
        endpoint,
        path_contains: None,
        skip: 0,
        count: u32::MAX,
        status: 200,
        body: json!({
            "value": items,
            "@odata.nextLink": format!("{g}/v1.0{path}?$skiptoken=ENDLESS{}", FaultRule::SEQ),
        })
        .to_string(),
        headers: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_an_endless_registration_report_is_cut_at_its_page_cap_and_degraded() {
    // Every page of the report brings a new entry and a new next link: no link and no page
    // repeats, so only the page cap stops it. The sign-in read counts the tenant's 40 users
    // first: the report, one entry per user, may take 2 × ⌈40 / 100⌉ + 10 = 12 pages.
    let mut h = Harness::start(Tenant::generated(27, 40), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "20");
    let rule = endless_listing(
        &h,
        Endpoint::RegistrationDetails,
        "/reports/authenticationMethods/userRegistrationDetails",
        json!([{"id": format!("ghost-{}", FaultRule::SEQ), "methodsRegistered": ["fido2"]}]),
    );
    h.emulator.add_fault(rule);
    h.emulator.reset_counters();
    let report = h.sync().await.expect("the run goes on without the report");
    assert_eq!(
        h.emulator
            .counters()
            .get(&Endpoint::RegistrationDetails)
            .copied(),
        Some(12),
        "the report is read up to its page cap, then never again in the run"
    );
    let delivered: std::collections::BTreeSet<String> = uids(&h.events()).into_iter().collect();
    assert_eq!(delivered, user_ids(&h.emulator), "every user delivered");
    let warned: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("userRegistrationDetails"))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", report.warnings);
    assert!(warned[0].contains("past 12 pages"), "{}", warned[0]);
    assert!(report
        .unavailable
        .contains(&"userRegistrationDetails".to_string()));
    // Degraded to the per-user source: MFA is still known for every user, from each user's
    // methods, and nobody got the ghost entries' methods.
    let events = h.events();
    assert!(events.iter().all(|e| e["user"]["has_mfa"].is_boolean()));
    assert!(h.emulator.counters().get(&Endpoint::AuthMethods).copied() >= Some(40));
    assert_all_valid(&events);
    assert_eq!(h.delta_cursor().expect("a cursor")["round"], "changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_groups_delta_repeating_one_page_under_new_skiptokens_is_stopped_and_degraded() {
    let mut h = Harness::start(Tenant::generated(28, 30), EmulatorConfig::default()).await;
    delta_harness_config(&mut h, "10");
    let someone = user_ids(&h.emulator).into_iter().next().expect("a user");
    let rule = endless_listing(
        &h,
        Endpoint::GroupsDelta,
        "/groups/delta",
        json!([{"id": "loop-group", "displayName": "Looping group",
                "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": someone}]}]),
    );
    h.emulator.add_fault(rule);
    h.emulator.reset_counters();
    let report = h
        .sync()
        .await
        .expect("the run goes on without groups/delta");
    assert_eq!(
        h.emulator.counters().get(&Endpoint::GroupsDelta).copied(),
        Some(2),
        "the second page repeats the first: the listing stops there"
    );
    let warned: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("groups/delta"))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", report.warnings);
    assert!(
        warned[0].contains("repeats the items of an earlier page"),
        "{}",
        warned[0]
    );
    let events = h.events();
    let delivered: std::collections::BTreeSet<String> = uids(&events).into_iter().collect();
    assert_eq!(delivered, user_ids(&h.emulator), "every user delivered");
    // Memberships came from each user's memberOf instead: nobody is in the looping group.
    assert!(h.emulator.counters().get(&Endpoint::MemberOf).copied() >= Some(30));
    assert!(events
        .iter()
        .all(|e| e["user"]["groups"].is_array() && !e.to_string().contains("loop-group")));
    assert_all_valid(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_user_in_twenty_thousand_groups_is_delivered_with_its_groups_truncated() {
    let mut users = tenant_in_many_groups(1, 20_000).into_users();
    users.extend(Tenant::generated(29, 10).into_users());
    let big = users[0].id().expect("an id").to_string();
    let mut h = Harness::start(
        Tenant::from_users(users).expect("a valid tenant"),
        EmulatorConfig::default(),
    )
    .await;
    delta_harness_config(&mut h, "20");
    let report = h.sync().await.expect("the run completes");
    let events = h.events();
    assert_eq!(uids(&events).len(), 11, "every user delivered: {report:?}");
    assert_eq!(report.items_skipped, 0);
    let event = events
        .iter()
        .find(|e| e["user"]["uid"] == big.as_str())
        .expect("the user in 20,000 groups is delivered");
    assert!(event.to_string().len() <= 1024 * 1024);
    let kept = event["user"]["groups"].as_array().expect("groups").len();
    assert!(kept > 5_000 && kept < 20_000, "{kept}");
    assert_eq!(event["metadata"]["is_truncated"], true);
    assert!(event["metadata"]["untruncated_size"].as_u64() > Some(1024 * 1024));
    assert_eq!(event["enrichments"][0]["data"]["groups_total"], 20_000);
    assert!(report.items_partial >= 1, "{report:?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains(&big) && w.contains("20000 groups")),
        "{:?}",
        report.warnings
    );
    for other in events.iter().filter(|e| e["user"]["uid"] != big.as_str()) {
        assert!(other["metadata"].get("is_truncated").is_none(), "{other}");
    }
    assert_all_valid(&events);
    assert_eq!(h.delta_cursor().expect("a cursor")["round"], "changes");
}
