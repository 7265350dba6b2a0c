//! The connector's three doors (plus `log`) as a Rust trait.
//!
//! The WIT imports are only callable inside a component. Everything above this trait —
//! Graph client, sync, mapping — is written against `Doors`, so it compiles and is
//! unit-tested natively with an in-memory implementation, while `wasm.rs` implements it
//! over the real imports.

/// One outbound HTTP request (mirror of `http-fetch.request`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A `GET` of `url` with `headers`.
    pub fn get(url: impl Into<String>, headers: Vec<(String, String)>) -> Self {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers,
            body: None,
        }
    }
}

/// One HTTP response (mirror of `http-fetch.response`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// Whole body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no response (mirror of `http-fetch.fetch-error`).
#[derive(Clone, Debug, PartialEq)]
pub enum FetchError {
    /// Refused by the host's egress policy.
    Denied(String),
    /// Timed out.
    Timeout,
    /// Response over the host's cap (bytes).
    TooLarge(u64),
    /// Network-level failure.
    Transport(String),
    /// The run's request budget is spent.
    BudgetExhausted,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Denied(why) => write!(f, "denied by the host's egress policy: {why}"),
            FetchError::Timeout => write!(f, "timed out"),
            FetchError::TooLarge(cap) => {
                write!(f, "response larger than the host's cap of {cap} bytes")
            }
            FetchError::Transport(why) => write!(f, "transport error: {why}"),
            FetchError::BudgetExhausted => write!(f, "the run's HTTP request budget is spent"),
        }
    }
}

/// Why a checkpoint operation failed (mirror of `kv-checkpoint.kv-error`).
#[derive(Clone, Debug, PartialEq)]
pub enum KvError {
    /// Compare-and-set lost; the current version.
    Conflict(Option<u64>),
    /// Key or value refused.
    Invalid(String),
    /// Store or sink not durable.
    Storage(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::Conflict(v) => write!(
                f,
                "checkpoint was moved by another run (now at version {}); run again",
                v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            ),
            KvError::Invalid(why) => write!(f, "checkpoint refused: {why}"),
            KvError::Storage(why) => write!(f, "checkpoint storage failed: {why}"),
        }
    }
}

/// Why an event batch was refused (mirror of `emit-event.emit-error`).
#[derive(Clone, Debug, PartialEq)]
pub enum EmitError {
    /// An event was refused.
    Invalid(String),
    /// The sink failed.
    Sink(String),
}

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmitError::Invalid(why) => write!(f, "event refused by the host: {why}"),
            EmitError::Sink(why) => write!(f, "event sink failed: {why}"),
        }
    }
}

/// Log severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal progress.
    Info,
    /// Something degraded.
    Warn,
    /// Something failed.
    Error,
}

/// Everything the connector may do to the world.
pub trait Doors {
    /// Sends requests concurrently; results in request order.
    fn fetch_all(&self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, FetchError>>;

    /// Sends one request.
    fn fetch(&self, req: HttpRequest) -> Result<HttpResponse, FetchError> {
        self.fetch_all(vec![req])
            .pop()
            .unwrap_or_else(|| Err(FetchError::Transport("the host returned no result".into())))
    }

    /// Reads a checkpoint key: value and version.
    fn kv_get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, KvError>;

    /// Compare-and-set of a checkpoint key; returns the new version.
    fn kv_set(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, KvError>;

    /// Hands events to the sink.
    fn emit(&self, events: Vec<String>) -> Result<(), EmitError>;

    /// Writes a log line.
    fn log(&self, level: Level, message: &str);

    /// Wall-clock time, milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Waits `ms` milliseconds (used between retries).
    fn sleep_ms(&self, ms: u64);
}
