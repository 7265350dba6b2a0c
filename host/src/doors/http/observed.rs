//! What one run's requests met, as the host saw it: the record `connector-host check` reads
//! to tell an egress refusal, a wrong endpoint, a refused credential and a missing
//! permission apart ([`crate::check`]) whatever the connector's own texts say.
//!
//! Provider-neutral: origins, HTTP statuses, the host's own refusals and whether the request
//! carried a secret the host filled in. Bounded: at most [`MAX_ENTRIES`] distinct entries of
//! each kind are kept (their counts go on); paths and query strings are never kept (they can
//! carry ids).

/// Most distinct entries of each kind an [`Observed`] keeps.
pub const MAX_ENTRIES: usize = 16;

/// A request the host's own policy refused before it left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The origin asked for (`<unparsable URL>` when there is none).
    pub origin: String,
    /// Which rule refused it (one line, the tenant's secrets scrubbed).
    pub reason: String,
    /// How many requests this refusal stopped.
    pub count: u64,
}

/// Answers of one status from one origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The origin.
    pub origin: String,
    /// The HTTP status.
    pub status: u16,
    /// Whether the request carried a secret the host filled in (a token request).
    pub carried_secret: bool,
    /// The OAuth 2.0 error code of a 4xx answering a filled secret (a token endpoint's
    /// `{"error": "…"}`, RFC 6749 §5.2), when it is one of [`OAUTH_ERRORS`]; never other text.
    pub oauth_error: Option<&'static str>,
    /// How many answers.
    pub count: u64,
}

/// The error codes of an OAuth 2.0 token endpoint's error answer (RFC 6749 §5.2), the only
/// body text [`Observed`] keeps.
pub const OAUTH_ERRORS: [&str; 6] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
];

/// The RFC 6749 §5.2 `error` code of a token endpoint's JSON error body, if it is one.
pub fn oauth_error_of(body: &[u8]) -> Option<&'static str> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = json.get("error")?.as_str()?;
    OAUTH_ERRORS.iter().copied().find(|c| *c == code)
}

/// A request that got no answer (connection refused, a timeout, a broken TLS handshake).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unanswered {
    /// The origin.
    pub origin: String,
    /// Why (one line, scrubbed).
    pub reason: String,
    /// How many requests.
    pub count: u64,
}

/// What one run's requests met: refusals by the host, error answers (4xx and 5xx) and every
/// answer to a request that carried a filled secret, and requests without an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Requests the host refused (egress policy, secret destinations, sizes, budget).
    pub denied: Vec<Denial>,
    /// Error answers, and every answer to a request that carried a filled secret.
    pub answered: Vec<Answered>,
    /// Requests that got no answer.
    pub unanswered: Vec<Unanswered>,
}

impl Observed {
    pub(crate) fn deny(&mut self, origin: &str, reason: &str) {
        let new = || Denial {
            origin: origin.to_string(),
            reason: reason.to_string(),
            count: 0,
        };
        if let Some(d) = bump(
            &mut self.denied,
            |d| d.origin == origin && d.reason == reason,
            new,
        ) {
            d.count += 1;
        }
    }

    /// Records an answer: kept when it is an error (4xx, 5xx) or answers a filled secret.
    #[cfg(test)]
    pub(crate) fn answer(&mut self, origin: &str, status: u16, carried_secret: bool) {
        self.answer_oauth(origin, status, carried_secret, None);
    }

    /// [`Observed::answer`] with the OAuth error code the answer's body named
    /// ([`oauth_error_of`]).
    pub(crate) fn answer_oauth(
        &mut self,
        origin: &str,
        status: u16,
        carried_secret: bool,
        oauth_error: Option<&'static str>,
    ) {
        if status < 400 && !carried_secret {
            return;
        }
        let new = || Answered {
            origin: origin.to_string(),
            status,
            carried_secret,
            oauth_error,
            count: 0,
        };
        if let Some(a) = bump(
            &mut self.answered,
            |a| {
                a.origin == origin
                    && a.status == status
                    && a.carried_secret == carried_secret
                    && a.oauth_error == oauth_error
            },
            new,
        ) {
            a.count += 1;
        }
    }

    pub(crate) fn unanswered(&mut self, origin: &str, reason: &str) {
        let new = || Unanswered {
            origin: origin.to_string(),
            reason: reason.to_string(),
            count: 0,
        };
        if let Some(u) = bump(
            &mut self.unanswered,
            |u| u.origin == origin && u.reason == reason,
            new,
        ) {
            u.count += 1;
        }
    }

    /// Whether any answer had `status` (a filled secret's answers included when `secret`).
    pub fn saw(&self, status: u16, secret: bool) -> bool {
        self.answered
            .iter()
            .any(|a| a.status == status && (secret || !a.carried_secret))
    }

    /// Whether a request carrying a filled secret was answered with a 4xx: the credentials
    /// were refused where they were sent. Not an `invalid_scope` answer: that token endpoint
    /// accepted the credentials and refused a scope not granted ([`Observed::scope_refused`]).
    pub fn secret_refused(&self) -> Option<&Answered> {
        self.answered.iter().find(|a| {
            a.carried_secret
                && (400..500).contains(&a.status)
                && a.oauth_error != Some("invalid_scope")
        })
    }

    /// Whether a token endpoint refused a scope the client asked for: RFC 6749 §5.2
    /// `invalid_scope`, "the requested scope is invalid, unknown, malformed, or exceeds the
    /// scope granted by the resource owner" (a permission not granted to the app).
    pub fn scope_refused(&self) -> Option<&Answered> {
        self.answered
            .iter()
            .find(|a| a.carried_secret && a.oauth_error == Some("invalid_scope"))
    }
}

/// The entry of `list` that `same` finds, or a `new` one when there is room (None: full).
fn bump<T>(
    list: &mut Vec<T>,
    same: impl Fn(&T) -> bool,
    new: impl FnOnce() -> T,
) -> Option<&mut T> {
    match list.iter().position(same) {
        Some(i) => list.get_mut(i),
        None if list.len() < MAX_ENTRIES => {
            list.push(new());
            list.last_mut()
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_counted_once_each_and_bounded() {
        let mut o = Observed::default();
        for _ in 0..3 {
            o.deny("https://graph.microsoft.com", "not allowed");
            o.answer("https://graph.microsoft.com", 404, false);
        }
        o.answer("https://graph.microsoft.com", 200, false);
        o.answer("https://login.microsoftonline.com", 200, true);
        assert_eq!(o.denied.len(), 1);
        assert_eq!(o.denied[0].count, 3);
        assert_eq!(
            o.answered.len(),
            2,
            "a 2xx is kept only when it answers a secret"
        );
        assert!(o.saw(404, false));
        assert!(o.secret_refused().is_none());
        o.answer("https://login.microsoftonline.com", 401, true);
        assert_eq!(o.secret_refused().map(|a| a.status), Some(401));
        assert!(!o.saw(401, false) && o.saw(401, true));
        for i in 0..100 {
            o.unanswered(&format!("https://h{i}.example"), "refused");
        }
        assert_eq!(o.unanswered.len(), MAX_ENTRIES);
    }
}
