//! What the last full walk learned of every user that no delta reports per user — its direct
//! groups, its MFA methods, its roles and sign-in data as the walk saw them — kept in the
//! checkpoint store, one key per user and one per group, so that nothing here grows with the
//! tenant but the number of keys.
//!
//! An incremental run must emit complete snapshots (MAPPING.md), but reading a changed user's
//! `memberOf` and `authentication/methods` costs two Graph requests per user. Instead the full
//! walk records each user's facts here (the walk's build phase, `staged/`); incremental runs
//! read the facts of a page's users in one `get-many`, keep the groups current from the groups
//! delta link (added and removed member links), read users they do not know (new ones) per user
//! and learn them, and take MFA as the walk saw it — MFA registrations are refreshed by the
//! next walk (`refresh_hours`).
//!
//! Layout, under a **generation** (the walk that wrote it; a finished walk switches the cursor
//! to its generation and deletes the one before):
//! - `facts/<gen>/u/<h>`: one user's [`UserFacts`], `<h>` the 64-bit [`id_hash`] of its id in
//!   hex. A user the walk learned nothing of (no group, not in the report, no role, no
//!   sign-in) has no key;
//! - `facts/<gen>/s/<h>`: one user's sign-in data as the full walk read it (the JSON text),
//!   and `facts/<gen>/m/<h>`: its row of the registration report ([`Registered`]). The walk
//!   writes these two straight from their pages (they need no join across pages), so they are
//!   written once instead of staged, re-sorted and written again (`staged.rs`, "Bytes written
//!   per walk"). [`Facts::lookup`] reads the three keys of a user in the same `get-many` and
//!   merges them; a user's record written again ([`Facts::store`]) holds everything and
//!   deletes its `s` and `m` keys, so a `u` key's own fields win over them;
//! - `facts/<gen>/g/<h>`: one group's id and display name ([`GroupName`]);
//! - `facts/<gen>/admins/<n>`: the users holding a role, sharded (`admins.rs`).
//!
//! Values are postcard (a kept crate: compact, serde; `connector_sdk::state`). A user's value is bounded: at most
//! [`MAX_USER_GROUPS`] groups are kept (the event lists at most what fits 1 MiB anyway), the
//! rest counted. 64 bits of hash for an id: two users of a million-user tenant share a key with
//! a probability of about 3 × 10⁻⁸; the value carries no id to check against (it would double
//! its size), so such a pair would share facts.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ocsf::GroupRef;
use connector_sdk::doors::{Doors, KvWrite, MAX_KV_BATCH};
use connector_sdk::error::ConnectorError;
use connector_sdk::ocsf::text_hash;
use connector_sdk::state::{decode, encode, get_many, put_many};

/// Most groups kept for one user (a user in more has the rest counted in
/// [`UserFacts::groups_over`]): 20,000 hashes is ~200 KB, under the 1 MiB value budget.
pub const MAX_USER_GROUPS: usize = 20_000;

/// The 64-bit hash of an id that names its key (the FNV-1a 128 of `ocsf::text_hash`, folded).
pub fn id_hash(id: &str) -> u64 {
    let h = text_hash(id);
    (h >> 64) as u64 ^ h as u64
}

/// The key of a user's facts.
pub fn user_key(gen: &str, id_hash: u64) -> String {
    format!("facts/{gen}/u/{id_hash:016x}")
}

/// The key of a user's sign-in data as the full walk read it.
pub fn sign_in_key(gen: &str, id_hash: u64) -> String {
    format!("facts/{gen}/s/{id_hash:016x}")
}

/// The key of a user's registration report row as the full walk read it.
pub fn registration_key(gen: &str, id_hash: u64) -> String {
    format!("facts/{gen}/m/{id_hash:016x}")
}

/// The prefix of a generation's sign-in keys (deleted when the walk did not read them whole).
pub fn sign_in_prefix(gen: &str) -> String {
    format!("facts/{gen}/s/")
}

