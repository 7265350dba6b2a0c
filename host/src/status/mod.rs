//! Where each tenant stands: what its runs did, recorded by the host in the tenant's own
//! store, and read back by `connector-host status` and `serve`'s `/status` page.
//!
//! **What is recorded, and where.** Every run that reaches [`crate::Runtime::run`] — `run`,
//! `demo`, `serve` with local timers, a fleet host's leased run — ends in one writer (in
//! the runtime, which alone sees the phases a run reported), which hands a [`RunEnd`] to
//! the run's checkpoint store ([`crate::CheckpointStore::record_run`]; the record and its
//! merge: [`crate::doors::checkpoint::record`]). The store keeps one [`TenantRecord`] per tenant
//! in a **host-owned table**, `host_run_status` (SQLite: created with the checkpoint table;
//! PostgreSQL: migration `0004_run_status.sql`), which no door of the guest reaches: the
//! guest's `kv-checkpoint` calls name keys of its own namespace only, never a table. The
//! record holds the last run (start, end, outcome, the error's one line and its kind, full or
//! incremental, the last `log.progress` it kept), the last success, the last full walk (the
//! end of the last successful run that reported `full_sync`), and per phase the time it last
//! completed: a phase a run named in its progress counts as completed when that run succeeds
//! (a successful run finished every phase it started; a phase is not marked completed by a
//! run that failed, even if it got past it). "Last sign-in sweep" is when the phase
//! [`SIGN_IN_PHASE`] last completed. A record write is merged with the stored record atomically
//! (SQLite: one transaction; PostgreSQL: a compare-and-set) and never replaces a record of a run that started later (a stalled fleet host
//! that writes late cannot roll the status back). A failed record write is logged and
//! changes nothing about the run's outcome.
//!
//! A run that never reached the runtime (its secret or its store could not be opened) is
//! not recorded: `serve` logs it and counts it in `/metrics`.
//!
//! **Reading** ([`read`]) never writes and creates no file: a SQLite store is opened
//! read-only (immutable when no writer's log is there), a PostgreSQL store is queried
//! without migrating it, a missing file or table reads as "never run". Next due comes from
//! the fleet database's schedule (`fleet_tenants.next_due`) for a fleet; for local timers it
//! is the last end plus the tenants file's interval (or the backoff after failures), without
//! jitter: the earliest the next run can start. The lease holder is the fleet's.
//!
//! **Showing** ([`render`]): a text table, `--json`, and the HTML page.

pub mod read;
pub mod render;

pub use crate::doors::checkpoint::record::{
    instant, merge, millis, LastRun, Outcome, RecordedProgress, RunEnd, TenantRecord,
    MAX_ERROR_CHARS, SIGN_IN_PHASE,
};
pub use read::{LiveStatus, Source, Target, TenantView};
