//! The scale benchmark of issue 17: the first full sync of an enterprise tenant, resumably,
//! in bounded memory, on SQLite and on PostgreSQL, then one incremental run after 0.1% of the
//! tenant changed.
//!
//! ```text
//! cargo bench -p e2e-tests --bench scale -- [--users N] [--scale K] [--store sqlite|postgres|both]
//!                                           [--runs N] [--seed S]
//! ```
//!
//! Defaults: 1,000,000 users (`ScaleSpec::enterprise`: 200,000 groups, 15 direct memberships a
//! user on average, 100 users in 2,000 groups, 5 groups of 200,000 members), time compressed
//! `--scale` times (the emulator's limit windows and the guest's clocks, one origin; simulation
//! only), both stores (PostgreSQL: the test cluster of `scripts/test-postgres`), and a run
//! timeout of a sixth of the floor (below), so that the walk takes at least 5 runs.
//!
//! **The host runs in its own process** (this binary, re-executed with `SCALE_BENCH_CHILD`),
//! one process per run, so its peak RSS (`VmHWM`) is the host's alone, not the emulator's;
//! the guest's memory is capped at 64 MiB (`RuntimeLimits::memory_bytes`) for every run, so a
//! run that needs more fails the benchmark, and each run's peak is read from the run report
//! when it ends (a run stopped by its timeout has none: the cap covers it). Every checkpoint
//! call goes through a counting wrapper: bytes written (keys + values of every `set` and
//! `set-many` write) and the largest value ever written. Bytes held are read from the
//! database after the walk (keys + values of the tenant's namespace).
//!
//! The floor is what Graph's documented reports limits impose on any connector (README,
//! "Large tenants"): `max(n/500 × 6 s, (n/500 + n/r) × 2 s)` with `r` = 100, the page the
//! emulator serves the registration report in when `$top` is refused (its strict default).
//! Wall time is the sum of the runs' durations, counted two ways: "at Graph's limits" — what
//! the same runs would take in real time: the part of each run before the walk's last
//! reports-class request (sign-in data, registration report) times K, the rest (the build and
//! the users pages: the host's and the guest's own work, which compression does not speed up)
//! as measured; and "all × K", every second multiplied by K (an upper bound that multiplies
//! the host's own work too). "slept" is the real time the guest spent in its pacing waits
//! (`RunFigures::slept`): near zero, the walk was bound by the host's work at that K, not by
//! the limits. The floor leaves out Graph's latency on the users pages (n/200 requests).

use std::collections::HashSet;
use std::io::{BufRead, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connector_host::doors::checkpoint::{
    CheckpointError, CheckpointStore, PostgresCheckpointStore, Stored, Write,
};
use connector_host::doors::http::{EgressPolicy, Origin, SecretSet, SecretValue};
use connector_host::fleet::Password;
use connector_host::{
    JsonlFileSink, Runtime, RuntimeLimits, SqliteCheckpointStore, TenantRun, TimeScale,
};
use graph_emulator::{Emulator, EmulatorConfig, Endpoint, ScaleSpec};
use serde_json::{json, Value};

const CHILD_ENV: &str = "SCALE_BENCH_CHILD";
const TENANT: &str = "enterprise";
const GUEST_MEMORY_CAP: usize = 64 * 1024 * 1024;
const PG_URL: &str = "postgres://connector_test@127.0.0.1:55432/connector_test";
const PG_PASSWORD: &str = "connector-test-password";
const PG_DATABASE: &str = "ct_scale_bench";

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows = Vec::new();
    for store in &args.stores {
        rows.extend(rt.block_on(bench(&args, *store)));
    }
    print_table(&args, &rows);
}

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Clone, Copy, Debug, PartialEq)]
enum StoreKind {
    Sqlite,
    Postgres,
}

