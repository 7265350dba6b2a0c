//! The tenants file of `connector-host serve` (format: the [`crate::serve`] module comment):
//! read once, validated whole before anything runs, every mistake one line naming the file,
//! the line and the key — a typo must not silently drop a tenant or change a schedule.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Schedule, ServeOptions};
use crate::config::SinkSpec;
use crate::error::ConfigError;
use crate::files::identity::{FileId, Protected};
use crate::files::{read_text_file, MAX_CONFIG_BYTES};
use crate::TenantConfig;

/// The longest schedule step or grace period accepted: 366 days.
const MAX_SECS: u64 = 366 * 24 * 3600;
/// Most simulated tenants.
const MAX_SIMULATED: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    serve: RawServe,
    #[serde(default)]
    schedule: RawSchedule,
    simulation: Option<RawSimulation>,
    fleet: Option<RawFleet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    url: String,
    #[serde(default)]
    password: Option<crate::config::SecretSpec>,
    #[serde(default = "default_lease_ttl")]
    lease_ttl_secs: u64,
    #[serde(default)]
    host_id: Option<String>,
    #[serde(default = "default_poll")]
    poll_secs: f64,
    #[serde(default)]
    statement_timeout_secs: Option<u64>,
    #[serde(default)]
    lock_timeout_secs: Option<u64>,
    #[serde(default)]
    allow_password_without_tls: bool,
}

fn default_lease_ttl() -> u64 {
    crate::fleet::DEFAULT_LEASE_TTL.as_secs()
}

fn default_poll() -> f64 {
    1.0
}

/// Fleet mode (`[fleet]`): the tenants' schedules, leases and checkpoints live in one
/// PostgreSQL database that several hosts share.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetSpec {
    /// The database (no password in it; rules: [`crate::postgres`]).
    pub url: String,
    /// Where its password comes from (a `file` resolved against the tenants file's folder).
    pub password: Option<crate::config::SecretSpec>,
    /// How long a lease lasts without renewal: a host that dies is replaced this long after
    /// its last renewal (renewed every third of it).
    pub lease_ttl: Duration,
    /// This host's name in leases and the run history (default: host name and process id).
    pub host_id: Option<String>,
    /// Timeouts (`statement_timeout_secs`, `lock_timeout_secs`) and the plain-text
    /// password opt-in (`allow_password_without_tls`); rules: [`crate::postgres`].
    pub options: crate::fleet::DatabaseOptions,
    /// How often an idle host looks for due tenants.
    pub poll: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServe {
    listen: String,
    max_concurrent_runs: usize,
    shutdown_grace_secs: u64,
    once: bool,
}

