//! Users, groups, roles and factors: paging, the DEPROVISIONED rule, the search index's lag,
//! 404 after deletion, and the hard cases of the generated org.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{ssws, start, start_with, walk};
use okta_emulator::{DeleteOutcome, OktaConfig, FACTOR_TYPES};

#[tokio::test]
async fn users_page_by_link_headers_with_opaque_cursors() {
    let (emulator, _clock) = start(450).await;
    let expected: BTreeSet<String> = emulator.with_org(|org| {
        org.users()
            .filter(|u| u.status != "DEPROVISIONED")
            .map(|u| u.id.clone())
            .collect()
    });
    let (users, sizes) = walk(&emulator, "/api/v1/users?limit=200").await;
    let ids: Vec<String> = users
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "no user twice");
    assert_eq!(unique, expected);
    assert_eq!(sizes[0], 200);
    assert!(sizes.len() >= 3, "{sizes:?}");

    // The first page's links: self, and next with an opaque after cursor.
    let first = ssws(&emulator, "/api/v1/users?limit=200").await;
    let links: Vec<&str> = first
        .headers
        .iter()
        .filter(|(n, _)| n == "link")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        links.iter().any(|l| l.ends_with("rel=\"self\"")),
        "{links:?}"
    );
    let next = first.next_link().expect("a next link");
    let after = next.split("after=").nth(1).expect("an after cursor");
    assert!(!expected.contains(after), "the cursor is not a user id");
    // Cursors are checked: an edited one is refused, not silently restarted.
    let edited = next.replace(after, &format!("X{after}"));
    crate::common::get(
        &emulator,
        &edited,
        Some(&format!("SSWS {}", okta_emulator::DEFAULT_API_TOKEN)),
    )
    .await
    .assert_okta_error(400, "E0000001");
    // limit above 200 is served as 200; 0 is refused.
    assert_eq!(
        ssws(&emulator, "/api/v1/users?limit=500")
            .await
            .items()
            .len(),
        200
    );
    ssws(&emulator, "/api/v1/users?limit=0")
        .await
        .assert_okta_error(400, "E0000001");
    // Without limit: 200 a page.
    assert_eq!(ssws(&emulator, "/api/v1/users").await.items().len(), 200);
}

#[tokio::test]
async fn deprovisioned_users_only_with_search_or_filter() {
    let (emulator, _clock) = start(120).await;
    let deprovisioned: BTreeSet<String> = emulator.with_org(|org| {
        org.users()
            .filter(|u| u.status == "DEPROVISIONED")
            .map(|u| u.id.clone())
            .collect()
    });
    assert!(!deprovisioned.is_empty());
    let (plain, _) = walk(&emulator, "/api/v1/users").await;
    assert!(plain.iter().all(|u| u["status"] != "DEPROVISIONED"));
    let (searched, sizes) = walk(&emulator, "/api/v1/users?search=status%20pr&limit=50").await;
    assert_eq!(sizes, [50, 50, 20]);
    let unique: BTreeSet<&str> = searched.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), 120, "search includes every user, each once");
    let (filtered, _) = walk(
        &emulator,
        "/api/v1/users?filter=status%20eq%20%22DEPROVISIONED%22",
    )
    .await;
    let ids: BTreeSet<String> = filtered
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, deprovisioned);
    // Okta's search has no ne; filter takes only its documented attributes; sortBy needs search.
    ssws(&emulator, "/api/v1/users?search=status%20ne%20%22ACTIVE%22")
        .await
        .assert_okta_error(400, "E0000001");
    ssws(
        &emulator,
        "/api/v1/users?filter=profile.title%20eq%20%22x%22",
    )
    .await
    .assert_okta_error(400, "E0000001");
    ssws(&emulator, "/api/v1/users?sortBy=lastUpdated")
        .await
        .assert_okta_error(400, "E0000001");
}

