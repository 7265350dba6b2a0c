//! The full walk (OKTA.md, "Sync strategy", "Full walk"): every user, DEPROVISIONED ones
//! included, emitted complete (groups, roles, factors), resumable anywhere.
//!
//! Like the Entra walk (guest/src/sync/staged.rs), the walk reads its sources one after the
//! other, page by page, and commits its position in the state cell after each page, with
//! what the page taught written before (idempotent facts) or in the same atomic `set-many`
//! (the page's record). A run that stops anywhere — its deadline, a crash, SIGKILL — resumes
//! at the page in flight of the source in flight, and no finished source is read again in
//! this walk. A page applied twice changes nothing. Nothing org-wide is held in memory: what
//! a later stage needs is in the checkpoint store (`facts.rs`), and the guest holds a page
//! (a batch of pages for the members) at a time.
//!
//! Stages:
//! 1. `groups`: `GET /api/v1/groups?limit=1000&expand=stats`, every page: each group's
//!    facts (`g/<id>`: name, type, roles), the roles read (`/groups/{id}/roles`) for the
//!    groups `_embedded.stats.hasAdminPrivlege` marks, and a record of the page's group ids
//!    (`okta/w/<gen>/gl/<n>`) for stage 2;
//! 2. `members`: each recorded group's members, `GET /api/v1/groups/{id}/users?limit=1000`,
//!    the first pages of up to `max_concurrency` groups at once, then the further pages of the
//!    large ones; each member's `u/<id>` facts gain the group;
//! 3. `admins`: `GET /api/v1/iam/assignees/users` (paged in the body), then
//!    `/users/{id}/roles` of those: each one's `u/<id>` facts gain the roles;
//! 4. `users`: `GET /api/v1/users?search=status%20pr&limit=200` pages, each page's users joined
//!    with their facts (one `get-many`, plus the group facts not cached), their factors read
//!    (`/users/{id}/factors`), mapped, emitted, then the position committed;
//! 5. `finish`: the walk's records and user facts deleted, then in one commit the new
//!    generation, no walk, and incremental runs from the walk's start (the `Date` of its first
//!    answer); then the old generation's keys deleted.
//!
//! A missing scope (403 on groups, roles or factors) does not fail the walk: the part is
//! left out (`Enrichment` None: the event is partial) and the run report names it.

use std::collections::{BTreeMap, HashMap};

use connector_sdk::doors::{Doors, HttpResponse, KvWrite, Level, Progress};
use connector_sdk::paging::Trail;
use connector_sdk::state::{self, decode, encode, Cell};
use connector_sdk::{emit, ConnectorError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{next_link, path_of, upstream};
use crate::cursor::Cursor;
use crate::enrich::{group_ref, part, read_factors, roles_of, seg, Part};
use crate::facts::{self, GroupFacts, UserFacts};
use crate::incremental::SyncState;
use crate::map::{self, Enrichment, GroupRef};
use crate::Ctx;

/// Everything of walks in flight starts with this.
pub const WALK_ROOT: &str = "okta/w/";

/// Groups a page of the groups list (Okta documents up to 10,000 for `/api/v1/groups`; the
/// emulator's OKTA.md notes the same): 1,000 keep a page under a megabyte with stats.
const GROUPS_PAGE: u32 = 1_000;

/// Members a page of `/api/v1/groups/{id}/users` (OKTA.md, "Groups": limit ≤ 1000).
const MEMBERS_PAGE: u32 = 1_000;

/// Admins a page of `/api/v1/iam/assignees/users` (spec, `listUsersWithRoleAssignments`:
/// `limit` default 100).
const ADMINS_PAGE: u32 = 100;

/// Group facts the users stage keeps in memory at most (cleared when full).
const GROUP_CACHE: usize = 20_000;

/// The stages of a walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Committed, the old keys not yet cleared.
    #[default]
    Begin,
    /// The groups list.
    Groups,
    /// Each group's members.
    Members,
    /// The admins and their roles.
    Admins,
    /// The users, emitted.
    Users,
    /// Cleaning up and switching generations.
    Finish,
}

