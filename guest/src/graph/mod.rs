//! The Microsoft Graph client, written over the `http-fetch` door.
//!
//! It owns the token (client credentials, renewed before it expires and when Graph says
//! 401), retries (429/503/504 honouring `Retry-After`, transport errors with backoff, a
//! per-run budget, a pause of the whole tenant when Graph throttles), concurrent fetches
//! through `fetch-all`, JSON batching (`batch.rs`), and paging (`@odata.nextLink` followed
//! verbatim, never off the Graph host). Every body it receives is read by `intake.rs`: one
//! malformed value costs that value (mended, counted and named), a malformed envelope is an
//! error of that request, never an empty page. It knows
//! nothing about users or OCSF: `sync/` and `enrich.rs` decide what to ask for.

mod batch;
mod encode;
pub mod intake;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use serde_json::Value;

use crate::config::{Config, Credential, CLIENT_CERTIFICATE, CLIENT_SECRET};
pub use batch::SubGet;
use connector_sdk::doors::{Doors, FetchError, HttpRequest, HttpResponse, Progress};
use connector_sdk::error::ConnectorError;
pub(crate) use connector_sdk::paging::first_line;
use connector_sdk::paging::{self, Listed, Trail};
use connector_sdk::retry;
pub use connector_sdk::retry::RetryPolicy;
pub use encode::{is_usable_id, odata_string, path_segment};

/// Why one Graph request failed after retries.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphError {
    /// Graph answered with an error status.
    Status {
        /// HTTP status.
        status: u16,
        /// Graph's `error.code` (empty when the body had none).
        code: String,
        /// Graph's `error.message`, one line.
        message: String,
    },
    /// The request got no response.
    Fetch(FetchError),
    /// A 2xx response whose body is not the JSON Graph promises.
    Malformed(String),
    /// No token: the login host refused the credentials (AADSTS message).
    Auth(String),
}

impl GraphError {
    /// Whether the failure is one a later run may not meet (no response, a timeout, a spent
    /// budget, throttling or a server error after the retries, no token): a resumable walk
    /// stops there and the next run reads the same page, instead of giving the source up for
    /// the whole walk as it does for a refusal or an unusable answer.
    pub fn is_passing(&self) -> bool {
        match self {
            GraphError::Fetch(_) | GraphError::Auth(_) => true,
            GraphError::Status { status, .. } => *status == 429 || *status >= 500,
            GraphError::Malformed(_) => false,
        }
    }

    /// Graph's error code, if any.
    pub fn code(&self) -> &str {
        match self {
            GraphError::Status { code, .. } => code,
            _ => "",
        }
    }

    /// HTTP status, if Graph answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Turns this failure of `what` into the run's error.
    pub fn into_connector(self, what: &str) -> ConnectorError {
        match self {
            GraphError::Auth(m) => ConnectorError::Auth(m),
            GraphError::Fetch(e) => ConnectorError::from_fetch("Microsoft Graph", what, &e),
            GraphError::Malformed(m) => ConnectorError::Upstream(format!(
                "{what}: unusable response ({m}); run again later"
            )),
            GraphError::Status {
                status,
                code,
                message,
            } => match status {
                401 | 403 => ConnectorError::Permission(format!(
                    "{what}: {status} {code}: {message}; grant the app the permission and admin consent"
                )),
                _ => ConnectorError::Upstream(format!(
                    "{what}: {status} {code}: {message}; run again later"
                )),
            },
        }
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Status {
                status,
                code,
                message,
            } => write!(f, "{status} {code}: {message}"),
            GraphError::Fetch(e) => write!(f, "{e}"),
            GraphError::Malformed(m) => write!(f, "unusable response: {m}"),
            GraphError::Auth(m) => write!(f, "{m}"),
        }
    }
}

/// Whether `e` is Graph refusing an optional read for a missing licence or permission, and
/// if so what to tell the operator. Codes: `Authentication_RequestFromNonPremiumTenantOrB2CTenant`
/// (no Entra ID P1/P2), `Authentication_MSGraphPermissionMissing` (e.g. no `AuditLog.Read.All`
/// for `signInActivity`), `Authorization_RequestDenied` (a permission not granted), and
/// `AadPremiumLicenseRequired` (PIM without P2, seen as 400) — `docs/GRAPH.md`,
/// "Listing users" and "Roles".
pub fn refusal(e: &GraphError) -> Option<&'static str> {
    match (e.status()?, e.code()) {
        (403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant") => {
            Some("the tenant has no Entra ID P1/P2 licence")
        }
        (403, "Authentication_MSGraphPermissionMissing") => {
            Some("the app lacks the permission Graph names")
        }
        (403, "Authorization_RequestDenied") => Some("the app lacks a permission"),
        (400 | 403, "AadPremiumLicenseRequired") => Some("the tenant has no Entra ID P2 licence"),
        _ => None,
    }
}

/// Whether `e` is Graph refusing a premium-only or permission-gated read.
pub fn is_not_licensed(e: &GraphError) -> bool {
    refusal(e).is_some()
}

/// One Graph GET: absolute URL plus extra headers (re-sent on every page).
#[derive(Clone, Debug, PartialEq)]
pub struct GraphGet {
    /// Absolute URL.
    pub url: String,
    /// Extra headers, e.g. `ConsistencyLevel: eventual`.
    pub headers: Vec<(String, String)>,
}

impl GraphGet {
    /// A GET without extra headers.
    pub fn new(url: impl Into<String>) -> Self {
        GraphGet {
            url: url.into(),
            headers: Vec::new(),
        }
    }

    /// A GET that is an advanced query (`ConsistencyLevel: eventual`).
    pub fn eventual(url: impl Into<String>) -> Self {
        GraphGet {
            url: url.into(),
            headers: vec![("ConsistencyLevel".into(), "eventual".into())],
        }
    }
}

/// A wait as the operator reads it: `8 s`, `1.5 s`.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) || ms >= 10_000 {
        format!("{} s", ms.div_ceil(1000))
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A Graph session for one run of one tenant.
///
/// Throttling is handled tenant-wide: when any request (or `$batch` item) is answered 429,
/// 503 or 504, every later request of the run waits until the pause it asked for has passed,
/// because Graph's limits are per app per tenant and hammering on only makes them longer.
/// Retries are counted against a per-run budget so a tenant that throttles forever ends the
/// run with a clear error instead of holding a slot.
pub struct GraphClient<'a, D: Doors> {
    doors: &'a D,
    config: &'a Config,
    policy: RetryPolicy,
    token: RefCell<Option<Token>>,
    token_generation: Cell<u32>,
    requests: Cell<u64>,
    /// Retries left in this run.
    retries_left: Cell<u64>,
    /// Retries spent (reported).
    retries: Cell<u64>,
    /// Requests wait until this time (ms since the epoch) after a throttled answer.
    paused_until: Cell<i64>,
    /// Most requests handed to one `fetch-all`.
    max_in_flight: usize,
    /// When the reports-class requests of each window of [`REPORTS_LIMITS`] were sent (ms).
    reports_sent: [RefCell<VecDeque<i64>>; 2],
    /// Malformed values mended in this run's bodies (`intake.rs`).
    mended: RefCell<MendLog>,
    /// Users the tenant is known to have at least (bounds per-user listings; 0: unknown).
    users_hint: Cell<u64>,
    /// Where the run stands, as last reported ([`GraphClient::progress`]): what a wait's
    /// report adds its reason to.
    standing: RefCell<Option<Progress>>,
    /// Why the tenant is paused (`paused_until`), as the operator reads it.
    pause_why: RefCell<String>,
}

/// Waits at least this long are reported (WIT `log.progress`) with their reason before the
/// client sleeps, so a live line or a log never sits still without saying why.
pub const REPORT_WAITS_FROM_MS: u64 = 1_000;

/// Why a reports-class request waits, per window of [`REPORTS_LIMITS`], as the operator reads
/// it: Graph's documented figures (Microsoft Graph "service-specific throttling limits",
/// identity and access reports; `docs/GRAPH.md`, "Errors and throttling").
pub const REPORTS_LIMIT_WHY: [&str; 2] = [
    "Graph's reports limit: 5 requests per 10 s per app and tenant",
    "Graph's sign-in activity limit: 10 requests per minute per app and tenant",
];

/// Malformed values Graph sent in one run, mended (`intake.rs`): counted, the first records
/// named.
#[derive(Debug, Default)]
struct MendLog {
    values: u64,
    records: u64,
    /// The first [`MAX_NAMED_MENDS`] records: `'id' (path)`.
    named: Vec<String>,
}

/// Records with mended values named one by one (in the log and the run's warning).
const MAX_NAMED_MENDS: usize = 10;

/// Graph's Entra reports limits, per app per tenant, `$batch` items included (Microsoft Graph
/// "service-specific throttling limits", identity and access reports: "Any: 5 requests per 10
/// seconds", and "GET signInActivity: 10 requests per minute"; `docs/GRAPH.md`,
/// "Errors and throttling"). The client paces itself below them instead of collecting 429s:
/// every reports-class request takes a slot of the first window, and those that read
/// `signInActivity` a slot of the second as well. Each window has a margin for clock skew
/// between us and Graph.
pub const REPORTS_LIMITS: [(usize, i64); 2] = [(5, 10_000 + 250), (10, 60_000 + 500)];
/// The first limit's count and window, for tests and documentation.
pub const REPORTS_LIMIT: usize = REPORTS_LIMITS[0].0;
/// The first limit's window (ms, margin included).
pub const REPORTS_WINDOW_MS: i64 = REPORTS_LIMITS[0].1;