struct Args {
    users: usize,
    scale: u32,
    stores: Vec<StoreKind>,
    runs: u32,
    seed: u64,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            users: 1_000_000,
            scale: 200,
            stores: vec![StoreKind::Sqlite, StoreKind::Postgres],
            runs: 5,
            seed: 17,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .unwrap_or_else(|| panic!("{name} needs a value (see the file's doc)"))
            };
            match a.as_str() {
                "--users" => args.users = value("--users").parse().expect("--users N"),
                "--scale" => args.scale = value("--scale").parse().expect("--scale K"),
                "--runs" => args.runs = value("--runs").parse().expect("--runs N"),
                "--seed" => args.seed = value("--seed").parse().expect("--seed S"),
                "--store" => {
                    args.stores = match value("--store").as_str() {
                        "sqlite" => vec![StoreKind::Sqlite],
                        "postgres" => vec![StoreKind::Postgres],
                        "both" => vec![StoreKind::Sqlite, StoreKind::Postgres],
                        other => panic!("--store {other}: expected sqlite, postgres or both"),
                    }
                }
                // cargo bench passes --bench; anything else is a mistake worth naming.
                "--bench" => {}
                other => panic!("unknown argument {other} (see tests/benches/scale.rs)"),
            }
        }
        assert!(args.runs >= 1 && args.scale >= 1 && args.users >= 1);
        args
    }
}

/// Graph's documented-limits floor for a full walk of `n` users, seconds (README, "Large
/// tenants"): sign-in data 500 users a request at 10 a minute; the registration report in
/// pages of `r` rows sharing the reports budget of 5 requests per 10 s.
fn floor_secs(n: usize, r: usize) -> f64 {
    let n = n as f64;
    let sign_in_pages = (n / 500.0).ceil();
    let report_pages = (n / r as f64).ceil();
    (sign_in_pages * 6.0).max((sign_in_pages + report_pages) * 2.0)
}

// ---------------------------------------------------------------------------------------------
// The parent: emulator, runs, measurements

struct Row {
    store: StoreKind,
    what: &'static str,
    runs: u32,
    wall_virtual_s: f64,
    wall_projected_s: f64,
    slept_s: f64,
    wall_real_s: f64,
    floor_s: f64,
    graph_requests: u64,
    users: usize,
    peak_guest: u64,
    host_rss: u64,
    largest_value: u64,
    held: u64,
    written: u64,
    events: u64,
    duplicates: u64,
    note: String,
}

fn graph_requests(emulator: &Emulator) -> u64 {
    // Every `$batch` item counts under its own endpoint; the envelope and the token endpoint
    // are not Graph requests.
    emulator
        .counters()
        .iter()
        .filter(|(e, _)| !matches!(e, Endpoint::Token | Endpoint::Batch))
        .map(|(_, n)| n)
        .sum()
}

