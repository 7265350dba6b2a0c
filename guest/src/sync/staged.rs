//! The full walk of `sync_mode = "delta"`, staged so that it resumes anywhere and holds no
//! tenant-wide map in memory.
//!
//! A full walk reads the tenant-wide sources, then the users. Each source is a **phase**, read
//! page by page; what a page teaches is written to the checkpoint store as one **record**
//! (`walk/<gen>/<source>/<n>`, postcard) in the same atomic `set-many` as the cursor that holds
//! the phase's next link, before the next page is read. A run that stops anywhere — its
//! deadline, a crash, SIGKILL, a lost lease — resumes at the page in flight of the phase in
//! flight, and never reads a finished phase again in this walk:
//!
//! 1. `sign-in data`: `/users?$select=id,signInActivity&$top=500` (when configured and
//!    licensed);
//! 2. `groups`: `/groups/delta?$select=displayName,members` — records hold (user, group) pairs
//!    and each group's name goes to its own facts key (`facts.rs`);
//! 3. `roles`: definitions, active and eligible assignments, role-assignable groups' members:
//!    a few requests, read whole, written as the admins shards of the new facts generation
//!    (`admins.rs`);
//! 4. `registration report`: `userRegistrationDetails` with `$top=999` while Graph takes it
//!    (Microsoft's own Entra PowerShell sends it; the v1.0 page lists only `$filter`): refused
//!    once with a 400 naming `$top`, it is dropped, warned about and remembered in the cursor;
//! 5. `build`: the records are joined per user into the new generation's facts, one key per
//!    user — in passes over a slice of the user-hash space each, as many as keep a pass's map
//!    under [`PASS_BYTES`] — reading the store only, so a stop redoes at most one pass;
//! 6. `users`: `users/delta` pages; each page's users are joined against their facts in one
//!    `get-many` (plus one for group names not cached: `facts.rs`), emitted and committed;
//! 7. the last page brings the delta link: the cursor switches to the new generation, and the
//!    old generation and the records are deleted (`cleanup`, resumable as well).
//!
//! Join cost per page of users: 1 `get-many` of ≤ 200 user keys, 1 of the group names not in
//! the cache (≤ 1,000 keys a call), and the cursor commit: three checkpoint round trips.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::delta::{Place, Round};
use super::{trim_sign_in, Pipeline};
use crate::config::SignIn;
use crate::doors::{Doors, KvWrite, Level, Progress};
use crate::enrich::{is_not_licensed, methods_registered, refusal, Memberships, RoleIndex};
use crate::error::ConnectorError;
use crate::facts::{
    self, decode, encode, generation_prefix, group_key, id_hash, user_key, GroupName, UserFacts,
};
use crate::graph::{GraphError, GraphGet, Trail};
use crate::ocsf::{self, Mfa};

/// Most bytes of records one build pass holds as a map (its memory is a few times this).
pub const PASS_BYTES: u64 = 8 * 1024 * 1024;

/// Records read in one `get-many` during the build (a record is one Graph page: ≤ ~100 KB).
const RECORDS_PER_READ: usize = 16;

/// Users per sign-in page: the most Graph serves with `signInActivity` (GRAPH.md, "Listing
/// users": 500).
const SIGN_IN_PAGE: u32 = 500;

/// `$top` asked of the registration report while Graph takes it: what Microsoft's Entra
/// PowerShell module sends (`Get-EntraUserRegistrationDetail`); the v1.0 page
/// (authenticationmethodsroot-list-userregistrationdetails) lists only `$filter` and `$orderby`.
const REGISTRATION_TOP: u32 = 999;

/// The reports limits' floor per page (GRAPH.md, "Throttling": sign-in data 10 requests a
/// minute; the reports 5 per 10 s), for the progress estimate.
const SIGN_IN_PAGE_MS: u64 = 6_000;
const REPORT_PAGE_MS: u64 = 2_000;

/// Where a full walk is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Sign-in data.
    #[default]
    SignIns,
    /// Group memberships.
    Groups,
    /// Role assignments.
    Roles,
    /// The registration report.
    Registration,
    /// Joining the records into per-user facts.
    Build,
    /// The users themselves.
    Users,
}

impl Phase {
    /// The name an operator sees (`log.progress`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::SignIns => "sign-in data",
            Phase::Groups => "groups",
            Phase::Roles => "roles",
            Phase::Registration => "registration report",
            Phase::Build => "build",
            Phase::Users => "users",
        }
    }

    fn record(self) -> &'static str {
        match self {
            Phase::SignIns => "s",
            Phase::Groups => "g",
            Phase::Registration => "m",
            _ => "x",
        }
    }
}

/// The state of a full walk, kept in the delta cursor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Walk {
    /// The generation this walk writes (facts and records).
    pub gen: String,
    /// The phase in flight.
    pub phase: Phase,
    /// The next link of the phase in flight (None: its first page).
    pub link: Option<String>,
    /// Pages of the phase in flight done.
    pub pages: u64,
    /// Items of the phase in flight done.
    pub items: u64,
    /// Records written: sign-in data, groups, registration report.
    pub records: [u64; 3],
    /// Bytes of records written.
    pub record_bytes: u64,
    /// Users the sign-in data or the report listed (what bounds per-user listings).
    pub users_listed: u64,
    /// The sources read whole in this walk.
    pub sign_ins_read: bool,
    /// The groups delta was read whole.
    pub groups_read: bool,
    /// Active role assignments were read.
    pub roles_read: bool,
    /// Eligible assignments were read.
    pub eligible_read: bool,
    /// A role-assignable group's members were refused: active roles are partial.
    #[serde(default)]
    pub roles_partial: bool,
    /// The same for eligible roles.
    #[serde(default)]
    pub eligible_partial: bool,
    /// The registration report was read whole.
    pub registration_read: bool,
    /// Groups that hold a role.
    pub role_groups: Vec<String>,
    /// Admins shards written.
    pub admin_shards: u32,
    /// The groups delta link the groups phase ended with.
    pub groups_link: Option<String>,
    /// Build passes in all, and done.
    pub passes: u32,
    /// Build passes done.
    pub passes_done: u32,
    /// Users delivered in this walk.
    pub users_delivered: u64,
    /// Optional data found unavailable in an earlier run of this walk.
    pub unavailable: Vec<String>,
}

