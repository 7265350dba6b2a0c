//! The embedded default checkpoint store: one SQLite file (WAL, `synchronous=FULL`: a
//! committed cursor survives a power cut). Its calls block (a commit fsyncs), so the async
//! [`CheckpointStore`] methods run them on tokio's blocking pool; the blocking methods
//! ([`SqliteCheckpointStore::get_blocking`], [`SqliteCheckpointStore::set_blocking`], …) are
//! there for callers outside a runtime.
//!
//! Batches: a `set_many` or `delete_prefix` is one `IMMEDIATE` transaction (one fsync for
//! the whole batch); `get_many` reads in chunks of [`GET_CHUNK`] keys, `IN (…)`, inside one
//! read transaction (one snapshot). Keys compare with SQLite's default `BINARY` collation
//! (`memcmp`: byte order), so a prefix is the key range `[prefix, upper bound)`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::store::{
    check_distinct_keys, check_prefix, first_conflict, prefix_upper_bound, CheckpointError,
    CheckpointStore, Stored, Write,
};

/// Keys per `SELECT … IN (…)` of a `get_many` (SQLite's bound-parameter limit is 32,766).
const GET_CHUNK: usize = 500;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Checkpoints in one SQLite file.
#[derive(Clone)]
pub struct SqliteCheckpointStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteCheckpointStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                CheckpointError::Storage(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        // A FIFO or device named as the database would block SQLite's first read for ever
        // (issue 9, "Blocking reads freeze serve"): only a regular file (or none yet) is opened.
        crate::files::open_regular(
            path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true),
            "checkpoint database",
        )
        .map_err(|e| CheckpointError::Storage(e.to_string()))?;
        let conn = Connection::open(path).map_err(|e| {
            CheckpointError::Storage(format!("cannot open {}: {e}", path.display()))
        })?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS checkpoints (
                 namespace  TEXT NOT NULL,
                 key        TEXT NOT NULL,
                 value      BLOB NOT NULL,
                 version    INTEGER NOT NULL,
                 updated_ms INTEGER NOT NULL,
                 PRIMARY KEY (namespace, key)
             );
             CREATE TABLE IF NOT EXISTS host_run_status (
                 tenant     TEXT PRIMARY KEY,
                 record     TEXT NOT NULL,
                 updated_ms INTEGER NOT NULL
             );",
        )
        .map_err(|e| {
            CheckpointError::Storage(format!("cannot initialise {}: {e}", path.display()))
        })?;
        Ok(SqliteCheckpointStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CheckpointError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| CheckpointError::Storage("the store's lock is poisoned".into()))?;
        f(&mut conn).map_err(|e| CheckpointError::Storage(e.to_string()))
    }
}

