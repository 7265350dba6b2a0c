//! Okta's rate limits: per-endpoint buckets counted org-wide over one-minute windows, each
//! client (an API token or an OAuth app) held to a share of every bucket, and a cap on
//! requests in flight.
//!
//! Sources:
//! - headers `X-Rate-Limit-Limit` ("the rate limit ceiling that is applicable for the current
//!   request"), `X-Rate-Limit-Remaining` ("the number of requests left for the current
//!   rate-limit window"), `X-Rate-Limit-Reset` ("the time at which the rate limit resets,
//!   specified in UTC epoch time (in seconds)"); 429 beyond
//!   (developer.okta.com/docs/reference/rl-best-practices/);
//! - "By default, each API token or OAuth 2.0 app can use up to 50% of a bucket's total rate
//!   limit" (developer.okta.com/docs/reference/rl2-token-oauth): the emulator refuses a
//!   client past its share, but the headers report the org-wide bucket — Limit its limit,
//!   Remaining what is left of it (which other clients, a "noisy neighbour", also drain) —
//!   as Okta's own example does: "X-Rate-Limit-Limit: 1200, X-Rate-Limit-Remaining: 1199"
//!   (rl-best-practices), 1,200 being the org-wide figure of most `/api/v1` endpoints while
//!   tokens are held to 50% by default. So a client must count its own requests to keep
//!   within its share; the headers alone would let it walk into 429s (the stricter reading);
//! - the per-minute defaults of the buckets OKTA.md lists (Workforce): `/api/v1/users` 600,
//!   `/api/v1/users/{id}` 2,000, `/api/v1/groups` 500, `/api/v1/logs` 120, other `/api/v1`
//!   endpoints 1,200 (developer.okta.com/docs/reference/rl2-*, "Management" tables);
//! - concurrency: "For all other traffic including API requests, the limit is 75 concurrent
//!   transactions per org"; "The first request to exceed the concurrent limit returns an HTTP
//!   429 error"; then "The first two header values are always `0` for concurrent rate limit
//!   errors" (Limit and Remaining) and the Reset "is only a suggested value"
//!   (developer.okta.com/docs/reference/rl-additional-limits/, rl2-monitor).

use std::collections::HashMap;

/// The buckets the emulator counts separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// `GET /api/v1/users` (list and search).
    UsersList,
    /// `GET /api/v1/users/{id}` (one user, by id or login).
    UserById,
    /// `GET /api/v1/groups` (list and search).
    Groups,
    /// `GET /api/v1/logs`.
    Logs,
    /// Every other `/api/v1` endpoint (group members, factors, roles, assignees, …).
    OtherApi,
    /// `POST /oauth2/v1/token` of the org authorization server.
    Token,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Bucket; 6] = [
        Bucket::UsersList,
        Bucket::UserById,
        Bucket::Groups,
        Bucket::Logs,
        Bucket::OtherApi,
        Bucket::Token,
    ];

    /// The org-wide requests per minute Okta publishes for this bucket (Workforce defaults).
    pub fn default_limit(self) -> u32 {
        match self {
            Bucket::UsersList => 600,
            Bucket::UserById => 2_000,
            Bucket::Groups => 500,
            Bucket::Logs => 120,
            Bucket::OtherApi => 1_200,
            // The org authorization server's /oauth2/v1/token; the emulator gives it the
            // "other endpoints" figure (no Management table lists it).
            Bucket::Token => 1_200,
        }
    }

    /// The bucket of a request.
    pub(crate) fn of(method: &str, path: &str) -> Option<Bucket> {
        if path == "/oauth2/v1/token" {
            return Some(Bucket::Token);
        }
        let rest = path.strip_prefix("/api/v1/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        Some(match (method, parts.as_slice()) {
            ("GET", ["users"]) => Bucket::UsersList,
            ("GET", ["users", _]) => Bucket::UserById,
            ("GET", ["groups"]) => Bucket::Groups,
            ("GET", ["logs"]) => Bucket::Logs,
            _ => Bucket::OtherApi,
        })
    }
}

/// Length of a rate-limit window.
pub const WINDOW_SECS: i64 = 60;

/// What a request's admission says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Admission {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset: i64,
}

/// The counters of one window.
#[derive(Default, Debug)]
pub(crate) struct Limiter {
    /// (bucket, window) → org-wide count.
    org: HashMap<Bucket, (i64, u32)>,
    /// (bucket, client) → (window, count).
    clients: HashMap<(Bucket, String), (i64, u32)>,
    /// A standing noisy neighbour: requests it spends at the start of every window.
    noisy: HashMap<Bucket, u32>,
}

/// The client name a noisy neighbour's requests count under.
pub const NOISY_NEIGHBOUR: &str = "noisy-neighbour";

impl Limiter {
    fn org_count(&mut self, bucket: Bucket, window: i64) -> &mut u32 {
        let noisy = self.noisy.get(&bucket).copied().unwrap_or(0);
        let entry = self.org.entry(bucket).or_insert((window - 1, 0));
        if entry.0 != window {
            // A new window: the standing neighbour has already spent its part of it.
            *entry = (window, noisy);
        }
        &mut entry.1
    }

    /// Sets (or clears) a neighbour that spends `per_window` requests of the bucket at the
    /// start of every window, from the next window on (the current one is left as counted,
    /// even when nothing has touched it yet).
    pub(crate) fn set_noisy(&mut self, bucket: Bucket, per_window: Option<u32>, now_secs: i64) {
        // Open the current window under the old setting first.
        self.org_count(bucket, now_secs.div_euclid(WINDOW_SECS));
        match per_window {
            Some(n) => self.noisy.insert(bucket, n),
            None => self.noisy.remove(&bucket),
        };
    }

