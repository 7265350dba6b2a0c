//! The local scheduler: every tenant on its own timer in this process (no fleet). A first
//! run after a random `0..jitter`, then every `interval` (+ jitter); after failures, the
//! backoff ([`super::next_delay`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::schedule::{first_delay, jitter_sample, next_delay};
use super::scheduler::{lock, Refused, Runner, Scheduler, Tenant};
use crate::metrics::FailureKind;

/// Schedules each tenant on its own timer.
pub(super) struct LocalScheduler;

impl Scheduler for LocalScheduler {
    fn start(
        &self,
        runner: Arc<dyn Runner>,
        tenants: Vec<Arc<Tenant>>,
    ) -> Vec<BoxFuture<'static, ()>> {
        tenants
            .into_iter()
            .map(|slot| tenant_loop(runner.clone(), slot).boxed())
            .collect()
    }

    fn add(&self, runner: Arc<dyn Runner>, slot: Arc<Tenant>) -> BoxFuture<'static, ()> {
        tenant_loop(runner, slot).boxed()
    }

    fn refuse_run_now(&self, _: &str) -> Option<Refused> {
        None
    }

    fn leases(&self) -> bool {
        false
    }
}

/// The scheduling task of one tenant: wait, run, compute the next delay, until shutdown.
///
/// A panic anywhere in it (a host bug; a panic inside the run itself is already a failed run,
/// see [`crate::runtime::panics`]) is counted as a failed run of kind `host` and the schedule
/// goes on after the backoff: a tenant is never silently left unscheduled.
async fn tenant_loop(runner: Arc<dyn Runner>, slot: Arc<Tenant>) {
    let once = runner.options().once;
    let mut delay = if once {
        Duration::ZERO
    } else {
        first_delay(&slot.schedule, jitter_sample())
    };
    loop {
        match crate::runtime::panics::catch(tenant_schedule(runner.clone(), slot.clone(), delay))
            .await
        {
            Ok(()) => return,
            Err(panicked) => {
                *lock(&slot.planned_delay) = None;
                let failures =
                    runner
                        .metrics()
                        .record_failure(&slot.key, FailureKind::Host, Duration::ZERO);
                if once || *runner.stopping().borrow() {
                    tracing::error!(tenant = %slot.key, consecutive_failures = failures, "{panicked} (a host bug); counted as a failed run");
                    return;
                }
                delay = next_delay(&slot.schedule, failures, jitter_sample());
                tracing::error!(
                    tenant = %slot.key,
                    consecutive_failures = failures,
                    next_run_in_secs = delay.as_secs(),
                    "{panicked} (a host bug); counted as a failed run, the next run is scheduled after the backoff"
                );
            }
        }
    }
}

/// [`tenant_loop`]'s schedule, its first run after `delay`.
async fn tenant_schedule(runner: Arc<dyn Runner>, slot: Arc<Tenant>, mut delay: Duration) {
    let mut stopping = runner.stopping();
    let once = runner.options().once;
    loop {
        *lock(&slot.planned_delay) = Some(delay);
        let due = tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = stopping.wait_for(|s| *s) => false,
        };
        *lock(&slot.planned_delay) = None;
        if !due {
            return;
        }
        match runner.execute(&slot.key, None).await {
            Ok(_) => {}
            Err(Refused::AlreadyRunning { .. }) => {
                tracing::info!(tenant = %slot.key, "scheduled run skipped: a run started by run_now is still in flight");
            }
            Err(
                Refused::ShuttingDown { .. }
                | Refused::UnknownTenant { .. }
                | Refused::LeasedByFleet { .. },
            ) => return,
        }
        if once {
            return;
        }
        let failures = runner
            .metrics()
            .tenant(&slot.key)
            .map(|t| t.consecutive_failures)
            .unwrap_or(0);
        delay = next_delay(&slot.schedule, failures, jitter_sample());
        tracing::info!(
            tenant = %slot.key,
            consecutive_failures = failures,
            next_run_in_secs = delay.as_secs(),
            "next run scheduled"
        );
    }
}
