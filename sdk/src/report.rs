//! The counts of a run, what the host logs and returns for it (the WIT `run-report`).
//!
//! Why it exists: every connector reports the same counts — items seen, events emitted,
//! items skipped or partial, requests — and warnings a person should read; a run collects
//! them as it goes and the export glue hands them to the host.

use crate::doors::{Doors, Level};

/// The counts of a run (mirror of `run-report`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Items (and removals) read from the provider.
    pub items_seen: u64,
    /// Events emitted.
    pub events_emitted: u64,
    /// Items skipped: no id, or an event too large for the host (named in a warning).
    pub items_skipped: u64,
    /// Items emitted without part of their enrichment.
    pub items_partial: u64,
    /// HTTP requests.
    pub requests: u64,
    /// Whether every item was read (not only changes).
    pub full_sync: bool,
    /// Warnings, one line each.
    pub warnings: Vec<String>,
    /// Optional data not collected.
    pub unavailable: Vec<String>,
}

impl Report {
    /// Counts what [`crate::emit::emit_bounded`] did with a page: events accepted, items
    /// skipped, each skipped one named in a warning.
    pub fn emitted<D: Doors + ?Sized>(&mut self, doors: &D, out: crate::emit::Emitted) {
        self.events_emitted += out.accepted;
        self.items_skipped += out.skipped.len() as u64;
        for (id, why) in out.skipped {
            self.warn(doors, format!("item {id} was skipped: {why}"));
        }
    }

    /// Logs a warning and keeps it for the run report.
    pub fn warn<D: Doors + ?Sized>(&mut self, doors: &D, msg: String) {
        doors.log(Level::Warn, &msg);
        self.warnings.push(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doors::fake::{json, FakeDoors};

    #[test]
    fn a_warning_is_kept_for_the_report() {
        let doors = FakeDoors::new(|_, _| json(200, &[], "{}"));
        let mut report = Report::default();
        report.warn(&doors, "page 3 was mended".into());
        assert_eq!(report.warnings, ["page 3 was mended"]);
        let out = crate::emit::Emitted {
            accepted: 7,
            skipped: vec![("u9".into(), "too large".into())],
            refused: 0,
        };
        report.emitted(&doors, out);
        assert_eq!((report.events_emitted, report.items_skipped), (7, 1));
        assert_eq!(report.warnings[1], "item u9 was skipped: too large");
    }
}
