//! The connector against a Graph that keeps Microsoft's documented limits (the emulator's
//! default): every kind of admin found, permissions and licences missing, a `$select`
//! property refused, and a full sync paced below the reports limits.

use std::collections::{BTreeMap, BTreeSet};

use e2e_tests::Harness;
use graph_emulator::{
    role_case, EmulatorConfig, Endpoint, FaultRule, Tenant, DIRECTORY_ROLE_TYPE, GROUP_TYPE,
};
use ocsf_check::assert_all_valid;
use serde_json::{json, Value};

fn by_uid(events: &[Value]) -> BTreeMap<String, Value> {
    events
        .iter()
        .map(|e| (e["user"]["uid"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn id_of(h: &Harness, index: usize) -> String {
    h.emulator.users()[index].id().unwrap().to_string()
}

fn data(event: &Value) -> &Value {
    &event["enrichments"][0]["data"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_scoped_group_and_eligible_only_admins_are_admins_with_their_roles() {
    let h = Harness::start(Tenant::generated(81, 120), EmulatorConfig::default()).await;
    let report = h.sync().await.expect("the run succeeds");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let events = h.events();
    assert_all_valid(&events);
    let got = by_uid(&events);
    // The oracle: who holds what, computed by the emulator from its tenant data alone.
    let oracle = h.emulator.tenant_admin_roles();
    assert_eq!(got.len(), oracle.len());
    for (id, (active, eligible)) in &oracle {
        let e = &got[id];
        let admin = !active.is_empty() || !eligible.is_empty();
        assert_eq!(e["user"]["type_id"], if admin { 2 } else { 1 }, "{id}");
        assert_eq!(data(e)["roles"], json!(active), "{id}");
        assert_eq!(data(e)["eligible_roles"], json!(eligible), "{id}");
    }
    // Each kind the legacy views cannot see is among them.
    for (index, kind) in [
        (role_case::CUSTOM_ROLE, "custom role"),
        (role_case::UNIT_SCOPED, "administrative-unit scope"),
        (role_case::APP_SCOPED, "application scope"),
        (role_case::ELIGIBLE_ONLY, "eligible only"),
        (role_case::VIA_GROUP[0], "custom role through a group"),
    ] {
        let e = &got[&id_of(&h, index)];
        assert_eq!(e["user"]["type_id"], 2, "{kind}: {e}");
        assert_eq!(e["user"]["type"], "Admin", "{kind}");
    }
    let eligible_only = &got[&id_of(&h, role_case::ELIGIBLE_ONLY)];
    assert_eq!(data(eligible_only)["roles"], json!([]));
    assert!(!data(eligible_only)["eligible_roles"]
        .as_array()
        .unwrap()
        .is_empty());
    // No legacy role source on the default path.
    let counters = h.emulator.counters();
    assert_eq!(counters[&Endpoint::DirectoryRoles], 0);
    assert_eq!(counters[&Endpoint::TransitiveRoles], 0);
    assert!(counters[&Endpoint::RoleAssignments] >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_p2_eligibility_is_unknown_with_one_warning_and_the_run_completes() {
    let h = Harness::start(
        Tenant::generated(83, 60),
        EmulatorConfig {
            p2: false,
            ..EmulatorConfig::default()
        },
    )
    .await;
    let report = h.sync().await.expect("the run succeeds");
    let warnings: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("eligible"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", report.warnings);
    assert!(warnings[0].contains("P2"), "{}", warnings[0]);
    let got = by_uid(&h.events());
    let eligible_only = &got[&id_of(&h, role_case::ELIGIBLE_ONLY)];
    assert_eq!(
        eligible_only["user"]["type_id"], 1,
        "active assignments were read and hold none; eligibility is unknown"
    );
    assert!(data(eligible_only).get("eligible_roles").is_none());
    assert!(got
        .values()
        .all(|e| data(e).get("eligible_roles").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_role_assignments_make_unknown_users_but_eligibility_and_is_admin_still_prove_admins(
) {
    let h = Harness::start(Tenant::generated(85, 60), EmulatorConfig::default()).await;
    // RoleEligibilitySchedule.Read.Directory is still granted.
    h.emulator.set_missing_permissions(&[
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "Directory.Read.All",
    ]);
    let report = h.sync().await.expect("the run succeeds");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("role assignments were not read")
                && w.contains("RoleManagement.Read.Directory")),
        "{:?}",
        report.warnings
    );
    let got = by_uid(&h.events());
    let eligible_only = id_of(&h, role_case::ELIGIBLE_ONLY);
    // The registration report's isAdmin (documented on userRegistrationDetails: "has an
    // admin role in the tenant") proves Admin where the assignments are unknown (issue 17):
    // the users holding an active role, by the tenant's own data.
    let marked: BTreeSet<String> = h
        .emulator
        .users()
        .iter()
        .filter(|u| {
            !u.directory_roles().is_empty()
                || u.role_assignments
                    .iter()
                    .any(|a| a.get("eligible").and_then(Value::as_bool) != Some(true))
        })
        .map(|u| u.id().unwrap().to_string())
        .collect();
    assert!(!marked.is_empty(), "the tenant has active admins");
    for (id, e) in &got {
        if *id == eligible_only {
            assert_eq!(e["user"]["type_id"], 2, "eligibility proves a role");
        } else if e["enrichments"][0]["data"]["eligible_roles"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            assert_eq!(e["user"]["type_id"], 2, "{id}");
        } else if marked.contains(id) {
            assert_eq!(
                e["user"]["type_id"], 2,
                "{id}: the report's isAdmin proves it"
            );
            assert_eq!(e["user"]["type"], "Admin");
        } else {
            assert_eq!(e["user"]["type_id"], 0, "{id}: never a guess");
            assert_eq!(e["user"]["type"], "Unknown");
        }
        assert!(data(e).get("roles").is_none(), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_audit_log_read_all_completes_with_a_warning() {
    let h = Harness::start(Tenant::generated(87, 50), EmulatorConfig::default()).await;
    h.emulator.set_missing_permissions(&["AuditLog.Read.All"]);
    let report = h
        .sync()
        .await
        .expect("the run completes without sign-in data");
    let sign_in: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("signInActivity"))
        .collect();
    assert_eq!(sign_in.len(), 1, "one warning: {:?}", report.warnings);
    assert!(
        sign_in[0].contains("AuditLog.Read.All")
            && sign_in[0].contains("Authentication_MSGraphPermissionMissing"),
        "{}",
        sign_in[0]
    );
    assert!(report.unavailable.contains(&"signInActivity".to_string()));
    let events = h.events();
    assert_eq!(events.len(), 50);
    assert_all_valid(&events);
    assert!(events
        .iter()
        .all(|e| e.pointer("/user/ldap_person/last_login_time").is_none()
            && data(e).get("last_sign_in_attempt").is_none()));
    // The registration report needs the same permission: MFA is read per user instead.
    assert!(events.iter().all(|e| e["user"].get("has_mfa").is_some()));

    // Incremental rounds degrade the same way, on their own requests.
    let changed = id_of(&h, 30);
    assert!(h
        .emulator
        .update_user(&changed, json!({"jobTitle": "Renamed"})));
    let report = h.sync().await.expect("the incremental run completes");
    assert_eq!(report.events_written, 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("AuditLog.Read.All")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_select_property_refused_by_graph_is_dropped_and_the_run_completes() {
    let h = Harness::start(Tenant::generated(89, 30), EmulatorConfig::default()).await;
    // Graph refuses the property in a fresh delta query (next links carry it in their
    // token, so only the first request names it).
    h.emulator.add_fault(FaultRule {
        endpoint: Endpoint::UsersDelta,
        path_contains: Some("isManagementRestricted".into()),
        skip: 0,
        count: u32::MAX,
        status: 400,
        body: r#"{"error":{"code":"Request_UnsupportedQuery","message":"Property 'isManagementRestricted' is not supported for delta queries on this tenant."}}"#.into(),
        headers: vec![],
    });
    let report = h.sync().await.expect("the run completes");
    assert_eq!(report.events_written, 30);
    let dropped: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("isManagementRestricted"))
        .collect();
    assert_eq!(dropped.len(), 1, "warned once: {:?}", report.warnings);
    let events = h.events();
    assert_all_valid(&events);
    assert!(events
        .iter()
        .all(|e| data(e).get("is_restricted").is_none()));
    let cursor = h.delta_cursor().unwrap();
    assert_eq!(
        cursor["dropped_properties"],
        json!(["isManagementRestricted"])
    );

    // A later full walk remembers it: no second refusal, no second warning.
    h.age_delta_cursor(25);
    let refused_before = h.emulator.counters()[&Endpoint::UsersDelta];
    let report = h.sync().await.expect("the refresh completes");
    assert!(report.full_sync);
    assert!(
        report
            .warnings
            .iter()
            .all(|w| !w.contains("isManagementRestricted")),
        "{:?}",
        report.warnings
    );
    assert!(h.emulator.counters()[&Endpoint::UsersDelta] > refused_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_and_an_incremental_run_are_paced_below_every_limit_and_cheap() {
    let users = 2_000usize;
    let h = Harness::start(Tenant::generated(91, users), EmulatorConfig::default()).await;
    let report = h.sync().await.expect("the run succeeds");
    assert_eq!(report.events_written, users as u64);
    assert_eq!(
        h.emulator.throttled_responses(),
        0,
        "no 429 from Graph: the connector paced itself"
    );
    let counters = h.emulator.counters();
    // Graph counts every $batch item (its own counter) but not the envelope.
    let graph_requests = h.emulator.graph_requests();
    assert!(
        graph_requests as f64 / users as f64 <= 0.03,
        "{graph_requests} Graph requests for {users} users: {counters:?}"
    );
    for per_user in [
        Endpoint::MemberOf,
        Endpoint::AuthMethods,
        Endpoint::TransitiveRoles,
    ] {
        assert_eq!(counters[&per_user], 0, "{per_user:?}");
    }
    assert_eq!(
        report.requests, graph_requests,
        "the run report counts as Graph does"
    );

    // 1% of the users change: a property, a group membership or a role. The next run emits
    // exactly them, complete, for a cost that does not grow with the tenant.
    let all = h.emulator.users();
    let group = all
        .iter()
        .flat_map(|u| u.member_of.iter())
        .find(|m| m["@odata.type"] == GROUP_TYPE)
        .cloned()
        .unwrap();
    let role = all
        .iter()
        .flat_map(|u| u.member_of.iter())
        .find(|m| m["@odata.type"] == DIRECTORY_ROLE_TYPE)
        .cloned()
        .unwrap();
    let mut changed = Vec::new();
    for (n, u) in all.iter().skip(100).take(users / 100).enumerate() {
        let id = u.id().unwrap().to_string();
        let ok = match n % 3 {
            0 => h.emulator.update_user(&id, json!({"jobTitle": "Changed"})),
            1 if !u.member_of.contains(&group) => h
                .emulator
                .modify_relations(&id, |s| s.member_of.push(group.clone())),
            2 if !u.member_of.contains(&role) => h
                .emulator
                .modify_relations(&id, |s| s.member_of.push(role.clone())),
            _ => continue,
        };
        assert!(ok);
        changed.push(id);
    }
    h.emulator.reset_counters();
    let n = h.events().len();
    let report = h.sync().await.expect("the incremental run succeeds");
    let got = by_uid(&h.events()[n..]);
    let mut want = changed.clone();
    want.sort();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), want);
    assert!(got
        .values()
        .all(|e| e["user"].get("groups").is_some() && e["user"].get("has_mfa").is_some()));
    let requests = h.emulator.graph_requests();
    assert!(
        requests <= 20,
        "{requests} Graph requests for {} changed users: {:?}",
        changed.len(),
        h.emulator.counters()
    );
    assert_eq!(h.emulator.throttled_responses(), 0);
    assert_eq!(report.items_partial, 0, "{:?}", report.warnings);
}
