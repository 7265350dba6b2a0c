//! The engine room: one wasmtime `Engine`, a `Linker` built once, the component
//! pre-instantiated, and a fresh `Store` per run with the tenant's doors and limits.
//!
//! Isolation per run: its own store and instance (no state survives a run), a memory cap,
//! epoch interruption (a spinning guest yields and can be stopped), a wall-clock timeout,
//! a deny-all WASI context (no env, args, files, sockets; stdout/stderr captured into a
//! bounded buffer), and only this tenant's egress policy, secrets, checkpoint namespace
//! and sink. A trap ends that run with a typed error; the host carries on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::checkpoint::{CheckpointError, CheckpointStore, SqliteCheckpointStore};
use crate::config::{SinkSpec, TenantConfig};
use crate::egress::{http_client, EgressPolicy, FetchFailure, FetchRequest, HttpDoor};
use crate::error::{ConnectorErrorKind, RunError};
use crate::secrets::SecretSet;
use crate::sink::{EventSink, JsonlFileSink, StdoutSink};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "asset-connector",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use bindings::connector::runtime::{emit_event, http_fetch, kv_checkpoint, log};
use bindings::exports::connector::runtime::connector as api;
use bindings::{AssetConnector, AssetConnectorPre};

/// Engine-wide limits applied to every run.
#[derive(Clone, Debug)]
pub struct RuntimeLimits {
    /// Most linear memory a guest may hold (all its memories together), bytes.
    pub memory_bytes: usize,
    /// Captured guest stdout/stderr, bytes each.
    pub guest_output_bytes: usize,
    /// Largest single event, bytes.
    pub max_event_bytes: usize,
    /// Most events in one `emit` call.
    pub max_batch_events: usize,
    /// Longest log line kept from the guest, bytes.
    pub max_log_bytes: usize,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            memory_bytes: 512 * 1024 * 1024,
            guest_output_bytes: 64 * 1024,
            max_event_bytes: 1024 * 1024,
            max_batch_events: 10_000,
            max_log_bytes: 4096,
        }
    }
}

/// Everything one run of one tenant gets.
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
}

