//! `sync_mode = "delta"`: incremental truth from `users/delta`, resumable page by page.
//!
//! The cursor says which round the connector is in and the next URL to GET:
//!
//! - **full**: walking the whole tenant (first run, a refresh, or after the delta token
//!   expired). The tenant-wide sources (sign-in data, `/groups/delta` memberships, role
//!   assignments and eligibility, the registration report) are read first, then each delta
//!   page is enriched, emitted and committed with its next link; the last page brings the
//!   delta link and the round becomes `changes`. The groups delta link and the admins' roles
//!   are kept in the cursor.
//! - **changes**: later runs GET the stored link and receive users created, changed or
//!   removed since; each page is emitted (removals as deletion events, the others with their
//!   sign-in data read fifteen to a request) and committed. Then the users whose memberships
//!   (from the groups delta link) or roles (from the role assignments, read again and compared
//!   with the cursor's admins) changed are emitted again, complete.
//!
//! Every `refresh_hours` a run first drains the pending changes (so deletions are reported)
//! and then walks the whole tenant again: MFA registrations are not reported by any delta, and
//! the refresh bounds their staleness. A sweep every `sign_in_sweep_hours` lists users with
//! `signInActivity` and emits those who signed in since the previous sweep. A 410 /
//! `syncStateNotFound` / `resyncRequired` starts a full round again, with a warning; a `$select`
//! property Graph refuses in a fresh round is dropped, remembered and warned about once.
//!
//! Killed at any point, the next run resumes from the last committed page: events of the
//! page in flight may be delivered twice, none are lost.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::cursor::{start_full, Place, Round, Sweep};
use super::pipeline::{users_by_id, Entry, Pipeline, MAX_IN_FILTER, USER_SELECT};
use super::staged;
use crate::config::{Config, SignIn};
use crate::enrich::RoleIndex;
use crate::facts::Facts;
use crate::graph::{is_not_licensed, GraphClient, GraphError, GraphGet};
use connector_sdk::doors::{Doors, Level};
use connector_sdk::error::ConnectorError;
use connector_sdk::paging::Trail;
use connector_sdk::report::Report;

/// Graph's sign-in data lags the sign-in; a sweep looks this far behind the previous one.
const SIGN_IN_LAG_MS: i64 = 60 * 60 * 1000;

const HOUR_MS: i64 = 60 * 60 * 1000;

/// Error codes meaning "the delta token is no good: start over".
const RESYNC_CODES: &[&str] = &["syncStateNotFound", "resyncRequired", "syncStateInvalid"];

pub use staged::Admins;

/// How a walk of delta pages ended early.
enum Stop {
    /// The delta or skip token expired: start a full round.
    Resync(String),
    /// A fresh round's `$select` holds a property Graph refuses for delta (named).
    Refused(String),
    /// Anything else: the run fails.
    Fail(ConnectorError),
}

