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
use connector_sdk::doors::{Doors, FetchError};
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
        probes.push(judge(source, result, config));
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

fn judge(source: &Source, result: Result<(), GraphError>, config: &Config) -> Probe {
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
            detail: advice(source, &e, config),
        },
    }
}

/// Why a probe failed and what fixes it: one verdict per cause, never "grant the
/// permission" for an answer that says nothing about permissions. The verdict opens the
/// line (`egress refused:`, `wrong endpoint:`, `token refused:`, `permission missing:`,
/// `Graph failed:`, `not probed:`), as `connector-host check` documents.
///
/// Statuses as Microsoft Graph documents them (<https://learn.microsoft.com/graph/errors>,
/// "HTTP status codes"): 401 "required authentication information is either missing or
/// not valid for the resource" (a token, but not one for this Graph), 403 "access is denied
/// to the requested resource ... might not have enough permission or might not have a
/// required license" (licence gaps are told apart by their codes above), 404 "the requested
/// resource doesn't exist" (every probe reads a collection that exists in every tenant: the
/// base URL is wrong); Microsoft's "Resolve Microsoft Graph authorization errors"
/// (<https://learn.microsoft.com/graph/resolve-auth-errors>): 401 "is your token valid?",
/// 403 "have you chosen the right set of permissions?" (`Authorization_RequestDenied`).
fn advice(source: &Source, e: &GraphError, config: &Config) -> String {
    let endpoint_fix = || {
        let versioned = ["/v1.0", "/beta"]
            .iter()
            .find(|v| config.graph_endpoint.to_ascii_lowercase().ends_with(*v));
        match versioned {
            Some(v) => format!(
                "config key 'graph_endpoint' ends in '{v}': remove it (the connector adds /v1.0 itself; the value is the Graph base URL, e.g. https://graph.microsoft.com)"
            ),
            None => "set config key 'graph_endpoint' to the Graph base URL of the tenant's cloud without a path (e.g. https://graph.microsoft.com), or remove it to use the cloud's".to_string(),
        }
    };
    match e {
        GraphError::Fetch(FetchError::Denied(why)) => format!(
            "egress refused: the host did not send the request ({why}); add the Graph origin to [egress] allow, or remove allow to use the connector's own list"
        ),
        GraphError::Fetch(FetchError::Timeout | FetchError::Transport(_)) => format!(
            "Graph failed: no answer ({e}); check config key 'graph_endpoint' and the network path to it, then run check again"
        ),
        GraphError::Fetch(FetchError::TooLarge(_) | FetchError::BudgetExhausted) => format!(
            "host limit: {e}; raise the tenant's [limits] (max_response_bytes, max_requests)"
        ),
        GraphError::Malformed(why) if why.starts_with("not probed:") => why.clone(),
        GraphError::Malformed(why) => format!(
            "wrong endpoint: the answer is not Microsoft Graph's ({why}); {}",
            endpoint_fix()
        ),
        GraphError::Auth(m) => format!("token refused: {m}"),
        GraphError::Status { status: 404, .. } => {
            format!("wrong endpoint: Graph answered {e}; {}", endpoint_fix())
        }
        GraphError::Status { status: 401, .. } => format!(
            "token refused: Graph did not accept the access token ({e}); login_endpoint and graph_endpoint must be of one cloud (set cloud, or both endpoints)"
        ),
        GraphError::Status { status: 403, .. } => format!(
            "permission missing: {e}; without it {}; grant the application permission {} and admin consent",
            source.without, source.permission
        ),
        GraphError::Status { .. } => {
            format!("Graph failed: {e}; run check again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(graph: &str) -> Config {
        let pairs = [
            ("tenant_id", "contoso.onmicrosoft.com"),
            ("client_id", "00000000-0000-0000-0000-000000000001"),
            ("graph_endpoint", graph),
        ];
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(&pairs).unwrap()
    }

    fn status(status: u16, code: &str) -> GraphError {
        GraphError::Status {
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn each_failure_gets_its_own_verdict_and_only_a_403_asks_for_a_permission() {
        let users = &SOURCES[0];
        let plain = config("https://graph.microsoft.com");
        let versioned = config("https://graph.microsoft.com/v1.0/");
        let cases = [
            (
                GraphError::Fetch(FetchError::Denied("x is not in the allowlist".into())),
                &plain,
                "egress refused: the host did not send the request (x is not in the allowlist); add the Graph origin to [egress] allow",
            ),
            (
                status(404, "Request_ResourceNotFound"),
                &versioned,
                "wrong endpoint: Graph answered 404 Request_ResourceNotFound: m; config key 'graph_endpoint' ends in '/v1.0': remove it",
            ),
            (
                status(404, "Request_ResourceNotFound"),
                &plain,
                "wrong endpoint: Graph answered 404 Request_ResourceNotFound: m; set config key 'graph_endpoint' to the Graph base URL",
            ),
            (
                GraphError::Malformed("the body is not JSON".into()),
                &plain,
                "wrong endpoint: the answer is not Microsoft Graph's (the body is not JSON)",
            ),
            (
                status(401, "InvalidAuthenticationToken"),
                &plain,
                "token refused: Graph did not accept the access token",
            ),
            (
                status(503, "ServiceUnavailable"),
                &plain,
                "Graph failed: 503 ServiceUnavailable: m; run check again later",
            ),
            (
                GraphError::Fetch(FetchError::Transport("connection refused".into())),
                &plain,
                "Graph failed: no answer (transport error: connection refused); check config key 'graph_endpoint'",
            ),
        ];
        for (e, cfg, start) in cases {
            let detail = advice(users, &e, cfg);
            assert!(detail.starts_with(start), "{detail}");
            assert!(!detail.contains("grant"), "{detail}");
        }
        let detail = advice(users, &status(403, "Authorization_RequestDenied"), &plain);
        assert!(
            detail.starts_with("permission missing: 403 Authorization_RequestDenied: m")
                && detail
                    .ends_with("grant the application permission User.Read.All and admin consent"),
            "{detail}"
        );
    }
}
