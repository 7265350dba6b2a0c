//! The connection to PostgreSQL: the URL rules, TLS, the password from a host-side secret,
//! the pool, the schema's migrations ([`migrate`]) and one-line errors.
//!
//! Below both of its users: the PostgreSQL checkpoint store
//! ([`crate::doors::checkpoint::postgres`]) and the fleet's leases ([`crate::fleet`]) each
//! take a [`Database`] from here; neither owns the connection, and this module knows neither.
//!
//! **URL.** `postgres://user@host[:port]/database[?sslmode=…&sslrootcert=…&…]`, one host.
//! A password in it is refused: the config file is not a place for secrets; the password
//! comes from a host-side secret ([`Password::from_source`]: `[state] password = { env =
//! "VAR" }` or `{ file = "path" }`, loaded by [`crate::secrets`]). The URL is judged by what the *driver* reads from it
//! (`tokio_postgres::Config`), not by a URL parser's idea of it: a password in the userinfo,
//! in a `password=` parameter (percent-encoded key or not), or smuggled into the user name
//! (`user%3Apassword@`: the driver decodes the user as `user:password`, and the server
//! echoes the user in its errors) is refused, and a user name holding `:` is refused
//! outright. No error prints the URL's userinfo or a password: the URL is never echoed, and
//! every error of a [`Database`] has the configured password replaced by `<redacted>`.
//!
//! **A password only over TLS or to this machine.** With a password configured and TLS off,
//! the server may ask for it in clear text (`password` authentication) and a machine on the
//! path reads it. So a password is sent only over TLS, to a Unix socket or to a loopback
//! address (`127.0.0.0/8`, `::1`, `localhost`), unless the operator opts in with
//! `allow_password_without_tls = true` (in `[state]` or `[fleet]`). Checked at load and
//! again at connect.
//!
//! **Every statement is bounded.** Each pooled connection starts with `statement_timeout`
//! (30 s by default), `lock_timeout` (10 s) and `idle_in_transaction_session_timeout` (60 s)
//! set by the startup packet's `options` (after any the URL gives, so these win), and each
//! statement of [`Database::query`] has a client-side deadline a little past the statement
//! timeout (a server that stops answering cannot hold a run either; that connection is then
//! dropped from the pool). A row another session holds `FOR UPDATE` costs a write at most
//! the lock timeout, then a one-line error. The migration lock is bounded the same way (see
//! [`migrate`]).
//!
//! **TLS** is on when the URL asks for it. `sslmode=require`, `verify-ca` and `verify-full`
//! all verify the server's certificate chain *and* its name (stricter than libpq, whose
//! `require` and `verify-ca` accept any certificate or any name): the host never sends a
//! password over a connection it has not authenticated. The roots are the web PKI's
//! (`webpki-roots`), or only the CA certificates of the PEM file `sslrootcert=path` (a
//! private CA: a public one must not vouch for the database), read like every file the host
//! reads: a regular file of at most 1 MiB ([`crate::files`]: a FIFO, `/dev/zero` or a huge
//! file is refused with one line). `sslmode=prefer` and `allow`
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

pub mod migrate;

use crate::secrets::SecretSource;

/// Why the database cannot be used: one line naming the database (never the
/// password), what failed and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    /// The settings of the file's `section` (`state` or `fleet`) are unusable (URL, password
    /// secret, TLS files).
    #[error("[{section}] {message}")]
    Config {
        /// The tenant or serve file's section the settings come from.
        section: String,
        /// What failed and what to do.
        message: String,
    },
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

impl DatabaseError {
    /// A [`DatabaseError::Config`] about `[state]`; [`DatabaseError::in_section`] names
    /// another section.
    pub fn config(message: impl Into<String>) -> DatabaseError {
        DatabaseError::Config {
            section: "state".into(),
            message: message.into(),
        }
    }

    /// The same error, about the settings of `section` (`fleet` for a serve file's
    /// `[fleet]`): a settings error names the section the operator wrote.
    pub fn in_section(self, section: &str) -> DatabaseError {
        match self {
            DatabaseError::Config { message, .. } => DatabaseError::Config {
                section: section.into(),
                message,
            },
            other => other,
        }
    }
}

