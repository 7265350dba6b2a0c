//! The engine room: one wasmtime `Engine`, a `Linker` built once, the component
//! pre-instantiated, and a fresh `Store` per run with the tenant's doors and limits.
//!
//! Isolation per run: its own store and instance from the pooling allocator (no state
//! survives a run; starting one costs microseconds), a memory cap across all its memories,
//! a CPU budget by epoch interruption (the same epochs make a spinning guest yield to other
//! runs), a wall-clock timeout, a per-call cap on bytes passed into the host, a deny-all WASI
//! context (no env, args, files, sockets; stdout/stderr captured into a bounded buffer), and
//! only this tenant's egress policy, secrets, checkpoint namespace and sink. A trap ends
//! that run with a typed error naming the limit or fault; the host carries on.
//!
//! Every text of the guest that leaves through here — its captured stdout and stderr, its
//! error, `check`'s probes, the report's warnings — and every trap message is scrubbed of the
//! tenant's secrets ([`crate::doors::http::secrets::Scrubber`]) first.
//!
//! The wall-clock timeout covers the whole run, the final flush of the sink included (a push
//! sink's last batch and its retries): a run ends within `run_timeout_secs` of its start
//! (after its wait for an instance slot). A panic during a run is caught ([`panics`]) and
//! ends that run with a `host` error, like any other failure.

mod cache;
mod clock;
pub mod contract;
pub(crate) mod limits;
pub mod panics;
mod state;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtx;

pub use cache::CacheOutcome;
pub use clock::TimeScale;
use limits::{CpuMeter, RunLimiter};
pub use limits::{LimitKind, RuntimeLimits};
use state::RunState;

use crate::config::TenantConfig;
use crate::doors::bindings::exports::connector::runtime::connector as api;
use crate::doors::bindings::{AssetConnector, AssetConnectorPre};
use crate::doors::checkpoint::record::RunEnd;
use crate::doors::checkpoint::{
    CheckpointError, CheckpointPolicy, CheckpointState, CheckpointStore, Stored, Write,
};
use crate::doors::emit::{EmitPolicy, EmitState, EventSink, Inventory, StdoutSink};
use crate::doors::http::netguard::{NameResolver, SystemResolver};
use crate::doors::http::secrets::{Scrubber, SecretSet};
use crate::doors::http::{
    ClientBuildError, EgressPolicy, HttpClients, HttpDoor, HttpState, Observed, Origin,
};
use crate::doors::log::{LogState, Progress};
use crate::doors::RunShared;
use crate::error::{ConnectorErrorKind, RunError};

/// Milliseconds per epoch tick: the CPU budget's resolution and the yield interval.
const TICK_MS: u64 = 10;

/// Deepest nesting of an event's objects and arrays ([`EmitPolicy::max_depth`]).
const MAX_EVENT_DEPTH: usize = 64;

/// How a [`Runtime`] is built.
#[derive(Clone)]
pub struct RuntimeOptions {
    /// Limits of every run.
    pub limits: RuntimeLimits,
    /// Folder of the compiled-component cache (None: compile in memory every start).
    pub cache_dir: Option<PathBuf>,
    /// Name resolution for outbound HTTP (non-public answers are always refused).
    pub resolver: Arc<dyn NameResolver>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            limits: RuntimeLimits::default(),
            cache_dir: None,
            resolver: Arc::new(SystemResolver),
        }
    }
}

/// Everything one run of one tenant gets: plain values and opened stores. A tenant file
/// becomes one in [`crate::assembly`] (`TenantRun::from_config`, `open`, `from_parts`,
/// `for_check`); a platform embedding the host can build one directly.
#[derive(Clone)]
pub struct TenantRun {
    /// Tenant key (checkpoint namespace, log label).
    pub tenant: String,
    /// The connector's configuration pairs.
    pub connector_config: Vec<(String, String)>,
    /// Egress policy.
    pub policy: EgressPolicy,
    /// Secrets.
    pub secrets: Arc<SecretSet>,
    /// Checkpoint store.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Event sink.
    pub sink: Arc<dyn EventSink>,
    /// Wall-clock limit of the run.
    pub timeout: Duration,
    /// **Simulation only**: how much faster than real time the guest's clocks run
    /// ([`TimeScale::REAL`] everywhere else). No tenant file can set it; see
    /// [`TenantRun::with_time_scale`].
    pub time_scale: TimeScale,
}