async fn bench(args: &Args, store: StoreKind) -> Vec<Row> {
    let spec = ScaleSpec::enterprise(args.seed, args.users);
    eprintln!(
        "[{store:?}] generating {} users, {} groups, {} memberships ...",
        spec.users,
        spec.groups,
        spec.total_memberships()
    );
    let t = Instant::now();
    let emulator = Emulator::start_scaled(
        &spec,
        EmulatorConfig {
            time_scale: args.scale,
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("the emulator starts");
    eprintln!(
        "[{store:?}] emulator up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store_spec = match store {
        StoreKind::Sqlite => json!({"sqlite": dir.path().join("checkpoints.sqlite")}),
        StoreKind::Postgres => json!({"postgres": fresh_pg_database().await}),
    };
    let events = dir.path().join("events.jsonl");
    let floor = floor_secs(args.users, 100);
    // A sixth of the floor in real seconds: at least 5 runs however fast the host is.
    let timeout =
        Duration::from_secs_f64((floor / args.scale as f64 / (args.runs + 1) as f64).max(2.0));
    eprintln!(
        "[{store:?}] floor {:.0} s virtual = {:.1} s real at ×{}; run timeout {:.1} s",
        floor,
        floor / args.scale as f64,
        args.scale,
        timeout.as_secs_f64()
    );
    let job = |timeout: Duration| {
        let cfg = emulator.config();
        let (_, origin_wall) = emulator.clock().origin();
        json!({
            "login_endpoint": emulator.login_endpoint(),
            "graph_endpoint": emulator.graph_endpoint(),
            "tenant_id": cfg.tenant_id,
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "store": store_spec,
            "events": events,
            "timeout_ms": timeout.as_millis() as u64,
            "factor": args.scale,
            "origin_wall_ns": origin_wall.duration_since(UNIX_EPOCH).unwrap().as_nanos().to_string(),
        })
    };

    // The full walk, run after run until one completes.
    let mut totals = Totals::default();
    // Each run's (start, end), Unix ms, and when the walk's last reports-class request came.
    let mut spans: Vec<(f64, f64)> = Vec::new();
    let mut reports_end = 0.0f64;
    loop {
        totals.runs += 1;
        assert!(totals.runs <= 400, "the walk never completes");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (out, last_reports) = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| last_reports_request(&emulator, &stop));
            let out = spawn_child(&job(timeout));
            stop.store(true, Ordering::Relaxed);
            (out, watcher.join().expect("the watcher"))
        });
        totals.add(&out);
        if let Some(t) = last_reports {
            reports_end = reports_end.max(t);
        }
        spans.push((
            out["started_ms"].as_f64().unwrap_or(0.0),
            out["ended_ms"].as_f64().unwrap_or(0.0),
        ));
        let ok = out["ok"].as_bool() == Some(true);
        eprintln!(
            "[{store:?}] run {}: {} in {:.1} s, rss {} MiB, {}",
            totals.runs,
            if ok { "completed" } else { "stopped" },
            out["run_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            out["rss_peak_bytes"].as_u64().unwrap_or(0) >> 20,
            out["error"]
                .as_str()
                .or(out["progress"].as_str())
                .unwrap_or("")
        );
        if ok {
            break;
        }
        let error = out["error"].as_str().unwrap_or("");
        assert!(
            error.contains("time limit"),
            "a run failed for another reason than its timeout: {error}"
        );
    }
    let walk_requests = graph_requests(&emulator);
    let (events_seen, duplicates) = check_events(&events, &emulator);
    let held = held_bytes(&store_spec).await;
    let mut walk = totals.row(
        store,
        "full walk",
        args,
        floor,
        walk_requests,
        held,
        events_seen,
        duplicates,
    );
    walk.wall_projected_s = projected_wall_s(&spans, reports_end, args.scale);

    // Incremental: 0.1% of the tenant changes, then one run with no time pressure.
    let changed = change_tenant(&emulator, &spec, args.users / 1000);
    emulator.reset_counters();
    let before_lines = count_lines(&events);
    let mut inc = Totals {
        runs: 1,
        ..Totals::default()
    };
    let out = spawn_child(&job(Duration::from_secs(3_600)));
    inc.add(&out);
    assert_eq!(
        out["ok"].as_bool(),
        Some(true),
        "the incremental run failed: {out}"
    );
    let inc_requests = graph_requests(&emulator);
    eprintln!(
        "[{store:?}] incremental requests by endpoint: {:?}",
        emulator.counters()
    );
    let inc_events = check_changed(&events, before_lines, &emulator, &changed);
    let held_after = held_bytes(&store_spec).await;
    let incremental = inc.row(
        store,
        "incremental, 0.1% changed",
        args,
        0.0,
        inc_requests,
        held_after,
        inc_events,
        0,
    );
    vec![walk, incremental]
}

#[derive(Default)]
struct Totals {
    runs: u32,
    run_ms: f64,
    slept_ms: f64,
    peak_guest: u64,
    rss: u64,
    written: u64,
    largest: u64,
}

