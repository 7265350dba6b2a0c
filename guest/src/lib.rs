//! The Microsoft Entra ID user connector: Graph users in, OCSF 5003 "User Inventory Info"
//! events out, as a WebAssembly component that reaches the world only through the host's
//! doors (`http-fetch`, `kv-checkpoint`, `emit-event`, `log`).
//!
//! Where a Graph page becomes OCSF events: `sync/delta.rs` (or `sync/created.rs`) reads a
//! page through `graph/`, `sync/mod.rs` enriches it (`enrich.rs`), maps each user with
//! `ocsf.rs` (a pure function) and emits the events, and the mode's code moves the cursor.
//! `wasm.rs` is only glue to the WIT bindings.

pub mod check;
pub mod config;
pub mod doors;
pub mod enrich;
pub mod error;
pub mod facts;
pub mod graph;
pub mod ocsf;
pub mod sync;
pub mod time;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod wasm;

/// The connector's version, reported in `describe` and in `metadata.product.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `describe` returns, as plain data.
pub struct Description {
    /// Stable connector name.
    pub name: &'static str,
    /// Version.
    pub version: &'static str,
    /// Graph application permissions.
    pub permissions: &'static [&'static str],
    /// (key, required, description) of every config key.
    pub config_keys: &'static [(&'static str, bool, &'static str)],
    /// OCSF classes emitted.
    pub event_classes: &'static [u32],
}

/// Static facts about this connector.
pub fn describe() -> Description {
    Description {
        name: "entra-id-users",
        version: VERSION,
        permissions: check::PERMISSIONS,
        config_keys: config::KEYS,
        event_classes: &[5003],
    }
}
