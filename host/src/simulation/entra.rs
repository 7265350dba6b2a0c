//! The Entra ID connector's simulation: a tenant run of the built-in `entra-id` connector
//! wired to the Graph emulator. The configuration keys below (`tenant_id`, `client_id`,
//! `login_endpoint`, `graph_endpoint`, the `client_secret` secret) are that connector's
//! (`connector-host describe --connector entra-id`), not the host's: another connector
//! brings its own simulation. Used by `connector-host demo`, the end-to-end tests and the
//! benchmarks, so all three exercise the same real host path (egress policy, secret
//! substitution, SQLite checkpoints, JSONL sink).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use graph_emulator::Emulator;

use super::SimulationError;
use crate::doors::http::secrets::{SecretSet, SecretValue};
use crate::doors::http::{EgressPolicy, Origin};
use crate::{JsonlFileSink, SqliteCheckpointStore, TenantRun};

/// What every run against `emu` shares: the connector's configuration (the emulator's
/// tenant, client id and endpoints), an egress policy allowing exactly its two origins
/// (loopback http permitted), and its client secret, held by the host.
pub fn emulator_wiring(emu: &Emulator) -> Result<EmulatorWiring, SimulationError> {
    let cfg = emu.config();
    let login = Origin::parse(&emu.login_endpoint()).map_err(|e| SimulationError(e.to_string()))?;
    let graph = Origin::parse(&emu.graph_endpoint()).map_err(|e| SimulationError(e.to_string()))?;
    let mut secrets = SecretSet::new();
    secrets.insert(
        "client_secret",
        SecretValue::new(cfg.client_secret.clone()),
        vec![login.clone()],
    );
    let mut policy = EgressPolicy::new(vec![login, graph]);
    policy.allow_loopback_http = true;
    let connector_config = vec![
        ("tenant_id".into(), cfg.tenant_id.clone()),
        ("client_id".into(), cfg.client_id.clone()),
        ("login_endpoint".into(), emu.login_endpoint()),
        ("graph_endpoint".into(), emu.graph_endpoint()),
    ];
    Ok(EmulatorWiring {
        connector_config,
        policy,
        secrets,
    })
}

/// Like [`emulator_wiring`], under stable origins instead of the emulator's own addresses:
/// the connector is configured with `login_origin` and `graph_origin`, and the egress policy
/// allows exactly those two and resolves them to the emulator's login and Graph sockets
/// ([`EgressPolicy::resolve`]). Start the emulator with
/// `public_graph_endpoint = Some(graph_origin)` so its links name the same origin.
pub fn stable_wiring(
    emu: &Emulator,
    login_origin: &str,
    graph_origin: &str,
) -> Result<EmulatorWiring, SimulationError> {
    let cfg = emu.config();
    let login = Origin::parse(login_origin).map_err(|e| SimulationError(e.to_string()))?;
    let graph = Origin::parse(graph_origin).map_err(|e| SimulationError(e.to_string()))?;
    let mut secrets = SecretSet::new();
    secrets.insert(
        "client_secret",
        SecretValue::new(cfg.client_secret.clone()),
        vec![login.clone()],
    );
    let mut policy = EgressPolicy::new(vec![login.clone(), graph.clone()]);
    policy.allow_loopback_http = true;
    policy.resolve = vec![(login, emu.login_addr()), (graph, emu.graph_addr())];
    let connector_config = vec![
        ("tenant_id".into(), cfg.tenant_id.clone()),
        ("client_id".into(), cfg.client_id.clone()),
        ("login_endpoint".into(), login_origin.to_string()),
        ("graph_endpoint".into(), graph_origin.to_string()),
    ];
    Ok(EmulatorWiring {
        connector_config,
        policy,
        secrets,
    })
}

/// The parts of a run that every tenant pointed at one emulator shares.
pub struct EmulatorWiring {
    /// The connector's configuration pairs.
    pub connector_config: Vec<(String, String)>,
    /// Egress allowing the emulator's two origins.
    pub policy: EgressPolicy,
    /// The emulator's client secret, allowed to its login origin.
    pub secrets: SecretSet,
}

/// A run of the Entra connector against `emu` ([`emulator_wiring`]), with checkpoints in
/// the SQLite file `checkpoint_db` and events appended to the JSONL file `events`.
pub fn emulator_tenant_run(
    emu: &Emulator,
    tenant: &str,
    checkpoint_db: &Path,
    events: &Path,
) -> Result<TenantRun, SimulationError> {
    emulator_wiring(emu)?.tenant_run(tenant, checkpoint_db, events)
}

impl EmulatorWiring {
    /// A run of `tenant` with this wiring, checkpoints in the SQLite file `checkpoint_db` and
    /// events appended to the JSONL file `events` (the Entra and the Okta simulations alike).
    pub fn tenant_run(
        self,
        tenant: &str,
        checkpoint_db: &Path,
        events: &Path,
    ) -> Result<TenantRun, SimulationError> {
        let checkpoints = SqliteCheckpointStore::open(checkpoint_db)
            .map_err(|e| SimulationError(e.to_string()))?;
        let sink = JsonlFileSink::open(events).map_err(|e| SimulationError(e.to_string()))?;
        Ok(TenantRun {
            tenant: tenant.into(),
            connector_config: self.connector_config,
            policy: self.policy,
            secrets: Arc::new(self.secrets),
            checkpoints: Arc::new(checkpoints),
            sink: Arc::new(sink),
            timeout: Duration::from_secs(3600),
            time_scale: Default::default(),
        })
    }
}
