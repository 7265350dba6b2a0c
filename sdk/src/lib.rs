//! The guest side of a connector: everything a WebAssembly connector needs that is not about
//! its provider.
//!
//! A connector reads one provider's API (Microsoft Entra ID, Okta, …) and emits OCSF events,
//! inside a sandbox where it reaches the world only through the host's doors. This crate is
//! the part every connector shares; a connector writes its configuration, its requests and
//! its mapping, and gets safe emitting, resumable cursors and retries for free.
//!
//! # Writing a connector
//!
//! 1. A crate with `crate-type = ["cdylib", "rlib"]` and `connector-sdk` as its dependency
//!    (`connector-sdk = { features = ["fake"] }` in its dev-dependencies, for tests). No
//!    wit-bindgen of its own: the SDK generates the bindings.
//! 2. One type implementing [`Connector`]: `describe` (static facts), `parse` (the tenant's
//!    configuration pairs into your `Config`, a mistake as a one-line [`ConfigError`]),
//!    `egress` (the origins a run calls and where each secret may go), `check` (probes) and
//!    `run` (one sync, returning a [`Report`]). `check` and `run` act only through
//!    [`Doors`]: `fetch`/`fetch_all` (HTTP; the host inserts secrets where a request says
//!    `{{secret:<name>}}`), the checkpoint store, `emit`, `log`, the clock.
//! 3. `connector_sdk::export_connector!(MyConnector);` at the crate root.
//! 4. Build with `cargo build --target wasm32-wasip2 --profile guest -p my-connector`: the
//!    `.wasm` is the component the host runs.
//!
//! Inside `run`, the modules below do the work that is the same for every provider:
//!
//! | module | what it gives |
//! |---|---|
//! | [`state`] | a cursor in one versioned compare-and-set [`state::Cell`] (a format stamp, refused when it is not yours), and chunked bulk keys |
//! | [`paging`] | the loop guard of next links ([`paging::Trail`]: a link or page seen twice, a page cap), several listings read at once |
//! | [`retry`] | `Retry-After` (seconds or HTTP date) and capped exponential backoff |
//! | [`emit`] | events handed over in batches the host accepts; an event the host refuses is isolated and skipped, not the page |
//! | [`ocsf`] | the OCSF envelope (class, metadata, source product, the connector as logger) and the content `metadata.uid` |
//! | [`time`] | RFC 3339 and IMF-fixdate to integer milliseconds, strictly |
//! | [`error`], [`report`] | the error categories the host understands, the run's counts and warnings |
//!
//! Test natively against `doors::fake::FakeDoors` (feature `fake`: scripted HTTP, an
//! in-memory checkpoint store, a clock that moves only when the code sleeps; and
//! `seeded_runner` for property tests), then end to end in the real host
//! against a server on 127.0.0.1: `examples/example-connector` and its test
//! `tests/tests/example.rs` show the whole path in under 150 lines.

// The generated bindings name this crate by its own name, from inside it too.
extern crate self as connector_sdk;

pub mod connector;
pub mod doors;
pub mod emit;
pub mod error;
pub mod ocsf;
pub mod paging;
pub mod report;
pub mod retry;
pub mod state;
pub mod time;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

/// A proptest runner of `cases` cases from proptest's fixed seed, so that every run checks
/// the same cases and the counts a test asserts after its run are the same on every machine
/// (no flakes); a failing case is shrunk and printed. No regression files: the seed already
/// replays every case. For connectors' tests (feature `fake`) and the SDK's own.
#[cfg(any(test, feature = "fake"))]
pub fn seeded_runner(cases: u32) -> proptest::test_runner::TestRunner {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

pub use connector::{ConfigError, Connector, Description, EgressPlan, Probe};
pub use doors::Doors;
pub use error::ConnectorError;
pub use report::Report;

/// Exports a [`Connector`] as the component's `connector` interface:
/// `connector_sdk::export_connector!(MyConnector);` once, at the root of the connector's
/// crate (compiled for wasm32 only; natively it expands to nothing).
#[macro_export]
#[rustfmt::skip]
macro_rules! export_connector {
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wasm::api;
            struct __ConnectorExport;
            impl api::Guest for __ConnectorExport {
                fn describe() -> api::Description {
                    $crate::wasm::describe::<$connector>()
                }
                fn egress(config: api::Config) -> Result<api::EgressPlan, api::ConnectorError> {
                    $crate::wasm::egress::<$connector>(config)
                }
                fn check(config: api::Config) -> Result<Vec<api::Probe>, api::ConnectorError> {
                    $crate::wasm::check::<$connector>(config)
                }
                fn run(config: api::Config) -> Result<api::RunReport, api::ConnectorError> {
                    $crate::wasm::run::<$connector>(config)
                }
            }
            $crate::wasm::export_component!(__ConnectorExport with_types_in $crate::wasm);
        };
    };
}
