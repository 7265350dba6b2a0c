//! The Okta connector end to end (issue 21, "Done when"): the real component (`okta/`, the
//! CLI's built-in `okta`) in the real host against the Okta emulator over loopback HTTP, its events
//! compared with an oracle computed from the org's data by `e2e_tests::okta` (a reading of
//! OKTA.md that shares no code with the connector):
//!
//! - a full walk emits every user (DEPROVISIONED included) exactly as the oracle says, every
//!   event valid OCSF 1.8.0 under the same checks as Entra's (`ocsf-check`);
//! - after profile changes, a suspension, a deactivation, a deletion, membership changes,
//!   user and group privilege grants and revokes and factor changes, the next (incremental)
//!   run emits every changed user complete, one deletion event per deleted user, and reads
//!   only those users (counted by the emulator's buckets);
//! - a run killed with SIGKILL mid-walk and run again loses nothing;
//! - on a compressed clock at Okta's default limits, alone or with a noisy neighbour draining
//!   a bucket, the connector stays under its 50% share and under what is left, with no 429
//!   of its own making; the 429s of the concurrency cap are waited out until their Reset and
//!   the refused reads asked again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connector_host::{RunReport, TimeScale};
use e2e_tests::okta::{
    assert_views_equal, deletion_view, events_path, expected_deletion, is_deletion, oracle,
    read_events, runtime, tenant_run, tenant_run_at, views, wall_ms, TENANT,
};
use okta_emulator::{Bucket, DeleteOutcome, Emulator, OktaClock, OktaConfig, Org};
use serde_json::{json, Value};

/// Limits no run of these tests reaches: the mapping and the incremental tests are about
/// what is read and emitted, not pacing (the rate-limit tests below keep Okta's defaults).
fn unlimited() -> OktaConfig {
    let mut config = OktaConfig::default();
    for bucket in Bucket::ALL {
        config.rate_limits.insert(bucket, 1_000_000);
    }
    config
}

/// An emulator serving a generated org on a manual clock standing at the wall clock's time
/// (the connector's own clock and the `Date` header agree, give or take the test's length).
async fn start(seed: u64, users: usize, config: OktaConfig) -> (Emulator, OktaClock) {
    let clock = OktaClock::manual(wall_ms());
    let org = Org::generated(seed, users, clock.now_ms());
    let emulator = Emulator::start(org, config, clock.clone())
        .await
        .expect("the emulator starts");
    (emulator, clock)
}

