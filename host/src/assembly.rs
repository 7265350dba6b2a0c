//! From a tenant file to a run: the one module that reads the tenant file's types
//! ([`crate::config`]: `SecretSpec`, `SinkSpec`, `DeliverySpec`, `PostgresState`) and turns
//! them into the plain values the rest of the host takes.
//!
//! The doors never see the tenant file: the `http-fetch` door gets an [`EgressPolicy`] and a
//! [`SecretSet`] of loaded values, a push sink a
//! [`PushTarget`](crate::doors::emit::push::PushTarget) (URL, header, credential value) and
//! [`PushOptions`], the checkpoint door an opened store. Every secret is loaded here by
//! [`crate::secrets`]' one loader; what each user then requires of the value (strong enough
//! to redact, for the connector's secrets and a sink's credential) is that user's rule,
//! applied to the value.
//!
//! [`TenantRun`] (the engine room's input, [`crate::runtime`]) is built here:
//! [`TenantRun::from_config`], [`TenantRun::open`], [`TenantRun::from_parts`] and
//! [`TenantRun::for_check`]; so are the checks `serve` and `check` make before a run
//! ([`tenant_secrets`], [`screen_config`]) and the PostgreSQL store a tenant names
//! ([`open_postgres`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{DeliverySpec, PostgresState, SecretKind, SecretSpec, SinkSpec, TenantConfig};
use crate::doors::checkpoint::postgres::PostgresCheckpointStore;
use crate::doors::checkpoint::{CheckpointStore, SqliteCheckpointStore};
use crate::doors::emit::push::{credential_weakness, secret_parts, PushOptions};
use crate::doors::emit::{EventSink, JsonlFileSink, PushSink, SinkError, StdoutSink};
use crate::doors::http::netguard::{NameResolver, SystemResolver};
use crate::doors::http::secrets::{SecretError, SecretSet, SecretValue};
use crate::doors::http::{EgressPolicy, Origin};
use crate::error::RunError;
use crate::postgres::{DatabaseError, Password};
use crate::runtime::{NoCheckpoints, TenantRun, TimeScale};

impl TenantRun {
    /// Builds a run from a tenant file: loads secrets, opens the store and the sink. Its
    /// egress must be complete: an empty `[egress] allow` or a secret without `hosts` is
    /// filled from the component's plan by [`crate::Runtime::resolve_egress`] first.
    ///
    /// A tenant whose `[state]` is PostgreSQL needs a connection first: use
    /// [`TenantRun::open`], or [`TenantRun::from_parts`] with a store you opened.
    pub fn from_config(cfg: &TenantConfig) -> Result<TenantRun, RunError> {
        if cfg.postgres.is_some() {
            return Err(RunError::Config {
                tenant: cfg.key.clone(),
                message: "[state] url is PostgreSQL: open the run with TenantRun::open (async), which connects".into(),
            });
        }
        // Before the database is opened (created): an events path naming it is refused first.
        check_events_path(cfg)?;
        let checkpoints =
            SqliteCheckpointStore::open(&cfg.checkpoint_db).map_err(|e| RunError::Host {
                tenant: cfg.key.clone(),
                message: e.to_string(),
            })?;
        Self::from_parts(cfg, Arc::new(checkpoints))
    }

    /// [`TenantRun::from_config`] for any `[state]`: connects to PostgreSQL (and migrates its
    /// schema) when the tenant's store is there. That start-up counts against the run's
    /// time limit (`run_timeout_secs`): it is bounded by it, and the run gets what is left.
    pub async fn open(cfg: &TenantConfig) -> Result<TenantRun, RunError> {
        match &cfg.postgres {
            None => Self::from_config(cfg),
            Some(pg) => {
                let limit = Duration::from_secs(cfg.limits.run_timeout_secs);
                let started = Instant::now();
                let store = tokio::time::timeout(limit, open_postgres(&cfg.key, pg))
                    .await
                    .map_err(|_| RunError::Host {
                        tenant: cfg.key.clone(),
                        message: format!(
                            "connecting to the PostgreSQL checkpoint store and migrating its schema took the whole run time limit ({} s, run_timeout_secs); is the database up and reachable, and is a migration lock held (pg_locks)?",
                            limit.as_secs()
                        ),
                    })??;
                let mut run = Self::from_parts(cfg, store)?;
                // What start-up took is the run's no longer (a Timeout then names what was left).
                run.timeout = limit.saturating_sub(started.elapsed());
                Ok(run)
            }
        }
    }

