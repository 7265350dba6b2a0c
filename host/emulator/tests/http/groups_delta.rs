//! `GET /v1.0/groups/delta`: every group with its members, then only what changed.

use std::collections::{BTreeMap, BTreeSet};

use graph_emulator::{hard_case, Emulator, EmulatorConfig, SimUser, Tenant};
use serde_json::{json, Value};

use crate::common::{id_at, Answer, Client};

const FIRST: &str = "/v1.0/groups/delta?$select=displayName,members";

/// Follows a groups/delta round; returns its pages and the delta link.
async fn round(client: &Client, first: &str, prefer: Option<&str>) -> (Vec<Answer>, String) {
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
            (None, Some(delta)) => return (pages, delta),
            other => panic!("exactly one of nextLink and deltaLink: {other:?}"),
        }
        assert!(pages.len() < 1000);
    }
}

/// Group id → (the group's last object seen, every member link of the round, in order).
fn merge(pages: &[Answer]) -> BTreeMap<String, (Value, Vec<Value>)> {
    let mut out: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for group in pages.iter().flat_map(Answer::values) {
        let id = group["id"].as_str().expect("id").to_owned();
        let links = group["members@delta"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let slot = out.entry(id).or_insert_with(|| (group.clone(), Vec::new()));
        slot.0 = group.clone();
        slot.1.extend(links);
    }
    out
}

fn link_ids(links: &[Value]) -> BTreeSet<String> {
    links
        .iter()
        .filter(|l| l.get("@removed").is_none())
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_round_lists_every_group_with_its_members() {
    let tenant = Tenant::generated(141, 300);
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let (pages, delta_link) = round(&client, FIRST, Some("odata.maxpagesize=5")).await;
    assert!(pages.iter().all(|p| p.values().len() <= 5));
    assert_eq!(
        pages[0].header("preference-applied"),
        Some("odata.maxpagesize=5")
    );
    assert!(delta_link.starts_with(&format!(
        "{}/v1.0/groups/delta?$deltatoken=",
        emulator.graph_endpoint()
    )));
    let groups = merge(&pages);
    let listed: Vec<Value> = client
        .walk("/v1.0/groups?$top=999", &[])
        .await
        .iter()
        .flat_map(|p| p.values())
        .collect();
    assert_eq!(groups.len(), listed.len(), "every group once");
    for group in &listed {
        let id = group["id"].as_str().expect("id");
        let (object, links) = &groups[id];
        assert_eq!(object["displayName"], group["displayName"]);
        assert_eq!(
            object.as_object().map(|o| o.len()),
            Some(3),
            "id, displayName, members@delta: {object}"
        );
        let expected: BTreeSet<String> = tenant
            .users()
            .iter()
            .filter(|u| u.member_of.iter().any(|o| o["id"] == id))
            .filter_map(|u| u.id().map(str::to_owned))
            .collect();
        assert_eq!(link_ids(links), expected, "{}", group["displayName"]);
        assert_eq!(links.len(), expected.len(), "each member once");
        assert!(links
            .iter()
            .all(|l| l["@odata.type"] == "#microsoft.graph.user"
                && l.as_object().map(|o| o.len()) == Some(2)));
    }

    // More than 200 groups asked gets 200 (also the default).
    let page = client
        .get(FIRST, &[("Prefer", "odata.maxpagesize=1000")])
        .await;
    assert_eq!(
        page.header("preference-applied"),
        Some("odata.maxpagesize=200")
    );
    // No $select: every property and the members.
    let (pages, _) = round(&client, "/v1.0/groups/delta", None).await;
    let all = merge(&pages);
    let (any, links) = all.values().next().expect("a group");
    assert!(any.get("securityEnabled").is_some() && any.get("description").is_some());
    assert!(
        any["members@delta"].is_array(),
        "members tracked by default"
    );
    let _ = links;
    // Without members: no links.
    let (pages, _) = round(&client, "/v1.0/groups/delta?$select=displayName", None).await;
    assert!(pages
        .iter()
        .flat_map(|p| p.values())
        .all(|g| g.get("members@delta").is_none()));

    let (quiet, _) = round(&client, &delta_link, None).await;
    assert!(
        quiet.iter().all(|p| p.values().is_empty()),
        "no change, nothing listed"
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_group_is_split_over_pages_of_at_most_500_links() {
    let big = json!({"@odata.type": "#microsoft.graph.group", "id": "big", "displayName": "Big"});
    let small =
        json!({"@odata.type": "#microsoft.graph.group", "id": "a-small", "displayName": "Small"});
    let last =
        json!({"@odata.type": "#microsoft.graph.group", "id": "z-last", "displayName": "Last"});
    let users: Vec<SimUser> = (0..1234)
        .map(|i| {
            let mut member_of = vec![big.clone()];
            if i < 3 {
                member_of.push(small.clone());
            }
            if i == 7 {
                member_of.push(last.clone());
            }
            serde_json::from_value(json!({
                "user": {"id": format!("u{i:04}"), "displayName": format!("U{i}")},
                "memberOf": member_of,
            }))
            .expect("user")
        })
        .collect();
    let emulator = Emulator::start(
        Tenant::from_users(users).expect("valid"),
        EmulatorConfig::default(),
    )
    .await
    .expect("starts");
    let client = Client::new(&emulator).await;
    let (pages, _) = round(&client, FIRST, None).await;
    let per_page: Vec<Vec<(String, usize)>> = pages
        .iter()
        .map(|p| {
            p.values()
                .iter()
                .map(|g| {
                    (
                        g["id"].as_str().unwrap_or("").to_owned(),
                        g["members@delta"].as_array().map_or(0, Vec::len),
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(
        per_page,
        vec![
            vec![("a-small".to_owned(), 3), ("big".to_owned(), 497)],
            vec![("big".to_owned(), 500)],
            vec![("big".to_owned(), 237), ("z-last".to_owned(), 1)],
        ],
        "groups in id order, at most 500 links a page, the big group on three pages"
    );
    let groups = merge(&pages);
    assert_eq!(link_ids(&groups["big"].1).len(), 1234);
    assert_eq!(groups["big"].1.len(), 1234, "no link twice");
    assert!(pages
        .iter()
        .flat_map(|p| p.values())
        .filter(|g| g["id"] == "big")
        .all(|g| g["displayName"] == "Big"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn later_rounds_list_only_changed_groups_with_the_changed_links() {
    let tenant = Tenant::generated(142, 40);
    let emulator = Emulator::start(tenant.clone(), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    let (_, delta_link) = round(&client, FIRST, None).await;
    let (_, names_only) = round(&client, "/v1.0/groups/delta?$select=displayName", None).await;

    let lonely = id_at(&tenant, hard_case::NO_MEMBERSHIPS);
    let admin = id_at(&tenant, hard_case::GLOBAL_ADMIN);
    let leaver = id_at(&tenant, hard_case::ADMIN_UNITS);
    let all_company = tenant.users()[hard_case::GLOBAL_ADMIN].member_of[2].clone();
    assert_eq!(all_company["displayName"], "All Company");
    let all_company_id = all_company["id"].as_str().expect("id").to_owned();
    let engineering = tenant.users()[hard_case::ADMIN_UNITS].member_of[3].clone();
    let engineering_id = engineering["id"].as_str().expect("id").to_owned();

    // Joins (a relation change), leaves (a user change), a user removed for good, and a user
    // who joins then leaves again within the round (no net change).
    assert!(emulator.modify_relations(&lonely, |sim| sim.member_of.push(all_company.clone())));
    assert!(emulator.modify_user(&leaver, |sim| sim
        .member_of
        .retain(|o| o["id"] != engineering_id.as_str())));
    assert!(emulator.remove_user(&admin));
    let flicker = id_at(&tenant, hard_case::NO_EMPLOYEE_FIELDS);
    assert!(emulator.modify_relations(&flicker, |sim| sim.member_of.push(engineering.clone())));
    assert!(emulator.modify_relations(&flicker, |sim| sim
        .member_of
        .retain(|o| o["id"] != engineering_id.as_str())));

    let (pages, next_link) = round(&client, &delta_link, None).await;
    let changed = merge(&pages);
    let removed_groups: BTreeSet<String> = tenant.users()[hard_case::GLOBAL_ADMIN]
        .member_of
        .iter()
        .filter(|o| o["@odata.type"] == "#microsoft.graph.group")
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();
    let mut expected_groups = removed_groups.clone();
    expected_groups.insert(engineering_id.clone());
    assert_eq!(
        changed.keys().cloned().collect::<BTreeSet<_>>(),
        expected_groups,
        "only the groups whose membership changed"
    );
    let (object, links) = &changed[&all_company_id];
    assert_eq!(object["displayName"], "All Company");
    assert_eq!(links, &{
        let mut expected = vec![
            json!({"@odata.type": "#microsoft.graph.user", "id": admin, "@removed": {"reason": "deleted"}}),
            json!({"@odata.type": "#microsoft.graph.user", "id": lonely}),
        ];
        expected.sort_by_key(|l| l["id"].as_str().unwrap_or("").to_owned());
        expected
    });
    let mut expected = vec![
        json!({"@odata.type": "#microsoft.graph.user", "id": leaver, "@removed": {"reason": "deleted"}}),
        json!({"@odata.type": "#microsoft.graph.user", "id": admin, "@removed": {"reason": "deleted"}}),
    ];
    expected.sort_by_key(|l| l["id"].as_str().unwrap_or("").to_owned());
    assert_eq!(
        changed[&engineering_id].1, expected,
        "the leaver and the removed admin; the flicker left no trace"
    );

    // Membership changes are invisible to a round that does not track members...
    let (pages, names_next) = round(&client, &names_only, None).await;
    assert!(
        pages.iter().all(|p| p.values().is_empty()),
        "{}",
        pages[0].raw
    );
    // ...but a renamed group is listed there, with its new name.
    assert!(emulator.modify_relations(&lonely, |sim| {
        for group in sim.member_of.iter_mut() {
            if group["id"] == all_company_id.as_str() {
                group["displayName"] = json!("Everyone");
            }
        }
    }));
    let (pages, _) = round(&client, &names_next, None).await;
    let renamed = merge(&pages);
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[&all_company_id].0["displayName"], "Everyone");
    assert!(renamed[&all_company_id].0.get("members@delta").is_none());
    let (pages, _) = round(&client, &next_link, None).await;
    let renamed = merge(&pages);
    assert_eq!(renamed[&all_company_id].0["displayName"], "Everyone");
    assert_eq!(
        renamed[&all_company_id].1,
        Vec::<Value>::new(),
        "no link changed"
    );

    // A group whose last member left is still listed, empty.
    let solo =
        json!({"@odata.type": "#microsoft.graph.group", "id": "solo", "displayName": "Solo"});
    let (_, before_solo) = round(&client, FIRST, None).await;
    assert!(emulator.modify_relations(&lonely, |sim| sim.member_of.push(solo.clone())));
    assert!(emulator.modify_relations(&lonely, |sim| sim.member_of.retain(|o| o["id"] != "solo")));
    let (pages, _) = round(&client, FIRST, None).await;
    let groups = merge(&pages);
    assert_eq!(groups["solo"].1, Vec::<Value>::new());
    let solo_members = client.get("/v1.0/groups/solo/members", &[]).await;
    assert_eq!(solo_members.status, 200, "{}", solo_members.raw);
    assert!(solo_members.values().is_empty());
    let (pages, _) = round(&client, &before_solo, None).await;
    assert!(
        !merge(&pages).contains_key("solo"),
        "joined and left: no net change"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn groups_delta_refuses_what_graph_refuses_and_its_tokens_expire() {
    let emulator = Emulator::start(Tenant::generated(143, 20), EmulatorConfig::default())
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    for query in [
        "$top=5",
        "$expand=members",
        "$orderby=displayName",
        "$filter=id eq 'x'",
        "$count=true",
    ] {
        let answer = client
            .get(&format!("/v1.0/groups/delta?{query}"), &[])
            .await;
        assert_eq!(
            (answer.status, answer.graph_code()),
            (400, "Request_UnsupportedQuery"),
            "{query}"
        );
    }
    for select in ["owners", "shoeSize", ""] {
        let answer = client
            .get(&format!("/v1.0/groups/delta?$select={select}"), &[])
            .await;
        assert_eq!(answer.status, 400, "{select}: {}", answer.raw);
    }
    let forged = client.get("/v1.0/groups/delta?$deltatoken=abc", &[]).await;
    assert_eq!((forged.status, forged.graph_code()), (400, "BadRequest"));
    let first = client
        .get(FIRST, &[("Prefer", "odata.maxpagesize=2")])
        .await;
    let next = first.next_link().expect("more");
    let (first_round, delta_link) = round(&client, FIRST, None).await;
    emulator.expire_delta_tokens();
    for link in [&next, &delta_link] {
        let gone = client.get(link, &[]).await;
        assert_eq!(
            (gone.status, gone.graph_code()),
            (410, "syncStateNotFound"),
            "{link}"
        );
    }
    let (fresh, fresh_link) = round(&client, FIRST, None).await;
    assert!(!fresh[0].values().is_empty());
    assert_eq!(client.get(&fresh_link, &[]).await.status, 200);
    assert_eq!(
        emulator.counters()[&graph_emulator::Endpoint::GroupsDelta],
        (5 + 3 + 1 + 1 + first_round.len() + 2 + fresh.len() + 1) as u64
    );
    emulator.shutdown().await;
}
