//! The simulated org's data and the changes tests make to it.
//!
//! Everything the Management API serves lives in one [`Org`]: users, groups and their members,
//! factors, admin role assignments (to users and to groups), custom roles, and the System
//! Log. Every change goes through a method that also appends the System Log event Okta writes
//! for it (event types from the Event Types catalogue,
//! developer.okta.com/docs/reference/api/event-types/): `user.lifecycle.*`,
//! `user.account.update_profile`, `group.user_membership.add`/`.remove`,
//! `user.account.privilege.grant`/`.revoke`, `group.privilege.grant`/`.revoke`,
//! `user.mfa.factor.activate`/`.deactivate`/`.reset_all`.
//!
//! Which changes bump a user's `lastUpdated`: profile and status changes do (they change the
//! user object); membership, role and factor changes do not — the Users API does not say they
//! do, so the emulator takes the strict reading (OKTA.md, "Whether group, role or factor
//! changes bump lastUpdated is not documented: assume not").
//!
//! The `search` parameter of `GET /api/v1/users` reads an eventually consistent index ("may not
//! reflect the latest information", Users API, List users, `search`): [`SearchIndex`] holds the
//! users as they were `lag` milliseconds ago.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{json, Map, Value};

use crate::clock::format_ms;

/// The user statuses of the Users API (`status` enum of the User object).
pub const USER_STATUSES: [&str; 8] = [
    "ACTIVE",
    "DEPROVISIONED",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "PROVISIONED",
    "RECOVERY",
    "STAGED",
    "SUSPENDED",
];

/// Factor types of the Factors API (`factorType`).
pub const FACTOR_TYPES: [&str; 13] = [
    "call",
    "email",
    "push",
    "question",
    "signed_nonce",
    "sms",
    "token",
    "token:hardware",
    "token:hotp",
    "token:software:totp",
    "u2f",
    "web",
    "webauthn",
];

/// Factor statuses of the Factors API (`status` of a UserFactor).
pub const FACTOR_STATUSES: [&str; 7] = [
    "ACTIVE",
    "DISABLED",
    "ENROLLED",
    "EXPIRED",
    "INACTIVE",
    "NOT_SETUP",
    "PENDING_ACTIVATION",
];

/// Standard admin role types (Roles API, `type` of a role assignment; `CUSTOM` for custom roles).
pub const ROLE_TYPES: [&str; 13] = [
    "SUPER_ADMIN",
    "ORG_ADMIN",
    "APP_ADMIN",
    "USER_ADMIN",
    "HELP_DESK_ADMIN",
    "READ_ONLY_ADMIN",
    "MOBILE_ADMIN",
    "API_ACCESS_MANAGEMENT_ADMIN",
    "REPORT_ADMIN",
    "GROUP_MEMBERSHIP_ADMIN",
    "WORKFLOWS_ADMIN",
    "ACCESS_CERTIFICATIONS_ADMIN",
    "ACCESS_REQUESTS_ADMIN",
];

/// 90 days: System Log data older than this is gone (System Log API, "data retention").
pub const LOG_RETENTION_MS: i64 = 90 * 86_400_000;

/// One user.
#[derive(Clone, Debug, PartialEq)]
pub struct OktaUser {
    /// `00u…`.
    pub id: String,
    /// One of [`USER_STATUSES`].
    pub status: String,
    /// `transitioningToStatus` (null unless a transition is in progress).
    pub transitioning_to_status: Option<String>,
    /// ms since the epoch.
    pub created: i64,
    /// `activated` (null for STAGED and PROVISIONED users).
    pub activated: Option<i64>,
    /// `statusChanged`.
    pub status_changed: Option<i64>,
    /// `lastLogin`.
    pub last_login: Option<i64>,
    /// `lastUpdated`.
    pub last_updated: i64,
    /// `passwordChanged`.
    pub password_changed: Option<i64>,
    /// `type.id`.
    pub type_id: String,
    /// The profile as Okta answers it (values may be null).
    pub profile: Map<String, Value>,
}

