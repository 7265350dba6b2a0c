//! The core of every sink that pushes events to a platform over HTTP ([`PushSink`]); the
//! wire formats live beside it ([`super::sekoia`], [`super::http`]).
//!
//! **Nothing lost.** Written events are buffered in order. A full batch (`batch_size`
//! events) is sent from [`EventSink::write`], the remainder from
//! [`EventSink::flush_durable`]; a batch leaves the buffer only when the receiver answered it
//! with a 2xx. So `flush_durable` returns `Ok` only when every event written before it was
//! acknowledged, and the `kv-checkpoint` door, which calls it before every cursor commit,
//! never moves a cursor past an event the receiver did not take. Events are never reordered
//! or dropped; a batch that was sent but not acknowledged (a timeout, a connection cut after
//! the receiver took it) is sent again: delivery is at least once.
//!
//! **Retries.** 429 waits for the receiver's `Retry-After` (seconds or an HTTP-date, RFC 9110
//! section 10.2.3), or backs off when there is none; 5xx (honouring a `Retry-After` too),
//! timeouts and broken connections back off (exponential from `backoff_initial_ms`, capped at `backoff_max_ms`, with jitter
//! so many tenants do not retry in step). A batch is given up after `max_attempts`, or when
//! the next wait would pass `max_retry_ms` since its first attempt. Every wait comes from
//! outside (the receiver's `Retry-After`, the tenant file's `[sink.delivery]`), so each is
//! bounded: a `Retry-After` is read as at most [`MAX_RETRY_AFTER`] (a day, longer than any
//! retry budget the tenant file accepts: `[sink.delivery]` durations are capped at a day), the delivery
//! settings are capped at load, and the budget check ([`wait_fits_budget`]) adds with
//! checked arithmetic, so no answer can overflow a duration. Any other answer fails
//! at once: another 4xx with the receiver's message (one line, at most 300 bytes), a 3xx
//! naming its `Location` (redirects are never followed: the sink's URL must be the final
//! one), an address that is not public. A failed sink stays failed: every later `write` and
//! `flush_durable` of it returns the same error, so the run ends with its cursor behind the
//! first batch that was not delivered, and the next run (a new sink) sends it again.
//!
//! **Egress.** The same rules as the connector's HTTP: the URL must be https (http only to
//! a loopback address when the tenant's `[egress] allow_loopback_http` is set, for tests),
//! IP literals must be public, names are resolved by the public-only resolver
//! ([`crate::doors::http::netguard::PublicOnlyResolver`]), no redirects, no proxies, and at
//! most `max_response_bytes` of an answer is read. The sink's origin is the host's own
//! destination: it is not added to the connector's allowlist.
//!
//! **The credential** is sent in one header, marked sensitive, and scrubbed from every
//! message this module makes (the receiver's text, transport errors, a `Location`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};

use super::sink::{EventSink, SinkError};
use crate::doors::http::client::{http_client, truncate_at_char_boundary};
use crate::doors::http::netguard::{NameResolver, NonPublicAddress};
use crate::doors::http::secrets::{weakness, Scrubber};
use crate::doors::http::{EgressPolicy, Origin};

/// Longest receiver message quoted in an error, bytes.
const MAX_MESSAGE_BYTES: usize = 300;

/// Most receipts [`PushSink::receipts`] keeps (the first ones): one per batch, so a run of
/// a million events at the default batch size fits.
pub const MAX_RECEIPTS: usize = 10_000;

/// Most waits [`PushStats::waits`] keeps (the first ones).
pub const MAX_RECORDED_WAITS: usize = 64;

