//! The `emit-event` door: events out of the sandbox, checked, into the tenant's sink.
//!
//! - [`sink`]: the async destination interface ([`EventSink`]);
//! - [`jsonl`], [`stdout`]: the local sinks;
//! - [`probe`]: `check`'s probe of a sink, delivering nothing;
//! - [`push`] with [`sekoia`] and [`http`]: delivery into a platform (Sekoia's asset
//!   connector API, or NDJSON to any HTTP intake), acknowledged batch by batch;
//! - this module: the per-run state (`EmitState`), the batch rules of [`EmitPolicy`], its
//!   WIT implementation and linker registration.
//!
//! A batch is refused whole or written whole. An oversized or malformed batch is refused as
//! `invalid` (the guest may split it and send the parts again); a batch past the run's event
//! limit is refused as `sink` (splitting cannot help: the run ends, and the cursor stays
//! behind the events that were not taken). Every event is scrubbed of the tenant's secrets
//! before it is checked (a redaction inside a JSON string keeps it valid).

pub mod http;
pub mod inventory;
pub mod jsonl;
pub mod probe;
pub mod push;
pub mod sekoia;
pub mod sink;
pub mod stdout;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use inventory::Inventory;
pub use jsonl::JsonlFileSink;
pub use push::{PushOptions, PushSink, PushStats};
pub use sink::{EventSink, SinkError};
pub use stdout::StdoutSink;

use super::bindings::connector::runtime::emit_event;
use super::RunShared;

/// What one run may emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmitPolicy {
    /// Largest single event, bytes.
    pub max_event_bytes: usize,
    /// Most events in one `emit` call.
    pub max_batch_events: usize,
    /// Most events in one run.
    pub max_events_per_run: u64,
    /// Deepest nesting of objects and arrays an event may have: half of serde_json's
    /// recursion limit (128), so a consumer that parses events into a tree reads every event
    /// the host accepts (an OCSF event nests fewer than ten levels). Found by the emit
    /// property test.
    pub max_depth: usize,
}

/// One run's `emit-event` door.
pub(crate) struct EmitState {
    shared: Arc<RunShared>,
    policy: EmitPolicy,
    sink: Arc<dyn EventSink>,
    /// Events the sink accepted in this run.
    written: u64,
    /// What those events say about the accounts.
    inventory: Inventory,
}

impl EmitState {
    pub fn new(shared: Arc<RunShared>, policy: EmitPolicy, sink: Arc<dyn EventSink>) -> EmitState {
        EmitState {
            shared,
            policy,
            sink,
            written: 0,
            inventory: Inventory::default(),
        }
    }

    /// Events the sink accepted in this run.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// What the events the sink accepted in this run say about the accounts.
    pub fn inventory(&self) -> Inventory {
        self.inventory
    }

    /// Refuses a batch that would pass the run's event limit.
    fn events_left(&self, n: usize) -> Result<(), String> {
        if self.written + n as u64 > self.policy.max_events_per_run {
            return Err(format!(
                "the run's limit of {} events is reached",
                self.policy.max_events_per_run
            ));
        }
        Ok(())
    }

    /// Refuses a batch (whole) that breaks a size limit or holds something other than JSON
    /// objects; the guest may split it and send the parts again. `Ok` carries what the
    /// batch's events say about the accounts (read in the same parse that checks them).
    fn validate_batch(&self, events: &[String]) -> Result<Inventory, String> {
        let mut inventory = Inventory::default();
        let p = &self.policy;
        if events.len() > p.max_batch_events {
            return Err(format!(
                "a batch of {} events is over the limit of {}",
                events.len(),
                p.max_batch_events
            ));
        }
        for (i, e) in events.iter().enumerate() {
            if e.len() > p.max_event_bytes {
                return Err(format!(
                    "event {i} of the batch is {} bytes, over the limit of {}",
                    e.len(),
                    p.max_event_bytes
                ));
            }
            // serde_json never writes a raw newline or carriage return inside a value (both are
            // JSON whitespace between tokens), but a guest could: keep JSONL intact for every
            // reader, including those that split lines on `\r`.
            // One parse checks the JSON and reads the inventory's fields; an event it cannot
            // read that way (a duplicate key) is checked as JSON alone and not counted.
            let valid = !e.contains(['\n', '\r'])
                && e.trim_start().starts_with('{')
                && match serde_json::from_str::<inventory::Event>(e) {
                    Ok(event) => {
                        inventory.count(&event);
                        true
                    }
                    Err(_) => serde_json::from_str::<serde::de::IgnoredAny>(e).is_ok(),
                };
            if !valid {
                return Err(format!(
                    "event {i} of the batch is not a single-line JSON object"
                ));
            }
            let depth = nesting_depth(e);
            if depth > p.max_depth {
                return Err(format!(
                    "event {i} of the batch nests {depth} levels deep, over the limit of {}",
                    p.max_depth
                ));
            }
        }
        Ok(inventory)
    }
}

/// Registers the `emit-event` interface, served by the [`EmitState`] `get` finds.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut EmitState,
) -> wasmtime::Result<()> {
    emit_event::add_to_linker::<T, HasSelf<EmitState>>(linker, get)
}

impl emit_event::Host for EmitState {
    async fn emit(
        &mut self,
        events: Vec<String>,
    ) -> wasmtime::Result<Result<(), emit_event::EmitError>> {
        self.shared.enter();
        // An oversized batch is refused, not fatal: the guest splits it and sends it again
        // (WIT `emit-error.invalid`). Its bytes are already in the host (lifted before this
        // call), so refusing costs no more than stopping the run would.
        let bytes = events.iter().map(String::len).sum::<usize>() + events.len() * 16;
        if bytes > self.shared.max_call_bytes {
            return Ok(Err(emit_event::EmitError::Invalid(format!(
                "the batch passed {bytes} bytes into the host, over the per-call limit of {} bytes: emit it in smaller batches",
                self.shared.max_call_bytes
            ))));
        }
        if let Err(why) = self.events_left(events.len()) {
            return Ok(Err(emit_event::EmitError::Sink(why)));
        }
        let events: Vec<String> = events
            .into_iter()
            .map(|e| self.shared.redact("emit-event", e))
            .collect();
        let counted = match self.validate_batch(&events) {
            Ok(counted) => counted,
            Err(why) => return Ok(Err(emit_event::EmitError::Invalid(why))),
        };
        let n = events.len() as u64;
        match self.sink.write(events).await {
            Ok(()) => {
                self.written += n;
                // Only what the sink accepted is counted.
                self.inventory.add(&counted);
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(emit_event::EmitError::Sink(e.to_string()))),
        }
    }
}

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

#[cfg(test)]
mod properties;
