//! The pipeline every page of users goes through, whatever the mode: de-duplicated by id,
//! enriched (`enrich.rs`, or joined against a staged walk, `stage.rs`), mapped
//! (`ocsf.rs`), emitted in bounded batches (`connector_sdk::emit`), and its users' facts
//! remembered (`facts.rs`). The modes (`created.rs`, `delta.rs`, `staged.rs`) read pages
//! and move cursors; they hand pages here.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::config::{Config, SignIn};
use crate::enrich::Enricher;
use crate::facts::{Facts, Known};
use crate::graph::{is_usable_id, odata_string, refusal, GraphClient, GraphError, GraphGet};
use crate::ocsf::{self, MapContext};
use connector_sdk::doors::Doors;
use connector_sdk::error::ConnectorError;
use connector_sdk::report::Report;

use super::stage::{self, Stage};
use connector_sdk::emit;

/// Properties read for every user (`GRAPH.md`, "Listing users").
pub const USER_SELECT: &str = "id,displayName,mail,userPrincipalName,mailNickname,accountEnabled,\
department,jobTitle,employeeId,employeeType,companyName,officeLocation,createdDateTime,\
isManagementRestricted,userType,onPremisesSamAccountName,onPremisesSyncEnabled";

/// Most values in one `$filter=id in (…)`: Graph limits `in` to 15 expressions by default
/// (Microsoft Graph docs, "Use the $filter query parameter", note on the `in` operator).
pub const MAX_IN_FILTER: usize = 15;

/// The `signInActivity` fields the mapping reads (MAPPING.md: last successful sign-in, and
/// the last attempt, successful or not).
pub const SIGN_IN_FIELDS: [&str; 2] = ["lastSuccessfulSignInDateTime", "lastSignInDateTime"];

/// `GET /users?$filter=id in (…)&$select=…` for these ids, fifteen to a request (the `in`
/// operator's limit). Ids come from Graph: quotes are doubled (OData string literals) and
/// everything but unreserved characters is percent-encoded.
pub fn users_by_id(config: &Config, ids: &[String], select: &str) -> Vec<GraphGet> {
    ids.chunks(MAX_IN_FILTER)
        .map(|chunk| {
            let list: Vec<String> = chunk.iter().map(|id| odata_string(id)).collect();
            GraphGet::new(config.graph_url(&format!(
                "/users?$filter=id%20in%20({})&$select={select}",
                list.join(",")
            )))
        })
        .collect()
}

/// Keeps only the fields of `signInActivity` the mapping reads (a full walk holds one per
/// user of the tenant).
pub fn trim_sign_in(activity: &Value) -> Option<Value> {
    let object = activity.as_object()?;
    let kept: serde_json::Map<String, Value> = SIGN_IN_FIELDS
        .iter()
        .filter_map(|k| Some((k.to_string(), object.get(*k)?.clone())))
        .collect();
    Some(Value::Object(kept))
}

/// One item of a page: a user to emit, or a user Graph reports as removed.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A user object.
    Upsert(Value),
    /// `@removed` with its reason (`changed`: soft-deleted, `deleted`: gone).
    Removed {
        /// The user's id.
        id: String,
        /// Graph's reason.
        reason: String,
    },
}

impl Entry {
    /// Reads a delta item: `@removed` or a user.
    pub fn from_delta(item: Value) -> Entry {
        match item.get("@removed") {
            Some(removed) => Entry::Removed {
                id: item
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                reason: removed
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("deleted")
                    .to_string(),
            },
            None => Entry::Upsert(item),
        }
    }

    fn id(&self) -> &str {
        match self {
            Entry::Upsert(user) => user.get("id").and_then(Value::as_str).unwrap_or(""),
            Entry::Removed { id, .. } => id,
        }
    }
}

