//! Fleet mode: many hosts, one PostgreSQL database ([`crate::fleet`]), each tenant on
//! exactly one host at a time.
//!
//! One loop per host replaces the per-tenant timers: while the pool has room it claims due
//! tenants from the database (`FOR UPDATE SKIP LOCKED`: hosts claiming at the same instant
//! skip each other's rows), runs each with its lease's fenced checkpoint store, renews the
//! lease every third of its TTL while the run lasts, and releases it with the tenant's next
//! due time — the schedule (interval, jitter, backoff after consecutive failures) is computed
//! here and stored there, so it survives restarts and moves with the tenant.
//!
//! What happens on failure:
//! - a host that dies (SIGKILL, power): its leases are not renewed; once they expire (the
//!   TTL) another host claims the tenants (`connector_lease_takeovers_total`) and resumes at
//!   the last committed cursor, redelivering at most the page in flight;
//! - a host that stalls past its lease (GC pause, SIGSTOP, partition) and comes back: its
//!   renewal finds the lease gone, and every checkpoint write its run still makes carries the
//!   old fencing token and is refused by the database (`connector_fenced_writes_total`), so
//!   its cursor never moves after another host took over; the run ends failed and releases
//!   nothing;
//! - the database unreachable: claims and renewals fail and are retried every poll; runs in
//!   flight cannot commit (their writes fail), so nothing moves until it is back.
//!
//! `once` in a fleet: each tenant runs once across the fleet; a host exits when no tenant of
//! its own is due or leased anywhere. A finished tenant is marked due in ten years in the
//! database (that is what "ran once" is stored as); a later `serve` without `once` on the
//! same database runs it then, not before.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::task::JoinSet;

use super::schedule::{jitter_sample, next_delay};
use super::scheduler::{Refused, Runner, Scheduler, Tenant};
use crate::fleet::{DatabaseError, Fleet, Lease, LeaseOutcome};
use crate::CheckpointStore;

/// What a once-mode release stores as the next due time: "done".
const ONCE_DONE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What the fleet scheduler asks of the fleet's database ([`Fleet`]; a fake in the tests,
/// so the lease paths are tested without timing).
#[async_trait::async_trait]
pub(super) trait Leases: Send + Sync + 'static {
    /// [`Fleet::register`].
    async fn register(&self, tenants: &[String]) -> Result<u64, DatabaseError>;
    /// [`Fleet::claim`].
    async fn claim(&self, max: usize, ttl: Duration) -> Result<Vec<Lease>, DatabaseError>;
    /// [`Fleet::renew`]: `false` when the lease is no longer live.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, DatabaseError>;
    /// [`Fleet::release`].
    async fn release(&self, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool, DatabaseError>;
    /// [`Fleet::time_to_next_claim`].
    async fn time_to_next_claim(&self) -> Result<Option<Duration>, DatabaseError>;
    /// [`Fleet::checkpoint_store`].
    fn checkpoint_store(&self, lease: &Lease) -> Arc<dyn CheckpointStore>;
    /// [`Fleet::fenced_writes`].
    fn fenced_writes(&self) -> u64;
}

#[async_trait::async_trait]
impl Leases for Fleet {
    async fn register(&self, tenants: &[String]) -> Result<u64, DatabaseError> {
        Fleet::register(self, tenants).await
    }
    async fn claim(&self, max: usize, ttl: Duration) -> Result<Vec<Lease>, DatabaseError> {
        Fleet::claim(self, max, ttl).await
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, DatabaseError> {
        Fleet::renew(self, lease, ttl).await
    }
    async fn release(&self, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool, DatabaseError> {
        Fleet::release(self, lease, outcome).await
    }
    async fn time_to_next_claim(&self) -> Result<Option<Duration>, DatabaseError> {
        Fleet::time_to_next_claim(self).await
    }
    fn checkpoint_store(&self, lease: &Lease) -> Arc<dyn CheckpointStore> {
        Fleet::checkpoint_store(self, lease)
    }
    fn fenced_writes(&self) -> u64 {
        Fleet::fenced_writes(self)
    }
}

/// The fleet a server belongs to, and how it leases.
#[derive(Clone)]
pub(crate) struct FleetMode {
    fleet: Arc<dyn Leases>,
    ttl: Duration,
    poll: Duration,
}

/// The lease TTL a fleet server uses is clamped to this range (the tenants file accepts
/// 1 s to 1 h; the library's callers may pass anything): renewals every third of it must be
/// possible, and the database must be able to add it to its clock.
const TTL_RANGE: (Duration, Duration) = (Duration::from_millis(300), Duration::from_secs(86_400));

/// The idle poll is clamped to this range (the tenants file accepts 0.05 s to 60 s).
const POLL_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(3600));

impl FleetMode {
    /// `ttl` and `poll` are clamped to [`TTL_RANGE`] and [`POLL_RANGE`].
    pub fn new(fleet: Fleet, ttl: Duration, poll: Duration) -> FleetMode {
        Self::with_leases(Arc::new(fleet), ttl, poll)
    }

