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
//!
//! Compact at scale (see `MEMORY.md`): a user object is kept as its JSON text and parsed when
//! served; memberships, inherited roles, authentication methods and role assignments are
//! indexes into one table of distinct objects ([`Objects`]), so 15 million memberships of a
//! million users cost 4 bytes each; the derived catalog lists group members as user sequence
//! numbers and renders the user references of the page being served only.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Map, Value};

use crate::clock::{parse_iso, Stamp};
use crate::packed::{pack, unpack};
use crate::reply::intern_code;
use crate::roles::{grants, DefinitionBook, Grant};
use crate::tenant::{odata_type, SimUser, Tenant, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP};

/// Position of a user in creation-time order: nulls first, ties broken by insertion.
pub(crate) type CreatedKey = (Option<Stamp>, u64);

/// A JSON object as the directory keeps it: its text with the property names packed
/// ([`crate::packed`]), parsed per access (a generated user costs ~510 bytes so, against
/// ~5 KB as a `Value`: `MEMORY.md`), or the `Value` itself when the text might not give it back bit for bit (it holds
/// a floating-point number).
#[derive(Clone, Debug)]
enum Stored {
    Text(Box<str>),
    Parsed(Box<Value>),
}

impl Stored {
    fn of(user: Value) -> Stored {
        fn has_float(value: &Value) -> bool {
            match value {
                Value::Number(n) => n.is_f64(),
                Value::Array(items) => items.iter().any(has_float),
                Value::Object(map) => map.values().any(has_float),
                _ => false,
            }
        }
        if has_float(&user) {
            return Stored::Parsed(Box::new(user));
        }
        match pack(&user.to_string()) {
            Some(text) => Stored::Text(text),
            None => Stored::Parsed(Box::new(user)),
        }
    }

    fn value(&self) -> Cow<'_, Value> {
        match self {
            Stored::Parsed(value) => Cow::Borrowed(value),
            // The text was written by serde_json from a Value: it parses.
            Stored::Text(text) => {
                Cow::Owned(serde_json::from_str(&unpack(text)).unwrap_or(Value::Null))
            }
        }
    }
}

/// One user as the live directory holds it.
#[derive(Clone, Debug)]
pub(crate) struct UserEntry {
    id: Box<str>,
    user: Stored,
    member_of: Box<[u32]>,
    inherited_roles: Box<[u32]>,
    auth_methods: Box<[u32]>,
    role_assignments: Box<[u32]>,
    /// Parsed `createdDateTime` (`None` when null, absent or unparseable).
    pub created: Option<Stamp>,
    /// Directory version of the last change to this user.
    pub changed: u64,
}

impl UserEntry {
    /// The user's object id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The user object (parsed from its stored text).
    pub(crate) fn user(&self) -> Cow<'_, Value> {
        self.user.value()
    }
}

/// What a table object is, for the walks that only want groups or roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Group,
    Role,
    Other,
}

/// Every distinct relation object of the tenant (memberships, inherited roles, role
/// assignments, authentication method types as JSON strings), once: users hold indexes.
/// Objects are told apart by their exact JSON text, so a fixture giving one group id two
/// different objects keeps both. Each is kept [`Stored`] (packed text), with its kind and, for
/// a group, its id; found again by a stable hash of its text (a collision keeps its own
/// entry). The table only grows (a few objects per change).
#[derive(Debug, Default)]
struct Objects {
    list: Vec<Stored>,
    kinds: Vec<Kind>,
    /// A group's `id` (when it has a string one); `None` for other objects.
    ids: Vec<Option<Box<str>>>,
    /// FNV-1a of an object's text → the first object with that hash.
    index: HashMap<u64, u32>,
    /// Texts whose hash an earlier, different object already has.
    collided: HashMap<Box<str>, u32>,
}

