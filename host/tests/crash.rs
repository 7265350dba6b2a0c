//! Killing the real `connector-host run` process (SIGKILL, no chance to clean up) at several
//! points of a run, then running it again: every user is delivered, at most one page twice,
//! and every line of the sink is a whole event.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Endpoint, Tenant};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");

/// Users per delta page in these runs: the most a crash may deliver twice.
const PAGE: usize = 20;

/// The tenant file; `extra` goes at the end of its `[config]`.
fn tenant_file(dir: &Path, emu: &Emulator, extra: &str) -> PathBuf {
    let cfg = emu.config();
    let text = format!(
        r#"
[tenant]
key = "crash-test"

[config]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"
page_size = {PAGE}
{extra}

[secrets.client_secret]
env = "CRASH_TEST_CLIENT_SECRET"

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

fn command(dir: &Path, emu: &Emulator) -> Command {
    command_with(dir, emu, "")
}

/// [`command`] with `extra` lines in the tenant's `[config]`.
fn command_with(dir: &Path, emu: &Emulator, extra: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("run")
        .arg("--config")
        .arg(tenant_file(dir, emu, extra))
        .env("CRASH_TEST_CLIENT_SECRET", emu.config().client_secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Every event in the sink; a torn or glued line fails the test.
fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn sink line ({e}): {l}")))
        .collect()
}

/// Lines of the sink that are whole events; a torn last line (a kill mid-write) is not
/// counted, a torn line anywhere else fails the test.
fn whole_lines(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut whole = 0;
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str::<Value>(l) {
            Ok(_) => whole += 1,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => panic!("a torn sink line before the end ({e}): {l}"),
        }
    }
    whole
}

/// Starts a run and SIGKILLs it once at least `after` events are in the sink.
async fn kill_after(dir: PathBuf, mut cmd: Command, after: usize) {
    tokio::task::spawn_blocking(move || {
        let mut child: Child = cmd.spawn().expect("connector-host starts");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the run ended ({status}) before {after} events were written: nothing was killed");
            }
            if lines(&dir) >= after {
                break;
            }
            assert!(Instant::now() < deadline, "no progress to {after} events");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL, not finished");
    })
    .await
    .unwrap();
}

async fn run_to_end(mut cmd: Command) {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("connector-host starts"))
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the rerun succeeds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// uid → how many events carried it.
fn counts(events: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in events {
        let uid = e["user"]["uid"].as_str().unwrap_or("").to_string();
        *m.entry(uid).or_insert(0) += 1;
    }
    m
}

fn ids(emu: &Emulator) -> BTreeSet<String> {
    emu.users()
        .iter()
        .filter_map(|u| u.id().map(str::to_string))
        .collect()
}

async fn slow_emulator(users: usize) -> Emulator {
    let emu = Emulator::start(
        Tenant::generated(41, users),
        EmulatorConfig {
            member_of_page_size: 100,
            // These runs are about resuming, not pacing (pacing has its own tests): Graph's
            // reports and sign-in limits would only add waits the kills do not need.
            reports_limit: None,
            sign_in_activity_limit: None,
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("the emulator starts");
    // Slow enough that a run spans many pages in time, so the kill lands mid-run.
    emu.set_latency(SLOW);
    emu
}

/// The emulator's latency while a run is to be killed mid-way (reruns go without it).
const SLOW: Duration = Duration::from_millis(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_several_points_of_a_full_run_loses_no_user() {
    let emu = slow_emulator(300).await;
    let all = ids(&emu);
    // Early (first page), middle, and near the end of the walk.
    for after in [1, 140, 240] {
        let dir = tempfile::tempdir().unwrap();
        emu.set_latency(SLOW);
        kill_after(dir.path().to_path_buf(), command(dir.path(), &emu), after).await;
        // A SIGKILL can land mid-write: the last line may be torn until the next run repairs
        // it before appending, so only whole lines count here.
        let before = whole_lines(dir.path());
        assert!(
            before >= after && before < all.len(),
            "killed mid-run at {before} events"
        );
        // The latency only makes the kill land mid-run; the rerun need not wait for it.
        emu.set_latency(Duration::ZERO);
        run_to_end(command(dir.path(), &emu)).await;

        let events = events(dir.path());
        let counts = counts(&events);
        let got: BTreeSet<String> = counts.keys().cloned().collect();
        assert_eq!(got, all, "killed after {after}: every user delivered");
        let repeated: usize = counts.values().map(|n| n - 1).sum();
        assert!(
            repeated <= PAGE,
            "killed after {after}: {repeated} events delivered twice, more than one page ({PAGE})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delta_resumes_from_the_last_committed_page() {
    // The incremental round would otherwise wait for the connector's own pacing of the
    // sign-in activity reads (10 a minute, Graph's documented limit), which a crash test
    // does not need: about a minute of the rerun.
    const NO_SIGN_IN: &str = "sign_in_activity = \"off\"";
    let emu = slow_emulator(200).await;
    let dir = tempfile::tempdir().unwrap();
    emu.set_latency(Duration::ZERO);
    run_to_end(command_with(dir.path(), &emu, NO_SIGN_IN)).await;
    let first = events(dir.path()).len();
    assert_eq!(first, 200);

    // 150 users change between runs: the next run is a delta round of several pages.
    let changed: Vec<String> = ids(&emu).into_iter().take(150).collect();
    for id in &changed {
        assert!(emu.update_user(id, json!({"jobTitle": "Changed Title"})));
    }
    emu.set_latency(SLOW);
    kill_after(
        dir.path().to_path_buf(),
        command_with(dir.path(), &emu, NO_SIGN_IN),
        first + 50,
    )
    .await;
    emu.set_latency(Duration::ZERO);
    run_to_end(command_with(dir.path(), &emu, NO_SIGN_IN)).await;

    let events = events(dir.path());
    let changes = &events[first..];
    let counts = counts(changes);
    let got: BTreeSet<String> = counts.keys().cloned().collect();
    let want: BTreeSet<String> = changed.iter().cloned().collect();
    assert_eq!(got, want, "every changed user delivered, and only those");
    for e in changes {
        assert_eq!(
            e["user"]["ldap_person"]["job_title"], "Changed Title",
            "the delivered state is the changed one"
        );
    }
    let repeated: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        repeated <= PAGE,
        "{repeated} changes delivered twice, more than one page ({PAGE})"
    );
}

/// The sources of a staged full walk (`guest/src/sync/staged.rs`, `Source::index` order) and
/// the endpoints each reads.
const SOURCES: [(&str, &[Endpoint]); 4] = [
    ("sign-in data", &[Endpoint::Users]),
    ("groups", &[Endpoint::GroupsDelta]),
    (
        "roles",
        &[
            Endpoint::RoleDefinitions,
            Endpoint::RoleAssignments,
            Endpoint::RoleEligibilityScheduleInstances,
        ],
    ),
    ("registration report", &[Endpoint::RegistrationDetails]),
];

/// The delta cursor in the tenant's checkpoint file, if one was committed.
fn delta_cursor(dir: &Path) -> Option<Value> {
    let conn = rusqlite::Connection::open(dir.join("state/checkpoints.sqlite")).ok()?;
    let bytes: Vec<u8> = conn
        .query_row(
            "SELECT value FROM checkpoints WHERE key = 'users/delta-cursor'",
            [],
            |r| r.get(0),
        )
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Starts a run and SIGKILLs it once `endpoint` has been asked `n` times.
async fn kill_at(emu: &Emulator, mut cmd: Command, endpoint: Endpoint, n: u64) {
    let mut child: Child = cmd.spawn().expect("connector-host starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {endpoint:?} was asked {n} times");
        }
        if emu.counters().get(&endpoint).copied().unwrap_or(0) >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint:?} never asked {n} times"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL, not finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_each_phase_of_a_full_walk_never_reads_a_finished_source_again() {
    // 1,100 users: three pages of sign-in data, two of the report ($top=999), several of the
    // groups delta and, at 20 users a page, 55 of users delta. The limits are lifted (this
    // is about resuming, not pacing) and every answer is slowed so a kill lands mid-phase.
    let emu = Emulator::start(
        Tenant::generated(43, 1_100),
        EmulatorConfig {
            member_of_page_size: 100,
            registration_top: true,
            reports_limit: None,
            sign_in_activity_limit: None,
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("the emulator starts");
    let all = ids(&emu);
    // (phase, the endpoint whose n-th request marks the kill).
    let kills = [
        ("roles", Endpoint::RoleDefinitions, 1),
        ("sign-in data", Endpoint::Users, 2),
        ("registration report", Endpoint::RegistrationDetails, 2),
        ("groups", Endpoint::GroupsDelta, 2),
        ("users", Endpoint::UsersDelta, 2),
    ];
    for (phase, endpoint, n) in kills {
        let dir = tempfile::tempdir().unwrap();
        emu.reset_counters();
        emu.set_latency(Duration::from_millis(20));
        kill_at(&emu, command(dir.path(), &emu), endpoint, n).await;
        // What the checkpoint says was finished when the process died.
        let cursor = delta_cursor(dir.path());
        let finished: Vec<&str> = SOURCES
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                cursor
                    .as_ref()
                    .and_then(|c| c["walk"]["sources"][*i]["done"].as_bool())
                    .unwrap_or(false)
            })
            .map(|(_, (name, _))| *name)
            .collect();
        emu.reset_counters();
        emu.set_latency(Duration::ZERO);
        run_to_end(command(dir.path(), &emu)).await;
        let counters = emu.counters();
        for (name, endpoints) in SOURCES {
            if !finished.contains(&name) {
                continue;
            }
            for e in endpoints {
                assert_eq!(
                    counters.get(e).copied().unwrap_or(0),
                    0,
                    "killed in {phase}: {name} was finished, yet the rerun asked {e:?} again"
                );
            }
        }
        if phase == "users" {
            assert_eq!(
                finished.len(),
                4,
                "every source finished before the users: {finished:?}"
            );
        }
        let events = events(dir.path());
        let counts = counts(&events);
        let got: BTreeSet<String> = counts.keys().cloned().collect();
        assert_eq!(got, all, "killed in {phase}: every user delivered");
        let repeated: usize = counts.values().map(|n| n - 1).sum();
        assert!(
            repeated <= PAGE,
            "killed in {phase}: {repeated} events delivered twice, more than one page ({PAGE})"
        );
    }
}

/// Users per page of the Okta runs killed below: the most a kill may deliver twice.
const OKTA_PAGE: usize = 50;

/// The tenant file of the built-in `okta` connector against the Okta emulator `org_url`,
/// with the emulator's API token from the environment (`Authorization: SSWS <token>`).
fn okta_command(dir: &Path, org_url: &str, token: &str) -> Command {
    let text = format!(
        r#"
[tenant]
key = "okta-crash-test"
connector = "okta"

[config]
org_url = "{org_url}"
page_size = {OKTA_PAGE}

[secrets.okta_token]
env = "OKTA_CRASH_TEST_TOKEN"
header = "Authorization"
prefix = "SSWS"

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "state/checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "events.jsonl"
"#
    );
    let file = dir.join("okta.toml");
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("run")
        .arg("--config")
        .arg(file)
        .env("OKTA_CRASH_TEST_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_okta_walk_of_the_cli_loses_no_user() {
    // The real `connector-host run` of the built-in okta connector, killed mid-way through
    // the walk's users stage (after its groups, members and admins stages), then run again:
    // every user delivered, at most one page twice, the finished stages not read again.
    // tests/tests/okta_sync.rs compares every event with an oracle of the org.
    use connector_host::simulation::okta_emulator::{
        Bucket, Emulator as Okta, OktaClock, OktaConfig, Org,
    };
    const USERS: usize = 1_500;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Limits lifted: this is about resuming, not pacing (the manual clock stands still).
    let mut config = OktaConfig::default();
    for bucket in Bucket::ALL {
        config.rate_limits.insert(bucket, 1_000_000);
    }
    let token = config.api_tokens[0].clone();
    let okta = Okta::start(
        Org::generated(25, USERS, now),
        config,
        OktaClock::manual(now),
    )
    .await
    .expect("the Okta emulator starts");
    let all: BTreeSet<String> = okta.with_org(|o| o.users().map(|u| u.id.clone()).collect());
    let dir = tempfile::tempdir().unwrap();
    kill_after(
        dir.path().to_path_buf(),
        okta_command(dir.path(), &okta.base_url(), &token),
        USERS * 2 / 5,
    )
    .await;
    let before = whole_lines(dir.path());
    assert!(before < USERS, "killed mid-walk at {before} events");
    okta.reset_stats();
    run_to_end(okta_command(dir.path(), &okta.base_url(), &token)).await;
    let events = events(dir.path());
    ocsf_check::assert_all_valid(&events);
    let counts = counts(&events);
    let got: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(got, all, "every user delivered");
    let repeated: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        repeated <= OKTA_PAGE,
        "{repeated} users delivered twice, more than a page ({OKTA_PAGE})"
    );
    let served = okta.stats().served;
    assert_eq!(
        served.get(&Bucket::Groups),
        None,
        "the groups stage was finished, yet read again: {served:?}"
    );
    // In the users stage, the other /api/v1 reads are the factors of the users left (and
    // the page in flight), not the members, roles or admins of the finished stages.
    let other = served.get(&Bucket::OtherApi).copied().unwrap_or(0);
    assert!(
        other <= (USERS - before + OKTA_PAGE) as u64,
        "{other} other reads for the {} users left",
        USERS - before
    );
    let users_pages = served.get(&Bucket::UsersList).copied().unwrap_or(0);
    assert!(
        users_pages <= (USERS - before).div_ceil(OKTA_PAGE) as u64 + 1,
        "{users_pages} users pages for the {} users left",
        USERS - before
    );
}