/// What kind of pages a [`Pipeline`] delivers, which decides where a page's users' facts
/// come from and what is read per page.
#[derive(Debug)]
enum Mode {
    /// A list-based run, a sweep, or between rounds: pages are enriched from what the run
    /// read tenant-wide.
    Listing,
    /// An incremental round: users lacking sign-in data get it read, fifteen to a request
    /// (every event is a complete snapshot, MAPPING.md), their facts come from the last
    /// walk's generation, and the ids emitted are kept.
    Changes,
    /// A staged full walk's users phase: each page joined against what the walk staged.
    Walk(Stage),
}

/// Turns pages of users into emitted events.
pub struct Pipeline<'g, 'a, D: Doors> {
    /// The run's Graph session (read by the modes).
    pub(super) graph: &'g GraphClient<'a, D>,
    /// The tenant's configuration.
    pub(super) config: &'g Config,
    version: &'g str,
    /// Groups, roles, MFA.
    pub enricher: Enricher<'g, 'a, D>,
    /// Sign-in activity by user id, from a sweep, added to users that lack it.
    sign_ins: Option<HashMap<String, Value>>,
    /// What pages the pipeline delivers now; moved by [`Pipeline::begin_changes`],
    /// [`Pipeline::begin_walk`] and their ends, never flipped from outside.
    mode: Mode,
    /// Graph refused sign-in activity in this run (licence or permission).
    sign_in_refused: bool,
    /// A listing of sign-in activity looped or went past its page cap in this run: no other
    /// is started (the sweep included).
    sign_in_broken: bool,
    /// What is remembered of users between full walks (groups, MFA names); None when the
    /// mode keeps no such memory.
    facts: Option<Facts>,
    /// Ids of the users emitted in an incremental round, so users whose relations changed
    /// are not emitted twice in one run.
    emitted_ids: std::collections::HashSet<String>,
    /// Users whose events could not be delivered (too large, or refused by the host).
    undeliverable: u64,
    /// Users whose events list only the groups that fit.
    truncated_users: u64,
    /// The run's counts.
    pub report: Report,
}

/// The warning about users with an empty id (given once a run).
const WITHOUT_AN_ID: &str = "without an id";
/// The warning about users whose id cannot be placed in a URL path (given once a run).
const UNUSABLE_ID: &str = "whose id would change a request's path ('.' or '..')";

/// Users skipped for their event's size named one by one in a run's warnings; the rest are
/// counted in one closing warning.
const MAX_SKIP_WARNINGS: u64 = 10;

impl<'g, 'a, D: Doors> Pipeline<'g, 'a, D> {
    /// Starts an incremental round, with the facts of the last walk's generation.
    pub fn begin_changes(&mut self, facts: Option<Facts>) {
        self.mode = Mode::Changes;
        self.facts = facts;
    }

    /// Ends the incremental round (the facts stay, for the rest of the run).
    pub fn end_changes(&mut self) {
        self.mode = Mode::Listing;
    }

    /// Starts a staged walk's users phase: pages are joined against `stage`, and what is
    /// learned goes to the walk's new generation of facts.
    pub fn begin_walk(&mut self, stage: Stage) {
        self.facts = Some(Facts::new(&stage.gen));
        self.mode = Mode::Walk(stage);
    }

    /// The stage of the walk in progress.
    pub fn walk_stage(&self) -> Option<&Stage> {
        match &self.mode {
            Mode::Walk(stage) => Some(stage),
            _ => None,
        }
    }

    /// Ends the walk's users phase (its facts stay, for the rest of the run).
    pub fn end_walk(&mut self) {
        self.mode = Mode::Listing;
    }

    /// The remembered facts, when the run keeps them.
    pub fn facts_mut(&mut self) -> Option<&mut Facts> {
        self.facts.as_mut()
    }

    /// Ids of the users emitted in this run's incremental round.
    pub fn emitted_ids(&self) -> &std::collections::HashSet<String> {
        &self.emitted_ids
    }

    /// Whether a sign-in listing of this run looped or went past its cap (no other starts).
    pub fn sign_in_broken(&self) -> bool {
        self.sign_in_broken
    }

