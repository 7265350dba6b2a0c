//! The metric model: what a serving host counts, held in `prometheus-client` metrics that
//! one [`Registry`] owned by [`Metrics`] exposes (no global state: two servers in one
//! process, or two tests, have two registries).
//!
//! Each metric is a field of `Series`, registered once in `Series::register` with its
//! name and help text; the families (`Family<labels, metric>`) hold one series per label
//! set. A tenant's own series are also kept as handles in a `TenantSeries` (a clone of a
//! prometheus-client metric shares its value), created when the tenant is added, so that
//! recording a run is one map lookup and a few atomic additions, that a tenant shows its
//! zero counters before its first run, and that [`Metrics::tenant`] and
//! [`Metrics::tenants`] (the serve summary and the backoff read them) need no parsing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::LabelValueEncoder;
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::error::{ConnectorErrorKind, RunError};
use crate::{Progress, RunReport};

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

impl EncodeLabelValue for FailureKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// One tenant's counters, as [`Metrics::tenant`] reads them.
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

/// `tenant="…"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

/// `tenant="…",outcome="success|failure"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: String,
    outcome: &'static str,
}

/// `tenant="…",kind="…"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    tenant: String,
    kind: FailureKind,
}

/// `tenant="…",phase="…"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    tenant: String,
    phase: String,
}

/// `tenant="…",connector="…"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    tenant: String,
    connector: String,
}

/// `tenant="…",secret="…"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    tenant: String,
    secret: String,
}

/// `tenant="…",status="…"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    tenant: String,
    status: u16,
}

/// An integer gauge (`i64`).
type IntGauge = gauge::Gauge;
/// A floating-point gauge (seconds, Unix time).
type FloatGauge = gauge::Gauge<f64, AtomicU64>;
/// One series per tenant.
type PerTenant<M = Counter> = Family<TenantLabels, M>;

/// Every metric the host exposes. Adding one is a field here and one line in
/// `Series::register` (then a method of [`Metrics`] that updates it).
#[derive(Debug)]
struct Series {
    runs: Family<OutcomeLabels, Counter>,
    failures: Family<KindLabels, Counter>,
    cut: PerTenant,
    events: PerTenant,
    http_requests: Family<StatusLabels, Counter>,
    throttled: PerTenant,
    run_duration: Histogram,
    last_run_duration: PerTenant<FloatGauge>,
    last_success: PerTenant<FloatGauge>,
    consecutive_failures: PerTenant<IntGauge>,
    in_flight: IntGauge,
    waiting: IntGauge,
    capacity: IntGauge,
    tenants: IntGauge,
    leases_held: IntGauge,
    lease_takeovers: PerTenant,
    fenced_writes: Counter,
    walk_pages_done: Family<PhaseLabels, IntGauge>,
    walk_wait: PerTenant<FloatGauge>,
    guest_memory_peak: PerTenant<IntGauge>,
    tenant_info: Family<ConnectorLabels, IntGauge>,
    credential_expiry: Family<SecretLabels, FloatGauge>,
}