impl OktaUser {
    /// `profile.login`.
    pub fn login(&self) -> &str {
        self.profile
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The user object as the Users API answers it.
    pub fn to_json(&self, base: &str) -> Value {
        let opt = |t: Option<i64>| t.map(format_ms).map_or(Value::Null, Value::String);
        let mut user = json!({
            "id": self.id,
            "status": self.status,
            "created": format_ms(self.created),
            "activated": opt(self.activated),
            "statusChanged": opt(self.status_changed),
            "lastLogin": opt(self.last_login),
            "lastUpdated": format_ms(self.last_updated),
            "passwordChanged": opt(self.password_changed),
            "type": {"id": self.type_id},
            "profile": self.profile,
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": format!("{base}/api/v1/users/{}", self.id)}},
        });
        if let Some(t) = &self.transitioning_to_status {
            user["transitioningToStatus"] = json!(t);
        }
        user
    }
}

/// One group.
#[derive(Clone, Debug, PartialEq)]
pub struct OktaGroup {
    /// `00g…`.
    pub id: String,
    /// `OKTA_GROUP`, `APP_GROUP` or `BUILT_IN`.
    pub group_type: String,
    /// `profile.name`.
    pub name: String,
    /// `profile.description` (nullable).
    pub description: Option<String>,
    /// `created`.
    pub created: i64,
    /// `lastUpdated` (group profile changes).
    pub last_updated: i64,
    /// `lastMembershipUpdated`.
    pub last_membership_updated: i64,
    /// Member user ids.
    pub members: BTreeSet<String>,
}

/// One enrolled factor.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// The factor id.
    pub id: String,
    /// One of [`FACTOR_TYPES`].
    pub factor_type: String,
    /// `provider` (OKTA, GOOGLE, FIDO, …).
    pub provider: String,
    /// One of [`FACTOR_STATUSES`].
    pub status: String,
    /// `created`.
    pub created: i64,
    /// `lastUpdated`.
    pub last_updated: i64,
}

/// One admin role assignment (to a user or to a group).
#[derive(Clone, Debug, PartialEq)]
pub struct RoleAssignment {
    /// `ra1…` for standard roles, `irb…` for custom role bindings.
    pub id: String,
    /// One of [`ROLE_TYPES`], or `CUSTOM`.
    pub role_type: String,
    /// `label` (the custom role's label for CUSTOM).
    pub label: String,
    /// `USER` or `GROUP`.
    pub assignment_type: String,
    /// For `CUSTOM`: the custom role's id.
    pub custom_role: Option<String>,
    /// For `CUSTOM`: the resource set.
    pub resource_set: Option<String>,
    /// `created`.
    pub created: i64,
}

/// A custom admin role (`GET /api/v1/iam/roles`).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomRole {
    /// `cr0…`.
    pub id: String,
    /// `label`.
    pub label: String,
    /// `description`.
    pub description: String,
    /// `created`.
    pub created: i64,
}

/// One System Log event, in persistence order.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEvent {
    /// Persistence sequence (the order `since`/`after` polling follows).
    pub seq: u64,
    /// `published`, ms.
    pub published: i64,
    /// `eventType`.
    pub event_type: String,
    /// The whole LogEvent object.
    pub body: Value,
}

/// A user deleted from the org (only the System Log still names it).
#[derive(Clone, Debug, PartialEq)]
pub struct DeletedUser {
    /// The id it had.
    pub id: String,
    /// Its login (the log target's `alternateId`).
    pub login: String,
    /// When it was deleted (the log event's `published`), ms.
    pub deleted: i64,
}

/// The eventually consistent copy `search` reads: the objects as they were `lag` ago (users,
/// and groups without their member lists).
#[derive(Clone, Debug)]
pub struct SearchIndex<T> {
    items: BTreeMap<String, T>,
    /// Changes not yet visible: (when, id, the object after the change or None when deleted).
    pending: VecDeque<(i64, String, Option<T>)>,
}

impl<T> Default for SearchIndex<T> {
    fn default() -> Self {
        SearchIndex {
            items: BTreeMap::new(),
            pending: VecDeque::new(),
        }
    }
}

impl<T> SearchIndex<T> {
    /// Applies every change made at or before `visible_until`.
    fn catch_up(&mut self, visible_until: i64) {
        while let Some((at, _, _)) = self.pending.front() {
            if *at > visible_until {
                break;
            }
            if let Some((_, id, item)) = self.pending.pop_front() {
                match item {
                    Some(item) => self.items.insert(id, item),
                    None => self.items.remove(&id),
                };
            }
        }
    }

    fn record(&mut self, at: i64, id: &str, item: Option<T>) {
        self.pending.push_back((at, id.to_owned(), item));
    }

    /// Makes every pending change visible (generation only).
    pub(crate) fn settle(&mut self) {
        self.catch_up(i64::MAX);
    }
}

/// The simulated org.
#[derive(Clone, Debug, Default)]
pub struct Org {
    /// The org id (`00o…`), served by `/.well-known/okta-organization`.
    pub org_id: String,
    pub(crate) users: BTreeMap<String, OktaUser>,
    pub(crate) groups: BTreeMap<String, OktaGroup>,
    pub(crate) user_groups: HashMap<String, BTreeSet<String>>,
    pub(crate) factors: HashMap<String, Vec<Factor>>,
    pub(crate) user_roles: HashMap<String, Vec<RoleAssignment>>,
    pub(crate) group_roles: HashMap<String, Vec<RoleAssignment>>,
    pub(crate) custom_roles: BTreeMap<String, CustomRole>,
    pub(crate) log: Vec<LogEvent>,
    pub(crate) deleted: Vec<DeletedUser>,
    /// The BUILT_IN groups (Everyone), which every new user joins.
    built_in: Vec<String>,
    pub(crate) index: SearchIndex<OktaUser>,
    pub(crate) group_index: SearchIndex<OktaGroup>,
    serial: u64,
}

