//! Incremental runs (OKTA.md, "Sync strategy", "Incremental"): what changed since the last
//! run, from two sources, each read page by page and committed page by page:
//!
//! 1. the users search `lastUpdated gt "<W − 5 min>"`, sorted by `lastUpdated` ascending —
//!    profile and status changes (a change bumps `lastUpdated`); the search reads an
//!    eventually consistent index ("The `search` parameter results are sourced from an
//!    eventually consistent datasource and may not reflect the latest information", spec
//!    `listUsers`), hence the 5-minute overlap and a de-duplication by (id, `lastUpdated`)
//!    of the users already emitted inside it;
//! 2. the System Log polling query (`syslog.rs`) — deletions, and what does not bump
//!    `lastUpdated` (OKTA.md "Users": "Whether group, role or factor changes bump
//!    `lastUpdated` is not documented: assume not"): memberships, privileges, factors.
//!
//! Every changed user is read by id — consistent, not the index ("Use an ID lookup for
//! records that you update to ensure your results contain the latest data", spec
//! `listUsers` `search`) — and emitted complete (`enrich::read_complete`). A user the log
//! says was deleted becomes a deletion event only once `GET /api/v1/users/{id}` answers 404
//! (OKTA.md "Deleted users"). "Now" is the org's `Date`, never the local clock.
//!
//! Nothing is lost: a page's events are emitted before the position passing it is
//! committed, so a run stopped anywhere resumes at the page in flight (a user may be emitted
//! twice, never missed).

use std::collections::{HashMap, HashSet};

use connector_sdk::doors::{Doors, Level, Progress};
use connector_sdk::paging::{first_line, Trail};
use connector_sdk::state::Cell;
use connector_sdk::time::parse_rfc3339_ms;
use connector_sdk::{emit, ConnectorError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{next_link, path_of, upstream, Client};
use crate::cursor::Cursor;
use crate::enrich::{part, roles_of, seg, Part};
use crate::facts::{self, GroupFacts};
use crate::syslog::{self, Answer, Change};
use crate::{deleted, enrich, map, Ctx};

/// The overlap of the users search: the index lags "typically under a second" (OKTA.md,
/// "Users"); five minutes is the design's margin (OKTA.md, "Incremental").
pub const OVERLAP_MS: i64 = 5 * 60_000;

/// A log position last current longer ago than this forces a full walk: the System Log
/// keeps 90 days ("System Log data older than 90 days isn't returned", system-log-query
/// "Data retention"), and deletions in a gap cannot be reported; 85 days leaves a margin
/// (OKTA.md, "Incremental").
pub const MAX_LOG_AGE_MS: i64 = 85 * 24 * 3_600_000;

/// Most (id, `lastUpdated`) pairs kept for the overlap's de-duplication. Past it the oldest
/// are dropped: their users are read again next run, which costs requests, never events.
pub const MAX_EDGE: usize = 2_000;

/// Most admins remembered for the diff of the admin set; an org with more is left to the
/// System Log's privilege events alone.
pub const MAX_ADMINS: usize = 10_000;

/// Where incremental runs stand.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    /// The `lastUpdated` lower bound of the next run (before the overlap).
    pub watermark_ms: i64,
    /// The System Log polling `next` link (None: start at `log_since_ms`).
    pub log_next: Option<String>,
    /// Where polling starts when `log_next` is None.
    pub log_since_ms: i64,
    /// When the log position was last current (retention check): the `Date` of the last log
    /// answer.
    pub log_at_ms: i64,
    /// Users emitted inside the overlap of the next run, as (id, `lastUpdated` ms): one that
    /// comes again with the same `lastUpdated` is not read again. This field and `run` are
    /// left out of the stored form when empty: a cursor at rest reads as the contract's four
    /// fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edge: Vec<(String, i64)>,
    /// The run in flight (None: the next run starts a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunState>,
    /// The users holding a role directly at the last run, sorted (None: not known yet, the
    /// roles unreadable, or more than [`MAX_ADMINS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins: Option<Vec<String>>,
}

/// An incremental run in flight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The `Date` of the run's first answer: the watermark once the run is done.
    pub now_ms: i64,
    /// The users search page in flight (None: the first).
    pub users_next: Option<String>,
    /// Whether the users search is read to its end.
    pub users_done: bool,
    /// The next run's `edge`, gathered.
    pub edge: Vec<(String, i64)>,
}

