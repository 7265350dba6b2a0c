//! `cargo bench -p connector-host --bench fleet`: what coordinating a fleet through
//! PostgreSQL costs, printed as tables (README.md, "Running a fleet", quotes them).
//!
//! Everything runs against the real test PostgreSQL (`bash scripts/test-postgres`; the URL
//! and password as in `host/tests/pg/mod.rs`, each case in a fresh database) and, for the
//! process cases, the real `connector-host serve` binary in fleet mode.
//!
//! 1. Coordination round trips per run through the [`Fleet`] API: claims (batched, as the
//!    serve loop claims up to its free capacity), renewals and releases for every tenant,
//!    divided by the runs ([`Fleet::round_trips`]; checkpoint reads and writes not counted).
//! 2. Claim throughput: tenants leased per second from 10,000 registered tenants, by 1 and
//!    4 concurrent handles (each its own connection pool), in batches of 1 and 64.
//! 3. Failover: a `serve` process holding a lease on a long run (Graph latency 2 s per
//!    request) is SIGKILLed; a second `serve`, polling, takes the tenant over. Seconds from
//!    the kill to the takeover (the lease row names the second host), against TTL + poll.
//! 4. One host against three: `serve` in once mode on 1,000 simulated tenants; wall time until
//!    every host exited, runs per host, and every statement the hosts sent per run, counted by
//!    PostgreSQL itself (`pg_stat_database.xact_commit`: checkpoint reads and writes included;
//!    the checkpoint writes, from the rows' versions, shown apart). On 2 cores three hosts
//!    measure the coordination overhead, not a speed-up.
//!
//! Options (after `--`), or `FLEET_BENCH_QUICK=1`: `--quick` (1,000 tenants for the claims,
//! 100 for one-vs-three, one failover trial) to check the bench itself.

#[path = "../tests/pg/mod.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use connector_host::fleet::{Fleet, LeaseOutcome};
use connector_host::serve::simulated_keys;
use pg::*;

/// What a once-mode release stores: due again in ten years.
const DONE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

