//! A tenant's host-side configuration (`tenant.toml`): which component, the connector's own
//! settings, where its secrets come from, whom it may talk to, where its cursor and events go,
//! and its limits.
//!
//! Unknown keys are errors (a typo must not silently weaken a policy). Relative paths are
//! resolved against the file's folder. Every error is one line naming the file, the key and
//! the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::doors::http::Origin;
use crate::error::ConfigError;

/// Where a secret's value comes from. The value itself is never in the config file.
///
/// `[secrets.NAME]` of a tenant file takes more keys than the other secrets (a push sink's
/// credential, the PostgreSQL password): its `kind` (`"value"`, the default, or
/// `"private_key"`, a key the host signs client assertions with: [`crate::credentials`]),
/// and the keys of that kind, all checked at load ([`SecretSpec::resolve_connector_secret`]).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Name of an environment variable of the host process holding the value.
    pub env: Option<String>,
    /// Path of a file holding the value (trailing newline ignored).
    pub file: Option<PathBuf>,
    /// Origins (`https://host[:port]`) this secret may be sent to. Default: where the
    /// component's egress plan sends it (see [`crate::Runtime::resolve_egress`]).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The day the credential stops working (`YYYY-MM-DD`, UTC), when the operator knows
    /// it (an Entra client secret's "Expires" column): exported as
    /// `connector_credential_expiry_timestamp_seconds{tenant,secret}` by `serve`, so an alert
    /// fires before every run of the tenant fails on it. Checked at load.
    #[serde(default)]
    pub expires: Option<String>,
    /// `"value"` (default) or `"private_key"` ([`SecretKind`]).
    #[serde(default)]
    pub kind: Option<String>,
    /// private_key: the PEM X.509 certificate of the key (what was uploaded to the app
    /// registration): gives `x5t#S256`/`x5t` and the expiry.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// private_key: PS256|PS384|PS512|RS256|RS384|RS512|ES256|ES384 (default by key type).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// private_key: the client id the assertion is signed for (`iss` = `sub`). Required.
    #[serde(default)]
    pub client_id: Option<String>,
    /// private_key: add the SHA-1 `x5t` header (default: with an RS* algorithm and a
    /// certificate).
    #[serde(default)]
    pub x5t: Option<bool>,
    /// private_key: the `kid` header.
    #[serde(default)]
    pub kid: Option<String>,
    /// private_key: add RFC 9449 DPoP proofs to requests to the secret's hosts.
    #[serde(default)]
    pub dpop: Option<bool>,
    /// value: the header the value is filled in (`{{secret:NAME}}` as that header's whole
    /// value), which makes it a header credential.
    #[serde(default)]
    pub header: Option<String>,
    /// value with `header`: sent as `<prefix> <value>` (e.g. `SSWS`).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// What a `[secrets.NAME]` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// A value filled where its placeholder is (a form field, or its `header`).
    Value,
    /// A private key the host signs with ([`crate::credentials`]).
    PrivateKey,
}

/// Headers a header credential may not name: the host sets them itself (the request's
/// framing and target) or fills them itself (`DPoP`).
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "content-type",
    "dpop",
];

