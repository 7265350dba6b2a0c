//! Role-assignable groups as Graph serves them, group members, and relation-only changes.

use graph_emulator::{
    hard_case, Emulator, EmulatorConfig, Endpoint, Tenant, DIRECTORY_ROLE_TYPE, GROUP_TYPE,
    VIA_GROUP,
};
use serde_json::{json, Value};

use crate::common::{id_at, ids, Client};

const EVENTUAL: (&str, &str) = ("ConsistencyLevel", "eventual");

async fn setup(tenant: &Tenant) -> (Emulator, Client) {
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    (emulator, client)
}

/// The group (in the user's memberOf) called `name`.
fn group_named(tenant: &Tenant, index: usize, name: &str) -> Value {
    tenant.users()[index]
        .member_of
        .iter()
        .find(|o| o["displayName"] == name)
        .cloned()
        .expect("the user is in the group")
}

fn role_id(client_roles: &[Value], name: &str) -> String {
    client_roles
        .iter()
        .find(|r| r["displayName"] == name)
        .and_then(|r| r["id"].as_str())
        .expect("role held")
        .to_owned()
}

#[test]
fn generated_inherited_roles_name_a_role_assignable_group_in_member_of() {
    let tenant = Tenant::generated(61, 1500);
    let mut seen = 0;
    for user in tenant.users() {
        for role in &user.inherited_roles {
            seen += 1;
            let group = role[VIA_GROUP].as_str().expect("viaGroup set");
            let granted = user
                .member_of
                .iter()
                .find(|o| o["id"] == group)
                .expect("the granting group is in memberOf");
            assert_eq!(granted["@odata.type"], GROUP_TYPE);
            assert_eq!(granted["isAssignableToRole"], true);
        }
    }
    assert!(seen > 20, "{seen}");
    let omega = &tenant.users()[hard_case::INHERITED_ROLE_ONLY];
    assert_eq!(
        omega.inherited_roles[0][VIA_GROUP],
        group_named(
            &tenant,
            hard_case::INHERITED_ROLE_ONLY,
            "Role - User Administrators"
        )["id"]
    );
    let adele = &tenant.users()[hard_case::GLOBAL_ADMIN];
    assert_eq!(
        adele.inherited_roles[0][VIA_GROUP],
        group_named(
            &tenant,
            hard_case::GLOBAL_ADMIN,
            "Role - Global Administrators"
        )["id"]
    );
}

