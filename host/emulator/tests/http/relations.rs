//! Per-user relations (`memberOf`, transitive roles, methods) and the bulk lists.

use graph_emulator::{
    hard_case, Emulator, EmulatorConfig, Endpoint, Tenant, AUTH_METHOD_TYPES, DIRECTORY_ROLE_TYPE,
    GROUP_TYPE, VIA_GROUP,
};
use serde_json::{json, Value};

use crate::common::{id_at, ids, Client};

const EVENTUAL: (&str, &str) = ("ConsistencyLevel", "eventual");

async fn setup(seed: u64, users: usize) -> (Tenant, Emulator, Client) {
    let tenant = Tenant::generated(seed, users);
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    (tenant, emulator, client)
}

async fn setup_generous(seed: u64, users: usize) -> (Tenant, Emulator, Client) {
    let tenant = Tenant::generated(seed, users);
    let emulator = Emulator::start(tenant.clone(), crate::common::generous())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    (tenant, emulator, client)
}

#[tokio::test]
async fn member_of_pages_by_the_configured_size_or_top() {
    let (tenant, emulator, client) = setup(21, 25).await;
    let admin = &tenant.users()[hard_case::GLOBAL_ADMIN];
    let id = admin.id().expect("id");
    let pages = client
        .walk(&format!("/v1.0/users/{id}/memberOf"), &[])
        .await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.values().len()).collect();
    assert_eq!(sizes, [4, 4, 1], "9 memberships at the default page size 4");
    let listed: Vec<Value> = pages.iter().flat_map(|p| p.values()).collect();
    assert_eq!(listed, admin.member_of);
    let types: Vec<&str> = listed
        .iter()
        .filter_map(|o| o["@odata.type"].as_str())
        .collect();
    assert!(
        types.contains(&"#microsoft.graph.directoryRole")
            && types.contains(&"#microsoft.graph.group")
    );

    let small = client
        .walk(&format!("/v1.0/users/{id}/memberOf?$top=2"), &[])
        .await;
    assert_eq!(small.len(), 5);
    assert_eq!(
        ids(&small),
        admin
            .member_of
            .iter()
            .map(|o| o["id"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    );

    let units = id_at(&tenant, hard_case::ADMIN_UNITS);
    let pages = client
        .walk(&format!("/v1.0/users/{units}/memberOf"), &[])
        .await;
    assert_eq!(pages.len(), 2);
    let au = pages
        .iter()
        .flat_map(|p| p.values())
        .filter(|o| o["@odata.type"] == "#microsoft.graph.administrativeUnit")
        .count();
    assert_eq!(au, 2);

    let lonely = id_at(&tenant, hard_case::NO_MEMBERSHIPS);
    let empty = client
        .get(&format!("/v1.0/users/{lonely}/memberOf"), &[])
        .await;
    assert_eq!(empty.status, 200);
    assert!(empty.values().is_empty() && empty.next_link().is_none());

    let missing = client
        .get(
            "/v1.0/users/00000000-dead-4000-8000-000000000000/memberOf",
            &[],
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.graph_code(), "Request_ResourceNotFound");
    assert_eq!(
        missing.body["error"]["message"],
        "Resource '00000000-dead-4000-8000-000000000000' does not exist or one of its queried reference-property objects are not present."
    );
    assert_eq!(emulator.counters()[&Endpoint::MemberOf], 3 + 5 + 2 + 1 + 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn transitive_roles_include_inherited_ones_once() {
    let (tenant, emulator, client) = setup(22, 25).await;
    let path = |i: usize| {
        format!(
            "/v1.0/users/{}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true",
            id_at(&tenant, i)
        )
    };
    let inherited = client
        .get(&path(hard_case::INHERITED_ROLE_ONLY), &[EVENTUAL])
        .await;
    assert_eq!(inherited.status, 200, "{}", inherited.raw);
    assert_eq!(inherited.body["@odata.count"], 1);
    assert_eq!(inherited.values()[0]["displayName"], "User Administrator");
    assert_eq!(
        inherited.values()[0]["roleTemplateId"],
        "fe930be7-5e62-47db-91af-98c3a49a38b1"
    );
    let direct_member_of = &tenant.users()[hard_case::INHERITED_ROLE_ONLY].member_of;
    assert!(direct_member_of
        .iter()
        .all(|o| o["@odata.type"] != "#microsoft.graph.directoryRole"));

    let admin = client
        .get(&path(hard_case::GLOBAL_ADMIN), &[EVENTUAL])
        .await;
    assert_eq!(
        admin.body["@odata.count"], 1,
        "direct and inherited Global Administrator counted once"
    );
    assert_eq!(admin.values()[0]["displayName"], "Global Administrator");

    let none = client
        .get(&path(hard_case::NO_MEMBERSHIPS), &[EVENTUAL])
        .await;
    assert_eq!(none.body["@odata.count"], 0);
    assert!(none.values().is_empty());

    let without_header = client.get(&path(hard_case::GLOBAL_ADMIN), &[]).await;
    assert_eq!(
        (without_header.status, without_header.graph_code()),
        (400, "Request_UnsupportedQuery")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn authentication_methods_list_every_type_across_pages() {
    let (tenant, emulator, client) = setup(23, 25).await;
    let id = id_at(&tenant, hard_case::EVERY_AUTH_METHOD);
    let pages = client
        .walk(&format!("/v1.0/users/{id}/authentication/methods"), &[])
        .await;
    assert_eq!(pages.len(), 3, "11 methods in pages of 4");
    let methods: Vec<Value> = pages.iter().flat_map(|p| p.values()).collect();
    let types: Vec<&str> = methods
        .iter()
        .filter_map(|m| m["@odata.type"].as_str())
        .collect();
    assert_eq!(types, AUTH_METHOD_TYPES);
    assert_eq!(methods[0]["id"], "28c10230-6103-485e-b985-444c60001490");
    let again = client
        .walk(&format!("/v1.0/users/{id}/authentication/methods"), &[])
        .await;
    assert_eq!(
        methods,
        again.iter().flat_map(|p| p.values()).collect::<Vec<_>>(),
        "stable ids"
    );

    let password_only = id_at(&tenant, hard_case::PASSWORD_ONLY[0]);
    let only = client
        .get(
            &format!("/v1.0/users/{password_only}/authentication/methods"),
            &[],
        )
        .await;
    assert_eq!(
        only.values(),
        vec![
            json!({"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "28c10230-6103-485e-b985-444c60001490"})
        ]
    );
    assert_eq!(emulator.counters()[&Endpoint::AuthMethods], 7);
    emulator.shutdown().await;
}

#[tokio::test]
async fn groups_directory_roles_and_role_members_agree_with_memberships() {
    let (tenant, emulator, client) = setup(24, 200).await;
    let groups = client
        .walk("/v1.0/groups?$top=20&$select=id,displayName", &[])
        .await;
    let names: Vec<String> = groups
        .iter()
        .flat_map(|p| p.values())
        .filter_map(|g| g["displayName"].as_str().map(str::to_owned))
        .collect();
    assert!(names.contains(&"All Company".to_owned()));
    assert!(names.contains(&"Role - User Administrators".to_owned()));
    let mut distinct = names.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len(), "each group once");

    let roles = client.get("/v1.0/directoryRoles", &[]).await;
    let roles = roles.values();
    let user_admin = roles
        .iter()
        .find(|r| r["displayName"] == "User Administrator")
        .expect("User Administrator is held");
    assert_eq!(
        user_admin["roleTemplateId"],
        "fe930be7-5e62-47db-91af-98c3a49a38b1"
    );
    let global = roles
        .iter()
        .find(|r| r["displayName"] == "Global Administrator")
        .expect("held");
    assert_eq!(
        global["roleTemplateId"],
        "62e90394-69f5-4237-9190-012177145e10"
    );

    let role_id = user_admin["id"].as_str().expect("id");
    let members = client
        .get(&format!("/v1.0/directoryRoles/{role_id}/members"), &[])
        .await;
    assert!(members.next_link().is_none());
    let member_ids = ids(std::slice::from_ref(&members));
    let inherited = id_at(&tenant, hard_case::INHERITED_ROLE_ONLY);
    assert!(
        !member_ids.contains(&inherited),
        "a holder through a group is a member of the group, not of the role"
    );
    // Direct members only: users holding the role in memberOf, and each granting group once.
    let mut expected: Vec<String> = Vec::new();
    for user in tenant.users() {
        let direct = user
            .member_of
            .iter()
            .any(|o| o["@odata.type"] == DIRECTORY_ROLE_TYPE && o["id"] == role_id);
        if direct {
            expected.push(user.id().expect("id").to_owned());
        }
        for role in user.inherited_roles.iter().filter(|r| r["id"] == role_id) {
            let group = role[VIA_GROUP]
                .as_str()
                .expect("generated roles name their group");
            if !expected.iter().any(|e| e == group) {
                expected.push(group.to_owned());
            }
        }
    }
    assert_eq!(member_ids, expected);
    let group = members
        .values()
        .into_iter()
        .find(|m| m["@odata.type"] == GROUP_TYPE)
        .expect("the role-assignable group is a member");
    assert_eq!(group["displayName"], "Role - User Administrators");
    assert_eq!(
        group.as_object().map(|o| o.len()),
        Some(3),
        "@odata.type, id, displayName"
    );
    assert!(members
        .values()
        .iter()
        .filter(|m| m["@odata.type"] == "#microsoft.graph.user")
        .all(|m| m["userPrincipalName"].is_string()));

    let unknown = client
        .get("/v1.0/directoryRoles/not-a-role/members", &[])
        .await;
    assert_eq!(unknown.status, 404);
    emulator.shutdown().await;
}

/// `generous`: `$top` on the report (refused by Graph, see `reports.rs`).
#[tokio::test]
async fn registration_details_report_needs_premium_and_reflects_methods() {
    let (tenant, emulator, client) = setup_generous(25, 30).await;
    let path = "/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=10";
    let pages = client.walk(path, &[]).await;
    assert_eq!(pages.len(), 3);
    let rows: Vec<Value> = pages.iter().flat_map(|p| p.values()).collect();
    assert_eq!(rows.len(), 30);
    let row = |i: usize| {
        rows.iter()
            .find(|r| r["id"] == id_at(&tenant, i).as_str())
            .cloned()
            .expect("row")
    };
    assert_eq!(row(hard_case::EVERY_AUTH_METHOD)["isMfaRegistered"], true);
    assert_eq!(row(hard_case::NO_MEMBERSHIPS)["isMfaRegistered"], false);
    assert_eq!(
        row(hard_case::NO_MEMBERSHIPS)["methodsRegistered"],
        json!([])
    );
    assert_eq!(row(hard_case::INHERITED_ROLE_ONLY)["isAdmin"], true);
    assert_eq!(row(hard_case::NO_MEMBERSHIPS)["isAdmin"], false);
    assert_eq!(row(hard_case::GUEST)["userType"], "guest");
    emulator.set_premium(false);
    let refused = client.get(path, &[]).await;
    assert_eq!(
        (refused.status, refused.graph_code()),
        (403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant")
    );
    assert_eq!(emulator.counters()[&Endpoint::RegistrationDetails], 4);
    emulator.shutdown().await;
}

/// `generous`: `$select` on one user's row and more report requests than the reports limit
/// lets through in 10 s (see `reports.rs` for the realistic rules).
#[tokio::test]
async fn registration_details_of_one_user_match_the_list_row() {
    let (tenant, emulator, client) = setup_generous(26, 30).await;
    let list = client
        .walk(
            "/v1.0/reports/authenticationMethods/userRegistrationDetails",
            &[],
        )
        .await;
    let rows: Vec<Value> = list.iter().flat_map(|p| p.values()).collect();
    let base = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
    for i in [
        hard_case::EVERY_AUTH_METHOD,
        hard_case::GUEST,
        hard_case::INHERITED_ROLE_ONLY,
    ] {
        let id = id_at(&tenant, i);
        let one = client.get(&format!("{base}/{id}"), &[]).await;
        assert_eq!(one.status, 200, "{}", one.raw);
        let mut body = one.body.clone();
        let context = body
            .as_object_mut()
            .and_then(|o| o.remove("@odata.context"))
            .expect("@odata.context");
        assert!(context.as_str().is_some_and(
            |c| c.ends_with("#reports/authenticationMethods/userRegistrationDetails/$entity")
        ));
        let row = rows
            .iter()
            .find(|r| r["id"] == id.as_str())
            .expect("listed");
        assert_eq!(&body, row, "same shape as in the list");
    }
    let id = id_at(&tenant, hard_case::EVERY_AUTH_METHOD);
    let selected = client
        .get(
            &format!("{base}/{id}?$select=isMfaRegistered,methodsRegistered"),
            &[],
        )
        .await;
    let keys: Vec<&str> = selected
        .body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys.len(),
        4,
        "id, the two selected, @odata.context: {keys:?}"
    );
    assert_eq!(selected.body["isMfaRegistered"], true);
    assert!(selected.body.get("userPrincipalName").is_none());

    let missing = client
        .get(&format!("{base}/00000000-dead-4000-8000-000000000000"), &[])
        .await;
    assert_eq!(
        (missing.status, missing.graph_code()),
        (404, "Request_ResourceNotFound")
    );

    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/reports/authenticationMethods/userRegistrationDetails/{id}?$select=isAdmin")},
        {"id": "2", "method": "GET", "url": "/reports/authenticationMethods/userRegistrationDetails/nobody"},
    ]});
    let answer = client.post_json("/v1.0/$batch", &batch).await;
    let by_id = |id: &str| answer.batch_item(id);
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["id"], id.as_str());
    assert_eq!(by_id("1")["body"]["isAdmin"], false);
    assert_eq!(by_id("2")["status"], 404);

    emulator.set_premium(false);
    let refused = client.get(&format!("{base}/{id}"), &[]).await;
    assert_eq!(
        (refused.status, refused.graph_code()),
        (403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant")
    );
    let refused_unknown = client.get(&format!("{base}/nobody"), &[]).await;
    assert_eq!(
        refused_unknown.status, 403,
        "the licence is checked first, as for the list"
    );
    assert_eq!(
        emulator.counters()[&Endpoint::RegistrationDetails],
        (list.len() + 3 + 1 + 1 + 2 + 2) as u64
    );
    emulator.shutdown().await;
}
