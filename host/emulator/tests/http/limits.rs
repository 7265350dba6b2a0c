//! Graph's documented limits, on by default: delta page sizes and short pages, the 500-link cap
//! of member lists, OData casts as advanced queries, query options Graph refuses, and `/users`
//! filters on `id`.

use graph_emulator::{hard_case, Emulator, EmulatorConfig, SimUser, Tenant};
use serde_json::{json, Value};

use crate::common::{generous, id_at, ids, Answer, Client, EVENTUAL};

#[test]
fn the_default_configuration_is_realistic_graph() {
    let config = EmulatorConfig::default();
    assert!(!config.generous);
    assert!(config.p2 && config.premium);
    assert!(config.missing_permissions.is_empty());
    assert_eq!(
        config.reports_limit,
        Some((5, std::time::Duration::from_secs(10)))
    );
    assert_eq!(
        config.sign_in_activity_limit,
        Some((10, std::time::Duration::from_secs(60)))
    );
}

/// Walks a delta round with a `Prefer` header on every request; returns the pages.
async fn delta_round(client: &Client, first: &str, prefer: Option<&str>) -> Vec<Answer> {
    let headers: Vec<(&str, &str)> = prefer.map(|p| ("Prefer", p)).into_iter().collect();
    let mut pages = Vec::new();
    let mut url = first.to_owned();
    loop {
        let page = client.get(&url, &headers).await;
        assert_eq!(page.status, 200, "{url}: {}", page.raw);
        let next = page.next_link();
        let delta = page.body["@odata.deltaLink"].as_str().map(str::to_owned);
        pages.push(page);
        match (next, delta) {
            (Some(next), None) => url = next,
            (None, Some(_)) => return pages,
            other => panic!("exactly one of nextLink and deltaLink: {other:?}"),
        }
        assert!(pages.len() < 1000);
    }
}