impl SecretSpec {
    /// When the credential stops working (the start of its `expires` day, UTC), if known.
    /// `Err` is the reason a written `expires` is not a date (one line).
    pub fn expiry(&self) -> Result<Option<std::time::SystemTime>, String> {
        let Some(day) = &self.expires else {
            return Ok(None);
        };
        let shape_ok = day.len() == 10
            && day.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        let parsed = shape_ok
            .then(|| humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).ok())
            .flatten();
        match parsed {
            Some(at) => Ok(Some(at)),
            None => Err(format!(
                "expires = \"{}\" is not a date YYYY-MM-DD (the day the credential stops working, e.g. \"2027-06-30\")",
                crate::doors::log::escape_control(&day.chars().take(40).collect::<String>())
            )),
        }
    }

    /// Where the value comes from: exactly one of `env` and `file` ([`crate::secrets`]).
    pub fn source(&self) -> Result<crate::secrets::SecretSource, crate::secrets::LoadError> {
        crate::secrets::SecretSource::from_parts(self.env.as_deref(), self.file.as_deref())
    }

    /// Loads the value by [`crate::secrets`]' rules.
    pub fn load(&self) -> Result<String, crate::secrets::LoadError> {
        self.source()?.read()
    }

    /// The kind (`Value` when `kind` is not set); `Err` names a kind that is none.
    pub fn kind(&self) -> Result<SecretKind, String> {
        match self.kind.as_deref() {
            None | Some("value") => Ok(SecretKind::Value),
            Some("private_key") => Ok(SecretKind::PrivateKey),
            Some(other) => Err(format!(
                "kind = \"{}\" is not a kind of secret: use \"value\" (the default) or \"private_key\"",
                crate::doors::log::escape_control(&other.chars().take(40).collect::<String>())
            )),
        }
    }

    /// The keys of `[secrets.NAME]` set on this spec, by name (for the checks below).
    fn connector_keys(&self) -> Vec<&'static str> {
        let set = [
            ("kind", self.kind.is_some()),
            ("certificate", self.certificate.is_some()),
            ("algorithm", self.algorithm.is_some()),
            ("client_id", self.client_id.is_some()),
            ("x5t", self.x5t.is_some()),
            ("kid", self.kid.is_some()),
            ("dpop", self.dpop.is_some()),
            ("header", self.header.is_some()),
            ("prefix", self.prefix.is_some()),
        ];
        set.into_iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| k)
            .collect()
    }

    /// Refuses the keys only a connector's `[secrets.NAME]` takes (`kind`, `header`, …) on
    /// another secret (`key` names it: `[sink] api_key`, `[state] password`).
    pub fn plain_only(&self, key: &str) -> Result<(), String> {
        match self.connector_keys().first() {
            None => Ok(()),
            Some(k) => Err(format!(
                "{key} takes no {k}: kinds, headers and keys belong to the connector's [secrets.NAME]; remove {k}"
            )),
        }
    }

    /// Checks a connector's `[secrets.NAME]` (`key`) at load: the source, the kind and the
    /// keys of that kind (see [`SecretSpec`]), one line naming `[secrets.NAME] key`; resolves
    /// `file` and `certificate` against the tenant file's folder.
    pub(crate) fn resolve_connector_secret(
        &mut self,
        key: &str,
        base: &Path,
    ) -> Result<(), String> {
        self.check_source(key)?;
        let kind = self.kind().map_err(|e| format!("{key} {e}"))?;
        match kind {
            SecretKind::Value => {
                for (k, on) in [
                    ("certificate", self.certificate.is_some()),
                    ("algorithm", self.algorithm.is_some()),
                    ("client_id", self.client_id.is_some()),
                    ("x5t", self.x5t.is_some()),
                    ("kid", self.kid.is_some()),
                    ("dpop", self.dpop.is_some()),
                ] {
                    if on {
                        return Err(format!(
                            "{key} {k} applies to kind = \"private_key\" only; remove it, or set kind = \"private_key\" for a key the host signs with"
                        ));
                    }
                }
                if let Some(header) = &self.header {
                    let lower = header.to_ascii_lowercase();
                    if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err()
                        || RESERVED_HEADERS.contains(&lower.as_str())
                    {
                        return Err(format!(
                            "{key} header = \"{}\" is not a header a credential can go in; name the header the service reads it from, e.g. header = \"Authorization\"",
                            crate::doors::log::escape_control(&header.chars().take(60).collect::<String>())
                        ));
                    }
                }
                match (&self.header, &self.prefix) {
                    (None, Some(_)) => {
                        return Err(format!(
                            "{key} prefix needs header = \"…\" (the header sent as \"<prefix> <value>\"); add header or remove prefix"
                        ))
                    }
                    (Some(_), Some(prefix))
                        if prefix.is_empty()
                            || !prefix.bytes().all(|b| b.is_ascii_graphic()) =>
                    {
                        return Err(format!(
                            "{key} prefix must be one word of printable ASCII (e.g. \"SSWS\", \"Bearer\"); the host adds the space"
                        ))
                    }
                    _ => {}
                }
            }
            SecretKind::PrivateKey => {
                for (k, on) in [
                    ("header", self.header.is_some()),
                    ("prefix", self.prefix.is_some()),
                ] {
                    if on {
                        return Err(format!(
                            "{key} {k} applies to kind = \"value\" only (a private_key signs client assertions, it is never sent); remove it"
                        ));
                    }
                }
                if self
                    .client_id
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
                {
                    return Err(format!(
                        "{key} client_id = \"…\" is required with kind = \"private_key\": the application (client) id the assertion is signed for (its iss and sub)"
                    ));
                }
                if let Some(alg) = &self.algorithm {
                    if crate::credentials::parse_algorithm(alg).is_none() {
                        return Err(format!(
                            "{key} algorithm = \"{}\" is not one of {}",
                            crate::doors::log::escape_control(
                                &alg.chars().take(40).collect::<String>()
                            ),
                            crate::credentials::ALGORITHMS.join(", ")
                        ));
                    }
                }
                if self.x5t == Some(true) && self.certificate.is_none() {
                    return Err(format!(
                        "{key} x5t = true needs certificate = \"…\": the x5t header is the certificate's SHA-1 thumbprint"
                    ));
                }
                if self.kid.as_deref().is_some_and(|k| k.is_empty()) {
                    return Err(format!("{key} kid is empty; set the key id or remove kid"));
                }
                if let Some(cert) = &self.certificate {
                    self.certificate = Some(resolve(base, cert));
                }
            }
        }
        self.resolve_file(base);
        Ok(())
    }

    fn check_source(&self, key: &str) -> Result<(), String> {
        self.source().map_err(|e| e.keyed(key))?;
        self.expiry().map_err(|e| format!("{key} {e}"))?;
        Ok(())
    }

    fn resolve_file(&mut self, base: &Path) {
        if let Some(file) = &self.file {
            self.file = Some(resolve(base, file));
        }
    }

    /// Checks at load that the spec names exactly one source (one line naming `key`) and
    /// none of the keys of a connector's `[secrets.NAME]`, and resolves a `file` against
    /// the tenant file's folder.
    pub(crate) fn resolve_source(&mut self, key: &str, base: &Path) -> Result<(), String> {
        self.plain_only(key)?;
        self.source().map_err(|e| e.keyed(key))?;
        self.expiry().map_err(|e| format!("{key} {e}"))?;
        if let Some(file) = &self.file {
            self.file = Some(resolve(base, file));
        }
        Ok(())
    }
}

/// Egress settings of a tenant.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EgressSpec {
    /// Origins the connector may reach. Default: the origins the component's egress plan
    /// names for the tenant's `[config]` (see [`crate::Runtime::resolve_egress`]).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Permit `http://` to loopback addresses (the local Graph emulator needs it). Never in production.
    #[serde(default)]
    pub allow_loopback_http: bool,
}

/// Where the tenant's checkpoints live: exactly one of a SQLite file (`checkpoint_db`, the
/// embedded default) or a PostgreSQL database (`url`, with `password` from a host-side
/// secret; see [`crate::postgres`] for the URL and TLS rules).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// SQLite database file of checkpoints (created if missing).
    pub checkpoint_db: Option<PathBuf>,
    /// PostgreSQL URL, `postgres://user@host:port/database[?sslmode=verify-full]`, without
    /// a password.
    pub url: Option<String>,
    /// Where the PostgreSQL password comes from (`env` or `file`), never the value.
    pub password: Option<SecretSpec>,
    /// The server's `statement_timeout` on every connection, seconds (default 30).
    pub statement_timeout_secs: Option<u64>,
    /// The server's `lock_timeout`, and the longest wait for the migration lock, seconds
    /// (default 10).
    pub lock_timeout_secs: Option<u64>,
    /// Send the password over plain text to a server that is not on this machine
    /// (default: refused; see [`crate::postgres`]).
    #[serde(default)]
    pub allow_password_without_tls: bool,
}

/// A PostgreSQL checkpoint store, validated (the URL holds no password).
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresState {
    /// The URL (no password in it).
    pub url: String,
    /// Where the password comes from (a `file` is resolved against the config's folder);
    /// load it with [`crate::assembly::database_password`].
    pub password: Option<SecretSpec>,
    /// Timeouts and the plain-text password opt-in.
    pub options: crate::postgres::DatabaseOptions,
}