impl SqliteCheckpointStore {
    /// [`CheckpointStore::get`], blocking the calling thread.
    pub fn get_blocking(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        self.with(|c| {
            c.query_row(
                "SELECT value, version FROM checkpoints WHERE namespace = ?1 AND key = ?2",
                params![namespace, key],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .optional()
        })
    }

    /// [`CheckpointStore::set`], blocking the calling thread.
    pub fn set_blocking(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        let now = now_ms();
        let outcome = self.with(|c| {
            // IMMEDIATE: take the write lock before reading the version. A deferred
            // transaction that reads and then writes cannot upgrade its lock while another
            // process holds one, and SQLite answers "database is locked" at once, whatever
            // the busy timeout; an immediate one waits for the lock instead.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current: Option<u64> = tx
                .query_row(
                    "SELECT version FROM checkpoints WHERE namespace = ?1 AND key = ?2",
                    params![namespace, key],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map(|v| v as u64);
            if current != expected {
                return Ok(Err(current));
            }
            let next = current.unwrap_or(0) + 1;
            tx.execute(
                "INSERT INTO checkpoints (namespace, key, value, version, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                 updated_ms = excluded.updated_ms",
                params![namespace, key, value, next as i64, now],
            )?;
            tx.commit()?;
            Ok(Ok(next))
        })?;
        outcome.map_err(|current| CheckpointError::Conflict { current })
    }

    /// [`CheckpointStore::get_many`], blocking the calling thread.
    pub fn get_many_blocking(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<Stored>, CheckpointError> {
        let found = self.with(|c| {
            // One snapshot for every chunk.
            let tx = c.transaction()?;
            let mut found = std::collections::HashMap::with_capacity(keys.len());
            for chunk in keys.chunks(GET_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT key, value, version FROM checkpoints WHERE namespace = ? AND key IN ({marks})"
                ))?;
                let params = std::iter::once(namespace).chain(chunk.iter().map(String::as_str));
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    found.insert(
                        r.get::<_, String>(0)?,
                        (r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)? as u64),
                    );
                }
            }
            drop(tx);
            Ok(found)
        })?;
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    /// [`CheckpointStore::set_many`], blocking the calling thread.
    pub fn set_many_blocking(
        &self,
        namespace: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, CheckpointError> {
        check_distinct_keys(writes)?;
        let now = now_ms();
        self.with(|c| {
            // IMMEDIATE, as `set_blocking` (and why): the versions read are the ones written over.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut current = Vec::with_capacity(writes.len());
            {
                let mut read = tx.prepare_cached(
                    "SELECT version FROM checkpoints WHERE namespace = ?1 AND key = ?2",
                )?;
                for w in writes {
                    current.push(
                        read.query_row(params![namespace, w.key], |r| r.get::<_, i64>(0))
                            .optional()?
                            .map(|v| v as u64),
                    );
                }
            }
            if let Err(conflict) = first_conflict(writes, |i| current[i]) {
                // Dropping the transaction rolls it back: nothing was written anyway.
                return Ok(Err(conflict));
            }
            let mut versions = Vec::with_capacity(writes.len());
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO checkpoints (namespace, key, value, version, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                     updated_ms = excluded.updated_ms",
                )?;
                let mut delete =
                    tx.prepare_cached("DELETE FROM checkpoints WHERE namespace = ?1 AND key = ?2")?;
                for (w, current) in writes.iter().zip(&current) {
                    match &w.value {
                        Some(value) => {
                            let next = current.unwrap_or(0) + 1;
                            upsert.execute(params![namespace, w.key, value, next as i64, now])?;
                            versions.push(next);
                        }
                        None => {
                            delete.execute(params![namespace, w.key])?;
                            versions.push(0);
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(Ok(versions))
        })?
    }

    /// [`CheckpointStore::delete_prefix`], blocking the calling thread.
    pub fn delete_prefix_blocking(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<u32, CheckpointError> {
        check_prefix(prefix)?;
        let bound = prefix_upper_bound(prefix);
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // A range on the primary key, not `LIKE` (`%` and `_` in keys are wildcards
            // there, and `LIKE` is case-insensitive for ASCII by default).
            let deleted = match &bound {
                Some(bound) => tx.execute(
                    "DELETE FROM checkpoints WHERE rowid IN (
                         SELECT rowid FROM checkpoints
                         WHERE namespace = ?1 AND key >= ?2 AND key < ?3
                         ORDER BY key LIMIT ?4)",
                    params![namespace, prefix, bound, limit as i64],
                )?,
                None => tx.execute(
                    "DELETE FROM checkpoints WHERE rowid IN (
                         SELECT rowid FROM checkpoints
                         WHERE namespace = ?1 AND key >= ?2
                         ORDER BY key LIMIT ?3)",
                    params![namespace, prefix, limit as i64],
                )?,
            };
            tx.commit()?;
            Ok(deleted as u32)
        })
    }
}

/// Runs blocking store work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, CheckpointError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CheckpointError::Storage(format!("the store's worker failed: {e}")))?
}

#[async_trait::async_trait]
impl CheckpointStore for SqliteCheckpointStore {
    async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        let (store, namespace, key) = (self.clone(), namespace.to_owned(), key.to_owned());
        blocking(move || store.get_blocking(&namespace, &key)).await
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        let (store, namespace, key) = (self.clone(), namespace.to_owned(), key.to_owned());
        let value = value.to_vec();
        blocking(move || store.set_blocking(&namespace, &key, &value, expected)).await
    }

    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<Stored>, CheckpointError> {
        let (store, namespace, keys) = (self.clone(), namespace.to_owned(), keys.to_vec());
        blocking(move || store.get_many_blocking(&namespace, &keys)).await
    }

    async fn set_many(
        &self,
        namespace: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, CheckpointError> {
        let (store, namespace, writes) = (self.clone(), namespace.to_owned(), writes.to_vec());
        blocking(move || store.set_many_blocking(&namespace, &writes)).await
    }

    async fn delete_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<u32, CheckpointError> {
        let (store, namespace, prefix) = (self.clone(), namespace.to_owned(), prefix.to_owned());
        blocking(move || store.delete_prefix_blocking(&namespace, &prefix, limit)).await
    }

    async fn record_run(
        &self,
        tenant: &str,
        end: &super::record::RunEnd,
    ) -> Result<(), CheckpointError> {
        let (store, tenant, end) = (self.clone(), tenant.to_owned(), end.clone());
        blocking(move || store.record_run_blocking(&tenant, &end)).await
    }
}

