//! The loopback HTTP server and the [`Emulator`] handle that owns it.
//!
//! One axum fallback handler takes every request as sent (no routing by axum), so the
//! concurrency cap, authentication, rate limits and scopes apply in one place, in Okta's order.
//! The `Date` header of every answer is the emulator's clock (a client that takes "now" from
//! `Date`, as OKTA.md's incremental sync does, sees the simulated time).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use anyhow::Context;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::auth::{AuthState, ServiceApp};
use crate::clock::{format_http_date, OktaClock};
use crate::limits::{Admission, Bucket, Limiter, NOISY_NEIGHBOUR};
use crate::model::{ChangeError, DeleteOutcome, OktaUser, Org};
use crate::reply::{OktaError, Reply};
use crate::OktaConfig;

const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One request as the handler sees it.
#[derive(Clone, Debug)]
pub(crate) struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An injected failure: the next `times` requests whose path contains `path_contains` are
/// answered `status` with Okta's error body (`E0000009` "Internal Server Error" for 5xx, the
/// error-codes page's server error; `E0000001` otherwise), before authentication and rate
/// limits, as a failing Okta front end would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// A substring of the request path (`/api/v1/logs`, `/factors`, …).
    pub path_contains: String,
    /// The HTTP status to answer.
    pub status: u16,
    /// How many matching requests fail.
    pub times: u32,
}

/// What the emulator has counted since it started (or since [`Emulator::reset_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests served (past authentication, rate limit and scope), by bucket.
    pub served: BTreeMap<Bucket, u64>,
    /// 429s for a spent bucket or client share.
    pub rate_limited: u64,
    /// Those 429s by client (`token:<first 8 characters>` for API tokens, `app:<client id>`
    /// for OAuth apps, the form's `client_id` or `token-endpoint` at the token endpoint).
    pub rate_limited_by_client: BTreeMap<String, u64>,
    /// Requests served by client.
    pub served_by_client: BTreeMap<String, u64>,
    /// 429s for the concurrency cap.
    pub concurrency_limited: u64,
    /// The most requests ever in flight at once.
    pub max_in_flight: u32,
    /// Every HTTP request received.
    pub http_requests: u64,
}

