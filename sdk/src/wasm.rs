//! Export glue: the WIT bindings, `Doors` over the real imports, and the `connector` export
//! calling a [`Connector`]. Compiled for wasm32 only; nothing here decides anything.
//!
//! Why it exists: the bindings are generated once, here, with a public export macro, so a
//! connector crate has no wit-bindgen of its own: `connector_sdk::export_connector!(MyConnector)`
//! defines the export type and hands it to the generated macro.

use crate::connector::Connector;
use crate::doors::{self, Doors};

wit_bindgen::generate!({
    path: "../wit",
    world: "asset-connector",
    pub_export_macro: true,
    export_macro_name: "export_component",
    default_bindings_module: "connector_sdk::wasm",
    runtime_path: "connector_sdk::wasm::__rt",
});

#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

use connector::runtime::{emit_event, http_fetch, kv_checkpoint, log};
pub use exports::connector::runtime::connector as api;

/// `Doors` over the component's imports.
pub struct Imports;

impl Doors for Imports {
    fn fetch_all(
        &self,
        reqs: Vec<doors::HttpRequest>,
    ) -> Vec<Result<doors::HttpResponse, doors::FetchError>> {
        let reqs: Vec<http_fetch::Request> = reqs
            .into_iter()
            .map(|r| http_fetch::Request {
                method: r.method,
                url: r.url,
                headers: r.headers,
                body: r.body,
            })
            .collect();
        http_fetch::fetch_all(&reqs)
            .into_iter()
            .map(|r| match r {
                Ok(resp) => Ok(doors::HttpResponse {
                    status: resp.status,
                    headers: resp.headers,
                    body: resp.body,
                }),
                Err(e) => Err(match e {
                    http_fetch::FetchError::Denied(m) => doors::FetchError::Denied(m),
                    http_fetch::FetchError::Timeout => doors::FetchError::Timeout,
                    http_fetch::FetchError::TooLarge(n) => doors::FetchError::TooLarge(n),
                    http_fetch::FetchError::Transport(m) => doors::FetchError::Transport(m),
                    http_fetch::FetchError::BudgetExhausted => doors::FetchError::BudgetExhausted,
                }),
            })
            .collect()
    }

    fn kv_get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, doors::KvError> {
        kv_checkpoint::get(key).map_err(kv_error)
    }

