//! Schema migrations: the versioned SQL files of `host/migrations/`, compiled into the host
//! and applied at start-up.
//!
//! **Why plain `tokio-postgres` with a migrations table**, not `refinery` or `sqlx`: the
//! whole mechanism is one transaction — take `pg_advisory_xact_lock`, create the table
//! `connector_schema_migrations` if missing, apply each file not yet recorded and record it
//! with its SHA-256 — about forty lines over the driver the store already uses. `sqlx`
//! would add a second driver, macros and a much longer build on the two cores CI has;
//! `refinery` takes no lock of its own, so two hosts starting at once on an empty database
//! could both try to apply `0001` (one fails on "relation already exists"), which is exactly
//! the case this must get right.
//!
//! **Safe when hosts start at once.** The advisory lock is taken first, in the same
//! transaction, so a second migrator waits, then finds every file recorded and applies
//! nothing.
//!
//! **A held lock costs a bounded wait, said out loud.** The lock is tried
//! (`pg_try_advisory_xact_lock`) every quarter second rather than waited for in the server,
//! so that the wait has this host's deadline — the database's `lock_timeout`
//! ([`super::DatabaseOptions::lock_timeout`], `lock_timeout_secs`, 10 s by default) — and
//! is logged while it lasts. A session that holds the lock and never lets go (a stuck
//! migrator, an operator's `psql` left in a transaction) stops start-up after that with one
//! line naming the holder from `pg_locks` and `pg_stat_activity` (process id, user,
//! application, since when) and what to do, instead of hanging `run`, `serve` and every
//! `[fleet]` host for ever. PostgreSQL's DDL is transactional: a failing file leaves nothing half-applied.
//! (A future migration that cannot run in a transaction, e.g. `CREATE INDEX CONCURRENTLY`,
//! needs its own path.)
//!
//! **Refusals.** A recorded file whose checksum changed (an applied migration was edited),
//! or a recorded version this host does not know (a newer host migrated the database), stops
//! start-up with one line saying what to do.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{column, Database, DatabaseError};

/// One migration file.
pub(crate) struct Migration {
    /// The number the file name starts with.
    pub version: i32,
    /// The file name.
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// Every file of `host/migrations/`, in order (a unit test checks the folder matches).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_fleet.sql",
        sql: include_str!("../../migrations/0001_fleet.sql"),
    },
    Migration {
        version: 2,
        name: "0002_checkpoint_prefix.sql",
        sql: include_str!("../../migrations/0002_checkpoint_prefix.sql"),
    },
    Migration {
        version: 3,
        name: "0003_fleet_hosts.sql",
        sql: include_str!("../../migrations/0003_fleet_hosts.sql"),
    },
    Migration {
        version: 4,
        name: "0004_run_status.sql",
        sql: include_str!("../../migrations/0004_run_status.sql"),
    },
];

/// Any constant works as long as every host uses the same one: it names "migrating this
/// database" among the advisory locks of the database ("connmigr" in ASCII).
const LOCK_KEY: i64 = 0x636f_6e6e_6d69_6772;

fn checksum(sql: &str) -> String {
    format!("{:x}", Sha256::digest(sql.as_bytes()))
}

/// Brings the database's schema to this host's version; returns the versions it applied
/// (empty: already up to date, e.g. another host did it).
pub async fn migrate(db: &Database) -> Result<Vec<i32>, DatabaseError> {
    let schema = |message: String| DatabaseError::Schema {
        target: db.target().to_string(),
        message,
    };
    let mut client = db.client().await?;
    let tx = client.transaction().await.map_err(|e| db.query_error(&e))?;
    take_lock(db, &tx).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS connector_schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             sha256     text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(|e| db.query_error(&e))?;
    let rows = tx
        .query(
            "SELECT version, name, sha256 FROM connector_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(|e| db.query_error(&e))?;
    let mut applied = Vec::new();
    for row in &rows {
        let version: i32 = column(db, row, 0)?;
        let name: String = column(db, row, 1)?;
        let sum: String = column(db, row, 2)?;
        match MIGRATIONS.iter().find(|m| m.version == version) {
            None => {
                return Err(schema(format!(
                    "the database has migration {version} ({name}), which this host does not know: a newer host migrated it; run that version of the host"
                )))
            }
            Some(m) if checksum(m.sql) != sum => {
                return Err(schema(format!(
                    "migration {} was changed after it was applied; restore the file and add the change as a new migration",
                    m.name
                )))
            }
            Some(_) => applied.push(version),
        }
    }
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            schema(db.scrub(format!(
                "migration {} failed: {}",
                m.name,
                super::describe(&e)
            )))
        })?;
        tx.execute(
            "INSERT INTO connector_schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum(m.sql)],
        )
        .await
        .map_err(|e| db.query_error(&e))?;
        done.push(m.version);
    }
    tx.commit().await.map_err(|e| db.query_error(&e))?;
    Ok(done)
}

