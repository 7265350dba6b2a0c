//! Durations from outside — a receiver's `Retry-After`, the tenant file's timeouts and
//! delivery settings, the tenants file's schedule and lease — and panics in a tenant's run.
//!
//! Every such duration is bounded and added with checked arithmetic, so no answer and no
//! file can overflow one; a panic in a run is a counted failure with backoff (`run` exits 6
//! with one line, `serve` counts it and schedules the next run, a fleet lease is released
//! with the failure); the whole run, the sink's final flush included, ends within the run
//! timeout. The end-to-end tests run the real component against the Graph emulator and a
//! receiver on 127.0.0.1; the properties (`proptest`) feed any `Retry-After`, any clock, any
//! duration in a tenant or tenants file to the code that reads and adds them.
//!
//! The million-case run (4 properties × 250,000 cases; its time is in the README, "Property
//! tests"):
//! `PROPTEST_CASES=250000 cargo test --release -p connector-host --test durations prop_`

mod pg;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use connector_host::config::{
    DeliverySpec, MAX_DELIVERY_MS, MAX_REQUEST_TIMEOUT_SECS, MAX_RUN_TIMEOUT_SECS,
};
use connector_host::doors::emit::push::{
    jittered_backoff, parse_retry_after, wait_fits_budget, MAX_RETRY_AFTER,
};
use connector_host::doors::emit::{PushOptions, PushSink, SinkError};
use connector_host::doors::http::netguard::SystemResolver;
use connector_host::fleet::Fleet;
use connector_host::metrics::FailureKind;
use connector_host::serve::{next_delay, Schedule, ServeFile, ServeOptions, Server, TenantEntry};
use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};
use connector_host::{
    EventSink, RunError, Runtime, RuntimeLimits, RuntimeOptions, TenantConfig, TenantRun,
};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");
const HUGE_RETRY_AFTER: &str = "99999999999999999999";
const SINK_KEY: &str = "durations-test-sink-key-0123456789";

