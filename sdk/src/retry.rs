//! When and how long to wait before asking a provider again.
//!
//! Why it exists: every provider throttles. HTTP's `Retry-After` (RFC 9110 §10.2.3: delay
//! seconds or an HTTP date) says how long to wait; Microsoft Graph sends it with 429 and sheds
//! load with 503/504. Without it a connector backs off exponentially with jitter. Every wait
//! is capped so a hostile or broken answer cannot park a run. The loop that sends, counts
//! attempts and spends a run's retry budget is the connector's (it knows which answers are
//! retryable for its provider); this module gives it the waits.

use crate::doors::{Doors, FetchError, HttpRequest, HttpResponse};

/// Limits of the retry loop.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included.
    pub max_attempts: u32,
    /// First backoff step in milliseconds (doubled per attempt).
    pub base_ms: u64,
    /// Longest single wait, whatever `Retry-After` says.
    pub max_wait_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_ms: 500,
            max_wait_ms: 60_000,
        }
    }
}

/// Sends `req`, and again after the wait [`wait_ms`] gives while the answer is retryable
/// ([`is_retryable_status`]), at most `policy.max_attempts` times; counts every request
/// sent in `sent`. Returns the last answer, whatever its status: what a status means is
/// the connector's to say. A connector with a retry budget or a pause shared across
/// requests (Graph's) writes its own loop over [`wait_ms`].
pub fn fetch<D: Doors + ?Sized>(
    doors: &D,
    req: &HttpRequest,
    policy: &RetryPolicy,
    sent: &mut u64,
) -> Result<HttpResponse, FetchError> {
    let mut attempt = 0;
    loop {
        *sent += 1;
        let resp = doors.fetch(req.clone())?;
        if !is_retryable_status(resp.status) || attempt + 1 >= policy.max_attempts {
            return Ok(resp);
        }
        doors.sleep_ms(wait_ms(policy, attempt, Some(&resp), doors.now_ms()));
        attempt += 1;
    }
}

/// Statuses that mean "try again later".
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