/// How an incremental run ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Done: the cursor moved.
    Done,
    /// A full walk is needed; the warning says why.
    NeedsWalk(String),
}

/// An incremental run: the users search from `watermark − 5 min`, then the System Log from
/// its stored position, each page emitted then committed; the watermark moves when both
/// are read. `Outcome::NeedsWalk` (with its one-line warning) when the log position is
/// older than the log keeps, or the log cannot be read.
pub fn run<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
) -> Result<Outcome, ConnectorError> {
    let Some(mut sync) = cursor.sync.clone() else {
        return Ok(Outcome::NeedsWalk(
            "no incremental position: a full walk first".into(),
        ));
    };
    let org = ctx.config.org_url.clone();
    let inside = |u: &Option<String>| {
        u.as_deref()
            .is_none_or(|u| u.starts_with(&format!("{org}/")))
    };
    if !inside(&sync.log_next) || !sync.run.as_ref().is_none_or(|r| inside(&r.users_next)) {
        return Ok(Outcome::NeedsWalk(format!(
            "the stored incremental position is not in {org} (org_url changed?): a full walk of {org} instead"
        )));
    }
    let mut run = sync.run.take().unwrap_or_default();
    let mut memory = Memory {
        read: HashSet::new(),
        gen: cursor.gen,
    };
    if !run.users_done {
        if let Some(w) = users_phase(ctx, cursor, cell, &mut sync, &mut run, &mut memory)? {
            return Ok(Outcome::NeedsWalk(w));
        }
    }
    if let Some(w) = log_phase(ctx, cursor, cell, &mut sync, &mut run, &mut memory)? {
        return Ok(Outcome::NeedsWalk(w));
    }
    admins_diff(ctx, &mut sync, &mut run, &mut memory)?;
    // Both sources read: the watermark moves to the run's start, the overlap's users with it.
    sync.watermark_ms = run.now_ms.max(sync.watermark_ms);
    sync.edge = std::mem::take(&mut run.edge);
    sync.run = None;
    cursor.sync = Some(sync);
    cell.write(ctx.doors, &*cursor)?;
    Ok(Outcome::Done)
}

/// The admin set read again and compared with the last run's (OKTA.md, "Incremental":
/// "Admin set re-read each run and diffed"): a user who gained or lost its last directly
/// assigned role is read again and emitted, whatever the System Log said. The first run
/// after a walk only records the set. Unreadable (403: no `okta.roles.read`): forgotten.
fn admins_diff<D: Doors>(
    ctx: &mut Ctx<D>,
    sync: &mut SyncState,
    run: &mut RunState,
    memory: &mut Memory,
) -> Result<(), ConnectorError> {
    let Some(now) = admin_ids(&ctx.client, &ctx.config.org_url)? else {
        sync.admins = None;
        return Ok(());
    };
    if let Some(before) = &sync.admins {
        let before: HashSet<&String> = before.iter().collect();
        let after: HashSet<&String> = now.iter().collect();
        let mut changed: Vec<String> = before
            .symmetric_difference(&after)
            .filter(|id| !memory.read.contains(id.as_str()))
            .map(|id| id.to_string())
            .collect();
        changed.sort();
        let read = emit_users(ctx, memory.gen, &changed, &HashMap::new())?;
        remember(memory, run, read);
    }
    if now.len() > MAX_ADMINS {
        ctx.doors.log(
            Level::Info,
            &format!("{} users hold roles, more than the {MAX_ADMINS} compared between runs: role changes come from the System Log alone", now.len()),
        );
        sync.admins = None;
    } else {
        sync.admins = Some(now);
    }
    Ok(())
}

