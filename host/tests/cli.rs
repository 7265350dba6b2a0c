//! The `connector-host` binary as a person uses it: real process, real tenant file, the
//! Graph emulator on 127.0.0.1, exit codes and one-line errors.

use std::path::Path;
use std::process::{Command, Output};

use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");

fn tenant_file(dir: &Path, emu: &Emulator, tenant_id: &str, graph: &str) -> std::path::PathBuf {
    let cfg = emu.config();
    let text = format!(
        r#"
[tenant]
key = "cli-test"

[config]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"

[secrets.client_secret]
env = "CLI_TEST_CLIENT_SECRET"

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "state/checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "events.jsonl"
"#,
        client_id = cfg.client_id,
        login = emu.login_endpoint(),
    );
    let path = dir.join("tenant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn host(args: Vec<String>, secret: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).env_remove("CLI_TEST_CLIENT_SECRET");
        // Proxy variables pointing nowhere: the host must ignore them (a proxy would see
        // every tenant's traffic), so every test below also proves they are not used.
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env(var, "http://127.0.0.1:1");
        }
        cmd.env("NO_PROXY", "").env("no_proxy", "");
        if let Some(s) = secret {
            cmd.env("CLI_TEST_CLIENT_SECRET", s);
        }
        cmd.output().expect("connector-host starts")
    })
    .await
    .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last line of stderr, which must be the one-line error.
fn error_line(o: &Output) -> String {
    let e = stderr(o);
    let line = e.lines().last().unwrap_or("").to_string();
    assert!(
        line.starts_with("error: "),
        "stderr ends with one error line: {e}"
    );
    line
}