impl TenantRun {
    /// **Simulation only.** The same run with the guest's wall and monotonic clocks running
    /// `scale.factor()` times faster than real time and its sleeps that many times shorter, to
    /// compress a long paced sync (Graph's reports limits) in a benchmark against the emulator
    /// run with the same factor. Never read from a tenant file or TOML; the run's wall-clock
    /// `timeout` stays real.
    pub fn with_time_scale(self, scale: TimeScale) -> TenantRun {
        TenantRun {
            time_scale: scale,
            ..self
        }
    }
}

/// The connector's own counts plus the host's view of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    /// Tenant key.
    pub tenant: String,
    /// Records read from the provider.
    pub items_seen: u64,
    /// Events the connector emitted (as it counts them).
    pub events_emitted: u64,
    /// Events the host's sink accepted during the run.
    pub events_written: u64,
    /// Records skipped.
    pub items_skipped: u64,
    /// Records emitted without part of their data.
    pub items_partial: u64,
    /// Requests the connector reports.
    pub requests: u64,
    /// Requests the host actually sent.
    pub http_sent: u64,
    /// Requests the host denied.
    pub http_denied: u64,
    /// Responses by HTTP status (429 = throttled).
    pub http_status: std::collections::BTreeMap<u16, u64>,
    /// Full sync (not incremental).
    pub full_sync: bool,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Optional data not collected.
    pub unavailable: Vec<String>,
    /// What a push sink's receiver answered for the batches it acknowledged (Sekoia's task
    /// ids), in order; empty for a file or stdout sink.
    pub receipts: Vec<String>,
    /// Wall time.
    pub duration: Duration,
    /// The most linear memory the guest held at once during the run, bytes.
    pub peak_guest_memory_bytes: u64,
    /// The last progress the connector reported (WIT `log.progress`), if any.
    pub progress: Option<Progress>,
    /// What the events the sink accepted say about the accounts (OCSF 5003: users, admins,
    /// without MFA, guests, disabled, dormant, deleted), counted by the host.
    pub inventory: Inventory,
}

/// A run's figures as they stand, readable during the run and after it however it ended
/// ([`Runtime::live_run`]).
#[derive(Clone)]
pub struct RunFigures(Arc<RunShared>);

impl RunFigures {
    /// The most linear memory the guest held at once so far, bytes.
    pub fn peak_guest_memory_bytes(&self) -> u64 {
        self.0.peak_memory()
    }

    /// Real time the guest asked to sleep so far (its pacing waits, shortened by the run's
    /// time scale).
    pub fn slept(&self) -> Duration {
        self.0.slept_total()
    }

    /// The latest progress the guest reported.
    pub fn progress(&self) -> Option<Progress> {
        self.0.progress()
    }
}

/// One probe of `check`.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// What was probed.
    pub name: String,
    /// Whether it worked.
    pub ok: bool,
    /// Detail.
    pub detail: String,
}

/// What `describe` says about the component.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// Connector name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Provider permissions.
    pub permissions: Vec<String>,
    /// (name, required, description).
    pub config_keys: Vec<(String, bool, String)>,
    /// Secret names.
    pub secrets: Vec<String>,
    /// OCSF classes.
    pub event_classes: Vec<u32>,
}

/// The outcome of a finished run: its report, or why it failed.
pub type RunOutcome = Result<RunReport, RunError>;

/// A compiled connector component, ready to start isolated runs.
pub struct Runtime {
    engine: Engine,
    pre: AssetConnectorPre<RunState>,
    clients: HttpClients,
    limits: RuntimeLimits,
    description: Description,
    slots: Arc<tokio::sync::Semaphore>,
    cache: CacheOutcome,
    stop_ticker: Arc<AtomicBool>,
    /// The doors' shared state of each run under way, by tenant: where
    /// [`Runtime::progress`] reads a live run's progress.
    live: std::sync::Mutex<std::collections::HashMap<String, Arc<RunShared>>>,
}

/// Lists a run under way in [`Runtime`]'s `live` map until the run ends, however it ends.
/// The run-status record of a run of `started`..`ended` that ended with `outcome`, having
/// named `phases` in its progress ([`crate::status`]).
fn run_end(
    started: std::time::SystemTime,
    ended: std::time::SystemTime,
    outcome: &RunOutcome,
    phases: Vec<String>,
) -> RunEnd {
    use crate::doors::checkpoint::record::{millis, one_line, LastRun, Outcome, RecordedProgress};
    let (outcome, error, kind, full_sync, progress) = match outcome {
        Ok(report) => (
            Outcome::Succeeded,
            None,
            None,
            Some(report.full_sync),
            report.progress.as_ref(),
        ),
        Err(e) => (
            Outcome::Failed,
            Some(one_line(&e.to_string())),
            Some(e.kind_label().to_string()),
            None,
            e.progress(),
        ),
    };
    RunEnd {
        run: LastRun {
            started_ms: millis(started),
            ended_ms: millis(ended),
            outcome,
            error,
            kind,
            full_sync,
            progress: progress.map(RecordedProgress::from),
        },
        phases,
    }
}

