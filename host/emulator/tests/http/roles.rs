//! Roles as the role-management API shows them: definitions, active assignments, PIM
//! eligibility; the generator's role cases; the `Tenant::admin_roles` oracle.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use graph_emulator::{
    role_case, Emulator, EmulatorConfig, SimUser, Tenant, BUILT_IN_ROLES, DIRECTORY_ROLE_TYPE,
    GROUP_TYPE, VIA_GROUP,
};
use serde_json::{json, Value};

use crate::common::{generous, id_at, Client, EVENTUAL};

const DEFINITIONS: &str = "/v1.0/roleManagement/directory/roleDefinitions";
const ASSIGNMENTS: &str = "/v1.0/roleManagement/directory/roleAssignments";
const ELIGIBILITY: &str = "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances";
const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
const SECURITY_READER: &str = "5d6b6bb7-de71-4623-b4af-96380a352509";

type Roles = BTreeMap<String, (Vec<String>, Vec<String>)>;

/// What a connector computes from the role-management API alone: every user's active and
/// eligible role names, group principals expanded through `/groups/{id}/members`.
async fn roles_over_http(client: &Client, users: &[String]) -> Roles {
    let definitions = client.get(DEFINITIONS, &[]).await;
    assert_eq!(definitions.status, 200, "{}", definitions.raw);
    let names: HashMap<String, String> = definitions
        .values()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().expect("id").to_owned(),
                d["displayName"].as_str().expect("name").to_owned(),
            )
        })
        .collect();
    let mut held: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = users
        .iter()
        .map(|u| (u.clone(), Default::default()))
        .collect();
    for (path, eligible) in [(ASSIGNMENTS, false), (ELIGIBILITY, true)] {
        for grant in client.walk(path, &[]).await.iter().flat_map(|p| p.values()) {
            let principal = grant["principalId"].as_str().expect("principal").to_owned();
            let name = names[grant["roleDefinitionId"].as_str().expect("definition")].clone();
            let holders: Vec<String> = if held.contains_key(&principal) {
                vec![principal]
            } else {
                crate::common::ids(
                    &client
                        .walk(&format!("/v1.0/groups/{principal}/members?$top=999"), &[])
                        .await,
                )
            };
            for holder in holders {
                let (active, eligible_set) = held.get_mut(&holder).expect("a user");
                if eligible {
                    eligible_set.insert(name.clone());
                } else {
                    active.insert(name.clone());
                }
            }
        }
    }
    held.into_iter()
        .map(|(u, (a, e))| (u, (a.into_iter().collect(), e.into_iter().collect())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_management_api_sees_every_grant_the_oracle_knows() {
    let tenant = Tenant::generated(131, 3000);
    let users: Vec<String> = tenant
        .users()
        .iter()
        .filter_map(|u| u.id().map(str::to_owned))
        .collect();
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let oracle = tenant.admin_roles();
    assert_eq!(oracle.len(), 3000);
    let assignments = client.walk(ASSIGNMENTS, &[]).await;
    assert!(assignments.len() > 1, "paged: {}", assignments.len());
    assert!(assignments[..assignments.len() - 1]
        .iter()
        .all(|p| p.values().len() == 100));
    let from_http = roles_over_http(&client, &users).await;
    assert_eq!(from_http, oracle);
    let admins = oracle
        .values()
        .filter(|(a, e)| !a.is_empty() || !e.is_empty())
        .count();
    assert!(admins > 100, "{admins}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn each_role_case_is_visible_only_to_the_role_management_api() {
    let tenant = Tenant::generated(132, 60);
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let oracle = tenant.admin_roles();
    let definitions = tenant.role_definitions();
    assert_eq!(definitions.len(), 3);
    assert!(definitions.iter().all(|d| d["isBuiltIn"] == false));
    let custom = |i: usize| {
        definitions[i]["displayName"]
            .as_str()
            .expect("name")
            .to_owned()
    };
    let user = |i: usize| &tenant.users()[i];
    let legacy = |sim: &SimUser| -> Vec<String> {
        let mut names: Vec<String> = sim
            .directory_roles()
            .iter()
            .filter_map(|r| r["displayName"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };

    // Custom role at tenant scope.
    let custom_user = user(role_case::CUSTOM_ROLE);
    assert_eq!(custom_user.role_assignments.len(), 1);
    assert_eq!(custom_user.role_assignments[0]["directoryScopeId"], "/");
    assert!(oracle[custom_user.id().expect("id")].0.contains(&custom(0)));
    // Built-in role scoped to an administrative unit.
    let unit_user = user(role_case::UNIT_SCOPED);
    assert!(unit_user.role_assignments[0]["directoryScopeId"]
        .as_str()
        .is_some_and(|s| s.starts_with("/administrativeUnits/")));
    assert!(oracle[unit_user.id().expect("id")]
        .0
        .contains(&"User Administrator".to_owned()));
    // Built-in role scoped to an application.
    let app_user = user(role_case::APP_SCOPED);
    let scope = app_user.role_assignments[0]["directoryScopeId"]
        .as_str()
        .expect("scope");
    assert!(scope.len() > 30 && !scope.starts_with("/administrativeUnits"));
    assert!(oracle[app_user.id().expect("id")]
        .0
        .contains(&"Application Administrator".to_owned()));
    // Eligible only.
    let eligible_user = user(role_case::ELIGIBLE_ONLY);
    assert!(eligible_user.directory_roles().is_empty());
    assert_eq!(
        oracle[eligible_user.id().expect("id")],
        (
            vec![],
            vec![
                "Global Administrator".to_owned(),
                "Security Administrator".to_owned()
            ]
        )
    );
    // Through a role-assignable group.
    let mut via_group = Value::Null;
    for i in role_case::VIA_GROUP {
        let sim = user(i);
        let grant = &sim.role_assignments[0];
        let group_id = grant[VIA_GROUP].as_str().expect("viaGroup");
        let entry = sim
            .member_of
            .iter()
            .find(|o| o["id"] == group_id)
            .expect("the group is in memberOf");
        assert_eq!(entry["isAssignableToRole"], true);
        assert_eq!(entry["@odata.type"], GROUP_TYPE);
        via_group = json!(group_id);
        assert!(oracle[sim.id().expect("id")].0.contains(&custom(2)));
    }

    // The role-management API: each case once, with the right principal.
    let assignments: Vec<Value> = client
        .walk(ASSIGNMENTS, &[])
        .await
        .iter()
        .flat_map(|p| p.values())
        .collect();
    let find = |principal: &Value, scope: &Value| {
        assignments
            .iter()
            .filter(|a| &a["principalId"] == principal && &a["directoryScopeId"] == scope)
            .count()
    };
    for sim in [custom_user, unit_user, app_user] {
        let scope = &sim.role_assignments[0]["directoryScopeId"];
        assert_eq!(find(&json!(sim.id()), scope), 1, "{:?}", sim.id());
    }
    assert_eq!(find(&via_group, &json!("/")), 1, "the group, once");
    for i in role_case::VIA_GROUP {
        let id = json!(user(i).id());
        assert!(
            !assignments
                .iter()
                .any(|a| a["principalId"] == id && a["roleDefinitionId"] == definitions[2]["id"]),
            "members of the group are not principals"
        );
    }
    let mut keys: Vec<(Value, Value, Value)> = assignments
        .iter()
        .map(|a| {
            (
                a["principalId"].clone(),
                a["roleDefinitionId"].clone(),
                a["directoryScopeId"].clone(),
            )
        })
        .collect();
    let listed = keys.len();
    keys.sort_by_key(|k| k.0.to_string() + &k.1.to_string() + &k.2.to_string());
    keys.dedup();
    assert_eq!(
        keys.len(),
        listed,
        "each (principal, definition, scope) once"
    );
    let ids: BTreeSet<&str> = assignments
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids.len(), listed, "unique ids");
    assert!(assignments
        .iter()
        .all(|a| a["appScopeId"].is_null() && a.get("startDateTime").is_none()));

    let eligible: Vec<Value> = client
        .walk(ELIGIBILITY, &[])
        .await
        .iter()
        .flat_map(|p| p.values())
        .collect();
    let mine: Vec<&Value> = eligible
        .iter()
        .filter(|e| e["principalId"] == json!(eligible_user.id()))
        .collect();
    assert_eq!(mine.len(), 2);
    for instance in mine {
        assert_eq!(instance["memberType"], "Direct");
        assert_eq!(instance["directoryScopeId"], "/");
        assert!(instance["startDateTime"].is_string() && instance["endDateTime"].is_string());
        assert!(instance["roleEligibilityScheduleId"].is_string());
        assert!(instance["id"].as_str().is_some_and(|i| i.ends_with("-e")));
    }

    // The legacy views see only the legacy roles.
    for i in [
        role_case::CUSTOM_ROLE,
        role_case::UNIT_SCOPED,
        role_case::APP_SCOPED,
        role_case::ELIGIBLE_ONLY,
        role_case::VIA_GROUP[0],
    ] {
        let sim = user(i);
        let id = sim.id().expect("id");
        let page = client
            .get(
                &format!(
                    "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"
                ),
                &[EVENTUAL],
            )
            .await;
        let mut names: Vec<String> = page
            .values()
            .iter()
            .filter_map(|r| r["displayName"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        assert_eq!(names, legacy(sim), "user #{i}");
    }
    let legacy_roles = client.get("/v1.0/directoryRoles", &[]).await.values();
    assert!(legacy_roles.iter().all(|r| {
        let name = r["displayName"].as_str().unwrap_or("");
        !definitions.iter().any(|d| d["displayName"] == name) && name != "Application Administrator"
    }));
    let row = client
        .get(
            &format!(
                "/v1.0/reports/authenticationMethods/userRegistrationDetails/{}",
                eligible_user.id().expect("id")
            ),
            &[],
        )
        .await;
    assert_eq!(row.body["isAdmin"], false, "eligible only");
    emulator.shutdown().await;
}

#[test]
fn about_one_user_in_a_hundred_gets_each_kind_of_grant() {
    let tenant = Tenant::generated(133, 3000);
    let mut counts = [0usize; 5];
    for sim in &tenant.users()[role_case::COUNT..] {
        for grant in &sim.role_assignments {
            let scope = grant["directoryScopeId"].as_str().unwrap_or("/");
            let kind = if grant.get(VIA_GROUP).is_some() {
                4
            } else if grant["eligible"] == true {
                3
            } else if scope.starts_with("/administrativeUnits/") {
                1
            } else if scope != "/" {
                2
            } else {
                0
            };
            counts[kind] += 1;
        }
    }
    let eligible_users = tenant.users()[role_case::COUNT..]
        .iter()
        .filter(|u| u.role_assignments.iter().any(|g| g["eligible"] == true))
        .count();
    assert_eq!(counts[3], eligible_users * 2, "two eligible roles each");
    for (kind, count) in [counts[0], counts[1], counts[2], eligible_users, counts[4]]
        .into_iter()
        .enumerate()
    {
        assert!((8..=70).contains(&count), "kind {kind}: {count}");
    }
    // Eligible-only users hold no active role.
    for sim in tenant.users() {
        if sim.role_assignments.iter().any(|g| g["eligible"] == true) {
            assert!(sim.directory_roles().is_empty());
            assert!(sim.role_assignments.iter().all(|g| g["eligible"] == true));
        }
    }
    // Every role-case index holds its case in any tenant of 50 users, whatever the seed.
    for seed in [1, 2, 3, 4] {
        let small = Tenant::generated(seed, 50);
        let oracle = small.admin_roles();
        for i in [
            role_case::CUSTOM_ROLE,
            role_case::UNIT_SCOPED,
            role_case::APP_SCOPED,
            role_case::VIA_GROUP[0],
            role_case::VIA_GROUP[1],
        ] {
            assert!(!oracle[&id_at(&small, i)].0.is_empty(), "seed {seed}, #{i}");
        }
        let eligible = &oracle[&id_at(&small, role_case::ELIGIBLE_ONLY)];
        assert!(
            eligible.0.is_empty() && eligible.1.len() == 2,
            "seed {seed}"
        );
    }
    // The template ids of every role the generator hands out are in the built-in table.
    for sim in tenant.users() {
        for role in sim.directory_roles() {
            let id = role["roleTemplateId"].as_str().expect("template");
            assert!(BUILT_IN_ROLES.iter().any(|(_, t, _)| *t == id), "{id}");
        }
    }
}

/// A hand-written tenant with one of each kind of grant.
fn fixture() -> Tenant {
    let global = json!({"@odata.type": DIRECTORY_ROLE_TYPE, "id": "r1", "displayName": "Global Administrator", "roleTemplateId": GLOBAL_ADMIN});
    let group = json!({"@odata.type": GROUP_TYPE, "id": "g1", "displayName": "Role - Custom", "isAssignableToRole": true});
    Tenant::from_fixture(&json!({
        "roleDefinitions": [{"id": "c1", "displayName": "Custom One", "isBuiltIn": false, "templateId": "c1"}],
        "users": [
            {"user": {"id": "a", "displayName": "A", "userPrincipalName": "a@x.com"}, "memberOf": [global]},
            {"user": {"id": "b", "displayName": "B", "userPrincipalName": "b@x.com"}, "roleAssignments": [
                {"roleDefinitionId": "c1", "directoryScopeId": "/administrativeUnits/au1"},
                {"roleDefinitionId": SECURITY_READER, "directoryScopeId": "/", "eligible": true}
            ]},
            {"user": {"id": "c", "displayName": "C", "userPrincipalName": "c@x.com"}, "memberOf": [group.clone()],
             "roleAssignments": [{"roleDefinitionId": "c1", "viaGroup": "g1"}]},
            {"user": {"id": "d", "displayName": "D", "userPrincipalName": "d@x.com"}, "memberOf": [group]},
            {"user": {"id": "e", "displayName": "E", "userPrincipalName": "e@x.com"}},
        ]
    }))
    .expect("valid fixture")
}

#[test]
fn the_fixture_round_trips_and_the_oracle_follows_group_membership() {
    let tenant = fixture();
    let again = Tenant::from_fixture(&tenant.to_fixture()).expect("round trip");
    assert_eq!(again.to_fixture(), tenant.to_fixture());
    assert_eq!(tenant.role_definitions()[0]["displayName"], "Custom One");
    let no_roles = Tenant::from_fixture(&json!({"users": [{"user": {"id": "x"}}]})).expect("ok");
    assert!(no_roles.to_fixture().get("roleDefinitions").is_none());
    assert!(no_roles.to_fixture()["users"][0]
        .get("roleAssignments")
        .is_none());
    assert!(Tenant::from_fixture(&json!({"users": [], "roleDefinitions": {}})).is_err());
    let custom = vec!["Custom One".to_owned()];
    let expected: BTreeMap<String, (Vec<String>, Vec<String>)> = [
        ("a", (vec!["Global Administrator".to_owned()], vec![])),
        ("b", (custom.clone(), vec!["Security Reader".to_owned()])),
        ("c", (custom.clone(), vec![])),
        ("d", (custom, vec![])),
        ("e", (vec![], vec![])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(tenant.admin_roles(), expected);
}

#[tokio::test]
async fn the_role_management_lists_take_the_documented_query_options() {
    let tenant = fixture();
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let users: Vec<String> = ["a", "b", "c", "d", "e"].map(str::to_owned).to_vec();
    assert_eq!(roles_over_http(&client, &users).await, tenant.admin_roles());

    let all = client.get(ASSIGNMENTS, &[]).await;
    assert_eq!(all.status, 200, "{}", all.raw);
    let mut triples: Vec<(String, String, String)> = all
        .values()
        .iter()
        .map(|a| {
            (
                a["principalId"].as_str().unwrap_or("").to_owned(),
                a["roleDefinitionId"].as_str().unwrap_or("").to_owned(),
                a["directoryScopeId"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    triples.sort();
    assert_eq!(
        triples,
        [
            ("a".to_owned(), GLOBAL_ADMIN.to_owned(), "/".to_owned()),
            (
                "b".to_owned(),
                "c1".to_owned(),
                "/administrativeUnits/au1".to_owned()
            ),
            ("g1".to_owned(), "c1".to_owned(), "/".to_owned()),
        ]
    );
    assert!(all.next_link().is_none());

    let filtered = client
        .get(
            &format!("{ASSIGNMENTS}?$filter=roleDefinitionId eq 'c1'"),
            &[],
        )
        .await;
    assert_eq!(filtered.values().len(), 2);
    let filtered = client
        .get(
            &format!("{ASSIGNMENTS}?$filter=principalId eq 'b' and roleDefinitionId eq 'c1'"),
            &[],
        )
        .await;
    assert_eq!(filtered.values().len(), 1);
    let expanded = client
        .get(
            &format!(
                "{ASSIGNMENTS}?$expand=principal,roleDefinition&$filter=roleDefinitionId eq 'c1'"
            ),
            &[],
        )
        .await;
    assert_eq!(expanded.status, 200, "{}", expanded.raw);
    let by_principal: HashMap<String, Value> = expanded
        .values()
        .into_iter()
        .map(|a| (a["principalId"].as_str().unwrap_or("").to_owned(), a))
        .collect();
    assert_eq!(
        by_principal["b"]["principal"]["@odata.type"],
        "#microsoft.graph.user"
    );
    assert_eq!(
        by_principal["b"]["principal"]["userPrincipalName"],
        "b@x.com"
    );
    assert_eq!(by_principal["g1"]["principal"]["@odata.type"], GROUP_TYPE);
    assert_eq!(
        by_principal["g1"]["principal"]["displayName"],
        "Role - Custom"
    );
    assert_eq!(
        by_principal["g1"]["roleDefinition"]["displayName"],
        "Custom One"
    );
    let selected = client
        .get(&format!("{ASSIGNMENTS}?$select=principalId"), &[])
        .await;
    assert!(selected
        .values()
        .iter()
        .all(|a| a.as_object().is_some_and(|o| o.len() == 2)));

    for query in [
        "$top=1",
        "$orderby=principalId",
        "$count=true",
        "$filter=principalId in ('a')",
        "$filter=principalId eq 'a' or principalId eq 'b'",
        "$filter=startsWith(principalId,'a')",
        "$expand=directoryScope",
        "$select=principal",
    ] {
        for path in [ASSIGNMENTS, ELIGIBILITY] {
            let answer = client.get(&format!("{path}?{query}"), &[EVENTUAL]).await;
            assert_eq!(answer.status, 400, "{path}?{query}: {}", answer.raw);
        }
    }

    let eligible = client.get(ELIGIBILITY, &[]).await;
    assert_eq!(eligible.values().len(), 1);
    assert_eq!(eligible.values()[0]["principalId"], "b");
    assert_eq!(eligible.values()[0]["roleDefinitionId"], SECURITY_READER);

    // Definitions: built-in and custom, $filter with eq and in; no $select, no $top.
    let definitions = client.get(DEFINITIONS, &[]).await;
    assert!(definitions.values().len() > BUILT_IN_ROLES.len());
    assert!(definitions.next_link().is_none(), "not paged");
    let global = definitions
        .values()
        .into_iter()
        .find(|d| d["id"] == GLOBAL_ADMIN)
        .expect("built in");
    assert_eq!(global["isBuiltIn"], true);
    assert_eq!(global["templateId"], GLOBAL_ADMIN);
    assert_eq!(global["displayName"], "Global Administrator");
    let custom = client
        .get(&format!("{DEFINITIONS}?$filter=isBuiltIn eq false"), &[])
        .await;
    assert_eq!(
        custom.values(),
        vec![
            json!({"id": "c1", "description": null, "displayName": "Custom One", "isBuiltIn": false,
            "isEnabled": true, "resourceScopes": ["/"], "templateId": "c1", "version": null, "rolePermissions": []})
        ]
    );
    let two = client
        .get(
            &format!("{DEFINITIONS}?$filter=id in ('c1', '{GLOBAL_ADMIN}')"),
            &[],
        )
        .await;
    assert_eq!(two.values().len(), 2);
    let named = client
        .get(
            &format!("{DEFINITIONS}?$filter=displayName eq 'security reader'"),
            &[],
        )
        .await;
    assert_eq!(named.values()[0]["id"], SECURITY_READER);
    for query in [
        "$select=id",
        "$top=5",
        "$filter=templateId eq 'c1'",
        "$expand=x",
    ] {
        let answer = client.get(&format!("{DEFINITIONS}?{query}"), &[]).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.raw);
    }
    emulator.shutdown().await;

    // Without P2 eligibility is refused, assignments still readable.
    let emulator = Emulator::start(
        tenant.clone(),
        EmulatorConfig {
            p2: false,
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    let refused = client.get(ELIGIBILITY, &[]).await;
    assert_eq!(
        (refused.status, refused.graph_code()),
        (400, "AadPremiumLicenseRequired")
    );
    assert!(!emulator.config().p2);
    assert_eq!(client.get(ASSIGNMENTS, &[]).await.status, 200);
    emulator.set_p2(true);
    assert_eq!(client.get(ELIGIBILITY, &[]).await.status, 200);
    emulator.shutdown().await;

    let emulator = Emulator::start(tenant, generous()).await.expect("starts");
    let client = Client::new(&emulator).await;
    let selected = client
        .get(&format!("{DEFINITIONS}?$select=displayName"), &[])
        .await;
    assert_eq!(selected.status, 200, "generous accepts $select");
    assert!(selected
        .values()
        .iter()
        .all(|d| d.as_object().is_some_and(|o| o.len() == 2)));
    emulator.shutdown().await;
}

#[tokio::test]
async fn role_changes_show_at_once_and_legacy_roles_without_template_ids_map_by_name() {
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/golden-users.json"
    ))
    .expect("golden fixture");
    let tenant =
        Tenant::from_fixture(&serde_json::from_str(&golden).expect("json")).expect("loads");
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let users: Vec<String> = tenant
        .users()
        .iter()
        .filter_map(|u| u.id().map(str::to_owned))
        .collect();
    let oracle = tenant.admin_roles();
    assert_eq!(roles_over_http(&client, &users).await, oracle);
    assert!(oracle
        .values()
        .any(|(a, _)| a.contains(&"Global Administrator".to_owned())));
    let assignments = client.get(ASSIGNMENTS, &[]).await.values();
    assert!(
        assignments
            .iter()
            .any(|a| a["roleDefinitionId"] == GLOBAL_ADMIN),
        "no roleTemplateId in the fixture: the built-in role of that name"
    );

    // A relation change (eligibility granted) shows at once.
    let target = users[0].clone();
    assert!(emulator.modify_relations(&target, |sim| {
        sim.role_assignments
            .push(json!({"roleDefinitionId": GLOBAL_ADMIN, "eligible": true}));
    }));
    let eligible = client.get(ELIGIBILITY, &[]).await.values();
    assert!(eligible.iter().any(|e| e["principalId"] == target.as_str()));
    emulator.shutdown().await;
}
