//! Many tenants, one process: `connector-host serve` and the library API under it.
//!
//! A platform syncs thousands of customers' directories on a schedule. One [`crate::Runtime`]
//! per connector (its component compiled once) serves all the tenants that run it; this module decides *when*
//! each tenant runs and *how many* run at once, and makes that visible:
//!
//! - every tenant runs on its own schedule: a first run after a random `0..jitter`, then
//!   every `interval` (+ jitter); after a failure, `backoff_initial * 2^(failures-1)` capped
//!   at `backoff_max` (+ jitter) — see [`next_delay`];
//! - never two runs of one tenant at once, whoever starts them (schedule or
//!   [`Server::run_now`]): a second start is refused, not queued;
//! - at most `max_concurrent_runs` runs execute at once (a semaphore); the others wait in
//!   line and are counted as waiting;
//! - on shutdown (SIGTERM/SIGINT for the CLI) nothing new starts, runs in flight get the
//!   grace period to end, and what is still running then is cut by dropping its future. A
//!   cut cannot lose events or half-move a cursor: a cursor commit (after each page in
//!   `delta` mode, at the end in `created` mode) first makes the sink durable, then writes the
//!   cursor by one atomic compare-and-set on the store's blocking pool; a dropped future stops
//!   between the two or leaves the write to finish, never halfway. A cut run leaves its
//!   checkpoint at its last commit, and the next run resumes there, redelivering at most the
//!   page in flight;
//! - counters and gauges per tenant ([`crate::metrics`]), logs carrying the tenant key and
//!   never a secret value.
//!
//! Nothing is reloaded: the tenants file is read once at start. (A tenant's secret is read
//! again at each of its runs, as `connector-host run` does, so a rotated secret is picked up.)
//!
//! # The tenants file (`tenants.toml`)
//!
//! ```toml
//! include = ["tenants.d/*.toml"]  # top-level key: it must come before the first [section].
//!                                 # Tenant files in the tenant.toml format; a pattern is a
//!                                 # path whose last part may hold one '*'; it must match a file.
//!
//! [serve]
//! listen = "127.0.0.1:9464"       # /metrics and /healthz; loopback by default
//! max_concurrent_runs = 64        # runs executing at once across tenants; others wait
//! shutdown_grace_secs = 30        # in-flight runs get this long after SIGTERM/SIGINT
//! once = false                    # true: run every tenant once, then exit (0 if all succeeded)
//!
//! [schedule]                      # every tenant's schedule
//! interval_secs = 3600
//! jitter_secs = 300               # the first and every next run are delayed by a random 0..jitter
//! backoff_initial_secs = 30       # after n failures in a row: initial * 2^(n-1), capped
//! backoff_max_secs = 3600
//!
//! [simulation]                    # optional: N simulated tenants, one in-process Graph emulator
//! tenants = 1000                  # keys sim-0000, sim-0001, …
//! users_per_tenant = 100
//! seed = 42
//! checkpoint_db = "sim/checkpoints.sqlite"   # one SQLite store shared by all simulated tenants
//! events_dir = "sim/events"                  # <events_dir>/<key>.jsonl, opened for each run
//! ```
//!
//! Every key is optional except `[simulation] tenants`; there must be at least one tenant.
//! Unknown keys are errors; relative paths are resolved against the tenants file's folder;
//! tenant keys must be unique, and so must JSONL event files (compared by device and inode,
//! not spelling), and no events file may be a file the host reads or another tenant's
//! checkpoint database ([`crate::files::identity`]). Tenants may run different connectors
//! (`[tenant] connector`): each distinct component is compiled once and shared by its
//! tenants ([`crate::Components`]). Errors are one line naming
//! the file, the line and the key.

mod deployment;
mod file;
mod fleet;
mod local;
mod schedule;
mod scheduler;
mod server;
mod summary;

use std::sync::Arc;
use std::time::Duration;

pub use deployment::{shutdown_signal, DeployError, Deployment};
pub use file::{simulated_keys, FleetSpec, ServeFile, SimulationSpec};
pub use schedule::{first_delay, next_delay, Schedule};
pub use scheduler::{Refused, ServeOptions};
pub use server::{MakeRun, RegisterError, Server, TenantEntry, TenantStatus};
pub use summary::Summary;

impl Server {
    /// A server of a fleet: instead of every tenant on its own timer, it claims due tenants
    /// from `fleet`'s database (leases with fencing tokens, shared by every host pointed at
    /// it), runs them with the lease's fenced checkpoint store, renews each lease while its
    /// run lasts and releases it with the tenant's next due time. Register the same tenants
    /// on every host; each runs on one host at a time.
    pub fn with_fleet(
        runtime: Arc<crate::Runtime>,
        options: ServeOptions,
        fleet: crate::fleet::Fleet,
        lease_ttl: Duration,
        poll: Duration,
    ) -> Server {
        let mode = fleet::FleetMode::new(fleet, lease_ttl, poll);
        Server::with_scheduler(runtime, options, Arc::new(mode))
    }
}
