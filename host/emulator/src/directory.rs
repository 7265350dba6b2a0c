//! The live directory behind a running emulator: users plus the indexes that keep every
//! request proportional to its page.
//!
//! The demo pushes ~35,000 requests for 10,000 users through the emulator on two cores, and
//! tests change users while a run is in flight. So users live in insertion order under a
//! stable sequence number (paging resumes after a number, unaffected by removals), with
//! indexes by id, by UPN and by creation time (for `$orderby`/`$filter`), and a change log
//! ordered by version that `users/delta` reads. Groups, roles and their members are derived
//! from the users' memberships and cached until the next change (a relation-only change
//! included, though it leaves no trace in the users' change log). Membership changes have a
//! log of their own, by version, that `groups/delta` reads; every group ever seen stays known
//! (a group whose last member left is still a group, with no members, as in Entra ID).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Map, Value};

use crate::clock::{parse_iso, Stamp};
use crate::reply::intern_code;
use crate::roles::{grants, DefinitionBook, Grant};
use crate::tenant::{SimUser, Tenant, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP};

/// Position of a user in creation-time order: nulls first, ties broken by insertion.
pub(crate) type CreatedKey = (Option<Stamp>, u64);

/// One user as the live directory holds it.
#[derive(Clone, Debug)]
pub(crate) struct UserEntry {
    /// The user and its relations.
    pub sim: SimUser,
    /// Parsed `createdDateTime` (`None` when null, absent or unparseable).
    pub created: Option<Stamp>,
    /// Directory version of the last change to this user.
    pub changed: u64,
}

/// An entry of the change log that `users/delta` replays.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// The user with this sequence number was created or changed.
    Upsert(u64),
    /// A user left the directory.
    Removed {
        /// Its object id.
        id: String,
        /// `"changed"` (soft-deleted) or `"deleted"` (gone for good), as Graph reports it.
        reason: &'static str,
    },
}

/// A change to a group that `groups/delta` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GroupChange {
    /// A user joined (`added`) or left the group.
    Link {
        /// The group id.
        group: String,
        /// The user id.
        user: String,
        /// Joined (true) or left (false).
        added: bool,
    },
    /// The group object (as the users' `memberOf` shows it) changed.
    Properties {
        /// The group id.
        group: String,
    },
}

/// Groups and roles as the tenant's memberships reveal them.
#[derive(Debug)]
pub(crate) struct Catalog {
    /// Every group object found in any `memberOf`, first-seen order, without `@odata.type`,
    /// then every group known from earlier memberships that has no member left.
    pub groups: Vec<Value>,
    /// Every directory role held directly or inherited: id, displayName, description,
    /// roleTemplateId.
    pub roles: Vec<Value>,
    /// Role id → its direct members as Graph lists them: the users holding it directly (or
    /// inherited without a `viaGroup`) and the role-assignable groups granting it, each once,
    /// in the order first met walking the users in insertion order.
    pub role_members: HashMap<String, Vec<Value>>,
    /// Group id → users whose `memberOf` holds the group, in insertion order.
    pub group_members: HashMap<String, Vec<Value>>,
    /// Group id → the ids of its members, sorted (what `groups/delta` pages through).
    pub group_member_ids: HashMap<String, Vec<String>>,
    /// Every role definition: built-in, named by the tenant data, custom.
    pub definitions: DefinitionBook,
    /// Every role grant, active and eligible, as the role-management API lists them.
    pub grants: Vec<Grant>,
    /// The users holding at least one **active** directory role, at any scope, directly or
    /// through a role-assignable group: exactly the users with a non-empty active list in
    /// [`Tenant::admin_roles`] (the same grants, the same group expansion). PIM-eligible-only
    /// users are not in it. The registration report's `isAdmin` reads it.
    pub active_admins: HashSet<String>,
}

