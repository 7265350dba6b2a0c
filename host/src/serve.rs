//! Many tenants, one process: `connector-host serve` and the library API under it.
//!
//! A platform syncs thousands of customers' directories on a schedule. One [`Runtime`]
//! (one engine, the component compiled once) serves them all; this module decides *when*
//! each tenant runs and *how many* run at once, and makes that visible:
//!
//! - every tenant runs on its own schedule: a first run after a random `0..jitter`, then
//!   every `interval` (+ jitter); after a failure, `backoff_initial * 2^(failures-1)` capped
//!   at `backoff_max` (+ jitter) — see [`next_delay`];
//! - never two runs of one tenant at once, whoever starts them (schedule or
//!   [`Server::run_now`]): a second start is refused, not queued;
//! - at most `max_concurrent_runs` runs execute at once (a semaphore); the others wait in
//!   line and are counted as waiting;
//! - on shutdown (SIGTERM/SIGINT for the CLI) nothing new starts, runs in flight get the
//!   grace period to end, and what is still running then is cut by dropping its future. A
//!   cut cannot lose events or half-move a cursor: every cursor commit (after each page in
//!   `delta` mode, at the end in `created` mode) is a synchronous host call (the sink is made
//!   durable, then SQLite commits) that a dropped future interrupts only before or after,
//!   never halfway. A cut run leaves its checkpoint at its last commit, and the next run
//!   resumes there, redelivering at most the page in flight;
//! - counters and gauges per tenant ([`crate::metrics`]), logs carrying the tenant key and
//!   never a secret value.
//!
//! Nothing is reloaded: the tenants file is read once at start. (A tenant's secret is read
//! again at each of its runs, as `connector-host run` does, so a rotated secret is picked up.)
//!
//! # The tenants file (`tenants.toml`)
//!
//! ```toml
//! include = ["tenants.d/*.toml"]  # top-level key: it must come before the first [section].
//!                                 # Tenant files in the tenant.toml format; a pattern is a
//!                                 # path whose last part may hold one '*'; it must match a file.
//!
//! [serve]
//! listen = "127.0.0.1:9464"       # /metrics and /healthz; loopback by default
//! max_concurrent_runs = 64        # runs executing at once across tenants; others wait
//! shutdown_grace_secs = 30        # in-flight runs get this long after SIGTERM/SIGINT
//! once = false                    # true: run every tenant once, then exit (0 if all succeeded)
//!
//! [schedule]                      # every tenant's schedule
//! interval_secs = 3600
//! jitter_secs = 300               # the first and every next run are delayed by a random 0..jitter
//! backoff_initial_secs = 30       # after n failures in a row: initial * 2^(n-1), capped
//! backoff_max_secs = 3600
//!
//! [simulation]                    # optional: N simulated tenants, one in-process Graph emulator
//! tenants = 1000                  # keys sim-0000, sim-0001, …
//! users_per_tenant = 100
//! seed = 42
//! checkpoint_db = "sim/checkpoints.sqlite"   # one SQLite store shared by all simulated tenants
//! events_dir = "sim/events"                  # <events_dir>/<key>.jsonl, opened for each run
//! ```
//!
//! Every key is optional except `[simulation] tenants`; there must be at least one tenant.
//! Unknown keys are errors; relative paths are resolved against the tenants file's folder;
//! tenant keys must be unique, and so must JSONL event files; an included tenant file may not
//! name its own `component` (one component per `serve` process). Errors are one line naming
//! the file, the line and the key.

mod file;
mod simulation;

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::metrics::{FailureKind, Gauge, GaugeGuard, Metrics, MetricsEndpoint};
use crate::{RunError, RunOutcome, Runtime, TenantConfig, TenantRun};

pub use file::{ServeFile, SimulationSpec};
pub use simulation::{simulated_keys, Simulation};

