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

use super::Schedule;
use crate::metrics::Metrics;
use crate::{CheckpointStore, RunOutcome};

/// How a [`super::Server`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Most runs executing at once, across tenants; further runs wait for a slot.
    pub max_concurrent_runs: usize,
    /// After shutdown is requested, how long runs in flight may take to end before they are cut.
    pub shutdown_grace: Duration,
    /// Run every tenant once, right away (no jitter), then return from [`super::Server::serve`].
    pub once: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_concurrent_runs: 64,
            shutdown_grace: Duration::from_secs(30),
            once: false,
        }
    }
}

/// Why a run was not started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No tenant is registered under this key.
    #[error("tenant '{tenant}': not registered with this server; register it first")]
    UnknownTenant {
        /// The key asked for.
        tenant: String,
    },
    /// A run of this tenant is already in flight (or waiting for a slot).
    #[error(
        "tenant '{tenant}': a run is already in progress; wait for it to finish and start again"
    )]
    AlreadyRunning {
        /// Tenant key.
        tenant: String,
    },
    /// The server leases its tenants from a fleet: a run outside a lease could overlap
    /// another host's run of the tenant, so it is not started.
    #[error("tenant '{tenant}': this server leases its tenants from a fleet; a run outside the fleet's schedule could overlap another host's, so it is not started (set the tenant's next_due in the fleet database to run it sooner)")]
    LeasedByFleet {
        /// Tenant key.
        tenant: String,
    },
    /// The server is shutting down (or has stopped) and starts no runs.
    #[error("tenant '{tenant}': the server is shutting down and starts no new runs")]
    ShuttingDown {
        /// Tenant key.
        tenant: String,
    },
}

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