impl Totals {
    fn add(&mut self, out: &Value) {
        self.run_ms += out["run_ms"].as_f64().unwrap_or(0.0);
        self.slept_ms += out["slept_ms"].as_f64().unwrap_or(0.0);
        assert_eq!(
            out["watched"].as_bool(),
            Some(true),
            "a run ended before its figures could be read: {out}"
        );
        self.peak_guest = self
            .peak_guest
            .max(out["peak_guest_bytes"].as_u64().unwrap_or(0));
        self.rss = self.rss.max(out["rss_peak_bytes"].as_u64().unwrap_or(0));
        self.written += out["bytes_written"].as_u64().unwrap_or(0);
        self.largest = self.largest.max(out["largest_value"].as_u64().unwrap_or(0));
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        store: StoreKind,
        what: &'static str,
        args: &Args,
        floor: f64,
        requests: u64,
        held: u64,
        events: u64,
        duplicates: u64,
    ) -> Row {
        Row {
            store,
            what,
            runs: self.runs,
            wall_virtual_s: self.run_ms / 1000.0 * args.scale as f64,
            wall_projected_s: self.run_ms / 1000.0,
            slept_s: self.slept_ms / 1000.0,
            wall_real_s: self.run_ms / 1000.0,
            floor_s: floor,
            graph_requests: requests,
            users: args.users,
            peak_guest: self.peak_guest,
            host_rss: self.rss,
            largest_value: self.largest,
            held,
            written: self.written,
            events,
            duplicates,
            note: String::new(),
        }
    }
}

fn print_table(args: &Args, rows: &[Row]) {
    println!(
        "\nscale benchmark: {} users (ScaleSpec::enterprise, seed {}), time ×{}, guest memory cap 64 MiB\n",
        args.users, args.seed, args.scale
    );
    println!("| store | run | runs | wall at Graph's limits | floor | wall / floor | all × K | real (slept) | Graph req/user | peak guest | host peak RSS | largest value | held | written | written / held | events (dup) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = if r.floor_s > 0.0 {
            format!("{:.3}", r.wall_projected_s / r.floor_s)
        } else {
            "—".into()
        };
        println!(
            "| {:?} | {} | {} | {:.0} s | {} | {} | {:.0} s | {:.1} s ({:.1} s) | {:.6} | {:.1} MiB | {:.0} MiB | {:.1} KiB | {:.1} MiB | {:.1} MiB | {:.2} | {} ({}) |{}",
            r.store,
            r.what,
            r.runs,
            r.wall_projected_s,
            if r.floor_s > 0.0 { format!("{:.0} s", r.floor_s) } else { "—".into() },
            ratio,
            r.wall_virtual_s,
            r.wall_real_s,
            r.slept_s,
            r.graph_requests as f64 / r.users as f64,
            r.peak_guest as f64 / 1048576.0,
            r.host_rss as f64 / 1048576.0,
            r.largest_value as f64 / 1024.0,
            r.held as f64 / 1048576.0,
            r.written as f64 / 1048576.0,
            r.written as f64 / r.held.max(1) as f64,
            r.events,
            r.duplicates,
            r.note,
        );
    }
}

/// Reports-class requests so far: sign-in data (`/users` with `signInActivity`; the walk reads
/// no other `/users` listing) and the registration report.
fn reports_requests(emulator: &Emulator) -> u64 {
    let c = emulator.counters();
    c.get(&Endpoint::Users).copied().unwrap_or(0)
        + c.get(&Endpoint::RegistrationDetails).copied().unwrap_or(0)
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// Watches the emulator until `stop`: when (Unix ms) a reports-class request last arrived.
fn last_reports_request(emulator: &Emulator, stop: &std::sync::atomic::AtomicBool) -> Option<f64> {
    let mut seen = reports_requests(emulator);
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let n = reports_requests(emulator);
        if n != seen {
            seen = n;
            last = Some(unix_ms());
        }
    }
    last
}

/// The walk's wall time at Graph's real limits, seconds, from runs at time factor `k`: while
/// the reports sources were still being read (until `reports_end`), every second counts k
/// times (the limits' waits were k times shorter; the host's own work in that time is
/// multiplied too, so this over-counts it); after the last reports request, the build and the
/// users pages are the host's and the guest's own work, which compressing time does not
/// speed up, counted as measured.
fn projected_wall_s(spans: &[(f64, f64)], reports_end: f64, k: u32) -> f64 {
    let k = f64::from(k);
    spans
        .iter()
        .map(|&(start, end)| {
            let limited = (end.min(reports_end) - start).max(0.0);
            let own = (end - start.max(reports_end)).max(0.0);
            (limited * k + own) / 1000.0
        })
        .sum()
}

