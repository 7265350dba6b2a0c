//! Groups, roles and MFA of users, from the sources that see everything, in as few Graph
//! requests as the run calls for.
//!
//! - **Roles, every run** (a few requests for the whole tenant): role definitions (built-in
//!   and custom), active role assignments and PIM-eligible assignments from
//!   `/roleManagement/directory/*`, principals expanded; a role-assignable group's members
//!   hold its roles (such groups cannot nest, so its direct members are all). Unlike
//!   `directoryRoles` or `transitiveMemberOf`, these see custom roles, roles scoped to an
//!   administrative unit or an application, and eligible admins (`docs/GRAPH.md`,
//!   "Roles"; MAPPING.md `type_id`).
//! - **Tenant-wide on a full walk** ([`Enricher::load_tenant_wide`]): memberships from
//!   `/groups/delta` with `members` (every group with its direct members, big groups over
//!   several pages), and MFA from the `userRegistrationDetails` report when the tenant is
//!   licensed for it. Never a request per user.
//! - **Remembered between walks** (`facts.rs`): an incremental run takes a changed user's
//!   groups and methods from what the last walk learnt, kept current from the groups delta.
//! - **Per user otherwise** (users the connector does not know yet, or a tenant without the
//!   report): `memberOf` and `authentication/methods`, twenty to a `$batch`.
//!
//! Both MFA sources map to one method vocabulary (`ocsf.rs`), so events do not flap between
//! runs. Each item of a batch succeeds or fails on its own; a user whose part failed is
//! emitted without that part and counted as partial. An optional source Graph refuses for a
//! licence or a permission degrades with one warning that names what is missing.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::graph::{path_segment, refusal, GraphClient, GraphError, GraphGet, SubGet};
use crate::ocsf::{Enrichment, GroupRef, Mfa};
use connector_sdk::doors::{Doors, Level};
use connector_sdk::paging::Trail;
use connector_sdk::report::Report;

/// Who holds which role, read from the role-management API.
#[derive(Debug, Default)]
pub struct RoleIndex {
    /// User id → display names of active roles; None when assignments were unreadable.
    pub active: Option<HashMap<String, BTreeSet<String>>>,
    /// User id → display names of eligible roles; None when eligibility was unreadable.
    pub eligible: Option<HashMap<String, BTreeSet<String>>>,
    /// The members of a role-assignable group holding an active role could not be read (a
    /// refusal): users absent from `active` may hold a role through it, so they are unknown,
    /// not role-less; users present still hold what is listed.
    pub active_partial: bool,
    /// The same for eligible roles.
    pub eligible_partial: bool,
    /// User id → the role-holding groups it is a direct member of, among those whose members
    /// were read by this index (an incremental round reads only groups new since the last run:
    /// see [`Enricher::known_role_groups`]).
    pub via: HashMap<String, BTreeSet<String>>,
    /// Group id → the (active, eligible) role names it grants.
    pub grants: HashMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    /// User id → the (active, eligible) role names assigned to the user itself.
    pub direct: HashMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    /// Groups that hold a role, active or eligible (role-assignable groups): listed first
    /// when a user's groups must be cut to fit one event (`ocsf::map_user_within`).
    pub groups: std::collections::HashSet<String>,
}

impl RoleIndex {
    /// Users holding any role, with (active, eligible) names (the tests' view; a walk keeps
    /// `sync::staged::admins_of`, which adds the groups each holds roles through).
    #[cfg(test)]
    pub fn admins(&self) -> HashMap<String, (Vec<String>, Vec<String>)> {
        let mut out: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
        for (id, names) in self.active.iter().flatten() {
            out.entry(id.clone()).or_default().0 = names.iter().cloned().collect();
        }
        for (id, names) in self.eligible.iter().flatten() {
            out.entry(id.clone()).or_default().1 = names.iter().cloned().collect();
        }
        out
    }
}

/// What one list of role assignments says (`Enricher::holders`).
struct Holders {
    /// User id → role names, directly or through the groups whose members were read.
    map: HashMap<String, BTreeSet<String>>,
    /// A group's members were refused.
    partial: bool,
    /// User id → role names assigned to the user itself.
    direct: HashMap<String, BTreeSet<String>>,
    /// Group id → role names assigned to the group.
    grants: HashMap<String, BTreeSet<String>>,
    /// User id → the groups (whose members were read) it holds roles through.
    via: HashMap<String, BTreeSet<String>>,
}

/// Group memberships of every user, from one walk of `/groups/delta`.
#[derive(Debug, Default)]
pub struct Memberships {
    groups: Vec<GroupRef>,
    by_user: HashMap<String, Vec<u32>>,
    /// The groups delta link the walk ended with.
    pub delta_link: Option<String>,
}

