//! `connector-host status` as an operator uses it: the real binary after real runs (the Graph
//! emulator on 127.0.0.1, a SQLite store), the fleet's database (the test PostgreSQL), a
//! tenant never run, and a store the command must not touch.

mod pg;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");

fn tenant_file(dir: &Path, emu: &Emulator) -> PathBuf {
    let cfg = emu.config();
    let text = format!(
        r#"
[tenant]
key = "status-test"

[config]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"

[secrets.client_secret]
env = "STATUS_TEST_CLIENT_SECRET"

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "state/checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "events.jsonl"
"#,
        tenant_id = cfg.tenant_id,
        client_id = cfg.client_id,
        login = emu.login_endpoint(),
        graph = emu.graph_endpoint(),
    );
    let path = dir.join("tenant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn host(args: Vec<String>, envs: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("STATUS_TEST_CLIENT_SECRET")
            .envs(envs)
            .output()
            .expect("connector-host starts")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn status_json(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --json prints one JSON object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_status_after_runs_shows_the_outcome_the_walk_and_the_error_in_a_table_and_json() {
    let emu = Emulator::start(
        Tenant::generated(7, 30),
        EmulatorConfig {
            premium: true,
            ..EmulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = tenant_file(dir.path(), &emu).display().to_string();
    let secret = ("STATUS_TEST_CLIENT_SECRET", emu.config().client_secret);

    // Never run: said so, and nothing is created (no database, no folder).
    let before = files(dir.path());
    let out = host(
        vec!["status".into(), "--config".into(), cfg.clone()],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.lines().nth(1).unwrap().starts_with("status-test") && table.contains("never run"),
        "{table}"
    );
    assert_eq!(files(dir.path()), before, "status created no file");

    // A full sync.
    let out = host(
        vec!["run".into(), "--config".into(), cfg.clone()],
        vec![secret.clone()],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = files(dir.path());
    let out = host(
        vec!["status".into(), "--config".into(), cfg.clone()],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let header = table.lines().next().unwrap();
    for column in [
        "TENANT",
        "STATE",
        "LAST RUN",
        "SYNC",
        "PROGRESS",
        "NEXT DUE",
        "LAST FULL WALK",
        "LAST SIGN-IN SWEEP",
        "LEASE",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with("status-test") && row.contains("succeeded") && row.contains(" full "),
        "{table}"
    );
    assert!(row.contains("s ago"), "{table}");
    assert_eq!(
        files(dir.path()),
        before,
        "status created no file (no -wal, no -shm)"
    );
    let doc = status_json(
        &host(
            vec![
                "status".into(),
                "--config".into(),
                cfg.clone(),
                "--json".into(),
            ],
            vec![],
        )
        .await,
    );
    let t = &doc["tenants"][0];
    assert_eq!(t["tenant"], "status-test");
    assert_eq!(t["state"], "succeeded");
    assert_eq!(t["last_run"]["outcome"], "succeeded");
    assert_eq!(t["last_run"]["sync"], "full");
    assert_eq!(t["runs"], 1);
    assert!(t["last_full_walk"].is_string(), "{t}");
    assert_eq!(t["last_full_walk"], t["last_run"]["ended"]);
    assert_eq!(
        t["last_sign_in_sweep"], t["last_run"]["ended"],
        "the full walk read the sign-in data: {t}"
    );
    assert_eq!(t["last_run"]["progress"]["phase"], "users", "{t}");
    assert!(t["last_run"]["progress"]["detail"].is_string(), "{t}");
    // The walk's last progress counts its last page: the 30 users, on their one page.
    assert_eq!(t["last_run"]["progress"]["pages_done"], 1, "{t}");
    assert_eq!(t["last_run"]["progress"]["items_done"], 30, "{t}");
    for phase in ["sign-in data", "users"] {
        assert_eq!(t["phases_completed"][phase], t["last_run"]["ended"], "{t}");
    }
    assert_eq!(
        t["next_due"],
        serde_json::Value::Null,
        "one tenant file: not scheduled"
    );
    let full_walk = t["last_full_walk"].clone();

    // A failed run: the error line, the kind; the last full walk stays.
    let out = host(
        vec!["run".into(), "--config".into(), cfg.clone()],
        vec![("STATUS_TEST_CLIENT_SECRET", "wrong-secret-value".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = host(
        vec!["status".into(), "--config".into(), cfg.clone()],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].contains("failed"), "{table}");
    assert!(
        lines[2].starts_with("  error: auth: ") && lines[2].contains("AADSTS7000215"),
        "{table}"
    );
    assert!(!table.contains("wrong-secret-value"), "{table}");
    let doc = status_json(
        &host(
            vec![
                "status".into(),
                "--config".into(),
                cfg.clone(),
                "--json".into(),
            ],
            vec![],
        )
        .await,
    );
    let t = &doc["tenants"][0];
    assert_eq!(t["state"], "failed");
    assert_eq!(t["last_run"]["kind"], "auth");
    assert!(
        t["last_run"]["error"]
            .as_str()
            .unwrap()
            .contains("check the client secret"),
        "{t}"
    );
    assert_eq!(t["consecutive_failures"], 1);
    assert_eq!(t["last_full_walk"], full_walk);
    assert_eq!(t["runs"], 2);

    // The same tenant through a tenants file: next due is the last end plus the backoff
    // (one failure: backoff_initial_secs).
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        "include = [\"tenant.toml\"]\n[schedule]\ninterval_secs = 3600\nbackoff_initial_secs = 120\n",
    )
    .unwrap();
    let doc = status_json(
        &host(
            vec![
                "status".into(),
                "--tenants".into(),
                tenants.display().to_string(),
                "--json".into(),
            ],
            vec![],
        )
        .await,
    );
    let t = &doc["tenants"][0];
    let ended = humantime::parse_rfc3339(t["last_run"]["ended"].as_str().unwrap()).unwrap();
    let due = humantime::parse_rfc3339(t["next_due"].as_str().unwrap()).unwrap();
    let gap = due.duration_since(ended).unwrap();
    assert!(
        gap >= Duration::from_secs(119) && gap <= Duration::from_secs(121),
        "{gap:?}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn operator_status_without_a_tenant_file_or_with_a_bad_one_is_one_line_exit_2() {
    let out = host(vec!["status".into()], vec![]).await;
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("tenants.toml");
    std::fs::write(&bad, "[serve]\nnope = 1\n").unwrap();
    let out = host(
        vec![
            "status".into(),
            "--tenants".into(),
            bad.display().to_string(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_status_of_a_fleet_reads_its_database_next_due_and_the_lease_holder() {
    use connector_host::fleet::Fleet;
    use connector_host::status::{LastRun, Outcome, RunEnd};
    use connector_host::{CheckpointStore, PostgresCheckpointStore};

    let url = pg::fresh_database("status_fleet").await;
    let fleet = Fleet::connect(&url, Some(&pg::password()), "host-a")
        .await
        .unwrap_or_else(|e| pg::unreachable(e));
    let keys = connector_host::serve::simulated_keys(2);
    fleet.register(&keys).await.unwrap();
    // host-a holds a lease on the first (most overdue; both are due now, by key).
    let leases = fleet.claim(1, Duration::from_secs(600)).await.unwrap();
    assert_eq!(leases.len(), 1);
    let leased = leases[0].tenant.clone();
    let other = keys.iter().find(|k| **k != leased).unwrap().clone();
    // The other ran before and failed: its record, through the store's writer.
    let store = PostgresCheckpointStore::new(fleet.database().clone());
    let now = connector_host::status::millis(std::time::SystemTime::now());
    store
        .record_run(
            &other,
            &RunEnd {
                run: LastRun {
                    started_ms: now - 5_000,
                    ended_ms: now - 4_000,
                    outcome: Outcome::Failed,
                    error: Some("example-users upstream: 503 <b>down</b>".into()),
                    kind: Some("upstream".into()),
                    full_sync: None,
                    progress: None,
                },
                phases: vec!["users".into()],
            },
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "[simulation]\ntenants = 2\nusers_per_tenant = 10\n[fleet]\nurl = \"{url}\"\n\
             password = {{ env = \"FLEET_DB_PASSWORD\" }}\n"
        ),
    )
    .unwrap();
    let password = (
        "FLEET_DB_PASSWORD",
        pg::env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", pg::DEFAULT_PASSWORD),
    );
    let args = |json: bool| {
        let mut a = vec![
            "status".to_string(),
            "--tenants".into(),
            tenants.display().to_string(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let out = host(args(false), vec![password.clone()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = |key: &str| {
        table
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no row {key}: {table}"))
            .to_string()
    };
    assert!(row(&leased).contains("never run"), "{table}");
    assert!(row(&leased).contains("host-a (until in 10 min)"), "{table}");
    assert!(row(&other).contains("failed"), "{table}");
    assert!(
        table.contains("  error: upstream: example-users upstream: 503 <b>down</b>"),
        "{table}"
    );
    assert_eq!(
        files(dir.path()),
        vec!["tenants.toml".to_string()],
        "status created no file"
    );
    let doc = status_json(&host(args(true), vec![password]).await);
    let by_key = |key: &str| {
        doc["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tenant"] == key)
            .unwrap()
            .clone()
    };
    let l = by_key(&leased);
    assert_eq!(l["lease"]["host"], "host-a");
    assert_eq!(l["state"], "never run");
    let o = by_key(&other);
    assert_eq!(o["lease"], serde_json::Value::Null);
    assert_eq!(o["state"], "failed");
    assert_eq!(o["last_run"]["kind"], "upstream");
    // Next due is the fleet's schedule: registered due now, so at or before this moment.
    let due = humantime::parse_rfc3339(o["next_due"].as_str().unwrap()).unwrap();
    assert!(due <= std::time::SystemTime::now(), "{o}");
    // Without the database's password: the tenants are unreadable, said once, exit 6.
    let out = host(args(false), vec![]).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("unreadable"));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("FLEET_DB_PASSWORD"), "{err}");
}
