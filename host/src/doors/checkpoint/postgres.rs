//! The checkpoint store on PostgreSQL (`[state] url`): the same compare-and-set semantics and
//! namespaces as the SQLite store, values as `bytea`, over a pool of [`crate::postgres`]
//! (the fleet shares it). A write that returned `Ok` is committed (PostgreSQL's
//! default `synchronous_commit = on`: flushed to the write-ahead log).
//!
//! Each `set` is one statement, so it is atomic without an explicit transaction:
//! `UPDATE … WHERE version = expected` (or `INSERT … ON CONFLICT DO NOTHING` when the key
//! must not exist). Two writers with the same expected version: PostgreSQL re-checks the
//! `WHERE` of the second against the row the first committed, so exactly one succeeds and
//! the other gets [`CheckpointError::Conflict`].
//!
//! Every statement is bounded by the pool's session settings ([`crate::postgres`]): a row
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
//!
//! Batches (`kv-checkpoint` 0.3.0): `get_many` is one statement (`key = ANY($2)`);
//! `set_many` is one transaction of one statement — a `DELETE … = ANY` and an `INSERT … FROM
//! unnest(…) ON CONFLICT DO UPDATE` as two parts of one `WITH` — whose returned versions
//! show what each key was at, under the row locks the statement took; when a precondition
//! fails the transaction is rolled back, so nothing applies. `delete_prefix` is one
//! statement on the key range `[prefix, upper bound)` in byte order (`COLLATE "C"`, served
//! by the index of migration 0002; the database's own collation need not be byte order).
//! The fenced forms add the lease check to the same statement, as `set` does: once per
//! batch, in its transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::store::{
    check_distinct_keys, check_prefix, first_conflict, prefix_upper_bound, CheckpointError,
    CheckpointStore, Stored, Write,
};
use crate::postgres::{column, Database, DatabaseError, DatabaseOptions, Password};

fn storage(e: DatabaseError) -> CheckpointError {
    CheckpointError::Storage(e.to_string())
}

/// Checkpoints in a PostgreSQL database, without fencing (one host, or a caller
/// that holds no lease).
#[derive(Clone, Debug)]
pub struct PostgresCheckpointStore {
    db: Database,
}

impl PostgresCheckpointStore {
    /// Connects to `url` (rules: [`crate::postgres`]) and migrates the schema.
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
        crate::postgres::migrate::migrate(&db)
            .await
            .map_err(storage)?;
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

async fn get_many(
    db: &Database,
    namespace: &str,
    keys: &[String],
) -> Result<Vec<Stored>, CheckpointError> {
    let rows = db
        .query(
            None,
            "SELECT key, value, version FROM checkpoints WHERE namespace = $1 AND key = ANY($2)",
            &[&namespace, &keys],
        )
        .await
        .map_err(storage)?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let key: String = column(db, row, 0).map_err(storage)?;
        let value: Vec<u8> = column(db, row, 1).map_err(storage)?;
        let version: i64 = column(db, row, 2).map_err(storage)?;
        found.insert(key, (value, version as u64));
    }
    Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
}

/// The lease a fenced batch is written under: tenant and token (`$5`, `$6`).
struct Fence<'a> {
    tenant: &'a str,
    token: i64,
}

/// The lease row's answer: the tenant's current token and whether its lease is live.
type LeaseSeen = (Option<i64>, Option<bool>);

/// Runs one statement in a transaction of its own; `decide` reads its rows and commits
/// (`Ok`) or rolls back (`Err`). Bounded like [`Database::query`]: a server that does not
/// answer within the statement timeout plus 5 s costs the connection.
async fn transact<T>(
    db: &Database,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    decide: impl FnOnce(&[Row]) -> Result<T, CheckpointError>,
) -> Result<T, CheckpointError> {
    let mut client = db.client().await.map_err(storage)?;
    let failed = |e: tokio_postgres::Error| storage(db.query_error(&e));
    let exchange = async {
        let tx = client.transaction().await.map_err(failed)?;
        let statement = tx.prepare_cached(sql).await.map_err(failed)?;
        let rows = tx.query(&statement, params).await.map_err(failed)?;
        match decide(&rows) {
            Ok(done) => {
                tx.commit().await.map_err(failed)?;
                Ok(done)
            }
            Err(refused) => {
                tx.rollback().await.map_err(failed)?;
                Err(refused)
            }
        }
    };
    let deadline = db.options().client_deadline();
    match tokio::time::timeout(deadline, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => {
            // As `Database::query`: the connection is not trusted again.
            drop(deadpool_postgres::Object::take(client));
            Err(CheckpointError::Storage(format!(
                "{}: no answer within {} s (statement_timeout_secs plus 5 s); the connection was dropped: is the server reachable and not overloaded?",
                db.target(),
                deadline.as_secs()
            )))
        }
    }
}

