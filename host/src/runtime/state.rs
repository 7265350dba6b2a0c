//! A run's store state: the sandbox's own parts (deny-all WASI, resource table, memory
//! limiter, CPU meter) and one value per door ([`crate::doors`]). It only composes them;
//! each door owns its policy, state, WIT implementation and linker registration.

use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{CpuMeter, LimitKind, RunLimiter};
use crate::doors::checkpoint::CheckpointState;
use crate::doors::emit::EmitState;
use crate::doors::http::HttpState;
use crate::doors::log::LogState;
use crate::doors::{self, RunShared};

/// Per-run state inside the store.
pub(crate) struct RunState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: RunLimiter,
    pub cpu: CpuMeter,
    /// What the doors share: tenant, scrubber, the limit that stopped the run.
    pub shared: Arc<RunShared>,
    /// How many times faster than real time the guest's clocks run (1 but in simulations:
    /// [`super::clock`]); its sleeps are this many times shorter.
    pub time_factor: u32,
    pub http: HttpState,
    pub checkpoint: CheckpointState,
    pub emit: EmitState,
    pub log: LogState,
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
    /// Registers deny-all WASI (its monotonic clock scaled by the run's time factor) and the
    /// four doors.
    pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        super::clock::add_to_linker(linker, |s| {
            let inner = wasmtime_wasi::clocks::WasiClocksCtxView {
                ctx: s.wasi.clocks(),
                table: &mut s.table,
            };
            super::clock::ScaledClocks::new(inner, s.time_factor, &s.shared)
        })?;
        doors::http::add_to_linker(linker, |s| &mut s.http)?;
        doors::checkpoint::add_to_linker(linker, |s| &mut s.checkpoint)?;
        doors::emit::add_to_linker(linker, |s| &mut s.emit)?;
        doors::log::add_to_linker(linker, |s| &mut s.log)?;
        Ok(())
    }

    /// Charges one epoch tick to the guest; false when its CPU budget is spent. A tick
    /// that ends while the guest waits in a host call is not its CPU.
    pub fn charge_tick(&mut self) -> bool {
        if self.shared.take_entered() {
            self.cpu.resumed = true;
        }
        self.cpu.charge()
    }

    /// The limit that stopped the run, if any.
    pub fn limit_hit(&self, memory_bytes: usize) -> Option<(LimitKind, String)> {
        if let Some(hit) = self.shared.limit_hit() {
            return Some(hit);
        }
        self.limiter.refused_at.map(|asked| {
            (
                LimitKind::Memory,
                format!(
                    "the guest asked for {asked} bytes of memory, over the limit of {memory_bytes} bytes"
                ),
            )
        })
    }
}
