//! Reading where tenants stand, without writing anything: the run-status records of their
//! stores, the fleet's schedule and leases, and (in `serve`) what the server knows live.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{millis, TenantRecord};
use crate::config::SecretSpec;
use crate::postgres::{column, Database, DatabaseError, DatabaseOptions};
use crate::serve::{next_delay, Schedule, ServeFile};
use crate::TenantConfig;

/// Where a tenant's records are.
#[derive(Clone, Debug, PartialEq)]
// The PostgreSQL variant holds a `SecretSpec` (with the keys of a connector's secrets,
// issue 20); a value made once per tenant file, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum StoreSpec {
    /// A SQLite checkpoint file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (a tenant's `[state] url`, or the fleet's database).
    Postgres {
        /// The URL (no password in it).
        url: String,
        /// Where its password comes from.
        password: Option<SecretSpec>,
        /// Timeouts, and the section errors name.
        options: DatabaseOptions,
    },
}

impl StoreSpec {
    fn label(&self) -> String {
        match self {
            StoreSpec::Sqlite(path) => path.display().to_string(),
            StoreSpec::Postgres { url, .. } => url.clone(),
        }
    }
}

/// A tenant to report on.
#[derive(Clone, Debug)]
pub struct Target {
    /// The tenant key.
    pub tenant: String,
    /// Its store.
    pub store: StoreSpec,
    /// Its schedule (local timers), for the next due time; None: not scheduled here.
    pub schedule: Option<Schedule>,
}

/// A lease on a tenant, as the fleet's database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseView {
    /// The host holding it.
    pub host: String,
    /// When it runs out unless renewed.
    pub expires_ms: i64,
}

/// Where one tenant stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantView {
    /// The tenant key.
    pub tenant: String,
    /// Its record (None: never run, as far as its store says).
    pub record: Option<TenantRecord>,
    /// When it is next due (None: unknown or not scheduled).
    pub next_due_ms: Option<i64>,
    /// The fleet lease on it, when one is held.
    pub lease: Option<LeaseView>,
    /// A run of it is in flight on this server (only `serve` knows).
    pub running: bool,
    /// Why its store could not be read.
    pub unreadable: Option<String>,
}

impl TenantView {
    /// `unreadable`, `running`, `never run`, `succeeded` or `failed`.
    pub fn state(&self) -> &'static str {
        if self.unreadable.is_some() {
            "unreadable"
        } else if self.running {
            "running"
        } else {
            match &self.record {
                None => "never run",
                Some(r) => r.last_run.outcome.as_str(),
            }
        }
    }

    /// The last run failed (or the store cannot be read): shown marked.
    pub fn failing(&self) -> bool {
        self.unreadable.is_some()
            || self
                .record
                .as_ref()
                .is_some_and(|r| r.last_run.outcome == super::Outcome::Failed)
    }
}

/// What `serve` knows live about a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveStatus {
    /// A run of it is in flight (or waiting for a slot).
    pub running: bool,
    /// The delay the scheduler chose before its next run, while it waits.
    pub planned_delay: Option<Duration>,
}

/// What `serve` knows live about each tenant, by key.
pub type Live = Arc<dyn Fn(&str) -> Option<LiveStatus> + Send + Sync>;

/// The tenants to report on, where their records are, and how to read them.
pub struct Source {
    targets: Vec<Target>,
    /// The fleet's database: its schedule and leases (and, in a fleet, every record).
    fleet: Option<StoreSpec>,
    live: Option<Live>,
    /// Connected databases, by URL and settings (the page reads them again and again).
    pools: tokio::sync::Mutex<BTreeMap<String, Database>>,
}

impl Source {
    /// The tenants of a tenants file: its tenant files and its simulated tenants, each from
    /// its own store, or all from the fleet's database when the file has a `[fleet]`.
    pub fn from_serve_file(file: &ServeFile) -> Source {
        let fleet = file.fleet.as_ref().map(|f| StoreSpec::Postgres {
            url: f.url.clone(),
            password: f.password.clone(),
            options: f.options.clone(),
        });
        let mut targets: Vec<Target> = file
            .tenants
            .iter()
            .map(|cfg| Target {
                tenant: cfg.key.clone(),
                store: store_of(cfg),
                schedule: Some(file.schedule.clone()),
            })
            .collect();
        if let Some(sim) = &file.simulation {
            targets.extend(
                crate::serve::simulated_keys(sim.tenants)
                    .into_iter()
                    .map(|key| Target {
                        tenant: key,
                        store: StoreSpec::Sqlite(sim.checkpoint_db.clone()),
                        schedule: Some(file.schedule.clone()),
                    }),
            );
        }
        if let Some(db) = &fleet {
            // A fleet's runs write through their lease, to the fleet's database.
            for t in &mut targets {
                t.store = db.clone();
            }
        }
        Source {
            targets,
            fleet,
            live: None,
            pools: Default::default(),
        }
    }

