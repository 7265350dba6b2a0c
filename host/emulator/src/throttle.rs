//! Throttling: by rate (every n-th matching Graph request answers 429 `TooManyRequests`), and
//! the Entra reports limits (a sliding window of admitted requests per tenant).
//!
//! Fault rules ([`FaultRule`](crate::FaultRule)) fail chosen requests; a [`Throttle`] models
//! Graph's steady pressure instead — one request in `every` is refused, for as long as it is
//! set, with the `Retry-After` Graph would send (seconds, an HTTP date, or none). It is a plain
//! counter, so the same run throttles the same requests every time (with one client task; under
//! concurrency, which request is the n-th depends on arrival order, but the count is exact).
//! The reports limits ([`ReportsLimiter`]) are Graph's documented ceilings on the registration
//! report and on `signInActivity` reads, on by default
//! ([`EmulatorConfig::reports_limit`](crate::EmulatorConfig::reports_limit)).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::clock::format_http_date;
use crate::graph::RequestIds;
use crate::reply::{GraphError, Reply};
use crate::Endpoint;

/// What a throttled answer says in its `Retry-After` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <n>` (delay in seconds).
    Seconds(u32),
    /// `Retry-After: <now + n seconds>` as an IMF-fixdate, e.g.
    /// `Wed, 21 Oct 2015 07:28:00 GMT` (the other form HTTP allows).
    HttpDate(u32),
    /// No `Retry-After` header at all: the client must back off on its own.
    None,
}

/// Answer every `every`-th Graph request matching `endpoints` with 429 `TooManyRequests`.
///
/// Set with [`Emulator::set_throttle`](crate::Emulator::set_throttle). Matching requests are
/// counted from 1 when the throttle is set; requests number `every`, `2 × every`, … are
/// throttled. Inside a `$batch` every sub-request counts on its own, under its own endpoint,
/// and a throttled one becomes a sub-response with status 429 and its own `Retry-After`
/// header while the batch answers 200. The token endpoint is never throttled. Requests
/// answered by a fault rule, refused for their access token, or outside `/v1.0` are not
/// counted. Throttled requests still count in [`Emulator::counters`](crate::Emulator::counters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Throttle one matching request in this many (1: all of them; 0: none).
    pub every: u32,
    /// The `Retry-After` of the 429.
    pub retry_after: RetryAfter,
    /// The endpoints whose requests count; `None`: every Graph endpoint except the `$batch`
    /// envelope (its sub-requests count). Listing [`Endpoint::Batch`] explicitly throttles
    /// whole envelopes (the HTTP answer is then the 429). [`Endpoint::Token`] never matches.
    pub endpoints: Option<Vec<Endpoint>>,
}

impl Throttle {
    fn matches(&self, endpoint: Endpoint) -> bool {
        match &self.endpoints {
            _ if endpoint == Endpoint::Token => false,
            None => endpoint != Endpoint::Batch,
            Some(list) => list.contains(&endpoint),
        }
    }
}

/// The active throttle and how many matching requests it has seen.
#[derive(Debug, Default)]
pub(crate) struct ThrottleState {
    active: Option<(Throttle, u64)>,
}

impl ThrottleState {
    /// Replaces the throttle (and restarts its count).
    pub(crate) fn set(&mut self, throttle: Option<Throttle>) {
        self.active = throttle.map(|t| (t, 0));
    }

    /// Counts a request to `endpoint` if it matches; `Some` when it is to be throttled.
    pub(crate) fn check(&mut self, endpoint: Endpoint) -> Option<RetryAfter> {
        let (throttle, seen) = self.active.as_mut()?;
        if !throttle.matches(endpoint) {
            return None;
        }
        *seen += 1;
        let every = u64::from(throttle.every);
        (every > 0 && *seen % every == 0).then_some(throttle.retry_after)
    }
}

/// Which of the Entra reports limits a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReportsKind {
    /// The registration-details report: the "Any" row of the reports table.
    Report,
    /// A `/users` request selecting or filtering on `signInActivity`: the "Any" row and the
    /// "GET signInActivity" row.
    SignInActivity,
}

/// One sliding window: at most `limit` admitted requests in any `window`.
#[derive(Debug)]
struct Window {
    limit: u32,
    window: Duration,
    admitted: VecDeque<Instant>,
}

impl Window {
    fn new((limit, window): (u32, Duration)) -> Window {
        Window {
            limit,
            window,
            admitted: VecDeque::new(),
        }
    }

    /// `None` when a request may pass now, else how long until a slot frees.
    fn wait(&mut self, now: Instant) -> Option<Duration> {
        while self
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.admitted.pop_front();
        }
        if (self.admitted.len() as u64) < u64::from(self.limit) {
            return None;
        }
        let oldest = self.admitted.front().copied().unwrap_or(now);
        Some((oldest + self.window).saturating_duration_since(now))
    }
}