struct LiveRun<'a> {
    runtime: &'a Runtime,
    tenant: &'a str,
    shared: &'a std::sync::OnceLock<Arc<RunShared>>,
}

impl LiveRun<'_> {
    fn live(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<RunShared>>> {
        self.runtime.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run's doors are up: it is listed from now on.
    fn started(&self, shared: Arc<RunShared>) {
        if self.shared.set(shared.clone()).is_ok() {
            self.live().insert(self.tenant.to_string(), shared);
        }
    }
}

impl Drop for LiveRun<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.get() {
            let mut live = self.live();
            // Only this run's entry (a later run of the tenant may have replaced it).
            if live
                .get(self.tenant)
                .is_some_and(|s| Arc::ptr_eq(s, shared))
            {
                live.remove(self.tenant);
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Compiles `component` (a `connector:runtime` component) with default options, links
    /// the doors, and asks it to describe itself.
    pub async fn new(component: &[u8], limits: RuntimeLimits) -> anyhow::Result<Runtime> {
        Self::with_options(
            component,
            RuntimeOptions {
                limits,
                ..RuntimeOptions::default()
            },
        )
        .await
    }

    /// Like [`Runtime::new`], with a compiled-component cache and a resolver of choice.
    pub async fn with_options(
        component: &[u8],
        options: RuntimeOptions,
    ) -> anyhow::Result<Runtime> {
        let limits = options.limits;
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        if limits.pool_size > 0 {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(&limits)));
        }
        let engine = Engine::new(&config)?;
        let (component, cache) = cache::load(&engine, component, options.cache_dir.as_deref())?;
        contract::check(&engine, &component).map_err(anyhow::Error::new)?;
        let mut linker: Linker<RunState> = Linker::new(&engine);
        RunState::add_to_linker(&mut linker)?;
        let pre = AssetConnectorPre::new(linker.instantiate_pre(&component)?)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(TICK_MS));
                        engine.increment_epoch();
                    }
                })?;
        }
        let slots = if limits.pool_size > 0 {
            limits.pool_size as usize
        } else {
            tokio::sync::Semaphore::MAX_PERMITS
        };
        let mut rt = Runtime {
            engine,
            pre,
            // One client per tenant connect timeout; the default's is built now.
            clients: HttpClients::new(options.resolver, EgressPolicy::new(vec![]).connect_timeout)?,
            limits,
            description: Description {
                name: String::new(),
                version: String::new(),
                permissions: vec![],
                config_keys: vec![],
                secrets: vec![],
                event_classes: vec![],
            },
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            cache,
            stop_ticker,
            live: Default::default(),
        };
        rt.description = rt.describe_now().await?;
        Ok(rt)
    }

    /// The latest progress (WIT `log.progress`) of the tenant's run under way, if it is
    /// running and reported one: for a live line or gauge while a long run goes on.
    pub fn progress(&self, tenant: &str) -> Option<Progress> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(tenant).and_then(|s| s.progress())
    }

    /// The shared state of the tenant's run under way (progress, peak guest memory, time
    /// slept), if one is: it outlives the run, so a caller holding it reads a stopped run's
    /// figures too (the scale benchmark does).
    pub fn live_run(&self, tenant: &str) -> Option<RunFigures> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(tenant).cloned().map(RunFigures)
    }

    /// The latest progress of every run under way that reported one, by tenant.
    pub fn live_progress(&self) -> Vec<(String, Progress)> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .filter_map(|(tenant, s)| Some((tenant.clone(), s.progress()?)))
            .collect()
    }

    /// What the component says about itself.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// Whether the compiled component came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// Instance slots: (free now, total). A run waits for a free slot instead of failing.
    pub fn slots(&self) -> (usize, usize) {
        let total = if self.limits.pool_size > 0 {
            self.limits.pool_size as usize
        } else {
            usize::MAX
        };
        (self.slots.available_permits(), total)
    }

    /// The limits every run gets.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    async fn describe_now(&self) -> anyhow::Result<Description> {
        let run = inert_run("describe");
        let _slot = self.slots.acquire().await?;
        let (mut store, bindings, _) = self
            .instantiate(&run)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let d = bindings
            .connector_runtime_connector()
            .call_describe(&mut store)
            .await?;
        Ok(Description {
            name: d.name,
            version: d.version,
            permissions: d.permissions,
            config_keys: d
                .config_keys
                .into_iter()
                .map(|k| (k.name, k.required, k.description))
                .collect(),
            secrets: d.secrets.into_iter().map(|s| s.name).collect(),
            event_classes: d.event_classes,
        })
    }

    /// Creates a store for `run` and instantiates the component in it (the benchmark uses
    /// this to time instantiation alone).
    async fn instantiate(
        &self,
        run: &TenantRun,
    ) -> wasmtime::Result<(
        Store<RunState>,
        AssetConnector,
        (MemoryOutputPipe, MemoryOutputPipe),
    )> {
        let stdout = MemoryOutputPipe::new(self.limits.guest_output_bytes);
        let stderr = MemoryOutputPipe::new(self.limits.guest_output_bytes);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false);
        if let Some((wall, monotonic)) = run.time_scale.clocks() {
            wasi.wall_clock(wall).monotonic_clock(monotonic);
        }
        let wasi = wasi.build();
        let http = HttpDoor::new(
            self.clients
                .for_connect_timeout(run.policy.connect_timeout)?,
            run.policy.clone(),
            run.secrets.clone(),
            run.tenant.clone(),
        );
        let l = &self.limits;
        let shared = Arc::new(RunShared::new(
            run.tenant.clone(),
            run.secrets.scrubber().clone(),
            l.max_call_bytes,
        ));
        let emit_policy = EmitPolicy {
            max_event_bytes: l.max_event_bytes,
            max_batch_events: l.max_batch_events,
            max_events_per_run: l.max_events_per_run,
            max_depth: MAX_EVENT_DEPTH,
        };
        let state = RunState {
            wasi,
            table: ResourceTable::new(),
            limiter: RunLimiter::new(l.memory_bytes, shared.peak_memory.clone()),
            cpu: CpuMeter::new(l.cpu_budget_ms, TICK_MS),
            http: HttpState::new(shared.clone(), http),
            checkpoint: CheckpointState::new(
                shared.clone(),
                CheckpointPolicy::default(),
                format!("{}/{}", run.tenant, self.description.name),
                run.checkpoints.clone(),
                run.sink.clone(),
            ),
            emit: EmitState::new(shared.clone(), emit_policy, run.sink.clone()),
            log: LogState::new(shared.clone(), l.max_log_bytes),
            shared,
            time_factor: run.time_scale.factor(),
        };
        let cpu_budget_ms = l.cpu_budget_ms;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            if state.charge_tick() {
                Ok(UpdateDeadline::Yield(1))
            } else {
                let detail = format!("the CPU budget of {cpu_budget_ms} ms is spent");
                state.shared.stop(LimitKind::Cpu, detail.clone());
                Err(wasmtime::Error::msg(detail))
            }
        });
        let bindings = self.pre.instantiate_async(&mut store).await?;
        Ok((store, bindings, (stdout, stderr)))
    }

    /// Fills what the tenant file leaves to the component — `[egress] allow` when empty, a
    /// secret's `hosts` when empty — from the component's egress plan for the tenant's
    /// `[config]` (WIT `connector.egress`). The host knows no provider: the Entra connector
    /// names its cloud's login and Graph origins, and sends the client secret to login only.
    /// A configuration the connector refuses fails here, as its run would. It also records
    /// the component's `describe` name in [`TenantConfig::connector_name`] (a private key
    /// without `algorithm` signs with that connector's default).
    pub async fn resolve_egress(&self, mut cfg: TenantConfig) -> Result<TenantConfig, RunError> {
        // Which connector the tenant's private keys sign for: it picks an RSA key's default
        // algorithm (credentials::default_algorithm).
        cfg.connector_name = Some(self.description.name.clone());
        let needed =
            cfg.egress_allow.is_empty() || cfg.secrets.values().any(|s| s.hosts.is_empty());
        if !needed {
            return Ok(cfg);
        }
        let tenant = cfg.key.clone();
        let run = inert_run(&tenant);
        let scrub = run.secrets.scrubber();
        let _slot = self.acquire_slot(&tenant).await?;
        let (mut store, bindings, _) = self
            .instantiate(&run)
            .await
            .map_err(|e| trap(&tenant, e, None, scrub))?;
        let plan = bindings
            .connector_runtime_connector()
            .call_egress(&mut store, &cfg.connector)
            .await
            .map_err(|e| trap(&tenant, e, None, scrub))?
            .map_err(|e| connector_error(&tenant, &self.description.name, e, scrub))?;
        let bad_origin = |what: &str, origin: &str, e: crate::doors::http::InvalidOrigin| {
            RunError::Host {
            tenant: tenant.clone(),
            message: format!(
                "the component's egress plan names {what} '{origin}', which is not an origin ({e}); report it to the connector's author"
            ),
        }
        };
        if cfg.egress_allow.is_empty() {
            for origin in &plan.origins {
                let parsed =
                    Origin::parse(origin).map_err(|e| bad_origin("the origin", origin, e))?;
                if !cfg.egress_allow.contains(&parsed) {
                    cfg.egress_allow.push(parsed);
                }
            }
        }
        for (name, spec) in cfg.secrets.iter_mut().filter(|(_, s)| s.hosts.is_empty()) {
            if let Some(dest) = plan.secrets.iter().find(|d| &d.name == name) {
                for origin in &dest.origins {
                    Origin::parse(origin)
                        .map_err(|e| bad_origin("for a secret the origin", origin, e))?;
                    spec.hosts.push(origin.clone());
                }
            }
        }
        Ok(cfg)
    }

    /// Times `n` instantiations (store + instance, no call) for the benchmark.
    pub async fn time_instantiation(&self, n: usize) -> anyhow::Result<Vec<Duration>> {
        let run = inert_run("bench");
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let _slot = self.slots.acquire().await?;
            let t = Instant::now();
            let made = self
                .instantiate(&run)
                .await
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            out.push(t.elapsed());
            drop(made);
        }
        Ok(out)
    }

    /// Runs one sync for a tenant. Waits for a free instance slot first (not counted in
    /// the run's timeout).
    ///
    /// The run's timeout covers everything after that, the sink's final flush included; a
    /// panic during the run (a host bug) ends it with [`RunError::Host`] instead of
    /// unwinding into the caller.
    ///
    /// Whatever the outcome, the run is recorded in its checkpoint store's run status
    /// ([`crate::status`]: start, end, outcome, progress, the phases it completed),
    /// which `connector-host status` and `/status` read.
    pub async fn run(&self, run: &TenantRun) -> RunOutcome {
        let started = std::time::SystemTime::now();
        // The doors' shared state outlives the store, which a timeout drops: what the run
        // reported (progress, phases) and used (peak memory) is read from here whatever
        // happened.
        let shared_seen = std::sync::OnceLock::<Arc<RunShared>>::new();
        let outcome = match panics::catch(self.run_unguarded(run, &shared_seen)).await {
            Ok(outcome) => outcome,
            Err(panicked) => Err(RunError::Host {
                tenant: run.tenant.clone(),
                message: run.secrets.scrubber().clean(format!(
                    "{panicked} (a host bug: please report it); the run was stopped and its checkpoint keeps what was committed before"
                )),
            }),
        };
        let phases = shared_seen.get().map(|s| s.phases()).unwrap_or_default();
        let end = run_end(started, std::time::SystemTime::now(), &outcome, phases);
        // The one writer of the run status; a failure to record never changes the outcome.
        if let Err(e) = run.checkpoints.record_run(&run.tenant, &end).await {
            tracing::warn!(tenant = %run.tenant, "cannot record the run's status (connector-host status and /status show the run before it): {e}");
        }
        outcome
    }

    async fn run_unguarded(
        &self,
        run: &TenantRun,
        shared_seen: &std::sync::OnceLock<Arc<RunShared>>,
    ) -> RunOutcome {
        let tenant = run.tenant.clone();
        let scrub = run.secrets.scrubber();
        let _slot = self.acquire_slot(&tenant).await?;
        let started = Instant::now();
        // One deadline for the connector and the final flush. A timeout too long to add to
        // the clock has no deadline (the tenant file caps it well below that).
        let deadline = tokio::time::Instant::now().checked_add(run.timeout);
        let live = LiveRun {
            runtime: self,
            tenant: &run.tenant,
            shared: shared_seen,
        };
        let fut = async {
            let (mut store, bindings, pipes) = self
                .instantiate(run)
                .await
                .map_err(|e| trap(&tenant, e, None, scrub))?;
            live.started(store.data().shared.clone());
            let outcome = bindings
                .connector_runtime_connector()
                .call_run(&mut store, &run.connector_config)
                .await;
            log_guest_output(&tenant, &pipes, scrub);
            let state = store.data();
            let counters = state.http.counters();
            let events_written = state.emit.written();
            let inventory = state.emit.inventory();
            let limit = state.limit_hit(self.limits.memory_bytes);
            let redactions = state.shared.redactions();
            Ok::<_, RunError>((
                outcome,
                counters,
                (events_written, inventory),
                limit,
                redactions,
            ))
        };
        let result = within(deadline, fut).await;
        // Whatever happened, what reached the sink is made durable, within what is left of
        // the run's time: past the deadline, a flush that does not end at its first poll is
        // cut (a push sink's unacknowledged events stay unacknowledged, and no cursor moved
        // past them).
        let flushed = within(deadline, run.sink.flush_durable()).await;
        let progress = shared_seen.get().and_then(|s| s.progress());
        let peak_guest_memory_bytes = shared_seen.get().map_or(0, |s| s.peak_memory());
        let timed_out = || RunError::Timeout {
            tenant: tenant.clone(),
            seconds: run.timeout.as_secs(),
            progress: progress.clone().map(Box::new),
        };
        let (outcome, counters, (events_written, inventory), limit, redactions) = match result {
            None => return Err(timed_out()),
            Some(r) => r?,
        };
        let Some(flushed) = flushed else {
            return Err(timed_out());
        };
        let report = match outcome {
            Err(e) => return Err(trap(&tenant, e, limit, scrub).with_progress(progress)),
            Ok(Err(e)) => return Err(connector_error(&tenant, &self.description.name, e, scrub)),
            Ok(Ok(r)) => r,
        };
        let mut warnings: Vec<String> = report
            .warnings
            .into_iter()
            .map(|w| scrub.clean(w))
            .collect();
        let echoed = counters.echoed_secret.load(Ordering::Relaxed);
        if echoed > 0 || redactions > 0 {
            warnings.push(format!(
                "a secret of this tenant came back in {echoed} response(s) and was handed out {redactions} time(s) by the connector; the host redacted every one: find out which server echoes it"
            ));
        }
        flushed.map_err(|e| RunError::Host {
            tenant: tenant.clone(),
            message: format!("the event sink failed at the end of the run: {e}"),
        })?;
        Ok(RunReport {
            tenant,
            items_seen: report.items_seen,
            events_emitted: report.events_emitted,
            events_written,
            items_skipped: report.items_skipped,
            items_partial: report.items_partial,
            requests: report.requests,
            http_sent: counters.sent.load(Ordering::Relaxed),
            http_denied: counters.denied.load(Ordering::Relaxed),
            http_status: counters.statuses(),
            full_sync: report.full_sync,
            warnings,
            unavailable: report
                .unavailable
                .into_iter()
                .map(|u| scrub.clean(u))
                .collect(),
            // The receiver's text, like every text from outside in the report.
            receipts: run
                .sink
                .receipts()
                .into_iter()
                .map(|r| scrub.clean(r))
                .collect(),
            duration: started.elapsed(),
            peak_guest_memory_bytes,
            progress,
            inventory,
        })
    }

    /// Waits for a free instance slot (the pool is full: wait, never fail).
    async fn acquire_slot(
        &self,
        tenant: &str,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, RunError> {
        self.slots.acquire().await.map_err(|_| RunError::Host {
            tenant: tenant.to_string(),
            message: "the runtime is shutting down".into(),
        })
    }

    /// Runs the connector's `check` ("Test connector") for a tenant.
    pub async fn check(&self, run: &TenantRun) -> Result<Vec<Probe>, RunError> {
        self.check_observed(run).await.probes
    }

    /// [`Runtime::check`], with what the host saw its requests meet
    /// ([`crate::doors::http::Observed`]: its own refusals, error answers, the answers to the
    /// requests that carried a filled secret), however the check ended: `connector-host
    /// check` classifies failures from it ([`crate::check`]).
    pub async fn check_observed(&self, run: &TenantRun) -> CheckOutcome {
        let tenant = run.tenant.clone();
        let scrub = run.secrets.scrubber();
        let _slot = match self.acquire_slot(&tenant).await {
            Ok(slot) => slot,
            Err(e) => {
                return CheckOutcome {
                    probes: Err(e),
                    observed: Observed::default(),
                }
            }
        };
        // Outlives the store, which a timeout drops.
        let counters = std::sync::OnceLock::<Arc<crate::doors::http::HttpCounters>>::new();
        // Listed like a run, so [`Runtime::progress`] reads which probe is under way.
        let shared_seen = std::sync::OnceLock::<Arc<RunShared>>::new();
        let live = LiveRun {
            runtime: self,
            tenant: &run.tenant,
            shared: &shared_seen,
        };
        let fut = async {
            let (mut store, bindings, pipes) = self
                .instantiate(run)
                .await
                .map_err(|e| trap(&tenant, e, None, scrub))?;
            let _ = counters.set(store.data().http.counters());
            live.started(store.data().shared.clone());
            let outcome = bindings
                .connector_runtime_connector()
                .call_check(&mut store, &run.connector_config)
                .await;
            log_guest_output(&tenant, &pipes, scrub);
            let limit = store.data().limit_hit(self.limits.memory_bytes);
            match outcome {
                Err(e) => Err(trap(&tenant, e, limit, scrub)),
                Ok(Err(e)) => Err(connector_error(&tenant, &self.description.name, e, scrub)),
                Ok(Ok(probes)) => Ok(probes
                    .into_iter()
                    .map(|p| Probe {
                        name: scrub.clean(p.name),
                        ok: p.ok,
                        detail: scrub.clean(p.detail),
                    })
                    .collect()),
            }
        };
        let probes = tokio::time::timeout(run.timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(RunError::Timeout {
                    tenant: tenant.clone(),
                    seconds: run.timeout.as_secs(),
                    progress: None,
                })
            });
        CheckOutcome {
            probes,
            observed: counters.get().map(|c| c.observed()).unwrap_or_default(),
        }
    }
}

