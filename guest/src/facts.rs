//! What the last full walk learned of every user that no delta reports per user: its direct
//! groups and its MFA methods (vocabulary names), kept in the checkpoint store between runs.
//!
//! An incremental run must emit complete snapshots (MAPPING.md), but reading a changed user's
//! `memberOf` and `authentication/methods` costs two Graph requests per user: with 1% of a
//! 10,000-user tenant changed that is 200 requests, ten times what the rest of the run costs.
//! Instead the full walk records each user's groups and methods here; incremental runs keep the
//! groups current from the groups delta link (added and removed member links), read users they
//! do not know (new ones) per user and learn them, and take MFA as the walk saw it — MFA
//! registrations are refreshed by the next walk (`refresh_hours`), as before.
//!
//! The store is sharded over [`SHARDS`] checkpoint keys by a hash of the user id (a value is
//! capped by the host at 4 MiB; about 80 bytes per user), plus one key for the group table
//! (id and display name, referenced by index). Shards are written before the cursor commit
//! that relies on them; a crash in between replays group changes from the older link, which
//! is harmless (adding or removing a membership twice is the same as once).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::doors::{Doors, Level};
use crate::error::ConnectorError;
use crate::ocsf::{text_hash, GroupRef};

/// Shards of the user facts.
pub const SHARDS: u32 = 16;

/// Format version of the stored facts.
const FORMAT: u32 = 1;

const GROUPS_KEY: &str = "users/facts/groups";

fn shard_key(n: u32) -> String {
    format!("users/facts/{n:02}")
}

fn shard_of(id: &str) -> u32 {
    (text_hash(id) % u128::from(SHARDS)) as u32
}

/// One user's remembered facts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct UserFacts {
    /// Indexes into the group table.
    #[serde(rename = "g")]
    groups: Vec<u32>,
    /// MFA vocabulary names; None when they could not be read.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    mfa: Option<Vec<String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct GroupTable {
    format: u32,
    /// (id, display name).
    groups: Vec<(String, Option<String>)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Shard {
    format: u32,
    users: BTreeMap<String, UserFacts>,
}

/// The facts of every user, as loaded, with what changed since.
#[derive(Debug, Default)]
pub struct Facts {
    groups: GroupTable,
    group_index: HashMap<String, u32>,
    groups_version: Option<u64>,
    groups_dirty: bool,
    shards: Vec<(Shard, Option<u64>)>,
    dirty: BTreeSet<u32>,
}

/// A user's groups and MFA names as remembered.
pub type Known = (Vec<GroupRef>, Option<Vec<String>>);

impl Facts {
    /// Reads every key. A key that is missing or unreadable counts as empty (its users are
    /// read per user when they change, and learnt again).
    pub fn load<D: Doors>(doors: &D) -> Result<Facts, ConnectorError> {
        let (groups, groups_version) = read::<D, GroupTable>(doors, GROUPS_KEY)?;
        let mut shards = Vec::with_capacity(SHARDS as usize);
        for n in 0..SHARDS {
            shards.push(read::<D, Shard>(doors, &shard_key(n))?);
        }
        let group_index = groups
            .groups
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i as u32))
            .collect();
        Ok(Facts {
            groups,
            group_index,
            groups_version,
            groups_dirty: false,
            shards,
            dirty: BTreeSet::new(),
        })
    }

    /// Forgets every user (a full walk records them all again); the keys' versions are kept
    /// for the compare-and-set of the next save.
    pub fn clear(&mut self) {
        self.groups.groups.clear();
        self.group_index.clear();
        self.groups_dirty = true;
        for (n, (shard, _)) in self.shards.iter_mut().enumerate() {
            shard.users.clear();
            self.dirty.insert(n as u32);
        }
    }

    /// How many users are remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|(s, _)| s.users.len()).sum()
    }

    /// Whether no user is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A user's remembered groups (sorted by id) and MFA names.
    pub fn get(&self, id: &str) -> Option<Known> {
        let (shard, _) = self.shards.get(shard_of(id) as usize)?;
        let facts = shard.users.get(id)?;
        let mut groups: Vec<GroupRef> = facts
            .groups
            .iter()
            .filter_map(|&g| self.groups.groups.get(g as usize))
            .map(|(id, name)| GroupRef {
                id: id.clone(),
                display_name: name.clone(),
            })
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Some((groups, facts.mfa.clone()))
    }

    fn group_slot(&mut self, id: &str, name: Option<&str>) -> u32 {
        if let Some(&slot) = self.group_index.get(id) {
            if let Some(name) = name {
                let stored = &mut self.groups.groups[slot as usize].1;
                if stored.as_deref() != Some(name) {
                    *stored = Some(name.to_string());
                    self.groups_dirty = true;
                }
            }
            return slot;
        }
        let slot = self.groups.groups.len() as u32;
        self.groups
            .groups
            .push((id.to_string(), name.map(str::to_string)));
        self.group_index.insert(id.to_string(), slot);
        self.groups_dirty = true;
        slot
    }

    /// Remembers a user's groups and MFA names (replacing what was known).
    pub fn put(&mut self, id: &str, groups: &[GroupRef], mfa: Option<Vec<String>>) {
        let slots: Vec<u32> = groups
            .iter()
            .map(|g| self.group_slot(&g.id, g.display_name.as_deref()))
            .collect();
        let n = shard_of(id);
        if let Some((shard, _)) = self.shards.get_mut(n as usize) {
            let facts = UserFacts { groups: slots, mfa };
            if shard.users.get(id) != Some(&facts) {
                shard.users.insert(id.to_string(), facts);
                self.dirty.insert(n);
            }
        }
    }

    /// Applies one changed member link of a group to a remembered user (an unknown user is
    /// left alone: it is read in full when it is emitted).
    pub fn apply_membership(&mut self, user: &str, group: &str, name: Option<&str>, added: bool) {
        let n = shard_of(user);
        let known = self
            .shards
            .get(n as usize)
            .is_some_and(|(s, _)| s.users.contains_key(user));
        if !known {
            return;
        }
        let slot = self.group_slot(group, name);
        if let Some(facts) = self.shards[n as usize].0.users.get_mut(user) {
            let had = facts.groups.contains(&slot);
            if added && !had {
                facts.groups.push(slot);
                self.dirty.insert(n);
            } else if !added && had {
                facts.groups.retain(|g| *g != slot);
                self.dirty.insert(n);
            }
        }
    }

    /// Forgets a user (removed from the tenant).
    pub fn forget(&mut self, id: &str) {
        let n = shard_of(id);
        if let Some((shard, _)) = self.shards.get_mut(n as usize) {
            if shard.users.remove(id).is_some() {
                self.dirty.insert(n);
            }
        }
    }

    /// Writes the group table and every shard that changed.
    pub fn save<D: Doors>(&mut self, doors: &D) -> Result<(), ConnectorError> {
        if self.groups_dirty {
            self.groups.format = FORMAT;
            self.groups_version =
                Some(write(doors, GROUPS_KEY, &self.groups, self.groups_version)?);
            self.groups_dirty = false;
        }
        for n in std::mem::take(&mut self.dirty) {
            let (shard, version) = &mut self.shards[n as usize];
            shard.format = FORMAT;
            *version = Some(write(doors, &shard_key(n), shard, *version)?);
        }
        Ok(())
    }
}

