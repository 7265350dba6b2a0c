//! The enterprise-shaped tenant of `Emulator::start_scaled`, small enough for the suite: what
//! the emulator serves is exactly the membership relation `ScaleSpec` describes.

use std::collections::{BTreeMap, BTreeSet};

use graph_emulator::{
    hard_case, Emulator, EmulatorConfig, ScaleSpec, Tenant, DIRECTORY_ROLE_TYPE, GROUP_TYPE,
};
use serde_json::{json, Value};

use crate::common::{Answer, Client, EVENTUAL};

async fn start(spec: &ScaleSpec) -> Emulator {
    Emulator::start_scaled(spec, EmulatorConfig::default())
        .await
        .expect("the scaled emulator starts")
}

/// Every plain group id of the spec.
fn plain_groups(spec: &ScaleSpec) -> BTreeSet<String> {
    (0..spec.groups).map(|k| spec.group_id(k)).collect()
}

/// The (group, user) pairs of a groups/delta round's pages, counting repeats.
fn links(pages: &[Answer]) -> (BTreeMap<(String, String), usize>, BTreeMap<String, Value>) {
    let mut pairs = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for group in pages.iter().flat_map(Answer::values) {
        let id = group["id"].as_str().expect("a group id").to_owned();
        for link in group["members@delta"].as_array().into_iter().flatten() {
            let user = link["id"].as_str().expect("a member id").to_owned();
            let removed = link.get("@removed").is_some();
            *pairs
                .entry((
                    id.clone(),
                    format!("{user}{}", if removed { " (removed)" } else { "" }),
                ))
                .or_insert(0) += 1;
        }
        groups.insert(id, group);
    }
    (pairs, groups)
}

/// How many links of a round's pages belong to role-assignable groups (not the spec's).
fn role_links(pages: &[Answer]) -> u64 {
    let mut role_groups = BTreeSet::new();
    let mut count = 0;
    for group in pages.iter().flat_map(Answer::values) {
        let id = group["id"].as_str().unwrap_or_default().to_owned();
        if group["displayName"] == "Role - Helpdesk" {
            role_groups.insert(id.clone());
        }
        if role_groups.contains(&id) {
            count += group["members@delta"].as_array().map_or(0, Vec::len) as u64;
        }
    }
    count
}

/// Follows a groups/delta round to its delta link.
async fn round(client: &Client, first: &str) -> (Vec<Answer>, String) {
    let mut pages = Vec::new();
    let mut url = first.to_owned();
    loop {
        let page = client.get(&url, &[]).await;
        assert_eq!(page.status, 200, "{url}: {}", page.raw);
        let next = page.next_link();
        let delta = page.body["@odata.deltaLink"].as_str().map(str::to_owned);
        pages.push(page);
        match (next, delta) {
            (Some(next), None) => url = next,
            (None, Some(delta)) => return (pages, delta),
            other => panic!("exactly one of nextLink and deltaLink: {other:?}"),
        }
        assert!(pages.len() < 10_000, "the round does not end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_users_member_of_is_its_spec_groups_plus_its_roles() {
    let spec = ScaleSpec::enterprise(21, 2_000);
    let emulator = start(&spec).await;
    let client = Client::new(&emulator).await;
    let plain = plain_groups(&spec);
    let (mut direct_roles, mut role_groups) = (0, 0);
    // Twenty users a `$batch`, the entries cut to what is checked; no user has more than 500
    // memberships here, so one page each.
    let indexes: Vec<usize> = (0..spec.users).collect();
    for chunk in indexes.chunks(20) {
        let requests: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                json!({
                    "id": i.to_string(),
                    "method": "GET",
                    "url": format!(
                        "/users/{}/memberOf?$top=999&$select=isAssignableToRole",
                        spec.user_id(i)
                    ),
                })
            })
            .collect();
        let answer = client
            .post_json("/v1.0/$batch", &json!({ "requests": requests }))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.raw);
        for &index in chunk {
            let item = answer.batch_item(&index.to_string());
            assert_eq!(item["status"], 200, "{item}");
            assert!(item["body"].get("@odata.nextLink").is_none(), "{item}");
            let entries = item["body"]["value"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            check_member_of(
                &spec,
                &plain,
                index,
                &entries,
                &mut direct_roles,
                &mut role_groups,
            );
        }
    }
    // ~1 in 1,000 holds a role directly, ~1 in 200 is in the role-assignable group.
    assert!(
        (1..=10).contains(&direct_roles),
        "{direct_roles} direct roles"
    );
    assert!(
        (3..=25).contains(&role_groups),
        "{role_groups} role-group memberships"
    );
    let roles = client.get("/v1.0/directoryRoles", &[]).await.values().len();
    assert!(roles >= 2, "direct and inherited roles are listed: {roles}");
    let eligible = client
        .get(
            "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances",
            &[],
        )
        .await;
    assert_eq!(eligible.status, 200, "{}", eligible.raw);
    assert!(!eligible.values().is_empty(), "some users are PIM-eligible");
    emulator.shutdown().await;
}

