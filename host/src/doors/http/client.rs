//! The `http-fetch` door: real HTTP behind the tenant's egress policy.
//!
//! The policy is a value ([`EgressPolicy`]) handed in per tenant: which origins the
//! connector may reach, whether loopback `http://` is allowed (the emulator), the request
//! budget, timeouts and the response cap. Every request is checked before it leaves the
//! host; redirects are never followed (a 3xx goes back to the guest as a response); proxy
//! environment variables are ignored. Secret placeholders are filled here, by the rules of
//! [`super::secrets`]: a value as a whole form field of a form `POST` to an origin that
//! secret may reach, a header credential as the whole value of its header, a client
//! assertion signed by the host as a whole form field, and DPoP proofs added by the host
//! (refused for any other origin); anywhere else a placeholder is plain text. A
//! `use_dpop_nonce` answer to a request carrying a proof is retried once with the nonce (a
//! second request of the budget). A response is scrubbed of the tenant's secrets and of the
//! JWTs issued for it before the guest sees it, and so is every error text this door logs or
//! returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::policy::{EgressPolicy, Origin};
use super::secrets::{Prepared, Scrubber, SecretSet};

/// A request as the guest sent it (mirror of `http-fetch.request`).
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Option<Vec<u8>>,
}

/// A response for the guest (mirror of `http-fetch.response`).
#[derive(Clone, Debug)]
pub struct FetchResponse {
    /// Status.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Why no response (mirror of `http-fetch.fetch-error`).
#[derive(Clone, Debug, PartialEq)]
pub enum FetchFailure {
    /// Refused by policy.
    Denied(String),
    /// Timed out.
    Timeout,
    /// Over the response cap.
    TooLarge(u64),
    /// Network failure.
    Transport(String),
    /// Budget spent.
    BudgetExhausted,
}

/// Counters of one run's HTTP traffic.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Requests sent.
    pub sent: AtomicU64,
    /// Requests denied by policy.
    pub denied: AtomicU64,
    /// Responses by status code.
    pub by_status: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    /// Responses that carried a secret of the tenant (redacted before the guest saw them).
    pub echoed_secret: AtomicU64,
    /// Refusals, error answers, answers to filled secrets and unanswered requests, by origin
    /// (what `check` classifies).
    pub observed: std::sync::Mutex<super::observed::Observed>,
}

