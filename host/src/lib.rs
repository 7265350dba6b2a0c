//! The reference host for sandboxed inventory connectors.
//!
//! A platform embeds this library to run connector components (WebAssembly, the
//! `connector:runtime` WIT world) for many tenants: [`Runtime`] compiles a component once
//! and starts isolated runs of it; each run gets the tenant's egress policy
//! ([`egress`]), checkpoint namespace ([`checkpoint`]) and event sink ([`sink`]), and
//! nothing else. The `connector-host` binary is a thin CLI over the same API.

pub mod checkpoint;
pub mod config;
pub mod demo;
pub mod egress;
pub mod error;
pub mod files;
pub mod metrics;
pub mod netguard;
pub mod runtime;
pub mod secrets;
pub mod serve;
pub mod sink;

pub use checkpoint::{CheckpointStore, SqliteCheckpointStore};
pub use config::TenantConfig;
pub use egress::EgressPolicy;
pub use error::RunError;
pub use runtime::{
    LimitKind, RunOutcome, RunReport, Runtime, RuntimeLimits, RuntimeOptions, TenantRun,
};
pub use sink::{EventSink, JsonlFileSink, StdoutSink};

/// The Entra ID users connector component built from `guest/`, embedded in the host.
pub static ENTRA_CONNECTOR: &[u8] = include_bytes!(env!("ENTRA_CONNECTOR_WASM"));

/// The Graph emulator, re-exported for `demo`, tests and benchmarks.
pub use graph_emulator as emulator;