impl Walk {
    /// A fresh walk writing generation `gen`.
    pub fn new(gen: String) -> Walk {
        Walk {
            gen,
            ..Walk::default()
        }
    }

    fn record_key(&self, phase: Phase, n: u64) -> String {
        format!("walk/{}/{}/{n:08}", self.gen, phase.record())
    }

    /// The prefix of this walk's records.
    pub fn records_prefix(gen: &str) -> String {
        format!("walk/{gen}/")
    }

    fn next_phase(&mut self, phase: Phase) {
        self.phase = phase;
        self.link = None;
        self.pages = 0;
        self.items = 0;
    }

    fn unavailable(&mut self, what: &str) {
        if !self.unavailable.iter().any(|u| u == what) {
            self.unavailable.push(what.to_string());
        }
    }
}

/// The generation name of a walk started at `now_ms`: base 36, short and ordered.
pub fn generation(now_ms: i64) -> String {
    let mut n = now_ms.max(0) as u64;
    let mut out = Vec::new();
    loop {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// One sign-in row of a record.
#[derive(Serialize, Deserialize)]
struct SignInRow(u64, String);

/// One membership of a record: (user hash, group hash).
#[derive(Serialize, Deserialize)]
struct MemberRow(u64, u64);

/// One registration row: (user hash, isAdmin, methodsRegistered).
#[derive(Serialize, Deserialize)]
struct RegistrationRow(u64, Option<bool>, Vec<String>);

/// The users holding a role, one shard of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdminShard {
    /// (user id, active role names, eligible role names).
    pub users: Vec<(String, Vec<String>, Vec<String>)>,
}

/// Admins: user id → (active, eligible) role names.
pub type Admins = std::collections::BTreeMap<String, (Vec<String>, Vec<String>)>;

/// Admins per shard (~100 bytes each: ~500 KB a value).
const ADMINS_PER_SHARD: usize = 5_000;

fn admin_key(gen: &str, n: u32) -> String {
    format!("facts/{gen}/admins/{n:04}")
}

/// The writes that store `admins` as generation `gen`'s shards, replacing `old` shards.
pub fn admin_writes(
    gen: &str,
    admins: &Admins,
    old: u32,
) -> Result<(Vec<KvWrite>, u32), ConnectorError> {
    let shards = admins.len().div_ceil(ADMINS_PER_SHARD).max(1) as u32;
    let mut split: Vec<AdminShard> = vec![AdminShard::default(); shards as usize];
    for (id, (active, eligible)) in admins {
        let n = (id_hash(id) % u64::from(shards)) as usize;
        split[n]
            .users
            .push((id.clone(), active.clone(), eligible.clone()));
    }
    let mut writes = Vec::new();
    for (n, shard) in split.iter().enumerate() {
        writes.push(KvWrite::put(admin_key(gen, n as u32), encode(shard)?));
    }
    for n in shards..old {
        writes.push(KvWrite::delete(admin_key(gen, n)));
    }
    Ok((writes, shards))
}

/// Reads generation `gen`'s admins (None when a shard is missing or unreadable).
pub fn load_admins<D: Doors>(
    doors: &D,
    gen: &str,
    shards: u32,
) -> Result<Option<Admins>, ConnectorError> {
    let keys: Vec<String> = (0..shards).map(|n| admin_key(gen, n)).collect();
    let mut out = Admins::new();
    for value in facts::get_many(doors, &keys)? {
        let Some(shard) = value.as_deref().and_then(decode::<AdminShard>) else {
            return Ok(None);
        };
        for (id, active, eligible) in shard.users {
            out.insert(id, (active, eligible));
        }
    }
    Ok(Some(out))
}

/// Runs the walk's phases before the users, from wherever the cursor says. On return the
/// walk is in its users phase and the pipeline is set up to join each page of users.
pub(super) fn prepare<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
) -> Result<(), ConnectorError> {
    let mut walk = place
        .cursor
        .walk
        .clone()
        .unwrap_or_else(|| Walk::new(generation(p.graph.doors().now_ms())));
    for what in walk.unavailable.clone() {
        if !p.report.unavailable.contains(&what) {
            p.report.unavailable.push(what);
        }
    }
    p.graph
        .note_users(place.cursor.users_known.max(walk.users_listed));
    loop {
        let before = walk.phase;
        match walk.phase {
            Phase::SignIns => sign_ins(p, place, &mut walk)?,
            Phase::Groups => groups(p, place, &mut walk)?,
            Phase::Roles => roles(p, place, &mut walk)?,
            Phase::Registration => registration(p, place, &mut walk)?,
            Phase::Build => build(p, place, &mut walk)?,
            Phase::Users => break,
        }
        debug_assert_ne!(before, walk.phase, "a phase ends by moving on");
    }
    p.graph
        .note_users(place.cursor.users_known.max(walk.users_listed));
    p.stage = Some(Stage::of(&walk));
    place.cursor.walk = Some(walk);
    Ok(())
}

/// Commits the cursor with `walk` and `writes` in one atomic batch, then reports progress.
fn commit<D: Doors>(
    p: &Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &Walk,
    writes: Vec<KvWrite>,
) -> Result<(), ConnectorError> {
    place.cursor.walk = Some(walk.clone());
    place.commit_with(writes)?;
    report_progress(p, place, walk);
    Ok(())
}

