//! One run of the Entra ID user sync: which users to read, how to enrich them, when to move
//! the cursor.
//!
//! Three modes (`sync_mode`): `delta` (the default, `delta.rs`) follows `users/delta` and
//! commits its place after every page; `created` (the seed's mode) and `full` list `/users`
//! (`created.rs`). Whatever the source, a page of users goes through the same [`Pipeline`]
//! (`pipeline.rs`): de-duplicated by id, enriched (`enrich.rs`), mapped (`ocsf.rs`), emitted. The host makes
//! the sink durable before it commits a checkpoint, so a cursor never moves past an event
//! that did not reach the sink.

pub mod created;
pub mod cursor;
pub mod delta;
pub mod pipeline;
pub mod stage;
pub mod staged;
pub mod walk;

use crate::config::{Config, SyncMode};
use crate::graph::GraphClient;
use connector_sdk::doors::{Doors, Level};
use connector_sdk::error::ConnectorError;
use connector_sdk::report::Report;

pub use created::{Cursor, CURSOR_KEY};
pub use cursor::{DeltaCursor, DELTA_CURSOR_KEY};
pub use pipeline::{Entry, Pipeline, USER_SELECT};

/// Runs one sync of `config`'s tenant.
pub fn run<D: Doors>(doors: &D, config: &Config, version: &str) -> Result<Report, ConnectorError> {
    let graph = GraphClient::new(doors, config);
    graph
        .ensure_token()
        .map_err(|e| e.into_connector("acquiring a token"))?;
    let mut report = match config.sync_mode {
        SyncMode::Delta => delta::run(&graph, config, version)?,
        SyncMode::Created | SyncMode::Full => created::run(&graph, config, version)?,
    };
    report.requests = graph.requests();
    // One warning counting and naming what was mended (graph/intake.rs).
    if let (_, Some(warning)) = graph.mended() {
        report.warn(doors, warning);
    }
    if graph.retries() > 0 {
        doors.log(
            Level::Info,
            &format!(
                "{} requests were retried (throttling or transient failures)",
                graph.retries()
            ),
        );
    }
    Ok(report)
}
