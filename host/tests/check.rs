//! `connector-host check` tells the truth (issue 19, point 2): an egress refusal, a wrong
//! endpoint, refused credentials and a missing permission are four verdicts with four fixes
//! and four exit codes; the sink is probed too (reachable, the credential accepted, no event
//! delivered); and `check` creates no file and connects to no PostgreSQL. The real binary,
//! the Graph emulator on 127.0.0.1, a receiver on 127.0.0.1 that records what it got.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");
const SECRET_VAR: &str = "CHECK_TEST_CLIENT_SECRET";
/// The http sink's credential header value (`Bearer <key>`).
const SINK_VAR: &str = "CHECK_TEST_SINK_VALUE";
/// The Sekoia.io sink's API key (the sink sends `Bearer <key>`).
const SEKOIA_VAR: &str = "CHECK_TEST_SEKOIA_KEY";
const SINK_KEY: &str = "ck-9f2e7a1c4b5d-check-probe";
const UUID: &str = "04716e25-c97f-4a22-925e-8b636ad9c8a4";

async fn emulator() -> Emulator {
    Emulator::start(Tenant::generated(19, 12), EmulatorConfig::default())
        .await
        .unwrap()
}

/// What a tenant file varies in these tests.
struct Tenantfile<'a> {
    graph: String,
    /// `[egress]` lines besides `allow_loopback_http`.
    egress: String,
    /// `[state]` lines.
    state: String,
    /// `[sink]` lines.
    sink: String,
    /// `[secrets.client_secret]` lines besides `env`.
    secret: String,
    emu: &'a Emulator,
}

impl<'a> Tenantfile<'a> {
    fn new(emu: &'a Emulator) -> Self {
        Tenantfile {
            graph: emu.graph_endpoint(),
            egress: String::new(),
            state: "checkpoint_db = \"state/checkpoints.sqlite\"".into(),
            sink: "kind = \"jsonl\"\npath = \"out/events.jsonl\"".into(),
            secret: String::new(),
            emu,
        }
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let cfg = self.emu.config();
        let text = format!(
            r#"[tenant]
key = "checked"

[config]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"

[secrets.client_secret]
env = "{SECRET_VAR}"
{secret}

[egress]
allow_loopback_http = true
{egress}

[state]
{state}

[sink]
{sink}
"#,
            tenant_id = cfg.tenant_id,
            client_id = cfg.client_id,
            login = self.emu.login_endpoint(),
            graph = self.graph,
            egress = self.egress,
            state = self.state,
            sink = self.sink,
            secret = self.secret,
        );
        let path = dir.join("tenant.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `check --config` with the client secret `secret` and the sink key set.
async fn check(config: &Path, secret: &str) -> Output {
    let args = vec![
        "check".to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    let secret = secret.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env(SECRET_VAR, secret)
            .env(SINK_VAR, format!("Bearer {SINK_KEY}"))
            .env(SEKOIA_VAR, SINK_KEY)
            .output()
            .expect("connector-host starts")
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn line_of<'t>(text: &'t str, start: &str) -> &'t str {
    text.lines()
        .find(|l| l.contains(start))
        .unwrap_or_else(|| panic!("no line with {start:?} in:\n{text}"))
}

/// The probe line named `name` (the column after `ok  `, `warn` or `FAIL`).
fn named<'t>(text: &'t str, name: &str) -> &'t str {
    text.lines()
        .find(|l| l.get(5..).is_some_and(|rest| rest.starts_with(name)))
        .unwrap_or_else(|| panic!("no probe named {name:?} in:\n{text}"))
}

/// The connector's probe lines (every line but the host's `egress`, `sink` and `verdict`).
fn graph_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let rest = l.get(5..).unwrap_or("");
            !rest.starts_with("egress ") && !rest.starts_with("sink [") && !l.starts_with("verdict")
        })
        .collect()
}