/// User `index`'s `memberOf` entries are its spec groups, in order, plus its roles (counted).
fn check_member_of(
    spec: &ScaleSpec,
    plain: &BTreeSet<String>,
    index: usize,
    entries: &[Value],
    direct_roles: &mut usize,
    role_groups: &mut usize,
) {
    let served: Vec<String> = entries
        .iter()
        .filter(|e| e["@odata.type"] == GROUP_TYPE && e["isAssignableToRole"] != true)
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        served,
        spec.group_ids_of(index),
        "user {index}'s plain groups"
    );
    assert!(served.iter().all(|g| plain.contains(g)));
    for entry in entries
        .iter()
        .filter(|e| !served.iter().any(|s| e["id"] == **s))
    {
        if entry["@odata.type"] == DIRECTORY_ROLE_TYPE {
            *direct_roles += 1;
        } else {
            assert_eq!(entry["@odata.type"], GROUP_TYPE, "{entry}");
            assert_eq!(entry["isAssignableToRole"], true, "{entry}");
            *role_groups += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_groups_delta_round_is_exactly_the_spec_relation_and_a_change_follows() {
    let spec = ScaleSpec::enterprise(22, 2_000);
    let emulator = start(&spec).await;
    let client = Client::new(&emulator).await;
    let (pages, delta) = round(&client, "/v1.0/groups/delta?$select=displayName,members").await;
    let (pairs, groups) = links(&pages);
    let plain = plain_groups(&spec);
    let mut expected = BTreeSet::new();
    for index in 0..spec.users {
        for group in spec.group_ids_of(index) {
            expected.insert((group, spec.user_id(index)));
        }
    }
    assert_eq!(expected.len() as u64, spec.total_memberships());
    let served: BTreeSet<(String, String)> = pairs
        .iter()
        .filter(|((group, _), _)| plain.contains(group))
        .map(|(pair, _)| pair.clone())
        .collect();
    assert!(
        served == expected,
        "the round's plain-group links are the spec's relation"
    );
    let repeated: Vec<_> = pairs.iter().filter(|(_, &n)| n > 1).collect();
    assert!(repeated.is_empty(), "links served twice: {repeated:?}");
    // Every plain group is listed (even one nobody drew), and the one other group is the
    // role-assignable one.
    assert!(plain.iter().all(|g| groups.contains_key(g)));
    let others: Vec<&Value> = groups
        .iter()
        .filter(|(id, _)| !plain.contains(*id))
        .map(|(_, g)| g)
        .collect();
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(others[0]["displayName"], "Role - Helpdesk");

    // (e) A user leaves one plain group and joins another: the next round says exactly that.
    let index = 7;
    let user = spec.user_id(index);
    let mine = spec.group_ids_of(index);
    let left = mine[mine.len() - 1].clone();
    let joined = plain
        .iter()
        .find(|g| !mine.contains(g))
        .expect("a group the user is not in")
        .clone();
    let joined_object = json!({
        "@odata.type": GROUP_TYPE,
        "id": joined,
        "displayName": groups[&joined]["displayName"],
    });
    let joined_full = emulator
        .user(
            &spec.user_id(
                (0..spec.users)
                    .find(|&i| spec.group_ids_of(i).contains(&joined))
                    .expect("someone is in the joined group"),
            ),
        )
        .expect("that user is live")
        .member_of
        .into_iter()
        .find(|m| m["id"] == joined)
        .unwrap_or(joined_object);
    let left_id = left.clone();
    assert!(emulator.modify_relations(&user, move |sim| {
        sim.member_of.retain(|m| m["id"] != left_id);
        sim.member_of.push(joined_full);
    }));
    let (pages, _) = round(&client, &delta).await;
    let (pairs, groups) = links(&pages);
    let changed: BTreeSet<(String, String)> = pairs.keys().cloned().collect();
    let want: BTreeSet<(String, String)> = [
        (joined.clone(), user.clone()),
        (left.clone(), format!("{user} (removed)")),
    ]
    .into_iter()
    .collect();
    assert_eq!(changed, want);
    assert_eq!(
        groups.keys().cloned().collect::<BTreeSet<_>>(),
        [joined, left].into_iter().collect()
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_users_member_of_and_a_huge_groups_members_page_at_the_link_cap() {
    // A wide user in 1,200 groups and five groups of 1,000 members: both beyond the 500
    // links a relation page serves.
    let spec = ScaleSpec {
        seed: 23,
        users: 3_000,
        groups: 1_200,
        mean_memberships: 6,
        wide_users: 2,
        wide_user_groups: 1_200,
        huge_groups: 5,
        huge_group_members: 1_000,
    };
    let emulator = start(&spec).await;
    let client = Client::new(&emulator).await;
    // Wide users sit at half a step: 750 and 2,250.
    let wide = 750;
    let expected = spec.group_ids_of(wide);
    assert_eq!(expected.len(), 1_200);
    let pages = client
        .walk(
            &format!("/v1.0/users/{}/memberOf?$top=999", spec.user_id(wide)),
            &[],
        )
        .await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.values().len()).collect();
    assert_eq!(
        (sizes.len(), &sizes[..2]),
        (3, &[500, 500][..]),
        "{sizes:?}"
    );
    let served: Vec<String> = pages
        .iter()
        .flat_map(Answer::values)
        .filter(|e| e["isAssignableToRole"] != true && e["@odata.type"] == GROUP_TYPE)
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(served, expected);

    // Huge group 1 holds the users with index % 3 == 1, plus both wide users.
    let huge = spec.group_id(1);
    let mut expected: BTreeSet<String> = (0..spec.users)
        .filter(|i| i % 3 == 1)
        .map(|i| spec.user_id(i))
        .collect();
    expected.insert(spec.user_id(750));
    expected.insert(spec.user_id(2_250));
    let pages = client
        .walk(&format!("/v1.0/groups/{huge}/members?$top=999"), &[])
        .await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.values().len()).collect();
    assert_eq!(sizes, [500, 500, expected.len() - 1_000]);
    let members: Vec<Value> = pages.iter().flat_map(Answer::values).collect();
    let ids: BTreeSet<String> = members
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), members.len(), "each member once");
    assert_eq!(ids, expected);
    let first = emulator
        .user(members[0]["id"].as_str().expect("id"))
        .expect("a live member");
    assert_eq!(members[0]["displayName"], first.user["displayName"]);
    assert_eq!(
        members[0]["userPrincipalName"],
        first.user["userPrincipalName"]
    );
    // The same list through the advanced-query cast, with its count.
    let cast = client
        .get(
            &format!("/v1.0/groups/{huge}/transitiveMembers/microsoft.graph.user?$count=true"),
            &[EVENTUAL],
        )
        .await;
    assert_eq!(cast.status, 200, "{}", cast.raw);
    assert_eq!(cast.body["@odata.count"], expected.len());

    // groups/delta splits the huge group's links over pages (at most 500 a page) and resumes
    // after the last member served: every member once, every page within the cap.
    let (pages, _) = round(&client, "/v1.0/groups/delta?$select=displayName,members").await;
    for page in &pages {
        let on_page: usize = page
            .values()
            .iter()
            .map(|g| g["members@delta"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(on_page <= 500, "{on_page} links on one page");
    }
    let (pairs, _) = links(&pages);
    let in_huge: Vec<(&String, &usize)> = pairs
        .iter()
        .filter(|((group, _), _)| *group == huge)
        .map(|((_, user), n)| (user, n))
        .collect();
    assert!(in_huge.iter().all(|(_, &n)| n == 1), "a link served twice");
    let served: BTreeSet<String> = in_huge.into_iter().map(|(u, _)| u.clone()).collect();
    assert_eq!(served, expected);
    let total: usize = pairs.values().sum();
    assert_eq!(total as u64, spec.total_memberships() + role_links(&pages));
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_ids_user_and_user_count_agree_with_the_spec() {
    let spec = ScaleSpec::enterprise(24, 500);
    let emulator = start(&spec).await;
    let ids: Vec<String> = (0..spec.users).map(|i| spec.user_id(i)).collect();
    assert_eq!(emulator.user_ids(), ids);
    assert_eq!(emulator.user_count(), spec.users);
    for index in [0, 1, 250, 499] {
        let user = emulator.user(&ids[index]).expect("a live user");
        assert_eq!(user.id(), Some(ids[index].as_str()));
        let groups: Vec<String> = user
            .member_of
            .iter()
            .filter(|m| m["@odata.type"] == GROUP_TYPE && m["isAssignableToRole"] != true)
            .map(|m| m["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(groups, spec.group_ids_of(index));
    }
    // Beyond the hard cases, users are `Tenant::generated`'s random users (their own groups
    // replaced by the spec's).
    let generated = Tenant::generated(24, 300);
    for index in [hard_case::COUNT, 123, 299] {
        let mine = emulator.user(&ids[index]).expect("a live user");
        let theirs = &generated.users()[index];
        assert_eq!(mine.user, theirs.user, "user {index}");
        assert_eq!(mine.auth_methods, theirs.auth_methods, "user {index}");
    }
    assert!(emulator.user("no-such-user").is_none());
    assert!(emulator.remove_user(&ids[250]));
    assert_eq!(emulator.user_count(), spec.users - 1);
    assert!(emulator.user(&ids[250]).is_none());
    assert_eq!(emulator.user_ids().len(), spec.users - 1);
    assert!(!emulator.user_ids().contains(&ids[250]));
    emulator.shutdown().await;
}