// ---------------------------------------------------------------------------------------
// A receiver that answers every request the same way, after a delay.

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl Receiver {
    /// Answers each request with `status` and `headers` after `delay`.
    async fn start(delay: Duration, status: u16, headers: Vec<(&'static str, String)>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx = Receiver {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
        };
        let requests = rx.requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let requests = requests.clone();
                let headers = headers.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let requests = requests.clone();
                            let headers = headers.clone();
                            async move {
                                let _ = req.into_body().collect().await;
                                requests.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(delay).await;
                                let mut r = hyper::Response::builder().status(status);
                                for (k, v) in headers {
                                    r = r.header(k, v);
                                }
                                Ok::<_, Infallible>(r.body(Full::new(Bytes::new())).unwrap())
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        rx
    }

    fn url(&self) -> String {
        format!("http://{}/intake", self.addr)
    }

    /// A receiver that throttles every batch, after a second, with a `Retry-After` too
    /// large for any integer type.
    async fn huge_retry_after() -> Receiver {
        Receiver::start(
            Duration::from_secs(1),
            429,
            vec![("retry-after", HUGE_RETRY_AFTER.into())],
        )
        .await
    }
}

/// A sink that panics when asked to make its events durable: the seam that still lets a
/// panic happen inside a run, whatever bug would cause one.
struct PanickingSink;

#[async_trait::async_trait]
impl EventSink for PanickingSink {
    async fn write(&self, _events: Vec<String>) -> Result<(), SinkError> {
        Ok(())
    }

    async fn flush_durable(&self) -> Result<(), SinkError> {
        let budget = Duration::MAX;
        let spent = Duration::from_secs(std::hint::black_box(1));
        // The arithmetic the huge Retry-After used to reach: "overflow when adding durations".
        let _ = std::hint::black_box(budget + spent);
        Ok(())
    }

    fn written(&self) -> u64 {
        0
    }
}

fn push_options(delivery: DeliverySpec) -> PushOptions {
    connector_host::assembly::push_options(10_000, &delivery, true)
}

fn push_sink(rx: &Receiver, delivery: DeliverySpec) -> PushSink {
    PushSink::ndjson(
        &rx.url(),
        "Authorization",
        format!("Bearer {SINK_KEY}"),
        push_options(delivery),
        Arc::new(SystemResolver),
    )
    .expect("the sink builds")
}

async fn runtime() -> Arc<Runtime> {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("durations-cache");
    Arc::new(
        Runtime::with_options(
            builtin_connectors::ENTRA_ID,
            RuntimeOptions {
                limits: RuntimeLimits::default(),
                cache_dir: Some(cache),
                ..RuntimeOptions::default()
            },
        )
        .await
        .expect("the embedded component loads"),
    )
}

async fn emulator() -> Arc<Emulator> {
    Arc::new(
        Emulator::start(Tenant::generated(16, 20), EmulatorConfig::default())
            .await
            .unwrap(),
    )
}

/// Which sink a test tenant's runs get.
#[derive(Clone)]
enum SinkOf {
    Receiver(Receiver, DeliverySpec),
    Panicking,
}

/// A run of `key` against `emu`, its checkpoints in `dir`, its events to `sink`.
fn emulator_run(
    emu: &Emulator,
    key: &str,
    dir: &Path,
    sink: &SinkOf,
) -> Result<TenantRun, RunError> {
    let mut run = connector_host::simulation::emulator_tenant_run(
        emu,
        key,
        &dir.join("checkpoints.sqlite"),
        &dir.join(format!("{key}.jsonl")),
    )
    .map_err(|e| RunError::Host {
        tenant: key.into(),
        message: e.to_string(),
    })?;
    run.sink = match sink {
        SinkOf::Receiver(rx, delivery) => Arc::new(push_sink(rx, delivery.clone())),
        SinkOf::Panicking => Arc::new(PanickingSink),
    };
    Ok(run)
}

fn entry(
    emu: &Arc<Emulator>,
    key: &'static str,
    dir: &Path,
    sink: SinkOf,
    schedule: Schedule,
) -> TenantEntry {
    let emu = emu.clone();
    let dir = dir.to_path_buf();
    TenantEntry {
        key: key.into(),
        make_run: Box::new(move || emulator_run(&emu, key, &dir, &sink)),
        schedule,
    }
}

/// Waits (bounded: a hang fails the test, no timing is asserted) until `cond` holds.
async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Delivery settings that give a throttled batch a one-minute budget.
fn one_minute_budget() -> DeliverySpec {
    DeliverySpec {
        request_timeout_ms: 10_000,
        connect_timeout_ms: 5_000,
        backoff_initial_ms: 100,
        backoff_max_ms: 1_000,
        max_attempts: 5,
        max_retry_ms: 60_000,
    }
}

// ---------------------------------------------------------------------------------------
// Broken item 1: a receiver's Retry-After, and panics in a run.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_huge_retry_after_fails_run_with_one_line_and_exit_6() {
    let emu = emulator().await;
    let rx = Receiver::huge_retry_after().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = emu.config();
    let text = format!(
        r#"
[tenant]
key = "huge-retry-after"

[config]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"

[secrets.client_secret]
env = "DURATIONS_TEST_CLIENT_SECRET"

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "state/checkpoints.sqlite"

[sink]
kind = "http"
url = "{url}"
value = {{ env = "DURATIONS_TEST_SINK_KEY" }}
"#,
        tenant_id = cfg.tenant_id,
        client_id = cfg.client_id,
        login = emu.login_endpoint(),
        graph = emu.graph_endpoint(),
        url = rx.url(),
    );
    std::fs::write(dir.path().join("tenant.toml"), text).unwrap();
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("durations-cache");
    let config = dir.path().join("tenant.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .arg("--cache-dir")
            .arg(cache)
            // Warnings and errors only: the progress lines a piped run writes at info by
            // default are not this test's subject; the error must be the one line left.
            .args(["--log", "warn", "run", "--config"])
            .arg(config)
            .env("DURATIONS_TEST_CLIENT_SECRET", cfg.client_secret)
            .env("DURATIONS_TEST_SINK_KEY", SINK_KEY)
            .output()
            .expect("connector-host starts")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let line = stderr.lines().next().unwrap();
    assert!(
        line.starts_with("error: ")
            && line.contains("max_retry_ms")
            && line.contains("the cursor stays behind them")
            && !line.contains("panicked")
            && !line.contains(SINK_KEY),
        "{line}"
    );
    assert!(
        rx.requests.load(Ordering::SeqCst) >= 1,
        "the receiver was asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_huge_retry_after_or_a_panic_under_serve_is_a_counted_failure_and_rescheduled() {
    let runtime = runtime().await;
    let emu = emulator().await;
    let rx = Receiver::huge_retry_after().await;
    let dir = tempfile::tempdir().unwrap();
    // Retried after one second, then two: the schedule goes on after each failure.
    let schedule = Schedule {
        interval: Duration::from_secs(3600),
        jitter: Duration::ZERO,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(2),
    };
    let server = Server::new(runtime, ServeOptions::default());
    server
        .register(entry(
            &emu,
            "throttled",
            dir.path(),
            SinkOf::Receiver(rx.clone(), one_minute_budget()),
            schedule.clone(),
        ))
        .unwrap();
    server
        .register(entry(
            &emu,
            "panicking",
            dir.path(),
            SinkOf::Panicking,
            schedule.clone(),
        ))
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    for key in ["throttled", "panicking"] {
        wait_until(&format!("{key} fails twice in a row"), async || {
            server.status(key).unwrap().consecutive_failures >= 2
        })
        .await;
        let counters = server.metrics().tenant(key).unwrap();
        assert_eq!(
            counters.cut, 0,
            "{key}: a failure, not a cut run: {counters:?}"
        );
        assert_eq!(counters.successes, 0, "{key}");
        assert!(
            counters
                .failures
                .get(&FailureKind::Host)
                .copied()
                .unwrap_or(0)
                >= 2,
            "{key}: counted as host failures: {counters:?}"
        );
        // Still scheduled: the next run is planned, or running.
        wait_until(&format!("{key} has its next run planned"), async || {
            let s = server.status(key).unwrap();
            s.running || s.planned_delay.is_some()
        })
        .await;
    }
    // The panic's message names it as a host bug, on one line.
    let outcome = loop {
        match server.run_now("panicking").await {
            Ok(outcome) => break outcome,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    match outcome {
        Err(RunError::Host { message, .. }) => assert!(
            message.contains("the host panicked")
                && message.contains("overflow")
                && !message.contains('\n'),
            "{message}"
        ),
        other => panic!("expected a host error, got {other:?}"),
    }
    let metrics = server.metrics().render();
    assert!(
        metrics.contains("connector_run_failures_total{tenant=\"panicking\",kind=\"host\"}"),
        "{metrics}"
    );
    let _ = stop.send(());
    let summary = serving.await.unwrap();
    assert_eq!(summary.cut, 0, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_huge_retry_after_or_a_panic_in_a_fleet_releases_the_lease_with_the_failure() {
    let url = pg::fresh_database("durations_fleet").await;
    let fleet = Fleet::connect(&url, Some(&pg::password()), "durations-host")
        .await
        .unwrap();
    let observer = Fleet::connect(&url, Some(&pg::password()), "observer")
        .await
        .unwrap();
    let runtime = runtime().await;
    let emu = emulator().await;
    let rx = Receiver::huge_retry_after().await;
    let dir = tempfile::tempdir().unwrap();
    // An hour's backoff after a failure: released with it, the tenant is not due again soon.
    let schedule = Schedule {
        interval: Duration::from_secs(7200),
        jitter: Duration::ZERO,
        backoff_initial: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
    };
    let server = Server::with_fleet(
        runtime,
        ServeOptions::default(),
        fleet,
        Duration::from_secs(60),
        Duration::from_millis(200),
    );
    server
        .register(entry(
            &emu,
            "throttled",
            dir.path(),
            SinkOf::Receiver(rx, one_minute_budget()),
            schedule.clone(),
        ))
        .unwrap();
    server
        .register(entry(
            &emu,
            "panicking",
            dir.path(),
            SinkOf::Panicking,
            schedule,
        ))
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    for key in ["throttled", "panicking"] {
        wait_until(
            &format!("{key}'s lease is released with a failure"),
            async || {
                // None until the server registered its tenants in the database.
                let state = observer.state(key).await.unwrap();
                state.is_some_and(|s| {
                    s.last_outcome.as_deref() == Some("failed") && s.lease_host.is_none()
                })
            },
        )
        .await;
        let state = observer.state(key).await.unwrap().unwrap();
        assert_eq!(state.consecutive_failures, 1, "{key}: {state:?}");
        assert!(
            state.next_due > SystemTime::now() + Duration::from_secs(1800),
            "{key}: due again after the backoff: {state:?}"
        );
        let counters = server.metrics().tenant(key).unwrap();
        assert_eq!(
            counters.failures.get(&FailureKind::Host).copied(),
            Some(1),
            "{key}: {counters:?}"
        );
        assert_eq!(counters.consecutive_failures, 1, "{key}");
    }
    let _ = stop.send(());
    serving.await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Degraded: the final flush of a push sink runs inside the run timeout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_failing_receiver_cannot_stretch_a_run_past_its_timeout() {
    let runtime = runtime().await;
    let emu = emulator().await;
    // Every batch answered 503 at once: retried after 100-200 ms each, up to 100 times.
    let rx = Receiver::start(Duration::ZERO, 503, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let delivery = DeliverySpec {
        request_timeout_ms: 10_000,
        connect_timeout_ms: 5_000,
        backoff_initial_ms: 200,
        backoff_max_ms: 200,
        max_attempts: 100,
        max_retry_ms: 120_000,
    };
    let sink = Arc::new(push_sink(&rx, delivery));
    let mut run = emulator_run(&emu, "slow-receiver", dir.path(), &SinkOf::Panicking).unwrap();
    run.sink = sink.clone();
    run.timeout = Duration::from_secs(3);
    let started = std::time::Instant::now();
    let outcome = runtime.run(&run).await;
    let took = started.elapsed();
    match outcome {
        Err(RunError::Timeout { seconds: 3, .. }) => {}
        other => panic!("expected the run's timeout, got {other:?}"),
    }
    // Within 3 s a batch is tried at most 3 s / 100 ms + 1 times; a flush after the timeout
    // would have gone on to all 100 attempts.
    let attempts = sink.stats().attempts;
    assert!(
        attempts <= 31,
        "{attempts} attempts: the sink went on past the run's timeout"
    );
    assert_eq!(sink.acknowledged(), 0);
    // The walk may have committed its staged sources (no event depends on them), but never a
    // page of users: the cursor is not past the unacknowledged events.
    let cursor: Option<Vec<u8>> = rusqlite::Connection::open(dir.path().join("checkpoints.sqlite"))
        .unwrap()
        .query_row(
            "SELECT value FROM checkpoints WHERE key = 'users/delta-cursor'",
            [],
            |r| r.get(0),
        )
        .ok();
    if let Some(bytes) = cursor {
        let cursor: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(cursor["round"], "full", "{cursor}");
        assert!(
            cursor["link"].is_null(),
            "no users page committed: {cursor}"
        );
        assert_eq!(cursor["walk"]["users"]["pages"], 0, "{cursor}");
    }
    eprintln!("a 3 s run against a failing receiver took {took:?} ({attempts} attempts)");
}

// ---------------------------------------------------------------------------------------
// Properties: any outside duration is bounded, and the arithmetic on it cannot panic.

/// Strings a receiver could send as `Retry-After`: digits of any length, HTTP dates with any
/// numbers in them, and anything else.
fn retry_after_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,40}",
        "[ \t]{0,2}[0-9]{1,25}[ \t]{0,2}",
        any::<u64>().prop_map(|n| n.to_string()),
        (
            prop::sample::select(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
            0u32..40,
            prop::sample::select(vec!["Jan", "Feb", "Mar", "Oct", "Dec", "Foo"]),
            any::<i64>(),
            0u32..100,
            0u32..100,
            0u32..100,
        )
            .prop_map(|(d, day, m, y, h, mi, s)| format!(
                "{d}, {day:02} {m} {y} {h:02}:{mi:02}:{s:02} GMT"
            )),
        (0u32..32, 1000u32..10000)
            .prop_map(|(day, y)| format!("Fri, {day:02} Dec {y} 23:59:59 GMT")),
        ".{0,40}",
        any::<String>(),
    ]
}

/// Any instant the clock could say, before or after 1970.
fn any_now() -> impl Strategy<Value = SystemTime> {
    (any::<bool>(), any::<u64>(), 0u32..1_000_000_000).prop_map(|(after, secs, nanos)| {
        let d = Duration::new(secs, nanos);
        let t = if after {
            SystemTime::UNIX_EPOCH.checked_add(d)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(d)
        };
        t.unwrap_or(SystemTime::UNIX_EPOCH)
    })
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..1_000_000).prop_map(Duration::from_millis),
        Just(Duration::MAX),
        Just(Duration::ZERO),
    ]
}

/// A value for a duration key in TOML: integers of any size and sign (also too large for
/// any integer type), floats, strings, booleans, arrays.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..100_000_000).prop_map(|n| n.to_string()),
        "[0-9]{19,30}",
        "-[0-9]{1,30}",
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        "\"[0-9a-z ]{0,12}\"",
        Just("true".to_string()),
        Just("[1, 2]".to_string()),
        Just("0x7fffffffffffffff".to_string()),
        Just("1e400".to_string()),
    ]
}

const TENANT: &str = r#"
[tenant]
key = "contoso"
[config]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
[secrets.client_secret]
env = "ENTRA_CLIENT_SECRET"
[egress]
allow_loopback_http = true
[state]
checkpoint_db = "state.sqlite"
[sink]
kind = "http"
url = "http://127.0.0.1:9/intake"
value = { env = "SINK_KEY" }
"#;

const TENANT_KEYS: [(&str, &str); 9] = [
    ("limits", "run_timeout_secs"),
    ("limits", "request_timeout_secs"),
    ("limits", "connect_timeout_secs"),
    ("sink.delivery", "request_timeout_ms"),
    ("sink.delivery", "connect_timeout_ms"),
    ("sink.delivery", "backoff_initial_ms"),
    ("sink.delivery", "backoff_max_ms"),
    ("sink.delivery", "max_attempts"),
    ("sink.delivery", "max_retry_ms"),
];

const SERVE_KEYS: [(&str, &str); 7] = [
    ("serve", "shutdown_grace_secs"),
    ("schedule", "interval_secs"),
    ("schedule", "jitter_secs"),
    ("schedule", "backoff_initial_secs"),
    ("schedule", "backoff_max_secs"),
    ("fleet", "lease_ttl_secs"),
    ("fleet", "poll_secs"),
];

/// Everything the host computes from a loaded sink's delivery settings, for any attempt,
/// elapsed time and jitter: bounded, and no panic.
fn exercise_delivery(
    delivery: &DeliverySpec,
    attempt: u32,
    elapsed: Duration,
    sample: f64,
    now: SystemTime,
    retry_after: &str,
) {
    let o = push_options(delivery.clone());
    let wait = parse_retry_after(retry_after, now)
        .unwrap_or_else(|| jittered_backoff(&o, attempt, sample));
    assert!(wait <= MAX_RETRY_AFTER.max(o.backoff_max));
    let _ = wait_fits_budget(elapsed, wait, o.max_retry_time);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn prop_any_retry_after_at_any_time_is_a_bounded_wait(
        value in retry_after_value(),
        now in any_now(),
        elapsed in any_duration(),
        budget in any_duration(),
    ) {
        let wait = parse_retry_after(&value, now);
        if let Some(wait) = wait {
            prop_assert!(wait <= MAX_RETRY_AFTER, "{value:?} -> {wait:?}");
            // The budget check against its oracle in u128 nanoseconds.
            let fits = elapsed.as_nanos() + wait.as_nanos() <= budget.as_nanos();
            prop_assert_eq!(wait_fits_budget(elapsed, wait, budget), fits);
        }
        let digits = value.trim();
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            prop_assert!(wait.is_some(), "delay-seconds are read: {value:?}");
        }
    }

    #[test]
    fn prop_any_backoff_settings_give_a_wait_at_most_their_cap(
        initial in any_duration(),
        max in any_duration(),
        attempt in any::<u32>(),
        sample in any::<f64>(),
        failures in any::<u32>(),
        interval in any_duration(),
        jitter in any_duration(),
    ) {
        let o = PushOptions {
            backoff_initial: initial,
            backoff_max: max,
            ..PushOptions::default()
        };
        prop_assert!(jittered_backoff(&o, attempt, sample) <= max);
        let schedule = Schedule { interval, jitter, backoff_initial: initial, backoff_max: max };
        let _ = next_delay(&schedule, failures, sample);
    }

    #[test]
    fn prop_any_duration_in_a_tenant_file_loads_bounded_or_fails_in_one_line(
        key in prop::sample::select(TENANT_KEYS.to_vec()),
        value in toml_value(),
        attempt in any::<u32>(),
        elapsed in any_duration(),
        sample in any::<f64>(),
        now in any_now(),
        retry_after in retry_after_value(),
    ) {
        let (section, key) = key;
        let text = format!("{TENANT}[{section}]\n{key} = {value}\n");
        match TenantConfig::parse(&text, Path::new("/etc/ch")) {
            Ok(cfg) => {
                let l = &cfg.limits;
                prop_assert!((1..=MAX_RUN_TIMEOUT_SECS).contains(&l.run_timeout_secs));
                prop_assert!((1..=MAX_REQUEST_TIMEOUT_SECS).contains(&l.request_timeout_secs));
                prop_assert!((1..=MAX_REQUEST_TIMEOUT_SECS).contains(&l.connect_timeout_secs));
                let delivery = match &cfg.sink {
                    connector_host::config::SinkSpec::Http(s) => s.delivery.clone(),
                    other => panic!("an http sink: {other:?}"),
                };
                for ms in [
                    delivery.request_timeout_ms,
                    delivery.connect_timeout_ms,
                    delivery.backoff_initial_ms,
                    delivery.backoff_max_ms,
                    delivery.max_retry_ms,
                ] {
                    prop_assert!((1..=MAX_DELIVERY_MS).contains(&ms), "{key} = {value}: {ms}");
                }
                exercise_delivery(&delivery, attempt, elapsed, sample, now, &retry_after);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains('\n') && !e.is_empty(), "{key} = {value}: {e:?}");
            }
        }
    }

    #[test]
    fn prop_any_duration_in_a_tenants_file_loads_bounded_or_fails_in_one_line(
        key in prop::sample::select(SERVE_KEYS.to_vec()),
        value in toml_value(),
        failures in any::<u32>(),
        sample in any::<f64>(),
    ) {
        let (section, key) = key;
        let fleet_url = if section == "fleet" { "url = \"postgres://connector@db.internal/fleet\"\n" } else { "" };
        let text = format!("[simulation]\ntenants = 1\n[{section}]\n{fleet_url}{key} = {value}\n");
        match ServeFile::parse(&text, Path::new("/etc/ch"), Path::new("/etc/ch/tenants.toml")) {
            Ok(file) => {
                let year = Duration::from_secs(366 * 24 * 3600);
                let s = &file.schedule;
                prop_assert!(s.interval <= year && s.jitter <= year && s.backoff_max <= year);
                prop_assert!(file.options.shutdown_grace <= year);
                prop_assert!(next_delay(s, failures, sample) <= year * 2);
                if let Some(fleet) = &file.fleet {
                    prop_assert!(fleet.lease_ttl <= Duration::from_secs(3600));
                    prop_assert!(fleet.poll <= Duration::from_secs(60));
                }
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains('\n') && !e.is_empty(), "{key} = {value}: {e:?}");
            }
        }
    }
}
