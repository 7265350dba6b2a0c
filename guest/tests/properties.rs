//! Property tests (proptest) over the guest's handling of untrusted Graph input, through the
//! crate's public API: timestamps (`time`), `Retry-After` (seen through the Graph client's
//! waits), `$batch` answers and collection pages (`GraphClient::batch_collect`, `Page::parse`),
//! and the JSON intake (`graph/intake.rs`, through `GraphClient::page` and `batch_get`): raw
//! bodies with lone surrogates, control characters, bad escapes, non-UTF-8 bytes, numbers
//! beyond f64 and deep nesting in values, repeated keys and mistyped links in envelopes.
//! The mapping itself (`map_user` on arbitrary Graph JSON) is checked in
//! `tests/tests/properties.rs`, where the end-to-end OCSF checker lives.
//!
//! Every property must hold for every input: no panic (an overflow panics in these debug
//! builds), results of the promised shape, waits within the retry policy's cap.
//!
//! CI runs each property 256 times (proptest's default). The million-case runs (README,
//! "Property tests"): the first 8 properties 125,000 times each, and the 4 over the JSON
//! intake (pages, envelopes, `$batch` bodies) 250,000 times each:
//!
//! ```text
//! PROPTEST_CASES=125000 cargo test --release -p entra-connector --test properties
//! PROPTEST_CASES=250000 cargo test --release -p entra-connector --test properties -- \
//!     hostile_malformed hostile_batch_bodies hostile_collection_pages
//! ```
//!
//! A failure prints the shrunk input; keep it as a `hostile_` unit test next to the fix.

mod strategies;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, UNIX_EPOCH};

use connector_sdk::doors::{
    Doors, EmitError, FetchError, HttpRequest, HttpResponse, KvError, Level,
};
use connector_sdk::time::{format_rfc3339, parse_rfc3339_ms};
use entra_connector::config::Config;
use entra_connector::graph::{GraphClient, GraphGet, Page, RetryPolicy, SubGet};
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
    fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<(Vec<u8>, u64)>>, KvError> {
        Ok(vec![None; keys.len()])
    }
    fn kv_set_many(&self, writes: &[connector_sdk::doors::KvWrite]) -> Result<Vec<u64>, KvError> {
        Ok(vec![1; writes.len()])
    }
    fn kv_delete_prefix(&self, _: &str, _: u32) -> Result<u32, KvError> {
        Ok(0)
    }
    fn progress(&self, _: &connector_sdk::doors::Progress) {}
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

// ------------------------------------------------------------------ raw JSON text

/// One piece of a string value as Graph's bytes carry it: the text as written on the wire,
/// what the connector must read from it, and how many malformed values it holds (0 or 1).
#[derive(Clone, Debug)]
struct Piece {
    wire: Vec<u8>,
    read: String,
    mends: usize,
}