impl Objects {
    fn intern(&mut self, value: Value) -> u32 {
        let key = value.to_string();
        let hash = crate::generate::fnv1a(key.as_bytes());
        match self.index.get(&hash) {
            Some(&i) if self.text(i) == key => return i,
            Some(_) => {
                if let Some(&i) = self.collided.get(key.as_str()) {
                    return i;
                }
            }
            None => {}
        }
        let i = u32::try_from(self.list.len()).expect("fewer than 2^32 distinct objects");
        let kind = match odata_type(&value) {
            Some(GROUP_TYPE) => Kind::Group,
            Some(DIRECTORY_ROLE_TYPE) => Kind::Role,
            _ => Kind::Other,
        };
        self.kinds.push(kind);
        self.ids.push(
            (kind == Kind::Group)
                .then(|| value.get("id").and_then(Value::as_str).map(Box::from))
                .flatten(),
        );
        self.list.push(Stored::of(value));
        match self.index.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(key.into_boxed_str(), i);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        i
    }

    /// The JSON text of object `i`.
    fn text(&self, i: u32) -> String {
        match &self.list[i as usize] {
            Stored::Text(packed) => unpack(packed),
            Stored::Parsed(value) => value.to_string(),
        }
    }

    fn get(&self, i: u32) -> Cow<'_, Value> {
        self.list[i as usize].value()
    }

    fn kind(&self, i: u32) -> Kind {
        self.kinds[i as usize]
    }

    /// The id of group object `i` (`None`: not a group, or no string id).
    fn group_id(&self, i: u32) -> Option<&str> {
        self.ids[i as usize].as_deref()
    }

    fn values(&self, indexes: &[u32]) -> Vec<Value> {
        indexes.iter().map(|&i| self.get(i).into_owned()).collect()
    }

    /// A user's groups by id (first entry of an id wins), as object indexes.
    fn groups_of<'a>(&'a self, member_of: &[u32]) -> BTreeMap<&'a str, u32> {
        let mut out = BTreeMap::new();
        for &i in member_of {
            if let Some(id) = self.group_id(i) {
                out.entry(id).or_insert(i);
            }
        }
        out
    }
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

/// A group of the catalog: its id and the object (in the directory's table) that names it;
/// [`Directory::group`] renders it.
#[derive(Debug)]
pub(crate) struct CatalogGroup {
    /// The group's id (`None` when its object has no string id).
    pub id: Option<Box<str>>,
    /// Its object in the directory's table.
    pub object: u32,
}

/// Groups and roles as the tenant's memberships reveal them.
#[derive(Debug)]
pub(crate) struct Catalog {
    /// Every group found in any `memberOf`, first-seen order, then every group known from
    /// earlier memberships that has no member left.
    pub groups: Vec<CatalogGroup>,
    /// Positions in `groups` of the groups with an id, ordered by id (`groups/delta`'s order).
    pub groups_by_id: Vec<u32>,
    /// Every directory role held directly or inherited: id, displayName, description,
    /// roleTemplateId.
    pub roles: Vec<Value>,
    /// Role id → its direct members as Graph lists them: the users holding it directly (or
    /// inherited without a `viaGroup`) and the role-assignable groups granting it, each once,
    /// in the order first met walking the users in insertion order.
    pub role_members: HashMap<String, Vec<Value>>,
    /// Group id → sequence numbers of the users whose `memberOf` holds the group, in
    /// insertion order ([`Directory::user_reference`] renders one).
    pub group_members: HashMap<String, Vec<u32>>,
    /// Group id → the same users ordered by id (what `groups/delta` pages through;
    /// [`Directory::user_id`] names one).
    pub group_member_ids: HashMap<String, Vec<u32>>,
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
    objects: Objects,
    /// Every group ever seen, by id: the object (in `objects`) of its latest version.
    known_groups: BTreeMap<String, u32>,
    /// Version → the group changes made at that version.
    group_log: BTreeMap<u64, Vec<GroupChange>>,
    /// While the initial users are loaded: no group log (a first `groups/delta` round lists
    /// the initial memberships anyway).
    loading: bool,
    /// While loading, the objects [`Directory::put_with_groups`] has already made known.
    loaded_groups: Vec<bool>,
}

fn created_of(user: &Value) -> Option<Stamp> {
    user.get("createdDateTime")
        .and_then(Value::as_str)
        .and_then(parse_iso)
}