/// Tells the host where the walk stands.
pub(super) fn report_progress<D: Doors>(
    p: &Pipeline<'_, '_, D>,
    place: &Place<'_, '_, D>,
    walk: &Walk,
) {
    let users = place.cursor.users_known.max(walk.users_listed);
    let pages_for = |per_page: u64| (users > 0).then(|| users.div_ceil(per_page).max(1));
    let expected = match walk.phase {
        Phase::SignIns => pages_for(u64::from(SIGN_IN_PAGE)),
        Phase::Registration => pages_for(100),
        Phase::Users => pages_for(200),
        Phase::Build => Some(u64::from(walk.passes)),
        Phase::Groups | Phase::Roles => None,
    };
    // The reports limits still ahead: what is left of the sign-in data and of the report.
    let left = |phase: Phase, per_page: u64, ms: u64| -> u64 {
        let total = pages_for(per_page).unwrap_or(0);
        let done = if walk.phase == phase { walk.pages } else { 0 };
        total.saturating_sub(done).saturating_mul(ms)
    };
    let wait_ms = (users > 0).then(|| {
        let mut ms = 0;
        if walk.phase == Phase::SignIns && p.config.sign_in == SignIn::Auto {
            ms += left(Phase::SignIns, u64::from(SIGN_IN_PAGE), SIGN_IN_PAGE_MS);
        }
        if matches!(
            walk.phase,
            Phase::SignIns | Phase::Groups | Phase::Roles | Phase::Registration
        ) {
            ms += left(Phase::Registration, 100, REPORT_PAGE_MS);
        }
        ms
    });
    let detail = match (walk.phase, expected) {
        (Phase::Build, _) => format!(
            "joining what the walk read into per-user facts: pass {} of {}",
            walk.passes_done, walk.passes
        ),
        (phase, Some(total)) => format!(
            "full walk: {} page {} of ~{total}",
            phase.name(),
            walk.pages
        ),
        (phase, None) => format!("full walk: {} page {}", phase.name(), walk.pages),
    };
    p.graph.doors().progress(&Progress {
        phase: walk.phase.name().to_string(),
        pages_done: if walk.phase == Phase::Build {
            u64::from(walk.passes_done)
        } else {
            walk.pages
        },
        pages_expected: expected,
        items_done: walk.items,
        wait_ms,
        detail,
    });
}

/// The error of a run stopped in a phase by a failure a later run may not meet: it names
/// the phase and the page, which the next run reads again.
fn stopped(e: GraphError, walk: &Walk) -> ConnectorError {
    e.into_connector(&format!(
        "reading the {} of the full walk (page {}; the walk keeps the {} pages before it and the next run resumes there)",
        walk.phase.name(),
        walk.pages + 1,
        walk.pages
    ))
}

/// A listing's trail, resumed: its page cap counts the pages done in earlier runs.
fn trail(cap: u64, done: u64, start: &str) -> Trail {
    Trail::starting_at(start).capped(cap.saturating_sub(done).max(1))
}

fn sign_ins<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &mut Walk,
) -> Result<(), ConnectorError> {
    if p.config.sign_in != SignIn::Auto {
        walk.next_phase(Phase::Groups);
        return commit(p, place, walk, Vec::new());
    }
    let first = p.config.graph_url(&format!(
        "/users?$select=id,signInActivity&$top={SIGN_IN_PAGE}"
    ));
    let start = walk.link.clone().unwrap_or(first);
    let mut trail = trail(p.graph.per_user_pages(), walk.pages, &start);
    let mut next = Some(start);
    while let Some(url) = next.take() {
        let page = match p.graph.page(GraphGet::new(url)) {
            Ok(page) => page,
            Err(e) if is_not_licensed(&e) => {
                p.sign_in_unavailable(&e);
                walk.unavailable("signInActivity");
                walk.next_phase(Phase::Groups);
                return commit(p, place, walk, Vec::new());
            }
            Err(e) => return Err(stopped(e, walk)),
        };
        if let Some(link) = &page.next_link {
            if let Err(e) = trail.step(p.graph, &page.items, link) {
                p.sign_in_degraded(&e, walk.pages);
                walk.unavailable("signInActivity");
                walk.next_phase(Phase::Groups);
                return commit(p, place, walk, Vec::new());
            }
        }
        let rows: Vec<SignInRow> = page
            .items
            .iter()
            .filter_map(|item| {
                let id = item.get("id").and_then(Value::as_str)?;
                let activity = item.get("signInActivity").and_then(trim_sign_in)?;
                Some(SignInRow(id_hash(id), activity.to_string()))
            })
            .collect();
        walk.users_listed = walk.users_listed.saturating_add(page.items.len() as u64);
        walk.items = walk.items.saturating_add(page.items.len() as u64);
        let mut writes = Vec::new();
        if !rows.is_empty() {
            let bytes = encode(&rows)?;
            walk.record_bytes += bytes.len() as u64;
            writes.push(KvWrite::put(
                walk.record_key(Phase::SignIns, walk.records[0]),
                bytes,
            ));
            walk.records[0] += 1;
        }
        walk.pages += 1;
        next = page.next_link;
        match &next {
            Some(link) => walk.link = Some(link.clone()),
            None => {
                walk.sign_ins_read = true;
                walk.next_phase(Phase::Groups);
                p.graph.note_users(walk.users_listed);
            }
        }
        commit(p, place, walk, writes)?;
    }
    Ok(())
}

