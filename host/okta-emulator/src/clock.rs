//! The emulator's clock: every time it reads (rate-limit windows, `X-Rate-Limit-Reset`, the
//! search index's lag, System Log retention, token and assertion lifetimes, `lastUpdated` and
//! `published` stamps of changes) comes from one [`OktaClock`], so a test moves time forward
//! with [`OktaClock::advance`] instead of sleeping.
//!
//! For a simulation that runs whole syncs against the emulator in compressed time,
//! [`OktaClock::scaled`] runs k times faster than the wall clock (like the Graph emulator's
//! `VirtualClock`): one-minute rate-limit windows pass in 60/k real seconds, and
//! `X-Rate-Limit-Reset` and `Date` are in that virtual time.
//!
//! Times are integer milliseconds since the Unix epoch. Okta writes them as ISO 8601 UTC with
//! milliseconds (`2013-07-02T21:36:25.344Z`, the `created`/`lastUpdated` examples of the Users
//! API, developer.okta.com/docs/api/openapi/okta-management/management/tag/User/).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// A clock shared by the emulator and the test that drives it.
///
/// [`OktaClock::system`] follows the wall clock (plus whatever [`OktaClock::advance`] added);
/// [`OktaClock::manual`] stands still at a chosen instant until advanced. Cloning shares the
/// clock.
#[derive(Clone, Debug)]
pub struct OktaClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    /// Manual clocks: the time now. Others: the offset added by [`OktaClock::advance`].
    value: AtomicI64,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Manual,
    System,
    /// `start_ms + factor × (real time since origin)`.
    Scaled {
        origin: Instant,
        start_ms: i64,
        factor: u32,
    },
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl OktaClock {
    /// The wall clock.
    pub fn system() -> OktaClock {
        OktaClock {
            inner: Arc::new(ClockInner {
                value: AtomicI64::new(0),
                mode: Mode::System,
            }),
        }
    }

    /// A clock at `start_ms` now, running `factor` times faster than real time (0 is taken as
    /// 1).
    pub fn scaled(start_ms: i64, factor: u32) -> OktaClock {
        OktaClock::scaled_from(start_ms, factor, Instant::now())
    }

    /// A scaled clock that stood at `start_ms` at the real instant `origin`.
    pub fn scaled_from(start_ms: i64, factor: u32, origin: Instant) -> OktaClock {
        OktaClock {
            inner: Arc::new(ClockInner {
                value: AtomicI64::new(0),
                mode: Mode::Scaled {
                    origin,
                    start_ms,
                    factor: factor.max(1),
                },
            }),
        }
    }

    /// A clock standing at `epoch_ms` (milliseconds since the Unix epoch) until advanced.
    pub fn manual(epoch_ms: i64) -> OktaClock {
        OktaClock {
            inner: Arc::new(ClockInner {
                value: AtomicI64::new(epoch_ms),
                mode: Mode::Manual,
            }),
        }
    }

    /// Milliseconds since the Unix epoch, now.
    pub fn now_ms(&self) -> i64 {
        let value = self.inner.value.load(Ordering::SeqCst);
        match &self.inner.mode {
            Mode::Manual => value,
            Mode::System => wall_ms() + value,
            Mode::Scaled {
                origin,
                start_ms,
                factor,
            } => {
                let real = origin.elapsed().as_millis().min(i64::MAX as u128) as i64;
                start_ms + real.saturating_mul(i64::from(*factor)) + value
            }
        }
    }

    /// Seconds since the Unix epoch, now.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves the clock forward (or back, with a negative amount) by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.inner.value.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.advance_ms(by.as_millis() as i64);
    }
}

/// Milliseconds since the epoch as Okta writes a time: `2013-07-02T21:36:25.344Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seconds since the epoch as an HTTP date (the `Date` header, RFC 9110 IMF-fixdate).
pub fn format_http_date(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// Parses an RFC 3339 / ISO 8601 time with a zone (`Z` or `±hh:mm`), as Okta's `since`,
/// `until` and `search` dates take it; `None` for anything else.
pub fn parse_time(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_okta_times() {
        assert_eq!(format_ms(1_372_800_985_344), "2013-07-02T21:36:25.344Z");
        assert_eq!(
            parse_time("2013-07-02T21:36:25.344Z"),
            Some(1_372_800_985_344)
        );
        assert_eq!(
            parse_time("2013-07-02T23:36:25.344+02:00"),
            Some(1_372_800_985_344)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn a_scaled_clock_runs_faster() {
        let origin = Instant::now() - std::time::Duration::from_secs(2);
        let clock = OktaClock::scaled_from(0, 60, origin);
        let now = clock.now_ms();
        assert!((120_000..180_000).contains(&now), "{now}");
        clock.advance_ms(1_000);
        assert!(clock.now_ms() >= now + 1_000);
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = OktaClock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.clone().advance_ms(500);
        assert_eq!(clock.now_ms(), 1_500);
        assert_eq!(clock.now_secs(), 1);
    }
}
