//! `connector-host serve` and the library under it, against the Graph emulator on
//! 127.0.0.1: many simulated tenants in once mode, metrics scraped over HTTP, the
//! one-run-per-tenant rule, backoff after failures, graceful shutdown (SIGTERM and a cut
//! run), and the one-line error for a bad tenants file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_host::doors::http::secrets::{SecretSet, SecretValue};
use connector_host::doors::http::Origin;
use connector_host::metrics::FailureKind;
use connector_host::serve::{
    Deployment, Refused, Schedule, ServeFile, ServeOptions, Server, TenantEntry,
};
use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Endpoint, FaultRule, Tenant};
use connector_host::{RunError, Runtime, RuntimeLimits};

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");

async fn runtime() -> Arc<Runtime> {
    Arc::new(
        Runtime::new(builtin_connectors::ENTRA_ID, RuntimeLimits::default())
            .await
            .expect("the embedded component loads"),
    )
}

async fn get(url: String) -> (u16, String) {
    let resp = reqwest::get(&url).await.expect("the endpoint answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
}

/// Checkpoint rows per namespace in a SQLite checkpoint store.
/// The namespaces holding a delta cursor (besides it, a tenant keeps what it remembers of its
/// users under `facts/<generation>/*`).
fn cursors(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT namespace FROM checkpoints WHERE key = 'users/delta-cursor' ORDER BY namespace",
        )
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

fn sim_file(dir: &Path, serve: &str, tenants: usize) -> PathBuf {
    let path = dir.join("tenants.toml");
    std::fs::write(
        &path,
        format!(
            "[serve]\nlisten = \"127.0.0.1:0\"\n{serve}\n\n[schedule]\ninterval_secs = 3600\njitter_secs = 0\n\n\
             [simulation]\ntenants = {tenants}\nusers_per_tenant = 10\nseed = 7\n\
             checkpoint_db = \"sim/checkpoints.sqlite\"\nevents_dir = \"sim/events\"\n"
        ),
    )
    .unwrap();
    path
}

/// A tenant of `emu` as the platform would register it, its secret replaced when given.
fn emulator_entry(
    emu: &Arc<Emulator>,
    key: &'static str,
    dir: &Path,
    schedule: Schedule,
    wrong_secret: Option<&'static str>,
) -> TenantEntry {
    let emu = emu.clone();
    let db = dir.join("checkpoints.sqlite");
    let events = dir.join(format!("{key}.jsonl"));
    TenantEntry {
        key: key.into(),
        make_run: Box::new(move || {
            let mut run = connector_host::simulation::emulator_tenant_run(&emu, key, &db, &events)
                .map_err(|e| RunError::Host {
                    tenant: key.into(),
                    message: e.to_string(),
                })?;
            if let Some(secret) = wrong_secret {
                let login = Origin::parse(&emu.login_endpoint()).map_err(|e| RunError::Host {
                    tenant: key.into(),
                    message: e.to_string(),
                })?;
                let mut secrets = SecretSet::new();
                secrets.insert("client_secret", SecretValue::new(secret), vec![login]);
                run.secrets = Arc::new(secrets);
            }
            Ok(run)
        }),
        schedule,
    }
}

/// An emulator whose first /users request is throttled for `secs` seconds, so a run takes
/// at least that long.
async fn slow_emulator(secs: u32) -> Arc<Emulator> {
    let emu = Emulator::start(Tenant::generated(5, 10), EmulatorConfig::default())
        .await
        .unwrap();
    let mut rule = FaultRule::throttle(Endpoint::Users, secs);
    rule.count = 1;
    emu.add_fault(rule);
    Arc::new(emu)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_tenants_run_once_and_metrics_show_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let path = sim_file(dir.path(), "max_concurrent_runs = 4\nonce = true", 20);
    let file = ServeFile::load(&path).unwrap();
    let components = connector_host::Components::new(connector_host::RuntimeOptions::default());
    let deployment = Deployment::start(file, &components).await.unwrap();
    let addr = deployment.endpoint.local_addr();
    assert_eq!(
        get(format!("http://{addr}/healthz")).await,
        (200, "ok\n".into())
    );

    let summary = deployment.server.serve(std::future::pending()).await;
    assert_eq!(
        (
            summary.tenants,
            summary.runs,
            summary.successes,
            summary.events
        ),
        (20, 20, 20, 200),
        "{summary}"
    );
    assert!(summary.all_succeeded());
    assert!((1..=4).contains(&summary.peak_in_flight), "{summary}");

    // Scraped after the runs, before the endpoint closes.
    let (status, text) = get(format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200);
    let has = |line: &str| text.lines().any(|l| l == line);
    for key in connector_host::serve::simulated_keys(20) {
        for line in [
            format!("connector_runs_total{{tenant=\"{key}\",outcome=\"success\"}} 1"),
            format!("connector_runs_total{{tenant=\"{key}\",outcome=\"failure\"}} 0"),
            format!("connector_events_total{{tenant=\"{key}\"}} 10"),
            format!("connector_throttled_total{{tenant=\"{key}\"}} 0"),
            // The simulated tenants run the built-in Entra connector, named as it names itself.
            format!("connector_tenant_info{{tenant=\"{key}\",connector=\"entra-id-users\"}} 1"),
        ] {
            assert!(has(&line), "missing {line} in\n{text}");
        }
        assert!(
            text.contains(&format!(
                "connector_http_requests_total{{tenant=\"{key}\",status=\"200\"}} "
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "connector_last_success_timestamp_seconds{{tenant=\"{key}\"}} "
        )));
    }
    for line in [
        "connector_tenants 20",
        "connector_pool_capacity 4",
        "connector_runs_in_flight 0",
        "connector_runs_waiting 0",
        "connector_run_duration_seconds_count 20",
    ] {
        assert!(has(line), "missing {line} in\n{text}");
    }
    assert_eq!(
        get(format!("http://{addr}/healthz")).await.0,
        503,
        "not serving any more"
    );
    assert_eq!(get(format!("http://{addr}/nothing")).await.0, 404);
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_once_from_the_cli_syncs_every_tenant_into_its_file_and_one_store() {
    let dir = tempfile::tempdir().unwrap();
    // The file says serve forever; --once overrides it.
    let path = sim_file(dir.path(), "once = false", 20);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["serve", "--tenants"])
            .arg(&path)
            .arg("--once")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("serving 20 tenants once"), "{stderr}");
    for line in [
        "serve summary",
        "  tenants                 20",
        "  runs                    20",
        "  successes               20",
        "  failures                0",
        "  events                  200",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "missing {line:?}: {stderr}"
        );
    }
    assert!(stderr.contains("  wall time               "), "{stderr}");
    assert!(stderr.contains("  peak in flight          "), "{stderr}");
    for key in connector_host::serve::simulated_keys(20) {
        assert_eq!(
            lines(&dir.path().join(format!("sim/events/{key}.jsonl"))),
            10,
            "{key}"
        );
    }
    let namespaces = cursors(&dir.path().join("sim/checkpoints.sqlite"));
    assert_eq!(
        namespaces.len(),
        20,
        "one cursor per tenant: {namespaces:?}"
    );
    assert!(namespaces[3].starts_with("sim-0003/"), "{namespaces:?}");
}

