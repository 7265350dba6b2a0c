//! The run-status record: what the host keeps per tenant about its runs, in a host-owned
//! table of the tenant's checkpoint store (`host_run_status`; [`super::CheckpointStore::record_run`]),
//! and how a run's end is merged into it ([`merge`]). Where it is written and read, and what
//! "completed" means for a phase: [`crate::status`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::doors::log::Progress;

/// The phase whose completion is shown as "last sign-in sweep".
pub const SIGN_IN_PHASE: &str = "sign-in data";

/// Longest error line kept in a record, characters.
pub const MAX_ERROR_CHARS: usize = 500;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The run succeeded.
    Succeeded,
    /// The run failed.
    Failed,
}

impl Outcome {
    /// `succeeded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}

/// The progress a run kept, as recorded (the fields of [`Progress`] an operator reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProgress {
    /// The phase.
    pub phase: String,
    /// Pages of the phase done in the current walk.
    pub pages_done: u64,
    /// Pages the phase is expected to take, when known.
    pub pages_expected: Option<u64>,
    /// Records of the phase done.
    pub items_done: u64,
    /// The connector's line for the operator.
    pub detail: String,
}

impl From<&Progress> for RecordedProgress {
    fn from(p: &Progress) -> Self {
        RecordedProgress {
            phase: p.phase.clone(),
            pages_done: p.pages_done,
            pages_expected: p.pages_expected,
            items_done: p.items_done,
            detail: p.detail.clone(),
        }
    }
}

impl std::fmt::Display for RecordedProgress {
    /// `users 12/~40 pages, 11900 items`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.phase, self.pages_done)?;
        if let Some(expected) = self.pages_expected {
            write!(f, "/~{expected}")?;
        }
        write!(f, " pages, {} items", self.items_done)
    }
}

/// One run as recorded: times in milliseconds since the Unix epoch (the host's clock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When the run started.
    pub started_ms: i64,
    /// When it ended.
    pub ended_ms: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, one line (at most [`MAX_ERROR_CHARS`] characters), when it failed.
    pub error: Option<String>,
    /// The failure's kind (`config`, `auth`, `upstream`, …: the `/metrics` label).
    pub kind: Option<String>,
    /// A full sync (true) or an incremental one (false); unknown for a failed run.
    pub full_sync: Option<bool>,
    /// The last `log.progress` the run kept.
    pub progress: Option<RecordedProgress>,
}

/// What a run hands to the store: the run, and the phases it named in its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEnd {
    /// The run.
    pub run: LastRun,
    /// Every phase the run named in a progress report.
    pub phases: Vec<String>,
}

/// A tenant's record: the last run and what the runs before it established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The last run.
    pub last_run: LastRun,
    /// When the last successful run ended.
    pub last_success_ms: Option<i64>,
    /// When the last successful full sync ended.
    pub last_full_walk_ms: Option<i64>,
    /// Per phase, when a successful run that named it last ended.
    pub phases_completed: BTreeMap<String, i64>,
    /// Failed runs since the last success.
    pub consecutive_failures: u32,
    /// Runs recorded.
    pub runs: u64,
}

impl TenantRecord {
    /// When the phase [`SIGN_IN_PHASE`] last completed.
    pub fn last_sign_in_sweep_ms(&self) -> Option<i64> {
        self.phases_completed.get(SIGN_IN_PHASE).copied()
    }
}

/// `previous` with `end` applied; `None` when `end` is older than the stored last run (a
/// late writer: the stored record stays).
pub fn merge(previous: Option<TenantRecord>, end: &RunEnd) -> Option<TenantRecord> {
    let run = &end.run;
    let mut record = match previous {
        Some(p) if p.last_run.started_ms > run.started_ms => return None,
        Some(p) => p,
        None => TenantRecord {
            last_run: run.clone(),
            last_success_ms: None,
            last_full_walk_ms: None,
            phases_completed: BTreeMap::new(),
            consecutive_failures: 0,
            runs: 0,
        },
    };
    record.last_run = run.clone();
    record.runs = record.runs.saturating_add(1);
    match run.outcome {
        Outcome::Succeeded => {
            record.consecutive_failures = 0;
            record.last_success_ms = Some(run.ended_ms);
            if run.full_sync == Some(true) {
                record.last_full_walk_ms = Some(run.ended_ms);
            }
            for phase in &end.phases {
                if record.phases_completed.len() < crate::doors::MAX_RUN_PHASES
                    || record.phases_completed.contains_key(phase)
                {
                    record.phases_completed.insert(phase.clone(), run.ended_ms);
                }
            }
        }
        Outcome::Failed => {
            record.consecutive_failures = record.consecutive_failures.saturating_add(1);
        }
    }
    Some(record)
}

