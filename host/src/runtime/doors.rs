//! The host side of the guest's doors: what happens when a connector calls `http-fetch`,
//! `kv-checkpoint`, `emit-event` or `log`. One `RunState` per run holds exactly that run's
//! tenant resources; nothing here is shared with another tenant's run except the HTTP
//! connection pool and the checkpoint store (namespaced).
//!
//! Every call is sized before it is served: a guest that hands the host more bytes in one
//! call than the limit is stopped (a trap naming the limit), not served — except `emit`,
//! whose oversized batch is refused as `invalid` so the guest can split it.
//!
//! Everything the guest hands out — log lines, events, checkpoint values — is scrubbed of the
//! tenant's secrets first ([`crate::secrets::Scrubber`]); the first redaction of a run is
//! logged as a warning and all are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::connector::runtime::{emit_event, http_fetch, kv_checkpoint, log};
use super::limits::{CpuMeter, LimitKind, RunLimiter, RuntimeLimits};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::egress::{FetchFailure, FetchRequest, FetchResponse, HttpDoor};
use crate::secrets::Scrubber;
use crate::sink::EventSink;

const MAX_KEY_BYTES: usize = 256;

/// Deepest nesting of objects and arrays an event may have: half of serde_json's recursion
/// limit (128), so a consumer that parses events into a tree reads every event the host
/// accepts (an OCSF event nests fewer than ten levels). Found by the emit property test.
const MAX_EVENT_DEPTH: usize = 64;

/// How deep objects and arrays nest in `json` (already known to be valid JSON), without
/// recursing: a 1 MiB event can nest half a million levels.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}
const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

/// Per-run state inside the store.
pub(super) struct RunState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: RunLimiter,
    pub cpu: CpuMeter,
    pub tenant: String,
    pub namespace: String,
    pub http: Arc<HttpDoor>,
    pub checkpoints: Arc<dyn CheckpointStore>,
    pub sink: Arc<dyn EventSink>,
    pub rt: RuntimeLimits,
    pub events: Arc<AtomicU64>,
    /// Redacts this tenant's secrets from what the guest hands out.
    pub scrub: Scrubber,
    /// Log lines, events and checkpoint values that held a secret (redacted) in this run.
    pub redactions: u64,
    /// The limit that stopped the run, when one did.
    pub limit_hit: Option<(LimitKind, String)>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl RunState {
    /// Entering a host call: the guest's next stale epoch deadline is not CPU it used.
    fn enter(&mut self) {
        self.cpu.resumed = true;
    }

    /// Counts one redaction; the first of the run is logged, naming the door.
    fn note_redaction(&mut self, door: &str) {
        self.redactions += 1;
        if self.redactions == 1 {
            tracing::warn!(
                tenant = %self.tenant,
                door,
                "the connector handed out a secret of this tenant; the host redacted it"
            );
        }
    }

    /// `text` without the tenant's secrets.
    fn redact(&mut self, door: &str, text: String) -> String {
        match self.scrub.redacted(&text) {
            Some(clean) => {
                self.note_redaction(door);
                clean
            }
            None => text,
        }
    }

    /// Every event of a batch without the tenant's secrets (a redaction inside a JSON string
    /// keeps it valid; the batch is validated after this).
    fn redact_events(&mut self, events: Vec<String>) -> Vec<String> {
        events
            .into_iter()
            .map(|e| self.redact("emit-event", e))
            .collect()
    }

    /// A checkpoint value without the tenant's secrets: redacted in place, whether the value
    /// is text or not, and stored like that (refusing the write would stall the cursor on every
    /// run; a redacted cursor is at worst one the connector cannot use).
    fn redact_value(&mut self, value: Vec<u8>) -> Vec<u8> {
        match self.scrub.scrub_bytes(&value) {
            std::borrow::Cow::Borrowed(_) => value,
            std::borrow::Cow::Owned(clean) => {
                self.note_redaction("kv-checkpoint");
                clean
            }
        }
    }

    /// Stops the run when one call passes more than the per-call limit.
    fn check_call_bytes(&mut self, what: &str, bytes: usize) -> wasmtime::Result<()> {
        if bytes > self.rt.max_call_bytes {
            let detail = format!(
                "one {what} call passed {bytes} bytes into the host, over the limit of {} bytes",
                self.rt.max_call_bytes
            );
            self.limit_hit = Some((LimitKind::CallSize, detail.clone()));
            return Err(wasmtime::Error::msg(detail));
        }
        Ok(())
    }
}

