//! Directory roles the way Microsoft's role-management API shows them:
//! `GET /v1.0/roleManagement/directory/roleDefinitions`, `…/roleAssignments` and
//! `…/roleEligibilityScheduleInstances`, and the oracle [`Tenant::admin_roles`] tests compare
//! a connector's output with.
//!
//! The legacy views (`directoryRoles`, `directoryRoles/{id}/members`,
//! `transitiveMemberOf/microsoft.graph.directoryRole`) see only activated built-in roles
//! assigned at tenant scope (resources/directoryrole.md: "To read a directory role or update its
//! members, it must first be activated in the tenant"; the unified-role pages below for custom
//! roles and scopes). The unified RBAC API sees every grant: custom
//! roles, grants scoped to an administrative unit or an application, grants whose principal is
//! a role-assignable group, and (with Entra ID P2) PIM eligibility. The tenant data feeds both
//! views: every legacy role (`member_of` directoryRole entries, `inherited_roles`) is also an
//! active assignment of the built-in definition whose id is its `roleTemplateId`, at scope `/`;
//! [`SimUser::role_assignments`] adds what only the RBAC API sees.
//!
//! Sources: <https://learn.microsoft.com/graph/api/rbacapplication-list-roledefinitions>,
//! <https://learn.microsoft.com/graph/api/rbacapplication-list-roleassignments>,
//! <https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances>,
//! <https://learn.microsoft.com/graph/api/resources/unifiedroleassignment>,
//! <https://learn.microsoft.com/graph/api/resources/unifiedroledefinition>,
//! <https://learn.microsoft.com/graph/api/resources/unifiedroleeligibilityscheduleinstance>.
//!
//! [`Tenant::admin_roles`]: crate::Tenant::admin_roles
//! [`SimUser::role_assignments`]: crate::SimUser::role_assignments

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::directory::Catalog;
use crate::generate::{fnv1a, guid};
use crate::graph::collection;
use crate::odata::{
    decode_token, encode_token, parse_filter, parse_select, FilterExpr, Literal, QueryOptions,
};
use crate::reply::{GraphError, Reply};
use crate::server::{HttpRequest, Shared};
use crate::tenant::{odata_type, SimUser, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP};

