//! The Okta connector's simulation: a tenant run of the built-in `okta` connector wired to
//! the Okta emulator (`okta-emulator`, written from Okta's documentation). The configuration
//! key (`org_url`) and the secret (`okta_token`, an API token sent as `Authorization: SSWS
//! <token>`) are that connector's (`connector-host describe --connector okta`), not the
//! host's. Used by `connector-host demo --connector okta`, so the demo exercises the real
//! host path (egress policy, the header credential filled by the host, SQLite checkpoints,
//! JSONL sink).

use std::path::Path;

use okta_emulator::Emulator;

use super::{EmulatorWiring, SimulationError};
use crate::doors::http::secrets::{SecretSet, SecretValue};
use crate::doors::http::{EgressPolicy, Origin};
use crate::TenantRun;

/// The Okta connector's name among the built-in connectors.
pub const BUILTIN_NAME: &str = "okta";

/// What every run against `emu` with the API token `token` shares: `org_url` = the
/// emulator's origin, an egress policy allowing exactly that origin (loopback http
/// permitted), and the token held by the host as a header credential for that origin,
/// `Authorization: SSWS <token>` (developer.okta.com/docs/guides/create-an-api-token: "prefix
/// the value with the SSWS identifier").
pub fn okta_wiring(emu: &Emulator, token: &str) -> Result<EmulatorWiring, SimulationError> {
    let origin = Origin::parse(&emu.base_url()).map_err(|e| SimulationError(e.to_string()))?;
    let mut secrets = SecretSet::new();
    secrets.insert_header(
        "okta_token",
        SecretValue::new(token),
        vec![origin.clone()],
        "Authorization",
        Some("SSWS".into()),
    );
    let mut policy = EgressPolicy::new(vec![origin]);
    policy.allow_loopback_http = true;
    Ok(EmulatorWiring {
        connector_config: vec![("org_url".into(), emu.base_url())],
        policy,
        secrets,
    })
}

/// A run of the Okta connector against `emu` with the emulator's first API token
/// ([`okta_wiring`]), with checkpoints in the SQLite file `checkpoint_db` and events
/// appended to the JSONL file `events`.
pub fn okta_tenant_run(
    emu: &Emulator,
    tenant: &str,
    checkpoint_db: &Path,
    events: &Path,
) -> Result<TenantRun, SimulationError> {
    let token = emu
        .config()
        .api_tokens
        .first()
        .cloned()
        .ok_or_else(|| SimulationError("the Okta emulator accepts no API token".into()))?;
    okta_wiring(emu, &token)?.tenant_run(tenant, checkpoint_db, events)
}