/// When a tenant runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Time from the end of a successful run to the next run.
    pub interval: Duration,
    /// Up to this much random delay is added to the first run and to every next run, so
    /// tenants (and their retries after a shared outage) spread out.
    pub jitter: Duration,
    /// Delay after the first failure in a row; doubled for each further failure.
    pub backoff_initial: Duration,
    /// The longest backoff delay.
    pub backoff_max: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval: Duration::from_secs(3600),
            jitter: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// The delay before a tenant's next run, after a run that left it with
/// `consecutive_failures` failures in a row (0: the last run succeeded).
///
/// `interval` after a success; `backoff_initial * 2^(consecutive_failures - 1)`, at most
/// `backoff_max`, after a failure; plus `jitter * jitter_sample` either way.
/// `jitter_sample` is a random number in `0.0..1.0` (clamped; not finite counts as 0).
pub fn next_delay(schedule: &Schedule, consecutive_failures: u32, jitter_sample: f64) -> Duration {
    let base = match consecutive_failures {
        0 => schedule.interval,
        n => {
            let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
            schedule
                .backoff_initial
                .saturating_mul(factor)
                .min(schedule.backoff_max)
        }
    };
    base.saturating_add(jitter(schedule, jitter_sample))
}

/// The delay before a tenant's first run: `jitter * jitter_sample`.
pub fn first_delay(schedule: &Schedule, jitter_sample: f64) -> Duration {
    jitter(schedule, jitter_sample)
}

fn jitter(schedule: &Schedule, sample: f64) -> Duration {
    let sample = if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(schedule.jitter.as_secs_f64() * sample).unwrap_or(Duration::ZERO)
}

/// How a [`Server`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Most runs executing at once, across tenants; further runs wait for a slot.
    pub max_concurrent_runs: usize,
    /// After shutdown is requested, how long runs in flight may take to end before they are cut.
    pub shutdown_grace: Duration,
    /// Run every tenant once, right away (no jitter), then return from [`Server::serve`].
    pub once: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_concurrent_runs: 64,
            shutdown_grace: Duration::from_secs(30),
            once: false,
        }
    }
}

/// Builds a fresh [`TenantRun`] for each run of a tenant (loading its secret, opening its
/// sink). An error fails that run with the error's kind, like a failed run. It is called on a
/// blocking thread (`spawn_blocking`), so it may do blocking file I/O.
pub type MakeRun = Box<dyn Fn() -> Result<TenantRun, RunError> + Send + Sync>;

/// A tenant as a [`Server`] knows it.
pub struct TenantEntry {
    /// The tenant key: checkpoint namespace, log and metric label. Every run built by
    /// `make_run` must carry this key.
    pub key: String,
    /// Builds each run.
    pub make_run: MakeRun,
    /// When it runs.
    pub schedule: Schedule,
}

impl TenantEntry {
    /// A tenant from a tenant file, as `connector-host run` would run it: the file's secrets,
    /// checkpoint store and sink, opened anew for each run.
    pub fn from_config(config: TenantConfig, schedule: Schedule) -> TenantEntry {
        TenantEntry {
            key: config.key.clone(),
            make_run: Box::new(move || TenantRun::from_config(&config)),
            schedule,
        }
    }
}

impl std::fmt::Debug for TenantEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantEntry")
            .field("key", &self.key)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

/// Why a run was not started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No tenant is registered under this key.
    #[error("tenant '{tenant}': not registered with this server; register it first")]
    UnknownTenant {
        /// The key asked for.
        tenant: String,
    },
    /// A run of this tenant is already in flight (or waiting for a slot).
    #[error(
        "tenant '{tenant}': a run is already in progress; wait for it to finish and start again"
    )]
    AlreadyRunning {
        /// Tenant key.
        tenant: String,
    },
    /// The server is shutting down (or has stopped) and starts no runs.
    #[error("tenant '{tenant}': the server is shutting down and starts no new runs")]
    ShuttingDown {
        /// Tenant key.
        tenant: String,
    },
}

