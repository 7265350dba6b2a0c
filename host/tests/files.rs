//! The files an operator names, told apart by identity (device and inode), not spelling: an
//! events path may not be a checkpoint database, a secret, a tenant file or another tenant's
//! events file, however it is spelled (`../`, symlink, hard link); an existing file that is
//! not JSON lines is never cut; `check` changes no file. Real binary, real SQLite, the Graph
//! emulator on 127.0.0.1 (issue 16, item 9).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connector_host::serve::ServeFile;
use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");
const SECRET_VAR: &str = "FILES_TEST_CLIENT_SECRET";

async fn emulator() -> Emulator {
    Emulator::start(Tenant::generated(16, 12), EmulatorConfig::default())
        .await
        .unwrap()
}

/// A tenant file for `emu` at `dir/name`; `secret` is the `[secrets.client_secret]` source,
/// `db` the checkpoint database, `events` the events path (as written in the file).
fn tenant_file(
    dir: &Path,
    name: &str,
    emu: &Emulator,
    key: &str,
    secret: &str,
    db: &str,
    events: &str,
) -> PathBuf {
    let cfg = emu.config();
    let text = format!(
        r#"[tenant]
key = "{key}"

[config]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"

[secrets.client_secret]
{secret}

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "{db}"

[sink]
kind = "jsonl"
path = "{events}"
"#,
        tenant_id = cfg.tenant_id,
        client_id = cfg.client_id,
        login = emu.login_endpoint(),
        graph = emu.graph_endpoint(),
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn env_secret() -> String {
    format!("env = \"{SECRET_VAR}\"")
}

async fn host(args: Vec<String>, secret: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).env_remove(SECRET_VAR);
        if let Some(s) = secret {
            cmd.env(SECRET_VAR, s);
        }
        cmd.output().expect("connector-host starts")
    })
    .await
    .unwrap()
}

async fn run(cmd: &str, config: &Path, emu: &Emulator) -> Output {
    host(
        vec![cmd.into(), "--config".into(), config.display().to_string()],
        Some(emu.config().client_secret),
    )
    .await
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one error line of a refused command (stderr holds nothing else).
fn only_error_line(o: &Output) -> String {
    let e = stderr(o);
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    let line = e.trim_end().to_string();
    assert!(line.starts_with("error: "), "{line}");
    line
}

/// Every file under `dir`, with its bytes.
#[derive(PartialEq)]
struct Snapshot(Vec<(PathBuf, Vec<u8>)>);

/// Names and sizes only (the bytes would flood the test output).
impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(p, b)| format!("{} ({} bytes)", p.display(), b.len())),
            )
            .finish()
    }
}