/// What [`Runtime::check_observed`] found: the connector's probes (or why its check failed)
/// and what the host saw the check's requests meet.
#[derive(Debug)]
pub struct CheckOutcome {
    /// The connector's probes, scrubbed, or why the check failed.
    pub probes: Result<Vec<Probe>, RunError>,
    /// The check's requests, as the host saw them.
    pub observed: Observed,
}

/// `fut`'s output, or `None` when `deadline` passed first (`None` deadline: no limit).
async fn within<F: std::future::Future>(
    deadline: Option<tokio::time::Instant>,
    fut: F,
) -> Option<F::Output> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// Pooling allocator sized for `pool_size` concurrent runs of a typical component.
fn pooling(limits: &RuntimeLimits) -> PoolingAllocationConfig {
    let n = limits.pool_size;
    let mut p = PoolingAllocationConfig::new();
    p.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 2)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_core_instances_per_component(16)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_memory_size(limits.memory_bytes)
        .max_unused_warm_slots(n.min(64));
    p
}

fn log_guest_output(
    tenant: &str,
    (stdout, stderr): &(MemoryOutputPipe, MemoryOutputPipe),
    scrub: &Scrubber,
) {
    for (name, pipe) in [("stdout", stdout), ("stderr", stderr)] {
        let bytes = pipe.contents();
        if !bytes.is_empty() {
            let bytes = scrub.scrub_bytes(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            tracing::info!(tenant = %tenant, stream = name, "guest output: {}", text.trim_end());
        }
    }
}

fn trap(
    tenant: &str,
    e: wasmtime::Error,
    limit: Option<(LimitKind, String)>,
    scrub: &Scrubber,
) -> RunError {
    if let Some(e) = e.downcast_ref::<ClientBuildError>() {
        return RunError::Host {
            tenant: tenant.to_string(),
            message: scrub.scrub(&e.to_string()).into_owned(),
        };
    }
    let limit = limit.or_else(|| {
        (e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::StackOverflow)).then(|| {
            (
                LimitKind::Stack,
                "the guest's call stack overflowed (runaway recursion)".to_string(),
            )
        })
    });
    if let Some((kind, detail)) = limit {
        return RunError::Limit {
            tenant: tenant.to_string(),
            kind,
            detail,
            progress: None,
        };
    }
    // The trap code ("out of bounds memory access", "unreachable" for a guest panic), not
    // the backtrace wrapper around it.
    let message = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) => format!("{t}"),
        None => one_line(&e.root_cause().to_string()),
    };
    RunError::Trap {
        tenant: tenant.to_string(),
        message: scrub.clean(message),
        progress: None,
    }
}