fn groups<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &mut Walk,
) -> Result<(), ConnectorError> {
    // Docs: group-delta ("members@delta"; a group's members may be split over several pages,
    // the group appearing again); directory-link lists cap pages at 500 links.
    let first = p
        .config
        .graph_url("/groups/delta?$select=displayName,members");
    let start = walk.link.clone().unwrap_or(first);
    let mut trail = trail(crate::graph::MAX_LISTING_PAGES, walk.pages, &start);
    let mut next = Some(start);
    while let Some(url) = next.take() {
        let page = match p.graph.page(GraphGet::new(url)) {
            Ok(page) => page,
            Err(e) if e.is_passing() => return Err(stopped(e, walk)),
            Err(e) => return groups_unread(p, place, walk, &e),
        };
        match (&page.next_link, &page.delta_link) {
            (Some(link), _) => {
                if let Err(e) = trail.step(p.graph, &page.items, link) {
                    return groups_unread(p, place, walk, &e);
                }
            }
            (None, Some(delta)) => {
                if let Err(e) = p.graph.check_link(delta) {
                    return groups_unread(p, place, walk, &e);
                }
            }
            (None, None) => {}
        }
        let mut rows = Vec::new();
        let mut named: Vec<(u64, GroupName)> = Vec::new();
        let mut unnamed: Vec<(u64, String)> = Vec::new();
        for group in &page.items {
            let Some(gid) = group.get("id").and_then(Value::as_str) else {
                continue;
            };
            if group.get("@removed").is_some() {
                continue;
            }
            let gh = id_hash(gid);
            match group
                .get("displayName")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
            {
                Some(name) => named.push((
                    gh,
                    GroupName {
                        id: gid.to_string(),
                        name: Some(name.to_string()),
                    },
                )),
                None => unnamed.push((gh, gid.to_string())),
            }
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
                if member.get("@removed").is_some() || !matches!(kind, "#microsoft.graph.user" | "")
                {
                    continue;
                }
                if let Some(uid) = member.get("id").and_then(Value::as_str) {
                    rows.push(MemberRow(id_hash(uid), gh));
                }
            }
        }
        let mut writes = Vec::new();
        let named_here: HashSet<u64> = named.iter().map(|(h, _)| *h).collect();
        // A group seen without a name (a continuation page, or a group without one) gets a
        // key only if it has none yet, so a name read on an earlier page is kept.
        unnamed.retain(|(h, _)| !named_here.contains(h));
        unnamed.sort_by_key(|(h, _)| *h);
        unnamed.dedup_by_key(|(h, _)| *h);
        if !unnamed.is_empty() {
            let keys: Vec<String> = unnamed
                .iter()
                .map(|(h, _)| group_key(&walk.gen, *h))
                .collect();
            let stored = facts::get_many(p.graph.doors(), &keys)?;
            for ((h, gid), stored) in unnamed.into_iter().zip(stored) {
                if stored.is_none() {
                    named.push((
                        h,
                        GroupName {
                            id: gid,
                            name: None,
                        },
                    ));
                }
            }
        }
        let mut seen = HashSet::new();
        for (h, name) in named {
            if seen.insert(h) {
                writes.push(KvWrite::put(group_key(&walk.gen, h), encode(&name)?));
            }
        }
        if !rows.is_empty() {
            let bytes = encode(&rows)?;
            walk.record_bytes += bytes.len() as u64;
            writes.push(KvWrite::put(
                walk.record_key(Phase::Groups, walk.records[1]),
                bytes,
            ));
            walk.records[1] += 1;
        }
        walk.items = walk.items.saturating_add(page.items.len() as u64);
        walk.pages += 1;
        match (page.next_link, page.delta_link) {
            (Some(link), _) => {
                walk.link = Some(link.clone());
                next = Some(link);
            }
            (None, delta) => {
                walk.groups_link = delta;
                walk.groups_read = true;
                walk.next_phase(Phase::Roles);
            }
        }
        // A page of many groups' names may pass one batch: the names go first, idempotent.
        while writes.len() > 900 {
            let rest = writes.split_off(900);
            facts::put_many(p.graph.doors(), writes)?;
            writes = rest;
        }
        commit(p, place, walk, writes)?;
    }
    Ok(())
}

fn groups_unread<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &mut Walk,
    e: &GraphError,
) -> Result<(), ConnectorError> {
    let why = refusal(e).unwrap_or("Graph failed");
    let doors = p.graph.doors();
    p.report.warn(
        doors,
        format!(
            "groups/delta was not read ({why}: {e}): memberships come from each user's memberOf, one request per user; grant GroupMember.Read.All"
        ),
    );
    walk.groups_read = false;
    walk.next_phase(Phase::Roles);
    commit(p, place, walk, Vec::new())
}

fn roles<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &mut Walk,
) -> Result<(), ConnectorError> {
    p.enricher.roles(&mut p.report);
    if let Some(why) = p.enricher.roles_passing_failure.clone() {
        return Err(ConnectorError::Upstream(format!(
            "reading the role assignments failed ({why}); the full walk keeps what it staged and the next run resumes at its roles phase"
        )));
    }
    let index = p.enricher.roles(&mut p.report);
    walk.roles_read = index.active.is_some();
    walk.eligible_read = index.eligible.is_some();
    walk.roles_partial = index.active_partial;
    walk.eligible_partial = index.eligible_partial;
    let mut role_groups: Vec<String> = index.groups.iter().cloned().collect();
    role_groups.sort();
    walk.role_groups = role_groups;
    let admins: Admins = index.admins().into_iter().collect();
    if !walk.roles_read {
        walk.unavailable("roleAssignments");
    }
    if !walk.eligible_read {
        walk.unavailable("roleEligibility");
    }
    let (writes, shards) = admin_writes(&walk.gen, &admins, walk.admin_shards)?;
    walk.admin_shards = shards;
    walk.items = admins.len() as u64;
    walk.pages = 1;
    walk.next_phase(Phase::Registration);
    commit(p, place, walk, writes)
}

/// Whether `e` is Graph refusing the `$top` of `url`.
fn refused_top(e: &GraphError, url: &str) -> bool {
    if e.status() != Some(400) || !url.contains("$top=") {
        return false;
    }
    let GraphError::Status { message, .. } = e else {
        return false;
    };
    message.to_ascii_lowercase().contains("$top")
}

