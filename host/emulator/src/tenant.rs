//! The simulated tenant as data: users with their memberships, roles and sign-in methods.
//!
//! A [`Tenant`] is what the emulator starts from — either generated from a seed
//! ([`Tenant::generated`], in `generate/`) or read from a hand-written fixture. It is plain
//! data with no HTTP in it, so tests can inspect exactly what the emulator will serve.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// The `@odata.type` of a group in a `memberOf` list.
pub const GROUP_TYPE: &str = "#microsoft.graph.group";
/// The `@odata.type` of a directory role in a `memberOf` list.
pub const DIRECTORY_ROLE_TYPE: &str = "#microsoft.graph.directoryRole";
/// The `@odata.type` of an administrative unit in a `memberOf` list.
pub const ADMINISTRATIVE_UNIT_TYPE: &str = "#microsoft.graph.administrativeUnit";
/// The optional key of an inherited role object (in [`SimUser::inherited_roles`]) naming the
/// id of the role-assignable group that grants the role. Never served: the emulator strips it
/// wherever a role object is answered.
pub const VIA_GROUP: &str = "viaGroup";

/// One simulated user and its relations.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimUser {
    /// The Graph user object with every property the tenant knows (id, displayName, mail,
    /// userPrincipalName, mailNickname, accountEnabled, department, jobTitle, employeeId,
    /// employeeType, companyName, officeLocation, createdDateTime (may be JSON null),
    /// isManagementRestricted, userType, onPremisesSamAccountName, onPremisesSyncEnabled,
    /// signInActivity {lastSignInDateTime, lastNonInteractiveSignInDateTime, ...}).
    /// A key that is absent is left out of responses; a key holding `null` is served as `null`.
    pub user: Value,
    /// Direct memberships as Graph returns them from /memberOf: objects with "@odata.type"
    /// (#microsoft.graph.group | #microsoft.graph.directoryRole |
    /// #microsoft.graph.administrativeUnit), "id", "displayName".
    #[serde(default)]
    pub member_of: Vec<Value>,
    /// Directory roles held only transitively (through a role-assignable group): they appear
    /// in transitiveMemberOf/microsoft.graph.directoryRole, not in memberOf. A role object may
    /// carry [`VIA_GROUP`] (`"viaGroup": "<group id>"`) naming the granting group, which should
    /// be in `member_of`: directoryRoles/{id}/members then lists that group (once), not the
    /// user. Without `viaGroup` (older hand-written fixtures) the user is listed there as a
    /// direct member, so no role holder is lost.
    #[serde(default)]
    pub inherited_roles: Vec<Value>,
    /// Registered authentication methods as full "@odata.type" strings, e.g.
    /// "#microsoft.graph.fido2AuthenticationMethod".
    #[serde(default)]
    pub auth_methods: Vec<String>,
    /// Role grants the legacy views (`directoryRoles`, `transitiveMemberOf`) cannot see, served
    /// only by `/roleManagement/directory/roleAssignments` (active) and
    /// `/roleManagement/directory/roleEligibilityScheduleInstances` (eligible):
    /// `{"roleDefinitionId": "<definition id>", "directoryScopeId": "/" |
    /// "/administrativeUnits/<id>" | "/<application object id>", "eligible": bool (optional,
    /// default false), "viaGroup": "<role-assignable group id>" (optional)}`. With `viaGroup`
    /// the group is the assignment's principal (put the group in `member_of`); without it the
    /// user is. `directoryScopeId` defaults to `"/"`. Meant for custom roles, scoped roles and
    /// PIM eligibility; an active built-in grant at `"/"` belongs in `member_of` (as a
    /// `#microsoft.graph.directoryRole`) so that the legacy views show it as Graph does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_assignments: Vec<Value>,
}

impl SimUser {
    /// The user's Graph object id, if the user object has a string `id`.
    pub fn id(&self) -> Option<&str> {
        self.user.get("id").and_then(Value::as_str)
    }