/// Milliseconds since the Unix epoch.
pub fn millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The instant `ms` after the Unix epoch.
pub fn instant(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// The first line of `text`, at most [`MAX_ERROR_CHARS`] characters.
pub fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(MAX_ERROR_CHARS).collect();
    if line.chars().count() > MAX_ERROR_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(started: i64, outcome: Outcome, full: Option<bool>, phases: &[&str]) -> RunEnd {
        RunEnd {
            run: LastRun {
                started_ms: started,
                ended_ms: started + 10,
                outcome,
                error: (outcome == Outcome::Failed).then(|| "boom".into()),
                kind: None,
                full_sync: full,
                progress: None,
            },
            phases: phases.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_success_completes_its_phases_a_failure_completes_none() {
        let full = merge(
            None,
            &end(
                100,
                Outcome::Succeeded,
                Some(true),
                &["sign-in data", "users"],
            ),
        )
        .unwrap();
        assert_eq!(full.last_full_walk_ms, Some(110));
        assert_eq!(full.last_sign_in_sweep_ms(), Some(110));
        assert_eq!(full.runs, 1);
        let failed = merge(
            Some(full),
            &end(200, Outcome::Failed, None, &["sign-in data"]),
        )
        .unwrap();
        assert_eq!(failed.consecutive_failures, 1);
        assert_eq!(
            failed.last_sign_in_sweep_ms(),
            Some(110),
            "a failed run completes no phase"
        );
        assert_eq!(failed.last_run.error.as_deref(), Some("boom"));
        let again = merge(Some(failed.clone()), &end(300, Outcome::Failed, None, &[])).unwrap();
        assert_eq!(again.consecutive_failures, 2);
        let incremental = merge(
            Some(again),
            &end(400, Outcome::Succeeded, Some(false), &["changes"]),
        )
        .unwrap();
        assert_eq!(incremental.consecutive_failures, 0);
        assert_eq!(incremental.last_full_walk_ms, Some(110), "not a full walk");
        assert_eq!(incremental.phases_completed["changes"], 410);
        assert_eq!(incremental.last_success_ms, Some(410));
        assert_eq!(incremental.runs, 4);
        // A late writer (a run that started before the stored one) changes nothing.
        assert_eq!(
            merge(Some(incremental), &end(350, Outcome::Failed, None, &[])),
            None
        );
    }

    #[test]
    fn the_recorded_kind_of_a_failure_is_the_metrics_kind_label() {
        use crate::error::{ConnectorErrorKind, RunError};
        use crate::metrics::FailureKind;
        let t = || "t".to_string();
        let m = || "m".to_string();
        let mut errors = vec![
            RunError::Config {
                tenant: t(),
                message: m(),
            },
            RunError::Secret {
                tenant: t(),
                name: m(),
                message: m(),
            },
            RunError::Timeout {
                tenant: t(),
                seconds: 1,
                progress: None,
            },
            RunError::Host {
                tenant: t(),
                message: m(),
            },
            RunError::Trap {
                tenant: t(),
                message: m(),
                progress: None,
            },
        ];
        for kind in [
            ConnectorErrorKind::Config,
            ConnectorErrorKind::Auth,
            ConnectorErrorKind::Permission,
            ConnectorErrorKind::Upstream,
            ConnectorErrorKind::Host,
        ] {
            errors.push(RunError::Connector {
                tenant: t(),
                kind,
                message: m(),
            });
        }
        for e in &errors {
            assert_eq!(e.kind_label(), FailureKind::of(e).as_str(), "{e:?}");
        }
    }

    #[test]
    fn an_error_is_kept_as_one_bounded_line() {
        assert_eq!(one_line("first\nsecond"), "first");
        let long = "x".repeat(MAX_ERROR_CHARS + 10);
        let kept = one_line(&long);
        assert_eq!(kept.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(
            instant(millis(UNIX_EPOCH + Duration::from_millis(5))),
            UNIX_EPOCH + Duration::from_millis(5)
        );
    }
}
