//! The two loopback HTTP servers and the [`Emulator`] handle that owns them.
//!
//! Everything HTTP-specific lives here: binding 127.0.0.1 (or the addresses a caller picks),
//! serving HTTP/1.1 with keep-alive through `axum::serve` (one task per connection, graceful
//! shutdown), reading bodies with a cap, and turning a handler's [`Reply`] into a response.
//! axum does no routing here: one fallback handler takes every request as sent, so `graph`
//! and `login` see methods, paths, queries and headers exactly as before, and fault rules,
//! request recording and latency apply to every request. No fault needs raw hyper: every
//! injected failure is an HTTP answer (status, headers, body) built by a handler.
//! The state every request reads ([`Shared`]) sits behind short locks so the emulator serves
//! a multi-threaded runtime, and tests can change users, faults, throttling, latency and
//! licence while a run is in flight. Injected latency is an async sleep per HTTP request, so
//! concurrent requests wait in parallel and no runtime thread is ever blocked.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::assertion::{Expected, JtiBook, Refusal, RegisteredCertificate};
use crate::clock::VirtualClock;
use crate::directory::Directory;
use crate::faults::{FaultBook, FaultRule};
use crate::generate::guid;
use crate::reply::GraphError;
use crate::reply::Reply;
use crate::throttle::{ReportsKind, ReportsLimiter, RetryAfter, Throttle, ThrottleState};
use crate::{graph, login, EmulatorConfig, Endpoint, SimUser, Tenant};