pub(crate) struct Shared {
    pub config: OktaConfig,
    pub clock: OktaClock,
    pub base: String,
    pub secret: String,
    org: RwLock<Org>,
    auth: Mutex<AuthState>,
    limiter: Mutex<Limiter>,
    stats: Mutex<Stats>,
    in_flight: AtomicU32,
    in_flight_changed: Notify,
    hold: watch::Sender<bool>,
    errors: AtomicU64,
    faults: Mutex<Vec<Fault>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Org> {
        self.org.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Org> {
        self.org.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn auth(&self) -> MutexGuard<'_, AuthState> {
        lock(&self.auth)
    }

    pub(crate) fn apps(&self) -> Vec<ServiceApp> {
        self.config.service_apps.clone()
    }

    pub(crate) fn api_tokens(&self) -> Vec<String> {
        self.config.api_tokens.clone()
    }

    fn limit_of(&self, bucket: Bucket) -> u32 {
        self.config
            .rate_limits
            .get(&bucket)
            .copied()
            .unwrap_or_else(|| bucket.default_limit())
    }

    /// Counts a request of `client` against a bucket.
    pub(crate) fn admit(&self, bucket: Bucket, client: &str, share: u32) -> Admission {
        let limit = self.limit_of(bucket);
        let admission =
            lock(&self.limiter).admit(bucket, client, limit, share, self.clock.now_secs());
        if !admission.allowed {
            let mut stats = lock(&self.stats);
            stats.rate_limited += 1;
            *stats
                .rate_limited_by_client
                .entry(client.to_owned())
                .or_default() += 1;
        }
        admission
    }

    pub(crate) fn count_served(&self, bucket: Bucket, client: &str) {
        let mut stats = lock(&self.stats);
        *stats.served.entry(bucket).or_default() += 1;
        *stats.served_by_client.entry(client.to_owned()).or_default() += 1;
    }

    /// An error answer with a fresh `errorId`.
    pub(crate) fn error(&self, error: OktaError) -> Reply {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        error.into_reply(format!("oae{:019}", n + 1))
    }
}

impl Reply {
    /// Adds the three rate-limit headers.
    pub(crate) fn with_rate(self, admission: &Admission) -> Reply {
        self.with_header("X-Rate-Limit-Limit", admission.limit.to_string())
            .with_header("X-Rate-Limit-Remaining", admission.remaining.to_string())
            .with_header("X-Rate-Limit-Reset", admission.reset.to_string())
    }
}

/// A running emulator: one HTTP server on a loopback port.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Serves `org` on a free port of 127.0.0.1, on `clock`.
    pub async fn start(org: Org, config: OktaConfig, clock: OktaClock) -> anyhow::Result<Emulator> {
        Emulator::start_on(org, config, clock, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`Emulator::start`], on a chosen address.
    pub async fn start_on(
        org: Org,
        config: OktaConfig,
        clock: OktaClock,
        addr: SocketAddr,
    ) -> anyhow::Result<Emulator> {
        if config.client_share_percent == 0 || config.client_share_percent > 100 {
            anyhow::bail!(
                "OktaConfig::client_share_percent is {}: it is each client's share of a bucket in percent; use 1 to 100 (Okta's default is 50)",
                config.client_share_percent
            );
        }
        if config.concurrency_limit == 0 {
            anyhow::bail!("OktaConfig::concurrency_limit is 0: use the number of requests allowed in flight (Okta's default is 75)");
        }
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for the Okta emulator on {addr}"))?;
        let addr = listener.local_addr().context("Okta emulator address")?;
        let base = match &config.public_base {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("http://{addr}"),
        };
        let secret = format!("okta-emulator|{}|{}", addr.port(), clock.now_ms());
        let (hold, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            auth: Mutex::new(AuthState::new(secret.clone())),
            config,
            clock,
            base,
            secret,
            org: RwLock::new(org),
            limiter: Mutex::new(Limiter::default()),
            stats: Mutex::new(Stats::default()),
            in_flight: AtomicU32::new(0),
            in_flight_changed: Notify::new(),
            hold,
            errors: AtomicU64::new(0),
            faults: Mutex::new(Vec::new()),
        });
        let (stop, mut stopped) = watch::channel(false);
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        // Small answers go out at once (no Nagle delay against the client's delayed ACKs).
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(Emulator {
            shared,
            addr,
            stop,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:<port>` (or [`OktaConfig::public_base`]): the org URL.
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// The socket it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `{base}/oauth2/v1/token`: the token URL, and the `aud` a client assertion must carry.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/token", self.shared.base)
    }

    /// The clock it runs on.
    pub fn clock(&self) -> OktaClock {
        self.shared.clock.clone()
    }

    /// The configuration it started with.
    pub fn config(&self) -> &OktaConfig {
        &self.shared.config
    }

    /// Reads the org (e.g. to compute an oracle).
    pub fn with_org<R>(&self, f: impl FnOnce(&Org) -> R) -> R {
        f(&self.shared.read())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = Stats::default();
    }

    /// A "noisy neighbour": another integration spends `n` requests of a bucket's org-wide
    /// limit in the current window (its own share is not checked).
    pub fn consume(&self, bucket: Bucket, n: u32) {
        let limit = self.shared.limit_of(bucket);
        let now = self.shared.clock.now_secs();
        lock(&self.shared.limiter).consume(bucket, NOISY_NEIGHBOUR, n, limit, now);
    }

    /// A standing noisy neighbour: another integration that spends `per_window` requests of
    /// the bucket at the start of every one-minute window (`None` stops it). It takes effect
    /// from the next window; call [`Emulator::consume`] for the current one.
    pub fn set_noisy_neighbour(&self, bucket: Bucket, per_window: Option<u32>) {
        let now = self.shared.clock.now_secs();
        lock(&self.shared.limiter).set_noisy(bucket, per_window, now);
    }

    /// Org-wide requests counted in the current window of a bucket (every client).
    pub fn bucket_used(&self, bucket: Bucket) -> u32 {
        lock(&self.shared.limiter).used(bucket, self.shared.clock.now_secs())
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Holds every API request in flight (counted against the concurrency cap) until
    /// [`Emulator::release`]: a test makes concurrency deterministic this way.
    pub fn hold(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Lets held requests finish.
    pub fn release(&self) {
        self.shared.hold.send_replace(false);
    }

    /// Waits until at least `n` requests are in flight.
    pub async fn wait_in_flight(&self, n: u32) {
        loop {
            let notified = self.shared.in_flight_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() >= n {
                return;
            }
            notified.await;
        }
    }

    /// Fails matching requests (see [`Fault`]).
    pub fn add_fault(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// A new DPoP nonce: proofs carrying the old one get `use_dpop_nonce` again.
    pub fn rotate_dpop_nonce(&self) -> String {
        self.shared.auth().rotate_nonce()
    }

    /// Every access token issued so far stops working (401 `E0000011`).
    pub fn expire_tokens(&self) {
        self.shared.auth().expire_tokens();
    }

    fn change<R>(&self, f: impl FnOnce(&mut Org, i64) -> R) -> R {
        let now = self.shared.clock.now_ms();
        f(&mut self.shared.write(), now)
    }

    /// Adds a user (logs `user.lifecycle.create`).
    pub fn add_user(&self, user: OktaUser) {
        self.change(|org, now| org.insert_user(user, now, true));
    }

    /// Changes profile attributes (bumps `lastUpdated`; logs `user.account.update_profile`).
    pub fn update_profile(&self, id: &str, patch: Value) -> Result<(), ChangeError> {
        let patch = match patch {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self.change(|org, now| org.update_profile(now, id, &patch))
    }

    /// Suspends an ACTIVE user.
    pub fn suspend(&self, id: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.suspend(now, id))
    }

    /// Unsuspends a SUSPENDED user.
    pub fn unsuspend(&self, id: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.unsuspend(now, id))
    }

    /// Deactivates a user (DEPROVISIONED).
    pub fn deactivate(&self, id: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.deactivate(now, id))
    }

    /// `DELETE /api/v1/users/{id}`: deactivates first, deletes the second time.
    pub fn delete_user(&self, id: &str) -> Result<DeleteOutcome, ChangeError> {
        self.change(|org, now| org.delete(now, id))
    }

    /// Adds a user to a group.
    pub fn add_member(&self, user: &str, group: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.add_member(now, user, group))
    }

    /// Removes a user from a group.
    pub fn remove_member(&self, user: &str, group: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.remove_member(now, user, group))
    }

    /// Grants a standard role type or a custom role (by id) to a user; the assignment id.
    pub fn grant_user_role(&self, user: &str, role: &str) -> Result<String, ChangeError> {
        self.change(|org, now| org.grant_user_role(now, user, role))
    }

    /// Revokes a user's role assignment.
    pub fn revoke_user_role(&self, user: &str, assignment: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.revoke_user_role(now, user, assignment))
    }

    /// Grants a role to a group.
    pub fn grant_group_role(&self, group: &str, role: &str) -> Result<String, ChangeError> {
        self.change(|org, now| org.grant_group_role(now, group, role))
    }

    /// Revokes a group's role assignment.
    pub fn revoke_group_role(&self, group: &str, assignment: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.revoke_group_role(now, group, assignment))
    }

    /// Enrols an ACTIVE factor of this type; the factor id.
    pub fn enroll_factor(&self, user: &str, factor_type: &str) -> Result<String, ChangeError> {
        self.change(|org, now| org.enroll_factor(now, user, factor_type))
    }

    /// Resets one factor.
    pub fn reset_factor(&self, user: &str, factor: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.reset_factor(now, user, factor))
    }

    /// Resets every factor of a user.
    pub fn reset_all_factors(&self, user: &str) -> Result<(), ChangeError> {
        self.change(|org, now| org.reset_all_factors(now, user))
    }

    /// Stops serving (requests in flight finish first).
    pub async fn shutdown(mut self) {
        self.release();
        self.stop.send_replace(true);
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.hold.send_replace(false);
        self.stop.send_replace(true);
    }
}

/// Decrements the in-flight count however the request ends.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.in_flight_changed.notify_waiters();
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    lock(&shared.stats).http_requests += 1;
    let api = parts.uri.path().starts_with("/api/v1/");
    // The concurrency cap (API requests only).
    let _guard = if api {
        let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = InFlight(&shared);
        shared.in_flight_changed.notify_waiters();
        if now_in_flight > shared.config.concurrency_limit {
            lock(&shared.stats).concurrency_limited += 1;
            // "The first two header values are always `0` for concurrent rate limit errors.
            // The third header reports an estimated time interval when the concurrent rate
            // limit may be resolved" (developer.okta.com/docs/reference/rl2-monitor/, "For
            // concurrent rate limits, these headers behave a little differently", and its
            // example: `X-Rate-Limit-Limit: 0`, `X-Rate-Limit-Remaining: 0`).
            let reset = shared.clock.now_secs() + 1;
            let reply = shared
                .error(
                    OktaError::rate_limited().with_cause("too many concurrent requests in flight"),
                )
                .with_header("X-Rate-Limit-Limit", "0")
                .with_header("X-Rate-Limit-Remaining", "0")
                .with_header("X-Rate-Limit-Reset", reset.to_string());
            return into_response(&shared, reply);
        }
        {
            let mut stats = lock(&shared.stats);
            stats.max_in_flight = stats.max_in_flight.max(now_in_flight);
        }
        let mut held = shared.hold.subscribe();
        let _ = held.wait_for(|h| !*h).await;
        Some(guard)
    } else {
        None
    };
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let reply = shared.error(OktaError::validation(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            )));
            return into_response(&shared, reply);
        }
    };
    let injected = {
        let mut faults = lock(&shared.faults);
        let path = parts.uri.path();
        let hit = faults
            .iter_mut()
            .find(|f| f.times > 0 && path.contains(f.path_contains.as_str()));
        hit.map(|f| {
            f.times -= 1;
            f.status
        })
    };
    if let Some(status) = injected {
        let error = if status >= 500 {
            OktaError::new(status, "E0000009", "Internal Server Error")
        } else {
            OktaError::new(status, "E0000001", "Api validation failed: injected fault")
        };
        return into_response(&shared, shared.error(error));
    }
    let request = HttpRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let reply = crate::api::handle(&shared, &request);
    into_response(&shared, reply)
}

fn into_response(shared: &Shared, reply: Reply) -> Response {
    let body = serde_json::to_vec(&reply.body).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    if let Ok(date) = HeaderValue::from_str(&format_http_date(shared.clock.now_secs())) {
        headers.insert(axum::http::header::DATE, date);
    }
    response
}