fn upn_key(user: &Value) -> Option<String> {
    user.get("userPrincipalName")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
}

/// A group as `/groups` serves it: its `memberOf` object without `@odata.type` and `viaGroup`.
fn group_object(membership: &Value) -> Value {
    let mut object = membership.as_object().cloned().unwrap_or_default();
    object.remove("@odata.type");
    object.remove(VIA_GROUP);
    Value::Object(object)
}

/// A user as relation lists show it: type, id, displayName, userPrincipalName.
fn user_reference(id: &str, user: &Value) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": id,
        "displayName": user.get("displayName").cloned().unwrap_or(Value::Null),
        "userPrincipalName": user.get("userPrincipalName").cloned().unwrap_or(Value::Null),
    })
}

fn seq32(seq: u64) -> u32 {
    u32::try_from(seq).expect("fewer than 2^32 users ever added")
}

impl Directory {
    /// A directory holding the tenant's users in order (the initial memberships are known but
    /// leave no trace in the group log: a first `groups/delta` round lists them anyway).
    pub(crate) fn new(tenant: Tenant) -> Directory {
        let (users, custom_definitions) = tenant.into_parts();
        let mut directory = Directory::empty(custom_definitions);
        for user in users {
            directory.put(user);
        }
        directory.loaded();
        directory
    }

    /// An empty directory in its loading state (see [`Directory::loaded`]).
    pub(crate) fn empty(custom_definitions: Vec<Value>) -> Directory {
        Directory {
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
            objects: Objects::default(),
            known_groups: BTreeMap::new(),
            group_log: BTreeMap::new(),
            loading: true,
            loaded_groups: Vec::new(),
        }
    }

    /// The initial users are in: later changes are logged for `groups/delta`.
    pub(crate) fn loaded(&mut self) {
        self.loading = false;
        self.loaded_groups = Vec::new();
        self.group_log.clear();
    }