/// Largest request body read (a `$batch` of 20 requests is a few kilobytes).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How long [`Emulator::shutdown`] lets requests in flight finish before it stops waiting (a
/// client holding a half-sent request open must not hang a test's teardown).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One request as handlers see it, whether it came over HTTP or inside a `$batch`.
#[derive(Clone, Debug)]
pub(crate) struct HttpRequest {
    /// Upper-case method.
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Headers as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpRequest {
    /// The first header of this name (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Path and query as sent, what fault rules look into.
    pub(crate) fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// State shared by both servers and the [`Emulator`] handle.
pub(crate) struct Shared {
    /// The configuration the emulator started with (`premium`, `p2` and `missing_permissions`
    /// live in their own fields, which tests change at run time).
    pub config: EmulatorConfig,
    premium: AtomicBool,
    p2: AtomicBool,
    missing_permissions: RwLock<Vec<String>>,
    reports: Mutex<ReportsLimiter>,
    /// The clock of the reports limits' windows (and of `Retry-After` dates).
    pub clock: VirtualClock,
    registration_top: AtomicBool,
    reports_throttled: AtomicU64,
    throttled_responses: AtomicU64,
    directory: RwLock<Directory>,
    tokens: Mutex<HashMap<String, Instant>>,
    faults: Mutex<FaultBook>,
    throttle: Mutex<ThrottleState>,
    latency_nanos: AtomicU64,
    counters: [AtomicU64; Endpoint::ALL.len()],
    http_requests: AtomicU64,
    next_link_base: RwLock<Option<String>>,
    body_rewrite: RwLock<Option<(String, String)>>,
    login_on_graph: AtomicBool,
    echo_token_requests: AtomicBool,
    recorded: Mutex<Option<Vec<RecordedRequest>>>,
    certificates: RwLock<Vec<RegisteredCertificate>>,
    client_certificates: Mutex<Vec<String>>,
    assertion_algorithms: RwLock<Vec<String>>,
    jtis: Mutex<JtiBook>,
    /// The base of every link the Graph server writes: `http://127.0.0.1:<graph port>`, or
    /// [`EmulatorConfig::public_graph_endpoint`] when set.
    pub graph_base: String,
    sequence: AtomicU64,
    nonce: u64,
}

/// Refuses a configuration the emulator cannot run with, before any tenant is built.
pub(crate) fn check_config(config: &EmulatorConfig) -> anyhow::Result<()> {
    if config.time_scale == 0 {
        anyhow::bail!(
            "EmulatorConfig::time_scale is 0: it is how many times faster than real time the limit windows run; use 1 for real time"
        );
    }
    parse_certificates(&config.client_certificates)?;
    Ok(())
}

/// The registered certificates of [`EmulatorConfig::client_certificates`], parsed.
fn parse_certificates<S: AsRef<str>>(pems: &[S]) -> anyhow::Result<Vec<RegisteredCertificate>> {
    pems.iter()
        .map(|pem| RegisteredCertificate::from_pem(pem.as_ref()).map_err(anyhow::Error::msg))
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Counts one request (or `$batch` sub-request) against an endpoint.
    pub(crate) fn count(&self, endpoint: Endpoint) {
        self.counters[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The canned answer of the first active fault rule matching this request, if any.
    pub(crate) fn fault(&self, endpoint: Endpoint, target: &str) -> Option<Reply> {
        lock(&self.faults).answer(endpoint, target)
    }

    /// Counts a request against the throttle; `Some` when it is to be answered 429.
    pub(crate) fn throttled(&self, endpoint: Endpoint) -> Option<RetryAfter> {
        lock(&self.throttle).check(endpoint)
    }

    /// Whether the tenant is licensed for sign-in activity and reports.
    pub(crate) fn premium(&self) -> bool {
        self.premium.load(Ordering::Relaxed)
    }

    /// Whether error answers of the token endpoint quote the request (a test hook).
    pub(crate) fn echo_token_requests(&self) -> bool {
        self.echo_token_requests.load(Ordering::Relaxed)
    }

    /// Whether the registration report accepts `$top` ([`EmulatorConfig::registration_top`]).
    pub(crate) fn registration_top(&self) -> bool {
        self.registration_top.load(Ordering::Relaxed)
    }

    /// Whether the tenant has Entra ID P2 (PIM eligibility readable).
    pub(crate) fn p2(&self) -> bool {
        self.p2.load(Ordering::Relaxed)
    }

    /// Whether the app holds at least one of these application permissions (every permission
    /// not listed in `missing_permissions` is held).
    pub(crate) fn has_any(&self, permissions: &[&str]) -> bool {
        let missing = self
            .missing_permissions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        permissions
            .iter()
            .any(|p| !missing.iter().any(|m| m.eq_ignore_ascii_case(p)))
    }

    /// 403 `Authorization_RequestDenied` unless the app holds one of these permissions.
    pub(crate) fn require_any(&self, permissions: &[&str]) -> Result<(), GraphError> {
        if self.has_any(permissions) {
            Ok(())
        } else {
            Err(GraphError::request_denied())
        }
    }

    /// Counts a request against the Entra reports limits (unless `generous`); `Some(seconds)`
    /// when it is to be answered 429 with that `Retry-After`.
    pub(crate) fn reports_throttled(&self, kind: ReportsKind) -> Option<u32> {
        if self.config.generous {
            return None;
        }
        let wait = lock(&self.reports).admit(kind, self.clock.now());
        if wait.is_some() {
            self.reports_throttled.fetch_add(1, Ordering::Relaxed);
        }
        wait
    }

    /// Notes an answer about to be sent (directly or as a `$batch` sub-response): every 429
    /// counts in [`Emulator::throttled_responses`].
    pub(crate) fn note_status(&self, status: u16) {
        if status == 429 {
            self.throttled_responses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The directory, for reading.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.directory
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Directory> {
        self.directory
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The base of `/users` next links (the Graph server unless a test redirected them).
    pub(crate) fn users_link_base(&self) -> String {
        self.next_link_base
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| self.graph_base.clone())
    }

    /// A fresh GUID-shaped id (request ids, trace ids); unique within the process.
    pub(crate) fn new_id(&self, salt: &str) -> String {
        guid(
            self.nonce,
            salt,
            self.sequence.fetch_add(1, Ordering::Relaxed),
        )
    }

    /// Verifies the client assertion of a token request for `client_id` that reached the
    /// endpoint at `token_url` (see `assertion.rs`).
    pub(crate) fn verify_assertion(
        &self,
        client_id: &str,
        token_url: &str,
        assertion_type: Option<&str>,
        assertion: Option<&str>,
    ) -> Result<(), Refusal> {
        let certificates = self
            .certificates
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let algorithms = self
            .assertion_algorithms
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let expected = Expected {
            certificates: &certificates,
            algorithms: &algorithms,
            client_id,
            token_url,
            now: crate::clock::now_secs(),
        };
        crate::assertion::verify(&expected, assertion_type, assertion, &mut lock(&self.jtis))
    }

    /// Issues an access token valid for the configured lifetime.
    pub(crate) fn issue_token(&self) -> String {
        let serial = self.sequence.fetch_add(1, Ordering::Relaxed);
        let token = format!(
            "emu.{:016x}.{serial:08x}.{}",
            self.nonce,
            self.new_id("token").replace('-', "")
        );
        let lifetime = Duration::from_secs(self.config.token_lifetime_secs);
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        if tokens.len() > 10_000 {
            tokens.retain(|_, expiry| *expiry > now);
        }
        tokens.insert(token.clone(), now + lifetime);
        token
    }

    /// Whether a bearer token was issued here and has not expired.
    pub(crate) fn token_valid(&self, token: &str) -> bool {
        lock(&self.tokens)
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }
}

/// One HTTP request exactly as a server received it (see [`Emulator::record_requests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Upper-case method.
    pub method: String,
    /// Path and query as sent (still percent-encoded).
    pub target: String,
    /// Headers as sent (values decoded lossily as UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body as sent (a `$batch` envelope whole, with its items inside).
    pub body: Vec<u8>,
}

/// Which server a listener belongs to.
#[derive(Clone, Copy)]
enum Side {
    Login,
    Graph,
}

/// What the handler of one server holds: the shared state and which server it is.
#[derive(Clone)]
struct Server {
    shared: Arc<Shared>,
    side: Side,
}

/// A running emulator: a login server and a Graph server on two loopback ports.
pub struct Emulator {
    shared: Arc<Shared>,
    login_addr: SocketAddr,
    graph_addr: SocketAddr,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Starts the login server and the Graph server on two ports of 127.0.0.1 (port 0 = pick
    /// free ones). Returns once both accept.
    pub async fn start(tenant: Tenant, config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Emulator::start_on(tenant, config, any, any).await
    }

    /// Like [`Emulator::start`], on chosen addresses (port 0 picks a free port), e.g. to give a
    /// demo stable URLs.
    pub async fn start_on(
        tenant: Tenant,
        config: EmulatorConfig,
        login_addr: SocketAddr,
        graph_addr: SocketAddr,
    ) -> anyhow::Result<Emulator> {
        check_config(&config)?;
        Emulator::start_directory(Directory::new(tenant), config, login_addr, graph_addr).await
    }

    /// Serves a directory already built (checked configuration).
    pub(crate) async fn start_directory(
        directory: Directory,
        config: EmulatorConfig,
        login_addr: SocketAddr,
        graph_addr: SocketAddr,
    ) -> anyhow::Result<Emulator> {
        check_config(&config)?;
        let login = TcpListener::bind(login_addr)
            .await
            .with_context(|| format!("cannot listen for the login server on {login_addr}"))?;
        let graph = TcpListener::bind(graph_addr)
            .await
            .with_context(|| format!("cannot listen for the Graph server on {graph_addr}"))?;
        let login_addr = login.local_addr().context("login server address")?;
        let graph_addr = graph.local_addr().context("Graph server address")?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(graph_addr.port()) << 48);
        let graph_base = match &config.public_graph_endpoint {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("http://{graph_addr}"),
        };
        let certificates = parse_certificates(&config.client_certificates)?;
        let assertion_algorithms = config.assertion_algorithms.clone();
        let client_certificates = config.client_certificates.clone();
        let shared = Arc::new(Shared {
            premium: AtomicBool::new(config.premium),
            p2: AtomicBool::new(config.p2),
            missing_permissions: RwLock::new(config.missing_permissions.clone()),
            reports: Mutex::new(ReportsLimiter::new(
                config.reports_limit,
                config.sign_in_activity_limit,
            )),
            clock: VirtualClock::new(config.time_scale),
            registration_top: AtomicBool::new(config.registration_top),
            reports_throttled: AtomicU64::new(0),
            throttled_responses: AtomicU64::new(0),
            config,
            directory: RwLock::new(directory),
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(FaultBook::default()),
            throttle: Mutex::new(ThrottleState::default()),
            latency_nanos: AtomicU64::new(0),
            counters: Default::default(),
            http_requests: AtomicU64::new(0),
            next_link_base: RwLock::new(None),
            body_rewrite: RwLock::new(None),
            login_on_graph: AtomicBool::new(false),
            echo_token_requests: AtomicBool::new(false),
            recorded: Mutex::new(None),
            certificates: RwLock::new(certificates),
            client_certificates: Mutex::new(client_certificates),
            assertion_algorithms: RwLock::new(assertion_algorithms),
            jtis: Mutex::new(JtiBook::default()),
            graph_base,
            sequence: AtomicU64::new(1),
            nonce,
        });
        let (stop, stopped) = watch::channel(false);
        let servers = vec![
            spawn_server(login, Arc::clone(&shared), Side::Login, stopped.clone()),
            spawn_server(graph, Arc::clone(&shared), Side::Graph, stopped),
        ];
        Ok(Emulator {
            shared,
            login_addr,
            graph_addr,
            stop,
            servers,
        })
    }

    /// `"http://127.0.0.1:<login port>"` — token URL is `{login_endpoint}/{tenant}/oauth2/v2.0/token`
    pub fn login_endpoint(&self) -> String {
        format!("http://{}", self.login_addr)
    }

    /// `"http://127.0.0.1:<graph port>"` — Graph URLs are `{graph_endpoint}/v1.0/...`
    pub fn graph_endpoint(&self) -> String {
        format!("http://{}", self.graph_addr)
    }

    /// The socket the login server listens on.
    pub fn login_addr(&self) -> SocketAddr {
        self.login_addr
    }

    /// The socket the Graph server listens on.
    pub fn graph_addr(&self) -> SocketAddr {
        self.graph_addr
    }

    /// The base of the links the Graph server writes: [`Emulator::graph_endpoint`], or
    /// [`EmulatorConfig::public_graph_endpoint`] when it was set.
    pub fn public_graph_endpoint(&self) -> String {
        self.shared.graph_base.clone()
    }

    /// The token URL of the configured tenant: `{login_endpoint}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_endpoint(),
            self.shared.config.tenant_id
        )
    }

    /// The scope a client must request: `{graph_endpoint}/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.graph_endpoint())
    }

    /// Replaces the certificates registered on the app ([`EmulatorConfig::client_certificates`],
    /// PEM text); later token requests see the change. An unreadable certificate is refused
    /// (one line) and nothing changes.
    pub fn set_client_certificates(&self, pems: &[&str]) -> anyhow::Result<()> {
        let parsed = parse_certificates(pems)?;
        *self
            .shared
            .certificates
            .write()
            .unwrap_or_else(PoisonError::into_inner) = parsed;
        *lock(&self.shared.client_certificates) = pems.iter().map(|p| (*p).to_owned()).collect();
        Ok(())
    }

    /// Replaces the `alg` values the tenant accepts on client assertions
    /// ([`EmulatorConfig::assertion_algorithms`]); later token requests see the change.
    pub fn set_assertion_algorithms(&self, algorithms: &[&str]) {
        *self
            .shared
            .assertion_algorithms
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            algorithms.iter().map(|a| (*a).to_owned()).collect();
    }

    /// The configuration, with the current `premium`, `p2`, `registration_top`,
    /// `missing_permissions`, `client_certificates` and `assertion_algorithms`.
    pub fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            client_certificates: lock(&self.shared.client_certificates).clone(),
            assertion_algorithms: self
                .shared
                .assertion_algorithms
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            premium: self.shared.premium(),
            p2: self.shared.p2(),
            registration_top: self.shared.registration_top(),
            missing_permissions: self
                .shared
                .missing_permissions
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ..self.shared.config.clone()
        }
    }