/// Built-in Microsoft Entra roles: display name, role template id (also the definition id in
/// `roleManagement/directory/roleDefinitions`), description. Template ids from
/// <https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference>;
/// every role the generator hands out is here, plus common ones.
pub const BUILT_IN_ROLES: [(&str, &str, &str); 26] = [
    ("Global Administrator", "62e90394-69f5-4237-9190-012177145e10", "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities."),
    ("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1", "Can manage all aspects of users and groups, including resetting passwords for limited admins."),
    ("Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509", "Can read security information and reports in Microsoft Entra ID and Office 365."),
    ("Security Administrator", "194ae4cb-b126-40b2-bd5b-6091b380977d", "Can read security information and reports, and manage configuration in Microsoft Entra ID and Office 365."),
    ("Helpdesk Administrator", "729827e3-9c14-49f7-bb1b-9608f156bbb8", "Can reset passwords for non-administrators and Helpdesk Administrators."),
    ("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Can read everything that a Global Administrator can, but not update anything."),
    ("Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de", "Can manage all aspects of the Exchange product."),
    ("Privileged Role Administrator", "e8611ab8-c189-46e8-94e1-60213ab1f814", "Can manage role assignments in Microsoft Entra ID, and all aspects of Privileged Identity Management."),
    ("Application Administrator", "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "Can create and manage all aspects of app registrations and enterprise apps."),
    ("Cloud Application Administrator", "158c047a-c907-4556-b7ef-446551a6b5f7", "Can create and manage all aspects of app registrations and enterprise apps except App Proxy."),
    ("Authentication Administrator", "c4e39bd9-1100-46d3-8c65-fb160da0071f", "Can access to view, set and reset authentication method information for any non-admin user."),
    ("Privileged Authentication Administrator", "7be44c8a-adaf-4e2a-84d6-ab2649e08a13", "Can access to view, set and reset authentication method information for any user (admin or non-admin)."),
    ("Conditional Access Administrator", "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9", "Can manage Conditional Access capabilities."),
    ("Groups Administrator", "fdd7a751-b60b-444a-984c-02652fe8fa1c", "Members of this role can create/manage groups, create/manage groups settings like naming and expiration policies, and view groups activity and audit reports."),
    ("Password Administrator", "966707d0-3269-4727-9be2-8c3a10f19b9d", "Can reset passwords for non-administrators and Password Administrators."),
    ("SharePoint Administrator", "f28a1f50-f6e7-4571-818b-6a12f2af6b6c", "Can manage all aspects of the SharePoint service."),
    ("Teams Administrator", "69091246-20e8-4a56-aa4d-066075b2a7a8", "Can manage the Microsoft Teams service."),
    ("Intune Administrator", "3a2c62db-5318-420d-8d74-23affee5d9d5", "Can manage all aspects of the Intune product."),
    ("Billing Administrator", "b0f54661-2d74-4c50-afa3-1ec803f12efe", "Can perform common billing related tasks like updating payment information."),
    ("Service Support Administrator", "f023fd81-a637-4b56-95fd-791ac0226033", "Can read service health information and manage support tickets."),
    ("Reports Reader", "4a5d8f65-41da-4de4-8968-e035b65339cf", "Can read sign-in and audit reports."),
    ("Directory Readers", "88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "Can read basic directory information. Commonly used to grant directory read access to applications and guests."),
    ("Compliance Administrator", "17315797-102d-40b4-93e0-432062caca18", "Can read and manage compliance configuration and reports in Microsoft Entra ID and Microsoft 365."),
    ("License Administrator", "4d6ac14f-3453-41d0-bef9-a3e0c569773a", "Can manage product licenses on users and groups."),
    ("Security Operator", "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f", "Creates and manages security events."),
    ("Authentication Policy Administrator", "0526716b-113d-4c15-b2c8-68e3c22b9f80", "Can create and manage the authentication methods policy, tenant-wide MFA settings, password protection policy, and verifiable credentials."),
];

/// The template id of a built-in role by display name (any case).
pub(crate) fn built_in_id(name: &str) -> Option<&'static str> {
    BUILT_IN_ROLES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, id, _)| *id)
}

fn built_in_definition(name: &str, id: &str, description: &Value) -> Value {
    json!({
        "id": id,
        "description": description,
        "displayName": name,
        "isBuiltIn": true,
        "isEnabled": true,
        "resourceScopes": ["/"],
        "templateId": id,
        "version": "1",
        "rolePermissions": [],
    })
}

/// A custom definition as served, from the tenant data (`None` without a string `id`).
pub(crate) fn custom_definition(raw: &Value) -> Option<Value> {
    let object = raw.as_object()?;
    let id = object.get("id")?.as_str()?.to_owned();
    let field = |name: &str| object.get(name).cloned().unwrap_or(Value::Null);
    let template = object
        .get("templateId")
        .filter(|t| t.is_string())
        .cloned()
        .unwrap_or_else(|| json!(id));
    Some(json!({
        "id": id,
        "description": field("description"),
        "displayName": field("displayName"),
        "isBuiltIn": false,
        "isEnabled": object.get("isEnabled").cloned().unwrap_or(json!(true)),
        "resourceScopes": ["/"],
        "templateId": template,
        "version": null,
        "rolePermissions": object.get("rolePermissions").cloned().unwrap_or(json!([])),
    }))
}

/// Every role definition of a tenant: the built-in table, built-in roles the tenant data names
/// that the table lacks (from their legacy role objects), then the custom ones.
#[derive(Debug)]
pub(crate) struct DefinitionBook {
    /// As served, in order.
    pub list: Vec<Value>,
    names: HashMap<String, String>,
}

