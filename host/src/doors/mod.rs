//! The guest's doors, one module per WIT interface of `connector:runtime`.
//!
//! Each module owns everything about its capability, in the shape of Spin's factors
//! (`factor-outbound-http`, `factor-key-value`): the **policy** a tenant gets (a value, handed
//! in per run), the **per-instance state** a run's store holds, the **WIT implementation**
//! (the bindgen `Host` trait on that state) and its **linker registration**
//! (`add_to_linker`). The runtime's store state ([`crate::runtime`]) only composes them.
//!
//! | module | WIT interface | policy | state |
//! |---|---|---|---|
//! | [`http`] | `http-fetch` | [`http::EgressPolicy`] (allowlist, budget, sizes, timeouts), secrets ([`http::secrets`]), public addresses only ([`http::netguard`]) | `HttpState` |
//! | [`checkpoint`] | `kv-checkpoint` | [`checkpoint::CheckpointPolicy`] (key/value caps) and the tenant's namespace | `CheckpointState` over an async [`checkpoint::CheckpointStore`] |
//! | [`emit`] | `emit-event` | [`emit::EmitPolicy`] (event/batch/run caps, nesting) | `EmitState` over an async [`emit::EventSink`] |
//! | [`log`] | `log` | longest line kept | `LogState` |
//!
//! What the doors of one run share — whose run it is, how to scrub its secrets, whether the
//! guest is inside a host call, and what stopped it — is one `RunShared` value behind an
//! `Arc`, so no door reaches into another's state.

pub mod checkpoint;
pub mod emit;
pub mod http;
pub mod log;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::runtime::limits::LimitKind;
use http::secrets::Scrubber;

/// The WIT world's bindings (host side), shared by the doors and the runtime.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "asset-connector",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Most distinct phases a run's status record keeps (a guest naming a new phase in every
/// report would otherwise grow it without bound).
pub(crate) const MAX_RUN_PHASES: usize = 32;

/// What every door of one run shares.
pub(crate) struct RunShared {
    /// Tenant key (log label).
    pub tenant: String,
    /// Redacts this tenant's secrets from what the guest hands out.
    pub scrub: Scrubber,
    /// Most bytes the guest may pass into the host in one call.
    pub max_call_bytes: usize,
    /// Set on entering a host call: the guest's next stale epoch deadline is not CPU it used.
    in_host: AtomicBool,
    /// Log lines, events and checkpoint values that held a secret (redacted) in this run.
    redactions: AtomicU64,
    /// The limit that stopped the run, when a door stopped it.
    limit_hit: Mutex<Option<(LimitKind, String)>>,
    /// The latest progress the guest reported (`log.progress`).
    progress: Mutex<log::ProgressLog>,
    /// Every phase the guest named in a progress report, in first-report order (at most
    /// [`MAX_RUN_PHASES`]): the run-status record marks them completed when the run succeeds.
    phases: Mutex<Vec<String>>,
    /// The most linear memory the guest held at once, bytes (written by the run's
    /// `RunLimiter`; here so it outlives a store dropped at the timeout).
    pub peak_memory: Arc<AtomicU64>,
    /// Real time the guest asked to sleep (monotonic-clock subscriptions), nanoseconds: with a
    /// time scale, what its waits cost in real time (a benchmark projects them to real time).
    slept_nanos: AtomicU64,
}

impl RunShared {
    pub fn new(tenant: String, scrub: Scrubber, max_call_bytes: usize) -> RunShared {
        RunShared {
            tenant,
            scrub,
            max_call_bytes,
            in_host: AtomicBool::new(false),
            redactions: AtomicU64::new(0),
            limit_hit: Mutex::new(None),
            progress: Mutex::new(log::ProgressLog::default()),
            phases: Mutex::new(Vec::new()),
            peak_memory: Arc::new(AtomicU64::new(0)),
            slept_nanos: AtomicU64::new(0),
        }
    }

    /// Keeps `p` as the run's latest progress; returns the line to log, if one is due.
    pub fn keep_progress(&self, p: log::Progress, now: std::time::Instant) -> Option<String> {
        {
            let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
            if phases.len() < MAX_RUN_PHASES && !phases.contains(&p.phase) {
                phases.push(p.phase.clone());
            }
        }
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keep(p, now)
    }

    /// The run's latest progress.
    pub fn progress(&self) -> Option<log::Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .latest()
    }

    /// The phases the guest named in its progress reports so far, in first-report order.
    pub fn phases(&self) -> Vec<String> {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The most linear memory the guest held at once so far, bytes.
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// Counts a sleep of the guest, real nanoseconds.
    pub fn slept(&self, nanos: u64) {
        // Saturating: a guest may ask for any duration, and a wrapped sum would read as little.
        let _ = self
            .slept_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(nanos))
            });
    }

    /// Real time the guest asked to sleep so far.
    pub fn slept_total(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.slept_nanos.load(Ordering::Relaxed))
    }

    /// Entering a host call (every door calls this first).
    pub fn enter(&self) {
        self.in_host.store(true, Ordering::Relaxed);
    }

    /// Whether a host call happened since the last epoch tick (and forgets it).
    pub fn take_entered(&self) -> bool {
        self.in_host.swap(false, Ordering::Relaxed)
    }

    /// Stops the run when one call passes more than the per-call limit.
    pub fn check_call_bytes(&self, what: &str, bytes: usize) -> wasmtime::Result<()> {
        if bytes > self.max_call_bytes {
            let detail = format!(
                "one {what} call passed {bytes} bytes into the host, over the limit of {} bytes",
                self.max_call_bytes
            );
            self.stop(LimitKind::CallSize, detail.clone());
            return Err(wasmtime::Error::msg(detail));
        }
        Ok(())
    }

    /// Records the limit that stops the run (the first one wins).
    pub fn stop(&self, kind: LimitKind, detail: String) {
        let mut hit = self.limit_hit.lock().unwrap_or_else(|p| p.into_inner());
        hit.get_or_insert((kind, detail));
    }

    /// The limit a door stopped the run with, if any.
    pub fn limit_hit(&self) -> Option<(LimitKind, String)> {
        self.limit_hit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Redactions so far.
    pub fn redactions(&self) -> u64 {
        self.redactions.load(Ordering::Relaxed)
    }

    /// Counts one redaction; the first of the run is logged, naming the door.
    fn note_redaction(&self, door: &str) {
        if self.redactions.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                tenant = %self.tenant,
                door,
                "the connector handed out a secret of this tenant; the host redacted it"
            );
        }
    }

    /// `text` without the tenant's secrets.
    pub fn redact(&self, door: &str, text: String) -> String {
        match self.scrub.redacted(&text) {
            Some(clean) => {
                self.note_redaction(door);
                clean
            }
            None => text,
        }
    }

    /// Bytes without the tenant's secrets, whether they are text or not.
    pub fn redact_bytes(&self, door: &str, value: Vec<u8>) -> Vec<u8> {
        match self.scrub.scrub_bytes(&value) {
            std::borrow::Cow::Borrowed(_) => value,
            std::borrow::Cow::Owned(clean) => {
                self.note_redaction(door);
                clean
            }
        }
    }
}
