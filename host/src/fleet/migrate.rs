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
//! nothing. PostgreSQL's DDL is transactional: a failing file leaves nothing half-applied.
//! (A future migration that cannot run in a transaction, e.g. `CREATE INDEX CONCURRENTLY`,
//! needs its own path.)
//!
//! **Refusals.** A recorded file whose checksum changed (an applied migration was edited),
//! or a recorded version this host does not know (a newer host migrated the database), stops
//! start-up with one line saying what to do.

use sha2::{Digest, Sha256};

use super::db::{column, Database, FleetError};

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
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "0001_fleet.sql",
    sql: include_str!("../../migrations/0001_fleet.sql"),
}];

/// Any constant works as long as every host uses the same one: it names "migrating this
/// database" among the advisory locks of the database ("connmigr" in ASCII).
const LOCK_KEY: i64 = 0x636f_6e6e_6d69_6772;

fn checksum(sql: &str) -> String {
    format!("{:x}", Sha256::digest(sql.as_bytes()))
}

/// Brings the database's schema to this host's version; returns the versions it applied
/// (empty: already up to date, e.g. another host did it).
pub async fn migrate(db: &Database) -> Result<Vec<i32>, FleetError> {
    let schema = |message: String| FleetError::Schema {
        target: db.target().to_string(),
        message,
    };
    let mut client = db.client().await?;
    let tx = client.transaction().await.map_err(|e| db.query_error(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| db.query_error(&e))?;
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
            schema(format!(
                "migration {} failed: {}",
                m.name,
                super::db::describe(&e)
            ))
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