/// The checkpoint store a `[state]` section chose.
#[derive(Clone, Debug, PartialEq)]
// The PostgreSQL variant holds a `SecretSpec` (with the keys of a connector's secrets,
// issue 20); a value made once per tenant file, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum StateStore {
    /// A SQLite file (resolved).
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresState),
}

impl StateSpec {
    /// Checks "exactly one of the two" and the URL (without connecting); resolves relative
    /// paths against `base`.
    pub fn resolve(&self, base: &Path) -> Result<StateStore, String> {
        match (&self.checkpoint_db, &self.url) {
            (Some(db), None) => {
                if self.password.is_some() {
                    return Err("[state] password is for url = \"postgres://…\"; remove it with checkpoint_db".into());
                }
                if self.statement_timeout_secs.is_some()
                    || self.lock_timeout_secs.is_some()
                    || self.allow_password_without_tls
                {
                    return Err("[state] statement_timeout_secs, lock_timeout_secs and allow_password_without_tls are for url = \"postgres://…\"; remove them with checkpoint_db".into());
                }
                Ok(StateStore::Sqlite(resolve(base, db)))
            }
            (None, Some(url)) => {
                let options = crate::postgres::DatabaseOptions::from_settings(
                    "state",
                    self.statement_timeout_secs,
                    self.lock_timeout_secs,
                    self.allow_password_without_tls,
                )?;
                crate::postgres::check_url(url, self.password.is_some(), &options)
                    .map_err(|e| e.to_string())?;
                let password = match &self.password {
                    None => None,
                    Some(spec) => {
                        if !spec.hosts.is_empty() {
                            return Err("[state] password: hosts = […] does not apply to the database password; remove it".into());
                        }
                        let mut spec = spec.clone();
                        spec.resolve_source("[state] password", base)?;
                        Some(spec)
                    }
                };
                Ok(StateStore::Postgres(PostgresState {
                    url: url.trim().to_string(),
                    password,
                    options,
                }))
            }
            (Some(_), Some(_)) => Err("[state] has both checkpoint_db and url: keep one (SQLite file or PostgreSQL)".into()),
            (None, None) => Err("[state] needs checkpoint_db = \"path\" (SQLite) or url = \"postgres://…\" (PostgreSQL)".into()),
        }
    }
}

/// Where events go.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkSpec {
    /// Append JSON lines to a file, fsynced before every checkpoint.
    Jsonl {
        /// The file.
        path: PathBuf,
    },
    /// Write JSON lines to standard output.
    Stdout,
    /// Push batches to a Sekoia.io asset connector
    /// ([`crate::doors::emit::sekoia`]); a batch counts as delivered when the receiver
    /// acknowledges it.
    Sekoia(SekoiaSinkSpec),
    /// POST batches as NDJSON to an HTTP intake (Cribl, Vector, Logstash)
    /// ([`crate::doors::emit::http`]); a batch counts as delivered when the receiver
    /// acknowledges it.
    Http(HttpSinkSpec),
}

/// `[sink] kind = "sekoia"`: a Sekoia.io asset connector.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SekoiaSinkSpec {
    /// The platform's API origin, e.g. `https://api.sekoia.io` (a path prefix is kept).
    pub base_url: String,
    /// The asset connector's UUID (its page in the platform shows it).
    pub connector_uuid: String,
    /// The platform API key, held by the host (never by the connector).
    pub api_key: SecretSpec,
    /// Events per request (default 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Timeouts and retries.
    #[serde(default)]
    pub delivery: DeliverySpec,
}

/// `[sink] kind = "http"`: NDJSON `POST`s to an intake URL.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkSpec {
    /// The intake URL (`https://…`).
    pub url: String,
    /// The header carrying the credential (default `Authorization`).
    #[serde(default = "default_auth_header")]
    pub header: String,
    /// The header's whole value (e.g. `Bearer …` or a Splunk-style token), held by the host.
    pub value: SecretSpec,
    /// Events per request (default 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Timeouts and retries.
    #[serde(default)]
    pub delivery: DeliverySpec,
}

fn default_batch_size() -> usize {
    100
}

fn default_auth_header() -> String {
    "Authorization".into()
}

/// Most events a push sink sends in one request.
pub const MAX_SINK_BATCH_SIZE: usize = 10_000;

/// The longest `[sink.delivery]` duration accepted (every `*_ms` key): one day. A duration
/// from the tenant file is bounded at load, so no sum or product of them can overflow.
pub const MAX_DELIVERY_MS: u64 = 24 * 3600 * 1000;

/// The longest `[limits] run_timeout_secs` accepted: seven days.
pub const MAX_RUN_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The longest `[limits] request_timeout_secs` and `connect_timeout_secs` accepted: one day.
pub const MAX_REQUEST_TIMEOUT_SECS: u64 = 24 * 3600;

/// `[sink.delivery]`: how long a push sink waits for its receiver and how it retries. A
/// batch is retried (429, 5xx, timeouts, broken connections) until it is acknowledged, it
/// was tried `max_attempts` times, or the next wait would pass `max_retry_ms` since its
/// first attempt; then the sink fails and the cursor stays behind the batch.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySpec {
    /// One request's whole-exchange timeout, milliseconds.
    pub request_timeout_ms: u64,
    /// Connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// First backoff after a failure, milliseconds (doubled at each retry, with jitter).
    pub backoff_initial_ms: u64,
    /// Longest backoff, milliseconds (also the cap when a 429 names no `Retry-After`).
    pub backoff_max_ms: u64,
    /// Most attempts per batch.
    pub max_attempts: u32,
    /// Longest time one batch may spend being retried, milliseconds.
    pub max_retry_ms: u64,
}

impl Default for DeliverySpec {
    fn default() -> Self {
        DeliverySpec {
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            max_attempts: 10,
            max_retry_ms: 300_000,
        }
    }
}

impl DeliverySpec {
    /// Refuses a zero or an inverted backoff range, naming the key.
    fn validate(&self) -> Result<(), String> {
        let zero = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
            ("backoff_max_ms", self.backoff_max_ms),
            ("max_attempts", u64::from(self.max_attempts)),
            ("max_retry_ms", self.max_retry_ms),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0);
        if let Some((key, _)) = zero {
            return Err(format!(
                "[sink.delivery] {key} is 0: it must be greater than 0 (remove it for the default)"
            ));
        }
        let huge = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
            ("backoff_max_ms", self.backoff_max_ms),
            ("max_retry_ms", self.max_retry_ms),
        ]
        .into_iter()
        .find(|(_, v)| *v > MAX_DELIVERY_MS);
        if let Some((key, value)) = huge {
            return Err(format!(
                "[sink.delivery] {key} = {value} is more than {MAX_DELIVERY_MS} (one day): lower it"
            ));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(format!(
                "[sink.delivery] backoff_max_ms ({}) is below backoff_initial_ms ({}): raise it",
                self.backoff_max_ms, self.backoff_initial_ms
            ));
        }
        Ok(())
    }
}

