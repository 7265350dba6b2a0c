//! The Graph server's front door: routing, bearer-token checks, fault rules, error bodies.
//!
//! Every request (and every `$batch` sub-request) goes through the same steps — classify the
//! endpoint, count it, let a fault rule answer, check the token, let the throttle answer,
//! dispatch to a handler — so counters, faults and throttling behave the same however a
//! request arrives. Handlers live in `users.rs`,
//! `relations.rs` and `batch.rs`; they return a [`Reply`] or a [`GraphError`], which is
//! rendered here in Graph's `{"error": {"code", "message", "innerError"}}` shape.

use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use crate::clock::{format_iso, now_secs};
use crate::reply::{GraphError, Reply};
use crate::server::{HttpRequest, Shared};
use crate::throttle::{ReportsKind, RetryAfter};
use crate::{batch, groups_delta, relations, roles, throttle, users, Endpoint};

/// Where a Graph request goes, with the ids taken from its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/v1.0/users`
    Users,
    /// `/v1.0/users/{id or userPrincipalName}`
    User(String),
    /// `/v1.0/users/delta`
    UsersDelta,
    /// `/v1.0/users/{id}/memberOf`
    MemberOf(String),
    /// `/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole`
    TransitiveRoles(String),
    /// `/v1.0/users/{id}/authentication/methods`
    AuthMethods(String),
    /// `/v1.0/groups`
    Groups,
    /// `/v1.0/directoryRoles`
    DirectoryRoles,
    /// `/v1.0/directoryRoles/{id}/members`
    DirectoryRoleMembers(String),
    /// `/v1.0/groups/{id}/members` (false) and
    /// `/v1.0/groups/{id}/transitiveMembers/microsoft.graph.user` (true: an OData cast)
    GroupMembers(String, bool),
    /// `/v1.0/groups/delta`
    GroupsDelta,
    /// `/v1.0/roleManagement/directory/roleDefinitions`
    RoleDefinitions,
    /// `/v1.0/roleManagement/directory/roleAssignments`
    RoleAssignments,
    /// `/v1.0/roleManagement/directory/roleEligibilityScheduleInstances`
    RoleEligibility,
    /// `/v1.0/reports/authenticationMethods/userRegistrationDetails`
    RegistrationDetails,
    /// `/v1.0/reports/authenticationMethods/userRegistrationDetails/{id}`
    RegistrationDetail(String),
    /// `/v1.0/$batch`
    Batch,
    /// Anything else under `/v1.0`.
    Unknown,
    /// Anything outside `/v1.0` (no token needed to be told it does not exist).
    Unversioned,
}

impl Route {
    /// Classifies a path as sent (percent-encoded); literal segments match in any case.
    pub(crate) fn parse(path: &str) -> Route {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let Some(("v1.0", rest)) = lower.split_first().map(|(v, r)| (*v, r)) else {
            return Route::Unversioned;
        };
        let id = |i: usize| segments[i + 1].clone();
        match rest {
            ["users"] => Route::Users,
            ["users", "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"] => {
                Route::UsersDelta
            }
            ["users", _] => Route::User(id(1)),
            ["users", _, "memberof"] => Route::MemberOf(id(1)),
            ["users", _, "transitivememberof", "microsoft.graph.directoryrole"] => {
                Route::TransitiveRoles(id(1))
            }
            ["users", _, "authentication", "methods"] => Route::AuthMethods(id(1)),
            ["groups"] => Route::Groups,
            ["groups", "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"] => {
                Route::GroupsDelta
            }
            ["groups", _, "members"] => Route::GroupMembers(id(1), false),
            ["groups", _, "transitivemembers", "microsoft.graph.user"] => {
                Route::GroupMembers(id(1), true)
            }
            ["rolemanagement", "directory", "roledefinitions"] => Route::RoleDefinitions,
            ["rolemanagement", "directory", "roleassignments"] => Route::RoleAssignments,
            ["rolemanagement", "directory", "roleeligibilityscheduleinstances"] => {
                Route::RoleEligibility
            }
            ["directoryroles"] => Route::DirectoryRoles,
            ["directoryroles", _, "members"] => Route::DirectoryRoleMembers(id(1)),
            ["reports", "authenticationmethods", "userregistrationdetails"] => {
                Route::RegistrationDetails
            }
            ["reports", "authenticationmethods", "userregistrationdetails", _] => {
                Route::RegistrationDetail(id(3))
            }
            ["$batch"] => Route::Batch,
            _ => Route::Unknown,
        }
    }

