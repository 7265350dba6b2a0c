//! Incremental runs (h-sync's module; this is the skeleton's stub): the `lastUpdated` search
//! with its overlap window, the System Log polling cursor, changed users read by id.

use connector_sdk::state::Cell;
use connector_sdk::ConnectorError;
use serde::{Deserialize, Serialize};

use crate::cursor::Cursor;
use crate::Ctx;
use connector_sdk::doors::Doors;

/// Where incremental runs stand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    /// The `lastUpdated` lower bound of the next run (before the overlap).
    pub watermark_ms: i64,
    /// The System Log polling `next` link (None: start at `log_since_ms`).
    pub log_next: Option<String>,
    /// Where polling starts when `log_next` is None.
    pub log_since_ms: i64,
    /// When the log position was last current (retention check).
    pub log_at_ms: i64,
}

/// How an incremental run ended.
pub enum Outcome {
    /// Done: the cursor moved.
    Done,
    /// A full walk is needed; the warning says why.
    NeedsWalk(String),
}

/// An incremental run (stub: always asks for a walk).
pub fn run<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
) -> Result<Outcome, ConnectorError> {
    let _ = (ctx, cursor, cell);
    Ok(Outcome::NeedsWalk(
        "incremental runs are not built yet: a full walk instead".into(),
    ))
}