fn registration<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &mut Walk,
) -> Result<(), ConnectorError> {
    let base = p
        .config
        .graph_url("/reports/authenticationMethods/userRegistrationDetails");
    let first = |refused: bool| {
        if refused {
            base.clone()
        } else {
            format!("{base}?$top={REGISTRATION_TOP}")
        }
    };
    let start = walk
        .link
        .clone()
        .unwrap_or_else(|| first(place.cursor.registration_top_refused));
    // One entry per user: capped by the users the tenant is known to have.
    let mut trail = trail(p.graph.per_user_pages(), walk.pages, &start);
    let mut next = Some(start);
    while let Some(url) = next.take() {
        let page = match p.graph.page(GraphGet::new(url.clone())) {
            Ok(page) => page,
            Err(e) if walk.pages == 0 && refused_top(&e, &url) => {
                let doors = p.graph.doors();
                p.report.warn(
                    doors,
                    format!(
                        "the userRegistrationDetails report refused $top ({e}): it is read in the pages Graph chooses from now on"
                    ),
                );
                place.cursor.registration_top_refused = true;
                commit(p, place, walk, Vec::new())?;
                next = Some(first(true));
                continue;
            }
            Err(e) if e.is_passing() => return Err(stopped(e, walk)),
            Err(e) => return registration_unread(p, place, walk, &e),
        };
        if let Some(link) = &page.next_link {
            if let Err(e) = trail.step(p.graph, &page.items, link) {
                return registration_unread(p, place, walk, &e);
            }
        }
        let rows: Vec<RegistrationRow> = page
            .items
            .iter()
            .filter_map(|item| {
                let id = item.get("id").and_then(Value::as_str)?;
                Some(RegistrationRow(
                    id_hash(id),
                    item.get("isAdmin").and_then(Value::as_bool),
                    methods_registered(item),
                ))
            })
            .collect();
        walk.users_listed = walk.users_listed.max(walk.items + page.items.len() as u64);
        walk.items = walk.items.saturating_add(page.items.len() as u64);
        let mut writes = Vec::new();
        if !rows.is_empty() {
            let bytes = encode(&rows)?;
            walk.record_bytes += bytes.len() as u64;
            writes.push(KvWrite::put(
                walk.record_key(Phase::Registration, walk.records[2]),
                bytes,
            ));
            walk.records[2] += 1;
        }
        walk.pages += 1;
        next = page.next_link;
        match &next {
            Some(link) => walk.link = Some(link.clone()),
            None => {
                walk.registration_read = true;
                walk.next_phase(Phase::Build);
            }
        }
        commit(p, place, walk, writes)?;
    }
    Ok(())
}

fn registration_unread<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &mut Walk,
    e: &GraphError,
) -> Result<(), ConnectorError> {
    let why = refusal(e).map_or_else(|| format!("{e}"), |w| format!("{w}: {e}"));
    let doors = p.graph.doors();
    p.report.warn(
        doors,
        format!(
            "the userRegistrationDetails report was not read ({why}): MFA comes from each user's authentication methods, one request per user; the report needs Entra ID P1/P2 and AuditLog.Read.All"
        ),
    );
    walk.unavailable("userRegistrationDetails");
    if !p
        .report
        .unavailable
        .iter()
        .any(|u| u == "userRegistrationDetails")
    {
        p.report.unavailable.push("userRegistrationDetails".into());
    }
    walk.registration_read = false;
    walk.next_phase(Phase::Build);
    commit(p, place, walk, Vec::new())
}

/// Reads every record of one source, `RECORDS_PER_READ` a call, handing each to `each`.
fn each_record<D: Doors>(
    doors: &D,
    walk: &Walk,
    phase: Phase,
    count: u64,
    mut each: impl FnMut(&[u8]),
) -> Result<(), ConnectorError> {
    let keys: Vec<String> = (0..count).map(|n| walk.record_key(phase, n)).collect();
    for chunk in keys.chunks(RECORDS_PER_READ) {
        for value in facts::get_many(doors, chunk)?.into_iter().flatten() {
            each(&value);
        }
    }
    Ok(())
}

fn build<D: Doors>(
    p: &mut Pipeline<'_, '_, D>,
    place: &mut Place<'_, '_, D>,
    walk: &mut Walk,
) -> Result<(), ConnectorError> {
    if walk.passes == 0 {
        walk.passes = walk.record_bytes.div_ceil(PASS_BYTES).max(1) as u32;
    }
    let doors = p.graph.doors();
    let admins = if walk.roles_read || walk.eligible_read {
        load_admins(doors, &walk.gen, walk.admin_shards)?.unwrap_or_default()
    } else {
        Admins::new()
    };
    let passes = u64::from(walk.passes);
    while walk.passes_done < walk.passes {
        let pass = u64::from(walk.passes_done);
        let mine = |h: u64| h % passes == pass;
        let mut users: HashMap<u64, UserFacts> = HashMap::new();
        if walk.sign_ins_read {
            each_record(doors, walk, Phase::SignIns, walk.records[0], |bytes| {
                for SignInRow(h, json) in decode::<Vec<SignInRow>>(bytes).unwrap_or_default() {
                    if mine(h) {
                        users.entry(h).or_default().sign_in = Some(json);
                    }
                }
            })?;
        }
        if walk.groups_read {
            each_record(doors, walk, Phase::Groups, walk.records[1], |bytes| {
                for MemberRow(h, g) in decode::<Vec<MemberRow>>(bytes).unwrap_or_default() {
                    if mine(h) {
                        users.entry(h).or_default().add_group(g);
                    }
                }
            })?;
        }
        if walk.registration_read {
            each_record(doors, walk, Phase::Registration, walk.records[2], |bytes| {
                for RegistrationRow(h, admin, methods) in
                    decode::<Vec<RegistrationRow>>(bytes).unwrap_or_default()
                {
                    if mine(h) {
                        let f = users.entry(h).or_default();
                        f.is_admin = admin;
                        f.mfa = Some(ocsf::vocabulary(&Mfa::Registration(methods)));
                    }
                }
            })?;
        }
        for (id, (active, eligible)) in &admins {
            let h = id_hash(id);
            if mine(h) {
                let f = users.entry(h).or_default();
                f.roles = active.clone();
                f.eligible = eligible.clone();
            }
        }
        let writes = users
            .into_iter()
            .filter(|(_, f)| !f.is_empty())
            .map(|(h, f)| Ok(KvWrite::put(user_key(&walk.gen, h), encode(&f)?)))
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        facts::put_many(doors, writes)?;
        walk.passes_done += 1;
        if walk.passes_done == walk.passes {
            walk.next_phase(Phase::Users);
        }
        commit(p, place, walk, Vec::new())?;
    }
    if walk.phase == Phase::Build {
        walk.next_phase(Phase::Users);
        commit(p, place, walk, Vec::new())?;
    }
    Ok(())
}