/// An Okta-shaped id: a 3-character prefix and 17 base-62 characters from a counter.
pub(crate) fn okta_id(prefix: &str, n: u64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // A fixed odd multiplier spreads consecutive numbers over the id space.
    let mut v = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1_e995;
    let mut out = String::from(prefix);
    for _ in 0..17 {
        out.push(ALPHABET[(v % 62) as usize] as char);
        v /= 62;
        if v == 0 {
            v = n.wrapping_add(0x2545_F491_4F6C_DD1D);
        }
    }
    out
}

/// What went wrong with a change a test asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeError {
    /// No such user, group, factor or role.
    NotFound(String),
    /// The change is not allowed in this state (e.g. suspending a user who is not ACTIVE).
    Invalid(String),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::NotFound(what) => write!(f, "not found: {what}"),
            ChangeError::Invalid(why) => write!(f, "not allowed: {why}"),
        }
    }
}

impl std::error::Error for ChangeError {}

/// What a delete did: Okta deletes a user in two steps (Users API, "Delete a user": a user not
/// yet DEPROVISIONED is deactivated first; deleting a DEPROVISIONED user deletes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The user was deactivated (now DEPROVISIONED); a second delete removes it.
    Deactivated,
    /// The user is gone.
    Deleted,
}

impl Org {
    /// An empty org with this id.
    pub fn empty(org_id: &str) -> Org {
        Org {
            org_id: org_id.to_owned(),
            ..Org::default()
        }
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Every user (DEPROVISIONED included, deleted excluded), by id.
    pub fn users(&self) -> impl Iterator<Item = &OktaUser> {
        self.users.values()
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Option<&OktaUser> {
        self.users.get(id)
    }

    /// Every group, by id.
    pub fn groups(&self) -> impl Iterator<Item = &OktaGroup> {
        self.groups.values()
    }

    /// The ids of the groups a user is in.
    pub fn groups_of(&self, user_id: &str) -> Vec<String> {
        self.user_groups
            .get(user_id)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A user's factors.
    pub fn factors_of(&self, user_id: &str) -> Vec<Factor> {
        self.factors.get(user_id).cloned().unwrap_or_default()
    }

    /// Roles assigned to the user directly.
    pub fn roles_of(&self, user_id: &str) -> Vec<RoleAssignment> {
        self.user_roles.get(user_id).cloned().unwrap_or_default()
    }

    /// Roles assigned to a group (held by each of its members).
    pub fn roles_of_group(&self, group_id: &str) -> Vec<RoleAssignment> {
        self.group_roles.get(group_id).cloned().unwrap_or_default()
    }

    /// Every role a user holds, directly or through a group (the oracle of "is an admin").
    pub fn effective_roles(&self, user_id: &str) -> Vec<RoleAssignment> {
        let mut roles = self.roles_of(user_id);
        for group in self.groups_of(user_id) {
            roles.extend(self.roles_of_group(&group));
        }
        roles
    }

    /// Custom roles.
    pub fn custom_roles(&self) -> impl Iterator<Item = &CustomRole> {
        self.custom_roles.values()
    }

    /// Users deleted so far.
    pub fn deleted_users(&self) -> &[DeletedUser] {
        &self.deleted
    }

    /// The System Log, in persistence order (retention not applied).
    pub fn log(&self) -> &[LogEvent] {
        &self.log
    }

    /// The users' search index, caught up to `now - lag`.
    pub(crate) fn search_index(&mut self, visible_until: i64) -> &BTreeMap<String, OktaUser> {
        self.index.catch_up(visible_until);
        &self.index.items
    }

    /// The groups' search index (groups without members), caught up to `now - lag`.
    pub(crate) fn group_search_index(
        &mut self,
        visible_until: i64,
    ) -> &BTreeMap<String, OktaGroup> {
        self.group_index.catch_up(visible_until);
        &self.group_index.items
    }

    /// Records a changed group for the groups' search index.
    fn index_group(&mut self, at: i64, id: &str) {
        let group = self.groups.get(id).map(|g| OktaGroup {
            members: Default::default(),
            ..g.clone()
        });
        self.group_index.record(at, id, group);
    }

    /// Appends a System Log event about `targets`, by the org's system actor.
    pub(crate) fn log_event(
        &mut self,
        at: i64,
        event_type: &str,
        message: &str,
        targets: Vec<Value>,
    ) {
        let seq = self.next_serial();
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            seq as u32,
            (seq >> 16) as u16,
            seq % 0xfff,
            (seq * 7) % 0xfff,
            seq.wrapping_mul(0x9E37_79B9)
        );
        let body = json!({
            "uuid": uuid,
            "published": format_ms(at),
            "eventType": event_type,
            "version": "0",
            "severity": "INFO",
            "legacyEventType": Value::Null,
            "displayMessage": message,
            "actor": {
                "id": "0oa_emulator_admin",
                "type": "PublicClientApp",
                "alternateId": "emulator-admin",
                "displayName": "Okta emulator test driver",
                "detailEntry": Value::Null
            },
            "client": Value::Null,
            "outcome": {"result": "SUCCESS", "reason": Value::Null},
            "target": targets,
            "transaction": {"type": "WEB", "id": format!("tx{seq}"), "detail": {}},
            "debugContext": {"debugData": {}},
            "authenticationContext": {},
            "securityContext": {},
            "request": {"ipChain": []},
        });
        self.log.push(LogEvent {
            seq,
            published: at,
            event_type: event_type.to_owned(),
            body,
        });
    }

    fn user_target(user: &OktaUser) -> Value {
        let first = user.profile.get("firstName").and_then(Value::as_str);
        let last = user.profile.get("lastName").and_then(Value::as_str);
        let display = match (first, last) {
            (Some(f), Some(l)) => format!("{f} {l}"),
            (Some(f), None) => f.to_owned(),
            (None, Some(l)) => l.to_owned(),
            (None, None) => user.login().to_owned(),
        };
        json!({"id": user.id, "type": "User", "alternateId": user.login(),
               "displayName": display, "detailEntry": Value::Null})
    }

    fn group_target(group: &OktaGroup) -> Value {
        json!({"id": group.id, "type": "UserGroup", "alternateId": "unknown",
               "displayName": group.name, "detailEntry": Value::Null})
    }

    /// Records a changed user for the search index (visible after the lag).
    fn index_user(&mut self, at: i64, id: &str) {
        let user = self.users.get(id).cloned();
        self.index.record(at, id, user);
    }

    /// Adds a user (a member of the BUILT_IN Everyone group, if there is one), without a log
    /// event (generation) unless `log` is true (`user.lifecycle.create`).
    pub fn insert_user(&mut self, user: OktaUser, at: i64, log: bool) {
        let id = user.id.clone();
        if log {
            let target = Org::user_target(&user);
            self.log_event(
                at,
                "user.lifecycle.create",
                "Create okta user",
                vec![target],
            );
        }
        self.users.insert(id.clone(), user);
        self.index_user(at, &id);
        for group in self.built_in.clone() {
            self.link(&id, &group);
        }
    }

    /// Adds a group (visible to group `search` from its `lastUpdated` on, plus the lag).
    pub fn insert_group(&mut self, group: OktaGroup) {
        let (at, id) = (group.last_updated, group.id.clone());
        if group.group_type == "BUILT_IN" {
            self.built_in.push(id.clone());
        }
        for member in &group.members {
            self.user_groups
                .entry(member.clone())
                .or_default()
                .insert(group.id.clone());
        }
        self.groups.insert(group.id.clone(), group);
        self.index_group(at, &id);
    }

    /// Adds a custom role (no log event; for hand-written orgs). Assign it with
    /// [`Org::grant_user_role`] or [`Org::grant_group_role`] by its id.
    pub fn insert_custom_role(&mut self, role: CustomRole) {
        self.custom_roles.insert(role.id.clone(), role);
    }

    /// Adds a factor in any status to a user (no log event; for hand-written orgs).
    pub fn insert_factor(&mut self, user: &str, factor: Factor) -> Result<(), ChangeError> {
        self.live_user(user)?;
        self.factors
            .entry(user.to_owned())
            .or_default()
            .push(factor);
        Ok(())
    }

    pub(crate) fn link(&mut self, user: &str, group: &str) -> bool {
        let added = self
            .groups
            .get_mut(group)
            .is_some_and(|g| g.members.insert(user.to_owned()));
        if added {
            self.user_groups
                .entry(user.to_owned())
                .or_default()
                .insert(group.to_owned());
        }
        added
    }

    fn live_user(&self, id: &str) -> Result<&OktaUser, ChangeError> {
        self.users
            .get(id)
            .ok_or_else(|| ChangeError::NotFound(format!("user {id}")))
    }

    /// Changes profile attributes (`null` clears one): bumps `lastUpdated`, logs
    /// `user.account.update_profile`.
    pub fn update_profile(
        &mut self,
        at: i64,
        id: &str,
        patch: &Map<String, Value>,
    ) -> Result<(), ChangeError> {
        self.live_user(id)?;
        if let Some(user) = self.users.get_mut(id) {
            for (k, v) in patch {
                user.profile.insert(k.clone(), v.clone());
            }
            user.last_updated = at;
        }
        let target = Org::user_target(&self.users[id]);
        self.log_event(
            at,
            "user.account.update_profile",
            "Update user profile for Okta",
            vec![target],
        );
        self.index_user(at, id);
        Ok(())
    }

    fn set_status(&mut self, at: i64, id: &str, status: &str) {
        if let Some(user) = self.users.get_mut(id) {
            user.status = status.to_owned();
            user.status_changed = Some(at);
            user.last_updated = at;
            user.transitioning_to_status = None;
        }
        self.index_user(at, id);
    }

    /// Suspends an ACTIVE user (Users API: "only users with an ACTIVE status can be
    /// suspended"); logs `user.lifecycle.suspend`.
    pub fn suspend(&mut self, at: i64, id: &str) -> Result<(), ChangeError> {
        if self.live_user(id)?.status != "ACTIVE" {
            return Err(ChangeError::Invalid(format!("user {id} is not ACTIVE")));
        }
        self.set_status(at, id, "SUSPENDED");
        let target = Org::user_target(&self.users[id]);
        self.log_event(
            at,
            "user.lifecycle.suspend",
            "Suspend Okta user",
            vec![target],
        );
        Ok(())
    }

    /// Unsuspends a SUSPENDED user; logs `user.lifecycle.unsuspend`.
    pub fn unsuspend(&mut self, at: i64, id: &str) -> Result<(), ChangeError> {
        if self.live_user(id)?.status != "SUSPENDED" {
            return Err(ChangeError::Invalid(format!("user {id} is not SUSPENDED")));
        }
        self.set_status(at, id, "ACTIVE");
        let target = Org::user_target(&self.users[id]);
        self.log_event(
            at,
            "user.lifecycle.unsuspend",
            "Unsuspend Okta user",
            vec![target],
        );
        Ok(())
    }

    /// Deactivates a user (status DEPROVISIONED); logs `user.lifecycle.deactivate`.
    pub fn deactivate(&mut self, at: i64, id: &str) -> Result<(), ChangeError> {
        if self.live_user(id)?.status == "DEPROVISIONED" {
            return Err(ChangeError::Invalid(format!(
                "user {id} is already DEPROVISIONED"
            )));
        }
        self.set_status(at, id, "DEPROVISIONED");
        let target = Org::user_target(&self.users[id]);
        self.log_event(
            at,
            "user.lifecycle.deactivate",
            "Deactivate Okta user",
            vec![target],
        );
        Ok(())
    }

    /// Deletes a user the way `DELETE /api/v1/users/{id}` does: a user not DEPROVISIONED is
    /// deactivated first ([`DeleteOutcome::Deactivated`]); a DEPROVISIONED user is removed with
    /// its memberships, factors and roles, and `user.lifecycle.delete.initiated` and
    /// `user.lifecycle.delete.completed` are logged.
    pub fn delete(&mut self, at: i64, id: &str) -> Result<DeleteOutcome, ChangeError> {
        if self.live_user(id)?.status != "DEPROVISIONED" {
            self.deactivate(at, id)?;
            return Ok(DeleteOutcome::Deactivated);
        }
        let user = self.users.remove(id).expect("checked above");
        let target = Org::user_target(&user);
        for group in self.user_groups.remove(id).unwrap_or_default() {
            if let Some(g) = self.groups.get_mut(&group) {
                g.members.remove(id);
            }
        }
        self.factors.remove(id);
        self.user_roles.remove(id);
        self.log_event(
            at,
            "user.lifecycle.delete.initiated",
            "Delete Okta user",
            vec![target.clone()],
        );
        self.log_event(
            at,
            "user.lifecycle.delete.completed",
            "Delete Okta user completed",
            vec![target],
        );
        self.deleted.push(DeletedUser {
            id: id.to_owned(),
            login: user.login().to_owned(),
            deleted: at,
        });
        self.index_user(at, id);
        Ok(DeleteOutcome::Deleted)
    }

    /// Adds a user to a group: sets the group's `lastMembershipUpdated`, logs
    /// `group.user_membership.add` (targets: the user and the group). The user's `lastUpdated`
    /// does not move.
    pub fn add_member(&mut self, at: i64, user: &str, group: &str) -> Result<(), ChangeError> {
        self.live_user(user)?;
        if !self.groups.contains_key(group) {
            return Err(ChangeError::NotFound(format!("group {group}")));
        }
        if !self.link(user, group) {
            return Err(ChangeError::Invalid(format!(
                "{user} is already in {group}"
            )));
        }
        let g = self.groups.get_mut(group).expect("checked");
        g.last_membership_updated = at;
        self.index_group(at, group);
        let targets = vec![
            Org::user_target(&self.users[user]),
            Org::group_target(&self.groups[group]),
        ];
        self.log_event(
            at,
            "group.user_membership.add",
            "Add user to group membership",
            targets,
        );
        Ok(())
    }

    /// Removes a user from a group; logs `group.user_membership.remove`.
    pub fn remove_member(&mut self, at: i64, user: &str, group: &str) -> Result<(), ChangeError> {
        self.live_user(user)?;
        let removed = self
            .groups
            .get_mut(group)
            .ok_or_else(|| ChangeError::NotFound(format!("group {group}")))?
            .members
            .remove(user);
        if !removed {
            return Err(ChangeError::Invalid(format!("{user} is not in {group}")));
        }
        if let Some(g) = self.user_groups.get_mut(user) {
            g.remove(group);
        }
        self.groups
            .get_mut(group)
            .expect("checked")
            .last_membership_updated = at;
        let targets = vec![
            Org::user_target(&self.users[user]),
            Org::group_target(&self.groups[group]),
        ];
        self.log_event(
            at,
            "group.user_membership.remove",
            "Remove user from group membership",
            targets,
        );
        Ok(())
    }

    fn new_assignment(&mut self, at: i64, role: &str, assignment_type: &str) -> RoleAssignment {
        let serial = self.next_serial();
        let custom = self.custom_roles.get(role).cloned();
        match custom {
            Some(custom) => RoleAssignment {
                id: okta_id("irb", serial),
                role_type: "CUSTOM".into(),
                label: custom.label,
                assignment_type: assignment_type.into(),
                custom_role: Some(custom.id),
                resource_set: Some(okta_id("iam", serial)),
                created: at,
            },
            None => RoleAssignment {
                id: okta_id("ra1", serial),
                role_type: role.to_owned(),
                label: role_label(role),
                assignment_type: assignment_type.into(),
                custom_role: None,
                resource_set: None,
                created: at,
            },
        }
    }

    fn check_role(&self, role: &str) -> Result<(), ChangeError> {
        if ROLE_TYPES.contains(&role) || self.custom_roles.contains_key(role) {
            Ok(())
        } else {
            Err(ChangeError::NotFound(format!("role {role}")))
        }
    }

    /// Assigns a standard role type (e.g. `READ_ONLY_ADMIN`) or a custom role (by its id) to a
    /// user; logs `user.account.privilege.grant`. Returns the assignment id.
    pub fn grant_user_role(
        &mut self,
        at: i64,
        user: &str,
        role: &str,
    ) -> Result<String, ChangeError> {
        self.live_user(user)?;
        self.check_role(role)?;
        let assignment = self.new_assignment(at, role, "USER");
        let id = assignment.id.clone();
        let mut target = Org::user_target(&self.users[user]);
        target["detailEntry"] = json!({"privilegeGranted": assignment.label});
        self.user_roles
            .entry(user.to_owned())
            .or_default()
            .push(assignment);
        self.log_event(
            at,
            "user.account.privilege.grant",
            "Grant user privilege",
            vec![target],
        );
        Ok(id)
    }

    /// Removes a user's role assignment; logs `user.account.privilege.revoke`.
    pub fn revoke_user_role(
        &mut self,
        at: i64,
        user: &str,
        assignment: &str,
    ) -> Result<(), ChangeError> {
        self.live_user(user)?;
        let roles = self.user_roles.entry(user.to_owned()).or_default();
        let before = roles.len();
        roles.retain(|r| r.id != assignment);
        if roles.len() == before {
            return Err(ChangeError::NotFound(format!(
                "role assignment {assignment}"
            )));
        }
        let target = Org::user_target(&self.users[user]);
        self.log_event(
            at,
            "user.account.privilege.revoke",
            "Revoke user privilege",
            vec![target],
        );
        Ok(())
    }

    /// Assigns a role to a group (every member holds it); logs `group.privilege.grant`.
    pub fn grant_group_role(
        &mut self,
        at: i64,
        group: &str,
        role: &str,
    ) -> Result<String, ChangeError> {
        if !self.groups.contains_key(group) {
            return Err(ChangeError::NotFound(format!("group {group}")));
        }
        self.check_role(role)?;
        let assignment = self.new_assignment(at, role, "GROUP");
        let id = assignment.id.clone();
        self.group_roles
            .entry(group.to_owned())
            .or_default()
            .push(assignment);
        let target = Org::group_target(&self.groups[group]);
        self.log_event(
            at,
            "group.privilege.grant",
            "Grant group privilege",
            vec![target],
        );
        Ok(id)
    }

    /// Removes a group's role assignment; logs `group.privilege.revoke`.
    pub fn revoke_group_role(
        &mut self,
        at: i64,
        group: &str,
        assignment: &str,
    ) -> Result<(), ChangeError> {
        let roles = self.group_roles.entry(group.to_owned()).or_default();
        let before = roles.len();
        roles.retain(|r| r.id != assignment);
        if roles.len() == before {
            return Err(ChangeError::NotFound(format!(
                "role assignment {assignment}"
            )));
        }
        let target = Org::group_target(&self.groups[group]);
        self.log_event(
            at,
            "group.privilege.revoke",
            "Revoke group privilege",
            vec![target],
        );
        Ok(())
    }

    /// Enrols and activates a factor of this type; logs `user.mfa.factor.activate`. Returns the
    /// factor id.
    pub fn enroll_factor(
        &mut self,
        at: i64,
        user: &str,
        factor_type: &str,
    ) -> Result<String, ChangeError> {
        self.live_user(user)?;
        if !FACTOR_TYPES.contains(&factor_type) {
            return Err(ChangeError::NotFound(format!("factor type {factor_type}")));
        }
        let serial = self.next_serial();
        let factor = Factor {
            id: okta_id(factor_prefix(factor_type), serial),
            factor_type: factor_type.to_owned(),
            provider: factor_provider(factor_type).to_owned(),
            status: "ACTIVE".into(),
            created: at,
            last_updated: at,
        };
        let id = factor.id.clone();
        self.factors
            .entry(user.to_owned())
            .or_default()
            .push(factor);
        let target = Org::user_target(&self.users[user]);
        self.log_event(
            at,
            "user.mfa.factor.activate",
            "User set up MFA factor",
            vec![target],
        );
        Ok(id)
    }

    /// Resets (removes) one factor; logs `user.mfa.factor.deactivate`.
    pub fn reset_factor(&mut self, at: i64, user: &str, factor: &str) -> Result<(), ChangeError> {
        self.live_user(user)?;
        let factors = self.factors.entry(user.to_owned()).or_default();
        let before = factors.len();
        factors.retain(|f| f.id != factor);
        if factors.len() == before {
            return Err(ChangeError::NotFound(format!("factor {factor}")));
        }
        let target = Org::user_target(&self.users[user]);
        self.log_event(
            at,
            "user.mfa.factor.deactivate",
            "Reset factor for user",
            vec![target],
        );
        Ok(())
    }

    /// Resets every factor of a user; logs `user.mfa.factor.reset_all`.
    pub fn reset_all_factors(&mut self, at: i64, user: &str) -> Result<(), ChangeError> {
        self.live_user(user)?;
        self.factors.remove(user);
        let target = Org::user_target(&self.users[user]);
        self.log_event(
            at,
            "user.mfa.factor.reset_all",
            "Reset all factors for user",
            vec![target],
        );
        Ok(())
    }
}

/// The display label of a standard role type (Roles API examples: `"label": "Read-only
/// Administrator"` for `READ_ONLY_ADMIN`, …).
pub fn role_label(role: &str) -> String {
    match role {
        "SUPER_ADMIN" => "Super Administrator",
        "ORG_ADMIN" => "Organizational Administrator",
        "APP_ADMIN" => "Application Administrator",
        "USER_ADMIN" => "Group Administrator",
        "HELP_DESK_ADMIN" => "Help Desk Administrator",
        "READ_ONLY_ADMIN" => "Read-only Administrator",
        "MOBILE_ADMIN" => "Mobile Administrator",
        "API_ACCESS_MANAGEMENT_ADMIN" => "API Access Management Administrator",
        "REPORT_ADMIN" => "Report Administrator",
        "GROUP_MEMBERSHIP_ADMIN" => "Group Membership Administrator",
        "WORKFLOWS_ADMIN" => "Workflows Administrator",
        "ACCESS_CERTIFICATIONS_ADMIN" => "Access Certifications Administrator",
        "ACCESS_REQUESTS_ADMIN" => "Access Requests Administrator",
        other => other,
    }
    .to_owned()
}

/// The provider Okta names for a factor type (Factors API examples).
pub fn factor_provider(factor_type: &str) -> &'static str {
    match factor_type {
        "token:hardware" => "YUBICO",
        "token" => "RSA",
        "token:hotp" => "CUSTOM",
        "u2f" | "webauthn" => "FIDO",
        "web" => "DUO",
        "token:software:totp" => "GOOGLE",
        _ => "OKTA",
    }
}

fn factor_prefix(factor_type: &str) -> &'static str {
    match factor_type {
        "sms" => "sms",
        "call" => "clf",
        "email" => "emf",
        "push" => "opf",
        "question" => "ufs",
        "webauthn" | "u2f" => "fwf",
        "token:software:totp" => "uft",
        _ => "ost",
    }
}

