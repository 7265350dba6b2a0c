//! The checkpoint store on PostgreSQL (`[state] url`): the same compare-and-set semantics and
//! namespaces as the SQLite store, values as `bytea`, over the fleet's pool
//! ([`crate::fleet::Database`]). A write that returned `Ok` is committed (PostgreSQL's
//! default `synchronous_commit = on`: flushed to the write-ahead log).
//!
//! Each `set` is one statement, so it is atomic without an explicit transaction:
//! `UPDATE … WHERE version = expected` (or `INSERT … ON CONFLICT DO NOTHING` when the key
//! must not exist). Two writers with the same expected version: PostgreSQL re-checks the
//! `WHERE` of the second against the row the first committed, so exactly one succeeds and
//! the other gets [`CheckpointError::Conflict`].
//!
//! Every statement is bounded by the pool's session settings ([`crate::fleet::db`]): a row
//! another session holds `FOR UPDATE` makes a write fail after `lock_timeout_secs` (10 s
//! by default) with one line, instead of holding the run until its own timeout. A write
//! that was waiting when the run was cut is not cancelled on the server by this host
//! leaving: it may still commit until that lock timeout ends it (the sink was made durable
//! before the write began, so such a cursor never covers a lost event).
//!
//! [`FencedCheckpointStore`] is the view one lease gets ([`crate::fleet::Fleet::checkpoint_store`]):
//! the same statement also reads the tenant's lease row `FOR SHARE` and writes only when the
//! lease's fencing token is the tenant's current one, the lease is held and not expired
//! (database clock). The row lock orders the write against a concurrent claim: either the
//! write commits first (it was the lease holder's) or the claim does and the write sees the
//! new token and is refused ([`CheckpointError::Fenced`]). Reads are not fenced (reading
//! moves nothing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::store::{CheckpointError, CheckpointStore};
use crate::fleet::db::column;
use crate::fleet::{Database, DatabaseOptions, FleetError, Password};

fn storage(e: FleetError) -> CheckpointError {
    CheckpointError::Storage(e.to_string())
}

/// Checkpoints in the fleet's PostgreSQL database, without fencing (one host, or a caller
/// that holds no lease).
#[derive(Clone, Debug)]
pub struct PostgresCheckpointStore {
    db: Database,
}

impl PostgresCheckpointStore {
    /// Connects to `url` (rules: [`crate::fleet::db`]) and migrates the schema.
    pub async fn connect(
        url: &str,
        password: Option<&Password>,
    ) -> Result<PostgresCheckpointStore, CheckpointError> {
        Self::connect_with(url, password, DatabaseOptions::default()).await
    }

    /// [`PostgresCheckpointStore::connect`] with explicit pool and session settings
    /// (`[state]`'s timeouts).
    pub async fn connect_with(
        url: &str,
        password: Option<&Password>,
        options: DatabaseOptions,
    ) -> Result<PostgresCheckpointStore, CheckpointError> {
        let db = Database::connect_with(url, password, options)
            .await
            .map_err(storage)?;
        crate::fleet::migrate::migrate(&db).await.map_err(storage)?;
        Ok(PostgresCheckpointStore { db })
    }

    /// A store over an already connected and migrated database.
    pub fn new(db: Database) -> PostgresCheckpointStore {
        PostgresCheckpointStore { db }
    }
}

async fn get(
    db: &Database,
    namespace: &str,
    key: &str,
) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
    let rows = db
        .query(
            None,
            "SELECT value, version FROM checkpoints WHERE namespace = $1 AND key = $2",
            &[&namespace, &key],
        )
        .await
        .map_err(storage)?;
    match rows.first() {
        None => Ok(None),
        Some(row) => {
            let value: Vec<u8> = column(db, row, 0).map_err(storage)?;
            let version: i64 = column(db, row, 1).map_err(storage)?;
            Ok(Some((value, version as u64)))
        }
    }
}

/// The version now stored, for a [`CheckpointError::Conflict`].
async fn current_version(
    db: &Database,
    namespace: &str,
    key: &str,
) -> Result<Option<u64>, CheckpointError> {
    Ok(get(db, namespace, key).await?.map(|(_, v)| v))
}

/// `expected` as the column's type; a version past `i64::MAX` is never stored, so it is a
/// conflict with whatever is.
async fn version_param(
    db: &Database,
    namespace: &str,
    key: &str,
    expected: Option<u64>,
) -> Result<Option<i64>, CheckpointError> {
    match expected.map(i64::try_from).transpose() {
        Ok(expected) => Ok(expected),
        Err(_) => Err(CheckpointError::Conflict {
            current: current_version(db, namespace, key).await?,
        }),
    }
}

