//! The generated tenant: determinism and every hard case the connector must survive.

use std::collections::BTreeSet;

use graph_emulator::{
    hard_case, Emulator, EmulatorConfig, SimUser, Tenant, AUTH_METHOD_TYPES, DIRECTORY_ROLE_TYPE,
};
use serde_json::{json, Value};

use crate::common::{start_generous, Client};

const FULL_SELECT: &str = "id,displayName,mail,userPrincipalName,mailNickname,accountEnabled,department,jobTitle,employeeId,employeeType,companyName,officeLocation,createdDateTime,isManagementRestricted,userType,onPremisesSamAccountName,onPremisesSyncEnabled,signInActivity";

/// Every page of a full listing, with the emulator's own address blanked out.
async fn full_listing(emulator: &Emulator) -> Vec<String> {
    let client = Client::new(emulator).await;
    client
        .walk(&format!("/v1.0/users?$select={FULL_SELECT}&$top=37"), &[])
        .await
        .iter()
        .map(|p| p.raw.replace(&emulator.graph_endpoint(), "GRAPH"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_bytes_other_seed_other_tenant() {
    assert_eq!(
        Tenant::generated(77, 300).to_fixture().to_string(),
        Tenant::generated(77, 300).to_fixture().to_string()
    );
    assert_ne!(
        Tenant::generated(77, 300).to_fixture(),
        Tenant::generated(78, 300).to_fixture()
    );
    // generous: nine signInActivity pages each, more than the reports limit lets through.
    let a = start_generous(77, 300).await;
    let b = start_generous(77, 300).await;
    let c = start_generous(78, 300).await;
    let (pages_a, pages_b, pages_c) = (
        full_listing(&a).await,
        full_listing(&b).await,
        full_listing(&c).await,
    );
    assert_eq!(pages_a.len(), 9);
    assert_eq!(
        pages_a, pages_b,
        "byte-identical responses for the same seed and size"
    );
    assert_ne!(pages_a, pages_c);
    for emulator in [a, b, c] {
        emulator.shutdown().await;
    }
}

fn at(tenant: &Tenant, i: usize) -> &SimUser {
    &tenant.users()[i]
}

fn method_kinds(user: &SimUser) -> BTreeSet<&str> {
    user.auth_methods.iter().map(String::as_str).collect()
}

#[test]
fn every_hard_case_is_where_the_docs_say() {
    let tenant = Tenant::generated(2024, hard_case::COUNT);
    assert_eq!(tenant.len(), 20);

    let admin = at(&tenant, hard_case::GLOBAL_ADMIN);
    assert!(admin.member_of.len() > 4, "memberOf needs several pages");
    assert!(admin
        .member_of
        .iter()
        .any(|o| o["@odata.type"] == DIRECTORY_ROLE_TYPE
            && o["displayName"] == "Global Administrator"));
    assert_eq!(
        admin.directory_roles().len(),
        1,
        "direct and inherited role de-duplicated"
    );

    for i in [hard_case::GUEST, hard_case::GUEST_WITHOUT_SIGN_IN] {
        let guest = at(&tenant, i);
        assert_eq!(guest.text("userType"), Some("Guest"));
        assert!(guest
            .text("userPrincipalName")
            .is_some_and(|u| u.contains("#EXT#@contoso.onmicrosoft.com")));
        assert!(guest.text("mail").is_some_and(|m| m.contains('@')));
    }
    assert_eq!(
        at(&tenant, hard_case::GUEST).text("userPrincipalName"),
        Some("jo_fabrikam.com#EXT#@contoso.onmicrosoft.com")
    );
    assert!(at(&tenant, hard_case::GUEST)
        .user
        .get("companyName")
        .is_none());

    let disabled = at(&tenant, hard_case::DISABLED_ON_PREMISES);
    assert_eq!(disabled.user["accountEnabled"], false);
    assert_eq!(disabled.user["onPremisesSyncEnabled"], true);
    assert_eq!(disabled.user["onPremisesSamAccountName"], "awilber");

    let bare = at(&tenant, hard_case::NO_MAIL_NO_CREATED_NO_SIGN_IN);
    assert_eq!(bare.user["mail"], Value::Null);
    assert_eq!(bare.user["createdDateTime"], Value::Null);
    assert!(bare.user.get("signInActivity").is_none());
    assert!(at(&tenant, hard_case::GUEST_WITHOUT_SIGN_IN)
        .user
        .get("signInActivity")
        .is_none());

    let never = at(&tenant, hard_case::NEVER_SIGNED_IN);
    assert_eq!(never.user["createdDateTime"], Value::Null);
    assert_eq!(
        never.user["signInActivity"]["lastSignInDateTime"],
        "0001-01-01T00:00:00Z"
    );
    let null_created = tenant
        .users()
        .iter()
        .filter(|u| u.user["createdDateTime"].is_null())
        .count();
    assert!(null_created >= 2);

    let names: Vec<&str> = hard_case::UNICODE_NAMES
        .iter()
        .filter_map(|&i| at(&tenant, i).text("displayName"))
        .collect();
    assert_eq!(names, ["Zoë Ångström", "李小龍", "Ωmega Δelta"]);

    for pair in [hard_case::SAME_SECOND_A, hard_case::SAME_SECOND_B] {
        let [a, b] = pair.map(|i| at(&tenant, i).text("createdDateTime").map(str::to_owned));
        assert!(a.is_some());
        assert_eq!(a, b, "created in the same second");
    }

    let lonely = at(&tenant, hard_case::NO_MEMBERSHIPS);
    assert!(lonely.member_of.is_empty() && lonely.inherited_roles.is_empty());

    let inherited = at(&tenant, hard_case::INHERITED_ROLE_ONLY);
    assert!(inherited
        .member_of
        .iter()
        .all(|o| o["@odata.type"] != DIRECTORY_ROLE_TYPE));
    assert_eq!(inherited.inherited_roles.len(), 1);
    assert_eq!(inherited.directory_roles().len(), 1);

    let units = at(&tenant, hard_case::ADMIN_UNITS);
    assert_eq!(
        units
            .member_of
            .iter()
            .filter(|o| o["@odata.type"] == "#microsoft.graph.administrativeUnit")
            .count(),
        2
    );

    let every = at(&tenant, hard_case::EVERY_AUTH_METHOD);
    assert_eq!(
        method_kinds(every),
        AUTH_METHOD_TYPES.iter().copied().collect()
    );
    assert!(every
        .auth_methods
        .contains(&"#microsoft.graph.passkeyFutureAuthenticationMethod".to_owned()));
    for i in hard_case::PASSWORD_ONLY {
        assert_eq!(
            at(&tenant, i).auth_methods,
            ["#microsoft.graph.passwordAuthenticationMethod"]
        );
    }

    let department = at(&tenant, hard_case::DEPARTMENT_ONLY);
    assert_eq!(
        (
            department.user["department"].clone(),
            department.user["jobTitle"].clone()
        ),
        (json!("Finance"), Value::Null)
    );
    let title = at(&tenant, hard_case::JOB_TITLE_ONLY);
    assert!(title.user.get("department").is_none() && title.text("jobTitle").is_some());
    let neither = at(&tenant, hard_case::NO_EMPLOYEE_FIELDS);
    for key in [
        "department",
        "jobTitle",
        "employeeId",
        "employeeType",
        "companyName",
    ] {
        assert!(neither.user.get(key).is_none(), "{key} absent");
    }

    assert_eq!(
        at(&tenant, hard_case::MANAGEMENT_RESTRICTED).user["isManagementRestricted"],
        true
    );
    assert_eq!(
        at(&tenant, hard_case::MANAGEMENT_RESTRICTED_NULL).user["isManagementRestricted"],
        Value::Null
    );
    assert_eq!(at(&tenant, 7).user["isManagementRestricted"], false);
    assert_eq!(
        at(&tenant, hard_case::INVALID_MAIL).user["mail"],
        "not-an-address"
    );

    for i in hard_case::DIRECT_ROLE {
        assert!(at(&tenant, i)
            .member_of
            .iter()
            .any(|o| o["@odata.type"] == DIRECTORY_ROLE_TYPE));
    }
    for i in hard_case::NULL_CREATED {
        assert!(at(&tenant, i).user["createdDateTime"].is_null());
    }
    for i in hard_case::NO_SIGN_IN_ACTIVITY {
        assert!(at(&tenant, i).user.get("signInActivity").is_none());
    }
    for i in hard_case::GUESTS {
        assert_eq!(at(&tenant, i).text("userType"), Some("Guest"));
    }
    let large = Tenant::generated(2024, 3000);
    let upns: BTreeSet<String> = large
        .users()
        .iter()
        .filter_map(|u| u.text("userPrincipalName").map(str::to_lowercase))
        .collect();
    assert_eq!(upns.len(), 3000, "userPrincipalNames are unique");

    // Creation times are second-precision UTC and not in index order.
    let created: Vec<&str> = tenant
        .users()
        .iter()
        .filter_map(|u| u.text("createdDateTime"))
        .collect();
    assert!(created
        .iter()
        .all(|c| c.len() == 20 && c.ends_with('Z') && &c[10..11] == "T"));
    assert!(created.windows(2).any(|w| w[0] > w[1]));
}

#[test]
fn a_large_tenant_is_varied_and_consistent() {
    let tenant = Tenant::generated(5, 2000);
    let users = tenant.users();
    let ids: BTreeSet<&str> = users.iter().filter_map(SimUser::id).collect();
    assert_eq!(ids.len(), 2000, "ids are unique");
    let count = |f: &dyn Fn(&SimUser) -> bool| users.iter().filter(|u| f(u)).count();
    assert!(count(&|u| u.text("userType") == Some("Guest")) > 50);
    assert!(count(&|u| u.user["accountEnabled"] == false) > 20);
    assert!(
        count(&|u| u.member_of.len() > 4) > 100,
        "many users need several memberOf pages"
    );
    assert!(count(&|u| !u.inherited_roles.is_empty()) > 5);
    assert!(count(&|u| u.user["onPremisesSyncEnabled"] == true) > 300);
    assert!(count(&|u| u.auth_methods.is_empty()) > 0);
    // An inherited role is always backed by a role-assignable group in memberOf.
    for user in users.iter().filter(|u| !u.inherited_roles.is_empty()) {
        assert!(
            user.member_of
                .iter()
                .any(|o| o["isAssignableToRole"] == true),
            "{:?}",
            user.id()
        );
    }
    let mut sorted: Vec<&str> = users
        .iter()
        .filter_map(|u| u.text("createdDateTime"))
        .collect();
    sorted.sort();
    assert!(sorted.first().is_some_and(|c| c.starts_with("2019")));
    assert!(sorted.last().is_some_and(|c| *c < "2025-07-01"));
}

#[tokio::test]
async fn a_hand_written_fixture_is_served_as_written() {
    let fixture = json!({"users": [
        {"user": {"id": "u1", "displayName": "Only One", "createdDateTime": null, "mail": "one@example.com"},
         "memberOf": [{"@odata.type": "#microsoft.graph.group", "id": "g1", "displayName": "Solo"}],
         "authMethods": ["#microsoft.graph.fido2AuthenticationMethod"]}
    ]});
    let tenant = Tenant::from_fixture(&fixture).expect("valid fixture");
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let users = client
        .get("/v1.0/users?$select=id,createdDateTime,mail,jobTitle", &[])
        .await;
    assert_eq!(
        users.values(),
        vec![json!({"id": "u1", "createdDateTime": null, "mail": "one@example.com"})]
    );
    let groups = client.get("/v1.0/groups", &[]).await;
    assert_eq!(
        groups.values(),
        vec![json!({"id": "g1", "displayName": "Solo"})]
    );
    emulator.shutdown().await;
}