/// Runs one host run in a child process and returns what it printed.
fn spawn_child(job: &Value) -> Value {
    let exe = std::env::current_exe().expect("this benchmark's own path");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the child host starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("the job reaches the child");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("the child's answer");
    let status = child.wait().expect("the child ends");
    assert!(status.success(), "the child host failed ({status}): {out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("the child's answer ({e}): {out}"))
}

/// Every user of the tenant delivered, by uid; returns (events, duplicated events).
fn check_events(events: &Path, emulator: &Emulator) -> (u64, u64) {
    let file = std::fs::File::open(events).expect("the events file");
    let mut seen: HashSet<String> = HashSet::new();
    let mut n = 0u64;
    let mut dup = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.expect("a line");
        let event: Value = serde_json::from_str(&line).expect("an event is JSON");
        let uid = event["user"]["uid"].as_str().expect("a uid").to_string();
        n += 1;
        if !seen.insert(uid) {
            dup += 1;
        }
    }
    let ids = emulator.user_ids();
    let missing = ids.iter().filter(|id| !seen.contains(*id)).count();
    assert_eq!(missing, 0, "{missing} users were never delivered");
    assert_eq!(
        seen.len(),
        ids.len(),
        "events for users the tenant does not have"
    );
    (n, dup)
}

fn count_lines(path: &Path) -> usize {
    std::io::BufReader::new(std::fs::File::open(path).expect("the events file"))
        .lines()
        .count()
}

/// What changed in the incremental step, by kind.
struct Changed {
    properties: Vec<String>,
    memberships: Vec<String>,
    roles: Vec<String>,
    deleted: Vec<String>,
}

/// Changes `count` users: 40% a property, 30% a membership (one group joined, one left),
/// 10% a directory role held directly, 20% deleted.
fn change_tenant(emulator: &Emulator, spec: &ScaleSpec, count: usize) -> Changed {
    let count = count.max(10);
    let step = spec.users / count;
    let mut changed = Changed {
        properties: vec![],
        memberships: vec![],
        roles: vec![],
        deleted: vec![],
    };
    let role = json!({
        "@odata.type": "#microsoft.graph.directoryRole",
        "id": "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "displayName": "SharePoint Administrator",
        "roleTemplateId": "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
    });
    for k in 0..count {
        let index = k * step + step / 2;
        let id = spec.user_id(index);
        match k % 10 {
            0..=3 => {
                assert!(emulator.update_user(&id, json!({"jobTitle": format!("Changed {k}")})));
                changed.properties.push(id);
            }
            4..=6 => {
                let joined = spec.group_ids_of((index + 7) % spec.users);
                assert!(emulator.modify_relations(&id, |u| {
                    if !u.member_of.is_empty() {
                        u.member_of.remove(0);
                    }
                    if let Some(g) = joined.first() {
                        u.member_of.push(json!({
                            "@odata.type": "#microsoft.graph.group",
                            "id": g,
                            "displayName": format!("group {g}"),
                        }));
                    }
                }));
                changed.memberships.push(id);
            }
            7 => {
                let role = role.clone();
                assert!(emulator.modify_relations(&id, |u| u.member_of.push(role)));
                changed.roles.push(id);
            }
            _ => {
                assert!(emulator.remove_user(&id));
                changed.deleted.push(id);
            }
        }
    }
    changed
}

