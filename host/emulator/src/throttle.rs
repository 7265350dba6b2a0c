//! Throttling by rate: every n-th matching Graph request answers 429 `TooManyRequests`.
//!
//! Fault rules ([`FaultRule`](crate::FaultRule)) fail chosen requests; a [`Throttle`] models
//! Graph's steady pressure instead — one request in `every` is refused, for as long as it is
//! set, with the `Retry-After` Graph would send (seconds, an HTTP date, or none). It is a plain
//! counter, so the same run throttles the same requests every time (with one client task; under
//! concurrency, which request is the n-th depends on arrival order, but the count is exact).

use crate::clock::{format_http_date, now_secs};
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

/// The 429 Graph sends when it throttles, with the configured `Retry-After`.
pub(crate) fn answer(ids: &RequestIds, retry_after: RetryAfter) -> Reply {
    let reply = ids.render(GraphError::new(
        429,
        "TooManyRequests",
        "Too many requests are being made. Please try again later.",
    ));
    match retry_after {
        RetryAfter::Seconds(secs) => reply.with_header("Retry-After", secs.to_string()),
        RetryAfter::HttpDate(secs) => reply.with_header(
            "Retry-After",
            format_http_date(now_secs() + i64::from(secs)),
        ),
        RetryAfter::None => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let reply = answer(&ids, RetryAfter::Seconds(7));
        assert_eq!(reply.status, 429);
        let body: serde_json::Value = serde_json::from_slice(&reply.body_bytes()).expect("JSON");
        assert_eq!(body["error"]["code"], "TooManyRequests");
        assert_eq!(body["error"]["innerError"]["request-id"], "r");
        assert_eq!(header(&reply).as_deref(), Some("7"));
        assert_eq!(header(&answer(&ids, RetryAfter::None)), None);
        let before = format_http_date(now_secs() + 90);
        let date = header(&answer(&ids, RetryAfter::HttpDate(90))).expect("a date");
        let after = format_http_date(now_secs() + 90);
        assert!(date == before || date == after, "{date} vs {before}");
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    }
}