/// The users of a running emulator and their indexes.
#[derive(Debug)]
pub(crate) struct Directory {
    users: BTreeMap<u64, UserEntry>,
    by_id: HashMap<String, u64>,
    by_upn: HashMap<String, u64>,
    by_created: BTreeSet<CreatedKey>,
    changes: BTreeMap<u64, Change>,
    next_seq: u64,
    version: u64,
    delta_floor: u64,
    delta_expiry: (u16, &'static str),
    catalog: Mutex<Option<Arc<Catalog>>>,
    custom_definitions: Vec<Value>,
    /// Every group ever seen, by id: its latest object (no `@odata.type`, no `viaGroup`).
    known_groups: BTreeMap<String, Value>,
    /// Version → the group changes made at that version.
    group_log: BTreeMap<u64, Vec<GroupChange>>,
}

fn created_of(sim: &SimUser) -> Option<Stamp> {
    sim.text("createdDateTime").and_then(parse_iso)
}

fn upn_key(sim: &SimUser) -> Option<String> {
    sim.text("userPrincipalName").map(str::to_lowercase)
}

impl Directory {
    /// A directory holding the tenant's users in order (the initial memberships are known but
    /// leave no trace in the group log: a first `groups/delta` round lists them anyway).
    pub(crate) fn new(tenant: Tenant) -> Directory {
        let (users, custom_definitions) = tenant.into_parts();
        let mut directory = Directory {
            users: BTreeMap::new(),
            by_id: HashMap::new(),
            by_upn: HashMap::new(),
            by_created: BTreeSet::new(),
            changes: BTreeMap::new(),
            next_seq: 1,
            version: 0,
            delta_floor: 0,
            delta_expiry: (410, "syncStateNotFound"),
            catalog: Mutex::new(None),
            custom_definitions,
            known_groups: BTreeMap::new(),
            group_log: BTreeMap::new(),
        };
        for user in users {
            directory.put(user);
        }
        directory.group_log.clear();
        directory
    }

    /// Records the group changes between a user's memberships before and after a change, at a
    /// new version when there are any (`version`: the version of the change, if it has one).
    fn log_groups(
        &mut self,
        user: &str,
        before: &BTreeMap<String, Value>,
        after: &BTreeMap<String, Value>,
        version: Option<u64>,
    ) {
        let mut changes = Vec::new();
        for (id, object) in after {
            if !before.contains_key(id) {
                changes.push(GroupChange::Link {
                    group: id.clone(),
                    user: user.to_owned(),
                    added: true,
                });
            }
            match self.known_groups.get(id) {
                Some(known) if known == object => {}
                Some(_) => {
                    changes.push(GroupChange::Properties { group: id.clone() });
                    self.known_groups.insert(id.clone(), object.clone());
                }
                None => {
                    self.known_groups.insert(id.clone(), object.clone());
                }
            }
        }
        for id in before.keys() {
            if !after.contains_key(id) {
                changes.push(GroupChange::Link {
                    group: id.clone(),
                    user: user.to_owned(),
                    added: false,
                });
            }
        }
        if changes.is_empty() {
            return;
        }
        let version = match version {
            Some(v) => v,
            None => self.bump(),
        };
        self.group_log.entry(version).or_default().extend(changes);
    }

    /// Group changes with a version in `(after, upto]`, oldest first.
    pub(crate) fn group_changes(
        &self,
        after: u64,
        upto: u64,
    ) -> impl Iterator<Item = &GroupChange> {
        self.group_log
            .range((Bound::Excluded(after), Bound::Included(upto)))
            .flat_map(|(_, changes)| changes.iter())
    }

    /// The latest object of a group ever seen.
    pub(crate) fn known_group(&self, id: &str) -> Option<&Value> {
        self.known_groups.get(id)
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.forget_catalog();
        self.version
    }