/// The ids of the users holding a role: `GET /api/v1/iam/assignees/users`, paged in the
/// body (`value`, `_links.next.href`; spec `listUsersWithRoleAssignments`,
/// `RoleAssignedUsers`; `limit` "Defaults to `100`"), sorted. None on 403 or 404.
fn admin_ids<D: Doors>(
    client: &Client<D>,
    org: &str,
) -> Result<Option<Vec<String>>, ConnectorError> {
    let first = format!("{org}/api/v1/iam/assignees/users?limit=100");
    let mut trail = Trail::starting_at(&first);
    let mut next = Some(first);
    let mut out = std::collections::BTreeSet::new();
    while let Some(url) = next.take() {
        let resp = client.get(&url)?;
        let body = match part(client, &url, &resp, |v| v.is_object().then(|| v.clone()))? {
            Part::Read(b) => b,
            Part::Refused | Part::Gone => return Ok(None),
        };
        let items = body["value"].as_array().cloned().unwrap_or_default();
        if let Some(link) = body["_links"]["next"]["href"].as_str() {
            if !link.starts_with(&format!("{org}/")) {
                return Err(upstream(
                    &url,
                    format!("the next link leaves the org ({})", first_line(link)),
                ));
            }
            trail.step(&items, link).map_err(|e| upstream(&url, e))?;
            next = Some(link.to_string());
        }
        out.extend(
            items
                .iter()
                .filter_map(|u| u["id"].as_str())
                .filter(|id| syslog::is_okta_id(id))
                .map(str::to_string),
        );
    }
    Ok(Some(out.into_iter().collect()))
}

/// Remembers users just emitted: read in this run, and, when their record's `lastUpdated`
/// falls inside the next run's overlap (after `run.now_ms − 5 min`), in the next run's
/// `edge`, so that the search does not bring them back unchanged — whichever source made
/// this run read them (the search lags; the log or the admin set may have come first).
fn remember(memory: &mut Memory, run: &mut RunState, read: Vec<(String, Option<i64>)>) {
    let from = run.now_ms.saturating_sub(OVERLAP_MS);
    for (id, updated) in read {
        if let Some(at) = updated.filter(|at| *at > from) {
            if !run.edge.iter().any(|(i, a)| *i == id && *a == at) {
                run.edge.push((id.clone(), at));
            }
        }
        memory.read.insert(id);
    }
    trim_edge(&mut run.edge);
}

/// What a run remembers while it goes (not stored: a resumed run only reads more).
struct Memory {
    /// Users read by id and emitted in this run (after `RunState::now_ms`).
    read: HashSet<String>,
    /// The facts generation whose group roles users are read with.
    gen: u32,
}

/// Writes the cursor with `sync` and `run` as they stand.
fn commit<D: Doors>(
    ctx: &Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    sync: &SyncState,
    run: &RunState,
) -> Result<(), ConnectorError> {
    let mut s = sync.clone();
    s.run = Some(run.clone());
    cursor.sync = Some(s);
    cell.write(ctx.doors, &*cursor)
}

/// The warning when the log position is too old at `now_ms` (the org's `Date`).
fn too_old(sync: &SyncState, now_ms: i64) -> Option<String> {
    let age = now_ms.saturating_sub(sync.log_at_ms);
    (age > MAX_LOG_AGE_MS).then(|| {
        format!(
            "the System Log was last read {} days ago, over 85 of the 90 days Okta keeps it: users deleted in the gap cannot be reported; a full walk instead",
            age / 86_400_000
        )
    })
}

/// The first users search of a run: changed after `since_ms`, oldest change first.
///
/// `search` on `lastUpdated` with `gt` and the time as the spec writes it
/// (`lastUpdated gt "2014-01-01T00:00:00.000Z"`, listUsers example
/// searchByLastUpdatedAfterDate), `sortBy=lastUpdated` ("Users with the same value for the
/// `sortBy` property are ordered by `id`") and `sortOrder=asc` (spec `listUsers`,
/// `querySortOrder`: `asc` or `desc`, search queries only); `search` also lists
/// DEPROVISIONED users ("Returned users include those with the `DEPROVISIONED` status").
pub fn users_url(org_url: &str, since_ms: i64, page_size: u32) -> String {
    let at = syslog::okta_time(since_ms);
    format!(
        "{org_url}/api/v1/users?search=lastUpdated%20gt%20%22{}%22&sortBy=lastUpdated&sortOrder=asc&limit={page_size}",
        at.replace(':', "%3A")
    )
}

