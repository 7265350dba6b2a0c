//! The connector against `FakeDoors`: configuration, describe and egress, both credentials'
//! request shapes, Link paging, 429 and pacing waits, resuming, and the mapping.

use super::*;
use connector_sdk::doors::fake::{json, FakeDoors};
use connector_sdk::doors::{HttpRequest, HttpResponse};
use serde_json::json as j;

const ORG: &str = "https://acme.okta.test";
const WELL_KNOWN: &str = "https://acme.okta.test/.well-known/okta-organization";
const TOKEN_URL: &str = "https://acme.okta.test/oauth2/v1/token";
const FIRST: &str = "https://acme.okta.test/api/v1/users?search=status%20pr&limit=200";

fn pairs(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p = vec![("org_url".to_string(), ORG.to_string())];
    p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    p
}

fn config(extra: &[(&str, &str)]) -> Config {
    OktaConnector::parse(&pairs(extra)).unwrap()
}

fn err(p: &[(&str, &str)]) -> String {
    let pairs: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    OktaConnector::parse(&pairs).err().unwrap().0
}

fn org_answer() -> HttpResponse {
    json(200, &[], r#"{"id":"00o1abcd","pipeline":"idx"}"#)
}

fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn requests<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>) -> Vec<HttpRequest> {
    d.calls
        .borrow()
        .iter()
        .flat_map(|(_, r)| r.clone())
        .collect()
}

/// The answers of an org with no groups, no admins and no factors: what the walk's stages
/// before and beside the users list read.
fn empty_rest(r: &HttpRequest) -> Option<HttpResponse> {
    let path = client::path_of(&r.url);
    if path.starts_with("/api/v1/groups") {
        Some(json(200, &[], "[]"))
    } else if path.starts_with("/api/v1/iam/assignees/users") {
        Some(json(200, &[], r#"{"value":[],"_links":{}}"#))
    } else if path.starts_with("/api/v1/users/") && path.ends_with("/factors") {
        Some(json(200, &[], "[]"))
    } else {
        None
    }
}

/// The requests but those [`empty_rest`] answers: the org id, tokens and the users list.
fn listed<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>) -> Vec<HttpRequest> {
    requests(d)
        .into_iter()
        .filter(|r| empty_rest(r).is_none())
        .collect()
}

fn user(id: &str) -> Value {
    j!({"id": id, "status": "ACTIVE", "created": "2026-01-01T00:00:00.000Z",
        "lastUpdated": "2026-01-02T00:00:00.000Z", "profile": {"login": format!("{id}@acme.test")}})
}

fn page(users: &[Value], next: Option<&str>) -> HttpResponse {
    let body = Value::Array(users.to_vec()).to_string();
    let mut r = json(200, &[], &body);
    r.headers
        .push(("link".into(), format!("<{FIRST}>; rel=\"self\"")));
    if let Some(n) = next {
        r.headers
            .push(("link".into(), format!("<{n}>; rel=\"next\"")));
    }
    r
}

// --- configuration ---------------------------------------------------------------------

#[test]
fn a_minimal_configuration_takes_the_defaults() {
    let c = config(&[]);
    assert_eq!(
        (
            c.org_url.as_str(),
            c.auth,
            c.page_size,
            c.max_concurrency,
            c.dpop
        ),
        (ORG, Auth::Token, 200, 10, false)
    );
    let c = config(&[
        ("auth", "service_app"),
        ("client_id", "0oa1"),
        ("dpop", "true"),
        ("page_size", "50"),
    ]);
    assert_eq!(
        (c.auth, c.client_id.as_str(), c.dpop, c.page_size),
        (Auth::ServiceApp, "0oa1", true, 50)
    );
    assert_eq!(
        config(&[]).org_url,
        OktaConnector::parse(&[("org_url".into(), format!("{ORG}/"))])
            .unwrap()
            .org_url
    );
}

#[test]
fn each_configuration_mistake_is_one_line_naming_the_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "config key 'org_url' is missing: set it to the org's address, e.g. https://acme.okta.com"),
        (&[("org_url", "http://acme.okta.com")], "config key 'org_url' = 'http://acme.okta.com' is not an https URL: write https://<your org>.okta.com"),
        (&[("org_url", "https://acme.okta.com/api/v1")], "config key 'org_url' = 'https://acme.okta.com/api/v1' is not an origin: write the scheme and host only, e.g. https://acme.okta.com"),
        (&[("org_url", ORG), ("orgurl", "x")], "config key 'orgurl' is unknown: the Okta connector reads org_url, auth, client_id, dpop, page_size, max_concurrency"),
        (&[("org_url", ORG), ("auth", "oauth")], "config key 'auth' = 'oauth' is unknown: use \"token\" (an API token in secret 'okta_token') or \"service_app\" (a service app's key in secret 'okta_key')"),
        (&[("org_url", ORG), ("auth", "service_app")], "config key 'client_id' is missing: auth = \"service_app\" needs the service app's client id (Admin Console, Applications, the app's General tab)"),
        (&[("org_url", ORG), ("client_id", "0oa1")], "config keys 'client_id' and 'dpop' belong to auth = \"service_app\": remove them, or set auth = \"service_app\""),
        (&[("org_url", ORG), ("auth", "service_app"), ("client_id", "c"), ("dpop", "yes")], "config key 'dpop' = 'yes' is not a boolean: write true or false"),
        (&[("org_url", ORG), ("page_size", "0")], "config key 'page_size' = '0' is not a whole number from 1 to 200: write one, or remove it for 200"),
        (&[("org_url", ORG), ("page_size", "201")], "config key 'page_size' = '201' is not a whole number from 1 to 200: write one, or remove it for 200"),
        (&[("org_url", ORG), ("max_concurrency", "76")], "config key 'max_concurrency' = '76' is not a whole number from 1 to 75: write one, or remove it for 10"),
    ];
    for (p, want) in cases {
        let got = err(p);
        assert_eq!(&got, want);
        assert!(!got.contains('\n'));
    }
}

