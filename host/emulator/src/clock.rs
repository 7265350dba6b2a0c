//! Calendar arithmetic for the ISO 8601 timestamps Graph speaks.
//!
//! The emulator parses `createdDateTime` filters, orders users by creation time, generates
//! creation and sign-in times, and stamps error bodies with the current date. A date crate
//! would do, but the arithmetic is a few lines (Howard Hinnant's civil-from-days algorithms)
//! and keeps the crate's dependency list short.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time as seconds since the Unix epoch plus nanoseconds: orders like time does.
pub(crate) type Stamp = (i64, u32);

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Seconds since the epoch as Graph writes a second-precision UTC time: `2023-05-17T08:12:44Z`.
pub(crate) fn format_iso(secs: i64) -> String {
    let (date, time) = split(secs);
    format!("{date}T{time}Z")
}

/// Seconds since the epoch as the identity platform writes its error timestamps:
/// `2023-05-17 08:12:44Z`.
pub(crate) fn format_login(secs: i64) -> String {
    let (date, time) = split(secs);
    format!("{date} {time}Z")
}

/// Seconds since the epoch as an HTTP date (IMF-fixdate, RFC 9110):
/// `Wed, 21 Oct 2015 07:28:00 GMT`.
pub(crate) fn format_http_date(secs: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn split(secs: i64) -> (String, String) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// The wall clock, in seconds since the epoch (only for error bodies, never for tenant data).
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses an ISO 8601 date-time as Graph accepts it: `YYYY-MM-DDTHH:MM:SS`, optional fraction
/// (up to 9 digits), then `Z` or `±HH:MM` (no zone means UTC); a bare `YYYY-MM-DD` means
/// midnight UTC. `None` for anything else, including impossible dates.
pub(crate) fn parse_iso(text: &str) -> Option<Stamp> {
    let b = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(i64::from(year), month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    if b.len() == 10 {
        return Some((days * 86_400, 0));
    }
    if !matches!(b[10], b'T' | b't') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        for (i, c) in fraction[..digits].iter().enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
            let m = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
            let total = h * 3600 + m * 60;
            if *sign == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_secs;
    Some((secs, nanos))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(19_494), (2023, 5, 17));
        assert_eq!(format_iso(1_684_311_164), "2023-05-17T08:12:44Z");
        assert_eq!(parse_iso("2023-05-17T08:12:44Z"), Some((1_684_311_164, 0)));
        assert_eq!(format_login(0), "1970-01-01 00:00:00Z");
        assert_eq!(
            format_http_date(1_445_412_480),
            "Wed, 21 Oct 2015 07:28:00 GMT"
        );
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(1_684_311_164),
            "Wed, 17 May 2023 08:12:44 GMT"
        );
    }

    #[test]
    fn parses_the_forms_graph_accepts() {
        assert_eq!(parse_iso("2023-05-17"), Some((1_684_281_600, 0)));
        assert_eq!(
            parse_iso("2023-05-17T10:12:44.5+02:00"),
            Some((1_684_311_164, 500_000_000))
        );
        let never = parse_iso("0001-01-01T00:00:00Z").map(|s| s.0);
        assert_eq!(never, Some(-62_135_596_800));
        assert_eq!(parse_iso("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_iso("2023-05-17T25:00:00Z"), None);
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(parse_iso("2023-05-17T08:12:44Zjunk"), None);
    }
}