    /// Leasing from `fleet` (the database, or a fake).
    fn with_leases(fleet: Arc<dyn Leases>, ttl: Duration, poll: Duration) -> FleetMode {
        FleetMode {
            fleet,
            ttl: ttl.clamp(TTL_RANGE.0, TTL_RANGE.1),
            poll: poll.clamp(POLL_RANGE.0, POLL_RANGE.1),
        }
    }

    /// A handle for the tasks (clones share the fleet's connections and counters).
    fn handle(&self) -> Arc<FleetMode> {
        Arc::new(self.clone())
    }

    /// Adds tenants to the database (due now if new); logged, not fatal, on failure: the
    /// next start registers them again.
    pub async fn register(&self, keys: &[String]) {
        if let Err(e) = self.fleet.register(keys).await {
            tracing::error!(
                "cannot register {} tenants in the fleet database: {e}",
                keys.len()
            );
        }
    }
}

/// The fleet's scheduler: one loop claims due tenants for every registered tenant.
impl Scheduler for FleetMode {
    fn start(
        &self,
        runner: Arc<dyn Runner>,
        tenants: Vec<Arc<Tenant>>,
    ) -> Vec<BoxFuture<'static, ()>> {
        let keys = tenants.iter().map(|t| t.key.clone()).collect();
        vec![fleet_loop(runner, self.handle(), keys).boxed()]
    }

    fn add(&self, _: Arc<dyn Runner>, slot: Arc<Tenant>) -> BoxFuture<'static, ()> {
        // The running loop claims it once the database has it.
        let mode = self.handle();
        async move { mode.register(std::slice::from_ref(&slot.key)).await }.boxed()
    }

    fn refuse_run_now(&self, tenant: &str) -> Option<Refused> {
        Some(Refused::LeasedByFleet {
            tenant: tenant.to_string(),
        })
    }

    fn leases(&self) -> bool {
        true
    }
}

/// Claims and runs due tenants until shutdown (in once mode: until no tenant is left).
async fn fleet_loop(inner: Arc<dyn Runner>, mode: Arc<FleetMode>, keys: Vec<String>) {
    mode.register(&keys).await;
    let mut stopping = inner.stopping();
    let capacity = inner.options().max_concurrent_runs;
    let once = inner.options().once;
    let mut runs: JoinSet<()> = JoinSet::new();
    loop {
        if *stopping.borrow() {
            break;
        }
        let free = capacity.saturating_sub(runs.len());
        let mut claimed = 0;
        if free > 0 {
            match mode.fleet.claim(free, mode.ttl).await {
                Ok(leases) => {
                    claimed = leases.len();
                    for lease in leases {
                        if lease.takeover {
                            inner.metrics().record_lease_takeover(&lease.tenant);
                            tracing::warn!(
                                tenant = %lease.tenant,
                                previous_host = lease.previous_host.as_deref().unwrap_or("?"),
                                token = lease.token,
                                "took over a tenant whose lease expired unreleased (its host stopped or stalled); resuming at its last committed cursor"
                            );
                        }
                        runs.spawn(leased_run(inner.clone(), mode.clone(), lease));
                    }
                }
                Err(e) => tracing::warn!(
                    "cannot claim tenants from the fleet database: {e}; trying again in {:?}",
                    mode.poll
                ),
            }
        }
        inner.metrics().set_leases_held(runs.len());
        inner
            .metrics()
            .set_fenced_writes(mode.fleet.fenced_writes());
        if claimed > 0 && runs.len() < capacity {
            continue;
        }
        if once && runs.is_empty() && claimed == 0 {
            match mode.fleet.time_to_next_claim().await {
                Ok(None) => break,
                Ok(Some(wait)) if wait >= ONCE_DONE / 2 => break,
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!("cannot read the fleet's schedule: {e}"),
            }
        }
        tokio::select! {
            Some(_) = runs.join_next(), if !runs.is_empty() => {}
            _ = tokio::time::sleep(mode.poll) => {}
            _ = stopping.wait_for(|s| *s) => break,
        }
    }
    // Shutdown (or once mode done): runs in flight end within the server's grace period, or
    // are cut with this task; a cut run's lease expires and another host resumes it.
    while runs.join_next().await.is_some() {
        inner.metrics().set_leases_held(runs.len());
    }
    inner.metrics().set_leases_held(0);
    inner
        .metrics()
        .set_fenced_writes(mode.fleet.fenced_writes());
}