    /// Replaces the application permissions the app has NOT been granted (see
    /// [`EmulatorConfig::missing_permissions`]); later requests see the change.
    pub fn set_missing_permissions(&self, permissions: &[&str]) {
        *self
            .shared
            .missing_permissions
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            permissions.iter().map(|p| (*p).to_owned()).collect();
    }

    /// Switches `$top` on the registration-details report list
    /// ([`EmulatorConfig::registration_top`]); later requests see the change.
    pub fn set_registration_top(&self, accept: bool) {
        self.shared
            .registration_top
            .store(accept, Ordering::Relaxed);
    }

    /// The clock of the limit windows ([`EmulatorConfig::time_scale`]): its factor and the
    /// real instant it started from, so a simulated client can run its clocks on the same one.
    pub fn clock(&self) -> VirtualClock {
        self.shared.clock
    }

    /// Switches the tenant's Entra ID P2 licence (PIM eligibility readable).
    pub fn set_p2(&self, p2: bool) {
        self.shared.p2.store(p2, Ordering::Relaxed);
    }

    /// How many 429s the Entra reports limits gave (see [`EmulatorConfig::reports_limit`]),
    /// `$batch` items included.
    pub fn reports_throttled(&self) -> u64 {
        self.shared.reports_throttled.load(Ordering::Relaxed)
    }