impl DefinitionBook {
    pub(crate) fn new<'a>(
        users: impl IntoIterator<Item = &'a SimUser>,
        custom: &[Value],
    ) -> DefinitionBook {
        let mut list: Vec<Value> = BUILT_IN_ROLES
            .iter()
            .map(|(name, id, description)| built_in_definition(name, id, &json!(description)))
            .collect();
        let mut known: HashSet<String> = BUILT_IN_ROLES
            .iter()
            .map(|(_, id, _)| (*id).to_owned())
            .collect();
        for sim in users {
            for role in legacy_roles(sim) {
                let Some(id) = legacy_definition_id(role) else {
                    continue;
                };
                if known.insert(id.clone()) {
                    let name = role
                        .get("displayName")
                        .and_then(Value::as_str)
                        .unwrap_or(&id);
                    let description = role.get("description").cloned().unwrap_or(Value::Null);
                    list.push(built_in_definition(name, &id, &description));
                }
            }
        }
        for definition in custom {
            if let Some(id) = definition.get("id").and_then(Value::as_str) {
                if known.insert(id.to_owned()) {
                    list.push(definition.clone());
                }
            }
        }
        let names = list
            .iter()
            .filter_map(|d| {
                let id = d.get("id")?.as_str()?;
                let name = d.get("displayName").and_then(Value::as_str).unwrap_or(id);
                Some((id.to_owned(), name.to_owned()))
            })
            .collect();
        DefinitionBook { list, names }
    }

    /// The display name of a definition (its id when nothing names it).
    pub(crate) fn name(&self, id: &str) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// The served definition object.
    pub(crate) fn get(&self, id: &str) -> Option<&Value> {
        self.list.iter().find(|d| d["id"] == id)
    }
}

/// The legacy role objects of a user: directoryRole entries of `member_of`, then
/// `inherited_roles`.
fn legacy_roles(sim: &SimUser) -> impl Iterator<Item = &Value> {
    sim.member_of
        .iter()
        .filter(|o| odata_type(o) == Some(DIRECTORY_ROLE_TYPE))
        .chain(sim.inherited_roles.iter())
}

/// The definition a legacy role object stands for: its `roleTemplateId`, else the built-in
/// role of that display name, else the role's own id.
fn legacy_definition_id(role: &Value) -> Option<String> {
    let text = |name: &str| {
        role.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    text("roleTemplateId")
        .map(str::to_owned)
        .or_else(|| text("displayName").and_then(built_in_id).map(str::to_owned))
        .or_else(|| text("id").map(str::to_owned))
}

/// One (principal, definition, scope) grant, active or eligible.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    /// The user or role-assignable group the grant is assigned to.
    pub principal: String,
    /// Whether the principal is a group.
    pub group: bool,
    /// The role definition id.
    pub definition: String,
    /// `directoryScopeId`.
    pub scope: String,
    /// PIM-eligible rather than active.
    pub eligible: bool,
    /// The users whose tenant data declares this grant.
    pub declared_by: Vec<String>,
}

impl Grant {
    /// The assignment (or eligibility instance) id, stable across runs.
    fn id(&self) -> String {
        let a = fnv1a(self.definition.as_bytes());
        let b = fnv1a(format!("{}\u{1f}{}", self.principal, self.scope).as_bytes());
        let suffix = if self.eligible { "-1-e" } else { "-1" };
        format!("{a:016x}{b:016x}{suffix}")
    }
}

/// Every grant of a tenant, each (principal, definition, scope, eligible) once, in the order
/// first met walking the users in order.
pub(crate) fn grants<'a>(users: impl IntoIterator<Item = &'a SimUser>) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    let mut index: HashMap<(String, String, String, bool), usize> = HashMap::new();
    let mut add = |out: &mut Vec<Grant>, user: &str, grant: Grant| {
        let key = (
            grant.principal.clone(),
            grant.definition.clone(),
            grant.scope.clone(),
            grant.eligible,
        );
        match index.get(&key) {
            Some(&i) => {
                if !out[i].declared_by.iter().any(|u| u == user) {
                    out[i].declared_by.push(user.to_owned());
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(grant);
            }
        }
    };
    for sim in users {
        let Some(user) = sim.id() else {
            continue;
        };
        let direct = sim
            .member_of
            .iter()
            .filter(|o| odata_type(o) == Some(DIRECTORY_ROLE_TYPE))
            .map(|r| (r, None));
        let inherited = sim.inherited_roles.iter().map(|r| (r, via_group(r)));
        for (role, via) in direct.chain(inherited) {
            let Some(definition) = legacy_definition_id(role) else {
                continue;
            };
            let grant = Grant {
                principal: via.unwrap_or(user).to_owned(),
                group: via.is_some(),
                definition,
                scope: "/".to_owned(),
                eligible: false,
                declared_by: vec![user.to_owned()],
            };
            add(&mut out, user, grant);
        }
        for raw in &sim.role_assignments {
            let Some(definition) = raw.get("roleDefinitionId").and_then(Value::as_str) else {
                continue;
            };
            let via = via_group(raw);
            let scope = raw
                .get("directoryScopeId")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("/");
            let grant = Grant {
                principal: via.unwrap_or(user).to_owned(),
                group: via.is_some(),
                definition: definition.to_owned(),
                scope: scope.to_owned(),
                eligible: raw.get("eligible").and_then(Value::as_bool) == Some(true),
                declared_by: vec![user.to_owned()],
            };
            add(&mut out, user, grant);
        }
    }
    out
}