    /// Which Entra reports limit a request to this route counts against, if any: the
    /// registration report (list and by id), and `/users` or `/users/{id}` when `$select` or
    /// `$filter` names `signInActivity`. Source:
    /// <https://learn.microsoft.com/graph/throttling-limits#identity-and-access-reports-service-limits>
    /// (the reports resources, and "GET signInActivity").
    pub(crate) fn reports_kind(&self, request: &HttpRequest) -> Option<ReportsKind> {
        match self {
            Route::RegistrationDetails | Route::RegistrationDetail(_) => Some(ReportsKind::Report),
            Route::Users | Route::User(_) => {
                let raw = request.query.as_deref().unwrap_or("");
                form_urlencoded::parse(raw.as_bytes())
                    .any(|(name, value)| {
                        (name.eq_ignore_ascii_case("$select")
                            || name.eq_ignore_ascii_case("$filter"))
                            && value.to_ascii_lowercase().contains("signinactivity")
                    })
                    .then_some(ReportsKind::SignInActivity)
            }
            _ => None,
        }
    }

    /// The endpoint this route counts under.
    pub(crate) fn endpoint(&self) -> Endpoint {
        match self {
            Route::Users | Route::User(_) => Endpoint::Users,
            Route::UsersDelta => Endpoint::UsersDelta,
            Route::MemberOf(_) => Endpoint::MemberOf,
            Route::TransitiveRoles(_) => Endpoint::TransitiveRoles,
            Route::AuthMethods(_) => Endpoint::AuthMethods,
            Route::Groups => Endpoint::Groups,
            Route::DirectoryRoles => Endpoint::DirectoryRoles,
            Route::DirectoryRoleMembers(_) => Endpoint::DirectoryRoleMembers,
            Route::GroupMembers(..) => Endpoint::GroupMembers,
            Route::GroupsDelta => Endpoint::GroupsDelta,
            Route::RoleDefinitions => Endpoint::RoleDefinitions,
            Route::RoleAssignments => Endpoint::RoleAssignments,
            Route::RoleEligibility => Endpoint::RoleEligibilityScheduleInstances,
            Route::RegistrationDetails | Route::RegistrationDetail(_) => {
                Endpoint::RegistrationDetails
            }
            Route::Batch => Endpoint::Batch,
            Route::Unknown | Route::Unversioned => Endpoint::Other,
        }
    }
}

/// The ids and date every Graph answer carries, in its headers and in error bodies.
pub(crate) struct RequestIds {
    /// The server's id for this request.
    pub request_id: String,
    /// The client's `client-request-id`, or the request id when it sent none.
    pub client_request_id: String,
}

impl RequestIds {
    /// Fresh ids for a request.
    pub(crate) fn new(shared: &Shared, request: &HttpRequest) -> RequestIds {
        let request_id = shared.new_id("request");
        let client_request_id = request
            .header("client-request-id")
            .map_or_else(|| request_id.clone(), str::to_owned);
        RequestIds {
            request_id,
            client_request_id,
        }
    }

    /// Renders an error in Graph's shape.
    pub(crate) fn render(&self, error: GraphError) -> Reply {
        Reply::graph_json(
            error.status,
            json!({"error": {
                "code": error.code,
                "message": error.message,
                "innerError": {
                    "date": format_iso(now_secs()),
                    "request-id": self.request_id,
                    "client-request-id": self.client_request_id,
                }
            }}),
        )
    }