/// Issue 19, point 3: the simulated Graph keeps its origins across restarts. A second
/// `serve --once` on the same file starts a new emulator on new ports, yet every tenant
/// resumes from the links its first run stored: an incremental round, no user twice, and no
/// "cannot follow" resync warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_simulation_resumes_from_the_stored_links_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = sim_file(dir.path(), "once = true", 3);
    let serve = |path: PathBuf| {
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["serve", "--tenants"])
                .arg(&path)
                .output()
                .unwrap()
        })
    };
    let first = serve(path.clone()).await.unwrap();
    let first_err = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(first.status.code(), Some(0), "{first_err}");
    assert!(
        first_err.contains(
            "simulated Graph for 3 tenants: graph endpoint http://graph-s7-u10.simulation.localhost (served on http://127.0.0.1:"
        ) && first_err.contains("login endpoint http://login-s7-u10.simulation.localhost (served on http://127.0.0.1:"),
        "{first_err}"
    );
    let db = dir.path().join("sim/checkpoints.sqlite");
    for cursor in delta_cursors(&db) {
        let link = cursor["link"].as_str().unwrap_or_default();
        assert!(
            link.starts_with(
                "http://graph-s7-u10.simulation.localhost/v1.0/users/delta?$deltatoken="
            ),
            "the stored link names the stable origin: {cursor}"
        );
    }
    let second = serve(path).await.unwrap();
    let second_err = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(0), "{second_err}");
    assert!(
        !second_err.contains("cannot follow") && !second_err.contains("full sync"),
        "no resync: {second_err}"
    );
    assert!(
        second_err
            .lines()
            .any(|l| l == "  events                  0"),
        "nothing changed, nothing sent again: {second_err}"
    );
    for key in connector_host::serve::simulated_keys(3) {
        let events = dir.path().join(format!("sim/events/{key}.jsonl"));
        let text = std::fs::read_to_string(&events).unwrap();
        let mut uids: Vec<String> = text
            .lines()
            .map(|l| {
                let event: serde_json::Value = serde_json::from_str(l).unwrap();
                event["user"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(uids.len(), 10, "{key}: one event per user, none twice");
        uids.sort();
        uids.dedup();
        assert_eq!(uids.len(), 10, "{key}: ten distinct users");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_is_refused_while_a_run_of_that_tenant_is_in_flight() {
    let emu = slow_emulator(2).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(runtime().await, ServeOptions::default());
    server
        .register(emulator_entry(
            &emu,
            "slow",
            dir.path(),
            Schedule::default(),
            None,
        ))
        .unwrap();

    let first = tokio::spawn({
        let server = server.clone();
        async move { server.run_now("slow").await }
    });
    wait_until("the first run is in flight", || {
        server.status("slow").is_some_and(|s| s.running)
    })
    .await;
    let refused = server.run_now("slow").await.unwrap_err();
    assert_eq!(
        refused,
        Refused::AlreadyRunning {
            tenant: "slow".into()
        }
    );
    assert!(
        refused.to_string().contains("tenant 'slow'")
            && refused.to_string().contains("already in progress"),
        "{refused}"
    );

    let report = first
        .await
        .unwrap()
        .unwrap()
        .expect("the slow run succeeds");
    assert_eq!(report.events_written, 10);
    assert_eq!(
        report.http_status.get(&429),
        Some(&1),
        "it was throttled once"
    );
    assert!(
        report.duration >= Duration::from_secs(1),
        "{:?}",
        report.duration
    );
    let text = server.metrics().render();
    assert!(
        text.contains("connector_throttled_total{tenant=\"slow\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("connector_http_requests_total{tenant=\"slow\",status=\"429\"} 1\n"));

    // The claim is released: the next run starts (and is incremental).
    let again = server.run_now("slow").await.unwrap().unwrap();
    assert!(!again.full_sync);
    assert!(!server.status("slow").unwrap().running);
    assert_eq!(
        server.run_now("nobody").await.unwrap_err(),
        Refused::UnknownTenant {
            tenant: "nobody".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tenant_is_retried_after_backoff_initial_then_twice_that() {
    let emu = Arc::new(
        Emulator::start(Tenant::generated(5, 10), EmulatorConfig::default())
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let schedule = Schedule {
        interval: Duration::from_secs(3600),
        jitter: Duration::ZERO,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
    };
    let server = Server::new(runtime().await, ServeOptions::default());
    server
        .register(emulator_entry(
            &emu,
            "bad",
            dir.path(),
            schedule,
            Some("wrong-secret"),
        ))
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
        }
    });

    // The delays the scheduler planned after the 1st and the 2nd failure in a row.
    let mut planned = Vec::new();
    for failures in [1, 2] {
        wait_until("the scheduler plans the next retry", || {
            server
                .status("bad")
                .is_some_and(|s| s.consecutive_failures == failures && s.planned_delay.is_some())
        })
        .await;
        planned.push(server.status("bad").unwrap().planned_delay.unwrap());
    }
    assert_eq!(planned, [Duration::from_secs(1), Duration::from_secs(2)]);

    let _ = stop.send(());
    let summary = serving.await.unwrap();
    assert_eq!(
        summary.failures.get(&FailureKind::Auth),
        Some(&2),
        "{summary}"
    );
    assert_eq!((summary.successes, summary.cut), (0, 0));
    // Serve mode (the CLI exits 0 after a requested shutdown: `serve_exit_code` in main.rs).
    assert!(!summary.once);
    let text = server.metrics().render();
    assert!(
        text.contains("connector_run_failures_total{tenant=\"bad\",kind=\"auth\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("connector_consecutive_failures{tenant=\"bad\"} 2\n"));
    assert!(
        cursors(&dir.path().join("checkpoints.sqlite")).is_empty(),
        "a failed run commits no cursor"
    );
    assert!(matches!(
        server.run_now("bad").await,
        Err(Refused::ShuttingDown { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outlasting_the_grace_period_is_cut_and_its_cursor_does_not_move() {
    let emu = slow_emulator(5).await;
    let dir = tempfile::tempdir().unwrap();
    let schedule = Schedule {
        jitter: Duration::ZERO,
        ..Schedule::default()
    };
    let server = Server::new(
        runtime().await,
        ServeOptions {
            shutdown_grace: Duration::from_millis(300),
            ..ServeOptions::default()
        },
    );
    server
        .register(emulator_entry(&emu, "slow", dir.path(), schedule, None))
        .unwrap();
    let metrics = server.metrics();
    let started = Instant::now();
    let summary = server
        .serve(async {
            wait_until("the run is in flight", || metrics.in_flight() == 1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the 5 s run was not waited for: {:?}",
        started.elapsed()
    );
    assert_eq!((summary.cut, summary.runs), (1, 0), "{summary}");
    assert!(summary.to_string().contains("cut at shutdown         1"));
    assert!(
        !server.status("slow").unwrap().running,
        "the claim is released"
    );
    assert_eq!(metrics.in_flight(), 0);
    assert!(metrics
        .render()
        .contains("connector_runs_cut_total{tenant=\"slow\"} 1\n"));
    // A cut run keeps only what it committed: a full walk in flight (its staged sources),
    // never a finished round.
    for cursor in delta_cursors(&dir.path().join("checkpoints.sqlite")) {
        assert_eq!(cursor["round"], "full", "{cursor}");
        assert!(cursor["walk"].is_object(), "a walk in flight: {cursor}");
    }
}

/// Every delta cursor in a SQLite checkpoint store, parsed.
fn delta_cursors(db: &Path) -> Vec<serde_json::Value> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT value FROM checkpoints WHERE key = 'users/delta-cursor'")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
    rows.map(|r| serde_json::from_slice(&r.unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_mode_with_no_tenant_returns_at_once() {
    let server = Server::new(
        runtime().await,
        ServeOptions {
            once: true,
            ..ServeOptions::default()
        },
    );
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        server.serve(std::future::pending()),
    )
    .await
    .expect("serve returns without tenants");
    assert_eq!((summary.tenants, summary.runs), (0, 0));
}

/// Reads a child's stderr lines into a channel, so a test can wait for one line and keep
/// everything for later.
/// The text of a stderr line: under `--log-format json` its `fields.message` (serve's own
/// lines are JSON objects too), else the line as it is.
fn message(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["fields"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| line.to_string())
}

/// Every line is a JSON object (`--log-format json`).
fn all_json(lines: &[String]) {
    for line in lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}\n{}",
            lines.join("\n")
        );
    }
}

fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_serve_within_the_grace_period_with_exit_0_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = sim_file(dir.path(), "shutdown_grace_secs = 10", 3);
    let mut child = Command::new(BIN)
        .args([
            "--log",
            "connector_host=info",
            "--log-format",
            "json",
            "serve",
            "--tenants",
        ])
        .arg(&path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no start line: {seen:#?}"));
        seen.push(line.clone());
        if let Some(rest) = line.split("metrics http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    assert!(message(seen.last().unwrap()).starts_with("serving 3 tenants from "));
    assert_eq!(
        get(format!("http://{addr}/healthz")).await,
        (200, "ok\n".into())
    );
    wait_until_async_metrics(
        &addr,
        "connector_runs_total{tenant=\"sim-0002\",outcome=\"success\"} 1",
    )
    .await;

    let status = sigterm_and_wait(
        &mut child,
        Duration::from_secs(10),
        "serve did not exit within the grace period",
    )
    .await;
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert!(
        seen.iter()
            .any(|l| message(l) == "  successes               3"),
        "{stderr}"
    );
    all_json(&seen);

    // Structured logs: JSON, each run's lines carry the tenant, no secret anywhere.
    let runs: Vec<serde_json::Value> = seen
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "run succeeded")
        .collect();
    assert_eq!(runs.len(), 3, "{stderr}");
    for run in &runs {
        let tenant = run["fields"]["tenant"].as_str().unwrap_or("");
        assert!(tenant.starts_with("sim-"), "{run}");
        assert_eq!(run["fields"]["events"], 10, "{run}");
    }
    assert!(
        !stderr.contains(&EmulatorConfig::default().client_secret),
        "{stderr}"
    );
}

async fn wait_until_async_metrics(addr: &str, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = get(format!("http://{addr}/metrics")).await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {line}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_bad_tenants_file_exits_2_with_one_line_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        "[serve]\nlisten = \"127.0.0.1:0\"\ncolour = \"blue\"\n\n[simulation]\ntenants = 2\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--tenants"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let line = stderr.trim_end();
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains(&path.display().to_string()), "{line}");
    assert!(
        line.contains("line 3, in [serve]") && line.contains("colour"),
        "{line}"
    );

    let out = Command::new(BIN)
        .args(["serve", "--tenants"])
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read tenants file"),
        "{stderr}"
    );
}

#[test]
fn operator_a_fleet_password_that_cannot_be_read_exits_2_naming_fleet_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        "[serve]\nlisten = \"127.0.0.1:0\"\n[simulation]\ntenants = 1\n[fleet]\n\
         url = \"postgres://connector@127.0.0.1:1/connector\"\n\
         password = { env = \"CONNECTOR_TEST_UNSET_FLEET_PASSWORD\" }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--no-cache", "serve", "--tenants"])
        .arg(&path)
        .env_remove("CONNECTOR_TEST_UNSET_FLEET_PASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A configuration error (2), as the README's table says, not a host error (6).
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("[fleet] password")
            && errors[0].contains("CONNECTOR_TEST_UNSET_FLEET_PASSWORD"),
        "{stderr}"
    );
}

/// Sends SIGTERM to `child` and waits for it to exit, failing with `late` after `within`.
async fn sigterm_and_wait(child: &mut Child, within: Duration, late: &str) -> ExitStatus {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{late}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process killed (and reaped) when the test ends, passed or failed: a test that
/// fails while serve hangs must not leave it running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Waits until `/metrics` shows every line of `want`. Each scrape has its own timeout, so an
/// endpoint that stopped answering fails the test at the deadline instead of hanging it.
async fn metrics_show(addr: &str, want: &[String]) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::from("(no answer yet)");
    loop {
        if let Ok(resp) = client.get(format!("http://{addr}/metrics")).send().await {
            last = resp.text().await.unwrap_or_default();
            if want.iter().all(|w| last.lines().any(|l| l == w)) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {want:?}; last scrape:\n{last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_fifo_as_secret_file_is_refused_and_serve_keeps_answering() {
    let emu = Emulator::start(Tenant::generated(5, 10), EmulatorConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tenants_d = dir.path().join("tenants.d");
    std::fs::create_dir(&tenants_d).unwrap();
    // A FIFO no one ever writes to: reading it the ordinary way waits forever.
    let fifo = dir.path().join("secret.fifo");
    mkfifo(&fifo);
    let tenant = |key: &str, secret: &str| {
        let cfg = emu.config();
        format!(
            "[tenant]\nkey = \"{key}\"\n\n[config]\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
             login_endpoint = \"{}\"\ngraph_endpoint = \"{}\"\n\n[secrets.client_secret]\n{secret}\n\n\
             [egress]\nallow_loopback_http = true\n\n[state]\ncheckpoint_db = \"../state/checkpoints.sqlite\"\n\n\
             [sink]\nkind = \"jsonl\"\npath = \"../events/{key}.jsonl\"\n",
            cfg.tenant_id,
            cfg.client_id,
            emu.login_endpoint(),
            emu.graph_endpoint(),
        )
    };
    std::fs::write(
        tenants_d.join("a-fifo.toml"),
        tenant("fifo", &format!("file = \"{}\"", fifo.display())),
    )
    .unwrap();
    std::fs::write(
        tenants_d.join("b-healthy.toml"),
        tenant("healthy", "env = \"SERVE_FIFO_TEST_SECRET\""),
    )
    .unwrap();
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        "include = [\"tenants.d/*.toml\"]\n\n[serve]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 10\n\n\
         [schedule]\ninterval_secs = 3600\njitter_secs = 0\nbackoff_initial_secs = 3600\n",
    )
    .unwrap();

    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["--log-format", "json", "serve", "--tenants"])
            .arg(&path)
            .env("SERVE_FIFO_TEST_SECRET", emu.config().client_secret)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = stderr_lines(&mut child.0);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no start line: {seen:#?}"));
        seen.push(line.clone());
        if let Some(rest) = line.split("metrics http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };

    // The FIFO tenant's run fails at once with a secret error; the healthy tenant syncs;
    // /metrics answers throughout.
    metrics_show(
        &addr,
        &[
            "connector_run_failures_total{tenant=\"fifo\",kind=\"secret\"} 1".into(),
            "connector_runs_total{tenant=\"healthy\",outcome=\"success\"} 1".into(),
            "connector_events_total{tenant=\"healthy\"} 10".into(),
        ],
    )
    .await;

    let ignored = format!("serve ignored SIGTERM: {seen:#?}");
    let status = sigterm_and_wait(&mut child.0, Duration::from_secs(60), &ignored).await;
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    // Under --log-format json every line is a JSON object: the start line, the shutdown
    // line and the summary too (issue 19, point 7).
    all_json(&seen);
    let expected = format!(
        "run failed: tenant 'fifo': secret 'client_secret': secret file {} is a FIFO (named pipe), not a regular file; point it at a regular file",
        fifo.display()
    );
    let failed: Vec<serde_json::Value> = seen
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("run failed"))
        })
        .collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert_eq!(failed[0]["fields"]["message"], expected, "{stderr}");
}

#[tokio::test(flavor = "current_thread")]
async fn operator_a_tenant_whose_run_is_slow_to_build_does_not_stall_the_others() {
    // One runtime thread: a run built on it would stop everything else while it builds.
    let server = Server::new(runtime().await, ServeOptions::default());
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let entered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let never_released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config_error = |tenant: &str| RunError::Config {
        tenant: tenant.into(),
        message: "test".into(),
    };
    server
        .register(TenantEntry {
            key: "stuck".into(),
            make_run: Box::new({
                let (entered, never_released) = (entered.clone(), never_released.clone());
                move || {
                    entered.store(true, std::sync::atomic::Ordering::SeqCst);
                    // Stands for a file that takes its time (a slow mount, a FIFO). Released
                    // by the test; the timeout only turns a stalled runtime into a failure.
                    let waited = released
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(60));
                    never_released.store(waited.is_err(), std::sync::atomic::Ordering::SeqCst);
                    Err(config_error("stuck"))
                }
            }),
            schedule: Schedule::default(),
        })
        .unwrap();
    server
        .register(TenantEntry {
            key: "other".into(),
            make_run: Box::new(move || Err(config_error("other"))),
            schedule: Schedule::default(),
        })
        .unwrap();
    let endpoint = server.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();

    let stuck = tokio::spawn({
        let server = server.clone();
        async move { server.run_now("stuck").await }
    });
    wait_until("the stuck run is being built", || {
        entered.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    // While it builds: another tenant runs, and /metrics answers.
    let other = server.run_now("other").await.unwrap();
    assert!(matches!(other, Err(RunError::Config { .. })), "{other:?}");
    let (status, text) = get(format!("http://{}/metrics", endpoint.local_addr())).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("connector_run_failures_total{tenant=\"other\",kind=\"config\"} 1\n"),
        "{text}"
    );
    assert!(
        !never_released.load(std::sync::atomic::Ordering::SeqCst),
        "the other tenant ran only after the stuck one gave up waiting"
    );
    release.send(()).unwrap();
    assert!(matches!(
        stuck.await.unwrap().unwrap(),
        Err(RunError::Config { .. })
    ));
    endpoint.shutdown().await;
}

/// Counts the JSON log lines of finished runs: (succeeded, failed).
fn count_runs(lines: &[String]) -> (usize, usize) {
    let message = |l: &String| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v["fields"]["message"].as_str().map(str::to_string))
    };
    let succeeded = lines
        .iter()
        .filter(|l| message(l).as_deref() == Some("run succeeded"))
        .count();
    let failed = lines
        .iter()
        .filter(|l| message(l).is_some_and(|m| m.starts_with("run failed")))
        .count();
    (succeeded, failed)
}

/// One idle client of the flood: connects, sends nothing, holds the connection until the
/// server closes it, and connects again, until `stop`.
async fn idle_client(addr: std::net::SocketAddr, stop: Arc<std::sync::atomic::AtomicBool>) {
    use tokio::io::AsyncReadExt;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            let mut buf = [0u8; 512];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(n) if n > 0 => continue,
                        _ => break,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_metrics_connection_flood_does_not_starve_runs() {
    use std::os::unix::process::CommandExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        "[serve]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_runs = 2\nshutdown_grace_secs = 10\n\n\
         [schedule]\ninterval_secs = 1\njitter_secs = 0\n\n\
         [simulation]\ntenants = 6\nusers_per_tenant = 10\nseed = 7\n\
         checkpoint_db = \"sim/checkpoints.sqlite\"\nevents_dir = \"sim/events\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--log",
        "connector_host=info",
        "--log-format",
        "json",
        "serve",
        "--tenants",
    ])
    .arg(&path)
    .stderr(Stdio::piped())
    .stdout(Stdio::null());
    // A small open-files limit, soft and hard, as on the machine where ~330 idle sockets
    // made 213 runs fail.
    unsafe {
        cmd.pre_exec(|| {
            let limit = rustix::process::Rlimit {
                current: Some(256),
                maximum: Some(256),
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().unwrap();
    let rx = stderr_lines(&mut child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr: std::net::SocketAddr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no start line: {seen:#?}"));
        seen.push(line.clone());
        if let Some(rest) = line.split("metrics http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };

    // An eighth of the 256 descriptors at most for /metrics connections, the rest for runs.
    assert!(
        seen.iter()
            .any(|l| l.contains("metrics endpoint connection cap")
                && l.contains("\"max_connections\":32")),
        "{seen:#?}"
    );

    // 300 idle connections, reopened whenever the server closes one.
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..300)
        .map(|_| tokio::spawn(idle_client(addr, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    seen.extend(rx.try_iter());
    let before = count_runs(&seen);

    // (a) A scraper is still served: idle sockets wait in line for a slot and are closed
    // after a second of silence; they never hold a connection that a request could use.
    let scraper = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..3 {
        let resp = scraper
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("the scraper got no answer during the flood: {e:?}"));
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status == 200 && body.contains("connector_tenants 6\n"),
            "{status}: {body}"
        );
    }

    // (b) Runs go on: every tenant runs again while the flood lasts, and none fails.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        seen.extend(rx.try_iter());
        let now = count_runs(&seen);
        assert_eq!(
            now.1,
            before.1,
            "runs failed during the flood: {:#?}",
            seen.iter()
                .filter(|l| l.contains("run failed"))
                .take(3)
                .collect::<Vec<_>>()
        );
        if now.0 >= before.0 + 12 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs stalled during the flood: {now:?} after {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in flood {
        let _ = client.await;
    }
    // Once the flood ends, the endpoint serves again.
    wait_until_async_metrics(&addr.to_string(), "connector_tenants 6").await;

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        seen.iter()
            .any(|l| message(l) == "  failures                0"),
        "{stderr}"
    );
    all_json(&seen);
}

#[test]
fn operator_a_low_soft_open_files_limit_is_raised_to_the_hard_limit() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let path = sim_file(dir.path(), "once = true", 2);
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--log",
        "connector_host=info",
        "--log-format",
        "json",
        "serve",
        "--tenants",
    ])
    .arg(&path);
    // The soft limit low, the hard limit allowing more (a distribution's 1024 : 524288).
    unsafe {
        cmd.pre_exec(|| {
            let limit = rustix::process::Rlimit {
                current: Some(256),
                maximum: Some(4096),
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let logged = |message: &str| {
        stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no '{message}' line: {stderr}"))
    };
    let raised = logged("raised the open-files limit to its hard limit");
    // Numbers, not Debug-formatted Options (issue 19: `"Some(20000)"`).
    assert_eq!(raised["fields"]["before"], 256, "{raised}");
    assert_eq!(raised["fields"]["after"], 4096, "{raised}");
    let cap = logged("metrics endpoint connection cap");
    assert_eq!(cap["fields"]["max_connections"], 64, "{cap}");
}

/// A tenant of `serve` whose `client_id` or key holds its client secret: the deployment is
/// refused at start (exit 2), naming the file and the key, never the value; the connector's
/// configuration error, which quoted the value, never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_serve_refuses_a_tenant_whose_config_or_key_holds_its_secret() {
    let emu = Emulator::start(Tenant::generated(6, 5), EmulatorConfig::default())
        .await
        .unwrap();
    let secret = "Xq48Q-Vd3.kLp0_aZ9rT-uW2yB7nC1mE5gH6jS8f";
    let cfg = emu.config();
    let tenant = |key: &str, client_id: &str| {
        format!(
            "[tenant]\nkey = \"{key}\"\n\n[config]\ntenant_id = \"{}\"\nclient_id = \"{client_id}\"\n\
             login_endpoint = \"{}\"\ngraph_endpoint = \"{}\"\n\n[secrets.client_secret]\nenv = \"SERVE_PASTE_TEST_SECRET\"\n\n\
             [egress]\nallow_loopback_http = true\n\n[state]\ncheckpoint_db = \"state.sqlite\"\n\n\
             [sink]\nkind = \"jsonl\"\npath = \"{key}.jsonl\"\n",
            cfg.tenant_id,
            emu.login_endpoint(),
            emu.graph_endpoint(),
        )
    };
    for (text, named) in [
        (
            tenant("pasted", &format!("{secret}~")),
            "[config] client_id holds the value of the secret 'client_secret'",
        ),
        (
            tenant(secret, &cfg.client_id),
            "[tenant] key holds the value of the secret 'client_secret'",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.toml"), text).unwrap();
        let path = dir.path().join("tenants.toml");
        std::fs::write(
            &path,
            "include = [\"t.toml\"]\n\n[serve]\nlisten = \"127.0.0.1:0\"\nonce = true\n",
        )
        .unwrap();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["--no-cache", "serve", "--tenants"])
                .arg(&path)
                .env("SERVE_PASTE_TEST_SECRET", secret)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let line = stderr.lines().last().unwrap_or("");
        assert!(
            line.starts_with("error: ") && line.contains("tenants.toml") && line.contains(named),
            "{stderr}"
        );
        assert!(
            !stderr.contains(secret) && !stderr.contains("Xq48Q"),
            "the secret was printed: {stderr}"
        );
    }
}

/// Issue 19, point 7: a second `serve` on one machine. The file's `[serve] listen` is taken
/// (by a listener standing for the first `serve`): the error says the address is in use and
/// points at `--listen`; with `--listen` the same file serves, its endpoint where the
/// command line put it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_listen_on_the_command_line_overrides_a_taken_serve_listen() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\nonce = true\n\n[simulation]\ntenants = 2\n\
             users_per_tenant = 5\n"
        ),
    )
    .unwrap();
    let serve = |extra: Vec<String>| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["serve", "--tenants"])
                .arg(&path)
                .args(extra)
                .output()
                .unwrap()
        })
    };
    let out = serve(Vec::new()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.contains(&format!(
            "[serve] listen = \"127.0.0.1:{port}\": the address is already in use"
        )) && line.contains("--listen 127.0.0.1:PORT"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1
    );

    // Taken on the command line too: the error names --listen.
    let out = serve(vec!["--listen".into(), format!("127.0.0.1:{port}")])
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: --listen 127.0.0.1:{port}: the address is already in use"
        )),
        "{stderr}"
    );

    // A free address on the command line: the same file serves there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free_port = free.local_addr().unwrap().port();
    drop(free);
    let out = serve(vec!["--listen".into(), format!("127.0.0.1:{free_port}")])
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("metrics http://127.0.0.1:{free_port}/metrics")),
        "{stderr}"
    );
    drop(taken);
}

/// Issue 21, point 6: one `serve` runs a tenants file mixing an Entra ID tenant (the Graph
/// emulator) and an Okta tenant (the Okta emulator, an API token as `Authorization: SSWS`),
/// both on 127.0.0.1: each tenant's events land in its own sink as valid OCSF 1.8.0 5003
/// events of its own connector, `/metrics` labels each tenant with its connector, and the
/// status page lists both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_serve_runs_an_entra_and_an_okta_tenant_each_into_its_sink() {
    use connector_host::simulation::okta_emulator::{
        Bucket, Emulator as OktaEmulator, OktaClock, OktaConfig, Org, DEFAULT_API_TOKEN,
    };
    let graph = Emulator::start(Tenant::generated(3, 8), EmulatorConfig::default())
        .await
        .unwrap();
    let clock = OktaClock::system();
    // Buckets wide enough that the full walk (a generated org has 300+ groups, a member page
    // each) never waits for a window: this test is about two connectors in one serve; the
    // pacing under Okta's default limits has its own tests (tests/).
    let mut config = OktaConfig::default();
    for bucket in Bucket::ALL {
        config.rate_limits.insert(bucket, 100_000);
    }
    let okta = OktaEmulator::start(Org::generated(21, 30, clock.now_ms()), config, clock)
        .await
        .unwrap();
    let okta_users = okta.with_org(|o| o.users().count());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tenants.d")).unwrap();
    let secret_file = |name: &str, value: &str| {
        let path = d.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    secret_file("entra.secret", &graph.config().client_secret);
    secret_file("okta.token", DEFAULT_API_TOKEN);
    let cfg = graph.config();
    std::fs::write(
        d.join("tenants.d/entra.toml"),
        format!(
            "[tenant]\nkey = \"contoso\"\nconnector = \"entra-id\"\n\n[config]\ntenant_id = \"{}\"\n\
             client_id = \"{}\"\nlogin_endpoint = \"{}\"\ngraph_endpoint = \"{}\"\n\n\
             [secrets.client_secret]\nfile = \"../entra.secret\"\n\n[egress]\nallow_loopback_http = true\n\n\
             [state]\ncheckpoint_db = \"../state.sqlite\"\n\n[sink]\nkind = \"jsonl\"\npath = \"../contoso.jsonl\"\n",
            cfg.tenant_id,
            cfg.client_id,
            graph.login_endpoint(),
            graph.graph_endpoint()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("tenants.d/okta.toml"),
        format!(
            "[tenant]\nkey = \"acme\"\nconnector = \"okta\"\n\n[config]\norg_url = \"{}\"\n\n\
             [secrets.okta_token]\nfile = \"../okta.token\"\nheader = \"Authorization\"\nprefix = \"SSWS\"\n\n\
             [egress]\nallow_loopback_http = true\n\n\
             [state]\ncheckpoint_db = \"../state.sqlite\"\n\n[sink]\nkind = \"jsonl\"\npath = \"../acme.jsonl\"\n",
            okta.base_url()
        ),
    )
    .unwrap();
    let path = d.join("tenants.toml");
    std::fs::write(
        &path,
        "include = [\"tenants.d/*.toml\"]\n\n[serve]\nlisten = \"127.0.0.1:0\"\n\n\
         [schedule]\ninterval_secs = 3600\njitter_secs = 0\n",
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["--log", "connector_host=info", "serve", "--tenants"])
        .arg(&path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let rx = stderr_lines(&mut child.0);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no start line: {seen:#?}"));
        seen.push(line.clone());
        if let Some(rest) = line.split("metrics http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    assert!(
        seen.last().unwrap().contains("serving 2 tenants from "),
        "{seen:#?}"
    );
    metrics_show(
        &addr,
        &[
            "connector_runs_total{tenant=\"contoso\",outcome=\"success\"} 1".into(),
            "connector_runs_total{tenant=\"acme\",outcome=\"success\"} 1".into(),
            "connector_tenant_info{tenant=\"contoso\",connector=\"entra-id-users\"} 1".into(),
            "connector_tenant_info{tenant=\"acme\",connector=\"okta-users\"} 1".into(),
            format!("connector_events_total{{tenant=\"acme\"}} {okta_users}"),
            "connector_events_total{tenant=\"contoso\"} 8".into(),
        ],
    )
    .await;
    let (code, page) = get(format!("http://{addr}/status")).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("contoso") && page.contains("acme"),
        "both tenants on the status page: {page}"
    );
    let status = sigterm_and_wait(
        &mut child.0,
        Duration::from_secs(30),
        "serve did not exit after SIGTERM",
    )
    .await;
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(DEFAULT_API_TOKEN), "{stderr}");
    assert!(!stderr.contains(&cfg.client_secret), "{stderr}");

    let events = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    for (file, count, logger, product) in [
        ("contoso.jsonl", 8, "entra-id-users", "Entra ID"),
        ("acme.jsonl", okta_users, "okta-users", "Okta"),
    ] {
        let got = events(file);
        assert_eq!(got.len(), count, "{file}");
        ocsf_check::assert_all_valid(&got);
        for e in &got {
            assert_eq!(e["class_uid"], 5003, "{file}: {e}");
            assert_eq!(e["metadata"]["loggers"][0]["name"], logger, "{file}: {e}");
            assert!(
                e["metadata"]["product"]["name"]
                    .as_str()
                    .is_some_and(|p| p.contains(product)),
                "{file}: {e}"
            );
        }
    }
    // One store, one namespace per tenant.
    let conn = rusqlite::Connection::open(d.join("state.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT DISTINCT substr(namespace, 1, instr(namespace, '/') - 1) FROM checkpoints ORDER BY 1")
        .unwrap();
    let namespaces: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(namespaces, ["acme", "contoso"]);
    okta.shutdown().await;
}

/// The example files of README "One serve, two connectors" (examples/tenants/) load as
/// written, and each tenant's `[config]` is one its own connector takes: the real
/// components' egress plans send the Entra tenant to Microsoft's login and Graph and the
/// Okta tenants to their org only, each key and token to its origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_tenants_files_mix_entra_and_okta_and_their_connectors_take_them() {
    use connector_host::{Components, ConnectorChoice, RuntimeOptions, TenantConfig};
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tenants");
    let file = ServeFile::load(&examples.join("tenants.toml")).unwrap();
    let mut tenants: Vec<TenantConfig> = file.tenants;
    tenants.push(TenantConfig::load(&examples.join("okta-service-app.toml")).unwrap());
    let components = Components::new(RuntimeOptions::default());
    let mut seen = Vec::new();
    for cfg in tenants {
        let rt = components.runtime(&cfg.component).await.unwrap();
        let cfg = rt.resolve_egress(cfg).await.unwrap();
        let allow: Vec<String> = cfg.egress_allow.iter().map(|o| o.to_string()).collect();
        let hosts: Vec<(String, Vec<String>)> = cfg
            .secrets
            .iter()
            .map(|(name, s)| (name.clone(), s.hosts.clone()))
            .collect();
        seen.push((
            cfg.key.clone(),
            cfg.component.clone(),
            cfg.connector_name.clone().unwrap(),
            allow,
            hosts,
        ));
    }
    let okta = |key: &str, secret: &str| {
        (
            key.to_string(),
            ConnectorChoice::Builtin("okta".into()),
            "okta-users".to_string(),
            vec!["https://acme.okta.com".to_string()],
            vec![(
                secret.to_string(),
                vec!["https://acme.okta.com".to_string()],
            )],
        )
    };
    assert_eq!(
        seen,
        [
            okta("acme", "okta_token"),
            (
                "contoso".into(),
                ConnectorChoice::Builtin("entra-id".into()),
                "entra-id-users".into(),
                vec![
                    "https://login.microsoftonline.com".into(),
                    "https://graph.microsoft.com".into()
                ],
                vec![(
                    "client_secret".into(),
                    vec!["https://login.microsoftonline.com".into()]
                )],
            ),
            okta("acme-app", "okta_key"),
        ]
    );
    assert_eq!(components.count().await, 2, "one runtime per connector");
}
