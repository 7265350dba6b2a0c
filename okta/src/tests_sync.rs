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
        "https://acme.okta.test/api/v1/logs?since=2023-11-14T22%3A13%3A20.000Z&sortOrder=ASCENDING&limit=1000&filter=eventType%20sw%20%22user.lifecycle.%22%20or%20eventType%20sw%20%22user.account.%22%20or%20eventType%20sw%20%22group.user_membership.%22%20or%20eventType%20sw%20%22group.privilege.%22%20or%20eventType%20sw%20%22user.mfa.factor.%22"
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

// --- incremental runs against a small fake org ---------------------------------------------

use std::cell::{Cell as StdCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::cursor::Cursor;
use connector_sdk::state::Cell;
use connector_sdk::time::parse_rfc3339_ms;

use crate::incremental::{SyncState, MAX_LOG_AGE_MS};

/// An org as the fake answers it: users by id, the System Log in persistence order, group
/// roles and members, and the server's clock (the `Date` of every answer).
#[derive(Default)]
struct Org {
    now: StdCell<i64>,
    users: RefCell<BTreeMap<String, Value>>,
    log: RefCell<Vec<Value>>,
    group_roles: RefCell<HashMap<String, Vec<Value>>>,
    group_members: RefCell<HashMap<String, Vec<String>>>,
    /// A user's groups, factors and roles (`/users/{id}/groups|factors|roles`; none when absent).
    parts: RefCell<HashMap<(String, String), Vec<Value>>>,
    /// How far the search index lags: users changed more recently are not found by it.
    lag_ms: StdCell<i64>,
    /// Users holding a role (`/api/v1/iam/assignees/users`, one a page).
    admins: RefCell<Vec<String>>,
    /// Users per search page and events per log page the fake serves (≤ what was asked).
    page: StdCell<usize>,
    /// Log events that arrive only with the answer to this many log requests (a log page
    /// read twice in a row shows nothing new in between).
    log_requests: StdCell<usize>,
}

fn http_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = connector_sdk::time::format_rfc3339(ms); // YYYY-MM-DDTHH:MM:SSZ
    let month: usize = t[5..7].parse().unwrap();
    format!(
        "{}, {} {} {} {} GMT",
        DAYS[ms.div_euclid(86_400_000).rem_euclid(7) as usize],
        &t[8..10],
        MONTHS[month - 1],
        &t[0..4],
        &t[11..19]
    )
}

fn iso(ms: i64) -> String {
    connector_sdk::time::format_rfc3339(ms).replace('Z', ".000Z")
}

fn query<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
}

impl Org {
    fn at(&self, ms: i64) {
        self.now.set(ms);
    }

    fn put_user(&self, id: &str, updated_ms: i64, name: &str) {
        self.users.borrow_mut().insert(
            id.into(),
            j!({"id": id, "status": "ACTIVE", "created": "2023-01-01T00:00:00.000Z",
                "lastUpdated": iso(updated_ms),
                "profile": {"login": format!("{id}@acme.test"), "displayName": name}}),
        );
    }

    fn log(&self, event_type: &str, at_ms: i64, targets: Value) {
        self.log
            .borrow_mut()
            .push(log_event(event_type, &iso(at_ms), targets));
    }

    fn answer(&self, req: &HttpRequest) -> HttpResponse {
        let mut r = self.route(req);
        r.headers.push(("date".into(), http_date(self.now.get())));
        r
    }