/// Why a tenant could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The key is already taken.
    #[error("tenant '{0}': registered twice; every tenant needs its own key")]
    Duplicate(String),
    /// The key is not usable as a checkpoint namespace and label.
    #[error("tenant '{0}': the key must be 1-128 letters, digits, '-', '_' or '.'")]
    InvalidKey(String),
}

/// What the scheduler knows about one tenant now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantStatus {
    /// A run is in flight or waiting for a slot.
    pub running: bool,
    /// Failed runs since the last success.
    pub consecutive_failures: u32,
    /// The delay the scheduler chose before the tenant's next run, while it waits for it
    /// (None while a run is due or in flight, or when nothing is scheduled).
    pub planned_delay: Option<Duration>,
}

/// What happened while a server served, for the exit summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Tenants registered.
    pub tenants: usize,
    /// Tenants with at least one successful run.
    pub tenants_succeeded: usize,
    /// Runs finished (successes + failures).
    pub runs: u64,
    /// Successful runs.
    pub successes: u64,
    /// Failed runs by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Runs cut when the grace period ended.
    pub cut: u64,
    /// Events written by successful runs.
    pub events: u64,
    /// Time since [`Server::serve`] started (or since the server was created).
    pub wall_time: Duration,
    /// The most runs that executed at once.
    pub peak_in_flight: u64,
    /// Pool capacity.
    pub capacity: usize,
    /// The server ran in once mode.
    pub once: bool,
}

impl Summary {
    /// Failed runs of every kind.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Every tenant ran successfully and no run failed or was cut.
    pub fn all_succeeded(&self) -> bool {
        self.tenants_succeeded == self.tenants && self.failed() == 0 && self.cut == 0
    }

    /// The CLI's exit code: in once mode 0 when every tenant succeeded, else 1; when serving
    /// until a signal, 0 (failed runs are the metrics' business, and a supervisor must not
    /// restart a host it asked to stop).
    pub fn exit_code(&self) -> i32 {
        if !self.once || self.all_succeeded() {
            0
        } else {
            1
        }
    }
}

impl std::fmt::Display for Summary {
    /// One line per figure, each ending in a newline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "serve summary")?;
        writeln!(f, "  tenants                 {}", self.tenants)?;
        writeln!(f, "  runs                    {}", self.runs)?;
        writeln!(f, "  successes               {}", self.successes)?;
        writeln!(f, "  failures                {}", self.failed())?;
        for (kind, n) in &self.failures {
            let label = format!("failures ({kind})");
            writeln!(f, "  {label:<24}{n}")?;
        }
        if self.cut > 0 {
            writeln!(
                f,
                "  cut at shutdown         {} (redelivered by their next runs)",
                self.cut
            )?;
        }
        if self.once && self.tenants_succeeded < self.tenants {
            writeln!(
                f,
                "  tenants not succeeded   {}",
                self.tenants - self.tenants_succeeded
            )?;
        }
        writeln!(f, "  events                  {}", self.events)?;
        writeln!(
            f,
            "  wall time               {:.2} s",
            self.wall_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "  peak in flight          {} of {}",
            self.peak_in_flight, self.capacity
        )
    }
}

/// Runs many tenants with one [`Runtime`]: registration, schedules, the concurrency pool,
/// run-now, metrics, graceful shutdown. Cloning gives another handle to the same server.
///
/// ```no_run
/// # async fn demo(runtime: std::sync::Arc<connector_host::Runtime>, cfg: connector_host::TenantConfig) {
/// use connector_host::serve::{Schedule, ServeOptions, Server, TenantEntry};
/// let server = Server::new(runtime, ServeOptions::default());
/// server.register(TenantEntry::from_config(cfg, Schedule::default())).unwrap();
/// let report = server.run_now("contoso").await; // Err(Refused) or Ok(Ok(RunReport) | Err(RunError))
/// let summary = server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await;
/// # let _ = (report, summary);
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Arc<Runtime>,
    options: ServeOptions,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    pool: Semaphore,
    metrics: Arc<Metrics>,
    /// true once shutdown began: sleeping and waiting loops end, nothing new starts.
    stopping: watch::Sender<bool>,
    /// While `serve` runs: where `register` sends new tenants to be scheduled.
    scheduler: Mutex<Option<mpsc::UnboundedSender<Arc<Slot>>>>,
    created: Instant,
    serving_since: Mutex<Option<Instant>>,
}