    /// A pipeline for one run.
    pub fn new(graph: &'g GraphClient<'a, D>, config: &'g Config, version: &'g str) -> Self {
        Pipeline {
            graph,
            config,
            version,
            enricher: Enricher::new(graph),
            sign_ins: None,
            mode: Mode::Listing,
            sign_in_refused: false,
            sign_in_broken: false,
            emitted_ids: std::collections::HashSet::new(),
            facts: None,
            undeliverable: 0,
            truncated_users: 0,
            report: Report::default(),
        }
    }

    /// Records that sign-in activity cannot be read in this tenant (once per run).
    pub fn sign_in_unavailable(&mut self, e: &GraphError) {
        self.sign_in_refused = true;
        self.sign_ins = None;
        if self
            .report
            .unavailable
            .iter()
            .any(|u| u == "signInActivity")
        {
            return;
        }
        let what = match e.code() {
            "Authentication_MSGraphPermissionMissing" | "Authorization_RequestDenied" => {
                "grant the application permission AuditLog.Read.All and admin consent"
            }
            _ => "it needs an Entra ID P1/P2 licence and AuditLog.Read.All",
        };
        self.report.warn(
            self.graph.doors(),
            format!(
                "signInActivity is not readable in tenant '{}' ({} {}): last_login_time is omitted; {what}",
                self.config.tenant_id,
                e.status().map(|s| s.to_string()).unwrap_or_default(),
                e.code()
            ),
        );
        self.report.unavailable.push("signInActivity".into());
    }

    /// Records that the tenant's sign-in data could not be read whole in this run (a loop or
    /// a listing past its page cap, `e`): the run goes on without it — `last_login_time` is
    /// omitted, as when the source is refused — with one warning, and reads none again.
    pub fn sign_in_degraded(&mut self, e: &GraphError, pages: u64) {
        self.sign_in_refused = true;
        self.sign_in_broken = true;
        self.sign_ins = None;
        self.report.warn(
            self.graph.doors(),
            format!(
                "the sign-in activity of tenant '{}' was not read ({e}; after {pages} pages): last_login_time is omitted from this run's events; if Graph keeps doing this, set sign_in_activity = \"off\"",
                self.config.tenant_id
            ),
        );
        if !self
            .report
            .unavailable
            .iter()
            .any(|u| u == "signInActivity")
        {
            self.report.unavailable.push("signInActivity".into());
        }
    }

    /// Reads `signInActivity` of these users, fifteen to a request (reports-limited, paced).
    fn read_sign_ins_of(
        &mut self,
        ids: &[String],
    ) -> Result<HashMap<String, Value>, ConnectorError> {
        let gets = users_by_id(self.config, ids, "id,signInActivity");
        let mut out = HashMap::new();
        for result in self.graph.collect_lists(gets) {
            match result {
                Ok(items) => {
                    for item in items {
                        if let (Some(id), Some(activity)) = (
                            item.get("id").and_then(Value::as_str),
                            item.get("signInActivity").and_then(trim_sign_in),
                        ) {
                            out.insert(id.to_string(), activity);
                        }
                    }
                }
                Err(e) if refusal(&e).is_some() => {
                    self.sign_in_unavailable(&e);
                    return Ok(HashMap::new());
                }
                Err(e) => {
                    return Err(e.into_connector("reading the sign-in activity of changed users"))
                }
            }
        }
        Ok(out)
    }