/// The lease part of a fenced statement's `WITH`, and the condition a write needs.
fn fence_sql(fenced: bool) -> (String, &'static str, &'static str) {
    if fenced {
        (
            format!("{LEASE},"),
            ", lease",
            "lease.live AND lease.lease_token = $6 AND",
        )
    } else {
        (String::new(), "", "")
    }
}

/// The statement of a `set_many`: `$1` namespace, `$2` keys to delete, `$3`/`$4` keys and
/// values to write (each key in one of the two, once). Rows: `(0, key, old version)` per
/// deleted key, `(1, key, new version)` per written key and, fenced, `(2, NULL, token,
/// live)` for the lease. Both parts lock the rows they touch and read their latest committed
/// version (a key another transaction inserts meanwhile is waited for and then updated,
/// never written blind), so the versions returned are the ones the batch wrote over.
fn set_many_sql(fenced: bool) -> String {
    let (lease, from_lease, guard) = fence_sql(fenced);
    let lease_row = if fenced {
        "UNION ALL SELECT 2, NULL, (SELECT lease_token FROM lease), (SELECT live FROM lease)"
    } else {
        ""
    };
    let using = if fenced { "USING lease" } else { "" };
    format!(
        "WITH {lease} deleted AS (
             DELETE FROM checkpoints c {using}
             WHERE {guard} c.namespace = $1 AND c.key = ANY($2::text[])
             RETURNING c.key, c.version
         ), written AS (
             INSERT INTO checkpoints AS c (namespace, key, value, version)
             SELECT $1, w.key, w.value, 1
             FROM unnest($3::text[], $4::bytea[]) AS w(key, value){from_lease}
             WHERE {guard} true
             ON CONFLICT (namespace, key) DO UPDATE
             SET value = excluded.value, version = c.version + 1, updated_at = now()
             RETURNING c.key, c.version
         )
         SELECT 1, key, version, NULL::boolean FROM written
         UNION ALL SELECT 0, key, version, NULL::boolean FROM deleted
         {lease_row}"
    )
}

/// `set_many`, fenced or not: `Err(Fenced)` is reported by the caller from the lease seen.
async fn set_many(
    db: &Database,
    namespace: &str,
    writes: &[Write],
    fence: Option<Fence<'_>>,
) -> Result<Result<Vec<u64>, LeaseSeen>, CheckpointError> {
    check_distinct_keys(writes)?;
    let deleted: Vec<&str> = writes
        .iter()
        .filter(|w| w.value.is_none())
        .map(|w| w.key.as_str())
        .collect();
    let (keys, values): (Vec<&str>, Vec<&[u8]>) = writes
        .iter()
        .filter_map(|w| w.value.as_deref().map(|v| (w.key.as_str(), v)))
        .unzip();
    let sql = set_many_sql(fence.is_some());
    let (tenant, token) = fence.map(|f| (f.tenant, f.token)).unzip();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&namespace, &deleted, &keys, &values];
    if let (Some(tenant), Some(token)) = (&tenant, &token) {
        params.push(tenant);
        params.push(token);
    }
    let fenced = tenant.is_some();
    transact(db, &sql, &params, |rows| {
        let mut seen: std::collections::HashMap<String, i64> = Default::default();
        let mut lease: LeaseSeen = (None, None);
        for row in rows {
            let kind: i32 = column(db, row, 0).map_err(storage)?;
            if kind == 2 {
                lease = (
                    column(db, row, 2).map_err(storage)?,
                    column(db, row, 3).map_err(storage)?,
                );
            } else {
                let key: String = column(db, row, 1).map_err(storage)?;
                seen.insert(key, column(db, row, 2).map_err(storage)?);
            }
        }
        if fenced && (lease.0 != token || lease.1 != Some(true)) {
            // Nothing was written: every part of the statement is guarded by the lease.
            return Ok(Err(lease));
        }
        // What each key was at: a written key's new version is the old one plus one (1: it
        // did not exist); a deleted key's row gives its old version (none: it did not exist).
        let was = |w: &Write| -> Result<Option<u64>, CheckpointError> {
            let returned = seen.get(&w.key).map(|v| *v as u64);
            match (&w.value, returned) {
                (Some(_), Some(new)) => Ok((new > 1).then(|| new - 1)),
                (Some(_), None) => Err(CheckpointError::Storage(format!(
                    "the batch returned no version for key '{}'",
                    w.key
                ))),
                (None, old) => Ok(old),
            }
        };
        let current = writes.iter().map(was).collect::<Result<Vec<_>, _>>()?;
        first_conflict(writes, |i| current[i])?;
        Ok(Ok(writes
            .iter()
            .zip(&current)
            .map(|(w, c)| match w.value {
                Some(_) => c.unwrap_or(0) + 1,
                None => 0,
            })
            .collect()))
    })
    .await
}