    /// Records the group changes between a user's memberships before and after a change, at a
    /// new version when there are any (`version`: the version of the change, if it has one).
    fn log_groups(&mut self, user: &str, before: &[u32], after: &[u32], version: Option<u64>) {
        let objects = &self.objects;
        let before = objects.groups_of(before);
        let after = objects.groups_of(after);
        let mut changes = Vec::new();
        for (&id, &object) in &after {
            if !self.loading && !before.contains_key(id) {
                changes.push(GroupChange::Link {
                    group: id.to_owned(),
                    user: user.to_owned(),
                    added: true,
                });
            }
            match self.known_groups.get_mut(id) {
                Some(known) if *known == object => {}
                Some(known) => {
                    if group_object(&objects.get(*known)) != group_object(&objects.get(object)) {
                        changes.push(GroupChange::Properties {
                            group: id.to_owned(),
                        });
                    }
                    *known = object;
                }
                None => {
                    self.known_groups.insert(id.to_owned(), object);
                }
            }
        }
        for &id in before.keys() {
            if !after.contains_key(id) {
                changes.push(GroupChange::Link {
                    group: id.to_owned(),
                    user: user.to_owned(),
                    added: false,
                });
            }
        }
        if changes.is_empty() || self.loading {
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

    /// The latest object of a group ever seen (no `@odata.type`, no `viaGroup`).
    pub(crate) fn known_group(&self, id: &str) -> Option<Value> {
        self.known_groups
            .get(id)
            .map(|&i| group_object(&self.objects.get(i)))
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

    fn index(&mut self, seq: u64, upn: Option<String>) {
        if let Some(entry) = self.users.get(&seq) {
            self.by_id.insert(entry.id.to_string(), seq);
            if let Some(upn) = upn {
                self.by_upn.insert(upn, seq);
            }
            self.by_created.insert((entry.created, seq));
        }
    }

    fn unindex(&mut self, seq: u64) {
        if let Some(entry) = self.users.get(&seq) {
            self.by_id.remove(&*entry.id);
            if let Some(upn) = upn_key(&entry.user()) {
                if self.by_upn.get(&upn) == Some(&seq) {
                    self.by_upn.remove(&upn);
                }
            }
            self.by_created.remove(&(entry.created, seq));
        }
    }

    fn intern_all(&mut self, values: Vec<Value>) -> Box<[u32]> {
        values.into_iter().map(|v| self.objects.intern(v)).collect()
    }

    /// A user as the directory keeps it (id, text, interned relations), with its UPN key.
    fn compact(&mut self, id: &str, sim: SimUser, changed: u64) -> (UserEntry, Option<String>) {
        let SimUser {
            user,
            member_of,
            inherited_roles,
            auth_methods,
            role_assignments,
        } = sim;
        let created = created_of(&user);
        let upn = upn_key(&user);
        let entry = UserEntry {
            id: id.into(),
            user: Stored::of(user),
            member_of: self.intern_all(member_of),
            inherited_roles: self.intern_all(inherited_roles),
            auth_methods: self.intern_all(auth_methods.into_iter().map(Value::String).collect()),
            role_assignments: self.intern_all(role_assignments),
            created,
            changed,
        };
        (entry, upn)
    }

    /// A whole user again, from its entry.
    pub(crate) fn sim(&self, entry: &UserEntry) -> SimUser {
        SimUser {
            user: entry.user().into_owned(),
            member_of: self.objects.values(&entry.member_of),
            inherited_roles: self.objects.values(&entry.inherited_roles),
            auth_methods: self.methods(entry),
            role_assignments: self.objects.values(&entry.role_assignments),
        }
    }

    /// A user with its authentication methods only (no memberships or roles): what a
    /// registration-report row reads.
    pub(crate) fn user_and_methods(&self, entry: &UserEntry) -> SimUser {
        SimUser {
            user: entry.user().into_owned(),
            member_of: Vec::new(),
            inherited_roles: Vec::new(),
            auth_methods: self.methods(entry),
            role_assignments: Vec::new(),
        }
    }

    fn methods(&self, entry: &UserEntry) -> Vec<String> {
        entry
            .auth_methods
            .iter()
            .map(|&i| self.objects.get(i).as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// A user's direct memberships, as `/memberOf` serves them.
    pub(crate) fn member_of(&self, entry: &UserEntry) -> Vec<Value> {
        self.objects.values(&entry.member_of)
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
        let (entry, upn) = self.compact(&id, sim, version);
        let member_of = entry.member_of.clone();
        self.log_groups(&id, &[], &member_of, Some(version));
        self.users.insert(seq, entry);
        self.changes.insert(version, Change::Upsert(seq));
        self.index(seq, upn);
        true
    }

    /// The index of an object in the directory's table (a group a generator hands out to
    /// many users, interned once: see [`Directory::put_with_groups`]).
    pub(crate) fn intern(&mut self, object: Value) -> u32 {
        self.objects.intern(object)
    }

    /// Adds a new user whose `memberOf` starts with the interned objects `groups` (group
    /// objects, each id with one object), followed by its own `member_of`. False (nothing
    /// added) without a string id or when the id is taken. While loading, each of `groups` is
    /// looked at once, not once per member: a million users join 15 million groups in seconds.
    pub(crate) fn put_with_groups(&mut self, sim: SimUser, groups: &[u32]) -> bool {
        let Some(id) = sim.id().map(str::to_owned) else {
            return false;
        };
        if self.by_id.contains_key(&id) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let version = self.bump();
        let (mut entry, upn) = self.compact(&id, sim, version);
        let own = std::mem::take(&mut entry.member_of);
        entry.member_of = groups.iter().chain(own.iter()).copied().collect();
        if self.loading {
            for &group in groups {
                let slot = group as usize;
                if self.loaded_groups.len() <= slot {
                    self.loaded_groups.resize(slot + 1, false);
                }
                if !std::mem::replace(&mut self.loaded_groups[slot], true) {
                    self.log_groups(&id, &[], &[group], Some(version));
                }
            }
            self.log_groups(&id, &[], &own, Some(version));
        } else {
            let member_of = entry.member_of.clone();
            self.log_groups(&id, &[], &member_of, Some(version));
        }
        self.users.insert(seq, entry);
        self.changes.insert(version, Change::Upsert(seq));
        self.index(seq, upn);
        true
    }

    /// Changes a user in place; its id cannot change. Returns false for an unknown id.
    pub(crate) fn modify(&mut self, id: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let Some(&seq) = self.by_id.get(id) else {
            return false;
        };
        let Some(entry) = self.users.get(&seq) else {
            return false;
        };
        let mut sim = self.sim(entry);
        let before = entry.member_of.clone();
        let old_version = entry.changed;
        self.unindex(seq);
        let version = self.bump();
        change(&mut sim);
        if !sim.user.is_object() {
            sim.user = Value::Object(Map::new());
        }
        if let Some(object) = sim.user.as_object_mut() {
            object.insert("id".into(), json!(id));
        }
        let (entry, upn) = self.compact(id, sim, version);
        let after = entry.member_of.clone();
        self.users.insert(seq, entry);
        self.changes.remove(&old_version);
        self.changes.insert(version, Change::Upsert(seq));
        self.log_groups(id, &before, &after, Some(version));
        self.index(seq, upn);
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
        let Some(entry) = self.users.get(&seq) else {
            return false;
        };
        let mut sim = self.sim(entry);
        let before = entry.member_of.clone();
        let (user, created, changed) = (entry.user.clone(), entry.created, entry.changed);
        change(&mut sim);
        sim.user = Value::Null;
        let (mut entry, _) = self.compact(id, sim, changed);
        entry.user = user;
        entry.created = created;
        let after = entry.member_of.clone();
        self.users.insert(seq, entry);
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
            self.log_groups(id, &entry.member_of, &[], Some(version));
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

    /// A catalog group's object as `/groups` serves it.
    pub(crate) fn group(&self, object: u32) -> Value {
        group_object(&self.objects.get(object))
    }

    /// The id of the user with this sequence number (a catalog member).
    pub(crate) fn user_id(&self, seq: u32) -> Option<&str> {
        self.users.get(&u64::from(seq)).map(UserEntry::id)
    }

    /// The user with this sequence number as relation lists show it (a catalog member).
    pub(crate) fn user_reference(&self, seq: u32) -> Value {
        match self.users.get(&u64::from(seq)) {
            Some(entry) => user_reference(&entry.id, &entry.user()),
            None => Value::Null,
        }
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

    /// The ids of the users now, in insertion order.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.users.values().map(|e| e.id.to_string()).collect()
    }

    /// The users now, in insertion order.
    pub(crate) fn snapshot(&self) -> Vec<SimUser> {
        self.users.values().map(|e| self.sim(e)).collect()
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

    /// The users holding any role fact, in insertion order, with only what the role walks
    /// read: the id, the directory-role memberships, inherited roles and role assignments.
    fn role_holders(&self) -> Vec<(u64, SimUser)> {
        let objects = &self.objects;
        self.users
            .iter()
            .filter(|(_, e)| {
                !e.inherited_roles.is_empty()
                    || !e.role_assignments.is_empty()
                    || e.member_of.iter().any(|&i| objects.kind(i) == Kind::Role)
            })
            .map(|(&seq, e)| {
                let roles: Vec<u32> = e
                    .member_of
                    .iter()
                    .copied()
                    .filter(|&i| objects.kind(i) == Kind::Role)
                    .collect();
                let sim = SimUser {
                    user: json!({ "id": &*e.id }),
                    member_of: objects.values(&roles),
                    inherited_roles: objects.values(&e.inherited_roles),
                    auth_methods: Vec::new(),
                    role_assignments: objects.values(&e.role_assignments),
                };
                (seq, sim)
            })
            .collect()
    }

    fn build_catalog(&self) -> Catalog {
        let holders = self.role_holders();
        let mut catalog = Catalog {
            groups: Vec::new(),
            groups_by_id: Vec::new(),
            roles: Vec::new(),
            role_members: HashMap::new(),
            group_members: HashMap::new(),
            group_member_ids: HashMap::new(),
            definitions: DefinitionBook::new(
                holders.iter().map(|(_, sim)| sim),
                &self.custom_definitions,
            ),
            grants: grants(holders.iter().map(|(_, sim)| sim)),
            active_admins: HashSet::new(),
        };
        // Members per group object, then merged per group id (a fixture may give one id two
        // objects): the first object met walking the users in order names the group.
        let objects = &self.objects;
        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); objects.list.len()];
        let mut first_seen: Vec<u32> = Vec::new();
        for (&seq, entry) in &self.users {
            let seq = seq32(seq);
            for &i in entry.member_of.iter() {
                if objects.kind(i) != Kind::Group {
                    continue;
                }
                let bucket = &mut buckets[i as usize];
                if bucket.is_empty() {
                    first_seen.push(i);
                }
                // The same group twice in one memberOf lists the user once.
                if bucket.last() != Some(&seq) {
                    bucket.push(seq);
                }
            }
        }
        let mut group_names: HashMap<&str, Value> = HashMap::new();
        for i in first_seen {
            let id = objects.group_id(i).unwrap_or_default();
            let bucket = std::mem::take(&mut buckets[i as usize]);
            match catalog.group_members.get_mut(id) {
                Some(members) => {
                    members.extend(bucket);
                    members.sort_unstable();
                    members.dedup();
                }
                None => {
                    let group = objects.get(i);
                    let name = group.get("displayName").cloned().unwrap_or(Value::Null);
                    group_names.insert(id, name);
                    catalog.groups.push(CatalogGroup {
                        id: objects.group_id(i).map(Box::from),
                        object: i,
                    });
                    catalog.group_members.insert(id.to_owned(), bucket);
                }
            }
        }
        drop(buckets);
        let mut listed: HashSet<(String, String)> = HashSet::new();
        for (seq, sim) in &holders {
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
                let member_id = via.unwrap_or(user_id);
                if listed.insert((id.to_owned(), member_id.to_owned())) {
                    members.push(match via {
                        Some(group) => json!({
                            "@odata.type": GROUP_TYPE,
                            "id": group,
                            "displayName": group_names.get(group).cloned().unwrap_or(Value::Null),
                        }),
                        None => self.user_reference(seq32(*seq)),
                    });
                }
            }
        }
        for (id, &object) in &self.known_groups {
            if !catalog.group_members.contains_key(id) {
                catalog.groups.push(CatalogGroup {
                    id: Some(id.as_str().into()),
                    object,
                });
                catalog.group_members.insert(id.clone(), Vec::new());
            }
        }
        let mut by_id: Vec<u32> = (0..catalog.groups.len() as u32)
            .filter(|&p| catalog.groups[p as usize].id.is_some())
            .collect();
        by_id.sort_unstable_by(|&a, &b| {
            catalog.groups[a as usize]
                .id
                .cmp(&catalog.groups[b as usize].id)
        });
        catalog.groups_by_id = by_id;
        // Members by id: every user's rank in id order, once, then each list by rank.
        let mut by_id: Vec<(&str, u64)> =
            self.users.iter().map(|(&seq, e)| (e.id(), seq)).collect();
        by_id.sort_unstable();
        let mut rank = vec![0u32; usize::try_from(self.next_seq).unwrap_or(usize::MAX)];
        for (position, (_, seq)) in by_id.iter().enumerate() {
            rank[*seq as usize] = position as u32;
        }
        drop(by_id);
        for (id, members) in &catalog.group_members {
            let mut ids = members.clone();
            ids.sort_unstable_by_key(|&seq| rank[seq as usize]);
            catalog.group_member_ids.insert(id.clone(), ids);
        }
        let mut admins = HashSet::new();
        for grant in catalog.grants.iter().filter(|g| !g.eligible) {
            admins.extend(grant.declared_by.iter().cloned());
            if grant.group {
                let members = catalog.group_member_ids.get(&grant.principal);
                admins.extend(
                    members
                        .into_iter()
                        .flatten()
                        .filter_map(|&seq| self.user_id(seq))
                        .map(str::to_owned),
                );
            }
        }
        catalog.active_admins = admins;
        catalog
    }
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
