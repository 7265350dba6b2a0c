//! The full walk against a scripted org (`Org`, answering as Okta's documented endpoints
//! do, paged small so that every listing has several pages): the complete snapshots, stops
//! at every checkpoint call and every request resumed, missing scopes, the generation switch,
//! pacing and concurrency.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;
use connector_sdk::doors::fake::{json, FakeDoors};
use connector_sdk::doors::EmitError;
use connector_sdk::doors::{
    FetchError, HttpRequest, HttpResponse, KvError, KvWrite, Level, Progress,
};
use serde_json::json as j;

const ORG: &str = "https://acme.okta.test";

/// A scripted org.
#[derive(Clone, Default)]
struct Org {
    /// Users by id (full records).
    users: BTreeMap<String, Value>,
    /// Groups: id -> (name, type, members, role assignments).
    groups: BTreeMap<String, (String, String, Vec<String>, Vec<Value>)>,
    /// Role assignments of users (USER assignments).
    user_roles: BTreeMap<String, Vec<Value>>,
    /// Factors of users.
    factors: BTreeMap<String, Vec<Value>>,
    /// Scopes refused: "groups", "roles", "factors".
    refuse: Vec<&'static str>,
    /// Whether the groups list embeds stats.
    no_stats: bool,
}

/// A fake whose answers come from a boxed closure.
type BoxedDoors<'a> = FakeDoors<Box<dyn Fn(usize, &HttpRequest) -> HttpResponse + 'a>>;

const USERS_PAGE: usize = 3;
const GROUPS_PAGE: usize = 4;
const MEMBERS_PAGE: usize = 5;
const ADMINS_PAGE: usize = 2;