/// How often the lock is tried, and how often a wait is logged.
const TRY_EVERY: Duration = Duration::from_millis(250);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Takes the migration lock in `tx`, waiting at most the database's lock timeout.
async fn take_lock(
    db: &Database,
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(), DatabaseError> {
    let wait = db.options().lock_timeout;
    let started = Instant::now();
    let mut next_log = started;
    loop {
        let row = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(|e| db.query_error(&e))?;
        if column::<bool>(db, &row, 0)? {
            if started.elapsed() >= LOG_EVERY.min(wait) {
                tracing::info!(
                    database = %db.target(),
                    "took the migration lock after {} s",
                    started.elapsed().as_secs()
                );
            }
            return Ok(());
        }
        let waited = started.elapsed();
        if waited >= wait {
            let holder = holder(tx).await;
            return Err(DatabaseError::Schema {
                target: db.target().to_string(),
                message: db.scrub(format!(
                    "the migration lock (advisory lock {LOCK_KEY}) is held by {holder} and was not released within {} s (lock_timeout_secs); if that session is stuck, end it (SELECT pg_terminate_backend(<pid>)), else wait for it to finish, then start again",
                    wait.as_secs()
                )),
            });
        }
        if Instant::now() >= next_log {
            let holder = holder(tx).await;
            tracing::warn!(
                database = %db.target(),
                "waiting for the migration lock, held by {holder} ({} s of at most {} s, lock_timeout_secs)",
                waited.as_secs(),
                wait.as_secs()
            );
            next_log += LOG_EVERY;
        }
        tokio::time::sleep(TRY_EVERY.min(wait.saturating_sub(waited))).await;
    }
}

/// Who holds the migration lock, for a person: "process 123 (user …, application '…', …)",
/// or "another session" when the server does not say (the holder just let go, or this
/// role may not see it).
async fn holder(tx: &tokio_postgres::Transaction<'_>) -> String {
    let rows = tx
        .query(
            "SELECT a.pid, a.usename::text, a.application_name, host(a.client_addr), a.state,
                    floor(extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start)))::bigint
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                       SELECT oid FROM pg_database WHERE datname = current_database())
               AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 AND l.objsubid = 1
               AND l.pid <> pg_backend_pid()
             LIMIT 1",
            &[&LOCK_KEY],
        )
        .await;
    let Some(row) = rows.ok().and_then(|r| r.into_iter().next()) else {
        return "another session".into();
    };
    let text = |i: usize| {
        row.try_get::<_, Option<String>>(i)
            .ok()
            .flatten()
            .filter(|t| !t.is_empty())
            .map(|t| printable(&t))
    };
    let mut parts = Vec::new();
    if let Some(user) = text(1) {
        parts.push(format!("user {user}"));
    }
    if let Some(app) = text(2) {
        parts.push(format!("application '{app}'"));
    }
    if let Some(addr) = text(3) {
        parts.push(format!("from {addr}"));
    }
    match (text(4), row.try_get::<_, Option<i64>>(5).ok().flatten()) {
        (Some(state), Some(secs)) => parts.push(format!("{state}, for {secs} s")),
        (Some(state), None) => parts.push(state),
        (None, Some(secs)) => parts.push(format!("for {secs} s")),
        (None, None) => {}
    }
    let pid: Option<i32> = row.try_get(0).ok();
    match pid {
        Some(pid) if parts.is_empty() => format!("process {pid}"),
        Some(pid) => format!("process {pid} ({})", parts.join(", ")),
        None => "another session".into(),
    }
}

/// Text another client chose (its application name), safe on one line: control characters
/// escaped, at most 64 characters.
fn printable(text: &str) -> String {
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_migrations_folder_is_compiled_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, listed, "host/migrations/ and MIGRATIONS differ");
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version,
                i as i32 + 1,
                "{} is numbered in sequence",
                m.name
            );
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
            let on_disk = std::fs::read_to_string(dir.join(m.name)).unwrap();
            assert_eq!(on_disk, m.sql, "{} is the compiled text", m.name);
        }
    }
}