/// The prefix of a generation's registration keys (the same).
pub fn registration_prefix(gen: &str) -> String {
    format!("facts/{gen}/m/")
}

/// What the registration report said of a user (`facts/<gen>/m/<h>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The report's `isAdmin`.
    pub is_admin: Option<bool>,
    /// MFA vocabulary names of its `methodsRegistered`.
    pub mfa: Vec<String>,
}

/// The key of a group's name.
pub fn group_key(gen: &str, group_hash: u64) -> String {
    format!("facts/{gen}/g/{group_hash:016x}")
}

/// The prefix of a generation.
pub fn generation_prefix(gen: &str) -> String {
    format!("facts/{gen}/")
}

/// One user's remembered facts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserFacts {
    /// Hashes of the user's direct groups ([`id_hash`] of the group id).
    pub groups: Vec<u64>,
    /// Groups beyond [`MAX_USER_GROUPS`], not kept.
    pub groups_over: u32,
    /// MFA vocabulary names; None when unknown (not in the report, or not read).
    pub mfa: Option<Vec<String>>,
    /// The registration report's `isAdmin`, when the report listed the user.
    pub is_admin: Option<bool>,
    /// Active role names, as the walk read them.
    pub roles: Vec<String>,
    /// Eligible role names, as the walk read them.
    pub eligible: Vec<String>,
    /// `signInActivity` (the fields the mapping reads), JSON text, as the walk read it.
    pub sign_in: Option<String>,
}

impl UserFacts {
    /// Whether there is nothing to remember (no key is written).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.groups_over == 0
            && self.mfa.is_none()
            && self.is_admin.is_none()
            && self.roles.is_empty()
            && self.eligible.is_empty()
            && self.sign_in.is_none()
    }

    /// Adds a group (kept up to [`MAX_USER_GROUPS`]).
    pub fn add_group(&mut self, group: u64) {
        if self.groups.contains(&group) {
            return;
        }
        if self.groups.len() < MAX_USER_GROUPS {
            self.groups.push(group);
        } else {
            self.groups_over = self.groups_over.saturating_add(1);
        }
    }
}

/// A group's id and display name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupName {
    /// Graph id.
    pub id: String,
    /// Display name, when Graph gave one.
    pub name: Option<String>,
}

/// A user's groups (sorted by id) and MFA names, as remembered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Known {
    /// Direct groups, sorted by id.
    pub groups: Vec<GroupRef>,
    /// MFA vocabulary names.
    pub mfa: Option<Vec<String>>,
    /// The whole record.
    pub facts: UserFacts,
}

/// The facts of one generation, read a page of users at a time, with a bounded cache of
/// group names.
pub struct Facts {
    gen: String,
    names: HashMap<u64, GroupName>,
    pending: BTreeMap<String, Option<Vec<u8>>>,
}

/// Group names kept between pages (~100 bytes each: ~5 MB).
const NAME_CACHE: usize = 50_000;