/// Whether a URL selects or filters on `signInActivity` (the second reports limit).
pub fn is_sign_in_class(url: &str) -> bool {
    url.to_ascii_lowercase().contains("signinactivity")
}

/// Whether a request falls under the reports limit: the authentication-methods reports, or
/// any query that selects or filters on `signInActivity`.
pub fn is_reports_class(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let path = lower.split('?').next().unwrap_or("");
    path.contains("/reports/") || lower.contains("signinactivity")
}

/// An access token and when to stop using it.
#[derive(Clone, Debug)]
struct Token {
    value: String,
    /// Renew at or after this time (ms): a minute before Graph's `expires_in` runs out.
    renew_at_ms: i64,
}

/// One outgoing request before the token is added.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Requests Graph counts for it: 1, or the number of items of a `$batch`.
    pub weight: u64,
    /// How many of those fall under the reports limits.
    pub reports: usize,
    /// How many of those read `signInActivity` (the second reports limit).
    pub sign_in: usize,
}

impl From<&GraphGet> for Outgoing {
    fn from(g: &GraphGet) -> Self {
        Outgoing {
            method: "GET",
            url: g.url.clone(),
            headers: g.headers.clone(),
            body: None,
            weight: 1,
            reports: usize::from(is_reports_class(&g.url)),
            sign_in: usize::from(is_sign_in_class(&g.url)),
        }
    }
}

impl<'a, D: Doors> GraphClient<'a, D> {
    /// A client with no token yet.
    pub fn new(doors: &'a D, config: &'a Config) -> Self {
        GraphClient {
            doors,
            config,
            policy: RetryPolicy::default(),
            token: RefCell::new(None),
            token_generation: Cell::new(0),
            requests: Cell::new(0),
            retries_left: Cell::new(config.retry_budget),
            retries: Cell::new(0),
            paused_until: Cell::new(0),
            max_in_flight: 64,
            reports_sent: Default::default(),
            mended: RefCell::default(),
            users_hint: Cell::new(0),
            standing: RefCell::new(None),
            pause_why: RefCell::new(String::new()),
        }
    }

    /// Reads the body of a 2xx answer to `url` (`intake.rs`): mended, its top-level keys all
    /// different; the mends are counted and named.
    pub(crate) fn decode(&self, url: &str, body: &[u8]) -> Result<Value, GraphError> {
        let decoded =
            intake::decode(body).map_err(|e| GraphError::Malformed(format!("the body {e}")))?;
        self.note_mended(url, &decoded.mended);
        Ok(decoded.value)
    }

    /// Counts the mends of one body from `url`, and names (in a warning) the records holding
    /// them, up to [`MAX_NAMED_MENDS`] a run.
    pub(crate) fn note_mended(&self, url: &str, mended: &[intake::Mend]) {
        if mended.is_empty() {
            return;
        }
        let path = url
            .strip_prefix(self.config.graph_endpoint.as_str())
            .unwrap_or(url)
            .split('?')
            .next()
            .unwrap_or("");
        let mut log = self.mended.borrow_mut();
        for m in mended {
            log.values = log.values.saturating_add(m.values as u64);
            log.records = log.records.saturating_add(1);
            if log.named.len() < MAX_NAMED_MENDS {
                let record = m
                    .record
                    .as_deref()
                    .map_or_else(|| "a record without an id".to_string(), intake::quote);
                let named = format!("{record} ({})", intake::quote(path));
                self.doors.log(
                    connector_sdk::doors::Level::Warn,
                    &format!(
                        "Graph sent {} malformed value(s) in {named}: replaced with U+FFFD (null for a number or nesting out of range); the rest of the record is kept",
                        m.values
                    ),
                );
                log.named.push(named);
            }
        }
    }

    /// Malformed values mended in this run's bodies, and the run's warning about them (None
    /// when there were none).
    pub fn mended(&self) -> (u64, Option<String>) {
        let log = self.mended.borrow();
        if log.values == 0 {
            return (0, None);
        }
        let more = log.records.saturating_sub(log.named.len() as u64);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        (
            log.values,
            Some(format!(
                "Graph sent {} malformed value(s) (a lone surrogate, control character, bad escape or non-UTF-8 text; a number or nesting out of range) in {} record(s): each replaced with U+FFFD (null for a number or nesting) and the records delivered: {}{more}",
                log.values,
                log.records,
                log.named.join(", ")
            )),
        )
    }

    /// How long until one more reports-class request (reading `signInActivity` when
    /// `sign_in`) fits in the reports limits' windows, ms; 0 when it fits now. A walk reads
    /// sources outside those limits in the meantime (`sync/staged.rs`).
    pub fn reports_wait_ms(&self, sign_in: bool) -> i64 {
        self.reports_wait(1, usize::from(sign_in))
    }

    /// How long until `n` more reports-class requests (of which `sign_in` read
    /// `signInActivity`) fit in the reports limits' windows; 0 when they fit now.
    fn reports_wait(&self, n: usize, sign_in: usize) -> i64 {
        self.reports_wait_why(n, sign_in).0
    }

    /// [`Self::reports_wait`] and the window of [`REPORTS_LIMITS`] that imposes it.
    fn reports_wait_why(&self, n: usize, sign_in: usize) -> (i64, usize) {
        let now = self.doors.now_ms();
        let mut wait = 0i64;
        let mut why = 0usize;
        for (w, (limit, window)) in REPORTS_LIMITS.iter().enumerate() {
            let wanted = if w == 0 { n } else { sign_in };
            if wanted == 0 {
                continue;
            }
            let mut sent = self.reports_sent[w].borrow_mut();
            while sent.front().is_some_and(|t| *t <= now - window) {
                sent.pop_front();
            }
            // A request bigger than the limit (never built) waits for an empty window.
            let room = (*limit).saturating_sub(wanted.min(*limit));
            if sent.len() > room {
                let this = sent[sent.len() - room - 1] + window - now;
                if this > wait {
                    (wait, why) = (this, w);
                }
            }
        }
        (wait, why)
    }

    /// Books `n` reports-class requests (`sign_in` of them reading `signInActivity`) now.
    fn book_reports(&self, n: usize, sign_in: usize) {
        let now = self.doors.now_ms();
        for (w, count) in [n, sign_in].into_iter().enumerate() {
            let mut sent = self.reports_sent[w].borrow_mut();
            sent.extend(std::iter::repeat_n(now, count));
        }
    }

    /// Of `pending` requests, those that may go now: every request outside the reports
    /// limits, and reports-class ones while their slots last (booked). When none may go, waits
    /// for the first slot. The rest wait for a later pass.
    fn admit<T: Copy>(
        &self,
        pending: Vec<T>,
        outgoing: impl Fn(&T) -> (usize, usize),
    ) -> (Vec<T>, Vec<T>) {
        let mut now_ = Vec::with_capacity(pending.len());
        let mut later = Vec::new();
        for item in pending {
            let (n, sign_in) = outgoing(&item);
            if n == 0 || (later.is_empty() && self.reports_wait(n, sign_in) <= 0) {
                if n > 0 {
                    self.book_reports(n, sign_in);
                }
                now_.push(item);
            } else {
                later.push(item);
            }
        }
        if now_.is_empty() {
            if let Some(first) = later.first().copied() {
                let (n, sign_in) = outgoing(&first);
                loop {
                    let (wait, why) = self.reports_wait_why(n, sign_in);
                    if wait <= 0 {
                        break;
                    }
                    self.report_wait(wait as u64, REPORTS_LIMIT_WHY[why]);
                    self.doors.sleep_ms(wait as u64);
                }
                self.book_reports(n, sign_in);
                now_.push(later.remove(0));
            }
        }
        (now_, later)
    }

    /// When the reports-class requests still inside each window were sent (ms), oldest first:
    /// what a later run needs to keep pacing (Graph's windows do not restart with a run).
    pub fn reports_history(&self) -> [Vec<i64>; 2] {
        let now = self.doors.now_ms();
        let mut out: [Vec<i64>; 2] = Default::default();
        for (w, (_, window)) in REPORTS_LIMITS.iter().enumerate() {
            out[w] = self.reports_sent[w]
                .borrow()
                .iter()
                .copied()
                .filter(|t| *t > now - window)
                .collect();
        }
        out
    }

    /// Takes over the reports-class requests an earlier run of this tenant sent (from its
    /// cursor), so this run paces from where that one left off.
    pub fn remember_reports(&self, history: &[Vec<i64>; 2]) {
        let now = self.doors.now_ms();
        for (w, (_, window)) in REPORTS_LIMITS.iter().enumerate() {
            let mut sent = self.reports_sent[w].borrow_mut();
            let mut merged: Vec<i64> = history[w]
                .iter()
                .copied()
                .filter(|t| *t > now - window && *t <= now)
                .chain(sent.iter().copied())
                .collect();
            merged.sort_unstable();
            *sent = merged.into();
        }
    }