    fn forget_catalog(&mut self) {
        *self
            .catalog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn index(&mut self, seq: u64) {
        if let Some(entry) = self.users.get(&seq) {
            if let Some(id) = entry.sim.id() {
                self.by_id.insert(id.to_owned(), seq);
            }
            if let Some(upn) = upn_key(&entry.sim) {
                self.by_upn.insert(upn, seq);
            }
            self.by_created.insert((entry.created, seq));
        }
    }

    fn unindex(&mut self, seq: u64) {
        if let Some(entry) = self.users.get(&seq) {
            if let Some(id) = entry.sim.id() {
                self.by_id.remove(id);
            }
            if let Some(upn) = upn_key(&entry.sim) {
                if self.by_upn.get(&upn) == Some(&seq) {
                    self.by_upn.remove(&upn);
                }
            }
            self.by_created.remove(&(entry.created, seq));
        }
    }

    /// Adds a user at the end, or replaces the user with the same id in place.
    /// Users without a string id are ignored (returns false).
    pub(crate) fn put(&mut self, sim: SimUser) -> bool {
        let Some(id) = sim.id().map(str::to_owned) else {
            return false;
        };
        if self.by_id.contains_key(&id) {
            return self.modify(&id, move |existing| *existing = sim);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let version = self.bump();
        let created = created_of(&sim);
        self.log_groups(&id, &BTreeMap::new(), &group_objects(&sim), Some(version));
        self.users.insert(
            seq,
            UserEntry {
                sim,
                created,
                changed: version,
            },
        );
        self.changes.insert(version, Change::Upsert(seq));
        self.index(seq);
        true
    }

    /// Changes a user in place; its id cannot change. Returns false for an unknown id.
    pub(crate) fn modify(&mut self, id: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let Some(&seq) = self.by_id.get(id) else {
            return false;
        };
        self.unindex(seq);
        let version = self.bump();
        let mut groups = None;
        if let Some(entry) = self.users.get_mut(&seq) {
            let before = group_objects(&entry.sim);
            change(&mut entry.sim);
            groups = Some((before, group_objects(&entry.sim)));
            if !entry.sim.user.is_object() {
                entry.sim.user = Value::Object(Map::new());
            }
            if let Some(object) = entry.sim.user.as_object_mut() {
                object.insert("id".into(), json!(id));
            }
            entry.created = created_of(&entry.sim);
            self.changes.remove(&entry.changed);
            entry.changed = version;
            self.changes.insert(version, Change::Upsert(seq));
        }
        if let Some((before, after)) = groups {
            self.log_groups(id, &before, &after, Some(version));
        }
        self.index(seq);
        true
    }

    /// Changes the relations of a user (`member_of`, `inherited_roles`, `auth_methods`) without
    /// a new version or change-log entry: `users/delta` does not see it, derived lists do. The
    /// user object is put back as it was, whatever the closure did to it. False for an
    /// unknown id.
    pub(crate) fn modify_relations(&mut self, id: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let Some(&seq) = self.by_id.get(id) else {
            return false;
        };
        let Some(entry) = self.users.get_mut(&seq) else {
            return false;
        };
        let user = entry.sim.user.clone();
        let before = group_objects(&entry.sim);
        change(&mut entry.sim);
        entry.sim.user = user;
        let after = group_objects(&entry.sim);
        self.forget_catalog();
        self.log_groups(id, &before, &after, None);
        true
    }

    /// Removes a user; `reason` is what delta reports ("changed" or "deleted").
    pub(crate) fn remove(&mut self, id: &str, reason: &'static str) -> bool {
        let Some(&seq) = self.by_id.get(id) else {
            return false;
        };
        self.unindex(seq);
        let version = self.bump();
        if let Some(entry) = self.users.remove(&seq) {
            self.changes.remove(&entry.changed);
            let before = group_objects(&entry.sim);
            self.log_groups(id, &before, &BTreeMap::new(), Some(version));
        }
        self.changes.insert(
            version,
            Change::Removed {
                id: id.to_owned(),
                reason,
            },
        );
        true
    }

    /// Invalidates every delta token issued so far: later requests carrying one get `status`
    /// with the Graph error `code`.
    pub(crate) fn expire_delta_tokens(&mut self, status: u16, code: &str) {
        self.delta_floor = self.bump();
        self.delta_expiry = (status, intern_code(code));
    }

    /// Delta tokens minted before this version are expired.
    pub(crate) fn delta_floor(&self) -> u64 {
        self.delta_floor
    }

    /// The status and code an expired delta token is answered with.
    pub(crate) fn delta_expiry(&self) -> (u16, &'static str) {
        self.delta_expiry
    }

    /// The version of the latest change.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// How many users there are.
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }

    /// A user by object id or (case-insensitive) userPrincipalName.
    pub(crate) fn find(&self, key: &str) -> Option<&UserEntry> {
        let seq = self
            .by_id
            .get(key)
            .or_else(|| self.by_upn.get(&key.to_lowercase()))?;
        self.users.get(seq)
    }

    /// The sequence number of a user by object id (not by userPrincipalName).
    pub(crate) fn seq_of(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).copied()
    }