    /// How many 429 answers the emulator sent in all: the rate throttle, the reports limits
    /// and fault rules answering 429, on both servers, `$batch` sub-responses counted one by
    /// one (a throttled `$batch` envelope counts once).
    pub fn throttled_responses(&self) -> u64 {
        self.shared.throttled_responses.load(Ordering::Relaxed)
    }

    /// Requests served per endpoint since start (faulted and throttled ones included; `$batch` sub-requests
    /// count under their own endpoint, the envelope under [`Endpoint::Batch`]). Every endpoint
    /// is present, with 0 when unused.
    pub fn counters(&self) -> BTreeMap<Endpoint, u64> {
        Endpoint::ALL
            .iter()
            .map(|&e| (e, self.shared.counters[e.index()].load(Ordering::Relaxed)))
            .collect()
    }

    /// The sum of [`Emulator::counters`]: HTTP requests plus `$batch` sub-requests.
    pub fn total_requests(&self) -> u64 {
        self.counters().values().sum()
    }

    /// Requests as Graph counts them against its limits: every endpoint's count, each
    /// `$batch` item on its own, the `$batch` envelopes not (json-batching.md, throttling.md).
    pub fn graph_requests(&self) -> u64 {
        self.counters()
            .iter()
            .filter(|(endpoint, _)| **endpoint != Endpoint::Batch)
            .map(|(_, n)| n)
            .sum()
    }

