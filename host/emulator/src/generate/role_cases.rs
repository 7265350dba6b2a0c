//! Role grants only the role-management API shows (custom roles, scoped assignments, PIM
//! eligibility, roles held through a role-assignable group), added to generated users: fixed
//! at the [`role_case`] indexes, drawn from each user's own stream beyond them.

use serde_json::{json, Value};

use super::catalog::Catalog;
use super::hard_case;
use super::seeded::{derive, guid, SplitMix};
use crate::tenant::{SimUser, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP};

/// Which generated indexes hold the role grants only the role-management API shows (for every
/// tenant of at least [`role_case::COUNT`] users). They are random users (index 20 and up) with
/// these grants added to [`SimUser::role_assignments`](crate::SimUser::role_assignments); the
/// rest of their data is what the seed gives them anyway (they may hold legacy roles too),
/// except [`role_case::ELIGIBLE_ONLY`], whose active roles and role-assignable groups are taken
/// away. Beyond [`role_case::COUNT`], each user gets each kind of grant with a chance of one in
/// [`role_case::ONE_IN`] (eligibility only when the user holds no active role), drawn from a
/// stream of its own so every other fact of the user is unchanged.
///
/// | index | grant |
/// |---|---|
/// | 20 | the custom role "Contoso Helpdesk Tier 1" at tenant scope (`/`) |
/// | 21 | the built-in User Administrator scoped to the administrative unit "Paris Office" (`/administrativeUnits/{id}`) |
/// | 22 | the built-in Application Administrator scoped to one application (`/{application object id}`) |
/// | 23 | PIM-eligible only: Global Administrator and Security Administrator at `/`, no active role at all |
/// | 24, 25 | the custom role "Contoso Support Desk" through the role-assignable group "Role - Support Desk" (the group is the assignment's principal; both users are in it, `viaGroup` names it) |
///
/// The generated tenant's custom role definitions (see
/// [`Tenant::role_definitions`](crate::Tenant::role_definitions)) are "Contoso Helpdesk Tier
/// 1", "Contoso App Registration Reader" and "Contoso Support Desk".
pub mod role_case {
    /// A custom role at tenant scope.
    pub const CUSTOM_ROLE: usize = 20;
    /// A built-in role scoped to an administrative unit.
    pub const UNIT_SCOPED: usize = 21;
    /// A built-in role scoped to an application.
    pub const APP_SCOPED: usize = 22;
    /// PIM-eligible roles only, no active role.
    pub const ELIGIBLE_ONLY: usize = 23;
    /// A custom role held through a role-assignable group.
    pub const VIA_GROUP: [usize; 2] = [24, 25];
    /// How many leading indexes hold the fixed cases (hard cases included).
    pub const COUNT: usize = 26;
    /// Beyond [`COUNT`], the chance of each kind of grant is one in this.
    pub const ONE_IN: u64 = 100;
}

/// Names of the generated tenant's custom role definitions.
const CUSTOM_ROLES: [(&str, &str); 3] = [
    (
        "Contoso Helpdesk Tier 1",
        "Resets passwords and reads sign-in logs for front-line staff.",
    ),
    (
        "Contoso App Registration Reader",
        "Reads application registrations and their owners.",
    ),
    (
        "Contoso Support Desk",
        "Manages support tickets and reads user profiles; granted through a role-assignable group.",
    ),
];

/// The generated tenant's custom role definitions.
pub(super) fn custom_definitions(seed: u64) -> Vec<Value> {
    CUSTOM_ROLES
        .iter()
        .enumerate()
        .map(|(i, (name, description))| {
            let id = guid(seed, "custom-role", i as u64);
            json!({"id": id, "displayName": name, "description": description, "isBuiltIn": false, "templateId": id})
        })
        .collect()
}

/// The role-assignable group that grants the custom role "Contoso Support Desk".
fn support_desk_group(seed: u64) -> Value {
    json!({
        "@odata.type": GROUP_TYPE,
        "id": guid(seed, "custom-role-group", 0),
        "displayName": "Role - Support Desk",
        "description": "Members of Role - Support Desk",
        "groupTypes": [],
        "mail": null,
        "mailEnabled": false,
        "securityEnabled": true,
        "isAssignableToRole": true,
    })
}

/// The kinds of grant only the role-management API shows.
#[derive(Clone, Copy)]
enum GrantKind {
    Custom,
    UnitScoped,
    AppScoped,
    EligibleOnly,
    ViaGroup,
}