    /// A run of the tenant file over a checkpoint store the caller opened (a PostgreSQL
    /// pool shared by many tenants, or a fleet lease's fenced store): loads the secrets and
    /// opens the sink.
    pub fn from_parts(
        cfg: &TenantConfig,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> Result<TenantRun, RunError> {
        Self::assemble(cfg, checkpoints, false)
    }

    /// What `connector-host check` runs: the tenant's secrets and egress, its files checked
    /// (the events path is none of its other files; an existing events file is JSON lines)
    /// but nothing opened for writing: no checkpoint database or events file is created,
    /// nothing is repaired. Its store and sink refuse every use.
    pub fn for_check(cfg: &TenantConfig) -> Result<TenantRun, RunError> {
        check_events_path(cfg)?;
        // A SQLite database that exists must be a regular file (looked at, not opened by SQLite,
        // which would create its side files); one that does not is created by the first run.
        if cfg.postgres.is_none() && std::fs::metadata(&cfg.checkpoint_db).is_ok() {
            crate::files::open_regular(
                &cfg.checkpoint_db,
                std::fs::OpenOptions::new().read(true),
                "checkpoint database",
            )
            .map_err(|e| RunError::Host {
                tenant: cfg.key.clone(),
                message: e.to_string(),
            })?;
        }
        if let SinkSpec::Jsonl { path } = &cfg.sink {
            crate::doors::emit::jsonl::inspect(path).map_err(|e| RunError::Host {
                tenant: cfg.key.clone(),
                message: e.to_string(),
            })?;
        }
        Self::assemble(cfg, Arc::new(NoCheckpoints), true)
    }

    fn assemble(
        cfg: &TenantConfig,
        checkpoints: Arc<dyn CheckpointStore>,
        check_only: bool,
    ) -> Result<TenantRun, RunError> {
        check_events_path(cfg)?;
        let secrets = tenant_connector_secrets(cfg)?;
        let host_err = |message: String| RunError::Host {
            tenant: cfg.key.clone(),
            message,
        };
        // Screened before anything is opened (the events file may be repaired on open); a
        // push sink's credential is screened with them once it is loaded, below.
        if !matches!(cfg.sink, SinkSpec::Sekoia(_) | SinkSpec::Http(_)) {
            screen_config(cfg, &secrets)?;
        }
        // A push sink's credential joins the secrets to redact.
        let mut secrets = secrets;
        let sink: Arc<dyn EventSink> = match &cfg.sink {
            SinkSpec::Jsonl { .. } | SinkSpec::Stdout if check_only => Arc::new(NoSink),
            SinkSpec::Jsonl { path } => {
                Arc::new(JsonlFileSink::open(path).map_err(|e| host_err(e.to_string()))?)
            }
            SinkSpec::Stdout => Arc::new(StdoutSink::default()),
            SinkSpec::Sekoia(_) | SinkSpec::Http(_) => {
                let (sink, credential) =
                    push_sink(&cfg.sink, cfg.allow_loopback_http, Arc::new(SystemResolver))
                        .map_err(|message| RunError::Config {
                            tenant: cfg.key.clone(),
                            message,
                        })?;
                // Redacted wherever the tenant's secrets are (events, logs, the connector's
                // output); no origin, so no placeholder of the connector ever sends it.
                for (i, part) in secret_parts(&credential).into_iter().enumerate() {
                    secrets.insert(format!("sink.{i}"), SecretValue::new(part), vec![]);
                }
                screen_config(cfg, &secrets)?;
                if check_only {
                    Arc::new(NoSink)
                } else {
                    Arc::new(sink)
                }
            }
        };
        if cfg.egress_allow.is_empty() {
            return Err(RunError::Config {
                tenant: cfg.key.clone(),
                message: "no origin may be reached: [egress] allow is empty and the component's egress plan was not applied (Runtime::resolve_egress) or names none; list the origins in [egress] allow".into(),
            });
        }
        if let Some((name, _)) = cfg.secrets.iter().find(|(_, s)| s.hosts.is_empty()) {
            return Err(RunError::Config {
                tenant: cfg.key.clone(),
                message: format!("[secrets.{name}] may be sent nowhere: the component's egress plan names no origin for it; set hosts = [\"https://…\"]"),
            });
        }
        if !check_only {
            // `check` says it in its `credentials` line instead.
            crate::expiry::warn_daily(&cfg.key, secrets.expiries());
        }
        let l = &cfg.limits;
        let mut policy = EgressPolicy::new(cfg.egress_allow.clone());
        policy.allow_loopback_http = cfg.allow_loopback_http;
        policy.max_requests = l.max_requests;
        policy.max_concurrent = l.max_concurrent_requests;
        policy.max_response_bytes = l.max_response_bytes;
        policy.max_request_bytes = l.max_request_bytes;
        policy.connect_timeout = Duration::from_secs(l.connect_timeout_secs);
        policy.request_timeout = Duration::from_secs(l.request_timeout_secs);
        Ok(TenantRun {
            tenant: cfg.key.clone(),
            connector_config: cfg.connector.clone(),
            policy,
            secrets: Arc::new(secrets),
            checkpoints,
            sink,
            timeout: Duration::from_secs(l.run_timeout_secs),
            time_scale: TimeScale::REAL,
        })
    }
}

/// The connector's `[secrets]`, loaded ([`crate::secrets`]) with the origins each may reach,
/// each strong enough to be redacted ([`SecretSet::add`]); a `kind = "private_key"` secret
/// is loaded as a signing key with its certificate ([`crate::credentials::load`]), read
/// again at each run so a rotated file is picked up. `Err` names the secret.
pub fn connector_secrets(specs: &BTreeMap<String, SecretSpec>) -> Result<SecretSet, SecretError> {
    connector_secrets_for(specs, None)
}

/// [`connector_secrets`] for the connector whose `describe` name is `connector`: a
/// private key without `algorithm` signs with that connector's default
/// ([`crate::credentials::default_algorithm`]: RS256 for an RSA key of the Okta connector).
pub fn connector_secrets_for(
    specs: &BTreeMap<String, SecretSpec>,
    connector: Option<&str>,
) -> Result<SecretSet, SecretError> {
    let mut set = SecretSet::new();
    for (name, spec) in specs {
        let error = |message: String| SecretError {
            name: name.clone(),
            message,
        };
        let origins = spec
            .hosts
            .iter()
            .map(|h| Origin::parse(h).map_err(|e| error(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        match spec.kind().map_err(error)? {
            SecretKind::PrivateKey => {
                let mut spec = credential_spec(spec);
                spec.connector = connector.map(str::to_string);
                let credential = crate::credentials::load(&spec).map_err(error)?;
                set.insert_private_key(name.clone(), Arc::new(credential), origins);
            }
            SecretKind::Value => {
                let value = spec.load().map_err(|e| error(e.to_string()))?;
                match &spec.header {
                    Some(header) => {
                        set.add_header(name, value, origins, header, spec.prefix.clone())?
                    }
                    None => set.add(name, value, origins)?,
                }
            }
        }
    }
    Ok(set)
}

/// The plain values of a `kind = "private_key"` secret ([`crate::credentials`]).
pub fn credential_spec(spec: &SecretSpec) -> crate::credentials::CredentialSpec {
    crate::credentials::CredentialSpec {
        key: spec.source().ok(),
        certificate: spec.certificate.clone(),
        algorithm: spec.algorithm.clone(),
        client_id: spec.client_id.clone().unwrap_or_default(),
        x5t: spec.x5t,
        kid: spec.kid.clone(),
        dpop: spec.dpop.unwrap_or(false),
        connector: None,
    }
}

/// A push sink's credential (`key` names it in messages: `[sink] api_key`), loaded
/// ([`crate::secrets`]) and strong enough to be redacted ([`credential_weakness`]).
pub fn sink_secret(key: &str, spec: &SecretSpec) -> Result<String, String> {
    let value = spec.load().map_err(|e| e.keyed(key))?;
    match credential_weakness(&value) {
        Some(why) => Err(format!("{key}: {why}")),
        None => Ok(value),
    }
}

/// How a push sink batches, waits and retries, from `[sink]`'s `batch_size` and
/// `[sink.delivery]` (checked at load: [`crate::config`]).
pub fn push_options(
    batch_size: usize,
    delivery: &DeliverySpec,
    allow_loopback_http: bool,
) -> PushOptions {
    PushOptions {
        batch_size,
        request_timeout: Duration::from_millis(delivery.request_timeout_ms),
        connect_timeout: Duration::from_millis(delivery.connect_timeout_ms),
        backoff_initial: Duration::from_millis(delivery.backoff_initial_ms),
        backoff_max: Duration::from_millis(delivery.backoff_max_ms),
        max_attempts: delivery.max_attempts,
        max_retry_time: Duration::from_millis(delivery.max_retry_ms),
        allow_loopback_http,
        ..PushOptions::default()
    }
}

/// The push sink a tenant file's `[sink]` names (`kind = "sekoia"` or `"http"`), with its
/// credential loaded (returned too, for the tenant's redaction). `Err` is one line naming
/// the key (or the kind, for a sink that does not push).
pub fn push_sink(
    spec: &SinkSpec,
    allow_loopback_http: bool,
    resolver: Arc<dyn NameResolver>,
) -> Result<(PushSink, String), String> {
    let built = match spec {
        SinkSpec::Sekoia(s) => {
            let key = sink_secret("[sink] api_key", &s.api_key)?;
            let options = push_options(s.batch_size, &s.delivery, allow_loopback_http);
            PushSink::sekoia(
                &s.base_url,
                &s.connector_uuid,
                key.clone(),
                options,
                resolver,
            )
            .map(|sink| (sink, key))
        }
        SinkSpec::Http(s) => {
            let value = sink_secret("[sink] value", &s.value)?;
            let options = push_options(s.batch_size, &s.delivery, allow_loopback_http);
            PushSink::ndjson(&s.url, &s.header, value.clone(), options, resolver)
                .map(|sink| (sink, value))
        }
        SinkSpec::Jsonl { .. } | SinkSpec::Stdout => {
            return Err("[sink] kind: only \"sekoia\" and \"http\" are push sinks".into())
        }
    };
    built.map_err(|e| format!("[sink]: {e}"))
}

/// The PostgreSQL password a `[state] password` or `[fleet] password` names, loaded by
/// [`crate::secrets`]' rules. It goes to the database only: `hosts` is refused.
pub fn database_password(spec: &SecretSpec) -> Result<Password, DatabaseError> {
    spec.plain_only("password").map_err(DatabaseError::config)?;
    if !spec.hosts.is_empty() {
        return Err(DatabaseError::config(
            "password: hosts = […] does not apply to the database password; remove it",
        ));
    }
    let source = spec
        .source()
        .map_err(|e| DatabaseError::config(e.keyed("password")))?;
    Password::from_source(&source)
}

/// The ends the tenant file writes (`expires`), for secrets that have one (checked at load).
pub fn written_expiries(specs: &BTreeMap<String, SecretSpec>) -> Vec<crate::expiry::Expiry> {
    specs
        .iter()
        .filter_map(|(name, spec)| {
            Some(crate::expiry::Expiry {
                secret: name.clone(),
                at: spec.expiry().ok()??,
                source: crate::expiry::ExpirySource::Written,
            })
        })
        .collect()
}

/// Every end the tenant file's secrets tell without loading a key: `expires`, and the
/// `notAfter` of each private key's `certificate` file (one that cannot be read is left out:
/// the run says why in its own error). For `serve`'s gauge when the tenants file is loaded;
/// each run then sets it from what it loaded.
pub fn credential_expiries(specs: &BTreeMap<String, SecretSpec>) -> Vec<crate::expiry::Expiry> {
    let mut found = written_expiries(specs);
    for (name, spec) in specs {
        let Some(path) = &spec.certificate else {
            continue;
        };
        let text =
            crate::files::read_text_file(path, crate::files::MAX_SECRET_BYTES, "certificate file");
        if let Ok(info) = text
            .map_err(|e| e.to_string())
            .and_then(|t| crate::credentials::parse_certificate(&t, &path.display().to_string()))
        {
            found.push(crate::expiry::Expiry {
                secret: name.clone(),
                at: info.not_after,
                source: crate::expiry::ExpirySource::Certificate,
            });
        }
    }
    crate::expiry::earliest(found)
}

/// The tenant's `[secrets]`, loaded; a failure names the tenant and the secret.
/// With them, when each stops working where the host knows it ([`crate::expiry`]): read
/// here, at each run, so a rotated certificate or a changed `expires` counts at the next run.
fn tenant_connector_secrets(cfg: &TenantConfig) -> Result<SecretSet, RunError> {
    let mut secrets = connector_secrets_for(&cfg.secrets, cfg.connector_name.as_deref()).map_err(
        |SecretError { name, message }| RunError::Secret {
            tenant: cfg.key.clone(),
            name,
            message,
        },
    )?;
    let certificates: Vec<crate::expiry::Expiry> = secrets
        .private_keys()
        .filter_map(|(name, key)| {
            Some(crate::expiry::Expiry {
                secret: name.to_string(),
                at: key.not_after()?,
                source: crate::expiry::ExpirySource::Certificate,
            })
        })
        .collect();
    let mut known = written_expiries(&cfg.secrets);
    known.extend(certificates);
    secrets.set_expiries(known);
    Ok(secrets)
}

/// Loads a tenant's secrets: its `[secrets]` and a push sink's credential (as
/// [`TenantRun::from_parts`] redacts them), for [`screen_config`] before anything else runs.
pub fn tenant_secrets(cfg: &TenantConfig) -> Result<SecretSet, RunError> {
    let mut secrets = tenant_connector_secrets(cfg)?;
    let credential = match &cfg.sink {
        SinkSpec::Sekoia(s) => Some(("[sink] api_key", &s.api_key)),
        SinkSpec::Http(s) => Some(("[sink] value", &s.value)),
        SinkSpec::Jsonl { .. } | SinkSpec::Stdout => None,
    };
    if let Some((key, spec)) = credential {
        let value = sink_secret(key, spec).map_err(|message| RunError::Config {
            tenant: cfg.key.clone(),
            message,
        })?;
        for (i, part) in secret_parts(&value).into_iter().enumerate() {
            secrets.insert(format!("sink.{i}"), SecretValue::new(part), vec![]);
        }
    }
    Ok(secrets)
}

/// Refuses a tenant whose key or `[config]` holds one of its secrets
/// ([`TenantConfig::refuse_secrets`]); the error names the tenant by its key redacted.
pub fn screen_config(cfg: &TenantConfig, secrets: &SecretSet) -> Result<(), RunError> {
    cfg.refuse_secrets(secrets)
        .map_err(|message| RunError::Config {
            tenant: secrets.scrubber().clean(cfg.key.clone()),
            message,
        })
}

/// Refuses an events file that is one of the tenant's other files (its checkpoint database,
/// a secret, its component): see [`crate::files::identity`].
fn check_events_path(cfg: &TenantConfig) -> Result<(), RunError> {
    crate::files::identity::check_tenant_events(cfg, &[]).map_err(|message| RunError::Config {
        tenant: cfg.key.clone(),
        message,
    })
}

/// The sink of a `check`, which writes no events.
struct NoSink;

#[async_trait::async_trait]
impl EventSink for NoSink {
    async fn write(&self, _: Vec<String>) -> Result<(), SinkError> {
        Err(SinkError("check writes no events".into()))
    }
    async fn flush_durable(&self) -> Result<(), SinkError> {
        Ok(())
    }
    fn written(&self) -> u64 {
        0
    }
}

/// Connects to a tenant's PostgreSQL checkpoint store (and migrates its schema).
pub async fn open_postgres(
    tenant: &str,
    pg: &PostgresState,
) -> Result<Arc<dyn CheckpointStore>, RunError> {
    let password = match &pg.password {
        Some(spec) => Some(database_password(spec).map_err(|e| RunError::Secret {
            tenant: tenant.to_string(),
            name: "[state] password".into(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let store =
        PostgresCheckpointStore::connect_with(&pg.url, password.as_ref(), pg.options.clone())
            .await
            .map_err(|e| RunError::Host {
                tenant: tenant.to_string(),
                message: format!("{e}; check [state] url and password"),
            })?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_spec(path: &std::path::Path, hosts: &[&str]) -> SecretSpec {
        SecretSpec {
            env: None,
            file: Some(path.to_path_buf()),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            expires: None,
            ..Default::default()
        }
    }

    #[test]
    fn the_doors_defaults_are_the_tenant_files_defaults() {
        assert_eq!(
            push_options(100, &DeliverySpec::default(), false),
            PushOptions::default()
        );
    }

    #[test]
    fn connector_secrets_are_loaded_with_their_origins_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "long-enough-Secret-7\n").unwrap();
        let origin = "https://login.microsoftonline.com";
        let specs = BTreeMap::from([("client_secret".to_string(), file_spec(&path, &[origin]))]);
        let set = connector_secrets(&specs).unwrap();
        assert_eq!(set.scrubber().scrub("long-enough-Secret-7"), "[redacted]");
        let body = b"client_secret={{secret:client_secret}}".to_vec();
        let form = [(
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        )];
        let filled = set
            .fill_body("POST", &form, body.clone(), &Origin::parse(origin).unwrap())
            .unwrap();
        assert_eq!(filled, b"client_secret=long-enough-Secret-7");
        assert!(set
            .fill_body(
                "POST",
                &form,
                body,
                &Origin::parse("https://elsewhere.example").unwrap()
            )
            .is_err());

        // Too weak to redact: refused by the door's rule, naming the secret.
        std::fs::write(&path, "short\n").unwrap();
        let e = connector_secrets(&specs).unwrap_err();
        assert_eq!(e.name, "client_secret");
        assert!(e.message.contains("only 5 characters"), "{}", e.message);

        // Both env and file: refused (the connector's secrets used to take env).
        let mut both = file_spec(&path, &[origin]);
        both.env = Some("PATH".into());
        let e =
            connector_secrets(&BTreeMap::from([("client_secret".to_string(), both)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret 'client_secret': needs exactly one of env = \"VAR\" or file = \"path\""
        );
    }

    #[test]
    fn operator_a_database_password_takes_none_of_a_connector_secrets_keys() {
        let spec = SecretSpec {
            env: Some("PG".into()),
            header: Some("Authorization".into()),
            ..Default::default()
        };
        let e = database_password(&spec).unwrap_err().to_string();
        assert!(e.contains("password takes no header"), "{e}");
    }

    #[test]
    fn operator_a_short_or_missing_sink_secret_is_refused_naming_the_key() {
        let spec = SecretSpec {
            env: Some("CONNECTOR_HOST_TEST_UNSET_SINK_KEY".into()),
            file: None,
            hosts: vec![],
            expires: None,
            ..Default::default()
        };
        let e = sink_secret("[sink] api_key", &spec).unwrap_err();
        assert!(
            e.starts_with("[sink] api_key: environment variable CONNECTOR_HOST_TEST_UNSET_SINK_KEY is not set"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "q7zx4\n").unwrap();
        let spec = file_spec(&path, &[]);
        let e = sink_secret("[sink] api_key", &spec).unwrap_err();
        assert!(e.contains("5 characters") && !e.contains("q7zx4"), "{e}");
        std::fs::write(&path, "long-enough-key-Q7\n").unwrap();
        assert_eq!(
            sink_secret("[sink] api_key", &spec).unwrap(),
            "long-enough-key-Q7"
        );
        // A header value's token must be strong on its own: it is what a receiver echoes.
        std::fs::write(&path, "Bearer employeeemployee\n").unwrap();
        let e = sink_secret("[sink] value", &spec).unwrap_err();
        assert!(
            e.starts_with("[sink] value: ")
                && e.contains("one kind of character")
                && !e.contains("employeeemployee")
                && !e.contains('\n'),
            "{e}"
        );
        std::fs::write(&path, "Bearer sk-test-7f3a9c2e-DO-NOT-LEAK\n").unwrap();
        let value = sink_secret("[sink] value", &spec).unwrap();
        assert_eq!(
            secret_parts(&value),
            [value.as_str(), "sk-test-7f3a9c2e-DO-NOT-LEAK"]
        );
    }

    #[test]
    fn the_database_password_goes_nowhere_else_and_is_loaded_by_the_one_loader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "pw\n").unwrap();
        let e = database_password(&file_spec(&path, &["https://db.example"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "[state] password: hosts = […] does not apply to the database password; remove it"
        );
        // Short is fine: the password never reaches the connector, so it is not redacted.
        assert!(database_password(&file_spec(&path, &[])).is_ok());
        std::fs::write(&path, "\n").unwrap();
        let e = database_password(&file_spec(&path, &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "[state] password: the value is empty; set the secret's value"
        );
    }
}