impl Facts {
    /// The facts of generation `gen`.
    pub fn new(gen: &str) -> Facts {
        Facts {
            gen: gen.to_string(),
            names: HashMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// The generation.
    pub fn generation(&self) -> &str {
        &self.gen
    }

    /// The remembered facts of these users (None: nothing remembered), with their groups'
    /// names: one `get-many` for the users, one for the names not in the cache.
    pub fn lookup<D: Doors>(
        &mut self,
        doors: &D,
        ids: &[&str],
    ) -> Result<Vec<Option<Known>>, ConnectorError> {
        // A user's three keys side by side: one `get-many` for a page of ≤ 333 users.
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| {
                let h = id_hash(id);
                [
                    user_key(&self.gen, h),
                    sign_in_key(&self.gen, h),
                    registration_key(&self.gen, h),
                ]
            })
            .collect();
        let values = get_many(doors, &keys)?;
        // A write not yet flushed wins over the store.
        let current = |n: usize| -> Option<&[u8]> {
            match self.pending.get(&keys[n]) {
                Some(pending) => pending.as_deref(),
                None => values[n].as_deref(),
            }
        };
        let facts: Vec<Option<UserFacts>> = (0..ids.len())
            .map(|i| {
                let user = current(3 * i).and_then(decode::<UserFacts>);
                let sign_in = current(3 * i + 1).and_then(decode::<String>);
                let registered = current(3 * i + 2).and_then(decode::<Registered>);
                if user.is_none() && sign_in.is_none() && registered.is_none() {
                    return None;
                }
                let mut f = user.unwrap_or_default();
                if f.sign_in.is_none() {
                    f.sign_in = sign_in;
                }
                if let Some(r) = registered {
                    if f.mfa.is_none() {
                        f.mfa = Some(r.mfa);
                    }
                    if f.is_admin.is_none() {
                        f.is_admin = r.is_admin;
                    }
                }
                Some(f)
            })
            .collect();
        self.resolve_names(doors, facts.iter().flatten().flat_map(|f| &f.groups))?;
        Ok(facts
            .into_iter()
            .map(|f| {
                f.map(|facts| {
                    let mut groups: Vec<GroupRef> = facts
                        .groups
                        .iter()
                        .filter_map(|g| self.names.get(g))
                        .map(|g| GroupRef {
                            id: g.id.clone(),
                            display_name: g.name.clone(),
                        })
                        .collect();
                    groups.sort_by(|a, b| a.id.cmp(&b.id));
                    groups.dedup_by(|a, b| a.id == b.id);
                    Known {
                        groups,
                        mfa: facts.mfa.clone(),
                        facts,
                    }
                })
            })
            .collect())
    }

    /// Loads the names of these groups that are not cached.
    fn resolve_names<'a, D: Doors>(
        &mut self,
        doors: &D,
        groups: impl Iterator<Item = &'a u64>,
    ) -> Result<(), ConnectorError> {
        let mut missing: Vec<u64> = groups
            .filter(|g| !self.names.contains_key(g))
            .copied()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        if self.names.len() + missing.len() > NAME_CACHE {
            self.names.clear();
        }
        let keys: Vec<String> = missing.iter().map(|g| group_key(&self.gen, *g)).collect();
        for (g, value) in missing.iter().zip(get_many(doors, &keys)?) {
            let pending = self.pending.get(&group_key(&self.gen, *g));
            let bytes = match (pending, &value) {
                (Some(Some(b)), _) => Some(b.as_slice()),
                (Some(None), _) => None,
                (None, v) => v.as_deref(),
            };
            if let Some(name) = bytes.and_then(decode::<GroupName>) {
                self.names.insert(*g, name);
            }
        }
        Ok(())
    }

    /// Remembers a user's groups and MFA names (replacing what was known of them), keeping
    /// what else `previous` knew.
    pub fn put(
        &mut self,
        id: &str,
        groups: &[GroupRef],
        mfa: Option<Vec<String>>,
        previous: Option<&UserFacts>,
    ) -> Result<(), ConnectorError> {
        let mut facts = previous.cloned().unwrap_or_default();
        facts.groups.clear();
        facts.groups_over = 0;
        for g in groups {
            let h = id_hash(&g.id);
            facts.add_group(h);
            self.name_group(h, &g.id, g.display_name.as_deref())?;
        }
        facts.mfa = mfa;
        self.store(id, &facts)
    }

    /// Stages a user's whole record (its walk-written sign-in and report keys, merged into it
    /// by [`Facts::lookup`], go).
    pub fn store(&mut self, id: &str, facts: &UserFacts) -> Result<(), ConnectorError> {
        let h = id_hash(id);
        let value = if facts.is_empty() {
            None
        } else {
            Some(encode(facts)?)
        };
        self.pending.insert(user_key(&self.gen, h), value);
        self.pending.insert(sign_in_key(&self.gen, h), None);
        self.pending.insert(registration_key(&self.gen, h), None);
        Ok(())
    }