/// One leased run: renewed while it lasts, released with the tenant's next due time.
async fn leased_run(inner: Arc<dyn Runner>, mode: Arc<FleetMode>, lease: Lease) {
    let Some(slot) = inner.tenant(&lease.tenant) else {
        // Claims only cover this host's registered tenants; a tenant registered by a
        // platform call and then unknown here would be a host bug: hand it back.
        let outcome = LeaseOutcome::failed("not registered on this host", Duration::ZERO);
        let _ = mode.fleet.release(&lease, &outcome).await;
        return;
    };
    let store = mode.fleet.checkpoint_store(&lease);
    let renew = async {
        let mut ticker = tokio::time::interval(mode.ttl / 3);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match mode.fleet.renew(&lease, mode.ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    // Another host holds the tenant now. The run is not cut here: its next
                    // checkpoint write is refused by the fence, which ends it without moving
                    // the cursor, whatever this host's clock says.
                    tracing::warn!(
                        tenant = %lease.tenant,
                        token = lease.token,
                        "lease lost (this host stalled past it and another host took the tenant); this run's checkpoint writes will be refused"
                    );
                    std::future::pending::<()>().await;
                }
                Err(e) => tracing::warn!(
                    tenant = %lease.tenant,
                    "cannot renew the lease: {e}; retrying (the lease lasts {:?} from the last renewal)",
                    mode.ttl
                ),
            }
        }
    };
    // A panic (a host bug; one inside the run itself is already a failed run) is a failed
    // run too: counted, backed off and released, never a lease left to expire.
    let executed = tokio::select! {
        executed = crate::runtime::panics::catch(inner.execute(&slot.key, Some(store))) => executed,
        () = renew => unreachable!("renewal never ends by itself"),
    };
    let executed = match executed {
        Ok(executed) => executed,
        Err(panicked) => {
            let failures = inner.metrics().record_failure(
                &slot.key,
                crate::metrics::FailureKind::Host,
                Duration::ZERO,
            );
            tracing::error!(tenant = %slot.key, consecutive_failures = failures, "{panicked} (a host bug); counted as a failed run and released with the backoff");
            Ok(Err(crate::RunError::Host {
                tenant: slot.key.clone(),
                message: format!("{panicked} (a host bug)"),
            }))
        }
    };
    let outcome = match &executed {
        Ok(Ok(_)) => {
            let next = if inner.options().once {
                ONCE_DONE
            } else {
                next_delay(&slot.schedule, 0, jitter_sample())
            };
            LeaseOutcome::succeeded(next)
        }
        // A run whose lease lapsed under it (this host stalled past the TTL: its fenced
        // checkpoint writes were refused) did not fail the tenant: it is due again at once,
        // for whichever host claims it next, even in once mode (a renewal refused now says
        // the lease is no longer live; a live one is only extended until the release below).
        Ok(Err(e)) if matches!(mode.fleet.renew(&lease, mode.ttl).await, Ok(false)) => {
            LeaseOutcome::failed(
                format!("{e} (the lease lapsed during the run: due again at once)"),
                Duration::ZERO,
            )
        }
        Ok(Err(e)) => {
            let next = if inner.options().once {
                ONCE_DONE
            } else {
                next_delay(&slot.schedule, lease.failures + 1, jitter_sample())
            };
            LeaseOutcome::failed(e.to_string(), next)
        }
        // Not run (shutting down, or a run_now of the tenant in flight on this host): due
        // again at once, for whichever host claims it next.
        Err(refused) => LeaseOutcome::failed(refused.to_string(), Duration::ZERO),
    };
    match mode.fleet.release(&lease, &outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            tenant = %lease.tenant,
            token = lease.token,
            "the lease was lost before release: another host holds the tenant, nothing was stored"
        ),
        Err(e) => tracing::warn!(
            tenant = %lease.tenant,
            "cannot release the lease: {e}; it expires by itself within {:?}",
            mode.ttl
        ),
    }
}

#[cfg(test)]
mod tests {
    //! The lease decisions through the seam: a fake [`Runner`] whose run fails, and fake
    //! [`Leases`] that say whether the lease is still live when the run ends. No database,
    //! no clock: the lapsed-lease path (fixed after the fleet drill left a tenant 'failed')
    //! is decided by what `renew` answers, which the fake fixes.

    use std::sync::Mutex;

    use tokio::sync::watch;

    use super::*;
    use crate::error::ConnectorErrorKind;
    use crate::metrics::Metrics;
    use crate::serve::{Schedule, ServeOptions};
    use crate::{RunError, RunOutcome};

    struct FailingRunner {
        options: ServeOptions,
        metrics: Metrics,
        stopping: watch::Sender<bool>,
        tenant: Arc<Tenant>,
    }