#[test]
fn plain_http_is_taken_on_the_loopback_interface_only() {
    let c = OktaConnector::parse(&[("org_url".into(), "http://127.0.0.1:8443".into())]).unwrap();
    assert_eq!(c.org_url, "http://127.0.0.1:8443");
    assert!(err(&[("org_url", "http://10.0.0.1:8443")]).contains("is not an https URL"));
}

// --- describe and egress ---------------------------------------------------------------

#[test]
fn describe_names_the_keys_and_both_secrets() {
    let d = OktaConnector::describe();
    assert_eq!((d.name, d.event_classes), ("okta-users", &[5003u32][..]));
    let keys: Vec<&str> = d.config_keys.iter().map(|k| k.0).collect();
    assert_eq!(keys, config::KEYS);
    assert_eq!(
        d.config_keys
            .iter()
            .filter(|k| k.1)
            .map(|k| k.0)
            .collect::<Vec<_>>(),
        ["org_url"]
    );
    let secrets: Vec<&str> = d.secrets.iter().map(|s| s.0).collect();
    assert_eq!(secrets, ["okta_token", "okta_key"]);
}

#[test]
fn egress_is_the_org_origin_and_the_secret_goes_only_there() {
    let plan = OktaConnector::egress(&config(&[]));
    assert_eq!(plan.origins, [ORG]);
    assert_eq!(
        plan.secrets,
        [("okta_token".to_string(), vec![ORG.to_string()])]
    );
    let plan = OktaConnector::egress(&config(&[("auth", "service_app"), ("client_id", "c")]));
    assert_eq!(
        plan.secrets,
        [("okta_key".to_string(), vec![ORG.to_string()])]
    );
}

// --- credentials -----------------------------------------------------------------------

#[test]
fn with_token_auth_every_api_request_carries_the_secret_placeholder() {
    let doors = FakeDoors::new(|_, r: &HttpRequest| match r.url.as_str() {
        WELL_KNOWN => org_answer(),
        _ => empty_rest(r).unwrap_or_else(|| page(&[user("00u1")], None)),
    });
    OktaConnector::run(&doors, &config(&[])).unwrap();
    let all = requests(&doors);
    assert_eq!(all.len(), 5, "org id, groups, admins, users, factors");
    assert!(all[1..]
        .iter()
        .all(|r| header(r, "authorization") == Some("{{secret:okta_token}}")));
    let reqs = listed(&doors);
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        header(&reqs[0], "authorization"),
        None,
        "the org id is unauthenticated"
    );
    assert_eq!(reqs[1].url, FIRST);
    assert_eq!(
        header(&reqs[1], "authorization"),
        Some("{{secret:okta_token}}")
    );
}

fn service_app_run(token_type: &str) -> Vec<HttpRequest> {
    let answer = format!(
        r#"{{"token_type":"{token_type}","expires_in":3600,"access_token":"at1","scope":"okta.users.read"}}"#
    );
    let doors = FakeDoors::new(move |_, r: &HttpRequest| match r.url.as_str() {
        WELL_KNOWN => org_answer(),
        TOKEN_URL => json(200, &[], &answer),
        _ => empty_rest(r).unwrap_or_else(|| page(&[user("00u1")], None)),
    });
    OktaConnector::run(
        &doors,
        &config(&[("auth", "service_app"), ("client_id", "0oa1")]),
    )
    .unwrap();
    requests(&doors)
}

