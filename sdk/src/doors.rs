//! The host's doors (`http-fetch`, `kv-checkpoint`, `emit-event`, plus `log`) as a Rust
//! trait, and an in-memory fake of them.
//!
//! Why it exists: the WIT imports are only callable inside a component. Everything a
//! connector writes above this trait — its API client, its sync, its mapping — is written
//! against `Doors`, so it compiles and is unit-tested natively with `fake::FakeDoors`
//! (feature `fake`, or the SDK's own tests), while the SDK's export glue (`wasm.rs`)
//! implements it over the real imports.

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

    /// A `POST` of an `application/x-www-form-urlencoded` body: the one place the host fills
    /// a `{{secret:<name>}}` placeholder (the whole value of a field; WIT `http-fetch`).
    pub fn post_form(url: impl Into<String>, body: &str) -> Self {
        HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: Some(body.as_bytes().to_vec()),
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

/// What the stored version of a key must be for a write of a batch to apply (mirror of
/// `kv-checkpoint.expect`).
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Whatever it is (staged data only this walk writes).
    Any,
    /// The key must not exist.
    Absent,
    /// The key must be at this version.
    Version(u64),
}

/// One write of an atomic batch (mirror of `kv-checkpoint.write`).
#[derive(Clone, Debug, PartialEq)]
pub struct KvWrite {
    /// The key.
    pub key: String,
    /// The new value; None deletes the key.
    pub value: Option<Vec<u8>>,
    /// The precondition.
    pub expect: Expect,
}

impl KvWrite {
    /// A blind write of `value`.
    pub fn put(key: String, value: Vec<u8>) -> KvWrite {
        KvWrite {
            key,
            value: Some(value),
            expect: Expect::Any,
        }
    }

    /// A blind delete.
    pub fn delete(key: String) -> KvWrite {
        KvWrite {
            key,
            value: None,
            expect: Expect::Any,
        }
    }
}

/// Most keys in one `get-many` and writes in one `set-many` (the contract's limit).
pub const MAX_KV_BATCH: usize = 1_000;

/// Most bytes of keys and values in one `set-many` (the contract says 16 MiB; a margin is kept).
pub const MAX_KV_BATCH_BYTES: usize = 12 * 1024 * 1024;

/// Most keys one `delete-prefix` call deletes (the contract's limit).
pub const MAX_DELETE_PREFIX: u32 = 10_000;