fn via_group(object: &Value) -> Option<&str> {
    object
        .get(VIA_GROUP)
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
}

/// The oracle behind [`Tenant::admin_roles`](crate::Tenant::admin_roles).
pub(crate) fn admin_roles(
    users: &[SimUser],
    custom: &[Value],
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let book = DefinitionBook::new(users, custom);
    let mut held: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = users
        .iter()
        .filter_map(|u| u.id())
        .map(|id| (id.to_owned(), Default::default()))
        .collect();
    let mut group_members: HashMap<&str, Vec<&str>> = HashMap::new();
    for sim in users {
        let Some(user) = sim.id() else {
            continue;
        };
        for group in sim.memberships_of_type(GROUP_TYPE) {
            if let Some(id) = group.get("id").and_then(Value::as_str) {
                group_members.entry(id).or_default().push(user);
            }
        }
    }
    for grant in grants(users) {
        let name = book.name(&grant.definition);
        let mut holders: Vec<&str> = grant.declared_by.iter().map(String::as_str).collect();
        if grant.group {
            holders.extend(
                group_members
                    .get(grant.principal.as_str())
                    .into_iter()
                    .flatten(),
            );
        }
        for holder in holders {
            if let Some((active, eligible)) = held.get_mut(holder) {
                if grant.eligible {
                    eligible.insert(name.clone());
                } else {
                    active.insert(name.clone());
                }
            }
        }
    }
    held.into_iter()
        .map(|(id, (a, e))| (id, (a.into_iter().collect(), e.into_iter().collect())))
        .collect()
}

/// The served form of a grant (a `unifiedRoleAssignment` or a
/// `unifiedRoleEligibilityScheduleInstance`).
pub(crate) fn grant_object(grant: &Grant) -> Value {
    let mut object = json!({
        "id": grant.id(),
        "principalId": grant.principal,
        "roleDefinitionId": grant.definition,
        "directoryScopeId": grant.scope,
        "appScopeId": null,
    });
    if let Some(map) = object.as_object_mut() {
        if grant.eligible {
            // Fixed, deterministic schedule times: the emulator's data has no clock.
            map.insert("startDateTime".into(), json!("2025-01-15T09:00:00Z"));
            map.insert("endDateTime".into(), json!("2026-01-15T09:00:00Z"));
            map.insert("memberType".into(), json!("Direct"));
            map.insert(
                "roleEligibilityScheduleId".into(),
                json!(guid(fnv1a(grant.id().as_bytes()), "schedule", 0)),
            );
        } else {
            map.insert("resourceScope".into(), json!(grant.scope));
        }
    }
    object
}

/// Properties of `unifiedRoleAssignment` that `$select` accepts.
const ASSIGNMENT_PROPERTIES: &[&str] = &[
    "id",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "resourceScope",
    "condition",
];

/// Properties of `unifiedRoleEligibilityScheduleInstance` that `$select` accepts.
const ELIGIBILITY_PROPERTIES: &[&str] = &[
    "id",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "startDateTime",
    "endDateTime",
    "memberType",
    "roleEligibilityScheduleId",
];