    /// Requests Graph counts so far: token requests and retries included, and every item of
    /// a `$batch` counted on its own, as Graph's limits count them.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// Retries spent so far.
    pub fn retries(&self) -> u64 {
        self.retries.get()
    }

    /// The run's configuration.
    pub fn config(&self) -> &Config {
        self.config
    }

    /// The doors this client talks through.
    pub fn doors(&self) -> &D {
        self.doors
    }

    /// Writes a log line through the host.
    pub fn log(&self, level: connector_sdk::doors::Level, message: &str) {
        self.doors.log(level, message);
    }

    /// Takes one retry from the run's budget; false when it is spent.
    pub(crate) fn take_retry(&self, attempt: u32) -> bool {
        if attempt + 1 >= self.policy.max_attempts {
            return false;
        }
        let left = self.retries_left.get();
        if left == 0 {
            return false;
        }
        self.retries_left.set(left - 1);
        self.retries.set(self.retries.get() + 1);
        true
    }

    /// The error for a request that is still throttled when no retry is left.
    pub(crate) fn out_of_retries(&self, last: GraphError) -> GraphError {
        if self.retries_left.get() == 0 {
            if let GraphError::Status {
                status,
                code,
                message,
            } = last
            {
                return GraphError::Status {
                    status,
                    code,
                    message: format!(
                        "{message} (the run's retry budget of {} is spent: Graph kept throttling this tenant; raise retry_budget or run later)",
                        self.config.retry_budget
                    ),
                };
            }
        }
        last
    }

    /// Graph asked this tenant to wait `wait_ms`: every request of the run pauses that long.
    pub(crate) fn pause_tenant(&self, wait_ms: u64, why: &str) {
        let until = self.doors.now_ms().saturating_add(wait_ms as i64);
        if until > self.paused_until.get() {
            self.paused_until.set(until);
            // Graph's throttling guidance: wait what Retry-After says (docs/GRAPH.md,
            // "Errors and throttling"); `why` is the answer ("answered 429").
            *self.pause_why.borrow_mut() = format!(
                "Graph's throttling ({why}; Retry-After or backoff: {})",
                seconds(wait_ms)
            );
            self.doors.log(
                connector_sdk::doors::Level::Info,
                &format!("Graph {why}: pausing this tenant's requests for {wait_ms} ms"),
            );
        }
    }

    /// Sleeps until the tenant's pause is over, and at least `at_least_ms`.
    pub(crate) fn wait(&self, at_least_ms: u64) {
        let paused = (self.paused_until.get() - self.doors.now_ms()).max(0) as u64;
        let wait = paused.max(at_least_ms);
        if wait > 0 {
            if paused >= at_least_ms {
                let why = self.pause_why.borrow().clone();
                self.report_wait(wait, &why);
            } else {
                self.report_wait(wait, "a retry after Graph could not be reached (backoff)");
            }
            self.doors.sleep_ms(wait);
        }
    }

    /// Reports where the run stands (WIT `log.progress`) and keeps it: a later wait reports
    /// it again with the wait's reason.
    pub fn progress(&self, p: Progress) {
        self.doors.progress(&p);
        *self.standing.borrow_mut() = Some(p);
    }

    /// Reports a wait of `wait_ms` before the client sleeps, with its reason `why`, on top of
    /// where the run stands: `waiting 8 s for Graph's reports limit: 5 requests per 10 s per
    /// app and tenant; full walk: registration report page 3 of ~20`. Short waits (under
    /// [`REPORT_WAITS_FROM_MS`]) are not reported.
    fn report_wait(&self, wait_ms: u64, why: &str) {
        if wait_ms < REPORT_WAITS_FROM_MS {
            return;
        }
        let standing = self.standing.borrow().clone().unwrap_or_else(|| Progress {
            phase: "starting".into(),
            pages_done: 0,
            pages_expected: None,
            items_done: 0,
            wait_ms: None,
            detail: String::new(),
        });
        let mut detail = format!("waiting {} for {why}", seconds(wait_ms));
        if !standing.detail.is_empty() {
            detail.push_str("; ");
            detail.push_str(&standing.detail);
        }
        self.doors.progress(&Progress {
            wait_ms: Some(standing.wait_ms.unwrap_or(0).max(wait_ms)),
            detail,
            ..standing
        });
    }

    /// The wait a retryable answer asks for, honouring `Retry-After` (seconds or a date).
    pub(crate) fn retry_wait(&self, attempt: u32, resp: Option<&HttpResponse>) -> u64 {
        retry::wait_ms(&self.policy, attempt, resp, self.doors.now_ms())
    }

    /// Acquires a token if none is held or the one held is about to expire. The credential is a
    /// placeholder the host fills in: the client secret, or the client assertion it signs.
    pub fn ensure_token(&self) -> Result<String, GraphError> {
        if let Some(t) = self.token.borrow().as_ref() {
            if self.doors.now_ms() < t.renew_at_ms {
                return Ok(t.value.clone());
            }
            self.doors.log(
                connector_sdk::doors::Level::Info,
                "the access token expires within a minute: renewing it",
            );
        }
        let cfg = self.config;
        let scope = format!("{}/.default", cfg.graph_endpoint);
        let mut fields = vec![
            ("grant_type", "client_credentials"),
            ("client_id", cfg.client_id.as_str()),
            ("scope", scope.as_str()),
        ];
        // The placeholder goes in as it is (not form-encoded): the host fills it in a form
        // field only, and encodes the value there itself.
        let placeholder = match cfg.credential {
            Credential::Secret => format!("&client_secret={{{{secret:{CLIENT_SECRET}}}}}"),
            // The client-credentials flow's "second case: access token request with a
            // certificate" (Entra v2-oauth2-client-creds-grant-flow.md; certificate-credentials.md,
            // "Using a client assertion": the fixed client_assertion_type). The host signs the
            // assertion for this request's URL (aud); the key never enters the connector.
            Credential::Certificate => {
                fields.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
                format!("&client_assertion={{{{assertion:{CLIENT_CERTIFICATE}}}}}")
            }
        };
        let mut body = encode::form_body(fields);
        body.push_str(&placeholder);
        let req = HttpRequest {
            method: "POST".into(),
            url: cfg.token_url(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: Some(body.into_bytes()),
        };
        let mut attempt = 0u32;
        let resp = loop {
            self.wait(0);
            self.requests.set(self.requests.get() + 1);
            match self.doors.fetch(req.clone()) {
                Ok(r) if retry::is_retryable_status(r.status) && self.take_retry(attempt) => {
                    let wait = self.retry_wait(attempt, Some(&r));
                    self.pause_tenant(wait, &format!("login answered {}", r.status));
                }
                Ok(r) => break r,
                Err(FetchError::Timeout | FetchError::Transport(_)) if self.take_retry(attempt) => {
                    self.wait(self.retry_wait(attempt, None));
                }
                Err(e) => return Err(GraphError::Fetch(e)),
            }
            attempt += 1;
        };
        let body: Value = intake::decode(&resp.body)
            .map(|d| d.value)
            .unwrap_or(Value::Null);
        if resp.status == 200 {
            if let Some(tok) = body.get("access_token").and_then(Value::as_str) {
                let lifetime_s = body
                    .get("expires_in")
                    .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                    .unwrap_or(3599)
                    .clamp(0, 86_400);
                let renew_at_ms = self.doors.now_ms() + (lifetime_s - 60).max(0) * 1000;
                *self.token.borrow_mut() = Some(Token {
                    value: tok.to_string(),
                    renew_at_ms,
                });
                self.token_generation.set(self.token_generation.get() + 1);
                return Ok(tok.to_string());
            }
            return Err(GraphError::Malformed(
                "the token response has no access_token".into(),
            ));
        }
        let error = body.get("error").and_then(Value::as_str).unwrap_or("");
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .map(first_line)
            .unwrap_or_default();
        if cfg.credential == Credential::Certificate && resp.status != 404 {
            if let Some(hint) = assertion_hint(&description) {
                return Err(GraphError::Auth(format!(
                    "tenant '{}' refused the client assertion: {hint} (Entra said {error}: {description})",
                    cfg.tenant_id
                )));
            }
        }
        let hint = match error {
            // A 404 is no answer about the credentials: nothing takes token requests at that
            // path (the identity platform's AADSTS900561 "the endpoint only accepts ..."
            // family; Microsoft Graph's errors page: 404 "the requested resource doesn't
            // exist"). The login base URL is then wrong.
            _ if resp.status == 404 => {
                "nothing takes token requests there: set config key 'login_endpoint' to the login base URL of the tenant's cloud without a path (e.g. https://login.microsoftonline.com), or remove it"
            }
            "invalid_client" if cfg.credential == Credential::Certificate => {
                "check the certificate uploaded to the app registration and [secrets.client_certificate] (file, certificate, client_id)"
            }
            "invalid_client" => {
                "check the client secret value (not its id) and that it has not expired"
            }
            "unauthorized_client" => "check client_id and that the app is consented in this tenant",
            "invalid_request" if description.contains("AADSTS90002") => "check tenant_id and cloud",
            "invalid_scope" => "check graph_endpoint / cloud",
            _ if cfg.credential == Credential::Certificate => {
                "check tenant_id, client_id and [secrets.client_certificate]"
            }
            _ => "check tenant_id, client_id and the client secret",
        };
        if error.is_empty() {
            return Err(GraphError::Auth(format!(
                "the token endpoint of tenant '{}' answered {} without an OAuth error; {hint}",
                cfg.tenant_id, resp.status
            )));
        }
        Err(GraphError::Auth(format!(
            "tenant '{}' refused the token request: {error}: {description}; {hint}",
            cfg.tenant_id
        )))
    }

    /// Forgets the token if it is still the one of `generation` (Graph said 401).
    pub(crate) fn drop_token(&self, generation: u32) {
        if self.token_generation.get() == generation {
            *self.token.borrow_mut() = None;
            self.doors.log(
                connector_sdk::doors::Level::Info,
                "Graph answered 401: renewing the token",
            );
        }
    }

    /// GETs each request (concurrently, at most `max_in_flight` at once) with retries;
    /// returns the parsed JSON bodies in order.
    pub fn get_all(&self, gets: &[GraphGet]) -> Vec<Result<Value, GraphError>> {
        let reqs: Vec<Outgoing> = gets.iter().map(Outgoing::from).collect();
        self.send_all(&reqs)
            .into_iter()
            .zip(gets)
            .map(|(r, get)| r.and_then(|resp| self.decode(&get.url, &resp.body)))
            .collect()
    }

    /// Sends each request (concurrently, at most `max_in_flight` at once) with retries;
    /// returns the 2xx responses in order, or why each failed.
    pub(crate) fn send_all(&self, reqs: &[Outgoing]) -> Vec<Result<HttpResponse, GraphError>> {
        let mut out: Vec<Option<Result<HttpResponse, GraphError>>> = vec![None; reqs.len()];
        for chunk_start in (0..reqs.len()).step_by(self.max_in_flight.max(1)) {
            let end = (chunk_start + self.max_in_flight).min(reqs.len());
            self.send_round(reqs, chunk_start..end, &mut out);
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(GraphError::Malformed("no result".into()))))
            .collect()
    }

