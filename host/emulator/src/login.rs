//! The login server: the Microsoft identity platform's client-credentials token endpoint.
//!
//! The connector's first request of every run goes here, and its most common configuration
//! mistakes (wrong tenant, wrong application id, the secret's id pasted instead of its value,
//! a scope without `/.default`) surface here. Each answers with the `AADSTS` code and message
//! the real endpoint sends, so the connector's error messages can be tested against them.
//!
//! Sources: Microsoft Entra's error-code table,
//! <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>
//! (`identity-platform/reference-error-codes.md`, checked for AADSTS900561 "the endpoint only
//! accepts {valid_verbs} requests", AADSTS900144 "The request body must contain the following
//! parameter", AADSTS70003 UnsupportedGrantType, AADSTS700016 "The application wasn't found in
//! the directory"), and the error response of the client-credentials flow
//! (`identity-platform/v2-oauth2-client-creds-grant-flow.md`, "Error response": `error`,
//! `error_description`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`). AADSTS90002,
//! AADSTS70011, AADSTS7000215 and AADSTS7000216 were not found in the stored copy of that table;
//! their messages are the ones the endpoint answers (widely quoted in public issue threads).
//!
//! A request carrying `client_assertion_type`/`client_assertion` authenticates with a
//! certificate instead of the secret (the client-credentials flow's "second case: access token
//! request with a certificate"); `assertion.rs` verifies the assertion and cites its sources.

use serde_json::json;

use crate::clock::{format_login, now_secs};
use crate::reply::{Body, Reply, LOGIN_JSON};
use crate::server::{HttpRequest, Shared};
use crate::Endpoint;

/// Answers one request to the login server.
pub(crate) fn handle(shared: &Shared, request: &HttpRequest) -> Reply {
    let tenant = token_tenant(&request.path);
    let endpoint = if tenant.is_some() {
        Endpoint::Token
    } else {
        Endpoint::Other
    };
    shared.count(endpoint);
    if let Some(fault) = shared.fault(endpoint, &request.target()) {
        shared.note_status(fault.status);
        return fault;
    }
    let Some(tenant) = tenant else {
        return login_error(
            shared,
            404,
            "invalid_request",
            900_561,
            format!(
                "The endpoint '{}' does not exist: the token endpoint is /{{tenant}}/oauth2/v2.0/token.",
                request.path
            ),
        );
    };
    if request.method != "POST" {
        return login_error(
            shared,
            405,
            "invalid_request",
            900_561,
            format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                request.method
            ),
        );
    }
    let reply = token(shared, &tenant, request);
    if reply.status >= 400 && shared.echo_token_requests() {
        return echo_request(reply, request);
    }
    reply
}

/// Puts the request body as received, and its `client_secret` field decoded, in front of the
/// `error_description` of an error answer ([`crate::Emulator::set_echo_token_requests`]).
fn echo_request(mut reply: Reply, request: &HttpRequest) -> Reply {
    let body = String::from_utf8_lossy(&request.body).into_owned();
    let secret = form_urlencoded::parse(&request.body)
        .find(|(k, _)| k == "client_secret")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if let Body::Json(serde_json::Value::Object(map)) = &mut reply.body {
        if let Some(serde_json::Value::String(description)) = map.get_mut("error_description") {
            // First, so that a client showing only the start of the text shows the echo.
            *description = format!("Request body: {body} (client_secret: {secret}). {description}");
        }
    }
    reply
}

/// The tenant of a token endpoint path `/{tenant}/oauth2/v2.0/token` (percent-decoded), or
/// `None` for any other path.
pub(crate) fn token_tenant(path: &str) -> Option<String> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        [tenant, oauth, version, token]
            if oauth.eq_ignore_ascii_case("oauth2")
                && version.eq_ignore_ascii_case("v2.0")
                && token.eq_ignore_ascii_case("token") =>
        {
            Some(
                percent_encoding::percent_decode_str(tenant)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        }
        _ => None,
    }
}

/// The token request proper, checked in the order the identity platform reports problems.
fn token(shared: &Shared, tenant: &str, request: &HttpRequest) -> Reply {
    let config = &shared.config;
    if tenant != config.tenant_id {
        return login_error(
            shared,
            400,
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let missing = |name: &str| {
        login_error(
            shared,
            400,
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    let Some(grant_type) = field("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return login_error(
            shared,
            400,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let Some(client_id) = field("client_id") else {
        return missing("client_id");
    };
    if client_id != config.client_id {
        return login_error(
            shared,
            400,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    }
    match field("scope") {
        None => {
            return login_error(
                shared,
                400,
                "invalid_scope",
                70_011,
                "The provided request must include a 'scope' input parameter.".into(),
            )
        }
        Some(scope) if !scope.ends_with("/.default") => {
            return login_error(
                shared,
                400,
                "invalid_scope",
                70_011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. The scope format is invalid: a client credentials request must ask for '<resource>/.default'."
                ),
            )
        }
        Some(_) => {}
    }
    let assertion = field("client_assertion");
    let assertion_type = field("client_assertion_type");
    if assertion.is_some() || assertion_type.is_some() {
        // RFC 6749 section 2.3: "The client MUST NOT use more than one authentication method
        // in each request."
        if field("client_secret").is_some() {
            return login_error(
                shared,
                400,
                "invalid_request",
                90_023,
                "The authentication service request isn't valid: send either 'client_secret' or 'client_assertion', not both.".into(),
            );
        }
        let token_url = format!(
            "http://{}{}",
            request.header("host").unwrap_or_default(),
            request.path
        );
        if let Err(refusal) =
            shared.verify_assertion(client_id, &token_url, assertion_type, assertion)
        {
            return login_error(
                shared,
                refusal.status,
                refusal.error,
                refusal.code,
                refusal.message,
            );
        }
        return issued(shared);
    }
    let Some(secret) = field("client_secret") else {
        return login_error(
            shared,
            401,
            "invalid_client",
            7_000_216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.".into(),
        );
    };
    if secret != config.client_secret {
        return login_error(
            shared,
            401,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    issued(shared)
}

/// The answer of an accepted token request: a new access token.
fn issued(shared: &Shared) -> Reply {
    let lifetime = shared.config.token_lifetime_secs;
    Reply {
        status: 200,
        headers: vec![
            ("Content-Type".into(), LOGIN_JSON.into()),
            ("Cache-Control".into(), "no-store, no-cache".into()),
        ],
        body: Body::Json(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": shared.issue_token(),
        })),
    }
}

/// An identity-platform error body: `error`, `error_description` ("AADSTSnnnn: …" with the
/// trace and correlation ids), `error_codes`, `timestamp`, `trace_id`, `correlation_id`,
/// `error_uri`.
fn login_error(shared: &Shared, status: u16, error: &str, code: u32, message: String) -> Reply {
    let trace_id = shared.new_id("trace");
    let correlation_id = shared.new_id("correlation");
    let timestamp = format_login(now_secs());
    Reply {
        status,
        headers: vec![("Content-Type".into(), LOGIN_JSON.into())],
        body: Body::Json(json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    }
}