/// A factor as the Factors API answers it.
pub(crate) fn factor_json(factor: &Factor, user_id: &str, base: &str) -> Value {
    let profile = match factor.factor_type.as_str() {
        "sms" | "call" => json!({"phoneNumber": "+1-555-0100"}),
        "email" => json!({"email": "factor@example.com"}),
        "question" => {
            json!({"question": "favorite_art_piece", "questionText": "What is your favorite piece of art?"})
        }
        "push" | "signed_nonce" => {
            json!({"credentialId": "user@example.com", "deviceType": "SmartPhone_IPhone", "platform": "IOS"})
        }
        "webauthn" | "u2f" => {
            json!({"credentialId": "l3Br0n-7H3g047NqESqJynFtIgf3Ix9OfaRoNwLoloso99Xl2zS_O7EXUkmPeAIzTVtEL4dYjicJWBz7NpqhGA", "authenticatorName": "MacBook Touch ID"})
        }
        _ => json!({"credentialId": "user@example.com"}),
    };
    json!({
        "id": factor.id,
        "factorType": factor.factor_type,
        "provider": factor.provider,
        "vendorName": factor.provider,
        "status": factor.status,
        "created": format_ms(factor.created),
        "lastUpdated": format_ms(factor.last_updated),
        "profile": profile,
        "_links": {"self": {"href": format!("{base}/api/v1/users/{user_id}/factors/{}", factor.id)}},
    })
}