impl HttpCounters {
    fn count_status(&self, status: u16) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_insert(0) += 1;
        }
    }

    /// Responses by status code so far.
    pub fn statuses(&self) -> std::collections::BTreeMap<u16, u64> {
        self.by_status.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// What the requests met so far ([`super::observed`]).
    pub fn observed(&self) -> super::observed::Observed {
        self.observed.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn observe(&self, record: impl FnOnce(&mut super::observed::Observed)) {
        if let Ok(mut o) = self.observed.lock() {
            record(&mut o);
        }
    }
}

/// The `http-fetch` implementation for one run of one tenant.
pub struct HttpDoor {
    client: reqwest::Client,
    policy: EgressPolicy,
    secrets: Arc<SecretSet>,
    tenant: String,
    counters: Arc<HttpCounters>,
    semaphore: Arc<tokio::sync::Semaphore>,
    /// The last `DPoP-Nonce` each origin gave, for this run (RFC 9449 §8, §9).
    nonces: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// The client assertions this run issued, and the redaction of the tenant's secrets
    /// and of them (one pass over a response; `None` before the first assertion).
    assertions: std::sync::Mutex<(Vec<String>, Option<Scrubber>)>,
}

/// A response as received, and whether its request carried a DPoP proof.
struct Sent {
    response: FetchResponse,
    dpop: bool,
}

/// The value of header `name` (lower case) of a response.
fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a response asks for a DPoP nonce: a 400 whose JSON `error` is `use_dpop_nonce`
/// (RFC 9449 §8), or a 401 whose `WWW-Authenticate` says `error="use_dpop_nonce"` (§9).
fn asks_for_nonce(resp: &FetchResponse) -> bool {
    match resp.status {
        400 => serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .is_some_and(|v| v["error"] == "use_dpop_nonce"),
        401 => resp.headers.iter().any(|(k, v)| {
            k == "www-authenticate" && v.to_ascii_lowercase().contains("error=\"use_dpop_nonce\"")
        }),
        _ => false,
    }
}

impl HttpDoor {
    /// A door for `tenant` under `policy`, substituting `secrets`. `client` is shared across
    /// runs (connection pooling); it must be built by [`http_client`] or [`HttpClients`].
    pub fn new(
        client: reqwest::Client,
        policy: EgressPolicy,
        secrets: Arc<SecretSet>,
        tenant: String,
    ) -> Self {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(policy.max_concurrent.max(1)));
        HttpDoor {
            client,
            policy,
            secrets,
            tenant,
            counters: Arc::new(HttpCounters::default()),
            semaphore,
            nonces: Default::default(),
            assertions: Default::default(),
        }
    }

    /// This run's counters.
    pub fn counters(&self) -> Arc<HttpCounters> {
        self.counters.clone()
    }

    /// Sends several requests concurrently (bounded by the policy), results in order.
    pub async fn fetch_all(
        &self,
        reqs: Vec<FetchRequest>,
    ) -> Vec<Result<FetchResponse, FetchFailure>> {
        let n = reqs.len().max(1);
        futures::stream::iter(reqs)
            .map(|r| self.fetch(r))
            .buffered(n.min(self.policy.max_concurrent.max(1)))
            .collect()
            .await
    }

    /// Sends one request.
    pub async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse, FetchFailure> {
        let (url, origin) = match self.policy.check(&req.url) {
            Ok(ok) => ok,
            Err(why) => return Err(self.deny(&req.url, why)),
        };
        let body_len = req.body.as_ref().map_or(0, |b| b.len() as u64);
        if body_len > self.policy.max_request_bytes {
            let why = format!(
                "a request body of {body_len} bytes exceeds the cap of {} bytes",
                self.policy.max_request_bytes
            );
            return Err(self.deny(url.as_str(), why));
        }
        let origin_key = origin.to_string();
        // Kept for a DPoP nonce retry, which fills the request again (a fresh assertion
        // and proof): only when a key of this tenant adds proofs.
        let original = self
            .secrets
            .has_dpop()
            .then(|| (req.headers.clone(), req.body.clone()));
        let nonce = self.nonce(&origin_key);
        // Placeholders are filled by the rules of `secrets.rs` (form fields, a header
        // credential's header, assertions, DPoP proofs); anywhere else they are text.
        let prepared = self
            .secrets
            .prepare(
                &req.method,
                &url,
                &origin,
                req.headers,
                req.body,
                nonce.as_deref(),
            )
            .map_err(|why| self.deny(url.as_str(), why))?;
        let mut issued = prepared.issued.clone();
        self.remember_assertions(&prepared.assertions);
        let mut answer = self.send(&req.method, &url, &origin, prepared).await?;
        if let Some((headers, body)) = original.filter(|_| answer.dpop) {
            // RFC 9449 §8.2/§9: a server may hand a new nonce in any answer; the client
            // uses the latest one for its next proof to that server.
            let fresh = header_value(&answer.response.headers, "dpop-nonce");
            if let Some(fresh) = &fresh {
                self.set_nonce(&origin_key, fresh);
            }
            // §8 (authorization server: 400 with error "use_dpop_nonce") and §9 (resource
            // server: 401 with WWW-Authenticate DPoP error="use_dpop_nonce"): retried once,
            // with the nonce, a fresh assertion and a fresh proof. Okta answers the first
            // token request of a DPoP app so (developer.okta.com/docs/guides/dpop/
            // nonoktaresourceserver/main/, "Make a request to the /token endpoint").
            if fresh.is_some() && asks_for_nonce(&answer.response) {
                let retry = self
                    .secrets
                    .prepare(&req.method, &url, &origin, headers, body, fresh.as_deref())
                    .map_err(|why| self.deny(url.as_str(), why))?;
                issued.extend(retry.issued.iter().cloned());
                self.remember_assertions(&retry.assertions);
                answer = self.send(&req.method, &url, &origin, retry).await?;
                if let Some(next) = header_value(&answer.response.headers, "dpop-nonce") {
                    self.set_nonce(&origin_key, &next);
                }
            }
        }
        Ok(self.scrubbed(answer.response, &issued))
    }

    /// The last DPoP nonce `origin` gave in this run.
    fn nonce(&self, origin: &str) -> Option<String> {
        self.nonces.lock().ok().and_then(|n| n.get(origin).cloned())
    }

    fn set_nonce(&self, origin: &str, nonce: &str) {
        if let Ok(mut n) = self.nonces.lock() {
            n.insert(origin.to_string(), nonce.to_string());
        }
    }

    /// Adds client assertions to those redacted from every response of the run.
    fn remember_assertions(&self, assertions: &[String]) {
        if assertions.is_empty() {
            return;
        }
        if let Ok(mut run) = self.assertions.lock() {
            run.0.extend(assertions.iter().cloned());
            // A run asks for a token about once an hour: the list stays short. Kept to the
            // last 64 in any case (a token endpoint answering with an error, retried).
            let excess = run.0.len().saturating_sub(64);
            run.0.drain(..excess);
            run.1 = Some(self.secrets.scrubber_with(&run.0));
        }
    }

    /// Sends one filled request (counted against the budget) and reads its answer.
    async fn send(
        &self,
        method: &str,
        url: &url::Url,
        origin: &Origin,
        prepared: Prepared,
    ) -> Result<Sent, FetchFailure> {
        let Prepared {
            headers,
            body,
            carried_secret,
            dpop,
            ..
        } = prepared;
        let previous = self.counters.sent.fetch_add(1, Ordering::Relaxed);
        if previous >= self.policy.max_requests {
            self.counters.sent.fetch_sub(1, Ordering::Relaxed);
            return Err(FetchFailure::BudgetExhausted);
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| self.deny(url.as_str(), format!("'{method}' is not an HTTP method")))?;
        let _permit = self
            .semaphore
            .acquire()
            .await
            .map_err(|_| FetchFailure::Transport("the host is shutting down".into()))?;
        // An origin the policy resolves to a fixed socket (the simulation's stable origins,
        // never a tenant file's) is sent there, with `Host` naming the origin as curl's
        // `--resolve` does; everything else about the request is the connector's URL.
        let (target, host) = match self.policy.resolved(origin) {
            Some(addr) => {
                let mut target = url.clone();
                // An http(s) URL always takes an IP host and a port.
                let _ = target.set_ip_host(addr.ip());
                let _ = target.set_port(Some(addr.port()));
                let host = origin.to_string();
                let host = host
                    .split_once("://")
                    .map_or(host.clone(), |(_, h)| h.to_string());
                (target, Some(host))
            }
            None => (url.clone(), None),
        };
        let mut builder = self
            .client
            .request(method, target)
            .timeout(self.policy.request_timeout);
        if let Some(host) = host {
            builder = builder.header(reqwest::header::HOST, host);
        }
        for (k, v) in &headers {
            let lower = k.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "host" | "content-length" | "connection" | "transfer-encoding"
            ) {
                continue;
            }
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            builder = builder.body(b);
        }
        let mut resp = builder
            .send()
            .await
            .map_err(|e| self.classify(url.as_str(), &e))?;
        let status = resp.status().as_u16();
        self.counters.count_status(status);
        // A 4xx answering a filled secret is observed with its OAuth error code once the body
        // is read (`check` tells a scope not granted from refused credentials); every other
        // kept answer now.
        let oauth_answer = carried_secret && (400..500).contains(&status);
        let observe = |oauth_error: Option<&'static str>| {
            if status >= 400 || carried_secret {
                let origin = origin.to_string();
                self.counters
                    .observe(|o| o.answer_oauth(&origin, status, carried_secret, oauth_error));
            }
        };
        if !oauth_answer {
            observe(None);
        }
        let cap = self.policy.max_response_bytes;
        if resp.content_length().is_some_and(|len| len > cap) {
            if oauth_answer {
                observe(None);
            }
            return Err(FetchFailure::TooLarge(cap));
        }
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        let mut body = Vec::new();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    if oauth_answer {
                        observe(None);
                    }
                    return Err(self.classify(url.as_str(), &e));
                }
            };
            if body.len() as u64 + chunk.len() as u64 > cap {
                if oauth_answer {
                    observe(None);
                }
                return Err(FetchFailure::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        if oauth_answer {
            observe(super::observed::oauth_error_of(&body));
        }
        Ok(Sent {
            response: FetchResponse {
                status,
                headers,
                body,
            },
            dpop,
        })
    }

    /// The response without the tenant's secrets, the run's client assertions and the
    /// JWTs `issued` for this request (its assertion and DPoP proofs): a server that
    /// echoes a request (a token endpoint quoting the body in its error) must not hand a
    /// secret or a signed credential to the guest.
    fn scrubbed(&self, mut resp: FetchResponse, issued: &[String]) -> FetchResponse {
        // The tenant's secrets and the run's assertions in one pass (most responses); the
        // JWTs of this request (its proof) in a second pass when there are any.
        let run = self
            .assertions
            .lock()
            .ok()
            .and_then(|a| a.1.clone())
            .unwrap_or_else(|| self.secrets.scrubber().clone());
        let this_request = if issued.is_empty() {
            Scrubber::default()
        } else {
            Scrubber::new(issued.iter().map(String::as_str))
        };
        let mut found = false;
        for scrub in [&run, &this_request] {
            if let std::borrow::Cow::Owned(clean) = scrub.scrub_bytes(&resp.body) {
                resp.body = clean;
                found = true;
            }
            for (_, v) in &mut resp.headers {
                if let Some(clean) = scrub.redacted(v) {
                    *v = clean;
                    found = true;
                }
            }
        }
        if found && self.counters.echoed_secret.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                tenant = %self.tenant,
                status = resp.status,
                "a server sent a secret of this tenant back in a response; the host redacted it before the connector saw it"
            );
        }
        resp
    }

    fn deny(&self, url: &str, why: String) -> FetchFailure {
        self.counters.denied.fetch_add(1, Ordering::Relaxed);
        // The reason can quote the guest's own text (a method name, say).
        let why = self.secrets.scrubber().clean(why);
        // Log the origin only: query strings can carry ids.
        let shown = url::Url::parse(url)
            .ok()
            .and_then(|u| Origin::of(&u))
            .map(|o| o.to_string())
            .unwrap_or_else(|| "<unparsable URL>".into());
        tracing::warn!(tenant = %self.tenant, target = %shown, reason = %why, "egress denied");
        self.counters.observe(|o| o.deny(&shown, &why));
        FetchFailure::Denied(why)
    }
}