/// The database password, loaded on the host side; `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Password {
        Password(value.into())
    }

    /// Loads the password from a host-side secret (an environment variable of the host
    /// process or a file, by [`crate::secrets`]' rules). Never a value in the config itself.
    pub fn from_source(source: &SecretSource) -> Result<Password, DatabaseError> {
        let value = source
            .read()
            .map_err(|e| DatabaseError::config(e.keyed("password")))?;
        Ok(Password(value))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Pool and session settings; the defaults suit one host running a few dozen tenants at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// Most connections this host opens (default 16).
    pub max_connections: usize,
    /// Longest wait for a free connection before a statement fails (default 30 s).
    pub wait_timeout: Duration,
    /// The server's `statement_timeout` on every connection (default 30 s; `[state]` /
    /// `[fleet]` `statement_timeout_secs`).
    pub statement_timeout: Duration,
    /// The server's `lock_timeout` on every connection, and the longest wait for the
    /// migration lock (default 10 s; `lock_timeout_secs`).
    pub lock_timeout: Duration,
    /// The server's `idle_in_transaction_session_timeout` (default 60 s): a transaction this
    /// host left open (a stalled process) releases its locks.
    pub idle_in_transaction_timeout: Duration,
    /// Send the password over a plain-text connection to another machine
    /// (`allow_password_without_tls`; default: refused).
    pub allow_password_without_tls: bool,
    /// The file's section these settings come from (`state`, the default, or `fleet`),
    /// named in every settings error.
    pub section: String,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            max_connections: 16,
            wait_timeout: Duration::from_secs(30),
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            idle_in_transaction_timeout: Duration::from_secs(60),
            allow_password_without_tls: false,
            section: "state".into(),
        }
    }
}

/// `statement_timeout_secs` unless configured.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// `lock_timeout_secs` unless configured.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `statement_timeout_secs` or `lock_timeout_secs` accepted (one day).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// The largest `sslrootcert` file read: 1 MiB (a CA bundle is a few hundred KiB at most).
pub const MAX_ROOTCERT_BYTES: u64 = 1024 * 1024;

impl DatabaseOptions {
    /// The options a `[state]` or `[fleet]` section (`section`, for messages) sets, checked:
    /// each timeout between 1 s and a day.
    pub fn from_settings(
        section: &str,
        statement_timeout_secs: Option<u64>,
        lock_timeout_secs: Option<u64>,
        allow_password_without_tls: bool,
    ) -> Result<DatabaseOptions, String> {
        let secs = |key: &str, value: Option<u64>, default: Duration| match value {
            None => Ok(default),
            Some(v) if (1..=MAX_TIMEOUT_SECS).contains(&v) => Ok(Duration::from_secs(v)),
            Some(v) => Err(format!(
                "[{section}] {key} = {v} must be between 1 and {MAX_TIMEOUT_SECS} (a day)"
            )),
        };
        Ok(DatabaseOptions {
            statement_timeout: secs(
                "statement_timeout_secs",
                statement_timeout_secs,
                DEFAULT_STATEMENT_TIMEOUT,
            )?,
            lock_timeout: secs("lock_timeout_secs", lock_timeout_secs, DEFAULT_LOCK_TIMEOUT)?,
            allow_password_without_tls,
            section: section.to_string(),
            ..DatabaseOptions::default()
        })
    }

    /// The `options` startup parameter that sets this struct's server-side timeouts.
    fn session_options(&self) -> String {
        format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            millis(self.statement_timeout),
            millis(self.lock_timeout),
            millis(self.idle_in_transaction_timeout)
        )
    }

    /// How long [`Database::query`] waits for the server before giving the connection up:
    /// the statement timeout, plus time for the server's own cancellation to arrive.
    pub(crate) fn client_deadline(&self) -> Duration {
        self.statement_timeout
            .saturating_add(Duration::from_secs(5))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A pool of connections to one database. Cheap to clone (one pool).
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    target: Arc<str>,
    /// The configured password, replaced by `<redacted>` in every error text.
    secret: Option<Arc<str>>,
    options: Arc<DatabaseOptions>,
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
    /// The connection goes to a Unix socket or a loopback address.
    local: bool,
}

const PASSWORD_IN_URL: &str = "holds a password; remove it from the URL and set [state] password (or [fleet] password) = { env = \"VAR\" } or { file = \"path\" }";