impl Series {
    /// Creates every metric and registers it in `r`, in exposition order. Counter names
    /// leave out `_total`: the encoder appends it (to the samples and to `# HELP`/`# TYPE`).
    /// Help texts leave out their final period: the registry appends it.
    fn register(r: &mut Registry) -> Series {
        Series {
            runs: add(r, "connector_runs", "Finished runs by tenant and outcome"),
            failures: add(
                r,
                "connector_run_failures",
                "Failed runs by tenant and kind (config, secret, auth, permission, upstream, host, trap, limit, timeout)",
            ),
            cut: add(
                r,
                "connector_runs_cut",
                "Runs dropped unfinished when the shutdown grace period ended (redelivered by their next runs)",
            ),
            events: add(r, "connector_events", "Events written by successful runs"),
            http_requests: add(
                r,
                "connector_http_requests",
                "HTTP responses received by successful runs, by status",
            ),
            throttled: add(
                r,
                "connector_throttled",
                "HTTP 429 (throttled) responses received by successful runs",
            ),
            run_duration: register(
                r,
                "connector_run_duration_seconds",
                "Wall time of finished runs, all tenants",
                Histogram::new(DURATION_BUCKETS),
            ),
            last_run_duration: add(
                r,
                "connector_last_run_duration_seconds",
                "Wall time of the tenant's last finished run",
            ),
            last_success: add(
                r,
                "connector_last_success_timestamp_seconds",
                "When the tenant's last successful run ended (Unix time)",
            ),
            consecutive_failures: add(
                r,
                "connector_consecutive_failures",
                "Failed runs of the tenant since its last success (drives the backoff)",
            ),
            in_flight: add(r, "connector_runs_in_flight", "Runs executing now"),
            waiting: add(
                r,
                "connector_runs_waiting",
                "Runs started and waiting for a pool slot",
            ),
            capacity: add(r, "connector_pool_capacity", "Most runs executing at once"),
            tenants: add(r, "connector_tenants", "Tenants registered"),
            leases_held: add(
                r,
                "connector_leases_held",
                "Tenant leases this host holds now (fleet mode)",
            ),
            lease_takeovers: add(
                r,
                "connector_lease_takeovers",
                "Leases this host took over from a host whose lease expired unreleased",
            ),
            fenced_writes: add(
                r,
                "connector_fenced_writes",
                "Checkpoint writes refused because their lease's fencing token was stale",
            ),
            walk_pages_done: add(
                r,
                "connector_walk_pages_done",
                "Pages of its phase the tenant's walk has committed, as its run under way or its last finished run reported (one series per tenant: the last phase)",
            ),
            walk_wait: add(
                r,
                "connector_walk_wait_seconds",
                "Least time the provider's limits still impose on the tenant's walk, as its run under way or its last finished run reported (absent when unknown)",
            ),
            guest_memory_peak: add(
                r,
                "connector_guest_memory_peak_bytes",
                "Most linear memory the connector held at once in the tenant's last successful run",
            ),
            // One info series per tenant rather than a `connector` label on every per-tenant
            // series: a tenant's connector does not change while it is served, so the label
            // would only repeat it on each of its ~15 series; a query joins on `tenant`.
            tenant_info: add(
                r,
                "connector_tenant_info",
                "Always 1: the connector (its describe name) the tenant runs",
            ),
            credential_expiry: add(
                r,
                "connector_credential_expiry_timestamp_seconds",
                "When the tenant's credential stops working (Unix time), as its tenant file's expires says",
            ),
        }
    }
}

/// Registers a new default metric under `name` and returns a handle to it.
fn add<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    register(r, name, help, M::default())
}

/// Registers `metric` under `name` and returns a handle to it.
fn register<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

/// One tenant's series: handles to its members of the `Series` families.
#[derive(Debug)]
struct TenantSeries {
    successes: Counter,
    failed: Counter,
    cut: Counter,
    events: Counter,
    throttled: Counter,
    consecutive_failures: IntGauge,
    /// Created at the first failure of each kind.
    failures: BTreeMap<FailureKind, Counter>,
    /// Created at the first response of each status.
    http_status: BTreeMap<u16, Counter>,
    /// Created at the first finished run.
    last_duration: Option<FloatGauge>,
    /// Created at the first success.
    last_success: Option<FloatGauge>,
    /// The phase of the `connector_walk_pages_done` series shown (one at a time).
    walk_phase: Option<String>,
}

impl TenantSeries {
    /// Creates the tenant's always-present series (at zero) in `s`.
    fn new(s: &Series, tenant: &str) -> TenantSeries {
        let t = TenantLabels {
            tenant: tenant.to_string(),
        };
        let outcome = |outcome| OutcomeLabels {
            tenant: tenant.to_string(),
            outcome,
        };
        TenantSeries {
            successes: s.runs.get_or_create_owned(&outcome("success")),
            failed: s.runs.get_or_create_owned(&outcome("failure")),
            cut: s.cut.get_or_create_owned(&t),
            events: s.events.get_or_create_owned(&t),
            throttled: s.throttled.get_or_create_owned(&t),
            consecutive_failures: s.consecutive_failures.get_or_create_owned(&t),
            failures: BTreeMap::new(),
            http_status: BTreeMap::new(),
            last_duration: None,
            last_success: None,
            walk_phase: None,
        }
    }