async fn emulator(premium: bool) -> Emulator {
    Emulator::start(
        Tenant::generated(31, 25),
        EmulatorConfig {
            premium,
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_syncs_a_tenant_and_a_second_run_is_incremental() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let secret = Some(emu.config().client_secret);
    let out = host(
        vec![
            "run".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--json".into(),
        ],
        secret.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints one JSON report");
    assert_eq!(report["events_written"], 25);
    assert_eq!(report["full_sync"], true);
    // The host's view of the guest: its peak linear memory, and its last progress (null
    // when the connector reported none; an object with the phase otherwise).
    assert!(
        report["peak_guest_memory_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0),
        "{report}"
    );
    assert!(
        report["progress"].is_null() || report["progress"]["phase"].is_string(),
        "{report}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("events.jsonl"))
            .unwrap()
            .lines()
            .count(),
        25
    );
    assert!(dir.path().join("state/checkpoints.sqlite").exists());

    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        secret,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The summary is on stdout (`run > report.txt` keeps it).
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("sync                    incremental"),
        "{text}"
    );
    assert!(text.contains("events written          0"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("  peak guest memory       ") && l.ends_with(" MiB")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_missing_secret_exit_2_with_one_line() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let line = error_line(&out);
    assert!(line.contains("CLI_TEST_CLIENT_SECRET is not set"), "{line}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("[sink]", "[sink]\nformat = \"xml\""),
    )
    .unwrap();
    let out = host(
        vec![
            "run".into(),
            "--config".into(),
            broken.display().to_string(),
        ],
        Some("any-secret-value".into()),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let line = error_line(&out);
    assert!(
        line.contains("broken.toml") && line.contains("format"),
        "{line}"
    );

    let out = host(
        vec![
            "run".into(),
            "--config".into(),
            "/nonexistent/tenant.toml".into(),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(error_line(&out).contains("cannot read config file /nonexistent/tenant.toml"));

    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("client_id =", "clientid ="),
    )
    .unwrap();
    let out = host(
        vec!["run".into(), "--config".into(), typo.display().to_string()],
        Some("any-secret-value".into()),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(error_line(&out).contains("unknown config key 'clientid'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_and_wrong_secret_exit_3_with_the_aadsts_message() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        "not-a-tenant.onmicrosoft.com",
        &emu.graph_endpoint(),
    );
    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        Some(emu.config().client_secret),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let line = error_line(&out);
    assert!(line.contains("AADSTS90002"), "{line}");

    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        Some("wrong-secret-value".into()),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let line = error_line(&out);
    assert!(
        line.contains("AADSTS7000215") && line.contains("check the client secret"),
        "{line}"
    );
    assert!(
        !stderr(&out).contains("wrong-secret-value"),
        "the secret is never printed"
    );
    assert!(
        !dir.path().join("events.jsonl").exists()
            || std::fs::read_to_string(dir.path().join("events.jsonl"))
                .unwrap()
                .is_empty()
    );
}

/// A client secret whose raw, form-encoded, percent-encoded and JSON-escaped forms all
/// differ, and those forms written out by hand (not by the encoders under test).
const AWKWARD_SECRET: &str = "a+b/c=d&e f%\"g\\h~i";
const AWKWARD_SECRET_FORMS: [&str; 6] = [
    "a+b/c=d&e f%\"g\\h~i",
    "a%2Bb%2Fc%3Dd%26e+f%25%22g%5Ch%7Ei",
    "a%2bb%2fc%3dd%26e+f%25%22g%5ch%7ei",
    "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch%7Ei",
    "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch~i",
    "a+b/c=d&e f%\\\"g\\\\h~i",
];

/// The token endpoint refuses the secret and quotes the request it got (the form body, and
/// the secret decoded) in `error_description`. `run` and `check`, at the most verbose log
/// level in both log formats, print the refusal with the secret redacted: no form of it
/// reaches stdout, stderr, the events file or the checkpoint file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_token_endpoint_echoing_the_secret_never_reaches_stderr() {
    let emu = emulator(true).await;
    emu.set_echo_token_requests(true);
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    for (command, format) in [
        ("check", "text"),
        ("run", "text"),
        ("check", "json"),
        ("run", "json"),
    ] {
        let out = host(
            vec![
                command.into(),
                "--config".into(),
                cfg.display().to_string(),
                "--log".into(),
                "connector_host=trace".into(),
                "--log-format".into(),
                format.into(),
            ],
            Some(AWKWARD_SECRET.into()),
        )
        .await;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(3), "{command}: {stderr}");
        for form in AWKWARD_SECRET_FORMS {
            assert!(
                !stdout.contains(form) && !stderr.contains(form),
                "{command} --log-format {format} printed the secret as {form:?}:\n{stdout}\n{stderr}"
            );
        }
        // Under JSON logs the error line is a JSON object too (issue 19): its message.
        let line = if format == "json" {
            let last = stderr.lines().last().unwrap_or("");
            let object: serde_json::Value = serde_json::from_str(last)
                .unwrap_or_else(|e| panic!("the error line is JSON: {e}: {stderr}"));
            assert_eq!(object["level"], "ERROR", "{last}");
            assert_eq!(object["fields"]["exit_code"], 3, "{last}");
            object["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        } else {
            error_line(&out)
        };
        assert!(
            line.contains("invalid_client")
                && line.contains("Request body: grant_type")
                && line.contains("[redacted]"),
            "{command}: the echo is shown, redacted: {line}"
        );
    }
    for file in ["events.jsonl", "state/checkpoints.sqlite"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for form in AWKWARD_SECRET_FORMS {
            assert!(!text.contains(form), "{file} holds the secret as {form:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_down_exits_5_with_one_line() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &format!("http://127.0.0.1:{port}"),
    );
    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        Some(emu.config().client_secret),
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let line = error_line(&out);
    // The upstream is named by the connector's own describe name, not by the host.
    assert!(
        line.contains("entra-id-users upstream: ") && line.contains("run again"),
        "{line}"
    );
}

/// Runs `check` against `emu` and returns (stdout, exit code).
async fn check(emu: &Emulator) -> (String, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let out = host(
        vec!["check".into(), "--config".into(), cfg.display().to_string()],
        Some(emu.config().client_secret),
    )
    .await;
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

fn line_of<'t>(text: &'t str, source: &str) -> &'t str {
    text.lines()
        .find(|l| l.contains(source))
        .unwrap_or_else(|| panic!("no probe of {source} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_every_source_and_a_licence_gap_is_a_warning() {
    // An unlicensed tenant: sign-in data and the registration report need P1/P2. That is a
    // warning (the run carries on without them), not a failure.
    let emu = emulator(false).await;
    let (text, code) = check(&emu).await;
    for (source, permission) in [
        ("token", ""),
        ("users", "User.Read.All"),
        ("groups and members", "GroupMember.Read.All"),
        ("role assignments", "RoleManagement.Read.Directory"),
        ("PIM eligibility", "RoleEligibilitySchedule.Read.Directory"),
        (
            "authentication methods",
            "UserAuthenticationMethod.Read.All",
        ),
    ] {
        let line = line_of(&text, source);
        assert!(
            line.starts_with("ok") && line.contains(permission),
            "{line}"
        );
    }
    for source in ["sign-in activity", "registration report"] {
        let line = line_of(&text, source);
        assert!(
            line.starts_with("warn")
                && line.contains("P1/P2")
                && line.contains("AuditLog.Read.All"),
            "{line}"
        );
    }
    assert_eq!(code, Some(0), "licence gaps do not fail check:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_only_the_sources_whose_permission_is_missing() {
    let emu = emulator(true).await;
    emu.set_missing_permissions(&[
        "AuditLog.Read.All",
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "Directory.Read.All",
    ]);
    let (text, code) = check(&emu).await;
    for source in ["sign-in activity", "role assignments"] {
        let line = line_of(&text, source);
        assert!(
            line.starts_with("FAIL") && line.contains("grant the application permission"),
            "{line}"
        );
    }
    assert!(line_of(&text, "sign-in activity").contains("AuditLog.Read.All"));
    assert!(line_of(&text, "role assignments").contains("RoleManagement.Read.Directory"));
    // The report also accepts UserAuthenticationMethod.Read.All, eligibility
    // RoleEligibilitySchedule.Read.Directory, groups GroupMember.Read.All: all still held.
    for source in [
        "users",
        "groups and members",
        "PIM eligibility",
        "authentication methods",
        "registration report",
    ] {
        assert!(
            line_of(&text, source).starts_with("ok"),
            "{source}:\n{text}"
        );
    }
    assert_eq!(code, Some(4), "a failed probe exits 4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_simulated_tenant_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = host(
        vec![
            "demo".into(),
            "--users".into(),
            "150".into(),
            "--then-add".into(),
            "4".into(),
            "--out".into(),
            dir.path().display().to_string(),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The summaries are on stdout, as `run`'s.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("first run (full sync)") && text.contains("events written          150"),
        "{text}"
    );
    assert!(
        text.contains("second run (incremental)") && text.contains("events written          4"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("events.jsonl"))
            .unwrap()
            .lines()
            .count(),
        154
    );
}

/// `demo --connector okta`: a simulated Okta org (the Okta emulator on 127.0.0.1) synced by
/// the built-in Okta connector with an API token held by the host, into the same two files,
/// with the same summary; every event valid OCSF 1.8.0 of the Okta connector. (At Okta's
/// default limits, on the real clock: the full walk of a generated org, 300+ groups, may wait
/// for a rate-limit window.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_connector_okta_syncs_a_simulated_org_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "demo",
            "--connector",
            "okta",
            "--users",
            "120",
            "--seed",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--out".to_string(), dir.path().display().to_string()]);
        a
    };
    let out = host(args(&[]), None).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "first run (full sync)",
        "  tenant                  demo-okta",
        "  sync                    full",
        "  events written          120",
        "  users                   120",
        "    guests (userType)     0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(text.contains("  okta emulator served    "), "{text}");
    assert!(stderr(&out)
        .contains("starting the Okta emulator with a simulated org of 120 users (seed 5)"));
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 120);
    ocsf_check::assert_all_valid(&events);
    assert!(events
        .iter()
        .all(|e| e["metadata"]["loggers"][0]["name"] == "okta-users"));
    assert!(dir.path().join("checkpoints.sqlite").is_file());

    // The Entra demo's options are refused with the fix, in one line.
    let out = host(args(&["--then-add", "3"]), None).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        error_line(&out),
        "error: --then-add and --no-premium apply to --connector entra-id only; remove them"
    );
    let out = host(
        vec!["demo".into(), "--connector".into(), "google".into()],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn help_explains_every_command_and_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "check",
        "demo",
        "describe",
        "Exit codes",
        "--log-format",
        "--cache-dir",
        "--no-cache",
    ] {
        assert!(text.contains(word), "--help mentions {word}:\n{text}");
    }
    let out = Command::new(BIN).args(["demo", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--connector",
        "--users",
        "--seed",
        "--out",
        "--then-add",
        "--no-premium",
    ] {
        assert!(text.contains(word), "demo --help mentions {word}:\n{text}");
    }
}

#[test]
fn the_compiled_component_is_cached_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for _ in 0..2 {
        let out = Command::new(BIN)
            .args(["--cache-dir", &cache.display().to_string(), "describe"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("entra-id-users "));
    }
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".cwasm")).count(),
        1,
        "{names:?}"
    );
    assert!(names.contains(&"cache.key".to_string()), "{names:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache.join("cache.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the cache key is private to the host's user"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_describe_into_a_closed_pipe_exits_quietly() {
    // `describe | true`: the reader is gone before describe writes (loading the component
    // takes a moment), so the write meets a closed pipe.
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; '{BIN}' --no-cache describe | true"
            ))
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// `connector-host [args] describe` with `HOME` and `XDG_CACHE_HOME` set as given
/// (None: removed).
fn describe_with(args: &[&str], home: Option<&Path>, xdg: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("describe");
    for (var, value) in [("HOME", home), ("XDG_CACHE_HOME", xdg)] {
        match value {
            Some(v) => cmd.env(var, v),
            None => cmd.env_remove(var),
        };
    }
    cmd.output().unwrap()
}

/// The host described the component (exit 0) despite the cache, and warned once with a
/// line containing every one of `words`.
fn assert_runs_and_warns(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("entra-id-users "),
        "{err}"
    );
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "one warning line:\n{err}");
    for word in words {
        assert!(warnings[0].contains(word), "the warning says {word}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn local_user_world_writable_cache_dir_is_refused_and_the_host_still_runs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let shown = cache.display().to_string();
    let out = describe_with(&["--cache-dir", &shown], Some(dir.path()), None);
    assert_runs_and_warns(
        &out,
        &[
            &shown,
            "writable by other users",
            &format!("chmod 700 {shown}"),
        ],
    );
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "no key and no artifact in a folder others can write"
    );
}

#[test]
fn operator_missing_home_or_unusable_cache_still_runs_with_a_warning() {
    // No HOME and no XDG_CACHE_HOME: no default folder, compiled in memory.
    let out = describe_with(&[], None, None);
    assert_runs_and_warns(&out, &["no folder for the component cache", "--cache-dir"]);

    // HOME is a regular file: the default folder cannot be created.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"").unwrap();
    let out = describe_with(&[], Some(&file), None);
    let cache = file.join(".cache").join("connector-host");
    assert_runs_and_warns(&out, &[&cache.display().to_string(), "not used"]);

    // --cache-dir names a regular file.
    let out = describe_with(
        &["--cache-dir", &file.display().to_string()],
        Some(dir.path()),
        None,
    );
    assert_runs_and_warns(&out, &["not a folder", "--no-cache"]);
}

/// Runs the host and returns its output, failing the test if it has not exited within a
/// minute (it is killed): a host that blocks on a file fails the test instead of hanging it.
/// With `memory_kib`, the host's address space is capped (`ulimit -v`), so a host that reads
/// an endless file dies of it instead of eating the machine's memory.
async fn host_bounded(
    args: Vec<String>,
    secret: Option<String>,
    memory_kib: Option<u64>,
) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut cmd = match memory_kib {
            Some(kib) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(&args)
            .env_remove("CLI_TEST_CLIENT_SECRET")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(s) = secret {
            cmd.env("CLI_TEST_CLIENT_SECRET", s);
        }
        let mut child = cmd.spawn().expect("connector-host starts");
        let reader = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = reader(Box::new(child.stdout.take().unwrap()));
        let stderr = reader(Box::new(child.stderr.take().unwrap()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "connector-host {args:?} had not exited after a minute (killed); stderr: {}",
                    String::from_utf8_lossy(&stderr.join().unwrap())
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    })
    .await
    .unwrap()
}

/// A copy of the test tenant file with `from` replaced by `to`.
fn tenant_file_with(dir: &Path, emu: &Emulator, name: &str, from: &str, to: &str) -> String {
    let cfg = tenant_file(dir, emu, &emu.config().tenant_id, &emu.graph_endpoint());
    let text = std::fs::read_to_string(cfg).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    let path = dir.join(name);
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path.display().to_string()
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

const SECRET_ENV: &str = "env = \"CLI_TEST_CLIENT_SECRET\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_dev_zero_as_secret_or_component_is_refused() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    // 1 GiB of address space: far more than refusing takes, far less than reading /dev/zero.
    let cap = Some(1024 * 1024);

    let cfg = tenant_file_with(
        dir.path(),
        &emu,
        "zero-secret.toml",
        SECRET_ENV,
        "file = \"/dev/zero\"",
    );
    let out = host_bounded(vec!["run".into(), "--config".into(), cfg], None, cap).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert_eq!(
        error_line(&out),
        "error: tenant 'cli-test': secret 'client_secret': secret file /dev/zero is a character device, not a regular file; point it at a regular file"
    );

    let cfg = tenant_file_with(
        dir.path(),
        &emu,
        "zero-component.toml",
        "key = \"cli-test\"",
        "key = \"cli-test\"\ncomponent = \"/dev/zero\"",
    );
    let out = host_bounded(
        vec!["run".into(), "--config".into(), cfg],
        Some(emu.config().client_secret),
        cap,
    )
    .await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert_eq!(
        error_line(&out),
        "error: component file /dev/zero is a character device, not a regular file; point it at a regular file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_fifo_as_events_file_is_refused() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    // No reader ever comes: opening it for writing the ordinary way waits forever.
    let fifo = dir.path().join("events.fifo");
    mkfifo(&fifo);
    let cfg = tenant_file_with(
        dir.path(),
        &emu,
        "fifo-events.toml",
        "path = \"events.jsonl\"",
        "path = \"events.fifo\"",
    );
    let out = host_bounded(
        vec!["run".into(), "--config".into(), cfg],
        Some(emu.config().client_secret),
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(
        error_line(&out),
        format!(
            "error: tenant 'cli-test': host: events file {} is a FIFO (named pipe), not a regular file; point it at a regular file",
            fifo.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_secret_file_over_the_cap_is_refused_naming_the_cap() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big-secret");
    std::fs::write(&big, vec![b'x'; 64 * 1024 + 1]).unwrap();
    let cfg = tenant_file_with(
        dir.path(),
        &emu,
        "big-secret.toml",
        SECRET_ENV,
        &format!("file = \"{}\"", big.display()),
    );
    let out = host_bounded(vec!["run".into(), "--config".into(), cfg], None, None).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        error_line(&out),
        format!(
            "error: tenant 'cli-test': secret 'client_secret': secret file {} is larger than 64 KiB, the most accepted for a secret file; check that it is the right file",
            big.display()
        )
    );
}

/// A loopback port whose accept queue is full and never drained: a connect to it hangs (Linux
/// drops the SYN), as it would to a blackholed address. Keep the returned values alive.
async fn blackhole() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut queued = Vec::new();
    for _ in 0..16 {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        match tokio::time::timeout(std::time::Duration::from_millis(500), connect).await {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(e)) => panic!("the filler connection failed: {e}"),
            Err(_) => return (listener, queued, port),
        }
    }
    panic!("the accept queue never filled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_connect_timeout_is_honoured() {
    let (_listener, _queued, port) = blackhole().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    // No retries, a 1 s connect timeout and a 6 s run limit: the login request must fail on
    // its connect timeout (an upstream error); with the old fixed 10 s connect timeout the
    // run limit stops the run first.
    let text = format!(
        r#"
[tenant]
key = "blackholed"

[config]
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
login_endpoint = "{endpoint}"
graph_endpoint = "{endpoint}"
retry_budget = 0

[secrets.client_secret]
env = "CLI_TEST_CLIENT_SECRET"

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "state/checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "events.jsonl"

[limits]
connect_timeout_secs = 1
run_timeout_secs = 6
"#
    );
    let cfg = dir.path().join("tenant.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        Some("not-used-Secret-7q".into()),
    )
    .await;
    let line = error_line(&out);
    assert!(!line.contains("time limit"), "{line}");
    assert!(line.contains("timed out"), "{line}");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

/// The host knows no provider: a tenant file without `[egress] allow` or secret `hosts` gets
/// them from the component's egress plan for its `[config]` (here the Entra connector's
/// national clouds), and a `[config]` the connector refuses fails with its message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_default_egress_comes_from_the_component_for_the_tenants_cloud() {
    use connector_host::error::ConnectorErrorKind;
    use connector_host::{RunError, Runtime, RuntimeLimits, TenantConfig};
    let rt = Runtime::new(builtin_connectors::ENTRA_ID, RuntimeLimits::default())
        .await
        .unwrap();
    let file = |cloud: &str| {
        format!(
            "[tenant]\nkey = \"t\"\n[config]\ntenant_id = \"contoso.onmicrosoft.com\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\n{cloud}\
             [secrets.client_secret]\nenv = \"X\"\n[state]\ncheckpoint_db = \"c.sqlite\"\n\
             [sink]\nkind = \"stdout\"\n"
        )
    };
    let origins = |cfg: &TenantConfig| -> Vec<String> {
        cfg.egress_allow.iter().map(|o| o.to_string()).collect()
    };
    for (cloud, login, graph) in [
        (
            "",
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
        ),
        (
            "cloud = \"usdod\"\n",
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us",
        ),
        (
            "cloud = \"china\"\n",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
        ),
    ] {
        let cfg = TenantConfig::parse(&file(cloud), Path::new(".")).unwrap();
        assert!(cfg.egress_allow.is_empty());
        let cfg = rt.resolve_egress(cfg).await.unwrap();
        assert_eq!(origins(&cfg), [login, graph], "{cloud}");
        assert_eq!(cfg.secrets["client_secret"].hosts, [login], "{cloud}");
    }
    // What the operator wrote is kept.
    let explicit = file("").replace(
        "[state]",
        "hosts = [\"https://login.example\"]\n[egress]\nallow = [\"https://graph.example\"]\n[state]",
    );
    let cfg = TenantConfig::parse(&explicit, Path::new(".")).unwrap();
    let cfg = rt.resolve_egress(cfg).await.unwrap();
    assert_eq!(origins(&cfg), ["https://graph.example"]);
    assert_eq!(
        cfg.secrets["client_secret"].hosts,
        ["https://login.example"]
    );
    // A cloud the connector does not know: its own one-line configuration error.
    let cfg = TenantConfig::parse(&file("cloud = \"mars\"\n"), Path::new(".")).unwrap();
    match rt.resolve_egress(cfg).await {
        Err(RunError::Connector {
            kind: ConnectorErrorKind::Config,
            message,
            ..
        }) => assert!(
            message.contains("'cloud' = 'mars' is unknown") && !message.contains('\n'),
            "{message}"
        ),
        other => panic!("expected the connector's config error, got {other:?}"),
    }
}

/// An Entra client secret as the portal makes them (40 characters, `~` in it).
const ENTRA_LIKE_SECRET: &str = "Xq48Q~Vd3.kLp0_aZ9rT-uW2yB7nC1mE5gH6jS8f";

/// The operator pasted the client secret into `client_id` (the connector's configuration
/// error quoted it, before any redaction existed), or used it as the tenant key (printed in
/// every report and log line, and the checkpoints' namespace): refused at load, exit 2, one
/// line naming the key, never the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_a_secret_pasted_into_client_id_or_the_tenant_key_is_refused_without_echo() {
    let emu = emulator(true).await;
    let dir = tempfile::tempdir().unwrap();
    let path = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let text = std::fs::read_to_string(&path).unwrap();
    // A tenant key takes no `~`: the same secret from a portal that makes none.
    let key_secret = ENTRA_LIKE_SECRET.replace('~', "-");
    for (text, secret, named) in [
        (
            text.replace(&emu.config().client_id, ENTRA_LIKE_SECRET),
            ENTRA_LIKE_SECRET.to_string(),
            "[config] client_id holds the value of the secret 'client_secret'",
        ),
        (
            text.replace("key = \"cli-test\"", &format!("key = \"{key_secret}\"")),
            key_secret.clone(),
            "[tenant] key holds the value of the secret 'client_secret'",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        for command in ["run", "check"] {
            let out = host(
                vec![
                    command.into(),
                    "--config".into(),
                    path.display().to_string(),
                ],
                Some(secret.clone()),
            )
            .await;
            assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
            let line = error_line(&out);
            assert!(line.contains(named), "{command}: {line}");
            let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
            assert!(
                !all.contains(&secret) && !all.contains("Xq48Q"),
                "{command}: the secret was printed: {all}"
            );
        }
    }
}

/// Graph serves a user whose id holds a newline, a terminal escape (`ESC[2J`, clear screen)
/// and a bidi override; the user is skipped (its event is too big) and the warning names
/// it. The text log has no forged line and no raw escape, and neither has the run summary
/// on the terminal; the JSON log keeps the id exact (its encoder escapes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_graph_user_id_cannot_forge_a_log_line_or_drive_the_terminal() {
    let forged = "2026-12-06T00:00:00.000000Z ERROR connector_host: forged by Graph";
    let evil = format!("evil\n{forged}\u{1b}[2J\u{202e}txt.exe\r\u{9b}31m");
    let mut users = Tenant::generated(31, 12).into_users();
    users[5].user["id"] = evil.clone().into();
    users[5].user["displayName"] = "x".repeat(2 * 1024 * 1024).into();
    let emu = Emulator::start(
        Tenant::from_users(users).expect("a valid tenant"),
        EmulatorConfig::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let secret = Some(emu.config().client_secret);
    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        secret.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    // The warning was logged and summarised, escaped.
    let escaped = format!("evil\\n{forged}\\u{{1b}}[2J\\u{{202e}}txt.exe\\r\\u{{9b}}31m");
    assert!(
        text.lines()
            .any(|l| l.contains(" WARN ") && l.contains(&escaped)),
        "the log line: {text}"
    );
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("  warning: ") && l.contains(&escaped)),
        "the summary (on stdout): {summary}"
    );
    for c in ['\u{1b}', '\u{202e}', '\r', '\u{9b}'] {
        assert!(!summary.contains(c), "{c:?} reached stdout: {summary:?}");
    }
    for line in text.lines().chain(summary.lines()) {
        assert!(!line.starts_with(forged), "a forged line: {text}");
    }
    for c in ['\u{1b}', '\u{202e}', '\r', '\u{9b}'] {
        assert!(!text.contains(c), "{c:?} reached the terminal: {text:?}");
    }

    // The JSON log: every log line is one JSON object holding the id exactly.
    std::fs::remove_file(dir.path().join("events.jsonl")).unwrap();
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let out = host(
        vec![
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        secret,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    // Every line on stderr, not only the log lines: no plain text among them.
    let logged: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logged.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&evil))),
        "{text}"
    );
    for line in text.lines() {
        assert!(!line.starts_with(forged), "a forged line: {text}");
    }
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[tokio::test]
async fn operator_a_connector_by_name_describes_it_and_an_unknown_name_lists_the_builtin_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--no-cache", "describe", "--connector", "entra-id"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("entra-id-users "), "{text}");
    assert!(text.contains("contract: connector:runtime@"), "{text}");

    let out = Command::new(BIN)
        .args(["--no-cache", "describe", "--connector", "okta"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("okta-users "), "{text}");
    assert!(text.contains("org_url"), "{text}");

    let out = Command::new(BIN)
        .args(["--no-cache", "describe", "--connector", "google"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        error_line(&out),
        "error: [tenant] connector = \"google\": no connector of this name is built in (built in: entra-id, okta); name one of them or a .wasm file"
    );

    // The same from a tenant file's run, before anything is opened.
    let emu = Emulator::start(Tenant::generated(1, 2), EmulatorConfig::default())
        .await
        .unwrap();
    let cfg = tenant_file_with(
        dir.path(),
        &emu,
        "google.toml",
        "key = \"cli-test\"",
        "key = \"cli-test\"\nconnector = \"google\"",
    );
    let out = host(
        vec!["run".into(), "--config".into(), cfg],
        Some(emu.config().client_secret),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        error_line(&out).contains("connector = \"google\": no connector of this name is built in"),
        "{}",
        stderr(&out)
    );
    emu.shutdown().await;
}

/// A loopback port whose next port is free too (the emulator's Graph and login servers).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < 65535 && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports on 127.0.0.1");
}

/// Issue 19, point 3: `connector-host emulator` on a fixed port prints its endpoints,
/// tenant id, client id, secret and a ready tenant file; `check` and `run` take that file as
/// it is and succeed; SIGTERM stops it with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_the_emulator_command_prints_a_tenant_file_that_check_and_run_accept() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("emu");
    let port = free_port_pair();
    let mut child = Command::new(BIN)
        .args(["emulator", "--users", "12", "--seed", "5", "--port"])
        .arg(port.to_string())
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line == "serving until Ctrl-C";
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let printed = tokio::time::timeout(std::time::Duration::from_secs(120), printed)
        .await
        .expect("the emulator starts")
        .unwrap();
    let text = printed.join("\n");
    let cfg = EmulatorConfig::default();
    for want in [
        format!("graph endpoint  http://127.0.0.1:{port}"),
        format!("login endpoint  http://127.0.0.1:{}", port + 1),
        format!("tenant id       {}", cfg.tenant_id),
        format!("client id       {}", cfg.client_id),
        format!("client secret   {}", cfg.client_secret),
        format!("graph_endpoint = \"http://127.0.0.1:{port}\""),
        "[secrets.client_secret]".to_string(),
        "serving until Ctrl-C".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    let file = out.join("tenant.toml");
    assert!(
        text.contains(&format!("tenant file     {}", file.display())),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("client_secret")).unwrap(),
        cfg.client_secret
    );

    let args = |cmd: &str| {
        vec![
            cmd.to_string(),
            "--config".into(),
            file.display().to_string(),
        ]
    };
    let check = host(args("check"), None).await;
    assert_eq!(check.status.code(), Some(0), "check: {}", stderr(&check));
    assert!(
        !out.join("events.jsonl").exists(),
        "check writes no events file"
    );
    let run = host(args("run"), None).await;
    assert_eq!(run.status.code(), Some(0), "run: {}", stderr(&run));
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), 12, "one event per user");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Issue 21, point 6: `connector-host emulator --connector okta` serves a simulated Okta
/// org and writes a tenant file of the built-in `okta` connector (an API token in a file of
/// its own) that `check` and `run` take as it is; SIGTERM stops it with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_the_emulator_command_serves_an_okta_org_that_check_and_run_accept() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("okta");
    let refused = host(
        vec![
            "emulator".into(),
            "--connector".into(),
            "okta".into(),
            "--login-port".into(),
            "1".into(),
        ],
        None,
    )
    .await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(error_line(&refused).contains("--login-port applies to --connector entra-id only"));
    let mut child = Command::new(BIN)
        .args([
            "emulator",
            "--connector",
            "okta",
            "--users",
            "15",
            "--seed",
            "5",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line == "serving until Ctrl-C";
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let printed = tokio::time::timeout(std::time::Duration::from_secs(120), printed)
        .await
        .expect("the emulator starts")
        .unwrap();
    let text = printed.join("\n");
    let token = connector_host::simulation::okta_emulator::DEFAULT_API_TOKEN;
    for want in [
        "org URL         http://127.0.0.1:",
        &format!("API token       {token}"),
        "connector = \"okta\"",
        "[secrets.okta_token]",
        "prefix = \"SSWS\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("okta_token")).unwrap(),
        token
    );
    let file = out.join("tenant.toml");
    let args = |cmd: &str| {
        vec![
            cmd.to_string(),
            "--config".into(),
            file.display().to_string(),
        ]
    };
    let check = host(args("check"), None).await;
    assert_eq!(check.status.code(), Some(0), "check: {}", stderr(&check));
    let run = host(args("run"), None).await;
    assert_eq!(run.status.code(), Some(0), "run: {}", stderr(&run));
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), 15, "one event per user");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Issue 19, point 1: piped (stderr not a terminal), a run that waits for Graph's reports
/// limit writes progress lines at info, at most one every 10 s, naming the wait's reason
/// and the page; under `--log-format json` every line on stderr is a JSON object (point 7),
/// and the summary is on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_progress_names_the_reports_limit_it_waits_for_at_most_every_10_s() {
    // The demo's tenant of 2,000 users: 4 sign-in pages and 20 registration-report pages
    // (100 rows a page) are 24 requests under Graph's reports limit of 5 per 10 s (the
    // emulator enforces it): the walk spends most of ~40 s waiting for it, so lines every
    // 10 s fall in a wait however busy the machine is.
    let emu = Emulator::start(Tenant::generated(8, 2_000), EmulatorConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let out = host(
        vec![
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        Some(emu.config().client_secret),
    )
    .await;
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {e}: {l}")))
        .collect();
    assert!(
        !text.contains("Some("),
        "an Option logged with Debug: {text}"
    );
    let progress: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["target"] == "progress").collect();
    assert!(
        progress.len() >= 3,
        "a line every 10 s of a ~40 s run: {text}"
    );
    for p in &progress {
        assert_eq!(p["level"], "INFO", "{p}");
        assert_eq!(p["fields"]["tenant"], "cli-test", "{p}");
    }
    let waiting = progress.iter().any(|p| {
        p["fields"]["message"].as_str().is_some_and(|m| {
            m.starts_with("waiting ")
                && m.contains(" for Graph's reports limit: 5 requests per 10 s per app and tenant; full walk: ")
                && m.contains(" page ")
        })
    });
    assert!(
        waiting,
        "a line names the wait's reason and the page: {text}"
    );
    // At most one every 10 s.
    let times: Vec<std::time::SystemTime> = progress
        .iter()
        .map(|p| humantime::parse_rfc3339(p["timestamp"].as_str().unwrap()).unwrap())
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        assert!(
            gap >= std::time::Duration::from_millis(9_990),
            "{gap:?}: {text}"
        );
    }
    // The summary is on stdout, with the inventory.
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("  events written          2000\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  users                   2000\n"),
        "{summary}"
    );
    assert!(!text.contains("events written"), "{text}");
}