fn read<D: Doors, T: Default + for<'de> Deserialize<'de> + HasFormat>(
    doors: &D,
    key: &str,
) -> Result<(T, Option<u64>), ConnectorError> {
    match doors.kv_get(key) {
        Ok(None) => Ok((T::default(), None)),
        Ok(Some((bytes, version))) => match serde_json::from_slice::<T>(&bytes) {
            Ok(value) if value.format() == FORMAT => Ok((value, Some(version))),
            _ => {
                doors.log(
                    Level::Warn,
                    &format!("the stored '{key}' is unreadable: its users are read again when they change"),
                );
                Ok((T::default(), Some(version)))
            }
        },
        Err(e) => Err(ConnectorError::Host(format!("reading '{key}': {e}"))),
    }
}

fn write<D: Doors, T: Serialize>(
    doors: &D,
    key: &str,
    value: &T,
    version: Option<u64>,
) -> Result<u64, ConnectorError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ConnectorError::Host(format!("encoding '{key}': {e}")))?;
    doors
        .kv_set(key, &bytes, version)
        .map_err(|e| ConnectorError::Host(format!("committing '{key}': {e}")))
}

trait HasFormat {
    fn format(&self) -> u32;
}

impl HasFormat for GroupTable {
    fn format(&self) -> u32 {
        self.format
    }
}

impl HasFormat for Shard {
    fn format(&self) -> u32 {
        self.format
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, name: &str) -> GroupRef {
        GroupRef {
            id: id.into(),
            display_name: Some(name.into()),
        }
    }

    #[test]
    fn facts_remember_groups_and_methods_and_follow_membership_changes() {
        let mut f = Facts {
            shards: (0..SHARDS).map(|_| Default::default()).collect(),
            ..Facts::default()
        };
        f.put(
            "u1",
            &[group("g2", "Sales"), group("g1", "All")],
            Some(vec!["fido2".into()]),
        );
        f.put("u2", &[], None);
        assert_eq!(
            f.get("u1"),
            Some((
                vec![group("g1", "All"), group("g2", "Sales")],
                Some(vec!["fido2".to_string()])
            ))
        );
        f.apply_membership("u2", "g3", Some("New"), true);
        f.apply_membership("u1", "g2", None, false);
        f.apply_membership("unknown", "g1", None, true);
        assert_eq!(f.get("u2").unwrap().0, vec![group("g3", "New")]);
        assert_eq!(f.get("u1").unwrap().0, vec![group("g1", "All")]);
        assert_eq!(f.get("unknown"), None, "unknown users are not invented");
        assert_eq!(f.len(), 2);
        f.forget("u2");
        assert_eq!(f.len(), 1);
        let shard: Shard = Shard {
            format: FORMAT,
            users: f.shards[shard_of("u1") as usize].0.users.clone(),
        };
        let text = serde_json::to_string(&shard).unwrap();
        assert!(
            text.contains("\"g\":[") && text.contains("\"m\":[\"fido2\"]"),
            "{text}"
        );
    }
}
