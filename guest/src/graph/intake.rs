//! The connector's JSON intake: every body Graph (or its login host) answers becomes JSON here
//! and nowhere else: pages of users, delta pages, groups, roles, reports, `$batch` answers and
//! their items, error bodies, token answers.
//!
//! Two rules hold for every body.
//!
//! **One malformed value costs at most that value.** serde_json refuses a whole document for
//! one string it cannot hold in a Rust `String` — an escaped lone surrogate (`"\ud800"`, what
//! JavaScript's `JSON.stringify` writes for half of an emoji cut in two), a raw control
//! character, an unknown escape, bytes that are not UTF-8 — and for a number beyond `f64` or
//! nesting deeper than its recursion limit (128). One such value in one user's `displayName`
//! made the page unparseable, the run failed before the cursor moved, and every later run
//! failed at the same page. serde_json has no lossy mode and will not get one: lone surrogates
//! decode only into byte strings, never into `Value` or `String` (serde-rs/json#495 and #827,
//! closed by the maintainer with that answer), and no crate kept here mends JSON text. So
//! [`mend`] walks the raw bytes once before serde_json sees them and rewrites, inside strings
//! only, each such spot into U+FFFD (an escape into `\uFFFD`, a raw byte into the character);
//! a number beyond `f64` and a value nested deeper than [`MAX_DEPTH`] become `null`. Valid
//! surrogate pairs, valid escapes and valid UTF-8 are left exactly as they are, and a body
//! that needs nothing is not copied. Structure is never mended: a body that is still not
//! JSON is refused whole. Each mend is counted, and [`decode`] says which record of the page
//! (its `id`) held it, for the warning that names it.
//!
//! **The envelope is exact.** serde_json's `Value` keeps the last of two equal keys, so a page
//! holding `value` twice lost its first twenty users while the cursor moved on. [`decode`]
//! refuses a body whose top-level object repeats a key (RFC 8259 §4: names "SHOULD be
//! unique"; Graph never repeats one), and a body that is not an object at all (every Graph
//! answer is one). Types are checked by the readers: [`super::Page::parse`] for collection
//! pages, typed serde structs (which refuse duplicate fields) for `$batch` answers.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Deepest nesting of arrays and objects kept; a value nested deeper becomes `null`. Graph's
/// records are a few levels deep; serde_json's own limit (128) refuses the whole document.
pub const MAX_DEPTH: usize = 64;

/// U+FFFD as a JSON escape: replaces an escape of the same length (6 bytes).
const FFFD_ESCAPE: &[u8] = b"\\uFFFD";
/// U+FFFD in UTF-8 (3 bytes): replaces a raw byte or a stray backslash, so a body grows at
/// most threefold.
const FFFD_UTF8: &[u8] = "\u{FFFD}".as_bytes();

/// A body after [`mend`]: its bytes (borrowed when nothing was mended) and where each
/// replacement starts in them, in increasing order.
#[derive(Debug)]
pub struct Mended<'a> {
    /// The mended body.
    pub bytes: Cow<'a, [u8]>,
    /// Offset in `bytes` of each replacement.
    pub at: Vec<usize>,
}

/// Builds the mended copy lazily: nothing is copied until the first replacement.
struct Writer<'a> {
    input: &'a [u8],
    out: Option<Vec<u8>>,
    /// Input not copied yet starts here.
    start: usize,
    at: Vec<usize>,
}

impl<'a> Writer<'a> {
    /// Replaces `input[from..to]` with `with`.
    fn replace(&mut self, from: usize, to: usize, with: &[u8]) {
        let input = self.input;
        let out = self
            .out
            .get_or_insert_with(|| Vec::with_capacity(input.len().saturating_add(16)));
        out.extend_from_slice(&input[self.start..from]);
        self.at.push(out.len());
        out.extend_from_slice(with);
        self.start = to;
    }

    fn finish(self) -> Mended<'a> {
        match self.out {
            None => Mended {
                bytes: Cow::Borrowed(self.input),
                at: Vec::new(),
            },
            Some(mut out) => {
                out.extend_from_slice(&self.input[self.start..]);
                Mended {
                    bytes: Cow::Owned(out),
                    at: self.at,
                }
            }
        }
    }
}