impl TenantRun {
    /// Builds a run from a tenant file: loads secrets, opens the store and the sink.
    pub fn from_config(cfg: &TenantConfig) -> Result<TenantRun, RunError> {
        let secrets =
            SecretSet::load(&cfg.secrets).map_err(|(name, message)| RunError::Secret {
                tenant: cfg.key.clone(),
                name,
                message,
            })?;
        let host_err = |message: String| RunError::Host {
            tenant: cfg.key.clone(),
            message,
        };
        let checkpoints =
            SqliteCheckpointStore::open(&cfg.checkpoint_db).map_err(|e| host_err(e.to_string()))?;
        let sink: Arc<dyn EventSink> = match &cfg.sink {
            SinkSpec::Jsonl { path } => {
                Arc::new(JsonlFileSink::open(path).map_err(|e| host_err(e.to_string()))?)
            }
            SinkSpec::Stdout => Arc::new(StdoutSink::default()),
        };
        let l = &cfg.limits;
        let mut policy = EgressPolicy::new(cfg.egress_allow.clone());
        policy.allow_loopback_http = cfg.allow_loopback_http;
        policy.max_requests = l.max_requests;
        policy.max_concurrent = l.max_concurrent_requests;
        policy.max_response_bytes = l.max_response_bytes;
        policy.connect_timeout = Duration::from_secs(l.connect_timeout_secs);
        policy.request_timeout = Duration::from_secs(l.request_timeout_secs);
        Ok(TenantRun {
            tenant: cfg.key.clone(),
            connector_config: cfg.connector.clone(),
            policy,
            secrets: Arc::new(secrets),
            checkpoints: Arc::new(checkpoints),
            sink,
            timeout: Duration::from_secs(l.run_timeout_secs),
        })
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
    /// Full sync (not incremental).
    pub full_sync: bool,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Optional data not collected.
    pub unavailable: Vec<String>,
    /// Wall time.
    pub duration: Duration,
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

/// Per-run state inside the store.
struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    tenant: String,
    namespace: String,
    http: Arc<HttpDoor>,
    checkpoints: Arc<dyn CheckpointStore>,
    sink: Arc<dyn EventSink>,
    rt: RuntimeLimits,
    events: Arc<AtomicU64>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl http_fetch::Host for RunState {
    async fn fetch(
        &mut self,
        req: http_fetch::Request,
    ) -> wasmtime::Result<Result<http_fetch::Response, http_fetch::FetchError>> {
        let http = self.http.clone();
        Ok(http
            .fetch(from_wit(req))
            .await
            .map(to_wit)
            .map_err(fail_to_wit))
    }

    async fn fetch_all(
        &mut self,
        reqs: Vec<http_fetch::Request>,
    ) -> wasmtime::Result<Vec<Result<http_fetch::Response, http_fetch::FetchError>>> {
        let http = self.http.clone();
        let out = http
            .fetch_all(reqs.into_iter().map(from_wit).collect())
            .await;
        Ok(out
            .into_iter()
            .map(|r| r.map(to_wit).map_err(fail_to_wit))
            .collect())
    }
}

fn from_wit(r: http_fetch::Request) -> FetchRequest {
    FetchRequest {
        method: r.method,
        url: r.url,
        headers: r.headers,
        body: r.body,
    }
}

fn to_wit(r: crate::egress::FetchResponse) -> http_fetch::Response {
    http_fetch::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

fn fail_to_wit(f: FetchFailure) -> http_fetch::FetchError {
    match f {
        FetchFailure::Denied(m) => http_fetch::FetchError::Denied(m),
        FetchFailure::Timeout => http_fetch::FetchError::Timeout,
        FetchFailure::TooLarge(n) => http_fetch::FetchError::TooLarge(n),
        FetchFailure::Transport(m) => http_fetch::FetchError::Transport(m),
        FetchFailure::BudgetExhausted => http_fetch::FetchError::BudgetExhausted,
    }
}

const MAX_KEY_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

impl kv_checkpoint::Host for RunState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<(Vec<u8>, u64)>, kv_checkpoint::KvError>> {
        if key.len() > MAX_KEY_BYTES {
            return Ok(Err(kv_checkpoint::KvError::Invalid(format!(
                "key longer than {MAX_KEY_BYTES} bytes"
            ))));
        }
        Ok(self
            .checkpoints
            .get(&self.namespace, &key)
            .map_err(|e| kv_checkpoint::KvError::Storage(e.to_string())))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> wasmtime::Result<Result<u64, kv_checkpoint::KvError>> {
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Ok(Err(kv_checkpoint::KvError::Invalid(format!(
                "key over {MAX_KEY_BYTES} bytes or value over {MAX_VALUE_BYTES} bytes"
            ))));
        }
        // Nothing lost: every event emitted before this cursor is made durable first.
        if let Err(e) = self.sink.flush_durable() {
            return Ok(Err(kv_checkpoint::KvError::Storage(format!(
                "the event sink could not be made durable, so the cursor was not moved: {e}"
            ))));
        }
        Ok(self
            .checkpoints
            .set(&self.namespace, &key, &value, expected)
            .map_err(|e| match e {
                CheckpointError::Conflict { current } => kv_checkpoint::KvError::Conflict(current),
                CheckpointError::Storage(m) => kv_checkpoint::KvError::Storage(m),
            }))
    }
}

impl emit_event::Host for RunState {
    async fn emit(
        &mut self,
        events: Vec<String>,
    ) -> wasmtime::Result<Result<(), emit_event::EmitError>> {
        if events.len() > self.rt.max_batch_events {
            return Ok(Err(emit_event::EmitError::Invalid(format!(
                "a batch of {} events is over the limit of {}",
                events.len(),
                self.rt.max_batch_events
            ))));
        }
        for (i, e) in events.iter().enumerate() {
            if e.len() > self.rt.max_event_bytes {
                return Ok(Err(emit_event::EmitError::Invalid(format!(
                    "event {i} of the batch is {} bytes, over the limit of {}",
                    e.len(),
                    self.rt.max_event_bytes
                ))));
            }
            if !e.trim_start().starts_with('{')
                || serde_json::from_str::<serde::de::IgnoredAny>(e).is_err()
            {
                return Ok(Err(emit_event::EmitError::Invalid(format!(
                    "event {i} of the batch is not a JSON object"
                ))));
            }
        }
        // serde_json never writes raw newlines inside a value, but a guest could: keep JSONL intact.
        if events.iter().any(|e| e.contains('\n')) {
            return Ok(Err(emit_event::EmitError::Invalid(
                "an event contains a raw newline".into(),
            )));
        }
        let n = events.len() as u64;
        match self.sink.write(&events) {
            Ok(()) => {
                self.events.fetch_add(n, Ordering::Relaxed);
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(emit_event::EmitError::Sink(e.to_string()))),
        }
    }
}

impl log::Host for RunState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let mut m = message;
        if m.len() > self.rt.max_log_bytes {
            let mut cut = self.rt.max_log_bytes;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        let tenant = &self.tenant;
        match level {
            log::Level::Trace => tracing::trace!(tenant = %tenant, "{m}"),
            log::Level::Debug => tracing::debug!(tenant = %tenant, "{m}"),
            log::Level::Info => tracing::info!(tenant = %tenant, "{m}"),
            log::Level::Warn => tracing::warn!(tenant = %tenant, "{m}"),
            log::Level::Error => tracing::error!(tenant = %tenant, "{m}"),
        }
        Ok(())
    }
}

/// A compiled connector component, ready to start isolated runs.
pub struct Runtime {
    engine: Engine,
    pre: AssetConnectorPre<RunState>,
    client: reqwest::Client,
    limits: RuntimeLimits,
    description: Description,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Compiles `component` (a `connector:runtime` component), links the doors, and asks it
    /// to describe itself.
    pub async fn new(component: &[u8], limits: RuntimeLimits) -> anyhow::Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;
        let component = Component::new(&engine, component)
            .map_err(|e| anyhow::anyhow!("the component does not load: {e}"))?;
        let mut linker: Linker<RunState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        AssetConnector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)?;
        let pre = AssetConnectorPre::new(linker.instantiate_pre(&component)?)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10));
                        engine.increment_epoch();
                    }
                })?;
        }
        let mut rt = Runtime {
            engine,
            pre,
            client: http_client(Duration::from_secs(10)),
            limits,
            description: Description {
                name: String::new(),
                version: String::new(),
                permissions: vec![],
                config_keys: vec![],
                secrets: vec![],
                event_classes: vec![],
            },
            stop_ticker,
        };
        rt.description = rt.describe_now().await?;
        Ok(rt)
    }

    /// What the component says about itself.
    pub fn description(&self) -> &Description {
        &self.description
    }

    async fn describe_now(&self) -> anyhow::Result<Description> {
        let run = TenantRun {
            tenant: "describe".into(),
            connector_config: vec![],
            policy: EgressPolicy::new(vec![]),
            secrets: Arc::new(SecretSet::new()),
            checkpoints: Arc::new(NoCheckpoints),
            sink: Arc::new(StdoutSink::default()),
            timeout: Duration::from_secs(10),
        };
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
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        let http = HttpDoor::new(
            self.client.clone(),
            run.policy.clone(),
            run.secrets.clone(),
            run.tenant.clone(),
        );
        let state = RunState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .instances(4)
                .memories(4)
                .tables(16)
                .build(),
            tenant: run.tenant.clone(),
            namespace: format!("{}/{}", run.tenant, self.description.name),
            http: Arc::new(http),
            checkpoints: run.checkpoints.clone(),
            sink: run.sink.clone(),
            rt: self.limits.clone(),
            events: Arc::new(AtomicU64::new(0)),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let bindings = self.pre.instantiate_async(&mut store).await?;
        Ok((store, bindings, (stdout, stderr)))
    }

    /// Runs one sync for a tenant.
    pub async fn run(&self, run: &TenantRun) -> RunOutcome {
        let started = Instant::now();
        let tenant = run.tenant.clone();
        let fut = async {
            let (mut store, bindings, pipes) =
                self.instantiate(run).await.map_err(|e| trap(&tenant, e))?;
            let outcome = bindings
                .connector_runtime_connector()
                .call_run(&mut store, &run.connector_config)
                .await;
            log_guest_output(&tenant, &pipes);
            let counters = store.data().http.counters();
            let events_written = store.data().events.load(Ordering::Relaxed);
            Ok::<_, RunError>((outcome, counters, events_written))
        };
        let result = tokio::time::timeout(run.timeout, fut).await;
        // Whatever happened, what reached the sink is made durable.
        let flushed = run.sink.flush_durable();
        let (outcome, counters, events_written) = match result {
            Err(_) => {
                return Err(RunError::Timeout {
                    tenant,
                    seconds: run.timeout.as_secs(),
                })
            }
            Ok(r) => r?,
        };
        let report = match outcome {
            Err(e) => return Err(trap(&tenant, e)),
            Ok(Err(e)) => return Err(connector_error(&tenant, e)),
            Ok(Ok(r)) => r,
        };
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
            full_sync: report.full_sync,
            warnings: report.warnings,
            unavailable: report.unavailable,
            duration: started.elapsed(),
        })
    }

    /// Runs the connector's `check` ("Test connector") for a tenant.
    pub async fn check(&self, run: &TenantRun) -> Result<Vec<Probe>, RunError> {
        let tenant = run.tenant.clone();
        let fut = async {
            let (mut store, bindings, pipes) =
                self.instantiate(run).await.map_err(|e| trap(&tenant, e))?;
            let outcome = bindings
                .connector_runtime_connector()
                .call_check(&mut store, &run.connector_config)
                .await;
            log_guest_output(&tenant, &pipes);
            match outcome {
                Err(e) => Err(trap(&tenant, e)),
                Ok(Err(e)) => Err(connector_error(&tenant, e)),
                Ok(Ok(probes)) => Ok(probes
                    .into_iter()
                    .map(|p| Probe {
                        name: p.name,
                        ok: p.ok,
                        detail: p.detail,
                    })
                    .collect()),
            }
        };
        tokio::time::timeout(run.timeout, fut)
            .await
            .map_err(|_| RunError::Timeout {
                tenant: tenant.clone(),
                seconds: run.timeout.as_secs(),
            })?
    }
}