/// Where a walk in flight stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WalkState {
    /// The facts generation the walk builds.
    pub gen: u32,
    /// The org the walk reads (a cursor of another org starts over).
    pub org_id: String,
    /// The `Date` of the walk's first answer (the incremental watermark once it finishes).
    pub start_ms: i64,
    /// The stage in flight.
    pub stage: Stage,
    /// The next page of the stage's listing (groups, admins, users; None: the first).
    pub next: Option<String>,
    /// Records of group ids the groups stage wrote.
    pub records: u32,
    /// Members: the record in flight.
    pub record: u32,
    /// Members: the next group of that record to start.
    pub index: u32,
    /// Members: groups whose further pages are still to read (id, next link).
    pub pending: Vec<(String, String)>,
    /// Pages of the stage done, all runs together.
    pub pages: u64,
    /// Items of the stage done.
    pub items: u64,
    /// The groups could not be read (okta.groups.read missing).
    pub no_groups: bool,
    /// The roles could not be read (okta.roles.read missing).
    pub no_roles: bool,
    /// The factors could not be read.
    pub no_factors: bool,
}

/// The key of the groups stage's record `n`.
fn record_key(gen: u32, n: u32) -> String {
    format!("{WALK_ROOT}{gen}/gl/{n:010}")
}

/// Runs the walk in flight, or a new one, to its end.
pub fn run<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
) -> Result<(), ConnectorError> {
    let mut w = match cursor.walk.take() {
        Some(w) if w.org_id == ctx.org_id => w,
        _ => {
            let start_ms = ctx.client.last_date_ms().unwrap_or_else(|| {
                ctx.doors.log(
                    Level::Warn,
                    "Okta's answers carry no Date header: the walk starts at the local clock",
                );
                ctx.doors.now_ms()
            });
            WalkState {
                gen: cursor.gen.wrapping_add(1).max(1),
                org_id: ctx.org_id.clone(),
                start_ms,
                ..WalkState::default()
            }
        }
    };
    loop {
        match w.stage {
            Stage::Begin => {
                // Committed first: from here on no incremental run starts on what is deleted.
                // The first slice's cursor (`users/cursor`, format 1) goes with it.
                commit(
                    ctx,
                    cursor,
                    cell,
                    &w,
                    vec![KvWrite::delete("users/cursor".into())],
                )?;
                state::delete_all(ctx.doors, facts::ROOT)?;
                state::delete_all(ctx.doors, WALK_ROOT)?;
                next_stage(ctx, &mut w, Stage::Groups);
                commit(ctx, cursor, cell, &w, Vec::new())?;
            }
            Stage::Groups => groups(ctx, cursor, cell, &mut w)?,
            Stage::Members => members(ctx, cursor, cell, &mut w)?,
            Stage::Admins => admins(ctx, cursor, cell, &mut w)?,
            Stage::Users => users(ctx, cursor, cell, &mut w)?,
            Stage::Finish => {
                state::delete_all(ctx.doors, &format!("{WALK_ROOT}{}/", w.gen))?;
                state::delete_all(ctx.doors, &format!("{}u/", facts::gen_prefix(w.gen)))?;
                let old = cursor.gen;
                cursor.gen = w.gen;
                cursor.walk = None;
                cursor.sync = Some(SyncState {
                    watermark_ms: w.start_ms,
                    log_next: None,
                    log_since_ms: w.start_ms,
                    log_at_ms: w.start_ms,
                    ..SyncState::default()
                });
                cell.write(ctx.doors, &*cursor)?;
                if old != 0 && old != w.gen {
                    state::delete_all(ctx.doors, &facts::gen_prefix(old))?;
                }
                unavailable(ctx, &w);
                return Ok(());
            }
        }
    }
}

/// Names each part the walk could not read, once, in the run report.
fn unavailable<D: Doors>(ctx: &mut Ctx<D>, w: &WalkState) {
    for (missing, what) in [
        (
            w.no_groups,
            "groups: okta.groups.read is missing, user.groups is omitted",
        ),
        (
            w.no_roles,
            "roles: okta.roles.read is missing, user.type_id is 0 Unknown",
        ),
        (
            w.no_factors,
            "factors: the users' factors could not be read, user.has_mfa is omitted",
        ),
    ] {
        if missing && !ctx.report.unavailable.iter().any(|u| u == what) {
            ctx.report.unavailable.push(what.to_string());
        }
    }
}

