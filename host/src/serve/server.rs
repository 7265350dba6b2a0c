//! The multi-tenant server: registration, one scheduling task per tenant, the concurrency
//! pool, run-now, metrics, graceful shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::schedule::Schedule;
use super::scheduler::{lock, Refused, Runner, Scheduler, ServeOptions, Tenant};
use super::summary::Summary;
use crate::metrics::{FailureKind, Gauge, GaugeGuard, Metrics, MetricsEndpoint};
use crate::{RunError, RunOutcome, Runtime, TenantConfig, TenantRun};

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

impl TenantEntry {
    /// A tenant from a tenant file whose checkpoints live in `store`, opened by the caller
    /// (one PostgreSQL pool shared by the tenants that name it); secrets and sink are
    /// opened anew for each run.
    pub fn with_store(
        config: TenantConfig,
        schedule: Schedule,
        store: Arc<dyn crate::CheckpointStore>,
    ) -> TenantEntry {
        TenantEntry {
            key: config.key.clone(),
            make_run: Box::new(move || TenantRun::from_parts(&config, store.clone())),
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

/// A registered tenant as the server holds it.
struct Slot {
    key: String,
    /// What the scheduler sees of it.
    tenant: Arc<Tenant>,
    /// The compiled component this tenant runs.
    runtime: Arc<Runtime>,
    /// Shared so each run can call it on a blocking thread.
    make_run: Arc<dyn Fn() -> Result<TenantRun, RunError> + Send + Sync>,
    /// A run is in flight or waiting for a pool slot.
    running: AtomicBool,
}

struct Inner {
    /// The runtime of tenants registered without their own ([`Server::register`]).
    runtime: Arc<Runtime>,
    /// Every distinct runtime a tenant runs on (for `/metrics`' live progress).
    runtimes: Arc<Mutex<Vec<Arc<Runtime>>>>,
    options: ServeOptions,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    pool: Semaphore,
    metrics: Arc<Metrics>,
    /// true once shutdown began: sleeping and waiting loops end, nothing new starts.
    stopping: watch::Sender<bool>,
    /// While `serve` runs: where `register` sends new tenants to be scheduled.
    new_tenants: Mutex<Option<mpsc::UnboundedSender<Arc<Tenant>>>>,
    created: Instant,
    serving_since: Mutex<Option<Instant>>,
    /// Decides when tenants run: each on its own timer, or leased from a fleet.
    scheduler: Arc<dyn Scheduler>,
}

impl Server {
    /// A server with no tenants yet, running `runtime`'s component.
    pub fn new(runtime: Arc<Runtime>, options: ServeOptions) -> Server {
        Self::with_scheduler(runtime, options, Arc::new(super::local::LocalScheduler))
    }

    /// A server whose tenants `scheduler` schedules.
    pub(super) fn with_scheduler(
        runtime: Arc<Runtime>,
        options: ServeOptions,
        scheduler: Arc<dyn Scheduler>,
    ) -> Server {
        let capacity = options.max_concurrent_runs.clamp(1, Semaphore::MAX_PERMITS);
        let metrics = Arc::new(Metrics::new(capacity));
        // `/metrics` shows the progress of the runs under way (a large walk runs for hours),
        // on every runtime a tenant runs on.
        let runtimes = Arc::new(Mutex::new(vec![runtime.clone()]));
        let live = runtimes.clone();
        metrics.set_live_progress(Box::new(move || {
            lock(&live)
                .iter()
                .flat_map(|rt| rt.live_progress())
                .collect()
        }));
        Server {
            inner: Arc::new(Inner {
                runtime,
                runtimes,
                pool: Semaphore::new(capacity),
                metrics,
                options: ServeOptions {
                    max_concurrent_runs: capacity,
                    ..options
                },
                slots: RwLock::new(BTreeMap::new()),
                stopping: watch::Sender::new(false),
                new_tenants: Mutex::new(None),
                created: Instant::now(),
                serving_since: Mutex::new(None),
                scheduler,
            }),
        }
    }

    /// Adds a tenant that runs the server's own runtime. While [`Server::serve`] runs, its
    /// schedule starts at once.
    pub fn register(&self, entry: TenantEntry) -> Result<(), RegisterError> {
        self.register_on(entry, self.inner.runtime.clone())
    }

    /// Adds a tenant that runs `runtime`'s component (tenants of different connectors in
    /// one server; tenants of one component should share its runtime: see
    /// [`crate::Components`]). While [`Server::serve`] runs, its schedule starts at once.
    pub fn register_on(
        &self,
        entry: TenantEntry,
        runtime: Arc<Runtime>,
    ) -> Result<(), RegisterError> {
        let key = entry.key;
        if key.is_empty()
            || key.len() > 128
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(RegisterError::InvalidKey(key));
        }
        let connector = runtime.description().name.clone();
        {
            let mut runtimes = lock(&self.inner.runtimes);
            if !runtimes.iter().any(|r| Arc::ptr_eq(r, &runtime)) {
                runtimes.push(runtime.clone());
            }
        }
        let slot = Arc::new(Slot {
            key: key.clone(),
            tenant: Arc::new(Tenant {
                key: key.clone(),
                schedule: entry.schedule,
                planned_delay: Mutex::new(None),
            }),
            runtime,
            make_run: Arc::from(entry.make_run),
            running: AtomicBool::new(false),
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
        self.inner.metrics.set_connector(&key, &connector);
        if let Some(scheduler) = lock(&self.inner.new_tenants).as_ref() {
            let _ = scheduler.send(slot.tenant.clone());
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
        if let Some(refused) = self.inner.scheduler.refuse_run_now(key) {
            return Err(refused);
        }
        self.inner.execute_run(&slot, None).await
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
        let planned_delay = *lock(&slot.tenant.planned_delay);
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

    /// [`Server::listen`], also serving `/status`: where each tenant of `status` stands,
    /// with what this server knows live (a run in flight, the delay it chose).
    pub async fn listen_with_status(
        &self,
        addr: SocketAddr,
        status: crate::status::Source,
    ) -> std::io::Result<MetricsEndpoint> {
        let server = self.clone();
        let source = status.with_live(Arc::new(move |key: &str| {
            server.status(key).map(|s| crate::status::LiveStatus {
                running: s.running,
                planned_delay: s.planned_delay,
            })
        }));
        MetricsEndpoint::start_with_status(
            addr,
            self.inner.metrics.clone(),
            crate::metrics::connection_cap(crate::metrics::open_files_limit()),
            Some(Arc::new(source)),
        )
        .await
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
            fleet: self.inner.scheduler.leases(),
        }
    }

    /// Runs every tenant on its schedule until `shutdown` completes (in once mode: until
    /// every tenant ran once, or `shutdown`), then shuts down gracefully: `/healthz` turns
    /// 503, nothing new starts, runs in flight get [`ServeOptions::shutdown_grace`] to end
    /// and are then cut. Returns the summary. A server serves once: afterwards it refuses runs.
    pub async fn serve(&self, shutdown: impl Future<Output = ()>) -> Summary {
        let inner = &self.inner;
        *lock(&inner.serving_since) = Some(Instant::now());
        let (new_tenants, mut new_slots) = mpsc::unbounded_channel();
        let tenants: Vec<Arc<Tenant>> = {
            *lock(&inner.new_tenants) = Some(new_tenants);
            inner
                .slots
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .map(|slot| slot.tenant.clone())
                .collect()
        };
        let mut loops = JoinSet::new();
        let runner: Arc<dyn Runner> = inner.clone();
        for task in inner.scheduler.start(runner.clone(), tenants) {
            loops.spawn(task);
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
                    Some(tenant) = new_slots.recv() => {
                        loops.spawn(inner.scheduler.add(runner.clone(), tenant));
                    }
                    joined = loops.join_next(), if !loops.is_empty() => {
                        if let Some(Err(e)) = joined {
                            if e.is_panic() {
                                tracing::error!("a scheduling task panicked outside any run (a host bug; a panic in a run is caught, counted and backed off): its tenant may no longer be scheduled, restart serve and report it");
                            }
                        }
                        if loops.is_empty() && inner.options.once {
                            break;
                        }
                    }
                }
            }
        }
        *lock(&inner.new_tenants) = None;
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

#[async_trait::async_trait]
impl Runner for Inner {
    fn options(&self) -> &ServeOptions {
        &self.options
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    fn tenant(&self, key: &str) -> Option<Arc<Tenant>> {
        self.slot(key).map(|slot| slot.tenant.clone())
    }

    async fn execute(
        &self,
        key: &str,
        checkpoints: Option<Arc<dyn crate::CheckpointStore>>,
    ) -> Result<RunOutcome, Refused> {
        let slot = self.slot(key).ok_or_else(|| Refused::UnknownTenant {
            tenant: key.to_string(),
        })?;
        self.execute_run(&slot, checkpoints).await
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

    /// One run of `slot`: claim the tenant, wait for a pool slot, run, record. With
    /// `checkpoints`, the run uses that store instead of its own (a fleet lease's fenced one).
    async fn execute_run(
        &self,
        slot: &Slot,
        checkpoints: Option<Arc<dyn crate::CheckpointStore>>,
    ) -> Result<RunOutcome, Refused> {
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
            Ok(mut run) => {
                // Read with the secrets at each run: a rotated certificate moves it.
                for e in run.secrets.expiries() {
                    self.metrics
                        .set_credential_expiry(&slot.key, &e.secret, e.at);
                }
                if let Some(store) = checkpoints {
                    run.checkpoints = store;
                }
                slot.runtime.run(&run).await
            }
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
                if let Some(p) = e.progress() {
                    self.metrics.record_progress(&slot.key, p);
                }
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
        // Unwinding from a panic: the catcher counts the run as failed; it was not cut.
        if !self.finished && !std::thread::panicking() {
            self.metrics.record_cut(self.tenant);
            tracing::warn!(tenant = %self.tenant, "run cut at shutdown; it committed no cursor unless it had finished its events, and the next run redelivers what it did not commit");
        }
    }
}