impl Memberships {
    /// Sets a user's direct groups (a page joined against staged facts).
    pub fn set(&mut self, user: &str, groups: Vec<GroupRef>) {
        let mut slots = Vec::with_capacity(groups.len());
        for g in groups {
            slots.push(self.groups.len() as u32);
            self.groups.push(g);
        }
        self.by_user.insert(user.to_string(), slots);
    }

    /// The direct groups of a user, by id (empty when the user is in none).
    pub fn of(&self, user: &str) -> Vec<GroupRef> {
        let mut groups: Vec<GroupRef> = self
            .by_user
            .get(user)
            .map(|ids| {
                ids.iter()
                    .map(|&i| self.groups[i as usize].clone())
                    .collect()
            })
            .unwrap_or_default();
        // By id, as per-user reads give them too: the order never flaps between sources.
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        groups
    }
}

/// Enriches users for one run.
pub struct Enricher<'g, 'a, D: Doors> {
    graph: &'g GraphClient<'a, D>,
    roles: Option<RoleIndex>,
    memberships: Option<Memberships>,
    /// User id → `methodsRegistered`, from the report.
    registration: Option<HashMap<String, Vec<String>>>,
    /// Per-user methods are refused (permission): MFA stays unknown.
    methods_refused: bool,
    /// A role read failed in a way a later run may not meet (`GraphError::is_passing`).
    pub roles_passing_failure: Option<String>,
    /// Role-holding groups whose members the caller already knows (an incremental round:
    /// from the last run, kept current by the groups delta): their members are not read
    /// again. None: every role group's members are read.
    pub known_role_groups: Option<std::collections::HashSet<String>>,
    /// User id → MFA vocabulary names, from a page joined against staged facts (a user not
    /// in it: unknown).
    staged_mfa: Option<HashMap<String, Vec<String>>>,
}

impl<'g, 'a, D: Doors> Enricher<'g, 'a, D> {
    /// An enricher that has read nothing yet.
    pub fn new(graph: &'g GraphClient<'a, D>) -> Self {
        Enricher {
            graph,
            roles: None,
            memberships: None,
            registration: None,
            methods_refused: false,
            roles_passing_failure: None,
            known_role_groups: None,
            staged_mfa: None,
        }
    }

    /// Installs a role index computed elsewhere (an incremental round's, from the last run's
    /// admins and the groups delta): enrichment takes roles from it, reading none.
    pub fn install_roles(&mut self, roles: RoleIndex) {
        self.roles = Some(roles);
    }

    /// Forgets what [`Enricher::install_page`] installed (after a walk's last page: later
    /// users of the run are enriched as in an incremental round).
    pub fn clear_page(&mut self) {
        self.memberships = None;
        self.staged_mfa = None;
        self.roles = None;
    }

    /// Installs the sources of one page of users joined against a staged walk's facts: what
    /// the walk read is taken from there (never read again); what it could not read is read
    /// per user, as without the walk.
    pub fn install_page(
        &mut self,
        memberships: Option<Memberships>,
        mfa: Option<HashMap<String, Vec<String>>>,
        roles: RoleIndex,
    ) {
        self.memberships = memberships;
        self.staged_mfa = mfa;
        self.roles = Some(roles);
    }

    /// The role index (read on first use).
    pub fn roles(&mut self, report: &mut Report) -> &RoleIndex {
        if self.roles.is_none() {
            self.roles = Some(self.read_roles(report));
        }
        self.roles.get_or_insert_with(RoleIndex::default)
    }

    /// Groups that hold a role (empty until the assignments are read, or when they were not).
    pub fn role_groups(&self) -> &std::collections::HashSet<String> {
        static NONE: std::sync::OnceLock<std::collections::HashSet<String>> =
            std::sync::OnceLock::new();
        self.roles
            .as_ref()
            .map_or_else(|| NONE.get_or_init(Default::default), |r| &r.groups)
    }

    /// Reads the tenant-wide sources of a full walk: memberships from the groups delta and
    /// the registration report. Returns the groups delta link, when the walk reached one.
    pub fn load_tenant_wide(&mut self, report: &mut Report) -> Option<String> {
        self.roles(report);
        if self.memberships.is_none() {
            match self.read_groups_delta() {
                Ok(m) => self.memberships = Some(m),
                Err(e) => {
                    let why = refusal(&e).unwrap_or("Graph failed");
                    report.warn(
                        self.graph.doors(),
                        format!(
                            "groups/delta was not read ({why}: {e}): memberships come from each user's memberOf, one request per user; grant GroupMember.Read.All"
                        ),
                    );
                }
            }
        }
        if self.registration.is_none() {
            match self.read_registration_report() {
                Ok(r) => self.registration = Some(r),
                Err(e) => {
                    let why = refusal(&e).map_or_else(|| format!("{e}"), |w| format!("{w}: {e}"));
                    report.warn(
                        self.graph.doors(),
                        format!(
                            "the userRegistrationDetails report was not read ({why}): MFA comes from each user's authentication methods, one request per user; the report needs Entra ID P1/P2 and AuditLog.Read.All"
                        ),
                    );
                    if !report
                        .unavailable
                        .iter()
                        .any(|u| u == "userRegistrationDetails")
                    {
                        report.unavailable.push("userRegistrationDetails".into());
                    }
                }
            }
        }
        self.memberships.as_ref().and_then(|m| m.delta_link.clone())
    }

