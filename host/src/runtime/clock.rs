//! Compressed time for simulations: a guest whose clocks run k times faster than real time
//! and whose sleeps are k times shorter ([`TimeScale`], [`TenantRun::with_time_scale`]).
//!
//! A full sync of a large tenant under Graph's documented report limits spends hours waiting;
//! a benchmark compresses that by running the emulator's limit windows and the guest's clocks
//! on one factor. Nothing in a tenant file can set it: only code building a [`TenantRun`] by
//! hand (the simulation, tests, benchmarks) can. With the default factor of 1 every clock and
//! sleep is the host's own, unchanged.
//!
//! The guest reads time through WASI `wall-clock`/`monotonic-clock` and sleeps through
//! `monotonic-clock.subscribe-duration`/`subscribe-instant` (Rust's `std::thread::sleep` on
//! wasm32-wasip2). wasmtime-wasi 48 lets a run's [`WasiCtx`](wasmtime_wasi::WasiCtx) carry its
//! own [`HostWallClock`] and [`HostMonotonicClock`], but its `subscribe-*` implementations
//! sleep the real duration (a tokio timer) whatever clock is installed: so the runtime's
//! linker shadows `wasi:clocks/monotonic-clock` with [`ScaledClocks`], which hands the same
//! implementation a duration divided by the run's factor.
//!
//! [`TenantRun`]: super::TenantRun
//! [`TenantRun::with_time_scale`]: super::TenantRun::with_time_scale

use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// How much faster than real time a run's guest sees time pass (**simulation only**).
///
/// With factor k the guest's wall clock reads `origin_wall + k × (now − origin)`, its
/// monotonic clock `k × (now − origin)`, and a sleep of d lasts d / k. The default is 1: real
/// time. The origin is the moment the guest's and the real clocks agree: by default the start
/// of the run; [`TimeScale::anchored`] shares one with another simulated party (the Graph
/// emulator's limit windows) so `Retry-After` dates mean the same instant to both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    factor: u32,
    origin: Option<(Instant, SystemTime)>,
}

impl Default for TimeScale {
    fn default() -> TimeScale {
        TimeScale::REAL
    }
}

impl TimeScale {
    /// Real time: the host's own clocks and sleeps.
    pub const REAL: TimeScale = TimeScale {
        factor: 1,
        origin: None,
    };

    /// Time k times faster, from the start of the run. A factor of 0 is refused: it names
    /// what failed and what to do.
    pub fn new(factor: u32) -> anyhow::Result<TimeScale> {
        if factor == 0 {
            anyhow::bail!(
                "time scale 0: it is how many times faster than real time the guest's clocks run; use 1 for real time"
            );
        }
        Ok(TimeScale {
            factor,
            origin: None,
        })
    }

    /// Time k times faster, agreeing with real time at `origin` (wall time `origin_wall`).
    pub fn anchored(
        factor: u32,
        origin: Instant,
        origin_wall: SystemTime,
    ) -> anyhow::Result<TimeScale> {
        Ok(TimeScale {
            origin: Some((origin, origin_wall)),
            ..TimeScale::new(factor)?
        })
    }

    /// The factor (1: real time).
    pub fn factor(&self) -> u32 {
        self.factor
    }

    /// The guest's clocks for a run starting now; `None` at factor 1 (keep the host's).
    pub(crate) fn clocks(&self) -> Option<(ScaledWallClock, ScaledMonotonicClock)> {
        if self.factor == 1 {
            return None;
        }
        let (origin, origin_wall) = self
            .origin
            .unwrap_or_else(|| (Instant::now(), SystemTime::now()));
        let since_epoch = origin_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Some((
            ScaledWallClock {
                origin,
                origin_wall: since_epoch,
                factor: self.factor,
            },
            ScaledMonotonicClock {
                origin,
                factor: self.factor,
            },
        ))
    }
}

/// Virtual time elapsed since `origin`: k × real.
fn scaled_since(origin: Instant, factor: u32) -> Duration {
    Instant::now()
        .saturating_duration_since(origin)
        .saturating_mul(factor)
}

/// A wall clock running `factor` times faster than the host's from `origin`.
pub(crate) struct ScaledWallClock {
    origin: Instant,
    origin_wall: Duration,
    factor: u32,
}

