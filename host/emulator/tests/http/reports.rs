//! The Entra reports limits (registration report, `signInActivity`) and the query options the
//! registration report takes.

use std::time::{Duration, Instant};

use graph_emulator::{hard_case, Emulator, EmulatorConfig, RetryAfter, Tenant, Throttle};
use serde_json::{json, Value};

use crate::common::{generous, id_at, ids, Client};

const REPORT: &str = "/v1.0/reports/authenticationMethods/userRegistrationDetails";

async fn setup(config: EmulatorConfig) -> (Tenant, Emulator, Client) {
    let tenant = Tenant::generated(111, 30);
    let emulator = Emulator::start(tenant.clone(), config)
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    (tenant, emulator, client)
}

fn retry_after_secs(headers: &Value) -> u64 {
    headers["Retry-After"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {headers}"))
}

#[tokio::test]
async fn the_registration_report_allows_five_requests_per_ten_seconds() {
    let (tenant, emulator, client) = setup(EmulatorConfig::default()).await;
    let one = format!("{REPORT}/{}", id_at(&tenant, 0));
    let began = Instant::now();
    for i in 0..5 {
        let path = if i % 2 == 0 { REPORT } else { one.as_str() };
        let answer = client.get(path, &[]).await;
        assert_eq!(answer.status, 200, "request {i}: {}", answer.raw);
    }
    let refused = client.get(REPORT, &[]).await;
    assert!(began.elapsed() < Duration::from_secs(9), "the test is fast");
    assert_eq!(
        (refused.status, refused.graph_code()),
        (429, "TooManyRequests")
    );
    let wait: u64 = refused
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=10).contains(&wait), "{wait}");
    assert_eq!(emulator.reports_throttled(), 1);
    assert_eq!(emulator.throttled_responses(), 1);

    // Other endpoints are not held back; a refusal does not use a slot.
    assert_eq!(client.get("/v1.0/users?$select=id", &[]).await.status, 200);
    assert_eq!(client.get(&one, &[]).await.status, 429);

    // Inside a $batch each report item counts, and is throttled, on its own.
    let batch = json!({"requests": [
        {"id": "list", "method": "GET", "url": "/reports/authenticationMethods/userRegistrationDetails"},
        {"id": "one", "method": "GET", "url": format!("/reports/authenticationMethods/userRegistrationDetails/{}", id_at(&tenant, 1))},
        {"id": "users", "method": "GET", "url": "/users?$select=id&$top=1"},
    ]});
    let answer = client.post_json("/v1.0/$batch", &batch).await;
    assert_eq!(answer.status, 200);
    for id in ["list", "one"] {
        let item = answer.batch_item(id);
        assert_eq!(item["status"], 429, "{item}");
        assert_eq!(item["body"]["error"]["code"], "TooManyRequests");
        assert!((1..=10).contains(&retry_after_secs(&item["headers"])));
    }
    assert_eq!(answer.batch_item("users")["status"], 200);
    assert_eq!(emulator.reports_throttled(), 4);
    assert_eq!(emulator.throttled_responses(), 4);
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_window_slides_and_waiting_retry_after_gets_through() {
    let (_, emulator, client) = setup(EmulatorConfig {
        reports_limit: Some((2, Duration::from_millis(1500))),
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(client.get(REPORT, &[]).await.status, 200);
    assert_eq!(client.get(REPORT, &[]).await.status, 200);
    let refused = client.get(REPORT, &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("2"), "1.5 s rounds up");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(client.get(REPORT, &[]).await.status, 200);
    assert_eq!(client.get(REPORT, &[]).await.status, 200);
    assert_eq!(client.get(REPORT, &[]).await.status, 429);
    assert_eq!(emulator.reports_throttled(), 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn sign_in_activity_requests_count_against_both_reports_limits() {
    let (tenant, emulator, client) = setup(EmulatorConfig::default()).await;
    let user = id_at(&tenant, hard_case::GLOBAL_ADMIN);
    // Not counted: no signInActivity.
    for _ in 0..8 {
        assert_eq!(
            client
                .get("/v1.0/users?$select=id,displayName", &[])
                .await
                .status,
            200
        );
    }
    // Counted: list, one user, a filter naming it (refused afterwards: not filterable here).
    let list = client
        .get("/v1.0/users?$select=id,signInActivity", &[])
        .await;
    assert_eq!(list.status, 200);
    let one = client
        .get(&format!("/v1.0/users/{user}?$select=signInActivity"), &[])
        .await;
    assert_eq!(one.status, 200);
    assert!(one.body["signInActivity"].is_object());
    let filtered = client
        .get(
            "/v1.0/users?$filter=signInActivity/lastSignInDateTime le 2025-01-01T00:00:00Z",
            &[],
        )
        .await;
    assert_eq!(filtered.status, 400, "{}", filtered.raw);
    assert_eq!(client.get(REPORT, &[]).await.status, 200, "the same bucket");
    assert_eq!(
        client
            .get("/v1.0/users?$select=SIGNINACTIVITY,id", &[])
            .await
            .status,
        200
    );
    let refused = client
        .get("/v1.0/users?$select=id,signInActivity", &[])
        .await;
    assert_eq!(refused.status, 429);
    assert_eq!(emulator.reports_throttled(), 1);
    emulator.shutdown().await;

    // The signInActivity limit alone: 10 a minute.
    let (_, emulator, client) = setup(EmulatorConfig {
        reports_limit: None,
        ..EmulatorConfig::default()
    })
    .await;
    for i in 0..10 {
        let answer = client
            .get("/v1.0/users?$select=id,signInActivity&$top=5", &[])
            .await;
        assert_eq!(answer.status, 200, "request {i}");
    }
    let refused = client
        .get("/v1.0/users?$select=id,signInActivity&$top=5", &[])
        .await;
    assert_eq!(refused.status, 429);
    let wait: u64 = refused
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("seconds");
    assert!((50..=60).contains(&wait), "{wait}");
    for _ in 0..10 {
        assert_eq!(
            client.get(REPORT, &[]).await.status,
            200,
            "reports unlimited"
        );
    }
    assert_eq!(emulator.reports_throttled(), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn every_429_is_counted_and_generous_has_no_reports_limit() {
    let (_, emulator, client) = setup(generous()).await;
    for _ in 0..20 {
        assert_eq!(client.get(REPORT, &[]).await.status, 200);
        assert_eq!(
            client
                .get("/v1.0/users?$select=id,signInActivity", &[])
                .await
                .status,
            200
        );
    }
    assert_eq!(emulator.reports_throttled(), 0);
    emulator.set_throttle(Some(Throttle {
        every: 2,
        retry_after: RetryAfter::Seconds(1),
        endpoints: None,
    }));
    let statuses: Vec<u16> = futures_statuses(&client, 6).await;
    assert_eq!(statuses, [200, 429, 200, 429, 200, 429]);
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users?$top=1"},
        {"id": "2", "method": "GET", "url": "/users?$top=1"},
    ]});
    let answer = client.post_json("/v1.0/$batch", &batch).await;
    assert_eq!(answer.batch_item("2")["status"], 429);
    emulator.set_throttle(None);
    let mut fault = graph_emulator::FaultRule::throttle(graph_emulator::Endpoint::Groups, 3);
    fault.count = 1;
    emulator.add_fault(fault);
    assert_eq!(client.get("/v1.0/groups", &[]).await.status, 429);
    assert_eq!(
        emulator.throttled_responses(),
        3 + 1 + 1,
        "rate throttle, a batch item, a fault rule"
    );
    assert_eq!(emulator.reports_throttled(), 0);
    emulator.shutdown().await;
}

async fn futures_statuses(client: &Client, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(client.get("/v1.0/users?$top=1", &[]).await.status);
    }
    out
}

/// No reports limit: these tests send many report requests.
fn unlimited() -> EmulatorConfig {
    EmulatorConfig {
        reports_limit: None,
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn the_registration_report_takes_filter_and_orderby_only() {
    let (tenant, emulator, client) = setup(unlimited()).await;
    for query in ["$select=id", "$top=10", "$expand=x", "$count=true"] {
        let answer = client.get(&format!("{REPORT}?{query}"), &[]).await;
        assert_eq!(
            (answer.status, answer.graph_code()),
            (400, "BadRequest"),
            "{query}"
        );
    }
    let one = format!("{REPORT}/{}", id_at(&tenant, 0));
    let refused = client.get(&format!("{one}?$select=isAdmin"), &[]).await;
    assert_eq!(
        (refused.status, refused.graph_code()),
        (400, "BadRequest"),
        "the by-id read takes no option"
    );

    let all = client.walk(REPORT, &[]).await;
    assert_eq!(all.len(), 1, "30 rows on the default page of 100");
    let rows: Vec<Value> = all.iter().flat_map(|p| p.values()).collect();

    let a = id_at(&tenant, 3);
    let b = id_at(&tenant, 12);
    let by_id = client
        .get(&format!("{REPORT}?$filter=id eq '{a}'"), &[])
        .await;
    assert_eq!(ids(std::slice::from_ref(&by_id)), std::slice::from_ref(&a));
    let by_ids = client
        .get(&format!("{REPORT}?$filter=id in ('{b}', '{a}')"), &[])
        .await;
    assert_eq!(ids(std::slice::from_ref(&by_ids)), [a.clone(), b.clone()]);
    let sixteen: Vec<String> = (0..16)
        .map(|i| format!("'{}'", id_at(&tenant, i)))
        .collect();
    let too_many = client
        .get(
            &format!("{REPORT}?$filter=id in ({})", sixteen.join(",")),
            &[],
        )
        .await;
    assert_eq!(too_many.status, 400, "{}", too_many.raw);

    let mfa = client
        .get(&format!("{REPORT}?$filter=isMfaRegistered eq true"), &[])
        .await;
    assert_eq!(mfa.status, 200, "{}", mfa.raw);
    let expected: Vec<Value> = rows
        .iter()
        .filter(|r| r["isMfaRegistered"] == true)
        .cloned()
        .collect();
    assert!(!expected.is_empty() && expected.len() < rows.len());
    assert_eq!(mfa.values(), expected);
    let upn = rows[5]["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_owned();
    let by_upn = client
        .get(
            &format!("{REPORT}?$filter=userPrincipalName eq '{upn}'"),
            &[],
        )
        .await;
    assert_eq!(by_upn.values(), vec![rows[5].clone()]);
    for filter in [
        "lastUpdatedDateTime ge 2025-01-01T00:00:00Z",
        "isAdmin eq true",
        "userType eq 'guest'",
        "userPrincipalName in ('a@b.c')",
    ] {
        let answer = client.get(&format!("{REPORT}?$filter={filter}"), &[]).await;
        assert_eq!(answer.status, 400, "{filter}: {}", answer.raw);
    }

    let sorted = client
        .get(&format!("{REPORT}?$orderby=userPrincipalName desc"), &[])
        .await;
    assert_eq!(sorted.status, 200, "{}", sorted.raw);
    let upns: Vec<String> = sorted
        .values()
        .iter()
        .map(|r| r["userPrincipalName"].as_str().unwrap_or("").to_lowercase())
        .collect();
    let mut expected = upns.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(upns, expected);
    assert_eq!(upns.len(), 30);
    let refused = client.get(&format!("{REPORT}?$orderby=isAdmin"), &[]).await;
    assert_eq!(refused.status, 400);
    emulator.shutdown().await;

    // generous keeps $select and $top.
    let (_, emulator, client) = setup(generous()).await;
    let pages = client
        .walk(&format!("{REPORT}?$top=7&$select=isAdmin"), &[])
        .await;
    assert_eq!(pages.len(), 5);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_sorted_report_pages_by_offset() {
    let tenant = Tenant::generated(112, 250);
    let emulator = Emulator::start(tenant, unlimited()).await.expect("starts");
    let client = Client::new(&emulator).await;
    let pages = client
        .walk(&format!("{REPORT}?$orderby=userDisplayName"), &[])
        .await;
    assert_eq!(
        pages.iter().map(|p| p.values().len()).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    let names: Vec<String> = pages
        .iter()
        .flat_map(|p| p.values())
        .map(|r| r["userDisplayName"].as_str().unwrap_or("").to_lowercase())
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]));
    let mut all = ids(&pages);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 250);
    emulator.shutdown().await;
}

#[tokio::test]
async fn top_on_the_report_is_refused_by_default_and_sizes_pages_when_switched_on() {
    let tenant = Tenant::generated(113, 250);
    let emulator = Emulator::start(tenant, unlimited()).await.expect("starts");
    let client = Client::new(&emulator).await;
    assert!(!emulator.config().registration_top, "strict by default");
    let refused = client.get(&format!("{REPORT}?$top=10"), &[]).await;
    assert_eq!((refused.status, refused.graph_code()), (400, "BadRequest"));
    let message = refused.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("'$top'"), "{message}");

    emulator.set_registration_top(true);
    assert!(emulator.config().registration_top);
    let sizes = |pages: &[crate::common::Answer]| {
        pages.iter().map(|p| p.values().len()).collect::<Vec<_>>()
    };
    let pages = client.walk(&format!("{REPORT}?$top=60"), &[]).await;
    assert_eq!(sizes(&pages), [60, 60, 60, 60, 10]);
    let mut all = ids(&pages);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 250, "every row once");
    let pages = client.walk(&format!("{REPORT}?$top=999"), &[]).await;
    assert_eq!(sizes(&pages), [250]);
    let pages = client.walk(REPORT, &[]).await;
    assert_eq!(sizes(&pages), [100, 100, 50], "no $top: 100 a page");
    let pages = client
        .walk(
            &format!("{REPORT}?$top=120&$orderby=userPrincipalName"),
            &[],
        )
        .await;
    assert_eq!(
        sizes(&pages),
        [120, 120, 10],
        "sorted pages follow $top too"
    );
    for top in ["0", "1000", "ten", "-1", ""] {
        let answer = client.get(&format!("{REPORT}?$top={top}"), &[]).await;
        assert_eq!(
            (answer.status, answer.graph_code()),
            (400, "BadRequest"),
            "$top={top}: {}",
            answer.raw
        );
        let message = answer.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("'$top'"), "$top={top}: {message}");
    }
    let select = client
        .get(&format!("{REPORT}?$top=5&$select=id"), &[])
        .await;
    assert_eq!(select.status, 400, "$select stays refused: {}", select.raw);

    emulator.set_registration_top(false);
    assert_eq!(
        client.get(&format!("{REPORT}?$top=5"), &[]).await.status,
        400
    );
    emulator.shutdown().await;

    let emulator = Emulator::start(
        Tenant::generated(113, 20),
        EmulatorConfig {
            registration_top: true,
            ..unlimited()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    let pages = client.walk(&format!("{REPORT}?$top=8"), &[]).await;
    assert_eq!(sizes(&pages), [8, 8, 4], "switched on from the config");
    emulator.shutdown().await;
}

/// Users with roles every way the tenant data can give one (the fixture of roles.rs).
fn role_fixture() -> Tenant {
    const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
    const SECURITY_READER: &str = "5d6b6bb7-de71-4623-b4af-96380a352509";
    let global = json!({"@odata.type": graph_emulator::DIRECTORY_ROLE_TYPE, "id": "r1", "displayName": "Global Administrator", "roleTemplateId": GLOBAL_ADMIN});
    let group = json!({"@odata.type": graph_emulator::GROUP_TYPE, "id": "g1", "displayName": "Role - Custom", "isAssignableToRole": true});
    let plain =
        json!({"@odata.type": graph_emulator::GROUP_TYPE, "id": "g2", "displayName": "Sales"});
    Tenant::from_fixture(&json!({
        "roleDefinitions": [{"id": "c1", "displayName": "Custom One", "isBuiltIn": false, "templateId": "c1"}],
        "users": [
            // Direct built-in role.
            {"user": {"id": "a", "displayName": "A", "userPrincipalName": "a@x.com"}, "memberOf": [global]},
            // Active custom role scoped to an administrative unit, and eligible for another.
            {"user": {"id": "b", "displayName": "B", "userPrincipalName": "b@x.com"}, "roleAssignments": [
                {"roleDefinitionId": "c1", "directoryScopeId": "/administrativeUnits/au1"},
                {"roleDefinitionId": SECURITY_READER, "directoryScopeId": "/", "eligible": true}
            ]},
            // Declares the group grant.
            {"user": {"id": "c", "displayName": "C", "userPrincipalName": "c@x.com"}, "memberOf": [group.clone()],
             "roleAssignments": [{"roleDefinitionId": "c1", "viaGroup": "g1"}]},
            // Only a member of the role-assignable group: its own data shows no role.
            {"user": {"id": "d", "displayName": "D", "userPrincipalName": "d@x.com", "userType": "Guest"}, "memberOf": [group]},
            // Eligible only (PIM): not an admin until activated.
            {"user": {"id": "f", "displayName": "F", "userPrincipalName": "f@x.com"}, "roleAssignments": [
                {"roleDefinitionId": GLOBAL_ADMIN, "eligible": true}
            ]},
            // A plain group, no role.
            {"user": {"id": "e", "displayName": "E", "userPrincipalName": "e@x.com"}, "memberOf": [plain]},
        ]
    }))
    .expect("valid fixture")
}

#[tokio::test]
async fn is_admin_is_true_exactly_for_active_role_holders() {
    let tenant = role_fixture();
    let emulator = Emulator::start(tenant.clone(), unlimited())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let rows = client.get(REPORT, &[]).await.values();
    let admin: Vec<(String, bool)> = rows
        .iter()
        .map(|r| {
            let flag = r["isAdmin"].as_bool().expect("isAdmin is a Boolean");
            (r["id"].as_str().unwrap_or("").to_owned(), flag)
        })
        .collect();
    let expected: Vec<(String, bool)> = [
        ("a", true),
        ("b", true),
        ("c", true),
        ("d", true),
        ("f", false),
        ("e", false),
    ]
    .iter()
    .map(|(id, flag)| ((*id).to_owned(), *flag))
    .collect();
    assert_eq!(admin, expected);
    let oracle = tenant.admin_roles();
    for (id, flag) in &admin {
        assert_eq!(*flag, !oracle[id].0.is_empty(), "{id} against the oracle");
        let one = client.get(&format!("{REPORT}/{id}"), &[]).await;
        assert_eq!(one.body["isAdmin"], *flag, "{id} by id");
    }
    let d = &rows[3];
    assert_eq!(d["userType"], "guest");
    assert_eq!(d["userPrincipalName"], "d@x.com");
    assert_eq!(d["userDisplayName"], "D");
    assert_eq!(rows[0]["userType"], "member");

    // A change to the memberships moves the flag (the cached catalog is rebuilt).
    assert!(emulator.modify_relations("e", |sim| {
        sim.member_of.push(json!({"@odata.type": graph_emulator::GROUP_TYPE, "id": "g1", "displayName": "Role - Custom", "isAssignableToRole": true}));
    }));
    let one = client.get(&format!("{REPORT}/e"), &[]).await;
    assert_eq!(
        one.body["isAdmin"], true,
        "joined the role-assignable group"
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_admin_agrees_with_the_role_oracle_on_a_generated_tenant() {
    let tenant = Tenant::generated(131, 1500);
    let emulator = Emulator::start(
        tenant.clone(),
        EmulatorConfig {
            registration_top: true,
            ..unlimited()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    let pages = client.walk(&format!("{REPORT}?$top=999"), &[]).await;
    let oracle = tenant.admin_roles();
    let rows: Vec<Value> = pages.iter().flat_map(|p| p.values()).collect();
    assert_eq!(rows.len(), 1500);
    let mut admins = 0;
    let mut eligible_only = 0;
    for row in &rows {
        let id = row["id"].as_str().expect("id");
        let (active, eligible) = &oracle[id];
        assert_eq!(row["isAdmin"], !active.is_empty(), "{id}: {active:?}");
        admins += usize::from(!active.is_empty());
        eligible_only += usize::from(active.is_empty() && !eligible.is_empty());
    }
    assert!(admins > 0, "the generated tenant has admins");
    assert!(eligible_only > 0, "and PIM-eligible-only users");
    emulator.shutdown().await;
}