/// Reads the users search to its end (or from the page in flight). Returns a warning when
/// a walk is needed instead.
fn users_phase<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    sync: &mut SyncState,
    run: &mut RunState,
    memory: &mut Memory,
) -> Result<Option<String>, ConnectorError> {
    let doors = ctx.doors;
    let org = ctx.config.org_url.clone();
    let first = users_url(
        &org,
        sync.watermark_ms.saturating_sub(OVERLAP_MS),
        ctx.config.page_size,
    );
    let mut url = run.users_next.clone().unwrap_or_else(|| first.clone());
    let mut trail = Trail::starting_at(&url);
    let edge: HashSet<(String, i64)> = sync.edge.iter().cloned().collect();
    let mut pages = 0u64;
    loop {
        let resp = ctx.client.get(&url)?;
        match resp.status {
            200 => {}
            401 => {
                return Err(ConnectorError::Auth(format!(
                    "{} answered 401: check the secret '{}'",
                    path_of(&url),
                    ctx.config.secret()
                )))
            }
            403 => {
                return Err(ConnectorError::Permission(format!(
                    "{} answered 403: the credential cannot read users; grant okta.users.read",
                    path_of(&url)
                )))
            }
            400 if url != first => {
                // A stored page Okta no longer takes (an expired cursor): the search again
                // from its start, which re-reads, never skips.
                doors.log(
                    Level::Warn,
                    &format!(
                        "{} answered 400: the users search starts again",
                        path_of(&url)
                    ),
                );
                url = first.clone();
                trail = Trail::starting_at(&url);
                continue;
            }
            s => return Err(upstream(&url, format!("status {s}"))),
        }
        let now = syslog::date_ms(&resp).unwrap_or_else(|| doors.now_ms());
        if run.now_ms == 0 {
            run.now_ms = now;
        }
        if let Some(w) = too_old(sync, now) {
            return Ok(Some(w));
        }
        let page: Vec<Value> = serde_json::from_slice(&resp.body)
            .map_err(|e| upstream(&url, format!("the users page is not a JSON array ({e})")))?;
        let link = next_link(&resp);
        if let Some(link) = &link {
            if !link.starts_with(&format!("{org}/")) {
                return Err(upstream(
                    &url,
                    format!("the next link leaves the org ({})", first_line(link)),
                ));
            }
            trail.step(&page, link).map_err(|e| upstream(&url, e))?;
        }
        let mut ids = Vec::new();
        for user in &page {
            let Some(id) = user["id"].as_str().filter(|id| syslog::is_okta_id(id)) else {
                ctx.report.items_skipped += 1;
                continue;
            };
            let updated = user["lastUpdated"].as_str().and_then(parse_rfc3339_ms);
            if let Some(at) = updated {
                if edge.contains(&(id.to_string(), at)) {
                    continue; // Emitted last run with this very lastUpdated.
                }
                if at > run.now_ms.saturating_sub(OVERLAP_MS) {
                    run.edge.push((id.to_string(), at));
                }
            }
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
        let read = emit_users(ctx, memory.gen, &ids, &HashMap::new())?;
        remember(memory, run, read);
        trim_edge(&mut run.edge);
        run.users_next = link.clone();
        run.users_done = link.is_none();
        commit(ctx, cursor, cell, sync, run)?;
        pages += 1;
        progress(ctx, "users", pages);
        match link {
            Some(l) => url = l,
            None => return Ok(None),
        }
    }
}

/// Reports where the run stands: `incremental-users` (the search) or `incremental-log`.
fn progress<D: Doors>(ctx: &Ctx<D>, source: &str, pages: u64) {
    let events = ctx.report.events_emitted;
    ctx.doors.progress(&Progress {
        phase: format!("incremental-{source}"),
        pages_done: pages,
        pages_expected: None,
        items_done: events,
        wait_ms: None,
        detail: format!(
            "incremental run: {source}, {pages} pages this run, {events} events so far"
        ),
    });
}

/// Keeps the newest [`MAX_EDGE`] pairs.
fn trim_edge(edge: &mut Vec<(String, i64)>) {
    if edge.len() > MAX_EDGE {
        edge.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        edge.truncate(MAX_EDGE);
    }
}

/// Reads the System Log from its position to an empty page (or [`syslog::MAX_PAGES_PER_RUN`]
/// pages). Returns a warning when a walk is needed instead.
fn log_phase<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    sync: &mut SyncState,
    run: &mut RunState,
    memory: &mut Memory,
) -> Result<Option<String>, ConnectorError> {
    let org = ctx.config.org_url.clone();
    let mut url = sync
        .log_next
        .clone()
        .unwrap_or_else(|| syslog::first_url(&org, sync.log_since_ms));
    let mut trail = Trail::starting_at(&url);
    let mut pages = 0u64;
    loop {
        let page = match syslog::read_page(&ctx.client, &org, &url, &mut trail)? {
            Answer::Page(p) => p,
            Answer::Refused(why) => return Ok(Some(format!("{why}; a full walk instead"))),
        };
        let now = page.date_ms.unwrap_or_else(|| ctx.doors.now_ms());
        if run.now_ms == 0 {
            run.now_ms = now;
        }
        if let Some(w) = too_old(sync, now) {
            return Ok(Some(w));
        }
        let empty = page.events.is_empty();
        if !empty {
            apply(ctx, &page.events, now, run, memory)?;
        }
        // A polling query always brings a next link; without one the same page is asked
        // again next time (events again, never fewer).
        let next = page.next.clone().unwrap_or_else(|| url.clone());
        sync.log_next = Some(next.clone());
        sync.log_at_ms = now;
        pages += 1;
        progress(ctx, "log", pages);
        if empty || page.next.is_none() || pages >= syslog::MAX_PAGES_PER_RUN {
            if !empty && page.next.is_some() {
                ctx.doors.log(
                    Level::Info,
                    &format!(
                        "the System Log has more than {} pages of changes: the next run goes on from here",
                        syslog::MAX_PAGES_PER_RUN
                    ),
                );
            }
            // The caller commits with the watermark.
            return Ok(None);
        }
        commit(ctx, cursor, cell, sync, run)?;
        url = next;
    }
}