/// Commits the walk's position with `writes`, atomically.
fn commit<D: Doors>(
    ctx: &Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    w: &WalkState,
    writes: Vec<KvWrite>,
) -> Result<(), ConnectorError> {
    cursor.walk = Some(w.clone());
    cell.write_with(ctx.doors, &*cursor, writes)?;
    progress(ctx, w);
    Ok(())
}

/// Moves to `stage`, reported.
fn next_stage<D: Doors>(ctx: &Ctx<D>, w: &mut WalkState, stage: Stage) {
    w.stage = stage;
    w.next = None;
    w.pages = 0;
    w.items = 0;
    ctx.doors.log(
        Level::Info,
        &format!("full walk, generation {}: stage {stage:?}", w.gen),
    );
    progress(ctx, w);
}

fn progress<D: Doors>(ctx: &Ctx<D>, w: &WalkState) {
    let phase = format!("{:?}", w.stage).to_lowercase();
    ctx.doors.progress(&Progress {
        detail: format!(
            "full walk: {phase}, {} pages and {} items so far",
            w.pages, w.items
        ),
        phase,
        pages_done: w.pages,
        pages_expected: None,
        items_done: w.items,
        wait_ms: None,
    });
}

/// The next link of a page, refused when it leaves the org or repeats the listing.
fn checked_next(
    org: &str,
    url: &str,
    link: Option<String>,
    items: &[Value],
    trail: &mut Trail,
) -> Result<Option<String>, ConnectorError> {
    if let Some(link) = &link {
        if !link.starts_with(&format!("{org}/")) {
            return Err(upstream(
                url,
                format!("the next link leaves the org ({link})"),
            ));
        }
        trail.step(items, link).map_err(|e| upstream(url, e))?;
    }
    Ok(link)
}

/// Stage 1: the groups list.
fn groups<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    w: &mut WalkState,
) -> Result<(), ConnectorError> {
    let org = ctx.config.org_url.clone();
    // `expand=stats` embeds `_embedded.stats.hasAdminPrivlege` (so spelled in the spec's
    // `GroupStats`; developer.okta.com/docs/api/openapi/okta-management/management/tag/Group,
    // listGroups `expand`): the groups that hold admin roles, whose roles are read.
    let first = format!("{org}/api/v1/groups?limit={GROUPS_PAGE}&expand=stats");
    let mut next = Some(w.next.clone().unwrap_or(first));
    let mut trail = Trail::default();
    while let Some(url) = next.take() {
        let resp = ctx.client.get(&url)?;
        let page = match part(&ctx.client, &url, &resp, |v| v.as_array().cloned())? {
            Part::Read(p) => p,
            Part::Refused | Part::Gone => {
                ctx.doors.log(
                    Level::Warn,
                    &format!(
                        "{} answered {}: users are emitted without their groups (grant okta.groups.read)",
                        path_of(&url),
                        resp.status
                    ),
                );
                w.no_groups = true;
                next_stage(ctx, w, Stage::Admins);
                return commit(ctx, cursor, cell, w, Vec::new());
            }
        };
        let link = checked_next(&org, &url, next_link(&resp), &page, &mut trail)?;
        let mut ids = Vec::with_capacity(page.len());
        let mut found: Vec<(String, GroupFacts)> = Vec::with_capacity(page.len());
        let mut admin = Vec::new();
        for g in &page {
            let Some(r) = group_ref(g) else { continue };
            // Without stats the group might hold roles: its roles are read. (The spec spells
            // it `hasAdminPrivlege`; the correct spelling is taken too, should Okta fix it.)
            let stats = &g["_embedded"]["stats"];
            if stats["hasAdminPrivlege"]
                .as_bool()
                .or_else(|| stats["hasAdminPrivilege"].as_bool())
                .unwrap_or(true)
            {
                admin.push(found.len());
            }
            ids.push(r.id.clone());
            found.push((
                r.id,
                GroupFacts {
                    name: r.name,
                    kind: r.kind,
                    roles: Vec::new(),
                },
            ));
        }
        drop(page);
        if !w.no_roles && !admin.is_empty() {
            let urls: Vec<String> = admin
                .iter()
                .map(|&i| format!("{org}/api/v1/groups/{}/roles", seg(&found[i].0)))
                .collect();
            let answers = ctx.client.get_all(&urls)?;
            for ((&i, url), resp) in admin.iter().zip(&urls).zip(&answers) {
                match part(&ctx.client, url, resp, roles_of)? {
                    Part::Read(roles) => found[i].1.roles = roles,
                    Part::Gone => {}
                    Part::Refused => {
                        w.no_roles = true;
                        break;
                    }
                }
            }
        }
        let writes = found
            .iter()
            .map(|(id, g)| Ok(KvWrite::put(facts::group_key(w.gen, id), encode(g)?)))
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        state::put_many(ctx.doors, writes)?;
        let record = KvWrite::put(record_key(w.gen, w.records), encode(&ids)?);
        w.records += 1;
        w.pages += 1;
        w.items += ids.len() as u64;
        w.next = link.clone();
        if link.is_none() {
            next_stage(ctx, w, Stage::Members);
            (w.record, w.index) = (0, 0);
        }
        commit(ctx, cursor, cell, w, vec![record])?;
        next = link;
    }
    Ok(())
}

