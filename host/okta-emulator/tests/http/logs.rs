//! The System Log: polling with `since` and `next` links, every change's event, filters, the
//! 90-day retention and the 180-day `since` limit.

use std::time::Duration;

use okta_emulator::format_ms;

use crate::common::{ssws, start};

fn event_types(answer: &crate::common::Answer) -> Vec<String> {
    answer
        .items()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn polling_follows_next_links_and_sees_every_change() {
    let (emulator, clock) = start(60).await;
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
    let since = format_ms(clock.now_ms() - 60_000);
    let first = ssws(
        &emulator,
        &format!("/api/v1/logs?since={since}&sortOrder=ASCENDING"),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.items().is_empty());
    let mut next = first
        .next_link()
        .expect("a polling query always answers a next link");

    clock.advance(Duration::from_secs(1));
    emulator
        .update_profile(&user, serde_json::json!({"title": "CFO"}))
        .unwrap();
    emulator.suspend(&user).unwrap();
    emulator.add_member(&user, &group).unwrap();
    let grant = emulator.grant_user_role(&user, "HELP_DESK_ADMIN").unwrap();
    emulator.revoke_user_role(&user, &grant).unwrap();
    let factor = emulator.enroll_factor(&user, "webauthn").unwrap();
    emulator.reset_factor(&user, &factor).unwrap();
    emulator.reset_all_factors(&user).unwrap();
    emulator.remove_member(&user, &group).unwrap();
    emulator.delete_user(&user).unwrap();
    emulator.delete_user(&user).unwrap();

    let page = ssws(&emulator, &next).await;
    assert_eq!(
        event_types(&page),
        [
            "user.account.update_profile",
            "user.lifecycle.suspend",
            "group.user_membership.add",
            "user.account.privilege.grant",
            "user.account.privilege.revoke",
            "user.mfa.factor.activate",
            "user.mfa.factor.deactivate",
            "user.mfa.factor.reset_all",
            "group.user_membership.remove",
            "user.lifecycle.deactivate",
            "user.lifecycle.delete.initiated",
            "user.lifecycle.delete.completed",
        ]
    );
    let delete = &page.items()[10];
    assert_eq!(delete["target"][0]["id"], user.as_str());
    assert!(delete["target"][0]["alternateId"]
        .as_str()
        .unwrap()
        .contains('@'));
    next = page.next_link().expect("next after a full page too");
    // Nothing new: an empty page, and still a next link.
    let empty = ssws(&emulator, &next).await;
    assert!(empty.items().is_empty());
    let again = empty.next_link().expect("polling never ends");
    // A new event arrives on the stored link.
    clock.advance(Duration::from_secs(1));
    let other = emulator.with_org(|org| {
        org.users()
            .find(|u| u.status == "ACTIVE")
            .unwrap()
            .id
            .clone()
    });
    emulator.suspend(&other).unwrap();
    assert_eq!(
        event_types(&ssws(&emulator, &again).await),
        ["user.lifecycle.suspend"]
    );

    // A filtered poll.
    let deletions = ssws(
        &emulator,
        &format!("/api/v1/logs?since={since}&filter=eventType%20eq%20%22user.lifecycle.delete.initiated%22"),
    )
    .await;
    assert_eq!(event_types(&deletions), ["user.lifecycle.delete.initiated"]);
    // Paging inside one poll: limit 5.
    let small = ssws(&emulator, &format!("/api/v1/logs?since={since}&limit=5")).await;
    assert_eq!(small.items().len(), 5);
    let rest = ssws(&emulator, &small.next_link().unwrap()).await;
    assert_eq!(rest.items().len(), 5);
    ssws(&emulator, &format!("/api/v1/logs?since={since}&limit=1001"))
        .await
        .assert_okta_error(400, "E0000001");
}

#[tokio::test]
async fn events_older_than_90_days_are_gone() {
    let (emulator, clock) = start(40).await;
    // The generated history: deletions 100, 10 and 2 days ago.
    let since = format_ms(clock.now_ms() - 120 * 86_400_000);
    let answer = ssws(
        &emulator,
        &format!("/api/v1/logs?since={since}&filter=eventType%20eq%20%22user.lifecycle.delete.initiated%22"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.items().len(),
        2,
        "the 100-day-old deletion is past retention"
    );
    // A week later the 10-day-old one is still there; 81 days later it is gone.
    clock.advance(Duration::from_secs(81 * 86_400));
    let since = format_ms(clock.now_ms() - 120 * 86_400_000);
    let later = ssws(
        &emulator,
        &format!("/api/v1/logs?since={since}&filter=eventType%20sw%20%22user.lifecycle.delete%22"),
    )
    .await;
    assert_eq!(
        later.items().len(),
        2,
        "only the 2-day-old deletion's two events remain"
    );
    // since more than 180 days back, or not a time: refused.
    let too_old = format_ms(clock.now_ms() - 181 * 86_400_000);
    ssws(&emulator, &format!("/api/v1/logs?since={too_old}"))
        .await
        .assert_okta_error(400, "E0000001");
    ssws(&emulator, "/api/v1/logs?since=yesterday")
        .await
        .assert_okta_error(400, "E0000001");
    // A bounded query has no next link once done.
    let until = format_ms(clock.now_ms());
    let bounded = ssws(
        &emulator,
        &format!("/api/v1/logs?since={since}&until={until}"),
    )
    .await;
    assert!(bounded.next_link().is_none());
}
