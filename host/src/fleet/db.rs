//! The connection to PostgreSQL: the URL rules, TLS, the password from a host-side secret,
//! the pool, and one-line errors.
//!
//! **URL.** `postgres://user@host[:port]/database[?sslmode=…&sslrootcert=…&…]`, one host.
//! A password in it (`user:password@`, or `password=`) is refused: the config file is not a
//! place for secrets; the password comes from [`Password::load`] (`[state] password =
//! { env = "VAR" }` or `{ file = "path" }`).
//!
//! **TLS** is on when the URL asks for it. `sslmode=require`, `verify-ca` and `verify-full`
//! all verify the server's certificate chain *and* its name (stricter than libpq, whose
//! `require` and `verify-ca` accept any certificate or any name): the host never sends a
//! password over a connection it has not authenticated. The roots are the web PKI's
//! (`webpki-roots`), or only the CA certificates of the PEM file `sslrootcert=path` (a
//! private CA: a public one must not vouch for the database). `sslmode=prefer` and `allow`
//! are refused (they fall back to plain text silently); absent or `disable` is plain text,
//! for a database on the same host or network. TLS is rustls with ring, the stack reqwest
//! already builds (`tokio-postgres-rustls` adapts it to the driver).
//!
//! **Pool.** `deadpool-postgres` over `tokio-postgres`: a small pool (16 connections by
//! default), a 10 s connect timeout unless the URL sets `connect_timeout`, prepared
//! statements cached per connection. [`Database::connect`] opens one connection at once, so
//! a wrong URL, password or database name fails at start-up, not at the first run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::config::SecretSpec;

/// Why the fleet's database cannot be used: one line naming the database (never the
/// password), what failed and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// The `[state]` settings are unusable (URL, password secret, TLS files).
    #[error("[state] {0}")]
    Config(String),
    /// The database cannot be reached or refused the connection.
    #[error("PostgreSQL {target}: {message}")]
    Unavailable {
        /// `user@host:port/database`.
        target: String,
        /// Why, and what to do.
        message: String,
    },
    /// The schema cannot be brought to this host's version.
    #[error("PostgreSQL {target}: schema: {message}")]
    Schema {
        /// `user@host:port/database`.
        target: String,
        /// Why, and what to do.
        message: String,
    },
    /// A statement failed.
    #[error("PostgreSQL {target}: {message}")]
    Query {
        /// `user@host:port/database`.
        target: String,
        /// The server's or the driver's message.
        message: String,
    },
}

/// The database password, loaded on the host side; `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Password {
        Password(value.into())
    }

    /// Loads the password a `[state] password` names: an environment variable of the host
    /// process or a file (trailing newline ignored). Never a value in the config itself.
    pub fn load(spec: &SecretSpec) -> Result<Password, FleetError> {
        if !spec.hosts.is_empty() {
            return Err(FleetError::Config(
                "password: hosts = […] does not apply to the database password; remove it".into(),
            ));
        }
        let value = match (&spec.env, &spec.file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                FleetError::Config(format!(
                    "password: environment variable {var} is not set; export it or use file = \"…\""
                ))
            })?,
            (None, Some(path)) => crate::files::read_text_file(
                path,
                crate::files::MAX_SECRET_BYTES,
                "database password file",
            )
            .map_err(|e| FleetError::Config(format!("password: {e}")))?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
            _ => {
                return Err(FleetError::Config(
                    "password needs exactly one of env = \"VAR\" or file = \"path\"".into(),
                ))
            }
        };
        if value.is_empty() {
            return Err(FleetError::Config(
                "password: the value is empty; set the database password".into(),
            ));
        }
        Ok(Password(value))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Pool settings; the defaults suit one host running a few dozen tenants at once.
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    /// Most connections this host opens (default 16).
    pub max_connections: usize,
    /// Longest wait for a free connection before a statement fails (default 30 s).
    pub wait_timeout: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            max_connections: 16,
            wait_timeout: Duration::from_secs(30),
        }
    }
}

/// A pool of connections to the fleet's database. Cheap to clone (one pool).
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    target: Arc<str>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.target)
            .finish()
    }
}

/// A URL split into the driver's settings and this module's TLS choice.
struct Target {
    config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    display: String,
}

