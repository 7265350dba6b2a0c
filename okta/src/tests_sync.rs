//! Incremental runs against `FakeDoors`: the System Log polling query and its hostile pages,
//! what each log event says changed, the deletion event, and (incremental.rs) the runs.

use super::*;
use connector_sdk::doors::fake::{json, FakeDoors};
use connector_sdk::doors::{HttpRequest, HttpResponse};
use serde_json::json as j;

use crate::client::Client;
use crate::syslog::{Answer, Change};
use connector_sdk::paging::Trail;

const ORG: &str = "https://acme.okta.test";
const T0: i64 = 1_700_000_000_000;

fn config() -> Config {
    OktaConnector::parse(&[("org_url".to_string(), ORG.to_string())]).unwrap()
}

/// A log event of `event_type` about `targets`.
fn log_event(event_type: &str, published: &str, targets: Value) -> Value {
    j!({"uuid": format!("{event_type}-{published}"), "eventType": event_type,
        "published": published, "target": targets,
        "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@acme.test"}})
}

fn user_target(id: &str) -> Value {
    j!({"id": id, "type": "User", "alternateId": format!("{id}@acme.test"), "displayName": id})
}

fn group_target(id: &str) -> Value {
    j!({"id": id, "type": "UserGroup", "alternateId": "unknown", "displayName": id})
}

fn log_page(events: &[Value], next: Option<&str>) -> HttpResponse {
    let mut r = json(
        200,
        &[("date", "Tue, 14 Nov 2023 22:13:20 GMT")],
        &Value::Array(events.to_vec()).to_string(),
    );
    if let Some(n) = next {
        r.headers
            .push(("link".into(), format!("<{n}>; rel=\"next\"")));
    }
    r
}

// --- the polling query ------------------------------------------------------------------

#[test]
fn the_polling_query_has_since_ascending_order_the_limit_and_the_filter_and_no_until() {
    let url = syslog::first_url(ORG, T0 + 999);
    assert_eq!(
        url,
        "https://acme.okta.test/api/v1/logs?since=2023-11-14T22%3A13%3A20Z&sortOrder=ASCENDING&limit=1000&filter=eventType%20sw%20%22user.lifecycle.%22%20or%20eventType%20sw%20%22user.account.%22%20or%20eventType%20sw%20%22group.user_membership.%22%20or%20eventType%20sw%20%22group.privilege.%22%20or%20eventType%20sw%20%22user.mfa.factor.%22"
    );
    assert!(!url.contains("until"), "a polling query has no until");
}

// --- what each event says changed -----------------------------------------------------------

#[test]
fn each_event_kind_names_its_user_or_group() {
    let events = [
        log_event(
            "user.lifecycle.suspend",
            "2023-11-14T10:00:00.000Z",
            j!([user_target("00u1")]),
        ),
        log_event(
            "user.account.update_profile",
            "2023-11-14T10:00:01.000Z",
            j!([user_target("00u2")]),
        ),
        log_event(
            "group.user_membership.add",
            "2023-11-14T10:00:02.000Z",
            j!([user_target("00u3"), group_target("00g1")]),
        ),
        log_event(
            "group.user_membership.remove",
            "2023-11-14T10:00:02.500Z",
            j!([group_target("00g1"), user_target("00u4")]),
        ),
        log_event(
            "user.account.privilege.grant",
            "2023-11-14T10:00:03.000Z",
            j!([user_target("00u5")]),
        ),
        log_event(
            "user.account.privilege.revoke",
            "2023-11-14T10:00:03.500Z",
            j!([user_target("00u6")]),
        ),
        log_event(
            "group.privilege.grant",
            "2023-11-14T10:00:04.000Z",
            j!([group_target("00g2")]),
        ),
        log_event(
            "group.privilege.revoke",
            "2023-11-14T10:00:04.500Z",
            j!([group_target("00g3")]),
        ),
        log_event(
            "user.mfa.factor.activate",
            "2023-11-14T10:00:05.000Z",
            j!([user_target("00u7")]),
        ),
        log_event(
            "user.mfa.factor.deactivate",
            "2023-11-14T10:00:05.500Z",
            j!([user_target("00u8")]),
        ),
        log_event(
            "user.mfa.factor.reset_all",
            "2023-11-14T10:00:06.000Z",
            j!([user_target("00u9")]),
        ),
        log_event(
            "user.lifecycle.delete.initiated",
            "2023-11-14T10:00:07.000Z",
            j!([user_target("00uD")]),
        ),
        // The completed event of the same deletion: the same change, once.
        log_event(
            "user.lifecycle.delete.completed",
            "2023-11-14T10:00:07.020Z",
            j!([user_target("00uD")]),
        ),
        // The same user changed twice in a page: read once.
        log_event(
            "user.lifecycle.unsuspend",
            "2023-11-14T10:00:08.000Z",
            j!([user_target("00u1")]),
        ),
    ];
    let c = syslog::changes(&events);
    let user = |id: &str, at: i64| Change::User {
        id: id.into(),
        published_ms: Some(1_699_956_000_000 + at),
    };
    assert_eq!(
        c.changes,
        vec![
            // Suspended at :00, unsuspended at :08: as late as its latest event.
            user("00u1", 8_000),
            user("00u2", 1_000),
            user("00u3", 2_000),
            user("00u4", 2_500),
            user("00u5", 3_000),
            user("00u6", 3_500),
            Change::GroupPrivilege { id: "00g2".into() },
            Change::GroupPrivilege { id: "00g3".into() },
            user("00u7", 5_000),
            user("00u8", 5_500),
            user("00u9", 6_000),
            Change::Deleted {
                id: "00uD".into(),
                login: Some("00uD@acme.test".into()),
                published_ms: Some(1_699_956_007_000),
            },
        ]
    );
    assert_eq!((c.skipped, c.ignored), (0, 0));
}