/// Applies one page of log events: the roles of groups whose privileges changed, then every
/// user named (changed, deleted, or member of such a group) read by id and emitted.
fn apply<D: Doors>(
    ctx: &mut Ctx<D>,
    events: &[Value],
    now: i64,
    run: &mut RunState,
    memory: &mut Memory,
) -> Result<(), ConnectorError> {
    let run_start = run.now_ms;
    let c = syslog::changes(events);
    if c.skipped > 0 {
        ctx.report.items_skipped += c.skipped;
        ctx.doors.log(
            Level::Warn,
            &format!(
                "{} System Log events named no user or group they could be about: skipped",
                c.skipped
            ),
        );
    }
    let mut ids: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut deletions: HashMap<String, (Option<String>, i64)> = HashMap::new();
    let mut add = |ids: &mut Vec<String>, id: &str| {
        if seen.insert(id.to_string()) {
            ids.push(id.to_string());
        }
    };
    for change in &c.changes {
        match change {
            Change::User { id, published_ms } => {
                // Read in this run after every event of the page about it: nothing new.
                let before_run = published_ms.is_some_and(|p| p < run_start);
                if !(before_run && memory.read.contains(id)) {
                    add(&mut ids, id);
                }
            }
            Change::Deleted {
                id,
                login,
                published_ms,
            } => {
                deletions
                    .entry(id.clone())
                    .or_insert((login.clone(), published_ms.unwrap_or(now)));
                add(&mut ids, id);
            }
            Change::GroupPrivilege { id } => {
                for member in regroup(ctx, memory.gen, id)? {
                    add(&mut ids, &member);
                }
            }
        }
    }
    let read = emit_users(ctx, memory.gen, &ids, &deletions)?;
    remember(memory, run, read);
    Ok(())
}

/// A group's privileges changed: its roles read again into its facts (so that its members
/// are read with them), and its members, to be emitted again.
fn regroup<D: Doors>(ctx: &Ctx<D>, gen: u32, id: &str) -> Result<Vec<String>, ConnectorError> {
    let Some(roles) = group_roles(&ctx.client, &ctx.config.org_url, id)? else {
        ctx.doors.log(
            Level::Warn,
            &format!("the roles of group {id} could not be read (403 or 404): its members keep the roles known before"),
        );
        return Ok(Vec::new());
    };
    let old = facts::group(ctx.doors, gen, &[id.to_string()])?
        .pop()
        .flatten()
        .unwrap_or_default();
    facts::put_group(ctx.doors, gen, id, &GroupFacts { roles, ..old })?;
    group_members(&ctx.client, &ctx.config.org_url, id)
}