/// The Entra "identity and access reports" limits of one tenant (one emulator): sliding
/// windows of admitted requests. A refused request does not use a slot, so a client that waits
/// `Retry-After` gets through.
///
/// Source: <https://learn.microsoft.com/graph/throttling-limits#identity-and-access-reports-service-limits>
/// ("Any: Five requests per 10 seconds" per app per tenant; "GET signInActivity: 10 requests per
/// minute"). The docs do not say whether the windows slide or are fixed; a sliding window is
/// the stricter reading (no burst of 2 × limit across a boundary).
#[derive(Debug, Default)]
pub(crate) struct ReportsLimiter {
    reports: Option<Window>,
    sign_in: Option<Window>,
}

impl ReportsLimiter {
    /// A limiter with these limits (`None`: no limit).
    pub(crate) fn new(
        reports: Option<(u32, Duration)>,
        sign_in: Option<(u32, Duration)>,
    ) -> ReportsLimiter {
        ReportsLimiter {
            reports: reports.map(Window::new),
            sign_in: sign_in.map(Window::new),
        }
    }

    /// Admits a request now, or says how many whole seconds until it could pass (at least 1).
    pub(crate) fn admit(&mut self, kind: ReportsKind, now: Instant) -> Option<u32> {
        let mut wait = self.reports.as_mut().and_then(|w| w.wait(now));
        if kind == ReportsKind::SignInActivity {
            if let Some(other) = self.sign_in.as_mut().and_then(|w| w.wait(now)) {
                wait = Some(wait.map_or(other, |w| w.max(other)));
            }
        }
        if let Some(wait) = wait {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Some(u32::try_from(secs.max(1)).unwrap_or(u32::MAX));
        }
        if let Some(w) = self.reports.as_mut() {
            w.admitted.push_back(now);
        }
        if kind == ReportsKind::SignInActivity {
            if let Some(w) = self.sign_in.as_mut() {
                w.admitted.push_back(now);
            }
        }
        None
    }
}

