//! The connector's one state cell, `okta/cursor` (format 2): the facts generation of the last
//! finished walk, the walk in flight, and the incremental position. Format 1 (`users/cursor`,
//! the first slice's users walk) is not read: its org starts a new walk.

use connector_sdk::doors::Doors;
use connector_sdk::state::{Cell, Stored};
use connector_sdk::ConnectorError;
use serde::{Deserialize, Serialize};

/// The key of the cell.
pub const KEY: &str = "okta/cursor";
/// The format stamp of the cell's value.
pub const FORMAT: u32 = 2;

/// Where the connector stands.
#[derive(Default, Serialize, Deserialize)]
pub struct Cursor {
    /// The facts generation of the last finished walk (0: none).
    pub gen: u32,
    /// A full walk in flight.
    pub walk: Option<crate::walk::WalkState>,
    /// The incremental position (None until a walk finished).
    pub sync: Option<crate::incremental::SyncState>,
}

/// Reads the cell: its value, or a default one (a new walk) when absent, of another format or
/// damaged; the cell is then written at the version it was read at.
pub fn read<D: Doors>(doors: &D) -> Result<(Cell, Cursor), ConnectorError> {
    let (cell, stored) = Cell::read(doors, KEY, FORMAT, "the Okta cursor")?;
    let cursor = match stored {
        Stored::Value(c) => c,
        Stored::Absent | Stored::Unreadable => Cursor::default(),
    };
    Ok((cell, cursor))
}