    fn send_round(
        &self,
        reqs: &[Outgoing],
        range: std::ops::Range<usize>,
        out: &mut [Option<Result<HttpResponse, GraphError>>],
    ) {
        // (index, attempts so far, renewed the token for it already)
        let mut pending: Vec<(usize, u32, bool)> = range.map(|i| (i, 0, false)).collect();
        let mut backoff = 0u64;
        while !pending.is_empty() {
            self.wait(backoff);
            backoff = 0;
            let token = match self.ensure_token() {
                Ok(t) => t,
                Err(e) => {
                    for (i, _, _) in pending {
                        out[i] = Some(Err(e.clone()));
                    }
                    return;
                }
            };
            let generation = self.token_generation.get();
            // Paced below the reports limits: what has no slot yet goes in a later pass.
            let (admitted, deferred) =
                self.admit(pending, |(i, _, _)| (reqs[*i].reports, reqs[*i].sign_in));
            pending = admitted;
            let batch: Vec<HttpRequest> = pending
                .iter()
                .map(|(i, _, _)| {
                    let r = &reqs[*i];
                    let mut headers = Vec::with_capacity(r.headers.len() + 3);
                    headers.push(("Authorization".into(), format!("Bearer {token}")));
                    headers.push(("Accept".into(), "application/json".into()));
                    if r.body.is_some() {
                        headers.push(("Content-Type".into(), "application/json".into()));
                    }
                    headers.extend(r.headers.iter().cloned());
                    HttpRequest {
                        method: r.method.into(),
                        url: r.url.clone(),
                        headers,
                        body: r.body.clone(),
                    }
                })
                .collect();
            let weight: u64 = pending.iter().map(|(i, _, _)| reqs[*i].weight).sum();
            self.requests.set(self.requests.get() + weight);
            let results = self.doors.fetch_all(batch);
            let mut again = Vec::new();
            let mut renew = false;
            for ((i, attempt, renewed), result) in pending.into_iter().zip(results) {
                match result {
                    Ok(r) if (200..300).contains(&r.status) => out[i] = Some(Ok(r)),
                    Ok(r) if r.status == 401 && !renewed => {
                        renew = true;
                        again.push((i, attempt + 1, true));
                    }
                    Ok(r) if retry::is_retryable_status(r.status) => {
                        if self.take_retry(attempt) {
                            let wait = self.retry_wait(attempt, Some(&r));
                            self.pause_tenant(wait, &format!("answered {}", r.status));
                            again.push((i, attempt + 1, renewed));
                        } else {
                            out[i] = Some(Err(self.out_of_retries(status_error(&r))));
                        }
                    }
                    Ok(r) => out[i] = Some(Err(status_error(&r))),
                    Err(FetchError::Timeout | FetchError::Transport(_))
                        if self.take_retry(attempt) =>
                    {
                        backoff = backoff.max(self.retry_wait(attempt, None));
                        again.push((i, attempt + 1, renewed));
                    }
                    Err(e) => out[i] = Some(Err(GraphError::Fetch(e))),
                }
            }
            if renew {
                self.drop_token(generation);
            }
            again.extend(deferred);
            pending = again;
        }
    }
}

impl<'a, D: Doors> GraphClient<'a, D> {
    /// GETs one URL with retries.
    pub fn get(&self, get: GraphGet) -> Result<Value, GraphError> {
        self.get_all(std::slice::from_ref(&get))
            .pop()
            .unwrap_or_else(|| Err(GraphError::Malformed("no result".into())))
    }

    /// GETs one page of a collection. A URL off the configured Graph host (a next or delta
    /// link Graph should never send) is refused without being requested.
    pub fn page(&self, get: GraphGet) -> Result<Page, GraphError> {
        self.check_link(&get.url)?;
        Page::parse(self.get(get)?)
    }

    /// Refuses a next or delta link the connector must neither follow nor store: one that
    /// leaves the configured Graph host or its `/v1.0/` API, is longer than
    /// [`MAX_LINK_BYTES`], or holds what no Graph link holds (spaces, control characters, a
    /// fragment, a backslash, a `{{` placeholder). Links are checked when they arrive, so a
    /// bad one never reaches the cursor, and again before they are requested.
    ///
    /// Graph's links are URLs to Graph itself, to be sent back whole
    /// (https://learn.microsoft.com/graph/paging, "How paging works": "sending the URL value
    /// of the @odata.nextLink property to Microsoft Graph"; the examples are
    /// `https://graph.microsoft.com/v1.0/...?$skiptoken=…`). The length cap and the character
    /// rules are ours: no documented Graph link breaks them.
    pub fn check_link(&self, url: &str) -> Result<(), GraphError> {
        let why = if !self.on_graph_host(url) {
            format!("points away from {}", self.config.graph_endpoint)
        } else if !url[self.config.graph_endpoint.len()..].starts_with("/v1.0/") {
            format!("leaves {}/v1.0", self.config.graph_endpoint)
        } else if url.len() > MAX_LINK_BYTES {
            format!("is {} bytes long, over {MAX_LINK_BYTES}", url.len())
        } else if let Some(c) = url
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '#' | '\\'))
        {
            format!("holds the character {c:?}")
        } else if url.contains("{{") {
            "holds a '{{' placeholder".to_string()
        } else {
            return Ok(());
        };
        Err(GraphError::Malformed(format!(
            "a next or delta link {why} ({}); the link is not followed",
            first_line(url)
        )))
    }

    /// Whether `url` is on the configured Graph host (origin followed by `/`).
    pub fn on_graph_host(&self, url: &str) -> bool {
        url.strip_prefix(self.config.graph_endpoint.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Checks a page's next link before it is followed: Graph's link rules
    /// ([`GraphClient::check_link`]), then the listing's trail (links and pages seen before,
    /// its page cap: `connector_sdk::paging::Trail`). A loop is an error of its source.
    pub fn follow(&self, trail: &mut Trail, items: &[Value], link: &str) -> Result<(), GraphError> {
        self.check_link(link)?;
        trail
            .step(items, link)
            .map_err(|e| GraphError::Malformed(e.to_string()))
    }

    /// Collects every page of several collections at once: for each start request, all
    /// `value` items of all its pages, or the first error.
    pub fn collect_lists(&self, starts: Vec<GraphGet>) -> Vec<Result<Vec<Value>, GraphError>> {
        self.list_pages(starts, |gets| self.get_all(gets))
    }

    /// The SDK's paging loop (`connector_sdk::paging::collect_lists`) over `fetch` (plain
    /// GETs or `$batch` items), with Graph's pages and link rules.
    fn list_pages(
        &self,
        starts: Vec<GraphGet>,
        fetch: impl Fn(&[GraphGet]) -> Vec<Result<Value, GraphError>>,
    ) -> Vec<Result<Vec<Value>, GraphError>> {
        paging::collect_lists(
            starts,
            |g| g.url.as_str(),
            |g, url| GraphGet {
                url,
                headers: g.headers.clone(),
            },
            |gets| {
                fetch(gets)
                    .into_iter()
                    .map(|r| r.and_then(Page::parse).map(Page::listed))
                    .collect()
            },
            |trail, items, link| self.follow(trail, items, link),
        )
    }
}

/// Longest next or delta link followed or stored. Skip and delta tokens are opaque and a few
/// hundred bytes in practice; a link of many kilobytes is a broken or hostile server.
pub const MAX_LINK_BYTES: usize = 16 * 1024;

/// Most pages one listing follows when no count the connector holds bounds it (the groups
/// delta, role assignments, one user's groups): 50,000 pages are 5 million objects at Graph's
/// default page size of 100 (user-list, group-list: "the default and maximum page sizes are
/// 100 and 999 user objects respectively"), five times the million-user tenants this
/// connector is built for. A listing past it is a broken or hostile server. (No directory
/// quota is assumed: large tenants raise theirs, and the stored Microsoft docs do not state
/// the default.) It is the SDK's default cap of a `Trail`.
pub const MAX_LISTING_PAGES: u64 = connector_sdk::paging::DEFAULT_MAX_PAGES;
const _: () = assert!(MAX_LISTING_PAGES == 50_000);

/// The smallest page assumed of a listing with about one item per user: Graph's default
/// page size of directory lists (see [`MAX_LISTING_PAGES`]); the registration report takes no
/// `$top` and chooses its own.
pub const PER_USER_PAGE: u64 = 100;

impl<D: Doors> GraphClient<'_, D> {
    /// Records that the tenant has at least `users` users (the previous walk's count, or the
    /// entries of a tenant-wide per-user listing of this run).
    pub fn note_users(&self, users: u64) {
        self.users_hint.set(self.users_hint.get().max(users));
    }

    /// Most pages of a listing with about one item per user (the registration report, the
    /// tenant's sign-in data): twice the pages of the known users at [`PER_USER_PAGE`] a
    /// page, plus ten (a tenant grows between runs, a page may come short); with no users
    /// known (a first walk without sign-in data, `created`/`full` modes), [`MAX_LISTING_PAGES`]:
    /// a first walk of a million-user tenant must not be cut by a guessed size.
    pub fn per_user_pages(&self) -> u64 {
        let users = match self.users_hint.get() {
            0 => return MAX_LISTING_PAGES,
            n => n,
        };
        users
            .div_ceil(PER_USER_PAGE)
            .saturating_mul(2)
            .saturating_add(10)
            .min(MAX_LISTING_PAGES)
    }
}