    fn client_count(&mut self, bucket: Bucket, client: &str, window: i64) -> &mut u32 {
        let entry = self
            .clients
            .entry((bucket, client.to_owned()))
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        &mut entry.1
    }

    /// Counts one request of `client` at `now_secs` if the bucket and the client's share allow
    /// it. `limit` is the org-wide limit, `share_percent` the client's share of it.
    pub(crate) fn admit(
        &mut self,
        bucket: Bucket,
        client: &str,
        limit: u32,
        share_percent: u32,
        now_secs: i64,
    ) -> Admission {
        let window = now_secs.div_euclid(WINDOW_SECS);
        let reset = (window + 1) * WINDOW_SECS;
        let ceiling = ((u64::from(limit) * u64::from(share_percent.min(100))) / 100) as u32;
        let org_used = *self.org_count(bucket, window);
        let client_used = *self.client_count(bucket, client, window);
        let allowed = org_used < limit && client_used < ceiling;
        if allowed {
            *self.org_count(bucket, window) += 1;
            *self.client_count(bucket, client, window) += 1;
        }
        let org_left = limit.saturating_sub(*self.org_count(bucket, window));
        Admission {
            allowed,
            limit,
            remaining: org_left,
            reset,
        }
    }

    /// Counts `n` requests of another client (up to the org-wide limit) in the current window.
    pub(crate) fn consume(
        &mut self,
        bucket: Bucket,
        client: &str,
        n: u32,
        limit: u32,
        now_secs: i64,
    ) {
        let window = now_secs.div_euclid(WINDOW_SECS);
        let org = self.org_count(bucket, window);
        let take = n.min(limit.saturating_sub(*org));
        *org += take;
        *self.client_count(bucket, client, window) += take;
    }

    /// Org-wide requests counted in the current window of a bucket.
    pub(crate) fn used(&mut self, bucket: Bucket, now_secs: i64) -> u32 {
        *self.org_count(bucket, now_secs.div_euclid(WINDOW_SECS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_half_the_bucket_and_the_window_resets() {
        let mut limiter = Limiter::default();
        let t = 1_000_020;
        let first = limiter.admit(Bucket::Logs, "app", 120, 50, t);
        assert_eq!(
            first,
            Admission {
                allowed: true,
                limit: 120,
                remaining: 119,
                reset: 1_000_080
            },
            "the org-wide bucket in the headers"
        );
        for _ in 1..60 {
            assert!(limiter.admit(Bucket::Logs, "app", 120, 50, t).allowed);
        }
        let refused = limiter.admit(Bucket::Logs, "app", 120, 50, t);
        assert!(!refused.allowed, "past its share of 60");
        assert_eq!(refused.remaining, 60, "the org-wide bucket still has room");
        // Another client still has its own half.
        assert!(limiter.admit(Bucket::Logs, "other", 120, 50, t).allowed);
        // The next window starts afresh.
        assert!(
            limiter
                .admit(Bucket::Logs, "app", 120, 50, 1_000_080)
                .allowed
        );
    }

    #[test]
    fn a_noisy_neighbour_drains_the_org_bucket() {
        let mut limiter = Limiter::default();
        limiter.consume(Bucket::UsersList, NOISY_NEIGHBOUR, 590, 600, 60);
        let a = limiter.admit(Bucket::UsersList, "app", 600, 50, 60);
        assert!(a.allowed);
        assert_eq!(
            a.remaining, 9,
            "org-wide remainder is smaller than the share's"
        );
        assert_eq!(limiter.used(Bucket::UsersList, 60), 591);
    }

    #[test]
    fn a_standing_neighbour_spends_its_part_of_every_window() {
        let mut limiter = Limiter::default();
        limiter.set_noisy(Bucket::Groups, Some(495), 60);
        assert_eq!(
            limiter.used(Bucket::Groups, 60),
            0,
            "not in the window it was set in"
        );
        for _ in 0..5 {
            assert!(limiter.admit(Bucket::Groups, "app", 500, 50, 120).allowed);
        }
        assert!(!limiter.admit(Bucket::Groups, "app", 500, 50, 120).allowed);
        assert_eq!(
            limiter.used(Bucket::Groups, 180),
            495,
            "again in the next window"
        );
        limiter.set_noisy(Bucket::Groups, None, 180);
        assert_eq!(limiter.used(Bucket::Groups, 240), 0);
    }

    #[test]
    fn buckets_by_path() {
        assert_eq!(Bucket::of("GET", "/api/v1/users"), Some(Bucket::UsersList));
        assert_eq!(
            Bucket::of("GET", "/api/v1/users/00u1"),
            Some(Bucket::UserById)
        );
        assert_eq!(
            Bucket::of("GET", "/api/v1/users/00u1/factors"),
            Some(Bucket::OtherApi)
        );
        assert_eq!(Bucket::of("GET", "/api/v1/groups"), Some(Bucket::Groups));
        assert_eq!(Bucket::of("GET", "/api/v1/logs"), Some(Bucket::Logs));
        assert_eq!(Bucket::of("POST", "/oauth2/v1/token"), Some(Bucket::Token));
        assert_eq!(Bucket::of("GET", "/.well-known/okta-organization"), None);
    }
}