impl Default for RawServe {
    fn default() -> Self {
        RawServe {
            listen: "127.0.0.1:9464".into(),
            max_concurrent_runs: 64,
            shutdown_grace_secs: 30,
            once: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSchedule {
    interval_secs: u64,
    jitter_secs: u64,
    backoff_initial_secs: u64,
    backoff_max_secs: u64,
}

impl Default for RawSchedule {
    fn default() -> Self {
        let s = Schedule::default();
        RawSchedule {
            interval_secs: s.interval.as_secs(),
            jitter_secs: s.jitter.as_secs(),
            backoff_initial_secs: s.backoff_initial.as_secs(),
            backoff_max_secs: s.backoff_max.as_secs(),
        }
    }
}

fn default_users() -> usize {
    100
}
fn default_seed() -> u64 {
    42
}
fn default_sim_db() -> PathBuf {
    PathBuf::from("sim/checkpoints.sqlite")
}
fn default_sim_events() -> PathBuf {
    PathBuf::from("sim/events")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSimulation {
    tenants: usize,
    #[serde(default = "default_users")]
    users_per_tenant: usize,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default = "default_sim_db")]
    checkpoint_db: PathBuf,
    #[serde(default = "default_sim_events")]
    events_dir: PathBuf,
    #[serde(default)]
    latency_ms: u64,
}

/// The keys of `n` simulated tenants: `sim-0000`…, zero-padded to at least four digits so
/// they sort in order.
pub fn simulated_keys(n: usize) -> Vec<String> {
    let width = n.saturating_sub(1).to_string().len().max(4);
    (0..n).map(|i| format!("sim-{i:0width$}")).collect()
}

/// Simulated tenants: `tenants` keys `sim-0000`… served by one in-process Graph emulator
/// holding `users_per_tenant` generated users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulationSpec {
    /// How many tenants.
    pub tenants: usize,
    /// Users of the (one, shared) simulated directory.
    pub users_per_tenant: usize,
    /// Seed of the generated users.
    pub seed: u64,
    /// The one SQLite checkpoint store all simulated tenants share (namespaced by key).
    pub checkpoint_db: PathBuf,
    /// Folder of the events files, `<key>.jsonl` each.
    pub events_dir: PathBuf,
    /// Time the simulated Graph takes to answer each request (a network round trip).
    pub latency: Duration,
}

/// A tenants file, resolved and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeFile {
    /// The file itself (for messages).
    pub path: PathBuf,
    /// Address of the `/metrics` and `/healthz` endpoint.
    pub listen: SocketAddr,
    /// Where `listen` came from: `[serve] listen` (or its default), or `--listen`
    /// ([`ServeFile::override_listen`]), for the error when it cannot be bound.
    pub listen_from_command_line: bool,
    /// Pool size, grace period, once mode.
    pub options: ServeOptions,
    /// Every tenant's schedule.
    pub schedule: Schedule,
    /// The included tenant files, in include order (files of a pattern sorted by name).
    pub tenants: Vec<TenantConfig>,
    /// The simulated tenants, if any.
    pub simulation: Option<SimulationSpec>,
    /// Fleet mode, when the file has a `[fleet]` section.
    pub fleet: Option<FleetSpec>,
}

impl ServeFile {
    /// `serve --listen`: the endpoint's address given on the command line replaces the
    /// file's `[serve] listen` (None: the file's stands), so a second `serve` on one machine
    /// can move its endpoint without editing the file.
    pub fn override_listen(&mut self, listen: Option<SocketAddr>) {
        if let Some(addr) = listen {
            self.listen = addr;
            self.listen_from_command_line = true;
        }
    }