    /// Enriches, maps and emits one page. Returns the id and creation time (ms) of every
    /// user emitted.
    pub fn deliver(
        &mut self,
        entries: Vec<Entry>,
    ) -> Result<Vec<(String, Option<i64>)>, ConnectorError> {
        self.report.items_seen += entries.len() as u64;
        // The same user may appear twice in a delta page: keep its last state.
        let mut last: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        let (mut blank, mut unusable) = (0u64, 0u64);
        for (i, e) in entries.iter().enumerate() {
            if e.id().trim().is_empty() {
                blank += 1;
            } else if !is_usable_id(e.id()) {
                // `.` or `..`: placed in `/users/{id}/memberOf` it would make the request
                // walk to another path (graph/encode.rs). No real user has such an id.
                unusable += 1;
            } else {
                last.insert(e.id().to_string(), i);
            }
        }
        self.report.items_skipped += blank + unusable;
        if blank > 0 && self.first_warning_of(WITHOUT_AN_ID) {
            self.report.warn(
                self.graph.doors(),
                format!("Graph returned users {WITHOUT_AN_ID}: they are skipped"),
            );
        }
        if unusable > 0 && self.first_warning_of(UNUSABLE_ID) {
            self.report.warn(
                self.graph.doors(),
                format!("Graph returned users {UNUSABLE_ID}: they are skipped"),
            );
        }
        let entries: Vec<Entry> = entries
            .into_iter()
            .enumerate()
            .filter(|(i, e)| last.get(e.id()) == Some(i))
            .map(|(_, e)| e)
            .collect();
        let ids: Vec<&str> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Upsert(_) => Some(e.id()),
                Entry::Removed { .. } => None,
            })
            .collect();
        let page_sign_ins = if matches!(self.mode, Mode::Changes)
            && self.config.sign_in == SignIn::Auto
            && !self.sign_in_refused
        {
            let lacking: Vec<String> = entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Upsert(u) if u.get("signInActivity").is_none() => {
                        Some(e.id().to_string())
                    }
                    _ => None,
                })
                .collect();
            if lacking.is_empty() {
                HashMap::new()
            } else {
                self.read_sign_ins_of(&lacking)?
            }
        } else {
            HashMap::new()
        };
        let doors = self.graph.doors();
        let mut is_admin = HashMap::new();
        let stage = match &self.mode {
            Mode::Walk(stage) => Some(stage),
            _ => None,
        };
        let known: Vec<Option<Known>> = match (self.facts.as_mut(), stage) {
            // A staged walk: the page's users joined against what the walk read.
            (Some(facts), Some(stage)) if !ids.is_empty() => {
                let join = stage::join(stage, facts, doors, &ids)?;
                self.enricher
                    .install_page(join.memberships, join.mfa, join.roles);
                if join.sign_ins.is_some() {
                    self.sign_ins = join.sign_ins;
                }
                is_admin = join.is_admin;
                Vec::new()
            }
            (Some(facts), None) if !ids.is_empty() => facts.lookup(doors, &ids)?,
            _ => Vec::new(),
        };
        let mut enrichments: Vec<(ocsf::Enrichment, bool)> = if ids.is_empty() {
            Vec::new()
        } else {
            self.enricher.enrich(&ids, &known, &mut self.report)
        };
        for (id, (e, _)) in ids.iter().zip(enrichments.iter_mut()) {
            e.admin_hint = is_admin.get(*id) == Some(&true);
        }
        // What was read per user is remembered; in a staged walk only when the walk could
        // not stage it (its facts are already written).
        let learn = stage.is_none_or(|st| !st.groups_read || !st.registration_read);
        if let Some(facts) = self.facts.as_mut() {
            for (n, (id, (e, _))) in ids.iter().zip(&enrichments).enumerate() {
                let remembered = known.get(n).is_some_and(Option::is_some);
                if let (Some(groups), false, true) = (&e.groups, remembered, learn) {
                    facts.put(id, groups, e.mfa.as_ref().map(ocsf::vocabulary), None)?;
                }
            }
            for e in &entries {
                if let Entry::Removed { id, .. } = e {
                    facts.forget(id);
                }
            }
        }
        let mut enrichments = enrichments.into_iter();
        let ctx = MapContext {
            tenant_uid: &self.config.tenant_id,
            collected_at_ms: self.graph.doors().now_ms(),
            connector_version: self.version,
        };
        let mut events = Vec::with_capacity(entries.len());
        let mut event_ids = Vec::with_capacity(entries.len());
        let mut delivered = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry {
                Entry::Removed { id, reason } => {
                    events.push(ocsf::map_deleted_user(&id, &reason, &ctx).to_string());
                    event_ids.push(id);
                }
                Entry::Upsert(mut user) => {
                    let (enrichment, partial) = enrichments.next().unwrap_or_default();
                    if partial {
                        self.report.items_partial += 1;
                    }
                    let id = user
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if let Some(obj) = user.as_object_mut() {
                        if !obj.contains_key("signInActivity") {
                            let known = self
                                .sign_ins
                                .as_ref()
                                .and_then(|m| m.get(&id))
                                .or_else(|| page_sign_ins.get(&id));
                            if let Some(s) = known {
                                obj.insert("signInActivity".into(), s.clone());
                            }
                        }
                    }
                    let mapped = ocsf::map_user_within(
                        &user,
                        &enrichment,
                        &ctx,
                        emit::MAX_EVENT_BYTES,
                        self.enricher.role_groups(),
                    );
                    match mapped {
                        Ok(mapped) => {
                            if let Some(t) = mapped.truncation {
                                if !partial {
                                    self.report.items_partial += 1;
                                }
                                self.truncated(&id, t);
                            }
                            events.push(mapped.json);
                            event_ids.push(id.clone());
                            if matches!(self.mode, Mode::Changes) {
                                self.emitted_ids.insert(id.clone());
                            }
                            let created = user
                                .get("createdDateTime")
                                .and_then(Value::as_str)
                                .and_then(connector_sdk::time::parse_rfc3339_ms);
                            delivered.push((id, created));
                        }
                        Err(_) => self.report.items_skipped += 1,
                    }
                }
            }
        }
        let skipped = self.emit(event_ids, events)?;
        delivered.retain(|(id, _)| !skipped.contains(id));
        Ok(delivered)
    }

    /// Warns about a user whose event lists only some of its groups (the first
    /// [`MAX_SKIP_WARNINGS`] by name, the rest counted in [`Pipeline::finish`]).
    fn truncated(&mut self, id: &str, t: ocsf::Truncation) {
        self.truncated_users += 1;
        if self.truncated_users <= MAX_SKIP_WARNINGS {
            self.report.warn(
                self.graph.doors(),
                format!(
                    "user '{id}' is in {} groups, too many for one event: its event lists {} of them (groups holding a role first) and is marked metadata.is_truncated, with groups_total in the account enrichment",
                    t.total, t.kept
                ),
            );
        }
    }

    /// Whether no warning containing `marker` was given yet in this run.
    fn first_warning_of(&self, marker: &str) -> bool {
        self.report.warnings.iter().all(|w| !w.contains(marker))
    }

    /// Emits a page's events in bounded batches; returns the ids of the users whose events
    /// were skipped (too large, or refused by the host), after warning about each.
    fn emit(
        &mut self,
        ids: Vec<String>,
        events: Vec<String>,
    ) -> Result<HashSet<String>, ConnectorError> {
        let doors = self.graph.doors();
        let out = emit::emit_bounded(ids, events, &mut |batch| doors.emit(batch))
            .map_err(|e| ConnectorError::Host(format!("emitting events: {e}")))?;
        self.report.events_emitted += out.accepted;
        self.report.items_skipped += out.skipped.len() as u64;
        let mut skipped = HashSet::with_capacity(out.skipped.len());
        for (id, why) in out.skipped {
            self.undeliverable += 1;
            if self.undeliverable <= MAX_SKIP_WARNINGS {
                self.report.warn(
                    doors,
                    format!("user '{id}' was skipped: {why}; the other users are delivered"),
                );
            }
            skipped.insert(id);
        }
        Ok(skipped)
    }

    /// Writes what changed in [`Pipeline::facts`] (before the cursor commit that relies on it).
    pub fn save_facts(&mut self) -> Result<(), ConnectorError> {
        match self.facts.as_mut() {
            Some(facts) => facts.save(self.graph.doors()),
            None => Ok(()),
        }
    }

    /// Adds the run's closing warnings.
    pub fn finish(&mut self) {
        if self.undeliverable > MAX_SKIP_WARNINGS {
            self.report.warn(
                self.graph.doors(),
                format!(
                    "{} users were skipped in all because their events could not be delivered (the first {MAX_SKIP_WARNINGS} are named above)",
                    self.undeliverable
                ),
            );
        }
        if self.truncated_users > MAX_SKIP_WARNINGS {
            self.report.warn(
                self.graph.doors(),
                format!(
                    "{} users were emitted with only the groups that fit in one event (the first {MAX_SKIP_WARNINGS} are named above)",
                    self.truncated_users
                ),
            );
        }
        if self.report.items_partial > 0 {
            self.report.warn(
                self.graph.doors(),
                format!(
                    "{} users were emitted without all of their groups, roles or methods (Graph refused or failed those reads, or their groups did not fit in one event)",
                    self.report.items_partial
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_sdk::doors::fake::{json, FakeDoors};
    use connector_sdk::doors::{HttpRequest, HttpResponse};

    fn config() -> Config {
        crate::testing::graph_test_config()
    }

    /// A Graph with no roles, groups or methods: a token, empty lists, and `$batch` items
    /// answered with empty lists.
    fn empty_graph(_: usize, r: &HttpRequest) -> HttpResponse {
        if r.url.contains("/token") {
            return json(200, &[], r#"{"access_token":"tok","expires_in":3599}"#);
        }
        if !r.url.ends_with("/$batch") {
            return json(200, &[], r#"{"value":[]}"#);
        }
        crate::testing::batch_reply(r, |_| serde_json::json!([]))
    }

    /// Every URL the fake Graph was asked for, `$batch` items included.
    fn urls_asked<F: Fn(usize, &HttpRequest) -> HttpResponse>(doors: &FakeDoors<F>) -> Vec<String> {
        let mut out = Vec::new();
        for (_, reqs) in doors.calls.borrow().iter() {
            for r in reqs {
                out.push(r.url.clone());
                if r.url.ends_with("/$batch") {
                    let body: Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
                    for item in body["requests"].as_array().unwrap() {
                        out.push(item["url"].as_str().unwrap().to_string());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn hostile_users_with_dot_ids_are_skipped_with_one_warning_and_never_reach_a_url() {
        let cfg = config();
        let doors = FakeDoors::new(empty_graph);
        let graph = GraphClient::new(&doors, &cfg);
        let mut pipeline = Pipeline::new(&graph, &cfg, "0.1.0");
        let page = |ids: &[&str]| -> Vec<Entry> {
            ids.iter()
                .map(|id| Entry::Upsert(serde_json::json!({"id": id, "userPrincipalName": "x@y"})))
                .chain(std::iter::once(Entry::Removed {
                    id: "..".into(),
                    reason: "deleted".into(),
                }))
                .collect()
        };
        let delivered = pipeline.deliver(page(&["..", "u1", "."])).unwrap();
        assert_eq!(delivered, vec![("u1".to_string(), None)]);
        let delivered = pipeline.deliver(page(&["u2", ".."])).unwrap();
        assert_eq!(delivered, vec![("u2".to_string(), None)]);
        assert_eq!(pipeline.report.items_skipped, 5, "three, then two");
        assert_eq!(pipeline.report.events_emitted, 2);
        let warned: Vec<&String> = pipeline
            .report
            .warnings
            .iter()
            .filter(|w| w.contains("'.' or '..'"))
            .collect();
        assert_eq!(warned.len(), 1, "{:?}", pipeline.report.warnings);
        assert!(warned[0].contains("skipped"), "{}", warned[0]);
        let users: Vec<String> = urls_asked(&doors)
            .into_iter()
            .filter(|u| u.starts_with("/users/"))
            .collect();
        assert!(!users.is_empty(), "the usable users were enriched");
        for url in &users {
            assert!(
                url.starts_with("/users/u1/") || url.starts_with("/users/u2/"),
                "only the usable ids reach a path: {url}"
            );
        }
    }
}