    /// Records a group's name when it is new or changed.
    pub fn name_group(
        &mut self,
        hash: u64,
        id: &str,
        name: Option<&str>,
    ) -> Result<(), ConnectorError> {
        let known = self.names.get(&hash);
        if known.is_some_and(|k| k.id == id && (name.is_none() || k.name.as_deref() == name)) {
            return Ok(());
        }
        let name = GroupName {
            id: id.to_string(),
            name: name
                .map(str::to_string)
                .or_else(|| known.and_then(|k| k.name.clone())),
        };
        self.pending
            .insert(group_key(&self.gen, hash), Some(encode(&name)?));
        self.names.insert(hash, name);
        Ok(())
    }

    /// Applies changed member links of groups (from the groups delta) to remembered users;
    /// users not remembered are left alone (they are read in full when they are emitted).
    /// `changes`: (user id, group id, group name, added).
    pub fn apply_memberships<D: Doors>(
        &mut self,
        doors: &D,
        changes: &[(String, String, Option<String>, bool)],
    ) -> Result<(), ConnectorError> {
        let mut users: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        for chunk in users.chunks(MAX_KV_BATCH / 3) {
            let known = self.lookup(doors, chunk)?;
            for (id, known) in chunk.iter().zip(known) {
                let Some(known) = known else { continue };
                let mut facts = known.facts;
                for (_, gid, name, added) in changes.iter().filter(|c| c.0 == *id) {
                    let h = id_hash(gid);
                    if *added {
                        facts.add_group(h);
                        self.name_group(h, gid, name.as_deref())?;
                    } else {
                        facts.groups.retain(|g| *g != h);
                    }
                }
                self.store(id, &facts)?;
            }
        }
        Ok(())
    }

    /// Forgets a user (removed from the tenant).
    pub fn forget(&mut self, id: &str) {
        let h = id_hash(id);
        self.pending.insert(user_key(&self.gen, h), None);
        self.pending.insert(sign_in_key(&self.gen, h), None);
        self.pending.insert(registration_key(&self.gen, h), None);
    }