    /// HTTP requests received by both servers (a `$batch` counts once).
    pub fn http_requests(&self) -> u64 {
        self.shared.http_requests.load(Ordering::Relaxed)
    }

    /// Sets every counter back to 0 ([`Emulator::reports_throttled`] and
    /// [`Emulator::throttled_responses`] included; the reports limits' windows are kept).
    pub fn reset_counters(&self) {
        for counter in &self.shared.counters {
            counter.store(0, Ordering::Relaxed);
        }
        self.shared.http_requests.store(0, Ordering::Relaxed);
        self.shared.reports_throttled.store(0, Ordering::Relaxed);
        self.shared.throttled_responses.store(0, Ordering::Relaxed);
    }

    /// Appends a user, visible to later requests. A user whose id already exists replaces that
    /// user in place; a user without a string id is ignored.
    pub fn add_user(&self, user: SimUser) {
        self.shared.write().put(user);
    }

    /// Shallow-merges `patch` (a JSON object) into the user object of `id` (a `null` value sets
    /// the property to null; `id` itself cannot change). False for an unknown id or a patch
    /// that is not an object.
    pub fn update_user(&self, id: &str, patch: Value) -> bool {
        let Value::Object(patch) = patch else {
            return false;
        };
        self.modify_user(id, move |sim| {
            if let Some(user) = sim.user.as_object_mut() {
                user.extend(patch);
            }
        })
    }

    /// Changes a user and its relations with a closure (memberships, roles, methods…); its id
    /// cannot change. False for an unknown id.
    pub fn modify_user(&self, id: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        self.shared.write().modify(id, change)
    }

    /// Changes only the relations of a user — `member_of`, `inherited_roles`, `auth_methods`,
    /// `role_assignments` — without recording a `users/delta` change (membership changes are
    /// recorded for `groups/delta`): real `users/delta` does not report membership,
    /// role or authentication-method changes, because they are not user properties. Everything
    /// derived from relations (`/groups`, `/directoryRoles` and their members, group members,
    /// the registration-details report) reflects the change at once. The user object itself is
    /// enforced unchanged: whatever the closure does to `sim.user` is undone. False for an
    /// unknown id.
    pub fn modify_relations(&self, id: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        self.shared.write().modify_relations(id, change)
    }