/// Parses `url` by this module's rules. Never echoes the URL's userinfo or a password.
fn parse_url(url: &str) -> Result<Target, DatabaseError> {
    let config_err = |m: String| DatabaseError::config(format!("url: {m}"));
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
        return Err(config_err(PASSWORD_IN_URL.into()));
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
    // From here on, what the driver reads is what counts. Its parse errors name the
    // parameter, never the value.
    let mut config: tokio_postgres::Config = parsed
        .as_str()
        .parse()
        .map_err(|e: tokio_postgres::Error| config_err(one_line(&e.to_string())))?;
    if config.get_password().is_some() {
        return Err(config_err(PASSWORD_IN_URL.into()));
    }
    let user = config.get_user().map(str::to_owned).ok_or_else(|| {
        config_err("names no user; write postgres://user@host:port/database".into())
    })?;
    if user.contains(':') {
        // `user%3Asecret@` decodes to the user `user:secret`: a password in disguise, and
        // the server would print it back ("password authentication failed for user …").
        return Err(config_err(
            "the user name holds ':' (percent-encoded as %3A), which is how a password gets into a URL; write only the user name and set the password with password = { env = \"VAR\" } or { file = \"path\" }".into(),
        ));
    }
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
                "sslmode={} is not one of disable, require, verify-ca, verify-full",
                one_line(other).chars().take(32).collect::<String>()
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
    let local = is_local(&config);
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or(&user).to_string();
    Ok(Target {
        display: format!("{user}@{host}:{port}/{dbname}"),
        config,
        tls,
        local,
    })
}