struct Sizes {
    round_trip_runs: usize,
    claim_tenants: usize,
    failover_trials: usize,
    fleet_tenants: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("FLEET_BENCH_QUICK").is_ok_and(|v| v != "0");
    let sizes = if quick {
        Sizes {
            round_trip_runs: 100,
            claim_tenants: 1_000,
            failover_trials: 1,
            fleet_tenants: 100,
        }
    } else {
        Sizes {
            round_trip_runs: 1_000,
            claim_tenants: 10_000,
            failover_trials: 3,
            fleet_tenants: 1_000,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let work = tempfile::tempdir().expect("a temporary directory");
    // One compiled-component cache for every `serve` process: the first host compiles, the
    // others load (as the drill does).
    let cache = work.path().join("cache");
    rt.block_on(async {
        round_trips(sizes.round_trip_runs).await;
        claim_throughput(sizes.claim_tenants).await;
        failover(work.path(), &cache, sizes.failover_trials).await;
        one_vs_three(work.path(), &cache, sizes.fleet_tenants).await;
    });
}

async fn connect(url: &str, host: &str) -> Fleet {
    Fleet::connect(url, Some(&password()), host)
        .await
        .unwrap_or_else(|e| unreachable(e))
}

/// A plain driver connection to `url` (for PostgreSQL's own statistics).
async fn client(url: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().unwrap_or_else(|e| unreachable(e));
    config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| unreachable(e));
    tokio::spawn(connection);
    client
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bench-{i:05}")).collect()
}

async fn round_trips(runs: usize) {
    println!("\n## Coordination round trips per run (Fleet API, {runs} runs, 60 s leases)\n");
    println!("| claim batch | renewals per run | round trips per run |");
    println!("|---|---|---|");
    let ttl = Duration::from_secs(60);
    for (batch, renewals) in [(1, 0), (4, 0), (64, 0), (64, 1), (64, 3)] {
        let url = fresh_database(&format!("bench_rt_{batch}_{renewals}")).await;
        let fleet = connect(&url, "bench-host").await;
        fleet.register(&keys(runs)).await.expect("registers");
        let before = fleet.round_trips();
        let mut done = 0;
        loop {
            // The last, empty claim is counted too: the serve loop makes it as well.
            let leases = fleet.claim(batch, ttl).await.expect("claims");
            if leases.is_empty() {
                break;
            }
            for lease in &leases {
                for _ in 0..renewals {
                    assert!(fleet.renew(lease, ttl).await.expect("renews"), "lease held");
                }
                let released = fleet.release(lease, &LeaseOutcome::succeeded(DONE)).await;
                assert!(released.expect("releases"), "lease held at release");
                done += 1;
            }
        }
        assert_eq!(done, runs, "every tenant ran once");
        let per_run = (fleet.round_trips() - before) as f64 / runs as f64;
        println!("| {batch} | {renewals} | {per_run:.2} |");
    }
}

async fn claim_throughput(tenants: usize) {
    println!("\n## Claim throughput ({tenants} registered tenants, 60 s leases)\n");
    println!("| handles | claim batch | tenants claimed | seconds | tenants per second |");
    println!("|---|---|---|---|---|");
    let all = keys(tenants);
    // Batch 1 would take minutes for 10,000 tenants: each case stops after 20 s.
    let limit = Duration::from_secs(20);
    for (handles, batch) in [(1, 1), (4, 1), (1, 64), (4, 64)] {
        let url = fresh_database(&format!("bench_claim_{handles}_{batch}")).await;
        let mut fleets = Vec::new();
        for i in 0..handles {
            let fleet = connect(&url, &format!("claimer-{i}")).await;
            fleet.register(&all).await.expect("registers");
            fleets.push(fleet);
        }
        let start = Instant::now();
        let claimers = fleets.into_iter().map(|fleet| {
            tokio::spawn(async move {
                let mut claimed = 0;
                while start.elapsed() < limit {
                    let leases = fleet
                        .claim(batch, Duration::from_secs(60))
                        .await
                        .expect("claims");
                    if leases.is_empty() {
                        break;
                    }
                    claimed += leases.len();
                }
                claimed
            })
        });
        let mut claimed = 0;
        for counted in futures::future::join_all(claimers).await {
            claimed += counted.expect("a claimer");
        }
        let seconds = start.elapsed().as_secs_f64();
        // No tenant twice: the leases in the database are exactly the claims counted.
        let leased: i64 = client(&url)
            .await
            .query_one(
                "SELECT count(*) FROM fleet_tenants WHERE lease_host IS NOT NULL",
                &[],
            )
            .await
            .expect("counts")
            .get(0);
        assert_eq!(leased as usize, claimed, "each tenant claimed once");
        println!(
            "| {handles} | {batch} | {claimed} | {seconds:.2} | {:.0} |",
            claimed as f64 / seconds
        );
    }
}

/// A `connector-host serve` process, SIGKILLed when dropped (a bench that fails leaves no
/// host behind).
struct Host {
    child: Child,
    log: PathBuf,
}

impl Host {
    fn start(dir: &Path, cache: &Path, id: &str) -> Host {
        let log = dir.join(format!("{id}.log"));
        let child = spawn_serve(dir, cache, id, &log);
        Host { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the host says it serves (the component compiled or loaded).
    async fn started(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !self.log().contains("serving ") {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the host exited ({status}) before serving: {}", self.log());
            }
            assert!(Instant::now() < deadline, "no start: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn tenants_file(dir: &Path, url: &str, body: &str, ttl: u64, poll: f64) {
    std::fs::write(
        dir.join("tenants.toml"),
        format!(
            "{body}[fleet]\nurl = \"{url}\"\npassword = {{ env = \"FLEET_DB_PASSWORD\" }}\n\
             lease_ttl_secs = {ttl}\npoll_secs = {poll}\n"
        ),
    )
    .expect("writes tenants.toml");
}

async fn failover(work: &Path, cache: &Path, trials: usize) {
    const TTL: u64 = 5;
    const POLL: f64 = 0.5;
    println!("\n## Failover after SIGKILL (`serve` processes, lease TTL {TTL} s, poll {POLL} s, renewal every TTL/3)\n");
    println!(
        "| trial | lease left at the kill (s) | kill to takeover (s) | bound: TTL + poll (s) |"
    );
    println!("|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for trial in 1..=trials {
        let dir = work.join(format!("failover-{trial}"));
        std::fs::create_dir_all(&dir).expect("a directory");
        let url = fresh_database(&format!("bench_failover_{trial}")).await;
        let observer = connect(&url, "observer").await;
        // One tenant whose run lasts long: every Graph request takes 2 s.
        tenants_file(
            &dir,
            &url,
            "[serve]\nonce = true\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 1\n\
             [simulation]\ntenants = 1\nusers_per_tenant = 50\nlatency_ms = 2000\n",
            TTL,
            POLL,
        );
        let tenant = simulated_keys(1).remove(0);
        let mut a = Host::start(&dir, cache, "host-a");
        a.started().await;
        wait_holder(&observer, &tenant, "host-a", &a).await;
        let mut b = Host::start(&dir, cache, "host-b");
        b.started().await;
        let state = observer.state(&tenant).await.expect("reads").expect("row");
        assert_eq!(state.lease_host.as_deref(), Some("host-a"), "{}", a.log());
        a.kill();
        let killed = Instant::now();
        let left = state
            .lease_expires
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .unwrap_or_default()
            .as_secs_f64();
        wait_holder(&observer, &tenant, "host-b", &b).await;
        let takeover = killed.elapsed().as_secs_f64();
        worst = worst.max(takeover);
        b.kill();
        println!(
            "| {trial} | {left:.2} | {takeover:.2} | {:.1} |",
            TTL as f64 + POLL
        );
    }
    println!(
        "\nWorst kill-to-takeover: {worst:.2} s (target: TTL + 2 s = {} s).",
        TTL + 2
    );
}

/// Waits until `host` holds the lease on `tenant` (bounded).
async fn wait_holder(observer: &Fleet, tenant: &str, host: &str, process: &Host) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = observer.state(tenant).await.expect("reads the lease");
        if state.and_then(|s| s.lease_host).as_deref() == Some(host) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host} never held {tenant}: {}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn one_vs_three(work: &Path, cache: &Path, tenants: usize) {
    const USERS: usize = 50;
    const LATENCY_MS: u64 = 5;
    const CONCURRENT: usize = 16;
    println!(
        "\n## One host against three (`serve` once, {tenants} simulated tenants x {USERS} users, \
         Graph latency {LATENCY_MS} ms, {CONCURRENT} runs at once per host, 30 s leases, poll 0.2 s)\n"
    );
    println!("| hosts | wall (s) | runs (per host) | takeovers | tenants per second | statements per run, all | of which checkpoint writes | checkpoint keys per run |");
    println!("|---|---|---|---|---|---|---|---|");
    for hosts in [1, 3] {
        let dir = work.join(format!("fleet-{hosts}"));
        std::fs::create_dir_all(&dir).expect("a directory");
        let url = fresh_database(&format!("bench_fleet_{hosts}")).await;
        connect(&url, "observer").await;
        tenants_file(
            &dir,
            &url,
            &format!(
                "[serve]\nonce = true\nlisten = \"127.0.0.1:0\"\nmax_concurrent_runs = {CONCURRENT}\n\
                 [simulation]\ntenants = {tenants}\nusers_per_tenant = {USERS}\n\
                 latency_ms = {LATENCY_MS}\n"
            ),
            30,
            0.2,
        );
        let stats = client(&url).await;
        let xacts = async || -> i64 {
            stats
                .batch_execute("SELECT pg_stat_clear_snapshot()")
                .await
                .expect("clears");
            stats
                .query_one(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
                    &[],
                )
                .await
                .expect("reads the statistics")
                .get(0)
        };
        let before = xacts().await;
        let start = Instant::now();
        let mut running: Vec<Host> = (0..hosts)
            .map(|i| Host::start(&dir, cache, &format!("host-{i}")))
            .collect();
        for host in &mut running {
            let status = host.child.wait().expect("waits for the host");
            assert!(status.success(), "a host failed: {}", host.log());
        }
        let wall = start.elapsed().as_secs_f64();
        // The hosts' backends flush their statistics as they close; give it a moment.
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The statements this observer made meanwhile: the two snapshot reads.
        let statements = xacts().await - before - 2;
        let per_host = stats
            .query(
                "SELECT host, count(*) FROM fleet_runs GROUP BY host ORDER BY host",
                &[],
            )
            .await
            .expect("counts runs");
        let counts: Vec<i64> = per_host.iter().map(|r| r.get(1)).collect();
        let runs: i64 = counts.iter().sum();
        let row = stats
            .query_one(
                "SELECT (SELECT count(*) FROM fleet_runs WHERE outcome = 'expired'),
                        (SELECT count(*) FROM fleet_tenants WHERE last_outcome = 'succeeded'),
                        (SELECT coalesce(sum(version), 0)::bigint FROM checkpoints),
                        (SELECT count(*) FROM checkpoints)",
                &[],
            )
            .await
            .expect("reads the outcome");
        let (takeovers, succeeded, writes, keys): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(succeeded as usize, tenants, "every tenant ran to success");
        let split = counts
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        println!(
            "| {hosts} | {wall:.1} | {runs} ({split}) | {takeovers} | {:.0} | {:.1} | {:.1} | {:.1} |",
            tenants as f64 / wall,
            statements as f64 / runs as f64,
            writes as f64 / runs as f64,
            keys as f64 / runs as f64,
        );
    }
}