fn query(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// `items[after..after+size]` and the link to the rest.
fn paged<T: Clone>(url: &str, items: &[T], size: usize) -> (Vec<T>, Option<String>) {
    let after: usize = query(url, "after").map_or(0, |a| a.parse().unwrap());
    let end = (after + size).min(items.len());
    let path = url.split('?').next().unwrap();
    let next = (end < items.len()).then(|| format!("{path}?after={end}&limit={size}"));
    (items[after..end].to_vec(), next)
}

fn listing(items: Vec<Value>, next: Option<String>) -> HttpResponse {
    let mut r = json(200, &[], &Value::Array(items).to_string());
    if let Some(n) = next {
        r.headers
            .push(("link".into(), format!("<{n}>; rel=\"next\"")));
    }
    r
}

fn refused() -> HttpResponse {
    json(
        403,
        &[],
        r#"{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action"}"#,
    )
}

fn not_found() -> HttpResponse {
    json(404, &[], r#"{"errorCode":"E0000007"}"#)
}

impl Org {
    fn answer(&self, r: &HttpRequest) -> HttpResponse {
        let url = r.url.as_str();
        let path = client::path_of(url).split('?').next().unwrap().to_string();
        if path == "/.well-known/okta-organization" {
            return json(200, &[], r#"{"id":"00o1abcd"}"#);
        }
        let parts: Vec<&str> = path.strip_prefix("/api/v1/").unwrap().split('/').collect();
        let refuses = |s: &str| self.refuse.contains(&s);
        match parts.as_slice() {
            ["users"] => {
                assert_eq!(
                    query(url, "search").as_deref().or(Some("status%20pr")),
                    Some("status%20pr")
                );
                let all: Vec<Value> = self.users.values().cloned().collect();
                let (page, next) = paged(url, &all, USERS_PAGE);
                listing(page, next)
            }
            ["users", id] => match self.users.get(*id) {
                Some(u) => json(200, &[], &u.to_string()),
                None => not_found(),
            },
            ["users", id, "factors"] => {
                if refuses("factors") {
                    return refused();
                }
                if !self.users.contains_key(*id) {
                    return not_found();
                }
                listing(self.factors.get(*id).cloned().unwrap_or_default(), None)
            }
            ["users", id, "roles"] => {
                if refuses("roles") {
                    return refused();
                }
                listing(self.user_roles.get(*id).cloned().unwrap_or_default(), None)
            }
            ["users", id, "groups"] => {
                if refuses("groups") {
                    return refused();
                }
                let gs = self
                    .groups
                    .iter()
                    .filter(|(_, g)| g.2.iter().any(|m| m == id))
                    .map(|(gid, g)| j!({"id": gid, "type": g.1, "profile": {"name": g.0}}))
                    .collect();
                listing(gs, None)
            }
            ["groups"] => {
                if refuses("groups") {
                    return refused();
                }
                assert!(
                    query(url, "after").is_some()
                        || query(url, "expand").as_deref() == Some("stats")
                );
                let all: Vec<Value> = self
                    .groups
                    .iter()
                    .map(|(gid, g)| {
                        let mut v = j!({"id": gid, "type": g.1, "profile": {"name": g.0, "description": null}});
                        if !self.no_stats {
                            v["_embedded"] = j!({"stats": {"usersCount": g.2.len(), "hasAdminPrivlege": !g.3.is_empty()}});
                        }
                        v
                    })
                    .collect();
                let (page, next) = paged(url, &all, GROUPS_PAGE);
                listing(page, next)
            }
            ["groups", id, "users"] => {
                if refuses("groups") {
                    return refused();
                }
                let Some(g) = self.groups.get(*id) else {
                    return not_found();
                };
                let members: Vec<Value> =
                    g.2.iter()
                        .filter_map(|m| self.users.get(m).cloned())
                        .collect();
                let (page, next) = paged(url, &members, MEMBERS_PAGE);
                listing(page, next)
            }
            ["groups", id, "roles"] => {
                if refuses("roles") {
                    return refused();
                }
                match self.groups.get(*id) {
                    Some(g) => listing(g.3.clone(), None),
                    None => not_found(),
                }
            }
            ["iam", "assignees", "users"] => {
                if refuses("roles") {
                    return refused();
                }
                let holders: Vec<Value> = self
                    .user_roles
                    .iter()
                    .filter(|(u, r)| !r.is_empty() && self.users.contains_key(*u))
                    .map(|(u, _)| j!({"id": u, "orn": format!("orn:okta:directory:00o1abcd:users:{u}")}))
                    .collect();
                let (page, next) = paged(url, &holders, ADMINS_PAGE);
                let mut links = j!({});
                if let Some(n) = next {
                    links["next"] = j!({"href": n});
                }
                json(200, &[], &j!({"value": page, "_links": links}).to_string())
            }
            other => panic!("no such endpoint: {other:?} ({url})"),
        }
    }
}

fn user(id: &str, status: &str) -> Value {
    j!({"id": id, "status": status, "created": "2026-01-01T00:00:00.000Z",
        "lastUpdated": "2026-01-02T00:00:00.000Z",
        "profile": {"login": format!("{id}@acme.test"), "firstName": "Ö", "lastName": id}})
}

fn role(kind: &str, label: &str, assignment: &str) -> Value {
    j!({"id": format!("ra-{label}"), "type": kind, "label": label, "status": "ACTIVE", "assignmentType": assignment})
}

fn factor(kind: &str, status: &str) -> Value {
    j!({"id": format!("f-{kind}"), "factorType": kind, "provider": "OKTA", "status": status})
}

/// Twelve users (one DEPROVISIONED), Everyone and eight more groups, admins directly, by a
/// group and by a custom role, factors of several kinds and statuses.
fn org() -> Org {
    let mut o = Org::default();
    for i in 1..=12 {
        let id = format!("00u{i:02}");
        let status = if i == 12 { "DEPROVISIONED" } else { "ACTIVE" };
        o.users.insert(id.clone(), user(&id, status));
    }
    let all: Vec<String> = o.users.keys().cloned().collect();
    o.groups.insert(
        "00g00every".into(),
        ("Everyone".into(), "BUILT_IN".into(), all, vec![]),
    );
    o.groups.insert(
        "00g02help".into(),
        (
            "Help desk".into(),
            "OKTA_GROUP".into(),
            vec!["00u03".into(), "00u04".into()],
            vec![role("HELP_DESK_ADMIN", "Help Desk Administrator", "GROUP")],
        ),
    );
    o.groups.insert(
        "00g03app".into(),
        (
            "Salesforce users".into(),
            "APP_GROUP".into(),
            vec!["00u05".into(), "00u03".into()],
            vec![],
        ),
    );
    for k in 4..=9 {
        o.groups.insert(
            format!("00g{k:02}x"),
            (
                format!("Team {k}"),
                "OKTA_GROUP".into(),
                vec![format!("00u{k:02}")],
                vec![],
            ),
        );
    }
    o.user_roles.insert(
        "00u01".into(),
        vec![role("SUPER_ADMIN", "Super Administrator", "USER")],
    );
    o.user_roles.insert(
        "00u02".into(),
        vec![
            j!({"id": "irb1", "type": "CUSTOM", "label": "Audit Reader", "status": "ACTIVE",
                 "assignmentType": "USER", "role": "cr0abc", "resource-set": "iam0xyz"}),
        ],
    );
    o.factors.insert(
        "00u01".into(),
        vec![factor("push", "ACTIVE"), factor("email", "ACTIVE")],
    );
    o.factors.insert(
        "00u02".into(),
        vec![factor("email", "ACTIVE"), factor("question", "ACTIVE")],
    );
    o.factors
        .insert("00u04".into(), vec![factor("sms", "PENDING_ACTIVATION")]);
    o.factors.insert(
        "00u05".into(),
        vec![
            factor("webauthn", "ACTIVE"),
            factor("token:software:totp", "INACTIVE"),
        ],
    );
    o
}

fn config(extra: &[(&str, &str)]) -> Config {
    let mut p = vec![("org_url".to_string(), ORG.to_string())];
    p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    OktaConnector::parse(&p).unwrap()
}

fn doors(o: &Org) -> FakeDoors<impl Fn(usize, &HttpRequest) -> HttpResponse + '_> {
    FakeDoors::new(move |_, r: &HttpRequest| o.answer(r))
}

/// The last event emitted of each user.
fn by_user(events: &[String]) -> BTreeMap<String, Value> {
    events
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(e).unwrap();
            (v["user"]["uid"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn urls<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>) -> Vec<String> {
    d.calls
        .borrow()
        .iter()
        .flat_map(|(_, r)| r.iter().map(|r| r.url.clone()))
        .collect()
}

#[test]
fn a_walk_emits_every_user_complete() {
    let o = org();
    let d = doors(&o);
    let report = OktaConnector::run(&d, &config(&[])).unwrap();
    let events = by_user(&d.events.borrow());
    assert_eq!(events.len(), 12, "DEPROVISIONED included");
    assert_eq!(
        (
            report.events_emitted,
            report.items_seen,
            report.items_partial
        ),
        (12, 12, 0)
    );
    assert!(report.full_sync);
    assert!(report.unavailable.is_empty(), "{:?}", report.unavailable);

    let u1 = &events["00u01"]["user"];
    assert_eq!(
        (u1["type_id"].clone(), u1["type"].clone()),
        (j!(2), j!("Admin"))
    );
    assert_eq!(u1["has_mfa"], true);
    assert_eq!(
        u1["groups"],
        j!([{"uid": "00g00every", "name": "Everyone", "type": "BUILT_IN"}])
    );
    let status = |uid: &str| events[uid]["enrichments"][0]["data"].clone();
    assert_eq!(status("00u01")["roles"], j!(["SUPER_ADMIN"]));
    assert_eq!(status("00u01")["mfa_methods"], j!(["email", "push"]));
    assert_eq!(status("00u01")["is_mfa"], true);

    // A custom role is named by its label; email and question are not strong factors.
    assert_eq!(events["00u02"]["user"]["type_id"], 2);
    assert_eq!(status("00u02")["roles"], j!(["Audit Reader"]));
    assert_eq!(events["00u02"]["user"]["has_mfa"], false);
    assert_eq!(status("00u02")["mfa_methods"], j!(["email", "question"]));

    // A role held through a group; groups sorted by uid with their types.
    let u3 = &events["00u03"]["user"];
    assert_eq!(u3["type_id"], 2);
    assert_eq!(status("00u03")["roles"], j!(["HELP_DESK_ADMIN"]));
    assert_eq!(
        u3["groups"],
        j!([{"uid": "00g00every", "name": "Everyone", "type": "BUILT_IN"},
            {"uid": "00g02help", "name": "Help desk", "type": "OKTA_GROUP"},
            {"uid": "00g03app", "name": "Salesforce users", "type": "APP_GROUP"}])
    );
    assert_eq!(u3["has_mfa"], false, "no factors: read, none active");
    assert_eq!(status("00u03")["mfa_methods"], j!([]));

    // A factor not ACTIVE counts for nothing.
    assert_eq!(events["00u04"]["user"]["has_mfa"], false);
    assert_eq!(status("00u04")["mfa_methods"], j!([]));
    assert_eq!(events["00u05"]["user"]["has_mfa"], true);
    assert_eq!(status("00u05")["mfa_methods"], j!(["webauthn"]));

    // Roles read, none held: User.
    let u6 = &events["00u06"]["user"];
    assert_eq!(
        (u6["type_id"].clone(), u6["type"].clone()),
        (j!(1), j!("User"))
    );
    assert_eq!(status("00u06")["roles"], j!([]));
    assert_eq!(events["00u12"]["user"]["account"]["is_disabled"], true);

    // Roles read only for the groups stats mark and the assignees; factors for every user.
    let all = urls(&d);
    let count = |p: &str| all.iter().filter(|u| u.contains(p)).count();
    assert_eq!(count("/roles"), 3, "00g02help, 00u01, 00u02: {all:?}");
    assert_eq!(count("/factors"), 12);
    assert_eq!(count("/api/v1/groups?"), 3, "9 groups, 4 a page");
    assert_eq!(count("/api/v1/iam/assignees/users"), 1);
    // Everyone's 12 members: 3 pages of 5.
    assert_eq!(count("/api/v1/groups/00g00every/users"), 3);

    // Each stage reported its start.
    let phases: BTreeSet<String> = d
        .progress
        .borrow()
        .iter()
        .map(|p| p.phase.clone())
        .collect();
    for p in ["groups", "members", "admins", "users", "finish"] {
        assert!(phases.contains(p), "{phases:?}");
    }
}

#[test]
fn without_stats_every_group_s_roles_are_read() {
    let mut o = org();
    o.no_stats = true;
    let d = doors(&o);
    OktaConnector::run(&d, &config(&[])).unwrap();
    let all = urls(&d);
    assert_eq!(
        all.iter()
            .filter(|u| u.contains("/api/v1/groups/") && u.ends_with("/roles"))
            .count(),
        9
    );
    assert_eq!(by_user(&d.events.borrow())["00u03"]["user"]["type_id"], 2);
}

#[test]
fn a_user_in_300_groups_gets_them_all_from_the_group_side() {
    let mut o = org();
    for k in 0..300 {
        let members = vec!["00u07".to_string(), format!("00u{:02}", 1 + k % 11)];
        o.groups.insert(
            format!("00gm{k:04}"),
            (format!("Many {k}"), "OKTA_GROUP".into(), members, vec![]),
        );
    }
    let d = doors(&o);
    OktaConnector::run(&d, &config(&[("max_concurrency", "4")])).unwrap();
    let events = by_user(&d.events.borrow());
    let groups = events["00u07"]["user"]["groups"]
        .as_array()
        .unwrap()
        .clone();
    // 300 + Everyone + its own team.
    assert_eq!(groups.len(), 302);
    let uids: Vec<&str> = groups.iter().map(|g| g["uid"].as_str().unwrap()).collect();
    let mut sorted = uids.clone();
    sorted.sort();
    assert_eq!(uids, sorted, "sorted by uid");
    assert!(
        d.calls.borrow().iter().all(|(_, r)| r.len() <= 4),
        "never more than max_concurrency in flight"
    );
    // Small groups' first pages are read together.
    let batched = d
        .calls
        .borrow()
        .iter()
        .filter(|(_, r)| r.len() == 4 && r[0].url.ends_with("/users?limit=1000"))
        .count();
    assert!(batched >= 75, "{batched}");
}

/// Runs the walk once stopped by `stop`, then again to its end; returns both doors' events
/// and every URL both asked for.
fn stopped_then_resumed(
    o: &Org,
    stop: &dyn Fn(&BoxedDoors<'_>),
) -> (Vec<String>, Vec<String>, bool) {
    let first: BoxedDoors<'_> = FakeDoors::new(Box::new(move |_, r: &HttpRequest| o.answer(r)));
    stop(&first);
    let stopped = OktaConnector::run(&first, &config(&[])).is_err();
    let second = doors(o);
    *second.kv.borrow_mut() = first.kv.borrow().clone();
    OktaConnector::run(&second, &config(&[])).unwrap();
    let mut events = first.events.borrow().clone();
    events.extend(second.events.borrow().iter().cloned());
    let mut all: Vec<String> = first
        .calls
        .borrow()
        .iter()
        .flat_map(|(_, r)| r.iter().map(|r| r.url.clone()))
        .collect();
    all.extend(urls(&second));
    (events, all, stopped)
}

fn assert_resumed(
    straight: &BTreeMap<String, Value>,
    straight_urls: &[String],
    events: &[String],
    all: &[String],
    at: &str,
) {
    assert_eq!(
        &by_user(events),
        straight,
        "{at}: the last event of each user is the straight run's"
    );
    let distinct: BTreeSet<&String> = events.iter().collect();
    let straight_set: BTreeSet<String> = straight.values().map(|v| v.to_string()).collect();
    assert!(
        distinct
            .iter()
            .all(|e| straight_set.contains(&serde_json::from_str::<Value>(e).unwrap().to_string())),
        "{at}: nothing but the straight run's events"
    );
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for u in all {
        *counts.entry(u).or_default() += 1;
    }
    let again = all.len() - straight_urls.len();
    // Read again at most: the page in flight, or the batch in flight (a batch of first pages,
    // or a users page and its factors), and the org id.
    assert!(
        again <= 1 + 10 + USERS_PAGE + 1,
        "{at}: {again} requests again"
    );
    assert!(
        counts.values().all(|n| *n <= 2),
        "{at}: a request made three times"
    );
}

#[test]
fn a_walk_stopped_at_any_checkpoint_call_resumes_and_loses_nothing() {
    let o = org();
    let d = doors(&o);
    OktaConnector::run(&d, &config(&[])).unwrap();
    let straight = by_user(&d.events.borrow());
    let straight_urls = urls(&d);
    let kv_calls = d.kv_calls.get();
    assert!(kv_calls > 20);
    for k in 0..kv_calls {
        let (events, all, stopped) = stopped_then_resumed(&o, &|f| f.fail_kv_from.set(Some(k)));
        assert!(stopped, "checkpoint call {k}");
        assert_resumed(
            &straight,
            &straight_urls,
            &events,
            &all,
            &format!("checkpoint call {k}"),
        );
    }
}

#[test]
fn a_walk_stopped_at_any_request_resumes_and_loses_nothing() {
    let o = org();
    let d = doors(&o);
    OktaConnector::run(&d, &config(&[])).unwrap();
    let straight = by_user(&d.events.borrow());
    let straight_urls = urls(&d);
    let calls = d.calls.borrow().len();
    for c in 0..calls {
        let (events, all, stopped) = stopped_then_resumed(&o, &|f| f.fail_from_call.set(Some(c)));
        assert!(stopped, "request call {c}");
        assert_resumed(
            &straight,
            &straight_urls,
            &events,
            &all,
            &format!("request call {c}"),
        );
        // A finished source is not read again: the groups list is read once in all.
        let groups_first = all
            .iter()
            .filter(|u| u.ends_with("/api/v1/groups?limit=1000&expand=stats"))
            .count();
        assert!(groups_first <= 2, "call {c}");
        if c > 2 {
            assert_eq!(
                groups_first, 1,
                "call {c}: the first groups page was finished"
            );
        }
    }
}

/// Doors whose sink fails from the `fail_at`-th emit call on (a run stopped there).
struct FailingSink<'a> {
    inner: BoxedDoors<'a>,
    fail_at: usize,
    emits: std::cell::Cell<usize>,
}

impl Doors for FailingSink<'_> {
    fn fetch_all(&self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, FetchError>> {
        self.inner.fetch_all(reqs)
    }
    fn kv_get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, KvError> {
        self.inner.kv_get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, KvError> {
        self.inner.kv_set(key, value, expected)
    }
    fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<(Vec<u8>, u64)>>, KvError> {
        self.inner.kv_get_many(keys)
    }
    fn kv_set_many(&self, writes: &[KvWrite]) -> Result<Vec<u64>, KvError> {
        self.inner.kv_set_many(writes)
    }
    fn kv_delete_prefix(&self, prefix: &str, limit: u32) -> Result<u32, KvError> {
        self.inner.kv_delete_prefix(prefix, limit)
    }
    fn progress(&self, p: &Progress) {
        self.inner.progress(p)
    }
    fn emit(&self, events: &[String]) -> Result<(), EmitError> {
        let n = self.emits.get();
        self.emits.set(n + 1);
        if n >= self.fail_at {
            return Err(EmitError::Sink("the sink is down".into()));
        }
        self.inner.emit(events)
    }
    fn log(&self, level: Level, message: &str) {
        self.inner.log(level, message)
    }
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn sleep_ms(&self, ms: u64) {
        self.inner.sleep_ms(ms)
    }
}

#[test]
fn a_walk_whose_sink_fails_at_any_page_resumes_at_that_page() {
    let o = org();
    let d = doors(&o);
    OktaConnector::run(&d, &config(&[])).unwrap();
    let straight = by_user(&d.events.borrow());
    let pages = 12usize.div_ceil(USERS_PAGE);
    for k in 0..pages {
        let first = FailingSink {
            inner: FakeDoors::new(Box::new(|_, r: &HttpRequest| o.answer(r))),
            fail_at: k,
            emits: Default::default(),
        };
        let e = OktaConnector::run(&first, &config(&[])).unwrap_err();
        assert!(e.to_string().contains("the sink is down"), "{e}");
        assert_eq!(first.inner.events.borrow().len(), k * USERS_PAGE);
        let second = doors(&o);
        *second.kv.borrow_mut() = first.inner.kv.borrow().clone();
        OktaConnector::run(&second, &config(&[])).unwrap();
        assert_eq!(
            second.events.borrow().len(),
            12 - k * USERS_PAGE,
            "page {k}: resumed at the page whose events were refused"
        );
        let mut events = first.inner.events.borrow().clone();
        events.extend(second.events.borrow().iter().cloned());
        assert_eq!(by_user(&events), straight, "page {k}");
        assert!(
            urls(&second)
                .iter()
                .all(|u| !u.contains("/groups") && !u.contains("/iam/")),
            "page {k}: finished sources not read again"
        );
    }
}

#[test]
fn missing_scopes_give_partial_events_with_those_fields_left_out() {
    for (scope, field) in [
        ("groups", "groups"),
        ("roles", "roles"),
        ("factors", "factors"),
    ] {
        let mut o = org();
        o.refuse = vec![scope];
        let d = doors(&o);
        let report = OktaConnector::run(&d, &config(&[])).unwrap();
        assert_eq!(
            (report.events_emitted, report.items_partial),
            (12, 12),
            "{scope}"
        );
        assert_eq!(
            report.unavailable.len(),
            1,
            "{scope}: {:?}",
            report.unavailable
        );
        assert!(
            report.unavailable[0].starts_with(field),
            "{:?}",
            report.unavailable
        );
        let events = by_user(&d.events.borrow());
        let u1 = &events["00u01"]["user"];
        let data = &events["00u01"]["enrichments"][0]["data"];
        match scope {
            "groups" => {
                assert!(u1.get("groups").is_none());
                assert_eq!(u1["type_id"], 2, "roles still read");
                assert_eq!(
                    events["00u03"]["user"]["type_id"], 1,
                    "a group's roles are unknown without the groups"
                );
            }
            "roles" => {
                assert_eq!(
                    (u1["type_id"].clone(), u1["type"].clone()),
                    (j!(0), j!("Unknown"))
                );
                assert!(data.get("roles").is_none());
                assert_eq!(u1["groups"].as_array().unwrap().len(), 1);
                assert!(
                    urls(&d).iter().all(|u| !u.contains("/iam/")),
                    "no admins list without the scope"
                );
            }
            _ => {
                assert!(u1.get("has_mfa").is_none());
                assert!(data.get("is_mfa").is_none() && data.get("mfa_methods").is_none());
                assert_eq!(u1["type_id"], 2);
                let factor_reqs = urls(&d).iter().filter(|u| u.ends_with("/factors")).count();
                assert_eq!(
                    factor_reqs, USERS_PAGE,
                    "factors not asked again once refused"
                );
            }
        }
    }
}

#[test]
fn a_finished_walk_switches_generation_and_deletes_the_old_one() {
    let o = org();
    let d = doors(&o);
    OktaConnector::run(&d, &config(&[])).unwrap();
    let keys = |d: &FakeDoors<_>| d.kv.borrow().keys().cloned().collect::<Vec<String>>();
    let after_first = keys(&d);
    assert!(after_first.iter().any(|k| k.starts_with("okta/f/1/g/")));
    assert!(
        after_first
            .iter()
            .all(|k| !k.starts_with("okta/f/1/u/") && !k.starts_with("okta/w/")),
        "{after_first:?}"
    );
    let (_, c) = cursor::read(&d).unwrap();
    assert_eq!((c.gen, c.walk.is_none()), (1, true));
    let sync = c.sync.unwrap();
    assert_eq!(sync.watermark_ms, 1_700_000_000_000);
    // A second walk (the incremental state dropped: a walk is due).
    let second = doors(&o);
    *second.kv.borrow_mut() = d.kv.borrow().clone();
    let mut c2 = cursor::Cursor {
        gen: 1,
        walk: None,
        sync: None,
    };
    let (mut cell, _) = cursor::read(&second).unwrap();
    cell.write(&second, &c2).unwrap();
    second
        .kv
        .borrow_mut()
        .insert("okta/f/1/u/stale".into(), (b"x".to_vec(), 1));
    OktaConnector::run(&second, &config(&[])).unwrap();
    let after = keys(&second);
    assert!(
        after.iter().all(|k| !k.starts_with("okta/f/1/")),
        "{after:?}"
    );
    assert_eq!(
        after
            .iter()
            .filter(|k| k.starts_with("okta/f/2/g/"))
            .count(),
        9
    );
    (_, c2) = cursor::read(&second).unwrap();
    assert_eq!(c2.gen, 2);
    assert_eq!(
        by_user(&second.events.borrow()),
        by_user(&d.events.borrow())
    );
}

#[test]
fn a_first_slice_cursor_is_ignored_and_removed() {
    let o = org();
    let d = doors(&o);
    d.kv.borrow_mut().insert(
        "users/cursor".into(),
        (
            br#"{"format":1,"next":"https://acme.okta.test/api/v1/users?after=00u05"}"#.to_vec(),
            3,
        ),
    );
    OktaConnector::run(&d, &config(&[])).unwrap();
    assert_eq!(
        by_user(&d.events.borrow()).len(),
        12,
        "a new walk from the start"
    );
    assert!(!d.kv.borrow().contains_key("users/cursor"));
}

#[test]
fn the_walk_starts_at_the_org_s_date_not_the_local_clock() {
    let o = org();
    let d = FakeDoors::new(|_, r: &HttpRequest| {
        let mut a = o.answer(r);
        a.headers
            .push(("date".into(), "Sun, 06 Dec 2026 10:00:00 GMT".into()));
        a
    });
    OktaConnector::run(&d, &config(&[])).unwrap();
    let (_, c) = cursor::read(&d).unwrap();
    let s = c.sync.unwrap();
    let at = connector_sdk::time::parse_rfc3339_ms("2026-12-06T10:00:00Z").unwrap();
    assert_eq!(
        (s.watermark_ms, s.log_since_ms, s.log_at_ms, s.log_next),
        (at, at, at, None)
    );
}

// --- pacing ----------------------------------------------------------------------------

/// Doors whose org counts each bucket per 60 s window as Okta does: `X-Rate-Limit-*` on
/// every answer, 429 past the limit (a 429 of the connector's own making fails the test).
struct Paced<'a> {
    inner: BoxedDoors<'a>,
    limits: HashMap<&'static str, u64>,
    /// (bucket, window) -> requests counted.
    counted: std::cell::RefCell<HashMap<(&'static str, i64), u64>>,
    /// Requests a neighbour spent at the start of each window, per bucket.
    neighbour: HashMap<&'static str, u64>,
    too_many: std::cell::Cell<u64>,
    /// A concurrency 429 answered to the first request of this call number.
    concurrency_429_at: Option<usize>,
}

impl Doors for Paced<'_> {
    fn fetch_all(&self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, FetchError>> {
        let n = self.inner.calls.borrow().len();
        let now = self.inner.now_ms();
        let window = now.div_euclid(60_000);
        let answers = self.inner.fetch_all(reqs.clone());
        reqs.iter()
            .zip(answers)
            .enumerate()
            .map(|(i, (r, a))| {
                let mut a = a?;
                let bucket = client::bucket_of(&r.url);
                let limit = self.limits.get(bucket).copied().unwrap_or(1_000);
                let reset = ((window + 1) * 60).to_string();
                if self.concurrency_429_at == Some(n) && i == 0 {
                    // "The first request to exceed the concurrent limit returns an HTTP 429";
                    // the headers report the concurrent values, Reset an estimate.
                    let est = (now / 1000 + 3).to_string();
                    return Ok(json(
                        429,
                        &[
                            ("x-rate-limit-limit", "75"),
                            ("x-rate-limit-remaining", "0"),
                            ("x-rate-limit-reset", &est),
                        ],
                        "{}",
                    ));
                }
                let mut counted = self.counted.borrow_mut();
                let c = counted
                    .entry((bucket, window))
                    .or_insert_with(|| self.neighbour.get(bucket).copied().unwrap_or(0));
                *c += 1;
                if *c > limit {
                    self.too_many.set(self.too_many.get() + 1);
                    return Ok(json(
                        429,
                        &[
                            ("x-rate-limit-limit", &limit.to_string()),
                            ("x-rate-limit-remaining", "0"),
                            ("x-rate-limit-reset", &reset),
                        ],
                        "{}",
                    ));
                }
                a.headers.extend([
                    ("x-rate-limit-limit".to_string(), limit.to_string()),
                    (
                        "x-rate-limit-remaining".to_string(),
                        (limit - *c).to_string(),
                    ),
                    ("x-rate-limit-reset".to_string(), reset),
                ]);
                Ok(a)
            })
            .collect()
    }
    fn kv_get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, KvError> {
        self.inner.kv_get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, KvError> {
        self.inner.kv_set(key, value, expected)
    }
    fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<(Vec<u8>, u64)>>, KvError> {
        self.inner.kv_get_many(keys)
    }
    fn kv_set_many(&self, writes: &[KvWrite]) -> Result<Vec<u64>, KvError> {
        self.inner.kv_set_many(writes)
    }
    fn kv_delete_prefix(&self, prefix: &str, limit: u32) -> Result<u32, KvError> {
        self.inner.kv_delete_prefix(prefix, limit)
    }
    fn progress(&self, p: &Progress) {
        self.inner.progress(p)
    }
    fn emit(&self, events: &[String]) -> Result<(), EmitError> {
        self.inner.emit(events)
    }
    fn log(&self, level: Level, message: &str) {
        self.inner.log(level, message)
    }
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn sleep_ms(&self, ms: u64) {
        self.inner.sleep_ms(ms)
    }
}

fn paced<'a>(
    o: &'a Org,
    limits: &[(&'static str, u64)],
    neighbour: &[(&'static str, u64)],
) -> Paced<'a> {
    Paced {
        inner: FakeDoors::new(Box::new(move |_, r: &HttpRequest| o.answer(r))),
        limits: limits.iter().copied().collect(),
        counted: Default::default(),
        neighbour: neighbour.iter().copied().collect(),
        too_many: Default::default(),
        concurrency_429_at: None,
    }
}

fn big_org(users: usize) -> Org {
    let mut o = org();
    for i in 13..=users {
        let id = format!("00u{i:04}");
        o.users.insert(id.clone(), user(&id, "ACTIVE"));
        o.factors.insert(id, vec![factor("push", "ACTIVE")]);
    }
    o
}

#[test]
fn pacing_never_takes_more_than_half_a_bucket_nor_makes_a_429() {
    let o = big_org(120);
    // Factors, roles and members share "/api/v1/*": 40 a minute, so 20 ours.
    let d = paced(
        &o,
        &[
            ("/api/v1/*", 40),
            ("/api/v1/users", 20),
            ("/api/v1/groups", 10),
        ],
        &[],
    );
    let report = OktaConnector::run(&d, &config(&[])).unwrap();
    assert_eq!(report.events_emitted, 120);
    assert_eq!(d.too_many.get(), 0, "no 429 of our making");
    for ((bucket, window), n) in d.counted.borrow().iter() {
        let limit = d.limits.get(bucket).copied().unwrap_or(1_000);
        assert!(*n <= limit / 2, "{bucket} window {window}: {n} of {limit}");
    }
    assert!(
        d.inner.slept.get() >= 60_000,
        "the factors took several windows"
    );
    assert!(d.inner.calls.borrow().iter().all(|(_, r)| r.len() <= 10));
}

#[test]
fn pacing_leaves_a_neighbour_s_spent_bucket_alone() {
    let o = big_org(40);
    // A neighbour spends 90 of the 100 of "/api/v1/*" at the start of every window.
    let d = paced(&o, &[("/api/v1/*", 100)], &[("/api/v1/*", 90)]);
    let report = OktaConnector::run(&d, &config(&[])).unwrap();
    assert_eq!(report.events_emitted, 40);
    assert_eq!(d.too_many.get(), 0, "no 429 of our making");
    for ((bucket, window), n) in d.counted.borrow().iter() {
        if *bucket == "/api/v1/*" {
            assert!(
                *n <= 100 - 5,
                "window {window}: {n} counted, the reserve taken"
            );
        }
    }
}

#[test]
fn a_concurrency_429_in_a_batch_is_waited_out_and_asked_again() {
    let o = org();
    let mut d = paced(&o, &[], &[]);
    // Call 4 is the first batch of members' first pages.
    d.concurrency_429_at = Some(4);
    OktaConnector::run(&d, &config(&[])).unwrap();
    let calls = d.inner.calls.borrow();
    let (t4, t5) = (calls[4].0, calls[5].0);
    assert!(
        t5 - t4 >= 3_000,
        "waited until the estimated reset: {}",
        t5 - t4
    );
    // Reset (3 s ahead) plus at most a second of jitter: not parked until the window turns.
    assert!(
        t5 - t4 <= 4_000,
        "waited only the 429's estimate, not the bucket's window: {}",
        t5 - t4
    );
    assert_eq!(calls[5].1.len(), 1, "only the refused request asked again");
    assert_eq!(calls[5].1[0].url, calls[4].1[0].url);
    drop(calls);
    assert_eq!(by_user(&d.inner.events.borrow()).len(), 12);
}

// --- enrich ----------------------------------------------------------------------------

#[test]
fn read_complete_reads_a_user_by_id_with_its_groups_factors_and_roles() {
    let o = org();
    let d = doors(&o);
    OktaConnector::run(&d, &config(&[])).unwrap();
    let c = config(&[]);
    let ctx = Ctx {
        doors: &d,
        config: &c,
        client: client::Client::new(&d, &c),
        org_id: "00o1abcd".into(),
        report: Report::default(),
    };
    let ids: Vec<String> = ["00u03", "00u01", "00u99"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got = enrich::read_complete(&ctx, 1, &ids).unwrap();
    assert_eq!(got.len(), 3);
    let (user, e) = got[0].1.clone().unwrap();
    assert_eq!(user["id"], "00u03");
    assert_eq!(e.groups.as_ref().unwrap().len(), 3);
    assert_eq!(
        e.roles,
        Some(vec!["HELP_DESK_ADMIN".to_string()]),
        "the group's roles from the facts"
    );
    assert_eq!(e.factors, Some(vec![]));
    let (_, e1) = got[1].1.clone().unwrap();
    assert_eq!(e1.roles, Some(vec!["SUPER_ADMIN".to_string()]));
    assert_eq!(map::has_mfa(&e1), Some(true));
    assert_eq!(got[2], ("00u99".to_string(), None), "404: deleted");
    let asked = urls(&d).iter().filter(|u| u.contains("00u99")).count();
    assert_eq!(asked, 1, "a deleted user costs its record's request only");
}

#[test]
fn read_factors_of_a_refused_scope_is_none_for_everyone() {
    let mut o = org();
    o.refuse = vec!["factors"];
    let d = doors(&o);
    let c = config(&[]);
    let client = client::Client::new(&d, &c);
    let ids: Vec<String> = ["00u01", "00u02"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        enrich::read_factors(&client, &ids).unwrap(),
        vec![None, None]
    );
}

#[test]
fn per_id_paths_are_folded_into_okta_s_buckets() {
    let cases = [
        (
            "/api/v1/users?search=status%20pr&limit=200",
            "/api/v1/users",
        ),
        ("/api/v1/users?after=x", "/api/v1/users"),
        ("/api/v1/users/00u1", "/api/v1/users/{id}"),
        ("/api/v1/users/00u2", "/api/v1/users/{id}"),
        ("/api/v1/users/00u1/factors", "/api/v1/*"),
        ("/api/v1/users/00u1/roles", "/api/v1/*"),
        ("/api/v1/users/00u1/groups", "/api/v1/*"),
        ("/api/v1/groups?limit=1000&expand=stats", "/api/v1/groups"),
        ("/api/v1/groups/00g1/users?limit=1000", "/api/v1/*"),
        ("/api/v1/groups/00g1/roles", "/api/v1/*"),
        ("/api/v1/iam/assignees/users?limit=100", "/api/v1/*"),
        ("/api/v1/logs?since=x", "/api/v1/logs"),
        ("/oauth2/v1/token", "/oauth2/v1/token"),
    ];
    for (path, bucket) in cases {
        assert_eq!(client::bucket_of(&format!("{ORG}{path}")), bucket, "{path}");
    }
}

#[test]
fn group_facts_round_trip_by_generation() {
    let o = org();
    let d = doors(&o);
    let g = facts::GroupFacts {
        name: "Admins – Ω".into(),
        kind: "OKTA_GROUP".into(),
        roles: vec!["ORG_ADMIN".into()],
    };
    facts::put_group(&d, 3, "00g1", &g).unwrap();
    let ids = vec!["00g1".to_string(), "00g2".to_string()];
    assert_eq!(facts::group(&d, 3, &ids).unwrap(), vec![Some(g), None]);
    assert_eq!(facts::group(&d, 4, &ids).unwrap(), vec![None, None]);
    assert!(d.kv.borrow().contains_key("okta/f/3/g/00g1"));
}
