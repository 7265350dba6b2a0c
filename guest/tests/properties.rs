//! Property tests (proptest) over the guest's handling of untrusted Graph input, through the
//! crate's public API: timestamps (`time`), `Retry-After` (seen through the Graph client's
//! waits), `$batch` answers and collection pages (`GraphClient::batch_collect`, `Page::parse`).
//! The mapping itself (`map_user` on arbitrary Graph JSON) is checked in
//! `tests/tests/properties.rs`, where the end-to-end OCSF checker lives.
//!
//! Every property must hold for every input: no panic (an overflow panics in these debug
//! builds), results of the promised shape, waits within the retry policy's cap.
//!
//! CI runs each property 256 times (proptest's default). The million-case run: every one of
//! the 8 properties `PROPTEST_CASES` times, 1,000,000 cases in all:
//!
//! ```text
//! PROPTEST_CASES=125000 cargo test --release -p entra-connector --test properties
//! ```
//!
//! A failure prints the shrunk input; keep it as a `hostile_` unit test next to the fix.

mod strategies;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, UNIX_EPOCH};

use entra_connector::config::Config;
use entra_connector::doors::{
    Doors, EmitError, FetchError, HttpRequest, HttpResponse, KvError, Level,
};
use entra_connector::graph::{GraphClient, GraphGet, Page, RetryPolicy, SubGet};
use entra_connector::time::{format_graph_time, parse_graph_time_ms};
use proptest::prelude::*;
use serde_json::{json, Value};
use strategies::{json_value, near_timestamp, odd_char, odd_string};

// ------------------------------------------------------------------ a scripted Graph

const NOW_MS: i64 = 1_700_000_000_123;
const GRAPH: &str = "https://graph.test";

/// Doors whose Graph grants a token and answers every other request from a script, then
/// with `fallback`; sleeping moves the clock and is recorded.
struct ScriptedGraph {
    script: RefCell<VecDeque<HttpResponse>>,
    fallback: HttpResponse,
    clock: Cell<i64>,
    sleeps: RefCell<Vec<u64>>,
}

impl ScriptedGraph {
    fn new(script: Vec<HttpResponse>, fallback: HttpResponse) -> Self {
        ScriptedGraph {
            script: RefCell::new(script.into()),
            fallback,
            clock: Cell::new(NOW_MS),
            sleeps: RefCell::new(Vec::new()),
        }
    }
}

