//! The fleet: several hosts share the tenants of one PostgreSQL database, and a tenant runs
//! on exactly one host at a time.
//!
//! This is the coordination a scheduler calls (the `serve` loop), and nothing of the
//! scheduling itself:
//!
//! - [`Fleet::register`] adds tenants (due now); rows already there keep their schedule.
//!   A handle claims only the tenants registered through it: a host never leases a tenant
//!   its own configuration does not have (hosts on different tenant lists, mid-rollout).
//! - [`Fleet::claim`] leases up to `max` due tenants whose lease is free or expired, in one
//!   statement: `SELECT … FOR UPDATE SKIP LOCKED` picks rows no other host is claiming at
//!   that instant (no waiting, no double claim), each gets a new **fencing token** from the
//!   sequence `fleet_lease_token` and the lease `expires` (database clock: host clocks
//!   never decide), and the run-history row is written in the same statement. A lease whose
//!   previous holder let it expire without release comes back with `takeover = true`, and
//!   the previous run's history row is closed at its expiry.
//!   A claim takes at most the host's share (the work over the live hosts, rounded up:
//!   `fleet_hosts` says who asked for work lately), so idle hosts are not left idle while
//!   one host takes everything.
//! - [`Fleet::renew`] extends a lease still held (`false`: lost — it expired or another host
//!   took it; the run must stop, and its checkpoint writes are refused anyway).
//! - [`Fleet::release`] ends the lease and stores the schedule — next due time, consecutive
//!   failures, last outcome — in the tenant's row, so it survives restarts and moves with
//!   the tenant; the history row is closed in the same statement.
//! - [`Fleet::checkpoint_store`] is the lease's **fenced** view of the checkpoint store:
//!   every write carries the lease's token and the database refuses it, in the statement
//!   that writes, unless that token is the tenant's current lease and the lease is live
//!   ([`crate::doors::checkpoint::postgres`]). A host paused past its lease (GC pause,
//!   SIGSTOP, partition) cannot move a cursor after another host took over.
//! - [`Fleet::time_to_next_claim`] says how long until one of this host's tenants can be
//!   claimed (database clock), so a scheduler sleeps instead of polling.
//! - [`Fleet::overlapping_runs`] finds two runs of one tenant whose intervals overlap (the
//!   fleet drill asserts there are none).
//!
//! **Cost per run** (the benchmark's "coordination round trips"): the claim's share of one
//! statement (it claims up to `max` tenants), one per renewal, one for the release: history
//! is written inside the claim and the release. [`Fleet::round_trips`] counts them (plus the
//! one-off prepare of each statement on each pooled connection); checkpoint reads and
//! writes are not counted.
//!
//! The fleet does not own its connection: the pool, its URL and TLS rules, the password
//! and the migrations (run by [`Fleet::connect`]) are [`crate::postgres`]'s, below both the
//! fleet and the checkpoint store.

pub mod history;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

// The connection a fleet is opened with (its own module, shared with the checkpoint store).
pub use crate::postgres::{Database, DatabaseError, DatabaseOptions, Password};
pub use history::RunRecord;

use crate::doors::checkpoint::postgres::FencedCheckpointStore;
use crate::doors::checkpoint::CheckpointStore;
use crate::postgres::{column, migrate};

/// The lease TTL a host uses unless configured otherwise: a host that dies is replaced this
/// long after its last renewal. Renew at a third of it, so two renewals can fail first.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// The furthest a release schedules a tenant's next run: 100 years (the schedule's own
/// durations are bounded far below it; `once` mode stores ten years).
pub const MAX_NEXT_DUE: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// A tenant leased to this host until `expires` (database clock), or until renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The tenant key.
    pub tenant: String,
    /// The fencing token: unique per claim, higher than every earlier claim's.
    pub token: u64,
    /// The host holding it (this handle's [`Fleet::host`]).
    pub host: String,
    /// When it runs out unless renewed (the database's clock at the claim, plus the TTL).
    pub expires: SystemTime,
    /// The previous lease expired without being released (its host died or stalled).
    pub takeover: bool,
    /// Who held the tenant before, when this is a takeover.
    pub previous_host: Option<String>,
    /// Consecutive failed runs before this one (for the scheduler's backoff).
    pub failures: u32,
}

/// How a run ended, and when the tenant is next due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// The run succeeded (resets the consecutive failures; a failure adds one).
    pub succeeded: bool,
    /// The tenant is due again this long after the release (database clock).
    pub next_due_in: Duration,
    /// A one-line summary kept in the run history (e.g. the error).
    pub message: Option<String>,
}

