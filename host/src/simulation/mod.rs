//! Simulated tenants of the built-in Entra ID connector, behind the `simulation` feature
//! (on for the CLI, off for an embedder that builds with `default-features = false`): the
//! Graph emulator (`graph-emulator`) wired to the real host path. The host itself knows no
//! provider; this is the Entra connector's simulation, which the CLI ships with it.
//!
//! - [`entra`]: one run of the Entra connector against an emulator (`connector-host demo`,
//!   the end-to-end tests and the benchmarks);
//! - [`tenants`]: many simulated tenants for `serve` (the `[simulation]` section).

/// Why a simulation could not start: one line naming what failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimulationError(pub String);

pub mod entra;
pub mod tenants;

pub use entra::{emulator_tenant_run, emulator_wiring, stable_wiring, EmulatorWiring};
pub use graph_emulator as emulator;
pub use tenants::{simulated_keys, stable_origins, Simulation};
