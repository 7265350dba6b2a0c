//! The seam between the serve loop and the two ways of deciding when a tenant runs.
//!
//! [`super::Server`] registers tenants, owns the concurrency pool and runs each tenant's runs
//! ([`Runner`]); a [`Scheduler`] decides when: [`super::local`] keeps a timer per tenant,
//! [`super::fleet`] claims due tenants from a shared database under leases. Each scheduler
//! sees the server only through [`Runner`], and the server sees a scheduler only through
//! [`Scheduler`]: neither module imports the other.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::server::{Refused, ServeOptions};
use super::Schedule;
use crate::metrics::Metrics;
use crate::{CheckpointStore, RunOutcome};

/// A registered tenant as a scheduler sees it.
pub(super) struct Tenant {
    /// The tenant key.
    pub(super) key: String,
    /// When it runs (interval, jitter, backoff).
    pub(super) schedule: Schedule,
    /// The delay the local scheduler chose before the next run, while it waits.
    pub(super) planned_delay: Mutex<Option<Duration>>,
}

/// What a scheduler may ask of the server.
#[async_trait::async_trait]
pub(super) trait Runner: Send + Sync + 'static {
    /// One run of the tenant `key`: claim it, wait for a pool slot, run, record. With
    /// `checkpoints`, the run uses that store instead of its own (a fleet lease's fenced one).
    async fn execute(
        &self,
        key: &str,
        checkpoints: Option<Arc<dyn CheckpointStore>>,
    ) -> Result<RunOutcome, Refused>;
    /// The registered tenant `key`.
    fn tenant(&self, key: &str) -> Option<Arc<Tenant>>;
    /// The server's metrics.
    fn metrics(&self) -> &Metrics;
    /// The server's options (pool size, once mode).
    fn options(&self) -> &ServeOptions;
    /// Turns true when shutdown begins.
    fn stopping(&self) -> watch::Receiver<bool>;
}

/// Decides when registered tenants run.
pub(super) trait Scheduler: Send + Sync + 'static {
    /// The tasks that schedule the tenants registered when serving starts; the server runs
    /// them until shutdown (in once mode, until they all end).
    fn start(
        &self,
        runner: Arc<dyn Runner>,
        tenants: Vec<Arc<Tenant>>,
    ) -> Vec<BoxFuture<'static, ()>>;
    /// The task that schedules a tenant registered while serving.
    fn add(&self, runner: Arc<dyn Runner>, tenant: Arc<Tenant>) -> BoxFuture<'static, ()>;
    /// Why a run outside the schedule ([`super::Server::run_now`]) may not start, if so.
    fn refuse_run_now(&self, tenant: &str) -> Option<Refused>;
    /// Whether tenants are leased from a fleet (for the summary).
    fn leases(&self) -> bool;
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