    /// Role definitions, active assignments and eligibility.
    fn read_roles(&mut self, report: &mut Report) -> RoleIndex {
        let cfg = self.graph.config();
        // Docs: rbacapplication-list-roledefinitions (supports $filter and $expand only: no
        // $select) and
        // rbacapplication-list-roleassignments / -roleeligibilityscheduleinstances ("supports
        // the $select, $filter, and $expand OData query parameters"; `$expand=principal` gives
        // the principal's @odata.type).
        let mut lists = self.graph.collect_lists(vec![
            GraphGet::new(cfg.graph_url("/roleManagement/directory/roleDefinitions")),
            GraphGet::new(
                cfg.graph_url("/roleManagement/directory/roleAssignments?$expand=principal"),
            ),
            GraphGet::new(cfg.graph_url(
                "/roleManagement/directory/roleEligibilityScheduleInstances?$expand=principal",
            )),
        ]);
        let eligible = lists.pop().unwrap_or_else(|| Ok(Vec::new()));
        let active = lists.pop().unwrap_or_else(|| Ok(Vec::new()));
        let definitions = lists.pop().unwrap_or_else(|| Ok(Vec::new()));
        let role_groups = [&active, &eligible]
            .into_iter()
            .flat_map(|list| list.iter().flatten())
            .filter(|a| a.get("principal").map(odata_type) == Some("#microsoft.graph.group"))
            .filter_map(|a| a.get("principalId").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let names: HashMap<String, String> = match &definitions {
            Ok(defs) => defs
                .iter()
                .filter_map(|d| {
                    let id = d.get("id").and_then(Value::as_str)?;
                    let name = d
                        .get("displayName")
                        .and_then(Value::as_str)
                        .filter(|n| !n.trim().is_empty())
                        .unwrap_or(id);
                    Some((id.to_string(), name.to_string()))
                })
                .collect(),
            Err(_) => HashMap::new(),
        };
        let (mut active_partial, mut eligible_partial) = (false, false);
        let mut via: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut grants: HashMap<String, (BTreeSet<String>, BTreeSet<String>)> = HashMap::new();
        let mut direct: HashMap<String, (BTreeSet<String>, BTreeSet<String>)> = HashMap::new();
        let mut fold = |h: &Holders, active: bool| {
            for (user, groups) in &h.via {
                via.entry(user.clone())
                    .or_default()
                    .extend(groups.iter().cloned());
            }
            for (gid, names) in &h.grants {
                let g = grants.entry(gid.clone()).or_default();
                if active { &mut g.0 } else { &mut g.1 }.extend(names.iter().cloned());
            }
            for (user, names) in &h.direct {
                let d = direct.entry(user.clone()).or_default();
                if active { &mut d.0 } else { &mut d.1 }.extend(names.iter().cloned());
            }
        };
        let active = match (definitions, active) {
            (Ok(_), Ok(items)) => match self.holders(&items, &names, report) {
                Ok(h) => {
                    active_partial = h.partial;
                    fold(&h, true);
                    Some(h.map)
                }
                Err(e) => {
                    self.roles_unread(report, &e);
                    None
                }
            },
            (Err(e), _) | (_, Err(e)) => {
                self.roles_unread(report, &e);
                None
            }
        };
        let eligible = match eligible.and_then(|items| self.holders(&items, &names, report)) {
            Ok(h) => {
                eligible_partial = h.partial;
                fold(&h, false);
                Some(h.map)
            }
            Err(e) => {
                if e.is_passing() {
                    self.roles_passing_failure
                        .get_or_insert_with(|| e.to_string());
                }
                let why = refusal(&e).map_or_else(|| format!("{e}"), |w| format!("{w}: {e}"));
                report.warn(
                    self.graph.doors(),
                    format!(
                        "PIM-eligible role assignments were not read ({why}): eligible_roles is omitted and eligible-only admins are not marked Admin; eligibility needs Entra ID P2 and RoleEligibilitySchedule.Read.Directory or RoleManagement.Read.Directory"
                    ),
                );
                if !report.unavailable.iter().any(|u| u == "roleEligibility") {
                    report.unavailable.push("roleEligibility".into());
                }
                None
            }
        };
        RoleIndex {
            active,
            eligible,
            active_partial,
            eligible_partial,
            via,
            grants,
            direct,
            groups: role_groups,
        }
    }

    fn roles_unread(&mut self, report: &mut Report, e: &GraphError) {
        if e.is_passing() {
            self.roles_passing_failure
                .get_or_insert_with(|| e.to_string());
        }
        report.warn(
            self.graph.doors(),
            format!(
                "role assignments were not read ({e}): user.type is Unknown unless another source proves a role; grant RoleManagement.Read.Directory"
            ),
        );
        if !report.unavailable.iter().any(|u| u == "roleAssignments") {
            report.unavailable.push("roleAssignments".into());
        }
    }

    /// User id → role names, from assignment items (users directly, groups through their
    /// direct members), and whether a group's members were refused (the map is then partial:
    /// the direct holders and the readable groups' members). A failure a later run may not meet
    /// fails the whole read.
    fn holders(
        &self,
        items: &[Value],
        names: &HashMap<String, String>,
        report: &mut Report,
    ) -> Result<Holders, GraphError> {
        let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut groups: HashMap<String, BTreeSet<String>> = HashMap::new();
        for a in items {
            let (Some(principal), Some(def)) = (
                a.get("principalId").and_then(Value::as_str),
                a.get("roleDefinitionId").and_then(Value::as_str),
            ) else {
                continue;
            };
            let name = names.get(def).cloned().unwrap_or_else(|| def.to_string());
            let kind = a
                .get("principal")
                .map(odata_type)
                .unwrap_or("#microsoft.graph.user");
            match kind {
                "#microsoft.graph.group" => {
                    groups
                        .entry(principal.to_string())
                        .or_default()
                        .insert(name);
                }
                // Service principals hold roles too; they are not users.
                "#microsoft.graph.servicePrincipal" => {}
                _ => {
                    out.entry(principal.to_string()).or_default().insert(name);
                }
            }
        }
        let direct = out.clone();
        let grants = groups.clone();
        let mut via: HashMap<String, BTreeSet<String>> = HashMap::new();
        // Groups whose members the caller knows already are not read again.
        if let Some(known) = &self.known_role_groups {
            groups.retain(|gid, _| !known.contains(gid));
        }
        if groups.is_empty() {
            return Ok(Holders {
                map: out,
                partial: false,
                direct,
                grants,
                via,
            });
        }
        // A group id that would change the request's path (`.`, `..`: graph/encode.rs) is
        // skipped with a warning, as a user without a usable id is.
        let groups: Vec<(String, BTreeSet<String>, String)> = groups
            .into_iter()
            .filter_map(|(gid, granted)| match path_segment(&gid) {
                Some(seg) => Some((gid, granted, seg)),
                None => {
                    report.warn(
                        self.graph.doors(),
                        format!(
                            "a role assignment names group '{gid}', an id that would change a request's path: its members are not read, and the roles it grants are not marked on them"
                        ),
                    );
                    None
                }
            })
            .collect();
        let cfg = self.graph.config();
        // Role-assignable groups cannot be nested (GRAPH.md, "Roles"): direct members are all
        // the holders. No OData cast: a cast is an advanced query (aad-advanced-queries). Docs
        // (group-list-members): `$select` and `$top` supported; Graph serves at most 500
        // directory links a page whatever `$top` asks (GRAPH.md, "Incremental sync: delta"),
        // and the next links are followed.
        let members = self.graph.batch_collect(
            groups
                .iter()
                .map(|(_, _, seg)| {
                    SubGet::new(
                        cfg.graph_url(&format!("/groups/{seg}/members?$select=id&$top=999")),
                    )
                })
                .collect(),
        );
        let mut partial = false;
        for ((gid, granted, _), members) in groups.iter().zip(members) {
            let members = match members {
                Ok(members) => members,
                Err(e) if e.is_passing() => return Err(e),
                Err(e) => {
                    report.warn(
                        self.graph.doors(),
                        format!(
                            "the members of role-assignable group '{gid}' were not read ({e}): users holding a role only through it are Unknown; users holding one directly are still Admin"
                        ),
                    );
                    partial = true;
                    continue;
                }
            };
            for m in members {
                let Some(id) = m.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if matches!(odata_type(&m), "#microsoft.graph.user" | "") {
                    out.entry(id.to_string())
                        .or_default()
                        .extend(granted.iter().cloned());
                    via.entry(id.to_string()).or_default().insert(gid.clone());
                }
            }
        }
        Ok(Holders {
            map: out,
            partial,
            direct,
            grants,
            via,
        })
    }

    /// Every group with its direct user members, from one full round of `/groups/delta`.
    fn read_groups_delta(&self) -> Result<Memberships, GraphError> {
        let cfg = self.graph.config();
        // Docs: group-delta ("members@delta"; a group's members may be split over several
        // pages, the group appearing again); directory-link lists cap pages at 500 links.
        let mut next = Some(GraphGet::new(
            cfg.graph_url("/groups/delta?$select=displayName,members"),
        ));
        let mut m = Memberships::default();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut trail = Trail::default();
        while let Some(get) = next.take() {
            let page = self.graph.page(get)?;
            for group in &page.items {
                let Some(gid) = group.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if group.get("@removed").is_some() {
                    continue;
                }
                let name = group
                    .get("displayName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_string);
                let slot = *index.entry(gid.to_string()).or_insert_with(|| {
                    m.groups.push(GroupRef {
                        id: gid.to_string(),
                        display_name: None,
                    });
                    (m.groups.len() - 1) as u32
                });
                if name.is_some() {
                    m.groups[slot as usize].display_name = name;
                }
                for member in group
                    .get("members@delta")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if member.get("@removed").is_some()
                        || !matches!(odata_type(member), "#microsoft.graph.user" | "")
                    {
                        continue;
                    }
                    if let Some(uid) = member.get("id").and_then(Value::as_str) {
                        let list = m.by_user.entry(uid.to_string()).or_default();
                        if !list.contains(&slot) {
                            list.push(slot);
                        }
                    }
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(link), _) => {
                    self.graph.follow(&mut trail, &page.items, &link)?;
                    next = Some(GraphGet::new(link));
                }
                (None, delta) => {
                    // Stored in the cursor: checked before it gets there.
                    if let Some(d) = &delta {
                        self.graph.check_link(d)?;
                    }
                    m.delta_link = delta;
                }
            }
        }
        Ok(m)
    }

    /// Every page of the registration report: user id → `methodsRegistered`.
    fn read_registration_report(&self) -> Result<HashMap<String, Vec<String>>, GraphError> {
        // Docs (authenticationmethodsroot-list-userregistrationdetails): only $filter and
        // $orderby are supported, so no $select and no $top; the server picks the page size.
        let mut next =
            Some(GraphGet::new(self.graph.config().graph_url(
                "/reports/authenticationMethods/userRegistrationDetails",
            )));
        let mut out = HashMap::new();
        // One entry per user: capped by the users the tenant is known to have.
        let mut trail = Trail::default().capped(self.graph.per_user_pages());
        while let Some(get) = next.take() {
            let page = self.graph.page(get)?;
            for item in &page.items {
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    out.insert(id.to_string(), methods_registered(item));
                }
            }
            if let Some(link) = &page.next_link {
                self.graph.follow(&mut trail, &page.items, link)?;
            }
            next = page.next_link.map(GraphGet::new);
        }
        Ok(out)
    }