/// The ids of a users list (members): parsed into ids only, so that a page of 1,000 full
/// user records is never held as a JSON tree.
fn member_ids<D: Doors>(
    ctx: &Ctx<D>,
    url: &str,
    resp: &HttpResponse,
) -> Result<Part<Vec<String>>, ConnectorError> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<String>,
    }
    if resp.status != 200 {
        return part(&ctx.client, url, resp, |_| Some(Vec::new()));
    }
    let ids: Vec<Id> = serde_json::from_slice(&resp.body).map_err(|e| {
        upstream(
            url,
            format!("the members page is not a JSON array of users ({e})"),
        )
    })?;
    Ok(Part::Read(
        ids.into_iter()
            .filter_map(|i| i.id.filter(|s| !s.is_empty()))
            .collect(),
    ))
}

/// Which list of a user's facts a merge adds to.
#[derive(Clone, Copy)]
enum Field {
    Groups,
    Roles,
}

/// Adds `(user id, value)` pairs to the users' facts of generation `gen`: read, merged as
/// sorted sets, written when changed (a pair merged twice changes nothing).
fn merge<D: Doors>(
    doors: &D,
    gen: u32,
    pairs: Vec<(String, String)>,
    field: Field,
) -> Result<(), ConnectorError> {
    let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, value) in pairs {
        by_user.entry(user).or_default().push(value);
    }
    let users: Vec<(String, Vec<String>)> = by_user.into_iter().collect();
    for chunk in users.chunks(connector_sdk::doors::MAX_KV_BATCH) {
        let ids: Vec<String> = chunk.iter().map(|(u, _)| u.clone()).collect();
        let current = facts::users(doors, gen, &ids)?;
        let mut writes = Vec::new();
        for ((id, add), mut f) in chunk.iter().zip(current) {
            let list = match field {
                Field::Groups => &mut f.groups,
                Field::Roles => &mut f.roles,
            };
            let before = list.len();
            list.extend(add.iter().cloned());
            list.sort();
            list.dedup();
            if list.len() != before {
                writes.push(KvWrite::put(facts::user_key(gen, id), encode(&f)?));
            }
        }
        state::put_many(doors, writes)?;
    }
    Ok(())
}