/// What the users phase joins against: which sources the walk read, and where.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The generation.
    pub gen: String,
    /// Groups staged.
    pub groups_read: bool,
    /// Registration staged.
    pub registration_read: bool,
    /// Sign-in data staged.
    pub sign_ins_read: bool,
    /// Active roles staged.
    pub roles_read: bool,
    /// Eligible roles staged.
    pub eligible_read: bool,
    /// Active roles partial.
    pub roles_partial: bool,
    /// Eligible roles partial.
    pub eligible_partial: bool,
    /// Groups that hold a role.
    pub role_groups: HashSet<String>,
}

impl Stage {
    fn of(walk: &Walk) -> Stage {
        Stage {
            gen: walk.gen.clone(),
            groups_read: walk.groups_read,
            registration_read: walk.registration_read,
            sign_ins_read: walk.sign_ins_read,
            roles_read: walk.roles_read,
            eligible_read: walk.eligible_read,
            roles_partial: walk.roles_partial,
            eligible_partial: walk.eligible_partial,
            role_groups: walk.role_groups.iter().cloned().collect(),
        }
    }
}

/// The page-local sources of a page of users, from their facts: memberships, MFA, roles,
/// sign-in data, and the report's `isAdmin`.
pub struct PageJoin {
    /// Memberships of the page's users (None: not staged; read per user).
    pub memberships: Option<Memberships>,
    /// MFA vocabulary names of the page's users in the report (None: not staged).
    pub mfa: Option<HashMap<String, Vec<String>>>,
    /// Roles of the page's users.
    pub roles: RoleIndex,
    /// Sign-in data of the page's users.
    pub sign_ins: Option<HashMap<String, Value>>,
    /// `isAdmin` of the page's users in the report.
    pub is_admin: HashMap<String, bool>,
}

/// Joins a page's users against the facts of the walk.
pub fn join<D: Doors>(
    stage: &Stage,
    facts: &mut facts::Facts,
    doors: &D,
    ids: &[&str],
) -> Result<PageJoin, ConnectorError> {
    let known = facts.lookup(doors, ids)?;
    let mut memberships = Memberships::default();
    let mut mfa = HashMap::new();
    let mut active = HashMap::new();
    let mut eligible = HashMap::new();
    let mut sign_ins = HashMap::new();
    let mut is_admin = HashMap::new();
    for (id, known) in ids.iter().zip(known) {
        let Some(known) = known else { continue };
        memberships.set(id, known.groups);
        let f = known.facts;
        if let Some(m) = f.mfa {
            mfa.insert(id.to_string(), m);
        }
        if !f.roles.is_empty() {
            active.insert(id.to_string(), f.roles.into_iter().collect());
        }
        if !f.eligible.is_empty() {
            eligible.insert(id.to_string(), f.eligible.into_iter().collect());
        }
        if let Some(s) = f
            .sign_in
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        {
            sign_ins.insert(id.to_string(), s);
        }
        if let Some(a) = f.is_admin {
            is_admin.insert(id.to_string(), a);
        }
    }
    Ok(PageJoin {
        memberships: stage.groups_read.then_some(memberships),
        mfa: stage.registration_read.then_some(mfa),
        roles: RoleIndex {
            active: stage.roles_read.then_some(active),
            eligible: stage.eligible_read.then_some(eligible),
            active_partial: stage.roles_partial,
            eligible_partial: stage.eligible_partial,
            groups: stage.role_groups.clone(),
        },
        sign_ins: stage.sign_ins_read.then_some(sign_ins),
        is_admin,
    })
}

/// After the walk's last page: the cursor takes the new generation and schedules the old one
/// and the records for deletion.
pub fn finish(cursor: &mut super::delta::DeltaCursor) {
    let Some(walk) = cursor.walk.take() else {
        return;
    };
    match cursor.facts_gen.replace(walk.gen.clone()) {
        Some(old) if old != walk.gen => cursor.cleanup.push(generation_prefix(&old)),
        Some(_) => {}
        // The first staged walk: the sharded facts of earlier versions go.
        None => cursor.cleanup.push(LEGACY.to_string()),
    }
    cursor.cleanup.push(Walk::records_prefix(&walk.gen));
    cursor.groups_link = walk.groups_link;
    cursor.admin_shards = walk.admin_shards;
    cursor.users_known = walk.users_delivered.max(walk.users_listed);
    cursor.round = Round::Changes;
}

/// Deletes what finished walks left (old generations, records); resumable: each prefix is
/// dropped from the cursor once it is empty.
pub(super) fn clean_up<D: Doors>(place: &mut Place<'_, '_, D>) -> Result<(), ConnectorError> {
    let doors = place.doors();
    // The sharded facts of the versions before the staged walk.
    if place.cursor.cleanup.iter().any(|c| c == LEGACY) {
        let mut writes: Vec<KvWrite> = (0..16)
            .map(|n| KvWrite::delete(format!("users/facts/{n:02}")))
            .collect();
        writes.push(KvWrite::delete("users/facts/groups".into()));
        facts::put_many(doors, writes)?;
    }
    while let Some(prefix) = place.cursor.cleanup.first().cloned() {
        if prefix != LEGACY {
            let n = facts::delete_all(doors, &prefix)?;
            doors.log(
                Level::Debug,
                &format!("deleted {n} checkpoint keys under '{prefix}'"),
            );
        }
        place.cursor.cleanup.remove(0);
        place.commit()?;
    }
    Ok(())
}