    /// A string property of the user object (`None` when absent, null or not a string).
    pub fn text(&self, property: &str) -> Option<&str> {
        self.user.get(property).and_then(Value::as_str)
    }

    /// The directory roles the user holds, directly (`memberOf`) or inherited, de-duplicated by
    /// id, direct ones first: what `transitiveMemberOf/microsoft.graph.directoryRole` answers.
    pub fn directory_roles(&self) -> Vec<&Value> {
        let mut seen = std::collections::HashSet::new();
        let direct = self
            .member_of
            .iter()
            .filter(|o| odata_type(o) == Some(DIRECTORY_ROLE_TYPE));
        let inherited = self.inherited_roles.iter();
        direct
            .chain(inherited)
            .filter(|role| seen.insert(role.get("id").and_then(Value::as_str).unwrap_or("")))
            .collect()
    }

    /// The direct memberships of one `@odata.type` (for example [`GROUP_TYPE`]).
    pub fn memberships_of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.member_of
            .iter()
            .filter(move |o| odata_type(o) == Some(kind))
    }
}

/// The `@odata.type` of a directory object, if it has one.
pub(crate) fn odata_type(object: &Value) -> Option<&str> {
    object.get("@odata.type").and_then(Value::as_str)
}

/// A simulated tenant: users in insertion order, indexed by id, and the tenant's custom role
/// definitions.
#[derive(Clone, Debug, Default)]
pub struct Tenant {
    users: Vec<SimUser>,
    by_id: HashMap<String, usize>,
    role_definitions: Vec<Value>,
}

impl Tenant {
    /// A tenant from users already built in code. Fails when a user object has no string `id`
    /// or two users share one.
    pub fn from_users(users: Vec<SimUser>) -> anyhow::Result<Tenant> {
        let mut by_id = HashMap::with_capacity(users.len());
        for (index, user) in users.iter().enumerate() {
            validate_user(user).with_context(|| format!("user #{index} of the fixture"))?;
            let id = user.id().unwrap_or_default().to_owned();
            if by_id.insert(id.clone(), index).is_some() {
                bail!("user #{index} of the fixture repeats the id '{id}': ids must be unique");
            }
        }
        Ok(Tenant {
            users,
            by_id,
            role_definitions: Vec::new(),
        })
    }

    /// A tenant from hand-written users: `{"users": [SimUser, ...], "roleDefinitions": [...]}`
    /// (`roleDefinitions`, the custom role definitions, is optional).
    pub fn from_fixture(json: &Value) -> anyhow::Result<Tenant> {
        let users = json.get("users").ok_or_else(|| {
            anyhow!("the fixture has no \"users\" array: expected {{\"users\": [...]}}")
        })?;
        let users: Vec<SimUser> = serde_json::from_value(users.clone())
            .context("the fixture's \"users\" is not a list of {user, memberOf, inheritedRoles, authMethods, roleAssignments} objects")?;
        let definitions = match json.get("roleDefinitions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list.clone(),
            Some(_) => bail!("the fixture's \"roleDefinitions\" is not a list"),
        };
        Ok(Tenant::from_users(users)?.with_role_definitions(definitions))
    }

    /// The same tenant with these custom role definitions (replacing any it had):
    /// `{"id", "displayName", "isBuiltIn": false, "templateId", "description"?}` objects, served
    /// by `roleManagement/directory/roleDefinitions` after the built-in ones. Objects without a
    /// string `id` are ignored; `isBuiltIn` is forced to false, `templateId` defaults to the id.
    pub fn with_role_definitions(mut self, definitions: Vec<Value>) -> Tenant {
        self.role_definitions = definitions
            .into_iter()
            .filter_map(|d| crate::roles::custom_definition(&d))
            .collect();
        self
    }

    /// The custom role definitions, as served.
    pub fn role_definitions(&self) -> &[Value] {
        &self.role_definitions
    }