fn snapshot(dir: &Path) -> Snapshot {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p);
            } else if meta.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            } else {
                out.push((p, Vec::new()));
            }
        }
    }
    out.sort();
    Snapshot(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_events_path_naming_the_tenants_own_checkpoint_db_is_refused_and_the_db_kept() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = tenant_file(
        d,
        "good.toml",
        &emu,
        "own",
        &env_secret(),
        "state/checkpoints.sqlite",
        "events.jsonl",
    );
    let out = run("run", &good, &emu).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let db = d.join("state/checkpoints.sqlite");
    let before = std::fs::read(&db).unwrap();

    for spelling in [
        "state/checkpoints.sqlite",
        "./state/../state/checkpoints.sqlite",
    ] {
        let bad = tenant_file(
            d,
            "bad.toml",
            &emu,
            "own",
            &env_secret(),
            "state/checkpoints.sqlite",
            spelling,
        );
        for cmd in ["run", "check"] {
            let out = run(cmd, &bad, &emu).await;
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd} {spelling}: {}",
                stderr(&out)
            );
            let line = only_error_line(&out);
            assert!(
                line.starts_with("error: tenant 'own': configuration: [sink] path ")
                    && line.contains(&format!(
                        "is the checkpoint database of tenant 'own' ({})",
                        db.display()
                    ))
                    && line.ends_with("give the events a file of their own"),
                "{cmd} {spelling}: {line}"
            );
            assert!(
                std::fs::read(&db).unwrap() == before,
                "{cmd} {spelling}: the checkpoint database is unchanged"
            );
        }
    }
    // The database still works: the good tenant file runs again.
    let out = run("run", &good, &emu).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_events_path_naming_a_secret_or_the_tenant_file_is_refused_and_it_is_kept() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A secret written without a final newline (printf): the repair used to cut it to nothing.
    let secret = d.join("client.secret");
    std::fs::write(&secret, emu.config().client_secret).unwrap();
    std::os::unix::fs::symlink(&secret, d.join("secret-link")).unwrap();
    let file_secret = "file = \"client.secret\"";
    for (events, what) in [
        (
            "client.secret",
            "the secret file of [secrets.client_secret] of tenant 'sec'",
        ),
        (
            "secret-link",
            "the secret file of [secrets.client_secret] of tenant 'sec'",
        ),
        ("tenant.toml", "the tenant file"),
    ] {
        let cfg = tenant_file(
            d,
            "tenant.toml",
            &emu,
            "sec",
            file_secret,
            "state/checkpoints.sqlite",
            events,
        );
        let cfg_before = std::fs::read(&cfg).unwrap();
        for cmd in ["run", "check"] {
            let out = host(
                vec![cmd.into(), "--config".into(), cfg.display().to_string()],
                None,
            )
            .await;
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd} {events}: {}",
                stderr(&out)
            );
            let line = only_error_line(&out);
            assert!(line.contains(&format!(" is {what} (")), "{cmd}: {line}");
            assert!(
                !line.contains(&emu.config().client_secret),
                "the secret is not printed: {line}"
            );
            assert_eq!(
                std::fs::read_to_string(&secret).unwrap(),
                emu.config().client_secret,
                "{cmd} {events}: the secret is unchanged"
            );
            assert!(std::fs::read(&cfg).unwrap() == cfg_before, "{cmd} {events}");
        }
    }
    assert!(!d.join("state").exists(), "no database was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_serve_refuses_an_events_path_naming_another_tenants_checkpoint_db() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = d.join("tenants.d");
    std::fs::create_dir(&t).unwrap();
    let a = tenant_file(
        &t,
        "a.toml",
        &emu,
        "alpha",
        &env_secret(),
        "../state/alpha.sqlite",
        "../events/alpha.jsonl",
    );
    // Alpha has run: its checkpoint database holds its cursor.
    let out = run("run", &a, &emu).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let db = d.join("state/alpha.sqlite");
    let before = std::fs::read(&db).unwrap();
    // Bravo's events path is alpha's database, spelled through a symlinked folder.
    std::os::unix::fs::symlink(d.join("state"), d.join("state-link")).unwrap();
    tenant_file(
        &t,
        "b.toml",
        &emu,
        "bravo",
        &env_secret(),
        "../state/bravo.sqlite",
        "../state-link/alpha.sqlite",
    );
    let tenants = d.join("tenants.toml");
    std::fs::write(
        &tenants,
        "include = [\"tenants.d/*.toml\"]\n[serve]\nlisten = \"127.0.0.1:0\"\nonce = true\n",
    )
    .unwrap();
    let out = host(
        vec![
            "serve".into(),
            "--tenants".into(),
            tenants.display().to_string(),
        ],
        Some(emu.config().client_secret),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused at load: {}",
        stderr(&out)
    );
    let line = only_error_line(&out);
    assert!(
        line.contains("tenant 'bravo' (")
            && line.contains("[sink] path ")
            && line
                .contains("state-link/alpha.sqlite is the checkpoint database of tenant 'alpha'"),
        "{line}"
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "alpha's database is unchanged"
    );
    // A secret of another tenant, and the tenants file itself, are refused the same way.
    let secret = d.join("alpha.secret");
    std::fs::write(&secret, "alpha's secret").unwrap();
    tenant_file(
        &t,
        "a.toml",
        &emu,
        "alpha",
        "file = \"../alpha.secret\"",
        "../state/alpha.sqlite",
        "../events/alpha.jsonl",
    );
    for (events, what) in [
        (
            "../alpha.secret",
            "the secret file of [secrets.client_secret] of tenant 'alpha'",
        ),
        ("../tenants.toml", "the tenants file"),
    ] {
        tenant_file(
            &t,
            "b.toml",
            &emu,
            "bravo",
            &env_secret(),
            "../state/bravo.sqlite",
            events,
        );
        let e = ServeFile::load(&tenants).unwrap_err().to_string();
        assert!(e.contains(&format!(" is {what} (")), "{events}: {e}");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "alpha's secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_serve_refuses_two_spellings_of_one_events_file() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = d.join("tenants.d");
    std::fs::create_dir_all(d.join("events/sub")).unwrap();
    std::fs::create_dir(&t).unwrap();
    tenant_file(
        &t,
        "a.toml",
        &emu,
        "alpha",
        &env_secret(),
        "../state/checkpoints.sqlite",
        "../events/alpha.jsonl",
    );
    let tenants = d.join("tenants.toml");
    std::fs::write(&tenants, "include = [\"tenants.d/*.toml\"]\n").unwrap();
    let bravo = |events: &str| {
        tenant_file(
            &t,
            "b.toml",
            &emu,
            "bravo",
            &env_secret(),
            "../state/checkpoints.sqlite",
            events,
        );
        ServeFile::load(&tenants)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // Not created yet: spelled differently, one future file.
    std::os::unix::fs::symlink(d.join("events/alpha.jsonl"), d.join("dangling")).unwrap();
    for spelling in [
        "../events/sub/../alpha.jsonl",
        "../events/./alpha.jsonl",
        "../dangling",
    ] {
        let e = bravo(spelling).unwrap_err();
        assert!(
            e.contains("tenants 'alpha' and 'bravo' both write events to one file (")
                && e.contains("give each its own [sink] path")
                && !e.contains('\n'),
            "{spelling}: {e}"
        );
    }
    // Created (alpha has run): a hard link is one file too, and so is a symlink.
    std::fs::write(d.join("events/alpha.jsonl"), "{\"a\":1}\n").unwrap();
    std::fs::hard_link(d.join("events/alpha.jsonl"), d.join("events/hard.jsonl")).unwrap();
    std::os::unix::fs::symlink(d.join("events/alpha.jsonl"), d.join("events/soft.jsonl")).unwrap();
    for spelling in [
        "../events/hard.jsonl",
        "../events/soft.jsonl",
        "../dangling",
    ] {
        let e = bravo(spelling).unwrap_err();
        assert!(
            e.contains("both write events to one file ("),
            "{spelling}: {e}"
        );
    }
    // A file of its own is fine.
    bravo("../events/bravo.jsonl").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_check_creates_no_file_and_changes_none() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = tenant_file(
        d,
        "tenant.toml",
        &emu,
        "checked",
        &env_secret(),
        "state/checkpoints.sqlite",
        "out/events.jsonl",
    );
    let before = snapshot(d);
    let out = run("check", &cfg, &emu).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("users"),
        "the probes ran: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(snapshot(d), before, "check created or changed no file");

    // An existing 48-byte file that is not JSON lines: check used to cut it to 9 bytes.
    let victim = d.join("out/events.jsonl");
    std::fs::create_dir(d.join("out")).unwrap();
    let text = b"# notes\nthis file holds no events and no newline";
    assert_eq!(text.len(), 48);
    std::fs::write(&victim, text).unwrap();
    let before = snapshot(d);
    let out = run("check", &cfg, &emu).await;
    let line = only_error_line(&out);
    assert_eq!(out.status.code(), Some(6), "{line}");
    assert_eq!(
        line,
        format!(
            "error: tenant 'checked': host: events file {} is not a JSON-lines events file (its first line is not a JSON object); it was left unchanged: point the sink at a new file or at an events file this host wrote",
            victim.display()
        )
    );
    assert_eq!(snapshot(d), before, "check changed no file");
    // `run` refuses it the same way, and leaves it too.
    let out = run("run", &cfg, &emu).await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_a_torn_events_tail_is_still_cut_before_the_next_run() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = tenant_file(
        d,
        "tenant.toml",
        &emu,
        "torn",
        &env_secret(),
        "state/checkpoints.sqlite",
        "events.jsonl",
    );
    let out = run("run", &cfg, &emu).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events = d.join("events.jsonl");
    let whole = std::fs::read(&events).unwrap();
    assert!(whole.ends_with(b"\n") && whole.len() > 100);
    // A kill mid-write leaves the start of an event without its newline.
    let mut torn = whole.clone();
    torn.extend_from_slice(b"{\"class_uid\":5003,\"user\":{\"na");
    std::fs::write(&events, &torn).unwrap();
    // `check` reports nothing wrong and cuts nothing.
    let out = run("check", &cfg, &emu).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&events).unwrap(), torn);
    // The next run cuts the torn line (and, incremental with no change, adds nothing).
    let out = run("run", &cfg, &emu).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = std::fs::read(&events).unwrap();
    assert!(after.starts_with(&whole), "the whole lines are kept");
    for line in String::from_utf8(after).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is an event");
        assert!(v.is_object());
    }
}