struct Slot {
    key: String,
    /// Shared so each run can call it on a blocking thread.
    make_run: Arc<dyn Fn() -> Result<TenantRun, RunError> + Send + Sync>,
    schedule: Schedule,
    running: AtomicBool,
    planned_delay: Mutex<Option<Duration>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// A server with no tenants yet, running `runtime`'s component.
    pub fn new(runtime: Arc<Runtime>, options: ServeOptions) -> Server {
        let capacity = options.max_concurrent_runs.clamp(1, Semaphore::MAX_PERMITS);
        Server {
            inner: Arc::new(Inner {
                runtime,
                pool: Semaphore::new(capacity),
                metrics: Arc::new(Metrics::new(capacity)),
                options: ServeOptions {
                    max_concurrent_runs: capacity,
                    ..options
                },
                slots: RwLock::new(BTreeMap::new()),
                stopping: watch::Sender::new(false),
                scheduler: Mutex::new(None),
                created: Instant::now(),
                serving_since: Mutex::new(None),
            }),
        }
    }

    /// Adds a tenant. While [`Server::serve`] runs, its schedule starts at once.
    pub fn register(&self, entry: TenantEntry) -> Result<(), RegisterError> {
        let key = entry.key;
        if key.is_empty()
            || key.len() > 128
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(RegisterError::InvalidKey(key));
        }
        let slot = Arc::new(Slot {
            key: key.clone(),
            make_run: Arc::from(entry.make_run),
            schedule: entry.schedule,
            running: AtomicBool::new(false),
            planned_delay: Mutex::new(None),
        });
        {
            let mut slots = self
                .inner
                .slots
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if slots.contains_key(&key) {
                return Err(RegisterError::Duplicate(key));
            }
            slots.insert(key.clone(), slot.clone());
        }
        self.inner.metrics.add_tenant(&key);
        if let Some(scheduler) = lock(&self.inner.scheduler).as_ref() {
            let _ = scheduler.send(slot);
        }
        Ok(())
    }

    /// Runs a tenant now, outside its schedule, and returns its outcome when it ends. Waits for
    /// a pool slot like any run. Refused when the tenant is unknown, already running (a
    /// scheduled run included), or the server is shutting down.
    pub async fn run_now(&self, key: &str) -> Result<RunOutcome, Refused> {
        let slot = self.inner.slot(key).ok_or_else(|| Refused::UnknownTenant {
            tenant: key.to_string(),
        })?;
        self.inner.execute(&slot).await
    }

    /// Registered tenant keys, sorted.
    pub fn tenants(&self) -> Vec<String> {
        self.inner
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// What the scheduler knows about a tenant now.
    pub fn status(&self, key: &str) -> Option<TenantStatus> {
        let slot = self.inner.slot(key)?;
        let consecutive_failures = self
            .inner
            .metrics
            .tenant(key)
            .map(|t| t.consecutive_failures)
            .unwrap_or(0);
        let planned_delay = *lock(&slot.planned_delay);
        Some(TenantStatus {
            running: slot.running.load(Ordering::Acquire),
            consecutive_failures,
            planned_delay,
        })
    }

    /// The server's metrics (also served by [`Server::listen`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// The options in force (`max_concurrent_runs` clamped to at least 1).
    pub fn options(&self) -> &ServeOptions {
        &self.inner.options
    }

    /// Serves `/metrics` and `/healthz` for this server on `addr` (port 0: any free port).
    pub async fn listen(&self, addr: SocketAddr) -> std::io::Result<MetricsEndpoint> {
        MetricsEndpoint::start(addr, self.inner.metrics.clone()).await
    }

    /// The figures so far.
    pub fn summary(&self) -> Summary {
        let tenants = self.inner.metrics.tenants();
        let mut failures = BTreeMap::new();
        let (mut successes, mut cut, mut events, mut succeeded) = (0, 0, 0, 0);
        for t in tenants.values() {
            successes += t.successes;
            cut += t.cut;
            events += t.events;
            succeeded += usize::from(t.successes > 0);
            for (kind, n) in &t.failures {
                *failures.entry(*kind).or_insert(0) += n;
            }
        }
        let since = lock(&self.inner.serving_since).unwrap_or(self.inner.created);
        Summary {
            tenants: tenants.len(),
            tenants_succeeded: succeeded,
            runs: successes + failures.values().sum::<u64>(),
            successes,
            failures,
            cut,
            events,
            wall_time: since.elapsed(),
            peak_in_flight: self.inner.metrics.peak_in_flight(),
            capacity: self.inner.options.max_concurrent_runs,
            once: self.inner.options.once,
        }
    }

    /// Runs every tenant on its schedule until `shutdown` completes (in once mode: until
    /// every tenant ran once, or `shutdown`), then shuts down gracefully: `/healthz` turns
    /// 503, nothing new starts, runs in flight get [`ServeOptions::shutdown_grace`] to end
    /// and are then cut. Returns the summary. A server serves once: afterwards it refuses runs.
    pub async fn serve(&self, shutdown: impl Future<Output = ()>) -> Summary {
        let inner = &self.inner;
        *lock(&inner.serving_since) = Some(Instant::now());
        let (scheduler, mut new_slots) = mpsc::unbounded_channel();
        let slots: Vec<Arc<Slot>> = {
            *lock(&inner.scheduler) = Some(scheduler);
            inner
                .slots
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .cloned()
                .collect()
        };
        let mut loops = JoinSet::new();
        for slot in slots {
            loops.spawn(tenant_loop(inner.clone(), slot));
        }
        tokio::pin!(shutdown);
        let mut requested = false;
        // Once mode with no tenant: nothing to wait for.
        let idle = inner.options.once && loops.is_empty();
        if !idle {
            loop {
                tokio::select! {
                    _ = &mut shutdown => {
                        requested = true;
                        break;
                    }
                    Some(slot) = new_slots.recv() => {
                        loops.spawn(tenant_loop(inner.clone(), slot));
                    }
                    joined = loops.join_next(), if !loops.is_empty() => {
                        if let Some(Err(e)) = joined {
                            if e.is_panic() {
                                tracing::error!("a tenant's scheduling task panicked (a host bug); that tenant is no longer scheduled");
                            }
                        }
                        if loops.is_empty() && inner.options.once {
                            break;
                        }
                    }
                }
            }
        }
        *lock(&inner.scheduler) = None;
        inner.metrics.set_serving(false);
        inner.stopping.send_replace(true);
        if requested {
            tracing::info!(
                in_flight = inner.metrics.in_flight(),
                grace_secs = inner.options.shutdown_grace.as_secs_f64(),
                "shutting down: no new runs; runs in flight may finish within the grace period"
            );
        }
        let drained = tokio::time::timeout(inner.options.shutdown_grace, async {
            while loops.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = inner.metrics.in_flight(),
                "the shutdown grace period is over: cutting the runs still in flight; their next runs redeliver what they did not commit"
            );
            loops.abort_all();
            while loops.join_next().await.is_some() {}
        }
        self.summary()
    }
}