/// Every changed user emitted by the incremental run as a complete snapshot: the changed
/// property, the group count the tenant now has, the role; returns the run's events.
fn check_changed(events: &Path, skip: usize, emulator: &Emulator, changed: &Changed) -> u64 {
    let file = std::fs::File::open(events).expect("the events file");
    let mut last: std::collections::HashMap<String, Value> = Default::default();
    let mut n = 0;
    for line in std::io::BufReader::new(file).lines().skip(skip) {
        let event: Value = serde_json::from_str(&line.expect("a line")).expect("JSON");
        n += 1;
        let uid = event["user"]["uid"].as_str().expect("uid").to_string();
        last.insert(uid, event);
    }
    for id in changed
        .properties
        .iter()
        .chain(&changed.memberships)
        .chain(&changed.roles)
    {
        let event = last
            .get(id)
            .unwrap_or_else(|| panic!("changed user {id} was not emitted"));
        let user = emulator.user(id).expect("the changed user exists");
        let groups = user
            .member_of
            .iter()
            .filter(|m| m["@odata.type"] == "#microsoft.graph.group")
            .count();
        let emitted = event["user"]["groups"].as_array().map_or(0, Vec::len);
        assert_eq!(
            emitted, groups,
            "user {id}: the snapshot has {emitted} groups, the tenant {groups}"
        );
        assert!(
            event["user"]["uid"] == id.as_str(),
            "a snapshot of someone else"
        );
    }
    for id in &changed.properties {
        let title = emulator.user(id).unwrap().user["jobTitle"].clone();
        assert!(
            last[id].to_string().contains(title.as_str().unwrap()),
            "user {id}: the new job title is not in the snapshot"
        );
    }
    for id in &changed.deleted {
        assert!(last.contains_key(id), "deleted user {id} was not reported");
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Stores: a fresh PostgreSQL database, and the bytes a store holds

async fn pg_admin(url: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    config.password(PG_PASSWORD);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap_or_else(|e| {
        panic!("cannot reach the test PostgreSQL at {url} ({e}); run `bash scripts/test-postgres` (as root) first")
    });
    tokio::spawn(connection);
    client
}

async fn fresh_pg_database() -> String {
    let admin = pg_admin(PG_URL).await;
    for sql in [
        format!("DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {PG_DATABASE}"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .expect("the bench database is made");
    }
    format!("postgres://connector_test@127.0.0.1:55432/{PG_DATABASE}")
}

/// Keys + values of every checkpoint the store holds (one tenant in it).
async fn held_bytes(store: &Value) -> u64 {
    const SQL: &str =
        "SELECT COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0) FROM checkpoints";
    if let Some(path) = store["sqlite"].as_str() {
        let db = rusqlite::Connection::open(path).expect("the SQLite store opens");
        let n: i64 = db
            .query_row(SQL, [], |r| r.get(0))
            .expect("sum of the store");
        return n as u64;
    }
    let url = store["postgres"].as_str().expect("a store");
    let client = pg_admin(url).await;
    let row = client
        .query_one(
            "SELECT (COALESCE(SUM(OCTET_LENGTH(key) + OCTET_LENGTH(value)), 0))::bigint FROM checkpoints",
            &[],
        )
        .await
        .expect("sum of the store");
    row.get::<_, i64>(0) as u64
}

// ---------------------------------------------------------------------------------------------
// The child: one host run

/// Counts what the connector writes to the store.
struct Counting {
    inner: Arc<dyn CheckpointStore>,
    written: AtomicU64,
    largest: AtomicU64,
}

impl Counting {
    fn wrote(&self, key: &str, value: &[u8]) {
        self.written
            .fetch_add((key.len() + value.len()) as u64, Ordering::Relaxed);
        self.largest
            .fetch_max(value.len() as u64, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl CheckpointStore for Counting {
    async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        self.inner.get(namespace, key).await
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        let v = self.inner.set(namespace, key, value, expected).await?;
        self.wrote(key, value);
        Ok(v)
    }

    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<Stored>, CheckpointError> {
        self.inner.get_many(namespace, keys).await
    }

    async fn set_many(
        &self,
        namespace: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, CheckpointError> {
        let v = self.inner.set_many(namespace, writes).await?;
        for w in writes {
            self.wrote(&w.key, w.value.as_deref().unwrap_or_default());
        }
        Ok(v)
    }

    async fn delete_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<u32, CheckpointError> {
        self.inner.delete_prefix(namespace, prefix, limit).await
    }
}

fn child() {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .expect("the job");
    let job: Value = serde_json::from_str(&input).expect("the job is JSON");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let out = rt.block_on(child_run(&job));
    println!("{out}");
}

async fn child_run(job: &Value) -> Value {
    let text = |k: &str| {
        job[k]
            .as_str()
            .unwrap_or_else(|| panic!("job.{k}"))
            .to_string()
    };
    let login = Origin::parse(&text("login_endpoint")).expect("login origin");
    let graph = Origin::parse(&text("graph_endpoint")).expect("graph origin");
    let mut secrets = SecretSet::new();
    secrets.insert(
        "client_secret",
        SecretValue::new(text("client_secret")),
        vec![login.clone()],
    );
    let mut policy = EgressPolicy::new(vec![login, graph]);
    policy.allow_loopback_http = true;
    let inner: Arc<dyn CheckpointStore> = if let Some(path) = job["store"]["sqlite"].as_str() {
        Arc::new(SqliteCheckpointStore::open(Path::new(path)).expect("SQLite store"))
    } else {
        let url = job["store"]["postgres"].as_str().expect("a store");
        Arc::new(
            PostgresCheckpointStore::connect(url, Some(&Password::new(PG_PASSWORD.to_string())))
                .await
                .expect("PostgreSQL store"),
        )
    };
    let counting = Arc::new(Counting {
        inner,
        written: AtomicU64::new(0),
        largest: AtomicU64::new(0),
    });
    let sink = JsonlFileSink::open(&PathBuf::from(text("events"))).expect("the events file");
    let factor = job["factor"].as_u64().expect("factor") as u32;
    let origin_ns: u128 = text("origin_wall_ns").parse().expect("origin");
    let origin_wall = UNIX_EPOCH + Duration::from_nanos(origin_ns as u64);
    // This process's Instant at the emulator's origin: now minus the wall time since it.
    let since = SystemTime::now()
        .duration_since(origin_wall)
        .unwrap_or_default();
    let origin = Instant::now()
        .checked_sub(since)
        .expect("an origin instant");
    let run = TenantRun {
        tenant: TENANT.into(),
        connector_config: vec![
            ("tenant_id".into(), text("tenant_id")),
            ("client_id".into(), text("client_id")),
            ("login_endpoint".into(), text("login_endpoint")),
            ("graph_endpoint".into(), text("graph_endpoint")),
        ],
        policy,
        secrets: Arc::new(secrets),
        checkpoints: counting.clone(),
        sink: Arc::new(sink),
        timeout: Duration::from_millis(job["timeout_ms"].as_u64().expect("timeout")),
        time_scale: Default::default(),
    }
    .with_time_scale(TimeScale::anchored(factor, origin, origin_wall).expect("a time scale"));
    let runtime = Runtime::new(
        builtin_connectors::ENTRA_ID,
        RuntimeLimits {
            memory_bytes: GUEST_MEMORY_CAP,
            ..RuntimeLimits::default()
        },
    )
    .await
    .expect("the component loads");
    // The run's shared state outlives it: its peak guest memory and time slept are read even
    // when the timeout stops it.
    let runtime = Arc::new(runtime);
    let watcher = {
        let runtime = runtime.clone();
        tokio::spawn(async move {
            loop {
                if let Some(shared) = runtime.live_run(TENANT) {
                    return shared;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let started = Instant::now();
    let started_ms = unix_ms();
    let outcome = runtime.run(&run).await;
    let run_ms = started.elapsed().as_secs_f64() * 1000.0;
    let ended_ms = unix_ms();
    let shared = if watcher.is_finished() {
        watcher.await.ok()
    } else {
        watcher.abort();
        None
    };
    let mut out = json!({
        "run_ms": run_ms,
        "started_ms": started_ms,
        "ended_ms": ended_ms,
        "peak_guest_bytes": shared.as_ref().map_or(0, |s| s.peak_guest_memory_bytes()),
        "slept_ms": shared.as_ref().map_or(0.0, |s| s.slept().as_secs_f64() * 1000.0),
        "watched": shared.is_some(),
        "bytes_written": counting.written.load(Ordering::Relaxed),
        "largest_value": counting.largest.load(Ordering::Relaxed),
        "rss_peak_bytes": vm_hwm(),
    });
    match outcome {
        Ok(report) => {
            out["ok"] = true.into();
            out["events"] = report.events_written.into();
            let peak = out["peak_guest_bytes"].as_u64().unwrap_or(0);
            out["peak_guest_bytes"] = report.peak_guest_memory_bytes.max(peak).into();
        }
        Err(e) => {
            out["ok"] = false.into();
            out["error"] = e.to_string().into();
        }
    }
    out
}

/// This process's peak resident set (`VmHWM` of /proc/self/status), bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