/// The cleanup entry for the facts the versions before the staged walk kept.
pub const LEGACY: &str = "legacy-facts";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::doors::fake::{json, FakeDoors};
    use crate::doors::{HttpRequest, HttpResponse};

    const G: &str = "https://graph.test/v1.0";

    fn config() -> Config {
        Config::parse(&[
            ("tenant_id".to_string(), "t".to_string()),
            ("client_id".to_string(), "c".to_string()),
            (
                "graph_endpoint".to_string(),
                "https://graph.test".to_string(),
            ),
        ])
        .unwrap()
    }

    fn user(id: &str) -> Value {
        serde_json::json!({"id": id, "userPrincipalName": format!("{id}@contoso.test"),
            "displayName": id, "accountEnabled": true})
    }

    /// A small tenant: u1, u2, u3 over two pages of every source; u1 in "All" and "Admins",
    /// u3 in "All" (its members split over two groups/delta pages); u2 a Global
    /// Administrator; u1 registered for the Authenticator. The report refuses `$top` when
    /// `top_refused`.
    fn tenant(r: &HttpRequest, top_refused: bool) -> HttpResponse {
        let url = r.url.as_str();
        let page = |items: Value, next: Option<&str>, delta: Option<&str>| {
            let mut body = serde_json::json!({ "value": items });
            if let Some(n) = next {
                body["@odata.nextLink"] = format!("{G}{n}").into();
            }
            if let Some(d) = delta {
                body["@odata.deltaLink"] = format!("{G}{d}").into();
            }
            json(200, &[], &body.to_string())
        };
        let path = url.strip_prefix(G).unwrap_or(url);
        if url.contains("/token") {
            return json(200, &[], r#"{"access_token":"tok","expires_in":3599}"#);
        }
        match path {
            "/users?$select=id,signInActivity&$top=500" => page(
                serde_json::json!([{"id":"u1","signInActivity":{"lastSignInDateTime":"2026-01-02T03:04:05Z"}}]),
                Some("/users?$skiptoken=s2"),
                None,
            ),
            "/users?$skiptoken=s2" => page(
                serde_json::json!([{"id":"u2","signInActivity":{"lastSignInDateTime":"2026-02-02T03:04:05Z"}},{"id":"u3"}]),
                None,
                None,
            ),
            "/groups/delta?$select=displayName,members" => page(
                serde_json::json!([{"id":"g1","displayName":"All","members@delta":[{"id":"u1"},{"id":"u2","@removed":{}}]}]),
                Some("/groups/delta?$skiptoken=g2"),
                None,
            ),
            "/groups/delta?$skiptoken=g2" => page(
                serde_json::json!([{"id":"g1","members@delta":[{"id":"u3"}]},
                    {"id":"g2","displayName":"Admins","members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u1"},{"@odata.type":"#microsoft.graph.device","id":"d1"}]}]),
                None,
                Some("/groups/delta?$deltatoken=gd"),
            ),
            "/roleManagement/directory/roleDefinitions" => page(
                serde_json::json!([{"id":"ga","displayName":"Global Administrator"}]),
                None,
                None,
            ),
            "/roleManagement/directory/roleAssignments?$expand=principal" => page(
                serde_json::json!([{"principalId":"u2","roleDefinitionId":"ga",
                    "principal":{"@odata.type":"#microsoft.graph.user","id":"u2"}}]),
                None,
                None,
            ),
            "/roleManagement/directory/roleEligibilityScheduleInstances?$expand=principal" => {
                page(serde_json::json!([]), None, None)
            }
            "/reports/authenticationMethods/userRegistrationDetails?$top=999" if top_refused => {
                json(
                    400,
                    &[],
                    r#"{"error":{"code":"BadRequest","message":"Query option '$top' is not allowed."}}"#,
                )
            }
            "/reports/authenticationMethods/userRegistrationDetails?$top=999"
            | "/reports/authenticationMethods/userRegistrationDetails" => page(
                serde_json::json!([{"id":"u1","isAdmin":false,"methodsRegistered":["microsoftAuthenticatorPush"]}]),
                Some("/reports/authenticationMethods/userRegistrationDetails?$skiptoken=m2"),
                None,
            ),
            "/reports/authenticationMethods/userRegistrationDetails?$skiptoken=m2" => page(
                serde_json::json!([{"id":"u2","isAdmin":true,"methodsRegistered":[]}]),
                None,
                None,
            ),
            p if p.starts_with("/users/delta?$select=") => page(
                serde_json::json!([user("u1"), user("u2")]),
                Some("/users/delta?$skiptoken=d2"),
                None,
            ),
            "/users/delta?$skiptoken=d2" => page(
                serde_json::json!([user("u3")]),
                None,
                Some("/users/delta?$deltatoken=dd"),
            ),
            other => panic!("unexpected request {other}"),
        }
    }

    /// GETs sent (token requests left out), in order.
    fn gets<F: Fn(usize, &HttpRequest) -> HttpResponse>(doors: &FakeDoors<F>) -> Vec<String> {
        doors
            .calls
            .borrow()
            .iter()
            .flat_map(|(_, reqs)| reqs.iter())
            .filter(|r| r.method == "GET")
            .map(|r| r.url.strip_prefix(G).unwrap_or(&r.url).to_string())
            .collect()
    }

    fn last_events<F: Fn(usize, &HttpRequest) -> HttpResponse>(
        doors: &FakeDoors<F>,
    ) -> HashMap<String, Value> {
        doors
            .events
            .borrow()
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .map(|e| (e["user"]["uid"].as_str().unwrap().to_string(), e))
            .collect()
    }

    #[test]
    fn a_walk_stopped_after_every_request_completes_reading_each_page_at_most_twice() {
        let cfg = config();
        // Uninterrupted, for the reference count.
        let whole = FakeDoors::new(|_, r| tenant(r, true));
        super::super::run(&whole, &cfg, "0.1.0").expect("an uninterrupted walk");
        let reference = gets(&whole);
        let reference_events = last_events(&whole);
        assert_eq!(reference_events.len(), 3);

        // Stopped after 1, 2, 3, … fetch calls of each run, until a run completes.
        let doors = FakeDoors::new(|_, r| tenant(r, true));
        let mut runs = 0;
        loop {
            runs += 1;
            assert!(runs < 100, "the walk never completes");
            let start = doors.calls.borrow().len();
            doors.fail_from_call.set(Some(start + 2));
            match super::super::run(&doors, &cfg, "0.1.0") {
                Ok(_) => break,
                Err(e) if runs > 20 => eprintln!("run {runs}: {e}"),
                Err(_) => {}
            }
        }
        assert!(
            runs > 5,
            "the walk was interrupted in several phases: {runs} runs"
        );
        let all = gets(&doors);
        // Every page is read at most twice: once, and once more if a stop took the run while
        // it was in flight (its records were not committed).
        for url in &reference {
            let n = all.iter().filter(|u| *u == url).count();
            assert!((1..=2).contains(&n), "{url} read {n} times: {all:#?}");
        }
        assert!(
            all.len() <= reference.len() + runs,
            "{} GETs over {runs} runs against {} for one run",
            all.len(),
            reference.len()
        );
        // The refused $top is asked once and remembered.
        let top = all.iter().filter(|u| u.contains("$top=999")).count();
        assert_eq!(top, 1, "{all:#?}");
        // Every user delivered, complete, the same as the uninterrupted walk.
        let events = last_events(&doors);
        assert_eq!(events.len(), 3);
        for (id, e) in &reference_events {
            let mut a = e["user"].clone();
            let mut b = events[id]["user"].clone();
            for v in [&mut a, &mut b] {
                v.as_object_mut().unwrap().remove("uid_alt");
            }
            assert_eq!(a, b, "user {id}");
        }
        let u1 = &events["u1"];
        let groups: Vec<&str> = u1["user"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(groups, vec!["All", "Admins"], "{u1}");
        assert_eq!(events["u3"]["user"]["groups"][0]["name"], "All");
        assert_eq!(events["u2"]["user"]["type"], "Admin");
        assert_eq!(events["u1"]["user"]["type"], "User");
        assert_eq!(events["u1"]["user"]["has_mfa"], true);
        // Nothing staged is left: the cursor, the facts of the new generation, the admins.
        let keys: Vec<String> = doors.kv.borrow().keys().cloned().collect();
        assert!(
            keys.iter().all(|k| !k.starts_with("walk/")),
            "records left: {keys:?}"
        );
        let cursor: super::super::DeltaCursor =
            serde_json::from_slice(&doors.kv.borrow()["users/delta-cursor"].0).unwrap();
        assert!(cursor.walk.is_none() && cursor.cleanup.is_empty());
        assert_eq!(cursor.round, Round::Changes);
        assert!(cursor.registration_top_refused);
        let gen = cursor.facts_gen.unwrap();
        assert!(keys
            .iter()
            .all(|k| k == "users/delta-cursor" || k.starts_with(&format!("facts/{gen}/"))));
        // Progress was reported through every phase.
        let phases: HashSet<String> = doors
            .progress
            .borrow()
            .iter()
            .map(|p| p.phase.clone())
            .collect();
        for phase in [
            "sign-in data",
            "groups",
            "roles",
            "registration report",
            "build",
            "users",
        ] {
            assert!(phases.contains(phase), "{phase} missing from {phases:?}");
        }
    }

    #[test]
    fn no_checkpoint_value_holds_the_tenant_and_the_cursor_holds_no_admins() {
        let cfg = config();
        let doors = FakeDoors::new(|_, r| tenant(r, false));
        super::super::run(&doors, &cfg, "0.1.0").unwrap();
        let kv = doors.kv.borrow();
        let cursor = String::from_utf8_lossy(&kv["users/delta-cursor"].0).to_string();
        assert!(!cursor.contains("u2"), "no user id in the cursor: {cursor}");
        let admins: Vec<&String> = kv.keys().filter(|k| k.contains("/admins/")).collect();
        assert_eq!(admins.len(), 1, "{admins:?}");
    }

    #[test]
    fn is_admin_proves_admin_only_where_the_assignments_were_not_read() {
        let cfg = config();
        let doors = FakeDoors::new(|_, r| {
            if r.url.contains("/roleAssignments") || r.url.contains("/roleDefinitions") {
                return json(
                    403,
                    &[],
                    r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}"#,
                );
            }
            tenant(r, false)
        });
        let report = super::super::run(&doors, &cfg, "0.1.0").unwrap();
        assert!(report.unavailable.contains(&"roleAssignments".to_string()));
        let events = last_events(&doors);
        assert_eq!(events["u2"]["user"]["type"], "Admin", "isAdmin proves it");
        assert_eq!(
            events["u1"]["user"]["type"], "Unknown",
            "isAdmin false proves nothing"
        );
        assert_eq!(events["u3"]["user"]["type"], "Unknown", "not in the report");
    }

    #[test]
    fn generations_are_short_and_ordered() {
        assert_eq!(generation(0), "0");
        assert_eq!(generation(35), "z");
        assert_eq!(generation(36), "10");
        let a = generation(1_765_000_000_000);
        let b = generation(1_765_000_000_001);
        assert!(a < b && a.len() == b.len() && a.len() <= 9, "{a} {b}");
    }
}