#[test]
fn an_event_without_a_usable_target_is_skipped_and_counted_and_others_go_on() {
    let events = [
        log_event("user.lifecycle.suspend", "2023-11-14T10:00:00.000Z", j!([])),
        log_event(
            "user.lifecycle.suspend",
            "2023-11-14T10:00:00.000Z",
            Value::Null,
        ),
        log_event(
            "user.account.update_profile",
            "x",
            j!([{"type": "User", "id": "  "}]),
        ),
        log_event(
            "user.account.update_profile",
            "x",
            j!([{"type": "User", "id": 7}]),
        ),
        // Ids that are no Okta id never reach a URL.
        log_event(
            "user.account.update_profile",
            "x",
            j!([{"type": "User", "id": "../groups"}]),
        ),
        log_event(
            "user.account.update_profile",
            "x",
            j!([{"type": "User", "id": "00u1?x=1"}]),
        ),
        log_event(
            "user.account.update_profile",
            "x",
            j!([{"type": "User", "id": "00u%2F"}]),
        ),
        // A group privilege event naming only a user: no group to re-read.
        log_event("group.privilege.grant", "x", j!([user_target("00u1")])),
        j!("not an event"),
        j!({"target": [user_target("00u2")]}),
        // A type not asked for (the filter should leave none out): ignored, not a failure.
        log_event("user.session.start", "x", j!([user_target("00u3")])),
        // A deletion with an unreadable time and no login still names its user.
        log_event(
            "user.lifecycle.delete.initiated",
            "yesterday",
            j!([{"type": "user", "id": "00uX"}]),
        ),
    ];
    let c = syslog::changes(&events);
    assert_eq!(
        c.changes,
        vec![Change::Deleted {
            id: "00uX".into(),
            login: None,
            published_ms: None
        }]
    );
    assert_eq!((c.skipped, c.ignored), (10, 1));
}

// --- hostile pages --------------------------------------------------------------------------

fn read_one(resp: HttpResponse, trail: &mut Trail) -> Result<Answer, ConnectorError> {
    let config = config();
    let doors = FakeDoors::new(move |_, _: &HttpRequest| resp.clone());
    let client = Client::new(&doors, &config);
    syslog::read_page(&client, ORG, &syslog::first_url(ORG, T0), trail)
}

fn page_of(a: Answer) -> syslog::LogPage {
    match a {
        Answer::Page(p) => p,
        Answer::Refused(why) => panic!("refused: {why}"),
    }
}

#[test]
fn a_page_brings_its_events_its_next_link_and_its_date() {
    let next = format!("{ORG}/api/v1/logs?after=abc");
    let events = [log_event(
        "user.lifecycle.suspend",
        "2023-11-14T10:00:00.000Z",
        j!([user_target("00u1")]),
    )];
    let p = page_of(read_one(log_page(&events, Some(&next)), &mut Trail::default()).unwrap());
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.next.as_deref(), Some(next.as_str()));
    assert_eq!(p.date_ms, Some(T0));
}

#[test]
fn a_page_over_the_limit_is_refused_not_trusted() {
    let events: Vec<Value> = (0..1001)
        .map(|i| {
            log_event(
                "user.lifecycle.suspend",
                "x",
                j!([user_target(&format!("00u{i}"))]),
            )
        })
        .collect();
    let e = read_one(
        log_page(&events, Some(&format!("{ORG}/api/v1/logs?after=a"))),
        &mut Trail::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("holds 1001 events, more than the 1000 asked for"),
        "{e}"
    );
}