/// Stage 2: each recorded group's members.
fn members<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    w: &mut WalkState,
) -> Result<(), ConnectorError> {
    let org = ctx.config.org_url.clone();
    let max = ctx.config.max_concurrency.max(1) as usize;
    let mut held: Option<(u32, Vec<String>)> = None;
    let mut trail: Option<(String, Trail)> = None;
    loop {
        // The further pages of the large groups of the last batch, one at a time.
        if let Some((gid, url)) = w.pending.first().cloned() {
            let resp = ctx.client.get(&url)?;
            match member_ids(ctx, &url, &resp)? {
                Part::Read(ids) => {
                    if trail.as_ref().is_none_or(|(g, _)| *g != gid) {
                        trail = Some((gid.clone(), Trail::starting_at(&url)));
                    }
                    let t = &mut trail.as_mut().expect("set above").1;
                    let items: Vec<Value> = ids.iter().map(|i| Value::from(i.as_str())).collect();
                    let link = checked_next(&org, &url, next_link(&resp), &items, t)?;
                    w.items += ids.len() as u64;
                    merge(
                        ctx.doors,
                        w.gen,
                        ids.into_iter().map(|u| (u, gid.clone())).collect(),
                        Field::Groups,
                    )?;
                    match link {
                        Some(l) => w.pending[0].1 = l,
                        None => {
                            w.pending.remove(0);
                        }
                    }
                }
                Part::Gone => {
                    w.pending.remove(0);
                }
                Part::Refused => return members_refused(ctx, cursor, cell, w, &url),
            }
            w.pages += 1;
            commit(ctx, cursor, cell, w, Vec::new())?;
            continue;
        }
        if w.record >= w.records {
            next_stage(ctx, w, Stage::Admins);
            return commit(ctx, cursor, cell, w, Vec::new());
        }
        if held.as_ref().is_none_or(|(n, _)| *n != w.record) {
            let key = record_key(w.gen, w.record);
            let ids: Result<Vec<String>, _> = state::get_many(ctx.doors, std::slice::from_ref(&key))?
                .pop()
                .flatten()
                .and_then(|b| decode(&b))
                .ok_or_else(|| {
                    ConnectorError::Host(format!(
                        "the walk's record {key} is missing: the checkpoint store lost it; run again (a new walk starts)"
                    ))
                });
            let ids = match ids {
                Ok(ids) => ids,
                Err(e) => {
                    // Start over rather than fail forever.
                    cursor.walk = None;
                    cell.write(ctx.doors, &*cursor)?;
                    return Err(e);
                }
            };
            held = Some((w.record, ids));
        }
        let list = &held.as_ref().expect("loaded above").1;
        let start = w.index as usize;
        if start >= list.len() {
            w.record += 1;
            w.index = 0;
            continue;
        }
        let batch: Vec<String> = list[start..(start + max).min(list.len())].to_vec();
        let urls: Vec<String> = batch
            .iter()
            .map(|g| format!("{org}/api/v1/groups/{}/users?limit={MEMBERS_PAGE}", seg(g)))
            .collect();
        let answers = ctx.client.get_all(&urls)?;
        let mut pairs = Vec::new();
        for ((gid, url), resp) in batch.iter().zip(&urls).zip(&answers) {
            match member_ids(ctx, url, resp)? {
                Part::Read(ids) => {
                    let items: Vec<Value> = ids.iter().map(|i| Value::from(i.as_str())).collect();
                    let mut t = Trail::starting_at(url);
                    if let Some(l) = checked_next(&org, url, next_link(resp), &items, &mut t)? {
                        w.pending.push((gid.clone(), l));
                    }
                    w.items += ids.len() as u64;
                    pairs.extend(ids.into_iter().map(|u| (u, gid.clone())));
                }
                Part::Gone => {}
                Part::Refused => return members_refused(ctx, cursor, cell, w, url),
            }
        }
        drop(answers);
        merge(ctx.doors, w.gen, pairs, Field::Groups)?;
        w.index += batch.len() as u32;
        w.pages += batch.len() as u64;
        commit(ctx, cursor, cell, w, Vec::new())?;
    }
}

/// A members list refused: the groups are left out of every event.
fn members_refused<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    w: &mut WalkState,
    url: &str,
) -> Result<(), ConnectorError> {
    ctx.doors.log(
        Level::Warn,
        &format!(
            "{} answered 403: users are emitted without their groups (grant okta.groups.read)",
            path_of(url)
        ),
    );
    w.no_groups = true;
    w.pending.clear();
    next_stage(ctx, w, Stage::Admins);
    commit(ctx, cursor, cell, w, Vec::new())
}