    /// The tenant as a fixture document (`{"users": [...]}`, plus `"roleDefinitions"` when the
    /// tenant has custom ones), the inverse of [`Tenant::from_fixture`].
    pub fn to_fixture(&self) -> Value {
        if self.role_definitions.is_empty() {
            serde_json::json!({ "users": self.users })
        } else {
            serde_json::json!({ "users": self.users, "roleDefinitions": self.role_definitions })
        }
    }

    /// An oracle for tests, computed from the tenant data alone: for every user id, the sorted,
    /// de-duplicated display names of the directory roles it holds **actively** and of those it
    /// is only **eligible** for (PIM), from every source — `#microsoft.graph.directoryRole`
    /// entries in `member_of`, `inherited_roles`, `role_assignments` (any scope, built-in or
    /// custom), and grants whose principal is a role-assignable group the user is a member of
    /// (the group in its `member_of`, or the grant carried with `viaGroup`). A role both active
    /// and eligible is listed in both. Users without any role map to two empty lists. Names come
    /// from the role definitions (built-in table, then the tenant's custom ones, then the role
    /// object's own `displayName`; the definition id when nothing names it).
    pub fn admin_roles(&self) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
        crate::roles::admin_roles(&self.users, &self.role_definitions)
    }

    /// How many users the tenant has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the tenant has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The users in insertion order (the order `/users` lists them without `$orderby`).
    pub fn users(&self) -> &[SimUser] {
        &self.users
    }

    /// The user with this object id.
    pub fn user(&self, id: &str) -> Option<&SimUser> {
        self.by_id.get(id).map(|&i| &self.users[i])
    }

    /// A tenant from users known to carry unique string ids (the generator's own output).
    pub(crate) fn from_trusted(users: Vec<SimUser>) -> Tenant {
        let by_id = users
            .iter()
            .enumerate()
            .filter_map(|(i, u)| u.id().map(|id| (id.to_owned(), i)))
            .collect();
        Tenant {
            users,
            by_id,
            role_definitions: Vec::new(),
        }
    }

    /// Takes the users out, in insertion order.
    pub fn into_users(self) -> Vec<SimUser> {
        self.users
    }

    /// Takes the users and the custom role definitions out.
    pub(crate) fn into_parts(self) -> (Vec<SimUser>, Vec<Value>) {
        (self.users, self.role_definitions)
    }
}

/// Checks what the emulator relies on: a user object with a non-empty string `id`.
pub(crate) fn validate_user(user: &SimUser) -> anyhow::Result<()> {
    if !user.user.is_object() {
        bail!("\"user\" must be a Graph user object");
    }
    match user.id() {
        Some(id) if !id.is_empty() => Ok(()),
        _ => bail!("the user object has no string \"id\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fixture_round_trips_and_rejects_bad_users() {
        let fixture = json!({"users": [
            {"user": {"id": "a", "displayName": "A"}, "memberOf": [
                {"@odata.type": DIRECTORY_ROLE_TYPE, "id": "r1", "displayName": "Global Administrator"}
            ], "inheritedRoles": [
                {"@odata.type": DIRECTORY_ROLE_TYPE, "id": "r1", "displayName": "Global Administrator"},
                {"@odata.type": DIRECTORY_ROLE_TYPE, "id": "r2", "displayName": "Security Reader"}
            ]},
            {"user": {"id": "b"}}
        ]});
        let tenant = Tenant::from_fixture(&fixture).expect("valid fixture");
        assert_eq!(tenant.len(), 2);
        assert_eq!(tenant.to_fixture()["users"][1]["user"]["id"], "b");
        let roles: Vec<_> = tenant.users()[0]
            .directory_roles()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(roles, ["r1", "r2"]);
        assert_eq!(tenant.user("b").and_then(SimUser::id), Some("b"));

        let duplicate = json!({"users": [{"user": {"id": "a"}}, {"user": {"id": "a"}}]});
        assert!(Tenant::from_fixture(&duplicate).is_err());
        let no_id = json!({"users": [{"user": {"displayName": "x"}}]});
        assert!(Tenant::from_fixture(&no_id).is_err());
        assert!(Tenant::from_fixture(&json!({"people": []})).is_err());
    }
}