/// Checks a push sink's URL against the egress rules (https, or http to a loopback address
/// when `allow_loopback_http`; no credentials; no non-public IP literal). `key` names the
/// URL's key in messages.
fn validate_sink_url(key: &str, url: &str, allow_loopback_http: bool) -> Result<(), String> {
    let origin = Origin::parse(url).map_err(|e| format!("[sink] {key}: {e}"))?;
    let mut policy = crate::doors::http::EgressPolicy::new(vec![origin]);
    policy.allow_loopback_http = allow_loopback_http;
    policy
        .check(url)
        .map(|_| ())
        .map_err(|why| format!("[sink] {key} = '{url}' is refused: {why}"))
}

/// Checks a push sink's secret (exactly one source, no `hosts`: it goes to the sink's URL
/// only) and resolves its file path against `base`.
fn validate_sink_secret(key: &str, secret: &mut SecretSpec, base: &Path) -> Result<(), String> {
    secret.resolve_source(&format!("[sink] {key}"), base)?;
    if !secret.hosts.is_empty() {
        return Err(format!(
            "[sink] {key} takes no hosts: it is sent to the sink's receiver only; remove hosts"
        ));
    }
    Ok(())
}

/// Checks a push sink's batch size and delivery settings.
fn validate_sink_delivery(batch_size: usize, delivery: &DeliverySpec) -> Result<(), String> {
    if batch_size == 0 || batch_size > MAX_SINK_BATCH_SIZE {
        return Err(format!(
            "[sink] batch_size = {batch_size} must be between 1 and {MAX_SINK_BATCH_SIZE}"
        ));
    }
    delivery.validate()
}

/// Per-run limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSpec {
    /// Whole-run wall-clock limit, seconds.
    pub run_timeout_secs: u64,
    /// Most HTTP requests one run may send.
    pub max_requests: u64,
    /// Most requests of this tenant in flight at once.
    pub max_concurrent_requests: usize,
    /// Largest response body accepted, bytes.
    pub max_response_bytes: u64,
    /// Largest request body sent, bytes.
    pub max_request_bytes: u64,
    /// Per-request total timeout, seconds.
    pub request_timeout_secs: u64,
    /// Per-request connect timeout, seconds.
    pub connect_timeout_secs: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            run_timeout_secs: 3600,
            max_requests: 1_000_000,
            max_concurrent_requests: 32,
            max_response_bytes: 32 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            request_timeout_secs: 100,
            connect_timeout_secs: 10,
        }
    }
}

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    tenant: TenantSection,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSpec>,
    #[serde(default)]
    egress: EgressSpec,
    state: StateSpec,
    sink: SinkSpec,
    #[serde(default)]
    limits: LimitsSpec,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSection {
    key: String,
    #[serde(default)]
    connector: Option<String>,
    /// The older spelling of `connector = "<path>"`, still accepted.
    #[serde(default)]
    component: Option<PathBuf>,
}

/// Which connector component a tenant runs (`[tenant] connector`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConnectorChoice {
    /// A connector the CLI ships built in, by name (`connector = "entra-id"`, the default).
    Builtin(String),
    /// A component file (`connector = "okta.wasm"`, or any value holding a `/` or ending in
    /// `.wasm`; `component = "…"` is the older spelling).
    File(PathBuf),
}

impl ConnectorChoice {
    /// The connector of a tenant file that names none.
    pub const DEFAULT: &'static str = "entra-id";

    /// A `connector` value: a component file when it holds a `/` (or `\\`) or ends in
    /// `.wasm` (relative paths resolved against `base`), else a built-in connector's name.
    pub fn parse(value: &str, base: &Path) -> Result<ConnectorChoice, String> {
        let value = value.trim();
        if value.is_empty() {
            Err(
                "the connector is empty; name a built-in connector (\"entra-id\") or a .wasm file"
                    .into(),
            )
        } else if value.ends_with(".wasm") || value.contains('/') || value.contains('\\') {
            Ok(ConnectorChoice::File(resolve(base, Path::new(value))))
        } else {
            Ok(ConnectorChoice::Builtin(value.to_string()))
        }
    }
}

impl Default for ConnectorChoice {
    fn default() -> Self {
        ConnectorChoice::Builtin(Self::DEFAULT.into())
    }
}

impl std::fmt::Display for ConnectorChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectorChoice::Builtin(name) => write!(f, "built-in connector '{name}'"),
            ConnectorChoice::File(path) => write!(f, "component {}", path.display()),
        }
    }
}

/// One tenant, resolved and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantConfig {
    /// Host-side tenant key: checkpoint namespace, log and metric label.
    pub key: String,
    /// The connector component it runs (`[tenant] connector`; default the built-in `entra-id`).
    pub component: ConnectorChoice,
    /// The connector's own settings, passed to it as text pairs.
    pub connector: Vec<(String, String)>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Origins the connector may reach (empty until the component's plan fills it:
    /// [`crate::Runtime::resolve_egress`]).
    pub egress_allow: Vec<Origin>,
    /// Loopback `http://` permitted.
    pub allow_loopback_http: bool,
    /// SQLite checkpoint database, when `[state] checkpoint_db` is the store; empty when
    /// [`TenantConfig::postgres`] is set.
    pub checkpoint_db: PathBuf,
    /// PostgreSQL checkpoint store (`[state] url`), instead of SQLite.
    pub postgres: Option<PostgresState>,
    /// Event sink.
    pub sink: SinkSpec,
    /// Limits.
    pub limits: LimitsSpec,
    /// The `describe` name of the component's connector (`entra-id-users`, `okta-users`),
    /// once the component is loaded ([`crate::Runtime::resolve_egress`] sets it; None from
    /// the file): it picks the default algorithm of a `private_key` secret without one
    /// ([`crate::credentials::default_algorithm`]).
    pub connector_name: Option<String>,
}

