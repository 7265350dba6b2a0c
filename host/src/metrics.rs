//! What `connector-host serve` tells an operator while it runs many tenants: Prometheus
//! metrics on `/metrics` and a health check on `/healthz`, from one small HTTP server.
//!
//! A fleet of tenants fails one tenant at a time (a revoked secret, a missing permission,
//! throttling), so every counter carries the tenant key. The exposition is written by hand in
//! the Prometheus text format (version 0.0.4): the metric set is small and fixed, and a
//! client crate would add a global registry this host does not want.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `connector_runs_total` | counter | `tenant`, `outcome` = `success` \| `failure` |
//! | `connector_run_failures_total` | counter | `tenant`, `kind` = `config` \| `secret` \| `auth` \| `permission` \| `upstream` \| `host` \| `trap` \| `limit` \| `timeout` |
//! | `connector_runs_cut_total` | counter | `tenant`: runs dropped when the shutdown grace period ended |
//! | `connector_events_total` | counter | `tenant`: events written by successful runs |
//! | `connector_http_requests_total` | counter | `tenant`, `status`: responses of successful runs |
//! | `connector_throttled_total` | counter | `tenant`: 429 responses of successful runs |
//! | `connector_run_duration_seconds` | histogram | none (all tenants; buckets 0.1 s … 3600 s) |
//! | `connector_last_run_duration_seconds` | gauge | `tenant` |
//! | `connector_last_success_timestamp_seconds` | gauge | `tenant` (Unix time; absent before the first success) |
//! | `connector_consecutive_failures` | gauge | `tenant` |
//! | `connector_runs_in_flight`, `connector_runs_waiting`, `connector_pool_capacity`, `connector_tenants` | gauge | none |
//!
//! A failed run has no [`RunReport`], so its HTTP statuses and the events it wrote before
//! failing are not counted; its failure kind is.
//!
//! The endpoint must never cost the runs their file descriptors, whoever connects to it.
//! With `N` = [`MetricsEndpoint::max_connections`] (64, or an eighth of the open-files limit
//! when that is lower: [`connection_cap`]), it holds at most `2N` sockets:
//! - a connection is accepted only while fewer than `N` accepted ones have yet to send a
//!   byte; the others wait in the kernel's listen queue, costing this process nothing;
//! - an accepted connection silent for 1 s is closed, so idle sockets cycle through and
//!   never hold a serving slot;
//! - one that sends takes one of `N` serving slots, or is answered `503` and closed when none
//!   is free; a served connection must complete its request headers within 10 s (slowloris)
//!   and lives at most 60 s.
//!
//! [`raise_open_files_limit`] lifts the soft open-files limit to the hard one; `serve` calls
//! it at start, before the endpoint derives its cap.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{ConnectorErrorKind, RunError};
use crate::RunReport;

/// Upper bounds of the run-duration histogram buckets, seconds.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Why a run failed, as the `kind` label of `connector_run_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The tenant's configuration is unusable (host file or connector settings).
    Config,
    /// A secret could not be loaded.
    Secret,
    /// The provider refused the credentials.
    Auth,
    /// A permission is missing at the provider.
    Permission,
    /// The provider failed or answered nonsense.
    Upstream,
    /// The host failed (engine, sink, store, a door).
    Host,
    /// The connector crashed (trap).
    Trap,
    /// A sandbox limit (memory, CPU, stack, call size) stopped the connector.
    Limit,
    /// The run exceeded its time limit.
    Timeout,
}

impl FailureKind {
    /// Every kind, in label order.
    pub const ALL: [FailureKind; 9] = [
        FailureKind::Config,
        FailureKind::Secret,
        FailureKind::Auth,
        FailureKind::Permission,
        FailureKind::Upstream,
        FailureKind::Host,
        FailureKind::Trap,
        FailureKind::Limit,
        FailureKind::Timeout,
    ];