impl Inner {
    fn slot(&self, key: &str) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// One run of `slot`: claim the tenant, wait for a pool slot, run, record.
    async fn execute(&self, slot: &Slot) -> Result<RunOutcome, Refused> {
        let tenant = || slot.key.clone();
        if *self.stopping.borrow() {
            return Err(Refused::ShuttingDown { tenant: tenant() });
        }
        let _claim = Claim::take(&slot.running)
            .ok_or_else(|| Refused::AlreadyRunning { tenant: tenant() })?;
        let permit = {
            let _waiting = self.metrics.enter(Gauge::Waiting);
            let mut stopping = self.stopping.subscribe();
            tokio::select! {
                permit = self.pool.acquire() => permit.map_err(|_| Refused::ShuttingDown { tenant: tenant() })?,
                _ = stopping.wait_for(|s| *s) => return Err(Refused::ShuttingDown { tenant: tenant() }),
            }
        };
        let in_flight = InFlight {
            _gauge: self.metrics.enter(Gauge::InFlight),
            metrics: &self.metrics,
            tenant: &slot.key,
            finished: false,
        };
        tracing::info!(tenant = %slot.key, "run started");
        let started = Instant::now();
        // Building a run reads files (secrets, the checkpoint store, the events file): on a
        // blocking thread, so a slow or stuck file holds up this tenant only, never the
        // runtime's workers (metrics, other tenants, the shutdown signal).
        let make_run = slot.make_run.clone();
        let built = tokio::task::spawn_blocking(move || make_run())
            .await
            .unwrap_or_else(|e| {
                Err(RunError::Host {
                    tenant: slot.key.clone(),
                    message: format!("building the run failed: {e} (a host bug)"),
                })
            });
        let outcome = match built {
            Ok(run) if run.tenant != slot.key => Err(RunError::Config {
                tenant: slot.key.clone(),
                message: format!(
                    "its run was built for tenant '{}'; a registered tenant's runs must carry its own key (fix the platform's make_run)",
                    run.tenant
                ),
            }),
            Ok(run) => self.runtime.run(&run).await,
            Err(e) => Err(e),
        };
        in_flight.finish();
        drop(permit);
        let elapsed = started.elapsed();
        match &outcome {
            Ok(report) => {
                self.metrics.record_success(&slot.key, report);
                tracing::info!(
                    tenant = %slot.key,
                    events = report.events_written,
                    full_sync = report.full_sync,
                    http_requests = report.http_sent,
                    throttled = report.http_status.get(&429).copied().unwrap_or(0),
                    duration_ms = report.duration.as_millis() as u64,
                    "run succeeded"
                );
                for w in &report.warnings {
                    tracing::warn!(tenant = %slot.key, "run warning: {w}");
                }
            }
            Err(e) => {
                let kind = FailureKind::of(e);
                let failures = self.metrics.record_failure(&slot.key, kind, elapsed);
                tracing::warn!(
                    tenant = %slot.key,
                    kind = kind.as_str(),
                    consecutive_failures = failures,
                    duration_ms = elapsed.as_millis() as u64,
                    "run failed: {e}"
                );
            }
        }
        Ok(outcome)
    }
}