/// One page of a Graph collection.
#[derive(Debug, PartialEq)]
pub struct Page {
    /// The `value` items.
    pub items: Vec<Value>,
    /// `@odata.nextLink`, verbatim.
    pub next_link: Option<String>,
    /// `@odata.deltaLink`, verbatim.
    pub delta_link: Option<String>,
}

impl Page {
    /// The page as the SDK's paging loop reads it (the delta link is not a page's).
    fn listed(self) -> Listed {
        Listed {
            items: self.items,
            next_link: self.next_link,
        }
    }

    /// Splits a collection body. The envelope must be what Graph documents: an object with a
    /// `value` array, links that are strings when present, a count that is a whole number when
    /// present (https://learn.microsoft.com/graph/paging: the next page is "the URL value of
    /// the @odata.nextLink property"; https://learn.microsoft.com/graph/delta-query-overview:
    /// the deltaLink is a URL to use in the next round; OData JSON Format 4.0, "Control
    /// Information": `odata.nextLink` and `odata.deltaLink` are URLs, `odata.count` an
    /// integer). Anything else is malformed — an error of the listing,
    /// never "no more pages" or an empty page, which would drop the rest of the listing in
    /// silence. (Repeated keys are refused earlier, by `intake.rs`.)
    pub fn parse(body: Value) -> Result<Page, GraphError> {
        let Value::Object(mut map) = body else {
            return Err(GraphError::Malformed(format!(
                "a collection page is a JSON {}, not an object",
                intake::json_kind(&body)
            )));
        };
        let items = match map.remove("value") {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(GraphError::Malformed(format!(
                    "a collection page's 'value' is a JSON {}, not an array",
                    intake::json_kind(&other)
                )))
            }
            None => {
                return Err(GraphError::Malformed(
                    "a collection page has no 'value' array".into(),
                ))
            }
        };
        let mut link = |k: &str| match map.remove(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(GraphError::Malformed(format!(
                "a collection page's {k} is a JSON {}, not a link; the listing is not complete",
                intake::json_kind(&other)
            ))),
        };
        let next_link = link("@odata.nextLink")?;
        let delta_link = link("@odata.deltaLink")?;
        if let Some(count) = map.get("@odata.count") {
            if !count.is_u64() {
                return Err(GraphError::Malformed(format!(
                    "a collection page's @odata.count is a JSON {}, not a whole number",
                    intake::json_kind(count)
                )));
            }
        }
        Ok(Page {
            next_link,
            delta_link,
            items,
        })
    }
}

pub(crate) fn status_error(r: &HttpResponse) -> GraphError {
    let body: Value = intake::decode(&r.body)
        .map(|d| d.value)
        .unwrap_or(Value::Null);
    let err = body.get("error");
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(first_line)
        .unwrap_or_else(|| "no Graph error body".into());
    GraphError::Status {
        status: r.status,
        code,
        message,
    }
}