fn request_bytes(r: &http_fetch::Request) -> usize {
    r.method.len()
        + r.url.len()
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + r.body.as_ref().map_or(0, Vec::len)
}

impl http_fetch::Host for RunState {
    async fn fetch(
        &mut self,
        req: http_fetch::Request,
    ) -> wasmtime::Result<Result<http_fetch::Response, http_fetch::FetchError>> {
        self.enter();
        self.check_call_bytes("fetch", request_bytes(&req))?;
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
        self.enter();
        let bytes = reqs.iter().map(request_bytes).sum::<usize>() + reqs.len() * 64;
        self.check_call_bytes("fetch-all", bytes)?;
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

fn to_wit(r: FetchResponse) -> http_fetch::Response {
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

impl kv_checkpoint::Host for RunState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<(Vec<u8>, u64)>, kv_checkpoint::KvError>> {
        self.enter();
        self.check_call_bytes("kv-checkpoint.get", key.len())?;
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
        self.enter();
        self.check_call_bytes("kv-checkpoint.set", key.len() + value.len())?;
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Ok(Err(kv_checkpoint::KvError::Invalid(format!(
                "key over {MAX_KEY_BYTES} bytes or value over {MAX_VALUE_BYTES} bytes"
            ))));
        }
        let value = self.redact_value(value);
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
        self.enter();
        // An oversized batch is refused, not fatal: the guest splits it and sends it again
        // (WIT `emit-error.invalid`). Its bytes are already in the host (lifted before this
        // call), so refusing costs no more than stopping the run would.
        let bytes = events.iter().map(String::len).sum::<usize>() + events.len() * 16;
        if bytes > self.rt.max_call_bytes {
            return Ok(Err(emit_event::EmitError::Invalid(format!(
                "the batch passed {bytes} bytes into the host, over the per-call limit of {} bytes: emit it in smaller batches",
                self.rt.max_call_bytes
            ))));
        }
        if let Err(why) = self.events_left(events.len()) {
            return Ok(Err(emit_event::EmitError::Sink(why)));
        }
        let events = self.redact_events(events);
        if let Err(why) = self.validate_batch(&events) {
            return Ok(Err(emit_event::EmitError::Invalid(why)));
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

impl RunState {
    /// Refuses a batch that would pass the run's event limit. Not `invalid`: splitting the
    /// batch cannot help, so the guest must not skip events over it (WIT: a `sink` error ends
    /// the run, and the cursor stays behind the events that were not taken).
    fn events_left(&self, n: usize) -> Result<(), String> {
        let emitted = self.events.load(Ordering::Relaxed);
        if emitted + n as u64 > self.rt.max_events_per_run {
            return Err(format!(
                "the run's limit of {} events is reached",
                self.rt.max_events_per_run
            ));
        }
        Ok(())
    }

    /// Refuses a batch (whole) that breaks a size limit or holds something other than JSON
    /// objects; the guest may split it and send the parts again.
    fn validate_batch(&self, events: &[String]) -> Result<(), String> {
        if events.len() > self.rt.max_batch_events {
            return Err(format!(
                "a batch of {} events is over the limit of {}",
                events.len(),
                self.rt.max_batch_events
            ));
        }
        for (i, e) in events.iter().enumerate() {
            if e.len() > self.rt.max_event_bytes {
                return Err(format!(
                    "event {i} of the batch is {} bytes, over the limit of {}",
                    e.len(),
                    self.rt.max_event_bytes
                ));
            }
            // serde_json never writes a raw newline or carriage return inside a value (both are
            // JSON whitespace between tokens), but a guest could: keep JSONL intact for every
            // reader, including those that split lines on `\r`.
            if e.contains(['\n', '\r'])
                || !e.trim_start().starts_with('{')
                || serde_json::from_str::<serde::de::IgnoredAny>(e).is_err()
            {
                return Err(format!(
                    "event {i} of the batch is not a single-line JSON object"
                ));
            }
            let depth = nesting_depth(e);
            if depth > MAX_EVENT_DEPTH {
                return Err(format!(
                    "event {i} of the batch nests {depth} levels deep, over the limit of {MAX_EVENT_DEPTH}"
                ));
            }
        }
        Ok(())
    }
}

impl log::Host for RunState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.enter();
        // Before the cut: a cut could leave a part of the secret no pattern matches.
        let mut m = self.redact("log", message);
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