/// The scheduling task of one tenant: wait, run, compute the next delay, until shutdown.
async fn tenant_loop(inner: Arc<Inner>, slot: Arc<Slot>) {
    let mut stopping = inner.stopping.subscribe();
    let mut rng = JitterSource::for_tenant(&slot.key);
    let once = inner.options.once;
    let mut delay = if once {
        Duration::ZERO
    } else {
        first_delay(&slot.schedule, rng.sample())
    };
    loop {
        *lock(&slot.planned_delay) = Some(delay);
        let due = tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = stopping.wait_for(|s| *s) => false,
        };
        *lock(&slot.planned_delay) = None;
        if !due {
            return;
        }
        match inner.execute(&slot).await {
            Ok(_) => {}
            Err(Refused::AlreadyRunning { .. }) => {
                tracing::info!(tenant = %slot.key, "scheduled run skipped: a run started by run_now is still in flight");
            }
            Err(Refused::ShuttingDown { .. } | Refused::UnknownTenant { .. }) => return,
        }
        if once {
            return;
        }
        let failures = inner
            .metrics
            .tenant(&slot.key)
            .map(|t| t.consecutive_failures)
            .unwrap_or(0);
        delay = next_delay(&slot.schedule, failures, rng.sample());
        tracing::info!(
            tenant = %slot.key,
            consecutive_failures = failures,
            next_run_in_secs = delay.as_secs(),
            "next run scheduled"
        );
    }
}

