//! Canned failures injected in place of real answers: throttling, outages, malformed pages.
//!
//! The connector's retry, back-off and error reporting can only be proven if Graph fails on
//! demand, at a chosen request, a chosen number of times. A [`FaultRule`] says which requests
//! to fail and with what; the [`FaultBook`] keeps each rule's count of matching requests so
//! "let two through, then fail three" is exact even under concurrency.

use crate::reply::{Body, Reply, GRAPH_JSON};
use crate::Endpoint;

/// Answer the next matching requests with a canned failure instead of the real response.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// The endpoint whose requests the rule applies to.
    pub endpoint: Endpoint,
    /// Only requests whose path contains this text (e.g. a user id), if set. The text is
    /// looked for in the path and query as sent (so `"$skiptoken"` matches later pages only).
    pub path_contains: Option<String>,
    /// Let this many matching requests through first (0: fail the first matching one).
    pub skip: u32,
    /// How many matching requests to fail after that (u32::MAX: all).
    pub count: u32,
    /// HTTP status of the canned answer.
    pub status: u16,
    /// Body to send (e.g. a Graph error JSON, or deliberately malformed text). Every
    /// [`FaultRule::SEQ`] in it is replaced by the number of requests the rule matched before
    /// this one, so a canned page can carry a new next link each time (an endless listing).
    pub body: String,
    /// Extra headers, e.g. ("Retry-After", "1").
    pub headers: Vec<(String, String)>,
}

impl FaultRule {
    /// The placeholder of [`FaultRule::body`] replaced by the request's position.
    pub const SEQ: &'static str = "{{fault-seq}}";

    /// A rule failing every request to `endpoint` with `status` and a Graph error body of
    /// `code`; narrow it with the public fields.
    pub fn graph_error(endpoint: Endpoint, status: u16, code: &str, message: &str) -> FaultRule {
        FaultRule {
            endpoint,
            path_contains: None,
            skip: 0,
            count: u32::MAX,
            status,
            body: serde_json::json!({"error": {"code": code, "message": message}}).to_string(),
            headers: Vec::new(),
        }
    }

    /// The usual throttling answer: 429 `TooManyRequests` with `Retry-After: <secs>`.
    pub fn throttle(endpoint: Endpoint, retry_after_secs: u32) -> FaultRule {
        let mut rule = FaultRule::graph_error(
            endpoint,
            429,
            "TooManyRequests",
            "Too many requests are being made. Please try again later.",
        );
        rule.headers
            .push(("Retry-After".into(), retry_after_secs.to_string()));
        rule
    }

    /// An outage: 503 `ServiceUnavailable`, no `Retry-After` (the client backs off on its
    /// own). Every request to `endpoint` fails until narrowed: set `skip` and `count` for a
    /// burst, e.g. `skip: 2, count: 3` lets two through, then fails three.
    pub fn unavailable(endpoint: Endpoint) -> FaultRule {
        FaultRule::graph_error(
            endpoint,
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please try again later.",
        )
    }

    /// A gateway timeout: 504 `GatewayTimeout`, no `Retry-After`; narrow it like
    /// [`FaultRule::unavailable`].
    pub fn gateway_timeout(endpoint: Endpoint) -> FaultRule {
        FaultRule::graph_error(
            endpoint,
            504,
            "GatewayTimeout",
            "The gateway did not receive a timely response from the upstream service.",
        )
    }

    fn matches(&self, endpoint: Endpoint, target: &str) -> bool {
        self.endpoint == endpoint
            && self
                .path_contains
                .as_deref()
                .is_none_or(|text| target.contains(text))
    }

    fn reply(&self, position: u64) -> Reply {
        let body = if self.body.contains(Self::SEQ) {
            self.body.replace(Self::SEQ, &position.to_string())
        } else {
            self.body.clone()
        };
        let mut reply = Reply {
            status: self.status,
            headers: self.headers.clone(),
            body: Body::Text(body),
        };
        if !reply.has_header("Content-Type") {
            reply
                .headers
                .push(("Content-Type".into(), GRAPH_JSON.into()));
        }
        reply
    }
}

/// The active fault rules and how many matching requests each has seen.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    rules: Vec<(FaultRule, u64)>,
}

impl FaultBook {
    /// Adds a rule after the existing ones.
    pub(crate) fn add(&mut self, rule: FaultRule) {
        self.rules.push((rule, 0));
    }

    /// Removes every rule.
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Counts the request against every rule it matches and returns the canned answer of the
    /// first rule whose window (`skip` passed, `count` not spent) contains it.
    pub(crate) fn answer(&mut self, endpoint: Endpoint, target: &str) -> Option<Reply> {
        let mut answer = None;
        for (rule, seen) in &mut self.rules {
            if !rule.matches(endpoint, target) {
                continue;
            }
            let position = *seen;
            *seen += 1;
            let start = u64::from(rule.skip);
            let end = start.saturating_add(u64::from(rule.count));
            let active =
                rule.count == u32::MAX && position >= start || (start..end).contains(&position);
            if active && answer.is_none() {
                answer = Some(rule.reply(position));
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_then_count_then_pass() {
        let mut book = FaultBook::default();
        let mut rule = FaultRule::throttle(Endpoint::MemberOf, 1);
        rule.skip = 1;
        rule.count = 2;
        rule.path_contains = Some("abc".into());
        book.add(rule);
        let statuses: Vec<Option<u16>> = (0..5)
            .map(|_| {
                book.answer(Endpoint::MemberOf, "/v1.0/users/abc/memberOf")
                    .map(|r| r.status)
            })
            .collect();
        assert_eq!(statuses, [None, Some(429), Some(429), None, None]);
        assert!(book
            .answer(Endpoint::MemberOf, "/v1.0/users/xyz/memberOf")
            .is_none());
        assert!(book.answer(Endpoint::Users, "/v1.0/users/abc").is_none());
    }

    #[test]
    fn a_canned_body_can_number_its_answers() {
        let mut book = FaultBook::default();
        let mut rule = FaultRule::graph_error(Endpoint::Users, 200, "x", "y");
        rule.body = format!("{{\"n\":{}}}", FaultRule::SEQ);
        book.add(rule);
        let bodies: Vec<Vec<u8>> = (0..3)
            .map(|_| {
                book.answer(Endpoint::Users, "/v1.0/users")
                    .expect("answered")
                    .body_bytes()
            })
            .collect();
        assert_eq!(
            bodies,
            [
                b"{\"n\":0}".to_vec(),
                b"{\"n\":1}".to_vec(),
                b"{\"n\":2}".to_vec()
            ]
        );
    }

    #[test]
    fn outage_rules_carry_their_status_and_code_without_retry_after() {
        for (rule, status, code) in [
            (
                FaultRule::unavailable(Endpoint::Users),
                503,
                "ServiceUnavailable",
            ),
            (
                FaultRule::gateway_timeout(Endpoint::Users),
                504,
                "GatewayTimeout",
            ),
        ] {
            assert_eq!((rule.skip, rule.count), (0, u32::MAX));
            let mut book = FaultBook::default();
            book.add(rule);
            let reply = book.answer(Endpoint::Users, "/v1.0/users").expect("fails");
            assert_eq!(reply.status, status);
            assert!(!reply.has_header("Retry-After"));
            let body: serde_json::Value =
                serde_json::from_slice(&reply.body_bytes()).expect("JSON body");
            assert_eq!(body["error"]["code"], code);
            assert!(book
                .answer(Endpoint::MemberOf, "/v1.0/users/x/memberOf")
                .is_none());
        }
    }
}
