//! The reference host for sandboxed inventory connectors.
//!
//! A platform embeds this library to run connector components (WebAssembly, the
//! `connector:runtime` WIT world) for many tenants: [`Runtime`] compiles a component once
//! and starts isolated runs of it; each run gets the tenant's egress policy
//! ([`doors::http`]), checkpoint namespace ([`doors::checkpoint`]) and event sink ([`doors::emit`]), and
//! nothing else. The `connector-host` binary is a thin CLI over the same API.
//!
//! The library embeds no connector and names no provider: a tenant's component is a file
//! or, with the `builtin` feature (on for the CLI), a connector the `builtin-connectors`
//! crate ships ([`components`]). Built with `default-features = false` it builds no guest
//! and no emulator.

pub mod assembly;
pub mod check;
pub mod components;
pub mod config;
pub mod credentials;
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
pub mod status;

// What a platform embedding the library needs, at the crate root: the runtime and a run's
// parts, every checkpoint store and every sink, the secrets a run fills, serve and fleet.
pub use components::Components;
pub use config::{ConnectorChoice, TenantConfig};
pub use doors::checkpoint::{
    CheckpointError, CheckpointStore, FencedCheckpointStore, PostgresCheckpointStore,
    SqliteCheckpointStore,
};
pub use doors::emit::http::Ndjson;
pub use doors::emit::sekoia::SekoiaAssets;
pub use doors::emit::{
    EventSink, Inventory, JsonlFileSink, PushOptions, PushSink, PushStats, SinkError, StdoutSink,
};
pub use doors::http::{EgressPolicy, Origin, SecretSet, SecretValue};
pub use doors::log::Progress;
pub use error::RunError;
pub use fleet::Fleet;
pub use postgres::{Database, DatabaseError, DatabaseOptions};
pub use runtime::{
    LimitKind, RunFigures, RunOutcome, RunReport, Runtime, RuntimeLimits, RuntimeOptions,
    TenantRun, TimeScale,
};
pub use serve::{Deployment, ServeFile, ServeOptions, Server};