/// Rewrites what serde_json would refuse the whole body for, one value at a time (module
/// doc): inside strings, an escaped lone surrogate, an unknown or cut escape, a raw control
/// character or bytes that are not UTF-8 become U+FFFD; outside strings, a number beyond
/// `f64` and a value nested deeper than [`MAX_DEPTH`] become `null`. Linear in the body's
/// length; never panics.
pub fn mend(input: &[u8]) -> Mended<'_> {
    let mut w = Writer {
        input,
        out: None,
        start: 0,
        at: Vec::new(),
    };
    let mut i = 0;
    let mut in_string = false;
    let mut depth = 0usize;
    while i < input.len() {
        let b = input[i];
        if !in_string {
            match b {
                b'"' => {
                    in_string = true;
                    i += 1;
                }
                b'[' | b'{' if depth >= MAX_DEPTH => match value_end(input, i) {
                    Some(end) => {
                        w.replace(i, end, b"null");
                        i = end;
                    }
                    // Never closed: not JSON, refused by the parser.
                    None => break,
                },
                b'[' | b'{' => {
                    depth += 1;
                    i += 1;
                }
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                b'-' | b'0'..=b'9' => {
                    let end = input[i..]
                        .iter()
                        .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                        .map_or(input.len(), |n| i + n);
                    if number_out_of_range(&input[i..end]) {
                        w.replace(i, end, b"null");
                    }
                    i = end;
                }
                _ => i += 1,
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                i += 1;
            }
            b'\\' => i = escape(&mut w, input, i),
            0x00..=0x1f => {
                w.replace(i, i + 1, FFFD_UTF8);
                i += 1;
            }
            0x80..=0xff => {
                // A character is at most 4 bytes: the window holds the first one whole.
                let window = &input[i..input.len().min(i + 4)];
                match window.utf8_chunks().next() {
                    Some(c) if !c.valid().is_empty() => {
                        i += c.valid().chars().next().map_or(1, char::len_utf8);
                    }
                    Some(c) => {
                        // The maximal ill-formed subpart, as `String::from_utf8_lossy` does.
                        let n = c.invalid().len().max(1);
                        w.replace(i, i + n, FFFD_UTF8);
                        i += n;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    w.finish()
}

/// The four hex digits at `at`, if there are four.
fn hex4(input: &[u8], at: usize) -> Option<u16> {
    let digits = input.get(at..at.checked_add(4)?)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Handles the escape starting at `input[i] == b'\\'` inside a string; returns where reading
/// goes on.
fn escape(w: &mut Writer<'_>, input: &[u8], i: usize) -> usize {
    let Some(&n) = input.get(i + 1) else {
        // The body ends inside a string: not JSON, refused by the parser.
        return i + 1;
    };
    match n {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i + 2,
        b'u' => match hex4(input, i + 2) {
            None => {
                // `\u` cut short: it and the hex digits it has become U+FFFD.
                let digits = input[i + 2..]
                    .iter()
                    .take(4)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                w.replace(i, i + 2 + digits, FFFD_ESCAPE);
                i + 2 + digits
            }
            Some(0xD800..=0xDBFF) => {
                let paired = input.get(i + 6) == Some(&b'\\')
                    && input.get(i + 7) == Some(&b'u')
                    && hex4(input, i + 8).is_some_and(|lo| (0xDC00..=0xDFFF).contains(&lo));
                if paired {
                    i + 12
                } else {
                    w.replace(i, i + 6, FFFD_ESCAPE);
                    i + 6
                }
            }
            Some(0xDC00..=0xDFFF) => {
                w.replace(i, i + 6, FFFD_ESCAPE);
                i + 6
            }
            Some(_) => i + 6,
        },
        // An unknown escape: the stray backslash becomes U+FFFD and what follows is text.
        _ => {
            w.replace(i, i + 1, FFFD_UTF8);
            i + 1
        }
    }
}

/// Where the array or object opening at `input[start]` closes (one past its last byte), if it
/// does; strings are skipped.
fn value_end(input: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = start;
    while i < input.len() {
        match (in_string, input[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'[' | b'{') => depth += 1,
            (false, b']' | b'}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `token` is a JSON number (RFC 8259 §6) that serde_json refuses for its size.
fn number_out_of_range(token: &[u8]) -> bool {
    // Fifteen digits and no exponent fit any f64 comfortably: skip the second parse.
    if token.len() <= 15 && !token.iter().any(|c| matches!(c, b'e' | b'E')) {
        return false;
    }
    is_json_number(token) && serde_json::from_slice::<Value>(token).is_err()
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(t: &[u8]) -> bool {
    let digits = |i: &mut usize| {
        let from = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    let mut i = 0;
    if t.first() == Some(&b'-') {
        i += 1;
    }
    match t.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == t.len()
}

/// Values mended in one record of a body.
#[derive(Clone, Debug, PartialEq)]
pub struct Mend {
    /// The record's `id`: an item of the page's `value` array, or the body itself; None when
    /// the mend is outside any item with a string id.
    pub record: Option<String>,
    /// How many values of it were mended.
    pub values: usize,
}

/// A body read: its top-level object and what was mended in it, record by record.
#[derive(Debug)]
pub struct Decoded {
    /// The body (always an object).
    pub value: Value,
    /// Records holding mended values (empty when nothing was mended).
    pub mended: Vec<Mend>,
}

/// Mends and parses a body (module doc). The error says what is wrong with it, to follow
/// "the body …".
pub fn decode(body: &[u8]) -> Result<Decoded, String> {
    let m = mend(body);
    decode_mended(&m.bytes, &m.at)
}

/// Parses a body [`mend`] has mended already (`at`: its replacements, e.g. a `$batch` item's
/// body inside a mended answer): a top-level object whose keys are all different.
pub fn decode_mended(bytes: &[u8], at: &[usize]) -> Result<Decoded, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(match first {
            None => "is empty, not the JSON object Graph answers".to_string(),
            Some(b'[') => "is a JSON array, not the object Graph answers".to_string(),
            Some(b'"') => "is a JSON string, not the object Graph answers".to_string(),
            Some(b't' | b'f') => "is a JSON boolean, not the object Graph answers".to_string(),
            Some(b'n') => "is JSON null, not the object Graph answers".to_string(),
            Some(b'-' | b'0'..=b'9') => {
                "is a JSON number, not the object Graph answers".to_string()
            }
            Some(_) => "is not JSON".to_string(),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Envelope(map) = Envelope::deserialize(&mut de)
        .and_then(|e| de.end().map(|()| e))
        .map_err(|e| format!("is not usable JSON ({e})"))?;
    let mended = if at.is_empty() {
        Vec::new()
    } else {
        attribute(bytes, at, &map)
    };
    Ok(Decoded {
        value: Value::Object(map),
        mended,
    })
}

/// A top-level object that refuses a repeated key.
struct Envelope(Map<String, Value>);

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Envelope;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Envelope, A::Error> {
                let mut map = Map::new();
                while let Some(key) = a.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(de::Error::custom(format_args!(
                            "the key {} appears twice; Graph never repeats a key",
                            quote(&key)
                        )));
                    }
                    let value = a.next_value::<Value>()?;
                    map.insert(key, value);
                }
                Ok(Envelope(map))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Assigns each replacement to the item of `value` holding it (by byte range), or to the
/// body's own `id`.
fn attribute(bytes: &[u8], at: &[usize], map: &Map<String, Value>) -> Vec<Mend> {
    #[derive(serde::Deserialize)]
    struct Items<'a> {
        #[serde(borrow, default)]
        value: Option<Vec<&'a RawValue>>,
    }
    let mut out = Vec::new();
    let mut placed = 0usize;
    if let Ok(Items { value: Some(items) }) = serde_json::from_slice::<Items>(bytes) {
        for raw in items {
            let text = raw.get();
            let Some(start) = (text.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize) else {
                continue;
            };
            let end = start.saturating_add(text.len());
            let values = at.partition_point(|p| *p < end) - at.partition_point(|p| *p < start);
            if values > 0 {
                placed += values;
                let record = serde_json::from_slice::<Value>(text.as_bytes())
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
                out.push(Mend { record, values });
            }
        }
    }
    let rest = at.len().saturating_sub(placed);
    if rest > 0 {
        out.push(Mend {
            record: map.get("id").and_then(Value::as_str).map(str::to_string),
            values: rest,
        });
    }
    out
}

/// `text` quoted for a one-line message: escaped (no control character reaches a log line)
/// and cut at 80 characters.
pub fn quote(text: &str) -> String {
    let mut out = String::from("'");
    for (n, c) in text.chars().enumerate() {
        if n == 80 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('\'');
    out
}

/// The kind of a JSON value, for messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mended(s: &str) -> (String, usize) {
        let m = mend(s.as_bytes());
        (String::from_utf8(m.bytes.into_owned()).unwrap(), m.at.len())
    }

    /// serde_json refuses `raw` whole; once mended it reads `expected`.
    fn repairs(raw: &[u8], expected: Value, count: usize) {
        assert!(
            serde_json::from_slice::<Value>(raw).is_err(),
            "serde_json refuses {:?} as it is",
            String::from_utf8_lossy(raw)
        );
        let m = mend(raw);
        assert_eq!(m.at.len(), count, "{:?}", String::from_utf8_lossy(raw));
        let v: Value = serde_json::from_slice(&m.bytes).expect("mended JSON parses");
        assert_eq!(v, expected, "{:?}", String::from_utf8_lossy(raw));
    }

    #[test]
    fn hostile_lone_surrogates_become_replacement_characters_and_pairs_stay() {
        use serde_json::json;
        repairs(br#"{"a":"x\ud800y"}"#, json!({"a": "x\u{FFFD}y"}), 1);
        repairs(br#"{"a":"\uDC00"}"#, json!({"a": "\u{FFFD}"}), 1);
        repairs(
            br#"{"a":"\ud800\ud800"}"#,
            json!({"a": "\u{FFFD}\u{FFFD}"}),
            2,
        );
        repairs(
            br#"{"a":"\udc00\ud83d\ude00"}"#,
            json!({"a": "\u{FFFD}😀"}),
            1,
        );
        repairs(br#"{"a":"\ud83d\u0041"}"#, json!({"a": "\u{FFFD}A"}), 1);
        repairs(br#"{"a":"\ud83d"}"#, json!({"a": "\u{FFFD}"}), 1);
        repairs(br#"{"\ud800":1}"#, json!({"\u{FFFD}": 1}), 1);
        // A pair, an escaped backslash before `u`, and plain escapes are left alone.
        for ok in [
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\\ud800"}"#,
            r#"{"a":"\"\\\/\b\f\n\r\t\u0000\u00e9"}"#,
            r#"{"a":"é😀"}"#,
        ] {
            let (out, n) = mended(ok);
            assert_eq!((out.as_str(), n), (ok, 0));
            assert!(matches!(mend(ok.as_bytes()).bytes, Cow::Borrowed(_)));
        }
    }

    #[test]
    fn hostile_control_characters_bad_escapes_and_bad_utf8_become_replacement_characters() {
        use serde_json::json;
        repairs(
            b"{\"a\":\"x\ny\x01\"}",
            json!({"a": "x\u{FFFD}y\u{FFFD}"}),
            2,
        );
        repairs(br#"{"a":"\q\x"}"#, json!({"a": "\u{FFFD}q\u{FFFD}x"}), 2);
        repairs(br#"{"a":"\u12"}"#, json!({"a": "\u{FFFD}"}), 1);
        repairs(br#"{"a":"\u12G"}"#, json!({"a": "\u{FFFD}G"}), 1);
        repairs(
            b"{\"a\":\"x\xffy\xe2\x82z\"}",
            json!({"a": "x\u{FFFD}y\u{FFFD}z"}),
            2,
        );
        repairs(
            b"{\"a\":\"\xed\xa0\x80\"}",
            json!({"a": "\u{FFFD}\u{FFFD}\u{FFFD}"}),
            3,
        );
        repairs(b"{\"a\":\"\\\x01\"}", json!({"a": "\u{FFFD}\u{FFFD}"}), 2);
    }

    #[test]
    fn hostile_numbers_beyond_f64_and_too_deep_values_become_null() {
        use serde_json::json;
        repairs(
            br#"{"a":1e400,"b":-1E+999,"c":2}"#,
            json!({"a": null, "b": null, "c": 2}),
            2,
        );
        let huge = format!(r#"{{"a":{}}}"#, "9".repeat(400));
        repairs(huge.as_bytes(), json!({"a": null}), 1);
        // Big but in range, and tiny: kept.
        let (out, n) = mended(r#"{"a":1e300,"b":1e-400,"c":18446744073709551616}"#);
        assert_eq!(n, 0, "{out}");
        let deep = format!(
            r#"{{"value":[{{"id":"u","x":{}"s]}}"{}}}],"k":1}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let m = mend(deep.as_bytes());
        assert_eq!(m.at.len(), 1);
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        let x = &v["value"][0]["x"];
        let mut d = 0;
        let mut cur = x;
        while let Some(inner) = cur.get(0) {
            cur = inner;
            d += 1;
        }
        assert!(cur.is_null() && d > 50, "{d}");
        assert_eq!(v["k"], 1);
    }

    #[test]
    fn structure_is_never_mended() {
        for bad in [
            &b"{\"a\":\"x"[..],
            b"{\"a\":1e400",
            b"{\"a\" 1}",
            b"{\"a\":\x01}",
            b"{\"a\":01}",
            b"{\"a\":1.e999}",
            b"\xff{}",
        ] {
            let m = mend(bad);
            assert!(
                serde_json::from_slice::<Value>(&m.bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let unclosed = format!("{{\"a\":{}", "[".repeat(100));
        assert!(serde_json::from_slice::<Value>(&mend(unclosed.as_bytes()).bytes).is_err());
    }

    #[test]
    fn hostile_mends_are_named_by_the_record_holding_them() {
        let body = br#"{"value":[{"id":"a","n":"ok"},{"id":"b","n":"\ud800","m":"\udc00"},{"n":"\u0001\ud800"}],"@odata.nextLink":"x\ud800"}"#;
        let d = decode(body).unwrap();
        assert_eq!(d.value["value"][1]["n"], "\u{FFFD}");
        assert_eq!(
            d.mended,
            vec![
                Mend {
                    record: Some("b".into()),
                    values: 2
                },
                Mend {
                    record: None,
                    values: 1
                },
                Mend {
                    record: None,
                    values: 1
                },
            ]
        );
        let single = decode(br#"{"id":"u1","displayName":"\ud800"}"#).unwrap();
        assert_eq!(
            single.mended,
            vec![Mend {
                record: Some("u1".into()),
                values: 1
            }]
        );
        assert!(decode(br#"{"value":[]}"#).unwrap().mended.is_empty());
    }

    #[test]
    fn hostile_repeated_top_level_keys_and_non_objects_are_refused() {
        let e = decode(br#"{"value":[{"id":"a"}],"value":[]}"#).unwrap_err();
        assert!(e.contains("'value' appears twice"), "{e}");
        let e = decode(br#"{"value":[],"@odata.nextLink":"a","@odata.nextLink":"b"}"#).unwrap_err();
        assert!(e.contains("'@odata.nextLink' appears twice"), "{e}");
        // Inside a record, keys are the record's business: last wins as before.
        assert!(decode(br#"{"value":[{"id":"a","id":"b"}]}"#).is_ok());
        for (body, kind) in [
            (&b"[1]"[..], "array"),
            (b" \"x\"", "string"),
            (b"null", "null"),
            (b"12", "number"),
            (b"", "empty"),
            (b"<html>", "not JSON"),
        ] {
            let e = decode(body).unwrap_err();
            assert!(e.contains(kind), "{e}");
        }
        assert!(decode(b"{} {}").is_err(), "trailing text");
        let e = decode(br#"{"a":1,"a\n\u001b[2J":1,"a\n\u001b[2J":2}"#).unwrap_err();
        assert!(!e.contains('\n') && !e.contains('\x1b'), "{e}");
    }
}
