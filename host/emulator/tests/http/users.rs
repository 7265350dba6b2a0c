//! `GET /v1.0/users`: paging, `$select`, advanced queries, licence and page-size rules.

use graph_emulator::{hard_case, Emulator, EmulatorConfig, Endpoint, Tenant};
use serde_json::{json, Value};

use crate::common::{id_at, ids, start, Client};

const EVENTUAL: (&str, &str) = ("ConsistencyLevel", "eventual");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_top_7_walks_every_user_exactly_once_in_insertion_order() {
    let tenant = Tenant::generated(11, 53);
    let expected: Vec<String> = (0..53).map(|i| id_at(&tenant, i)).collect();
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let pages = client
        .walk("/v1.0/users?$top=7&$select=id,displayName", &[])
        .await;
    assert_eq!(pages.len(), 8, "53 users in pages of 7");
    assert!(pages[..7].iter().all(|p| p.values().len() == 7));
    assert_eq!(pages[7].values().len(), 4);
    assert_eq!(ids(&pages), expected);
    let link = pages[0].next_link().expect("first page links on");
    assert!(link.starts_with(&format!("{}/v1.0/users?", emulator.graph_endpoint())));
    assert!(
        link.contains("$select=id,displayName")
            && link.contains("$top=7")
            && link.contains("$skiptoken=")
    );
    assert!(pages[0].body["@odata.context"]
        .as_str()
        .is_some_and(|c| c.contains("$metadata#users")));
    assert!(pages[0]
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert_eq!(emulator.counters()[&Endpoint::Users], 8);
    emulator.shutdown().await;
}

#[tokio::test]
async fn default_page_is_100_and_default_properties_are_graphs() {
    let emulator = start(3, 130).await;
    let client = Client::new(&emulator).await;
    let first = client.get("/v1.0/users", &[]).await;
    assert_eq!(first.values().len(), 100);
    let mut keys: Vec<String> = first.values()[0]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    let mut expected = vec![
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    ];
    expected.sort();
    assert_eq!(keys, expected);
    let second = client.get(&first.next_link().expect("more"), &[]).await;
    assert_eq!(second.values().len(), 30);
    assert!(second.next_link().is_none());
    emulator.shutdown().await;
}

#[tokio::test]
async fn select_returns_exactly_the_selected_properties_with_nulls() {
    let tenant = Tenant::generated(5, 30);
    let no_created = id_at(&tenant, hard_case::NO_MAIL_NO_CREATED_NO_SIGN_IN);
    let job_only = id_at(&tenant, hard_case::JOB_TITLE_ONLY);
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let page = client
        .get(
            "/v1.0/users?$select=DisplayName,createdDateTime,MAIL,department&$top=30",
            &[],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.raw);
    let users = page.values();
    let find = |id: &str| {
        users
            .iter()
            .find(|u| u["id"] == id)
            .cloned()
            .expect("user listed")
    };
    let user = find(&no_created);
    assert_eq!(
        user,
        json!({"id": no_created, "displayName": "Diego Siciliani", "createdDateTime": null, "mail": null, "department": null})
    );
    let user = find(&job_only);
    assert!(
        user.get("department").is_none(),
        "absent property stays absent: {user}"
    );
    assert_eq!(
        user.as_object().map(|o| o.len()),
        Some(4),
        "id, displayName, createdDateTime, mail"
    );
    for user in &users {
        let object = user.as_object().expect("object");
        assert!(object.keys().all(|k| [
            "id",
            "displayName",
            "createdDateTime",
            "mail",
            "department"
        ]
        .contains(&k.as_str())));
        assert!(
            object.contains_key("createdDateTime"),
            "every user has createdDateTime (maybe null)"
        );
    }
    assert!(page.body["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("#users(displayName,createdDateTime,mail,department)")));
    emulator.shutdown().await;
}

fn created(user: &Value) -> Option<String> {
    user["createdDateTime"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_orderby_and_count_follow_the_advanced_query_rules() {
    let tenant = Tenant::generated(9, 120);
    let since = "2023-05-17T08:12:44Z";
    let mut expected: Vec<(String, String)> = tenant
        .users()
        .iter()
        .filter_map(|u| {
            let c = u.text("createdDateTime")?.to_owned();
            (c.as_str() >= since).then(|| (c, u.id().unwrap_or_default().to_owned()))
        })
        .collect();
    expected.sort();
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let query = format!("/v1.0/users?$filter=createdDateTime ge {since}&$orderby=createdDateTime&$count=true&$top=9&$select=id,createdDateTime");

    let pages = client.walk(&query, &[EVENTUAL]).await;
    assert!(pages.len() > 2, "several pages");
    assert_eq!(pages[0].body["@odata.count"], json!(expected.len()));
    assert!(
        pages[1..]
            .iter()
            .all(|p| p.body.get("@odata.count").is_none()),
        "count on the first page only"
    );
    let listed: Vec<Value> = pages.iter().flat_map(|p| p.values()).collect();
    let dates: Vec<String> = listed.iter().filter_map(created).collect();
    assert_eq!(
        dates.len(),
        listed.len(),
        "null createdDateTime never matches a filter"
    );
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "ascending order");
    assert_eq!(
        dates,
        expected.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>()
    );
    // Both users created in the boundary second are in (ge), and out with gt.
    let [a, b] = hard_case::SAME_SECOND_A;
    let listed_ids = ids(&pages);
    assert!(listed_ids.contains(&id_at(&tenant, a)) && listed_ids.contains(&id_at(&tenant, b)));
    let strict = client
        .walk(&query.replace(" ge ", " gt "), &[EVENTUAL])
        .await;
    let strict_ids = ids(&strict);
    assert!(!strict_ids.contains(&id_at(&tenant, a)) && !strict_ids.contains(&id_at(&tenant, b)));
    assert_eq!(strict_ids.len(), expected.len() - 2);

    // Without the header: refused, on the first page and on a followed next link.
    let refused = client.get(&query, &[]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.graph_code(), "Request_UnsupportedQuery");
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("ConsistencyLevel"));
    let second_page = pages[0].next_link().expect("more pages");
    assert_eq!(client.get(&second_page, &[]).await.status, 400);
    // $filter + $orderby without $count: refused even with the header.
    let no_count = client
        .get(&query.replace("&$count=true", ""), &[EVENTUAL])
        .await;
    assert_eq!(
        (no_count.status, no_count.graph_code()),
        (400, "Request_UnsupportedQuery")
    );
    // $count alone needs the header too.
    let count_only = client.get("/v1.0/users?$count=true", &[]).await;
    assert_eq!(
        (count_only.status, count_only.graph_code()),
        (400, "Request_UnsupportedQuery")
    );
    let count_ok = client
        .get("/v1.0/users?$count=true&$top=5", &[EVENTUAL])
        .await;
    assert_eq!(count_ok.body["@odata.count"], 120);
    // A filter alone is a simple query: insertion order, no header needed.
    let filtered = client
        .walk(
            &format!("/v1.0/users?$filter=createdDateTime ge {since}&$top=50"),
            &[],
        )
        .await;
    let mut filtered_ids = ids(&filtered);
    let mut expected_ids: Vec<String> = expected.iter().map(|(_, id)| id.clone()).collect();
    let insertion: Vec<String> = tenant
        .users()
        .iter()
        .filter_map(|u| u.id().map(str::to_owned))
        .filter(|id| expected_ids.contains(id))
        .collect();
    assert_eq!(filtered_ids, insertion);
    filtered_ids.sort();
    expected_ids.sort();
    assert_eq!(filtered_ids, expected_ids);
    emulator.shutdown().await;
}

#[tokio::test]
async fn orderby_alone_sorts_every_user_nulls_first_and_desc_reverses() {
    let tenant = Tenant::generated(4, 40);
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let ascending = client
        .walk(
            "/v1.0/users?$orderby=createdDateTime&$top=6&$select=createdDateTime",
            &[],
        )
        .await;
    let all: Vec<Value> = ascending.iter().flat_map(|p| p.values()).collect();
    assert_eq!(all.len(), 40);
    let nulls = all
        .iter()
        .take_while(|u| u["createdDateTime"].is_null())
        .count();
    assert!(nulls >= 2, "the null createdDateTime users come first");
    let dates: Vec<String> = all.iter().filter_map(created).collect();
    assert_eq!(dates.len(), 40 - nulls);
    assert!(dates.windows(2).all(|w| w[0] <= w[1]));
    let descending = client
        .walk(
            "/v1.0/users?$orderby=createdDateTime desc&$top=6&$select=createdDateTime",
            &[],
        )
        .await;
    let desc_ids = ids(&descending);
    let mut asc_ids = ids(&ascending);
    asc_ids.reverse();
    assert_eq!(desc_ids, asc_ids);
    let unsupported = client.get("/v1.0/users?$orderby=displayName", &[]).await;
    assert_eq!(
        (unsupported.status, unsupported.graph_code()),
        (400, "Request_UnsupportedQuery")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn sign_in_activity_needs_premium_and_caps_the_page_at_500() {
    let emulator = Emulator::start(
        Tenant::generated(2, 30),
        EmulatorConfig {
            premium: false,
            ..Default::default()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    let refused = client
        .get("/v1.0/users?$select=id,signInActivity", &[])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.graph_code(),
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    );
    assert_eq!(
        refused.body["error"]["message"],
        "Neither tenant is B2C or tenant doesn't have premium license"
    );
    assert_eq!(
        client
            .get("/v1.0/users?$select=id,displayName", &[])
            .await
            .status,
        200
    );
    assert!(!emulator.config().premium);

    emulator.set_premium(true);
    assert!(emulator.config().premium);
    let allowed = client
        .get("/v1.0/users?$select=id,signInActivity&$top=500", &[])
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.raw);
    let never = &allowed.values()[hard_case::NEVER_SIGNED_IN];
    assert_eq!(
        never["signInActivity"]["lastSignInDateTime"],
        "0001-01-01T00:00:00Z"
    );
    assert!(allowed.values()[hard_case::NO_MAIL_NO_CREATED_NO_SIGN_IN]
        .get("signInActivity")
        .is_none());
    let too_big = client
        .get("/v1.0/users?$select=id,signInActivity&$top=999", &[])
        .await;
    assert_eq!(
        (too_big.status, too_big.graph_code()),
        (400, "Request_UnsupportedQuery")
    );
    assert!(too_big.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("500"));
    assert_eq!(client.get("/v1.0/users?$top=999", &[]).await.status, 200);
    let over = client.get("/v1.0/users?$top=1000", &[]).await;
    assert_eq!(
        (over.status, over.graph_code()),
        (400, "Request_UnsupportedQuery")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn malformed_queries_get_graph_errors_not_panics() {
    let emulator = start(2, 30).await;
    let client = Client::new(&emulator).await;
    for (query, code) in [
        ("/v1.0/users?$expand=manager", "BadRequest"),
        ("/v1.0/users?foo=bar", "BadRequest"),
        ("/v1.0/users?$top=abc", "BadRequest"),
        ("/v1.0/users?$top=0", "Request_UnsupportedQuery"),
        ("/v1.0/users?$top=1&$top=2", "BadRequest"),
        ("/v1.0/users?$select=id,shoeSize", "BadRequest"),
        ("/v1.0/users?$filter=createdDateTime ge notadate", "BadRequest"),
        ("/v1.0/users?$filter=displayName eq 'x'", "Request_UnsupportedQuery"),
        ("/v1.0/users?$count=maybe", "BadRequest"),
        ("/v1.0/users?$skiptoken=garbage", "BadRequest"),
        ("/v1.0/users?$filter=createdDateTime ge 2025-01-01 and createdDateTime le 2020-01-01&$orderby=createdDateTime&$count=true", "ok"),
    ] {
        let answer = client.get(query, &[EVENTUAL]).await;
        if code == "ok" {
            assert_eq!(answer.status, 200, "{query}: {}", answer.raw);
            assert_eq!(answer.body["@odata.count"], 0);
            assert!(answer.values().is_empty());
        } else {
            assert_eq!(answer.status, 400, "{query}: {}", answer.raw);
            assert_eq!(answer.graph_code(), code, "{query}");
        }
    }
    // A next link replayed with a different query is refused.
    let first = client.get("/v1.0/users?$top=5&$select=id", &[]).await;
    let link = first.next_link().expect("more");
    let altered = client
        .get(&link.replace("$select=id", "$select=id,mail"), &[])
        .await;
    assert_eq!(altered.status, 400);
    // Unknown paths and users.
    let unknown = client.get("/v1.0/applications", &[]).await;
    assert_eq!(
        (unknown.status, unknown.graph_code()),
        (404, "Request_ResourceNotFound")
    );
    let user = client.get("/v1.0/users/nobody", &[]).await;
    assert_eq!(
        (user.status, user.graph_code()),
        (404, "Request_ResourceNotFound")
    );
    assert_eq!(emulator.counters()[&Endpoint::Other], 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_single_user_can_be_read_by_id_or_upn() {
    let tenant = Tenant::generated(2, 25);
    let guest = tenant.users()[hard_case::GUEST].clone();
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let id = guest.id().expect("id");
    let by_id = client
        .get(&format!("/v1.0/users/{id}?$select=userType,mail"), &[])
        .await;
    assert_eq!(by_id.body["userType"], "Guest");
    assert_eq!(by_id.body["mail"], "jo@fabrikam.com");
    let by_upn = client
        .get(
            "/v1.0/users/jo_fabrikam.com%23EXT%23@contoso.onmicrosoft.com",
            &[],
        )
        .await;
    assert_eq!(by_upn.body["id"], id);
    emulator.shutdown().await;
}

#[tokio::test]
async fn changes_and_next_link_base_are_visible_to_later_requests() {
    let tenant = Tenant::generated(6, 21);
    let removed = id_at(&tenant, 3);
    let changed = id_at(&tenant, 4);
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let mut extra = emulator.users()[0].clone();
    extra.user["id"] = json!("new-user");
    extra.user["displayName"] = json!("New Hire");
    emulator.add_user(extra);
    assert!(emulator.remove_user(&removed));
    assert!(!emulator.remove_user(&removed));
    assert!(emulator.update_user(
        &changed,
        json!({"displayName": "Renamed", "department": "Legal"})
    ));
    assert!(!emulator.update_user("nobody", json!({"displayName": "x"})));
    let all = client
        .walk("/v1.0/users?$select=id,displayName,department&$top=10", &[])
        .await;
    let users: Vec<Value> = all.iter().flat_map(|p| p.values()).collect();
    assert_eq!(users.len(), 21);
    assert_eq!(
        users.last().map(|u| u["displayName"].clone()),
        Some(json!("New Hire"))
    );
    assert!(users.iter().all(|u| u["id"] != removed.as_str()));
    let renamed = users
        .iter()
        .find(|u| u["id"] == changed.as_str())
        .expect("still listed");
    assert_eq!(
        (
            renamed["displayName"].clone(),
            renamed["department"].clone()
        ),
        (json!("Renamed"), json!("Legal"))
    );
    assert_eq!(emulator.users().len(), 21);

    emulator.set_next_link_base(Some("https://evil.example.com/".into()));
    let page = client.get("/v1.0/users?$top=2", &[]).await;
    let link = page.next_link().expect("more");
    assert!(
        link.starts_with("https://evil.example.com/v1.0/users?"),
        "{link}"
    );
    emulator.set_next_link_base(None);
    let page = client.get("/v1.0/users?$top=2", &[]).await;
    assert!(page
        .next_link()
        .is_some_and(|l| l.starts_with(&emulator.graph_endpoint())));
    emulator.shutdown().await;
}