impl Doors for ScriptedGraph {
    fn fetch_all(&self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, FetchError>> {
        reqs.iter()
            .map(|r| {
                if r.url.contains("/oauth2/") {
                    return Ok(response(
                        200,
                        vec![],
                        br#"{"access_token":"tok","expires_in":3599}"#.to_vec(),
                    ));
                }
                let next = self.script.borrow_mut().pop_front();
                Ok(next.unwrap_or_else(|| self.fallback.clone()))
            })
            .collect()
    }
    fn kv_get(&self, _: &str) -> Result<Option<(Vec<u8>, u64)>, KvError> {
        Ok(None)
    }
    fn kv_set(&self, _: &str, _: &[u8], _: Option<u64>) -> Result<u64, KvError> {
        Ok(1)
    }
    fn emit(&self, _: &[String]) -> Result<(), EmitError> {
        Ok(())
    }
    fn log(&self, _: Level, _: &str) {}
    fn now_ms(&self) -> i64 {
        self.clock.get()
    }
    fn sleep_ms(&self, ms: u64) {
        self.sleeps.borrow_mut().push(ms);
        self.clock.set(
            self.clock
                .get()
                .saturating_add(ms.min(i64::MAX as u64) as i64),
        );
    }
}

fn response(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn config() -> Config {
    let pairs: Vec<(String, String)> = [
        ("tenant_id", "t"),
        ("client_id", "c"),
        ("graph_endpoint", GRAPH),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Config::parse(&pairs).expect("the test config is valid")
}

/// The longest single wait the client may take (`RetryPolicy::default().max_wait_ms`).
fn max_wait() -> u64 {
    RetryPolicy::default().max_wait_ms
}

/// The waits the client takes when Graph answers one GET with 429 and `retry_after`, then 200.
fn waits_for_retry_after(retry_after: &str) -> Vec<u64> {
    let doors = ScriptedGraph::new(
        vec![
            response(
                429,
                vec![("retry-after".into(), retry_after.into())],
                vec![],
            ),
            response(200, vec![], b"{}".to_vec()),
        ],
        response(500, vec![], vec![]),
    );
    let config = config();
    let client = GraphClient::new(&doors, &config);
    let result = client.get(GraphGet::new(format!("{GRAPH}/v1.0/users")));
    assert_eq!(result, Ok(json!({})), "the retried GET succeeds");
    doors.sleeps.into_inner()
}

// ------------------------------------------------------------------ generators

/// An IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), well formed or almost: any year (huge,
/// negative), fields out of range or negative, odd names, then maybe one character changed.
fn near_http_date() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        6 => (0i64..62).prop_map(|n| format!("{n:02}")),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[+-]?[0-9]{1,25}",
    ];
    let year = prop_oneof![
        2 => (1900i64..2200).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[+-]?[0-9]{1,25}",
    ];
    let day_name = prop_oneof![
        4 => Just("Wed"),
        1 => prop::sample::select(&["Mon", "Sun", "", "Xyz"][..]),
    ];
    let month = prop_oneof![
        4 => prop::sample::select(&["Jan", "Feb", "Oct", "Dec"][..]),
        1 => prop::sample::select(&["oct", "Foo", ""][..]),
    ];
    let zone = prop_oneof![
        4 => Just("GMT"),
        1 => prop::sample::select(&["UTC", "gmt", "", "GMT x"][..]),
    ];
    (
        (day_name, number.clone(), month, year),
        (number.clone(), number.clone(), number),
        zone,
        (0u8..8, any::<prop::sample::Index>(), odd_char()),
    )
        .prop_map(|((dn, d, mo, y), (h, m, s), z, (op, at, c))| {
            let clean = format!("{dn}, {d} {mo} {y} {h}:{m}:{s} {z}");
            let mut chars: Vec<char> = clean.chars().collect();
            let i = at.index(chars.len() + 1);
            match op {
                0 if i < chars.len() => chars[i] = c,
                1 => chars.insert(i, c),
                2 if i < chars.len() => {
                    chars.remove(i);
                }
                _ => {}
            }
            chars.into_iter().collect()
        })
}

/// A `Retry-After` value: seconds (any size), an HTTP date, or anything.
fn retry_after_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..200).prop_map(|n| format!(" {n} ")),
        "[+-]?[0-9]{1,30}(\\.[0-9]{1,3})?",
        near_http_date(),
        odd_string(),
    ]
}

/// One item of a `$batch` answer: ids, statuses, headers and bodies of any shape.
fn batch_item() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        4 => (0u32..22).prop_map(|n| json!(n.to_string())),
        1 => (0u32..22).prop_map(|n| json!(n)),
        1 => json_value(),
    ];
    let status = prop_oneof![
        4 => prop::sample::select(&[200u64, 200, 204, 401, 404, 429, 503, 504, 500][..]).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => json_value(),
    ];
    let headers = prop_oneof![
        3 => prop::collection::vec(
            (
                prop::sample::select(&["Retry-After", "retry-after", "RETRY-AFTER", "Content-Type", "x"][..])
                    .prop_map(str::to_string),
                prop_oneof![3 => retry_after_value().prop_map(Value::String), 1 => json_value()],
            ),
            0..3,
        )
        .prop_map(|h| Value::Object(h.into_iter().collect())),
        1 => json_value(),
    ];
    let next_link = prop_oneof![
        Just(format!("{GRAPH}/v1.0/users/u/memberOf?$skiptoken=x")),
        Just("https://evil.example/v1.0/users".to_string()),
        odd_string(),
    ];
    let page = (
        prop::collection::vec(json_value(), 0..4),
        prop::option::of(next_link),
    )
        .prop_map(|(items, next)| {
            let mut page = json!({ "value": items });
            if let Some(link) = next {
                page["@odata.nextLink"] = json!(link);
            }
            page
        });
    let body = prop_oneof![3 => page, 1 => json_value()];
    (
        prop::option::weighted(0.95, id),
        prop::option::weighted(0.95, status),
        prop::option::of(headers),
        prop::option::weighted(0.9, body),
    )
        .prop_map(|(id, status, headers, body)| {
            let mut item = serde_json::Map::new();
            for (k, v) in [
                ("id", id),
                ("status", status),
                ("headers", headers),
                ("body", body),
            ] {
                if let Some(v) = v {
                    item.insert(k.into(), v);
                }
            }
            Value::Object(item)
        })
}