/// Pieces of a string: plain text (JSON-escaped as serde writes it), valid surrogate pairs,
/// and what serde_json refuses a whole body for — lone surrogate escapes, raw control
/// characters, unknown or cut escapes, bytes that are not UTF-8. Each malformed piece ends in
/// an ASCII character, so no piece changes how the next is read.
fn piece() -> impl Strategy<Value = Piece> {
    let plain = odd_string().prop_map(|s| {
        let quoted = serde_json::to_string(&s).expect("a string serialises");
        Piece {
            wire: quoted.as_bytes()[1..quoted.len() - 1].to_vec(),
            read: s,
            mends: 0,
        }
    });
    let pair = (0xD800u32..0xDC00, 0xDC00u32..0xE000).prop_map(|(hi, lo)| {
        let c = char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).unwrap();
        Piece {
            wire: format!("\\u{hi:04x}\\u{lo:04X}").into_bytes(),
            read: c.to_string(),
            mends: 0,
        }
    });
    let lone = (0xD800u32..0xE000, any::<bool>()).prop_map(|(cp, upper)| {
        let escape = if upper {
            format!("\\u{cp:04X}x")
        } else {
            format!("\\u{cp:04x}x")
        };
        Piece {
            wire: escape.into_bytes(),
            read: "\u{FFFD}x".into(),
            mends: 1,
        }
    });
    let control = (0u8..0x20).prop_map(|b| Piece {
        wire: vec![b],
        read: "\u{FFFD}".into(),
        mends: 1,
    });
    let bad_escape = prop_oneof![
        prop::sample::select(&b"aceghijkmopqsvwxyzACEGQUXZ0189!#'%&( ~"[..]).prop_map(|c| Piece {
            wire: vec![b'\\', c],
            read: format!("\u{FFFD}{}", c as char),
            mends: 1,
        }),
        "[0-9a-fA-F]{0,3}".prop_map(|hex| Piece {
            wire: format!("\\u{hex}!").into_bytes(),
            read: "\u{FFFD}!".into(),
            mends: 1,
        }),
    ];
    let not_utf8 = prop::collection::vec(0x80u8..=0xFF, 1..4).prop_map(|mut bytes| {
        bytes.push(b'x');
        let read = String::from_utf8_lossy(&bytes).into_owned();
        let mends = bytes
            .utf8_chunks()
            .filter(|c| !c.invalid().is_empty())
            .count();
        Piece {
            wire: bytes,
            read,
            mends,
        }
    });
    prop_oneof![
        6 => plain,
        1 => pair,
        2 => lone,
        2 => control,
        1 => bad_escape,
        1 => not_utf8,
    ]
}

/// A user record as raw text: `{"id": …, "displayName": <pieces>, "n": <number>,
/// "deep": <nested arrays>}`, with what the connector must read from it and how many
/// malformed values it holds.
#[derive(Clone, Debug)]
struct RawRecord {
    wire: Vec<u8>,
    id: String,
    name: String,
    number: Value,
    /// Arrays nested in `deep`.
    depth: usize,
    /// Malformed values besides `deep`.
    mends: usize,
}

impl RawRecord {
    /// What `deep` reads as, and its mends, for a record at nesting level `level` (3 in a
    /// page, 6 in a `$batch` item's page): arrays past `MAX_DEPTH` become `null`.
    fn deep_at(&self, level: usize) -> (Value, usize) {
        let room = entra_connector::graph::intake::MAX_DEPTH - level;
        let (mut deep, mends) = if self.depth > room {
            (Value::Null, 1)
        } else {
            (json!("x"), 0)
        };
        for _ in 0..self.depth.min(room) {
            deep = Value::Array(vec![deep]);
        }
        (deep, mends)
    }

    /// Every malformed value of the record at nesting level `level`.
    fn mends_at(&self, level: usize) -> usize {
        self.mends + self.deep_at(level).1
    }
}