    /// The kind of a run error.
    pub fn of(error: &RunError) -> FailureKind {
        match error {
            RunError::Config { .. } => FailureKind::Config,
            RunError::Secret { .. } => FailureKind::Secret,
            RunError::Connector { kind, .. } => match kind {
                ConnectorErrorKind::Config => FailureKind::Config,
                ConnectorErrorKind::Auth => FailureKind::Auth,
                ConnectorErrorKind::Permission => FailureKind::Permission,
                ConnectorErrorKind::Upstream => FailureKind::Upstream,
                ConnectorErrorKind::Host => FailureKind::Host,
            },
            RunError::Trap { .. } => FailureKind::Trap,
            RunError::Limit { .. } => FailureKind::Limit,
            RunError::Timeout { .. } => FailureKind::Timeout,
            RunError::Host { .. } => FailureKind::Host,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Config => "config",
            FailureKind::Secret => "secret",
            FailureKind::Auth => "auth",
            FailureKind::Permission => "permission",
            FailureKind::Upstream => "upstream",
            FailureKind::Host => "host",
            FailureKind::Trap => "trap",
            FailureKind::Limit => "limit",
            FailureKind::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tenant's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantCounters {
    /// Runs that succeeded.
    pub successes: u64,
    /// Runs that failed, by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Runs cut at shutdown.
    pub cut: u64,
    /// Events written by successful runs.
    pub events: u64,
    /// Responses of successful runs, by HTTP status.
    pub http_status: BTreeMap<u16, u64>,
    /// Failed runs since the last success.
    pub consecutive_failures: u32,
    /// Duration of the last finished run.
    pub last_duration: Option<Duration>,
    /// When the last successful run ended, seconds since the Unix epoch.
    pub last_success_unix: Option<f64>,
}

impl TenantCounters {
    /// Failed runs of every kind.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// Which pool gauge a [`GaugeGuard`] holds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gauge {
    /// Runs executing now (holding a pool slot).
    InFlight,
    /// Runs started but waiting for a pool slot.
    Waiting,
}

/// The counters and gauges of a serving host, and its health state.
///
/// Cheap to update from many tasks: gauges are atomics, per-tenant counters sit behind one
/// short lock taken once per finished run.
#[derive(Debug)]
pub struct Metrics {
    capacity: AtomicU64,
    in_flight: AtomicU64,
    waiting: AtomicU64,
    peak_in_flight: AtomicU64,
    serving: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tenants: BTreeMap<String, TenantCounters>,
    /// Count per bucket of [`DURATION_BUCKETS`] (not cumulative), then the overflow.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    duration_sum: f64,
    duration_count: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(0)
    }
}

impl Metrics {
    /// Empty metrics for a pool of `capacity` concurrent runs; healthy (serving).
    pub fn new(capacity: usize) -> Metrics {
        Metrics {
            capacity: AtomicU64::new(capacity as u64),
            in_flight: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            serving: AtomicBool::new(true),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Counters stay meaningful even if a panicking thread held the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts reporting a tenant (all its counters at zero).
    pub fn add_tenant(&self, tenant: &str) {
        self.state().tenants.entry(tenant.to_string()).or_default();
    }

    /// Records a successful run: its events, HTTP statuses, throttles and duration.
    pub fn record_success(&self, tenant: &str, report: &RunReport) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut s = self.state();
        s.observe(report.duration);
        let t = s.tenants.entry(tenant.to_string()).or_default();
        t.successes += 1;
        t.events += report.events_written;
        for (status, n) in &report.http_status {
            *t.http_status.entry(*status).or_default() += n;
        }
        t.consecutive_failures = 0;
        t.last_duration = Some(report.duration);
        t.last_success_unix = Some(now);
    }

    /// Records a failed run; returns the tenant's consecutive failures, this one included.
    pub fn record_failure(&self, tenant: &str, kind: FailureKind, duration: Duration) -> u32 {
        let mut s = self.state();
        s.observe(duration);
        let t = s.tenants.entry(tenant.to_string()).or_default();
        *t.failures.entry(kind).or_default() += 1;
        t.consecutive_failures = t.consecutive_failures.saturating_add(1);
        t.last_duration = Some(duration);
        t.consecutive_failures
    }

    /// Records a run dropped unfinished at shutdown (neither success nor failure).
    pub fn record_cut(&self, tenant: &str) {
        self.state()
            .tenants
            .entry(tenant.to_string())
            .or_default()
            .cut += 1;
    }

    /// A copy of one tenant's counters.
    pub fn tenant(&self, tenant: &str) -> Option<TenantCounters> {
        self.state().tenants.get(tenant).cloned()
    }

    /// A copy of every tenant's counters, by key.
    pub fn tenants(&self) -> BTreeMap<String, TenantCounters> {
        self.state().tenants.clone()
    }

    /// Raises `gauge` by one until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, gauge: Gauge) -> GaugeGuard {
        match gauge {
            Gauge::InFlight => {
                let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
                self.peak_in_flight.fetch_max(now, Ordering::AcqRel);
            }
            Gauge::Waiting => {
                self.waiting.fetch_add(1, Ordering::AcqRel);
            }
        }
        GaugeGuard {
            metrics: self.clone(),
            gauge,
        }
    }