/// A role assignment as the Roles API answers it.
pub(crate) fn role_json(role: &RoleAssignment, base: &str) -> Value {
    let mut value = json!({
        "id": role.id,
        "label": role.label,
        "type": role.role_type,
        "status": "ACTIVE",
        "created": format_ms(role.created),
        "lastUpdated": format_ms(role.created),
        "assignmentType": role.assignment_type,
        "_links": {},
    });
    if let (Some(custom), Some(set)) = (&role.custom_role, &role.resource_set) {
        value["role"] = json!(custom);
        value["resource-set"] = json!(set);
        value["_links"] = json!({
            "role": {"href": format!("{base}/api/v1/iam/roles/{custom}")},
            "resource-set": {"href": format!("{base}/api/v1/iam/resource-sets/{set}")},
        });
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    #[test]
    fn only_profile_and_status_changes_bump_last_updated() {
        let mut org = Org::generated(3, 40, NOW);
        let user = org
            .users()
            .find(|u| u.status == "ACTIVE")
            .unwrap()
            .id
            .clone();
        let group = org
            .groups()
            .find(|g| g.group_type == "OKTA_GROUP" && !g.members.contains(&user))
            .unwrap()
            .id
            .clone();
        let before = org.user(&user).unwrap().last_updated;
        org.add_member(NOW + 1, &user, &group).unwrap();
        org.grant_user_role(NOW + 2, &user, "REPORT_ADMIN").unwrap();
        org.enroll_factor(NOW + 3, &user, "sms").unwrap();
        assert_eq!(org.user(&user).unwrap().last_updated, before);
        assert_eq!(
            org.groups.get(&group).unwrap().last_membership_updated,
            NOW + 1
        );
        org.suspend(NOW + 4, &user).unwrap();
        assert_eq!(org.user(&user).unwrap().last_updated, NOW + 4);
        assert_eq!(org.user(&user).unwrap().status_changed, Some(NOW + 4));
        assert_eq!(
            org.suspend(NOW + 5, &user),
            Err(ChangeError::Invalid(format!("user {user} is not ACTIVE")))
        );
        let patch: Map<String, Value> = serde_json::from_value(json!({"title": null})).unwrap();
        org.update_profile(NOW + 6, &user, &patch).unwrap();
        assert_eq!(org.user(&user).unwrap().profile["title"], Value::Null);
        assert_eq!(org.user(&user).unwrap().last_updated, NOW + 6);
    }

    #[test]
    fn a_hand_written_org_takes_custom_roles_and_factors_in_any_status() {
        let mut org = Org::empty("00oHANDWRITTEN");
        let mut profile = Map::new();
        profile.insert("login".into(), json!("ana@example.com"));
        let user = OktaUser {
            id: "00uANA".into(),
            status: "ACTIVE".into(),
            transitioning_to_status: None,
            created: NOW,
            activated: None,
            status_changed: None,
            last_login: None,
            last_updated: NOW,
            password_changed: None,
            type_id: "oty1".into(),
            profile,
        };
        org.insert_user(user, NOW, true);
        org.insert_custom_role(CustomRole {
            id: "cr0X".into(),
            label: "Auditor".into(),
            description: "reads".into(),
            created: NOW,
        });
        let assignment = org.grant_user_role(NOW, "00uANA", "cr0X").unwrap();
        assert_eq!(org.roles_of("00uANA")[0].id, assignment);
        assert_eq!(org.roles_of("00uANA")[0].role_type, "CUSTOM");
        let factor = Factor {
            id: "ufs1".into(),
            factor_type: "question".into(),
            provider: "OKTA".into(),
            status: "PENDING_ACTIVATION".into(),
            created: NOW,
            last_updated: NOW,
        };
        org.insert_factor("00uANA", factor.clone()).unwrap();
        assert_eq!(org.factors_of("00uANA"), vec![factor.clone()]);
        assert!(org.insert_factor("00uNOBODY", factor).is_err());
        let types: Vec<&str> = org.log().iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            ["user.lifecycle.create", "user.account.privilege.grant"]
        );
    }

    #[test]
    fn deleting_removes_the_user_everywhere_and_the_index_follows_after_the_lag() {
        let mut org = Org::generated(3, 40, NOW);
        let user = org
            .users()
            .find(|u| u.status == "ACTIVE")
            .unwrap()
            .id
            .clone();
        assert_eq!(org.delete(NOW, &user), Ok(DeleteOutcome::Deactivated));
        assert_eq!(org.delete(NOW + 10, &user), Ok(DeleteOutcome::Deleted));
        assert!(org.user(&user).is_none());
        assert!(org.groups().all(|g| !g.members.contains(&user)));
        assert!(org.factors_of(&user).is_empty() && org.roles_of(&user).is_empty());
        assert_eq!(org.deleted_users().last().unwrap().id, user);
        assert!(
            org.search_index(NOW - 1).contains_key(&user),
            "not yet visible"
        );
        assert!(!org.search_index(NOW + 10).contains_key(&user));
        assert_eq!(
            org.delete(NOW + 11, &user),
            Err(ChangeError::NotFound(format!("user {user}")))
        );
    }
}