impl From<ConnectorError> for Stop {
    fn from(e: ConnectorError) -> Self {
        Stop::Fail(e)
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
    let mut place = Place::load(graph)?;
    let mut p = Pipeline::new(graph, config, version);
    if let Some(warning) = place.drop_unusable_links(now) {
        p.report.warn(doors, warning);
    }
    // What earlier walks left to delete (resumable).
    staged::clean_up(&mut place)?;

    // 1. Changes since the last run (also before a refresh, so removals are reported).
    if place.cursor.round == Round::Changes {
        graph.note_users(place.cursor.users_known);
        p.begin_changes(place.cursor.facts_gen.as_deref().map(Facts::new));
        // Memberships first, so a user emitted from users/delta carries its current groups
        // (and one whose groups and properties both changed is emitted once, complete).
        let (member_users, groups_link, links) = membership_changes(&mut p, &mut place)?;
        // Roles before the users, so every user emitted carries its current roles.
        let before = match place.cursor.facts_gen.clone() {
            Some(gen) if place.cursor.admin_shards > 0 => {
                staged::load_admins(doors, &gen, place.cursor.admin_shards)?
            }
            _ => None,
        };
        let after = roles_now(&mut p, &place, before.as_ref(), &links)?;
        match place.cursor.link.clone() {
            Some(link) => match walk(&mut p, &mut place, Round::Changes, link) {
                Ok(()) => {}
                Err(Stop::Resync(why)) => {
                    resync_warning(&mut p, config, &why);
                    start_full(&mut place.cursor, now);
                }
                Err(Stop::Fail(e)) => return Err(e),
                Err(Stop::Refused(property)) => {
                    return Err(ConnectorError::Upstream(format!(
                        "users/delta refused the property '{property}' of a stored delta link; run again later"
                    )))
                }
            },
            None => start_full(&mut place.cursor, now),
        }
        if place.cursor.round == Round::Changes {
            relation_changes(
                &mut p,
                &mut place,
                (member_users, groups_link),
                before,
                after,
            )?;
        }
        p.end_changes();
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
        if place.cursor.walk.is_none() && place.cursor.link.is_none() {
            place.cursor.round_started_ms = now;
        }
        p.report.full_sync = place.cursor.walk.is_none() && place.cursor.link.is_none();
        // A walk reads the roles whole, whatever an incremental round of this run installed.
        p.enricher.clear_page();
        p.enricher.known_role_groups = None;
        // The tenant-wide sources, staged page by page (resumed where a run stopped), then
        // the users, each page joined against what they taught.
        staged::prepare(&mut p, &mut place)?;
        swept_in_full_round = p.walk_stage().is_some_and(|st| st.sign_ins_read);
        let mut restarted = false;
        loop {
            let start = place
                .cursor
                .link
                .clone()
                .unwrap_or_else(|| fresh_delta_url(config, &place.cursor.dropped_properties));
            match walk(&mut p, &mut place, Round::Full, start) {
                Ok(()) => break,
                Err(Stop::Refused(property))
                    if !place.cursor.dropped_properties.contains(&property) =>
                {
                    let doors = p.graph.doors();
                    p.report.warn(
                        doors,
                        format!(
                            "users/delta refused the property '{property}' in $select: it is left out of this tenant's events from now on (the fields it maps to are omitted)"
                        ),
                    );
                    place.cursor.dropped_properties.push(property);
                    place.cursor.link = None;
                }
                Err(Stop::Resync(why)) if !restarted => {
                    // The users listing starts again; what the walk staged stays good.
                    resync_warning(&mut p, config, &why);
                    place.cursor.link = None;
                    restarted = true;
                }
                Err(Stop::Resync(why)) => {
                    return Err(ConnectorError::Upstream(format!(
                        "users/delta refused a fresh full round too ({why}); run again later"
                    )))
                }
                Err(Stop::Refused(property)) => {
                    return Err(ConnectorError::Upstream(format!(
                        "users/delta refused '{property}' again after it was dropped from $select; run again later"
                    )))
                }
                Err(Stop::Fail(e)) => return Err(e),
            }
        }
        if swept_in_full_round {
            place.cursor.last_sweep_ms = place.cursor.round_started_ms;
            place.cursor.sweep = None;
        }
        p.end_walk();
        p.enricher.clear_page();
        place.commit()?;
        staged::clean_up(&mut place)?;
    }

    // 3. The sign-in sweep, on its own cadence.
    let sweep_due = place.cursor.sweep.is_some()
        || now - place.cursor.last_sweep_ms >= config.sign_in_sweep_hours as i64 * HOUR_MS;
    if config.sign_in == SignIn::Auto && sweep_due && !swept_in_full_round && !p.sign_in_broken() {
        sweep(&mut p, &mut place, now)?;
    }

    place.cursor.last_success_ms = doors.now_ms();
    place.commit()?;
    p.finish();
    Ok(p.report)
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

/// The first URL of a fresh delta round, without the properties Graph refused before.
pub fn fresh_delta_url(config: &Config, dropped: &[String]) -> String {
    let select: Vec<&str> = USER_SELECT
        .split(',')
        .filter(|p| !dropped.iter().any(|d| d.eq_ignore_ascii_case(p)))
        .collect();
    config.graph_url(&format!("/users/delta?$select={}", select.join(",")))
}

/// The `$select` property a 400 on a fresh delta request names, when it names one of ours:
/// Graph refuses some user properties in delta queries ("not supported", e.g.
/// `isManagementRestricted` in some clouds). `id` is never dropped.
fn refused_property(e: &GraphError, url: &str) -> Option<String> {
    if e.status() != Some(400) || url.contains("token=") {
        return None;
    }
    let GraphError::Status { message, .. } = e else {
        return None;
    };
    let lower = message.to_ascii_lowercase();
    USER_SELECT
        .split(',')
        .filter(|p| *p != "id")
        .find(|p| {
            let p = p.to_ascii_lowercase();
            lower.contains(&format!("'{p}'")) || lower.contains(&format!("\"{p}\""))
        })
        .map(str::to_string)
}

/// Most users per delta page Graph serves: `Prefer: odata.maxpagesize` is capped at 200 for
/// users (`docs/GRAPH.md`, "Incremental sync: delta"); asking for more only
/// hides the real page size.
const DELTA_MAX_PAGE: u32 = 200;

fn is_resync(e: &GraphError) -> bool {
    e.status() == Some(410) || RESYNC_CODES.contains(&e.code())
}

/// Tells the host where the round stands: the full walk's users phase, or the incremental
/// round's page.
fn report_progress<D: Doors>(p: &Pipeline<'_, '_, D>, place: &Place<'_, '_, D>, page_no: u64) {
    match &place.cursor.walk {
        Some(w) => staged::report_progress(p, place, w),
        None => p.graph.progress(connector_sdk::doors::Progress {
            phase: "changes".into(),
            pages_done: page_no,
            pages_expected: None,
            items_done: p.report.items_seen,
            wait_ms: None,
            detail: if page_no == 0 {
                "incremental round: reading what changed since the last run (users/delta)".into()
            } else {
                format!("incremental round: users/delta page {page_no}")
            },
        }),
    }
}

/// GETs delta pages from `url` until the delta link, emitting and committing each page.
fn walk<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    round: Round,
    mut url: String,
) -> Result<(), Stop> {
    let page_size = p.config.page_size.min(DELTA_MAX_PAGE);
    let mut page_no = 0u64;
    let mut trail = Trail::starting_at(&url);
    // Said before the first page, so a wait before it has a place to name.
    report_progress(p, place, page_no);
    loop {
        page_no += 1;
        let get = GraphGet {
            url: url.clone(),
            headers: vec![("Prefer".into(), format!("odata.maxpagesize={page_size}"))],
        };
        let page = match p.graph.page(get) {
            Ok(page) => page,
            Err(e) if is_resync(&e) => return Err(Stop::Resync(e.to_string())),
            Err(e) if page_no == 1 && round == Round::Full => match refused_property(&e, &url) {
                Some(property) => return Err(Stop::Refused(property)),
                None => {
                    return Err(Stop::Fail(e.into_connector(&format!(
                        "reading users/delta (page {page_no} of this run)"
                    ))))
                }
            },
            Err(e) => {
                return Err(Stop::Fail(e.into_connector(&format!(
                    "reading users/delta (page {page_no} of this run)"
                ))))
            }
        };
        // The link is checked before the cursor stores it: a stored link is always one the
        // next run can follow, and a bad one leaves the cursor at the last good page (the
        // page itself is delivered first).
        let checked = match (&page.next_link, &page.delta_link) {
            (Some(next), _) => p.graph.follow(&mut trail, &page.items, next),
            (None, Some(delta)) => p.graph.check_link(delta),
            (None, None) => Ok(()),
        };
        let entries: Vec<Entry> = page.items.into_iter().map(Entry::from_delta).collect();
        let count = entries.len() as u64;
        let delivered = p.deliver(entries)?;
        if let (Round::Full, Some(w)) = (round, place.cursor.walk.as_mut()) {
            w.users.pages += 1;
            w.users.items = w.users.items.saturating_add(count);
            w.users_delivered = w.users_delivered.saturating_add(delivered.len() as u64);
        }
        if let Err(e) = checked {
            return Err(Stop::Fail(e.into_connector(&format!(
                "reading users/delta (page {page_no} of this run, delivered; the cursor stays at the page before it)"
            ))));
        }
        match (page.next_link, page.delta_link) {
            (Some(next), _) => {
                place.cursor.round = round;
                place.cursor.link = Some(next.clone());
                place.commit()?;
                report_progress(p, place, page_no);
                url = next;
            }
            (None, Some(delta)) => {
                if round == Round::Full {
                    // What the walk learnt of every user, before the cursor relies on it.
                    p.save_facts()?;
                }
                // The last page too, before the walk's record is finished: the progress the
                // host keeps (and `status` shows) counts every page and user of the round,
                // not the one before the last.
                report_progress(p, place, page_no);
                place.cursor.round = Round::Changes;
                place.cursor.link = Some(delta);
                if round == Round::Full {
                    place.cursor.last_full_ms = place.cursor.round_started_ms;
                    staged::finish(&mut place.cursor);
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

/// Users per page when `signInActivity` is selected: the most Graph serves (GRAPH.md,
/// "Listing users": 500 with `signInActivity`). Every such request counts against the sign-in
/// limit (10 a minute), so pages are as big as Graph allows, whatever `page_size` says.
const SIGN_IN_PAGE: u32 = 500;

fn sweep_url(config: &Config, select: &str) -> String {
    config.graph_url(&format!("/users?$select={select}&$top={SIGN_IN_PAGE}"))
}

/// The admins now, for an incremental round. The assignments are read (a few requests for
/// the tenant), but not the members of the role groups the last run knew: who is in them
/// comes from the last run's admins (`via`) and the groups delta's member links. Only a group
/// that holds a role for the first time has its members read. The result is installed as the
/// enricher's role index, so every user this run emits carries it. None when the assignments
/// could not be read (or no facts generation is known: then every group's members are read,
/// as in a walk).
fn roles_now<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &Place<'_, '_, D>,
    before: Option<&Admins>,
    links: &[LinkChange],
) -> Result<Option<Admins>, ConnectorError> {
    let known = match (&place.cursor.facts_gen, before) {
        (Some(gen), Some(_)) => staged::load_role_groups(p.graph.doors(), gen)?,
        _ => None,
    };
    let known: Option<HashSet<String>> = known.map(|k| k.groups.into_iter().collect());
    p.enricher.known_role_groups = known.clone();
    let index = p.enricher.roles(&mut p.report);
    if index.active.is_none() {
        return Ok(None);
    }
    let mut via: HashMap<String, BTreeSet<String>> = HashMap::new();
    if let (Some(before), Some(known)) = (before, &known) {
        for (id, admin) in before {
            let kept = admin.via.iter().filter(|g| known.contains(*g)).cloned();
            via.entry(id.clone()).or_default().extend(kept);
        }
    }
    for (id, groups) in &index.via {
        via.entry(id.clone())
            .or_default()
            .extend(groups.iter().cloned());
    }
    for (user, group, _, added) in links {
        if !index.grants.contains_key(group) {
            continue;
        }
        let groups = via.entry(user.clone()).or_default();
        if *added {
            groups.insert(group.clone());
        } else {
            groups.remove(group);
        }
    }
    let mut after = Admins::new();
    let users: BTreeSet<&String> = index.direct.keys().chain(via.keys()).collect();
    for id in users {
        let (mut active, mut eligible) = index.direct.get(id).cloned().unwrap_or_default();
        let mut through = Vec::new();
        for g in via.get(id).into_iter().flatten() {
            if let Some((a, e)) = index.grants.get(g) {
                active.extend(a.iter().cloned());
                eligible.extend(e.iter().cloned());
                through.push(g.clone());
            }
        }
        if active.is_empty() && eligible.is_empty() {
            continue;
        }
        after.insert(
            id.clone(),
            staged::Admin {
                active: active.into_iter().collect(),
                eligible: eligible.into_iter().collect(),
                via: through,
            },
        );
    }
    let to_map = |pick: fn(&staged::Admin) -> &Vec<String>| -> HashMap<String, BTreeSet<String>> {
        after
            .iter()
            .filter(|(_, a)| !pick(a).is_empty())
            .map(|(id, a)| (id.clone(), pick(a).iter().cloned().collect()))
            .collect()
    };
    let installed = RoleIndex {
        active: Some(to_map(|a| &a.active)),
        eligible: index.eligible.is_some().then(|| to_map(|a| &a.eligible)),
        active_partial: index.active_partial,
        eligible_partial: index.eligible_partial,
        groups: index.groups.clone(),
        ..RoleIndex::default()
    };
    p.enricher.install_roles(installed);
    Ok(Some(after))
}

/// Membership and role changes since the last run, which `users/delta` does not report:
/// the users concerned are emitted again as complete snapshots.
fn relation_changes<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    memberships: (BTreeSet<String>, Option<String>),
    before: Option<Admins>,
    now_admins: Option<Admins>,
) -> Result<(), ConnectorError> {
    let (mut changed, groups_link) = memberships;
    // Roles: whose roles differ from the last run's.
    if let (Some(before), Some(after)) = (&before, &now_admins) {
        for id in before.keys().chain(after.keys()) {
            let same = match (before.get(id), after.get(id)) {
                (Some(a), Some(b)) => a.same_roles(b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                changed.insert(id.clone());
            }
        }
    }
    let already: BTreeSet<String> = p.emitted_ids().iter().cloned().collect();
    let ids: Vec<String> = changed.difference(&already).cloned().collect();
    if !ids.is_empty() {
        p.graph.log(
            Level::Info,
            &format!(
                "{} users changed memberships or roles since the last run: emitting them again",
                ids.len()
            ),
        );
        for chunk in ids.chunks(MAX_IN_FILTER * 4) {
            let users = read_users(p, chunk)?;
            p.deliver(users.into_iter().map(Entry::Upsert).collect())?;
        }
    }
    place.cursor.groups_link = groups_link;
    let mut writes = Vec::new();
    if let (Some(after), Some(gen)) = (&now_admins, place.cursor.facts_gen.clone()) {
        if before.as_ref() != Some(after) || place.cursor.admin_shards == 0 {
            let (w, shards) = staged::admin_writes(&gen, after, place.cursor.admin_shards)?;
            writes = w;
            place.cursor.admin_shards = shards;
        }
    }
    p.save_facts()?;
    place.commit_with(writes)
}

/// Membership changes since the last run, which `users/delta` does not report: the groups
/// delta link of the last walk lists changed groups with only their changed member links.
/// They are applied to the facts (saved before any cursor that relies on them: applying a
/// change twice is the same as once). Returns the users concerned and the next groups link.
#[allow(clippy::type_complexity)]
fn membership_changes<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
) -> Result<(BTreeSet<String>, Option<String>, Vec<LinkChange>), ConnectorError> {
    let Some(link) = place.cursor.groups_link.clone() else {
        return Ok((BTreeSet::new(), None, Vec::new()));
    };
    match read_group_changes(p, link) {
        Ok((users, next, links)) => {
            let doors = p.graph.doors();
            if let Some(facts) = p.facts_mut() {
                facts.apply_memberships(doors, &links)?;
            }
            p.save_facts()?;
            Ok((users, next, links))
        }
        Err(e) => {
            let doors = p.graph.doors();
            p.report.warn(
                doors,
                format!(
                    "the groups/delta link was refused ({e}): membership changes arrive with the next full walk (refresh_hours)"
                ),
            );
            Ok((BTreeSet::new(), None, Vec::new()))
        }
    }
}

/// A changed member link: (user id, group id, group name, added).
type LinkChange = (String, String, Option<String>, bool);

/// Follows a groups delta link to its end: users whose membership changed, the new link, and
/// the changed member links.
#[allow(clippy::type_complexity)]
fn read_group_changes<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    link: String,
) -> Result<(BTreeSet<String>, Option<String>, Vec<LinkChange>), GraphError> {
    let mut users = BTreeSet::new();
    let mut links: Vec<LinkChange> = Vec::new();
    let mut trail = Trail::starting_at(&link);
    let mut next = Some(link);
    while let Some(url) = next.take() {
        let page = p.graph.page(GraphGet::new(url))?;
        for group in &page.items {
            for member in group
                .get("members@delta")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = member
                    .get("@odata.type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if matches!(kind, "#microsoft.graph.user" | "") {
                    if let Some(id) = member.get("id").and_then(Value::as_str) {
                        users.insert(id.to_string());
                        if let Some(gid) = group.get("id").and_then(Value::as_str) {
                            let name = group
                                .get("displayName")
                                .and_then(Value::as_str)
                                .filter(|n| !n.trim().is_empty())
                                .map(str::to_string);
                            let added = member.get("@removed").is_none();
                            links.push((id.to_string(), gid.to_string(), name, added));
                        }
                    }
                }
            }
        }
        match (page.next_link, page.delta_link) {
            (Some(n), _) => {
                p.graph.follow(&mut trail, &page.items, &n)?;
                next = Some(n);
            }
            (None, Some(d)) => {
                p.graph.check_link(&d)?;
                return Ok((users, Some(d), links));
            }
            (None, None) => {
                return Err(GraphError::Malformed(
                    "a groups/delta page has neither @odata.nextLink nor @odata.deltaLink".into(),
                ))
            }
        }
    }
    Ok((users, None, links))
}

/// The user objects of these ids (fifteen to a request: the `in` operator's limit).
fn read_users<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    ids: &[String],
) -> Result<Vec<Value>, ConnectorError> {
    let gets = users_by_id(p.config, ids, USER_SELECT);
    let mut out = Vec::new();
    for result in p.graph.collect_lists(gets) {
        out.extend(
            result.map_err(|e| {
                e.into_connector("reading users whose memberships or roles changed")
            })?,
        );
    }
    Ok(out)
}

/// Lists users with `signInActivity` and emits those who signed in since the last sweep,
/// committing after each page.
fn sweep<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
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
    let mut trail = Trail::default().capped(p.graph.per_user_pages());
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
        let checked = match &page.next_link {
            Some(link) => p.graph.follow(&mut trail, &page.items, link),
            None => Ok(()),
        };
        let entries = page
            .items
            .into_iter()
            .filter(|u| last_sign_in_ms(u).is_some_and(|t| t > threshold))
            .map(Entry::Upsert)
            .collect();
        p.deliver(entries)?;
        if let Err(e) = checked {
            // A loop or an endless listing: the users it gave are delivered; the sweep ends
            // here and the next run sweeps again from the same time.
            p.sign_in_degraded(&e, trail.pages());
            place.cursor.sweep = None;
            return place.commit();
        }
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
        .and_then(connector_sdk::time::parse_rfc3339_ms)
        .filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::super::cursor::{DeltaCursor, DELTA_CURSOR_KEY, FORMAT};
    use super::super::walk::Walk;
    use super::*;
    use connector_sdk::state::{Cell, Stored};