    /// Runs executing now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Runs waiting for a pool slot now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Acquire)
    }

    /// The most runs that executed at once.
    pub fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight.load(Ordering::Acquire)
    }

    /// Pool capacity (most runs at once).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Acquire)
    }

    /// Whether `/healthz` answers 200 (serving) or 503 (shutting down or stopped).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Sets the health state `/healthz` reports.
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// The Prometheus text exposition (format 0.0.4) of everything above.
    pub fn render(&self) -> String {
        let s = self.state();
        let mut out = String::with_capacity(256 + s.tenants.len() * 512);
        let w = &mut out;

        header(
            w,
            "connector_runs_total",
            "counter",
            "Finished runs by tenant and outcome.",
        );
        for (key, t) in &s.tenants {
            let k = escape(key);
            line(
                w,
                &format!("connector_runs_total{{tenant=\"{k}\",outcome=\"success\"}}"),
                t.successes,
            );
            line(
                w,
                &format!("connector_runs_total{{tenant=\"{k}\",outcome=\"failure\"}}"),
                t.failed(),
            );
        }
        header(
            w,
            "connector_run_failures_total",
            "counter",
            "Failed runs by tenant and kind (config, secret, auth, permission, upstream, host, trap, limit, timeout).",
        );
        for (key, t) in &s.tenants {
            let k = escape(key);
            for (kind, n) in &t.failures {
                line(
                    w,
                    &format!("connector_run_failures_total{{tenant=\"{k}\",kind=\"{kind}\"}}"),
                    *n,
                );
            }
        }
        header(
            w,
            "connector_runs_cut_total",
            "counter",
            "Runs dropped unfinished when the shutdown grace period ended (redelivered by their next runs).",
        );
        for (key, t) in &s.tenants {
            line(
                w,
                &format!("connector_runs_cut_total{{tenant=\"{}\"}}", escape(key)),
                t.cut,
            );
        }
        header(
            w,
            "connector_events_total",
            "counter",
            "Events written by successful runs.",
        );
        for (key, t) in &s.tenants {
            line(
                w,
                &format!("connector_events_total{{tenant=\"{}\"}}", escape(key)),
                t.events,
            );
        }
        header(
            w,
            "connector_http_requests_total",
            "counter",
            "HTTP responses received by successful runs, by status.",
        );
        for (key, t) in &s.tenants {
            let k = escape(key);
            for (status, n) in &t.http_status {
                line(
                    w,
                    &format!("connector_http_requests_total{{tenant=\"{k}\",status=\"{status}\"}}"),
                    *n,
                );
            }
        }
        header(
            w,
            "connector_throttled_total",
            "counter",
            "HTTP 429 (throttled) responses received by successful runs.",
        );
        for (key, t) in &s.tenants {
            let n = t.http_status.get(&429).copied().unwrap_or(0);
            line(
                w,
                &format!("connector_throttled_total{{tenant=\"{}\"}}", escape(key)),
                n,
            );
        }
        header(
            w,
            "connector_run_duration_seconds",
            "histogram",
            "Wall time of finished runs, all tenants.",
        );
        let mut cumulative = 0;
        for (bound, n) in DURATION_BUCKETS.iter().zip(s.buckets.iter()) {
            cumulative += n;
            line(
                w,
                &format!("connector_run_duration_seconds_bucket{{le=\"{bound}\"}}"),
                cumulative,
            );
        }
        cumulative += s.buckets[DURATION_BUCKETS.len()];
        line(
            w,
            "connector_run_duration_seconds_bucket{le=\"+Inf\"}",
            cumulative,
        );
        let _ = writeln!(w, "connector_run_duration_seconds_sum {}", s.duration_sum);
        line(w, "connector_run_duration_seconds_count", s.duration_count);
        header(
            w,
            "connector_last_run_duration_seconds",
            "gauge",
            "Wall time of the tenant's last finished run.",
        );
        for (key, t) in &s.tenants {
            if let Some(d) = t.last_duration {
                let _ = writeln!(
                    w,
                    "connector_last_run_duration_seconds{{tenant=\"{}\"}} {}",
                    escape(key),
                    d.as_secs_f64()
                );
            }
        }
        header(
            w,
            "connector_last_success_timestamp_seconds",
            "gauge",
            "When the tenant's last successful run ended (Unix time).",
        );
        for (key, t) in &s.tenants {
            if let Some(at) = t.last_success_unix {
                let _ = writeln!(
                    w,
                    "connector_last_success_timestamp_seconds{{tenant=\"{}\"}} {at:.3}",
                    escape(key)
                );
            }
        }
        header(
            w,
            "connector_consecutive_failures",
            "gauge",
            "Failed runs of the tenant since its last success (drives the backoff).",
        );
        for (key, t) in &s.tenants {
            line(
                w,
                &format!(
                    "connector_consecutive_failures{{tenant=\"{}\"}}",
                    escape(key)
                ),
                u64::from(t.consecutive_failures),
            );
        }
        let tenants = s.tenants.len() as u64;
        drop(s);
        header(
            w,
            "connector_runs_in_flight",
            "gauge",
            "Runs executing now.",
        );
        line(w, "connector_runs_in_flight", self.in_flight());
        header(
            w,
            "connector_runs_waiting",
            "gauge",
            "Runs started and waiting for a pool slot.",
        );
        line(w, "connector_runs_waiting", self.waiting());
        header(
            w,
            "connector_pool_capacity",
            "gauge",
            "Most runs executing at once.",
        );
        line(w, "connector_pool_capacity", self.capacity());
        header(w, "connector_tenants", "gauge", "Tenants registered.");
        line(w, "connector_tenants", tenants);
        out
    }
}