#[test]
fn a_service_app_asks_for_a_token_with_the_assertion_placeholder_then_sends_it() {
    let reqs = service_app_run("Bearer");
    let token = &reqs[1];
    assert_eq!(
        (token.method.as_str(), token.url.as_str()),
        ("POST", TOKEN_URL)
    );
    assert_eq!(
        header(token, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        String::from_utf8(token.body.clone().unwrap()).unwrap(),
        "grant_type=client_credentials&scope=okta.users.read%20okta.groups.read%20okta.roles.read%20okta.logs.read&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={{assertion:okta_key}}"
    );
    assert_eq!(header(token, "authorization"), None);
    assert_eq!(header(&reqs[2], "authorization"), Some("Bearer at1"));
}

#[test]
fn a_dpop_token_is_sent_with_the_dpop_scheme() {
    let reqs = service_app_run("DPoP");
    assert_eq!(header(&reqs[2], "authorization"), Some("DPoP at1"));
}

#[test]
fn a_token_is_renewed_a_minute_before_it_ends_and_reused_until_then() {
    let doors = FakeDoors::new(|n, r: &HttpRequest| {
        assert_eq!(r.url, TOKEN_URL);
        json(
            200,
            &[],
            &format!(r#"{{"token_type":"Bearer","expires_in":120,"access_token":"t{n}"}}"#),
        )
    });
    let c = config(&[("auth", "service_app"), ("client_id", "0oa1")]);
    let client = Client::new(&doors, &c);
    assert_eq!(client.authorization().unwrap(), "Bearer t0");
    doors.clock.set(doors.clock.get() + 59_000);
    assert_eq!(
        client.authorization().unwrap(),
        "Bearer t0",
        "60 s before the end: still held"
    );
    doors.clock.set(doors.clock.get() + 1_000);
    assert_eq!(client.authorization().unwrap(), "Bearer t1");
    assert_eq!(client.requests.get(), 2);
}

#[test]
fn a_service_app_token_refused_by_the_api_is_renewed_once() {
    let doors = FakeDoors::new(|n, r: &HttpRequest| match (n, r.url.as_str()) {
        (_, WELL_KNOWN) => org_answer(),
        (_, TOKEN_URL) => json(
            200,
            &[],
            &format!(r#"{{"token_type":"Bearer","expires_in":3600,"access_token":"t{n}"}}"#),
        ),
        (2, _) => json(401, &[], r#"{"errorCode":"E0000011"}"#),
        _ => empty_rest(r).unwrap_or_else(|| page(&[user("00u1")], None)),
    });
    let report = OktaConnector::run(
        &doors,
        &config(&[("auth", "service_app"), ("client_id", "0oa1")]),
    )
    .unwrap();
    let reqs = requests(&doors);
    let auth: Vec<Option<&str>> = reqs.iter().map(|r| header(r, "authorization")).collect();
    assert_eq!(
        auth[..5],
        [None, None, Some("Bearer t1"), None, Some("Bearer t3")]
    );
    assert!(
        auth[5..].iter().all(|a| *a == Some("Bearer t3")),
        "{auth:?}"
    );
    assert_eq!((report.events_emitted, report.requests), (1, 8));
}

#[test]
fn a_refused_assertion_names_what_to_check() {
    let doors = FakeDoors::new(|_, r: &HttpRequest| match r.url.as_str() {
        WELL_KNOWN => org_answer(),
        _ => json(
            401,
            &[],
            r#"{"error":"invalid_client","error_description":"The client_assertion signature is invalid."}"#,
        ),
    });
    let e = OktaConnector::run(
        &doors,
        &config(&[("auth", "service_app"), ("client_id", "0oa1")]),
    )
    .unwrap_err();
    assert_eq!(e, ConnectorError::Auth("token refused: https://acme.okta.test/oauth2/v1/token answered 401 invalid_client (The client_assertion signature is invalid.): check client_id '0oa1' and that the public key of [secrets.okta_key] is registered on the service app".into()));
}

#[test]
fn a_scope_not_granted_is_left_out_of_the_token_request_and_check_says_permission_missing() {
    let doors = FakeDoors::new(|_, r: &HttpRequest| {
        if r.url == TOKEN_URL {
            let body = String::from_utf8(r.body.clone().unwrap()).unwrap();
            return if body.contains("okta.logs.read") {
                json(
                    400,
                    &[],
                    r#"{"error":"invalid_scope","error_description":"The following scopes are not allowed: okta.logs.read"}"#,
                )
            } else {
                json(
                    200,
                    &[],
                    r#"{"token_type":"Bearer","expires_in":3600,"access_token":"t"}"#,
                )
            };
        }
        if r.url.contains("/api/v1/logs") {
            json(403, &[], r#"{"errorCode":"E0000006"}"#)
        } else {
            json(200, &[], "[]")
        }
    });
    let c = config(&[("auth", "service_app"), ("client_id", "0oa1")]);
    let probes = OktaConnector::check(&doors, &c).unwrap();
    let got: Vec<(&str, bool)> = probes.iter().map(|p| (p.name.as_str(), p.ok)).collect();
    assert_eq!(
        got,
        [
            ("users", true),
            ("groups", true),
            ("roles", true),
            ("logs", false)
        ]
    );
    assert!(
        probes[3]
            .detail
            .starts_with("permission missing: /api/v1/logs"),
        "{}",
        probes[3].detail
    );
    let tokens: Vec<String> = requests(&doors)
        .into_iter()
        .filter(|r| r.url == TOKEN_URL)
        .map(|r| String::from_utf8(r.body.unwrap()).unwrap())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(tokens[1].contains(
        "scope=okta.users.read%20okta.groups.read%20okta.roles.read&client_assertion_type"
    ));
}

#[test]
fn a_token_refused_for_its_scopes_alone_is_a_missing_permission() {
    let doors = FakeDoors::new(|_, r: &HttpRequest| match r.url.as_str() {
        WELL_KNOWN => org_answer(),
        _ => json(
            400,
            &[],
            r#"{"error":"invalid_scope","error_description":"The authorization server requires at least one scope."}"#,
        ),
    });
    let c = config(&[("auth", "service_app"), ("client_id", "0oa1")]);
    let probes = OktaConnector::check(&doors, &c).unwrap();
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].detail, "permission missing: https://acme.okta.test/oauth2/v1/token answered 400 invalid_scope (The authorization server requires at least one scope.): grant the scopes okta.users.read okta.groups.read okta.roles.read okta.logs.read on the app's Okta API Scopes tab");
    assert!(matches!(
        OktaConnector::run(&doors, &c),
        Err(ConnectorError::Permission(_))
    ));
}

// --- check -----------------------------------------------------------------------------

#[test]
fn check_probes_each_scope_and_says_what_a_missing_one_costs() {
    let doors = FakeDoors::new(|_, r: &HttpRequest| {
        if r.url.contains("/api/v1/users?limit=1") || r.url.contains("/api/v1/groups?") {
            json(200, &[], "[]")
        } else if r.url.contains("/iam/assignees/users") {
            json(403, &[], r#"{"errorCode":"E0000006"}"#)
        } else {
            assert!(
                r.url.starts_with(
                    "https://acme.okta.test/api/v1/logs?limit=1&since=2023-11-14T22%3A12%3A20"
                ),
                "{}",
                r.url
            );
            json(404, &[], "{}")
        }
    });
    let probes = OktaConnector::check(&doors, &config(&[])).unwrap();
    let got: Vec<(&str, bool, &str)> = probes
        .iter()
        .map(|p| (p.name.as_str(), p.ok, p.detail.as_str()))
        .collect();
    assert_eq!(got[0], ("users", true, "okta.users.read: readable"));
    assert_eq!(got[1], ("groups", true, "okta.groups.read: readable"));
    assert_eq!(got[2], ("roles", false, "permission missing: /api/v1/iam/assignees/users?limit=1 answered 403: without okta.roles.read admins cannot be told from users (user.type_id stays 0 Unknown); give the token's admin a read-only admin role"));
    assert!(
        got[3]
            .2
            .starts_with("wrong endpoint: /api/v1/logs?limit=1&since="),
        "{}",
        got[3].2
    );
}

#[test]
fn check_of_a_service_app_without_a_token_endpoint_says_wrong_endpoint() {
    let doors = FakeDoors::new(|_, _r: &HttpRequest| json(404, &[], "{}"));
    let c = config(&[("auth", "service_app"), ("client_id", "0oa1")]);
    let probes = OktaConnector::check(&doors, &c).unwrap();
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].detail, "wrong endpoint: https://acme.okta.test/oauth2/v1/token answered 404: nothing takes token requests there; check config key 'org_url'");
}

#[test]
fn check_with_a_refused_token_says_token_refused() {
    let doors = FakeDoors::new(|_, _r: &HttpRequest| {
        json(
            401,
            &[],
            r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided"}"#,
        )
    });
    let probes = OktaConnector::check(&doors, &config(&[])).unwrap();
    assert_eq!(probes.len(), 4);
    assert!(probes
        .iter()
        .all(|p| !p.ok && p.detail.starts_with("token refused: ")));
    assert!(probes[0]
        .detail
        .ends_with("check the secret 'okta_token' (an active API token of an active admin)"));
}

// --- paging, pacing, resuming ----------------------------------------------------------

const P2: &str = "https://acme.okta.test/api/v1/users?after=00u2%2Cx&limit=200&search=status%20pr";
const P3: &str = "https://acme.okta.test/api/v1/users?after=opaque-3&limit=200&search=status%20pr";

#[test]
fn pages_are_followed_by_their_next_link_as_given_until_none_comes() {
    let doors = FakeDoors::new(|_, r: &HttpRequest| match r.url.as_str() {
        WELL_KNOWN => org_answer(),
        FIRST => page(&[user("00u1"), user("00u2")], Some(P2)),
        P2 => page(&[user("00u3")], Some(P3)),
        P3 => page(&[j!({"status": "ACTIVE"})], None),
        other => empty_rest(r).unwrap_or_else(|| panic!("built a URL: {other}")),
    });
    let report = OktaConnector::run(&doors, &config(&[])).unwrap();
    let urls: Vec<String> = listed(&doors).into_iter().map(|r| r.url).collect();
    assert_eq!(urls, [WELL_KNOWN, FIRST, P2, P3]);
    assert_eq!(
        (
            report.items_seen,
            report.events_emitted,
            report.items_skipped,
            report.requests
        ),
        (4, 3, 1, 9)
    );
    assert_eq!(
        String::from_utf8(doors.kv.borrow()["okta/cursor"].0.clone()).unwrap(),
        r#"{"format":2,"gen":1,"walk":null,"sync":{"watermark_ms":1700000000000,"log_next":null,"log_since_ms":1700000000000,"log_at_ms":1700000000000}}"#
    );
}

#[test]
fn a_link_header_with_several_links_in_one_value_is_read() {
    let mut r = json(200, &[], "[]");
    r.headers.push((
        "link".into(),
        format!("<{FIRST}>; rel=\"self\", <{P2}>; rel=\"next\""),
    ));
    assert_eq!(client::next_link(&r).as_deref(), Some(P2));
    r.headers.clear();
    r.headers
        .push(("link".into(), format!("<{FIRST}>; rel=\"self\"")));
    assert_eq!(client::next_link(&r), None);
}

#[test]
fn a_429_is_waited_out_until_the_reset_plus_jitter() {
    let doors = FakeDoors::new(|n, r: &HttpRequest| match (n, r.url.as_str()) {
        (_, WELL_KNOWN) => org_answer(),
        // The fake's clock starts at 1_700_000_000_000 ms: reset 5 s later. Call 3 is the
        // users page (after the org id, the groups and the admins).
        (3, _) => json(
            429,
            &[
                ("X-Rate-Limit-Limit", "600"),
                ("X-Rate-Limit-Remaining", "0"),
                ("X-Rate-Limit-Reset", "1700000005"),
            ],
            r#"{"errorCode":"E0000047"}"#,
        ),
        _ => empty_rest(r).unwrap_or_else(|| page(&[user("00u1")], None)),
    });
    let report = OktaConnector::run(&doors, &config(&[])).unwrap();
    assert_eq!((report.events_emitted, report.requests), (1, 6));
    assert_eq!(
        listed(&doors)[1..]
            .iter()
            .map(|r| r.url.as_str())
            .collect::<Vec<_>>(),
        [FIRST, FIRST]
    );
    let slept = doors.slept.get();
    assert!(
        (5_000..6_000).contains(&slept),
        "reset + up to 1 s of jitter, slept {slept}"
    );
}

#[test]
fn hostile_a_429_reset_far_in_the_past_or_future_is_bounded() {
    for reset in ["-9223372036854775808", "9223372036854775807"] {
        let doors = FakeDoors::new(move |n, r: &HttpRequest| match (n, r.url.as_str()) {
            (_, WELL_KNOWN) => org_answer(),
            (3, _) => json(
                429,
                &[
                    ("X-Rate-Limit-Limit", "600"),
                    ("X-Rate-Limit-Remaining", "0"),
                    ("X-Rate-Limit-Reset", reset),
                ],
                r#"{"errorCode":"E0000047"}"#,
            ),
            _ => empty_rest(r).unwrap_or_else(|| page(&[user("00u1")], None)),
        });
        let report = OktaConnector::run(&doors, &config(&[])).unwrap();
        assert_eq!(report.events_emitted, 1, "{reset}");
        // Two waits at most, each capped at 120 s: the 429's, and the bucket it left spent.
        let slept = doors.slept.get();
        assert!(slept <= 240_000, "reset {reset}: slept {slept}");
    }
}

/// Pages 1..=`pages` of `/api/v1/users`, each linking to the next; page `n` answers with the
/// bucket `headers(n)` gives.
fn paced(
    pages: usize,
    headers: fn(usize) -> (u64, u64, u64),
) -> FakeDoors<impl Fn(usize, &HttpRequest) -> HttpResponse> {
    FakeDoors::new(move |_, r: &HttpRequest| {
        if r.url == WELL_KNOWN {
            return org_answer();
        }
        if let Some(rest) = empty_rest(r) {
            return rest;
        }
        let n: usize = r
            .url
            .split_once("after=p")
            .map_or(1, |(_, k)| k.parse().unwrap());
        let next = format!("{ORG}/api/v1/users?after=p{}", n + 1);
        let mut p = page(
            &[user(&format!("00u{n}"))],
            (n < pages).then_some(next.as_str()),
        );
        let (limit, remaining, reset) = headers(n);
        p.headers.extend([
            ("x-rate-limit-limit".into(), limit.to_string()),
            ("x-rate-limit-remaining".into(), remaining.to_string()),
            ("x-rate-limit-reset".into(), reset.to_string()),
        ]);
        p
    })
}

/// When each users page was asked for.
fn users_pages_sent<F: Fn(usize, &HttpRequest) -> HttpResponse>(d: &FakeDoors<F>) -> Vec<i64> {
    d.calls
        .borrow()
        .iter()
        .filter(|(_, reqs)| client::path_of(&reqs[0].url).starts_with("/api/v1/users?"))
        .map(|c| c.0)
        .collect()
}

#[test]
fn the_run_stops_at_half_the_bucket_and_waits_for_the_window_to_turn() {
    // Limit 10: our share is 5. Five pages in the window ending at +30 s, then a new window.
    let doors = paced(7, |n| {
        if n <= 5 {
            (10, 10 - n as u64, 1_700_000_030)
        } else {
            (10, 9, 1_700_000_090)
        }
    });
    let report = OktaConnector::run(&doors, &config(&[])).unwrap();
    assert_eq!(report.events_emitted, 7);
    let sent = users_pages_sent(&doors);
    assert_eq!(sent.len(), 7);
    assert!(
        sent[0..5].iter().all(|t| *t < 1_700_000_030_000),
        "{sent:?}"
    );
    assert!(
        sent[5] >= 1_700_000_030_000,
        "the 6th request waited for the reset: {sent:?}"
    );
    assert!(
        sent[6] < 1_700_000_090_000,
        "a new window has room again: {sent:?}"
    );
}

#[test]
fn a_reset_is_read_against_the_answer_s_date_not_the_local_clock() {
    // Okta's clock is an hour behind the local one (1_700_000_000 s is 22:13:20 GMT); its
    // window resets 30 s after its Date, and the bucket is spent.
    let doors = FakeDoors::new(|_, _r: &HttpRequest| {
        json(
            200,
            &[
                ("x-rate-limit-limit", "600"),
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", "1699996430"),
                ("date", "Tue, 14 Nov 2023 21:13:20 GMT"),
            ],
            "[]",
        )
    });
    let c = config(&[]);
    let client = Client::new(&doors, &c);
    client.get(FIRST).unwrap();
    assert_eq!(doors.slept.get(), 0);
    client.get(FIRST).unwrap();
    let slept = doors.slept.get();
    assert!(
        (30_000..31_000).contains(&slept),
        "30 s of Okta's clock plus jitter, slept {slept}"
    );
}

#[test]
fn the_run_leaves_the_last_5_percent_of_a_bucket_a_neighbour_spent() {
    // Another integration spent the bucket: 20 of 600 left after our first request.
    let doors = paced(2, |n| {
        if n == 1 {
            (600, 20, 1_700_000_030)
        } else {
            (600, 599, 1_700_000_090)
        }
    });
    OktaConnector::run(&doors, &config(&[])).unwrap();
    let sent = users_pages_sent(&doors);
    assert!(
        sent[1] >= 1_700_000_030_000,
        "page 2 waited for the reset (sent at {})",
        sent[1]
    );
    assert!(doors.slept.get() < 31_000);
}

#[test]
fn a_stopped_run_resumes_at_the_page_in_flight() {
    let answer = |_, r: &HttpRequest| match r.url.as_str() {
        WELL_KNOWN => org_answer(),
        FIRST => page(&[user("00u1")], Some(P2)),
        P2 => page(&[user("00u2")], Some(P3)),
        _ => empty_rest(r).unwrap_or_else(|| page(&[user("00u3")], None)),
    };
    let first = FakeDoors::new(answer);
    // Org id, groups, admins, page 1, its factors, then the budget ends at page 2.
    first.fail_from_call.set(Some(5));
    assert!(OktaConnector::run(&first, &config(&[])).is_err());
    assert_eq!(first.events.borrow().len(), 1);
    let second = FakeDoors::new(answer);
    *second.kv.borrow_mut() = first.kv.borrow().clone();
    let report = OktaConnector::run(&second, &config(&[])).unwrap();
    let urls: Vec<String> = listed(&second).into_iter().map(|r| r.url).collect();
    assert_eq!(urls, [WELL_KNOWN, P2, P3]);
    assert!(
        requests(&second)
            .iter()
            .all(|r| !r.url.contains("/groups") && !r.url.contains("/iam/")),
        "finished sources are not read again"
    );
    assert_eq!(report.events_emitted, 2);
}

#[test]
fn a_next_link_to_another_origin_is_refused() {
    let doors = FakeDoors::new(|_, r: &HttpRequest| match r.url.as_str() {
        WELL_KNOWN => org_answer(),
        _ => empty_rest(r).unwrap_or_else(|| {
            page(
                &[user("00u1")],
                Some("https://evil.test/api/v1/users?after=x"),
            )
        }),
    });
    let e = OktaConnector::run(&doors, &config(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the next link leaves the org (https://evil.test/api/v1/users?after=x)"),
        "{e}"
    );
}

// --- mapping ---------------------------------------------------------------------------

const NOW: i64 = 1_780_000_000_000;

#[test]
fn a_full_user_maps_every_field_of_the_table() {
    let u = j!({
        "id": "00ub0oNGTSWTBKOLGLNR", "status": "LOCKED_OUT", "created": "2013-06-24T16:39:18.000Z",
        "activated": "2013-06-24T16:39:19.000Z", "statusChanged": null,
        "lastLogin": "2013-06-24T17:39:19.000Z", "lastUpdated": "2013-07-02T21:36:25.344Z",
        "passwordChanged": null, "type": {"id": "oty1"},
        "profile": {
            "login": "isaac.brock@example.com", "email": "isaac.brock@example.com",
            "secondEmail": "ib@home.example.org", "firstName": "Isaac", "lastName": "Brock",
            "displayName": "Isaac B.", "title": "Engineer", "department": "R&D",
            "division": "Platform", "organization": "Acme", "employeeNumber": "E42",
            "costCenter": "CC7", "userType": "Employee", "manager": "Jane Doe",
            "managerId": "00u0manager", "mobilePhone": "+1 555 0100", "primaryPhone": null,
            "city": "Portland", "state": "OR", "countryCode": "us", "zipCode": "97201"
        }
    });
    let e = map::map_user("00o1abcd", &u, &map::Enrichment::default(), NOW).unwrap();
    assert_eq!(e["class_uid"], 5003);
    assert_eq!(e["time"], NOW);
    assert_eq!(e["metadata"]["tenant_uid"], "00o1abcd");
    assert_eq!(
        e["metadata"]["product"],
        j!({"name": "Okta", "vendor_name": "Okta"})
    );
    assert_eq!(e["metadata"]["loggers"][0]["name"], "okta-users");
    assert_eq!(
        e["user"],
        j!({
            "uid": "00ub0oNGTSWTBKOLGLNR", "name": "isaac.brock@example.com", "domain": "example.com",
            "display_name": "Isaac B.", "full_name": "Isaac B.", "email_addr": "isaac.brock@example.com",
            "phone_number": "+1 555 0100", "type_id": 0, "type": "Unknown",
            "account": {"uid": "00ub0oNGTSWTBKOLGLNR", "name": "isaac.brock@example.com", "type_id": 99,
                        "type": "Okta Account", "is_disabled": false, "is_locked": true},
            "org": {"name": "Acme", "ou_name": "Platform"},
            "ldap_person": {
                "given_name": "Isaac", "surname": "Brock", "job_title": "Engineer", "department": "R&D",
                "employee_uid": "E42", "cost_center": "CC7", "email_addrs": ["ib@home.example.org"],
                "labels": ["Employee"], "manager": {"uid": "00u0manager", "name": "Jane Doe"},
                "location": {"city": "Portland", "region": "OR", "country": "US", "postal_code": "97201"},
                "created_time": 1372091958000i64, "modified_time": 1372800985344i64,
                "last_login_time": 1372095559000i64
            }
        })
    );
    assert_eq!(
        e["enrichments"],
        j!([
            {"name": "account", "value": "status", "data": {
                "is_enabled": true, "is_locked": true, "okta_status": "LOCKED_OUT",
                "last_logon": 1372095559000i64, "activated": 1372091959000i64}},
            {"name": "employment", "value": "R&D - Engineer", "data": {
                "department": "R&D", "job_title": "Engineer", "employee_id": "E42",
                "employee_type": "Employee"}}
        ])
    );
}

#[test]
fn nulls_and_blanks_are_left_out_and_names_fall_back() {
    let u = j!({
        "id": "00u2", "status": "DEPROVISIONED", "created": "2020-01-01T00:00:00.000Z",
        "lastLogin": null, "lastUpdated": "2020-01-02T00:00:00.000Z",
        "profile": {"login": "svc-backup", "email": "not an address", "secondEmail": null,
                    "firstName": "Back", "lastName": "Up", "displayName": " ", "organization": null,
                    "division": "Ops", "managerId": null, "manager": "Nobody", "mobilePhone": null}
    });
    let e = map::map_user("00o1", &u, &map::Enrichment::default(), NOW).unwrap();
    assert_eq!(
        e["user"],
        j!({
            "uid": "00u2", "name": "svc-backup", "display_name": "Back Up", "full_name": "Back Up",
            "type_id": 0, "type": "Unknown",
            "account": {"uid": "00u2", "name": "svc-backup", "type_id": 99, "type": "Okta Account",
                        "is_disabled": true, "is_locked": false},
            "ldap_person": {"given_name": "Back", "surname": "Up",
                            "created_time": 1577836800000i64, "modified_time": 1577923200000i64}
        })
    );
    assert_eq!(
        e["enrichments"],
        j!([{"name": "account", "value": "status",
             "data": {"is_enabled": false, "is_locked": false, "okta_status": "DEPROVISIONED"}}])
    );
}

#[test]
fn a_user_becoming_deprovisioned_or_suspended_is_disabled() {
    let cases = [
        ("ACTIVE", "DEPROVISIONED", true),
        ("SUSPENDED", "", true),
        ("DEPROVISIONED", "", true),
        ("ACTIVE", "", false),
        ("LOCKED_OUT", "", false),
    ];
    for (status, transition, disabled) in cases {
        let mut u = j!({"id": "00u3", "status": status, "profile": {}});
        if !transition.is_empty() {
            u["transitioningToStatus"] = transition.into();
        }
        let got = map::map_user("00o1", &u, &map::Enrichment::default(), NOW).unwrap()["user"]
            ["account"]["is_disabled"]
            .clone();
        assert_eq!(got, disabled, "{status}/{transition}");
    }
}

#[test]
fn non_ascii_text_is_kept_as_given() {
    let u = j!({"id": "00u4", "status": "ACTIVE",
                "profile": {"login": "zoë.ångström@exämple.se", "email": "zoë.ångström@exämple.se",
                            "firstName": "Zoë", "lastName": "Ångström", "city": "Malmö", "countryCode": "se"}});
    let e = map::map_user("00o1", &u, &map::Enrichment::default(), NOW).unwrap();
    assert_eq!(e["user"]["domain"], "exämple.se");
    assert_eq!(e["user"]["full_name"], "Zoë Ångström");
    assert_eq!(e["user"]["email_addr"], "zoë.ångström@exämple.se");
    assert_eq!(
        e["user"]["ldap_person"]["location"],
        j!({"city": "Malmö", "country": "SE"})
    );
    let text = e.to_string();
    assert!(
        text.contains("Zoë Ångström"),
        "emitted as UTF-8, not escaped"
    );
}

#[test]
fn a_user_without_an_id_maps_to_nothing() {
    assert_eq!(
        map::map_user(
            "00o1",
            &j!({"status": "ACTIVE", "profile": {"login": "x@y.z"}}),
            &map::Enrichment::default(),
            NOW
        ),
        None
    );
    assert_eq!(
        map::map_user(
            "00o1",
            &j!({"id": "", "profile": {}}),
            &map::Enrichment::default(),
            NOW
        ),
        None
    );
}

#[test]
fn the_same_user_maps_to_the_same_uid_and_a_change_to_another() {
    let a = map::map_user("00o1", &user("00u1"), &map::Enrichment::default(), NOW).unwrap();
    let b = map::map_user("00o1", &user("00u1"), &map::Enrichment::default(), NOW + 1).unwrap();
    let mut changed = user("00u1");
    changed["status"] = "SUSPENDED".into();
    let c = map::map_user("00o1", &changed, &map::Enrichment::default(), NOW).unwrap();
    assert_eq!(a["metadata"]["uid"], b["metadata"]["uid"]);
    assert_ne!(a["metadata"]["uid"], c["metadata"]["uid"]);
}
