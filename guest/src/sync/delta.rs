//! `sync_mode = "delta"`: incremental truth from `users/delta`, resumable page by page.
//!
//! The cursor says which round the connector is in and the next URL to GET:
//!
//! - **full**: walking the whole tenant (first run, a refresh, or after the delta token
//!   expired). The bulk sources (roles, registration report) and a sign-in sweep are read
//!   first, then each delta page is enriched, emitted and committed with its next link; the
//!   last page brings the delta link and the round becomes `changes`.
//! - **changes**: later runs GET the stored link and receive users created, changed or
//!   removed since; each page is emitted (removals as deletion events) and committed.
//!
//! Every `refresh_hours` a run first drains the pending changes (so deletions are reported)
//! and then walks the whole tenant again: memberships, roles and MFA are not user
//! properties, delta does not report their changes, and the refresh is what bounds their
//! staleness. Sign-in activity cannot be selected in delta; a sweep every
//! `sign_in_sweep_hours` lists users with `signInActivity` and emits those who signed in
//! since the previous sweep. A 410 / `syncStateNotFound` / `resyncRequired` starts a full
//! round again, with a warning.
//!
//! Killed at any point, the next run resumes from the last committed page: events of the
//! page in flight may be delivered twice, none are lost.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Entry, Pipeline, Report, USER_SELECT};
use crate::config::{Config, SignIn};
use crate::doors::{Doors, Level};
use crate::enrich::is_not_licensed;
use crate::error::ConnectorError;
use crate::graph::{GraphClient, GraphError, GraphGet};

/// Checkpoint key of the delta cursor (the host namespaces it per tenant).
pub const DELTA_CURSOR_KEY: &str = "users/delta-cursor";

/// Format version of [`DeltaCursor`].
const FORMAT: u32 = 1;

/// Graph's sign-in data lags the sign-in; a sweep looks this far behind the previous one.
const SIGN_IN_LAG_MS: i64 = 60 * 60 * 1000;

const HOUR_MS: i64 = 60 * 60 * 1000;

/// Error codes meaning "the delta token is no good: start over".
const RESYNC_CODES: &[&str] = &["syncStateNotFound", "resyncRequired", "syncStateInvalid"];

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
    /// Format version of this record.
    pub format: u32,
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
}

/// How a walk of delta pages ended early.
enum Stop {
    /// The delta or skip token expired: start a full round.
    Resync(String),
    /// Anything else: the run fails.
    Fail(ConnectorError),
}

impl From<ConnectorError> for Stop {
    fn from(e: ConnectorError) -> Self {
        Stop::Fail(e)
    }
}

/// The cursor as stored and its version for compare-and-set.
struct Place<'d, D: Doors> {
    doors: &'d D,
    cursor: DeltaCursor,
    version: Option<u64>,
}

impl<D: Doors> Place<'_, D> {
    fn load(doors: &D) -> Result<Place<'_, D>, ConnectorError> {
        match doors.kv_get(DELTA_CURSOR_KEY) {
            Ok(None) => Ok(Place {
                doors,
                cursor: DeltaCursor::default(),
                version: None,
            }),
            Ok(Some((bytes, version))) => {
                let cursor = match serde_json::from_slice::<DeltaCursor>(&bytes) {
                    Ok(c) if c.format == FORMAT => c,
                    _ => {
                        doors.log(
                            Level::Warn,
                            "the stored delta cursor is unreadable: this run is a full sync and replaces it",
                        );
                        DeltaCursor::default()
                    }
                };
                Ok(Place {
                    doors,
                    cursor,
                    version: Some(version),
                })
            }
            Err(e) => Err(ConnectorError::Host(format!(
                "reading the delta cursor: {e}"
            ))),
        }
    }

    /// Stores the cursor; the host makes every event emitted so far durable first.
    fn commit(&mut self) -> Result<(), ConnectorError> {
        self.cursor.format = FORMAT;
        let bytes = serde_json::to_vec(&self.cursor)
            .map_err(|e| ConnectorError::Host(format!("encoding the delta cursor: {e}")))?;
        let v = self
            .doors
            .kv_set(DELTA_CURSOR_KEY, &bytes, self.version)
            .map_err(|e| ConnectorError::Host(format!("committing the delta cursor: {e}")))?;
        self.version = Some(v);
        Ok(())
    }
}