    /// Writes what changed (before the cursor commit that relies on it).
    pub fn save<D: Doors>(&mut self, doors: &D) -> Result<(), ConnectorError> {
        let writes: Vec<KvWrite> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(key, value)| match value {
                Some(v) => KvWrite::put(key, v),
                None => KvWrite::delete(key),
            })
            .collect();
        put_many(doors, writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_sdk::doors::fake::{json, FakeDoors};

    fn group(id: &str, name: &str) -> GroupRef {
        GroupRef {
            id: id.into(),
            display_name: Some(name.into()),
        }
    }

    #[test]
    fn facts_remember_groups_and_methods_and_follow_membership_changes() {
        let doors = FakeDoors::new(|_, _| json(200, &[], "{}"));
        let mut f = Facts::new("g1");
        f.put(
            "u1",
            &[group("g2", "Sales"), group("g1", "All")],
            Some(vec!["fido2".into()]),
            None,
        )
        .unwrap();
        f.put("u2", &[group("g1", "All")], None, None).unwrap();
        f.save(&doors).unwrap();
        let mut f = Facts::new("g1");
        let known = f.lookup(&doors, &["u1", "u2", "nobody"]).unwrap();
        assert_eq!(
            known[0].as_ref().map(|k| (k.groups.clone(), k.mfa.clone())),
            Some((
                vec![group("g1", "All"), group("g2", "Sales")],
                Some(vec!["fido2".to_string()])
            ))
        );
        assert_eq!(known[2], None, "unknown users are not invented");
        f.apply_memberships(
            &doors,
            &[
                ("u2".into(), "g3".into(), Some("New".into()), true),
                ("u1".into(), "g2".into(), None, false),
                ("unknown".into(), "g1".into(), None, true),
            ],
        )
        .unwrap();
        f.save(&doors).unwrap();
        let mut f = Facts::new("g1");
        let known = f.lookup(&doors, &["u1", "u2", "unknown"]).unwrap();
        assert_eq!(known[0].as_ref().unwrap().groups, vec![group("g1", "All")]);
        assert_eq!(
            known[1].as_ref().unwrap().groups,
            vec![group("g1", "All"), group("g3", "New")]
        );
        assert_eq!(known[2], None);
        f.forget("u2");
        f.save(&doors).unwrap();
        assert_eq!(Facts::new("g1").lookup(&doors, &["u2"]).unwrap()[0], None);
        // Another generation sees nothing of this one.
        assert_eq!(Facts::new("g2").lookup(&doors, &["u1"]).unwrap()[0], None);
        assert_eq!(
            connector_sdk::state::delete_all(&doors, &generation_prefix("g1")).unwrap(),
            4
        );
        assert!(doors.kv.borrow().is_empty());
    }

    #[test]
    fn a_walks_sign_in_and_report_keys_merge_into_the_user_and_a_rewrite_absorbs_them() {
        let doors = FakeDoors::new(|_, _| json(200, &[], "{}"));
        let h = id_hash("u1");
        let registered = Registered {
            is_admin: Some(true),
            mfa: vec!["fido2".into()],
        };
        let sign_in = r#"{"lastSignInDateTime":"2026-01-02T03:04:05Z"}"#.to_string();
        doors
            .kv_set_many(&[
                KvWrite::put(sign_in_key("g1", h), encode(&sign_in).unwrap()),
                KvWrite::put(registration_key("g1", h), encode(&registered).unwrap()),
                KvWrite::put(
                    registration_key("g1", id_hash("u2")),
                    encode(&Registered::default()).unwrap(),
                ),
            ])
            .unwrap();
        let mut f = Facts::new("g1");
        let calls = doors.kv_calls.get();
        let known = f.lookup(&doors, &["u1", "u2", "u3"]).unwrap();
        assert_eq!(
            doors.kv_calls.get(),
            calls + 1,
            "one get-many for the three keys"
        );
        let u1 = known[0].clone().expect("u1 known from its walk keys");
        assert_eq!(u1.facts.sign_in.as_deref(), Some(sign_in.as_str()));
        assert_eq!(u1.facts.is_admin, Some(true));
        assert_eq!(u1.mfa, Some(vec!["fido2".to_string()]));
        assert_eq!(
            known[1].as_ref().unwrap().mfa,
            Some(vec![]),
            "in the report"
        );
        assert_eq!(known[2], None);
        // An incremental round learns u1's groups: its record takes everything, the walk's
        // keys go, and what it knew stays.
        f.put(
            "u1",
            &[group("g1", "All")],
            Some(vec!["sms".into()]),
            Some(&u1.facts),
        )
        .unwrap();
        f.save(&doors).unwrap();
        assert!(!doors.kv.borrow().contains_key(&sign_in_key("g1", h)));
        assert!(!doors.kv.borrow().contains_key(&registration_key("g1", h)));
        let again = Facts::new("g1").lookup(&doors, &["u1"]).unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(again.groups, vec![group("g1", "All")]);
        assert_eq!(again.mfa, Some(vec!["sms".to_string()]));
        assert_eq!(again.facts.sign_in.as_deref(), Some(sign_in.as_str()));
        assert_eq!(again.facts.is_admin, Some(true));
        // Forgetting a user forgets its walk keys too.
        let mut f = Facts::new("g1");
        f.forget("u2");
        f.save(&doors).unwrap();
        assert_eq!(Facts::new("g1").lookup(&doors, &["u2"]).unwrap()[0], None);
    }

    #[test]
    fn a_user_in_more_groups_than_kept_counts_the_rest() {
        let mut facts = UserFacts::default();
        for g in 0..(MAX_USER_GROUPS as u64 + 5) {
            facts.add_group(g);
        }
        facts.add_group(3);
        assert_eq!(facts.groups.len(), MAX_USER_GROUPS);
        assert_eq!(facts.groups_over, 5);
        let bytes = encode(&facts).unwrap();
        assert!(bytes.len() < 1024 * 1024, "{} bytes", bytes.len());
        assert_eq!(decode::<UserFacts>(&bytes), Some(facts));
    }
}
