//! Simulated tenants of the Entra connector for `serve`: many tenant keys, one in-process
//! Graph emulator (the deployment runs them on the built-in `entra-id` connector).
//!
//! Load, soak and demo runs of the multi-tenant host need a thousand tenants without a
//! thousand directories. Every simulated tenant (`sim-0000`, `sim-0001`, …) syncs the same
//! generated directory through the real host path (egress policy, secret substitution,
//! SQLite checkpoints, JSONL sink), each with its own checkpoint namespace and events file.
//! Unlike [`super::entra::emulator_tenant_run`], which opens a store and a sink per call, all
//! simulated tenants share one SQLite store (one connection, not one per tenant) and each
//! run opens its tenant's events file and closes it when the run ends.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use graph_emulator::{Emulator, EmulatorConfig, Tenant};

use super::SimulationError;
use crate::doors::http::secrets::SecretSet;
use crate::doors::http::EgressPolicy;
pub use crate::serve::simulated_keys;
use crate::serve::{Schedule, SimulationSpec, TenantEntry};
use crate::{JsonlFileSink, RunError, SqliteCheckpointStore, TenantRun};

/// The stable login and Graph origins of a simulation: what its tenants' connector is
/// configured with and what the links it stores point at, whichever port this process's
/// emulator got. A `serve` restart, or another fleet host running the same simulation, starts
/// a new emulator on a new port; its tenants' runs still reach it under the same origins
/// (each run's egress policy resolves them to this emulator's sockets, like curl's
/// `--resolve`), so the delta and next links in their checkpoints stay valid and a run
/// resumes from them instead of walking everyone again. The names hold the seed and the
/// users per tenant: a simulation of other data is another origin, and its tenants' stored
/// links are dropped (a full sync), as after any change of `graph_endpoint`. `.localhost`
/// names (RFC 6761) resolve nowhere else: without the policy's entry the host refuses them
/// (plain http to a name), so a tenant file can never reach them.
pub fn stable_origins(spec: &SimulationSpec) -> (String, String) {
    let tag = format!("s{}-u{}", spec.seed, spec.users_per_tenant);
    (
        format!("http://login-{tag}.simulation.localhost"),
        format!("http://graph-{tag}.simulation.localhost"),
    )
}

/// The running emulator and what every simulated tenant's run shares.
pub struct Simulation {
    emulator: Emulator,
    template: Arc<Template>,
    keys: Vec<String>,
}

/// The parts of a simulated run that are the same for every tenant and every run.
struct Template {
    connector_config: Vec<(String, String)>,
    policy: EgressPolicy,
    secrets: Arc<SecretSet>,
    checkpoints: Arc<SqliteCheckpointStore>,
    events_dir: PathBuf,
}

impl Simulation {
    /// Starts the emulator with `users_per_tenant` generated users and opens the shared
    /// checkpoint store.
    pub async fn start(spec: &SimulationSpec) -> Result<Simulation, SimulationError> {
        let checkpoints = SqliteCheckpointStore::open(&spec.checkpoint_db).map_err(|e| {
            SimulationError(format!(
                "{e}; check checkpoint_db = \"{}\"",
                spec.checkpoint_db.display()
            ))
        })?;
        std::fs::create_dir_all(&spec.events_dir).map_err(|e| {
            SimulationError(format!(
                "cannot create events_dir \"{}\": {e}",
                spec.events_dir.display()
            ))
        })?;
        // Every simulated tenant is served by this one emulator, which is one Graph tenant to
        // Graph's limits: the reports limits (5 per 10 s, sign-in data 10 a minute, per app
        // per tenant) would charge every simulated tenant's requests to one budget, which no
        // real fleet does (each customer is its own Entra tenant). They are off here; the
        // end-to-end tests and the Graph-calls benchmark keep them on.
        let (login_origin, graph_origin) = stable_origins(spec);
        let emulator = Emulator::start(
            Tenant::generated(spec.seed, spec.users_per_tenant),
            EmulatorConfig {
                reports_limit: None,
                sign_in_activity_limit: None,
                // Links carry the stable origin, not this process's port: see `stable_origins`.
                public_graph_endpoint: Some(graph_origin.clone()),
                ..EmulatorConfig::default()
            },
        )
        .await
        .map_err(|e| SimulationError(format!("cannot start the Graph emulator: {e:#}")))?;
        emulator.set_latency(spec.latency);
        let super::entra::EmulatorWiring {
            connector_config,
            policy,
            secrets,
        } = super::entra::stable_wiring(&emulator, &login_origin, &graph_origin)?;
        let template = Template {
            connector_config,
            policy,
            secrets: Arc::new(secrets),
            checkpoints: Arc::new(checkpoints),
            events_dir: spec.events_dir.clone(),
        };
        Ok(Simulation {
            emulator,
            template: Arc::new(template),
            keys: simulated_keys(spec.tenants),
        })
    }

    /// The simulated tenants' keys.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The stable login and Graph endpoints the simulated tenants use ([`stable_origins`]).
    pub fn endpoints(&self) -> (String, String) {
        let cfg = &self.template.connector_config;
        let get = |key: &str| {
            cfg.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        (get("login_endpoint"), get("graph_endpoint"))
    }

    /// The emulator serving every simulated tenant (its counters, fault rules).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// One [`TenantEntry`] per simulated tenant, each on `schedule`.
    pub fn entries(&self, schedule: &Schedule) -> Vec<TenantEntry> {
        self.keys
            .iter()
            .map(|key| {
                let template = self.template.clone();
                let tenant = key.clone();
                TenantEntry {
                    key: key.clone(),
                    make_run: Box::new(move || template.run(&tenant)),
                    schedule: schedule.clone(),
                }
            })
            .collect()
    }

    /// Stops the emulator.
    pub async fn shutdown(self) {
        self.emulator.shutdown().await;
    }
}

impl Template {
    fn run(&self, tenant: &str) -> Result<TenantRun, RunError> {
        let path = self.events_dir.join(format!("{tenant}.jsonl"));
        let sink = JsonlFileSink::open(&path).map_err(|e| RunError::Host {
            tenant: tenant.to_string(),
            message: format!("cannot open its events file: {e}; check [simulation] events_dir"),
        })?;
        Ok(TenantRun {
            tenant: tenant.to_string(),
            connector_config: self.connector_config.clone(),
            policy: self.policy.clone(),
            secrets: self.secrets.clone(),
            checkpoints: self.checkpoints.clone(),
            sink: Arc::new(sink),
            timeout: Duration::from_secs(3600),
            time_scale: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_padded_and_ordered() {
        assert_eq!(simulated_keys(2), ["sim-0000", "sim-0001"]);
        assert_eq!(
            simulated_keys(10_000).last().map(String::as_str),
            Some("sim-9999")
        );
        let k = simulated_keys(10_001);
        assert_eq!(
            (k[0].as_str(), k[10_000].as_str()),
            ("sim-00000", "sim-10000")
        );
    }
}
