//! RFC 3339 timestamps and HTTP dates ⇄ integer milliseconds since the Unix epoch.
//!
//! Why it exists: OCSF wants every `time` / `*_time` as integer milliseconds (UTC), identity
//! APIs send RFC 3339 strings (Microsoft Graph with anything from zero to seven fractional
//! digits), and every provider's `Retry-After` may be an HTTP date. The rules are ours and
//! small enough to write out and test here: the proleptic Gregorian calendar, UTC offsets,
//! truncation to the millisecond, .NET's `0001-01-01T00:00:00Z` ("never"), no leap seconds,
//! real dates only. `chrono` checks them as a test oracle (`guest/tests/properties.rs`, where
//! each place these rules differ from chrono's parsers is written down with its reason); it
//! is not a runtime dependency, so a component carries only the code these rules need.

const MS_PER_SEC: i64 = 1_000;
const SECS_PER_DAY: i64 = 86_400;

/// First millisecond [`format_rfc3339`] renders: `0001-01-01T00:00:00Z`.
const MIN_FORMAT_MS: i64 = days_from_civil(1, 1, 1) * SECS_PER_DAY * MS_PER_SEC;
/// Last millisecond [`format_rfc3339`] renders: `9999-12-31T23:59:59.999Z`.
const MAX_FORMAT_MS: i64 = (days_from_civil(9999, 12, 31) + 1) * SECS_PER_DAY * MS_PER_SEC - 1;

/// Parses an RFC 3339 timestamp into integer milliseconds since the Unix epoch (UTC).
///
/// Accepts RFC 3339 date-times as Microsoft Graph (and most JSON APIs) send them: `2023-05-17T08:12:44Z`, with a fraction
/// of any length (`…44.1234567Z`) and/or a numeric offset (`…44+02:00`, `…44-05:30`); `T` and
/// `Z` may be lower case, as RFC 3339 allows. The fraction is **truncated** (never rounded) to
/// the millisecond, so `.9999999` gives `999`.
///
/// Returns `None` for anything else, so a caller can treat the value as absent:
/// - empty strings, surrounding whitespace, missing time or offset (a zone-less time is
///   ambiguous), offsets without a colon, trailing text;
/// - out-of-range fields: month outside 1–12, a day the month does not have (leap years
///   included: `2023-02-29` is rejected, `2024-02-29` is not), hour ≥ 24, minute ≥ 60,
///   second ≥ 60 (.NET, which serialises Graph's timestamps, cannot represent a leap second),
///   offset hour ≥ 24 or offset minute ≥ 60;
/// - **any date in year 0001** (and the invalid year 0000): services built on .NET send
///   `DateTime.MinValue` for "never"; Microsoft Graph serialises .NET's
///   `DateTime.MinValue`, `0001-01-01T00:00:00Z`, to mean "never" (for example a
///   `lastSignInDateTime` of a user who never signed in), which is not a real instant.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let mut cur = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let year = cur.digits(4)?;
    cur.expect(b'-')?;
    let month = cur.digits(2)?;
    cur.expect(b'-')?;
    let day = cur.digits(2)?;
    if !matches!(cur.next()?, b'T' | b't') {
        return None;
    }
    let hour = cur.digits(2)?;
    cur.expect(b':')?;
    let minute = cur.digits(2)?;
    cur.expect(b':')?;
    let second = cur.digits(2)?;

    let mut millis = 0;
    if cur.peek() == Some(b'.') {
        cur.pos += 1;
        let fraction = cur.take_digits();
        if fraction.is_empty() {
            return None;
        }
        // Truncate: the first three digits, padded with zeros, are the milliseconds.
        for i in 0..3 {
            millis = millis * 10 + fraction.get(i).map_or(0, |d| i64::from(d - b'0'));
        }
    }

    let offset_secs = match cur.next()? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let off_hour = cur.digits(2)?;
            cur.expect(b':')?;
            let off_minute = cur.digits(2)?;
            if off_hour > 23 || off_minute > 59 {
                return None;
            }
            let secs = i64::from(off_hour) * 3_600 + i64::from(off_minute) * 60;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if cur.pos != cur.bytes.len() {
        return None;
    }

    let year = i64::from(year);
    if year <= 1 || !real_date_and_time(year, month, day, hour, minute, second) {
        return None;
    }

    let secs = days_from_civil(year, month, day) * SECS_PER_DAY
        + i64::from(hour) * 3_600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset_secs;
    Some(secs * MS_PER_SEC + millis)
}