fn sizes(pages: &[Answer]) -> Vec<usize> {
    pages.iter().map(|p| p.values().len()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_delta_pages_are_capped_at_200_and_every_fifth_page_is_short() {
    let tenant = Tenant::generated(101, 460);
    let all: Vec<String> = (0..460).map(|i| id_at(&tenant, i)).collect();
    let emulator = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let first = "/v1.0/users/delta?$select=id,displayName";

    // No header: 200 a page (the cap, which is also the default), the last with the deltaLink.
    let pages = delta_round(&client, first, None).await;
    assert_eq!(sizes(&pages), [200, 200, 60]);
    assert!(pages
        .iter()
        .all(|p| p.header("preference-applied").is_none()));
    assert_eq!(ids(&pages), all, "every user once, in order");

    // Asking for more than 200 gets 200, and says so.
    let pages = delta_round(&client, first, Some("odata.maxpagesize=1000")).await;
    assert_eq!(sizes(&pages), [200, 200, 60]);
    for page in &pages {
        assert_eq!(
            page.header("preference-applied"),
            Some("odata.maxpagesize=200")
        );
    }
    let pages = delta_round(&client, first, Some("odata.maxpagesize=200")).await;
    assert_eq!(sizes(&pages), [200, 200, 60]);
    // Invalid values are ignored.
    for prefer in ["odata.maxpagesize=0", "odata.maxpagesize=lots"] {
        let page = client.get(first, &[("Prefer", prefer)]).await;
        assert_eq!(page.values().len(), 200, "{prefer}");
        assert!(page.header("preference-applied").is_none());
    }

    // Small pages: every 5th page of the round holds half (at least one); the page number
    // counts from the first request of the round, whatever the size of each request.
    let pages = delta_round(
        &client,
        "/v1.0/users/delta?$select=id",
        Some("odata.maxpagesize=50"),
    )
    .await;
    assert_eq!(sizes(&pages), [50, 50, 50, 50, 25, 50, 50, 50, 50, 25, 10]);
    assert_eq!(ids(&pages), all);
    let tiny = Tenant::generated(102, 60);
    let tiny_emulator = Emulator::start(tiny, EmulatorConfig::default())
        .await
        .expect("starts");
    let tiny_client = Client::new(&tiny_emulator).await;
    let pages = delta_round(
        &tiny_client,
        "/v1.0/users/delta?$select=id",
        Some("odata.maxpagesize=5"),
    )
    .await;
    assert_eq!(sizes(&pages), [5, 5, 5, 5, 2, 5, 5, 5, 5, 2, 5, 5, 5, 1]);
    let tiny_one = delta_round(
        &tiny_client,
        "/v1.0/users/delta?$select=id",
        Some("odata.maxpagesize=1"),
    )
    .await;
    assert_eq!(tiny_one.len(), 60, "half of one is still one");

    // Change rounds are paged the same way.
    let last = pages.last().expect("pages");
    let delta_link = last.body["@odata.deltaLink"]
        .as_str()
        .expect("delta")
        .to_owned();
    for user in tiny_emulator.users().iter().take(12) {
        let id = user.id().expect("id").to_owned();
        assert!(tiny_emulator.update_user(&id, json!({"displayName": "Changed"})));
    }
    let changes = delta_round(&tiny_client, &delta_link, Some("odata.maxpagesize=2")).await;
    assert_eq!(sizes(&changes), [2, 2, 2, 2, 1, 2, 1]);
    tiny_emulator.shutdown().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn generous_users_delta_is_the_old_behaviour() {
    let emulator = Emulator::start(Tenant::generated(103, 460), generous())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let pages = delta_round(
        &client,
        "/v1.0/users/delta?$select=id",
        Some("odata.maxpagesize=999"),
    )
    .await;
    assert_eq!(sizes(&pages), [460]);
    assert_eq!(
        pages[0].header("preference-applied"),
        Some("odata.maxpagesize=999")
    );
    let pages = delta_round(
        &client,
        "/v1.0/users/delta?$select=id",
        Some("odata.maxpagesize=100"),
    )
    .await;
    assert_eq!(sizes(&pages), [100, 100, 100, 100, 60], "no short page");
    emulator.shutdown().await;
}

/// A fixture: 1,200 users in the group "big", the first of them also in 600 groups.
fn crowded_tenant() -> Tenant {
    let big = json!({"@odata.type": "#microsoft.graph.group", "id": "big", "displayName": "Big"});
    let users: Vec<SimUser> = (0..1200)
        .map(|i| {
            let mut member_of = vec![big.clone()];
            if i == 0 {
                member_of.extend((0..600).map(|g| {
                    json!({"@odata.type": "#microsoft.graph.group", "id": format!("g{g:03}"), "displayName": format!("Group {g}")})
                }));
            }
            serde_json::from_value(json!({
                "user": {"id": format!("u{i:04}"), "displayName": format!("User {i}"), "userPrincipalName": format!("u{i:04}@contoso.com")},
                "memberOf": member_of,
            }))
            .expect("a user")
        })
        .collect();
    Tenant::from_users(users).expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_lists_serve_at_most_500_links_a_page_whatever_top_says() {
    let emulator = Emulator::start(crowded_tenant(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;

    let pages = client.walk("/v1.0/groups/big/members?$top=999", &[]).await;
    assert_eq!(sizes(&pages), [500, 500, 200]);
    assert_eq!(ids(&pages).len(), 1200);
    let pages = client.walk("/v1.0/groups/big/members?$top=501", &[]).await;
    assert_eq!(sizes(&pages), [500, 500, 200]);
    let pages = client.walk("/v1.0/groups/big/members?$top=250", &[]).await;
    assert_eq!(sizes(&pages), [250, 250, 250, 250, 200]);
    let pages = client.walk("/v1.0/groups/big/members", &[]).await;
    assert_eq!(pages.len(), 12, "100 by default");
    let pages = client
        .walk(
            "/v1.0/groups/big/transitiveMembers/microsoft.graph.user?$top=999&$count=true",
            &[EVENTUAL],
        )
        .await;
    assert_eq!(sizes(&pages), [500, 500, 200]);
    assert_eq!(pages[0].body["@odata.count"], 1200);

    let pages = client
        .walk("/v1.0/users/u0000/memberOf?$top=999", &[])
        .await;
    assert_eq!(sizes(&pages), [500, 101]);
    let pages = client.walk("/v1.0/users/u0000/memberOf", &[]).await;
    assert_eq!(
        pages.len(),
        601_usize.div_ceil(4),
        "the configured page size"
    );

    for query in ["$top=1000", "$top=0"] {
        let answer = client
            .get(&format!("/v1.0/groups/big/members?{query}"), &[])
            .await;
        assert_eq!(
            (answer.status, answer.graph_code()),
            (400, "Request_UnsupportedQuery"),
            "{query}"
        );
    }
    emulator.shutdown().await;

    let emulator = Emulator::start(crowded_tenant(), generous())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let pages = client.walk("/v1.0/groups/big/members?$top=999", &[]).await;
    assert_eq!(sizes(&pages), [999, 201], "generous: up to 999");
    emulator.shutdown().await;
}

#[tokio::test]
async fn odata_casts_on_member_lists_are_advanced_queries_only() {
    let tenant = Tenant::generated(104, 30);
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let admin = id_at(&tenant, hard_case::GLOBAL_ADMIN);
    let group = tenant.users()[hard_case::GLOBAL_ADMIN].member_of[1]["id"]
        .as_str()
        .expect("a group")
        .to_owned();
    let roles = format!("/v1.0/users/{admin}/transitiveMemberOf/microsoft.graph.directoryRole");
    let members = format!("/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user");
    for base in [&roles, &members] {
        for (query, headers) in [
            ("", &[][..]),
            ("", &[EVENTUAL][..]),
            ("?$count=true", &[][..]),
            ("?$count=false", &[EVENTUAL][..]),
        ] {
            let answer = client.get(&format!("{base}{query}"), headers).await;
            assert_eq!(
                (answer.status, answer.graph_code()),
                (400, "Request_UnsupportedQuery"),
                "{base}{query} {headers:?}"
            );
            assert!(answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("ConsistencyLevel") && m.contains("$count")));
        }
        let ok = client
            .get(&format!("{base}?$count=true"), &[EVENTUAL])
            .await;
        assert_eq!(ok.status, 200, "{}", ok.raw);
        assert!(ok.body["@odata.count"].as_u64().is_some_and(|n| n >= 1));
    }
    // The plain member list is no cast: no advanced query needed.
    let plain = client
        .get(&format!("/v1.0/groups/{group}/members"), &[])
        .await;
    assert_eq!(plain.status, 200);
    // Inside a batch, the headers travel with the item.
    let batch = json!({"requests": [
        {"id": "bare", "method": "GET", "url": format!("/users/{admin}/transitiveMemberOf/microsoft.graph.directoryRole")},
        {"id": "advanced", "method": "GET", "url": format!("/users/{admin}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"),
         "headers": {"ConsistencyLevel": "eventual"}},
    ]});
    let answer = client.post_json("/v1.0/$batch", &batch).await;
    assert_eq!(answer.batch_item("bare")["status"], 400);
    assert_eq!(answer.batch_item("advanced")["status"], 200);
    emulator.shutdown().await;

    let emulator = Emulator::start(tenant, generous()).await.expect("starts");
    let client = Client::new(&emulator).await;
    assert_eq!(client.get(&roles, &[]).await.status, 200, "generous");
    assert_eq!(client.get(&members, &[]).await.status, 200, "generous");
    emulator.shutdown().await;
}

#[tokio::test]
async fn authentication_methods_take_no_query_options() {
    let tenant = Tenant::generated(105, 25);
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let id = id_at(&tenant, hard_case::EVERY_AUTH_METHOD);
    let path = format!("/v1.0/users/{id}/authentication/methods");
    for query in ["$top=5", "$select=id", "$count=true", "$filter=id eq 'x'"] {
        let answer = client.get(&format!("{path}?{query}"), &[EVENTUAL]).await;
        assert_eq!(
            (answer.status, answer.graph_code()),
            (400, "BadRequest"),
            "{query}"
        );
    }
    // The emulator's own next links still work.
    let pages = client.walk(&path, &[]).await;
    assert_eq!(pages.iter().map(|p| p.values().len()).sum::<usize>(), 11);
    assert!(pages.len() > 1);
    emulator.shutdown().await;

    let emulator = Emulator::start(tenant, generous()).await.expect("starts");
    let client = Client::new(&emulator).await;
    assert_eq!(
        client
            .get(&format!("{path}?$top=20"), &[])
            .await
            .values()
            .len(),
        11,
        "generous accepts $top"
    );
    emulator.shutdown().await;
}

/// The ids of a page, as strings.
fn page_ids(answer: &Answer) -> Vec<String> {
    ids(std::slice::from_ref(answer))
}

#[tokio::test]
async fn users_can_be_filtered_by_id_with_eq_and_in_up_to_15_values() {
    let tenant = Tenant::generated(106, 40);
    let all: Vec<String> = (0..40).map(|i| id_at(&tenant, i)).collect();
    let emulator = Emulator::start(
        tenant,
        EmulatorConfig {
            reports_limit: None,
            sign_in_activity_limit: None,
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    let list = |ids: &[String]| {
        ids.iter()
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(",")
    };

    let one = client
        .get(
            &format!(
                "/v1.0/users?$filter=id eq '{}'&$select=id,displayName",
                all[7]
            ),
            &[],
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.raw);
    assert_eq!(page_ids(&one), [all[7].clone()]);

    // `in`, in insertion order whatever the order asked, unknown ids ignored, each once.
    let asked = [
        all[9].clone(),
        all[2].clone(),
        "nobody".to_owned(),
        all[9].clone(),
    ];
    let some = client
        .get(
            &format!("/v1.0/users?$filter=id in ({})", list(&asked)),
            &[],
        )
        .await;
    assert_eq!(page_ids(&some), [all[2].clone(), all[9].clone()]);
    // `or` chains work too, and paging follows $top.
    let chain = (0..5)
        .map(|i| format!("id eq '{}'", all[i]))
        .collect::<Vec<_>>()
        .join(" or ");
    let pages = client
        .walk(&format!("/v1.0/users?$filter={chain}&$top=2"), &[])
        .await;
    assert_eq!(ids(&pages), all[..5].to_vec());
    assert_eq!(pages.len(), 3);

    // 15 values pass; 16 are refused in a simple query...
    let fifteen = client
        .get(
            &format!("/v1.0/users?$filter=id in ({})", list(&all[..15])),
            &[],
        )
        .await;
    assert_eq!(page_ids(&fifteen).len(), 15);
    let sixteen = format!("/v1.0/users?$filter=id in ({})", list(&all[..16]));
    let refused = client.get(&sixteen, &[]).await;
    assert_eq!(
        (refused.status, refused.graph_code()),
        (400, "Request_UnsupportedQuery")
    );
    let or_chain = (0..16)
        .map(|i| format!("id eq '{}'", all[i]))
        .collect::<Vec<_>>()
        .join(" or ");
    assert_eq!(
        client
            .get(&format!("/v1.0/users?$filter={or_chain}"), &[])
            .await
            .status,
        400
    );
    // ...and pass as an advanced query, up to a 2,048-character URL.
    let advanced = client
        .get(&format!("{sixteen}&$count=true"), &[EVENTUAL])
        .await;
    assert_eq!(advanced.status, 200, "{}", advanced.raw);
    assert_eq!(advanced.body["@odata.count"], 16);
    let many: Vec<String> = (0..60)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let too_long = client
        .get(
            &format!("/v1.0/users?$filter=id in ({})&$count=true", list(&many)),
            &[EVENTUAL],
        )
        .await;
    assert_eq!(
        (too_long.status, too_long.graph_code()),
        (400, "Request_UnsupportedQuery"),
        "60 GUIDs make a URL over 2,048 characters"
    );
    // Sorted by creation time as an advanced query.
    let sorted = client
        .get(
            &format!(
                "/v1.0/users?$filter=id in ({})&$orderby=createdDateTime desc&$count=true&$select=id,createdDateTime",
                list(&all[..10])
            ),
            &[EVENTUAL],
        )
        .await;
    assert_eq!(sorted.status, 200, "{}", sorted.raw);
    let dates: Vec<Value> = sorted
        .values()
        .iter()
        .map(|u| u["createdDateTime"].clone())
        .collect();
    let mut expected = dates.clone();
    expected.sort_by(|a, b| b.as_str().unwrap_or("").cmp(a.as_str().unwrap_or("")));
    assert_eq!(dates, expected);
    // Other filters on id are refused.
    for filter in ["id ne 'x'", "id eq 'a' and id eq 'b'", "id eq 42"] {
        let answer = client
            .get(&format!("/v1.0/users?$filter={filter}"), &[])
            .await;
        assert_eq!(answer.status, 400, "{filter}: {}", answer.raw);
    }

    // With signInActivity: filtered, and counted against the reports limits.
    let with_sign_in = client
        .get(
            &format!(
                "/v1.0/users?$filter=id in ({})&$select=id,signInActivity",
                list(&all[..3])
            ),
            &[],
        )
        .await;
    assert_eq!(with_sign_in.status, 200);
    assert_eq!(page_ids(&with_sign_in), all[..3].to_vec());
    assert!(with_sign_in.values()[0].get("signInActivity").is_some());
    emulator.shutdown().await;
}