/// A tenant's "a run is in flight" flag, held for the run's life (released on drop, also
/// when the run is cut).
struct Claim<'a>(&'a AtomicBool);

impl<'a> Claim<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Claim<'a>> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Claim(flag))
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A run executing; dropped unfinished (cut at shutdown), it records the cut.
struct InFlight<'a> {
    _gauge: GaugeGuard,
    metrics: &'a Metrics,
    tenant: &'a str,
    finished: bool,
}

impl InFlight<'_> {
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.record_cut(self.tenant);
            tracing::warn!(tenant = %self.tenant, "run cut at shutdown; it committed no cursor unless it had finished its events, and the next run redelivers what it did not commit");
        }
    }
}

/// Random jitter samples in `0.0..1.0`: splitmix64 seeded by the process's random hasher
/// keys and the tenant key (tenants started together do not tick together).
struct JitterSource(u64);

impl JitterSource {
    fn for_tenant(key: &str) -> JitterSource {
        JitterSource(std::collections::hash_map::RandomState::new().hash_one(key))
    }

    fn sample(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C) and says which. If a handler cannot be
/// installed, that signal is logged and left to its default action.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); stop the host with SIGINT");
                None
            }
        };
        let terminated = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = terminated => "SIGTERM",
            _ = interrupted() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        interrupted().await;
        "Ctrl-C"
    }
}

async fn interrupted() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!("cannot listen for Ctrl-C ({e})");
        std::future::pending::<()>().await;
    }
}

/// A tenants file brought to life: the server with every tenant registered, its metrics
/// endpoint listening, and the simulation's emulator if the file has one. What
/// `connector-host serve` runs; a test or a platform can drive the same.
pub struct Deployment {
    /// The server, tenants registered, not yet serving.
    pub server: Server,
    /// The `/metrics` + `/healthz` endpoint.
    pub endpoint: MetricsEndpoint,
    /// The simulated tenants' Graph emulator, if the file has a `[simulation]`.
    pub simulation: Option<Simulation>,
    /// The file it came from.
    pub file: ServeFile,
}

/// Why a [`Deployment`] could not start.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeployError {
    /// One line: what failed and what to do.
    pub message: String,
    /// The CLI's exit code: 2 for configuration, 6 for the host.
    pub exit_code: i32,
}

impl Deployment {
    /// Raises the soft open-files limit to the hard one, starts the simulation (if any),
    /// registers every tenant, binds the endpoint (its connection cap leaves most
    /// descriptors to the runs: [`crate::metrics::connection_cap`]).
    pub async fn start(file: ServeFile, runtime: Arc<Runtime>) -> Result<Deployment, DeployError> {
        let (before, after) = crate::metrics::raise_open_files_limit();
        if before != after {
            tracing::info!(
                before = ?before,
                after = ?after,
                "raised the open-files limit to its hard limit"
            );
        }
        let server = Server::new(runtime, file.options.clone());
        let simulation = match &file.simulation {
            Some(spec) => Some(
                Simulation::start(spec)
                    .await
                    .map_err(|message| DeployError {
                        message: format!("{}: [simulation]: {message}", file.path.display()),
                        exit_code: 6,
                    })?,
            ),
            None => None,
        };
        let entries = file
            .tenants
            .iter()
            .map(|cfg| TenantEntry::from_config(cfg.clone(), file.schedule.clone()))
            .chain(
                simulation
                    .iter()
                    .flat_map(|sim| sim.entries(&file.schedule)),
            );
        for entry in entries {
            server.register(entry).map_err(|e| DeployError {
                message: format!("{}: {e}", file.path.display()),
                exit_code: 2,
            })?;
        }
        let endpoint = server.listen(file.listen).await.map_err(|e| DeployError {
            message: format!(
                "{}: [serve] listen = \"{}\": cannot listen there: {e}; choose a free address and port",
                file.path.display(),
                file.listen
            ),
            exit_code: 2,
        })?;
        tracing::info!(
            open_files_limit = ?after,
            max_connections = endpoint.max_connections(),
            "metrics endpoint connection cap"
        );
        Ok(Deployment {
            server,
            endpoint,
            simulation,
            file,
        })
    }