    /// One tenant file's tenant (not scheduled: `run` runs it when asked).
    pub fn from_tenant(cfg: &TenantConfig) -> Source {
        Source {
            targets: vec![Target {
                tenant: cfg.key.clone(),
                store: store_of(cfg),
                schedule: None,
            }],
            fleet: None,
            live: None,
            pools: Default::default(),
        }
    }

    /// Adds what a running server knows (runs in flight, the delays it chose).
    pub fn with_live(mut self, live: Live) -> Source {
        self.live = Some(live);
        self
    }

    /// The tenants, in the order given.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Where every tenant stands now. A store that cannot be read marks its tenants
    /// `unreadable` (with the reason); the others are still read.
    pub async fn views(&self) -> Vec<TenantView> {
        // Each distinct store once.
        let mut stores: BTreeMap<String, (StoreSpec, Vec<String>)> = BTreeMap::new();
        for t in &self.targets {
            stores
                .entry(format!("{:?}", t.store))
                .or_insert_with(|| (t.store.clone(), Vec::new()))
                .1
                .push(t.tenant.clone());
        }
        let mut records: BTreeMap<String, Result<BTreeMap<String, TenantRecord>, String>> =
            BTreeMap::new();
        for (id, (spec, tenants)) in stores {
            let read = self.read_store(&spec, &tenants).await;
            records.insert(id, read);
        }
        let schedule = match &self.fleet {
            Some(spec) => Some(self.read_fleet(spec).await),
            None => None,
        };
        let now = SystemTime::now();
        self.targets
            .iter()
            .map(|t| {
                let mut view = TenantView {
                    tenant: t.tenant.clone(),
                    record: None,
                    next_due_ms: None,
                    lease: None,
                    running: false,
                    unreadable: None,
                };
                match records.get(&format!("{:?}", t.store)) {
                    Some(Ok(found)) => view.record = found.get(&t.tenant).cloned(),
                    Some(Err(e)) => view.unreadable = Some(e.clone()),
                    None => {}
                }
                if let (Some(schedule), Some(record)) = (&t.schedule, &view.record) {
                    // The earliest the next run can start (the jitter adds up to its
                    // figure on top).
                    let delay = next_delay(schedule, record.consecutive_failures, 0.0);
                    view.next_due_ms = Some(
                        record
                            .last_run
                            .ended_ms
                            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                    );
                }
                match &schedule {
                    Some(Ok(rows)) => match rows.get(&t.tenant) {
                        Some(row) => {
                            view.next_due_ms = Some(row.next_due_ms);
                            view.lease = row.lease.clone();
                        }
                        None => view.next_due_ms = None,
                    },
                    Some(Err(e)) if view.unreadable.is_none() => {
                        view.unreadable = Some(e.clone());
                    }
                    Some(Err(_)) => {}
                    None => {}
                }
                if let Some(live) = self.live.as_ref().and_then(|l| l(&t.tenant)) {
                    view.running = live.running;
                    if let Some(delay) = live.planned_delay {
                        view.next_due_ms = Some(millis(now + delay));
                    }
                }
                view
            })
            .collect()
    }