/// A whole answer to one `POST /$batch`: usually a `responses` array, sometimes any JSON or
/// bytes, with any status and a `Retry-After` of its own.
fn batch_answer() -> impl Strategy<Value = HttpResponse> {
    let body = prop_oneof![
        6 => prop::collection::vec(batch_item(), 0..24)
            .prop_map(|items| json!({ "responses": items }).to_string().into_bytes()),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    let status = prop_oneof![
        6 => Just(200u16),
        1 => prop::sample::select(&[429u16, 503, 504, 401, 500, 302][..]),
        1 => any::<u16>(),
    ];
    (status, prop::option::of(retry_after_value()), body).prop_map(|(status, retry_after, body)| {
        let headers = retry_after
            .map(|v| vec![("retry-after".to_string(), v)])
            .unwrap_or_default();
        response(status, headers, body)
    })
}

// ------------------------------------------------------------------ properties

proptest! {
    /// No string makes the timestamp parser panic, and whatever it accepts is an instant in
    /// the years 0002-9999 (give or take a day of UTC offset) that formats back to itself,
    /// to the second.
    #[test]
    fn hostile_timestamps_parse_without_panicking(s in prop_oneof![near_timestamp(), odd_string()]) {
        let first = parse_graph_time_ms("0002-01-01T00:00:00Z").unwrap();
        let last = parse_graph_time_ms("9999-12-31T23:59:59.999Z").unwrap();
        const DAY_MS: i64 = 86_400_000;
        if let Some(ms) = parse_graph_time_ms(&s) {
            prop_assert!((first - DAY_MS..=last + DAY_MS).contains(&ms), "{s:?} -> {ms}");
            let formatted = format_graph_time(ms);
            prop_assert_eq!(formatted.len(), 20);
            if (first..=last).contains(&ms) {
                prop_assert_eq!(
                    parse_graph_time_ms(&formatted),
                    Some(ms.div_euclid(1000) * 1000),
                    "{:?} -> {} -> {}", s, ms, formatted
                );
            }
        }
    }

    /// Differential check against the `httpdate` crate's calendar: any wall-clock second of
    /// 1970-9999, any fraction, any offset, parses to the same instant (fraction truncated).
    #[test]
    fn timestamps_agree_with_an_independent_calendar(
        wall_secs in 0u64..253_402_300_800,
        fraction in "[0-9]{1,12}",
        has_fraction in any::<bool>(),
        offset_min in -(23 * 60 + 59)..=(23i64 * 60 + 59),
        zulu in any::<bool>(),
    ) {
        // "Sun, 06 Nov 1994 08:49:37 GMT" -> its fields
        let imf = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(wall_secs));
        let f: Vec<&str> = imf.split([' ', ':']).collect();
        let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .iter().position(|m| *m == f[2]).unwrap() + 1;
        let offset_min = if zulu { 0 } else { offset_min };
        let zone = if zulu {
            "Z".to_string()
        } else {
            let sign = if offset_min < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", offset_min.abs() / 60, offset_min.abs() % 60)
        };
        let frac = if has_fraction { format!(".{fraction}") } else { String::new() };
        let s = format!("{}-{month:02}-{}T{}:{}:{}{frac}{zone}", f[3], f[1], f[4], f[5], f[6]);
        let millis: i64 = if has_fraction {
            format!("{fraction:0<3}")[..3].parse().unwrap()
        } else {
            0
        };
        let expected = (wall_secs as i64 - offset_min * 60) * 1000 + millis;
        prop_assert_eq!(parse_graph_time_ms(&s), Some(expected), "{}", s);
    }

    /// Any i64 formats as a 20-character timestamp without panicking.
    #[test]
    fn any_millisecond_count_formats(ms in any::<i64>()) {
        let s = format_graph_time(ms);
        prop_assert_eq!(s.len(), 20);
        prop_assert!(parse_graph_time_ms(&s).is_some() || s.starts_with("0001-"), "{}", s);
    }

    /// Whatever `Retry-After` a throttled answer carries, the client waits at most the
    /// policy's cap, once, and the retried request succeeds.
    #[test]
    fn hostile_retry_after_never_panics_and_waits_are_capped(v in retry_after_value()) {
        let waits = waits_for_retry_after(&v);
        prop_assert!(waits.len() <= 1, "{v:?}: {waits:?}");
        prop_assert!(waits.iter().all(|w| *w <= max_wait()), "{v:?}: {waits:?}");
    }

    /// `Retry-After` in seconds is honoured to the millisecond, up to the cap.
    #[test]
    fn retry_after_seconds_are_honoured_up_to_the_cap(n in prop_oneof![0u64..70, any::<u64>()]) {
        let expected = n.saturating_mul(1000).min(max_wait());
        let waits = waits_for_retry_after(&n.to_string());
        prop_assert_eq!(waits, if expected == 0 { vec![] } else { vec![expected] });
    }

    /// Differential check against `httpdate`: an HTTP date `Retry-After` waits until that
    /// instant (not before now, not past the cap).
    #[test]
    fn retry_after_dates_agree_with_an_independent_parser(delta_s in -120i64..120, far in 0u64..253_402_300_800) {
        for at_s in [NOW_MS / 1000 + delta_s, far as i64] {
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at_s as u64));
            let expected = (at_s * 1000 - NOW_MS).clamp(0, max_wait() as i64) as u64;
            let waits = waits_for_retry_after(&date);
            prop_assert_eq!(waits, if expected == 0 { vec![] } else { vec![expected] }, "{}", date);
        }
    }

    /// Any JSON is split into a page or refused, never a panic; a page keeps every item.
    #[test]
    fn hostile_collection_pages_parse_or_are_refused(body in json_value()) {
        let expected_items = body.get("value").and_then(Value::as_array).cloned();
        match Page::parse(body.clone()) {
            Ok(page) => {
                prop_assert!(body.is_object());
                prop_assert_eq!(Some(page.items), expected_items);
                prop_assert_eq!(page.next_link.as_deref(), body.get("@odata.nextLink").and_then(Value::as_str));
            }
            Err(_) => prop_assert!(expected_items.is_none() || !body.is_object()),
        }
    }

    /// Whatever `$batch` answers (ids missing or repeated, statuses of any type, bodies of
    /// any shape, next links anywhere, throttling with any `Retry-After`), collecting through
    /// `$batch` gives one result per request, waits at most the cap each time and spends no
    /// more retries than the run's budget.
    #[test]
    fn hostile_batch_answers_give_one_result_per_request(
        n in 0usize..45,
        answers in prop::collection::vec(batch_answer(), 0..6),
    ) {
        let doors = ScriptedGraph::new(answers, response(200, vec![], br#"{"responses":[]}"#.to_vec()));
        let config = config();
        let client = GraphClient::new(&doors, &config);
        let starts: Vec<SubGet> = (0..n)
            .map(|i| SubGet::new(format!("{GRAPH}/v1.0/users/u{i}/memberOf")))
            .collect();
        let results = client.batch_collect(starts);
        prop_assert_eq!(results.len(), n);
        prop_assert!(client.retries() <= config.retry_budget);
        let sleeps = doors.sleeps.borrow();
        prop_assert!(sleeps.iter().all(|w| *w <= max_wait()), "{:?}", sleeps);
    }
}