/// How long to wait before attempt `attempt + 1`.
pub fn wait_ms(
    policy: &RetryPolicy,
    attempt: u32,
    resp: Option<&HttpResponse>,
    now_ms: i64,
) -> u64 {
    if let Some(after) = resp
        .and_then(|r| r.header("retry-after"))
        .and_then(|v| retry_after_ms(v, now_ms))
    {
        return after.min(policy.max_wait_ms);
    }
    let exp = policy.base_ms.saturating_mul(1u64 << attempt.min(16));
    // Jitter in [50%, 100%] of the step, from the clock: spreads tenants apart.
    let jitter = (now_ms.unsigned_abs().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % 1000;
    (exp / 2 + exp / 2 * jitter / 1000).min(policy.max_wait_ms)
}

/// Parses `Retry-After`: delay seconds or an IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`,
/// read strictly by [`crate::time::parse_http_date_ms`]: a date that does not exist is no
/// date, and the caller backs off on its own).
pub fn retry_after_ms(value: &str, now_ms: i64) -> Option<u64> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = crate::time::parse_http_date_ms(v)?;
    Some(at.saturating_sub(now_ms).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(retry_after: &str) -> HttpResponse {
        HttpResponse {
            status: 429,
            headers: vec![("retry-after".into(), retry_after.into())],
            body: vec![],
        }
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        assert_eq!(retry_after_ms("7", 0), Some(7000));
        // 2015-10-21T07:28:00Z = 1445412480000 ms
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_470_000),
            Some(10_000)
        );
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_490_000),
            Some(0)
        );
        assert_eq!(retry_after_ms("soon", 0), None);
    }

    #[test]
    fn hostile_retry_after_with_a_huge_year_or_a_negative_time_is_no_date() {
        // Found by `guest/tests/properties.rs`: these overflowed the date arithmetic (a panic
        // in debug builds, a wrapped wait in release).
        for hostile in [
            "Wed, 01 Jan 292278995 00:00:00 GMT",
            "Wed, 01 Jan -9223372036854775808 00:00:00 GMT",
            "Wed, 21 Oct 2015 -9223372036854775808:00:00 GMT",
            "Wed, 21 Oct 2015 07:-9223372036854775808:00 GMT",
        ] {
            assert_eq!(retry_after_ms(hostile, 0), None, "{hostile}");
            let p = RetryPolicy::default();
            assert!(wait_ms(&p, 0, Some(&resp(hostile)), 0) <= p.max_wait_ms);
        }
        // The four-digit years an IMF-fixdate has still parse.
        assert_eq!(
            retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", 253_402_300_799_000),
            Some(0)
        );
    }

    #[test]
    fn hostile_retry_after_on_a_day_that_does_not_exist_is_no_date() {
        // The parser this module had read 31 February as 3 March.
        let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        for hostile in [
            "Sat, 31 Feb 2026 00:00:00 GMT",
            "Tue, 31 Feb 2026 00:00:00 GMT",
            "Thu, 31 Apr 2026 00:00:00 GMT",
        ] {
            assert_eq!(retry_after_ms(hostile, now), None, "{hostile}");
            let p = RetryPolicy::default();
            let waited = wait_ms(&p, 0, Some(&resp(hostile)), now);
            assert_eq!(
                waited,
                wait_ms(&p, 0, None, now),
                "{hostile}: the backoff of an answer without Retry-After"
            );
        }
        // The real days either side still parse: 28 February and 3 March 2026.
        assert_eq!(
            retry_after_ms("Sat, 28 Feb 2026 00:00:10 GMT", 1_772_236_800_000),
            Some(10_000)
        );
        assert!(retry_after_ms("Tue, 03 Mar 2026 00:00:00 GMT", now).is_some());
    }

    #[test]
    fn fetch_waits_out_throttling_and_stops_at_the_attempt_limit() {
        use crate::doors::fake::{json, FakeDoors};
        let doors = FakeDoors::new(|n, _| match n {
            0 => json(429, &[("Retry-After", "3")], "{}"),
            1 => json(503, &[], "{}"),
            _ => json(200, &[], "{}"),
        });
        let req = HttpRequest::get("https://api.test/x", vec![]);
        let mut sent = 0;
        let resp = fetch(&doors, &req, &RetryPolicy::default(), &mut sent).unwrap();
        assert_eq!((resp.status, sent), (200, 3));
        assert!(doors.slept.get() >= 3_000, "Retry-After: 3, then a backoff");
        let always = FakeDoors::new(|_, _| json(429, &[("Retry-After", "1")], "{}"));
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut sent = 0;
        let resp = fetch(&always, &req, &policy, &mut sent).unwrap();
        assert_eq!(
            (resp.status, sent),
            (429, 3),
            "the last answer, after 3 attempts"
        );
        assert_eq!(always.slept.get(), 2_000, "no wait after the last attempt");
        let not_retried = FakeDoors::new(|_, _| json(401, &[], "{}"));
        let resp = fetch(&not_retried, &req, &policy, &mut sent).unwrap();
        assert_eq!((resp.status, not_retried.calls.borrow().len()), (401, 1));
    }

    #[test]
    fn waits_are_capped_and_grow() {
        let p = RetryPolicy::default();
        assert_eq!(wait_ms(&p, 0, Some(&resp("3")), 0), 3000);
        assert_eq!(wait_ms(&p, 0, Some(&resp("86400")), 0), p.max_wait_ms);
        let w0 = wait_ms(&p, 0, None, 12345);
        let w3 = wait_ms(&p, 3, None, 12345);
        assert!((250..=500).contains(&w0), "{w0}");
        assert!((2000..=4000).contains(&w3), "{w3}");
        assert!(wait_ms(&p, 30, None, 1) <= p.max_wait_ms);
        assert!(is_retryable_status(429) && is_retryable_status(503) && is_retryable_status(504));
        assert!(!is_retryable_status(500) && !is_retryable_status(403));
    }
}