    #[test]
    fn cursor_round_trips_and_resync_codes_are_recognised() {
        let c = DeltaCursor {
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
            groups_link: Some("https://graph/v1.0/groups/delta?$deltatoken=g".into()),
            dropped_properties: vec!["isManagementRestricted".into()],
            reports_sent: [vec![5, 6], vec![6]],
            walk: Some(Walk::new("abc".into())),
            facts_gen: Some("ab".into()),
            admin_shards: 2,
            cleanup: vec!["walk/aa/".into()],
            users_known: 7,
            registration_top_refused: true,
        };
        let doors = connector_sdk::doors::fake::FakeDoors::new(|_, _| unreachable!());
        let (mut cell, _) =
            Cell::read::<DeltaCursor, _>(&doors, DELTA_CURSOR_KEY, FORMAT, "the delta cursor")
                .unwrap();
        cell.write(&doors, &c).unwrap();
        let bytes = doors.kv.borrow()[DELTA_CURSOR_KEY].0.clone();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.starts_with("{\"format\":1,\"round\":\"changes\""),
            "{text}"
        );
        let read = Cell::read(&doors, DELTA_CURSOR_KEY, FORMAT, "the delta cursor").unwrap();
        assert_eq!(read.1, Stored::Value(c));
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
    fn a_cursor_stored_before_the_sdk_still_reads() {
        // A cursor as version 0.1.0 stored it (the `format` field was the struct's own).
        let old = br#"{"format":1,"round":"changes","link":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x","round_started_ms":1,"last_full_ms":1,"last_sweep_ms":0,"sweep":null,"last_success_ms":4}"#;
        let doors = connector_sdk::doors::fake::FakeDoors::new(|_, _| unreachable!());
        doors.kv_set(DELTA_CURSOR_KEY, old, None).unwrap();
        let (cell, stored) =
            Cell::read::<DeltaCursor, _>(&doors, DELTA_CURSOR_KEY, FORMAT, "the delta cursor")
                .unwrap();
        let Stored::Value(c) = stored else {
            panic!("an old cursor is readable: {stored:?}")
        };
        assert_eq!(
            (c.round, c.last_success_ms, cell.version()),
            (Round::Changes, 4, Some(1))
        );
        assert!(c.link.is_some_and(|l| l.ends_with("$deltatoken=x")));
    }

    #[test]
    fn a_refused_select_property_is_recognised_only_on_a_fresh_request() {
        let refused = GraphError::Status {
            status: 400,
            code: "Request_UnsupportedQuery".into(),
            message: "Property 'isManagementRestricted' is not supported for delta queries.".into(),
        };
        let fresh = "https://g/v1.0/users/delta?$select=id,isManagementRestricted";
        assert_eq!(
            refused_property(&refused, fresh).as_deref(),
            Some("isManagementRestricted")
        );
        assert_eq!(
            refused_property(&refused, "https://g/v1.0/users/delta?$skiptoken=x"),
            None
        );
        let other = GraphError::Status {
            status: 400,
            code: "BadRequest".into(),
            message: "Something else went wrong with 'signInActivity'.".into(),
        };
        assert_eq!(refused_property(&other, fresh), None);
        let cfg = Config::parse(&[
            ("tenant_id".into(), "t".into()),
            ("client_id".into(), "c".into()),
        ])
        .unwrap();
        let url = fresh_delta_url(&cfg, &["isManagementRestricted".to_string()]);
        assert!(
            !url.contains("isManagementRestricted") && url.contains("userType"),
            "{url}"
        );
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