impl TenantConfig {
    /// Reads and validates a tenant file.
    pub fn load(path: &Path) -> Result<TenantConfig, ConfigError> {
        let text =
            crate::files::read_text_file(path, crate::files::MAX_CONFIG_BYTES, "config file")
                .map_err(|e| ConfigError(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses a tenant file's text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<TenantConfig, ConfigError> {
        Self::parse_text(text, base).map_err(ConfigError)
    }

    fn parse_text(text: &str, base: &Path) -> Result<TenantConfig, String> {
        let file: TenantFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            format!("{line}{}", e.message().trim())
        })?;
        let key = file.tenant.key.trim().to_string();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "[tenant] key = '{key}' must be letters, digits, '-', '_' or '.'"
            ));
        }
        let mut connector = Vec::new();
        for (k, v) in file.config {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "[config] {k} must be a string, number or boolean, not {}",
                        other.type_str()
                    ))
                }
            };
            connector.push((k, text));
        }
        let egress_allow = file
            .egress
            .allow
            .iter()
            .map(|o| Origin::parse(o).map_err(|e| format!("[egress] allow: {e}")))
            .collect::<Result<_, _>>()?;
        let mut secrets = file.secrets;
        for (name, spec) in secrets.iter_mut() {
            spec.resolve_connector_secret(&format!("[secrets.{name}]"), base)?;
            for h in &spec.hosts {
                Origin::parse(h).map_err(|e| format!("[secrets.{name}] hosts: {e}"))?;
            }
        }
        let sink = match file.sink {
            SinkSpec::Jsonl { path } => SinkSpec::Jsonl {
                path: resolve(base, &path),
            },
            SinkSpec::Stdout => SinkSpec::Stdout,
            SinkSpec::Sekoia(mut spec) => {
                validate_sink_url("base_url", &spec.base_url, file.egress.allow_loopback_http)?;
                validate_sink_secret("api_key", &mut spec.api_key, base)?;
                validate_sink_delivery(spec.batch_size, &spec.delivery)?;
                if !is_uuid(&spec.connector_uuid) {
                    return Err(format!(
                        "[sink] connector_uuid = '{}' is not a UUID (8-4-4-4-12 hex digits): copy it from the asset connector's page",
                        spec.connector_uuid
                    ));
                }
                SinkSpec::Sekoia(spec)
            }
            SinkSpec::Http(mut spec) => {
                validate_sink_url("url", &spec.url, file.egress.allow_loopback_http)?;
                validate_sink_secret("value", &mut spec.value, base)?;
                validate_sink_delivery(spec.batch_size, &spec.delivery)?;
                let lower = spec.header.to_ascii_lowercase();
                if reqwest::header::HeaderName::from_bytes(spec.header.as_bytes()).is_err()
                    || [
                        "host",
                        "content-type",
                        "content-length",
                        "transfer-encoding",
                        "connection",
                    ]
                    .contains(&lower.as_str())
                {
                    return Err(format!(
                        "[sink] header = '{}' cannot carry the credential: name a header such as Authorization",
                        spec.header
                    ));
                }
                SinkSpec::Http(spec)
            }
        };
        let (checkpoint_db, postgres) = match file.state.resolve(base)? {
            StateStore::Sqlite(path) => (path, None),
            StateStore::Postgres(pg) => (PathBuf::new(), Some(pg)),
        };
        let limits = file.limits;
        // A zero would be accepted here and then break every request of every run (a zero
        // timeout, a zero-byte cap): refuse it now, naming the key.
        let zero = [
            ("run_timeout_secs", limits.run_timeout_secs),
            ("max_requests", limits.max_requests),
            (
                "max_concurrent_requests",
                limits.max_concurrent_requests as u64,
            ),
            ("max_response_bytes", limits.max_response_bytes),
            ("max_request_bytes", limits.max_request_bytes),
            ("request_timeout_secs", limits.request_timeout_secs),
            ("connect_timeout_secs", limits.connect_timeout_secs),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0);
        if let Some((key, _)) = zero {
            return Err(format!(
                "[limits] {key} is 0: it must be greater than 0 (remove it for the default)"
            ));
        }
        // Durations from the file are bounded, so no deadline computed from them overflows.
        let huge = [
            (
                "run_timeout_secs",
                limits.run_timeout_secs,
                MAX_RUN_TIMEOUT_SECS,
                "seven days",
            ),
            (
                "request_timeout_secs",
                limits.request_timeout_secs,
                MAX_REQUEST_TIMEOUT_SECS,
                "one day",
            ),
            (
                "connect_timeout_secs",
                limits.connect_timeout_secs,
                MAX_REQUEST_TIMEOUT_SECS,
                "one day",
            ),
        ]
        .into_iter()
        .find(|(_, value, max, _)| value > max);
        if let Some((key, value, max, words)) = huge {
            return Err(format!(
                "[limits] {key} = {value} is more than {max} ({words}): lower it"
            ));
        }
        Ok(TenantConfig {
            key,
            component: connector_choice(&file.tenant, base)?,
            connector,
            secrets,
            egress_allow,
            allow_loopback_http: file.egress.allow_loopback_http,
            checkpoint_db,
            postgres,
            sink,
            limits,
            connector_name: None,
        })
    }
}