    /// Reads and validates a tenants file and the tenant files it includes. Errors are one
    /// line starting with the path of the file at fault.
    pub fn load(path: &Path) -> Result<ServeFile, ConfigError> {
        let text = read_text_file(path, MAX_CONFIG_BYTES, "tenants file")
            .map_err(|e| ConfigError(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_text(&text, base, path).map_err(|e| {
            ConfigError(if e.starts_with(&format!("{}: ", path.display())) {
                e
            } else {
                format!("{}: {e}", path.display())
            })
        })
    }

    /// Parses a tenants file's text; relative paths (includes too) are resolved against
    /// `base`; `path` names the file in messages. Reads the included tenant files.
    pub fn parse(text: &str, base: &Path, path: &Path) -> Result<ServeFile, ConfigError> {
        Self::parse_text(text, base, path).map_err(ConfigError)
    }

    fn parse_text(text: &str, base: &Path, path: &Path) -> Result<ServeFile, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let listen: SocketAddr = raw.serve.listen.trim().parse().map_err(|_| {
            format!(
                "[serve] listen = \"{}\" is not an address:port such as \"127.0.0.1:9464\"",
                raw.serve.listen
            )
        })?;
        if raw.serve.max_concurrent_runs == 0 || raw.serve.max_concurrent_runs > 100_000 {
            return Err(format!(
                "[serve] max_concurrent_runs = {} must be between 1 and 100000",
                raw.serve.max_concurrent_runs
            ));
        }
        let secs = |section: &str, key: &str, value: u64, min: u64| {
            if value < min || value > MAX_SECS {
                Err(format!(
                    "[{section}] {key} = {value} must be between {min} and {MAX_SECS} (366 days)"
                ))
            } else {
                Ok(Duration::from_secs(value))
            }
        };
        let options = ServeOptions {
            max_concurrent_runs: raw.serve.max_concurrent_runs,
            shutdown_grace: secs(
                "serve",
                "shutdown_grace_secs",
                raw.serve.shutdown_grace_secs,
                0,
            )?,
            once: raw.serve.once,
        };
        let s = &raw.schedule;
        let schedule = Schedule {
            interval: secs("schedule", "interval_secs", s.interval_secs, 1)?,
            jitter: secs("schedule", "jitter_secs", s.jitter_secs, 0)?,
            backoff_initial: secs(
                "schedule",
                "backoff_initial_secs",
                s.backoff_initial_secs,
                1,
            )?,
            backoff_max: secs("schedule", "backoff_max_secs", s.backoff_max_secs, 1)?,
        };
        if schedule.backoff_max < schedule.backoff_initial {
            return Err(format!(
                "[schedule] backoff_max_secs = {} is below backoff_initial_secs = {}; raise it",
                s.backoff_max_secs, s.backoff_initial_secs
            ));
        }

        let mut tenants = Vec::new();
        for pattern in &raw.include {
            let files = expand(base, pattern)?;
            if files.is_empty() {
                return Err(format!(
                    "include \"{pattern}\" matches no file; fix the pattern or remove it"
                ));
            }
            for f in files {
                let text = read_text_file(&f, MAX_CONFIG_BYTES, "tenant file")
                    .map_err(|e| format!("include \"{pattern}\": {e}"))?;
                let dir = f.parent().unwrap_or(Path::new("."));
                let cfg = TenantConfig::parse(&text, dir).map_err(|e| {
                    format!("{}: {e} (included by {})", f.display(), path.display())
                })?;
                tenants.push((f, cfg));
            }
        }

        let fleet = match raw.fleet {
            None => None,
            Some(f) => {
                let options = crate::fleet::DatabaseOptions::from_settings(
                    "fleet",
                    f.statement_timeout_secs,
                    f.lock_timeout_secs,
                    f.allow_password_without_tls,
                )?;
                crate::postgres::check_url(&f.url, f.password.is_some(), &options)
                    .map_err(|e| e.to_string())?;
                if !(1..=3600).contains(&f.lease_ttl_secs) {
                    return Err(format!(
                        "[fleet] lease_ttl_secs = {} must be between 1 and 3600",
                        f.lease_ttl_secs
                    ));
                }
                if !(f.poll_secs.is_finite() && (0.05..=60.0).contains(&f.poll_secs)) {
                    return Err(format!(
                        "[fleet] poll_secs = {} must be between 0.05 and 60",
                        f.poll_secs
                    ));
                }
                if let Some(id) = &f.host_id {
                    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                        return Err("[fleet] host_id must be 1-128 printable characters".into());
                    }
                }
                let password = match f.password {
                    Some(mut spec) => {
                        if let Some(file) = &spec.file {
                            spec.file = Some(resolve(base, file));
                        }
                        Some(spec)
                    }
                    None => None,
                };
                Some(FleetSpec {
                    url: f.url,
                    password,
                    lease_ttl: Duration::from_secs(f.lease_ttl_secs),
                    host_id: f.host_id,
                    poll: Duration::from_secs_f64(f.poll_secs),
                    options,
                })
            }
        };
        let simulation = match raw.simulation {
            None => None,
            Some(_) if !cfg!(feature = "simulation") => {
                return Err("[simulation] needs a connector-host built with the `simulation` feature (the CLI has it); remove the section or rebuild with it".into());
            }
            Some(sim) => {
                if sim.tenants == 0 || sim.tenants > MAX_SIMULATED {
                    return Err(format!(
                        "[simulation] tenants = {} must be between 1 and {MAX_SIMULATED}",
                        sim.tenants
                    ));
                }
                if sim.users_per_tenant == 0 {
                    return Err("[simulation] users_per_tenant must be at least 1".into());
                }
                Some(SimulationSpec {
                    tenants: sim.tenants,
                    users_per_tenant: sim.users_per_tenant,
                    latency: Duration::from_millis(sim.latency_ms.min(60_000)),
                    seed: sim.seed,
                    checkpoint_db: resolve(base, &sim.checkpoint_db),
                    events_dir: resolve(base, &sim.events_dir),
                })
            }
        };

        // Unique keys; no two tenants appending to one events file (lines would interleave);
        // no events file that is a file the host reads or another tenant's database (the
        // sink would append to it and cut its "torn" tail). Files are compared by device and
        // inode, not by spelling: see crate::files::identity.
        let mut protected = Protected::new();
        protected.add(path, "the tenants file");
        for (f, cfg) in &tenants {
            protected.add(f, &format!("the tenant file of tenant '{}'", cfg.key));
            protected.add_tenant(cfg);
        }
        if let Some(password) = fleet.as_ref().and_then(|f| f.password.as_ref()) {
            protected.add_secret(password, "the [fleet] password file");
        }
        if let Some(sim) = &simulation {
            protected.add_sqlite(
                &sim.checkpoint_db,
                "the checkpoint database of the [simulation] tenants",
            );
        }
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        let mut sinks: BTreeMap<FileId, (String, PathBuf)> = BTreeMap::new();
        let mut claim = |key: &str, origin: String, sink: Option<PathBuf>| {
            if let Some(first) = keys.insert(key.to_string(), origin.clone()) {
                return Err(format!(
                    "tenant key '{key}' is used twice ({first} and {origin}); every tenant needs its own key"
                ));
            }
            if let Some(sink) = sink {
                let id = protected
                    .check_events(&sink)
                    .map_err(|e| format!("tenant '{key}' ({origin}): {e}"))?;
                if let Some((other, spelled)) = sinks.insert(id, (key.to_string(), sink.clone())) {
                    let file = if spelled.as_os_str() == sink.as_os_str() {
                        sink.display().to_string()
                    } else {
                        format!("one file ({} and {})", spelled.display(), sink.display())
                    };
                    return Err(format!(
                        "tenants '{other}' and '{key}' both write events to {file}; give each its own [sink] path"
                    ));
                }
            }
            Ok(())
        };
        for (f, cfg) in &tenants {
            let sink = match &cfg.sink {
                SinkSpec::Jsonl { path } => Some(path.clone()),
                // Push sinks share no file: two tenants may feed one receiver.
                SinkSpec::Stdout | SinkSpec::Sekoia(_) | SinkSpec::Http(_) => None,
            };
            claim(&cfg.key, f.display().to_string(), sink)?;
        }
        if let Some(sim) = &simulation {
            for key in simulated_keys(sim.tenants) {
                let sink = sim.events_dir.join(format!("{key}.jsonl"));
                claim(&key, "[simulation]".into(), Some(sink))?;
            }
        }
        if keys.is_empty() {
            return Err(
                "no tenants: add include = [\"tenants.d/*.toml\"] at the top or a [simulation] section"
                    .into(),
            );
        }
        Ok(ServeFile {
            path: path.to_path_buf(),
            listen,
            listen_from_command_line: false,
            options,
            schedule,
            tenants: tenants.into_iter().map(|(_, cfg)| cfg).collect(),
            simulation,
            fleet,
        })
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The files an include pattern names: a path whose last part may hold one `*` (matching any
/// run of characters, dot files excluded), sorted by name.
fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = resolve(base, Path::new(pattern));
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("include \"{pattern}\" does not end in a file name or pattern"))?
        .to_string();
    let dir = full.parent().unwrap_or(Path::new(".")).to_path_buf();
    if dir.to_string_lossy().contains('*') {
        return Err(format!(
            "include \"{pattern}\": '*' may appear only in the last part of the path"
        ));
    }
    let Some((prefix, suffix)) = name.split_once('*') else {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(format!(
                "include \"{pattern}\": {} is not a file",
                full.display()
            ))
        };
    };
    if suffix.contains('*') {
        return Err(format!(
            "include \"{pattern}\": only one '*' is supported, e.g. \"tenants.d/*.toml\""
        ));
    }
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| format!("include \"{pattern}\": cannot list {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("include \"{pattern}\": listing {}: {e}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.starts_with('.')
            || n.len() < prefix.len() + suffix.len()
            || !n.starts_with(prefix)
            || !n.ends_with(suffix)
        {
            continue;
        }
        let p = entry.path();
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// A TOML error as one line: the line number, the section it is in, the message, and a hint
/// for the one easy TOML slip (`include` written below a section header).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let section = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split(']').next().unwrap_or(l).to_string() + "]");
    let hint = match &section {
        Some(s) if message.contains("unknown field `include`") => {
            format!("; include is a top-level key: move it above {s} (the first section)")
        }
        _ => String::new(),
    };
    match section {
        Some(s) => format!("line {line}, in {s}: {message}{hint}"),
        None => format!("line {line}: {message}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_file(key: &str, events: &str) -> String {
        format!(
            r#"
[tenant]
key = "{key}"
[config]
tenant_id = "t.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
[secrets.client_secret]
env = "SERVE_TEST_SECRET"
[state]
checkpoint_db = "../state/checkpoints.sqlite"
[sink]
kind = "jsonl"
path = "{events}"
"#
        )
    }

    fn parse(dir: &Path, text: &str) -> Result<ServeFile, String> {
        ServeFile::parse(text, dir, &dir.join("tenants.toml")).map_err(|e| e.to_string())
    }

    #[test]
    #[cfg_attr(
        not(feature = "simulation"),
        ignore = "its file has a [simulation] section: needs the simulation feature"
    )]
    fn defaults_includes_and_simulation_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tenants.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("b.toml"), tenant_file("bravo", "b.jsonl")).unwrap();
        std::fs::write(d.join("a.toml"), tenant_file("alpha", "a.jsonl")).unwrap();
        std::fs::write(d.join("notes.txt"), "not a tenant").unwrap();
        let f = parse(
            dir.path(),
            "include = [\"tenants.d/*.toml\"]\n[simulation]\ntenants = 3\n",
        )
        .unwrap();
        assert_eq!(f.listen, "127.0.0.1:9464".parse().unwrap());
        assert_eq!(f.options, ServeOptions::default());
        assert_eq!(f.schedule, Schedule::default());
        let keys: Vec<&str> = f.tenants.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["alpha", "bravo"], "sorted by file name");
        assert_eq!(
            f.tenants[0].checkpoint_db,
            d.join("../state/checkpoints.sqlite"),
            "a tenant file's paths are relative to that file"
        );
        let sim = f.simulation.unwrap();
        assert_eq!((sim.tenants, sim.users_per_tenant, sim.seed), (3, 100, 42));
        assert_eq!(sim.checkpoint_db, dir.path().join("sim/checkpoints.sqlite"));
        assert_eq!(sim.events_dir, dir.path().join("sim/events"));
    }

    #[test]
    #[cfg_attr(
        not(feature = "simulation"),
        ignore = "its file has a [simulation] section: needs the simulation feature"
    )]
    fn every_setting_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = parse(
            dir.path(),
            r#"
[serve]
listen = "0.0.0.0:0"
max_concurrent_runs = 3
shutdown_grace_secs = 5
once = true
[schedule]
interval_secs = 60
jitter_secs = 0
backoff_initial_secs = 2
backoff_max_secs = 8
[simulation]
tenants = 2
users_per_tenant = 5
seed = 7
checkpoint_db = "/abs/c.sqlite"
events_dir = "ev"
"#,
        )
        .unwrap();
        assert_eq!(
            f.options,
            ServeOptions {
                max_concurrent_runs: 3,
                shutdown_grace: Duration::from_secs(5),
                once: true
            }
        );
        assert_eq!(
            f.schedule,
            Schedule {
                interval: Duration::from_secs(60),
                jitter: Duration::ZERO,
                backoff_initial: Duration::from_secs(2),
                backoff_max: Duration::from_secs(8),
            }
        );
        let sim = f.simulation.unwrap();
        assert_eq!(sim.checkpoint_db, PathBuf::from("/abs/c.sqlite"));
        assert_eq!(sim.events_dir, dir.path().join("ev"));
    }

    #[test]
    #[cfg_attr(
        not(feature = "simulation"),
        ignore = "its file has a [simulation] section: needs the simulation feature"
    )]
    fn operator_fleet_section_is_read_with_defaults_and_its_mistakes_named() {
        let dir = tempfile::tempdir().unwrap();
        let sim = "[simulation]\ntenants = 2\n";
        let f = parse(
            dir.path(),
            &format!("{sim}[fleet]\nurl = \"postgres://connector@db.internal/fleet?sslmode=verify-full\"\npassword = {{ file = \"pg.pass\" }}\n"),
        )
        .unwrap();
        let fleet = f.fleet.expect("fleet mode");
        assert_eq!(
            fleet.url,
            "postgres://connector@db.internal/fleet?sslmode=verify-full"
        );
        assert_eq!(
            fleet.options,
            crate::fleet::DatabaseOptions {
                section: "fleet".into(),
                ..crate::fleet::DatabaseOptions::default()
            },
            "the defaults, and its errors name [fleet]"
        );
        assert_eq!(fleet.lease_ttl, crate::fleet::DEFAULT_LEASE_TTL);
        assert_eq!(fleet.poll, Duration::from_secs(1));
        assert_eq!(fleet.host_id, None);
        assert_eq!(
            fleet.password.and_then(|p| p.file),
            Some(dir.path().join("pg.pass")),
            "resolved against the tenants file's folder"
        );
        assert_eq!(parse(dir.path(), sim).unwrap().fleet, None);
        for (fleet, named) in [
            ("url = \"postgres://connector:pw@db/fleet\"", "[fleet] url"),
            (
                "url = \"postgres://connector@db/fleet\"\nlease_ttl_secs = 0",
                "lease_ttl_secs = 0",
            ),
            (
                "url = \"postgres://connector@db/fleet\"\npoll_secs = 0.0",
                "poll_secs = 0",
            ),
            (
                "url = \"postgres://connector@db/fleet\"\nhost_id = \"\"",
                "[fleet] host_id",
            ),
            ("url = \"postgres://connector@db/fleet\"\nttl = 5", "ttl"),
            (
                "url = \"postgres://connector%3Apw@db/fleet\"",
                "[fleet] url: the user name holds ':'",
            ),
            (
                "url = \"postgres://connector@db/fleet\"\npassword = { env = \"PG\" }",
                "[fleet] url: a password is configured but the connection",
            ),
            (
                "url = \"postgres://connector@db/fleet\"\nstatement_timeout_secs = 0",
                "[fleet] statement_timeout_secs = 0 must be between 1 and",
            ),
        ] {
            let e = parse(dir.path(), &format!("{sim}[fleet]\n{fleet}\n")).unwrap_err();
            assert!(e.contains(named) && !e.contains('\n'), "{fleet}: {e}");
            assert!(
                !e.contains(":pw@") && !e.contains("%3Apw"),
                "the password is not echoed: {e}"
            );
        }
        let f = parse(
            dir.path(),
            &format!("{sim}[fleet]\nurl = \"postgres://connector@db/fleet\"\npassword = {{ env = \"PG\" }}\nallow_password_without_tls = true\nlock_timeout_secs = 3\n"),
        )
        .unwrap();
        let options = f.fleet.unwrap().options;
        assert!(options.allow_password_without_tls);
        assert_eq!(options.lock_timeout, Duration::from_secs(3));
    }

    #[test]
    #[cfg_attr(
        not(feature = "simulation"),
        ignore = "its file has a [simulation] section: needs the simulation feature"
    )]
    fn mistakes_are_one_line_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let sim = "[simulation]\ntenants = 2\n";
        let cases: &[(&str, &str)] = &[
            (
                "[serve]\ncolour = 1\n",
                "line 2, in [serve]: unknown field `colour`",
            ),
            (
                "[schedule]\ninclude = [\"x/*.toml\"]\n",
                "move it above [schedule]",
            ),
            (
                "[serve]\nlisten = \"localhost\"\n",
                "[serve] listen = \"localhost\"",
            ),
            (
                "[serve]\nmax_concurrent_runs = 0\n",
                "max_concurrent_runs = 0",
            ),
            ("[schedule]\ninterval_secs = 0\n", "interval_secs = 0"),
            (
                "[schedule]\nbackoff_initial_secs = 60\nbackoff_max_secs = 30\n",
                "backoff_max_secs = 30",
            ),
            ("[simulation]\ntenants = 0\n", "tenants = 0"),
            (
                "[simulation]\nusers_per_tenant = 3\n",
                "missing field `tenants`",
            ),
            (
                "include = [\"nowhere/*.toml\"]\n",
                "include \"nowhere/*.toml\": cannot list",
            ),
            ("include = [\"*/*.toml\"]\n", "only in the last part"),
            ("include = [\"a*b*.toml\"]\n", "only one '*'"),
            (
                "include = [\"missing.toml\"]\n",
                "missing.toml is not a file",
            ),
            ("include = [\"*.nothing\"]\n", "matches no file"),
            ("[serve]\nonce = true\n", "no tenants"),
        ];
        for (text, expected) in cases {
            // Files that would otherwise be fine get a tenant, so the error is the one meant.
            let text = if text.starts_with("[simulation]")
                || text.starts_with("include")
                || *expected == "no tenants"
            {
                text.to_string()
            } else {
                format!("{text}{sim}")
            };
            let e = parse(dir.path(), &text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    #[cfg_attr(
        not(feature = "simulation"),
        ignore = "its file has a [simulation] section: needs the simulation feature"
    )]
    fn duplicate_keys_and_shared_event_files_are_refused_tenants_may_name_components() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("t");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("a.toml"), tenant_file("same", "a.jsonl")).unwrap();
        std::fs::write(d.join("b.toml"), tenant_file("same", "b.jsonl")).unwrap();
        let e = parse(dir.path(), "include = [\"t/*.toml\"]").unwrap_err();
        assert!(e.contains("tenant key 'same' is used twice"), "{e}");

        std::fs::write(d.join("b.toml"), tenant_file("other", "a.jsonl")).unwrap();
        let e = parse(dir.path(), "include = [\"t/*.toml\"]").unwrap_err();
        assert!(e.contains("both write events to"), "{e}");

        std::fs::write(d.join("b.toml"), tenant_file("sim-0001", "b.jsonl")).unwrap();
        let e = parse(
            dir.path(),
            "include = [\"t/*.toml\"]\n[simulation]\ntenants = 2",
        )
        .unwrap_err();
        assert!(e.contains("tenant key 'sim-0001' is used twice"), "{e}");

        // Tenants of different components in one serve: the file keeps each one's choice
        // (the deployment compiles each distinct component once).
        let with_component = tenant_file("c", "c.jsonl")
            .replace("key = \"c\"", "key = \"c\"\nconnector = \"x.wasm\"");
        std::fs::write(d.join("b.toml"), with_component).unwrap();
        std::fs::write(d.join("a.toml"), tenant_file("a", "a.jsonl")).unwrap();
        let f = parse(dir.path(), "include = [\"t/*.toml\"]").unwrap();
        assert_eq!(
            f.tenants
                .iter()
                .map(|t| t.component.clone())
                .collect::<Vec<_>>(),
            vec![
                crate::ConnectorChoice::Builtin("entra-id".into()),
                crate::ConnectorChoice::File(d.join("x.wasm")),
            ]
        );

        std::fs::write(d.join("b.toml"), "[tenant]\nkey = \"x\"\ncolour = 1").unwrap();
        let e = parse(dir.path(), "include = [\"t/b.toml\"]").unwrap_err();
        assert!(
            e.contains("b.toml: line 3") && e.contains("colour") && e.contains("included by"),
            "{e}"
        );
    }

    #[cfg(not(feature = "simulation"))]
    #[test]
    fn a_simulation_section_needs_the_simulation_feature() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse(dir.path(), "[simulation]\ntenants = 1").unwrap_err();
        assert_eq!(e, "[simulation] needs a connector-host built with the `simulation` feature (the CLI has it); remove the section or rebuild with it");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tenants.toml");
        std::fs::write(&p, "[serve]\ncolour = 1\n").unwrap();
        let e = ServeFile::load(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: line 2", p.display())), "{e}");
        let e = ServeFile::load(&dir.path().join("absent.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read tenants file"), "{e}");
    }
}