#[tokio::test]
async fn role_members_are_direct_users_and_granting_groups_and_via_group_is_never_served() {
    // The hard cases only: no random user holds a role.
    let tenant = Tenant::generated(62, hard_case::COUNT);
    let (emulator, client) = setup(&tenant).await;
    let roles = client.get("/v1.0/directoryRoles", &[]).await.values();
    assert!(!client
        .get("/v1.0/directoryRoles", &[])
        .await
        .raw
        .contains(VIA_GROUP));

    // Held only through a group: the group is the member, the user is not.
    let user_admin = role_id(&roles, "User Administrator");
    let omega = id_at(&tenant, hard_case::INHERITED_ROLE_ONLY);
    let group = group_named(
        &tenant,
        hard_case::INHERITED_ROLE_ONLY,
        "Role - User Administrators",
    );
    let members = client
        .get(&format!("/v1.0/directoryRoles/{user_admin}/members"), &[])
        .await;
    assert_eq!(members.status, 200);
    assert!(members.next_link().is_none(), "not paged");
    assert!(!ids(std::slice::from_ref(&members)).contains(&omega));
    assert_eq!(
        members.values(),
        vec![
            json!({"@odata.type": GROUP_TYPE, "id": group["id"], "displayName": "Role - User Administrators"})
        ]
    );

    // Direct and through a group: the user and the group, each once.
    let global = role_id(&roles, "Global Administrator");
    let adele = id_at(&tenant, hard_case::GLOBAL_ADMIN);
    let members = client
        .get(
            &format!("/v1.0/directoryRoles/{global}/members?$select=id,displayName"),
            &[],
        )
        .await;
    let listed = members.values();
    let granting = group_named(
        &tenant,
        hard_case::GLOBAL_ADMIN,
        "Role - Global Administrators",
    );
    assert_eq!(
        listed,
        vec![
            json!({"@odata.type": "#microsoft.graph.user", "id": adele, "displayName": "Adele Vance"}),
            json!({"@odata.type": GROUP_TYPE, "id": granting["id"], "displayName": "Role - Global Administrators"}),
        ],
        "$select honoured, userPrincipalName dropped"
    );

    // The user's view: transitive roles (direct + inherited, once) and memberOf, no viaGroup.
    for index in [hard_case::GLOBAL_ADMIN, hard_case::INHERITED_ROLE_ONLY] {
        let id = id_at(&tenant, index);
        let roles = client
            .get(
                &format!(
                    "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"
                ),
                &[EVENTUAL],
            )
            .await;
        assert_eq!(roles.body["@odata.count"], 1);
        assert!(!roles.raw.contains(VIA_GROUP), "{}", roles.raw);
        assert_eq!(roles.values()[0]["@odata.type"], DIRECTORY_ROLE_TYPE);
        let selected = client
            .get(
                &format!(
                    "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole?$select=viaGroup,displayName&$count=true"
                ),
                &[EVENTUAL],
            )
            .await;
        assert!(!selected.raw.contains(VIA_GROUP), "{}", selected.raw);
        assert!(selected.values()[0]["displayName"].is_string());
        let member_of = client
            .walk(&format!("/v1.0/users/{id}/memberOf?$top=999"), &[])
            .await;
        assert!(member_of.iter().all(|p| !p.raw.contains(VIA_GROUP)));
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_hand_written_inherited_role_without_via_group_keeps_the_user_a_member() {
    let role = |id: &str, name: &str| json!({"@odata.type": DIRECTORY_ROLE_TYPE, "id": id, "displayName": name});
    let group = json!({"@odata.type": GROUP_TYPE, "id": "g1", "displayName": "Role - Readers", "isAssignableToRole": true});
    let mut via = role("r1", "Security Reader");
    via[VIA_GROUP] = json!("g1");
    let tenant = Tenant::from_fixture(&json!({"users": [
        {"user": {"id": "a", "displayName": "A", "userPrincipalName": "a@x.com"},
         "inheritedRoles": [role("r1", "Security Reader")]},
        {"user": {"id": "b", "displayName": "B", "userPrincipalName": "b@x.com"},
         "memberOf": [group.clone()], "inheritedRoles": [via.clone()]},
        {"user": {"id": "c", "displayName": "C", "userPrincipalName": "c@x.com"},
         "memberOf": [group, role("r1", "Security Reader")], "inheritedRoles": [via]},
    ]}))
    .expect("viaGroup is optional");
    let (emulator, client) = setup(&tenant).await;
    let members = client.get("/v1.0/directoryRoles/r1/members", &[]).await;
    assert_eq!(ids(std::slice::from_ref(&members)), ["a", "g1", "c"]);
    assert_eq!(members.values()[1]["displayName"], "Role - Readers");
    let report = client
        .get(
            "/v1.0/reports/authenticationMethods/userRegistrationDetails",
            &[],
        )
        .await;
    assert_eq!(report.status, 200, "{}", report.raw);
    assert_eq!(report.values().len(), 3);
    assert!(report.values().iter().all(|r| r["isAdmin"] == true));
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_golden_fixture_still_loads_and_serves_its_inherited_roles() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/golden-users.json"
    );
    let text = std::fs::read_to_string(path).expect("golden fixture readable");
    let fixture: Value = serde_json::from_str(&text).expect("golden fixture is JSON");
    let tenant = Tenant::from_fixture(&fixture).expect("golden fixture loads");
    let holders: Vec<(String, String)> = tenant
        .users()
        .iter()
        .flat_map(|u| {
            u.inherited_roles
                .iter()
                .filter_map(move |r| Some((r["id"].as_str()?.to_owned(), u.id()?.to_owned())))
        })
        .collect();
    assert!(!holders.is_empty(), "the fixture has inherited roles");
    let (emulator, client) = setup(&tenant).await;
    for (role, user) in holders {
        let members = client
            .get(&format!("/v1.0/directoryRoles/{role}/members"), &[])
            .await;
        assert_eq!(members.status, 200);
        let via = tenant
            .user(&user)
            .and_then(|u| u.inherited_roles.iter().find(|r| r["id"] == role.as_str()))
            .and_then(|r| r[VIA_GROUP].as_str().map(str::to_owned));
        let expected = via.unwrap_or(user);
        assert!(
            ids(std::slice::from_ref(&members)).contains(&expected),
            "{role}: {}",
            members.raw
        );
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn group_members_page_like_relation_lists_and_work_in_batch() {
    let tenant = Tenant::generated(63, 120);
    let (emulator, client) = setup(&tenant).await;
    let all_company = group_named(&tenant, 0, "All Company");
    let group_id = all_company["id"].as_str().expect("id");
    let expected: Vec<String> = tenant
        .users()
        .iter()
        .filter(|u| u.member_of.iter().any(|o| o["id"] == group_id))
        .filter_map(|u| u.id().map(str::to_owned))
        .collect();
    assert!(expected.len() > 20, "{}", expected.len());

    let pages = client
        .walk(&format!("/v1.0/groups/{group_id}/members?$top=7"), &[])
        .await;
    assert_eq!(pages.len(), expected.len().div_ceil(7));
    assert!(pages[0].values().len() == 7);
    assert_eq!(ids(&pages), expected);
    let first = &pages[0].values()[0];
    let user = tenant.user(&expected[0]).expect("user");
    assert_eq!(
        *first,
        json!({
            "@odata.type": "#microsoft.graph.user",
            "id": expected[0],
            "displayName": user.user["displayName"],
            "userPrincipalName": user.user["userPrincipalName"],
        })
    );
    let link = pages[0].next_link().expect("more");
    assert!(link.starts_with(&format!(
        "{}/v1.0/groups/{group_id}/members?$top=7&$skiptoken=",
        emulator.graph_endpoint()
    )));

    let transitive = client
        .walk(
            &format!("/v1.0/groups/{group_id}/transitiveMembers/microsoft.graph.user?$select=displayName&$count=true"),
            &[EVENTUAL],
        )
        .await;
    assert_eq!(transitive.len(), 1, "default page size 100");
    let rows: Vec<Value> = transitive.iter().flat_map(|p| p.values()).collect();
    assert_eq!(ids(&transitive), expected);
    assert!(
        rows.iter()
            .all(|r| r.as_object().map(|o| o.len()) == Some(3)
                && r.get("userPrincipalName").is_none())
    );

    for (query, code) in [
        ("$top=0", "Request_UnsupportedQuery"),
        ("$top=1000", "Request_UnsupportedQuery"),
        ("$skiptoken=forged", "BadRequest"),
        ("$expand=x", "BadRequest"),
    ] {
        let answer = client
            .get(&format!("/v1.0/groups/{group_id}/members?{query}"), &[])
            .await;
        assert_eq!((answer.status, answer.graph_code()), (400, code), "{query}");
    }
    let unknown = client.get("/v1.0/groups/no-such-group/members", &[]).await;
    assert_eq!(
        (unknown.status, unknown.graph_code()),
        (404, "Request_ResourceNotFound")
    );

    let batch = json!({"requests": [
        {"id": "m", "method": "GET", "url": format!("/groups/{group_id}/members?$top=5")},
        {"id": "t", "method": "GET", "url": format!("/groups/{group_id}/transitiveMembers/microsoft.graph.user?$count=true"),
         "headers": {"ConsistencyLevel": "eventual"}},
        {"id": "x", "method": "GET", "url": "/groups/no-such-group/members"},
    ]});
    let answer = client.post_json("/v1.0/$batch", &batch).await;
    let by_id = |id: &str| answer.batch_item(id);
    assert_eq!(by_id("m")["status"], 200);
    assert_eq!(
        by_id("m")["body"]["value"].as_array().map(Vec::len),
        Some(5)
    );
    assert!(by_id("m")["body"]["@odata.nextLink"].is_string());
    assert_eq!(
        by_id("t")["body"]["value"].as_array().map(Vec::len),
        Some(expected.len())
    );
    assert_eq!(by_id("x")["status"], 404);
    assert_eq!(
        emulator.counters()[&Endpoint::GroupMembers],
        (pages.len() + 1 + 4 + 1 + 3) as u64
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn relation_changes_are_not_delta_changes_but_show_everywhere_else() {
    let tenant = Tenant::generated(64, 25);
    let (emulator, client) = setup(&tenant).await;
    let lonely = id_at(&tenant, hard_case::NO_MEMBERSHIPS);
    let roles = client.get("/v1.0/directoryRoles", &[]).await.values();
    let global = role_id(&roles, "Global Administrator");
    let global_group = group_named(
        &tenant,
        hard_case::GLOBAL_ADMIN,
        "Role - Global Administrators",
    );
    let group_id = global_group["id"].as_str().expect("id").to_owned();

    // A delta round to its end.
    let mut url = "/v1.0/users/delta?$select=id,displayName".to_owned();
    let delta_link = loop {
        let page = client.get(&url, &[]).await;
        match page.next_link() {
            Some(next) => url = next,
            None => {
                break page.body["@odata.deltaLink"]
                    .as_str()
                    .expect("delta link")
                    .to_owned()
            }
        }
    };

    let before = emulator.users()[hard_case::NO_MEMBERSHIPS].user.clone();
    let mut global_role = tenant.users()[hard_case::GLOBAL_ADMIN].inherited_roles[0].clone();
    global_role[VIA_GROUP] = json!(group_id);
    assert!(emulator.modify_relations(&lonely, |sim| {
        sim.member_of.push(global_group.clone());
        sim.inherited_roles.push(global_role.clone());
        sim.auth_methods
            .push("#microsoft.graph.fido2AuthenticationMethod".to_owned());
        // Touching the user object is undone.
        sim.user["displayName"] = json!("Renamed");
        sim.user["id"] = json!("another-id");
    }));
    assert!(!emulator.modify_relations("no-such-user", |_| {}));
    assert_eq!(emulator.users()[hard_case::NO_MEMBERSHIPS].user, before);

    let changes = client.get(&delta_link, &[]).await;
    assert_eq!(changes.status, 200);
    assert!(
        changes.values().is_empty(),
        "not a users/delta change: {}",
        changes.raw
    );

    // Derived lists see it at once.
    let group_members = client
        .walk(&format!("/v1.0/groups/{group_id}/members"), &[])
        .await;
    assert!(ids(&group_members).contains(&lonely));
    let role_members = client
        .get(&format!("/v1.0/directoryRoles/{global}/members"), &[])
        .await;
    assert!(
        !ids(std::slice::from_ref(&role_members)).contains(&lonely),
        "through the group"
    );
    let transitive = client
        .get(
            &format!(
                "/v1.0/users/{lonely}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"
            ),
            &[EVENTUAL],
        )
        .await;
    assert_eq!(transitive.values().len(), 1);
    let row = client
        .get(
            &format!("/v1.0/reports/authenticationMethods/userRegistrationDetails/{lonely}"),
            &[],
        )
        .await;
    assert_eq!(row.body["isAdmin"], true);
    assert_eq!(row.body["isMfaRegistered"], true);
    assert_eq!(row.body["methodsRegistered"], json!(["passKeyDeviceBound"]));
    let methods = client
        .get(&format!("/v1.0/users/{lonely}/authentication/methods"), &[])
        .await;
    assert_eq!(methods.values().len(), 2);

    // Taking the role away shows too; the user is its direct member while held directly.
    let direct_role = tenant.users()[hard_case::GLOBAL_ADMIN].member_of[0].clone();
    assert!(emulator.modify_relations(&lonely, |sim| {
        sim.inherited_roles.clear();
        sim.member_of = vec![direct_role];
    }));
    let role_members = client
        .get(&format!("/v1.0/directoryRoles/{global}/members"), &[])
        .await;
    assert!(ids(std::slice::from_ref(&role_members)).contains(&lonely));
    let group_members = client
        .walk(&format!("/v1.0/groups/{group_id}/members"), &[])
        .await;
    assert!(!ids(&group_members).contains(&lonely));

    // modify_user still records a change.
    assert!(emulator.modify_user(&lonely, |sim| sim.auth_methods.clear()));
    let changes = client.get(&delta_link, &[]).await;
    assert_eq!(ids(std::slice::from_ref(&changes)), [lonely]);
    emulator.shutdown().await;
}