impl TenantConfig {
    /// Refuses a tenant key or a `[config]` value holding the value of one of `secrets` (raw
    /// or encoded; the run's secrets, re-read at each run): the key is printed in logs,
    /// reports and metrics and names the checkpoints, and `[config]` values go to the
    /// connector, whose configuration errors quote them before any redaction exists. One
    /// line naming the key and the secret, never the value.
    pub fn refuse_secrets(&self, secrets: &crate::doors::http::SecretSet) -> Result<(), String> {
        let named = |name: &str| match name.strip_prefix("sink.") {
            Some(_) => "the [sink] credential".to_string(),
            None => format!("the secret '{name}'"),
        };
        if let Some(name) = secrets.secret_in(&self.key) {
            return Err(format!(
                "[tenant] key holds the value of {}: a key is printed in logs and reports and names the checkpoints; choose another key",
                named(name)
            ));
        }
        for (key, value) in &self.connector {
            if let Some(name) = secrets.secret_in(value) {
                return Err(format!(
                    "[config] {key} holds the value of {}: a secret belongs in [secrets] only; set {key} to its own value",
                    named(name)
                ));
            }
        }
        Ok(())
    }
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hex form (it goes into a URL path).
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `[tenant] connector` (or its older spelling `component`, a path) as a choice.
fn connector_choice(tenant: &TenantSection, base: &Path) -> Result<ConnectorChoice, String> {
    match (&tenant.connector, &tenant.component) {
        (Some(_), Some(_)) => Err(
            "[tenant] names its connector twice (connector and component); keep connector".into(),
        ),
        (None, None) => Ok(ConnectorChoice::default()),
        (None, Some(path)) => Ok(ConnectorChoice::File(resolve(base, path))),
        (Some(value), None) => {
            ConnectorChoice::parse(value, base).map_err(|e| format!("[tenant] connector: {e}"))
        }
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[tenant]
key = "contoso"
[config]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
[secrets.client_secret]
env = "ENTRA_CLIENT_SECRET"
[state]
checkpoint_db = "state.sqlite"
[sink]
kind = "jsonl"
path = "out/events.jsonl"
"#;

    /// MINIMAL with `[secrets.client_secret]` written as `body`.
    fn with_secret(body: &str) -> String {
        MINIMAL.replace("env = \"ENTRA_CLIENT_SECRET\"", body)
    }

    #[test]
    fn operator_a_private_key_secret_is_read_with_its_keys_and_paths_resolved() {
        let c = TenantConfig::parse(
            &with_secret(
                "kind = \"private_key\"\nfile = \"keys/entra.key\"\ncertificate = \"keys/entra.crt\"\nalgorithm = \"RS256\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\nx5t = true\nkid = \"k1\"\ndpop = true\nexpires = \"2027-06-30\"",
            ),
            Path::new("/etc/ch"),
        )
        .unwrap();
        let s = &c.secrets["client_secret"];
        assert_eq!(s.kind().unwrap(), SecretKind::PrivateKey);
        assert_eq!(s.file.as_deref(), Some(Path::new("/etc/ch/keys/entra.key")));
        assert_eq!(
            s.certificate.as_deref(),
            Some(Path::new("/etc/ch/keys/entra.crt"))
        );
        assert_eq!(s.algorithm.as_deref(), Some("RS256"));
        assert_eq!(
            (s.x5t, s.dpop, s.kid.as_deref()),
            (Some(true), Some(true), Some("k1"))
        );
        // A header credential.
        let c = TenantConfig::parse(
            &with_secret("env = \"OKTA_TOKEN\"\nheader = \"Authorization\"\nprefix = \"SSWS\""),
            Path::new("/etc/ch"),
        )
        .unwrap();
        let s = &c.secrets["client_secret"];
        assert_eq!(s.kind().unwrap(), SecretKind::Value);
        assert_eq!(
            (s.header.as_deref(), s.prefix.as_deref()),
            (Some("Authorization"), Some("SSWS"))
        );
    }

    #[test]
    fn operator_wrong_secret_keys_are_one_line_naming_the_key() {
        const PK: &str = "kind = \"private_key\"\nfile = \"k.pem\"\nclient_id = \"abc\"";
        for (body, expected) in [
            ("env = \"X\"\nkind = \"certificate\"", "[secrets.client_secret] kind = \"certificate\" is not a kind of secret: use \"value\""),
            ("kind = \"private_key\"\nfile = \"k.pem\"", "[secrets.client_secret] client_id = \"…\" is required with kind = \"private_key\""),
            ("kind = \"private_key\"\nfile = \"k.pem\"\nclient_id = \" \"", "[secrets.client_secret] client_id = \"…\" is required"),
            (&format!("{PK}\nheader = \"Authorization\""), "[secrets.client_secret] header applies to kind = \"value\" only"),
            (&format!("{PK}\nprefix = \"SSWS\""), "[secrets.client_secret] prefix applies to kind = \"value\" only"),
            (&format!("{PK}\nalgorithm = \"HS256\""), "[secrets.client_secret] algorithm = \"HS256\" is not one of PS256, PS384, PS512, RS256, RS384, RS512, ES256, ES384"),
            (&format!("{PK}\nalgorithm = \"ps256\""), "[secrets.client_secret] algorithm = \"ps256\" is not one of"),
            (&format!("{PK}\nx5t = true"), "[secrets.client_secret] x5t = true needs certificate = \"…\""),
            (&format!("{PK}\nkid = \"\""), "[secrets.client_secret] kid is empty"),
            ("env = \"X\"\ncertificate = \"c.pem\"", "[secrets.client_secret] certificate applies to kind = \"private_key\" only"),
            ("env = \"X\"\nalgorithm = \"PS256\"", "[secrets.client_secret] algorithm applies to kind = \"private_key\" only"),
            ("env = \"X\"\nclient_id = \"abc\"", "[secrets.client_secret] client_id applies to kind = \"private_key\" only"),
            ("env = \"X\"\ndpop = true", "[secrets.client_secret] dpop applies to kind = \"private_key\" only"),
            ("env = \"X\"\nx5t = false", "[secrets.client_secret] x5t applies to kind = \"private_key\" only"),
            ("env = \"X\"\nprefix = \"SSWS\"", "[secrets.client_secret] prefix needs header = \"…\""),
            ("env = \"X\"\nheader = \"Host\"", "[secrets.client_secret] header = \"Host\" is not a header a credential can go in"),
            ("env = \"X\"\nheader = \"DPoP\"", "[secrets.client_secret] header = \"DPoP\" is not a header"),
            ("env = \"X\"\nheader = \"Bad Header\"", "[secrets.client_secret] header = \"Bad Header\" is not a header"),
            ("env = \"X\"\nheader = \"Authorization\"\nprefix = \"Two words\"", "[secrets.client_secret] prefix must be one word"),
            ("kind = \"private_key\"\nclient_id = \"abc\"", "[secrets.client_secret] needs exactly one of env"),
        ] {
            let e = TenantConfig::parse(&with_secret(body), Path::new("/etc/ch"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{body}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn operator_connector_secret_keys_on_another_secret_are_refused() {
        let e = TenantConfig::parse(
            &MINIMAL.replace(
                "checkpoint_db = \"state.sqlite\"",
                "url = \"postgres://connector@db.internal/fleet?sslmode=verify-full\"\npassword = { file = \"pg.pass\", header = \"Authorization\" }",
            ),
            Path::new("/etc/ch"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[state] password takes no header"), "{e}");
        let spec = SecretSpec {
            env: Some("PG".into()),
            kind: Some("private_key".into()),
            ..Default::default()
        };
        assert_eq!(
            spec.plain_only("[sink] api_key").unwrap_err(),
            "[sink] api_key takes no kind: kinds, headers and keys belong to the connector's [secrets.NAME]; remove kind"
        );
    }

    #[test]
    fn operator_zero_limits_are_refused_naming_the_key() {
        for key in [
            "run_timeout_secs",
            "max_requests",
            "max_concurrent_requests",
            "max_response_bytes",
            "max_request_bytes",
            "request_timeout_secs",
            "connect_timeout_secs",
        ] {
            let text = format!("{MINIMAL}[limits]\n{key} = 0\n");
            let err = TenantConfig::parse(&text, Path::new("/etc/ch"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("[limits] {key} is 0")) && err.contains("greater than 0"),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn operator_huge_durations_are_refused_naming_the_key() {
        for (section, key) in [
            ("limits", "run_timeout_secs"),
            ("limits", "request_timeout_secs"),
            ("limits", "connect_timeout_secs"),
        ] {
            let text = format!("{MINIMAL}[{section}]\n{key} = 18446744073709551615\n");
            let err = TenantConfig::parse(&text, Path::new("/etc/ch"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "[{section}] {key} = 18446744073709551615 is more than"
                )) && !err.contains('\n'),
                "{key}: {err}"
            );
        }
        let ok = format!("{MINIMAL}[limits]\nrun_timeout_secs = {MAX_RUN_TIMEOUT_SECS}\n");
        assert!(TenantConfig::parse(&ok, Path::new("/etc/ch")).is_ok());
        let sink = MINIMAL.replace(
            "[sink]\nkind = \"jsonl\"\npath = \"out/events.jsonl\"\n",
            "[egress]\nallow_loopback_http = true\n[sink]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/in\"\nvalue = { env = \"SINK_KEY\" }\n",
        );
        assert!(
            TenantConfig::parse(&sink, Path::new("/etc/ch")).is_ok(),
            "{sink}"
        );
        for key in [
            "request_timeout_ms",
            "connect_timeout_ms",
            "backoff_initial_ms",
            "backoff_max_ms",
            "max_retry_ms",
        ] {
            let text = format!("{sink}[sink.delivery]\n{key} = {}\n", MAX_DELIVERY_MS + 1);
            let err = TenantConfig::parse(&text, Path::new("/etc/ch"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("[sink.delivery] {key} = 86400001 is more than")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn the_connector_is_a_builtin_name_or_a_component_path_entra_id_by_default() {
        let with = |line: &str| {
            let text = MINIMAL.replace("key = \"contoso\"", &format!("key = \"contoso\"\n{line}"));
            TenantConfig::parse(&text, Path::new("/etc/ch")).map(|c| c.component)
        };
        assert_eq!(
            with("").unwrap(),
            ConnectorChoice::Builtin("entra-id".into())
        );
        assert_eq!(
            with("connector = \"okta\"").unwrap(),
            ConnectorChoice::Builtin("okta".into())
        );
        assert_eq!(
            with("connector = \"c/okta.wasm\"").unwrap(),
            ConnectorChoice::File(PathBuf::from("/etc/ch/c/okta.wasm"))
        );
        assert_eq!(
            with("connector = \"okta.wasm\"").unwrap(),
            ConnectorChoice::File(PathBuf::from("/etc/ch/okta.wasm"))
        );
        // The older key still works, as a path.
        assert_eq!(
            with("component = \"okta.wasm\"").unwrap(),
            ConnectorChoice::File(PathBuf::from("/etc/ch/okta.wasm"))
        );
        let both = with("connector = \"entra-id\"\ncomponent = \"x.wasm\"")
            .unwrap_err()
            .to_string();
        assert!(both.contains("names its connector twice"), "{both}");
        assert!(with("connector = \" \"").is_err());
    }

    #[test]
    fn operator_a_secret_may_say_when_it_expires_and_a_wrong_day_is_one_line() {
        let with = |expires: &str| {
            MINIMAL.replace(
                "env = \"ENTRA_CLIENT_SECRET\"",
                &format!("env = \"ENTRA_CLIENT_SECRET\"\nexpires = \"{expires}\""),
            )
        };
        let c = TenantConfig::parse(&with("2027-06-30"), Path::new("/etc/ch")).unwrap();
        assert_eq!(
            c.secrets["client_secret"].expiry().unwrap(),
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_814_313_600))
        );
        assert_eq!(
            TenantConfig::parse(MINIMAL, Path::new("/etc/ch"))
                .unwrap()
                .secrets["client_secret"]
                .expiry()
                .unwrap(),
            None
        );
        for bad in [
            "2027-13-01",
            "2027-02-30",
            "30/06/2027",
            "2027-06-30T00:00:00Z",
            "soon",
        ] {
            let e = TenantConfig::parse(&with(bad), Path::new("/etc/ch"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("[secrets.client_secret] expires = ") && e.contains("YYYY-MM-DD"),
                "{bad}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn minimal_file_leaves_egress_to_the_component_and_resolves_paths() {
        let c = TenantConfig::parse(MINIMAL, Path::new("/etc/ch")).unwrap();
        assert_eq!(c.key, "contoso");
        assert!(c.egress_allow.is_empty(), "filled by the component's plan");
        assert!(c.secrets["client_secret"].hosts.is_empty());
        assert_eq!(c.checkpoint_db, PathBuf::from("/etc/ch/state.sqlite"));
        assert_eq!(
            c.sink,
            SinkSpec::Jsonl {
                path: PathBuf::from("/etc/ch/out/events.jsonl")
            }
        );
        assert!(!c.allow_loopback_http);
        assert_eq!(c.limits, LimitsSpec::default());
        let text = MINIMAL.replace(
            "[sink]",
            "[egress]\nallow = [\"https://graph.example\"]\n[sink]",
        );
        let c = TenantConfig::parse(&text, Path::new(".")).unwrap();
        assert_eq!(
            c.egress_allow,
            [Origin::parse("https://graph.example").unwrap()]
        );
    }

    #[test]
    fn operator_state_is_sqlite_or_postgres_never_both() {
        let c = TenantConfig::parse(MINIMAL, Path::new("/etc/ch")).unwrap();
        assert_eq!(c.postgres, None);
        let pg = MINIMAL.replace(
            "checkpoint_db = \"state.sqlite\"",
            "url = \"postgres://connector@db.internal/fleet?sslmode=verify-full\"\npassword = { file = \"pg.pass\" }",
        );
        let c = TenantConfig::parse(&pg, Path::new("/etc/ch")).unwrap();
        assert_eq!(
            c.postgres,
            Some(PostgresState {
                url: "postgres://connector@db.internal/fleet?sslmode=verify-full".into(),
                password: Some(SecretSpec {
                    env: None,
                    file: Some(PathBuf::from("/etc/ch/pg.pass")),
                    hosts: vec![],
                    expires: None,
                    ..Default::default()
                }),
                options: crate::postgres::DatabaseOptions::default(),
            })
        );
        assert_eq!(c.checkpoint_db, PathBuf::new());
        let both = MINIMAL.replace(
            "checkpoint_db = \"state.sqlite\"",
            "checkpoint_db = \"state.sqlite\"\nurl = \"postgres://connector@db/fleet\"",
        );
        let e = TenantConfig::parse(&both, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both checkpoint_db and url"), "{e}");
        let neither = MINIMAL.replace("checkpoint_db = \"state.sqlite\"", "");
        let e = TenantConfig::parse(&neither, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs checkpoint_db"), "{e}");
        let in_url = MINIMAL.replace(
            "checkpoint_db = \"state.sqlite\"",
            "url = \"postgres://connector:s3cret-value@db/fleet\"",
        );
        let e = TenantConfig::parse(&in_url, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds a password") && !e.contains("s3cret") && !e.contains('\n'),
            "{e}"
        );
        let stray = MINIMAL.replace(
            "checkpoint_db = \"state.sqlite\"",
            "checkpoint_db = \"state.sqlite\"\npassword = { env = \"PG\" }",
        );
        let e = TenantConfig::parse(&stray, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[state] password is for url"), "{e}");
    }

    #[test]
    fn operator_state_password_without_tls_refused_unless_opted_in_and_timeouts_read() {
        let state = |lines: &str| {
            TenantConfig::parse(
                &MINIMAL.replace("checkpoint_db = \"state.sqlite\"", lines),
                Path::new("/etc/ch"),
            )
        };
        let e =
            state("url = \"postgres://connector@db.internal/fleet\"\npassword = { env = \"PG\" }")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("[state] url: a password is configured but the connection")
                && e.contains("allow_password_without_tls = true")
                && !e.contains('\n'),
            "{e}"
        );
        let c = state(
            "url = \"postgres://connector@db.internal/fleet\"\npassword = { env = \"PG\" }\n\
             allow_password_without_tls = true\nstatement_timeout_secs = 5\nlock_timeout_secs = 2",
        )
        .unwrap();
        let options = c.postgres.unwrap().options;
        assert!(options.allow_password_without_tls);
        assert_eq!(
            (options.statement_timeout, options.lock_timeout),
            (
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(2)
            )
        );
        // Loopback and TLS need no opt-in.
        state("url = \"postgres://connector@127.0.0.1:5432/fleet\"\npassword = { env = \"PG\" }")
            .unwrap();
        let e = state(
            "url = \"postgres://connector@db/fleet?sslmode=verify-full\"\nlock_timeout_secs = 0",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("[state] lock_timeout_secs = 0 must be between 1 and"),
            "{e}"
        );
        let e = state("checkpoint_db = \"state.sqlite\"\nlock_timeout_secs = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("are for url"), "{e}");
    }

    #[test]
    fn operator_a_key_or_config_value_holding_a_secret_is_refused_naming_the_key() {
        use crate::doors::http::secrets::{SecretSet, SecretValue};
        let secret = "Xq48Q-Vd3.kLp0_aZ9rT-uW2yB7nC1mE5gH6jS8f";
        let mut secrets = SecretSet::new();
        secrets.insert("client_secret", SecretValue::new(secret), vec![]);
        secrets.insert("sink.0", SecretValue::new("sk-live-4c1e9b7a-SINK"), vec![]);
        let ok = TenantConfig::parse(MINIMAL, Path::new(".")).unwrap();
        ok.refuse_secrets(&secrets).unwrap();
        for (text, key, which) in [
            (
                MINIMAL.replace("11111111-2222-3333-4444-555555555555", secret),
                "[config] client_id",
                "the secret 'client_secret'",
            ),
            (
                MINIMAL.replace(
                    "contoso.onmicrosoft.com",
                    &format!("prefix-{}-suffix", secret.to_lowercase()),
                ),
                "[config] tenant_id",
                "the secret 'client_secret'",
            ),
            (
                MINIMAL.replace("key = \"contoso\"", &format!("key = \"{secret}\"")),
                "[tenant] key",
                "the secret 'client_secret'",
            ),
            (
                MINIMAL.replace(
                    "11111111-2222-3333-4444-555555555555",
                    "sk-live-4c1e9b7a-SINK",
                ),
                "[config] client_id",
                "the [sink] credential",
            ),
        ] {
            let cfg = TenantConfig::parse(&text, Path::new(".")).unwrap();
            let e = cfg.refuse_secrets(&secrets).unwrap_err();
            assert!(
                e.starts_with(key)
                    && e.contains(which)
                    && !e.contains('\n')
                    && !e.to_lowercase().contains(&secret.to_lowercase())
                    && !e.contains("sk-live"),
                "{e}"
            );
        }
    }

    #[test]
    fn mistakes_are_one_line_and_named() {
        let e = TenantConfig::parse(
            &MINIMAL
                .replace("[egress]", "")
                .replace("[sink]", "[sink]\ncolour = 1"),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("colour") && !e.contains('\n'), "{e}");
        let e = TenantConfig::parse(
            &MINIMAL.replace("env = \"ENTRA_CLIENT_SECRET\"", ""),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("[secrets.client_secret] needs exactly one of"),
            "{e}"
        );
        let e = TenantConfig::parse(
            &MINIMAL.replace("key = \"contoso\"", "key = \"a/b\""),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("key = 'a/b'"), "{e}");
        let e = TenantConfig::parse("[tenant\nkey=1", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 1"), "{e}");
    }
}