/// Page size of the assignment and eligibility lists. Their API pages give none (nor `$top`);
/// 100 stands in, the default of Graph's directory lists (user-list.md, group-list.md: "The
/// default and maximum page sizes are 100 and 999 … objects respectively"), and keeps tenants
/// with many admins on several pages.
const RBAC_PAGE_SIZE: usize = 100;

/// Permissions that let an app read role definitions. Source: rbacapplication-list-roledefinitions
/// ("Application: RoleManagement.Read.Directory, Directory.Read.All, …"); write permissions are
/// not modelled (the app is assumed to hold only read permissions).
const DEFINITION_PERMISSIONS: &[&str] = &["RoleManagement.Read.Directory", "Directory.Read.All"];
/// Permissions that let an app read role assignments. Source:
/// rbacapplication-list-roleassignments ("Application: RoleManagement.Read.Directory,
/// RoleManagement.Read.All, Directory.Read.All, …").
const ASSIGNMENT_PERMISSIONS: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "Directory.Read.All",
];
/// Permissions that let an app read PIM eligibility. The PIM permission table was not found in
/// the stored docs; RoleEligibilitySchedule.Read.Directory is the documented least-privileged
/// one and the RoleManagement read permissions cover it. Directory.Read.All is left out: the
/// docs are silent and the stricter reading wins.
const ELIGIBILITY_PERMISSIONS: &[&str] = &[
    "RoleEligibilitySchedule.Read.Directory",
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
];

/// The 400 Graph answers PIM reads with on a tenant without Entra ID P2. Not in the API pages;
/// the code and status are what public clients handle (e.g. Microsoft365DSC matches
/// `[AadPremiumLicenseRequired]`, others check 400 + `AadPremiumLicenseRequired`), and the
/// message is the one they quote.
fn no_p2() -> GraphError {
    GraphError::new(
        400,
        "AadPremiumLicenseRequired",
        "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license.",
    )
}

/// `GET /v1.0/roleManagement/directory/roleDefinitions`: built-in and custom definitions, not
/// paged (the docs describe no paging or `$top`).
///
/// Query options per rbacapplication-list-roledefinitions: `$filter` (`eq` and `in` on `id`,
/// `displayName`, `isBuiltIn`) and `$expand` (relationships: `inheritsPermissionsFrom`). The
/// docs do not list `$select`, `$top`, `$orderby`, `$count` or `$search`: refused (400), except
/// `$select` when `generous`.
pub(crate) fn role_definitions(
    shared: &Shared,
    request: &HttpRequest,
) -> Result<Reply, GraphError> {
    let generous = shared.config.generous;
    let opts = QueryOptions::parse(
        request.query.as_deref(),
        &[
            "$filter", "$expand", "$select", "$top", "$orderby", "$count", "$search",
        ],
    )?;
    refuse_options(
        &opts,
        if generous {
            &["$top", "$orderby", "$count", "$search"]
        } else {
            &["$select", "$top", "$orderby", "$count", "$search"]
        },
        "roleDefinitions",
    )?;
    shared.require_any(DEFINITION_PERMISSIONS)?;
    if let Some(expand) = opts.get("$expand") {
        for name in expand.split(',').map(str::trim) {
            if !name.eq_ignore_ascii_case("inheritsPermissionsFrom") {
                return Err(GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.unifiedRoleDefinition'."
                )));
            }
        }
    }
    let filter = opts.get("$filter").map(parse_filter).transpose()?;
    if let Some(f) = &filter {
        f.check_in_limit(false, request)?;
        check_properties(
            f,
            &["id", "displayName", "isBuiltIn"],
            true,
            "unifiedRoleDefinition",
        )?;
    }
    let select = opts.get("$select").map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let catalog = shared.read().catalog();
    let value = catalog
        .definitions
        .list
        .iter()
        .filter(|d| filter.as_ref().is_none_or(|f| f.matches(d)))
        .map(|d| {
            let mut d = d.clone();
            if opts.get("$expand").is_some() {
                d["inheritsPermissionsFrom"] = json!([]);
            }
            match &select {
                None => d,
                Some(names) => select_fields(&d, names),
            }
        })
        .collect();
    let context = format!(
        "{}/v1.0/$metadata#roleManagement/directory/roleDefinitions",
        shared.graph_base
    );
    Ok(collection(context, None, value, None))
}