    impl FailingRunner {
        fn new(once: bool) -> Arc<FailingRunner> {
            Arc::new(FailingRunner {
                options: ServeOptions {
                    once,
                    ..ServeOptions::default()
                },
                metrics: Metrics::new(1),
                stopping: watch::Sender::new(false),
                tenant: Arc::new(Tenant {
                    key: "contoso".into(),
                    schedule: Schedule::default(),
                    planned_delay: Mutex::new(None),
                }),
            })
        }
    }

    #[async_trait::async_trait]
    impl Runner for FailingRunner {
        async fn execute(
            &self,
            key: &str,
            _: Option<Arc<dyn CheckpointStore>>,
        ) -> Result<RunOutcome, Refused> {
            Ok(Err(RunError::Connector {
                tenant: key.into(),
                kind: ConnectorErrorKind::Upstream,
                message: "okta-users upstream: a checkpoint write was fenced".into(),
            }))
        }
        fn tenant(&self, key: &str) -> Option<Arc<Tenant>> {
            (key == self.tenant.key).then(|| self.tenant.clone())
        }
        fn metrics(&self) -> &Metrics {
            &self.metrics
        }
        fn options(&self) -> &ServeOptions {
            &self.options
        }
        fn stopping(&self) -> watch::Receiver<bool> {
            self.stopping.subscribe()
        }
    }

    /// Leases whose `renew` answers `live`; every release is kept.
    struct FakeLeases {
        live: bool,
        released: Mutex<Vec<LeaseOutcome>>,
        store: Arc<crate::SqliteCheckpointStore>,
        _dir: tempfile::TempDir,
    }

    impl FakeLeases {
        fn new(live: bool) -> Arc<FakeLeases> {
            let dir = tempfile::tempdir().unwrap();
            let store = crate::SqliteCheckpointStore::open(&dir.path().join("c.sqlite")).unwrap();
            Arc::new(FakeLeases {
                live,
                released: Mutex::new(Vec::new()),
                store: Arc::new(store),
                _dir: dir,
            })
        }
    }

    #[async_trait::async_trait]
    impl Leases for FakeLeases {
        async fn register(&self, tenants: &[String]) -> Result<u64, DatabaseError> {
            Ok(tenants.len() as u64)
        }
        async fn claim(&self, _: usize, _: Duration) -> Result<Vec<Lease>, DatabaseError> {
            Ok(Vec::new())
        }
        async fn renew(&self, _: &Lease, _: Duration) -> Result<bool, DatabaseError> {
            Ok(self.live)
        }
        async fn release(&self, _: &Lease, outcome: &LeaseOutcome) -> Result<bool, DatabaseError> {
            self.released.lock().unwrap().push(outcome.clone());
            Ok(true)
        }
        async fn time_to_next_claim(&self) -> Result<Option<Duration>, DatabaseError> {
            Ok(None)
        }
        fn checkpoint_store(&self, _: &Lease) -> Arc<dyn CheckpointStore> {
            self.store.clone()
        }
        fn fenced_writes(&self) -> u64 {
            0
        }
    }

    fn lease() -> Lease {
        Lease {
            tenant: "contoso".into(),
            token: 7,
            host: "host-a".into(),
            expires: std::time::SystemTime::now() + Duration::from_secs(3600),
            takeover: false,
            previous_host: None,
            failures: 2,
        }
    }

    /// The outcome a failed leased run is released with, for a lease live or not at the end.
    async fn released(once: bool, live: bool) -> LeaseOutcome {
        let leases = FakeLeases::new(live);
        let mode = FleetMode::with_leases(
            leases.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(1),
        );
        leased_run(FailingRunner::new(once), Arc::new(mode), lease()).await;
        let released = leases.released.lock().unwrap().clone();
        assert_eq!(released.len(), 1, "{released:?}");
        released.into_iter().next().unwrap()
    }

    #[tokio::test]
    async fn a_failed_run_whose_lease_lapsed_is_released_due_at_once_even_in_once_mode() {
        for once in [true, false] {
            let outcome = released(once, false).await;
            assert!(!outcome.succeeded);
            assert_eq!(outcome.next_due_in, Duration::ZERO, "once = {once}");
            let message = outcome.message.unwrap();
            assert!(
                message.contains("the lease lapsed during the run: due again at once"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_run_under_a_live_lease_backs_off_or_is_done_in_once_mode() {
        let outcome = released(true, true).await;
        assert!(!outcome.succeeded);
        assert_eq!(outcome.next_due_in, ONCE_DONE);
        let outcome = released(false, true).await;
        assert!(!outcome.succeeded);
        // Third failure in a row (the lease says two before): the backoff, never "at once".
        let s = Schedule::default();
        let backoff = (s.backoff_initial * 4).min(s.backoff_max);
        assert!(
            outcome.next_due_in >= backoff && outcome.next_due_in <= backoff + s.jitter,
            "{:?}",
            outcome.next_due_in
        );
        assert!(outcome.message.unwrap().contains("okta-users upstream"));
    }
}