#[tokio::test]
async fn search_reads_an_index_that_lags_behind() {
    let config = OktaConfig {
        search_lag_ms: 5_000,
        ..OktaConfig::default()
    };
    let (emulator, clock) = start_with(60, config).await;
    let id = emulator.with_org(|org| {
        org.users()
            .find(|u| u.status == "ACTIVE")
            .unwrap()
            .id
            .clone()
    });
    clock.advance(Duration::from_secs(10));
    let since = okta_emulator::format_ms(clock.now_ms() - 1);
    emulator
        .update_profile(&id, json!({"title": "Chief Émulateur", "nickName": null}))
        .unwrap();
    let query = format!(
        "/api/v1/users?search=lastUpdated%20gt%20%22{since}%22&sortBy=lastUpdated&sortOrder=asc"
    );
    // Not yet in the index; the user itself (and filter) already show the change.
    assert!(
        ssws(&emulator, &query).await.ids().is_empty(),
        "the index lags"
    );
    let direct = ssws(&emulator, &format!("/api/v1/users/{id}")).await;
    assert_eq!(direct.body["profile"]["title"], "Chief Émulateur");
    assert_eq!(direct.body["profile"]["nickName"], Value::Null);
    let filtered = ssws(
        &emulator,
        &format!("/api/v1/users?filter=lastUpdated%20gt%20%22{since}%22"),
    )
    .await;
    assert_eq!(filtered.ids(), vec![id.clone()]);
    // 4.999 s later still invisible, at 5 s visible.
    clock.advance(Duration::from_millis(4_999));
    assert!(ssws(&emulator, &query).await.ids().is_empty());
    clock.advance(Duration::from_millis(1));
    let found = ssws(&emulator, &query).await;
    assert_eq!(found.ids(), vec![id]);
    assert_eq!(found.items()[0]["profile"]["title"], "Chief Émulateur");
}