impl State {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i] += 1;
        self.duration_sum += secs;
        self.duration_count += 1;
    }
}

fn header(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

fn line(w: &mut String, series: &str, value: u64) {
    let _ = writeln!(w, "{series} {value}");
}

/// Escapes a label value for the Prometheus text format: backslash, double quote, newline.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Holds a pool gauge up by one; dropping it lowers the gauge again.
#[derive(Debug)]
pub struct GaugeGuard {
    metrics: Arc<Metrics>,
    gauge: Gauge,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        let counter = match self.gauge {
            Gauge::InFlight => &self.metrics.in_flight,
            Gauge::Waiting => &self.metrics.waiting,
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Most connections the endpoint serves at once when descriptors are plentiful.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection may take to send its request headers (idle or slowloris sockets).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest life of one connection (a client that never reads its answer).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long an accepted connection may stay silent before it is closed: a client sends its
/// request as soon as the connection is up.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a refused connection is given to read its answer and close.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The answer to a connection over the cap, written once before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 38\r\n\r\ntoo many connections: try again later\n";

/// The process's soft open-files limit (`RLIMIT_NOFILE`); `None` when unlimited or unknown.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft open-files limit to the hard limit, so that idle sockets and many runs
/// do not run the process out of descriptors at a distribution's default of 1024 while the
/// hard limit allows more. Returns (before, after); `None` means unlimited or unknown.
pub fn raise_open_files_limit() -> (Option<u64>, Option<u64>) {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        let raised = match (limit.current, limit.maximum) {
            (Some(current), maximum) if maximum.is_none_or(|max| max > current) => setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: maximum,
                    maximum,
                },
            )
            .is_ok(),
            _ => false,
        };
        let after = if raised {
            getrlimit(Resource::Nofile).current
        } else {
            limit.current
        };
        (limit.current, after)
    }
    #[cfg(not(unix))]
    {
        (None, None)
    }
}

/// The connection cap for an open-files limit: [`MAX_CONNECTIONS`], or an eighth of the
/// limit when that is lower (at least 1). The endpoint holds at most twice the cap in
/// sockets, so at least three quarters of the descriptors stay with the runs.
pub fn connection_cap(open_files_limit: Option<u64>) -> usize {
    match open_files_limit {
        None => MAX_CONNECTIONS,
        Some(limit) => usize::try_from(limit / 8)
            .unwrap_or(MAX_CONNECTIONS)
            .clamp(1, MAX_CONNECTIONS),
    }
}

/// The running `/metrics` + `/healthz` HTTP server.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    max_connections: usize,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `GET /metrics` (the exposition of `metrics`) and `GET /healthz`
    /// (200 `ok` while serving, 503 while shutting down). Port 0 picks a free port; see
    /// [`MetricsEndpoint::local_addr`].
    ///
    /// Anyone who can reach the address can read tenant keys and counts (never secrets):
    /// keep it on loopback or a private network. At most [`connection_cap`] (of the current
    /// open-files limit) connections are served at once; see the module documentation.
    pub async fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<MetricsEndpoint> {
        Self::start_with_cap(addr, metrics, connection_cap(open_files_limit())).await
    }

    /// [`MetricsEndpoint::start`] serving at most `max_connections` connections at once
    /// (at least 1), with as many more accepted and waiting for their first byte; a request
    /// over the cap is answered `503` and closed.
    pub async fn start_with_cap(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        max_connections: usize,
    ) -> std::io::Result<MetricsEndpoint> {
        let max_connections = max_connections.max(1);
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(listener, metrics, max_connections, stopped));
        Ok(MetricsEndpoint {
            local_addr,
            max_connections,
            stop: Some(stop),
            task,
        })
    }

    /// Most connections served at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes open connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves connections until `stopped`. A connection is accepted only when one of