/// Where a long run stands (mirror of `log.run-progress`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Short, stable phase name.
    pub phase: String,
    /// Pages of the phase done, all runs of the walk together.
    pub pages_done: u64,
    /// Pages the phase is expected to take, when known.
    pub pages_expected: Option<u64>,
    /// Records of the phase done.
    pub items_done: u64,
    /// Least time the provider's limits still impose on the walk, ms, when known.
    pub wait_ms: Option<u64>,
    /// One line for the operator.
    pub detail: String,
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

    /// Reads several keys (at most [`MAX_KV_BATCH`]); answers in order.
    #[allow(clippy::type_complexity)]
    fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<(Vec<u8>, u64)>>, KvError>;

    /// Applies writes atomically (at most [`MAX_KV_BATCH`]); new versions in order.
    fn kv_set_many(&self, writes: &[KvWrite]) -> Result<Vec<u64>, KvError>;

    /// Deletes up to `limit` keys starting with `prefix`; how many were deleted.
    fn kv_delete_prefix(&self, prefix: &str, limit: u32) -> Result<u32, KvError>;

    /// Reports where the run stands.
    fn progress(&self, progress: &Progress);

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
/// moves when the code under test sleeps. A connector's tests get it with
/// `connector-sdk = { features = ["fake"] }` in their dev-dependencies.
#[cfg(any(test, feature = "fake"))]
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
        /// The checkpoint store: key → (value, version).
        pub kv: RefCell<std::collections::BTreeMap<String, (Vec<u8>, u64)>>,
        /// Checkpoint calls made (get, set and their batch forms each count one).
        pub kv_calls: Cell<u64>,
        /// Every progress reported.
        pub progress: RefCell<Vec<Progress>>,
        /// Events emitted.
        pub events: RefCell<Vec<String>>,
        /// When set, every request of a `fetch-all` call at or past this call number fails
        /// with `budget-exhausted` (a run stopped midway).
        pub fail_from_call: Cell<Option<usize>>,
        /// When set, every checkpoint call from this one on (counted as `kv_calls` counts)
        /// fails with a storage error and changes nothing (a run killed at that call).
        pub fail_kv_from: Cell<Option<u64>>,
        /// Every key read (`get`, `get-many`), in order.
        pub kv_reads: RefCell<Vec<String>>,
        /// Bytes of keys and values put (deletions write nothing).
        pub kv_bytes_written: Cell<u64>,
        answer: F,
    }

    impl<F: Fn(usize, &HttpRequest) -> HttpResponse> FakeDoors<F> {
        /// A fake at a fixed start time.
        pub fn new(answer: F) -> Self {
            FakeDoors {
                clock: Cell::new(1_700_000_000_000),
                calls: RefCell::new(Vec::new()),
                slept: Cell::new(0),
                kv: RefCell::new(Default::default()),
                kv_calls: Cell::new(0),
                progress: RefCell::new(Vec::new()),
                events: RefCell::new(Vec::new()),
                fail_from_call: Cell::new(None),
                fail_kv_from: Cell::new(None),
                kv_reads: RefCell::new(Vec::new()),
                kv_bytes_written: Cell::new(0),
                answer,
            }
        }
    }

    impl<F: Fn(usize, &HttpRequest) -> HttpResponse> FakeDoors<F> {
        /// Counts a checkpoint call; refuses it when a stop is set at or before it.
        fn kv_call(&self) -> Result<(), KvError> {
            let n = self.kv_calls.get();
            if self.fail_kv_from.get().is_some_and(|f| n >= f) {
                return Err(KvError::Storage(format!("stopped at checkpoint call {n}")));
            }
            self.kv_calls.set(n + 1);
            Ok(())
        }

        /// Bytes of keys and values the store holds.
        pub fn kv_bytes_held(&self) -> u64 {
            self.kv
                .borrow()
                .iter()
                .map(|(k, (v, _))| (k.len() + v.len()) as u64)
                .sum()
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
            if self.fail_from_call.get().is_some_and(|f| n >= f) {
                return reqs
                    .iter()
                    .map(|_| Err(FetchError::BudgetExhausted))
                    .collect();
            }
            let out = reqs.iter().map(|r| Ok((self.answer)(n, r))).collect();
            self.calls.borrow_mut().push((self.clock.get(), reqs));
            out
        }
        fn kv_get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, KvError> {
            self.kv_call()?;
            self.kv_reads.borrow_mut().push(key.to_string());
            Ok(self.kv.borrow().get(key).cloned())
        }
        fn kv_set(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, KvError> {
            let expect = match expected {
                Some(v) => Expect::Version(v),
                None => Expect::Absent,
            };
            let write = KvWrite {
                key: key.to_string(),
                value: Some(value.to_vec()),
                expect,
            };
            Ok(self.kv_set_many(&[write])?[0])
        }
        fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<(Vec<u8>, u64)>>, KvError> {
            assert!(
                keys.len() <= MAX_KV_BATCH,
                "get-many of {} keys",
                keys.len()
            );
            self.kv_call()?;
            self.kv_reads.borrow_mut().extend(keys.iter().cloned());
            let kv = self.kv.borrow();
            Ok(keys.iter().map(|k| kv.get(k).cloned()).collect())
        }
        fn kv_set_many(&self, writes: &[KvWrite]) -> Result<Vec<u64>, KvError> {
            assert!(writes.len() <= MAX_KV_BATCH, "set-many of {}", writes.len());
            let bytes: usize = writes
                .iter()
                .map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len))
                .sum();
            assert!(bytes <= 16 * 1024 * 1024, "set-many of {bytes} bytes");
            let mut keys = std::collections::HashSet::new();
            for w in writes {
                assert!(keys.insert(&w.key), "key {} twice in one batch", w.key);
                assert!(w.key.len() <= 256, "key over 256 bytes: {}", w.key);
                if let Some(v) = &w.value {
                    assert!(v.len() <= 1024 * 1024, "value of {} over 1 MiB", w.key);
                }
            }
            self.kv_call()?;
            let mut kv = self.kv.borrow_mut();
            for w in writes {
                let current = kv.get(&w.key).map(|(_, v)| *v);
                let ok = match w.expect {
                    Expect::Any => true,
                    Expect::Absent => current.is_none(),
                    Expect::Version(v) => current == Some(v),
                };
                if !ok {
                    return Err(KvError::Conflict(current));
                }
            }
            let mut out = Vec::with_capacity(writes.len());
            for w in writes {
                match &w.value {
                    Some(value) => {
                        self.kv_bytes_written
                            .set(self.kv_bytes_written.get() + (w.key.len() + value.len()) as u64);
                        let v = kv.get(&w.key).map_or(1, |(_, v)| v + 1);
                        kv.insert(w.key.clone(), (value.clone(), v));
                        out.push(v);
                    }
                    None => {
                        kv.remove(&w.key);
                        out.push(0);
                    }
                }
            }
            Ok(out)
        }
        fn kv_delete_prefix(&self, prefix: &str, limit: u32) -> Result<u32, KvError> {
            assert!(!prefix.is_empty() && limit <= MAX_DELETE_PREFIX);
            self.kv_call()?;
            let mut kv = self.kv.borrow_mut();
            let doomed: Vec<String> = kv
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(limit as usize)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &doomed {
                kv.remove(k);
            }
            Ok(doomed.len() as u32)
        }
        fn progress(&self, progress: &Progress) {
            self.progress.borrow_mut().push(progress.clone());
        }
        fn emit(&self, events: &[String]) -> Result<(), EmitError> {
            self.events.borrow_mut().extend(events.iter().cloned());
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