    /// A user by sequence number.
    pub(crate) fn entry(&self, seq: u64) -> Option<&UserEntry> {
        self.users.get(&seq)
    }

    /// Users in insertion order after the sequence number `after` (all when `None`).
    pub(crate) fn users_after(
        &self,
        after: Option<u64>,
    ) -> impl Iterator<Item = (u64, &UserEntry)> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.users
            .range((start, Bound::Unbounded))
            .map(|(s, e)| (*s, e))
    }

    /// Keys of the creation-time index between two bounds, ascending; empty when the bounds
    /// cross (never panics).
    pub(crate) fn created_range(
        &self,
        low: Bound<CreatedKey>,
        high: Bound<CreatedKey>,
    ) -> Box<dyn DoubleEndedIterator<Item = &CreatedKey> + '_> {
        let crossed = match (&low, &high) {
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => {
                l > h
                    || (l == h
                        && (matches!(low, Bound::Excluded(_))
                            || matches!(high, Bound::Excluded(_))))
            }
            _ => false,
        };
        if crossed {
            Box::new(std::iter::empty())
        } else {
            Box::new(self.by_created.range((low, high)))
        }
    }

    /// Changes with a version above `after`, oldest first.
    pub(crate) fn changes_after(&self, after: u64) -> impl Iterator<Item = (u64, &Change)> {
        self.changes
            .range((Bound::Excluded(after), Bound::Unbounded))
            .map(|(v, c)| (*v, c))
    }

    /// The tenant's custom role definitions.
    pub(crate) fn custom_definitions(&self) -> &[Value] {
        &self.custom_definitions
    }

    /// The users now, in insertion order.
    pub(crate) fn snapshot(&self) -> Vec<SimUser> {
        self.users.values().map(|e| e.sim.clone()).collect()
    }

    /// Groups and roles derived from the memberships, rebuilt after any change.
    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        let mut cached = self.catalog.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(catalog) = cached.as_ref() {
            return Arc::clone(catalog);
        }
        let catalog = Arc::new(self.build_catalog());
        *cached = Some(Arc::clone(&catalog));
        catalog
    }

    fn build_catalog(&self) -> Catalog {
        let mut catalog = Catalog {
            groups: Vec::new(),
            roles: Vec::new(),
            role_members: HashMap::new(),
            group_members: HashMap::new(),
            group_member_ids: HashMap::new(),
            definitions: DefinitionBook::new(
                self.users.values().map(|e| &e.sim),
                &self.custom_definitions,
            ),
            grants: grants(self.users.values().map(|e| &e.sim)),
            active_admins: HashSet::new(),
        };
        let mut group_names: HashMap<String, Value> = HashMap::new();
        for entry in self.users.values() {
            let sim = &entry.sim;
            let member = user_reference(sim);
            for group in sim.memberships_of_type(GROUP_TYPE) {
                let id = group.get("id").and_then(Value::as_str).unwrap_or_default();
                let members = match catalog.group_members.entry(id.to_owned()) {
                    std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        let mut object = group.as_object().cloned().unwrap_or_default();
                        object.remove("@odata.type");
                        object.remove(VIA_GROUP);
                        group_names.insert(
                            id.to_owned(),
                            group.get("displayName").cloned().unwrap_or(Value::Null),
                        );
                        catalog.groups.push(Value::Object(object));
                        slot.insert(Vec::new())
                    }
                };
                // The same group twice in one memberOf lists the user once.
                if members.last().map(|m| &m["id"]) != Some(&member["id"]) {
                    members.push(member.clone());
                }
            }
        }
        let mut listed: HashSet<(String, String)> = HashSet::new();
        for entry in self.users.values() {
            let sim = &entry.sim;
            let user_id = sim.id().unwrap_or_default();
            let direct = sim
                .memberships_of_type(DIRECTORY_ROLE_TYPE)
                .map(|r| (r, None));
            let inherited = sim.inherited_roles.iter().map(|r| {
                let via = r
                    .get(VIA_GROUP)
                    .and_then(Value::as_str)
                    .filter(|g| !g.is_empty());
                (r, via)
            });
            for (role, via) in direct.chain(inherited) {
                let id = role.get("id").and_then(Value::as_str).unwrap_or_default();
                if id.is_empty() {
                    continue;
                }
                let members = catalog
                    .role_members
                    .entry(id.to_owned())
                    .or_insert_with(|| {
                        let field = |name: &str| role.get(name).cloned().unwrap_or(Value::Null);
                        catalog.roles.push(json!({
                            "id": id,
                            "deletedDateTime": null,
                            "description": field("description"),
                            "displayName": field("displayName"),
                            "roleTemplateId": field("roleTemplateId"),
                        }));
                        Vec::new()
                    });
                let (member_id, object) = match via {
                    Some(group) => (
                        group,
                        json!({
                            "@odata.type": GROUP_TYPE,
                            "id": group,
                            "displayName": group_names.get(group).cloned().unwrap_or(Value::Null),
                        }),
                    ),
                    None => (user_id, user_reference(sim)),
                };
                if listed.insert((id.to_owned(), member_id.to_owned())) {
                    members.push(object);
                }
            }
        }
        for (id, object) in &self.known_groups {
            if !catalog.group_members.contains_key(id) {
                catalog.groups.push(object.clone());
                catalog.group_members.insert(id.clone(), Vec::new());
            }
        }
        for (id, members) in &catalog.group_members {
            let mut ids: Vec<String> = members
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect();
            ids.sort();
            ids.dedup();
            catalog.group_member_ids.insert(id.clone(), ids);
        }
        let mut admins = HashSet::new();
        for grant in catalog.grants.iter().filter(|g| !g.eligible) {
            admins.extend(grant.declared_by.iter().cloned());
            if grant.group {
                let members = catalog.group_member_ids.get(&grant.principal);
                admins.extend(members.into_iter().flatten().cloned());
            }
        }
        catalog.active_admins = admins;
        catalog
    }
}