    /// Removes a user for good: `users/delta` reports it with `@removed.reason` "deleted".
    pub fn remove_user(&self, id: &str) -> bool {
        self.shared.write().remove(id, "deleted")
    }

    /// Soft-deletes a user (moves it to deleted items): it leaves `/users` and `users/delta`
    /// reports it with `@removed.reason` "changed".
    pub fn soft_delete_user(&self, id: &str) -> bool {
        self.shared.write().remove(id, "changed")
    }

    /// Switches the tenant's P1/P2 licence (sign-in activity and registration report).
    pub fn set_premium(&self, premium: bool) {
        self.shared.premium.store(premium, Ordering::Relaxed);
    }

    /// Adds a fault rule after the existing ones.
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Sets (or, with `None`, removes) the rate throttle: every `every`-th matching Graph
    /// request answers 429 `TooManyRequests` with the configured `Retry-After` (see
    /// [`Throttle`]). Setting a throttle restarts its count. Fault rules are checked first.
    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        lock(&self.shared.throttle).set(throttle);
    }

    /// From now on every HTTP request on both servers (login and Graph) waits `latency` before
    /// it is answered, with an async sleep: concurrent requests overlap their waits. A `$batch`
    /// is one HTTP request and waits once. Zero (the default) removes the delay.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Make every @odata.nextLink of /users (and of users/delta, with its deltaLink) start with
    /// this base instead of graph_endpoint (to test that a link to another host is refused).
    /// None restores.
    pub fn set_next_link_base(&self, base: Option<String>) {
        *self
            .shared
            .next_link_base
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            base.map(|b| b.trim_end_matches('/').to_owned());
    }

    /// **Test hook.** Some((from, to)): every answer of the Graph server (`$batch` answers
    /// whole) has each `from` in its body replaced by `to` as sent, after serialisation, to
    /// serve text no `serde_json::Value` can hold, e.g. an escaped lone surrogate `\ud800`
    /// in one user's property, or a key twice. None restores.
    pub fn set_body_rewrite(&self, rewrite: Option<(&str, &str)>) {
        *self
            .shared
            .body_rewrite
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            rewrite.map(|(from, to)| (from.to_owned(), to.to_owned()));
    }

    /// **Test hook.** true: the Graph server also answers the token endpoint
    /// (`POST /{tenant}/oauth2/v2.0/token`), so login and Graph share one origin, as they do
    /// behind a gateway that fronts both; a client pointed at it uses
    /// [`Emulator::graph_endpoint`] as its login endpoint too. false (the default) restores two
    /// origins. Lets tests check that a secret allowed for the login origin is still never
    /// filled into Graph traffic.
    pub fn set_login_on_graph(&self, on: bool) {
        self.shared.login_on_graph.store(on, Ordering::Relaxed);
    }

    /// **Test hook.** true: every error answer of the token endpoint (a wrong secret, client
    /// id, tenant, scope…) quotes what it received at the start of `error_description`: the
    /// request body as sent and the `client_secret` field decoded, as a careless or hostile
    /// token endpoint might. Lets tests check that a secret echoed back never leaves the host. Off by default.
    pub fn set_echo_token_requests(&self, on: bool) {
        self.shared.echo_token_requests.store(on, Ordering::Relaxed);
    }

    /// **Test hook.** true: from now on every HTTP request either server receives is kept
    /// whole ([`RecordedRequest`]: method, target, headers, body), for tests that must prove
    /// what a client did or did not send (e.g. a secret outside the token request). false
    /// stops recording and forgets what was kept. Off by default.
    pub fn record_requests(&self, on: bool) {
        *lock(&self.shared.recorded) = on.then(Vec::new);
    }

    /// The requests kept since [`Emulator::record_requests`] was switched on, in arrival
    /// order (empty when it is off).
    pub fn recorded_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.recorded).clone().unwrap_or_default()
    }

    /// Makes every access token issued so far expire now (the next Graph request with one
    /// gets 401 `InvalidAuthenticationToken`).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in lock(&self.shared.tokens).values_mut() {
            *expiry = now;
        }
    }

    /// Makes every delta and skip token of `users/delta` and `groups/delta` issued so far
    /// stale: following one answers 410 Gone with code `syncStateNotFound`, as Graph does
    /// after seven days.
    pub fn expire_delta_tokens(&self) {
        self.expire_delta_tokens_with(410, "syncStateNotFound");
    }

    /// Like [`Emulator::expire_delta_tokens`], answering stale tokens with this status and
    /// Graph error code instead, e.g. `(410, "resyncRequired")`. A later call replaces the
    /// answer for every stale token.
    pub fn expire_delta_tokens_with(&self, status: u16, code: &str) {
        self.shared.write().expire_delta_tokens(status, code);
    }

    /// Users in the tenant now (a snapshot).
    pub fn users(&self) -> Vec<SimUser> {
        self.shared.read().snapshot()
    }

    /// Live user ids, in insertion order (no whole-tenant SimUser copy).
    pub fn user_ids(&self) -> Vec<String> {
        self.shared.read().ids()
    }

    /// One live user, reconstituted.
    pub fn user(&self, id: &str) -> Option<SimUser> {
        let directory = self.shared.read();
        let seq = directory.seq_of(id)?;
        directory.entry(seq).map(|entry| directory.sim(entry))
    }

    /// How many live users.
    pub fn user_count(&self) -> usize {
        self.shared.read().len()
    }

    /// [`Tenant::admin_roles`] of the tenant as it is now (after every change made through
    /// this handle): the tests' oracle of who holds which role, active and eligible.
    pub fn tenant_admin_roles(
        &self,
    ) -> std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> {
        let directory = self.shared.read();
        crate::roles::admin_roles(&directory.snapshot(), directory.custom_definitions())
    }

    /// Stops both servers: no new connection is accepted, requests in flight are answered,
    /// then every connection is closed (idle keep-alive ones at once). Returns when both
    /// servers are down, or after a few seconds if a client keeps a request half-sent.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for mut server in std::mem::take(&mut self.servers) {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves one listener with axum until `stop` turns true (or its sender is dropped), then