/// `GET /v1.0/roleManagement/directory/roleAssignments`: active assignments, paged.
pub(crate) fn role_assignments(
    shared: &Shared,
    request: &HttpRequest,
) -> Result<Reply, GraphError> {
    rbac_list(shared, request, false)
}

/// `GET /v1.0/roleManagement/directory/roleEligibilityScheduleInstances`: PIM eligibility,
/// paged; needs Entra ID P2.
pub(crate) fn role_eligibility(
    shared: &Shared,
    request: &HttpRequest,
) -> Result<Reply, GraphError> {
    rbac_list(shared, request, true)
}

/// Refuses the options present in `refused` with 400 `Request_UnsupportedQuery`.
fn refuse_options(opts: &QueryOptions, refused: &[&str], what: &str) -> Result<(), GraphError> {
    if let Some(name) = opts.names().find(|n| refused.contains(n)) {
        return Err(GraphError::unsupported_query(format!(
            "The query option '{name}' is not supported on {what}."
        )));
    }
    Ok(())
}

/// Only these properties (and `eq`, plus `in` when allowed) may appear in a filter.
fn check_properties(
    filter: &FilterExpr,
    properties: &[&str],
    allow_in: bool,
    entity: &str,
) -> Result<(), GraphError> {
    for clause in &filter.clauses {
        if !properties
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&clause.property))
            || (clause.is_in && !allow_in)
        {
            return Err(GraphError::unsupported_query(format!(
                "Unsupported or invalid query filter clause specified for property '{}' of resource '{entity}'.",
                clause.property
            )));
        }
    }
    Ok(())
}

/// A JSON object cut to `names` (any case); `id` always stays.
fn select_fields(object: &Value, names: &[String]) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let out: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| *k == "id" || names.iter().any(|n| n.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(out)
}