/// Adds grants of `kinds` to a random user (`rng`: the user's own grant stream).
fn add_grants(
    seed: u64,
    sim: &mut SimUser,
    kinds: &[GrantKind],
    catalog: &Catalog,
    rng: &mut SplitMix,
) {
    let customs = custom_definitions(seed);
    for kind in kinds {
        match kind {
            GrantKind::Custom => {
                let definition = &customs[rng.below(2) as usize]["id"];
                sim.role_assignments
                    .push(json!({"roleDefinitionId": definition, "directoryScopeId": "/"}));
            }
            GrantKind::UnitScoped => {
                let role = *rng.pick(&[
                    "User Administrator",
                    "Helpdesk Administrator",
                    "Authentication Administrator",
                ]);
                let unit = &rng.pick(&catalog.units)["id"];
                sim.role_assignments.push(json!({
                    "roleDefinitionId": crate::roles::built_in_id(role),
                    "directoryScopeId": format!("/administrativeUnits/{}", unit.as_str().unwrap_or_default()),
                }));
            }
            GrantKind::AppScoped => {
                let role = *rng.pick(&[
                    "Application Administrator",
                    "Cloud Application Administrator",
                ]);
                let app = guid(seed, "application", rng.below(2));
                sim.role_assignments.push(json!({
                    "roleDefinitionId": crate::roles::built_in_id(role),
                    "directoryScopeId": format!("/{app}"),
                }));
            }
            GrantKind::EligibleOnly => {
                for role in ["Global Administrator", "Security Administrator"] {
                    sim.role_assignments.push(json!({
                        "roleDefinitionId": crate::roles::built_in_id(role),
                        "directoryScopeId": "/",
                        "eligible": true,
                    }));
                }
            }
            GrantKind::ViaGroup => {
                let group = support_desk_group(seed);
                sim.role_assignments.push(json!({
                    "roleDefinitionId": customs[2]["id"],
                    "directoryScopeId": "/",
                    VIA_GROUP: group["id"],
                }));
                sim.member_of.push(group);
            }
        }
    }
}

/// Whether a user holds an active role anywhere in its data.
fn holds_active_role(sim: &SimUser) -> bool {
    !sim.directory_roles().is_empty()
        || sim
            .role_assignments
            .iter()
            .any(|a| a.get("eligible").and_then(Value::as_bool) != Some(true))
}

/// The grants of user `index` that only the role-management API shows (see [`role_case`]).
pub(super) fn role_grants(seed: u64, index: usize, sim: &mut SimUser, catalog: &Catalog) {
    if index < hard_case::COUNT {
        return;
    }
    let mut rng = SplitMix::new(derive(seed, "role-grant", index as u64));
    let unit = |u: usize| {
        format!(
            "/administrativeUnits/{}",
            catalog.units[u]["id"].as_str().unwrap_or_default()
        )
    };
    match index {
        role_case::CUSTOM_ROLE => sim.role_assignments.push(json!({
            "roleDefinitionId": custom_definitions(seed)[0]["id"],
            "directoryScopeId": "/",
        })),
        role_case::UNIT_SCOPED => sim.role_assignments.push(json!({
            "roleDefinitionId": crate::roles::built_in_id("User Administrator"),
            "directoryScopeId": unit(0),
        })),
        role_case::APP_SCOPED => sim.role_assignments.push(json!({
            "roleDefinitionId": crate::roles::built_in_id("Application Administrator"),
            "directoryScopeId": format!("/{}", guid(seed, "application", 0)),
        })),
        role_case::ELIGIBLE_ONLY => {
            sim.member_of.retain(|o| {
                crate::tenant::odata_type(o) != Some(DIRECTORY_ROLE_TYPE)
                    && o.get("isAssignableToRole") != Some(&json!(true))
            });
            sim.inherited_roles.clear();
            add_grants(seed, sim, &[GrantKind::EligibleOnly], catalog, &mut rng);
        }
        i if role_case::VIA_GROUP.contains(&i) => {
            add_grants(seed, sim, &[GrantKind::ViaGroup], catalog, &mut rng);
        }
        _ => {
            let mut kinds: Vec<GrantKind> = [
                GrantKind::Custom,
                GrantKind::UnitScoped,
                GrantKind::AppScoped,
                GrantKind::EligibleOnly,
                GrantKind::ViaGroup,
            ]
            .into_iter()
            .filter(|_| rng.below(role_case::ONE_IN) == 0)
            .collect();
            // Eligibility is drawn as "eligible only": dropped when the user holds, or is about
            // to get, an active role.
            let active = holds_active_role(sim)
                || kinds.iter().any(|k| !matches!(k, GrantKind::EligibleOnly));
            if active {
                kinds.retain(|k| !matches!(k, GrantKind::EligibleOnly));
            }
            add_grants(seed, sim, &kinds, catalog, &mut rng);
        }
    }
}
