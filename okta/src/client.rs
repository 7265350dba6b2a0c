//! Requests to the Okta org: the credential on each request, pacing on the rate-limit
//! headers, 429 waited out, and the `Link` header read.

use std::cell::{Cell, RefCell};

use connector_sdk::doors::{Doors, HttpRequest, HttpResponse, Level};
use connector_sdk::paging::first_line;
use connector_sdk::{retry, time, ConnectorError};
use serde_json::Value;

use crate::config::{Auth, Config, OKTA_KEY, OKTA_TOKEN};

/// The scopes a service app asks for: users, groups, roles and the System Log, read only
/// (developer.okta.com/docs/api/oauth2, "Okta Admin Management" scopes; OKTA.md, "Auth").
pub const SCOPES: &str = "okta.users.read okta.groups.read okta.roles.read okta.logs.read";

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2; Okta's service app
/// guide, "Get an access token": the same fixed value).
const ASSERTION_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

/// Attempts of one request that keeps answering 429 or 503/504, the first included.
const MAX_ATTEMPTS: u32 = 6;

/// The longest single wait, whatever `X-Rate-Limit-Reset` says: Okta's windows are about
/// 60 s (developer.okta.com/docs/reference/rate-limits), so a later reset is a broken clock
/// or a broken answer, and a run must not park on it.
const MAX_WAIT_MS: u64 = 120_000;

/// An access token held, and when to renew it.
struct Token {
    header: String,
    renew_at_ms: i64,
}

/// What the last answer of one bucket said, and how many of the window's requests were ours.
#[derive(Clone, Debug, PartialEq)]
struct Bucket {
    /// The bucket ([`bucket_of`]).
    path: &'static str,
    limit: u64,
    remaining: u64,
    /// When the window ends, on the local clock.
    reset_ms: i64,
    /// The window's `X-Rate-Limit-Reset` as Okta gave it (which window it is).
    reset_raw: i64,
    /// Our requests answered in the window ending at `reset_ms`.
    ours: u64,
}

/// The org's client for one run or check.
pub struct Client<'a, D: Doors> {
    doors: &'a D,
    config: &'a Config,
    token: RefCell<Option<Token>>,
    buckets: RefCell<Vec<Bucket>>,
    /// Requests sent.
    pub requests: Cell<u64>,
    /// The `Date` of the last answer that had one (ms).
    date_ms: Cell<Option<i64>>,
    /// Buckets whose answers carry no rate-limit headers: nothing to pace on.
    unpaced: RefCell<Vec<&'static str>>,
    /// The scopes the org authorization server refused to grant the service app.
    refused: RefCell<Vec<String>>,
}

impl<'a, D: Doors> Client<'a, D> {
    /// A client of `config`'s org.
    pub fn new(doors: &'a D, config: &'a Config) -> Self {
        Client {
            doors,
            config,
            token: RefCell::new(None),
            buckets: RefCell::new(Vec::new()),
            requests: Cell::new(0),
            date_ms: Cell::new(None),
            unpaced: RefCell::new(Vec::new()),
            refused: RefCell::new(Vec::new()),
        }
    }

