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
    fn emit(&self, events: &[String]) -> Result<(), EmitError>;

    /// Writes a log line.
    fn log(&self, level: Level, message: &str);

    /// Wall-clock time, milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Waits `ms` milliseconds (used between retries).
    fn sleep_ms(&self, ms: u64);
}

/// A scripted, in-memory `Doors` for unit tests: answers come from a closure, time only
/// moves when the code under test sleeps.
#[cfg(test)]
pub mod fake {
    use std::cell::{Cell, RefCell};

    use super::*;

    /// Every `fetch-all` call: the clock when it was made and its requests.
    pub type Calls = Vec<(i64, Vec<HttpRequest>)>;

    /// The fake; `answer` maps (call number, request) to a response.
    pub struct FakeDoors<F: Fn(usize, &HttpRequest) -> HttpResponse> {
        /// Milliseconds since the epoch.
        pub clock: Cell<i64>,
        /// Every fetch-all call.
        pub calls: RefCell<Calls>,
        /// Total slept.
        pub slept: Cell<u64>,
        answer: F,
    }

    impl<F: Fn(usize, &HttpRequest) -> HttpResponse> FakeDoors<F> {
        /// A fake at a fixed start time.
        pub fn new(answer: F) -> Self {
            FakeDoors {
                clock: Cell::new(1_700_000_000_000),
                calls: RefCell::new(Vec::new()),
                slept: Cell::new(0),
                answer,
            }
        }
    }

    /// A JSON response.
    pub fn json(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    impl<F: Fn(usize, &HttpRequest) -> HttpResponse> Doors for FakeDoors<F> {
        fn fetch_all(&self, reqs: Vec<HttpRequest>) -> Vec<Result<HttpResponse, FetchError>> {
            let n = self.calls.borrow().len();
            let out = reqs.iter().map(|r| Ok((self.answer)(n, r))).collect();
            self.calls.borrow_mut().push((self.clock.get(), reqs));
            out
        }
        fn kv_get(&self, _: &str) -> Result<Option<(Vec<u8>, u64)>, KvError> {
            Ok(None)
        }
        fn kv_set(&self, _: &str, _: &[u8], _: Option<u64>) -> Result<u64, KvError> {
            Ok(1)
        }
        fn emit(&self, _: &[String]) -> Result<(), EmitError> {
            Ok(())
        }
        fn log(&self, _: Level, _: &str) {}
        fn now_ms(&self) -> i64 {
            self.clock.get()
        }
        fn sleep_ms(&self, ms: u64) {
            self.clock.set(self.clock.get() + ms as i64);
            self.slept.set(self.slept.get() + ms);
        }
    }
}
