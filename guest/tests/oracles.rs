//! The guest's own rules checked against kept crates (proptest): `time.rs` against `chrono`,
//! and the id rule of `graph/encode.rs` against `url` (the WHATWG parser the host's egress
//! check uses). The oracles are other people's code, so a misunderstanding of ours cannot
//! pass on both sides.
//!
//! `time.rs` accepts a string exactly when chrono's strict parser does, and they agree on
//! the instant, except where `time.rs` has a rule of its own, each written in
//! [`chrono_rfc3339`] / [`chrono_imf_fixdate`] with its reason:
//! - RFC 3339: chrono also takes a space for the `T` (RFC 3339's readability note) and
//!   U+2212 MINUS SIGN in an offset (ISO 8601); neither is RFC 3339's grammar, and Graph
//!   sends neither. Year 0001 is Graph's "never" (.NET's `DateTime.MinValue`), and 0000 is
//!   below .NET's range: no instant. A leap second (`:60`) is refused: .NET, which writes
//!   Graph's timestamps, cannot represent one.
//! - IMF-fixdate (RFC 9110 §5.6.7): chrono's `strftime` parser takes any case, long names,
//!   one-digit fields and extra spaces; IMF-fixdate is fixed-length and case-sensitive, so
//!   the oracle is "chrono parses it and renders it back byte for byte". chrono's `%Y` also
//!   reads and writes signed years (`-7203`), which IMF-fixdate's `4DIGIT` is not. A leap
//!   second is refused, as above.
//!
//! CI runs each property 256 times (proptest's default). The million-case run, every
//! property a million times (README, "Property tests"):
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release -p entra-connector --test oracles
//! ```

mod strategies;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, SecondsFormat, Timelike, Utc};
use connector_sdk::time::{format_rfc3339, parse_http_date_ms, parse_rfc3339_ms};
use entra_connector::graph::path_segment;
use proptest::prelude::*;
use strategies::{near_timestamp, odd_char, odd_string};

/// `0001-01-01T00:00:00Z`, the first instant `format_rfc3339` renders.
const MIN_FORMAT_MS: i64 = -62_135_596_800_000;
/// `0002-01-01T00:00:00Z`, the first instant `parse_rfc3339_ms` accepts in UTC.
const MIN_PARSE_MS: i64 = -62_104_060_800_000;
/// `9999-12-31T23:59:59.999Z`, the last instant either renders or accepts.
const MAX_MS: i64 = 253_402_300_799_999;
/// `0000-01-01T00:00:00Z`, the first instant an IMF-fixdate can name.
const MIN_HTTP_MS: i64 = -62_167_219_200_000;
/// An IMF-fixdate in chrono's `strftime` terms.
const IMF_FIXDATE: &str = "%a, %d %b %Y %H:%M:%S GMT";
/// Graph's `$filter` form, as `format_rfc3339` writes it.
const GRAPH_FILTER_TIME: &str = "%Y-%m-%dT%H:%M:%SZ";

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("the instant is in chrono's range")
}

/// What `parse_rfc3339_ms` must answer, from chrono's strict RFC 3339 parser and the
/// rules `time.rs` adds (module documentation).
fn chrono_rfc3339(s: &str) -> Option<i64> {
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    let bytes = s.as_bytes();
    if bytes[10] == b' ' || s.contains('\u{2212}') {
        return None; // not RFC 3339's grammar
    }
    if dt.nanosecond() >= 1_000_000_000 {
        return None; // a leap second
    }
    if dt.year() <= 1 {
        return None; // the year as written: 0001 is "never", 0000 no .NET date
    }
    Some(dt.timestamp_millis())
}

/// What `parse_http_date_ms` must answer: chrono parses the string as an IMF-fixdate and
/// renders it back unchanged, its year is four digits, and it is no leap second (module
/// documentation).
fn chrono_imf_fixdate(s: &str) -> Option<i64> {
    let dt = NaiveDateTime::parse_from_str(s, IMF_FIXDATE).ok()?;
    if dt.format(IMF_FIXDATE).to_string() != s || dt.nanosecond() >= 1_000_000_000 {
        return None;
    }
    if !(0..=9999).contains(&dt.year()) {
        // chrono's `%Y` reads and writes a signed year ("-7203", "+10000", found by the
        // million-case run); IMF-fixdate's year is 4DIGIT.
        return None;
    }
    Some(dt.and_utc().timestamp_millis())
}