    /// Groups, roles and MFA of each user of `ids`, and whether any part failed. `known` holds
    /// what the connector remembers of users between full walks (`facts.rs`): a remembered
    /// user's groups and methods are not read again.
    pub fn enrich(
        &mut self,
        ids: &[&str],
        known: &[Option<crate::facts::Known>],
        report: &mut Report,
    ) -> Vec<(Enrichment, bool)> {
        self.roles(report);
        let cfg = self.graph.config();
        // Per user: its path segment (None: an id that would change the request's path,
        // which the pipeline skips before it gets here), (read groups, read methods).
        let segs: Vec<Option<String>> = ids.iter().map(|id| path_segment(id)).collect();
        let plan: Vec<(bool, bool)> = segs
            .iter()
            .enumerate()
            .map(|(n, seg)| {
                let remembered = known.get(n).and_then(Option::as_ref);
                (
                    seg.is_some() && self.memberships.is_none() && remembered.is_none(),
                    seg.is_some()
                        && self.registration.is_none()
                        && self.staged_mfa.is_none()
                        && !self.methods_refused
                        && remembered.is_none_or(|k| k.mfa.is_none()),
                )
            })
            .collect();
        let mut subs = Vec::with_capacity(ids.len() * 2);
        for (seg, &(groups, methods)) in segs.iter().zip(&plan) {
            let Some(seg) = seg else { continue };
            if groups {
                subs.push(SubGet::new(cfg.graph_url(&format!(
                    "/users/{seg}/memberOf?$select=id,displayName"
                ))));
            }
            if methods {
                // Docs (authentication-list-methods): no optional query parameters.
                subs.push(SubGet::new(
                    cfg.graph_url(&format!("/users/{seg}/authentication/methods")),
                ));
            }
        }
        let mut results = if subs.is_empty() {
            Vec::new()
        } else {
            self.graph.batch_collect(subs)
        }
        .into_iter();
        let roles = self.roles.as_ref();
        let mut out = Vec::with_capacity(ids.len());
        let mut refused: Option<GraphError> = None;
        for (n, id) in ids.iter().enumerate() {
            let (read_groups, read_methods) = plan[n];
            let remembered = known.get(n).and_then(Option::as_ref);
            let mut e = Enrichment::default();
            let mut partial = false;
            if segs[n].is_none() {
                partial |= self.failed(
                    id,
                    "groups and methods",
                    Some(Err(GraphError::Malformed(
                        "its id would change the request's path".into(),
                    ))),
                );
            }
            if read_groups {
                match results.next() {
                    Some(Ok(items)) => read_member_of(&items, &mut e),
                    other => partial |= self.failed(id, "memberOf", other),
                }
            } else if let Some(m) = &self.memberships {
                e.groups = Some(m.of(id));
            } else if let Some(k) = remembered {
                e.groups = Some(k.groups.clone());
            }
            if let Some(r) = roles {
                // A user absent from a partial index may hold a role through the group whose
                // members were not read: unknown, not role-less.
                let held = |index: &Option<HashMap<String, BTreeSet<String>>>, partial: bool| {
                    index.as_ref().and_then(|a| match a.get(*id) {
                        Some(s) => Some(s.iter().cloned().collect::<Vec<String>>()),
                        None if partial => None,
                        None => Some(Vec::new()),
                    })
                };
                e.roles = held(&r.active, r.active_partial);
                e.eligible_roles = held(&r.eligible, r.eligible_partial);
            }
            if read_methods {
                match results.next() {
                    Some(Ok(items)) => e.mfa = Some(methods_mfa(&items)),
                    Some(Err(err)) if refusal(&err).is_some() => refused = Some(err),
                    other => partial |= self.failed(id, "authentication methods", other),
                }
            } else if let Some(reg) = &self.registration {
                // A user not in the report yet (brand new): has_mfa stays unknown.
                e.mfa = reg.get(*id).map(|m| Mfa::Registration(m.clone()));
            } else if let Some(staged) = &self.staged_mfa {
                e.mfa = staged.get(*id).map(|m| Mfa::Vocabulary(m.clone()));
            } else if let Some(names) = remembered.and_then(|k| k.mfa.as_ref()) {
                e.mfa = Some(Mfa::Vocabulary(names.clone()));
            }
            out.push((e, partial));
        }
        if let Some(err) = refused {
            self.methods_refused = true;
            report.warn(
                self.graph.doors(),
                format!(
                    "authentication methods were not read ({err}): has_mfa and mfa_methods are omitted; grant UserAuthenticationMethod.Read.All"
                ),
            );
            if !report
                .unavailable
                .iter()
                .any(|u| u == "authenticationMethods")
            {
                report.unavailable.push("authenticationMethods".into());
            }
        }
        out
    }