fn raw_record() -> impl Strategy<Value = RawRecord> {
    let number = prop_oneof![
        3 => any::<i64>().prop_map(|n| (n.to_string(), json!(n), 0)),
        1 => (309u32..100_000, any::<bool>()).prop_map(|(e, neg)| {
            (format!("{}1.5e{e}", if neg { "-" } else { "" }), Value::Null, 1)
        }),
        1 => (310usize..400).prop_map(|n| ("7".repeat(n), Value::Null, 1)),
    ];
    (
        "[a-z0-9-]{1,12}",
        prop::collection::vec(piece(), 0..8),
        number,
        0usize..150,
    )
        .prop_map(|(id, pieces, (number_text, number, number_mends), depth)| {
            let mut wire = format!(r#"{{"id":"{id}","displayName":""#).into_bytes();
            let mut name = String::new();
            let mut mends = number_mends;
            for p in &pieces {
                wire.extend_from_slice(&p.wire);
                name.push_str(&p.read);
                mends += p.mends;
            }
            wire.extend_from_slice(format!(r#"","n":{number_text},"deep":"#).as_bytes());
            wire.extend_from_slice("[".repeat(depth).as_bytes());
            wire.extend_from_slice(b"\"x\"");
            wire.extend_from_slice("]".repeat(depth).as_bytes());
            wire.push(b'}');
            RawRecord {
                wire,
                id,
                name,
                number,
                depth,
                mends,
            }
        })
}

/// A page of raw records with a next link: the body's bytes and its records.
fn raw_page() -> impl Strategy<Value = (Vec<u8>, Vec<RawRecord>)> {
    prop::collection::vec(raw_record(), 0..6).prop_map(|records| {
        let mut wire = br#"{"@odata.context":"x","value":["#.to_vec();
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                wire.push(b',');
            }
            wire.extend_from_slice(&r.wire);
        }
        wire.extend_from_slice(
            format!(r#"],"@odata.nextLink":"{GRAPH}/v1.0/users?$skiptoken=2"}}"#).as_bytes(),
        );
        (wire, records)
    })
}

/// One top-level entry of a collection page's envelope: a key Graph uses (or not), with a
/// value of the right type or of any.
fn envelope_entry() -> impl Strategy<Value = (String, Value)> {
    let link = Just(json!(format!("{GRAPH}/v1.0/users?$skiptoken=x")));
    prop_oneof![
        3 => (Just("value".to_string()), prop_oneof![
            3 => prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
            1 => json_value(),
        ]),
        2 => (Just("@odata.nextLink".to_string()), prop_oneof![2 => link.clone(), 1 => json_value()]),
        1 => (Just("@odata.deltaLink".to_string()), prop_oneof![2 => link, 1 => json_value()]),
        1 => (Just("@odata.count".to_string()), prop_oneof![
            2 => any::<u32>().prop_map(Value::from),
            1 => json_value(),
        ]),
        1 => (prop::sample::select(&["@odata.context", "id", "Value", "@odata.nextlink"][..])
            .prop_map(str::to_string), json_value()),
    ]
}

// ------------------------------------------------------------------ properties

proptest! {
    /// No string makes the timestamp parser panic, and whatever it accepts is an instant in
    /// the years 0002-9999 (give or take a day of UTC offset) that formats back to itself,
    /// to the second.
    #[test]
    fn hostile_timestamps_parse_without_panicking(s in prop_oneof![near_timestamp(), odd_string()]) {
        let first = parse_rfc3339_ms("0002-01-01T00:00:00Z").unwrap();
        let last = parse_rfc3339_ms("9999-12-31T23:59:59.999Z").unwrap();
        const DAY_MS: i64 = 86_400_000;
        if let Some(ms) = parse_rfc3339_ms(&s) {
            prop_assert!((first - DAY_MS..=last + DAY_MS).contains(&ms), "{s:?} -> {ms}");
            let formatted = format_rfc3339(ms);
            prop_assert_eq!(formatted.len(), 20);
            if (first..=last).contains(&ms) {
                prop_assert_eq!(
                    parse_rfc3339_ms(&formatted),
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
        prop_assert_eq!(parse_rfc3339_ms(&s), Some(expected), "{}", s);
    }

    /// Any i64 formats as a 20-character timestamp without panicking.
    #[test]
    fn any_millisecond_count_formats(ms in any::<i64>()) {
        let s = format_rfc3339(ms);
        prop_assert_eq!(s.len(), 20);
        prop_assert!(parse_rfc3339_ms(&s).is_some() || s.starts_with("0001-"), "{}", s);
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

    /// Any JSON is split into a page or refused, never a panic; a page keeps every item. A
    /// body is a page only when it is an object with a `value` array, string links and a
    /// whole-number count (where present): a link of another type is an error, never the end
    /// of the listing.
    #[test]
    fn hostile_collection_pages_parse_or_are_refused(body in json_value()) {
        let expected_items = body.get("value").and_then(Value::as_array).cloned();
        let well_typed = ["@odata.nextLink", "@odata.deltaLink"]
            .iter()
            .all(|k| body.get(k).is_none_or(Value::is_string))
            && body.get("@odata.count").is_none_or(Value::is_u64);
        match Page::parse(body.clone()) {
            Ok(page) => {
                prop_assert!(body.is_object() && well_typed);
                prop_assert_eq!(Some(page.items), expected_items);
                prop_assert_eq!(page.next_link.as_deref(), body.get("@odata.nextLink").and_then(Value::as_str));
                prop_assert_eq!(page.delta_link.as_deref(), body.get("@odata.deltaLink").and_then(Value::as_str));
            }
            Err(_) => prop_assert!(expected_items.is_none() || !body.is_object() || !well_typed),
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

    /// A page whose strings hold lone surrogates, control characters, bad escapes or bytes
    /// that are not UTF-8, and whose records hold numbers beyond f64 or nesting past the
    /// limit, is read whole: every record, every id, each malformed value replaced by U+FFFD
    /// (null for a number or nesting) and nothing else changed, the next link kept, and the
    /// client's count of mended values exact.
    #[test]
    fn hostile_malformed_values_cost_only_themselves((body, records) in raw_page()) {
        let doors = ScriptedGraph::new(vec![response(200, vec![], body.clone())], response(500, vec![], vec![]));
        let config = config();
        let client = GraphClient::new(&doors, &config);
        let page = client.page(GraphGet::new(format!("{GRAPH}/v1.0/users"))).map_err(|e| {
            TestCaseError::fail(format!("{e} in {:?}", String::from_utf8_lossy(&body)))
        })?;
        prop_assert_eq!(page.items.len(), records.len());
        for (item, r) in page.items.iter().zip(&records) {
            prop_assert_eq!(&item["id"], &json!(r.id));
            prop_assert_eq!(&item["displayName"], &json!(r.name));
            prop_assert_eq!(&item["n"], &r.number);
            prop_assert_eq!(&item["deep"], &r.deep_at(3).0);
        }
        let next = format!("{GRAPH}/v1.0/users?$skiptoken=2");
        prop_assert_eq!(page.next_link.as_deref(), Some(next.as_str()));
        let total: usize = records.iter().map(|r| r.mends_at(3)).sum();
        let (counted, warning) = client.mended();
        prop_assert_eq!(counted, total as u64);
        prop_assert_eq!(warning.is_some(), total > 0);
        if let Some(w) = warning {
            prop_assert!(!w.chars().any(char::is_control), "{:?}", w);
        }
        // Mends are placed in the records that hold them.
        let decoded = entra_connector::graph::intake::decode(&body).expect("read above");
        for r in records.iter().filter(|r| r.mends_at(3) > 0) {
            let named: usize = decoded.mended.iter()
                .filter(|m| m.record.as_deref() == Some(r.id.as_str()))
                .map(|m| m.values)
                .sum();
            let same_id: usize = records.iter().filter(|o| o.id == r.id).map(|o| o.mends_at(3)).sum();
            prop_assert_eq!(named, same_id, "{}", r.id);
        }
    }

    /// Any mix of envelope keys (repeated or not) with values of any type: the page is read
    /// only when no key repeats and every envelope field has Graph's type — `value` an array,
    /// links strings, the count a whole number — and it is then read exactly; anything else
    /// is an error, never an empty page or a listing taken as complete.
    #[test]
    fn hostile_malformed_envelopes_are_errors_never_pages(entries in prop::collection::vec(envelope_entry(), 0..6)) {
        let text = format!(
            "{{{}}}",
            entries.iter()
                .map(|(k, v)| format!("{}:{v}", json!(k)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut seen = std::collections::HashSet::new();
        let repeated = !entries.iter().all(|(k, _)| seen.insert(k.as_str()));
        let field = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let well_typed = field("value").is_some_and(Value::is_array)
            && field("@odata.nextLink").is_none_or(Value::is_string)
            && field("@odata.deltaLink").is_none_or(Value::is_string)
            && field("@odata.count").is_none_or(Value::is_u64);
        let doors = ScriptedGraph::new(vec![response(200, vec![], text.clone().into_bytes())], response(500, vec![], vec![]));
        let config = config();
        let client = GraphClient::new(&doors, &config);
        match client.page(GraphGet::new(format!("{GRAPH}/v1.0/users"))) {
            Ok(page) => {
                prop_assert!(!repeated && well_typed, "{}", text);
                // As serde_json reads its own text (floats round-trip only approximately).
                let written = field("value").map(|v| serde_json::from_str::<Value>(&v.to_string()).unwrap());
                prop_assert_eq!(Some(Value::Array(page.items)), written);
                prop_assert_eq!(page.next_link.as_deref(), field("@odata.nextLink").and_then(Value::as_str));
                prop_assert_eq!(page.delta_link.as_deref(), field("@odata.deltaLink").and_then(Value::as_str));
            }
            Err(e) => {
                prop_assert!(repeated || !well_typed, "{}: {}", text, e);
                prop_assert!(!e.to_string().contains('\n'), "one line: {}", e);
            }
        }
    }

    /// `$batch` answers whose item bodies hold malformed values, and whose items or envelope
    /// repeat a key: an item repeating a key (or answered twice) fails alone, a repeated
    /// `responses` fails the batch, and every other item is read with only its malformed
    /// values replaced.
    #[test]
    fn hostile_batch_bodies_cost_only_their_malformed_values(
        items in prop::collection::vec((raw_record(), 0u8..8), 1..20),
        repeat_responses in prop::bool::weighted(0.1),
    ) {
        // kind: 0 a repeated `body`, 1 a repeated `status`, 2 answered twice, else well formed.
        let mut text = br#"{"responses":["#.to_vec();
        for (i, (r, kind)) in items.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            let page = [&br#"{"value":["#[..], &r.wire, b"]}"].concat();
            let item = |extra: &str| {
                [format!(r#"{{"id":"{i}","status":200,{extra}"body":"#).as_bytes(), &page, b"}"].concat()
            };
            match kind {
                0 => text.extend(item(r#""body":{"value":[]},"#)),
                1 => text.extend(item(r#""status":404,"#)),
                2 => {
                    text.extend(item(""));
                    text.push(b',');
                    text.extend(item(""));
                }
                _ => text.extend(item("")),
            }
        }
        text.extend_from_slice(b"]");
        if repeat_responses {
            text.extend_from_slice(br#","responses":[]"#);
        }
        text.push(b'}');
        let doors = ScriptedGraph::new(vec![response(200, vec![], text.clone())], response(500, vec![], vec![]));
        let config = config();
        let client = GraphClient::new(&doors, &config);
        let subs: Vec<SubGet> = (0..items.len())
            .map(|i| SubGet::new(format!("{GRAPH}/v1.0/users/u{i}/memberOf")))
            .collect();
        let results = client.batch_get(&subs);
        prop_assert_eq!(results.len(), items.len());
        let mut total = 0u64;
        for (result, (r, kind)) in results.iter().zip(&items) {
            match (repeat_responses, kind, result) {
                (false, 3.., Ok(body)) => {
                    let user = &body["value"][0];
                    prop_assert_eq!(&user["id"], &json!(r.id));
                    prop_assert_eq!(&user["displayName"], &json!(r.name));
                    prop_assert_eq!(&user["deep"], &r.deep_at(6).0);
                    total += r.mends_at(6) as u64;
                }
                (true, _, Err(_)) | (false, 0..=2, Err(_)) => {}
                (_, _, other) => prop_assert!(false, "kind {kind}: {other:?} in {:?}", String::from_utf8_lossy(&text)),
            }
        }
        prop_assert_eq!(client.mended().0, total);
    }
}