/// Parses an HTTP date in the one form senders must generate, IMF-fixdate (RFC 9110
/// §5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`), into milliseconds since the Unix epoch.
///
/// Strict, byte for byte: a day name and month name as written there (case-sensitive), two
/// digits of day, four of year (0000–9999), `HH:MM:SS`, single spaces, `GMT`. Real dates
/// only: the day must exist in its month (`31 Feb` is no date), the day name must be that
/// date's, hour ≤ 23, minute ≤ 59, and second ≤ 59 — RFC 9110's grammar allows `60` for a
/// leap second, but which `:60` is real cannot be checked without a table, and like
/// [`parse_rfc3339_ms`] this refuses it. The obsolete RFC 850 and asctime forms, which
/// RFC 9110 asks recipients to accept as well, are refused: no server of ours sends them,
/// and the one caller (`Retry-After`) falls back to its own backoff on `None`.
pub fn parse_http_date_ms(s: &str) -> Option<i64> {
    const DAY_NAMES: [&[u8]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let bytes = s.as_bytes();
    // "Sun, 06 Nov 1994 08:49:37 GMT" is 29 bytes, always.
    if bytes.len() != 29 || &bytes[3..5] != b", " || &bytes[25..] != b" GMT" {
        return None;
    }
    let day_name = DAY_NAMES.iter().position(|d| *d == &bytes[..3])?;
    let month = MONTHS.iter().position(|m| *m == &bytes[8..11])? as u32 + 1;
    let mut cur = Cursor { bytes, pos: 5 };
    let day = cur.digits(2)?;
    cur.pos = 11;
    cur.expect(b' ')?;
    let year = i64::from(cur.digits(4)?);
    cur.expect(b' ')?;
    let hour = cur.digits(2)?;
    cur.expect(b':')?;
    let minute = cur.digits(2)?;
    cur.expect(b':')?;
    let second = cur.digits(2)?;
    if bytes[7] != b' ' || !real_date_and_time(year, month, day, hour, minute, second) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday (index 4 from Sunday).
    if (days + 4).rem_euclid(7) != day_name as i64 {
        return None;
    }
    let secs =
        days * SECS_PER_DAY + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
    Some(secs * MS_PER_SEC)
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC, second
/// precision, sub-second part dropped towards the past), the form query filters take (Graph's
/// `$filter` values such as `createdDateTime ge 2023-05-17T08:12:44Z`).
///
/// The output is always a valid 20-character timestamp: values before year 0001 or after year
/// 9999 are clamped to `0001-01-01T00:00:00Z` / `9999-12-31T23:59:59Z`. For every `ms` in years
/// 0002–9999, `parse_rfc3339_ms(&format_rfc3339(ms))` is `ms` rounded down to the second.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms
        .clamp(MIN_FORMAT_MS, MAX_FORMAT_MS)
        .div_euclid(MS_PER_SEC);
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let second_of_day = secs.rem_euclid(SECS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

/// A forward-only reader over the bytes of a timestamp.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// Exactly `count` ASCII digits as a number.
    fn digits(&mut self, count: usize) -> Option<u32> {
        let run = self.bytes.get(self.pos..self.pos + count)?;
        let mut value = 0;
        for &byte in run {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        self.pos += count;
        Some(value)
    }

    /// The (possibly empty) run of ASCII digits at the cursor.
    fn take_digits(&mut self) -> &'a [u8] {
        let bytes: &'a [u8] = self.bytes;
        let rest = &bytes[self.pos..];
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        self.pos += len;
        &rest[..len]
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// A date that exists in the proleptic Gregorian calendar and a time of day without leap
/// seconds.
fn real_date_and_time(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> bool {
    (1..=12).contains(&month)
        && day != 0
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        && second <= 59
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (inverse of
/// [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // month is in 1..=12 and day in 1..=31 by construction.
    (year, small_to_u32(month), small_to_u32(day))
}

fn small_to_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAY_17_2023: i64 = 1_684_311_164_000; // 2023-05-17T08:12:44Z

    #[test]
    fn parses_plain_utc() {
        assert_eq!(parse_rfc3339_ms("2023-05-17T08:12:44Z"), Some(MAY_17_2023));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("9999-12-31T23:59:59Z"),
            Some(253_402_300_799_000)
        );
        assert_eq!(
            parse_rfc3339_ms("0002-01-01T00:00:00Z"),
            Some(-62_104_060_800_000)
        );
    }

    #[test]
    fn lower_case_separators_are_rfc3339() {
        assert_eq!(parse_rfc3339_ms("2023-05-17t08:12:44z"), Some(MAY_17_2023));
    }

    #[test]
    fn fractions_of_any_length_are_truncated_to_the_millisecond() {
        let cases = [
            (".1", 100),
            (".12", 120),
            (".123", 123),
            (".1234", 123),
            (".1234567", 123),
            (".9999999", 999),
            (".0009999", 0),
            (".0000001", 0),
            (".000", 0),
            (".12345678901234567890123", 123),
        ];
        for (fraction, millis) in cases {
            let s = format!("2023-05-17T08:12:44{fraction}Z");
            assert_eq!(parse_rfc3339_ms(&s), Some(MAY_17_2023 + millis), "{s}");
        }
    }

    #[test]
    fn truncation_before_the_epoch_goes_towards_the_past() {
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.9999Z"), Some(-1));
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.0001Z"), Some(-1_000));
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let cases = [
            "2023-05-17T08:12:44+00:00",
            "2023-05-17T08:12:44-00:00",
            "2023-05-17T10:12:44+02:00",
            "2023-05-17T02:42:44-05:30",
            "2023-05-18T07:57:44+23:45",
            "2023-05-16T08:13:44-23:59",
        ];
        for s in cases {
            assert_eq!(parse_rfc3339_ms(s), Some(MAY_17_2023), "{s}");
        }
        assert_eq!(
            parse_rfc3339_ms("2019-03-01T12:00:00-05:30"),
            Some(1_551_461_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2023-05-17T10:12:44.5678+02:00"),
            Some(MAY_17_2023 + 567)
        );
        // An offset can move the instant into another day, month and year.
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T01:00:00+02:00"),
            parse_rfc3339_ms("2023-12-31T23:00:00Z")
        );
    }

    #[test]
    fn year_0001_means_never() {
        for s in [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.0000000Z",
            "0001-01-01T00:00:00+00:00",
            "0001-06-15T12:30:00Z",
            "0001-12-31T23:59:59.9999999Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
        assert!(parse_rfc3339_ms("0002-01-01T00:00:00Z").is_some());
    }

    #[test]
    fn leap_days() {
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T23:59:59Z"),
            Some(1_709_251_199_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        for s in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
        // The day after a leap day is exactly one day later.
        assert_eq!(
            parse_rfc3339_ms("2024-03-01T00:00:00Z").map(|ms| ms - 86_400_000),
            parse_rfc3339_ms("2024-02-29T00:00:00Z")
        );
    }

    #[test]
    fn field_ranges_are_validated() {
        for s in [
            "2023-00-17T08:12:44Z",
            "2023-13-17T08:12:44Z",
            "2023-05-00T08:12:44Z",
            "2023-05-32T08:12:44Z",
            "2023-04-31T08:12:44Z",
            "2023-06-31T08:12:44Z",
            "2023-09-31T08:12:44Z",
            "2023-11-31T08:12:44Z",
            "2023-05-17T24:00:00Z",
            "2023-05-17T08:60:44Z",
            "2023-05-17T08:12:60Z",
            "2023-05-17T08:12:44+24:00",
            "2023-05-17T08:12:44+02:60",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
        for s in [
            "2023-01-31T00:00:00Z",
            "2023-12-31T23:59:59Z",
            "2023-04-30T00:00:00Z",
        ] {
            assert!(parse_rfc3339_ms(s).is_some(), "{s}");
        }
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            "",
            " ",
            "null",
            "Unknown",
            "2023",
            "2023-05-17",
            "2023-05-17T08:12",
            "2023-05-17T08:12:44",
            "2023-05-17T08:12:44.Z",
            "2023-05-17T08:12:44.123",
            "2023-05-17 08:12:44Z",
            "2023-5-17T08:12:44Z",
            "2023-05-17T8:12:44Z",
            "23-05-17T08:12:44Z",
            "+2023-05-17T08:12:44Z",
            "12023-05-17T08:12:44Z",
            "2023/05/17T08:12:44Z",
            "2023-05-17T08:12:44ZZ",
            "2023-05-17T08:12:44Z ",
            " 2023-05-17T08:12:44Z",
            "2023-05-17T08:12:44+0200",
            "2023-05-17T08:12:44+02",
            "2023-05-17T08:12:44+2:00",
            "2023-05-17T08:12:44 +02:00",
            "2023-05-17T08:12:44.12a3Z",
            "2023-05-17T08:12:44,123Z",
            "2023-05-17T08:12:44UTC",
            "2023-05-17T08:12:44\u{0}",
            "２０２３-05-17T08:12:44Z",
            "2023-05-17T08:12:4é",
            "-2023-05-17T08:12:44Z",
            "1684311164000",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s:?}");
        }
    }

    #[test]
    fn http_dates_in_imf_fixdate() {
        // RFC 9110 §5.6.7's example, and 2015-10-21T07:28:00Z.
        assert_eq!(
            parse_http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date_ms("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480_000)
        );
        assert_eq!(parse_http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date_ms("Thu, 29 Feb 2024 23:59:59 GMT"),
            Some(1_709_251_199_000)
        );
        assert_eq!(
            parse_http_date_ms("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799_000)
        );
        assert_eq!(
            parse_http_date_ms("Sat, 01 Jan 0000 00:00:00 GMT"),
            Some(days_from_civil(0, 1, 1) * SECS_PER_DAY * MS_PER_SEC)
        );
    }

    #[test]
    fn http_dates_that_do_not_exist_are_none() {
        for s in [
            // 31 February, with the day name it would have if it rolled over (3 March) and
            // with the one of the last day of February.
            "Tue, 31 Feb 2026 00:00:00 GMT",
            "Sat, 31 Feb 2026 00:00:00 GMT",
            "Sun, 29 Feb 2026 00:00:00 GMT",
            "Fri, 29 Feb 1900 00:00:00 GMT",
            "Thu, 31 Apr 2026 00:00:00 GMT",
            "Mon, 00 Jan 2024 00:00:00 GMT",
            "Mon, 32 Jan 2024 00:00:00 GMT",
            "Mon, 01 Jan 2024 24:00:00 GMT",
            "Mon, 01 Jan 2024 00:60:00 GMT",
            "Mon, 01 Jan 2024 00:00:60 GMT",
            "Sat, 31 Dec 2016 23:59:60 GMT",
            // A day name that is not the date's.
            "Mon, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_http_date_ms(s), None, "{s}");
        }
    }

    #[test]
    fn http_dates_are_strict_imf_fixdate() {
        for s in [
            "",
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "Wed, 21 Oct 2015 07:28:00 gmt",
            "wed, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 oct 2015 07:28:00 GMT",
            "Wednesday, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 October 2015 07:28:00 GMT",
            "Wed,  21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 15 07:28:00 GMT",
            "Wed, 21 Oct 02015 07:28:00 GMT",
            "Wed, 1 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 7:28:00 GMT",
            "Wed, 21 Oct 2015 07:28 GMT",
            "Wed, 21 Oct 2015 07:28:00 +0000",
            "Wed, 21 Oct 2015 07:28:00 GMT ",
            " Wed, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21-Oct-2015 07:28:00 GMT",
            "Wed,21 Oct 2015 07:28:00 GMT ",
            "Wed, 21 Oct +015 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:-0 GMT",
            "Wed, 21 Oct 2015 07:28:00.5 GMT",
            // RFC 850 and asctime: obsolete, refused (see the function's doc).
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
            "Wed, 21 Oct 2015 07:28:00 GMTé",
            "Wed, 2é Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_http_date_ms(s), None, "{s:?}");
        }
    }

    #[test]
    fn formats_second_precision_utc() {
        assert_eq!(format_rfc3339(MAY_17_2023), "2023-05-17T08:12:44Z");
        assert_eq!(format_rfc3339(MAY_17_2023 + 999), "2023-05-17T08:12:44Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn format_clamps_to_four_digit_years() {
        assert_eq!(format_rfc3339(i64::MIN), "0001-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(MIN_FORMAT_MS - 1), "0001-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(MIN_FORMAT_MS), "0001-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(MAX_FORMAT_MS + 1), "9999-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(MAX_FORMAT_MS), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn format_then_parse_is_identity_to_the_second() {
        let low = parse_rfc3339_ms("0002-01-01T00:00:00Z").expect("valid");
        let round_trips = |ms: i64| {
            let text = format_rfc3339(ms);
            assert_eq!(
                parse_rfc3339_ms(&text),
                Some(ms - ms.rem_euclid(1_000)),
                "{ms} -> {text}"
            );
        };
        for ms in [low, MAX_FORMAT_MS, 0, -1, 1, MAY_17_2023] {
            round_trips(ms);
        }
        crate::seeded_runner(100_000)
            .run(&(low..=MAX_FORMAT_MS), |ms| {
                round_trips(ms);
                Ok(())
            })
            .expect("every instant in 0002..=9999 formats and parses back");
    }

    #[test]
    fn parse_then_format_is_identity_for_canonical_strings() {
        use proptest::prelude::*;
        let canonical = (2_i64..=9_999, 1_u32..=12)
            .prop_flat_map(|(year, month)| {
                (
                    Just(year),
                    Just(month),
                    1..=days_in_month(year, month),
                    0_u32..24,
                    0_u32..60,
                    0_u32..60,
                )
            })
            .prop_map(|(year, month, day, hour, minute, second)| {
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
            });
        crate::seeded_runner(50_000)
            .run(&canonical, |text| {
                let ms = parse_rfc3339_ms(&text).expect("generated dates are valid");
                prop_assert_eq!(format_rfc3339(ms), text);
                Ok(())
            })
            .expect("every canonical second-precision string formats back to itself");
    }

    #[test]
    fn day_numbers_are_contiguous_over_the_whole_range() {
        // Walk every calendar day from 0002-01-01 to 9999-12-31 with the plain month table
        // and check the arithmetic agrees, in both directions.
        let mut expected = days_from_civil(2, 1, 1);
        for year in 2..=9_999_i64 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), expected);
                    assert_eq!(civil_from_days(expected), (year, month, day));
                    expected += 1;
                }
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }
}