/// The 429 Graph sends when it throttles, with the configured `Retry-After` (a date is
/// `wall_secs`, the emulator's [`VirtualClock`](crate::VirtualClock) wall time, plus the delay).
pub(crate) fn answer(ids: &RequestIds, retry_after: RetryAfter, wall_secs: i64) -> Reply {
    let reply = ids.render(GraphError::new(
        429,
        "TooManyRequests",
        "Too many requests are being made. Please try again later.",
    ));
    match retry_after {
        RetryAfter::Seconds(secs) => reply.with_header("Retry-After", secs.to_string()),
        RetryAfter::HttpDate(secs) => {
            reply.with_header("Retry-After", format_http_date(wall_secs + i64::from(secs)))
        }
        RetryAfter::None => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{now_secs, VirtualClock};

    #[test]
    fn every_nth_matching_request_is_throttled() {
        let mut state = ThrottleState::default();
        assert_eq!(state.check(Endpoint::Users), None, "unset: nothing");
        state.set(Some(Throttle {
            every: 3,
            retry_after: RetryAfter::Seconds(2),
            endpoints: Some(vec![Endpoint::MemberOf]),
        }));
        let hits: Vec<bool> = (0..7)
            .map(|_| {
                assert_eq!(state.check(Endpoint::Users), None, "not listed");
                state.check(Endpoint::MemberOf).is_some()
            })
            .collect();
        assert_eq!(hits, [false, false, true, false, false, true, false]);

        state.set(Some(Throttle {
            every: 1,
            retry_after: RetryAfter::None,
            endpoints: None,
        }));
        assert_eq!(state.check(Endpoint::Batch), None, "the envelope is exempt");
        assert_eq!(state.check(Endpoint::Token), None, "the token endpoint too");
        assert_eq!(state.check(Endpoint::GroupMembers), Some(RetryAfter::None));

        state.set(Some(Throttle {
            every: 0,
            retry_after: RetryAfter::Seconds(1),
            endpoints: Some(vec![Endpoint::Token, Endpoint::Batch]),
        }));
        assert_eq!(state.check(Endpoint::Batch), None, "every 0: never");
        state.set(Some(Throttle {
            every: 1,
            retry_after: RetryAfter::Seconds(1),
            endpoints: Some(vec![Endpoint::Token, Endpoint::Batch]),
        }));
        assert_eq!(
            state.check(Endpoint::Token),
            None,
            "never the token endpoint"
        );
        assert!(state.check(Endpoint::Batch).is_some(), "listed: envelope");
        state.set(None);
        assert_eq!(state.check(Endpoint::Batch), None);
    }

    #[test]
    fn the_reports_limiter_slides_and_never_charges_refusals() {
        let start = Instant::now();
        let mut limiter = ReportsLimiter::new(
            Some((2, Duration::from_secs(10))),
            Some((3, Duration::from_secs(60))),
        );
        assert_eq!(limiter.admit(ReportsKind::Report, start), None);
        assert_eq!(
            limiter.admit(ReportsKind::SignInActivity, start + Duration::from_secs(4)),
            None
        );
        let at = start + Duration::from_millis(5_500);
        assert_eq!(
            limiter.admit(ReportsKind::Report, at),
            Some(5),
            "4.5 s rounds up"
        );
        assert_eq!(
            limiter.admit(ReportsKind::Report, at),
            Some(5),
            "not charged"
        );
        let later = start + Duration::from_secs(10);
        assert_eq!(limiter.admit(ReportsKind::SignInActivity, later), None);
        assert_eq!(
            limiter.admit(ReportsKind::Report, start + Duration::from_secs(14)),
            None
        );
        // Three sign-in requests in a minute: the fourth waits for the first (t=4) + 60.
        let t = start + Duration::from_secs(30);
        assert_eq!(limiter.admit(ReportsKind::SignInActivity, t), None);
        assert_eq!(
            limiter.admit(ReportsKind::SignInActivity, start + Duration::from_secs(45)),
            Some(19)
        );
        let mut off = ReportsLimiter::new(None, None);
        assert!((0..100).all(|_| off.admit(ReportsKind::SignInActivity, start).is_none()));
    }

    #[test]
    fn a_virtual_clock_runs_the_windows_k_times_faster() {
        let real = Instant::now();
        let wall = std::time::SystemTime::now();
        let ms = Duration::from_millis;
        // k = 1: virtual time is real time; 5 requests per 10 s.
        let clock = VirtualClock::anchored(1, real, wall);
        assert_eq!(clock.factor(), 1);
        assert_eq!(clock.at(real + ms(7_000)), real + ms(7_000));
        let mut limiter = ReportsLimiter::new(Some((5, Duration::from_secs(10))), None);
        for i in 0..5 {
            let at = clock.at(real + ms(10 * i));
            assert_eq!(limiter.admit(ReportsKind::Report, at), None, "request {i}");
        }
        let at = clock.at(real + ms(100));
        assert_eq!(limiter.admit(ReportsKind::Report, at), Some(10), "9.9 s");
        let at = clock.at(real + ms(9_999));
        assert!(limiter.admit(ReportsKind::Report, at).is_some());
        let at = clock.at(real + ms(10_000));
        assert_eq!(limiter.admit(ReportsKind::Report, at), None, "a slot freed");

        // k = 100: the same 5 per 10 s virtual is 5 per 0.1 s real, and Retry-After counts
        // virtual seconds.
        let clock = VirtualClock::anchored(100, real, wall);
        assert_eq!(clock.at(real + ms(70)), real + ms(7_000));
        let mut limiter = ReportsLimiter::new(Some((5, Duration::from_secs(10))), None);
        for i in 0..5 {
            let at = clock.at(real + ms(i));
            assert_eq!(limiter.admit(ReportsKind::Report, at), None, "request {i}");
        }
        let at = clock.at(real + ms(50));
        assert_eq!(
            limiter.admit(ReportsKind::Report, at),
            Some(5),
            "5 virtual seconds to wait (50 ms real)"
        );
        for i in 0..5 {
            let at = clock.at(real + ms(100 + i));
            assert_eq!(
                limiter.admit(ReportsKind::Report, at),
                None,
                "next 0.1 s: {i}"
            );
        }
        let at = clock.at(real + ms(105));
        assert!(limiter.admit(ReportsKind::Report, at).is_some(), "sixth");
        // Its wall clock (Retry-After dates) runs k times faster from the origin too: 2 s real
        // (and a little) is 200 s (and a little more) virtual.
        let origin_wall = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = VirtualClock::anchored(100, Instant::now() - ms(2_000), origin_wall);
        let virtual_secs = clock.wall_secs() - 1_000_000;
        assert!((200..=230).contains(&virtual_secs), "{virtual_secs}");
        let zero = VirtualClock::new(0);
        assert_eq!(zero.factor(), 1, "0 is taken as 1");
    }

    #[test]
    fn the_429_carries_graph_error_and_retry_after() {
        let ids = RequestIds {
            request_id: "r".into(),
            client_request_id: "c".into(),
        };
        let header = |reply: &Reply| {
            reply
                .headers
                .iter()
                .find(|(n, _)| n == "Retry-After")
                .map(|(_, v)| v.clone())
        };
        let reply = answer(&ids, RetryAfter::Seconds(7), now_secs());
        assert_eq!(reply.status, 429);
        let body: serde_json::Value = serde_json::from_slice(&reply.body_bytes()).expect("JSON");
        assert_eq!(body["error"]["code"], "TooManyRequests");
        assert_eq!(body["error"]["innerError"]["request-id"], "r");
        assert_eq!(header(&reply).as_deref(), Some("7"));
        assert_eq!(header(&answer(&ids, RetryAfter::None, now_secs())), None);
        let before = format_http_date(now_secs() + 90);
        let date = header(&answer(&ids, RetryAfter::HttpDate(90), now_secs())).expect("a date");
        let after = format_http_date(now_secs() + 90);
        assert!(date == before || date == after, "{date} vs {before}");
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    }
}