/// The roles a group holds now, sorted: `GET /api/v1/groups/{id}/roles` (spec
/// `listGroupAssignedRoles`: an array of StandardRole or CustomRole), named as the walk
/// names them (`enrich::roles_of`: the type, or a custom role's label). None on 403 (no
/// `okta.roles.read`) or 404 (the group is gone).
fn group_roles<D: Doors>(
    client: &Client<D>,
    org: &str,
    id: &str,
) -> Result<Option<Vec<String>>, ConnectorError> {
    let url = format!("{org}/api/v1/groups/{}/roles", seg(id));
    let resp = client.get(&url)?;
    Ok(match part(client, &url, &resp, roles_of)? {
        Part::Read(roles) => Some(roles),
        Part::Refused | Part::Gone => None,
    })
}

/// The members of a group: `GET /api/v1/groups/{id}/users?limit=1000` by its `Link` pages
/// (spec `listGroupUsers`; OKTA.md "Groups": limit ≤ 1000). A 404 (the group is gone): none.
fn group_members<D: Doors>(
    client: &Client<D>,
    org: &str,
    id: &str,
) -> Result<Vec<String>, ConnectorError> {
    let first = format!("{org}/api/v1/groups/{}/users?limit=1000", seg(id));
    let mut trail = Trail::starting_at(&first);
    let mut next = Some(first);
    let mut out = Vec::new();
    while let Some(url) = next.take() {
        let resp = client.get(&url)?;
        let page = match part(client, &url, &resp, |v| v.as_array().cloned())? {
            Part::Read(page) => page,
            Part::Gone => return Ok(out),
            Part::Refused => {
                return Err(ConnectorError::Permission(format!(
                "{} answered 403: the credential cannot read group members; grant okta.groups.read",
                path_of(&url)
            )))
            }
        };
        if let Some(link) = next_link(&resp) {
            if !link.starts_with(&format!("{org}/")) {
                return Err(upstream(
                    &url,
                    format!("the next link leaves the org ({})", first_line(&link)),
                ));
            }
            trail.step(&page, &link).map_err(|e| upstream(&url, e))?;
            next = Some(link);
        }
        out.extend(
            page.iter()
                .filter_map(|u| u["id"].as_str())
                .filter(|id| syslog::is_okta_id(id))
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// Reads users `ids` complete by id and emits them; a user answering 404 that the log says
/// was deleted (`deletions`: login, `published`) becomes its deletion event, one answering
/// 404 otherwise is left to the log (its deletion event comes with the log's). Returns the
/// users emitted, with the `lastUpdated` (ms) of the record read.
fn emit_users<D: Doors>(
    ctx: &mut Ctx<D>,
    gen: u32,
    ids: &[String],
    deletions: &HashMap<String, (Option<String>, i64)>,
) -> Result<Vec<(String, Option<i64>)>, ConnectorError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let doors = ctx.doors;
    let read = enrich::read_complete(ctx, gen, ids)?;
    let collected = doors.now_ms();
    let (mut out_ids, mut events, mut users) = (Vec::new(), Vec::new(), Vec::new());
    for (id, got) in read {
        match got {
            Some((user, e)) => {
                ctx.report.items_seen += 1;
                match map::map_user(&ctx.org_id, &user, &e, collected) {
                    Some(event) => {
                        if e.is_partial() {
                            ctx.report.items_partial += 1;
                        }
                        let updated = user["lastUpdated"].as_str().and_then(parse_rfc3339_ms);
                        users.push((id.clone(), updated));
                        out_ids.push(id);
                        events.push(event.to_string());
                    }
                    None => ctx.report.items_skipped += 1,
                }
            }
            None => {
                if let Some((login, published)) = deletions.get(&id) {
                    ctx.report.items_seen += 1;
                    let event = deleted::map_deleted(
                        &ctx.org_id,
                        &id,
                        login.as_deref(),
                        *published,
                        collected,
                    );
                    out_ids.push(id);
                    events.push(event.to_string());
                }
            }
        }
    }
    let out = emit::emit_bounded(out_ids, events, &mut |batch| doors.emit(batch))
        .map_err(|e| ConnectorError::Host(e.to_string()))?;
    ctx.report.emitted(doors, out);
    Ok(users)
}