impl HostWallClock for ScaledWallClock {
    fn resolution(&self) -> Duration {
        wasmtime_wasi::clocks::wall_clock()
            .resolution()
            .saturating_mul(self.factor)
    }

    fn now(&self) -> Duration {
        self.origin_wall
            .saturating_add(scaled_since(self.origin, self.factor))
    }
}

/// A monotonic clock (nanoseconds from `origin`) running `factor` times faster than the
/// host's.
pub(crate) struct ScaledMonotonicClock {
    origin: Instant,
    factor: u32,
}

impl HostMonotonicClock for ScaledMonotonicClock {
    fn resolution(&self) -> u64 {
        wasmtime_wasi::clocks::monotonic_clock()
            .resolution()
            .saturating_mul(u64::from(self.factor))
    }

    fn now(&self) -> u64 {
        u64::try_from(scaled_since(self.origin, self.factor).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// `wasi:clocks/monotonic-clock` of a run with a time factor: `now` and `resolution` are the
/// run's (scaled) clock's, and a subscription for a virtual duration d waits d / factor real
/// time, through wasmtime-wasi's own implementation.
pub(crate) struct ScaledClocks<'a> {
    inner: WasiClocksCtxView<'a>,
    factor: u32,
    shared: &'a crate::doors::RunShared,
}

impl<'a> ScaledClocks<'a> {
    /// The clocks of a run whose WASI clocks are `inner`, running `factor` times faster than
    /// real time; what the guest sleeps is counted in `shared`.
    pub(crate) fn new(
        inner: WasiClocksCtxView<'a>,
        factor: u32,
        shared: &'a crate::doors::RunShared,
    ) -> ScaledClocks<'a> {
        ScaledClocks {
            inner,
            factor,
            shared,
        }
    }

    /// Real nanoseconds of `virtual_nanos` (rounded up, so a wait is never cut short).
    fn real(&self, virtual_nanos: u64) -> u64 {
        virtual_nanos.div_ceil(u64::from(self.factor.max(1)))
    }
}

impl monotonic_clock::Host for ScaledClocks<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        monotonic_clock::Host::now(&mut self.inner)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        monotonic_clock::Host::resolution(&mut self.inner)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = monotonic_clock::Host::now(&mut self.inner)?;
        let wait = self.real(when.saturating_sub(now));
        self.shared.slept(wait);
        monotonic_clock::Host::subscribe_duration(&mut self.inner, wait)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let wait = self.real(duration);
        self.shared.slept(wait);
        monotonic_clock::Host::subscribe_duration(&mut self.inner, wait)
    }
}

/// The marker that ties [`ScaledClocks`] to the linker.
struct ScaledClocksData;

impl wasmtime::component::HasData for ScaledClocksData {
    type Data<'a> = ScaledClocks<'a>;
}

/// Replaces `wasi:clocks/monotonic-clock` (already added with the rest of WASI) by
/// [`ScaledClocks`], which `get` takes from the store's state (the doors' pattern: the
/// state composes, this module does not know it); at factor 1 it answers exactly as
/// wasmtime-wasi's own.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> ScaledClocks<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = monotonic_clock::add_to_linker::<T, ScaledClocksData>(linker, get);
    linker.allow_shadowing(false);
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_keeps_the_host_clocks_and_zero_is_refused() {
        assert!(TimeScale::default().clocks().is_none());
        assert!(TimeScale::new(1)
            .expect("1 is real time")
            .clocks()
            .is_none());
        let error = TimeScale::new(0).expect_err("0 is refused").to_string();
        assert!(error.contains("time scale 0"), "{error}");
    }

    #[test]
    fn scaled_clocks_run_k_times_faster_from_their_origin() {
        let origin = Instant::now() - Duration::from_secs(2);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (wall_clock, mono) = TimeScale::anchored(50, origin, wall)
            .expect("a factor")
            .clocks()
            .expect("scaled");
        // 2 s (and a little) real since the origin: 100 s (and a little more) virtual.
        let w = wall_clock.now().as_secs_f64() - 1_000_000.0;
        assert!((100.0..110.0).contains(&w), "wall {w}");
        let m = mono.now() as f64 / 1e9;
        assert!((100.0..110.0).contains(&m), "monotonic {m}");
        let (a, b) = (mono.now(), mono.now());
        assert!(b >= a, "monotonic: {a} then {b}");
    }
}