/// The longest wait a receiver's `Retry-After` is read as: one day. A longer one (up to a
/// number no integer type holds) is clamped to it, which is past every retry budget
/// (`max_retry_ms` is at most a day), so the batch fails at once
/// instead of waiting.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How a push sink batches, waits and retries: plain values (the tenant file's `[sink]` and
/// `[sink.delivery]` become these in [`crate::assembly`]). [`PushOptions::default`] is what a
/// tenant file gets when it sets nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct PushOptions {
    /// Events per request.
    pub batch_size: usize,
    /// One request's whole-exchange timeout.
    pub request_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// First backoff after a failure (doubled at each retry, with jitter).
    pub backoff_initial: Duration,
    /// Longest backoff (also the cap of a 429 without `Retry-After`).
    pub backoff_max: Duration,
    /// Most attempts per batch.
    pub max_attempts: u32,
    /// Longest time one batch may spend being retried.
    pub max_retry_time: Duration,
    /// Most bytes of an answer read (the rest is ignored).
    pub max_response_bytes: usize,
    /// Permit `http://` to a loopback address (tests only; the tenant's
    /// `[egress] allow_loopback_http`).
    pub allow_loopback_http: bool,
}

impl Default for PushOptions {
    /// What a tenant file gets when its `[sink]` sets nothing (`[sink.delivery]`'s defaults;
    /// the tenant file's values are turned into these by [`crate::assembly::push_options`]).
    fn default() -> Self {
        PushOptions {
            batch_size: 100,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_attempts: 10,
            max_retry_time: Duration::from_secs(300),
            max_response_bytes: 64 * 1024,
            allow_loopback_http: false,
        }
    }
}

/// How a batch of events becomes a request body, and what a receiver's acknowledgement
/// carries that is worth keeping.
pub trait PushFormat: Send + Sync + 'static {
    /// The body's `Content-Type`.
    fn content_type(&self) -> &'static str;
    /// The body of a batch. Each event is one JSON object on one line (the `emit-event`
    /// door checks that before the sink sees it).
    fn body(&self, events: &[String]) -> Vec<u8>;
    /// What a 2xx answer's body says worth recording (Sekoia.io's `task_id`).
    fn receipt(&self, _body: &[u8]) -> Option<String> {
        None
    }
    /// The sink's kind as the operator's log names it (`HTTP`, `Sekoia.io`).
    fn kind(&self) -> &'static str {
        "HTTP"
    }
}

/// What a push sink did, for reports and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushStats {
    /// Batches the receiver acknowledged.
    pub batches_acknowledged: u64,
    /// Events in those batches.
    pub events_acknowledged: u64,
    /// Requests sent (first attempts and retries).
    pub attempts: u64,
    /// Attempts answered 429.
    pub throttled: u64,
    /// Attempts answered 5xx or lost to a timeout or a broken connection.
    pub transient_failures: u64,
    /// The waits before retries, in order (the first [`MAX_RECORDED_WAITS`]).
    pub waits: Vec<Duration>,
}

/// Where a push sink sends, and with which credential.
pub struct PushTarget {
    /// The URL every batch is POSTed to.
    pub url: String,
    /// The header carrying the credential.
    pub header: String,
    /// The header's whole value (e.g. `Bearer <key>`).
    pub value: String,
    /// The secret itself (scrubbed from every message; may equal `value`).
    pub secret: String,
}

/// A sink delivering batches of events to a platform over HTTP; see the module doc.
pub struct PushSink {
    client: reqwest::Client,
    url: url::Url,
    origin: Origin,
    auth: (HeaderName, HeaderValue),
    format: Box<dyn PushFormat>,
    options: PushOptions,
    scrub: Scrubber,
    pending: tokio::sync::Mutex<Pending>,
    written: AtomicU64,
    stats: std::sync::Mutex<PushStats>,
    receipts: std::sync::Mutex<Vec<String>>,
}

/// Events written and not yet acknowledged, oldest first.
#[derive(Default)]
struct Pending {
    events: VecDeque<String>,
    /// Events acknowledged so far (the index of `events[0]` in the sink's life).
    acknowledged: u64,
    /// Why the sink failed, once it has.
    failed: Option<String>,
}

/// How one attempt ended.
enum Attempt {
    Acknowledged(Option<String>),
    /// Retry after the receiver's `Retry-After`, or a backoff when it sent none.
    Throttled(Option<Duration>),
    /// Retry after the receiver's `Retry-After` (a 503 may send one), or a backoff.
    Transient(String, Option<Duration>),
    /// Do not retry.
    Refused(String),
}