/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2; Entra
/// certificate-credentials.md, "Using a client assertion": "This is a fixed value").
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What to do when Entra refuses the client assertion, by its AADSTS code (and, for
/// AADSTS700027, its reason): one line naming the setting to change. `None` for an answer
/// about something else (tenant, scope, application id), which the general hints cover.
///
/// Sources: Entra reference-error-codes.md (AADSTS700027 "Client assertion failed signature
/// validation"); the messages as Microsoft's trackers quote them: AADSTS700027 "[Reason - The
/// key was not found." (the certificate is not on the app registration), "[Reason - The key
/// used is expired." (it expired), "[Reason - Key was found, but use of the key to verify the
/// signature failed." (the key or the algorithm: MicrosoftDocs/entra-docs#1301 and #1607 argue
/// PS256 against RS256, tenants answering AADSTS700027 to one or the other); AADSTS700024 "Client
/// assertion is not within its valid time range"; AADSTS700023 "Client assertion audience claim
/// does not match Realm issuer"; AADSTS700026 "Client application has no configured keys";
/// AADSTS50027 "Invalid JWT token. No certificate thumbprint specified in token header";
/// AADSTS50013 "Assertion failed signature validation" / InvalidAssertion (the code the
/// emulator answers a replayed `jti` with: Entra documents none for a replay);
/// Microsoft.Identity.Web's certificate error codes (AADSTS7000274 and AADSTS1000502: the
/// certificate outside its validity period; AADSTS7000214 and AADSTS7000277: revoked).
fn assertion_hint(description: &str) -> Option<&'static str> {
    let code = description
        .strip_prefix("AADSTS")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?;
    let reason = description.to_ascii_lowercase();
    Some(match code {
        "700027" if reason.contains("key was not found") => {
            "Entra does not know the certificate the assertion names (AADSTS700027, key not found): upload the certificate of [secrets.client_certificate] to the app registration (Certificates & secrets > Certificates), or set its certificate to the file that was uploaded"
        }
        "700027" if reason.contains("key used is expired") => {
            "the certificate uploaded to the app registration for this key has expired (AADSTS700027): make a new key and certificate, upload the certificate, and point [secrets.client_certificate] file and certificate at them"
        }
        "700027" => {
            "Entra refused the client assertion's signature (AADSTS700027): if the certificate uploaded to the app registration is this key's, set [secrets.client_certificate] algorithm = \"RS256\" (older tenants) or \"PS256\"; otherwise upload the certificate"
        }
        "700024" => {
            "Entra found the client assertion outside its valid time range (AADSTS700024): check this machine's clock (NTP)"
        }
        "700023" => {
            "the client assertion's audience is not this tenant's token endpoint (AADSTS700023): check config keys tenant_id, cloud and login_endpoint"
        }
        "700026" => {
            "the app registration has no certificate (AADSTS700026): upload the certificate of [secrets.client_certificate] under Certificates & secrets > Certificates"
        }
        "700021" | "50048" => {
            "the client assertion names another application (AADSTS700021): set [secrets.client_certificate] client_id to the config key client_id"
        }
        "50027" => {
            "Entra cannot tell which certificate signed the assertion (AADSTS50027): set [secrets.client_certificate] certificate to the certificate uploaded to the app registration"
        }
        "50013" => {
            "Entra refused the client assertion as invalid (AADSTS50013, e.g. one it has seen before; the host signs a new one for every request): run again, and if it persists check this machine's clock and that [secrets.client_certificate] names the key of the uploaded certificate"
        }
        "7000274" | "1000502" => {
            "the certificate is outside its validity period: upload a current certificate and point [secrets.client_certificate] file and certificate at it and its key"
        }
        "7000214" | "7000277" => {
            "the certificate has been revoked: make a new key and certificate, upload the certificate, and point [secrets.client_certificate] at them"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use connector_sdk::doors::fake::{json, FakeDoors};

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut pairs = vec![
            ("tenant_id".to_string(), "t".to_string()),
            ("client_id".to_string(), "c".to_string()),
            (
                "graph_endpoint".to_string(),
                "https://graph.test".to_string(),
            ),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::parse(&pairs).unwrap()
    }

    const TOKEN: &str = r#"{"access_token":"tok","expires_in":3599}"#;

    /// A Graph that grants a token and answers every other request with an empty page.
    fn empty_pages(_: usize, r: &HttpRequest) -> HttpResponse {
        if r.url.contains("/token") {
            return json(200, &[], TOKEN);
        }
        json(200, &[], r#"{"value":[]}"#)
    }

    #[test]
    fn a_throttled_batch_item_pauses_the_requests_that_follow() {
        // One batch in flight at a time: 40 items make two batches in one round; item 3 of
        // the first is throttled for 2 s, so the second batch waits too, and item 3 goes
        // again alone.
        let cfg = config(&[("batch_concurrency", "1")]);
        let doors = FakeDoors::new(|n, r| {
            if r.url.contains("/token") {
                return json(200, &[], TOKEN);
            }
            let responses: Vec<Value> = batch_items(r)
                .iter()
                .map(|item| {
                    // Call 0 is the token, call 1 the first batch.
                    if item["url"] == "/users/u3/memberOf" && n == 1 {
                        serde_json::json!({"id": item["id"], "status": 429,
                            "headers": {"Retry-After": "2"},
                            "body": {"error": {"code": "TooManyRequests", "message": "slow"}}})
                    } else {
                        serde_json::json!({"id": item["id"], "status": 200,
                            "body": {"value": [{"id": item["url"]}]}})
                    }
                })
                .rev()
                .collect();
            batch_answer(responses)
        });
        let graph = GraphClient::new(&doors, &cfg);
        let items: Vec<SubGet> = (0..40)
            .map(|i| SubGet::new(cfg.graph_url(&format!("/users/u{i}/memberOf"))))
            .collect();
        let t0 = doors.clock.get();
        let results = graph.batch_collect(items);
        let calls = doors.calls.borrow();
        // token, batch 1, batch 2 (after the pause), the retry of item 3 (also after it)
        assert_eq!(
            calls.len(),
            4,
            "{:?}",
            calls.iter().map(|c| c.1.len()).collect::<Vec<_>>()
        );
        assert_eq!(calls[1].0, t0, "the first batch goes at once");
        assert!(
            calls[2].0 >= t0 + 2000,
            "the second batch waited for the pause"
        );
        let retry_body: Value =
            serde_json::from_slice(calls[3].1[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            retry_body["requests"].as_array().unwrap().len(),
            1,
            "item 3 alone"
        );
        drop(calls);
        for (i, r) in results.iter().enumerate() {
            let items = r.as_ref().expect("every item succeeds in the end");
            assert_eq!(
                items[0]["id"],
                format!("/users/u{i}/memberOf"),
                "matched by id"
            );
        }
        assert_eq!(graph.retries(), 1);
    }

    #[test]
    fn reports_class_requests_are_paced_below_the_reports_limit() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&doors, &cfg);
        let report = cfg.graph_url("/reports/authenticationMethods/userRegistrationDetails");
        let sign_in = cfg.graph_url("/users?$select=id,signInActivity&$top=500");
        let plain = cfg.graph_url("/users?$select=id&$top=999");
        // Twelve reports-class requests and some others, one at a time.
        for i in 0..12 {
            let url = if i % 2 == 0 { &report } else { &sign_in };
            graph.get(GraphGet::new(url.clone())).unwrap();
            graph.get(GraphGet::new(plain.clone())).unwrap();
        }
        let calls = doors.calls.borrow();
        let times: Vec<i64> = calls
            .iter()
            .filter(|c| is_reports_class(&c.1[0].url))
            .map(|c| c.0)
            .collect();
        assert_eq!(times.len(), 12);
        for (i, t) in times.iter().enumerate().skip(REPORTS_LIMIT) {
            assert!(
                t - times[i - REPORTS_LIMIT] >= REPORTS_WINDOW_MS,
                "request {i} went {} ms after request {}",
                t - times[i - REPORTS_LIMIT],
                i - REPORTS_LIMIT
            );
        }
        // The first five go at once; twelve need three windows, not more.
        assert_eq!(times[4], times[0]);
        assert!(doors.slept.get() as i64 <= 2 * REPORTS_WINDOW_MS + 10);
        assert!(!is_reports_class(&plain));
        assert!(is_reports_class(&cfg.graph_url(
            "/users?$filter=id%20in%20('a')&$select=id,signInActivity"
        )));
    }

    #[test]
    fn a_wait_for_graphs_limits_is_reported_with_its_reason_before_the_client_sleeps() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&doors, &cfg);
        graph.progress(Progress {
            phase: "registration report".into(),
            pages_done: 5,
            pages_expected: Some(20),
            items_done: 500,
            wait_ms: Some(30_000),
            detail: "full walk: registration report page 5 of ~20".into(),
        });
        let report = cfg.graph_url("/reports/authenticationMethods/userRegistrationDetails");
        for _ in 0..REPORTS_LIMIT + 1 {
            graph.get(GraphGet::new(report.clone())).unwrap();
        }
        let reported = doors.progress.borrow().clone();
        assert_eq!(
            reported.len(),
            2,
            "the standing, then the one wait: {reported:#?}"
        );
        let wait = &reported[1];
        assert!(
            wait.detail.starts_with("waiting 1")
                && wait.detail.ends_with(
                    " s for Graph's reports limit: 5 requests per 10 s per app and tenant; full walk: registration report page 5 of ~20"
                ),
            "{}",
            wait.detail
        );
        assert_eq!(wait.phase, "registration report");
        assert_eq!((wait.pages_done, wait.pages_expected), (5, Some(20)));
        assert_eq!(
            wait.wait_ms,
            Some(30_000),
            "the walk's estimate, the longer"
        );
        assert!(doors.slept.get() >= 10_000);

        // Graph's own 429: the pause is reported with the answer and its Retry-After.
        let doors = FakeDoors::new(|n, r| {
            if r.url.contains("/token") {
                return json(200, &[], TOKEN);
            }
            if n == 1 {
                return json(429, &[("Retry-After", "39")], "{}");
            }
            json(200, &[], r#"{"value":[]}"#)
        });
        let graph = GraphClient::new(&doors, &cfg);
        graph.get(GraphGet::new(cfg.graph_url("/users"))).unwrap();
        let reported = doors.progress.borrow().clone();
        assert_eq!(reported.len(), 1, "{reported:#?}");
        assert_eq!(
            reported[0].phase, "starting",
            "before any report of the walk"
        );
        assert_eq!(
            reported[0].detail,
            "waiting 39 s for Graph's throttling (answered 429; Retry-After or backoff: 39 s)"
        );
        assert!(
            reported[0]
                .wait_ms
                .is_some_and(|w| (38_000..=39_000).contains(&w)),
            "{reported:#?}"
        );
    }

    #[test]
    fn concurrent_reports_requests_are_sent_only_as_their_slots_free() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&doors, &cfg);
        let mut gets: Vec<GraphGet> = (0..7)
            .map(|i| {
                GraphGet::new(cfg.graph_url(&format!(
                    "/users?$filter=id%20in%20('u{i}')&$select=id,signInActivity"
                )))
            })
            .collect();
        gets.push(GraphGet::new(cfg.graph_url("/users?$select=id")));
        let results = graph.get_all(&gets);
        assert!(results.iter().all(Result::is_ok));
        let calls = doors.calls.borrow();
        // Every request with the time it was really sent.
        let sent: Vec<(i64, bool)> = calls
            .iter()
            .skip(1)
            .flat_map(|(t, reqs)| reqs.iter().map(move |r| (*t, is_reports_class(&r.url))))
            .collect();
        assert_eq!(sent.len(), 8);
        let reports: Vec<i64> = sent.iter().filter(|s| s.1).map(|s| s.0).collect();
        for i in REPORTS_LIMIT..reports.len() {
            assert!(
                reports[i] - reports[i - REPORTS_LIMIT] >= REPORTS_WINDOW_MS,
                "{reports:?}"
            );
        }
        assert_eq!(
            sent.iter().find(|s| !s.1).map(|s| s.0),
            Some(reports[0]),
            "the request outside the limits went at once"
        );
    }

    #[test]
    fn sign_in_activity_reads_are_also_paced_to_ten_a_minute() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&doors, &cfg);
        let sign_in = cfg.graph_url("/users?$select=id,signInActivity&$top=500");
        for _ in 0..21 {
            graph.get(GraphGet::new(sign_in.clone())).unwrap();
        }
        let calls = doors.calls.borrow();
        let times: Vec<i64> = calls.iter().skip(1).map(|c| c.0).collect();
        let (limit, window) = REPORTS_LIMITS[1];
        for i in limit..times.len() {
            assert!(times[i] - times[i - limit] >= window, "request {i}");
        }
        for i in REPORTS_LIMIT..times.len() {
            assert!(
                times[i] - times[i - REPORTS_LIMIT] >= REPORTS_WINDOW_MS,
                "request {i}"
            );
        }
        // 21 requests: two full minutes of waiting, not more.
        assert!(
            times[20] - times[0] <= 2 * window + 10,
            "{}",
            times[20] - times[0]
        );
    }

    #[test]
    fn a_later_run_paces_from_the_requests_an_earlier_run_sent() {
        let cfg = config(&[]);
        let report = cfg.graph_url("/reports/authenticationMethods/userRegistrationDetails");
        let first = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&first, &cfg);
        for _ in 0..5 {
            graph.get(GraphGet::new(report.clone())).unwrap();
        }
        let history = graph.reports_history();
        assert_eq!(history[0].len(), 5);
        // The next run starts a second later, in the same window.
        let second = FakeDoors::new(empty_pages);
        second.clock.set(first.clock.get() + 1_000);
        let graph = GraphClient::new(&second, &cfg);
        graph.remember_reports(&history);
        graph.get(GraphGet::new(report.clone())).unwrap();
        assert!(
            second.slept.get() as i64 >= REPORTS_WINDOW_MS - 1_000,
            "slept {} ms",
            second.slept.get()
        );
    }

    #[test]
    fn every_batch_item_counts_as_a_request() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(|_, r| {
            if r.url.contains("/token") {
                return json(200, &[], TOKEN);
            }
            batch_answer(
                batch_items(r)
                    .iter()
                    .map(|item| serde_json::json!({"id": item["id"], "status": 200, "body": {"value": []}}))
                    .collect(),
            )
        });
        let graph = GraphClient::new(&doors, &cfg);
        let items: Vec<SubGet> = (0..45)
            .map(|i| SubGet::new(cfg.graph_url(&format!("/users/u{i}/memberOf"))))
            .collect();
        graph.batch_collect(items);
        assert_eq!(
            doors.calls.borrow().len(),
            2,
            "token, then one round of 3 batches"
        );
        assert_eq!(graph.requests(), 1 + 45, "the token and 45 batch items");
    }

    #[test]
    fn a_spent_retry_budget_ends_with_a_clear_error() {
        let cfg = config(&[("retry_budget", "2")]);
        let doors = FakeDoors::new(|_, r| {
            if r.url.contains("/token") {
                return json(200, &[], TOKEN);
            }
            json(
                429,
                &[("Retry-After", "1")],
                r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#,
            )
        });
        let graph = GraphClient::new(&doors, &cfg);
        let err = graph
            .get(GraphGet::new(cfg.graph_url("/users")))
            .unwrap_err();
        assert_eq!(err.status(), Some(429));
        assert!(
            err.to_string().contains("retry budget of 2 is spent"),
            "{err}"
        );
        assert_eq!(
            doors.calls.borrow().len(),
            1 + 3,
            "token, one try, two retries"
        );
        assert_eq!(
            doors.slept.get(),
            2000,
            "Retry-After honoured before each retry"
        );
    }

    /// The token request's body, as the host receives it from the connector.
    fn token_body(extra: &[(&str, &str)]) -> (String, HttpRequest) {
        let cfg = config(extra);
        let doors = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&doors, &cfg);
        assert_eq!(graph.ensure_token().unwrap(), "tok");
        let calls = doors.calls.borrow();
        let request = calls[0].1[0].clone();
        let body = String::from_utf8(request.body.clone().expect("a form body")).unwrap();
        (body, request)
    }

    #[test]
    fn certificate_mode_asks_for_a_token_with_an_assertion_the_host_signs() {
        let (body, request) = token_body(&[]);
        assert_eq!(
            body,
            "grant_type=client_credentials&client_id=c&scope=https%3A%2F%2Fgraph.test%2F.default&client_secret={{secret:client_secret}}"
        );
        let (body, request_cert) = token_body(&[("credential", "certificate")]);
        // contract20.md: the token body of credential = "certificate".
        assert_eq!(
            body,
            "grant_type=client_credentials&client_id=c&scope=https%3A%2F%2Fgraph.test%2F.default&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={{assertion:client_certificate}}"
        );
        assert!(
            !body.contains("client_secret"),
            "no secret in certificate mode"
        );
        for r in [&request, &request_cert] {
            assert_eq!(r.method, "POST");
            assert_eq!(
                r.url,
                "https://login.microsoftonline.com/t/oauth2/v2.0/token"
            );
            assert!(r
                .headers
                .iter()
                .any(|(k, v)| k == "Content-Type" && v == "application/x-www-form-urlencoded"));
        }
    }

    /// The one line a token request refused with `description` gives, in `credential` mode.
    fn refusal(credential: &str, description: &str) -> String {
        let cfg = config(&[("credential", credential)]);
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("{description}\r\nTrace ID: 0000aaaa-11bb-cccc-dd33-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-12-07 13:00:00Z"),
            "error_codes": [700027],
        })
        .to_string();
        let doors = FakeDoors::new(move |_, _| json(401, &[], &body));
        let graph = GraphClient::new(&doors, &cfg);
        match graph.ensure_token() {
            Err(GraphError::Auth(line)) => {
                assert!(
                    !line.contains('\n') && !line.contains('\r'),
                    "one line: {line}"
                );
                line
            }
            other => panic!("an authentication error, not {other:?}"),
        }
    }

    #[test]
    fn operator_each_refused_assertion_names_the_setting_to_change() {
        let signature = refusal(
            "certificate",
            "AADSTS700027: Client assertion contains an invalid signature. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: 'AB12', Found key 'Start=01/01/2026 00:00:00, End=01/01/2027 00:00:00']",
        );
        assert!(
            signature.starts_with("tenant 't' refused the client assertion: Entra refused the client assertion's signature (AADSTS700027): if the certificate uploaded to the app registration is this key's, set [secrets.client_certificate] algorithm = \"RS256\" (older tenants) or \"PS256\"; otherwise upload the certificate"),
            "{signature}"
        );
        assert!(
            signature.contains("Entra said invalid_client: AADSTS700027"),
            "{signature}"
        );
        assert!(
            !signature.contains("Trace ID"),
            "the first line only: {signature}"
        );
        let cases = [
            (
                "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: 'AB12']",
                "(AADSTS700027, key not found): upload the certificate of [secrets.client_certificate] to the app registration",
            ),
            (
                "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: 'AB12']",
                "has expired (AADSTS700027): make a new key and certificate",
            ),
            (
                "AADSTS700024: Client assertion is not within its valid time range. Current time: 2026-12-07T13:00:00.0000000Z, assertion valid from 2026-12-07T13:10:00.0000000Z, expiry time of assertion 2026-12-07T13:15:00.0000000Z.",
                "(AADSTS700024): check this machine's clock",
            ),
            (
                "AADSTS700023: Client assertion audience claim does not match Realm issuer.",
                "check config keys tenant_id, cloud and login_endpoint",
            ),
            (
                "AADSTS700026: Client application has no configured keys.",
                "the app registration has no certificate (AADSTS700026)",
            ),
            (
                "AADSTS7000274: The certificate is not within its validity period.",
                "outside its validity period",
            ),
            (
                "AADSTS50013: Assertion is invalid. The assertion has already been used.",
                "(AADSTS50013, e.g. one it has seen before; the host signs a new one for every request): run again",
            ),
        ];
        for (description, says) in cases {
            let line = refusal("certificate", description);
            assert!(line.contains(says), "{description}: {line}");
        }
        // Another refusal in certificate mode: the general hint names the certificate.
        let line = refusal(
            "certificate",
            "AADSTS7000215: Invalid client secret provided.",
        );
        assert!(
            line.contains("[secrets.client_certificate]") && !line.contains("client secret value"),
            "{line}"
        );
        // Secret mode is unchanged.
        let line = refusal("secret", "AADSTS7000215: Invalid client secret provided.");
        assert!(
            line.contains("check the client secret value (not its id)"),
            "{line}"
        );
    }

    #[test]
    fn a_token_is_renewed_a_minute_before_it_expires() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(|n, r| {
            if r.url.contains("/token") {
                return json(
                    200,
                    &[],
                    &format!(r#"{{"access_token":"tok{n}","expires_in":61}}"#),
                );
            }
            json(200, &[], r#"{"value":[]}"#)
        });
        let graph = GraphClient::new(&doors, &cfg);
        graph.get(GraphGet::new(cfg.graph_url("/users"))).unwrap();
        graph.get(GraphGet::new(cfg.graph_url("/users"))).unwrap();
        doors.sleep_ms(1_500);
        graph.get(GraphGet::new(cfg.graph_url("/users"))).unwrap();
        let calls = doors.calls.borrow();
        let tokens = calls
            .iter()
            .filter(|c| c.1[0].url.contains("/token"))
            .count();
        assert_eq!(tokens, 2, "one token, renewed once after its useful life");
        let last_auth = calls.last().unwrap().1[0]
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap()
            .1
            .clone();
        assert_eq!(last_auth, "Bearer tok3", "the renewed token is used");
    }

    #[test]
    fn hostile_links_off_graph_or_with_odd_characters_are_refused() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&doors, &cfg);
        let g = cfg.graph_endpoint.clone();
        assert!(graph
            .check_link(&format!("{g}/v1.0/users/delta?$skiptoken=abc"))
            .is_ok());
        let long = format!("{g}/v1.0/users?$skiptoken={}", "a".repeat(MAX_LINK_BYTES));
        for (link, why) in [
            ("https://evil.example/v1.0/users".to_string(), "points away"),
            (format!("{g}.evil.example/v1.0/users"), "points away"),
            ("file:///etc/passwd".to_string(), "points away"),
            ("http://169.254.169.254/latest".to_string(), "points away"),
            (format!("{g}/beta/users"), "leaves"),
            (format!("{g}/v1.0/users?$skiptoken=a b"), "character"),
            (format!("{g}/v1.0/users?$skiptoken=a\nb"), "character"),
            (format!("{g}/v1.0/users#x"), "character"),
            (format!("{g}/v1.0/users\\..\\x"), "character"),
            (
                format!("{g}/v1.0/users?x={{{{secret:client_secret}}}}"),
                "placeholder",
            ),
            (long, "bytes long"),
        ] {
            let e = graph.check_link(&link).expect_err(&link).to_string();
            assert!(e.contains(why), "{link}: {e}");
        }
    }

    /// The items of a `$batch` request the fake Graph received.
    fn batch_items(r: &HttpRequest) -> Vec<Value> {
        let body: Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        body["requests"].as_array().unwrap().clone()
    }

    /// A `$batch` answer holding `responses`.
    fn batch_answer(responses: Vec<Value>) -> HttpResponse {
        json(
            200,
            &[],
            &serde_json::json!({ "responses": responses }).to_string(),
        )
    }

    /// A Graph that answers every list GET with one item and a next link to itself.
    fn self_linking(_: usize, r: &HttpRequest) -> HttpResponse {
        if r.url.contains("/token") {
            return json(200, &[], TOKEN);
        }
        let page = |url: &str| serde_json::json!({"value": [{"id": "u"}], "@odata.nextLink": url});
        if r.url.ends_with("/$batch") {
            return batch_answer(
                batch_items(r)
                    .iter()
                    .map(|item| {
                        let url =
                            format!("https://graph.test/v1.0{}", item["url"].as_str().unwrap());
                        serde_json::json!({"id": item["id"], "status": 200, "body": page(&url)})
                    })
                    .collect(),
            );
        }
        json(200, &[], &page(&r.url).to_string())
    }

    #[test]
    fn hostile_a_next_link_pointing_at_its_own_page_stops_the_listing() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(self_linking);
        let graph = GraphClient::new(&doors, &cfg);
        let start = cfg.graph_url("/groups/g/members?$select=id");
        let lists = graph.collect_lists(vec![GraphGet::new(start.clone())]);
        let e = lists[0]
            .as_ref()
            .expect_err("a loop is an error")
            .to_string();
        assert!(e.contains("already followed"), "{e}");
        let lists = graph.batch_collect(vec![SubGet::new(start)]);
        let e = lists[0]
            .as_ref()
            .expect_err("a loop is an error")
            .to_string();
        assert!(e.contains("already followed"), "{e}");
        assert_eq!(
            doors.calls.borrow().len(),
            3,
            "token, one GET, one batch: the repeated link is never requested"
        );
    }

    /// A Graph whose every page brings a next link with a new token, and items from `items`.
    fn endless(items: fn(usize) -> Value) -> impl Fn(usize, &HttpRequest) -> HttpResponse {
        move |n, r| {
            if r.url.contains("/token") {
                return json(200, &[], TOKEN);
            }
            let page = serde_json::json!({
                "value": items(n),
                "@odata.nextLink": format!("https://graph.test/v1.0/groups/delta?$skiptoken=t{n}"),
            });
            if r.url.ends_with("/$batch") {
                return batch_answer(
                    batch_items(r)
                        .iter()
                        .map(|item| serde_json::json!({"id": item["id"], "status": 200, "body": page}))
                        .collect(),
                );
            }
            json(200, &[], &page.to_string())
        }
    }

    #[test]
    fn hostile_a_page_repeating_its_items_under_new_links_stops_the_listing() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(endless(
            |_| serde_json::json!([{"id": "g", "members@delta": []}]),
        ));
        let graph = GraphClient::new(&doors, &cfg);
        let start = cfg.graph_url("/groups/delta?$select=displayName,members");
        let lists = graph.collect_lists(vec![GraphGet::new(start.clone())]);
        let e = lists[0]
            .as_ref()
            .expect_err("a loop is an error")
            .to_string();
        assert!(e.contains("repeats the items of an earlier page"), "{e}");
        assert_eq!(doors.calls.borrow().len(), 1 + 2, "token, two pages");
        let lists = graph.batch_collect(vec![SubGet::new(start)]);
        let e = lists[0]
            .as_ref()
            .expect_err("a loop is an error")
            .to_string();
        assert!(e.contains("repeats the items"), "{e}");
    }

    #[test]
    fn hostile_an_endless_listing_of_new_items_stops_at_its_page_cap() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(endless(|n| serde_json::json!([{"id": format!("u{n}")}])));
        let graph = GraphClient::new(&doors, &cfg);
        graph.note_users(250);
        graph.note_users(10);
        assert_eq!(graph.per_user_pages(), 2 * 3 + 10, "250 users, 100 a page");
        let mut trail = Trail::default().capped(graph.per_user_pages());
        let mut next =
            Some(cfg.graph_url("/reports/authenticationMethods/userRegistrationDetails"));
        let mut pages = 0;
        let e = loop {
            let page = graph.page(GraphGet::new(next.take().unwrap())).unwrap();
            pages += 1;
            let link = page.next_link.unwrap();
            if let Err(e) = graph.follow(&mut trail, &page.items, &link) {
                break e.to_string();
            }
            next = Some(link);
        };
        assert_eq!(pages, 16, "{e}");
        assert!(e.contains("past 16 pages"), "{e}");
        // Without a known user count: the cap of any listing, never a guessed tenant size.
        let fresh = GraphClient::new(&doors, &cfg);
        assert_eq!(fresh.per_user_pages(), MAX_LISTING_PAGES);
    }

    #[test]
    fn empty_pages_on_the_way_to_a_delta_link_are_not_taken_for_a_repeat() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(empty_pages);
        let graph = GraphClient::new(&doors, &cfg);
        let mut trail = Trail::default().capped(5);
        for n in 0..4 {
            let link = cfg.graph_url(&format!("/users/delta?$skiptoken=e{n}"));
            graph
                .follow(&mut trail, &[], &link)
                .expect("an empty page is no loop");
        }
        let e = graph
            .follow(
                &mut trail,
                &[],
                &cfg.graph_url("/users/delta?$skiptoken=e9"),
            )
            .expect_err("the cap still holds");
        assert!(e.to_string().contains("past 5 pages"), "{e}");
    }

    #[test]
    fn hostile_batch_item_bodies_given_as_json_strings_are_failed_items() {
        let cfg = config(&[]);
        let doors = FakeDoors::new(|_, r| {
            if r.url.contains("/token") {
                return json(200, &[], TOKEN);
            }
            let methods = r##"{"value":[{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"m"}]}"##;
            let answer = serde_json::json!({"responses": [
                {"id": "0", "status": 200, "body": methods},
                {"id": "1", "status": 200, "body": [1, 2]},
                {"id": "2", "status": 200, "body": serde_json::from_str::<Value>(methods).unwrap()},
            ]});
            json(200, &[], &answer.to_string())
        });
        let graph = GraphClient::new(&doors, &cfg);
        let items: Vec<SubGet> = (0..3)
            .map(|i| SubGet::new(cfg.graph_url(&format!("/users/u{i}/authentication/methods"))))
            .collect();
        let out = graph.batch_get(&items);
        let e = out[0]
            .as_ref()
            .expect_err("a string body is not a methods list");
        assert!(e.to_string().contains("is a JSON string"), "{e}");
        let e = out[1]
            .as_ref()
            .expect_err("an array body is not a methods list");
        assert!(e.to_string().contains("is a JSON array"), "{e}");
        assert_eq!(out[2].as_ref().unwrap()["value"][0]["id"], "m");
    }

    #[test]
    fn page_parse_requires_value_array() {
        let p = Page::parse(serde_json::json!({"value": [1], "@odata.nextLink": "https://g/next"}))
            .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.next_link.as_deref(), Some("https://g/next"));
        assert!(matches!(
            Page::parse(serde_json::json!({"values": []})),
            Err(GraphError::Malformed(_))
        ));
        assert!(matches!(
            Page::parse(serde_json::json!([1])),
            Err(GraphError::Malformed(_))
        ));
    }

    #[test]
    fn status_error_reads_graph_error_body() {
        let r = HttpResponse {
            status: 403,
            headers: vec![],
            body: br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges.\nmore"}}"#.to_vec(),
        };
        assert_eq!(
            status_error(&r),
            GraphError::Status {
                status: 403,
                code: "Authorization_RequestDenied".into(),
                message: "Insufficient privileges.".into()
            }
        );
        let e = status_error(&r).into_connector("listing users");
        assert!(
            matches!(e, ConnectorError::Permission(ref m) if m.contains("listing users")),
            "{e:?}"
        );
    }
}