fn origin(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap(),
        u.port().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_refusal_is_its_own_verdict_with_its_fix_and_exit_7() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let graph = origin(&emu.graph_endpoint());
    let mut t = Tenantfile::new(&emu);
    // Graph is missing from the allowlist: only the login endpoint may be reached.
    t.egress = format!("allow = [\"{}\"]", origin(&emu.login_endpoint()));
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    let text = stdout(&out);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(7), "{text}\n{}", stderr(&out));
    let egress = named(&text, "egress ");
    assert!(
        egress.starts_with("FAIL")
            && egress.contains(&format!("{graph} is not in the tenant's egress allowlist"))
            && egress.contains("add the origin to [egress] allow"),
        "{egress}"
    );
    assert!(line_of(&text, "token").starts_with("ok"), "{text}");
    for source in ["users [", "groups and members", "role assignments"] {
        let line = line_of(&text, source);
        assert!(
            line.starts_with("FAIL")
                && line.contains("egress refused:")
                && line.contains("[egress] allow"),
            "{line}"
        );
    }
    for line in graph_lines(&text) {
        assert!(
            !line.contains("grant"),
            "a refusal by the host is never a permission: {line}"
        );
    }
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("verdict: egress refused")
            && text.ends_with("(exit 7)\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_request_is_an_egress_refusal_too() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let login = origin(&emu.login_endpoint());
    let mut t = Tenantfile::new(&emu);
    // The login endpoint is missing: no token can be had, so the connector's check fails.
    t.egress = format!("allow = [\"{}\"]", origin(&emu.graph_endpoint()));
    t.sink = "kind = \"stdout\"".into();
    // The client secret may go to the login origin (its hosts); the allowlist still refuses it.
    let config = t.write(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("env = \"{SECRET_VAR}\""),
        &format!("env = \"{SECRET_VAR}\"\nhosts = [\"{login}\"]"),
    );
    std::fs::write(&config, text).unwrap();
    let out = check(&config, &emu.config().client_secret).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(7), "{text}\n{err}");
    let egress = named(&text, "egress ");
    assert!(
        egress.starts_with("FAIL")
            && egress.contains(&format!("{login} is not in the tenant's egress allowlist")),
        "{egress}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: ") && last.contains("acquiring a token"),
        "the connector's own error is still the last line: {last}"
    );
    assert!(!text.contains("grant") && !err.contains("grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_endpoint_with_a_path_is_a_wrong_endpoint_exit_2() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Tenantfile::new(&emu).write(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("login_endpoint = \"{}\"", emu.login_endpoint()),
        &format!("login_endpoint = \"{}/common\"", emu.login_endpoint()),
    );
    std::fs::write(&config, text).unwrap();
    let out = check(&config, &emu.config().client_secret).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.contains("AADSTS900561") && last.contains("set config key 'login_endpoint'"),
        "{last}"
    );
    assert!(
        line_of(&text, "verdict").starts_with("verdict: wrong endpoint"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_endpoint_with_v1_0_appended_is_a_wrong_endpoint_exit_2() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tenantfile::new(&emu);
    t.graph = format!("{}/v1.0/", emu.graph_endpoint());
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    let text = stdout(&out);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", stderr(&out));
    let users = line_of(&text, "users [");
    assert!(
        users.starts_with("FAIL")
            && users.contains("wrong endpoint: Graph answered 404")
            && users.contains("config key 'graph_endpoint' ends in '/v1.0': remove it"),
        "{users}"
    );
    for line in graph_lines(&text)
        .into_iter()
        .filter(|l| l.starts_with("FAIL"))
    {
        assert!(
            !line.contains("grant"),
            "a 404 is never a permission: {line}"
        );
    }
    assert!(
        line_of(&text, "verdict").starts_with("verdict: wrong endpoint")
            && text.ends_with("(exit 2)\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_refused_credentials_exit_3() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        &Tenantfile::new(&emu).write(dir.path()),
        "wrong-secret-value-0123",
    )
    .await;
    let (text, err) = (stdout(&out), stderr(&out));
    eprintln!("{text}{err}");
    assert_eq!(out.status.code(), Some(3), "{text}\n{err}");
    // The token endpoint's 401 invalid_client (AADSTS7000215), as the connector shows it.
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: ")
            && last.contains("AADSTS7000215")
            && last.contains("check the client secret"),
        "{last}"
    );
    assert!(
        !text.contains("grant") && !err.contains("grant"),
        "{text}{err}"
    );
    assert!(
        line_of(&text, "verdict").starts_with("verdict: credentials refused"),
        "{text}"
    );
    assert!(!err.contains("wrong-secret-value-0123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_exit_4_and_names_the_permission() {
    let emu = emulator().await;
    emu.set_missing_permissions(&[
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "Directory.Read.All",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        &Tenantfile::new(&emu).write(dir.path()),
        &emu.config().client_secret,
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}\n{}", stderr(&out));
    let roles = line_of(&text, "role assignments");
    assert!(
        roles.starts_with("FAIL")
            && roles.contains("permission missing: 403 Authorization_RequestDenied")
            && roles.contains(
                "grant the application permission RoleManagement.Read.Directory and admin consent"
            ),
        "{roles}"
    );
    assert!(line_of(&text, "users [").starts_with("ok"), "{text}");
    assert!(named(&text, "sink [jsonl]").starts_with("ok"), "{text}");
    assert!(
        line_of(&text, "verdict").starts_with("verdict: permission missing"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// The sink.

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
    body: Bytes,
}

/// A receiver on 127.0.0.1 answering every request with `status`, recording each.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    status: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx = Receiver {
            addr: listener.local_addr().unwrap(),
            status,
            seen: Arc::default(),
        };
        let serving = rx.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let rx = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let rx = rx.clone();
                        async move { rx.handle(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        rx
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let authorization = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        self.seen.lock().unwrap().push(Seen {
            method,
            path,
            authorization,
            body,
        });
        let text = match self.status {
            200 => r#"{"uuid": "2a4b6c8d", "email": "probe@example.test"}"#,
            401 => r#"{"code": "T300", "message": "Invalid API key"}"#,
            _ => "",
        };
        Ok(Response::builder()
            .status(self.status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(text)))
            .unwrap())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn http_sink(&self) -> String {
        format!(
            "kind = \"http\"\nurl = \"http://{}/ocsf\"\nvalue = {{ env = \"{SINK_VAR}\" }}",
            self.addr
        )
    }

    fn sekoia_sink(&self) -> String {
        format!(
            "kind = \"sekoia\"\nbase_url = \"http://{}\"\nconnector_uuid = \"{UUID}\"\napi_key = {{ env = \"{SEKOIA_VAR}\" }}",
            self.addr
        )
    }
}

/// The events in the requests a receiver got: the NDJSON lines and Sekoia `items`.
fn events_delivered(seen: &[Seen]) -> usize {
    seen.iter()
        .map(|s| {
            let text = String::from_utf8_lossy(&s.body);
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => v["items"].as_array().map_or(0, Vec::len),
                Err(_) => text.lines().filter(|l| !l.trim().is_empty()).count(),
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_is_probed_without_delivering_an_event() {
    let emu = emulator().await;
    for kind in ["http", "sekoia"] {
        let rx = Receiver::start(200).await;
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tenantfile::new(&emu);
        t.sink = if kind == "http" {
            rx.http_sink()
        } else {
            rx.sekoia_sink()
        };
        let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind}: {text}\n{}",
            stderr(&out)
        );
        let sink = named(&text, &format!("sink [{kind}]"));
        assert!(
            sink.starts_with("ok")
                && sink.contains("HTTP 200")
                && sink.contains("credential accepted; no event sent"),
            "{sink}"
        );
        let seen = rx.seen();
        assert_eq!(seen.len(), 1, "{kind}: one probe request: {seen:?}");
        assert_eq!(
            events_delivered(&seen),
            0,
            "{kind}: the receiver got no event"
        );
        assert_eq!(seen[0].authorization, format!("Bearer {SINK_KEY}"));
        if kind == "http" {
            assert_eq!(
                (seen[0].method.as_str(), seen[0].path.as_str()),
                ("POST", "/ocsf")
            );
            assert!(seen[0].body.is_empty(), "an empty batch");
        } else {
            // Sekoia.io's documented key check: the key's own profile.
            assert_eq!(
                (seen[0].method.as_str(), seen[0].path.as_str()),
                ("GET", "/v1/me")
            );
        }
        assert!(!text.contains(SINK_KEY) && !stderr(&out).contains(SINK_KEY));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_refusing_the_credential_fails_check_with_its_fix() {
    let emu = emulator().await;
    for kind in ["http", "sekoia"] {
        let rx = Receiver::start(401).await;
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tenantfile::new(&emu);
        t.sink = if kind == "http" {
            rx.http_sink()
        } else {
            rx.sekoia_sink()
        };
        let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(6),
            "{kind}: {text}\n{}",
            stderr(&out)
        );
        let key = if kind == "http" {
            "[sink] value"
        } else {
            "[sink] api_key"
        };
        let sink = named(&text, &format!("sink [{kind}]"));
        assert!(
            sink.starts_with("FAIL")
                && sink.contains("sink failed: credentials refused")
                && sink.contains("HTTP 401")
                && sink.contains("Invalid API key")
                && sink.contains(&format!("check {key}")),
            "{sink}"
        );
        assert!(
            line_of(&text, "verdict").starts_with("verdict: sink failed"),
            "{text}"
        );
        assert_eq!(events_delivered(&rx.seen()), 0);
        // The connector's probes passed: the sink's failure is its own line.
        assert!(line_of(&text, "users [").starts_with("ok"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_refusing_an_empty_batch_is_a_warning_not_a_failure() {
    // Elastic's HTTP endpoint input answers 406 "if the POST request does not contain a
    // body": reachable, but the credential is not confirmed.
    let emu = emulator().await;
    let rx = Receiver::start(406).await;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tenantfile::new(&emu);
    t.sink = rx.http_sink();
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let sink = named(&text, "sink [http]");
    assert!(
        sink.starts_with("warn")
            && sink.contains("reachable but answered HTTP 406")
            && sink.contains("the credential was not confirmed"),
        "{sink}"
    );
    assert_eq!(events_delivered(&rx.seen()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sink_fails_check_with_its_fix() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut t = Tenantfile::new(&emu);
    t.sink = format!(
        "kind = \"http\"\nurl = \"http://127.0.0.1:{port}/ocsf\"\nvalue = {{ env = \"{SINK_VAR}\" }}"
    );
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(6), "{text}\n{}", stderr(&out));
    let sink = named(&text, "sink [http]");
    assert!(
        sink.starts_with("FAIL")
            && sink.contains(&format!(
                "sink failed: unreachable: http://127.0.0.1:{port}"
            ))
            && sink.contains("check [sink] url and that the receiver is up"),
        "{sink}"
    );
}

// ---------------------------------------------------------------------------------------
// No file, no database.

/// Every path under `dir` (files, folders, links), with the bytes of each file.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p.clone());
                out.push((p, Vec::new()));
            } else if meta.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            } else {
                out.push((p, Vec::new()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_creates_no_file_for_any_sink_kind_and_the_sqlite_store() {
    let emu = emulator().await;
    let rx = Receiver::start(200).await;
    for (kind, sink) in [
        (
            "jsonl",
            "kind = \"jsonl\"\npath = \"out/sub/events.jsonl\"".to_string(),
        ),
        ("stdout", "kind = \"stdout\"".to_string()),
        ("http", rx.http_sink()),
        ("sekoia", rx.sekoia_sink()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tenantfile::new(&emu);
        t.sink = sink;
        let config = t.write(dir.path());
        let before = snapshot(dir.path());
        assert_eq!(before.len(), 1, "only the tenant file");
        let out = check(&config, &emu.config().client_secret).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(named(&stdout(&out), "sink [").starts_with("ok"));
        let after = snapshot(dir.path());
        assert_eq!(
            after.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            before.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "{kind}: check created no file (no events file, no checkpoint database, no -wal or -shm, no folder)"
        );
        assert_eq!(after, before, "{kind}: and changed none");
    }
    assert_eq!(events_delivered(&rx.seen()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connects_to_no_postgresql_store() {
    let emu = emulator().await;
    // Where the tenant's PostgreSQL store would be: a listener that counts connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(Mutex::new(0u32));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            *counted.lock().unwrap() += 1;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tenantfile::new(&emu);
    t.state = format!("url = \"postgres://connector@127.0.0.1:{port}/connector\"");
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        *connections.lock().unwrap(),
        0,
        "check never connects to the store (connecting migrates its schema)"
    );
}

/// `YYYY-MM-DD` of the UTC day `days` from today (negative: before).
fn day_from_today(days: i64) -> String {
    let now = std::time::SystemTime::now();
    let shift = std::time::Duration::from_secs(days.unsigned_abs() * 86_400);
    let at = if days < 0 { now - shift } else { now + shift };
    humantime::format_rfc3339_seconds(at).to_string()[..10].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_a_credential_ending_within_30_days_warns_and_an_ended_one_fails_exit_3() {
    let emu = emulator().await;
    // Ten days left: the check passes with a warning naming the day and the fix.
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tenantfile::new(&emu);
    let soon = day_from_today(10);
    t.secret = format!("expires = \"{soon}\"");
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let line = named(&text, "credentials");
    assert!(
        line.starts_with("warn")
            && line.contains(&format!("[secrets.client_secret] expires on {soon}"))
            && line.contains("by its expires setting")
            && line.contains("create a new one"),
        "{line}"
    );
    // Far ahead: no credentials line at all.
    let dir = tempfile::tempdir().unwrap();
    t.secret = format!("expires = \"{}\"", day_from_today(90));
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.get(5..).is_some_and(|r| r.starts_with("credentials "))),
        "{text}"
    );
    // Ended two days ago: FAIL, the credentials verdict and its exit code, though the
    // emulator still takes the secret (the operator's day is what counts).
    let dir = tempfile::tempdir().unwrap();
    let gone = day_from_today(-2);
    t.secret = format!("expires = \"{gone}\"");
    let out = check(&t.write(dir.path()), &emu.config().client_secret).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    let line = named(&text, "credentials");
    assert!(
        line.starts_with("FAIL")
            && line.contains(&format!("[secrets.client_secret] expired on {gone}")),
        "{line}"
    );
    assert!(
        line_of(&text, "verdict").starts_with("verdict: credentials refused"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// The built-in Okta connector (issue 21): its probes classify like Entra's, against the Okta
// emulator (okta-emulator, written from Okta's docs) on 127.0.0.1.

use connector_host::simulation::okta_emulator::{
    AppKey, Emulator as OktaEmulator, OktaClock, OktaConfig, Org, DEFAULT_API_TOKEN,
    DEFAULT_CLIENT_ID,
};

/// The environment variable holding the Okta API token in these tests.
const OKTA_TOKEN_VAR: &str = "CHECK_TEST_OKTA_TOKEN";

/// The Okta emulator's test keys (host/okta-emulator/tests/keys).
fn okta_key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("okta-emulator/tests/keys")
        .join(name)
}

/// An Okta org of 20 users on the real clock (assertions carry real times), its service app
/// holding the test RSA key and `scopes` (None: every scope).
async fn okta_emulator(scopes: Option<&[&str]>) -> OktaEmulator {
    okta_emulator_with(scopes, false).await
}

/// [`okta_emulator`], the service app requiring DPoP-bound tokens when `dpop`.
async fn okta_emulator_with(scopes: Option<&[&str]>, dpop: bool) -> OktaEmulator {
    let clock = OktaClock::system();
    let mut config = OktaConfig::default();
    config.service_apps[0].require_dpop = dpop;
    config.service_apps[0].keys = vec![AppKey::Pem(
        std::fs::read_to_string(okta_key("rsa_public.pem")).unwrap(),
    )];
    if let Some(scopes) = scopes {
        config.service_apps[0].scopes = scopes.iter().map(|s| s.to_string()).collect();
    }
    OktaEmulator::start(Org::generated(21, 20, clock.now_ms()), config, clock)
        .await
        .unwrap()
}

/// A tenant file of the built-in `okta` connector for `emu`: with `service_app`, the service
/// app's RSA key (copied into `dir`, mode 0600) and no `algorithm`, else an API token from
/// [`OKTA_TOKEN_VAR`] as `Authorization: SSWS <token>`.
fn okta_tenant_file(dir: &Path, emu: &OktaEmulator, service_app: bool) -> PathBuf {
    let credential = if service_app {
        let key = dir.join("okta.key");
        std::fs::copy(okta_key("rsa_private.pem"), &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        format!(
            "auth = \"service_app\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\n\n\
             [secrets.okta_key]\nkind = \"private_key\"\nfile = \"okta.key\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\n"
        )
    } else {
        format!(
            "\n[secrets.okta_token]\nenv = \"{OKTA_TOKEN_VAR}\"\nheader = \"Authorization\"\nprefix = \"SSWS\"\n"
        )
    };
    let text = format!(
        "[tenant]\nkey = \"okta-checked\"\nconnector = \"okta\"\n\n[config]\norg_url = \"{org}\"\n{credential}\n\
         [egress]\nallow_loopback_http = true\n\n[state]\ncheckpoint_db = \"state/checkpoints.sqlite\"\n\n\
         [sink]\nkind = \"jsonl\"\npath = \"out/events.jsonl\"\n",
        org = emu.base_url()
    );
    let path = dir.join("okta.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `check --config` of an Okta tenant file, the API token variable set to `token`.
async fn okta_check(config: &Path, token: &str) -> Output {
    let config = config.to_path_buf();
    let token = token.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("check")
            .arg("--config")
            .arg(&config)
            .env(OKTA_TOKEN_VAR, token)
            .output()
            .expect("connector-host starts")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_check_of_an_okta_org_passes_with_its_token_and_a_wrong_token_is_exit_3() {
    let emu = okta_emulator(None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = okta_tenant_file(dir.path(), &emu, false);
    let out = okta_check(&cfg, DEFAULT_API_TOKEN).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    for (probe, scope) in [
        ("users", "okta.users.read"),
        ("groups", "okta.groups.read"),
        ("roles", "okta.roles.read"),
        ("logs", "okta.logs.read"),
    ] {
        let line = named(&text, probe);
        assert!(
            line.starts_with("ok  ") && line.contains(&format!("{scope}: readable")),
            "{line}"
        );
    }
    assert!(named(&text, "sink [jsonl]").starts_with("ok  "), "{text}");

    let wrong = "00wrongSSWStoken9x8y7z6w5v4u3t2s1r0q-Okta";
    let out = okta_check(&cfg, wrong).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{text}\n{err}");
    let users = named(&text, "users");
    assert!(
        users.starts_with("FAIL")
            && users.contains("token refused: /api/v1/users?limit=1 answered 401")
            && users.contains("okta_token"),
        "{users}"
    );
    assert!(
        line_of(&text, "verdict").starts_with("verdict: credentials refused"),
        "{text}"
    );
    assert!(!text.contains(wrong) && !err.contains(wrong), "{text}{err}");
    emu.shutdown().await;
}

/// A service app's key with no `algorithm` signs RS256 for the Okta connector: the emulator,
/// like Okta, refuses PS256 (the default for Entra), so a passing check shows the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_check_of_an_okta_service_app_signs_rs256_by_default_and_passes() {
    let emu = okta_emulator(None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = okta_tenant_file(dir.path(), &emu, true);
    let out = okta_check(&cfg, "").await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    for probe in ["users", "groups", "roles", "logs"] {
        assert!(named(&text, probe).starts_with("ok  "), "{text}");
    }
    // Told to sign PS256, the same key is refused where it is sent: credentials, exit 3.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "kind = \"private_key\"",
            "kind = \"private_key\"\nalgorithm = \"PS256\"",
        ),
    )
    .unwrap();
    let out = okta_check(&cfg, "").await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{text}\n{err}");
    assert!(
        line_of(&text, "verdict").starts_with("verdict: credentials refused"),
        "{text}"
    );
    emu.shutdown().await;
}

/// A service app that requires DPoP (README's `examples/tenants/okta-service-app.toml`):
/// `dpop = true` in `[config]` and on the key passes; without the proofs, Okta answers the
/// token request `invalid_dpop_proof` (developer.okta.com/docs/guides/dpop): credentials
/// refused, exit 3, naming the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_check_of_an_okta_service_app_requiring_dpop_passes_with_dpop_true() {
    let emu = okta_emulator_with(None, true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = okta_tenant_file(dir.path(), &emu, true);
    let plain = std::fs::read_to_string(&cfg).unwrap();
    let with_dpop = plain
        .replace(
            &format!("auth = \"service_app\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\n"),
            &format!("auth = \"service_app\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\ndpop = true\n"),
        )
        .replace(
            "kind = \"private_key\"",
            "kind = \"private_key\"\ndpop = true",
        );
    assert_ne!(with_dpop, plain);
    std::fs::write(&cfg, &with_dpop).unwrap();
    let out = okta_check(&cfg, "").await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    for probe in ["users", "groups", "roles", "logs"] {
        assert!(named(&text, probe).starts_with("ok  "), "{text}");
    }
    std::fs::write(&cfg, &plain).unwrap();
    let out = okta_check(&cfg, "").await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{text}\n{err}");
    assert!(text.contains("dpop = true"), "{text}");
    emu.shutdown().await;
}

/// A scope not granted to the service app: Okta answers the token request `400
/// invalid_scope` (RFC 6749 §5.2: "exceeds the scope granted"): the credentials were
/// accepted and a permission is missing, exit 4, naming the scope's fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_check_of_an_okta_service_app_without_a_scope_is_exit_4() {
    let emu = okta_emulator(Some(&[
        "okta.users.read",
        "okta.groups.read",
        "okta.roles.read",
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = okta_tenant_file(dir.path(), &emu, true);
    let out = okta_check(&cfg, "").await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(4), "{text}\n{err}");
    assert!(text.contains("okta.logs.read"), "{text}");
    assert!(
        line_of(&text, "verdict").starts_with("verdict: permission missing"),
        "{text}"
    );
    emu.shutdown().await;
}

/// An `org_url` naming a server that is not an Okta org (here the Graph emulator's login
/// server: every Okta path answers 404) is a wrong endpoint, exit 2, naming `org_url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_check_of_an_okta_tenant_whose_org_url_is_no_okta_org_is_exit_2() {
    let okta = okta_emulator(None).await;
    let graph = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = okta_tenant_file(dir.path(), &okta, false);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(&okta.base_url(), &origin(&graph.login_endpoint())),
    )
    .unwrap();
    let out = okta_check(&cfg, DEFAULT_API_TOKEN).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    let users = named(&text, "users");
    assert!(
        users.starts_with("FAIL")
            && users.contains("wrong endpoint: /api/v1/users?limit=1 answered 404")
            && users.contains("org_url"),
        "{users}"
    );
    assert!(
        line_of(&text, "verdict").starts_with("verdict: wrong endpoint"),
        "{text}"
    );
    okta.shutdown().await;
}

/// The other two verdicts of an Okta tenant, as for Entra: the org failing (a 500 from the
/// logs endpoint) is the upstream service, exit 5; an `[egress] allow` that leaves the org
/// out is the host's refusal, exit 7, naming the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_check_of_an_okta_org_failing_is_exit_5_and_an_egress_refusal_exit_7() {
    use connector_host::simulation::okta_emulator::Fault;
    let emu = okta_emulator(None).await;
    emu.add_fault(Fault {
        path_contains: "/api/v1/logs".into(),
        status: 500,
        times: 1,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = okta_tenant_file(dir.path(), &emu, false);
    let out = okta_check(&cfg, DEFAULT_API_TOKEN).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(5), "{text}\n{err}");
    assert!(named(&text, "users").starts_with("ok  "), "{text}");
    assert!(named(&text, "logs").starts_with("FAIL"), "{text}");
    assert!(
        line_of(&text, "verdict").starts_with("verdict: the upstream service failed"),
        "{text}"
    );

    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "allow_loopback_http = true",
            "allow_loopback_http = true\nallow = [\"https://other.okta.com\"]",
        ),
    )
    .unwrap();
    let out = okta_check(&cfg, DEFAULT_API_TOKEN).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(7), "{text}\n{err}");
    let egress = named(&text, "egress");
    assert!(
        egress.starts_with("FAIL") && egress.contains(&emu.base_url()),
        "{egress}"
    );
    emu.shutdown().await;
}
