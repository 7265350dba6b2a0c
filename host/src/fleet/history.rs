//! Run history: one row per claim (fencing token) saying which host ran which tenant from
//! when to when and how it ended. Written by [`super::Fleet::claim`] and
//! [`super::Fleet::release`] inside their own statements (no extra round trip); read here.
//!
//! A run's interval is `[started, ended)`; a run still going (or whose host died before
//! anyone took the tenant over) has no end yet and counts as open-ended. A takeover closes
//! the previous run at the moment its lease expired.

use std::time::SystemTime;

use super::Fleet;
use crate::postgres::{column, DatabaseError};

/// One run of a tenant on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// The tenant key.
    pub tenant: String,
    /// The host that held the lease.
    pub host: String,
    /// The lease's fencing token.
    pub token: u64,
    /// When the lease was claimed (database clock).
    pub started: SystemTime,
    /// When it was released or, for a run taken over, when its lease expired.
    pub ended: Option<SystemTime>,
    /// `succeeded`, `failed`, `expired`, or None while running.
    pub outcome: Option<String>,
    /// The release's message.
    pub message: Option<String>,
}

const COLUMNS: &str = "tenant, host, token, started, ended, outcome, message";

impl Fleet {
    fn record(&self, row: &tokio_postgres::Row, at: usize) -> Result<RunRecord, DatabaseError> {
        let db = self.database();
        let token: i64 = column(db, row, at + 2)?;
        Ok(RunRecord {
            tenant: column(db, row, at)?,
            host: column(db, row, at + 1)?,
            token: token as u64,
            started: column(db, row, at + 3)?,
            ended: column(db, row, at + 4)?,
            outcome: column(db, row, at + 5)?,
            message: column(db, row, at + 6)?,
        })
    }

    /// The runs of `tenant`, oldest first.
    pub async fn runs(&self, tenant: &str) -> Result<Vec<RunRecord>, DatabaseError> {
        let rows = self
            .database()
            .query(
                None,
                &format!("SELECT {COLUMNS} FROM fleet_runs WHERE tenant = $1 ORDER BY token"),
                &[&tenant],
            )
            .await?;
        rows.iter().map(|r| self.record(r, 0)).collect()
    }

    /// Every pair of runs of one tenant whose intervals overlap (empty: no tenant ever ran
    /// on two hosts at once, as far as the leases say).
    pub async fn overlapping_runs(&self) -> Result<Vec<(RunRecord, RunRecord)>, DatabaseError> {
        let rows = self
            .database()
            .query(
                None,
                "SELECT a.tenant, a.host, a.token, a.started, a.ended, a.outcome, a.message,
                        b.tenant, b.host, b.token, b.started, b.ended, b.outcome, b.message
                 FROM fleet_runs a JOIN fleet_runs b
                   ON a.tenant = b.tenant AND a.token < b.token
                  AND a.started < coalesce(b.ended, 'infinity')
                  AND b.started < coalesce(a.ended, 'infinity')
                 ORDER BY a.tenant, a.token, b.token",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((self.record(r, 0)?, self.record(r, 7)?)))
            .collect()
    }
}