/// The statement of a `delete_prefix`: `$1` namespace, `$2` prefix, `$3` limit, `$4` the
/// prefix's upper bound (NULL: none). One row: the lease's token and liveness (NULL
/// unfenced) and the count deleted.
///
/// The rows are picked by the index of migration 0002 and deleted by their `ctid` (a TID
/// scan), locked `FOR UPDATE` when picked so the `ctid`s stay theirs: a `key IN (…)` of
/// 10,000 keys makes the planner hash-join the whole table instead (97 ms against 17 ms
/// for 10,000 of 206,000 keys, `EXPLAIN ANALYZE` on the test PostgreSQL 15), a cost that
/// grows with everything the tenant has staged.
fn delete_prefix_sql(fenced: bool, bounded: bool) -> String {
    let (lease, _, guard) = fence_sql(fenced);
    let using = if fenced { "USING lease" } else { "" };
    let (token, live) = if fenced {
        (
            "(SELECT lease_token FROM lease)",
            "(SELECT live FROM lease)",
        )
    } else {
        ("NULL::bigint", "NULL::boolean")
    };
    let bound = if bounded {
        "key COLLATE \"C\" < $4"
    } else {
        "$4::text IS NULL"
    };
    format!(
        "WITH {lease} deleted AS (
             DELETE FROM checkpoints c {using}
             WHERE {guard} c.ctid = ANY(ARRAY(
                 SELECT ctid FROM checkpoints
                 WHERE namespace = $1 AND key COLLATE \"C\" >= $2 AND {bound}
                 ORDER BY key COLLATE \"C\" LIMIT $3
                 FOR UPDATE))
             RETURNING 1
         )
         SELECT {token}, {live}, (SELECT count(*) FROM deleted)"
    )
}

/// `delete_prefix`, fenced or not (`Err`: the lease seen refused it).
async fn delete_prefix(
    db: &Database,
    namespace: &str,
    prefix: &str,
    limit: u32,
    fence: Option<Fence<'_>>,
) -> Result<Result<u32, LeaseSeen>, CheckpointError> {
    check_prefix(prefix)?;
    let bound = prefix_upper_bound(prefix);
    let limit = i64::from(limit);
    let sql = delete_prefix_sql(fence.is_some(), bound.is_some());
    let (tenant, token) = fence.map(|f| (f.tenant, f.token)).unzip();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&namespace, &prefix, &limit, &bound];
    if let (Some(tenant), Some(token)) = (&tenant, &token) {
        params.push(tenant);
        params.push(token);
    }
    // One statement: atomic on its own.
    let rows = db.query(None, &sql, &params).await.map_err(storage)?;
    let row = rows
        .first()
        .ok_or_else(|| CheckpointError::Storage("the prefix delete returned no row".into()))?;
    let lease: LeaseSeen = (
        column(db, row, 0).map_err(storage)?,
        column(db, row, 1).map_err(storage)?,
    );
    if tenant.is_some() && (lease.0 != token || lease.1 != Some(true)) {
        return Ok(Err(lease));
    }
    let deleted: i64 = column(db, row, 2).map_err(storage)?;
    Ok(Ok(deleted as u32))
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

    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<Stored>, CheckpointError> {
        get_many(&self.db, namespace, keys).await
    }

    async fn set_many(
        &self,
        namespace: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, CheckpointError> {
        set_many(&self.db, namespace, writes, None)
            .await?
            .map_err(|_| CheckpointError::Storage("an unfenced write saw a lease".into()))
    }

    async fn delete_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<u32, CheckpointError> {
        delete_prefix(&self.db, namespace, prefix, limit, None)
            .await?
            .map_err(|_| CheckpointError::Storage("an unfenced delete saw a lease".into()))
    }

    async fn record_run(
        &self,
        tenant: &str,
        end: &super::record::RunEnd,
    ) -> Result<(), CheckpointError> {
        record_run(&self.db, tenant, end).await
    }
}