/// A connector's error as a run error. An upstream failure is prefixed with the
/// connector's own name (its `describe` name, e.g. `entra-id-users upstream: …`): the host
/// knows no provider, and the operator reads which service failed.
fn connector_error(
    tenant: &str,
    connector: &str,
    e: api::ConnectorError,
    scrub: &Scrubber,
) -> RunError {
    let (kind, message) = match e {
        api::ConnectorError::Config(m) => {
            (ConnectorErrorKind::Config, format!("configuration: {m}"))
        }
        api::ConnectorError::Auth(m) => (
            ConnectorErrorKind::Auth,
            format!("authentication failed: {m}"),
        ),
        api::ConnectorError::Permission(m) => (
            ConnectorErrorKind::Permission,
            format!("permission denied: {m}"),
        ),
        api::ConnectorError::Upstream(m) => (
            ConnectorErrorKind::Upstream,
            upstream_message(connector, &m),
        ),
        api::ConnectorError::Host(m) => (ConnectorErrorKind::Host, m),
    };
    // Scrubbed before the cut: a cut could leave a part of the secret no pattern matches.
    RunError::Connector {
        tenant: tenant.to_string(),
        kind,
        message: one_line(&scrub.clean(message)),
    }
}

/// `<connector> upstream: <message>`; the connector's name (its own text) is cut to 64
/// characters of one line, and left out when it gives none.
fn upstream_message(connector: &str, message: &str) -> String {
    let name: String = one_line(connector.trim()).chars().take(64).collect();
    if name.is_empty() {
        format!("upstream service: {message}")
    } else {
        format!("{name} upstream: {message}")
    }
}