    fn route(&self, req: &HttpRequest) -> HttpResponse {
        let url = req.url.as_str();
        let path = url
            .strip_prefix(ORG)
            .unwrap_or(url)
            .split('?')
            .next()
            .unwrap();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let users = self.users.borrow();
        let ok = |v: Value| json(200, &[], &v.to_string());
        let gone = || json(404, &[], r#"{"errorCode":"E0000007"}"#);
        match parts.as_slice() {
            [".well-known", "okta-organization"] => ok(j!({"id": "00o1abcd"})),
            ["api", "v1", "users"] => {
                let search = query(url, "search").unwrap_or("");
                let mut all: Vec<&Value> = users.values().collect();
                if let Some(rest) = search.strip_prefix("lastUpdated%20gt%20%22") {
                    let since = parse_rfc3339_ms(&rest.replace("%3A", ":").replace("%22", ""))
                        .expect("a time in the search");
                    let visible = self.now.get() - self.lag_ms.get();
                    all.retain(|u| {
                        let at = parse_rfc3339_ms(u["lastUpdated"].as_str().unwrap()).unwrap();
                        at > since && at <= visible
                    });
                    all.sort_by_key(|u| {
                        (
                            u["lastUpdated"].as_str().unwrap().to_string(),
                            u["id"].as_str().unwrap().to_string(),
                        )
                    });
                }
                let from: usize = query(url, "after").map_or(0, |a| a.parse().unwrap());
                let n = self.page.get().max(1);
                let chunk: Vec<Value> = all
                    .iter()
                    .skip(from)
                    .take(n)
                    .map(|u| (*u).clone())
                    .collect();
                let mut r = ok(Value::Array(chunk));
                if from + n < all.len() {
                    let base = url.split("&after=").next().unwrap();
                    r.headers.push((
                        "link".into(),
                        format!("<{base}&after={}>; rel=\"next\"", from + n),
                    ));
                }
                r
            }
            ["api", "v1", "users", id] => users.get(*id).map_or_else(gone, |u| ok(u.clone())),
            ["api", "v1", "users", id, part] => {
                if users.contains_key(*id) {
                    let parts = self.parts.borrow();
                    let got = parts.get(&(id.to_string(), part.to_string()));
                    ok(Value::Array(got.cloned().unwrap_or_default()))
                } else {
                    gone()
                }
            }
            ["api", "v1", "groups", id, "roles"] => match self.group_roles.borrow().get(*id) {
                Some(r) => ok(Value::Array(r.clone())),
                None => gone(),
            },
            ["api", "v1", "groups", id, "users"] => match self.group_members.borrow().get(*id) {
                Some(m) => ok(Value::Array(
                    m.iter().filter_map(|m| users.get(m).cloned()).collect(),
                )),
                None => gone(),
            },
            ["api", "v1", "logs"] => {
                self.log_requests.set(self.log_requests.get() + 1);
                let log = self.log.borrow();
                let from: usize = match query(url, "after") {
                    Some(a) => a.parse().unwrap(),
                    None => {
                        let since = parse_rfc3339_ms(
                            &query(url, "since").expect("since").replace("%3A", ":"),
                        )
                        .unwrap();
                        log.iter()
                            .position(|e| {
                                parse_rfc3339_ms(e["published"].as_str().unwrap()).unwrap() >= since
                            })
                            .unwrap_or(log.len())
                    }
                };
                let n = self.page.get().max(1);
                let chunk: Vec<Value> = log.iter().skip(from).take(n).cloned().collect();
                let next = from + chunk.len();
                let mut r = ok(Value::Array(chunk));
                r.headers.push((
                    "link".into(),
                    format!("<{ORG}/api/v1/logs?sortOrder=ASCENDING&limit=1000&after={next}>; rel=\"next\""),
                ));
                r
            }
            ["api", "v1", "iam", "assignees", "users"] => {
                let admins = self.admins.borrow();
                let from: usize = query(url, "after").map_or(0, |a| a.parse().unwrap());
                let value: Vec<Value> = admins
                    .iter()
                    .skip(from)
                    .take(1)
                    .map(|id| j!({"id": id, "orn": format!("orn:okta:directory:00o1abcd:users:{id}")}))
                    .collect();
                let mut links = j!({});
                if from + 1 < admins.len() {
                    links["next"] = j!({"href": format!("{ORG}/api/v1/iam/assignees/users?limit=100&after={}", from + 1)});
                }
                ok(j!({"value": value, "_links": links}))
            }
            _ => ok(j!([])),
        }
    }
}

/// A fake whose answers come from `org`, at the org's clock.
fn fake(org: &Rc<Org>) -> FakeDoors<impl Fn(usize, &HttpRequest) -> HttpResponse> {
    let o = Rc::clone(org);
    let d = FakeDoors::new(move |_, r: &HttpRequest| o.answer(r));
    d.clock.set(org.now.get());
    d
}

/// Stores a cursor after a finished walk (generation 1) whose incremental position is `sync`.
fn after_walk<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>, sync: SyncState) {
    let cursor = Cursor {
        gen: 1,
        walk: None,
        sync: Some(sync),
    };
    let (mut cell, _) =
        Cell::read::<Cursor, _>(d, crate::cursor::KEY, crate::cursor::FORMAT, "c").unwrap();
    cell.write(d, &cursor).unwrap();
}

