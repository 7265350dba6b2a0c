//! The reference host for sandboxed inventory connectors.
//!
//! A platform embeds this library to run connector components (WebAssembly, the
//! `connector:runtime` WIT world) for many tenants: [`Runtime`] compiles a component once
//! and starts isolated runs of it; each run gets the tenant's egress policy
//! ([`doors::http`]), checkpoint namespace ([`doors::checkpoint`]) and event sink ([`doors::emit`]), and
//! nothing else. The `connector-host` binary is a thin CLI over the same API.

pub mod assembly;
pub mod config;
pub mod doors;
pub mod error;
pub mod files;
pub mod fleet;
pub mod metrics;
pub mod postgres;
pub mod runtime;
pub mod secrets;
pub mod serve;
#[cfg(feature = "simulation")]
pub mod simulation;

pub use config::TenantConfig;
pub use doors::checkpoint::{CheckpointStore, SqliteCheckpointStore};
pub use doors::emit::{EventSink, JsonlFileSink, StdoutSink};
pub use doors::http::EgressPolicy;
pub use doors::log::Progress;
pub use error::RunError;
pub use runtime::{
    LimitKind, RunFigures, RunOutcome, RunReport, Runtime, RuntimeLimits, RuntimeOptions,
    TenantRun, TimeScale,
};

/// The Entra ID users connector component built from `guest/`, embedded in the host.
pub static ENTRA_CONNECTOR: &[u8] = include_bytes!(env!("ENTRA_CONNECTOR_WASM"));