    fn kv_set(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, doors::KvError> {
        kv_checkpoint::set(key, value, expected).map_err(kv_error)
    }

    fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<(Vec<u8>, u64)>>, doors::KvError> {
        kv_checkpoint::get_many(keys).map_err(kv_error)
    }

    fn kv_set_many(&self, writes: &[doors::KvWrite]) -> Result<Vec<u64>, doors::KvError> {
        let writes: Vec<kv_checkpoint::Write> = writes
            .iter()
            .map(|w| kv_checkpoint::Write {
                key: w.key.clone(),
                value: w.value.clone(),
                expect: match w.expect {
                    doors::Expect::Any => kv_checkpoint::Expect::Any,
                    doors::Expect::Absent => kv_checkpoint::Expect::Absent,
                    doors::Expect::Version(v) => kv_checkpoint::Expect::Version(v),
                },
            })
            .collect();
        kv_checkpoint::set_many(&writes).map_err(kv_error)
    }

    fn kv_delete_prefix(&self, prefix: &str, limit: u32) -> Result<u32, doors::KvError> {
        kv_checkpoint::delete_prefix(prefix, limit).map_err(kv_error)
    }

    fn progress(&self, p: &doors::Progress) {
        log::progress(&log::RunProgress {
            phase: p.phase.clone(),
            pages_done: p.pages_done,
            pages_expected: p.pages_expected,
            items_done: p.items_done,
            wait_ms: p.wait_ms,
            detail: p.detail.clone(),
        });
    }

    fn emit(&self, events: &[String]) -> Result<(), doors::EmitError> {
        emit_event::emit(events).map_err(|e| match e {
            emit_event::EmitError::Invalid(m) => doors::EmitError::Invalid(m),
            emit_event::EmitError::Sink(m) => doors::EmitError::Sink(m),
        })
    }

    fn log(&self, level: doors::Level, message: &str) {
        let level = match level {
            doors::Level::Trace => log::Level::Trace,
            doors::Level::Debug => log::Level::Debug,
            doors::Level::Info => log::Level::Info,
            doors::Level::Warn => log::Level::Warn,
            doors::Level::Error => log::Level::Error,
        };
        log::write(level, message);
    }

    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn kv_error(e: kv_checkpoint::KvError) -> doors::KvError {
    match e {
        kv_checkpoint::KvError::Conflict(v) => doors::KvError::Conflict(v),
        kv_checkpoint::KvError::Invalid(m) => doors::KvError::Invalid(m),
        kv_checkpoint::KvError::Storage(m) => doors::KvError::Storage(m),
    }
}

fn wit_error(e: crate::error::ConnectorError) -> api::ConnectorError {
    use crate::error::ConnectorError as E;
    match e {
        E::Config(m) => api::ConnectorError::Config(m),
        E::Auth(m) => api::ConnectorError::Auth(m),
        E::Permission(m) => api::ConnectorError::Permission(m),
        E::Upstream(m) => api::ConnectorError::Upstream(m),
        E::Host(m) => api::ConnectorError::Host(m),
    }
}

fn parse<C: Connector>(config: &[(String, String)]) -> Result<C::Config, api::ConnectorError> {
    C::parse(config).map_err(|e| api::ConnectorError::Config(e.0))
}

/// `describe` of `C`, in the WIT's types.
pub fn describe<C: Connector>() -> api::Description {
    let d = C::describe();
    api::Description {
        name: d.name.into(),
        version: d.version.into(),
        permissions: d.permissions.iter().map(|p| p.to_string()).collect(),
        config_keys: d
            .config_keys
            .iter()
            .map(|(name, required, description)| api::ConfigKey {
                name: name.to_string(),
                required: *required,
                description: description.to_string(),
            })
            .collect(),
        secrets: d
            .secrets
            .iter()
            .map(|(name, description)| api::SecretRef {
                name: name.to_string(),
                description: description.to_string(),
            })
            .collect(),
        event_classes: d.event_classes.to_vec(),
    }
}

/// `egress` of `C`, in the WIT's types.
pub fn egress<C: Connector>(config: api::Config) -> Result<api::EgressPlan, api::ConnectorError> {
    let plan = C::egress(&parse::<C>(&config)?);
    Ok(api::EgressPlan {
        origins: plan.origins,
        secrets: plan
            .secrets
            .into_iter()
            .map(|(name, origins)| api::SecretDestination { name, origins })
            .collect(),
    })
}

/// `check` of `C` over the real doors, in the WIT's types.
pub fn check<C: Connector>(config: api::Config) -> Result<Vec<api::Probe>, api::ConnectorError> {
    let config = parse::<C>(&config)?;
    C::check(&Imports, &config)
        .map(|probes| {
            probes
                .into_iter()
                .map(|p| api::Probe {
                    name: p.name,
                    ok: p.ok,
                    detail: p.detail,
                })
                .collect()
        })
        .map_err(wit_error)
}

/// `run` of `C` over the real doors, in the WIT's types.
pub fn run<C: Connector>(config: api::Config) -> Result<api::RunReport, api::ConnectorError> {
    let config = parse::<C>(&config)?;
    let r = C::run(&Imports, &config).map_err(wit_error)?;
    Ok(api::RunReport {
        items_seen: r.items_seen,
        events_emitted: r.events_emitted,
        items_skipped: r.items_skipped,
        items_partial: r.items_partial,
        requests: r.requests,
        full_sync: r.full_sync,
        warnings: r.warnings,
        unavailable: r.unavailable,
    })
}