/// Whether every address the driver would connect to is on this machine: a Unix socket, or
/// a loopback address (`hostaddr` when given, since the driver connects there).
fn is_local(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    let addrs = config.get_hostaddrs();
    if !addrs.is_empty() {
        return addrs.iter().all(|a| a.is_loopback());
    }
    let hosts = config.get_hosts();
    !hosts.is_empty()
        && hosts.iter().all(|h| match h {
            Host::Tcp(name) => {
                name.eq_ignore_ascii_case("localhost")
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            #[cfg(unix)]
            Host::Unix(_) => true,
        })
}

/// The rule "a password only over TLS or to this machine" (see the module doc).
fn check_password_transport(
    target: &Target,
    has_password: bool,
    options: &DatabaseOptions,
) -> Result<(), DatabaseError> {
    if has_password && target.tls.is_none() && !target.local && !options.allow_password_without_tls
    {
        return Err(DatabaseError::config(
            "url: a password is configured but the connection to this non-local server is not encrypted (no sslmode, or sslmode=disable), so the server could ask for the password in clear text; add sslmode=verify-full (with sslrootcert for a private CA), or set allow_password_without_tls = true in the same section if the network is trusted",
        ));
    }
    Ok(())
}

/// Checks a `[state]` or `[fleet]` url without connecting: the rules of this module (no
/// password, one host, a user, a known `sslmode`, a readable `sslrootcert`, and a password
/// (`has_password`: one is configured) sent only over TLS or to this machine unless
/// `options` allow it).
pub fn check_url(
    url: &str,
    has_password: bool,
    options: &DatabaseOptions,
) -> Result<(), DatabaseError> {
    let target = parse_url(url).map_err(|e| e.in_section(&options.section))?;
    check_password_transport(&target, has_password, options)
        .map_err(|e| e.in_section(&options.section))
}

fn tls_config(rootcert: Option<&str>) -> Result<rustls::ClientConfig, DatabaseError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) => {
            // The capped, regular-files-only reader: a FIFO, a device or a huge file is
            // refused before it can hang or exhaust the host.
            let pem = crate::files::read_regular_file(
                std::path::Path::new(path),
                MAX_ROOTCERT_BYTES,
                "CA certificates file",
            )
            .map_err(|e| DatabaseError::config(format!("url: sslrootcert={path}: {e}")))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    DatabaseError::config(format!(
                        "url: sslrootcert={path}: cannot read PEM certificates ({e}); give the CA file"
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(DatabaseError::config(format!(
                    "url: sslrootcert={path} holds no usable CA certificate; give the PEM file of the database's CA"
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    client_config(roots)
}

/// rustls with ring (the provider reqwest's rustls is built with), verifying against `roots`.
fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, DatabaseError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DatabaseError::config(format!("url: TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Database {
    /// Opens a pool on `url` (see the module doc for its rules) with the default
    /// [`DatabaseOptions`], and one connection at once to check the URL, the password and
    /// the database. Does not migrate: see [`migrate`].
    pub async fn connect(
        url: &str,
        password: Option<&Password>,
    ) -> Result<Database, DatabaseError> {
        Self::connect_with(url, password, DatabaseOptions::default()).await
    }

    /// [`Database::connect`] with explicit pool and session settings.
    pub async fn connect_with(
        url: &str,
        password: Option<&Password>,
        options: DatabaseOptions,
    ) -> Result<Database, DatabaseError> {
        let target = parse_url(url).map_err(|e| e.in_section(&options.section))?;
        check_password_transport(&target, password.is_some(), &options)
            .map_err(|e| e.in_section(&options.section))?;
        let Target {
            mut config,
            tls,
            display,
            ..
        } = target;
        if let Some(p) = password {
            config.password(p.0.as_bytes());
        }
        // The session's timeouts, after whatever `options` the URL gives, so that these win.
        let session = match config.get_options() {
            Some(given) if !given.trim().is_empty() => {
                format!("{given} {}", options.session_options())
            }
            _ => options.session_options(),
        };
        config.options(session);
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
            .create_timeout(Some(connect_timeout.saturating_add(Duration::from_secs(1))))
            .build()
            .map_err(|e| {
                DatabaseError::config(format!("pool: {e}")).in_section(&options.section)
            })?;
        let secret: Option<Arc<str>> = password
            .map(|p| Arc::from(p.0.as_str()))
            .filter(|p: &Arc<str>| !p.is_empty());
        let display = scrub_with(secret.as_deref(), display);
        let db = Database {
            pool,
            target: display.into(),
            secret,
            options: Arc::new(options),
        };
        drop(db.client().await?);
        Ok(db)
    }

    /// The pool and session settings.
    pub fn options(&self) -> &DatabaseOptions {
        &self.options
    }

    /// `text` with the configured password replaced by `<redacted>`: every error text of
    /// this database passes here (a server echoes names it was given, and a password can
    /// end up in one).
    pub(crate) fn scrub(&self, text: String) -> String {
        scrub_with(self.secret.as_deref(), text)
    }

    /// `user@host:port/database`, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, DatabaseError> {
        self.pool.get().await.map_err(|e| {
            let message = match e {
                deadpool_postgres::PoolError::Backend(e) => {
                    connect_message(&e, &self.options.section)
                }
                deadpool_postgres::PoolError::Timeout(_) => {
                    "timed out waiting for a connection: is the server reachable and not overloaded?".into()
                }
                other => one_line(&other.to_string()),
            };
            DatabaseError::Unavailable {
                target: self.target.to_string(),
                message: self.scrub(message),
            }
        })
    }

    /// A statement's error as a [`DatabaseError::Query`].
    pub(crate) fn query_error(&self, e: &tokio_postgres::Error) -> DatabaseError {
        DatabaseError::Query {
            target: self.target.to_string(),
            message: self.scrub(describe(e)),
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
    ) -> Result<Vec<Row>, DatabaseError> {
        let client = self.client().await?;
        let exchange = async {
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
        };
        let deadline = self.options.client_deadline();
        match tokio::time::timeout(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => {
                // The server neither answered nor cancelled the statement: this connection
                // is not trusted again.
                drop(deadpool_postgres::Object::take(client));
                Err(DatabaseError::Query {
                    target: self.target.to_string(),
                    message: format!(
                        "no answer within {} s (statement_timeout_secs plus 5 s); the connection was dropped: is the server reachable and not overloaded?",
                        deadline.as_secs()
                    ),
                })
            }
        }
    }
}

/// `text` without `secret` (raw or percent-encoded).
fn scrub_with(secret: Option<&str>, text: String) -> String {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return text;
    };
    let mut text = text.replace(secret, "<redacted>");
    let encoded: String =
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
    if encoded != secret {
        text = text.replace(&encoded, "<redacted>");
    }
    text
}

/// A column of a row of this module's own schema, as a typed error instead of a panic.
pub(crate) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    db: &Database,
    row: &'a Row,
    index: usize,
) -> Result<T, DatabaseError> {
    row.try_get(index).map_err(|e| db.query_error(&e))
}

/// A connection failure in one line with the next step.
fn connect_message(e: &tokio_postgres::Error, section: &str) -> String {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        let text = describe(e);
        return if text.contains("TLS") || text.contains("certificate") {
            format!("{text}: check sslmode and sslrootcert (the CA that signed the server's certificate) in [{section}] url")
        } else {
            format!("cannot connect ({text}): is PostgreSQL running there, and does [{section}] url name the right host and port?")
        };
    };
    let message = one_line(db.message());
    match db.code() {
        c if *c == SqlState::INVALID_CATALOG_NAME => {
            format!("{message}: create it (CREATE DATABASE … OWNER …) or fix the database name in [{section}] url")
        }
        c if *c == SqlState::INVALID_PASSWORD => {
            format!("{message}: check the secret [{section}] password names")
        }
        c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            format!("{message}: the server's pg_hba.conf refuses this host, user or database (or TLS is required: add sslmode=verify-full)")
        }
        _ => message,
    }
}

/// The driver's error in one line: the server's message and SQLSTATE, or the chain of causes.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let hint = match db.code() {
            c if *c == SqlState::LOCK_NOT_AVAILABLE => {
                ": another session holds a lock this statement needs (longer than lock_timeout_secs); find it in pg_locks and pg_stat_activity and end it, or raise lock_timeout_secs"
            }
            c if *c == SqlState::QUERY_CANCELED => {
                ": the statement ran past statement_timeout_secs and was cancelled; check the server's load and locks (pg_stat_activity), or raise statement_timeout_secs"
            }
            _ => "",
        };
        return format!(
            "{} (SQLSTATE {}){hint}",
            one_line(db.message()),
            db.code().code()
        );
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
        match parse_url(url) {
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
        let t = parse_url("postgres://app@db.example:6543/fleet").unwrap();
        assert!(t.tls.is_none());
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(t.display, "app@db.example:6543/fleet");
        for mode in ["require", "verify-ca", "verify-full"] {
            let t = parse_url(&format!("postgres://app@db.example/fleet?sslmode={mode}")).unwrap();
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
    fn operator_password_smuggled_in_the_url_user_is_refused_and_never_printed() {
        // Each of these gives the driver a password (or a user `app:<secret>` the server
        // would print back); none passed as "no password in the URL" by the URL parser's view.
        for url in [
            "postgres://app%3Ahunter2-secret@db.example/app",
            "postgres://app%3ahunter2-secret@db.example/app?sslmode=verify-full",
            "postgresql://app%3A%68unter2-secret@127.0.0.1:5432/app",
            "postgres://app@db.example/app?pass%77ord=hunter2-secret",
            "postgres://app@db.example/app?%70assword=hunter2-secret",
            "postgres://db.example/app?user=app%3Ahunter2-secret",
            "postgres://app@db.example/app?user=app:hunter2-secret",
        ] {
            let e = err(url);
            assert!(
                e.contains("holds a password") || e.contains("user name holds ':'"),
                "{url}: {e}"
            );
            assert!(
                e.contains("{ env = \"VAR\" }")
                    && !e.contains("hunter2")
                    && !e.contains("%68unter2")
                    && !e.contains('\n'),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn operator_the_configured_password_is_scrubbed_from_texts() {
        let text = "database \"s3cr&t/pw\" does not exist; s3cr%26t%2Fpw".to_string();
        assert_eq!(
            scrub_with(Some("s3cr&t/pw"), text),
            "database \"<redacted>\" does not exist; <redacted>"
        );
        assert_eq!(scrub_with(None, "x".into()), "x");
    }

    #[test]
    fn operator_a_fleet_settings_error_names_the_fleet_section_not_state() {
        let fleet = DatabaseOptions::from_settings("fleet", None, None, false).unwrap();
        let e = check_url("postgres://app@db.example/app", true, &fleet)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("[fleet] url: a password is configured"),
            "{e}"
        );
        let e = check_url("mysql://app@db.example/app", false, &fleet)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("[fleet] url: "), "{e}");
        // The tenant file's [state] stays the default.
        let e = check_url(
            "mysql://app@db.example/app",
            false,
            &DatabaseOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("[state] url: "), "{e}");
        // A password error loaded without options is re-labelled by the caller.
        let source = SecretSource::Env("CONNECTOR_TEST_UNSET_FLEET_PASSWORD_VAR".into());
        let e = Password::from_source(&source).unwrap_err();
        assert!(e.to_string().starts_with("[state] password"), "{e}");
        let e = e.in_section("fleet").to_string();
        assert!(e.starts_with("[fleet] password"), "{e}");
        assert!(e.contains("CONNECTOR_TEST_UNSET_FLEET_PASSWORD_VAR"), "{e}");
    }

    #[test]
    fn operator_password_without_tls_refused() {
        let strict = DatabaseOptions::default();
        let e = check_url("postgres://app@db.example/app", true, &strict)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not encrypted")
                && e.contains("sslmode=verify-full")
                && e.contains("allow_password_without_tls = true")
                && !e.contains('\n'),
            "{e}"
        );
        for url in [
            "postgres://app@db.example/app?sslmode=disable",
            "postgres://app@10.0.0.5:5432/app",
            "postgres://app@localhost.example.com/app",
            // The driver connects to hostaddr, whatever the name says.
            "postgres://app@localhost/app?hostaddr=10.0.0.5",
        ] {
            assert!(check_url(url, true, &strict).is_err(), "{url}");
        }
        // Without a password, over TLS, or to this machine: allowed.
        for (url, password) in [
            ("postgres://app@db.example/app", false),
            ("postgres://app@db.example/app?sslmode=verify-full", true),
            ("postgres://app@db.example/app?sslmode=require", true),
            ("postgres://app@127.0.0.1:5432/app", true),
            ("postgres://app@127.8.9.10/app", true),
            ("postgres://app@[::1]:5432/app", true),
            ("postgres://app@localhost/app", true),
            ("postgres://app@LOCALHOST/app", true),
            ("postgres://app@%2Fvar%2Frun%2Fpostgresql/app", true),
            ("postgres://app@db.example/app?hostaddr=127.0.0.1", true),
        ] {
            check_url(url, password, &strict).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        // The explicit opt-in.
        let opted = DatabaseOptions::from_settings("state", None, None, true).unwrap();
        check_url("postgres://app@db.example/app", true, &opted).unwrap();
    }

    #[test]
    fn operator_timeouts_are_bounded_and_reach_the_session() {
        let o = DatabaseOptions::from_settings("state", Some(5), Some(2), false).unwrap();
        assert_eq!(
            (o.statement_timeout, o.lock_timeout),
            (Duration::from_secs(5), Duration::from_secs(2))
        );
        assert_eq!(
            o.session_options(),
            "-c statement_timeout=5000 -c lock_timeout=2000 -c idle_in_transaction_session_timeout=60000"
        );
        let d = DatabaseOptions::from_settings("fleet", None, None, false).unwrap();
        assert_eq!(
            (d.statement_timeout, d.lock_timeout),
            (DEFAULT_STATEMENT_TIMEOUT, DEFAULT_LOCK_TIMEOUT)
        );
        for (st, lk, key) in [
            (Some(0), None, "statement_timeout_secs = 0"),
            (None, Some(0), "lock_timeout_secs = 0"),
            (
                None,
                Some(u64::MAX),
                "lock_timeout_secs = 18446744073709551615",
            ),
        ] {
            let e = DatabaseOptions::from_settings("fleet", st, lk, false).unwrap_err();
            assert!(
                e.starts_with(&format!("[fleet] {key} must be between 1 and")),
                "{e}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn operator_sslrootcert_fifo_dev_zero_and_oversized_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = |path: &std::path::Path| {
            format!(
                "postgres://app@db.example/app?sslmode=verify-full&sslrootcert={}",
                path.display()
            )
        };
        // A FIFO with no writer: a blocking open or read would never return (the guard
        // turns a hang into a failure).
        let fifo = dir.path().join("ca.fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let (tx, rx) = std::sync::mpsc::channel();
        let fifo_url = url(&fifo);
        std::thread::spawn(move || {
            let _ = tx.send(err(&fifo_url));
        });
        let e = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a FIFO as sslrootcert does not hang the load");
        assert!(
            e.contains("sslrootcert=") && e.contains("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        // /dev/zero: endless; it must be refused, not read until memory runs out.
        let e = err(&url(std::path::Path::new("/dev/zero")));
        assert!(
            e.contains("CA certificates file /dev/zero is a character device") && !e.contains('\n'),
            "{e}"
        );
        // A file over the cap is refused whole, not read and parsed.
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'\n'; MAX_ROOTCERT_BYTES as usize + 1]).unwrap();
        let e = err(&url(&big));
        assert!(
            e.contains("is larger than 1 MiB, the most accepted for a CA certificates file"),
            "{e}"
        );
    }

    #[test]
    fn password_debug_never_prints_the_value() {
        let p = Password::new("hunter2-secret");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
    }
}