/// shuts down gracefully.
fn spawn_server(
    listener: TcpListener,
    shared: Arc<Shared>,
    side: Side,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let app = Router::new()
        .fallback(answer)
        .with_state(Server { shared, side });
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        // serve only ends with an I/O error of the listener, which axum retries itself.
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await;
    })
}

/// Reads one request, lets the server's handler answer it, writes the answer.
async fn answer(State(server): State<Server>, request: Request) -> Response {
    let Server { shared, side } = server;
    let (parts, body) = request.into_parts();
    shared.http_requests.fetch_add(1, Ordering::Relaxed);
    let body = to_bytes(body, MAX_BODY_BYTES).await;
    let latency = shared.latency_nanos.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_nanos(latency)).await;
    }
    let body = match body {
        Ok(bytes) => bytes,
        Err(_) => {
            let reply = Reply::graph_json(
                413,
                serde_json::json!({"error": {"code": "RequestEntityTooLarge",
                    "message": format!("The request body is larger than {MAX_BODY_BYTES} bytes or could not be read.")}}),
            );
            return into_response(reply);
        }
    };
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
    if let Some(kept) = lock(&shared.recorded).as_mut() {
        kept.push(RecordedRequest {
            method: request.method.clone(),
            target: request.target(),
            headers: request.headers.clone(),
            body: request.body.to_vec(),
        });
    }
    let reply = match side {
        Side::Login => login::handle(&shared, &request),
        Side::Graph
            if shared.login_on_graph.load(Ordering::Relaxed)
                && login::token_tenant(&request.path).is_some() =>
        {
            login::handle(&shared, &request)
        }
        Side::Graph => {
            let mut reply = graph::handle(&shared, &request);
            let rewrite = shared
                .body_rewrite
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some((from, to)) = rewrite {
                let text = String::from_utf8_lossy(&reply.body_bytes()).replace(&from, &to);
                reply.body = crate::reply::Body::Text(text);
            }
            reply
        }
    };
    into_response(reply)
}

/// Turns a reply into a response; headers that are not valid HTTP (from a fault rule) are
/// dropped rather than failing the response.
fn into_response(reply: Reply) -> Response {
    let body = reply.body_bytes();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + 'static>() {}

    #[test]
    fn the_handle_can_be_shared_across_threads() {
        shareable::<Emulator>();
        shareable::<Shared>();
    }
}
