//! Wiring of a tenant run to the built-in Graph emulator: used by `connector-host demo`,
//! the end-to-end tests and the benchmarks, so all three exercise the same real host path
//! (egress policy, secret substitution, SQLite checkpoints, JSONL sink).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use graph_emulator::Emulator;

use crate::egress::{EgressPolicy, Origin};
use crate::secrets::{SecretSet, SecretValue};
use crate::{JsonlFileSink, SqliteCheckpointStore, TenantRun};

/// A run of the Entra connector against `emu`: its endpoints as the only allowed origins
/// (loopback http permitted), its client secret held by the host, checkpoints in the SQLite
/// file `checkpoint_db`, events appended to the JSONL file `events`.
pub fn emulator_tenant_run(
    emu: &Emulator,
    tenant: &str,
    checkpoint_db: &Path,
    events: &Path,
) -> Result<TenantRun, String> {
    let cfg = emu.config();
    let login = Origin::parse(&emu.login_endpoint())?;
    let graph = Origin::parse(&emu.graph_endpoint())?;
    let mut secrets = SecretSet::new();
    secrets.insert(
        "client_secret",
        SecretValue::new(cfg.client_secret.clone()),
        vec![login.clone()],
    );
    let mut policy = EgressPolicy::new(vec![login, graph]);
    policy.allow_loopback_http = true;
    let checkpoints = SqliteCheckpointStore::open(checkpoint_db).map_err(|e| e.to_string())?;
    let sink = JsonlFileSink::open(events).map_err(|e| e.to_string())?;
    Ok(TenantRun {
        tenant: tenant.into(),
        connector_config: vec![
            ("tenant_id".into(), cfg.tenant_id.clone()),
            ("client_id".into(), cfg.client_id.clone()),
            ("login_endpoint".into(), emu.login_endpoint()),
            ("graph_endpoint".into(), emu.graph_endpoint()),
        ],
        policy,
        secrets: Arc::new(secrets),
        checkpoints: Arc::new(checkpoints),
        sink: Arc::new(sink),
        timeout: Duration::from_secs(3600),
    })
}