/// A user's groups (direct `memberOf` entries of type group), by id, as the group objects
/// `/groups` serves (no `@odata.type`, no `viaGroup`); the first entry of an id wins.
fn group_objects(sim: &SimUser) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for group in sim.memberships_of_type(GROUP_TYPE) {
        let Some(id) = group.get("id").and_then(Value::as_str) else {
            continue;
        };
        if out.contains_key(id) {
            continue;
        }
        let mut object = group.as_object().cloned().unwrap_or_default();
        object.remove("@odata.type");
        object.remove(VIA_GROUP);
        out.insert(id.to_owned(), Value::Object(object));
    }
    out
}

/// A user as relation lists show it: type, id, displayName, userPrincipalName.
fn user_reference(sim: &SimUser) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": sim.id(),
        "displayName": sim.user.get("displayName").cloned().unwrap_or(Value::Null),
        "userPrincipalName": sim.user.get("userPrincipalName").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, created: Value) -> SimUser {
        SimUser {
            user: json!({"id": id, "createdDateTime": created, "userPrincipalName": format!("{id}@x.com")}),
            member_of: Vec::new(),
            inherited_roles: Vec::new(),
            auth_methods: Vec::new(),
            role_assignments: Vec::new(),
        }
    }

    #[test]
    fn changes_keep_indexes_and_log_in_step() {
        let tenant = Tenant::from_users(vec![
            user("a", json!("2023-01-01T00:00:00Z")),
            user("b", Value::Null),
        ])
        .expect("valid users");
        let mut dir = Directory::new(tenant);
        assert_eq!(dir.len(), 2);
        assert!(dir.find("A@X.COM").is_some());
        let start = dir.version();
        assert!(dir.modify("b", |u| u.user["createdDateTime"] =
            json!("2020-01-01T00:00:00Z")));
        assert!(dir.remove("a", "deleted"));
        assert!(!dir.remove("a", "deleted"));
        let ordered: Vec<_> = dir
            .created_range(Bound::Unbounded, Bound::Unbounded)
            .map(|k| k.1)
            .collect();
        assert_eq!(ordered, vec![2]);
        let log: Vec<_> = dir.changes_after(start).map(|(_, c)| c.clone()).collect();
        assert!(matches!(
            log.as_slice(),
            [
                Change::Upsert(2),
                Change::Removed {
                    reason: "deleted",
                    ..
                }
            ]
        ));
        let crossed = dir.created_range(
            Bound::Excluded((Some((5, 0)), 0)),
            Bound::Excluded((Some((5, 0)), 0)),
        );
        assert_eq!(crossed.count(), 0);
    }
}