    async fn read_store(
        &self,
        spec: &StoreSpec,
        tenants: &[String],
    ) -> Result<BTreeMap<String, TenantRecord>, String> {
        let label = spec.label();
        match spec {
            StoreSpec::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_sqlite(&path))
                    .await
                    .map_err(|e| format!("reading {label} failed: {e}"))?
                    .map(Option::unwrap_or_default)
            }
            StoreSpec::Postgres { .. } => {
                let db = self.database(spec).await?;
                read_postgres(&db, tenants).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn read_fleet(&self, spec: &StoreSpec) -> Result<BTreeMap<String, FleetRow>, String> {
        let tenants: Vec<String> = self.targets.iter().map(|t| t.tenant.clone()).collect();
        let db = self.database(spec).await?;
        read_fleet(&db, &tenants).await.map_err(|e| e.to_string())
    }

    /// The database of `spec`, connected once (never migrated: reading changes nothing).
    async fn database(&self, spec: &StoreSpec) -> Result<Database, String> {
        let StoreSpec::Postgres {
            url,
            password,
            options,
        } = spec
        else {
            return Err("not a database".into());
        };
        let key = format!("{url}\u{0}{options:?}");
        let mut pools = self.pools.lock().await;
        if let Some(db) = pools.get(&key) {
            return Ok(db.clone());
        }
        let password = match password {
            Some(p) => Some(
                crate::assembly::database_password(p)
                    .map_err(|e| e.in_section(&options.section).to_string())?,
            ),
            None => None,
        };
        let db = Database::connect_with(url, password.as_ref(), options.clone())
            .await
            .map_err(|e| e.to_string())?;
        pools.insert(key, db.clone());
        Ok(db)
    }
}

/// A tenant file's store.
fn store_of(cfg: &TenantConfig) -> StoreSpec {
    match &cfg.postgres {
        Some(pg) => StoreSpec::Postgres {
            url: pg.url.clone(),
            password: pg.password.clone(),
            options: pg.options.clone(),
        },
        None => StoreSpec::Sqlite(cfg.checkpoint_db.clone()),
    }
}

/// The records of a SQLite checkpoint file, read without writing or creating anything:
/// `None` when there is no file (never run), empty when it has no run-status table yet.
///
/// SQLite documents that a read-only connection to a WAL database needs the `-wal` and
/// `-shm` files to exist or to be creatable, unless the database is opened **immutable**
/// (<https://www.sqlite.org/wal.html#readonly>; the `immutable` URI parameter:
/// <https://www.sqlite.org/uri.html#uriimmutable>). The last writer to close deletes both
/// files; so when there is no `-wal` (no writer has it open) the file is opened immutable,
/// and creates nothing; when there is one, a writer (`serve`) is at work and read-only mode
/// uses the files it made.
pub fn read_sqlite(path: &Path) -> Result<Option<BTreeMap<String, TenantRecord>>, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file; name the tenant's checkpoint database"
        ));
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mode = if Path::new(&wal).exists() {
        "mode=ro"
    } else {
        "immutable=1"
    };
    let absolute = std::path::absolute(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    // The path as a URI path: everything but unreserved characters and '/' percent-encoded.
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let uri = format!(
        "file:{}?{mode}",
        percent_encoding::utf8_percent_encode(&absolute.to_string_lossy(), PATH)
    );
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let read = || -> rusqlite::Result<BTreeMap<String, TenantRecord>> {
        let conn = rusqlite::Connection::open_with_flags(&uri, flags)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'host_run_status'",
            [],
            |r| r.get(0),
        )?;
        let mut out = BTreeMap::new();
        if tables == 0 {
            return Ok(out);
        }
        let mut stmt = conn.prepare("SELECT tenant, record FROM host_run_status")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let tenant: String = row.get(0)?;
            let text: String = row.get(1)?;
            if let Ok(record) = serde_json::from_str(&text) {
                out.insert(tenant, record);
            }
        }
        Ok(out)
    };
    read()
        .map(Some)
        .map_err(|e| format!("cannot read {shown}: {e}"))
}

/// The records of `tenants` in a PostgreSQL store (empty when it has no run-status table:
/// not migrated to 0003 yet, or never used).
pub async fn read_postgres(
    db: &Database,
    tenants: &[String],
) -> Result<BTreeMap<String, TenantRecord>, DatabaseError> {
    let mut out = BTreeMap::new();
    if !has_table(db, "host_run_status").await? {
        return Ok(out);
    }
    let rows = db
        .query(
            None,
            "SELECT tenant, record FROM host_run_status WHERE tenant = ANY($1::text[])",
            &[&tenants],
        )
        .await?;
    for row in &rows {
        let tenant: String = column(db, row, 0)?;
        let text: String = column(db, row, 1)?;
        if let Ok(record) = serde_json::from_str(&text) {
            out.insert(tenant, record);
        }
    }
    Ok(out)
}

async fn has_table(db: &Database, table: &str) -> Result<bool, DatabaseError> {
    let rows = db
        .query(None, "SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?;
    match rows.first() {
        Some(row) => column(db, row, 0),
        None => Ok(false),
    }
}

/// A tenant's row of the fleet's schedule.
#[derive(Clone, Debug)]
struct FleetRow {
    next_due_ms: i64,
    lease: Option<LeaseView>,
}

/// The fleet's schedule and live leases of `tenants` (a lease that ran out is no lease).
async fn read_fleet(
    db: &Database,
    tenants: &[String],
) -> Result<BTreeMap<String, FleetRow>, DatabaseError> {
    let mut out = BTreeMap::new();
    if !has_table(db, "fleet_tenants").await? {
        return Ok(out);
    }
    let rows = db
        .query(
            None,
            "SELECT tenant, next_due,
                    CASE WHEN lease_expires > now() THEN lease_host END,
                    CASE WHEN lease_expires > now() THEN lease_expires END
             FROM fleet_tenants WHERE tenant = ANY($1::text[])",
            &[&tenants],
        )
        .await?;
    for row in &rows {
        let tenant: String = column(db, row, 0)?;
        let next_due: SystemTime = column(db, row, 1)?;
        let host: Option<String> = column(db, row, 2)?;
        let expires: Option<SystemTime> = column(db, row, 3)?;
        let lease = match (host, expires) {
            (Some(host), Some(expires)) => Some(LeaseView {
                host,
                expires_ms: millis(expires),
            }),
            _ => None,
        };
        out.insert(
            tenant,
            FleetRow {
                next_due_ms: millis(next_due),
                lease,
            },
        );
    }
    Ok(out)
}
