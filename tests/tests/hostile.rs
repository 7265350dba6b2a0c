//! Hostile components against the real host. Each test runs one attack of
//! `tests/hostile/` (a component built from the same WIT) as tenant `hostile`, while a
//! well-behaved tenant syncs through the real Entra component in the same host process.
//! For each: the attack ends with a clear, typed error naming the limit or policy (or, for
//! probes of the sandbox, reports that it saw nothing), the host survives, the hostile
//! tenant's checkpoint is unchanged, and the good tenant gets exactly its events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use connector_host::doors::http::netguard::StaticResolver;
use connector_host::doors::http::secrets::{SecretSet, SecretValue};
use connector_host::doors::http::{EgressPolicy, Origin};
use connector_host::error::ConnectorErrorKind;
use connector_host::{
    JsonlFileSink, LimitKind, RunError, RunOutcome, Runtime, RuntimeLimits, RuntimeOptions,
    SqliteCheckpointStore, TenantRun,
};
use e2e_tests::{assert_no_awkward_secret, uids, user_ids, Harness, AWKWARD_SECRET};
use graph_emulator::{EmulatorConfig, Tenant};
use serde_json::Value;

const HOSTILE: &[u8] = include_bytes!(env!("HOSTILE_CONNECTOR_WASM"));
const GOOD_USERS: usize = 40;

/// The hostile tenant's own cursor, seeded before the attack.
const SEEDED: &[u8] = b"{\"seeded\":true}";

struct Arena {
    good: Harness,
    hostile: Runtime,
    run: TenantRun,
    store: Arc<SqliteCheckpointStore>,
}

fn limits() -> RuntimeLimits {
    RuntimeLimits {
        memory_bytes: 64 * 1024 * 1024,
        cpu_budget_ms: 1_000,
        max_events_per_run: 100_000,
        pool_size: 8,
        ..RuntimeLimits::default()
    }
}

/// Sets up the good tenant (emulator, Entra component) and the hostile runtime/tenant.
async fn arena(
    attack: &str,
    url: Option<&str>,
    allow_loopback_http: bool,
    extra_allow: &[&str],
) -> Arena {
    arena_with(attack, url, allow_loopback_http, extra_allow, limits()).await
}

/// [`arena`] with other limits for the hostile runtime.
async fn arena_with(
    attack: &str,
    url: Option<&str>,
    allow_loopback_http: bool,
    extra_allow: &[&str],
    limits: RuntimeLimits,
) -> Arena {
    let good = Harness::start(Tenant::generated(77, GOOD_USERS), EmulatorConfig::default()).await;
    let mut names = BTreeMap::new();
    names.insert(
        "intranet.test".to_string(),
        vec!["10.1.2.3".parse().unwrap()],
    );
    let hostile = Runtime::with_options(
        HOSTILE,
        RuntimeOptions {
            limits,
            cache_dir: None,
            resolver: Arc::new(StaticResolver(names)),
        },
    )
    .await
    .expect("the hostile component loads");
    let store =
        Arc::new(SqliteCheckpointStore::open(&good.dir.path().join("checkpoints.sqlite")).unwrap());
    store
        .set_blocking("hostile/hostile", "users/created-cursor", SEEDED, None)
        .unwrap();
    let login = Origin::parse(&good.emulator.login_endpoint()).unwrap();
    let graph = Origin::parse(&good.emulator.graph_endpoint()).unwrap();
    let mut allow = vec![login.clone(), graph];
    allow.extend(extra_allow.iter().map(|o| Origin::parse(o).unwrap()));
    let mut policy = EgressPolicy::new(allow);
    policy.allow_loopback_http = allow_loopback_http;
    policy.max_requests = 1_000;
    let mut secrets = SecretSet::new();
    secrets.insert(
        "client_secret",
        SecretValue::new("hostile-tenant-secret"),
        vec![login],
    );
    let mut config = vec![("attack".to_string(), attack.to_string())];
    if let Some(u) = url {
        config.push(("url".into(), u.into()));
    }
    let run = TenantRun {
        tenant: "hostile".into(),
        connector_config: config,
        policy,
        secrets: Arc::new(secrets),
        checkpoints: store.clone(),
        sink: Arc::new(JsonlFileSink::open(&good.dir.path().join("hostile.jsonl")).unwrap()),
        timeout: Duration::from_secs(60),
        time_scale: Default::default(),
    };
    Arena {
        good,
        hostile,
        run,
        store,
    }
}