    /// The configuration the client works for.
    pub fn config(&self) -> &'a Config {
        self.config
    }

    /// The org's clock: the `Date` header of the last answer that carried one (RFC 9110
    /// §6.6.1: every origin server with a clock sends it), never the local clock.
    pub fn last_date_ms(&self) -> Option<i64> {
        self.date_ms.get()
    }

    /// The `Authorization` header of an API request.
    ///
    /// Token auth: the placeholder is the whole header value; the host fills it from the
    /// tenant file's `[secrets.okta_token]`, whose `prefix = "SSWS"` makes it `SSWS <token>`
    /// (developer.okta.com/docs/guides/create-an-api-token: "You need to prefix the value
    /// with the SSWS identifier"). Service app: the access token, `Authorization: Bearer
    /// <token>` (developer.okta.com/docs/api/openapi/okta-management/guides/overview,
    /// "OAuth 2.0 access token"), or `DPoP <token>` when the token is DPoP-bound.
    pub fn authorization(&self) -> Result<String, ConnectorError> {
        match self.config.auth {
            Auth::Token => Ok(format!("{{{{secret:{OKTA_TOKEN}}}}}")),
            Auth::ServiceApp => self.access_token(),
        }
    }

    /// A held access token, or a new one when none is held or it ends within a minute.
    fn access_token(&self) -> Result<String, ConnectorError> {
        if let Some(t) = self.token.borrow().as_ref() {
            if self.doors.now_ms() < t.renew_at_ms {
                return Ok(t.header.clone());
            }
        }
        let token = self.request_token()?;
        let header = token.header.clone();
        *self.token.borrow_mut() = Some(token);
        Ok(header)
    }

    /// The client-credentials request of a service app (developer.okta.com/docs/guides/
    /// implement-oauth-for-okta-serviceapp, "Get an access token": `POST {org}/oauth2/v1/token`
    /// with grant_type, scope, client_assertion_type and the signed client_assertion;
    /// guides/implement-oauth-for-okta: "Only the org authorization server can mint access
    /// tokens that contain Okta API scopes"). The host
    /// signs the assertion (`aud` = this URL, `iss` = `sub` = client id) for the placeholder,
    /// the whole field's value, unencoded; with DPoP it adds the proof and retries a
    /// `use_dpop_nonce` answer itself (developer.okta.com/docs/guides/dpop).
    ///
    /// The org authorization server "validates all of the requested scopes in the request
    /// against the service app's grants" (guides/implement-oauth-for-okta-serviceapp, "Grant
    /// allowed scopes") and refuses the whole request with `invalid_scope` when one is not
    /// granted (RFC 6749 §5.2: "exceeds the scope granted by the resource owner"). The scopes
    /// its description names are then left out and the token asked for once more without
    /// them: the run goes on without what they read (a 403 each, a partial event), and
    /// `check` says which permission is missing.
    fn request_token(&self) -> Result<Token, ConnectorError> {
        match self.request_token_once() {
            Err(ConnectorError::Permission(m)) if self.refused.borrow().is_empty() => {
                // The description, before the advice that names every scope.
                let said = m.split("): grant").next().unwrap_or_default();
                let refused: Vec<String> = SCOPES
                    .split(' ')
                    .filter(|s| said.contains(s))
                    .map(str::to_string)
                    .collect();
                if refused.is_empty() || refused.len() == SCOPES.split(' ').count() {
                    return Err(ConnectorError::Permission(m));
                }
                self.doors.log(
                    Level::Warn,
                    &format!(
                        "the service app is not granted {}: asking for a token without {}",
                        refused.join(", "),
                        if refused.len() == 1 { "it" } else { "them" }
                    ),
                );
                *self.refused.borrow_mut() = refused;
                self.request_token_once()
            }
            other => other,
        }
    }

    /// The scopes the org authorization server refused (none asked again since).
    pub fn refused_scopes(&self) -> Vec<String> {
        self.refused.borrow().clone()
    }

    fn request_token_once(&self) -> Result<Token, ConnectorError> {
        let url = format!("{}/oauth2/v1/token", self.config.org_url);
        let refused = self.refused.borrow().clone();
        let scope = SCOPES
            .split(' ')
            .filter(|s| !refused.iter().any(|r| r == s))
            .collect::<Vec<_>>()
            .join("%20");
        let body = format!(
            "grant_type=client_credentials&scope={scope}&client_assertion_type={ASSERTION_TYPE}&client_assertion={{{{assertion:{OKTA_KEY}}}}}"
        );
        let resp = self.send(HttpRequest::post_form(&url, &body))?;
        let json: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if resp.status != 200 {
            return Err(token_refused(self.config, &url, resp.status, &json));
        }
        let Some(access) = json["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(upstream(&url, "the token answer has no access_token"));
        };
        // token_type is "Bearer", or "DPoP" for a DPoP-bound token, which is then sent as
        // `Authorization: DPoP <token>` with a proof (RFC 9449 §7.1; Okta's DPoP guide,
        // "Make a request to a DPoP-protected resource").
        let scheme = match json["token_type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("dpop") => "DPoP",
            Some("bearer") | None => "Bearer",
            Some(other) => return Err(upstream(&url, format!("unknown token_type '{other}'"))),
        };
        if self.config.dpop && scheme != "DPoP" {
            self.doors.log(
                Level::Warn,
                "dpop = true but Okta issued a Bearer token: the app does not require DPoP",
            );
        }
        // Access tokens last an hour (expires_in 3600); renewed a minute before they end.
        let lifetime_s = json["expires_in"].as_i64().unwrap_or(3600).clamp(0, 86_400);
        let renew_at_ms = self.doors.now_ms() + (lifetime_s - 60).max(0) * 1000;
        Ok(Token {
            header: format!("{scheme} {access}"),
            renew_at_ms,
        })
    }

    /// A `GET` of an API URL with the credential; a service app's token refused (revoked,
    /// expired early) is renewed once. Returns the answer whatever its status.
    pub fn get(&self, url: &str) -> Result<HttpResponse, ConnectorError> {
        let mut renewed = false;
        loop {
            let headers = vec![
                ("Authorization".to_string(), self.authorization()?),
                ("Accept".to_string(), "application/json".to_string()),
            ];
            let resp = self.send(HttpRequest::get(url, headers))?;
            if resp.status == 401 && self.config.auth == Auth::ServiceApp && !renewed {
                self.token.borrow_mut().take();
                renewed = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Sends `req`: first waits when its bucket's window has no room left for us, then waits out
    /// 429 until `X-Rate-Limit-Reset` (plus jitter) and 503/504 with backoff.
    ///
    /// Okta's rate limits (developer.okta.com/docs/reference/rl-best-practices, "Check your
    /// rate limits with Okta's rate limit headers"): every answer carries
    /// `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (UTC epoch
    /// seconds) of its org-wide bucket, and a request past the limit answers 429; one token
    /// or app may use at most half a bucket by default (developer.okta.com/docs/reference/
    /// rl2-token-oauth: "each API token or OAuth 2.0 app can use up to 50% of a bucket's
    /// total rate limit"), and no `Retry-After` is documented (OKTA.md, "Rate limits").
    /// The headers describe the org-wide bucket (Okta's example there is
    /// `X-Rate-Limit-Limit: 1200`, the org-wide figure of most `/api/v1` endpoints, while
    /// a token is held to half of it), not the token's share, so they cannot tell us our
    /// share is spent: a connector counts its own requests of each window and stops at half the limit,
    /// and other integrations share the bucket: it also leaves the last 5% to them (and to
    /// itself, a 429 never), then waits for the window to turn.
    pub fn send(&self, req: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let mut attempt = 0;
        loop {
            self.pace(&req.url);
            self.requests.set(self.requests.get() + 1);
            let resp = self
                .doors
                .fetch(req.clone())
                .map_err(|e| ConnectorError::from_fetch("Okta", &req.url, &e))?;
            self.note_answer(&req.url, &resp);
            if !retry::is_retryable_status(resp.status) || attempt + 1 >= MAX_ATTEMPTS {
                return Ok(resp);
            }
            let wait = self.wait_for(&resp, attempt);
            self.doors.log(
                Level::Info,
                &format!(
                    "{} answered {}: waiting {} ms",
                    path_of(&req.url),
                    resp.status,
                    wait
                ),
            );
            self.doors.sleep_ms(wait);
            attempt += 1;
        }
    }

    /// How many requests of the bucket `key` may start now: our share of the window (half
    /// its limit) less what we used, and what is left for anyone less a 5% reserve, the
    /// smaller. One when nothing is known of the bucket or its window has turned: a probe
    /// that reads where the new window stands (a neighbour may have spent it already). No
    /// limit when the bucket's answers carry no rate-limit headers (nothing to pace on).
    fn room(&self, key: &str) -> u64 {
        let buckets = self.buckets.borrow();
        let Some(b) = buckets.iter().find(|b| b.path == key) else {
            return if self.unpaced.borrow().contains(&key) {
                u64::MAX
            } else {
                1
            };
        };
        if b.reset_ms <= self.doors.now_ms() {
            return 1;
        }
        let share = b.limit / 2;
        let reserve = (b.limit / 20).max(1);
        share
            .saturating_sub(b.ours)
            .min(b.remaining.saturating_sub(reserve))
    }

    /// Waits for the window to turn when the bucket of `url` has no room for us ([`room`]).
    fn pace(&self, url: &str) {
        let key = bucket_of(url);
        if self.room(key) > 0 {
            return;
        }
        let mut buckets = self.buckets.borrow_mut();
        let Some(b) = buckets.iter_mut().find(|b| b.path == key) else {
            return;
        };
        let now = self.doors.now_ms();
        let wait = (b.reset_ms.saturating_sub(now).max(0) as u64)
            .saturating_add(jitter(now))
            .min(MAX_WAIT_MS);
        self.doors.log(
            Level::Info,
            &format!(
                "{key}: {} of Okta's {} requests this window were ours and {} are left: waiting {wait} ms for the window to turn",
                b.ours, b.limit, b.remaining
            ),
        );
        self.doors.sleep_ms(wait);
        // A new window (or a reset too far to wait for): the next answer says where it stands.
        b.reset_ms = b.reset_ms.min(self.doors.now_ms());
    }

    /// `GET`s of `urls` with the credential, answers in order, whatever their status:
    /// batches of at most `max_concurrency` requests in flight (one `fetch_all` each), each
    /// batch no larger than the room its buckets have ([`room`]: never a 429 of our making),
    /// a 429 or 503/504 waited out and asked again, a service app's refused token renewed once.
    pub fn get_all(&self, urls: &[String]) -> Result<Vec<HttpResponse>, ConnectorError> {
        let mut answers: Vec<Option<HttpResponse>> = vec![None; urls.len()];
        let mut attempts = vec![0u32; urls.len()];
        let mut pending: Vec<usize> = (0..urls.len()).collect();
        let mut renewed = false;
        let max = self.config.max_concurrency.max(1) as usize;
        while !pending.is_empty() {
            // The batch: pending requests in order while their buckets have room.
            let mut planned: Vec<(&'static str, u64)> = Vec::new();
            let mut batch = Vec::new();
            for &i in &pending {
                if batch.len() == max {
                    break;
                }
                let key = bucket_of(&urls[i]);
                let used = match planned.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => n,
                    None => {
                        planned.push((key, 0));
                        &mut planned.last_mut().expect("just pushed").1
                    }
                };
                if *used >= self.room(key) {
                    break;
                }
                *used += 1;
                batch.push(i);
            }
            if batch.is_empty() {
                self.pace(&urls[pending[0]]);
                continue;
            }
            let auth = self.authorization()?;
            let reqs: Vec<HttpRequest> = batch
                .iter()
                .map(|&i| {
                    HttpRequest::get(
                        urls[i].as_str(),
                        vec![
                            ("Authorization".to_string(), auth.clone()),
                            ("Accept".to_string(), "application/json".to_string()),
                        ],
                    )
                })
                .collect();
            self.requests.set(self.requests.get() + reqs.len() as u64);
            let results = self.doors.fetch_all(reqs);
            let mut wait = 0u64;
            let mut refused = false;
            for (&i, result) in batch.iter().zip(results) {
                let resp = result.map_err(|e| ConnectorError::from_fetch("Okta", &urls[i], &e))?;
                self.note_answer(&urls[i], &resp);
                let retry = (retry::is_retryable_status(resp.status)
                    && attempts[i] + 1 < MAX_ATTEMPTS)
                    || (resp.status == 401 && self.config.auth == Auth::ServiceApp && !renewed);
                if !retry {
                    answers[i] = Some(resp);
                    continue;
                }
                if resp.status == 401 {
                    refused = true;
                } else {
                    wait = wait.max(self.wait_for(&resp, attempts[i]));
                    attempts[i] += 1;
                }
            }
            if refused {
                self.token.borrow_mut().take();
                renewed = true;
            }
            if wait > 0 {
                self.doors.log(
                    Level::Info,
                    &format!("Okta asked to slow down: waiting {wait} ms"),
                );
                self.doors.sleep_ms(wait);
            }
            pending.retain(|&i| answers[i].is_none());
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// Reads an answer's `Date` and rate-limit headers.
    fn note_answer(&self, url: &str, resp: &HttpResponse) {
        if let Some(ms) = resp.header("date").and_then(time::parse_http_date_ms) {
            self.date_ms.set(Some(ms));
        }
        self.note_bucket(url, resp);
    }

    /// Reads the rate-limit headers of an answer into its bucket, counting it as ours. Answers
    /// of one window may come back in any order (a batch): what is left is the least any of
    /// them said.
    fn note_bucket(&self, url: &str, resp: &HttpResponse) {
        let num = |h: &str| resp.header(h).and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(limit), Some(remaining), Some(reset)) = (
            num("x-rate-limit-limit"),
            num("x-rate-limit-remaining"),
            num("x-rate-limit-reset"),
        ) else {
            let key = bucket_of(url);
            let mut unpaced = self.unpaced.borrow_mut();
            if !unpaced.contains(&key) {
                unpaced.push(key);
            }
            return;
        };
        let reset_raw = i64::try_from(reset).unwrap_or(i64::MAX);
        let reset_ms = self.local_ms(resp, reset_raw);
        let path = bucket_of(url);
        let mut buckets = self.buckets.borrow_mut();
        // A 429 of the concurrency cap says nothing of the bucket: "when a request exceeds
        // the limit for concurrent requests, X-Rate-Limit-Limit, X-Rate-Limit-Remaining, and
        // X-Rate-Limit-Reset report the concurrent values" and its Reset "is only an
        // estimate" (developer.okta.com/docs/reference/rl-best-practices; rl2-monitor: the
        // first two are 0). Folded into the bucket it would park the run until the window
        // turns; `wait_for` waits out its Reset instead. So a 429 is noted only when it
        // carries the bucket's own limit (the bucket's window is spent).
        if resp.status == 429
            && !buckets
                .iter()
                .any(|b| b.path == path && b.limit == limit && limit > 0)
        {
            return;
        }
        match buckets.iter_mut().find(|b| b.path == path) {
            Some(b) if reset_raw > b.reset_raw => {
                // A later reset is a new window: our count starts again.
                (b.ours, b.limit, b.remaining) = (1, limit, remaining);
                (b.reset_ms, b.reset_raw) = (reset_ms, reset_raw);
            }
            Some(b) => {
                b.ours += 1;
                b.limit = limit;
                b.remaining = b.remaining.min(remaining);
            }
            None => buckets.push(Bucket {
                path,
                limit,
                remaining,
                reset_ms,
                reset_raw,
                ours: 1,
            }),
        }
    }

    /// An instant of Okta's clock (`X-Rate-Limit-Reset`, epoch seconds) on the local clock:
    /// now plus how far it is from the answer's `Date` (RFC 9110 §6.6.1, the origin's clock
    /// when it answered), so that a skewed local clock neither waits too long nor too little;
    /// as given without a `Date`.
    fn local_ms(&self, resp: &HttpResponse, okta_s: i64) -> i64 {
        let at = okta_s.saturating_mul(1000);
        match resp.header("date").and_then(time::parse_http_date_ms) {
            Some(date) => self.doors.now_ms().saturating_add(at.saturating_sub(date)),
            None => at,
        }
    }

    /// How long to wait after a retryable answer: a 429 until its `X-Rate-Limit-Reset` plus
    /// up to a second of jitter (so that runs sharing an org do not return at once; on a
    /// concurrency 429 the reset is only an estimate, OKTA.md "Rate limits"); otherwise, or
    /// without the header, the SDK's capped exponential backoff.
    fn wait_for(&self, resp: &HttpResponse, attempt: u32) -> u64 {
        let now = self.doors.now_ms();
        let reset = resp
            .header("x-rate-limit-reset")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|s| self.local_ms(resp, s));
        match reset {
            Some(at) if resp.status == 429 => (at.saturating_sub(now).max(0) as u64)
                .saturating_add(jitter(now))
                .min(MAX_WAIT_MS),
            _ => {
                let policy = retry::RetryPolicy {
                    max_wait_ms: MAX_WAIT_MS,
                    ..Default::default()
                };
                retry::wait_ms(&policy, attempt, Some(resp), now)
            }
        }
    }
}

/// The bucket a URL counts in. Okta counts its limits per endpoint bucket, org-wide
/// (developer.okta.com/docs/reference/rl2-*, the Management tables; OKTA.md, "Rate limits"):
/// `/api/v1/users` (list and search), `/api/v1/users/{id}` (one user), `/api/v1/groups`,
/// `/api/v1/logs`, every other `/api/v1` endpoint together (a user's factors, roles and
/// groups, a group's members and roles, the admins list), and the token endpoint. So the
/// per-id paths are folded into their bucket, as the Okta emulator counts them (`Bucket::of`).
pub fn bucket_of(url: &str) -> &'static str {
    let path = path_of(url);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return if path == "/oauth2/v1/token" {
            "/oauth2/v1/token"
        } else {
            "other"
        };
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["users"] => "/api/v1/users",
        ["users", _] => "/api/v1/users/{id}",
        ["groups"] => "/api/v1/groups",
        ["logs"] => "/api/v1/logs",
        _ => "/api/v1/*",
    }
}