    /// Adds the id headers Graph sends with every answer.
    pub(crate) fn stamp(&self, reply: Reply) -> Reply {
        reply
            .with_header("request-id", self.request_id.clone())
            .with_header("client-request-id", self.client_request_id.clone())
    }
}

/// Answers one HTTP request to the Graph server.
pub(crate) fn handle(shared: &Shared, request: &HttpRequest) -> Reply {
    let ids = RequestIds::new(shared, request);
    let route = Route::parse(&request.path);
    shared.count(route.endpoint());
    let reply = if let Some(fault) = shared.fault(route.endpoint(), &request.target()) {
        fault
    } else if route == Route::Unversioned {
        ids.render(GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource not found for the segment '{}': this server serves /v1.0 only.",
                request.path
            ),
        ))
    } else {
        match authenticate(shared, request) {
            Err(error) => ids
                .render(error)
                .with_header("WWW-Authenticate", "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""),
            Ok(()) => match shared.throttled(route.endpoint()) {
                Some(retry_after) => throttle::answer(&ids, retry_after, shared.clock.wall_secs()),
                None => match route
                    .reports_kind(request)
                    .and_then(|kind| shared.reports_throttled(kind))
                {
                    Some(secs) => {
                        let wall = shared.clock.wall_secs();
                        throttle::answer(&ids, RetryAfter::Seconds(secs), wall)
                    }
                    None => dispatch(shared, &route, request, &ids),
                },
            },
        }
    };
    shared.note_status(reply.status);
    ids.stamp(reply)
}

/// Checks `Authorization: Bearer <token>` against the tokens the login server issued.
fn authenticate(shared: &Shared, request: &HttpRequest) -> Result<(), GraphError> {
    let header = request.header("authorization").unwrap_or("").trim();
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or("");
    if token.is_empty() {
        return Err(GraphError::new(
            401,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    }
    if !shared.token_valid(token) {
        return Err(GraphError::new(
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ));
    }
    Ok(())
}

/// Runs the handler of an authenticated request (direct or from a `$batch`).
pub(crate) fn dispatch(
    shared: &Shared,
    route: &Route,
    request: &HttpRequest,
    ids: &RequestIds,
) -> Reply {
    let expected = if *route == Route::Batch {
        "POST"
    } else {
        "GET"
    };
    if request.method != expected && *route != Route::Unknown {
        return ids.render(GraphError::new(
            405,
            "Request_BadRequest",
            format!(
                "Specified HTTP method '{}' is not allowed for the request target: use {expected}.",
                request.method
            ),
        ));
    }
    let outcome = match route {
        Route::Users => users::list(shared, request),
        Route::User(id) => users::get(shared, request, id),
        Route::UsersDelta => users::delta(shared, request),
        Route::MemberOf(id) => relations::member_of(shared, request, id),
        Route::TransitiveRoles(id) => relations::transitive_roles(shared, request, id),
        Route::AuthMethods(id) => relations::auth_methods(shared, request, id),
        Route::Groups => relations::groups(shared, request),
        Route::DirectoryRoles => relations::directory_roles(shared, request),
        Route::DirectoryRoleMembers(id) => relations::role_members(shared, request, id),
        Route::GroupMembers(id, cast) => relations::group_members(shared, request, id, *cast),
        Route::GroupsDelta => groups_delta::delta(shared, request),
        Route::RoleDefinitions => roles::role_definitions(shared, request),
        Route::RoleAssignments => roles::role_assignments(shared, request),
        Route::RoleEligibility => roles::role_eligibility(shared, request),
        Route::RegistrationDetails => relations::registration_details(shared, request),
        Route::RegistrationDetail(id) => relations::registration_detail(shared, request, id),
        Route::Batch => batch::handle(shared, request),
        // Microsoft Graph's errors page (<https://learn.microsoft.com/graph/errors>, "HTTP
        // status codes"): 404 Not Found, "the requested resource doesn't exist" — what a
        // client whose Graph base URL already ends in `/v1.0` meets (`/v1.0/v1.0/users`).
        Route::Unknown | Route::Unversioned => Err(GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource not found for the segment '{}'.",
                request
                    .path
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or("")
            ),
        )),
    };
    match outcome {
        Ok(reply) => reply,
        Err(error) => ids.render(error),
    }
}