/// The events of one run: those appended to the sink after the first `skip` lines.
fn new_events(dir: &std::path::Path, skip: usize) -> Vec<Value> {
    read_events(&events_path(dir)).split_off(skip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_walk_emits_every_user_as_the_oracle_reads_okta_md() {
    let (emulator, _clock) = start(21, 600, unlimited()).await;
    let want = emulator.with_org(oracle);
    // The generated org's hard cases are in the oracle, so the comparison covers them.
    assert!(want.values().any(|v| v["okta_status"] == "DEPROVISIONED"));
    assert!(want
        .values()
        .any(|v| v["groups"].as_array().unwrap().len() >= 300));
    assert!(want.values().any(|v| v["type_id"] == 2));
    assert!(want.values().any(|v| v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "Helpdesk Tier 2 (custom)")));
    assert!(want.values().any(|v| v["has_mfa"] == true));
    assert!(want
        .values()
        .any(|v| v["has_mfa"] == false && !v["mfa_methods"].as_array().unwrap().is_empty()));
    let org_id = emulator.with_org(|o| o.org_id.clone());

    let rt = runtime().await;
    let dir = tempfile::tempdir().unwrap();
    let report = rt
        .run(&tenant_run(&emulator, dir.path(), &[]))
        .await
        .expect("the walk succeeds");
    let events = read_events(&events_path(dir.path()));
    ocsf_check::assert_all_valid(&events);
    for e in &events {
        assert_eq!(e["metadata"]["tenant_uid"], org_id.as_str());
        assert_eq!(
            e["metadata"]["product"],
            json!({"name": "Okta", "vendor_name": "Okta"})
        );
    }
    assert!(
        !events.iter().any(is_deletion),
        "a walk reports no deletions"
    );
    assert_views_equal(&views(&events), &want);
    assert!(report.full_sync, "the first run is a walk");
    assert_eq!(report.events_written as usize, want.len());
    assert_eq!(
        report.items_partial, 0,
        "every scope was granted: {report:?}"
    );
    assert_eq!(emulator.stats().rate_limited, 0);
}

/// Picks distinct users of the org for the incremental test's changes.
struct Picker {
    used: BTreeSet<String>,
}

impl Picker {
    fn pick(&mut self, org: &Org, what: &str, ok: impl Fn(&Org, &str) -> bool) -> String {
        let id = org
            .users()
            // Not the user in every group: its roles change with any group's.
            .filter(|u| org.groups_of(&u.id).len() < 100)
            .map(|u| u.id.clone())
            .find(|id| !self.used.contains(id) && ok(org, id))
            .unwrap_or_else(|| panic!("the generated org has a user who {what}"));
        self.used.insert(id.clone());
        id
    }
}

fn active(org: &Org, id: &str) -> bool {
    org.user(id).is_some_and(|u| u.status == "ACTIVE")
}

fn plain(org: &Org, id: &str) -> bool {
    active(org, id) && org.effective_roles(id).is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_emits_every_changed_user_complete_and_each_deletion_once() {
    const USERS: usize = 500;
    let (emulator, clock) = start(22, USERS, unlimited()).await;
    let rt = runtime().await;
    let dir = tempfile::tempdir().unwrap();
    let run = tenant_run(&emulator, dir.path(), &[]);
    let walk = rt.run(&run).await.expect("the walk succeeds");
    assert!(walk.full_sync);
    let walked = read_events(&events_path(dir.path())).len();
    assert_eq!(walked, USERS);

    // Some time later, the org changes: one kind of change per user (plus groups).
    clock.advance(Duration::from_secs(30));
    let mut p = Picker {
        used: BTreeSet::new(),
    };
    let (plan, group_grant, group_revoke) = emulator.with_org(|org| {
        let mut plan = BTreeMap::new();
        for what in [
            "profile",
            "suspend",
            "deactivate",
            "delete",
            "join",
            "grant",
            "enroll",
        ] {
            plan.insert(what, p.pick(org, what, plain));
        }
        plan.insert(
            "leave",
            p.pick(org, "is in an OKTA_GROUP", |o, id| {
                plain(o, id)
                    && o.groups_of(id).iter().any(|g| {
                        o.groups()
                            .any(|x| &x.id == g && x.group_type == "OKTA_GROUP")
                    })
            }),
        );
        plan.insert(
            "revoke",
            p.pick(
                org,
                "holds one role directly and none through groups",
                |o, id| {
                    active(o, id) && o.roles_of(id).len() == 1 && o.effective_roles(id).len() == 1
                },
            ),
        );
        plan.insert(
            "reset",
            p.pick(org, "has an ACTIVE strong factor", |o, id| {
                active(o, id)
                    && o.factors_of(id)
                        .iter()
                        .any(|f| f.status == "ACTIVE" && f.factor_type == "push")
            }),
        );
        // A small OKTA_GROUP without roles gets one; the group holding READ_ONLY_ADMIN loses it.
        let group_grant = org
            .groups()
            .filter(|g| g.group_type == "OKTA_GROUP" && org.roles_of_group(&g.id).is_empty())
            .filter(|g| (2..6).contains(&g.members.len()))
            .map(|g| g.id.clone())
            .next()
            .expect("a small group without roles");
        let group_revoke = org
            .groups()
            .find_map(|g| {
                let held = org.roles_of_group(&g.id);
                let ra = held.iter().find(|r| r.role_type == "READ_ONLY_ADMIN")?;
                Some((g.id.clone(), ra.id.clone()))
            })
            .expect("the group holding READ_ONLY_ADMIN");
        (plan, group_grant, group_revoke)
    });
    let at = |what: &str| plan[what].as_str();
    emulator
        .update_profile(
            at("profile"),
            json!({"title": "Principal Engineer", "city": "Genève"}),
        )
        .unwrap();
    emulator.suspend(at("suspend")).unwrap();
    emulator.deactivate(at("deactivate")).unwrap();
    // Okta deletes in two steps: the first DELETE deactivates, the second deletes.
    assert_eq!(
        emulator.delete_user(at("delete")),
        Ok(DeleteOutcome::Deactivated)
    );
    clock.advance(Duration::from_secs(1));
    let deleted_login = emulator.with_org(|o| o.user(at("delete")).unwrap().login().to_owned());
    assert_eq!(
        emulator.delete_user(at("delete")),
        Ok(DeleteOutcome::Deleted)
    );
    let deleted_at = clock.now_ms();
    let join_group = emulator.with_org(|o| {
        let mine = o.groups_of(at("join"));
        o.groups()
            .find(|g| {
                g.group_type == "OKTA_GROUP"
                    && !mine.contains(&g.id)
                    && o.roles_of_group(&g.id).is_empty()
            })
            .map(|g| g.id.clone())
            .unwrap()
    });
    emulator.add_member(at("join"), &join_group).unwrap();
    let leave_group = emulator.with_org(|o| {
        o.groups_of(at("leave"))
            .into_iter()
            .find(|g| {
                o.groups()
                    .any(|x| &x.id == g && x.group_type == "OKTA_GROUP")
            })
            .unwrap()
    });
    emulator.remove_member(at("leave"), &leave_group).unwrap();
    emulator
        .grant_user_role(at("grant"), "REPORT_ADMIN")
        .unwrap();
    let assignment = emulator.with_org(|o| o.roles_of(at("revoke"))[0].id.clone());
    emulator
        .revoke_user_role(at("revoke"), &assignment)
        .unwrap();
    emulator
        .grant_group_role(&group_grant, "HELP_DESK_ADMIN")
        .unwrap();
    emulator
        .revoke_group_role(&group_revoke.0, &group_revoke.1)
        .unwrap();
    emulator.enroll_factor(at("enroll"), "webauthn").unwrap();
    let factor = emulator.with_org(|o| {
        o.factors_of(at("reset"))
            .into_iter()
            .find(|f| f.status == "ACTIVE" && f.factor_type == "push")
            .unwrap()
            .id
    });
    emulator.reset_factor(at("reset"), &factor).unwrap();
    // Past the search index's lag (1 s), so the changed users are searchable.
    clock.advance(Duration::from_secs(5));

    // Who changed: the users named above, and every member of the two groups whose roles
    // changed (user 0, in every group, among them).
    let (want, changed): (BTreeMap<String, Value>, BTreeSet<String>) = emulator.with_org(|o| {
        let mut changed: BTreeSet<String> = plan
            .iter()
            .filter(|(k, _)| **k != "delete")
            .map(|(_, id)| id.clone())
            .collect();
        for g in o.groups() {
            if g.id == group_grant || g.id == group_revoke.0 {
                changed.extend(g.members.iter().cloned());
            }
        }
        let all = oracle(o);
        let want = all
            .into_iter()
            .filter(|(k, _)| changed.contains(k))
            .collect();
        (want, changed)
    });
    // The changes are real: the oracle's view of each differs from what the walk emitted.
    let before = views(&read_events(&events_path(dir.path())));
    for id in &changed {
        assert_ne!(before.get(id), want.get(id), "{id} changed");
    }

    emulator.reset_stats();
    let report = rt.run(&run).await.expect("the incremental run succeeds");
    let events = new_events(dir.path(), walked);
    ocsf_check::assert_all_valid(&events);
    assert!(
        !report.full_sync,
        "a run after a walk is incremental: {report:?}"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let deletions: Vec<Value> = events
        .iter()
        .filter(|e| is_deletion(e))
        .map(deletion_view)
        .collect();
    assert_eq!(
        deletions,
        vec![expected_deletion(at("delete"), &deleted_login, deleted_at)],
        "one deletion event for the deleted user, and only for it"
    );
    assert_views_equal(&views(&events), &want);

    // Only the changed users were read: each by id once (the deleted one's 404 included),
    // their groups, factors and roles; never the whole org again.
    let stats = emulator.stats();
    let served = |b: Bucket| stats.served.get(&b).copied().unwrap_or(0);
    let touched = changed.len() as u64 + 1;
    println!(
        "incremental run: {} changed + 1 deleted of {USERS}; served {:?}",
        changed.len(),
        stats.served
    );
    assert!(
        served(Bucket::UserById) <= touched,
        "{} users read by id for {touched} changed or deleted",
        served(Bucket::UserById)
    );
    assert!(
        served(Bucket::UsersList) <= 2,
        "the users list was read {} times: only the lastUpdated search",
        served(Bucket::UsersList)
    );
    assert!(
        served(Bucket::OtherApi) <= 4 * touched + 10,
        "{} other reads for {touched} users: per-user reads of the changed ones only",
        served(Bucket::OtherApi)
    );
    assert_eq!(stats.rate_limited, 0);

    // Nothing changed since: the next run emits nothing.
    clock.advance(Duration::from_secs(60));
    let total = read_events(&events_path(dir.path())).len();
    let idle = rt.run(&run).await.expect("an idle run succeeds");
    assert!(!idle.full_sync);
    assert_eq!(
        new_events(dir.path(), total),
        Vec::<Value>::new(),
        "an idle run emits nothing"
    );
}

/// A scaled clock for the emulator and the host's time scale for the run, both from one
/// origin: the emulator's windows, `X-Rate-Limit-Reset` and `Date` are in the same
/// compressed time as the guest's clock and sleeps.
fn scaled(k: u32) -> (OktaClock, TimeScale) {
    let origin = Instant::now();
    let origin_wall = SystemTime::now();
    let start_ms = origin_wall.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    (
        OktaClock::scaled_from(start_ms, k, origin),
        TimeScale::anchored(k, origin, origin_wall).expect("a factor of 1 or more"),
    )
}

/// One walk of a fresh org on a compressed clock.
struct ScaledWalk {
    report: RunReport,
    emulator: Emulator,
    events: Vec<Value>,
    /// Real time of the run.
    real: Duration,
    /// The guest's sleeps (its waits), in real time: the host counts them.
    slept: Duration,
}

async fn scaled_walk(
    users: usize,
    k: u32,
    config: OktaConfig,
    before: impl FnOnce(&Emulator),
) -> ScaledWalk {
    let (clock, scale) = scaled(k);
    let org = Org::generated(23, users, clock.now_ms());
    let emulator = Emulator::start(org, config, clock)
        .await
        .expect("the emulator starts");
    before(&emulator);
    let rt = runtime().await;
    let dir = tempfile::tempdir().unwrap();
    let run = tenant_run(&emulator, dir.path(), &[]).with_time_scale(scale);
    let started = Instant::now();
    // The run's figures, taken while it runs and read after it ended.
    let watch = async {
        loop {
            if let Some(figures) = rt.live_run(TENANT) {
                return figures;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let (report, figures) = tokio::join!(rt.run(&run), watch);
    let report = report.expect("the paced walk succeeds");
    let real = started.elapsed();
    let events = read_events(&events_path(dir.path()));
    ScaledWalk {
        report,
        emulator,
        events,
        real,
        slept: figures.slept(),
    }
}

/// A walk at Okta's default limits on a clock 30 times faster (a 60 s window in 2 s), with
/// a neighbour spending `noisy` of the "other /api/v1" bucket (members, factors, roles:
/// 1,200 a minute) in every window: no 429 of the connector's making, every user as the
/// oracle says, and the walk needed more than one window of what it could take.
async fn paced_beside(users: usize, noisy: u32) {
    const K: u32 = 30;
    let w = scaled_walk(users, K, OktaConfig::default(), |e| {
        if noisy > 0 {
            // This window's part, then every later window's.
            e.consume(Bucket::OtherApi, noisy);
            e.set_noisy_neighbour(Bucket::OtherApi, Some(noisy));
        }
    })
    .await;
    let stats = w.emulator.stats();
    println!(
        "k = {K}, neighbour {noisy}: {users} users in {:?} real ({:?} virtual, {:?} of it waiting); served {:?}; 429s {:?}",
        w.real,
        w.real * K,
        w.slept * K,
        stats.served,
        stats.rate_limited_by_client
    );
    // The emulator answers 429 to any request past the client's share (50%) or past what
    // the neighbour left of the bucket (its headers report the org-wide bucket, as Okta's
    // do, so the share is the connector's own count): none means the connector stayed under
    // both in every window.
    assert_eq!(
        (stats.rate_limited, stats.concurrency_limited),
        (0, 0),
        "429s of the connector's making: {:?}",
        stats.rate_limited_by_client
    );
    assert_eq!(w.report.http_status.get(&429), None, "{:?}", w.report);
    let room = (1_200 - noisy).min(600);
    let other = stats.served[&Bucket::OtherApi];
    assert!(
        other > u64::from(room),
        "the walk needed more than one window of the {room} it could take ({other} requests)"
    );
    assert!(
        w.slept > Duration::ZERO,
        "the connector waited for windows to turn"
    );
    assert_eq!(w.events.len(), users);
    assert_views_equal(&views(&w.events), &w.emulator.with_org(oracle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_noisy_neighbour_the_walk_stays_under_what_is_left_without_a_429() {
    // The neighbour spends 1,000 of the 1,200 a minute: the org has 200 left, far less than
    // the connector's 50% share (600). The walk needs ~920 of them.
    paced_beside(600, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_the_walk_stays_under_its_50_percent_share_without_a_429() {
    // Nobody else: the headers say the bucket has room (1,200 a minute), but the token may
    // use 600 of them; the walk needs ~1,220.
    paced_beside(900, 0).await;
}

/// A walk of 300 users while Okta's cap on requests in flight is 2 and the connector sends up
/// to 10 at once (its default `max_concurrency`): the excess is answered 429 with a Reset
/// about a second ahead ("only a suggested value"), to be waited out, then asked again.
async fn capped_walk() -> ScaledWalk {
    const K: u32 = 20;
    let config = OktaConfig {
        concurrency_limit: 2,
        ..unlimited()
    };
    let w = scaled_walk(300, K, config, |_| {}).await;
    let stats = w.emulator.stats();
    println!(
        "k = {K}: 300 users in {:?} real, {:?} virtual waiting; {} concurrency 429s; host saw {:?}",
        w.real,
        w.slept * K,
        stats.concurrency_limited,
        w.report.http_status
    );
    assert!(
        stats.concurrency_limited > 0,
        "the connector's parallel reads met the cap"
    );
    w
}

// Four worker threads: the emulator answers on the test's runtime, and with two it could
// never have more than two requests in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_of_the_concurrency_cap_is_asked_again_and_the_walk_completes() {
    let w = capped_walk().await;
    let stats = w.emulator.stats();
    assert_eq!(stats.rate_limited, 0, "no bucket was spent");
    assert_eq!(
        w.report.http_status.get(&429).copied(),
        Some(stats.concurrency_limited),
        "the host saw every concurrency 429"
    );
    assert_eq!(w.events.len(), 300, "every refused read was asked again");
    assert_views_equal(&views(&w.events), &w.emulator.with_org(oracle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_of_the_concurrency_cap_is_waited_out_until_its_reset() {
    const K: u32 = 20;
    let w = capped_walk().await;
    let refused = w.emulator.stats().concurrency_limited;
    // Each wait lasts until the 429's Reset (at most 1 s ahead, plus up to 1 s of jitter),
    // not until the bucket's minute window ends: the buckets were never short. At most one
    // wait per refused request, in virtual time.
    let waited = w.slept * K;
    let bound = Duration::from_secs(3) * refused as u32;
    assert!(
        waited <= bound,
        "{waited:?} waited for {refused} concurrency 429s: more than each one's Reset"
    );
}

/// The environment variable that makes [`okta_child_run`] run: `<org url>|<run folder>`.
const CHILD_ENV: &str = "OKTA_E2E_CHILD";

/// Users a page in the killed walks: the most a kill may deliver twice.
const KILL_PAGE: usize = 50;

/// The process the SIGKILL test kills: one run of the real host (the library `Runtime`, the
/// same the `connector-host run` command drives) against the parent's emulator, with a SQLite
/// checkpoint file and a JSONL sink in the run folder. Not a test of its own: it does nothing
/// unless the parent sets [`CHILD_ENV`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of sigkill_mid_walk_loses_nothing (run by it with OKTA_E2E_CHILD)"]
async fn okta_child_run() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        println!("{CHILD_ENV} is not set: nothing to run (this is the SIGKILL test's child)");
        return;
    };
    let (url, dir) = spec.split_once('|').expect("<org url>|<run folder>");
    let page = KILL_PAGE.to_string();
    let run = tenant_run_at(
        url,
        std::path::Path::new(dir),
        &[("page_size", page.as_str())],
    );
    runtime()
        .await
        .run(&run)
        .await
        .expect("the child's run succeeds");
}

/// Starts the child run and SIGKILLs it once `ready` says so (polled every few ms).
async fn kill_when(
    emulator: &Emulator,
    dir: &std::path::Path,
    ready: impl Fn(&Emulator, usize) -> bool,
) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new(exe)
        .args(["okta_child_run", "--exact", "--ignored", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}|{}", emulator.base_url(), dir.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the child starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the child's run ended ({status}) before the kill point: {err}");
        }
        if ready(emulator, whole_lines(&events_path(dir))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child never reached the kill point"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL, not finished");
}

/// Whole lines of a sink file (a kill may tear the last one; the next run repairs it).
fn whole_lines(path: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count()
}

/// The connector's cursor as the killed run left it (`okta/cursor`, JSON with its format).
fn stored_cursor(dir: &std::path::Path) -> Option<Value> {
    let store = connector_host::SqliteCheckpointStore::open(&dir.join("state.sqlite")).ok()?;
    let (bytes, _) = store
        .get_blocking(&format!("{TENANT}/okta-users"), "okta/cursor")
        .ok()??;
    serde_json::from_slice(&bytes).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_walk_loses_nothing() {
    const USERS: usize = 1_500;
    let (emulator, _clock) = start(24, USERS, unlimited()).await;
    let want = emulator.with_org(oracle);
    let pages = USERS.div_ceil(KILL_PAGE) as u64;
    let users_pages = |e: &Emulator| {
        e.stats()
            .served
            .get(&Bucket::UsersList)
            .copied()
            .unwrap_or(0)
    };
    let served = |e: &Emulator, b: Bucket| e.stats().served.get(&b).copied().unwrap_or(0);
    // Kill points: in the walk's members stage (300 groups, before any event), and mid-way
    // through the users stage.
    type Ready = Box<dyn Fn(&Emulator, usize) -> bool>;
    let kills: [(&str, Ready); 2] = [
        (
            "among the group members",
            Box::new(move |e: &Emulator, lines| lines == 0 && served(e, Bucket::OtherApi) >= 150),
        ),
        (
            "mid-way through the users",
            Box::new(move |_: &Emulator, lines| lines >= USERS * 2 / 5),
        ),
    ];
    let rt = runtime().await;
    for (point, ready) in kills {
        let dir = tempfile::tempdir().unwrap();
        emulator.reset_stats();
        kill_when(&emulator, dir.path(), ready).await;
        let killed_pages = users_pages(&emulator);
        let before = whole_lines(&events_path(dir.path()));
        assert!(before < USERS, "killed {point}: mid-walk ({before} events)");
        let cursor = stored_cursor(dir.path()).expect("the walk committed its position");
        let stage = cursor["walk"]["stage"].as_str().unwrap_or("").to_owned();
        let items = cursor["walk"]["items"].as_u64().unwrap_or(0);
        println!("killed {point}: {before} events, {killed_pages} users pages, stage {stage}");
        emulator.reset_stats();
        let page = KILL_PAGE.to_string();
        let run = tenant_run(&emulator, dir.path(), &[("page_size", page.as_str())]);
        let report = rt.run(&run).await.expect("the rerun finishes the walk");
        assert!(
            report.full_sync,
            "killed {point}: the rerun finishes the walk"
        );
        let events = read_events(&events_path(dir.path()));
        ocsf_check::assert_all_valid(&events);
        // Every user delivered, each event as the oracle says; at most one page twice.
        let mut last: BTreeMap<String, Value> = BTreeMap::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for e in &events {
            let view = e2e_tests::okta::view_of_event(e);
            let uid = view["uid"].as_str().unwrap().to_owned();
            *counts.entry(uid.clone()).or_default() += 1;
            last.insert(uid, view);
        }
        assert_views_equal(&last, &want);
        let twice: usize = counts.values().map(|n| n - 1).sum();
        assert!(
            twice <= KILL_PAGE,
            "killed {point}: {twice} users delivered twice, more than a page ({KILL_PAGE})"
        );
        // The users list resumes at the page in flight: never read from the start again.
        let rerun_pages = users_pages(&emulator);
        assert!(
            killed_pages + rerun_pages <= pages + 1,
            "killed {point}: {killed_pages} + {rerun_pages} users pages for {pages}"
        );
        // No finished stage is read again (the walk's stages, in order: groups, members,
        // admins, users; okta/src/walk.rs). Past the groups, the groups list is not asked
        // again; in the users stage, the other /api/v1 reads are the factors of the users
        // not yet emitted (plus the page in flight), not members, roles or admins again.
        assert!(
            ["members", "admins", "users"].contains(&stage.as_str()),
            "killed {point}: in stage {stage}"
        );
        assert_eq!(
            served(&emulator, Bucket::Groups),
            0,
            "killed {point} (stage {stage}): the groups were finished, yet read again"
        );
        if stage == "users" {
            let left = USERS as u64 - items;
            assert!(
                served(&emulator, Bucket::OtherApi) <= left + KILL_PAGE as u64,
                "killed {point}: {} other reads for {left} users left",
                served(&emulator, Bucket::OtherApi)
            );
        }
    }
}