impl HttpDoor {
    fn classify(&self, url: &str, e: &reqwest::Error) -> FetchFailure {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(np) = s.downcast_ref::<crate::doors::http::netguard::NonPublicAddress>() {
                return self.deny(url, np.to_string());
            }
            source = s.source();
        }
        let origin = url::Url::parse(url)
            .ok()
            .and_then(|u| Origin::of(&u))
            .map(|o| o.to_string())
            .unwrap_or_else(|| "<unparsable URL>".into());
        if e.is_timeout() {
            self.counters
                .observe(|o| o.unanswered(&origin, "timed out"));
            FetchFailure::Timeout
        } else {
            // Without the URL: it is the guest's own and errors end up in logs.
            let mut msg = self.secrets.scrubber().clean(e.without_url_ref_string());
            truncate_at_char_boundary(&mut msg, 300);
            self.counters.observe(|o| o.unanswered(&origin, &msg));
            FetchFailure::Transport(msg)
        }
    }
}

/// Cuts `text` to at most `max` bytes without splitting a character (`String::truncate` panics
/// inside one, and error texts from a server can hold any character).
pub(crate) fn truncate_at_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

trait WithoutUrl {
    fn without_url_ref_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_string(&self) -> String {
        let mut parts = Vec::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(s) = source {
            parts.push(s.to_string());
            source = s.source();
        }
        if parts.is_empty() {
            if self.is_connect() {
                "connection failed".into()
            } else {
                "request failed".into()
            }
        } else {
            parts.join(": ")
        }
    }
}