    /// The tenant's `connector_last_run_duration_seconds`, created at its first run.
    fn last_duration(&mut self, s: &Series, tenant: &str) -> &FloatGauge {
        self.last_duration
            .get_or_insert_with(|| s.last_run_duration.get_or_create_owned(&labels(tenant)))
    }

    fn counters(&self) -> TenantCounters {
        TenantCounters {
            successes: self.successes.get(),
            failures: self.failures.iter().map(|(k, c)| (*k, c.get())).collect(),
            cut: self.cut.get(),
            events: self.events.get(),
            http_status: self
                .http_status
                .iter()
                .map(|(s, c)| (*s, c.get()))
                .collect(),
            consecutive_failures: u32::try_from(self.consecutive_failures.get()).unwrap_or(0),
            last_duration: self
                .last_duration
                .as_ref()
                .map(|g| Duration::from_secs_f64(g.get())),
            last_success_unix: self.last_success.as_ref().map(|g| g.get()),
        }
    }
}

/// The counters and gauges of a serving host, and its health state.
///
/// Cheap to update from many tasks: gauges and counters are atomics; the map of tenants
/// sits behind one short lock taken once per finished run.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    series: Series,
    tenants: Mutex<BTreeMap<String, TenantSeries>>,
    peak_in_flight: AtomicU64,
    serving: AtomicBool,
    /// Where a render reads the progress of the runs under way (see
    /// [`Metrics::set_live_progress`]).
    live_progress: Mutex<Option<LiveSource>>,
}

/// A [`LiveProgress`], shown by `Debug` as its name only.
struct LiveSource(LiveProgress);

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveProgress")
    }
}

/// The latest progress of each run under way, by tenant ([`crate::Runtime::live_progress`]).
pub type LiveProgress = Box<dyn Fn() -> Vec<(String, Progress)> + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(0)
    }
}

impl Metrics {
    /// Empty metrics for a pool of `capacity` concurrent runs; healthy (serving).
    pub fn new(capacity: usize) -> Metrics {
        let mut registry = Registry::default();
        let series = Series::register(&mut registry);
        series
            .capacity
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        Metrics {
            registry,
            series,
            tenants: Mutex::new(BTreeMap::new()),
            peak_in_flight: AtomicU64::new(0),
            serving: AtomicBool::new(true),
            live_progress: Mutex::new(None),
        }
    }

    /// Makes every render show the progress of the runs under way first (a walk of a large
    /// tenant runs for hours): `serve` passes its runtime's [`crate::Runtime::live_progress`].
    pub fn set_live_progress(&self, source: LiveProgress) {
        *self
            .live_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(LiveSource(source));
    }

    /// Runs `f` on the tenant's series, creating them (and counting the tenant) first if
    /// needed.
    fn with_tenant<R>(&self, tenant: &str, f: impl FnOnce(&Series, &mut TenantSeries) -> R) -> R {
        // Counters stay meaningful even if a panicking thread held the lock.
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let series = tenants
            .entry(tenant.to_string())
            .or_insert_with(|| TenantSeries::new(&self.series, tenant));
        let result = f(&self.series, series);
        let count = i64::try_from(tenants.len()).unwrap_or(i64::MAX);
        self.series.tenants.set(count);
        result
    }

    /// Starts reporting a tenant (all its counters at zero).
    pub fn add_tenant(&self, tenant: &str) {
        self.with_tenant(tenant, |_, _| ());
    }

    /// Says which connector (its `describe` name) the tenant runs:
    /// `connector_tenant_info{tenant, connector} 1`.
    pub fn set_connector(&self, tenant: &str, connector: &str) {
        self.series
            .tenant_info
            .get_or_create(&ConnectorLabels {
                tenant: tenant.to_string(),
                connector: connector.to_string(),
            })
            .set(1);
    }