fn sync_at(ms: i64) -> SyncState {
    SyncState {
        watermark_ms: ms,
        log_next: None,
        log_since_ms: ms,
        log_at_ms: ms,
        ..SyncState::default()
    }
}

fn stored<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>) -> Cursor {
    let (_, s) =
        Cell::read::<Cursor, _>(d, crate::cursor::KEY, crate::cursor::FORMAT, "c").unwrap();
    match s {
        connector_sdk::state::Stored::Value(c) => c,
        _ => panic!("no readable cursor"),
    }
}

fn emitted<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>) -> Vec<Value> {
    d.events
        .borrow()
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn uids(events: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .map(|e| e["user"]["uid"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn urls<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>) -> Vec<String> {
    d.calls
        .borrow()
        .iter()
        .flat_map(|(_, r)| r.iter().map(|r| r.url.clone()))
        .collect()
}

fn run<F: Fn(usize, &HttpRequest) -> HttpResponse>(
    d: &FakeDoors<F>,
) -> Result<Report, ConnectorError> {
    OktaConnector::run(d, &config())
}

/// The org at T0 + 1 h with users u1..u9 last updated long before, a walk finished at T0.
fn quiet_org() -> Rc<Org> {
    let org = Rc::new(Org::default());
    org.page.set(1000);
    for i in 1..=9 {
        org.put_user(&format!("00u{i}"), T0 - 86_400_000, &format!("User {i}"));
    }
    org.at(T0 + 3_600_000);
    org
}

#[test]
fn the_users_search_starts_five_minutes_before_the_watermark_oldest_change_first() {
    let org = quiet_org();
    org.put_user("00u1", T0 + 60_000, "Renamed");
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    let report = run(&d).unwrap();
    assert!(!report.full_sync);
    let all = urls(&d);
    assert_eq!(
        all[1],
        format!(
            "{ORG}/api/v1/users?search=lastUpdated%20gt%20%222023-11-14T22%3A08%3A20.000Z%22&sortBy=lastUpdated&sortOrder=asc&limit=200"
        ),
        "W − 5 min, as Okta writes times"
    );
    let events = emitted(&d);
    assert_eq!(uids(&events), ["00u1"]);
    assert_eq!(events[0]["user"]["display_name"], "Renamed");
    assert!(
        all.contains(&format!("{ORG}/api/v1/users/00u1")),
        "read by id: {all:?}"
    );
    // The watermark is the org's Date of the run's first answer, never the local clock.
    let sync = stored(&d).sync.unwrap();
    assert_eq!(sync.watermark_ms, T0 + 3_600_000);
    assert_eq!(sync.log_at_ms, T0 + 3_600_000);
    assert!(sync.run.is_none());
}

#[test]
fn each_log_event_kind_re_reads_its_user_by_id_and_emits_it_complete() {
    let org = quiet_org();
    let t = T0 + 60_000;
    org.log("user.lifecycle.suspend", t, j!([user_target("00u1")]));
    org.log("user.account.update_profile", t, j!([user_target("00u2")]));
    org.log(
        "group.user_membership.add",
        t,
        j!([user_target("00u3"), group_target("00g9")]),
    );
    org.log(
        "group.user_membership.remove",
        t,
        j!([user_target("00u4"), group_target("00g9")]),
    );
    org.log("user.account.privilege.grant", t, j!([user_target("00u5")]));
    org.log(
        "user.account.privilege.revoke",
        t,
        j!([user_target("00u6")]),
    );
    org.log("user.mfa.factor.activate", t, j!([user_target("00u7")]));
    org.log("user.mfa.factor.deactivate", t, j!([user_target("00u8")]));
    org.log("user.mfa.factor.reset_all", t, j!([user_target("00u9")]));
    // What the org says now about three of them (their record's lastUpdated unchanged).
    let mut parts = org.parts.borrow_mut();
    parts.insert(
        ("00u3".into(), "groups".into()),
        vec![j!({"id": "00g9", "type": "OKTA_GROUP", "profile": {"name": "Engineering"}})],
    );
    parts.insert(
        ("00u5".into(), "roles".into()),
        vec![
            j!({"id": "ra1", "type": "SUPER_ADMIN", "status": "ACTIVE", "assignmentType": "USER"}),
        ],
    );
    parts.insert(
        ("00u7".into(), "factors".into()),
        vec![j!({"id": "f1", "factorType": "push", "status": "ACTIVE"})],
    );
    drop(parts);
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    let report = run(&d).unwrap();
    let events = emitted(&d);
    let want: Vec<String> = (1..=9).map(|i| format!("00u{i}")).collect();
    assert_eq!(uids(&events), want);
    // Complete snapshots: groups, roles and factors read for every user.
    let by = |id: &str| events.iter().find(|e| e["user"]["uid"] == id).unwrap();
    assert_eq!(
        by("00u3")["user"]["groups"],
        j!([{"uid": "00g9", "name": "Engineering", "type": "OKTA_GROUP"}])
    );
    assert_eq!(by("00u5")["user"]["type_id"], 2, "Admin");
    assert_eq!(
        by("00u5")["enrichments"][0]["data"]["roles"],
        j!(["SUPER_ADMIN"])
    );
    assert_eq!(by("00u7")["user"]["has_mfa"], true);
    assert_eq!(
        by("00u7")["enrichments"][0]["data"]["mfa_methods"],
        j!(["push"])
    );
    for e in &events {
        assert!(e["user"]["has_mfa"].is_boolean(), "factors read: {e}");
        assert_ne!(e["user"]["type_id"], 0, "roles read: {e}");
    }
    assert_eq!(report.items_partial, 0);
    let all = urls(&d);
    for id in &want {
        assert!(
            all.contains(&format!("{ORG}/api/v1/users/{id}")),
            "{id} read by id"
        );
    }
    assert!(
        all.iter()
            .any(|u| u.starts_with(&format!("{ORG}/api/v1/logs?since=2023-11-14T22%3A13%3A20.000Z&sortOrder=ASCENDING&limit=1000&filter="))),
        "the log polled from the walk's start: {all:?}"
    );
    assert_eq!(report.events_emitted, 9);
    assert_eq!(report.items_skipped, 0);
    // The log position is the last page's next link, current at the org's Date.
    let sync = stored(&d).sync.unwrap();
    assert_eq!(
        sync.log_next.as_deref(),
        Some(format!("{ORG}/api/v1/logs?sortOrder=ASCENDING&limit=1000&after=9").as_str())
    );
    assert_eq!(sync.log_at_ms, T0 + 3_600_000);
}

#[test]
fn a_deleted_user_is_a_deletion_event_only_once_it_answers_404() {
    let org = quiet_org();
    let t = T0 + 60_000;
    // 00u1 deleted: gone from the org, both events in the log.
    org.users.borrow_mut().remove("00u1");
    org.log(
        "user.lifecycle.delete.initiated",
        t,
        j!([user_target("00u1")]),
    );
    org.log(
        "user.lifecycle.delete.completed",
        t + 20,
        j!([user_target("00u1")]),
    );
    // 00u2: a deletion logged but the user still answers 200: a user, not a deletion.
    org.log(
        "user.lifecycle.delete.initiated",
        t,
        j!([user_target("00u2")]),
    );
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    run(&d).unwrap();
    let events = emitted(&d);
    assert_eq!(uids(&events), ["00u1", "00u2"]);
    let gone = events.iter().find(|e| e["user"]["uid"] == "00u1").unwrap();
    assert_eq!(gone["enrichments"][0]["data"]["deleted"], true);
    assert_eq!(
        gone["user"]["name"], "00u1@acme.test",
        "the log target's alternateId"
    );
    assert_eq!(
        gone["user"]["ldap_person"]["deleted_time"], t,
        "the event's published"
    );
    let kept = events.iter().find(|e| e["user"]["uid"] == "00u2").unwrap();
    assert!(
        kept["enrichments"][0]["data"].get("deleted").is_none(),
        "{kept}"
    );
    assert_eq!(kept["user"]["display_name"], "User 2");
}

#[test]
fn a_user_gone_from_the_search_before_its_read_waits_for_the_log_to_say_it_was_deleted() {
    let org = quiet_org();
    // Listed by the (lagging) search but deleted by the time it is read: nothing yet.
    org.put_user("00u1", T0 + 60_000, "Soon gone");
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    let o = Rc::clone(&org);
    // The read by id answers 404: the user vanished after the search page.
    let d2 = FakeDoors::new(move |_, r: &HttpRequest| {
        if r.url == format!("{ORG}/api/v1/users/00u1") {
            let mut g = json(404, &[], "{}");
            g.headers.push(("date".into(), http_date(o.now.get())));
            g
        } else {
            o.answer(r)
        }
    });
    *d2.kv.borrow_mut() = d.kv.borrow().clone();
    run(&d2).unwrap();
    assert!(emitted(&d2).is_empty(), "no deletion without the log's");
}

#[test]
fn a_group_privilege_event_rereads_the_groups_roles_and_emits_its_members() {
    let org = quiet_org();
    org.group_roles.borrow_mut().insert(
        "00g1".into(),
        vec![
            j!({"id": "ra1", "type": "USER_ADMIN", "label": "User Administrator", "assignmentType": "GROUP"}),
            j!({"id": "ra2", "type": "CUSTOM", "label": "Helpdesk Tier 2", "assignmentType": "GROUP"}),
        ],
    );
    org.group_members
        .borrow_mut()
        .insert("00g1".into(), vec!["00u4".into(), "00u5".into()]);
    org.log(
        "group.privilege.grant",
        T0 + 60_000,
        j!([group_target("00g1")]),
    );
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    // The walk knew the group (name, type) without roles.
    crate::facts::put_group(
        &d,
        1,
        "00g1",
        &crate::facts::GroupFacts {
            name: "Helpdesk".into(),
            kind: "OKTA_GROUP".into(),
            roles: vec![],
        },
    )
    .unwrap();
    run(&d).unwrap();
    let g = crate::facts::group(&d, 1, &["00g1".to_string()]).unwrap();
    assert_eq!(
        g[0],
        Some(crate::facts::GroupFacts {
            name: "Helpdesk".into(),
            kind: "OKTA_GROUP".into(),
            roles: vec!["Helpdesk Tier 2".into(), "USER_ADMIN".into()],
        }),
        "roles by type, custom ones by label, sorted"
    );
    assert_eq!(uids(&emitted(&d)), ["00u4", "00u5"]);
    let all = urls(&d);
    assert!(all.contains(&format!("{ORG}/api/v1/groups/00g1/roles")));
    assert!(all.contains(&format!("{ORG}/api/v1/groups/00g1/users?limit=1000")));
}

#[test]
fn users_already_emitted_inside_the_overlap_are_not_read_again() {
    let org = quiet_org();
    // Changed a minute before the first run's Date: inside the next run's overlap.
    org.put_user("00u1", T0 + 3_540_000, "One");
    org.put_user("00u2", T0 + 3_540_000, "Two");
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    run(&d).unwrap();
    assert_eq!(uids(&emitted(&d)), ["00u1", "00u2"]);
    assert_eq!(
        stored(&d).sync.unwrap().edge,
        [
            ("00u1".to_string(), T0 + 3_540_000),
            ("00u2".to_string(), T0 + 3_540_000)
        ]
    );
    // Ten minutes later: the search still lists both (W − 5 min); 00u2 changed again.
    org.at(T0 + 4_200_000);
    d.clock.set(T0 + 4_200_000);
    org.put_user("00u2", T0 + 4_100_000, "Two again");
    d.events.borrow_mut().clear();
    d.calls.borrow_mut().clear();
    run(&d).unwrap();
    let events = emitted(&d);
    assert_eq!(uids(&events), ["00u2"], "00u1 unchanged: not read again");
    assert_eq!(events[0]["user"]["display_name"], "Two again");
    assert!(!urls(&d).contains(&format!("{ORG}/api/v1/users/00u1")));
}

#[test]
fn a_user_named_by_the_log_and_already_read_in_this_run_after_the_event_is_not_read_twice() {
    let org = quiet_org();
    org.put_user("00u1", T0 + 60_000, "One");
    org.log(
        "user.account.update_profile",
        T0 + 60_000,
        j!([user_target("00u1")]),
    );
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    run(&d).unwrap();
    assert_eq!(uids(&emitted(&d)), ["00u1"]);
    let reads = urls(&d)
        .iter()
        .filter(|u| *u == &format!("{ORG}/api/v1/users/00u1"))
        .count();
    assert_eq!(reads, 1);
}

#[test]
fn a_run_stopped_at_any_request_resumes_without_losing_a_change() {
    // Two users pages, three log pages, a deletion and a group privilege event: a stop
    // before each request in turn, then a full run; together they emit every change.
    let build = || {
        let org = quiet_org();
        org.page.set(2);
        let t = T0 + 60_000;
        for i in 1..=3 {
            org.put_user(&format!("00u{i}"), t + i, &format!("Changed {i}"));
        }
        org.users.borrow_mut().remove("00u9");
        org.log(
            "user.lifecycle.delete.initiated",
            t,
            j!([user_target("00u9")]),
        );
        org.log("user.lifecycle.suspend", t, j!([user_target("00u4")]));
        org.log("user.mfa.factor.activate", t, j!([user_target("00u5")]));
        org.group_roles
            .borrow_mut()
            .insert("00g1".into(), vec![j!({"type": "ORG_ADMIN"})]);
        org.group_members
            .borrow_mut()
            .insert("00g1".into(), vec!["00u6".into()]);
        org.log("group.privilege.grant", t, j!([group_target("00g1")]));
        org.log("user.account.privilege.grant", t, j!([user_target("00u7")]));
        org
    };
    let want: Vec<String> = [
        "00u1", "00u2", "00u3", "00u4", "00u5", "00u6", "00u7", "00u9",
    ]
    .map(String::from)
    .to_vec();
    // How many requests a whole run takes.
    let org = build();
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    run(&d).unwrap();
    assert_eq!(uids(&emitted(&d)), want);
    let total = d.calls.borrow().len();
    assert!(total > 10, "{total}");
    for stop in 1..total {
        let org = build();
        let d = fake(&org);
        after_walk(&d, sync_at(T0));
        d.fail_from_call.set(Some(stop));
        assert!(run(&d).is_err(), "stopped at request {stop}");
        d.fail_from_call.set(None);
        d.calls.borrow_mut().clear();
        run(&d).unwrap();
        let mut got = uids(&emitted(&d));
        got.dedup();
        assert_eq!(got, want, "stopped at request {stop}");
        let sync = stored(&d).sync.unwrap();
        assert!(sync.run.is_none(), "stopped at {stop}: the run finished");
        assert_eq!(sync.watermark_ms, T0 + 3_600_000);
    }
}

#[test]
fn a_log_position_older_than_85_days_forces_a_full_walk_with_the_warning() {
    let org = quiet_org();
    let d = fake(&org);
    let mut sync = sync_at(T0);
    sync.log_at_ms = T0 + 3_600_000 - MAX_LOG_AGE_MS - 1;
    after_walk(&d, sync);
    let report = run(&d).unwrap();
    assert!(report.full_sync, "a walk ran");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let w = &report.warnings[0];
    assert!(
        w.contains("85 days")
            && w.contains("deleted in the gap cannot be reported")
            && w.contains("a full walk instead"),
        "{w}"
    );
    assert!(!w.contains('\n'));
    // The walk read every user; nothing of the log was asked.
    assert_eq!(uids(&emitted(&d)).len(), 9);
    assert!(!urls(&d).iter().any(|u| u.contains("/api/v1/logs")));
    // 85 days to the millisecond is still incremental.
    let org = quiet_org();
    let d = fake(&org);
    let mut sync = sync_at(T0);
    sync.log_at_ms = T0 + 3_600_000 - MAX_LOG_AGE_MS;
    after_walk(&d, sync);
    let report = run(&d).unwrap();
    assert!(
        !report.full_sync && report.warnings.is_empty(),
        "{report:?}"
    );
}

#[test]
fn without_okta_logs_read_the_run_is_a_walk_with_a_warning_naming_the_scope() {
    let org = quiet_org();
    let o = Rc::clone(&org);
    let d = FakeDoors::new(move |_, r: &HttpRequest| {
        if r.url.contains("/api/v1/logs") {
            json(
                403,
                &[("date", &http_date(o.now.get()))],
                r#"{"errorCode":"E0000006"}"#,
            )
        } else {
            o.answer(r)
        }
    });
    after_walk(&d, sync_at(T0));
    let report = run(&d).unwrap();
    assert!(report.full_sync);
    assert!(
        report.warnings[0].contains("grant okta.logs.read")
            && report.warnings[0].contains("a full walk instead"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn hostile_log_events_without_targets_are_skipped_and_counted_and_the_run_goes_on() {
    let org = quiet_org();
    org.log("user.lifecycle.suspend", T0 + 1, j!([]));
    org.log(
        "user.account.update_profile",
        T0 + 2,
        j!([{"type": "User", "id": "../../x"}]),
    );
    org.log("user.lifecycle.suspend", T0 + 3, j!([user_target("00u1")]));
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    let report = run(&d).unwrap();
    assert_eq!(uids(&emitted(&d)), ["00u1"]);
    assert_eq!(report.items_skipped, 2);
    assert!(!urls(&d).iter().any(|u| u.contains("..")));
}

#[test]
fn a_stored_position_in_another_org_is_not_followed() {
    let org = quiet_org();
    let d = fake(&org);
    let mut sync = sync_at(T0);
    sync.log_next = Some("https://other.okta.test/api/v1/logs?after=1".into());
    after_walk(&d, sync);
    let report = run(&d).unwrap();
    assert!(report.full_sync);
    assert!(
        report.warnings[0].contains("not in https://acme.okta.test"),
        "{:?}",
        report.warnings
    );
    assert!(!urls(&d).iter().any(|u| u.starts_with("https://other")));
}

#[test]
fn an_incremental_run_reports_its_progress_per_page() {
    let org = quiet_org();
    org.put_user("00u1", T0 + 60_000, "One");
    org.log(
        "user.lifecycle.suspend",
        T0 + 60_000,
        j!([user_target("00u2")]),
    );
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    run(&d).unwrap();
    let phases: Vec<(String, u64, u64)> = d
        .progress
        .borrow()
        .iter()
        .map(|p| (p.phase.clone(), p.pages_done, p.items_done))
        .collect();
    assert_eq!(
        phases,
        [
            ("incremental-users".to_string(), 1, 1),
            ("incremental-log".to_string(), 1, 2),
            ("incremental-log".to_string(), 2, 2)
        ]
    );
}

#[test]
fn the_admin_set_is_read_again_each_run_and_users_whose_roles_changed_are_emitted() {
    let org = quiet_org();
    *org.admins.borrow_mut() = vec!["00u1".into(), "00u2".into()];
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    // The first run after the walk records the set (two pages of one), emits nothing.
    run(&d).unwrap();
    assert!(emitted(&d).is_empty());
    assert_eq!(
        stored(&d).sync.unwrap().admins,
        Some(vec!["00u1".to_string(), "00u2".to_string()])
    );
    // 00u1 lost its role, 00u3 gained one, and the log said nothing of it.
    *org.admins.borrow_mut() = vec!["00u2".into(), "00u3".into()];
    org.at(T0 + 7_200_000);
    d.clock.set(T0 + 7_200_000);
    run(&d).unwrap();
    assert_eq!(uids(&emitted(&d)), ["00u1", "00u3"]);
    assert_eq!(
        stored(&d).sync.unwrap().admins,
        Some(vec!["00u2".to_string(), "00u3".to_string()])
    );
}

#[test]
fn without_okta_roles_read_the_admin_set_is_forgotten_and_the_run_goes_on() {
    let org = quiet_org();
    org.put_user("00u1", T0 + 60_000, "One");
    let o = Rc::clone(&org);
    let d = FakeDoors::new(move |_, r: &HttpRequest| {
        if r.url.contains("/api/v1/iam/") {
            json(
                403,
                &[("date", &http_date(o.now.get()))],
                r#"{"errorCode":"E0000006"}"#,
            )
        } else {
            o.answer(r)
        }
    });
    let mut sync = sync_at(T0);
    sync.admins = Some(vec!["00u9".into()]);
    after_walk(&d, sync);
    run(&d).unwrap();
    assert_eq!(uids(&emitted(&d)), ["00u1"]);
    assert_eq!(stored(&d).sync.unwrap().admins, None);
}

#[test]
fn a_user_the_lagging_search_missed_but_the_log_brought_is_not_read_again_next_run() {
    let org = quiet_org();
    org.lag_ms.set(120_000);
    // Renamed 30 s before the run: the index does not show it yet, the log does.
    let at = T0 + 3_600_000 - 30_000;
    org.put_user("00u1", at, "Renamed");
    org.log("user.account.update_profile", at, j!([user_target("00u1")]));
    let d = fake(&org);
    after_walk(&d, sync_at(T0));
    run(&d).unwrap();
    assert_eq!(uids(&emitted(&d)), ["00u1"]);
    assert_eq!(stored(&d).sync.unwrap().edge, [("00u1".to_string(), at)]);
    // Three minutes later the index shows it, unchanged, inside the overlap: not read again.
    org.at(T0 + 3_780_000);
    d.clock.set(T0 + 3_780_000);
    d.events.borrow_mut().clear();
    d.calls.borrow_mut().clear();
    run(&d).unwrap();
    assert!(emitted(&d).is_empty(), "{:?}", uids(&emitted(&d)));
    assert!(!urls(&d).contains(&format!("{ORG}/api/v1/users/00u1")));
}