/// Stage 3: the users holding admin roles, and their roles.
fn admins<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    w: &mut WalkState,
) -> Result<(), ConnectorError> {
    let org = ctx.config.org_url.clone();
    if w.no_roles {
        next_stage(ctx, w, Stage::Users);
        return commit(ctx, cursor, cell, w, Vec::new());
    }
    // `GET /api/v1/iam/assignees/users`: "Lists all users with role assignments", paged in
    // the body: `value` and `_links.next.href` (spec, `listUsersWithRoleAssignments`,
    // `RoleAssignedUsers`; OKTA.md, "Admin roles").
    let first = format!("{org}/api/v1/iam/assignees/users?limit={ADMINS_PAGE}");
    let mut next = Some(w.next.clone().unwrap_or(first));
    let mut trail = Trail::default();
    while let Some(url) = next.take() {
        let resp = ctx.client.get(&url)?;
        let body = match part(&ctx.client, &url, &resp, |v| {
            v.is_object().then(|| v.clone())
        })? {
            Part::Read(b) => b,
            Part::Refused | Part::Gone => {
                ctx.doors.log(
                    Level::Warn,
                    &format!(
                        "{} answered {}: admins cannot be told from users (grant okta.roles.read)",
                        path_of(&url),
                        resp.status
                    ),
                );
                w.no_roles = true;
                next_stage(ctx, w, Stage::Users);
                return commit(ctx, cursor, cell, w, Vec::new());
            }
        };
        let items = body["value"].as_array().cloned().unwrap_or_default();
        let link = body["_links"]["next"]["href"].as_str().map(str::to_string);
        let link = checked_next(&org, &url, link, &items, &mut trail)?;
        let ids: Vec<String> = items
            .iter()
            .filter_map(|u| {
                u["id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect();
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("{org}/api/v1/users/{}/roles", seg(id)))
            .collect();
        let answers = ctx.client.get_all(&urls)?;
        let mut pairs = Vec::new();
        for ((id, url), resp) in ids.iter().zip(&urls).zip(&answers) {
            match part(&ctx.client, url, resp, roles_of)? {
                Part::Read(roles) => pairs.extend(roles.into_iter().map(|r| (id.clone(), r))),
                Part::Gone => {}
                Part::Refused => {
                    w.no_roles = true;
                    next_stage(ctx, w, Stage::Users);
                    return commit(ctx, cursor, cell, w, Vec::new());
                }
            }
        }
        merge(ctx.doors, w.gen, pairs, Field::Roles)?;
        w.pages += 1;
        w.items += ids.len() as u64;
        w.next = link.clone();
        if link.is_none() {
            next_stage(ctx, w, Stage::Users);
        }
        commit(ctx, cursor, cell, w, Vec::new())?;
        next = link;
    }
    Ok(())
}

/// Stage 4: the users, joined with their facts and factors, emitted.
fn users<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
    w: &mut WalkState,
) -> Result<(), ConnectorError> {
    let doors = ctx.doors;
    let config = ctx.config;
    // `search=status pr` lists every user, DEPROVISIONED ones included, which a list
    // without search or filter leaves out (OKTA.md, "Users"; spec, listUsers `search`).
    let first = format!(
        "{}/api/v1/users?search=status%20pr&limit={}",
        config.org_url, config.page_size
    );
    let mut next = Some(w.next.clone().unwrap_or(first));
    let mut trail = Trail::default();
    let mut cache: HashMap<String, Option<GroupFacts>> = HashMap::new();
    while let Some(url) = next.take() {
        let resp = ctx.client.get(&url)?;
        match resp.status {
            200 => {}
            401 => {
                return Err(ConnectorError::Auth(format!(
                    "{} answered 401: check the secret '{}'",
                    path_of(&url),
                    config.secret()
                )))
            }
            403 => {
                return Err(ConnectorError::Permission(format!(
                    "{} answered 403: the credential cannot read users; grant okta.users.read",
                    path_of(&url)
                )))
            }
            s => return Err(upstream(&url, format!("status {s}"))),
        }
        let page: Vec<Value> = serde_json::from_slice(&resp.body)
            .map_err(|e| upstream(&url, format!("the users page is not a JSON array ({e})")))?;
        let link = checked_next(&config.org_url, &url, next_link(&resp), &page, &mut trail)?;
        let ids: Vec<String> = page
            .iter()
            .filter_map(|u| {
                u["id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect();
        let user_facts = if w.no_groups && w.no_roles {
            vec![UserFacts::default(); ids.len()]
        } else {
            facts::users(doors, w.gen, &ids)?
        };
        if !w.no_groups {
            let mut missing: Vec<String> = user_facts
                .iter()
                .flat_map(|f| f.groups.iter())
                .filter(|g| !cache.contains_key(*g))
                .cloned()
                .collect();
            missing.sort();
            missing.dedup();
            if cache.len() + missing.len() > GROUP_CACHE {
                cache.clear();
                missing = user_facts
                    .iter()
                    .flat_map(|f| f.groups.iter().cloned())
                    .collect();
                missing.sort();
                missing.dedup();
            }
            let got = facts::group(doors, w.gen, &missing)?;
            cache.extend(missing.into_iter().zip(got));
        }
        let factors = if w.no_factors || ids.is_empty() {
            vec![None; ids.len()]
        } else {
            let f = read_factors(&ctx.client, &ids)?;
            if f.first().is_some_and(Option::is_none) {
                doors.log(
                    Level::Warn,
                    "/api/v1/users/{id}/factors answered 403: users are emitted without has_mfa (grant okta.users.read)",
                );
                w.no_factors = true;
            }
            f
        };
        let mut joined: HashMap<&str, (&UserFacts, &Option<Vec<map::FactorRef>>)> = ids
            .iter()
            .map(String::as_str)
            .zip(user_facts.iter().zip(factors.iter()))
            .collect();
        let (mut emit_ids, mut events) = (Vec::new(), Vec::new());
        let now = doors.now_ms();
        for user in &page {
            ctx.report.items_seen += 1;
            let id = user["id"].as_str().unwrap_or_default();
            let (f, factors) = joined.remove(id).unwrap_or((&EMPTY_FACTS, &None));
            let e = enrichment(w, f, factors.clone(), &cache);
            match map::map_user(&ctx.org_id, user, &e, now) {
                Some(event) => {
                    if e.is_partial() {
                        ctx.report.items_partial += 1;
                    }
                    emit_ids.push(id.to_string());
                    events.push(event.to_string());
                }
                None => ctx.report.items_skipped += 1, // No id: nothing could name it.
            }
        }
        let out = emit::emit_bounded(emit_ids, events, &mut |batch| doors.emit(batch))
            .map_err(|e| ConnectorError::Host(e.to_string()))?;
        ctx.report.emitted(doors, out);
        // The host makes the events durable before the cursor moves past them.
        w.pages += 1;
        w.items += page.len() as u64;
        w.next = link.clone();
        if link.is_none() {
            next_stage(ctx, w, Stage::Finish);
        }
        commit(ctx, cursor, cell, w, Vec::new())?;
        next = link;
    }
    Ok(())
}

static EMPTY_FACTS: UserFacts = UserFacts {
    groups: Vec::new(),
    roles: Vec::new(),
};

/// A user's enrichment from its facts: groups named from the group facts (sorted by id), the
/// roles assigned to it and those of its groups, its factors.
fn enrichment(
    w: &WalkState,
    f: &UserFacts,
    factors: Option<Vec<map::FactorRef>>,
    groups: &HashMap<String, Option<GroupFacts>>,
) -> Enrichment {
    let held: Vec<(&String, &GroupFacts)> = f
        .groups
        .iter()
        .filter_map(|id| groups.get(id).and_then(Option::as_ref).map(|g| (id, g)))
        .collect();
    let refs = (!w.no_groups).then(|| {
        held.iter()
            .map(|(id, g)| GroupRef {
                id: (*id).clone(),
                name: g.name.clone(),
                kind: g.kind.clone(),
            })
            .collect()
    });
    let roles = (!w.no_roles).then(|| {
        let mut r: Vec<String> = f.roles.clone();
        r.extend(held.iter().flat_map(|(_, g)| g.roles.iter().cloned()));
        r.sort();
        r.dedup();
        r
    });
    Enrichment {
        groups: refs,
        roles,
        factors,
    }
}