    fn failed(&self, id: &str, what: &str, result: Option<Result<Vec<Value>, GraphError>>) -> bool {
        let why = match result {
            Some(Err(e)) => e.to_string(),
            _ => "no result".into(),
        };
        self.graph
            .log(Level::Warn, &format!("user {id}: {what} not read: {why}"));
        true
    }
}

fn odata_type(item: &Value) -> &str {
    item.get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Groups and directly held roles from `memberOf` items.
fn read_member_of(items: &[Value], e: &mut Enrichment) {
    let mut groups = Vec::new();
    for item in items {
        let name = item
            .get("displayName")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string);
        match odata_type(item) {
            "#microsoft.graph.group" => {
                if let Some(gid) = item.get("id").and_then(Value::as_str) {
                    groups.push(GroupRef {
                        id: gid.to_string(),
                        display_name: name,
                    });
                }
            }
            "#microsoft.graph.directoryRole" => e
                .member_of_roles
                .push(name.unwrap_or_else(|| "directoryRole".into())),
            _ => {}
        }
    }
    // By id, as the tenant-wide source gives them: the order never flaps between sources.
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    e.groups = Some(groups);
}

fn methods_mfa(items: &[Value]) -> Mfa {
    Mfa::Methods(items.iter().map(|m| odata_type(m).to_string()).collect())
}