impl PushSink {
    /// A sink sending to `target` in `format`. Refuses a URL the egress rules refuse, and a
    /// header name or value that cannot be sent; names are resolved by `resolver` behind the
    /// public-only check.
    pub fn new(
        target: PushTarget,
        format: Box<dyn PushFormat>,
        options: PushOptions,
        resolver: Arc<dyn NameResolver>,
    ) -> Result<PushSink, SinkError> {
        let scrub = Scrubber::new(secret_parts(&target.secret).iter().map(String::as_str));
        let origin =
            Origin::parse(&target.url).map_err(|e| SinkError(scrub.clean(e.to_string())))?;
        let mut policy = EgressPolicy::new(vec![origin]);
        policy.allow_loopback_http = options.allow_loopback_http;
        let (url, origin) = policy.check(&target.url).map_err(|why| {
            SinkError(scrub.clean(format!(
                "the sink's URL is refused by the egress rules: {why}"
            )))
        })?;
        let name = HeaderName::from_bytes(target.header.as_bytes()).map_err(|_| {
            SinkError(format!(
                "'{}' is not an HTTP header name: name the credential's header, e.g. Authorization",
                target.header
            ))
        })?;
        let mut value = HeaderValue::from_str(&target.value).map_err(|_| {
            SinkError(format!(
                "the value of the sink's {} header has a character a header cannot carry (a newline or a control character): check the secret",
                target.header
            ))
        })?;
        value.set_sensitive(true);
        if options.batch_size == 0 || options.max_attempts == 0 {
            return Err(SinkError(
                "a push sink needs batch_size and max_attempts of at least 1".into(),
            ));
        }
        let client =
            http_client(options.connect_timeout, resolver).map_err(|e| SinkError(e.to_string()))?;
        Ok(PushSink {
            client,
            url,
            origin,
            auth: (name, value),
            format,
            options,
            scrub,
            pending: tokio::sync::Mutex::new(Pending::default()),
            written: AtomicU64::new(0),
            stats: std::sync::Mutex::new(PushStats::default()),
            receipts: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The receiver's origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// What the receivers' acknowledgements carried worth keeping, in order (Sekoia.io: the
    /// `task_id` of each accepted batch, for the run report); the first [`MAX_RECEIPTS`].
    pub fn receipts(&self) -> Vec<String> {
        lock(&self.receipts).clone()
    }

    /// Counts of what this sink did.
    pub fn stats(&self) -> PushStats {
        lock(&self.stats).clone()
    }

    /// Events the receiver acknowledged.
    pub fn acknowledged(&self) -> u64 {
        lock(&self.stats).events_acknowledged
    }

    /// Sends full batches (all of the buffer when `everything`) until the buffer is empty or
    /// holds less than a batch. The first failure fails the sink for good.
    async fn drain(&self, pending: &mut Pending, everything: bool) -> Result<(), SinkError> {
        if let Some(why) = &pending.failed {
            return Err(SinkError(format!("an earlier delivery failed: {why}")));
        }
        let size = self.options.batch_size;
        while pending.events.len() >= size || (everything && !pending.events.is_empty()) {
            let n = pending.events.len().min(size);
            // The events stay in the buffer until acknowledged; the body is built once per
            // batch and resent as it is.
            let body = Bytes::from(self.format.body(&pending.events.make_contiguous()[..n]));
            let first = pending.acknowledged + 1;
            match self.deliver(body).await {
                Ok(receipt) => {
                    pending.events.drain(..n);
                    pending.acknowledged += n as u64;
                    let mut stats = lock(&self.stats);
                    stats.batches_acknowledged += 1;
                    stats.events_acknowledged += n as u64;
                    let mut receipts = lock(&self.receipts);
                    if let Some(r) = receipt.filter(|_| receipts.len() < MAX_RECEIPTS) {
                        // The receiver's text: a receiver echoing the key as its task id
                        // must not get it into the run report.
                        receipts.push(self.scrub.clean(r));
                    }
                }
                Err(why) => {
                    let why = self.scrub.clean(format!(
                        "the receiver at {} did not take events {first}-{} ({n} events): {why}; the cursor stays behind them and the next run sends them again",
                        self.origin,
                        first + n as u64 - 1
                    ));
                    pending.failed = Some(why.clone());
                    return Err(SinkError(why));
                }
            }
        }
        Ok(())
    }

    /// Sends one batch until it is acknowledged or given up; `Ok` carries its receipt.
    async fn deliver(&self, body: Bytes) -> Result<Option<String>, String> {
        let o = &self.options;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            lock(&self.stats).attempts += 1;
            // Every text below may quote the receiver: scrubbed before it is logged or kept.
            let (wait, why) = match self.attempt(body.clone()).await {
                Attempt::Acknowledged(receipt) => return Ok(receipt),
                Attempt::Refused(why) => return Err(self.scrub.clean(why)),
                Attempt::Throttled(after) => {
                    lock(&self.stats).throttled += 1;
                    match after {
                        Some(after) => (after, format!("HTTP 429, Retry-After {after:?}")),
                        None => (backoff(o, attempt), "HTTP 429".to_string()),
                    }
                }
                Attempt::Transient(why, after) => {
                    lock(&self.stats).transient_failures += 1;
                    (
                        after.unwrap_or_else(|| backoff(o, attempt)),
                        self.scrub.clean(why),
                    )
                }
            };
            if attempt >= o.max_attempts {
                return Err(format!(
                    "gave up after {attempt} attempts (max_attempts); the last: {why}"
                ));
            }
            if !wait_fits_budget(started.elapsed(), wait, o.max_retry_time) {
                return Err(format!(
                    "gave up after {attempt} attempts: waiting {wait:?} more would pass max_retry_ms ({:?}); the last: {why}",
                    o.max_retry_time
                ));
            }
            {
                let mut stats = lock(&self.stats);
                if stats.waits.len() < MAX_RECORDED_WAITS {
                    stats.waits.push(wait);
                }
            }
            // Each wait is said at warn (issue 19): a receiver that is down holds the run for
            // up to max_retry_ms, and the operator should see why, not a silent pause.
            let (kind, retried) = (self.format.kind(), started.elapsed());
            tracing::warn!(
                sink = kind,
                origin = %self.origin,
                attempt,
                wait_ms = wait.as_millis() as u64,
                retried_ms = retried.as_millis() as u64,
                "the {kind} sink's receiver at {} did not take a batch: {why}; attempt {attempt} of {}, waiting {} before the next; retrying for {} so far (gives up after max_retry_ms, {})",
                self.origin,
                o.max_attempts,
                seconds(wait),
                seconds(retried),
                seconds(o.max_retry_time),
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One request, classified.
    async fn attempt(&self, body: Bytes) -> Attempt {
        let request = self
            .client
            .post(self.url.clone())
            .timeout(self.options.request_timeout)
            .header(CONTENT_TYPE, self.format.content_type())
            .header(self.auth.0.clone(), self.auth.1.clone())
            .body(body);
        let mut resp = match request.send().await {
            Ok(resp) => resp,
            Err(e) => return self.transport_failure(&e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        // The answer, capped; a 2xx whose body breaks off is not an acknowledgement (the
        // batch is sent again: at least once).
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.options.max_response_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= self.options.max_response_bytes {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if (200..300).contains(&status) => return self.transport_failure(&e),
                Err(_) => break,
            }
        }
        match status {
            200..=299 => Attempt::Acknowledged(self.format.receipt(&body)),
            300..=399 => Attempt::Refused(match location {
                Some(to) => {
                    let mut to = one_line(&to);
                    truncate_at_char_boundary(&mut to, MAX_MESSAGE_BYTES);
                    format!("HTTP {status} redirecting to {to}; redirects are not followed: set the sink's URL to the final address")
                }
                None => format!("HTTP {status} (a redirect without a Location); redirects are not followed: set the sink's URL to the final address"),
            }),
            429 => Attempt::Throttled(retry_after),
            500..=599 => Attempt::Transient(
                format!("HTTP {status}: {}", receiver_message(&body)),
                retry_after,
            ),
            _ => Attempt::Refused(format!(
                "HTTP {status}: {}; fix what the receiver names (the URL, the credential, the events)",
                receiver_message(&body)
            )),
        }
    }

    fn transport_failure(&self, e: &reqwest::Error) -> Attempt {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            if let Some(np) = s.downcast_ref::<NonPublicAddress>() {
                return Attempt::Refused(format!("egress denied: {np}"));
            }
            source = s.source();
        }
        if e.is_timeout() {
            return Attempt::Transient(
                format!(
                    "no answer within the request timeout of {:?}",
                    self.options.request_timeout
                ),
                None,
            );
        }
        // Without the URL (it is in every message already) and with its causes.
        let mut parts = Vec::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = source {
            parts.push(s.to_string());
            source = s.source();
        }
        let mut text = if parts.is_empty() {
            "the request failed".to_string()
        } else {
            one_line(&parts.join(": "))
        };
        truncate_at_char_boundary(&mut text, MAX_MESSAGE_BYTES);
        Attempt::Transient(format!("transport: {text}"), None)
    }
}

#[async_trait::async_trait]
impl EventSink for PushSink {
    async fn write(&self, events: Vec<String>) -> Result<(), SinkError> {
        let mut pending = self.pending.lock().await;
        if let Some(why) = &pending.failed {
            return Err(SinkError(format!("an earlier delivery failed: {why}")));
        }
        self.written
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        pending.events.extend(events);
        self.drain(&mut pending, false).await
    }

    async fn flush_durable(&self) -> Result<(), SinkError> {
        let mut pending = self.pending.lock().await;
        self.drain(&mut pending, true).await
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn receipts(&self) -> Vec<String> {
        PushSink::receipts(self)
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A duration as the log says it: `2.5 s`, `300 s`.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The wait before retry `attempt` (1 = after the first failure): `backoff_initial` doubled
/// per attempt, capped at `backoff_max`, then "equal jitter" (half fixed, half random) so
/// tenants throttled together do not retry together.
fn backoff(o: &PushOptions, attempt: u32) -> Duration {
    jittered_backoff(o, attempt, rand::random::<f64>())
}

/// [`backoff`] with its random sample given (`0.0..1.0`; clamped, not finite counts as 0):
/// at most `backoff_max`, whatever the options hold.
pub fn jittered_backoff(o: &PushOptions, attempt: u32, sample: f64) -> Duration {
    let doubled = o
        .backoff_initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = doubled.min(o.backoff_max);
    let sample = if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // `Duration::mul_f64` panics when the product does not fit (a `Duration::MAX` backoff
    // rounds up in f64): the checked form, and the cap itself when it does not fit.
    Duration::try_from_secs_f64(capped.as_secs_f64() * (0.5 + 0.5 * sample))
        .unwrap_or(capped)
        .min(capped)
}

/// Whether waiting `wait` more, `elapsed` into a batch's retries, stays within `budget`
/// (`max_retry_ms`). Checked: a sum past what a `Duration` holds is past every budget.
pub fn wait_fits_budget(elapsed: Duration, wait: Duration, budget: Duration) -> bool {
    elapsed
        .checked_add(wait)
        .is_some_and(|total| total <= budget)
}

/// `Retry-After` (RFC 9110 section 10.2.3: delay-seconds or an HTTP-date) as a wait from
/// `now`, at most [`MAX_RETRY_AFTER`]; a date in the past is no wait, an unreadable value is
/// `None` (back off instead).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Any number of digits: one too large for u64 is a wait longer than the cap.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The receiver's message from an error body: the `message` (with `code`) or `error` of a
/// JSON answer, else the text; one line, at most [`MAX_MESSAGE_BYTES`].
pub(super) fn receiver_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let field = |k: &str| match v.get(k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Object(o)) => o
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string),
                Some(n @ serde_json::Value::Number(_)) => Some(n.to_string()),
                _ => None,
            };
            let message = field("message")
                .or_else(|| field("error"))
                .or_else(|| field("detail"))?;
            Some(match field("code") {
                Some(code) => format!("{code}: {message}"),
                None => message,
            })
        });
    let mut message = one_line(&from_json.unwrap_or_else(|| text.into_owned()));
    if message.is_empty() {
        message = "(no message)".into();
    }
    truncate_at_char_boundary(&mut message, MAX_MESSAGE_BYTES);
    message
}

/// `text` on one line: every run of whitespace (newlines included) becomes one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The texts to redact for a credential: the whole value, and each of its words strong
/// enough to redact ([`weakness`]): a header value `Bearer <token>` or `Splunk <token>`
/// leaks as the bare token just as well.
pub fn secret_parts(value: &str) -> Vec<String> {
    let mut parts = vec![value.to_string()];
    parts.extend(
        value
            .split_whitespace()
            .filter(|w| weakness(w).is_none() && *w != value)
            .map(str::to_string),
    );
    parts
}

/// Why a push sink's credential is too weak to be redacted safely (see
/// [`crate::doors::http::secrets`]), as the end of a one-line message; `None` when it is
/// strong enough. The token of `Bearer <token>` is what a receiver would echo: one word of
/// the value must be strong on its own (the value itself, when it has no space).
pub fn credential_weakness(value: &str) -> Option<String> {
    if value.split_whitespace().all(|w| weakness(w).is_some()) {
        let longest = value
            .split_whitespace()
            .max_by_key(|w| w.chars().count())
            .unwrap_or("");
        return Some(weakness(longest).unwrap_or_default());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER),
            "a number too large for u64 is clamped"
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_RETRY_AFTER),
            "a date years away is clamped"
        );
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn hostile_huge_waits_and_settings_cannot_overflow() {
        let now = SystemTime::now();
        let wait = parse_retry_after("99999999999999999999", now).unwrap();
        let budget = Duration::from_secs(300);
        assert!(!wait_fits_budget(Duration::from_secs(1), wait, budget));
        assert!(!wait_fits_budget(
            Duration::MAX,
            Duration::from_nanos(1),
            Duration::MAX
        ));
        assert!(wait_fits_budget(
            Duration::from_secs(1),
            Duration::from_secs(299),
            budget
        ));
        let o = PushOptions {
            backoff_initial: Duration::MAX,
            backoff_max: Duration::MAX,
            ..PushOptions::default()
        };
        // `Duration::mul_f64` panicked here: Duration::MAX rounds up in f64.
        assert_eq!(jittered_backoff(&o, 1, 1.0), Duration::MAX);
        for sample in [0.0, 0.5, f64::NAN, f64::INFINITY, -1.0] {
            let wait = jittered_backoff(&o, u32::MAX, sample);
            assert!(wait >= Duration::MAX / 2, "{sample}: {wait:?}");
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_half() {
        let o = PushOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..PushOptions::default()
        };
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = backoff(&o, attempt);
                let full = Duration::from_millis(full);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn receiver_messages_are_one_line_and_capped() {
        assert_eq!(
            receiver_message(br#"{"code": "E42", "message": "items[3]: missing\nfield"}"#),
            "E42: items[3]: missing field"
        );
        assert_eq!(
            receiver_message(br#"{"error": {"message": "bad token"}}"#),
            "bad token"
        );
        assert_eq!(receiver_message(b"plain\r\ntext  here"), "plain text here");
        assert_eq!(receiver_message(b""), "(no message)");
        let long = "é".repeat(400);
        let m = receiver_message(long.as_bytes());
        assert!(m.len() <= MAX_MESSAGE_BYTES && m.chars().all(|c| c == 'é'));
    }
}