impl LeaseOutcome {
    /// A successful run, due again after `next_due_in`.
    pub fn succeeded(next_due_in: Duration) -> LeaseOutcome {
        LeaseOutcome {
            succeeded: true,
            next_due_in,
            message: None,
        }
    }

    /// A failed run (`message` says why), due again after `next_due_in`.
    pub fn failed(message: impl Into<String>, next_due_in: Duration) -> LeaseOutcome {
        LeaseOutcome {
            succeeded: false,
            next_due_in,
            message: Some(message.into()),
        }
    }
}

/// A tenant's row: schedule and lease, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantState {
    /// The tenant key.
    pub tenant: String,
    /// When it is next due.
    pub next_due: SystemTime,
    /// Failed runs in a row.
    pub consecutive_failures: u32,
    /// `succeeded` or `failed`, once a run was released.
    pub last_outcome: Option<String>,
    /// The host holding the lease (None: free).
    pub lease_host: Option<String>,
    /// The last fencing token issued for the tenant.
    pub lease_token: Option<u64>,
    /// When the held lease runs out.
    pub lease_expires: Option<SystemTime>,
}

/// One host's handle on the fleet's database. Cheap to clone; clones share the counters.
#[derive(Clone, Debug)]
pub struct Fleet {
    db: Database,
    host: Arc<str>,
    round_trips: Arc<AtomicU64>,
    fenced_writes: Arc<AtomicU64>,
    /// The tenants registered through this handle: the only ones it claims.
    registered: Arc<RwLock<Arc<Vec<String>>>>,
}

const CLAIM: &str = "
WITH seen AS (
    INSERT INTO fleet_hosts (host, last_seen) VALUES ($1, now())
    ON CONFLICT (host) DO UPDATE SET last_seen = now()
), others AS (
    SELECT count(*) AS n FROM (
        SELECT host FROM fleet_hosts
        WHERE host <> $1 AND last_seen > now() - make_interval(secs => $3)
        UNION
        SELECT lease_host FROM fleet_tenants
        WHERE lease_host <> $1 AND lease_expires > now()
    ) live
), work AS (
    SELECT count(*) FILTER (WHERE next_due <= now()
                              AND (lease_host IS NULL OR lease_expires <= now())) AS due,
           count(*) FILTER (WHERE lease_host IS NOT NULL AND lease_expires > now()) AS running,
           count(*) FILTER (WHERE lease_host = $1 AND lease_expires > now()) AS mine
    FROM fleet_tenants
    WHERE tenant = ANY($4::text[])
), share AS (
    SELECT greatest(ceil((work.due + work.running)::float8 / (others.n + 1))::bigint
                    - work.mine, 0) AS n
    FROM work, others
), picked AS (
    SELECT tenant, lease_host AS previous_host, lease_token AS previous_token,
           lease_expires AS previous_expires
    FROM fleet_tenants
    WHERE next_due <= now() AND (lease_host IS NULL OR lease_expires <= now())
      AND tenant = ANY($4::text[])
    ORDER BY next_due, tenant
    LIMIT least($2, (SELECT n FROM share))
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE fleet_tenants t
    SET lease_host = $1, lease_token = nextval('fleet_lease_token'),
        lease_expires = now() + make_interval(secs => $3)
    FROM picked p
    WHERE t.tenant = p.tenant
    RETURNING t.tenant, t.lease_token, t.lease_expires, t.consecutive_failures,
              p.previous_host, p.previous_token, p.previous_expires
), closed AS (
    UPDATE fleet_runs r
    SET ended = c.previous_expires, outcome = 'expired',
        message = 'the lease expired without release; taken over by ' || $1
    FROM claimed c
    WHERE c.previous_host IS NOT NULL AND r.token = c.previous_token AND r.ended IS NULL
), started AS (
    INSERT INTO fleet_runs (token, tenant, host, started)
    SELECT lease_token, tenant, $1, now() FROM claimed
)
SELECT tenant, lease_token, lease_expires, consecutive_failures, previous_host
FROM claimed
ORDER BY lease_token";

const RENEW: &str = "
UPDATE fleet_tenants
SET lease_expires = now() + make_interval(secs => $4)
WHERE tenant = $1 AND lease_token = $2 AND lease_host = $3 AND lease_expires > now()
RETURNING 1";

const RELEASE: &str = "
WITH released AS (
    UPDATE fleet_tenants
    SET lease_host = NULL, lease_expires = NULL,
        next_due = now() + make_interval(secs => $4),
        consecutive_failures = CASE WHEN $5 THEN 0 ELSE consecutive_failures + 1 END,
        last_outcome = $6, last_ended = now()
    WHERE tenant = $1 AND lease_token = $2 AND lease_host = $3
    RETURNING lease_token
), ended AS (
    UPDATE fleet_runs r
    SET ended = now(), outcome = $6, message = $7
    FROM released
    WHERE r.token = released.lease_token AND r.ended IS NULL
)
SELECT count(*) FROM released";