/// A collection page: `@odata.context`, optional `@odata.count`, `value`, optional
/// `@odata.nextLink`.
pub(crate) fn collection(
    context: String,
    count: Option<usize>,
    value: Vec<Value>,
    next_link: Option<String>,
) -> Reply {
    let mut body = serde_json::Map::new();
    body.insert("@odata.context".into(), json!(context));
    if let Some(count) = count {
        body.insert("@odata.count".into(), json!(count));
    }
    body.insert("value".into(), Value::Array(value));
    if let Some(link) = next_link {
        body.insert("@odata.nextLink".into(), json!(link));
    }
    Reply::graph_json(200, Value::Object(body))
}

/// Whether the request carries `ConsistencyLevel: eventual`.
pub(crate) fn eventual(request: &HttpRequest) -> bool {
    request
        .header("consistencylevel")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        assert_eq!(Route::parse("/v1.0/users"), Route::Users);
        assert_eq!(Route::parse("/v1.0/Users/"), Route::Users);
        assert_eq!(Route::parse("/v1.0/users/delta"), Route::UsersDelta);
        assert_eq!(
            Route::parse("/v1.0/users/ab%23c/memberOf"),
            Route::MemberOf("ab#c".into())
        );
        assert_eq!(
            Route::parse("/v1.0/users/x/transitiveMemberOf/microsoft.graph.directoryRole"),
            Route::TransitiveRoles("x".into())
        );
        assert_eq!(Route::parse("/v1.0/$batch"), Route::Batch);
        assert_eq!(
            Route::parse("/v1.0/groups/g%201/members"),
            Route::GroupMembers("g 1".into(), false)
        );
        assert_eq!(
            Route::parse("/v1.0/groups/g/transitiveMembers/microsoft.graph.user"),
            Route::GroupMembers("g".into(), true)
        );
        assert_eq!(Route::parse("/v1.0/groups/delta"), Route::GroupsDelta);
        assert_eq!(
            Route::parse("/v1.0/groups/delta").endpoint(),
            Endpoint::GroupsDelta
        );
        assert_eq!(
            Route::parse("/v1.0/roleManagement/directory/roleEligibilityScheduleInstances")
                .endpoint(),
            Endpoint::RoleEligibilityScheduleInstances
        );
        assert_eq!(
            Route::parse("/v1.0/roleManagement/directory/roleAssignments"),
            Route::RoleAssignments
        );
        assert_eq!(
            Route::parse("/v1.0/groups/g/transitiveMembers"),
            Route::Unknown
        );
        assert_eq!(
            Route::parse("/v1.0/groups/g/members").endpoint(),
            Endpoint::GroupMembers
        );
        assert_eq!(
            Route::parse("/v1.0/reports/authenticationMethods/userRegistrationDetails/u1"),
            Route::RegistrationDetail("u1".into())
        );
        assert_eq!(
            Route::parse("/v1.0/reports/authenticationMethods/userRegistrationDetails/u1")
                .endpoint(),
            Endpoint::RegistrationDetails
        );
        assert_eq!(Route::parse("/v1.0/applications"), Route::Unknown);
        assert_eq!(Route::parse("/beta/users"), Route::Unversioned);
        assert_eq!(
            Route::parse("/v1.0/applications").endpoint(),
            Endpoint::Other
        );
    }
}