/// Under `--log-format json` even the one-line error of a failed command is a JSON object.
#[tokio::test]
async fn under_json_logs_the_error_line_is_a_json_object_too() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml").display().to_string();
    let out = host(
        vec![
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--config".into(),
            missing.clone(),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one JSON line");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["fields"]["exit_code"], 2, "{line}");
    assert!(
        line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing.toml")),
        "{line}"
    );
    assert!(out.stdout.is_empty());
}

/// What the emulator's generated tenant holds, counted from its data by the rules of
/// docs/MAPPING.md (not by the host's code).
fn expected_inventory(tenant: &Tenant, now_ms: i64) -> serde_json::Value {
    const STRONG: [&str; 8] = [
        "microsoftauthenticator",
        "phone",
        "softwareoath",
        "hardwareoath",
        "fido2",
        "windowshelloforbusiness",
        "platformcredential",
        "external",
    ];
    let roles = tenant.admin_roles();
    let (mut admins, mut without_mfa, mut guests, mut disabled, mut dormant) = (0, 0, 0, 0, 0);
    for u in tenant.users() {
        let id = u.id().unwrap();
        if roles
            .get(id)
            .is_some_and(|(active, eligible)| !active.is_empty() || !eligible.is_empty())
        {
            admins += 1;
        }
        let strong = u.auth_methods.iter().any(|m| {
            let stem = m
                .trim_start_matches("#microsoft.graph.")
                .trim_end_matches("AuthenticationMethod")
                .to_ascii_lowercase();
            STRONG.contains(&stem.as_str())
        });
        without_mfa += u64::from(!strong);
        guests += u64::from(u.user["userType"] == "Guest");
        disabled += u64::from(u.user["accountEnabled"] == false);
        if let Some(at) = u.user["signInActivity"]["lastSuccessfulSignInDateTime"].as_str() {
            let ms = humantime::parse_rfc3339(at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64);
            if let Some(ms) = ms {
                dormant += u64::from(now_ms - ms > 90 * 86_400_000);
            }
        }
    }
    serde_json::json!({
        "users": tenant.len(),
        "admins": admins,
        "without_mfa": without_mfa,
        "guests": guests,
        "disabled": disabled,
        "dormant": dormant,
        "deleted": 0,
    })
}

/// Issue 19, point 5: the inventory summary of a run, in `--json` and in the text summary
/// (on stdout), equals what the tenant holds; deletions are counted in an incremental run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_summary_counts_the_tenants_admins_mfa_guests_disabled_dormant_and_deletions()
{
    let tenant = Tenant::generated(23, 300);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let expected = expected_inventory(&tenant, now_ms);
    for key in ["admins", "without_mfa", "guests", "disabled", "dormant"] {
        assert!(
            expected[key].as_u64().unwrap() > 0,
            "the tenant has {key}: {expected}"
        );
    }
    let ids: Vec<String> = tenant.users()[..3]
        .iter()
        .map(|u| u.id().unwrap().to_string())
        .collect();
    let emu = Emulator::start(tenant, EmulatorConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(
        dir.path(),
        &emu,
        &emu.config().tenant_id,
        &emu.graph_endpoint(),
    );
    let secret = Some(emu.config().client_secret);
    let out = host(
        vec![
            "run".into(),
            "--json".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        secret.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["inventory"], expected, "{report}");

    for id in &ids {
        assert!(emu.remove_user(id));
    }
    let out = host(
        vec!["run".into(), "--config".into(), cfg.display().to_string()],
        secret,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("  sync                    incremental\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  users                   0\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  deletions               3\n"),
        "{summary}"
    );
    assert!(!stderr(&out).contains("deletions"), "{}", stderr(&out));
}