/// [`CheckpointStore::record_run`] on the host-owned table `host_run_status` (migration
/// 0003): read, merge ([`super::record::merge`]), then a compare-and-set on the text read —
/// an insert that must find no row, or an update that must find the record unchanged —
/// tried again (up to five times) when another writer came between. Not fenced: the record
/// is the host's, not the connector's cursor, and the merge never lets a late writer
/// replace the record of a run that started after its own.
async fn record_run(
    db: &Database,
    tenant: &str,
    end: &super::record::RunEnd,
) -> Result<(), CheckpointError> {
    for _ in 0..5 {
        let rows = db
            .query(
                None,
                "SELECT record FROM host_run_status WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(storage)?;
        let stored: Option<String> = match rows.first() {
            Some(row) => Some(column(db, row, 0).map_err(storage)?),
            None => None,
        };
        let previous = stored.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let Some(record) = super::record::merge(previous, end) else {
            return Ok(());
        };
        let text = serde_json::to_string(&record)
            .map_err(|e| CheckpointError::Storage(format!("run status: {e}")))?;
        let written = match &stored {
            None => {
                db.query(
                    None,
                    "INSERT INTO host_run_status (tenant, record) VALUES ($1, $2)
                     ON CONFLICT (tenant) DO NOTHING RETURNING 1",
                    &[&tenant, &text],
                )
                .await
            }
            Some(old) => {
                db.query(
                    None,
                    "UPDATE host_run_status SET record = $2, updated_at = now()
                     WHERE tenant = $1 AND record = $3 RETURNING 1",
                    &[&tenant, &text, old],
                )
                .await
            }
        }
        .map_err(storage)?;
        if !written.is_empty() {
            return Ok(());
        }
    }
    Err(CheckpointError::Storage(format!(
        "the run status of tenant '{tenant}' changed under five writes in a row; it keeps the last one written"
    )))
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

    /// The token as the column's type (a token past `i64::MAX` was never issued: stale).
    fn token(&self) -> Result<i64, CheckpointError> {
        i64::try_from(self.token).map_err(|_| self.refuse(None))
    }

    /// A write refused for a stale lease (`current`: the tenant's token now), counted.
    fn refuse(&self, current: Option<i64>) -> CheckpointError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        CheckpointError::Fenced {
            tenant: self.tenant.clone(),
            token: self.token,
            current: current.map(|c| c as u64),
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
        let token = self.token()?;
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
            return Err(self.refuse(current));
        }
        match written {
            Some(version) => Ok(version as u64),
            None => Err(CheckpointError::Conflict {
                current: current_version(&self.db, namespace, key).await?,
            }),
        }
    }

    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<Stored>, CheckpointError> {
        self.check_namespace(namespace)?;
        get_many(&self.db, namespace, keys).await
    }

    async fn set_many(
        &self,
        namespace: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, CheckpointError> {
        self.check_namespace(namespace)?;
        let fence = Fence {
            tenant: &self.tenant,
            token: self.token()?,
        };
        set_many(&self.db, namespace, writes, Some(fence))
            .await?
            .map_err(|(current, _)| self.refuse(current))
    }

    async fn delete_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<u32, CheckpointError> {
        self.check_namespace(namespace)?;
        let fence = Fence {
            tenant: &self.tenant,
            token: self.token()?,
        };
        delete_prefix(&self.db, namespace, prefix, limit, Some(fence))
            .await?
            .map_err(|(current, _)| self.refuse(current))
    }

    /// Not fenced (see [`record_run`]), but only for the lease's own tenant.
    async fn record_run(
        &self,
        tenant: &str,
        end: &super::record::RunEnd,
    ) -> Result<(), CheckpointError> {
        if tenant != self.tenant {
            return Err(CheckpointError::Storage(format!(
                "the lease of tenant '{}' may not record a run of tenant '{tenant}'",
                self.tenant
            )));
        }
        record_run(&self.db, tenant, end).await
    }
}