fn log_guest_output(tenant: &str, (stdout, stderr): &(MemoryOutputPipe, MemoryOutputPipe)) {
    for (name, pipe) in [("stdout", stdout), ("stderr", stderr)] {
        let bytes = pipe.contents();
        if !bytes.is_empty() {
            let text = String::from_utf8_lossy(&bytes);
            tracing::info!(tenant = %tenant, stream = name, "guest output: {}", text.trim_end());
        }
    }
}

fn trap(tenant: &str, e: wasmtime::Error) -> RunError {
    let msg = format!("{e:#}");
    RunError::Trap {
        tenant: tenant.to_string(),
        message: msg.lines().next().unwrap_or("unknown trap").to_string(),
    }
}

fn connector_error(tenant: &str, e: api::ConnectorError) -> RunError {
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
            format!("Microsoft Graph: {m}"),
        ),
        api::ConnectorError::Host(m) => (ConnectorErrorKind::Host, m),
    };
    RunError::Connector {
        tenant: tenant.to_string(),
        kind,
        message,
    }
}

/// A store for `describe`, which must not touch checkpoints.
struct NoCheckpoints;

impl CheckpointStore for NoCheckpoints {
    fn get(&self, _: &str, _: &str) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        Err(CheckpointError::Storage(
            "describe has no checkpoint access".into(),
        ))
    }
    fn set(&self, _: &str, _: &str, _: &[u8], _: Option<u64>) -> Result<u64, CheckpointError> {
        Err(CheckpointError::Storage(
            "describe has no checkpoint access".into(),
        ))
    }
}