/// Runs one delta-mode sync.
pub fn run<D: Doors>(
    graph: &GraphClient<'_, D>,
    config: &Config,
    version: &str,
) -> Result<Report, ConnectorError> {
    let doors = graph.doors();
    let now = doors.now_ms();
    let mut place = Place::load(doors)?;
    let mut p = Pipeline::new(graph, config, version);

    // 1. Changes since the last run (also before a refresh, so removals are reported).
    if place.cursor.round == Round::Changes {
        match place.cursor.link.clone() {
            Some(link) => match walk(&mut p, &mut place, Round::Changes, link) {
                Ok(()) => {}
                Err(Stop::Resync(why)) => {
                    resync_warning(&mut p, config, &why);
                    start_full(&mut place.cursor, now);
                }
                Err(Stop::Fail(e)) => return Err(e),
            },
            None => start_full(&mut place.cursor, now),
        }
        let age = now - place.cursor.last_full_ms;
        if place.cursor.round == Round::Changes
            && config.refresh_hours > 0
            && age >= config.refresh_hours as i64 * HOUR_MS
        {
            doors.log(
                Level::Info,
                &format!(
                    "the last full walk is {} h old (refresh_hours = {}): walking every user again for fresh groups, roles and MFA",
                    age / HOUR_MS,
                    config.refresh_hours
                ),
            );
            start_full(&mut place.cursor, now);
        }
    }

    // 2. A full round: fresh, or resumed from its last committed page.
    let mut swept_in_full_round = false;
    if place.cursor.round == Round::Full {
        p.report.full_sync = place.cursor.link.is_none();
        if place.cursor.link.is_none() {
            place.cursor.round_started_ms = now;
        }
        if config.sign_in == SignIn::Auto {
            p.sign_ins = read_sign_ins(&mut p)?;
            swept_in_full_round = p.sign_ins.is_some();
        }
        let mut restarted = false;
        loop {
            let start = place
                .cursor
                .link
                .clone()
                .unwrap_or_else(|| fresh_delta_url(config));
            match walk(&mut p, &mut place, Round::Full, start) {
                Ok(()) => break,
                Err(Stop::Resync(why)) if !restarted => {
                    resync_warning(&mut p, config, &why);
                    start_full(&mut place.cursor, doors.now_ms());
                    p.report.full_sync = true;
                    restarted = true;
                }
                Err(Stop::Resync(why)) => {
                    return Err(ConnectorError::Upstream(format!(
                        "users/delta refused a fresh full round too ({why}); run again later"
                    )))
                }
                Err(Stop::Fail(e)) => return Err(e),
            }
        }
        if swept_in_full_round {
            place.cursor.last_sweep_ms = place.cursor.round_started_ms;
            place.cursor.sweep = None;
        }
        place.commit()?;
    }

    // 3. The sign-in sweep, on its own cadence.
    let sweep_due = place.cursor.sweep.is_some()
        || now - place.cursor.last_sweep_ms >= config.sign_in_sweep_hours as i64 * HOUR_MS;
    if config.sign_in == SignIn::Auto && sweep_due && !swept_in_full_round {
        sweep(&mut p, &mut place, now)?;
    }

    place.cursor.last_success_ms = doors.now_ms();
    place.commit()?;
    p.finish();
    Ok(p.report)
}

fn start_full(cursor: &mut DeltaCursor, now: i64) {
    cursor.round = Round::Full;
    cursor.link = None;
    cursor.round_started_ms = now;
}

fn resync_warning<D: Doors>(p: &mut Pipeline<'_, '_, D>, config: &Config, why: &str) {
    let doors = p.graph.doors();
    p.report.warn(
        doors,
        format!(
            "the users/delta token of tenant '{}' expired or was refused ({why}): walking every user again (a full sync); users deleted since the last run cannot be reported as deleted",
            config.tenant_id
        ),
    );
}

/// The first URL of a fresh delta round.
pub fn fresh_delta_url(config: &Config) -> String {
    config.graph_url(&format!("/users/delta?$select={USER_SELECT}"))
}

fn is_resync(e: &GraphError) -> bool {
    e.status() == Some(410) || RESYNC_CODES.contains(&e.code())
}

/// GETs delta pages from `url` until the delta link, emitting and committing each page.
fn walk<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, D>,
    round: Round,
    mut url: String,
) -> Result<(), Stop> {
    let page_size = p.config.page_size;
    let mut page_no = 0u64;
    loop {
        page_no += 1;
        let get = GraphGet {
            url,
            headers: vec![("Prefer".into(), format!("odata.maxpagesize={page_size}"))],
        };
        let page = match p.graph.page(get) {
            Ok(page) => page,
            Err(e) if is_resync(&e) => return Err(Stop::Resync(e.to_string())),
            Err(e) => {
                return Err(Stop::Fail(e.into_connector(&format!(
                    "reading users/delta (page {page_no} of this run)"
                ))))
            }
        };
        let entries = page.items.into_iter().map(Entry::from_delta).collect();
        p.deliver(entries)?;
        match (page.next_link, page.delta_link) {
            (Some(next), _) => {
                place.cursor.round = round;
                place.cursor.link = Some(next.clone());
                place.commit()?;
                url = next;
            }
            (None, Some(delta)) => {
                place.cursor.round = Round::Changes;
                place.cursor.link = Some(delta);
                if round == Round::Full {
                    place.cursor.last_full_ms = place.cursor.round_started_ms;
                }
                place.commit()?;
                return Ok(());
            }
            (None, None) => {
                return Err(Stop::Fail(ConnectorError::Upstream(format!(
                    "a users/delta page (page {page_no} of this run) has neither @odata.nextLink nor @odata.deltaLink; run again later"
                ))))
            }
        }
    }
}