// ------------------------------------------------------------------ generators

/// Any millisecond `format_rfc3339` renders as it is, and now and then one outside.
fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => MIN_FORMAT_MS..=MAX_MS,
        1 => prop::sample::select(&[MIN_FORMAT_MS, MIN_PARSE_MS, -1, 0, MAX_MS][..]),
        1 => any::<i64>(),
    ]
}

/// An RFC 3339 timestamp chrono writes (any precision, `Z` or any offset) for an instant in
/// 0001-10000, or one almost right ([`near_timestamp`], sometimes with a U+2212 minus).
fn rfc3339_like() -> impl Strategy<Value = String> {
    let precision = prop::sample::select(
        &[
            SecondsFormat::Secs,
            SecondsFormat::Millis,
            SecondsFormat::Micros,
            SecondsFormat::Nanos,
            SecondsFormat::AutoSi,
        ][..],
    );
    let written = (
        MIN_FORMAT_MS..=MAX_MS,
        0u32..1_000_000,
        -(23 * 3600 + 59 * 60)..=(23 * 3600 + 59 * 60),
        precision,
        any::<bool>(),
    )
        .prop_map(|(ms, sub_ms_nanos, offset_s, precision, zulu)| {
            let offset = FixedOffset::east_opt(offset_s / 60 * 60).expect("within a day");
            let at = utc(ms) + chrono::Duration::nanoseconds(i64::from(sub_ms_nanos));
            if zulu {
                at.to_rfc3339_opts(precision, true)
            } else {
                at.with_timezone(&offset).to_rfc3339_opts(precision, false)
            }
        });
    prop_oneof![
        3 => written,
        3 => near_timestamp(),
        1 => near_timestamp().prop_map(|s| s.replacen('-', "\u{2212}", 3)),
        1 => odd_string(),
    ]
}

/// An IMF-fixdate chrono writes for a second of 0000-9999, then maybe one change: the day
/// name of another day, the day or a time field out of range, a signed year, a character
/// inserted, removed or replaced.
fn imf_like() -> impl Strategy<Value = String> {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    (
        (MIN_HTTP_MS / 1000)..=(MAX_MS / 1000),
        0u8..10,
        prop::sample::select(&NAMES[..]),
        0u32..100,
        any::<prop::sample::Index>(),
        odd_char(),
    )
        .prop_map(|(secs, op, name, n, at, c)| {
            let s = utc(secs * 1000).format(IMF_FIXDATE).to_string();
            let mut chars: Vec<char> = s.chars().collect();
            let i = at.index(chars.len() + 1);
            match op {
                0 => format!("{name}{}", &s[3..]),
                1 => format!("{}{n:02}{}", &s[..5], &s[7..]),
                2 => format!("{}{:02}{}", &s[..17], n % 30, &s[19..]),
                3 => format!("{}{:02}{}", &s[..23], 55 + n % 10, &s[25..]),
                // A signed year, as chrono's `%Y` writes years outside 0000-9999.
                7 => format!("{}{}{}", &s[..12], ["-", "+1"][n as usize % 2], &s[12..]),
                4 if i < chars.len() => {
                    chars[i] = c;
                    chars.into_iter().collect()
                }
                5 => {
                    chars.insert(i, c);
                    chars.into_iter().collect()
                }
                6 if i < chars.len() => {
                    chars.remove(i);
                    chars.into_iter().collect()
                }
                _ => s,
            }
        })
}

/// Ids Graph could send, leaning on dots, escapes and URL punctuation.
fn hostile_id() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(
        &[
            ".", "..", "%2e", "%2E", "%", "2e", "/", "\\", "?", "#", ";", "%2f", "e", " ", "\t",
        ][..],
    );
    prop_oneof![
        2 => prop::collection::vec(piece, 0..5).prop_map(|p| p.concat()),
        1 => prop::sample::select(&["", ".", "..", "...", "%2e%2e", ".%2e", "%2E.", "a/../b"][..])
            .prop_map(str::to_string),
        2 => odd_string(),
    ]
}