fn one_line(s: &str) -> String {
    let line: String = s
        .split(['\n', '\r'])
        .next()
        .unwrap_or("")
        .chars()
        .take(1000)
        .collect();
    line
}

/// A run with no egress, no secrets and no checkpoint access (for `describe` and timing).
fn inert_run(tenant: &str) -> TenantRun {
    TenantRun {
        tenant: tenant.into(),
        connector_config: vec![],
        policy: EgressPolicy::new(vec![]),
        secrets: Arc::new(SecretSet::new()),
        checkpoints: Arc::new(NoCheckpoints),
        sink: Arc::new(StdoutSink::default()),
        timeout: Duration::from_secs(10),
        time_scale: TimeScale::REAL,
    }
}

/// A store for `describe` and `check`, which must not touch checkpoints (`check`'s run is
/// built by [`crate::assembly`]: `TenantRun::for_check`).
pub(crate) struct NoCheckpoints;

#[async_trait::async_trait]
impl CheckpointStore for NoCheckpoints {
    async fn get(&self, _: &str, _: &str) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        Err(CheckpointError::Storage(
            "describe and check have no checkpoint access".into(),
        ))
    }
    async fn set(
        &self,
        _: &str,
        _: &str,
        _: &[u8],
        _: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        Err(CheckpointError::Storage(
            "describe and check have no checkpoint access".into(),
        ))
    }
    async fn get_many(&self, _: &str, _: &[String]) -> Result<Vec<Stored>, CheckpointError> {
        Err(CheckpointError::Storage(
            "describe and check have no checkpoint access".into(),
        ))
    }
    async fn set_many(&self, _: &str, _: &[Write]) -> Result<Vec<u64>, CheckpointError> {
        Err(CheckpointError::Storage(
            "describe and check have no checkpoint access".into(),
        ))
    }
    async fn delete_prefix(&self, _: &str, _: &str, _: u32) -> Result<u32, CheckpointError> {
        Err(CheckpointError::Storage(
            "describe and check have no checkpoint access".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_failure_names_the_connector_not_a_provider() {
        let err = connector_error(
            "t",
            "okta-users",
            api::ConnectorError::Upstream("GET /api/v1/users answered 503".into()),
            &Scrubber::default(),
        );
        assert_eq!(
            err.to_string(),
            "tenant 't': okta-users upstream: GET /api/v1/users answered 503"
        );
        let err = connector_error(
            "t",
            "",
            api::ConnectorError::Upstream("down".into()),
            &Scrubber::default(),
        );
        assert!(err.to_string().ends_with("upstream service: down"), "{err}");
    }

    #[test]
    fn operator_an_http_client_that_cannot_be_built_fails_the_run_as_a_host_error() {
        let cause = ClientBuildError {
            connect_timeout: Duration::from_secs(7),
            reason: "builder error: empty supported tls versions".into(),
        };
        let err = trap(
            "contoso",
            wasmtime::Error::new(cause),
            None,
            &Scrubber::default(),
        );
        assert!(matches!(err, RunError::Host { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "tenant 'contoso': host: cannot build the HTTP client (connect timeout 7 s): builder error: empty supported tls versions; this host build cannot make requests: report it with the host version"
        );
    }
}
