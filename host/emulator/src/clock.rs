//! The ISO 8601 and HTTP timestamps Graph speaks: parsing `createdDateTime` filters and
//! tenant data, writing creation and sign-in times, error-body dates and `Retry-After` dates.
//!
//! The calendar (days since the epoch, month lengths, leap years, weekdays) is `chrono`'s.
//! The parser's shape checks stay here because they are stricter than any `chrono` format:
//! exactly four year digits, two-digit month, day, hour, minute and second, at most nine
//! fraction digits, `Z` or `±HH:MM` or nothing; `chrono`'s `%Y`/`%m` accept signs, more or
//! fewer digits, and its RFC 3339 parser accepts leap seconds and a space separator. Anything
//! else, and any impossible date or time (31 April, 29 February 2023, 24:00), is `None`.
//!
//! And the clock of the limit windows: [`VirtualClock`], real time or, in a simulation that
//! compresses time ([`EmulatorConfig::time_scale`](crate::EmulatorConfig::time_scale)), a clock
//! running k times faster.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// A point in time as seconds since the Unix epoch plus nanoseconds: orders like time does.
pub(crate) type Stamp = (i64, u32);

/// Seconds since the epoch of midnight UTC on a proleptic Gregorian date; `None` for a date
/// that does not exist.
pub(crate) fn midnight_utc(year: i32, month: u32, day: u32) -> Option<i64> {
    NaiveDate::from_ymd_opt(year, month, day)
        .map(|d| d.and_time(NaiveTime::MIN).and_utc().timestamp())
}

/// `secs` as a UTC time (the epoch for the rare value `chrono` cannot represent, more than
/// 262,000 years away).
fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Seconds since the epoch as Graph writes a second-precision UTC time: `2023-05-17T08:12:44Z`.
pub(crate) fn format_iso(secs: i64) -> String {
    utc(secs).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Seconds since the epoch as the identity platform writes its error timestamps:
/// `2023-05-17 08:12:44Z`.
pub(crate) fn format_login(secs: i64) -> String {
    utc(secs).format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Seconds since the epoch as an HTTP date (IMF-fixdate, RFC 9110):
/// `Wed, 21 Oct 2015 07:28:00 GMT`.
pub(crate) fn format_http_date(secs: i64) -> String {
    utc(secs).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The wall clock, in seconds since the epoch (only for error bodies, never for tenant data).
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The clock the emulator's limit windows are measured on: `virtual = origin + k × (real −
/// origin)`, with `k` = [`EmulatorConfig::time_scale`](crate::EmulatorConfig::time_scale) (1:
/// real time). With k > 1 a window of 10 s passes in 10/k real seconds and a `Retry-After` of
/// n seconds means n virtual seconds, so a client whose own clocks run k times faster (a
/// simulated guest) waits the right real time. Token lifetimes and the dates written into
/// answers stay real (only `Retry-After` dates are virtual).
#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    origin: Instant,
    origin_wall: SystemTime,
    factor: u32,
}

impl VirtualClock {
    /// A clock starting now, running `factor` times faster than real time (0 is taken as 1).
    pub fn new(factor: u32) -> VirtualClock {
        VirtualClock::anchored(factor, Instant::now(), SystemTime::now())
    }

    /// A clock whose virtual time equals real time at `origin` (and whose wall time is
    /// `origin_wall` then), running `factor` times faster (0 is taken as 1).
    pub fn anchored(factor: u32, origin: Instant, origin_wall: SystemTime) -> VirtualClock {
        VirtualClock {
            origin,
            origin_wall,
            factor: factor.max(1),
        }
    }

    /// How many times faster than real time it runs.
    pub fn factor(&self) -> u32 {
        self.factor
    }

    /// The real instant and wall time at which virtual and real time agreed.
    pub fn origin(&self) -> (Instant, SystemTime) {
        (self.origin, self.origin_wall)
    }

    /// Virtual time elapsed since the origin when the real clock reads `real`.
    fn elapsed_at(&self, real: Instant) -> Duration {
        real.saturating_duration_since(self.origin)
            .saturating_mul(self.factor)
    }

    /// The virtual instant when the real clock reads `real` (as an [`Instant`], only to be
    /// compared with other instants of this clock).
    pub(crate) fn at(&self, real: Instant) -> Instant {
        let elapsed = self.elapsed_at(real);
        // Past what an Instant can hold (centuries away): the real instant, never a panic.
        self.origin.checked_add(elapsed).unwrap_or(real)
    }

    /// The virtual instant now.
    pub(crate) fn now(&self) -> Instant {
        self.at(Instant::now())
    }

    /// The virtual wall clock now, in seconds since the epoch (what a `Retry-After` date is
    /// measured from).
    pub(crate) fn wall_secs(&self) -> i64 {
        let wall = self.origin_wall + self.elapsed_at(Instant::now());
        wall.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
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
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if b.len() == 10 {
        return Some((date.and_time(NaiveTime::MIN).and_utc().timestamp(), 0));
    }
    if !matches!(b[10], b'T' | b't') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // from_hms_opt refuses hour 24, minute 60 and second 60 (no leap seconds).
    let time = NaiveTime::from_hms_opt(hour, minute, second)?;
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
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 3600 + m * 60;
            if *sign == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    let secs = date.and_time(time).and_utc().timestamp() - offset_secs;
    Some((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(midnight_utc(1970, 1, 1), Some(0));
        assert_eq!(midnight_utc(2023, 5, 17), Some(19_494 * 86_400));
        assert_eq!(midnight_utc(2023, 2, 29), None);
        assert_eq!(format_iso(-62_135_596_800), "0001-01-01T00:00:00Z");
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

    #[test]
    fn refuses_impossible_dates_and_loose_shapes() {
        assert!(
            parse_iso("2024-02-29T00:00:00Z").is_some(),
            "2024 is a leap year"
        );
        assert!(parse_iso("2000-02-29").is_some(), "2000 is a leap year");
        for text in [
            "1900-02-29",
            "2023-04-31",
            "2023-13-01",
            "2023-00-10",
            "2023-05-00",
            "2023-05-17T24:00:00Z",
            "2023-05-17T23:60:00Z",
            "2023-12-31T23:59:60Z",
            "2023-5-17",
            "+2023-05-17",
            "12023-05-17",
            "2023-05-17 08:12:44Z",
            "2023-05-17T08:12:44.1234567890Z",
            "2023-05-17T08:12:44.Z",
            "2023-05-17T08:12:44+24:00",
            "2023-05-17T08:12:44+05:60",
            "2023-05-17T08:12:44+0500",
        ] {
            assert_eq!(parse_iso(text), None, "{text}");
        }
    }
}