    /// Says when a tenant's credential (`[secrets.NAME]`) stops working:
    /// `connector_credential_expiry_timestamp_seconds{tenant, secret}`.
    pub fn set_credential_expiry(&self, tenant: &str, secret: &str, at: SystemTime) {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.series
            .credential_expiry
            .get_or_create(&SecretLabels {
                tenant: tenant.to_string(),
                secret: secret.to_string(),
            })
            .set(secs);
    }

    /// Records a successful run: its events, HTTP statuses, throttles and duration.
    pub fn record_success(&self, tenant: &str, report: &RunReport) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.series
            .run_duration
            .observe(report.duration.as_secs_f64());
        self.with_tenant(tenant, |s, t| {
            t.successes.inc();
            t.events.inc_by(report.events_written);
            for (status, n) in &report.http_status {
                t.http_status
                    .entry(*status)
                    .or_insert_with(|| {
                        s.http_requests.get_or_create_owned(&StatusLabels {
                            tenant: tenant.to_string(),
                            status: *status,
                        })
                    })
                    .inc_by(*n);
            }
            if let Some(n) = report.http_status.get(&429) {
                t.throttled.inc_by(*n);
            }
            t.consecutive_failures.set(0);
            t.last_duration(s, tenant)
                .set(report.duration.as_secs_f64());
            t.last_success
                .get_or_insert_with(|| s.last_success.get_or_create_owned(&labels(tenant)))
                .set(now);
            s.guest_memory_peak
                .get_or_create(&labels(tenant))
                .set(i64::try_from(report.peak_guest_memory_bytes).unwrap_or(i64::MAX));
            if let Some(p) = &report.progress {
                Self::show_progress(s, t, tenant, p);
            }
        })
    }

    /// Records the progress a failed run last reported ([`RunError::progress`]): what its
    /// checkpoint kept.
    pub fn record_progress(&self, tenant: &str, progress: &Progress) {
        self.with_tenant(tenant, |s, t| Self::show_progress(s, t, tenant, progress))
    }

    /// Sets the tenant's walk gauges to `p`: one `connector_walk_pages_done` series, of the
    /// last phase (the previous phase's series is removed, so phases do not pile up), and
    /// `connector_walk_wait_seconds` when the guest knows the wait.
    fn show_progress(s: &Series, t: &mut TenantSeries, tenant: &str, p: &Progress) {
        let phase = |phase: &str| PhaseLabels {
            tenant: tenant.to_string(),
            phase: phase.to_string(),
        };
        if let Some(old) = t.walk_phase.take().filter(|old| *old != p.phase) {
            s.walk_pages_done.remove(&phase(&old));
        }
        s.walk_pages_done
            .get_or_create(&phase(&p.phase))
            .set(i64::try_from(p.pages_done).unwrap_or(i64::MAX));
        t.walk_phase = Some(p.phase.clone());
        match p.wait_ms {
            Some(ms) => {
                s.walk_wait
                    .get_or_create(&labels(tenant))
                    .set(ms as f64 / 1000.0);
            }
            None => {
                s.walk_wait.remove(&labels(tenant));
            }
        }
    }

    /// Records a failed run; returns the tenant's consecutive failures, this one included.
    pub fn record_failure(&self, tenant: &str, kind: FailureKind, duration: Duration) -> u32 {
        self.series.run_duration.observe(duration.as_secs_f64());
        self.with_tenant(tenant, |s, t| {
            t.failed.inc();
            t.failures
                .entry(kind)
                .or_insert_with(|| {
                    s.failures.get_or_create_owned(&KindLabels {
                        tenant: tenant.to_string(),
                        kind,
                    })
                })
                .inc();
            t.last_duration(s, tenant).set(duration.as_secs_f64());
            let failures = t.consecutive_failures.inc().saturating_add(1);
            u32::try_from(failures).unwrap_or(u32::MAX)
        })
    }

    /// Sets how many tenant leases this host holds (fleet mode).
    pub fn set_leases_held(&self, n: usize) {
        self.series.leases_held.set(n as i64);
    }

    /// Records a lease taken over from a host whose lease expired unreleased.
    pub fn record_lease_takeover(&self, tenant: &str) {
        self.series
            .lease_takeovers
            .get_or_create(&labels(tenant))
            .inc();
    }

    /// Sets the fenced-writes counter to the fleet's count (it only grows).
    pub fn set_fenced_writes(&self, total: u64) {
        let counter = &self.series.fenced_writes;
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// Records a run dropped unfinished at shutdown (neither success nor failure).
    pub fn record_cut(&self, tenant: &str) {
        self.with_tenant(tenant, |_, t| t.cut.inc());
    }

    /// A copy of one tenant's counters.
    pub fn tenant(&self, tenant: &str) -> Option<TenantCounters> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.get(tenant).map(TenantSeries::counters)
    }

    /// A copy of every tenant's counters, by key.
    pub fn tenants(&self) -> BTreeMap<String, TenantCounters> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants
            .iter()
            .map(|(key, t)| (key.clone(), t.counters()))
            .collect()
    }

    /// Raises `gauge` by one until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, gauge: Gauge) -> GaugeGuard {
        match gauge {
            Gauge::InFlight => {
                let now = self.series.in_flight.inc().saturating_add(1);
                self.peak_in_flight
                    .fetch_max(u64::try_from(now).unwrap_or(0), Ordering::AcqRel);
            }
            Gauge::Waiting => {
                self.series.waiting.inc();
            }
        }
        GaugeGuard {
            metrics: self.clone(),
            gauge,
        }
    }

    /// Runs executing now.
    pub fn in_flight(&self) -> u64 {
        u64::try_from(self.series.in_flight.get()).unwrap_or(0)
    }

    /// Runs waiting for a pool slot now.
    pub fn waiting(&self) -> u64 {
        u64::try_from(self.series.waiting.get()).unwrap_or(0)
    }

    /// The most runs that executed at once.
    pub fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight.load(Ordering::Acquire)
    }

    /// Pool capacity (most runs at once).
    pub fn capacity(&self) -> u64 {
        u64::try_from(self.series.capacity.get()).unwrap_or(0)
    }

    /// Whether `/healthz` answers 200 (serving) or 503 (shutting down or stopped).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Sets the health state `/healthz` reports.
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// The Prometheus text exposition (format 0.0.4,
    /// [`prometheus_text::CONTENT_TYPE`]) of everything above.
    pub fn render(&self) -> String {
        let live = self
            .live_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|source| (source.0)())
            .unwrap_or_default();
        for (tenant, progress) in &live {
            self.record_progress(tenant, progress);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            // Writing to a String does not fail; an encoder bug would show here.
            tracing::error!("cannot encode the metrics: {e}");
        }
        out
    }
}

