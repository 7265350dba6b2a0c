//! What a handler answers, and Okta's error bodies.
//!
//! Okta's error object (developer.okta.com/docs/reference/error-codes/): every error carries
//! `errorCode` (`E0000…`), `errorSummary`, `errorLink` (the code again), `errorId` (a unique id
//! for Okta Support) and `errorCauses` (a list of `{errorSummary}`, possibly empty). The codes
//! used here, from that page:
//! - `E0000001` 400 API validation failed;
//! - `E0000011` 401 Invalid session (no credentials; the management spec's
//!   `ErrorInvalidSession` example, release 2026.06.3);
//! - `E0000006` 403 You do not have permission to perform the requested action;
//! - `E0000007` 404 Not found: Resource not found: {0} ({1});
//! - `E0000011` 401 Invalid token provided;
//! - `E0000022` 405 The endpoint does not support the provided HTTP method;
//! - `E0000047` 429 API call exceeded rate limit due to too many requests.
//!
//! OAuth 2.0 errors of the token endpoint are RFC 6749 §5.2 bodies (`error`,
//! `error_description`), as Okta's org authorization server answers them.

use serde_json::{json, Value};

/// Okta's content type for JSON answers.
pub(crate) const JSON: &str = "application/json";

/// One answer.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    /// A JSON answer.
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), JSON.into())],
            body,
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The first header of this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An Okta API error about to be answered.
#[derive(Clone, Debug)]
pub(crate) struct OktaError {
    pub status: u16,
    pub code: &'static str,
    pub summary: String,
    pub causes: Vec<String>,
    pub headers: Vec<(String, String)>,
}

impl OktaError {
    pub(crate) fn new(status: u16, code: &'static str, summary: impl Into<String>) -> OktaError {
        OktaError {
            status,
            code,
            summary: summary.into(),
            causes: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_cause(mut self, cause: impl Into<String>) -> OktaError {
        self.causes.push(cause.into());
        self
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> OktaError {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// 400 `E0000001`, naming what failed.
    pub(crate) fn validation(cause: impl Into<String>) -> OktaError {
        OktaError::new(400, "E0000001", "Api validation failed: request").with_cause(cause)
    }

    /// 400 `E0000001` for a `search` or `filter` the endpoint does not take (the error-codes
    /// page's general validation error; the spec documents no code of its own for it).
    pub(crate) fn search(cause: impl Into<String>) -> OktaError {
        OktaError::new(400, "E0000001", "Api validation failed: search").with_cause(cause)
    }

    /// 404 `E0000007` for a resource of `kind` (`User`, `UserGroup`, …).
    pub(crate) fn not_found(id: &str, kind: &str) -> OktaError {
        OktaError::new(
            404,
            "E0000007",
            format!("Not found: Resource not found: {id} ({kind})"),
        )
    }

    /// 401 `E0000011`.
    pub(crate) fn invalid_token() -> OktaError {
        OktaError::new(401, "E0000011", "Invalid token provided")
    }

    /// 401 `E0000011` "Invalid session" (the spec's `ErrorInvalidSession` example, answered
    /// when no credentials come with a request).
    pub(crate) fn no_session() -> OktaError {
        OktaError::new(401, "E0000011", "Invalid session")
    }

    /// 403 `E0000006`.
    pub(crate) fn forbidden() -> OktaError {
        OktaError::new(
            403,
            "E0000006",
            "You do not have permission to perform the requested action",
        )
    }

    /// 429 `E0000047`.
    pub(crate) fn rate_limited() -> OktaError {
        OktaError::new(
            429,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )
    }

    /// The answer, with a fresh `errorId`.
    pub(crate) fn into_reply(self, error_id: String) -> Reply {
        let causes: Vec<Value> = self
            .causes
            .iter()
            .map(|c| json!({"errorSummary": c}))
            .collect();
        let mut reply = Reply::json(
            self.status,
            json!({
                "errorCode": self.code,
                "errorSummary": self.summary,
                "errorLink": self.code,
                "errorId": error_id,
                "errorCauses": causes,
            }),
        );
        reply.headers.extend(self.headers);
        reply
    }
}

/// An RFC 6749 §5.2 error of the token endpoint.
pub(crate) fn oauth_error(status: u16, error: &str, description: impl Into<String>) -> Reply {
    Reply::json(
        status,
        json!({"error": error, "error_description": description.into()}),
    )
}