// ------------------------------------------------------------------ properties

proptest! {
    /// `format_rfc3339` writes what chrono writes, to the second, over every millisecond
    /// of 0001-9999; outside that range it writes the nearest end (its documented clamp).
    #[test]
    fn formats_as_chrono_does(ms in instant()) {
        let expected = utc(ms.clamp(MIN_FORMAT_MS, MAX_MS)).format(GRAPH_FILTER_TIME).to_string();
        prop_assert_eq!(format_rfc3339(ms), expected);
    }

    /// Round trips through chrono: what `format_rfc3339` writes chrono reads back as the
    /// same second, and what chrono writes (any precision, any offset) `parse_rfc3339_ms`
    /// reads as chrono's instant, truncated to the millisecond — or refuses, exactly when
    /// the written year is 0001 or past 9999.
    #[test]
    fn rfc3339_round_trips_through_chrono(s in rfc3339_like(), ms in instant()) {
        let written = format_rfc3339(ms);
        let back = DateTime::parse_from_rfc3339(&written).expect("chrono reads what we write");
        prop_assert_eq!(
            back.timestamp_millis(),
            ms.clamp(MIN_FORMAT_MS, MAX_MS).div_euclid(1000) * 1000
        );
        prop_assert_eq!(parse_rfc3339_ms(&s), chrono_rfc3339(&s), "{:?}", s);
    }

    /// Any string: `parse_rfc3339_ms` accepts it exactly when chrono's RFC 3339 parser
    /// does (under the rules in the module documentation), with the same instant.
    #[test]
    fn rfc3339_strings_are_read_as_chrono_reads_them(s in prop_oneof![rfc3339_like(), any::<String>()]) {
        prop_assert_eq!(parse_rfc3339_ms(&s), chrono_rfc3339(&s), "{:?}", s);
    }

    /// Every second an IMF-fixdate can name (years 0000-9999), as chrono writes it, is read
    /// as that second.
    #[test]
    fn http_dates_round_trip_through_chrono(secs in (MIN_HTTP_MS / 1000)..=(MAX_MS / 1000)) {
        let s = utc(secs * 1000).format(IMF_FIXDATE).to_string();
        prop_assert_eq!(parse_http_date_ms(&s), Some(secs * 1000), "{}", s);
    }

    /// Any string: `parse_http_date_ms` accepts it exactly when it is an IMF-fixdate chrono
    /// reads and writes back unchanged (no leap second), with the same instant; 31 February,
    /// a wrong day name or an hour of 24 is no date.
    #[test]
    fn http_date_strings_are_read_as_chrono_reads_them(s in prop_oneof![4 => imf_like(), 1 => odd_string()]) {
        prop_assert_eq!(parse_http_date_ms(&s), chrono_imf_fixdate(&s), "{:?}", s);
    }

    /// An id placed in a path by `path_segment` stays one segment for the WHATWG parser the
    /// host uses (no `.`/`..` resolution, no new segment, query or fragment) and decodes back
    /// to the id; it is refused exactly when it is empty, `.` or `..`.
    #[test]
    fn ids_never_change_the_path(id in hostile_id()) {
        match path_segment(&id) {
            Some(seg) => {
                let url = url::Url::parse(&format!("https://graph.test/v1.0/users/{seg}/memberOf"))
                    .expect("a Graph URL with one encoded segment parses");
                let segments: Vec<&str> = url.path_segments().expect("a path").collect();
                prop_assert_eq!(segments, vec!["v1.0", "users", seg.as_str(), "memberOf"]);
                prop_assert_eq!(url.query(), None);
                prop_assert_eq!(url.fragment(), None);
                let decoded = percent_encoding::percent_decode_str(&seg).decode_utf8();
                prop_assert_eq!(decoded.as_deref(), Ok(id.as_str()));
            }
            None => prop_assert!(["", ".", ".."].contains(&id.as_str()), "{:?} refused", id),
        }
    }
}
