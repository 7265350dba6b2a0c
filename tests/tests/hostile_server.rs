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