/// `max_connections` waiting slots is free (until then it waits in the kernel's queue, holding
/// no descriptor of this process), and must send its first byte within
/// [`FIRST_BYTE_TIMEOUT`]; only then does it take one of `max_connections` serving slots, or
/// is answered [`BUSY`] when none is free. Idle sockets never hold a serving slot.
async fn accept_loop(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    max_connections: usize,
    mut stopped: oneshot::Receiver<()>,
) {
    let local_addr = listener.local_addr().ok();
    let waiting = Arc::new(Semaphore::new(max_connections));
    let serving = Arc::new(Semaphore::new(max_connections));
    let refused = Arc::new(Mutex::new(Refusals::default()));
    let mut connections = JoinSet::new();
    loop {
        let waiting_slot = tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            slot = waiting.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let (metrics, serving, refused) =
                    (metrics.clone(), serving.clone(), refused.clone());
                connections.spawn(async move {
                    let mut first = [0u8; 1];
                    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return, // idle, closed or failed: close it
                    }
                    let Ok(permit) = serving.try_acquire_owned() else {
                        refused
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .count(local_addr, max_connections);
                        return refuse(stream, waiting_slot).await;
                    };
                    drop(waiting_slot);
                    let _permit = permit;
                    let service = service_fn(move |req| answer(req, metrics.clone()));
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                });
            }
            Err(e) => {
                drop(waiting_slot);
                // Out of file descriptors and the like: say so, breathe, go on.
                tracing::warn!(address = ?local_addr, "metrics endpoint cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    connections.abort_all();
}

/// Answers a connection over the cap with [`BUSY`] and closes it cleanly: what the client
/// sent is read, then the answer, then FIN, then whatever still comes until the client closes
/// (all within [`REFUSAL_LINGER`]), so the client reads a 503, not a connection reset.
async fn refuse(mut stream: tokio::net::TcpStream, _slot: tokio::sync::OwnedSemaphorePermit) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        let mut sink = [0u8; 1024];
        while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Connections refused over the cap, logged at most once per 10 s.
#[derive(Default)]
struct Refusals {
    since_last_log: u64,
    last_log: Option<std::time::Instant>,
}

impl Refusals {
    fn count(&mut self, address: Option<SocketAddr>, cap: usize) {
        self.since_last_log += 1;
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            tracing::warn!(
                address = ?address,
                refused = self.since_last_log,
                max_connections = cap,
                "metrics endpoint at its connection cap: refusing connections (503); scrape less often or find who holds connections open"
            );
            self.since_last_log = 0;
            self.last_log = Some(std::time::Instant::now());
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    metrics: Arc<Metrics>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let (status, content_type, body) = match (get, req.uri().path()) {
        (true, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (true, "/healthz") if metrics.is_serving() => (StatusCode::OK, TEXT, "ok\n".into()),
        (true, "/healthz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "shutting down\n".into(),
        ),
        (false, "/metrics" | "/healthz") => {
            (StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n".into())
        }
        _ => (
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: this endpoint serves /metrics and /healthz\n".into(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn report(tenant: &str, events: u64, statuses: &[(u16, u64)], secs: f64) -> RunReport {
        RunReport {
            tenant: tenant.into(),
            items_seen: events,
            events_emitted: events,
            events_written: events,
            items_skipped: 0,
            items_partial: 0,
            requests: 0,
            http_sent: statuses.iter().map(|(_, n)| n).sum(),
            http_denied: 0,
            http_status: statuses.iter().copied().collect::<BTreeMap<_, _>>(),
            full_sync: true,
            warnings: vec![],
            unavailable: vec![],
            duration: Duration::from_secs_f64(secs),
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("plain-key_1.x"), "plain-key_1.x");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn exposition_counts_outcomes_kinds_statuses_and_durations() {
        let m = Arc::new(Metrics::new(8));
        m.add_tenant("idle");
        m.record_success("t\"1", &report("t\"1", 10, &[(200, 30), (429, 2)], 0.3));
        m.record_failure("b", FailureKind::Auth, Duration::from_millis(50));
        assert_eq!(
            m.record_failure("b", FailureKind::Auth, Duration::from_secs(4000)),
            2
        );
        m.record_cut("b");
        let text = m.render();
        for expected in [
            "connector_runs_total{tenant=\"t\\\"1\",outcome=\"success\"} 1",
            "connector_runs_total{tenant=\"idle\",outcome=\"success\"} 0",
            "connector_runs_total{tenant=\"b\",outcome=\"failure\"} 2",
            "connector_run_failures_total{tenant=\"b\",kind=\"auth\"} 2",
            "connector_runs_cut_total{tenant=\"b\"} 1",
            "connector_events_total{tenant=\"t\\\"1\"} 10",
            "connector_http_requests_total{tenant=\"t\\\"1\",status=\"429\"} 2",
            "connector_throttled_total{tenant=\"t\\\"1\"} 2",
            "connector_throttled_total{tenant=\"b\"} 0",
            "connector_run_duration_seconds_bucket{le=\"0.1\"} 1",
            "connector_run_duration_seconds_bucket{le=\"0.5\"} 2",
            "connector_run_duration_seconds_bucket{le=\"3600\"} 2",
            "connector_run_duration_seconds_bucket{le=\"+Inf\"} 3",
            "connector_run_duration_seconds_count 3",
            "connector_consecutive_failures{tenant=\"b\"} 2",
            "connector_pool_capacity 8",
            "connector_tenants 3",
            "# TYPE connector_run_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "missing {expected:?} in\n{text}"
            );
        }
        assert!(text.contains("connector_last_success_timestamp_seconds{tenant=\"t\\\"1\"} "));
        assert!(!text.contains("connector_last_success_timestamp_seconds{tenant=\"b\"}"));
        m.record_success("b", &report("b", 1, &[], 0.1));
        assert_eq!(m.tenant("b").map(|t| t.consecutive_failures), Some(0));
    }

    #[test]
    fn gauges_follow_their_guards_and_keep_the_peak() {
        let m = Arc::new(Metrics::new(2));
        let a = m.enter(Gauge::InFlight);
        let b = m.enter(Gauge::InFlight);
        let w = m.enter(Gauge::Waiting);
        assert_eq!((m.in_flight(), m.waiting()), (2, 1));
        drop(a);
        drop(w);
        assert_eq!((m.in_flight(), m.waiting(), m.peak_in_flight()), (1, 0, 2));
        drop(b);
        assert_eq!(m.in_flight(), 0);
        assert!(m.render().contains("\nconnector_runs_in_flight 0\n"));
    }

    #[test]
    fn operator_connection_cap_leaves_most_descriptors_to_runs() {
        assert_eq!(connection_cap(None), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(1_048_576)), 64);
        assert_eq!(connection_cap(Some(1024)), 64);
        assert_eq!(connection_cap(Some(256)), 32);
        assert_eq!(connection_cap(Some(16)), 2);
        assert_eq!(connection_cap(Some(3)), 1);
    }

    async fn read_all(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut text = Vec::new();
        let _ = stream.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    }

    #[tokio::test]
    async fn hostile_idle_and_slow_clients_cannot_hold_the_metrics_endpoint() {
        use tokio::io::AsyncWriteExt;
        use tokio::net::TcpStream;
        let endpoint = MetricsEndpoint::start_with_cap(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Metrics::new(1)),
            1,
        )
        .await
        .unwrap();
        let addr = endpoint.local_addr();
        // A slow client holds the only serving slot with half a request head.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A request over the cap gets a clean 503 (the answer, then the close).
        let mut over = TcpStream::connect(addr).await.unwrap();
        over.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(&mut over).await;
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
                && answer.ends_with("\r\n\r\ntoo many connections: try again later\n"),
            "{answer}"
        );
        // An idle client is closed without an answer once its first second of silence ends.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_all(&mut idle).await, "");
        // The slow client's headers never complete: it is closed after the header timeout
        // (hyper answers 408), and the slot serves the next request.
        let late = read_all(&mut slow).await;
        assert!(
            late.is_empty() || late.starts_with("HTTP/1.1 408"),
            "{late}"
        );
        let mut next = TcpStream::connect(addr).await.unwrap();
        next.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(&mut next).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        endpoint.shutdown().await;
    }
}
