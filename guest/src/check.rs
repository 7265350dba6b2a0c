//! "Test connector": acquire a token, then probe each Graph source a run will use with a
//! request that fails only when that source's permission is missing, so an operator learns
//! what is missing before the first run fails.
//!
//! Each probe is one row: source, permission, licence, status. A missing permission fails
//! the probe (grant it); a missing licence is a warning (`ok`, detail starting with
//! `warning:`): the run carries on without that part and says so.

use serde_json::Value;

use crate::config::Config;
use crate::graph::{path_segment, GraphClient, GraphError, GraphGet};
use connector_sdk::doors::Doors;
use connector_sdk::error::ConnectorError;

/// The outcome of one probe: `name` is `<source> [<permission>; <licence>]`; a licence gap
/// is `ok`, with a `warning:` detail.
pub use connector_sdk::connector::Probe;

/// Application permissions the connector needs, in the order they are probed.
pub const PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "RoleManagement.Read.Directory",
    "RoleEligibilitySchedule.Read.Directory",
    "UserAuthenticationMethod.Read.All",
    "AuditLog.Read.All",
];

/// Template id of Global Administrator: a filter that keeps the role probes small.
const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";

/// One source a run reads.
struct Source {
    name: &'static str,
    permission: &'static str,
    licence: Option<&'static str>,
    /// What the run does without it.
    without: &'static str,
}

const SOURCES: [Source; 7] = [
    Source {
        name: "users",
        permission: "User.Read.All",
        licence: None,
        without: "no run is possible",
    },
    Source {
        name: "groups and members",
        permission: "GroupMember.Read.All",
        licence: None,
        without: "user.groups is omitted",
    },
    Source {
        name: "role assignments",
        permission: "RoleManagement.Read.Directory",
        licence: None,
        without: "user.type is Unknown",
    },
    Source {
        name: "PIM eligibility",
        permission: "RoleEligibilitySchedule.Read.Directory",
        licence: Some("Entra ID P2"),
        without: "eligible_roles is omitted and eligible-only admins are not marked Admin",
    },
    Source {
        name: "authentication methods",
        permission: "UserAuthenticationMethod.Read.All",
        licence: None,
        without: "has_mfa is omitted for users changed between full walks",
    },
    Source {
        name: "sign-in activity",
        permission: "AuditLog.Read.All",
        licence: Some("Entra ID P1/P2"),
        without: "last_login_time is omitted",
    },
    Source {
        name: "registration report",
        permission: "AuditLog.Read.All",
        licence: Some("Entra ID P1/P2"),
        without: "MFA is read per user (one request each)",
    },
];

/// Runs every probe. Fails only when no token can be had (nothing else can be probed then).
pub fn check<D: Doors>(doors: &D, config: &Config) -> Result<Vec<Probe>, ConnectorError> {
    let graph = GraphClient::new(doors, config);
    graph
        .ensure_token()
        .map_err(|e| e.into_connector("acquiring a token"))?;
    let mut probes = vec![Probe {
        name: "token".into(),
        ok: true,
        detail: format!("client credentials accepted by {}", config.login_endpoint),
    }];
    let first_user = graph
        .get(GraphGet::new(config.graph_url("/users?$select=id&$top=1")))
        .map(|v| {
            v.get("value")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    // Docs: rbacapplication-list-roleassignments ("$filter=roleDefinitionId eq '…'", its
    // example 1) and -roleeligibilityscheduleinstances (`$filter` supported); group-list
    // (`$select`, `$top`); user-list with `$select=signInActivity` (AuditLog.Read.All and
    // P1/P2); the registration report takes no `$select`/`$top` (first page only).
    let role_filter = format!("$filter=roleDefinitionId%20eq%20'{GLOBAL_ADMINISTRATOR}'");
    let not_probed = "not probed: needs a readable user (User.Read.All) first";
    for source in &SOURCES {
        report_probe(&graph, source);
        let url: Result<String, &str> = match source.name {
            "groups and members" => Ok("/groups?$select=id&$top=1".to_string()),
            "role assignments" => Ok(format!(
                "/roleManagement/directory/roleAssignments?{role_filter}"
            )),
            "PIM eligibility" => Ok(format!(
                "/roleManagement/directory/roleEligibilityScheduleInstances?{role_filter}"
            )),
            "authentication methods" => match &first_user {
                Ok(Some(id)) => path_segment(id)
                    .map(|seg| format!("/users/{seg}/authentication/methods"))
                    .ok_or(
                        "not probed: the first user Graph listed has an id that would change the request's path ('.' or '..'); run check again",
                    ),
                _ => Err(not_probed),
            },
            "sign-in activity" => Ok("/users?$select=id,signInActivity&$top=1".to_string()),
            "registration report" => {
                Ok("/reports/authenticationMethods/userRegistrationDetails".to_string())
            }
            _ => Err(not_probed),
        };
        let result: Result<(), GraphError> = match (source.name, url) {
            ("users", _) => first_user.as_ref().map(|_| ()).map_err(Clone::clone),
            (_, Ok(path)) => graph
                .get(GraphGet::new(config.graph_url(&path)))
                .map(|_| ()),
            (_, Err(why)) => Err(GraphError::Malformed(why.into())),
        };
        probes.push(judge(source, result));
    }
    Ok(probes)
}

/// Tells the host which probe is under way (a probe may wait for Graph's limits or retry an
/// unreachable Graph: the wait is reported with it).
fn report_probe<D: Doors>(graph: &GraphClient<'_, D>, source: &Source) {
    let n = SOURCES
        .iter()
        .position(|s| s.name == source.name)
        .unwrap_or(0) as u64;
    graph.progress(connector_sdk::doors::Progress {
        phase: "check".into(),
        pages_done: n,
        pages_expected: Some(SOURCES.len() as u64),
        items_done: n,
        wait_ms: None,
        detail: format!(
            "probing {} ({}), probe {} of {}",
            source.name,
            source.permission,
            n + 1,
            SOURCES.len()
        ),
    });
}

fn judge(source: &Source, result: Result<(), GraphError>) -> Probe {
    let name = match source.licence {
        Some(licence) => format!("{} [{}; {licence}]", source.name, source.permission),
        None => format!("{} [{}]", source.name, source.permission),
    };
    let licence_gap = |e: &GraphError| {
        matches!(
            e.code(),
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant" | "AadPremiumLicenseRequired"
        )
    };
    match result {
        Ok(()) => Probe {
            name,
            ok: true,
            detail: "granted".into(),
        },
        Err(e) if licence_gap(&e) => Probe {
            name,
            ok: true,
            detail: format!(
                "warning: the tenant has no {} licence ({}): {}",
                source.licence.unwrap_or("premium"),
                e.code(),
                source.without
            ),
        },
        Err(e) => Probe {
            name,
            ok: false,
            detail: format!(
                "{e}; without it {}; grant the application permission {} and admin consent",
                source.without, source.permission
            ),
        },
    }
}