impl Fleet {
    /// Connects (see [`crate::postgres`] for the URL rules) and migrates: the start-up of a host.
    /// `host` names this host in leases and run history (e.g. its hostname and pid).
    pub async fn connect(
        url: &str,
        password: Option<&Password>,
        host: impl Into<String>,
    ) -> Result<Fleet, DatabaseError> {
        Self::connect_with(url, password, host, DatabaseOptions::default()).await
    }

    /// [`Fleet::connect`] with explicit pool and session settings (`[fleet]`'s timeouts).
    pub async fn connect_with(
        url: &str,
        password: Option<&Password>,
        host: impl Into<String>,
        options: DatabaseOptions,
    ) -> Result<Fleet, DatabaseError> {
        let db = Database::connect_with(url, password, options).await?;
        migrate::migrate(&db).await?;
        Ok(Fleet::new(db, host))
    }

    /// A handle on an already connected (and migrated) database.
    pub fn new(db: Database, host: impl Into<String>) -> Fleet {
        Fleet {
            db,
            host: host.into().into(),
            round_trips: Arc::default(),
            fenced_writes: Arc::default(),
            registered: Arc::default(),
        }
    }

    /// The tenants this handle claims (those registered through it).
    fn registered(&self) -> Arc<Vec<String>> {
        match self.registered.read() {
            Ok(list) => list.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies the migrations this host knows and the database lacks (see [`migrate`]).
    pub async fn migrate(&self) -> Result<Vec<i32>, DatabaseError> {
        migrate::migrate(&self.db).await
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// This host's name in leases and run history.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Exchanges with the database for coordination so far: claims, renewals, releases,
    /// registrations, queries (not checkpoint reads or writes).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Checkpoint writes refused for a stale fencing token so far, by the fenced stores of
    /// this handle (`connector_fenced_writes_total`).
    pub fn fenced_writes(&self) -> u64 {
        self.fenced_writes.load(Ordering::Relaxed)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, DatabaseError> {
        self.db.query(Some(&self.round_trips), sql, params).await
    }

    /// Adds the tenants not yet in the fleet, due now; returns how many were added. A
    /// tenant already there keeps its schedule and lease. From now on this handle claims
    /// these tenants (and those of earlier calls), and no others. The host counts as live
    /// from now (see [`Fleet::claim`]'s share), so hosts started together share the work
    /// from their first claims.
    pub async fn register(&self, tenants: &[String]) -> Result<u64, DatabaseError> {
        let rows = self
            .query(
                "WITH seen AS (
                     INSERT INTO fleet_hosts (host, last_seen) VALUES ($2, now())
                     ON CONFLICT (host) DO UPDATE SET last_seen = now()
                 ), added AS (
                     INSERT INTO fleet_tenants (tenant) SELECT unnest($1::text[])
                     ON CONFLICT (tenant) DO NOTHING RETURNING 1
                 ) SELECT count(*) FROM added",
                &[&tenants, &&*self.host],
            )
            .await?;
        let added: i64 = match rows.first() {
            Some(row) => column(&self.db, row, 0)?,
            None => 0,
        };
        let mut list: Vec<String> = self.registered().iter().cloned().collect();
        list.extend(tenants.iter().cloned());
        list.sort();
        list.dedup();
        match self.registered.write() {
            Ok(mut slot) => *slot = Arc::new(list),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(list),
        }
        Ok(added as u64)
    }

    /// How long until a tenant of this handle can be claimed: due and its lease free or
    /// expired (zero: now; None: it has no tenants). Measured on the database's clock.
    pub async fn time_to_next_claim(&self) -> Result<Option<Duration>, DatabaseError> {
        let tenants = self.registered();
        if tenants.is_empty() {
            return Ok(None);
        }
        let rows = self
            .query(
                "SELECT extract(epoch FROM min(
                     CASE WHEN lease_host IS NULL THEN next_due
                          ELSE greatest(next_due, lease_expires) END) - now())::float8
                 FROM fleet_tenants WHERE tenant = ANY($1::text[])",
                &[&*tenants],
            )
            .await?;
        let seconds: Option<f64> = match rows.first() {
            Some(row) => column(&self.db, row, 0)?,
            None => None,
        };
        // Checked: a date too far away (or not a number) is "not in this host's lifetime".
        Ok(seconds.map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)))
    }

    /// Leases up to `max` due tenants of this handle ([`Fleet::register`]) whose lease is
    /// free or expired to this host for `ttl`, most overdue first, in one statement (see the
    /// module doc). Tenants another host is
    /// claiming at the same instant are skipped, never waited for or shared.
    ///
    /// At most this host's **share**, too: the work of its tenants (due now, or running under
    /// a live lease of any host) divided by the live hosts, rounded up, less the leases it
    /// already holds. A host is live when it registered or claimed within `ttl`, or holds a
    /// live lease; the claim itself marks this host seen. A lone host's share is everything;
    /// two hosts started together take half each (before, the first to claim took all it had
    /// room for, and in the issue 19 drill one host ran 36 of 40 runs). A host that stops
    /// is no longer live `ttl` after its last claim, and the others then take its part.
    pub async fn claim(&self, max: usize, ttl: Duration) -> Result<Vec<Lease>, DatabaseError> {
        let tenants = self.registered();
        if max == 0 || tenants.is_empty() {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .query(
                CLAIM,
                &[&&*self.host, &limit, &ttl.as_secs_f64(), &*tenants],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let token: i64 = column(&self.db, row, 1)?;
                let previous_host: Option<String> = column(&self.db, row, 4)?;
                let failures: i32 = column(&self.db, row, 3)?;
                Ok(Lease {
                    tenant: column(&self.db, row, 0)?,
                    token: token as u64,
                    host: self.host.to_string(),
                    expires: column(&self.db, row, 2)?,
                    takeover: previous_host.is_some(),
                    previous_host,
                    failures: failures.max(0) as u32,
                })
            })
            .collect()
    }

    /// Extends `lease` to `ttl` from now (database clock). `false`: the lease is lost (it
    /// expired, or another host took the tenant): stop the run. Renew every `ttl / 3` or so;
    /// `lease.expires` is not updated (it is the claim's).
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, DatabaseError> {
        let token = lease.token as i64;
        let rows = self
            .query(
                RENEW,
                &[&lease.tenant, &token, &lease.host, &ttl.as_secs_f64()],
            )
            .await?;
        Ok(rows.len() == 1)
    }

    /// Ends `lease` and stores the schedule `outcome` gives. `false`: the lease was lost
    /// before (another host took the tenant): nothing was stored. A lease that expired but
    /// was not taken over is still released (no other host ran the tenant meanwhile).
    ///
    /// `next_due_in` is clamped to [`MAX_NEXT_DUE`]: a longer one could not be added to the
    /// database's clock, and the release would fail, leaving the lease to expire.
    pub async fn release(
        &self,
        lease: &Lease,
        outcome: &LeaseOutcome,
    ) -> Result<bool, DatabaseError> {
        let token = lease.token as i64;
        let next_due_in = outcome.next_due_in.min(MAX_NEXT_DUE);
        let label = if outcome.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        let rows = self
            .query(
                RELEASE,
                &[
                    &lease.tenant,
                    &token,
                    &lease.host,
                    &next_due_in.as_secs_f64(),
                    &outcome.succeeded,
                    &label,
                    &outcome.message,
                ],
            )
            .await?;
        let released: i64 = match rows.first() {
            Some(row) => column(&self.db, row, 0)?,
            None => 0,
        };
        Ok(released == 1)
    }

    /// The tenant's schedule and lease (None: not registered).
    pub async fn state(&self, tenant: &str) -> Result<Option<TenantState>, DatabaseError> {
        let rows = self
            .query(
                "SELECT tenant, next_due, consecutive_failures, last_outcome, lease_host,
                        lease_token, lease_expires
                 FROM fleet_tenants WHERE tenant = $1",
                &[&tenant],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let failures: i32 = column(&self.db, row, 2)?;
        let token: Option<i64> = column(&self.db, row, 5)?;
        Ok(Some(TenantState {
            tenant: column(&self.db, row, 0)?,
            next_due: column(&self.db, row, 1)?,
            consecutive_failures: failures.max(0) as u32,
            last_outcome: column(&self.db, row, 3)?,
            lease_host: column(&self.db, row, 4)?,
            lease_token: token.map(|t| t as u64),
            lease_expires: column(&self.db, row, 6)?,
        }))
    }

    /// The checkpoint store as `lease` may use it: reads as usual; writes only to the
    /// tenant's namespaces (`<tenant>` or `<tenant>/…`) and only while `lease` is the
    /// tenant's current, live lease — refused with [`crate::doors::checkpoint::CheckpointError::Fenced`]
    /// otherwise, and counted in [`Fleet::fenced_writes`].
    pub fn checkpoint_store(&self, lease: &Lease) -> Arc<dyn CheckpointStore> {
        Arc::new(FencedCheckpointStore::new(
            self.db.clone(),
            lease.tenant.clone(),
            lease.token,
            self.fenced_writes.clone(),
        ))
    }
}