impl SqliteCheckpointStore {
    /// [`CheckpointStore::record_run`], blocking the calling thread: the stored record is
    /// read, merged and written back in one `IMMEDIATE` transaction (the host-owned table
    /// `host_run_status`, which no door of the guest names).
    pub fn record_run_blocking(
        &self,
        tenant: &str,
        end: &super::record::RunEnd,
    ) -> Result<(), CheckpointError> {
        let now = now_ms();
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stored: Option<String> = tx
                .query_row(
                    "SELECT record FROM host_run_status WHERE tenant = ?1",
                    params![tenant],
                    |r| r.get(0),
                )
                .optional()?;
            // A record this host cannot read (written by a newer one) is started afresh.
            let previous = stored.and_then(|s| serde_json::from_str(&s).ok());
            if let Some(record) = super::record::merge(previous, end) {
                let text = serde_json::to_string(&record)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                tx.execute(
                    "INSERT INTO host_run_status (tenant, record, updated_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant) DO UPDATE SET record = excluded.record,
                     updated_ms = excluded.updated_ms",
                    params![tenant, text, now],
                )?;
            }
            tx.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn operator_a_fifo_or_directory_as_checkpoint_database_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("checkpoints.sqlite");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, kind) in [(fifo, "a FIFO"), (dir.path().to_path_buf(), "a directory")] {
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || {
                let _ = tx.send(SqliteCheckpointStore::open(&p).err().map(|e| e.to_string()));
            });
            let err = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("opening returns instead of blocking")
                .expect("refused");
            assert!(
                err.contains(kind) && err.contains(&path.display().to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn local_user_two_stores_sharing_one_file_never_see_database_is_locked() {
        // Two connections to one file behave as two processes would: each thread moves the
        // same key by compare-and-set, re-reading on a conflict. Only conflicts may happen.
        let dir = std::env::temp_dir().join(format!("ckpt-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("c.sqlite");
        SqliteCheckpointStore::open(&path).unwrap();
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let s = SqliteCheckpointStore::open(&path).unwrap();
                    let mut done = 0;
                    while done < 150 {
                        let current = s.get_blocking("t/x", "k").unwrap().map(|(_, v)| v);
                        match s.set_blocking("t/x", "k", format!("{w}").as_bytes(), current) {
                            Ok(_) => done += 1,
                            Err(CheckpointError::Conflict { .. }) => {}
                            Err(e) => panic!("worker {w}: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("no worker saw a storage error");
        }
        let s = SqliteCheckpointStore::open(&path).unwrap();
        assert_eq!(
            s.get_blocking("t/x", "k").unwrap().map(|(_, v)| v),
            Some(300)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn compare_and_set_and_namespaces() {
        let dir = std::env::temp_dir().join(format!("ckpt-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("c.sqlite");
        let s = SqliteCheckpointStore::open(&path).unwrap();
        assert_eq!(s.get_blocking("a/x", "k").unwrap(), None);
        assert_eq!(s.set_blocking("a/x", "k", b"1", None).unwrap(), 1);
        assert_eq!(
            s.set_blocking("a/x", "k", b"2", None),
            Err(CheckpointError::Conflict { current: Some(1) })
        );
        assert_eq!(
            s.set_blocking("a/x", "k", b"2", Some(7)),
            Err(CheckpointError::Conflict { current: Some(1) })
        );
        assert_eq!(s.set_blocking("a/x", "k", b"2", Some(1)).unwrap(), 2);
        assert_eq!(
            s.get_blocking("b/x", "k").unwrap(),
            None,
            "namespaces are separate"
        );
        drop(s);
        let s = SqliteCheckpointStore::open(&path).unwrap();
        assert_eq!(
            s.get_blocking("a/x", "k").unwrap(),
            Some((b"2".to_vec(), 2)),
            "durable across reopen"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