/// Up to a second, from the clock.
fn jitter(now_ms: i64) -> u64 {
    (now_ms.unsigned_abs().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % 1000
}

/// The URL of the `rel="next"` link among the answer's `Link` headers (RFC 8288), as given:
/// Okta pages its lists by that header and the list ends when no `next` comes
/// (support.okta.com, "Pagination Overview": "Once there are no more Link Headers with
/// rel=\"next\" in the response, there are no more results"); the `after` cursor is opaque
/// (Okta's design principles, "Pagination"; OKTA.md, "Users": follow links, never build them).
pub fn next_link(resp: &HttpResponse) -> Option<String> {
    let values = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("link"));
    for (_, value) in values {
        let mut rest = value.as_str();
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>').map(|c| open + c) else {
                break;
            };
            let url = &rest[open + 1..close];
            let params_end = rest[close..].find('<').map_or(rest.len(), |n| close + n);
            let params = &rest[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let Some((name, v)) = p.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return Some(url.trim().to_string());
            }
            rest = &rest[params_end..];
        }
    }
    None
}

/// The error of a refused token request, with what to change.
fn token_refused(config: &Config, url: &str, status: u16, json: &Value) -> ConnectorError {
    let error = json["error"].as_str().unwrap_or("");
    let description = json["error_description"]
        .as_str()
        .map(first_line)
        .unwrap_or_default();
    // Errors of a token endpoint (RFC 6749 §5.2, which Okta's org authorization server
    // answers with): invalid_client for a client assertion it cannot verify, invalid_scope
    // for a scope not granted; invalid_dpop_proof and use_dpop_nonce (RFC 9449 §5, §8; Okta's
    // DPoP guide) for a missing or stale proof.
    let hint = match error {
        _ if status == 404 => {
            return ConnectorError::Config(format!(
                "{url} answered 404: nothing takes token requests there; check config key 'org_url'"
            ))
        }
        "invalid_client" => format!(
            "check client_id '{}' and that the public key of [secrets.{OKTA_KEY}] is registered on the service app",
            config.client_id
        ),
        "invalid_scope" => {
            // The credentials were accepted; a permission is missing (RFC 6749 §5.2).
            return ConnectorError::Permission(format!(
                "permission missing: {url} answered {status} invalid_scope ({description}): grant the scopes {SCOPES} on the app's Okta API Scopes tab"
            ));
        }
        "invalid_dpop_proof" | "use_dpop_nonce" => {
            "the app requires DPoP: set dpop = true in the tenant file's [secrets.okta_key]".into()
        }
        _ => "check the service app's settings and the tenant file's [secrets.okta_key]".into(),
    };
    ConnectorError::Auth(format!(
        "token refused: {url} answered {status} {error} ({description}): {hint}"
    ))
}

/// An upstream error with the advice to try later.
pub fn upstream(url: &str, why: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Upstream(format!("{}: {why}; run again later", path_of(url)))
}

/// The path and query of a URL (logs and errors name the request, not the org twice).
pub fn path_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |p| &url[after + p..])
}