fn parse_url(url: &str, password: Option<&Password>) -> Result<Target, FleetError> {
    let config_err = |m: String| FleetError::Config(format!("url: {m}"));
    let mut parsed = url::Url::parse(url.trim()).map_err(|e| {
        config_err(format!(
            "not a URL ({e}); write postgres://user@host:port/database"
        ))
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(config_err(format!(
            "scheme '{}' is not postgres://; write postgres://user@host:port/database",
            parsed.scheme()
        )));
    }
    let password_in_query = parsed.query_pairs().any(|(k, _)| k == "password");
    if parsed.password().is_some() || password_in_query {
        return Err(config_err(
            "holds a password; remove it from the URL and set [state] password = { env = \"VAR\" } or { file = \"path\" }".into(),
        ));
    }
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut rest = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match &*k {
            "sslmode" => sslmode = Some(v.into_owned()),
            "sslrootcert" => sslrootcert = Some(v.into_owned()),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut config: tokio_postgres::Config = parsed
        .as_str()
        .parse()
        .map_err(|e: tokio_postgres::Error| config_err(one_line(&e.to_string())))?;
    let user = config.get_user().map(str::to_owned).ok_or_else(|| {
        config_err("names no user; write postgres://user@host:port/database".into())
    })?;
    let tls = match sslmode.as_deref() {
        None | Some("disable") => None,
        Some("require" | "verify-ca" | "verify-full") => Some(tls_config(sslrootcert.as_deref())?),
        Some(mode @ ("prefer" | "allow")) => {
            return Err(config_err(format!(
                "sslmode={mode} falls back to plain text without saying so; use sslmode=verify-full (or require), or disable for a local database"
            )))
        }
        Some(other) => {
            return Err(config_err(format!(
                "sslmode={other} is not one of disable, require, verify-ca, verify-full"
            )))
        }
    };
    if tls.is_none() && sslrootcert.is_some() {
        return Err(config_err(
            "sslrootcert is set but TLS is off; add sslmode=verify-full".into(),
        ));
    }
    config.ssl_mode(if tls.is_some() {
        SslMode::Require
    } else {
        SslMode::Disable
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("connector-host");
    }
    if let Some(p) = password {
        config.password(p.0.as_bytes());
    }
    let host = match config.get_hosts() {
        [tokio_postgres::config::Host::Tcp(h)] => h.clone(),
        #[cfg(unix)]
        [tokio_postgres::config::Host::Unix(p)] => p.display().to_string(),
        [] => "localhost".into(),
        _ => {
            return Err(config_err(
                "names several hosts; give one (a fleet needs one primary)".into(),
            ))
        }
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or(&user).to_string();
    Ok(Target {
        display: format!("{user}@{host}:{port}/{dbname}"),
        config,
        tls,
    })
}

/// Checks a `[state] url` without connecting: the rules of this module (no password, one
/// host, a user, a known `sslmode`, a readable `sslrootcert`).
pub fn check_url(url: &str) -> Result<(), FleetError> {
    parse_url(url, None).map(|_| ())
}

fn tls_config(rootcert: Option<&str>) -> Result<rustls::ClientConfig, FleetError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    FleetError::Config(format!(
                        "url: sslrootcert={path}: cannot read PEM certificates ({e}); give the CA file"
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(FleetError::Config(format!(
                    "url: sslrootcert={path} holds no usable CA certificate; give the PEM file of the database's CA"
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    client_config(roots)
}

/// rustls with ring (the provider reqwest's rustls is built with), verifying against `roots`.
fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, FleetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FleetError::Config(format!("url: TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Database {
    /// Opens a pool on `url` (see the module doc for its rules) with the default
    /// [`DatabaseOptions`], and one connection at once to check the URL, the password and
    /// the database. Does not migrate: see [`super::migrate`].
    pub async fn connect(url: &str, password: Option<&Password>) -> Result<Database, FleetError> {
        Self::connect_with(url, password, DatabaseOptions::default()).await
    }

    /// [`Database::connect`] with explicit pool settings.
    pub async fn connect_with(
        url: &str,
        password: Option<&Password>,
        options: DatabaseOptions,
    ) -> Result<Database, FleetError> {
        let Target {
            config,
            tls,
            display,
        } = parse_url(url, password)?;
        // With TLS off the driver never calls the connector; an empty one stands in.
        let tls = match tls {
            Some(tls) => tls,
            None => client_config(rustls::RootCertStore::empty())?,
        };
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let manager = Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(connect_timeout + Duration::from_secs(1)))
            .build()
            .map_err(|e| FleetError::Config(format!("pool: {e}")))?;
        let db = Database {
            pool,
            target: display.into(),
        };
        drop(db.client().await?);
        Ok(db)
    }

    /// `user@host:port/database`, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, FleetError> {
        self.pool.get().await.map_err(|e| {
            let message = match e {
                deadpool_postgres::PoolError::Backend(e) => connect_message(&e),
                deadpool_postgres::PoolError::Timeout(_) => {
                    "timed out waiting for a connection: is the server reachable and not overloaded?".into()
                }
                other => one_line(&other.to_string()),
            };
            FleetError::Unavailable {
                target: self.target.to_string(),
                message,
            }
        })
    }

    /// A statement's error as a [`FleetError::Query`].
    pub(crate) fn query_error(&self, e: &tokio_postgres::Error) -> FleetError {
        FleetError::Query {
            target: self.target.to_string(),
            message: describe(e),
        }
    }

    /// Runs one statement (prepared once per connection) and returns its rows. When
    /// `round_trips` is given it counts the exchanges with the server: one, plus one the
    /// first time a connection prepares the statement.
    pub(crate) async fn query(
        &self,
        round_trips: Option<&AtomicU64>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, FleetError> {
        let client = self.client().await?;
        let cached = client.statement_cache.size();
        let statement = client.prepare_cached(sql).await;
        let prepared = client.statement_cache.size() > cached;
        if let Some(counter) = round_trips {
            counter.fetch_add(1 + u64::from(prepared), Ordering::Relaxed);
        }
        let statement = statement.map_err(|e| self.query_error(&e))?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| self.query_error(&e))
    }
}

/// A column of a row of this module's own schema, as a typed error instead of a panic.
pub(crate) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    db: &Database,
    row: &'a Row,
    index: usize,
) -> Result<T, FleetError> {
    row.try_get(index).map_err(|e| db.query_error(&e))
}

/// A connection failure in one line with the next step.
fn connect_message(e: &tokio_postgres::Error) -> String {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        let text = describe(e);
        return if text.contains("TLS") || text.contains("certificate") {
            format!("{text}: check sslmode and sslrootcert (the CA that signed the server's certificate) in [state] url")
        } else {
            format!("cannot connect ({text}): is PostgreSQL running there, and does [state] url name the right host and port?")
        };
    };
    let message = one_line(db.message());
    match db.code() {
        c if *c == SqlState::INVALID_CATALOG_NAME => {
            format!("{message}: create it (CREATE DATABASE … OWNER …) or fix the database name in [state] url")
        }
        c if *c == SqlState::INVALID_PASSWORD => {
            format!("{message}: check the secret [state] password names")
        }
        c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            format!("{message}: the server's pg_hba.conf refuses this host, user or database (or TLS is required: add sslmode=verify-full)")
        }
        _ => message,
    }
}

/// The driver's error in one line: the server's message and SQLSTATE, or the chain of causes.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", one_line(db.message()), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    one_line(&text)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match parse_url(url, None) {
            Ok(_) => panic!("{url} accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn operator_a_password_in_the_url_is_refused_without_echoing_it() {
        for url in [
            "postgres://app:hunter2-secret@db.example/app",
            "postgres://app@db.example/app?password=hunter2-secret",
        ] {
            let e = err(url);
            assert!(
                e.contains("holds a password") && e.contains("[state] password"),
                "{e}"
            );
            assert!(!e.contains("hunter2") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn operator_tls_modes_are_explicit() {
        let t = parse_url("postgres://app@db.example:6543/fleet", None).unwrap();
        assert!(t.tls.is_none());
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(t.display, "app@db.example:6543/fleet");
        for mode in ["require", "verify-ca", "verify-full"] {
            let t = parse_url(
                &format!("postgres://app@db.example/fleet?sslmode={mode}"),
                None,
            )
            .unwrap();
            assert!(t.tls.is_some(), "{mode}");
            assert_eq!(t.config.get_ssl_mode(), SslMode::Require, "{mode}");
        }
        let e = err("postgres://app@db.example/fleet?sslmode=prefer");
        assert!(e.contains("sslmode=prefer falls back to plain text"), "{e}");
        let e = err("postgres://app@db.example/fleet?sslmode=bogus");
        assert!(e.contains("sslmode=bogus"), "{e}");
        let e = err(
            "postgres://app@db.example/fleet?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        );
        assert!(e.contains("sslrootcert=/nonexistent/ca.pem"), "{e}");
        let e = err("postgres://app@db.example/fleet?sslrootcert=/x.pem");
        assert!(e.contains("TLS is off"), "{e}");
    }

    #[test]
    fn operator_url_mistakes_are_one_line() {
        assert!(err("mysql://app@db/x").contains("scheme 'mysql'"));
        assert!(err("postgres://db.example/x").contains("names no user"));
        assert!(err("not a url").contains("not a URL"));
    }

    #[test]
    fn password_debug_never_prints_the_value() {
        let p = Password::new("hunter2-secret");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
    }
}