    /// The line the CLI prints when it starts serving.
    pub fn start_line(&self) -> String {
        let addr = self.endpoint.local_addr();
        let o = self.server.options();
        format!(
            "serving {} tenants{} from {}; at most {} runs at once; metrics http://{addr}/metrics, health http://{addr}/healthz",
            self.server.tenants().len(),
            if o.once { " once" } else { "" },
            self.file.path.display(),
            o.max_concurrent_runs,
        )
    }

    /// Closes the endpoint and stops the emulator.
    pub async fn stop(self) {
        self.endpoint.shutdown().await;
        if let Some(sim) = self.simulation {
            sim.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            interval: Duration::from_secs(3600),
            jitter: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(600),
        }
    }

    #[test]
    fn success_waits_the_interval_plus_jitter() {
        let s = schedule();
        assert_eq!(next_delay(&s, 0, 0.0), Duration::from_secs(3600));
        assert_eq!(next_delay(&s, 0, 0.5), Duration::from_secs(3750));
        assert_eq!(first_delay(&s, 0.0), Duration::ZERO);
        assert_eq!(first_delay(&s, 0.1), Duration::from_secs(30));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let s = schedule();
        let secs = |n| next_delay(&s, n, 0.0).as_secs();
        assert_eq!(secs(1), 30, "first retry after backoff_initial");
        assert_eq!(secs(2), 60, "then twice that");
        assert_eq!(secs(3), 120);
        assert_eq!(secs(5), 480);
        assert_eq!(secs(6), 600, "capped at backoff_max");
        assert_eq!(secs(40), 600, "no overflow past 32 doublings");
        assert_eq!(secs(u32::MAX), 600);
        assert_eq!(next_delay(&s, 2, 1.0), Duration::from_secs(360));
    }

    #[test]
    fn odd_jitter_samples_cannot_panic_or_stretch_the_delay() {
        let s = schedule();
        assert_eq!(next_delay(&s, 0, f64::NAN), Duration::from_secs(3600));
        assert_eq!(next_delay(&s, 0, -3.0), Duration::from_secs(3600));
        assert_eq!(next_delay(&s, 0, 7.0), Duration::from_secs(3900));
        let huge = Schedule {
            interval: Duration::MAX,
            jitter: Duration::MAX,
            ..s
        };
        assert_eq!(next_delay(&huge, 0, 1.0), Duration::MAX);
    }

    #[test]
    fn jitter_samples_stay_in_range_and_differ() {
        let mut a = JitterSource::for_tenant("a");
        let samples: Vec<f64> = (0..1000).map(|_| a.sample()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = samples.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn summary_exit_codes() {
        let mut s = Summary {
            tenants: 2,
            tenants_succeeded: 2,
            runs: 2,
            successes: 2,
            failures: BTreeMap::new(),
            cut: 0,
            events: 20,
            wall_time: Duration::from_millis(1500),
            peak_in_flight: 2,
            capacity: 64,
            once: true,
        };
        assert_eq!(s.exit_code(), 0);
        let text = s.to_string();
        assert!(text.contains("  events                  20\n"), "{text}");
        assert!(text.contains("peak in flight          2 of 64"), "{text}");
        s.failures.insert(FailureKind::Auth, 1);
        s.tenants_succeeded = 1;
        assert_eq!(s.exit_code(), 1);
        assert!(s.to_string().contains("\n  failures (auth)         1\n"));
        s.once = false;
        assert_eq!(
            s.exit_code(),
            0,
            "serve mode exits 0 after a requested shutdown"
        );
    }
}