#[tokio::test]
async fn a_deleted_user_answers_404_after_the_second_delete() {
    let (emulator, _clock) = start(40).await;
    let id = emulator.with_org(|org| {
        org.users()
            .find(|u| u.status == "ACTIVE")
            .unwrap()
            .id
            .clone()
    });
    assert_eq!(emulator.delete_user(&id), Ok(DeleteOutcome::Deactivated));
    let user = ssws(&emulator, &format!("/api/v1/users/{id}")).await;
    assert_eq!(user.status, 200);
    assert_eq!(user.body["status"], "DEPROVISIONED");
    assert_eq!(emulator.delete_user(&id), Ok(DeleteOutcome::Deleted));
    let gone = ssws(&emulator, &format!("/api/v1/users/{id}")).await;
    gone.assert_okta_error(404, "E0000007");
    assert!(gone.body["errorSummary"].as_str().unwrap().contains(&id));
    ssws(&emulator, &format!("/api/v1/users/{id}/factors"))
        .await
        .assert_okta_error(404, "E0000007");
    // okta-response=omitCredentials trims the credentials.
    let other_id = emulator.with_org(|org| org.users().next().unwrap().id.clone());
    let full = ssws(&emulator, &format!("/api/v1/users/{other_id}")).await;
    assert!(full.body["credentials"].is_object());
    let trimmed = crate::common::send(
        reqwest::Client::new()
            .get(format!("{}/api/v1/users/{other_id}", emulator.base_url()))
            .header(
                "Authorization",
                format!("SSWS {}", okta_emulator::DEFAULT_API_TOKEN),
            )
            .header(
                "Content-Type",
                "application/json; okta-response=omitCredentials,omitCredentialsLinks",
            ),
    )
    .await;
    assert_eq!(trimmed.status, 200);
    assert!(trimmed.body.get("credentials").is_none());
    // By login too, before deletion.
    let other = emulator.with_org(|org| org.users().next().unwrap().login().to_owned());
    assert_eq!(
        ssws(&emulator, &format!("/api/v1/users/{other}"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn groups_members_roles_and_factors_of_the_hard_cases() {
    let (emulator, _clock) = start(60).await;
    let (busiest, most) = emulator.with_org(|org| {
        org.users()
            .map(|u| (u.id.clone(), org.groups_of(&u.id).len()))
            .max_by_key(|(_, n)| *n)
            .unwrap()
    });
    assert!(most >= 300);
    let groups = ssws(&emulator, &format!("/api/v1/users/{busiest}/groups")).await;
    assert_eq!(
        groups.items().len(),
        most,
        "every group of a user in hundreds of groups"
    );
    // Group members page by Link headers.
    let everyone = ssws(
        &emulator,
        "/api/v1/groups?search=type%20eq%20%22BUILT_IN%22",
    )
    .await;
    assert_eq!(everyone.items().len(), 1);
    let everyone_id = everyone.ids()[0].clone();
    let (members, sizes) = walk(
        &emulator,
        &format!("/api/v1/groups/{everyone_id}/users?limit=25"),
    )
    .await;
    assert_eq!(members.len(), 60, "Everyone holds every live user");
    assert_eq!(sizes[0], 25);
    // expand=stats marks groups holding a role.
    let (all, _) = walk(&emulator, "/api/v1/groups?expand=stats").await;
    let admin_groups: Vec<&Value> = all
        .iter()
        .filter(|g| g["_embedded"]["stats"]["hasAdminPrivlege"] == true)
        .collect();
    assert_eq!(admin_groups.len(), 2);
    // Group-held roles: READ_ONLY_ADMIN and a custom role.
    let mut types = BTreeSet::new();
    for group in &admin_groups {
        let roles = ssws(
            &emulator,
            &format!("/api/v1/groups/{}/roles", group["id"].as_str().unwrap()),
        )
        .await;
        for role in roles.items() {
            assert_eq!(role["assignmentType"], "GROUP");
            types.insert(role["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        types,
        BTreeSet::from(["CUSTOM".to_owned(), "READ_ONLY_ADMIN".to_owned()])
    );
    // Assignees: paging in the body; users holding a role only through a group are not listed
    // (the strict reading).
    let mut assignees = Vec::new();
    let mut target = "/api/v1/iam/assignees/users?limit=5".to_owned();
    loop {
        let page = ssws(&emulator, &target).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assignees.extend(
            page.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_owned()),
        );
        match page.body["_links"]["next"]["href"].as_str() {
            Some(next) => target = next.to_owned(),
            None => break,
        }
    }
    let direct: BTreeSet<String> = emulator.with_org(|org| {
        org.users()
            .filter(|u| !org.roles_of(&u.id).is_empty())
            .map(|u| u.id.clone())
            .collect()
    });
    assert_eq!(assignees.iter().cloned().collect::<BTreeSet<_>>(), direct);
    assert_eq!(direct.len(), 14, "13 standard role types and a custom role");
    let custom = ssws(&emulator, "/api/v1/iam/roles").await;
    assert_eq!(custom.body["roles"].as_array().unwrap().len(), 1);
    // Every factor type for the first user.
    let factors = ssws(&emulator, &format!("/api/v1/users/{busiest}/factors")).await;
    let kinds: BTreeSet<String> = factors
        .items()
        .iter()
        .map(|f| f["factorType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, FACTOR_TYPES.iter().map(|s| s.to_string()).collect());
    // The org id, unauthenticated.
    let org = crate::common::get(&emulator, "/.well-known/okta-organization", None).await;
    assert_eq!(org.body["id"], okta_emulator::ORG_ID);
}

#[tokio::test]
async fn search_sorts_by_an_attribute_with_ties_by_id_across_pages() {
    let (emulator, _clock) = start(90).await;
    let query = "/api/v1/users?search=lastUpdated%20gt%20%222000-01-01T00:00:00.000Z%22%20and%20status%20pr&sortBy=profile.department&sortOrder=desc&limit=7";
    let (users, sizes) = walk(&emulator, query).await;
    assert_eq!(users.len(), 90);
    assert_eq!(sizes.len(), 13);
    let keys: Vec<(String, String)> = users
        .iter()
        .map(|u| {
            (
                u["profile"]["department"].as_str().unwrap_or("").to_owned(),
                u["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected = keys.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(
        keys, expected,
        "descending by department, equal departments by id"
    );
    // sortOrder other than asc/desc is refused.
    ssws(
        &emulator,
        "/api/v1/users?search=status%20pr&sortBy=id&sortOrder=up",
    )
    .await
    .assert_okta_error(400, "E0000001");
}

#[tokio::test]
async fn group_search_lags_too_and_filter_does_not() {
    let (emulator, clock) = start(40).await;
    let (user, group) = emulator.with_org(|org| {
        let user = org
            .users()
            .find(|u| u.status == "ACTIVE")
            .unwrap()
            .id
            .clone();
        let group = org
            .groups()
            .find(|g| g.group_type == "OKTA_GROUP" && !g.members.contains(&user))
            .unwrap()
            .id
            .clone();
        (user, group)
    });
    clock.advance(Duration::from_secs(5));
    let since = okta_emulator::format_ms(clock.now_ms() - 1);
    emulator.add_member(&user, &group).unwrap();
    let search = format!("/api/v1/groups?search=lastMembershipUpdated%20gt%20%22{since}%22");
    let filter = format!("/api/v1/groups?filter=lastMembershipUpdated%20gt%20%22{since}%22");
    assert!(
        ssws(&emulator, &search).await.ids().is_empty(),
        "the index lags"
    );
    assert_eq!(ssws(&emulator, &filter).await.ids(), vec![group.clone()]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(ssws(&emulator, &search).await.ids(), vec![group]);
    // filter takes only its four properties.
    ssws(
        &emulator,
        "/api/v1/groups?filter=profile.name%20eq%20%22x%22",
    )
    .await
    .assert_okta_error(400, "E0000001");
}