#[async_trait::async_trait]
impl CheckpointStore for PostgresCheckpointStore {
    async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        get(&self.db, namespace, key).await
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        let rows = match version_param(&self.db, namespace, key, expected).await? {
            None => {
                self.db
                    .query(
                        None,
                        "INSERT INTO checkpoints (namespace, key, value, version)
                         VALUES ($1, $2, $3, 1)
                         ON CONFLICT (namespace, key) DO NOTHING
                         RETURNING version",
                        &[&namespace, &key, &value],
                    )
                    .await
            }
            Some(expected) => {
                self.db
                    .query(
                        None,
                        "UPDATE checkpoints
                         SET value = $3, version = version + 1, updated_at = now()
                         WHERE namespace = $1 AND key = $2 AND version = $4
                         RETURNING version",
                        &[&namespace, &key, &value, &expected],
                    )
                    .await
            }
        }
        .map_err(storage)?;
        match rows.first() {
            Some(row) => Ok(column::<i64>(&self.db, row, 0).map_err(storage)? as u64),
            None => Err(CheckpointError::Conflict {
                current: current_version(&self.db, namespace, key).await?,
            }),
        }
    }
}

/// The checkpoint store as one lease may use it (see the module doc): writes carry the
/// lease's fencing token and are refused once it is stale.
pub struct FencedCheckpointStore {
    db: Database,
    tenant: String,
    token: u64,
    refused: Arc<AtomicU64>,
}

impl FencedCheckpointStore {
    /// The view of the lease `token` of `tenant`; each refused write adds one to `refused`.
    pub fn new(
        db: Database,
        tenant: String,
        token: u64,
        refused: Arc<AtomicU64>,
    ) -> FencedCheckpointStore {
        FencedCheckpointStore {
            db,
            tenant,
            token,
            refused,
        }
    }

    /// A lease may touch only its tenant's namespaces (the door's is `<tenant>/<connector>`).
    fn check_namespace(&self, namespace: &str) -> Result<(), CheckpointError> {
        let inside = namespace == self.tenant
            || namespace
                .strip_prefix(self.tenant.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if inside {
            Ok(())
        } else {
            Err(CheckpointError::Storage(format!(
                "namespace '{namespace}' is not tenant '{}''s: a lease writes only its own tenant's checkpoints",
                self.tenant
            )))
        }
    }
}

/// The lease row, locked against a concurrent claim until the write commits.
const LEASE: &str = "lease AS (
    SELECT lease_token, (lease_host IS NOT NULL AND lease_expires > now()) AS live
    FROM fleet_tenants WHERE tenant = $5
    FOR SHARE
)";

#[async_trait::async_trait]
impl CheckpointStore for FencedCheckpointStore {
    async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        self.check_namespace(namespace)?;
        get(&self.db, namespace, key).await
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        self.check_namespace(namespace)?;
        let token = i64::try_from(self.token).map_err(|_| CheckpointError::Fenced {
            tenant: self.tenant.clone(),
            token: self.token,
            current: None,
        })?;
        let rows = match version_param(&self.db, namespace, key, expected).await? {
            None => {
                self.db
                    .query(
                        None,
                        &format!(
                            "WITH {LEASE}, written AS (
                                 INSERT INTO checkpoints (namespace, key, value, version)
                                 SELECT $1, $2, $3, 1 FROM lease
                                 WHERE lease.live AND lease.lease_token = $4
                                 ON CONFLICT (namespace, key) DO NOTHING
                                 RETURNING version
                             )
                             SELECT (SELECT lease_token FROM lease), (SELECT live FROM lease),
                                    (SELECT version FROM written)"
                        ),
                        &[&namespace, &key, &value, &token, &self.tenant],
                    )
                    .await
            }
            Some(expected) => {
                self.db
                    .query(
                        None,
                        &format!(
                            "WITH {LEASE}, written AS (
                                 UPDATE checkpoints c
                                 SET value = $3, version = c.version + 1, updated_at = now()
                                 FROM lease
                                 WHERE lease.live AND lease.lease_token = $4
                                   AND c.namespace = $1 AND c.key = $2 AND c.version = $6
                                 RETURNING c.version
                             )
                             SELECT (SELECT lease_token FROM lease), (SELECT live FROM lease),
                                    (SELECT version FROM written)"
                        ),
                        &[&namespace, &key, &value, &token, &self.tenant, &expected],
                    )
                    .await
            }
        }
        .map_err(storage)?;
        let row = rows
            .first()
            .ok_or_else(|| CheckpointError::Storage("the fenced write returned no row".into()))?;
        let current: Option<i64> = column(&self.db, row, 0).map_err(storage)?;
        let live: Option<bool> = column(&self.db, row, 1).map_err(storage)?;
        let written: Option<i64> = column(&self.db, row, 2).map_err(storage)?;
        if current != Some(token) || live != Some(true) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(CheckpointError::Fenced {
                tenant: self.tenant.clone(),
                token: self.token,
                current: current.map(|c| c as u64),
            });
        }
        match written {
            Some(version) => Ok(version as u64),
            None => Err(CheckpointError::Conflict {
                current: current_version(&self.db, namespace, key).await?,
            }),
        }
    }
}