fn sweep_url(config: &Config, select: &str) -> String {
    config.graph_url(&format!(
        "/users?$select={select}&$top={}",
        config.page_size.min(500)
    ))
}

/// Reads every user's `signInActivity` (for a full round). None when the tenant is not
/// licensed for it (warned).
fn read_sign_ins<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
) -> Result<Option<HashMap<String, Value>>, ConnectorError> {
    let mut out = HashMap::new();
    let mut next = Some(sweep_url(p.config, "id,signInActivity"));
    while let Some(url) = next.take() {
        let page = match p.graph.page(GraphGet::new(url)) {
            Ok(page) => page,
            Err(e) if is_not_licensed(&e) => {
                p.sign_in_unavailable(&e);
                return Ok(None);
            }
            Err(e) => return Err(e.into_connector("reading sign-in activity")),
        };
        for item in page.items {
            // Only the field the mapping reads: this map holds every user of the tenant.
            if let (Some(id), Some(last)) = (
                item.get("id").and_then(Value::as_str),
                item.pointer("/signInActivity/lastSignInDateTime"),
            ) {
                out.insert(
                    id.to_string(),
                    serde_json::json!({ "lastSignInDateTime": last }),
                );
            }
        }
        next = page.next_link;
    }
    Ok(Some(out))
}

/// Lists users with `signInActivity` and emits those who signed in since the last sweep,
/// committing after each page.
fn sweep<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, D>,
    now: i64,
) -> Result<(), ConnectorError> {
    let state = place.cursor.sweep.clone().unwrap_or(Sweep {
        next: None,
        since_ms: place.cursor.last_sweep_ms,
        started_ms: now,
    });
    let threshold = if state.since_ms > 0 {
        state.since_ms - SIGN_IN_LAG_MS
    } else {
        i64::MIN
    };
    let mut next = Some(
        state
            .next
            .clone()
            .unwrap_or_else(|| sweep_url(p.config, &format!("{USER_SELECT},signInActivity"))),
    );
    while let Some(url) = next.take() {
        let page = match p.graph.page(GraphGet::new(url)) {
            Ok(page) => page,
            Err(e) if is_not_licensed(&e) => {
                p.sign_in_unavailable(&e);
                place.cursor.sweep = None;
                return Ok(());
            }
            Err(e) => return Err(e.into_connector("sweeping sign-in activity")),
        };
        let entries = page
            .items
            .into_iter()
            .filter(|u| last_sign_in_ms(u).is_some_and(|t| t > threshold))
            .map(Entry::Upsert)
            .collect();
        p.deliver(entries)?;
        next = page.next_link;
        place.cursor.sweep = Some(Sweep {
            next: next.clone(),
            ..state.clone()
        });
        place.commit()?;
    }
    place.cursor.sweep = None;
    place.cursor.last_sweep_ms = state.started_ms;
    Ok(())
}

/// `signInActivity.lastSignInDateTime` in ms; None when absent or "never" (year 1).
fn last_sign_in_ms(user: &Value) -> Option<i64> {
    user.get("signInActivity")?
        .get("lastSignInDateTime")?
        .as_str()
        .and_then(crate::time::parse_graph_time_ms)
        .filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_resync_codes_are_recognised() {
        let c = DeltaCursor {
            format: FORMAT,
            round: Round::Changes,
            link: Some("https://graph/v1.0/users/delta?$deltatoken=x".into()),
            round_started_ms: 1,
            last_full_ms: 1,
            last_sweep_ms: 2,
            sweep: Some(Sweep {
                next: None,
                since_ms: 2,
                started_ms: 3,
            }),
            last_success_ms: 4,
        };
        let bytes = serde_json::to_vec(&c).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"round\":\"changes\""));
        assert_eq!(serde_json::from_slice::<DeltaCursor>(&bytes).unwrap(), c);
        let gone = GraphError::Status {
            status: 410,
            code: "".into(),
            message: "".into(),
        };
        let resync = GraphError::Status {
            status: 400,
            code: "resyncRequired".into(),
            message: "".into(),
        };
        let other = GraphError::Status {
            status: 400,
            code: "BadRequest".into(),
            message: "".into(),
        };
        assert!(is_resync(&gone) && is_resync(&resync) && !is_resync(&other));
    }

    #[test]
    fn sign_in_times_ignore_never() {
        let u =
            serde_json::json!({"signInActivity": {"lastSignInDateTime": "2025-01-02T03:04:05Z"}});
        assert_eq!(last_sign_in_ms(&u), Some(1_735_787_045_000));
        let never =
            serde_json::json!({"signInActivity": {"lastSignInDateTime": "0001-01-01T00:00:00Z"}});
        assert_eq!(last_sign_in_ms(&never), None);
        assert_eq!(last_sign_in_ms(&serde_json::json!({})), None);
    }
}