fn labels(tenant: &str) -> TenantLabels {
    TenantLabels {
        tenant: tenant.to_string(),
    }
}

/// Holds a pool gauge up by one; dropping it lowers the gauge again.
#[derive(Debug)]
pub struct GaugeGuard {
    metrics: Arc<Metrics>,
    gauge: Gauge,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        let gauge = match self.gauge {
            Gauge::InFlight => &self.metrics.series.in_flight,
            Gauge::Waiting => &self.metrics.series.waiting,
        };
        gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            receipts: vec![],
            duration: Duration::from_secs_f64(secs),
            peak_guest_memory_bytes: 0,
            progress: None,
            inventory: Default::default(),
        }
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
    fn label_values_are_escaped_backslash_quote_and_newline() {
        let m = Metrics::new(1);
        m.add_tenant("a\"b\\c\nd");
        let text = m.render();
        assert!(
            text.lines()
                .any(|l| l == "connector_events_total{tenant=\"a\\\"b\\\\c\\nd\"} 0"),
            "{text}"
        );
    }

    /// Every metric the README and `host/tests/serve.rs` name, with its type and help text
    /// as before the move to prometheus-client (one `# HELP` and one `# TYPE` line each).
    #[test]
    fn every_metric_keeps_its_name_type_and_help() {
        let m = Metrics::new(1);
        let mut r = report("t", 1, &[(200, 1)], 1.0);
        r.progress = Some(Progress {
            phase: "users".into(),
            wait_ms: Some(1500),
            ..Progress::default()
        });
        m.record_success("t", &r);
        m.record_failure("t", FailureKind::Trap, Duration::from_secs(1));
        m.set_leases_held(2);
        m.record_lease_takeover("t");
        m.set_fenced_writes(3);
        m.set_fenced_writes(2);
        let text = m.render();
        for (name, kind, help) in [
            ("connector_runs_total", "counter", "Finished runs by tenant and outcome."),
            ("connector_run_failures_total", "counter", "Failed runs by tenant and kind (config, secret, auth, permission, upstream, host, trap, limit, timeout)."),
            ("connector_runs_cut_total", "counter", "Runs dropped unfinished when the shutdown grace period ended (redelivered by their next runs)."),
            ("connector_events_total", "counter", "Events written by successful runs."),
            ("connector_http_requests_total", "counter", "HTTP responses received by successful runs, by status."),
            ("connector_throttled_total", "counter", "HTTP 429 (throttled) responses received by successful runs."),
            ("connector_run_duration_seconds", "histogram", "Wall time of finished runs, all tenants."),
            ("connector_last_run_duration_seconds", "gauge", "Wall time of the tenant's last finished run."),
            ("connector_last_success_timestamp_seconds", "gauge", "When the tenant's last successful run ended (Unix time)."),
            ("connector_consecutive_failures", "gauge", "Failed runs of the tenant since its last success (drives the backoff)."),
            ("connector_runs_in_flight", "gauge", "Runs executing now."),
            ("connector_runs_waiting", "gauge", "Runs started and waiting for a pool slot."),
            ("connector_pool_capacity", "gauge", "Most runs executing at once."),
            ("connector_tenants", "gauge", "Tenants registered."),
            ("connector_leases_held", "gauge", "Tenant leases this host holds now (fleet mode)."),
            ("connector_lease_takeovers_total", "counter", "Leases this host took over from a host whose lease expired unreleased."),
            ("connector_fenced_writes_total", "counter", "Checkpoint writes refused because their lease's fencing token was stale."),
            ("connector_walk_pages_done", "gauge", "Pages of its phase the tenant's walk has committed, as its run under way or its last finished run reported (one series per tenant: the last phase)."),
            ("connector_walk_wait_seconds", "gauge", "Least time the provider's limits still impose on the tenant's walk, as its run under way or its last finished run reported (absent when unknown)."),
            ("connector_guest_memory_peak_bytes", "gauge", "Most linear memory the connector held at once in the tenant's last successful run."),
        ] {
            let help_line = format!("# HELP {name} {help}");
            let type_line = format!("# TYPE {name} {kind}");
            assert_eq!(text.lines().filter(|l| *l == help_line).count(), 1, "{help_line}\n{text}");
            assert_eq!(text.lines().filter(|l| *l == type_line).count(), 1, "{type_line}\n{text}");
        }
        // Per-tenant gauges: the last run's duration and when it last succeeded.
        assert!(
            text.contains("\nconnector_last_run_duration_seconds{tenant=\"t\"} 1.0\n"),
            "{text}"
        );
        assert_eq!(text.matches("# HELP ").count(), 20, "{text}");
        // The fleet's figures: the fenced-writes counter never goes back.
        for line in [
            "connector_leases_held 2",
            "connector_lease_takeovers_total{tenant=\"t\"} 1",
            "connector_fenced_writes_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }

    #[test]
    fn counters_read_back_as_recorded() {
        let m = Metrics::new(1);
        m.record_success("a", &report("a", 7, &[(200, 3), (429, 1)], 0.5));
        m.record_failure("a", FailureKind::Upstream, Duration::from_secs(2));
        m.record_failure("a", FailureKind::Auth, Duration::from_secs(3));
        m.record_cut("a");
        let a = m.tenant("a").unwrap();
        assert_eq!(
            (
                a.successes,
                a.failed(),
                a.cut,
                a.events,
                a.consecutive_failures
            ),
            (1, 2, 1, 7, 2)
        );
        assert_eq!(
            a.failures,
            BTreeMap::from([(FailureKind::Auth, 1), (FailureKind::Upstream, 1)])
        );
        assert_eq!(a.http_status, BTreeMap::from([(200, 3), (429, 1)]));
        assert_eq!(a.last_duration, Some(Duration::from_secs(3)));
        assert!(a.last_success_unix.is_some_and(|t| t > 1.7e9));
        assert_eq!(m.tenant("nobody"), None);
        assert_eq!(m.tenants().keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn walk_progress_and_guest_memory_gauges_show_the_last_run() {
        let m = Metrics::new(1);
        let mut r = report("a", 1, &[], 1.0);
        r.peak_guest_memory_bytes = 12_345_678;
        r.progress = Some(Progress {
            phase: "groups".into(),
            pages_done: 7,
            wait_ms: Some(2_500),
            ..Progress::default()
        });
        m.record_success("a", &r);
        let text = m.render();
        for line in [
            "connector_walk_pages_done{tenant=\"a\",phase=\"groups\"} 7",
            "connector_walk_wait_seconds{tenant=\"a\"} 2.5",
            "connector_guest_memory_peak_bytes{tenant=\"a\"} 12345678",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // A failed run's progress (what its checkpoint kept): a new phase replaces the old
        // series, and an unknown wait removes the wait gauge.
        m.record_progress(
            "a",
            &Progress {
                phase: "users".into(),
                pages_done: 3,
                ..Progress::default()
            },
        );
        let text = m.render();
        assert!(
            text.lines()
                .any(|l| l == "connector_walk_pages_done{tenant=\"a\",phase=\"users\"} 3"),
            "{text}"
        );
        assert!(!text.contains("phase=\"groups\""), "{text}");
        assert!(!text.contains("connector_walk_wait_seconds{"), "{text}");
        assert!(
            text.contains("connector_guest_memory_peak_bytes{tenant=\"a\"} 12345678"),
            "the last success's peak stays: {text}"
        );
    }

    #[test]
    fn a_render_shows_the_progress_of_runs_under_way() {
        let m = Metrics::new(1);
        let pages = Arc::new(AtomicU64::new(1));
        let source = pages.clone();
        m.set_live_progress(Box::new(move || {
            vec![(
                "a".to_string(),
                Progress {
                    phase: "users".into(),
                    pages_done: source.load(Ordering::Relaxed),
                    ..Progress::default()
                },
            )]
        }));
        let line =
            |n: u64| format!("connector_walk_pages_done{{tenant=\"a\",phase=\"users\"}} {n}");
        assert!(m.render().lines().any(|l| l == line(1)));
        pages.store(40, Ordering::Relaxed);
        let text = m.render();
        assert!(text.lines().any(|l| l == line(40)), "{text}");
    }

    #[test]
    fn gauges_follow_their_guards_and_keep_the_peak() {
        let m = Arc::new(Metrics::new(2));
        let a = m.enter(Gauge::InFlight);
        let b = m.enter(Gauge::InFlight);
        let w = m.enter(Gauge::Waiting);
        assert_eq!((m.in_flight(), m.waiting()), (2, 1));
        assert!(m.render().contains("\nconnector_runs_in_flight 2\n"));
        drop(a);
        drop(w);
        assert_eq!((m.in_flight(), m.waiting(), m.peak_in_flight()), (1, 0, 2));
        drop(b);
        assert_eq!(m.in_flight(), 0);
        assert!(m.render().contains("\nconnector_runs_in_flight 0\n"));
    }
}
