//! What a handler answers, before it becomes an HTTP response or a `$batch` sub-response.
//!
//! Handlers never touch the HTTP library: they return a [`Reply`] (status, headers, JSON or raw body) or a
//! [`GraphError`]. The server turns a reply into an HTTP response; `$batch` turns it into one
//! entry of its `responses` array. One shape for both keeps batched and direct requests
//! answering alike.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

/// The `Content-Type` Graph sends with JSON bodies.
pub(crate) const GRAPH_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// The `Content-Type` the identity platform sends with JSON bodies.
pub(crate) const LOGIN_JSON: &str = "application/json; charset=utf-8";

/// A response body: JSON built by a handler, or text sent as is (fault rules).
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// A JSON document.
    Json(Value),
    /// Bytes sent verbatim, possibly not JSON at all.
    Text(String),
}

/// One answer to one request.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Headers besides `Content-Length`; includes `Content-Type`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl Reply {
    /// A JSON answer with Graph's content type.
    pub(crate) fn graph_json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), GRAPH_JSON.into())],
            body: Body::Json(body),
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Whether a header of this name (any case) is already set.
    pub(crate) fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The body as bytes on the wire.
    pub(crate) fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Json(value) => serde_json::to_vec(value).unwrap_or_default(),
            Body::Text(text) => text.as_bytes().to_vec(),
        }
    }
}

/// A Graph error before it is rendered with the request's ids:
/// `{"error": {"code", "message", "innerError"}}`.
#[derive(Clone, Debug)]
pub(crate) struct GraphError {
    /// HTTP status code.
    pub status: u16,
    /// Graph's error code, the value clients branch on.
    pub code: &'static str,
    /// The human-readable message.
    pub message: String,
}

impl GraphError {
    /// An error with any status and code.
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `BadRequest`: the request is malformed.
    pub(crate) fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "BadRequest", message)
    }

    /// 400 `Request_UnsupportedQuery`: a well-formed query Graph refuses.
    pub(crate) fn unsupported_query(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "Request_UnsupportedQuery", message)
    }

    /// 403 `Authorization_RequestDenied`: the app lacks every permission the endpoint accepts.
    /// The message is the one Graph's directory service sends.
    pub(crate) fn request_denied() -> GraphError {
        GraphError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// 403 `Authentication_MSGraphPermissionMissing`, what the Entra reports service answers
    /// without `AuditLog.Read.All` (seen for `$select=signInActivity` and the audit and
    /// reports endpoints: microsoftgraph/microsoft-graph-explorer-v4#2731,
    /// microsoftgraph/microsoft-graph-docs-contrib#8997).
    pub(crate) fn permission_missing(permission: &str) -> GraphError {
        GraphError::new(
            403,
            "Authentication_MSGraphPermissionMissing",
            format!("Calling principal does not have required MSGraph permissions {permission}"),
        )
    }

    /// 404 `Request_ResourceNotFound` for a directory object id.
    pub(crate) fn resource_not_found(id: &str) -> GraphError {
        GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
}

/// A Graph error code chosen at run time (e.g. by a test) as the `&'static str` a
/// [`GraphError`] carries. Each distinct code is stored once for the life of the process, so
/// repeated calls with the same code cost nothing more.
pub(crate) fn intern_code(code: &str) -> &'static str {
    static CODES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut codes = CODES.lock().unwrap_or_else(PoisonError::into_inner);
    let codes = codes.get_or_insert_with(HashSet::new);
    if let Some(known) = codes.get(code) {
        return known;
    }
    let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
    codes.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_codes_are_stored_once() {
        let a = intern_code("resyncRequired");
        let b = intern_code(&String::from("resyncRequired"));
        assert_eq!(a, "resyncRequired");
        assert!(std::ptr::eq(a, b));
    }
}
