//! Simulated tenants, behind the `simulation` feature (on for the CLI, off for an embedder
//! that builds with `default-features = false`): the built-in Graph emulator
//! (`graph-emulator`) wired to the real host path.
//!
//! - [`wiring`]: one tenant run against an emulator (`connector-host demo`, the end-to-end
//!   tests and the benchmarks);
//! - [`tenants`]: many simulated tenants for `serve` (the `[simulation]` section).

/// Why a simulation could not start: one line naming what failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimulationError(pub String);

pub mod tenants;
pub mod wiring;

pub use graph_emulator as emulator;
pub use tenants::{simulated_keys, Simulation};
pub use wiring::{emulator_tenant_run, emulator_wiring, EmulatorWiring};