/// `methodsRegistered` of one registration-report entry.
pub fn methods_registered(item: &Value) -> Vec<String> {
    item.get("methodsRegistered")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::testing::batch_reply;
    use connector_sdk::doors::fake::{json, FakeDoors};
    use connector_sdk::doors::HttpResponse;

    fn config() -> Config {
        crate::testing::graph_test_config()
    }

    /// A tiny Graph: role definitions (built-in and custom), active assignments to a user at
    /// tenant scope, a user at an administrative-unit scope, a service principal and a
    /// role-assignable group; eligibility answered by `eligibility`.
    fn graph(url: &str, eligibility: &HttpResponse) -> HttpResponse {
        let path = url.trim_start_matches("https://graph.test/v1.0");
        if url.contains("/token") {
            return json(200, &[], r##"{"access_token":"tok","expires_in":3599}"##);
        }
        if path.starts_with("/roleManagement/directory/roleDefinitions") {
            return json(
                200,
                &[],
                r##"{"value":[{"id":"ga","displayName":"Global Administrator"},
                    {"id":"ua","displayName":"User Administrator"},
                    {"id":"custom-1","displayName":"Helpdesk Tier 2 (custom)"}]}"##,
            );
        }
        if path.starts_with("/roleManagement/directory/roleAssignments") {
            assert!(path.contains("$expand=principal"), "{path}");
            return json(
                200,
                &[],
                r##"{"value":[
                  {"principalId":"alice","roleDefinitionId":"ga","directoryScopeId":"/",
                   "principal":{"@odata.type":"#microsoft.graph.user","id":"alice"}},
                  {"principalId":"bob","roleDefinitionId":"ua","directoryScopeId":"/administrativeUnits/au-1",
                   "principal":{"@odata.type":"#microsoft.graph.user","id":"bob"}},
                  {"principalId":"app","roleDefinitionId":"ga","directoryScopeId":"/",
                   "principal":{"@odata.type":"#microsoft.graph.servicePrincipal","id":"app"}},
                  {"principalId":"grp","roleDefinitionId":"custom-1","directoryScopeId":"/",
                   "principal":{"@odata.type":"#microsoft.graph.group","id":"grp"}}
                ]}"##,
            );
        }
        if path.starts_with("/roleManagement/directory/roleEligibilityScheduleInstances") {
            return eligibility.clone();
        }
        panic!("unexpected GET {path}");
    }

    fn with_batches(
        r: &connector_sdk::doors::HttpRequest,
        eligibility: &HttpResponse,
    ) -> HttpResponse {
        if !r.url.ends_with("/$batch") {
            return graph(&r.url, eligibility);
        }
        batch_reply(r, |url| {
            if url.starts_with("/groups/grp/members") {
                serde_json::json!([
                    {"@odata.type": "#microsoft.graph.user", "id": "carol"},
                    {"@odata.type": "#microsoft.graph.device", "id": "laptop"}
                ])
            } else {
                // memberOf and authentication/methods of the users being enriched.
                assert!(url.starts_with("/users/"), "{url}");
                serde_json::json!([])
            }
        })
    }

    #[test]
    fn roles_come_from_every_assignment_kind_and_group_principals_are_expanded() {
        let eligible = json(
            200,
            &[],
            r##"{"value":[{"principalId":"dave","roleDefinitionId":"ga","directoryScopeId":"/",
                "principal":{"@odata.type":"#microsoft.graph.user","id":"dave"}}]}"##,
        );
        let cfg = config();
        let doors = FakeDoors::new(move |_, r| with_batches(r, &eligible));
        let client = GraphClient::new(&doors, &cfg);
        let mut enricher = Enricher::new(&client);
        let mut report = Report::default();
        let admins = enricher.roles(&mut report).admins();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(admins["alice"], (names(&["Global Administrator"]), vec![]));
        assert_eq!(
            admins["bob"],
            (names(&["User Administrator"]), vec![]),
            "an AU-scoped role counts"
        );
        assert_eq!(
            admins["carol"],
            (names(&["Helpdesk Tier 2 (custom)"]), vec![]),
            "a custom role held through a role-assignable group"
        );
        assert_eq!(
            admins["dave"],
            (vec![], names(&["Global Administrator"])),
            "eligible only"
        );
        assert!(!admins.contains_key("app") && !admins.contains_key("laptop"));
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let e = enricher.enrich(&["erin", "dave"], &[], &mut report);
        assert_eq!(e[0].0.roles, Some(vec![]), "read and none held");
        assert_eq!(
            e[1].0.eligible_roles,
            Some(names(&["Global Administrator"]))
        );
    }

    #[test]
    fn a_refused_role_group_leaves_direct_holders_admin_and_the_rest_unknown() {
        let none = json(200, &[], r##"{"value":[]}"##);
        let cfg = config();
        let doors = FakeDoors::new(move |_, r: &connector_sdk::doors::HttpRequest| {
            if !r.url.ends_with("/$batch") {
                return graph(&r.url, &none);
            }
            let body: Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
            let responses: Vec<Value> = body["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| {
                    let url = item["url"].as_str().unwrap();
                    if url.starts_with("/groups/grp/members") {
                        serde_json::json!({"id": item["id"], "status": 403, "body": {"error":
                            {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}}})
                    } else {
                        serde_json::json!({"id": item["id"], "status": 200, "body": {"value": []}})
                    }
                })
                .collect();
            json(
                200,
                &[],
                &serde_json::json!({ "responses": responses }).to_string(),
            )
        });
        let client = GraphClient::new(&doors, &cfg);
        let mut enricher = Enricher::new(&client);
        let mut report = Report::default();
        let roles = enricher.roles(&mut report);
        assert!(roles.active.is_some() && roles.active_partial);
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("role-assignable group 'grp'")),
            "{:?}",
            report.warnings
        );
        let e = enricher.enrich(&["alice", "carol"], &[], &mut report);
        assert_eq!(e[0].0.roles, Some(vec!["Global Administrator".to_string()]));
        assert_eq!(
            e[1].0.roles, None,
            "may hold a role through the group: unknown"
        );
        assert_eq!(
            e[1].0.eligible_roles,
            Some(vec![]),
            "eligibility was read whole"
        );
    }

    #[test]
    fn eligibility_without_p2_is_one_warning_and_unknown_not_none() {
        let refused = json(
            400,
            &[],
            r##"{"error":{"code":"AadPremiumLicenseRequired","message":"The tenant needs an AAD Premium 2 license."}}"##,
        );
        let cfg = config();
        let doors = FakeDoors::new(move |_, r| with_batches(r, &refused));
        let client = GraphClient::new(&doors, &cfg);
        let mut enricher = Enricher::new(&client);
        let mut report = Report::default();
        let roles = enricher.roles(&mut report);
        assert!(roles.eligible.is_none());
        assert!(roles.active.is_some());
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(
            report.warnings[0].contains("P2") && report.warnings[0].contains("eligible"),
            "{}",
            report.warnings[0]
        );
        assert_eq!(report.unavailable, vec!["roleEligibility".to_string()]);
    }

    #[test]
    fn hostile_dot_ids_of_groups_and_users_never_reach_a_path() {
        // A role assignment to a "group" whose id is `..`: reading its members would ask
        // for `/groups/../members`, i.e. `/members`.
        let doors = FakeDoors::new(|_, r: &connector_sdk::doors::HttpRequest| {
            if r.url.contains("/token") {
                return json(200, &[], r##"{"access_token":"tok","expires_in":3599}"##);
            }
            if r.url.contains("/roleAssignments") {
                return json(
                    200,
                    &[],
                    r##"{"value":[
                      {"principalId":"..","roleDefinitionId":"ga",
                       "principal":{"@odata.type":"#microsoft.graph.group","id":".."}},
                      {"principalId":"alice","roleDefinitionId":"ga",
                       "principal":{"@odata.type":"#microsoft.graph.user","id":"alice"}}]}"##,
                );
            }
            assert!(!r.url.ends_with("/$batch"), "nothing to batch: {}", r.url);
            json(
                200,
                &[],
                r##"{"value":[{"id":"ga","displayName":"Global Administrator"}]}"##,
            )
        });
        let cfg = config();
        let client = GraphClient::new(&doors, &cfg);
        let mut enricher = Enricher::new(&client);
        let mut report = Report::default();
        let admins = enricher.roles(&mut report).admins();
        assert_eq!(
            admins.keys().collect::<Vec<_>>(),
            vec!["alice"],
            "the direct assignment still counts"
        );
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(
            report.warnings[0].contains("group '..'")
                && report.warnings[0].contains("change a request's path"),
            "{}",
            report.warnings[0]
        );
        // A user id the pipeline would have skipped, handed in anyway: no read, partial.
        let out = enricher.enrich(&[".."], &[], &mut report);
        assert_eq!(out.len(), 1);
        assert!(out[0].1, "its groups and methods are missing: partial");
        assert_eq!(out[0].0.groups, None);
        for (_, reqs) in doors.calls.borrow().iter() {
            for r in reqs {
                assert!(
                    !r.url.ends_with("/$batch") && !r.url.contains("/groups/"),
                    "{}",
                    r.url
                );
            }
        }
    }

    #[test]
    fn refusals_are_told_apart_from_failures() {
        let status = |status: u16, code: &str| GraphError::Status {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(refusal(&status(403, "Authentication_MSGraphPermissionMissing")).is_some());
        assert!(refusal(&status(
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
        ))
        .is_some());
        assert!(refusal(&status(403, "Authorization_RequestDenied")).is_some());
        assert!(refusal(&status(400, "AadPremiumLicenseRequired")).is_some());
        assert!(refusal(&status(400, "BadRequest")).is_none());
        assert!(refusal(&status(500, "Authorization_RequestDenied")).is_none());
    }
}
