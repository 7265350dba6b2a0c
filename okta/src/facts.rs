//! What the walk learns about groups and users before it reads the users, kept in the
//! checkpoint store under `okta/f/<gen>/` (postcard values, each far under the 1 MiB cap):
//!
//! - `g/<group id>` -> [`GroupFacts`]: the group's name, type and the roles it holds. Kept
//!   between walks: incremental runs read the roles of a user's groups and update a group's
//!   roles on `group.privilege.*` events ([`put_group`]).
//! - `u/<user id>` -> [`UserFacts`]: the groups and the directly assigned roles of a user,
//!   gathered from the group side and the admins list. Walk only; merged idempotently, so a
//!   page applied twice changes nothing.

use connector_sdk::doors::{Doors, KvWrite};
use connector_sdk::state::{self, decode, encode};
use connector_sdk::ConnectorError;
use serde::{Deserialize, Serialize};

/// Everything the connector keeps beside its cursor starts with this.
pub const ROOT: &str = "okta/f/";

/// A group as the walk read it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupFacts {
    /// `profile.name`.
    pub name: String,
    /// The group type (OKTA_GROUP, APP_GROUP, BUILT_IN).
    pub kind: String,
    /// The roles the group holds (types, or labels of custom roles), sorted.
    pub roles: Vec<String>,
}

/// A user as the group side and the admins list describe them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserFacts {
    /// Group ids, sorted, each once.
    pub groups: Vec<String>,
    /// Roles assigned to the user (types, or labels of custom roles), sorted, each once.
    pub roles: Vec<String>,
}

/// The prefix of generation `gen`.
pub fn gen_prefix(gen: u32) -> String {
    format!("{ROOT}{gen}/")
}

/// The key of a group's facts.
pub fn group_key(gen: u32, id: &str) -> String {
    format!("{ROOT}{gen}/g/{id}")
}

/// The key of a user's facts.
pub fn user_key(gen: u32, id: &str) -> String {
    format!("{ROOT}{gen}/u/{id}")
}

/// The facts of groups `ids` in generation `gen`, in order (None: not known).
pub fn group<D: Doors>(
    doors: &D,
    gen: u32,
    ids: &[String],
) -> Result<Vec<Option<GroupFacts>>, ConnectorError> {
    let keys: Vec<String> = ids.iter().map(|id| group_key(gen, id)).collect();
    Ok(state::get_many(doors, &keys)?
        .into_iter()
        .map(|v| v.as_deref().and_then(decode))
        .collect())
}

/// Writes the facts of one group in generation `gen`.
pub fn put_group<D: Doors>(
    doors: &D,
    gen: u32,
    id: &str,
    g: &GroupFacts,
) -> Result<(), ConnectorError> {
    state::put_many(doors, vec![KvWrite::put(group_key(gen, id), encode(g)?)])
}

/// The facts of users `ids` in generation `gen`, in order (a user nothing was learnt about:
/// empty facts).
pub fn users<D: Doors>(
    doors: &D,
    gen: u32,
    ids: &[String],
) -> Result<Vec<UserFacts>, ConnectorError> {
    let keys: Vec<String> = ids.iter().map(|id| user_key(gen, id)).collect();
    Ok(state::get_many(doors, &keys)?
        .into_iter()
        .map(|v| v.as_deref().and_then(decode).unwrap_or_default())
        .collect())
}
