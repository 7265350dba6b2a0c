//! The delta sync's stored place: the [`DeltaCursor`] in its compare-and-set state cell
//! (`connector_sdk::state::Cell`), read once per run and committed after every page, alone
//! or with the writes it relies on. Both the delta rounds (`delta.rs`) and the staged walk
//! (`staged.rs`) move it; neither owns it.

use serde::{Deserialize, Serialize};

use super::walk::Walk;
use crate::graph::GraphClient;
use connector_sdk::doors::{Doors, KvWrite, Level};
use connector_sdk::error::ConnectorError;
use connector_sdk::state::{Cell, Stored};

/// Checkpoint key of the delta cursor (the host namespaces it per tenant).
pub const DELTA_CURSOR_KEY: &str = "users/delta-cursor";

/// Format version of [`DeltaCursor`] (the stamp of its state cell).
pub(super) const FORMAT: u32 = 1;

/// Which round the connector is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Round {
    /// Walking every user.
    #[default]
    Full,
    /// Following changes.
    Changes,
}

/// A sign-in sweep in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Next page to read (None: the first).
    pub next: Option<String>,
    /// Users who signed in after this time (ms) are emitted.
    pub since_ms: i64,
    /// When the sweep started (becomes `last_sweep_ms` when it ends).
    pub started_ms: i64,
}

/// The stored place of the delta sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaCursor {
    /// Current round.
    pub round: Round,
    /// Next URL to GET: a next link inside a round, or the delta link between rounds.
    /// None in a full round means "start one".
    pub link: Option<String>,
    /// When the current full round started, ms.
    pub round_started_ms: i64,
    /// When the last completed full round started, ms (0: never).
    pub last_full_ms: i64,
    /// When the last completed sign-in sweep started, ms (0: never).
    pub last_sweep_ms: i64,
    /// A sign-in sweep in progress.
    pub sweep: Option<Sweep>,
    /// When the last successful run finished, ms.
    pub last_success_ms: i64,
    /// The `/groups/delta` link of the last full walk: membership changes since then, which
    /// `users/delta` never reports.
    #[serde(default)]
    pub groups_link: Option<String>,
    /// User properties Graph refused in a delta `$select` (dropped from later full rounds).
    #[serde(default)]
    pub dropped_properties: Vec<String>,
    /// When this tenant's recent reports-class requests were sent (ms), per limit window:
    /// Graph's windows span runs, so the next run paces from here.
    #[serde(default)]
    pub reports_sent: [Vec<i64>; 2],
    /// The full walk in flight (`staged.rs`): its phase, the phase's next link, what it
    /// staged. None between walks.
    #[serde(default)]
    pub walk: Option<Walk>,
    /// The facts generation incremental runs read (`facts.rs`): the last finished walk's.
    #[serde(default)]
    pub facts_gen: Option<String>,
    /// Shards of that generation's admins (users holding a role at the last run, compared
    /// with a fresh read of the assignments to see whose roles changed).
    #[serde(default)]
    pub admin_shards: u32,
    /// Checkpoint prefixes finished walks left to delete (old generations, records).
    #[serde(default)]
    pub cleanup: Vec<String>,
    /// Users of the tenant as the last walk counted them (what bounds per-user listings).
    #[serde(default)]
    pub users_known: u64,
    /// Graph refused `$top` on the registration report: it is no longer sent.
    #[serde(default)]
    pub registration_top_refused: bool,
}

/// The cursor as stored, in its compare-and-set state cell (`connector_sdk::state`).
pub(super) struct Place<'g, 'a, D: Doors> {
    graph: &'g GraphClient<'a, D>,
    pub(super) cursor: DeltaCursor,
    cell: Cell,
}

impl<'g, 'a, D: Doors> Place<'g, 'a, D> {
    pub(super) fn load(graph: &'g GraphClient<'a, D>) -> Result<Place<'g, 'a, D>, ConnectorError> {
        let doors = graph.doors();
        let (cell, stored) = Cell::read(doors, DELTA_CURSOR_KEY, FORMAT, "the delta cursor")?;
        let cursor = match stored {
            Stored::Value(cursor) => cursor,
            Stored::Absent => DeltaCursor::default(),
            Stored::Unreadable => {
                doors.log(
                    Level::Warn,
                    "the stored delta cursor is unreadable: this run is a full sync and replaces it",
                );
                DeltaCursor::default()
            }
        };
        graph.remember_reports(&cursor.reports_sent);
        Ok(Place {
            graph,
            cursor,
            cell,
        })
    }

    /// Drops the stored links this configuration cannot follow — after `graph_endpoint`
    /// changed, an emulator came back on another port, or a cursor written by an older
    /// version that stored links unchecked — and starts a full round instead of failing every
    /// run on them. Returns the warning to report, naming the link's origin.
    pub(super) fn drop_unusable_links(&mut self, now: i64) -> Option<String> {
        let c = &self.cursor;
        let stored = [
            c.link.as_deref(),
            c.groups_link.as_deref(),
            c.sweep.as_ref().and_then(|s| s.next.as_deref()),
            c.walk.as_ref().and_then(|w| w.groups_link.as_deref()),
        ];
        let walk_links = c
            .walk
            .iter()
            .flat_map(|w| w.sources.iter().filter_map(|l| l.link.as_deref()));
        let bad = stored
            .into_iter()
            .flatten()
            .chain(walk_links)
            .find_map(|l| self.graph.check_link(l).err())?;
        let was_changes = c.round == Round::Changes;
        start_full(&mut self.cursor, now);
        self.cursor.groups_link = None;
        self.cursor.sweep = None;
        Some(format!(
            "the stored cursor holds a link this configuration cannot follow ({bad}): walking every user again (a full sync){}",
            if was_changes {
                "; users deleted since the last run cannot be reported as deleted"
            } else {
                ""
            }
        ))
    }

    /// The doors.
    pub(super) fn doors(&self) -> &'g D {
        self.graph.doors()
    }

    /// Stores the cursor together with `writes`, atomically (one `set-many`); the host makes
    /// every event emitted so far durable first.
    pub(super) fn commit_with(&mut self, writes: Vec<KvWrite>) -> Result<(), ConnectorError> {
        self.cursor.reports_sent = self.graph.reports_history();
        self.cell
            .write_with(self.graph.doors(), &self.cursor, writes)
    }

    /// Stores the cursor; the host makes every event emitted so far durable first.
    pub(super) fn commit(&mut self) -> Result<(), ConnectorError> {
        self.commit_with(Vec::new())
    }
}

/// Starts a full round: a walk in flight is abandoned and what it staged scheduled for
/// deletion.
pub(super) fn start_full(cursor: &mut DeltaCursor, now: i64) {
    cursor.round = Round::Full;
    cursor.link = None;
    cursor.round_started_ms = now;
    // A walk in flight is abandoned: what it staged is deleted.
    if let Some(walk) = cursor.walk.take() {
        if cursor.facts_gen.as_deref() != Some(walk.gen.as_str()) {
            cursor
                .cleanup
                .push(crate::facts::generation_prefix(&walk.gen));
        }
        cursor.cleanup.push(Walk::records_prefix(&walk.gen));
    }
}