impl Arena {
    /// Runs the attack and the good tenant at once; checks the good tenant and the hostile
    /// checkpoint; returns the attack's outcome.
    async fn clash(&self) -> RunOutcome {
        let (bad, good) = tokio::join!(self.hostile.run(&self.run), self.good.sync());
        let good = good.expect("the well-behaved tenant completes");
        assert_eq!(good.events_written, GOOD_USERS as u64);
        let got: Vec<String> = uids(&self.good.events());
        assert_eq!(got.len(), GOOD_USERS, "exactly its events");
        assert_eq!(
            got.into_iter().collect::<BTreeSet<_>>(),
            user_ids(&self.good.emulator)
        );
        let cursor = self
            .store
            .get_blocking("hostile/hostile", "users/created-cursor")
            .unwrap();
        assert_eq!(
            cursor,
            Some((SEEDED.to_vec(), 1)),
            "the hostile tenant's checkpoint is unchanged"
        );
        // The host survives and still serves: one more good run works.
        let again = self.good.sync().await.expect("the host still runs tenants");
        assert!(!again.full_sync);
        bad
    }

    fn hostile_events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.good.dir.path().join("hostile.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn big_memory() -> RuntimeLimits {
    RuntimeLimits {
        memory_bytes: 512 * 1024 * 1024,
        ..limits()
    }
}

fn expect_limit(outcome: RunOutcome, kind: LimitKind, needle: &str) {
    match outcome {
        Err(
            ref e @ RunError::Limit {
                kind: k,
                ref detail,
                ..
            },
        ) => {
            assert_eq!(k, kind, "{e}");
            assert!(detail.contains(needle), "{e}");
            let line = e.to_string();
            assert!(
                line.contains(&format!("stopped by the {} limit", kind.as_str()))
                    && !line.contains('\n'),
                "{line}"
            );
        }
        other => panic!("expected the {kind:?} limit, got {other:?}"),
    }
}

fn expect_host_error(outcome: RunOutcome, needle: &str) {
    match outcome {
        Err(RunError::Connector {
            kind: ConnectorErrorKind::Host,
            ref message,
            ..
        }) => {
            assert!(message.contains(needle), "{message}")
        }
        other => panic!("expected a host-door error containing {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_by_the_cpu_budget() {
    let a = arena("spin", None, false, &[]).await;
    expect_limit(a.clash().await, LimitKind::Cpu, "CPU budget of 1000 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_by_the_memory_cap() {
    let a = arena("memory-bomb", None, false, &[]).await;
    expect_limit(
        a.clash().await,
        LimitKind::Memory,
        "over the limit of 67108864 bytes",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps_without_hurting_the_host() {
    let a = arena("recursion", None, false, &[]).await;
    match a.clash().await {
        Err(RunError::Limit {
            kind: LimitKind::Stack,
            ..
        }) => {}
        Err(RunError::Trap { message, .. }) => {
            assert!(
                message.contains("wasm trap") || message.contains("out of bounds"),
                "{message}"
            )
        }
        other => panic!("expected a stack trap, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_giant_event_is_refused_at_the_call_size_limit() {
    // Enough memory to build the 64 MiB event, so the call-size limit is what refuses it.
    // An oversized emit is refused as `invalid` (the guest may split a batch and go on), not
    // a trap that ends the run.
    let a = arena_with("giant-event", None, false, &[], big_memory()).await;
    expect_host_error(
        a.clash().await,
        "invalid: the batch passed 67108880 bytes into the host, over the per-call limit of 16777216 bytes",
    );
    assert!(
        a.hostile_events().is_empty(),
        "nothing of it reached the sink"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_events_stops_at_the_run_limit() {
    let a = arena("event-flood", None, false, &[]).await;
    expect_host_error(
        a.clash().await,
        "the run's limit of 100000 events is reached",
    );
    assert_eq!(
        a.hostile_events().len(),
        100_000,
        "exactly the allowed events, no partial batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_forbidden_host_is_denied() {
    let a = arena("fetch", Some("https://evil.example/steal"), false, &[]).await;
    expect_host_error(
        a.clash().await,
        "denied: https://evil.example is not in the tenant's egress allowlist",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_loopback_are_denied() {
    // Plain http to the (allowlisted) emulator without the operator's loopback opt-in.
    let a = arena(
        "fetch",
        Some("http://127.0.0.1:1/"),
        false,
        &["http://127.0.0.1:1"],
    )
    .await;
    expect_host_error(
        a.clash().await,
        "denied: http://127.0.0.1:1: plain http is refused",
    );
    // https to loopback, even allowlisted, is a non-public address.
    let a = arena(
        "fetch",
        Some("https://127.0.0.1:9/"),
        false,
        &["https://127.0.0.1:9"],
    )
    .await;
    expect_host_error(
        a.clash().await,
        "denied: https://127.0.0.1:9 is a non-public address",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_metadata_address_is_denied() {
    let a = arena(
        "fetch",
        Some("https://169.254.169.254/metadata/instance"),
        false,
        &["https://169.254.169.254"],
    )
    .await;
    expect_host_error(
        a.clash().await,
        "denied: https://169.254.169.254 is a non-public address",
    );
    let a = arena(
        "fetch",
        Some("https://[::ffff:169.254.169.254]/"),
        false,
        &["https://[::ffff:169.254.169.254]"],
    )
    .await;
    expect_host_error(a.clash().await, "is a non-public address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_denied_by_literal_and_by_name() {
    let a = arena(
        "fetch",
        Some("https://10.0.0.5/admin"),
        false,
        &["https://10.0.0.5"],
    )
    .await;
    expect_host_error(
        a.clash().await,
        "denied: https://10.0.0.5 is a non-public address",
    );
    let a = arena(
        "fetch",
        Some("https://intranet.test/admin"),
        false,
        &["https://intranet.test"],
    )
    .await;
    expect_host_error(
        a.clash().await,
        "denied: intranet.test resolves to the non-public address 10.1.2.3",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_placeholder_aimed_at_the_wrong_host_is_refused() {
    let mut a = arena("secret-to-wrong-host", None, true, &[]).await;
    let graph = a.good.emulator.graph_endpoint();
    a.run
        .connector_config
        .push(("url".into(), format!("{graph}/v1.0/users")));
    expect_host_error(
        a.clash().await,
        &format!("denied: the secret 'client_secret' may not be sent to {graph}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_shows_no_environment_files_or_sockets() {
    let a = arena("env-and-files", None, false, &[]).await;
    a.clash().await.expect("the probe itself completes");
    let events = a.hostile_events();
    assert_eq!(events.len(), 1);
    let seen = &events[0];
    assert_eq!(seen["env_vars"], 0, "{seen}");
    assert_eq!(seen["args"], 0, "{seen}");
    for k in ["read_dir_root", "read_passwd", "tcp_connect"] {
        let v = seen[k].as_str().unwrap_or("");
        assert!(
            v.starts_with("err:"),
            "{k} must fail in the sandbox: {seen}"
        );
    }
    // WASI may report a virtual working directory; it must not be the host's.
    let host_cwd = std::env::current_dir().unwrap().display().to_string();
    assert_ne!(
        seen["cwd"].as_str().unwrap_or(""),
        format!("ok:{host_cwd}"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_checkpoint_cannot_be_read_or_written() {
    let a = arena("foreign-checkpoint", None, false, &[]).await;
    let other = "tenant-b/entra-id-users";
    a.store
        .set_blocking(other, "users/created-cursor", b"tenant-b's cursor", None)
        .unwrap();
    a.clash().await.expect("the probe itself completes");
    assert_eq!(
        a.store.get_blocking(other, "users/created-cursor").unwrap(),
        Some((b"tenant-b's cursor".to_vec(), 1)),
        "tenant-b's cursor is untouched"
    );
    let events = a.hostile_events();
    let results = events[0]["results"].as_array().expect("results");
    for r in &results[..3] {
        assert_eq!(r["get"], "none", "no foreign data is visible: {r}");
    }
    assert_eq!(results[3]["key"], "users/created-cursor");
    assert_eq!(results[3]["get"], "some:v1", "its own cursor");
    assert_eq!(
        results[3]["set"], "err:conflict: v1",
        "compare-and-set protects it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_refused() {
    let a = arena("invalid-json", None, false, &[]).await;
    expect_host_error(
        a.clash().await,
        "invalid: event 0 of the batch is not a single-line JSON object",
    );
    assert!(a.hostile_events().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_the_middle_of_a_run_is_contained() {
    let a = arena("trap-mid-run", None, false, &[]).await;
    match a.clash().await {
        Err(ref e @ RunError::Trap { .. }) => {
            let line = e.to_string();
            assert!(
                line.contains("the connector crashed (trap)")
                    && line.contains("the checkpoint keeps what the connector committed before it"),
                "{line}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(
        a.hostile_events().len(),
        3,
        "what was emitted before the trap reached the sink"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_request_body_is_stopped_at_the_call_size_limit() {
    let graph = "https://graph.example";
    let a = arena_with(
        "huge-request",
        Some(&format!("{graph}/upload")),
        false,
        &[graph],
        big_memory(),
    )
    .await;
    expect_limit(
        a.clash().await,
        LimitKind::CallSize,
        "one fetch call passed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_cut_at_the_request_budget() {
    let mut a = arena("request-flood", None, true, &[]).await;
    let url = format!("{}/v1.0/users", a.good.emulator.graph_endpoint());
    a.run.connector_config.push(("url".into(), url));
    let report = a.clash().await.expect("the flood returns");
    assert_eq!(
        report.warnings,
        vec!["ok=1000 budget=99000 denied=0 other=0".to_string()]
    );
    assert_eq!(report.http_sent, 1000, "the host sent exactly the budget");
}

/// Everything the `tracing` macros write on this thread while the guard lives, as text.
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Captures every level on the current thread (a current-thread runtime runs the whole
    /// host there: doors, guest output, fetches).
    fn start() -> (CapturedLog, tracing::subscriber::DefaultGuard) {
        let log = CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What a run of `echo-secret` left behind.
struct Leak {
    /// The first run's one-line error.
    error: String,
    /// The events of both runs.
    events: Vec<Value>,
}

/// Runs the `echo-secret` attack with [`AWKWARD_SECRET`] as the tenant's secret (allowed to
/// the emulator's echoing login origin) and `extra` config: the connector hands the text out
/// through every door it has — log lines at every level, its stdout and stderr, an event, a
/// checkpoint value, its error (first run), its report's warnings and unavailable items
/// (second run), `check`'s probe. Asserts that no door let any form of the secret out and
/// that each shows the redaction.
async fn secret_through_every_door(extra: &[(&str, String)]) -> Leak {
    let (log, _guard) = CapturedLog::start();
    let mut a = arena("echo-secret", None, true, &[]).await;
    let login = a.good.emulator.login_endpoint();
    a.good.emulator.set_echo_token_requests(true);
    a.run.connector_config.push((
        "url".into(),
        format!("{login}/echo-tenant/oauth2/v2.0/token"),
    ));
    for (k, v) in extra {
        a.run.connector_config.push((k.to_string(), v.clone()));
    }
    let mut secrets = SecretSet::new();
    secrets.insert(
        "client_secret",
        SecretValue::new(AWKWARD_SECRET),
        vec![Origin::parse(&login).unwrap()],
    );
    a.run.secrets = Arc::new(secrets);

    let error = a
        .clash()
        .await
        .expect_err("the attack ends with its own error");
    let error = error.to_string();
    assert_no_awkward_secret("the run's error", &error);
    assert!(error.contains("[redacted]"), "{error}");

    a.run
        .connector_config
        .push(("finish".into(), "report".into()));
    let report = a
        .hostile
        .run(&a.run)
        .await
        .expect("the attack ends with a report");
    for text in report.warnings.iter().chain(&report.unavailable) {
        assert_no_awkward_secret("a report line", text);
    }
    assert!(
        report.warnings[0].contains("[redacted]") && report.unavailable[0].contains("[redacted]"),
        "{report:?}"
    );

    let probes = a
        .hostile
        .check(&a.run)
        .await
        .expect("check returns a probe");
    assert_eq!(probes.len(), 1);
    assert_no_awkward_secret("the probe's name", &probes[0].name);
    assert_no_awkward_secret("the probe's detail", &probes[0].detail);
    assert!(probes[0].detail.contains("[redacted]"), "{probes:?}");

    let events = std::fs::read_to_string(a.good.dir.path().join("hostile.jsonl")).unwrap();
    assert_no_awkward_secret("the events file", &events);
    let events = a.hostile_events();
    assert_eq!(events.len(), 2, "both runs' events were written");
    for e in &events {
        assert!(e["echo"].as_str().unwrap().contains("[redacted]"), "{e}");
    }

    let (cursor, _) = a
        .store
        .get_blocking("hostile/hostile", "echo")
        .unwrap()
        .expect("the checkpoint was written");
    let cursor = String::from_utf8_lossy(&cursor);
    assert_no_awkward_secret("the checkpoint", &cursor);
    assert!(cursor.contains("[redacted]"), "{cursor}");

    let logged = log.text();
    assert_no_awkward_secret("the host's log", &logged);
    for needle in ["stream=\"stdout\"", "stream=\"stderr\"", "ERROR", "TRACE"] {
        assert!(logged.contains(needle), "{needle} was logged: {logged}");
    }
    assert!(logged.contains("[redacted]"), "{logged}");
    Leak { error, events }
}

/// The `echo_hex` of an `echo-secret` event: the text the connector had, decoded.
fn received(event: &Value) -> String {
    let hex = event["echo_hex"].as_str().expect("echo_hex");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// A token endpoint echoes the request it got (body and decoded secret) in its error. The
/// host redacts the secret from the answer before the connector sees it (the connector's own
/// hex copy shows what it received: no secret), and from everything the connector hands out.
#[tokio::test(flavor = "current_thread")]
async fn hostile_connector_handing_out_an_echoed_secret_finds_it_redacted_at_every_door() {
    let leak = secret_through_every_door(&[]).await;
    assert!(
        leak.error.contains("Request body: grant_type"),
        "the echo reached the connector: {}",
        leak.error
    );
    for e in &leak.events {
        let got = received(e);
        assert_no_awkward_secret("what the connector received", &got);
        assert!(got.contains("[redacted]"), "{got}");
    }
}

/// The operator pasted the secret into the connector's configuration, so the connector holds
/// it (its hex copy shows it). Redaction on the way out keeps it from every door all the same.
/// (`TenantRun`s built from a tenant file refuse such a config at load; this one is built by
/// hand, to test the redaction behind that refusal.)
#[tokio::test(flavor = "current_thread")]
async fn operator_secret_pasted_into_the_config_is_redacted_from_everything_the_connector_hands_out(
) {
    let pasted = format!("pasted: {AWKWARD_SECRET} and a%2Bb%2Fc%3Dd%26e+f%25%22g%5Ch%7Ei");
    let leak = secret_through_every_door(&[("text", pasted.clone())]).await;
    // The connector held the secret itself: its hex copy is the text's, except that the
    // host redacts the hex form of a secret too (issue 16), exactly where the secret was.
    let hex = |t: &str| t.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let (before, after) = pasted.split_once(AWKWARD_SECRET).unwrap();
    for e in &leak.events {
        assert_eq!(
            e["echo_hex"],
            format!("{}[redacted]{}", hex(before), hex(after)),
            "the connector held the secret itself, and its hex form was redacted"
        );
    }
}

/// Issue 20: the host signs a client assertion into the hostile connector's token request
/// (`client_assertion={{assertion:client_certificate}}`), and the token endpoint echoes the
/// request in its error. The connector receives the answer with the assertion redacted (its
/// hex copy shows what it got), so no door — events, checkpoint, error, log — can carry the
/// JWT, and the key never entered the guest.
#[tokio::test(flavor = "current_thread")]
async fn hostile_connector_never_gets_the_assertion_a_token_endpoint_echoes() {
    let (log, _guard) = CapturedLog::start();
    let mut a = arena("echo-secret", None, true, &[]).await;
    let login = a.good.emulator.login_endpoint();
    a.good.emulator.set_echo_token_requests(true);
    a.run.connector_config.extend([
        ("url".to_string(), format!("{login}/echo-tenant/oauth2/v2.0/token")),
        (
            "body".to_string(),
            "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={{assertion:client_certificate}}".to_string(),
        ),
    ]);
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/tests/fixtures/credentials");
    let key = connector_host::credentials::load(&connector_host::credentials::CredentialSpec {
        key: Some(connector_host::secrets::SecretSource::File(
            fixtures.join("rsa.key"),
        )),
        certificate: Some(fixtures.join("rsa.crt")),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        ..Default::default()
    })
    .expect("the test key loads");
    let mut secrets = SecretSet::new();
    secrets.insert_private_key(
        "client_certificate",
        Arc::new(key),
        vec![Origin::parse(&login).unwrap()],
    );
    a.run.secrets = Arc::new(secrets);

    let error = a
        .clash()
        .await
        .expect_err("the attack ends with its own error")
        .to_string();
    // A JWT starts with the base64url of `{"`: `eyJ`.
    let no_jwt = |what: &str, text: &str| assert!(!text.contains("eyJ"), "{what}: {text}");
    no_jwt("the run's error", &error);
    assert!(
        error.contains("client_assertion=[redacted]"),
        "the echo reached the connector, redacted: {error}"
    );
    let events = a.hostile_events();
    assert_eq!(events.len(), 1);
    let got = received(&events[0]);
    no_jwt("what the connector received", &got);
    assert!(got.contains("client_assertion=[redacted]"), "{got}");
    no_jwt(
        "the events file",
        &std::fs::read_to_string(a.good.dir.path().join("hostile.jsonl")).unwrap(),
    );
    let (cursor, _) = a
        .store
        .get_blocking("hostile/hostile", "echo")
        .unwrap()
        .expect("the checkpoint was written");
    no_jwt("the checkpoint", &String::from_utf8_lossy(&cursor));
    let logged = log.text();
    assert!(
        !logged.contains("client_assertion=eyJ"),
        "the host's log: {logged}"
    );
    assert!(logged.contains("client_assertion=[redacted]"), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_batches_past_their_limits_are_refused_and_a_failed_batch_applies_nothing() {
    let a = arena("checkpoint-batches", None, false, &[]).await;
    let other = "tenant-b/entra-id-users";
    a.store
        .set_blocking(other, "users/created-cursor", b"tenant-b's cursor", None)
        .unwrap();
    a.clash().await.expect("the probe itself completes");
    let events = a.hostile_events();
    let results = &events[0]["results"];
    for (name, expected) in [
        (
            "get-many-1001",
            "err:invalid: 1001 keys in one batch, over 1000",
        ),
        (
            "set-many-1001",
            "err:invalid: 1001 keys in one batch, over 1000",
        ),
        (
            "set-many-value-over-cap",
            "err:invalid: item 0 of the batch: key over 256 bytes or value over 4194304 bytes",
        ),
        (
            "set-many-duplicate",
            "err:invalid: key 'dup' is named twice in one set-many",
        ),
        ("set-many-atomic", "err:conflict: v1"),
        ("staged-after-atomic", "ok:none"),
        ("delete-prefix-empty", "err:invalid: an empty prefix"),
        (
            "delete-prefix-10001",
            "err:invalid: limit 10001 is over 10000",
        ),
        ("delete-prefix-escape", "ok:0+0"),
        ("set-many-ok", "ok:[1, 1]"),
        ("delete-prefix-staging", "ok:2"),
    ] {
        let got = results[name].as_str().unwrap_or_default();
        assert!(got.starts_with(expected), "{name}: {got}");
    }
    assert_eq!(
        a.store.get_blocking(other, "users/created-cursor").unwrap(),
        Some((b"tenant-b's cursor".to_vec(), 1)),
        "a prefix delete never leaves the tenant's namespace"
    );
    for key in ["k0", "big", "dup", "stage/atomic"] {
        assert_eq!(
            a.store.get_blocking("hostile/hostile", key).unwrap(),
            None,
            "{key}: a refused batch wrote nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_bounded_escaped_and_redacted_and_the_timeout_names_its_phase() {
    let mut a = arena_with(
        "progress-then-spin",
        None,
        false,
        &[],
        RuntimeLimits {
            cpu_budget_ms: 600_000,
            ..limits()
        },
    )
    .await;
    a.run
        .connector_config
        .push(("text".into(), "hostile-tenant-secret".into()));
    a.run.timeout = Duration::from_secs(3);
    // While it spins, the runtime shows its progress (the CLI's live line, `/metrics`).
    let watch = async {
        for _ in 0..100 {
            if let Some(p) = a.hostile.progress("hostile") {
                return Some(p);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    };
    let (outcome, seen) = tokio::join!(a.clash(), watch);
    let e = outcome.expect_err("it spins until the timeout");
    let Some(p) = e.progress().cloned() else {
        panic!("expected a timeout that kept the progress, got {e:?}");
    };
    assert_eq!(seen.as_ref(), Some(&p), "seen live, as the error kept it");
    assert_eq!(a.hostile.progress("hostile"), None, "the run is over");
    assert!(a.hostile.live_progress().is_empty());
    assert!(matches!(e, RunError::Timeout { seconds: 3, .. }), "{e:?}");
    assert_eq!((p.pages_done, p.items_done), (7, 7000));
    for (field, text, cap) in [("phase", &p.phase, 64), ("detail", &p.detail, 512)] {
        assert!(text.len() <= cap, "{field}: {} bytes", text.len());
        assert!(
            text.starts_with("[redacted]\\") && !text.contains("hostile-tenant"),
            "{field}: {text}"
        );
        assert!(
            !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{field} is escaped: {text:?}"
        );
        assert!(text.ends_with('…'), "{field} was cut: {text}");
    }
    assert!(
        p.phase
            .starts_with("[redacted]\\n2026-01-01T00:00:00Z ERROR forged\\u{1b}[2J"),
        "{}",
        p.phase
    );
    let line = e.to_string();
    assert!(
        line.contains(&format!(
            "the checkpoint keeps phase '{}', 7 pages committed, and a checkpoint write in flight",
            p.phase
        )) && line.contains("time limit of 3 s")
            && !line.contains('\n')
            && !line.contains("hostile-tenant"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_carries_the_peak_guest_memory_and_the_last_progress() {
    let mut a = arena("grow-memory", None, false, &[]).await;
    a.run.connector_config.push(("mib".into(), "24".into()));
    let grown = a.clash().await.expect("the run completes");
    assert_eq!(grown.warnings, ["grew 24 MiB"]);
    assert!(
        grown.peak_guest_memory_bytes >= 24 << 20 && grown.peak_guest_memory_bytes <= 64 << 20,
        "{}",
        grown.peak_guest_memory_bytes
    );
    assert_eq!(
        grown.progress,
        Some(connector_host::Progress {
            phase: "users".into(),
            pages_done: 3,
            pages_expected: Some(10),
            items_done: 2999,
            wait_ms: Some(1500),
            detail: "grown".into(),
        })
    );
    // The same component growing 1 MiB: a fresh instance, a smaller peak.
    a.run.connector_config.retain(|(k, _)| k != "mib");
    a.run.connector_config.push(("mib".into(), "1".into()));
    let small = a.hostile.run(&a.run).await.expect("the run completes");
    assert!(
        small.peak_guest_memory_bytes > 0
            && small.peak_guest_memory_bytes < 24 << 20
            && small.peak_guest_memory_bytes < grown.peak_guest_memory_bytes,
        "{} vs {}",
        small.peak_guest_memory_bytes,
        grown.peak_guest_memory_bytes
    );
}
