//! The per-run limits a guest cannot exceed, and how a run that hit one is reported.
//!
//! Memory is capped across all of a guest's memories by [`RunLimiter`]; CPU by counting
//! epoch ticks spent in guest code (the same epochs make a spinning guest yield to other
//! runs); bytes passed into the host per call, events per run and the run's wall clock by
//! the doors and the runtime. When a limit stops a run, the store remembers which one, so
//! the error names it instead of showing a bare trap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::ResourceLimiter;

/// Engine-wide limits applied to every run.
#[derive(Clone, Debug)]
pub struct RuntimeLimits {
    /// Most linear memory a guest may hold (all its memories together), bytes.
    pub memory_bytes: usize,
    /// CPU time a run may spend in guest code, milliseconds (10 ms resolution).
    pub cpu_budget_ms: u64,
    /// Most bytes the guest may pass into the host in one call (requests, events, values).
    pub max_call_bytes: usize,
    /// Largest single event, bytes.
    pub max_event_bytes: usize,
    /// Most events in one `emit` call.
    pub max_batch_events: usize,
    /// Most events in one run.
    pub max_events_per_run: u64,
    /// Captured guest stdout/stderr, bytes each.
    pub guest_output_bytes: usize,
    /// Longest log line kept from the guest, bytes.
    pub max_log_bytes: usize,
    /// Instance slots of the pooling allocator = most runs at once (0: allocate on demand).
    pub pool_size: u32,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            memory_bytes: 256 * 1024 * 1024,
            cpu_budget_ms: 600_000,
            max_call_bytes: 16 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
            max_batch_events: 10_000,
            max_events_per_run: 20_000_000,
            guest_output_bytes: 64 * 1024,
            max_log_bytes: 4096,
            pool_size: 128,
        }
    }
}

/// Which limit stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// The memory cap.
    Memory,
    /// The CPU budget.
    Cpu,
    /// The guest's call stack overflowed.
    Stack,
    /// Too many bytes passed into the host in one call.
    CallSize,
}

impl LimitKind {
    /// Short name, for metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::Cpu => "cpu",
            LimitKind::Stack => "stack",
            LimitKind::CallSize => "call-size",
        }
    }
}

/// Memory accounting of one store: every memory's growth goes through here.
#[derive(Debug)]
pub struct RunLimiter {
    cap: usize,
    total: usize,
    /// Set when a growth was refused: the size that was asked for in total.
    pub refused_at: Option<usize>,
    /// The largest total granted so far (a refused growth is not counted), shared so the
    /// figure outlives the store (a run cut at its timeout drops it).
    peak: Arc<AtomicU64>,
}

impl RunLimiter {
    /// A limiter allowing `cap` bytes across all memories, keeping its peak in `peak`.
    pub fn new(cap: usize, peak: Arc<AtomicU64>) -> Self {
        RunLimiter {
            cap,
            total: 0,
            refused_at: None,
            peak,
        }
    }
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.cap {
            self.refused_at = Some(total);
            // A trap, not a failed memory.grow: the guest's allocator would abort anyway, and
            // this way the run's error names the limit.
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes exceeded (the guest asked for {total})",
                self.cap
            )));
        }
        self.total = total;
        self.peak.fetch_max(total as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        8
    }

    fn tables(&self) -> usize {
        64
    }
}

/// CPU accounting by epoch ticks.
#[derive(Debug, Default)]
pub struct CpuMeter {
    /// Ticks charged so far.
    pub ticks: u64,
    /// Ticks allowed.
    pub budget: u64,
    /// The guest just came back from a host call: the next deadline hit is stale (the
    /// ticks passed while the host worked) and is not charged.
    pub resumed: bool,
    /// Set when the budget ran out.
    pub exhausted: bool,
}

impl CpuMeter {
    /// A meter allowing `budget_ms` of guest execution at `tick_ms` per epoch.
    pub fn new(budget_ms: u64, tick_ms: u64) -> Self {
        CpuMeter {
            ticks: 0,
            budget: (budget_ms / tick_ms.max(1)).max(1),
            resumed: false,
            exhausted: false,
        }
    }

    /// Charges one deadline hit; false when the budget is spent.
    pub fn charge(&mut self) -> bool {
        if std::mem::take(&mut self.resumed) {
            return true;
        }
        self.ticks += 1;
        if self.ticks > self.budget {
            self.exhausted = true;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_capped_across_memories() {
        let peak = Arc::new(AtomicU64::new(0));
        let mut l = RunLimiter::new(100, peak.clone());
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap(), "a second memory");
        assert!(
            l.memory_growing(60, 70, None).unwrap(),
            "first grows by 10: 100 in all"
        );
        let e = l.memory_growing(30, 31, None).unwrap_err();
        assert!(
            e.to_string().contains("memory limit of 100 bytes exceeded"),
            "{e}"
        );
        assert_eq!(l.refused_at, Some(101));
        assert_eq!(
            peak.load(Ordering::Relaxed),
            100,
            "the refused growth is no peak"
        );
        assert!(
            l.memory_growing(70, 10, None).unwrap(),
            "shrinks to 40 in all"
        );
        assert_eq!(peak.load(Ordering::Relaxed), 100, "the peak stays");
    }

    #[test]
    fn cpu_meter_skips_the_stale_tick_after_a_host_call() {
        let mut m = CpuMeter::new(30, 10);
        assert_eq!(m.budget, 3);
        assert!(m.charge() && m.charge() && m.charge());
        m.resumed = true;
        assert!(m.charge(), "not charged: time spent in the host");
        assert!(!m.charge());
        assert!(m.exhausted);
    }
}