/// The assignment and eligibility lists: `$select`, `$filter`, `$expand` per
/// rbacapplication-list-roleassignments / -roleeligibilityscheduleinstances ("This method
/// supports the `$filter`, `$expand`, and `$select` OData query parameters"); `$top`,
/// `$orderby`, `$count`, `$search` are not listed: refused (400). `$filter` takes `eq` on
/// `principalId`, `roleDefinitionId`, `directoryScopeId`, `appScopeId` joined by `and` (the
/// docs' examples); `in` and other properties are refused (the docs are silent: stricter).
/// `$expand` takes `principal` and `roleDefinition`.
fn rbac_list(shared: &Shared, request: &HttpRequest, eligible: bool) -> Result<Reply, GraphError> {
    let what = if eligible {
        "roleEligibilityScheduleInstances"
    } else {
        "roleAssignments"
    };
    let opts = QueryOptions::parse(
        request.query.as_deref(),
        &[
            "$select",
            "$filter",
            "$expand",
            "$skiptoken",
            "$top",
            "$orderby",
            "$count",
            "$search",
        ],
    )?;
    refuse_options(&opts, &["$top", "$orderby", "$count", "$search"], what)?;
    if eligible && !shared.p2() {
        return Err(no_p2());
    }
    shared.require_any(if eligible {
        ELIGIBILITY_PERMISSIONS
    } else {
        ASSIGNMENT_PERMISSIONS
    })?;
    let properties = if eligible {
        ELIGIBILITY_PROPERTIES
    } else {
        ASSIGNMENT_PROPERTIES
    };
    let entity = if eligible {
        "unifiedRoleEligibilityScheduleInstance"
    } else {
        "unifiedRoleAssignment"
    };
    let select = opts
        .get("$select")
        .map(|s| parse_select(s, properties, entity))
        .transpose()?;
    let mut expand_principal = false;
    let mut expand_definition = false;
    if let Some(expand) = opts.get("$expand") {
        for name in expand.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.eq_ignore_ascii_case("principal") {
                expand_principal = true;
            } else if name.eq_ignore_ascii_case("roleDefinition") {
                expand_definition = true;
            } else {
                return Err(GraphError::bad_request(format!(
                    "Could not find a navigation property named '{name}' on type 'microsoft.graph.{entity}' that the emulator can expand."
                )));
            }
        }
    }
    let filter = opts.get("$filter").map(parse_filter).transpose()?;
    if let Some(f) = &filter {
        if f.any && f.clauses.len() > 1 {
            return Err(GraphError::unsupported_query(
                "Filters joined by 'or' are not supported on role management lists: use 'and'.",
            ));
        }
        check_properties(
            f,
            &[
                "principalId",
                "roleDefinitionId",
                "directoryScopeId",
                "appScopeId",
            ],
            false,
            entity,
        )?;
    }
    let fingerprint = opts.fingerprint(what);
    let invalid = || {
        GraphError::bad_request(
            "The $skiptoken is invalid or does not belong to this query: follow @odata.nextLink exactly as received.",
        )
    };
    let offset = match opts.get("$skiptoken") {
        None => 0,
        Some(token) => match decode_token(token).as_deref() {
            Some([kind, fp, offset]) if kind == "rbac" && *fp == fingerprint => {
                offset.parse::<usize>().map_err(|_| invalid())?
            }
            _ => return Err(invalid()),
        },
    };
    let directory = shared.read();
    let catalog = directory.catalog();
    let matching: Vec<Value> = catalog
        .grants
        .iter()
        .filter(|g| g.eligible == eligible)
        .map(grant_object)
        .filter(|o| filter.as_ref().is_none_or(|f| f.matches(o)))
        .collect();
    let end = offset.saturating_add(RBAC_PAGE_SIZE).min(matching.len());
    let start = offset.min(end);
    let value: Vec<Value> = matching[start..end]
        .iter()
        .map(|object| {
            let mut out = match &select {
                Some(names) => {
                    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
                    select_fields(object, &names)
                }
                None => object.clone(),
            };
            if expand_principal {
                let principal = object["principalId"].as_str().unwrap_or_default();
                out["principal"] = principal_object(&directory, &catalog, principal);
            }
            if expand_definition {
                let definition = object["roleDefinitionId"].as_str().unwrap_or_default();
                out["roleDefinition"] = catalog
                    .definitions
                    .get(definition)
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            out
        })
        .collect();
    drop(directory);
    let next_link = (end < matching.len()).then(|| {
        let token = encode_token(&["rbac".to_owned(), fingerprint.clone(), end.to_string()]);
        opts.next_link(&shared.graph_base, &request.path, &token)
    });
    let context = format!(
        "{}/v1.0/$metadata#roleManagement/directory/{what}",
        shared.graph_base
    );
    Ok(collection(context, None, value, next_link))
}

/// The principal of an assignment as `$expand=principal` shows it.
fn principal_object(directory: &crate::directory::Directory, catalog: &Catalog, id: &str) -> Value {
    if let Some(entry) = directory.find(id) {
        let user = entry.user();
        return json!({
            "@odata.type": "#microsoft.graph.user",
            "id": id,
            "displayName": user.get("displayName").cloned().unwrap_or(Value::Null),
            "userPrincipalName": user.get("userPrincipalName").cloned().unwrap_or(Value::Null),
        });
    }
    if let Some(group) = catalog.groups.iter().find(|g| g.id.as_deref() == Some(id)) {
        let mut out = directory.group(group.object);
        if let Some(map) = out.as_object_mut() {
            map.insert("@odata.type".into(), json!(GROUP_TYPE));
        }
        return out;
    }
    json!({"@odata.type": "#microsoft.graph.directoryObject", "id": id})
}

impl FilterExpr {
    /// Whether an object matches (string and boolean properties compared as Graph does:
    /// strings case-insensitively).
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let test = |clause: &crate::odata::Comparison| {
            let actual = object
                .as_object()
                .and_then(|m| {
                    m.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&clause.property))
                        .map(|(_, v)| v)
                })
                .unwrap_or(&Value::Null);
            clause.values.iter().any(|value| match (value, actual) {
                (Literal::Str(s), Value::String(a)) => s.eq_ignore_ascii_case(a),
                (Literal::Bool(b), Value::Bool(a)) => b == a,
                (Literal::Null, Value::Null) => true,
                _ => false,
            })
        };
        if self.any {
            self.clauses.iter().any(test)
        } else {
            self.clauses.iter().all(test)
        }
    }
}