#[test]
fn a_next_link_to_another_origin_is_not_followed() {
    let events = [log_event(
        "user.lifecycle.suspend",
        "x",
        j!([user_target("00u1")]),
    )];
    for evil in [
        "https://evil.test/api/v1/logs?after=a",
        "https://acme.okta.test.evil.test/api/v1/logs?after=a",
        "http://acme.okta.test/api/v1/logs?after=a",
    ] {
        let e = read_one(log_page(&events, Some(evil)), &mut Trail::default()).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Upstream(m) if m.contains("the next link leaves the org")),
            "{evil}: {e}"
        );
    }
}

#[test]
fn a_repeated_link_or_repeated_events_are_a_loop_but_an_empty_page_may_poll_in_place() {
    let first = syslog::first_url(ORG, T0);
    let events = [log_event(
        "user.lifecycle.suspend",
        "x",
        j!([user_target("00u1")]),
    )];
    // A non-empty page whose next link is the request itself.
    let mut trail = Trail::starting_at(&first);
    let e = read_one(log_page(&events, Some(&first)), &mut trail).unwrap_err();
    assert!(e.to_string().contains("already followed"), "{e}");
    // The same events again under a new link.
    let mut trail = Trail::starting_at(&first);
    read_one(
        log_page(&events, Some(&format!("{ORG}/api/v1/logs?after=1"))),
        &mut trail,
    )
    .unwrap();
    let e = read_one(
        log_page(&events, Some(&format!("{ORG}/api/v1/logs?after=2"))),
        &mut trail,
    )
    .unwrap_err();
    assert!(e.to_string().contains("repeats the items"), "{e}");
    // An empty page whose next link is the request: nothing new yet, no loop.
    let mut trail = Trail::starting_at(&first);
    let p = page_of(read_one(log_page(&[], Some(&first)), &mut trail).unwrap());
    assert!(p.events.is_empty());
    assert_eq!(p.next.as_deref(), Some(first.as_str()));
}

#[test]
fn a_page_that_is_not_an_array_is_an_upstream_error() {
    let mut r = log_page(&[], None);
    r.body = br#"{"errorCode":"E0000009"}"#.to_vec();
    let e = read_one(r, &mut Trail::default()).unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Upstream(m) if m.contains("not a JSON array") && m.contains("run again later")),
        "{e}"
    );
}

#[test]
fn a_403_or_a_400_of_the_log_is_a_refusal_naming_why() {
    let r = json(
        403,
        &[],
        r#"{"errorCode":"E0000006","errorSummary":"You do not have permission"}"#,
    );
    match read_one(r, &mut Trail::default()).unwrap() {
        Answer::Refused(why) => assert!(
            why.contains("403") && why.contains("grant okta.logs.read"),
            "{why}"
        ),
        Answer::Page(_) => panic!("a 403 is no page"),
    }
    let r = json(
        400,
        &[],
        r#"{"errorCode":"E0000053","errorSummary":"Invalid parameter: The since parameter is over 180 days prior to the current day."}"#,
    );
    match read_one(r, &mut Trail::default()).unwrap() {
        Answer::Refused(why) => assert!(why.contains("over 180 days"), "{why}"),
        Answer::Page(_) => panic!("a 400 is no page"),
    }
}

// --- the deletion event ----------------------------------------------------------------------

#[test]
fn a_deletion_event_carries_the_id_the_login_the_time_and_deleted_true() {
    let e = deleted::map_deleted(
        "00o1abcd",
        "00uD",
        Some("dee@acme.test"),
        1_699_956_007_000,
        T0,
    );
    assert_eq!(e["class_uid"], 5003);
    assert_eq!(e["time"], T0);
    assert_eq!(e["metadata"]["tenant_uid"], "00o1abcd");
    assert_eq!(
        e["metadata"]["product"],
        j!({"name": "Okta", "vendor_name": "Okta"})
    );
    assert_eq!(
        e["user"],
        j!({"uid": "00uD", "name": "dee@acme.test",
            "account": {"uid": "00uD", "type_id": 99, "type": "Okta Account"},
            "ldap_person": {"deleted_time": 1_699_956_007_000i64}})
    );
    assert_eq!(
        e["enrichments"],
        j!([{"name": "account", "value": "status", "data": {"deleted": true}}])
    );
    // Without a login (the log's alternateId missing or blank): no user.name.
    for login in [None, Some("  ")] {
        let e = deleted::map_deleted("00o1abcd", "00uD", login, 1, T0);
        assert!(e["user"].get("name").is_none(), "{login:?}");
    }
}

#[test]
fn the_initiated_and_completed_events_of_one_deletion_give_one_uid() {
    let uid = |published: i64, now: i64| {
        deleted::map_deleted("00o1abcd", "00uD", Some("dee@acme.test"), published, now)["metadata"]
            ["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(uid(1_000, T0), uid(1_020, T0 + 60_000));
    assert_ne!(
        uid(1_000, T0),
        deleted::map_deleted("00o1abcd", "00uE", Some("dee@acme.test"), 1_000, T0)["metadata"]
            ["uid"]
            .as_str()
            .unwrap()
    );
}
