//! Simulated tenants of the built-in connectors, behind the `simulation` feature (on for
//! the CLI, off for an embedder that builds with `default-features = false`): the Graph
//! emulator (`graph-emulator`) and the Okta emulator (`okta-emulator`) wired to the real host
//! path. The host itself knows no provider; these are the connectors' simulations, which the
//! CLI ships with them.
//!
//! - [`entra`]: one run of the Entra connector against an emulator (`connector-host demo`,
//!   the end-to-end tests and the benchmarks);
//! - [`okta`]: one run of the Okta connector against the Okta emulator (`connector-host demo
//!   --connector okta`);
//! - [`tenants`]: many simulated tenants for `serve` (the `[simulation]` section).

/// Why a simulation could not start: one line naming what failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimulationError(pub String);

pub mod entra;
pub mod okta;
pub mod tenants;

pub use entra::{emulator_tenant_run, emulator_wiring, stable_wiring, EmulatorWiring};
pub use graph_emulator as emulator;
pub use okta::{okta_tenant_run, okta_wiring};
pub use okta_emulator;
pub use tenants::{simulated_keys, stable_origins, Simulation};