/// The HTTP client could not be built (a host fault: the TLS setup of this build).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client (connect timeout {} s): {reason}; this host build cannot make requests: report it with the host version", connect_timeout.as_secs_f64())]
pub struct ClientBuildError {
    /// The connect timeout asked for.
    pub connect_timeout: Duration,
    /// reqwest's reason, with its causes.
    pub reason: String,
}

/// The HTTP client every door shares: rustls, no redirects, no proxies from the
/// environment, no cookies, connection pooling, and names resolved by `resolver` with every
/// non-public answer refused. A client that cannot be built is an error: there is no
/// fallback (a default client would follow redirects, use proxies and resolve names
/// without the public-address check).
pub fn http_client(
    connect_timeout: Duration,
    resolver: Arc<dyn crate::doors::http::netguard::NameResolver>,
) -> Result<reqwest::Client, ClientBuildError> {
    build_client(client_builder(connect_timeout, resolver), connect_timeout)
}

fn client_builder(
    connect_timeout: Duration,
    resolver: Arc<dyn crate::doors::http::netguard::NameResolver>,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(
            crate::doors::http::netguard::PublicOnlyResolver::new(resolver),
        ))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(64)
        .user_agent(concat!("connector-host/", env!("CARGO_PKG_VERSION")))
}

fn build_client(
    builder: reqwest::ClientBuilder,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ClientBuildError> {
    builder.build().map_err(|e| {
        let mut reason = e.to_string();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        ClientBuildError {
            connect_timeout,
            reason,
        }
    })
}

/// The shared HTTP clients of a runtime, one per connect timeout in use: reqwest fixes the
/// connect timeout per client, and each tenant's `[limits] connect_timeout_secs` must hold
/// for its runs. Tenants with the same timeout share one client (and its connection pool).
/// At most [`HttpClients::MAX_SHARED`] clients are kept; a run with yet another timeout
/// gets a client of its own.
pub struct HttpClients {
    resolver: Arc<dyn crate::doors::http::netguard::NameResolver>,
    shared: std::sync::Mutex<std::collections::BTreeMap<Duration, reqwest::Client>>,
}

impl HttpClients {
    /// Most distinct connect timeouts whose clients are kept and shared.
    pub const MAX_SHARED: usize = 16;

    /// Clients resolving through `resolver`; the one for `first_connect_timeout` is built
    /// now, so a host that cannot build clients fails here, at start, not in a run.
    pub fn new(
        resolver: Arc<dyn crate::doors::http::netguard::NameResolver>,
        first_connect_timeout: Duration,
    ) -> Result<HttpClients, ClientBuildError> {
        let clients = HttpClients {
            resolver,
            shared: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        };
        clients.for_connect_timeout(first_connect_timeout)?;
        Ok(clients)
    }

    /// The client whose connect timeout is `connect_timeout`.
    pub fn for_connect_timeout(
        &self,
        connect_timeout: Duration,
    ) -> Result<reqwest::Client, ClientBuildError> {
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = shared.get(&connect_timeout) {
            return Ok(client.clone());
        }
        let client = http_client(connect_timeout, self.resolver.clone())?;
        if shared.len() < Self::MAX_SHARED {
            shared.insert(connect_timeout, client.clone());
        }
        Ok(client)
    }

    /// The connect timeouts of the clients kept so far, shortest first.
    pub fn connect_timeouts(&self) -> Vec<Duration> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostile_error_text_with_multibyte_characters_is_cut_without_panicking() {
        // 299 ASCII bytes, then a 4-byte character straddling byte 300.
        let mut text = format!("{}𝔊 and more", "x".repeat(299));
        super::truncate_at_char_boundary(&mut text, 300);
        assert_eq!(text, "x".repeat(299));
        let mut short = "héllo".to_string();
        super::truncate_at_char_boundary(&mut short, 300);
        assert_eq!(short, "héllo");
    }

    use super::*;

    #[test]
    fn operator_a_client_that_cannot_be_built_is_an_error_not_a_permissive_default() {
        let resolver: Arc<dyn crate::doors::http::netguard::NameResolver> =
            Arc::new(crate::doors::http::netguard::StaticResolver::default());
        // The only setting reqwest can refuse here is TLS: ask for no TLS version at all.
        let impossible = client_builder(Duration::from_secs(3), resolver.clone())
            .min_tls_version(reqwest::tls::Version::TLS_1_3)
            .max_tls_version(reqwest::tls::Version::TLS_1_2);
        let err = build_client(impossible, Duration::from_secs(3)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot build the HTTP client (connect timeout 3 s): builder error")
                && text.contains("empty supported tls versions")
                && !text.contains('\n'),
            "{text}"
        );
        // The real settings build, and the signature makes every caller handle a failure.
        let built: Result<reqwest::Client, ClientBuildError> =
            http_client(Duration::from_secs(3), resolver);
        assert!(built.is_ok());
    }

    #[test]
    fn operator_connect_timeout_picks_a_client_built_with_it() {
        let clients = HttpClients::new(
            Arc::new(crate::doors::http::netguard::StaticResolver::default()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(clients.connect_timeouts(), [Duration::from_secs(10)]);
        clients.for_connect_timeout(Duration::from_secs(1)).unwrap();
        clients
            .for_connect_timeout(Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            clients.connect_timeouts(),
            [Duration::from_secs(1), Duration::from_secs(10)]
        );
        for secs in 100..100 + HttpClients::MAX_SHARED as u64 {
            clients
                .for_connect_timeout(Duration::from_secs(secs))
                .unwrap();
        }
        assert_eq!(clients.connect_timeouts().len(), HttpClients::MAX_SHARED);
    }

    /// A loopback port whose accept queue is full and never drained: connects to it hang
    /// (Linux drops the SYN), like a blackholed address.
    async fn blackhole() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>, u16) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut queued = Vec::new();
        for _ in 0..16 {
            match tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            {
                Ok(Ok(stream)) => queued.push(stream),
                Ok(Err(e)) => panic!("the filler connection failed: {e}"),
                Err(_) => return (listener, queued, port),
            }
        }
        panic!("the accept queue never filled");
    }

    #[tokio::test]
    async fn operator_connect_timeout_of_the_client_is_the_one_asked_for() {
        let (_listener, _queued, port) = blackhole().await;
        let clients = HttpClients::new(
            Arc::new(crate::doors::http::netguard::StaticResolver::default()),
            Duration::from_secs(10),
        )
        .unwrap();
        let client = clients.for_connect_timeout(Duration::from_secs(1)).unwrap();
        let err = client
            .get(format!("http://127.0.0.1:{port}/"))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap_err();
        // The connect timeout fired, not the 60 s request timeout.
        assert!(err.is_connect() && err.is_timeout(), "{err:?}");
    }
}
