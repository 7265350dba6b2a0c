//! The fleet drill: three `connector-host serve` processes, one PostgreSQL database, 300
//! simulated tenants of 50 users, `once` per tenant. One host is killed (SIGKILL) mid-run,
//! another is paused (SIGSTOP) past its leases and resumed (SIGCONT). Every tenant
//! completes; no tenant ever ran on two hosts at once (the run history says so); no cursor
//! moved backwards; the paused host's stale writes were refused by their fencing tokens;
//! every user was delivered, and at most one page per interrupted run twice.

mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use connector_host::fleet::Fleet;
use pg::*;

const TENANTS: usize = 300;
const USERS: usize = 50;
/// Long enough for a renewal (every third of it) to get through on a loaded 2-core machine
/// running three debug hosts.
const TTL_SECS: u64 = 6;

fn start_host(dir: &Path, id: &str) -> Child {
    spawn_serve(dir, &dir.join("cache"), id, &dir.join(format!("{id}.log")))
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// Waits (bounded) until `check` holds, sampling the cursors meanwhile.
async fn wait_for(
    what: &str,
    limit: Duration,
    samples: &mut Sampler,
    mut check: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        samples.sample().await;
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every delta cursor's round start, sampled over the drill: a cursor written by a stale
/// host would move it back.
struct Sampler {
    client: tokio_postgres::Client,
    seen: BTreeMap<String, i64>,
    backwards: Vec<String>,
}

impl Sampler {
    async fn sample(&mut self) {
        let rows = self
            .client
            .query(
                "SELECT namespace, value FROM checkpoints WHERE key = 'users/delta-cursor'",
                &[],
            )
            .await
            .expect("reads the cursors");
        for row in rows {
            let namespace: String = row.get(0);
            let value: Vec<u8> = row.get(1);
            let cursor: serde_json::Value = serde_json::from_slice(&value).expect("JSON cursor");
            let Some(round) = cursor["round_started_ms"].as_i64() else {
                continue;
            };
            if let Some(before) = self.seen.insert(namespace.clone(), round) {
                if round < before {
                    self.backwards
                        .push(format!("{namespace}: {before} -> {round}"));
                }
            }
        }
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str, host: &str) -> i64 {
    client
        .query_one(sql, &[&host])
        .await
        .expect("counts")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_drill_kill_and_pause_lose_nothing_and_never_run_a_tenant_twice() {
    let url = fresh_database("fleet_drill").await;
    // The schema first (each host migrates too; applied once), so the drill can sample it.
    let fleet = Fleet::connect(&url, Some(&password()), "observer")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tenants.toml"),
        format!(
            "[serve]\nonce = true\nlisten = \"127.0.0.1:0\"\nmax_concurrent_runs = 4\n\
             shutdown_grace_secs = 5\n[simulation]\ntenants = {TENANTS}\n\
             users_per_tenant = {USERS}\nlatency_ms = 15\n[fleet]\nurl = \"{url}\"\n\
             password = {{ env = \"FLEET_DB_PASSWORD\" }}\nlease_ttl_secs = {TTL_SECS}\n\
             poll_secs = 0.2\n"
        ),
    )
    .unwrap();
    // host-a first: it compiles the component into the cache the other two then load
    // (three compiles at once would starve the first host's lease renewals).
    let mut hosts: BTreeMap<&str, Child> = BTreeMap::new();
    for id in ["host-a", "host-b", "host-c"] {
        hosts.insert(id, start_host(dir.path(), id));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !std::fs::read_to_string(dir.path().join(format!("{id}.log")))
            .unwrap_or_default()
            .contains("serving 300 tenants once")
        {
            assert!(Instant::now() < deadline, "{id} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (client, connection) = {
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
        config
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| unreachable(e))
    };
    tokio::spawn(connection);
    let mut samples = Sampler {
        client,
        seen: BTreeMap::new(),
        backwards: Vec::new(),
    };
    let finished_runs = "SELECT count(*) FROM fleet_runs WHERE host = $1 AND ended IS NOT NULL";
    let leases_held =
        "SELECT count(*) FROM fleet_tenants WHERE lease_host = $1 AND lease_expires > now()";

    // SIGKILL host-a in the middle of runs: after some finished, while it holds leases.
    let limit = Duration::from_secs(240);
    wait_for(
        "host-a to finish runs and hold leases",
        limit,
        &mut samples,
        async || {
            let done = count(&samples_client(&url).await, finished_runs, "host-a").await;
            let held = count(&samples_client(&url).await, leases_held, "host-a").await;
            done >= 3 && held >= 1
        },
    )
    .await;
    let killed = count(&samples_client(&url).await, leases_held, "host-a").await;
    signal(&hosts["host-a"], "-KILL");
    let _ = hosts.get_mut("host-a").unwrap().wait();

    // SIGSTOP host-b while it holds leases, past their TTL, then SIGCONT.
    wait_for("host-b to hold leases", limit, &mut samples, async || {
        count(&samples_client(&url).await, leases_held, "host-b").await >= 1
    })
    .await;
    let paused = count(&samples_client(&url).await, leases_held, "host-b").await;
    signal(&hosts["host-b"], "-STOP");
    let stopped_at = Instant::now();
    while stopped_at.elapsed() < Duration::from_secs(2 * TTL_SECS + 3) {
        samples.sample().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal(&hosts["host-b"], "-CONT");

    // host-b and host-c finish every tenant and exit.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut exits = BTreeMap::new();
    for id in ["host-b", "host-c"] {
        loop {
            samples.sample().await;
            if let Some(status) = hosts.get_mut(id).unwrap().try_wait().unwrap() {
                exits.insert(id, status);
                break;
            }
            if Instant::now() > deadline {
                for child in hosts.values_mut() {
                    let _ = child.kill();
                }
                panic!(
                    "{id} did not finish; its log:\n{}",
                    std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    samples.sample().await;
    let log = |id: &str| std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap();
    assert!(exits["host-c"].success(), "host-c: {}", log("host-c"));

    // Every tenant completed once, successfully.
    let keys = connector_host::serve::simulated_keys(TENANTS);
    for key in &keys {
        let state = fleet.state(key).await.unwrap().expect("registered");
        assert_eq!(
            state.last_outcome.as_deref(),
            Some("succeeded"),
            "{key}: {state:?}"
        );
    }
    // Never two hosts at once.
    let overlaps = fleet.overlapping_runs().await.unwrap();
    assert!(overlaps.is_empty(), "overlapping runs: {overlaps:?}");
    // No cursor moved backwards.
    assert!(samples.backwards.is_empty(), "{:?}", samples.backwards);
    assert_eq!(
        samples.seen.len(),
        TENANTS,
        "every tenant has a delta cursor"
    );
    // Takeovers happened (host-a's leases, host-b's), and host-b's stale writes were refused.
    let takeovers: usize = ["host-b", "host-c"]
        .iter()
        .map(|id| log(id).matches("took over a tenant").count())
        .sum();
    assert!(
        takeovers as i64 >= killed.min(1) + paused.min(1),
        "takeovers {takeovers}, killed holding {killed}, paused holding {paused}"
    );
    let b = log("host-b");
    assert!(
        b.contains("checkpoint write refused: lease token") && b.contains("is stale"),
        "host-b's stale writes were fenced: {b}"
    );
    // Every user delivered; at most one page (here: the tenant's 50 users) twice per
    // interrupted run.
    let mut duplicates = 0;
    for key in &keys {
        let path = dir.path().join("sim/events").join(format!("{key}.jsonl"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let uids: Vec<String> = text
            .lines()
            .map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).expect("whole lines");
                event["user"]["uid"].as_str().unwrap().to_string()
            })
            .collect();
        let distinct: BTreeSet<&String> = uids.iter().collect();
        assert_eq!(distinct.len(), USERS, "{key}: every user delivered");
        assert!(uids.len() <= 2 * USERS, "{key}: at most one page twice");
        duplicates += uids.len() - USERS;
    }
    assert!(
        duplicates <= (killed + paused) as usize * USERS,
        "{duplicates} duplicate events for {killed} killed and {paused} paused runs"
    );
}

/// A short-lived connection for one count.
async fn samples_client(url: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| unreachable(e));
    tokio::spawn(connection);
    client
}

/// A fleet server refuses `run_now`: a run outside a lease could overlap another host's run
/// of the same tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_run_now_is_refused_in_fleet_mode() {
    use connector_host::serve::{Refused, Schedule, ServeOptions, Server, TenantEntry};
    use connector_host::{Runtime, RuntimeLimits};
    let url = fresh_database("fleet_run_now").await;
    let fleet = Fleet::connect(&url, Some(&password()), "host-x")
        .await
        .unwrap();
    let runtime = Runtime::new(builtin_connectors::ENTRA_ID, RuntimeLimits::default())
        .await
        .unwrap();
    let server = Server::with_fleet(
        std::sync::Arc::new(runtime),
        ServeOptions::default(),
        fleet,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    server
        .register(TenantEntry {
            key: "t1".into(),
            make_run: Box::new(|| panic!("a fleet server's run_now builds no run")),
            schedule: Schedule::default(),
        })
        .unwrap();
    let refused = server.run_now("t1").await.expect_err("refused");
    assert_eq!(
        refused,
        Refused::LeasedByFleet {
            tenant: "t1".into()
        }
    );
    assert!(refused.to_string().contains("next_due"), "{refused}");
}

/// Issue 19, point 3: a takeover by another host resumes from the stored links. host-a
/// syncs three simulated tenants once (full rounds; their cursors in PostgreSQL name the
/// simulation's stable Graph origin). Then each tenant is made due again under an expired,
/// unreleased lease of host-a, and host-b — another process, its own emulator on other
/// ports — takes them over: every run follows the stored delta links (no "cannot follow"
/// resync warning), and no user is delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_of_simulated_tenants_resumes_from_the_stored_links() {
    let url = fresh_database("fleet_sim_takeover").await;
    let fleet = Fleet::connect(&url, Some(&password()), "observer")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tenants.toml"),
        format!(
            "[serve]\nonce = true\nlisten = \"127.0.0.1:0\"\n[simulation]\ntenants = 3\n\
             users_per_tenant = 20\n[fleet]\nurl = \"{url}\"\n\
             password = {{ env = \"FLEET_DB_PASSWORD\" }}\nlease_ttl_secs = 30\npoll_secs = 0.1\n"
        ),
    )
    .unwrap();
    let log = |id: &str| std::fs::read_to_string(dir.path().join(format!("{id}.log"))).unwrap();
    let status = start_host(dir.path(), "host-a").wait().unwrap();
    assert!(status.success(), "host-a: {}", log("host-a"));

    // host-a "died" holding every lease: due now, leased to it, expired.
    let client = samples_client(&url).await;
    client
        .execute(
            "UPDATE fleet_tenants SET next_due = now(), lease_host = 'host-a',
                 lease_token = nextval('fleet_lease_token'),
                 lease_expires = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let status = start_host(dir.path(), "host-b").wait().unwrap();
    let b = log("host-b");
    assert!(status.success(), "host-b: {b}");
    assert_eq!(b.matches("took over a tenant").count(), 3, "{b}");
    assert!(
        !b.contains("cannot follow") && !b.contains("full sync"),
        "the takeover resumed from the stored links: {b}"
    );
    for key in connector_host::serve::simulated_keys(3) {
        let state = fleet.state(&key).await.unwrap().expect("registered");
        assert_eq!(state.last_outcome.as_deref(), Some("succeeded"), "{key}");
        let path = dir.path().join("sim/events").join(format!("{key}.jsonl"));
        let uids: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).expect("whole lines");
                event["user"]["uid"].as_str().unwrap().to_string()
            })
            .collect();
        let distinct: BTreeSet<&String> = uids.iter().collect();
        assert_eq!(
            (uids.len(), distinct.len()),
            (20, 20),
            "{key}: every user once"
        );
    }
}

/// Issue 21, point 6, in fleet mode: one fleet host leases an Entra ID tenant (the Graph
/// emulator) and an Okta tenant (the Okta emulator, an API token as `Authorization: SSWS`)
/// from one database; each runs its own connector into its own sink, and both tenants'
/// cursors live in the fleet's `checkpoints` table under their own namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fleet_host_leases_an_entra_and_an_okta_tenant_each_into_its_sink() {
    use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};
    use connector_host::simulation::okta_emulator::{
        Bucket, Emulator as OktaEmulator, OktaClock, OktaConfig, Org, DEFAULT_API_TOKEN,
    };
    let url = fresh_database("fleet_two_connectors").await;
    let fleet = Fleet::connect(&url, Some(&password()), "observer")
        .await
        .unwrap();
    let graph = Emulator::start(Tenant::generated(4, 9), EmulatorConfig::default())
        .await
        .unwrap();
    let clock = OktaClock::system();
    // Wide buckets: this test is about two connectors in one fleet, not Okta's pacing.
    let mut config = OktaConfig::default();
    for bucket in Bucket::ALL {
        config.rate_limits.insert(bucket, 100_000);
    }
    let okta = OktaEmulator::start(Org::generated(22, 25, clock.now_ms()), config, clock)
        .await
        .unwrap();
    let okta_users = okta.with_org(|o| o.users().count());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tenants.d")).unwrap();
    for (name, value) in [
        ("entra.secret", graph.config().client_secret),
        ("okta.token", DEFAULT_API_TOKEN.to_string()),
    ] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(d.join(name), format!("{value}\n")).unwrap();
        std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = graph.config();
    std::fs::write(
        d.join("tenants.d/contoso.toml"),
        format!(
            "[tenant]\nkey = \"contoso\"\n\n[config]\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
             login_endpoint = \"{}\"\ngraph_endpoint = \"{}\"\n\n[secrets.client_secret]\n\
             file = \"../entra.secret\"\n\n[egress]\nallow_loopback_http = true\n\n\
             [state]\ncheckpoint_db = \"../ignored-in-fleet-mode.sqlite\"\n\n\
             [sink]\nkind = \"jsonl\"\npath = \"../contoso.jsonl\"\n",
            cfg.tenant_id,
            cfg.client_id,
            graph.login_endpoint(),
            graph.graph_endpoint()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("tenants.d/acme.toml"),
        format!(
            "[tenant]\nkey = \"acme\"\nconnector = \"okta\"\n\n[config]\norg_url = \"{}\"\n\n\
             [secrets.okta_token]\nfile = \"../okta.token\"\nheader = \"Authorization\"\nprefix = \"SSWS\"\n\n\
             [egress]\nallow_loopback_http = true\n\n[state]\ncheckpoint_db = \"../ignored-in-fleet-mode.sqlite\"\n\n\
             [sink]\nkind = \"jsonl\"\npath = \"../acme.jsonl\"\n",
            okta.base_url()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("tenants.toml"),
        format!(
            "include = [\"tenants.d/*.toml\"]\n\n[serve]\nonce = true\nlisten = \"127.0.0.1:0\"\n\n\
             [schedule]\njitter_secs = 0\n\n[fleet]\nurl = \"{url}\"\n\
             password = {{ env = \"FLEET_DB_PASSWORD\" }}\npoll_secs = 0.1\n"
        ),
    )
    .unwrap();
    let status = start_host(d, "host-a").wait().unwrap();
    let log = std::fs::read_to_string(d.join("host-a.log")).unwrap();
    assert!(status.success(), "host-a: {log}");
    for (key, file, count, logger) in [
        ("contoso", "contoso.jsonl", 9, "entra-id-users"),
        ("acme", "acme.jsonl", okta_users, "okta-users"),
    ] {
        let state = fleet.state(key).await.unwrap().expect("registered");
        assert_eq!(state.last_outcome.as_deref(), Some("succeeded"), "{key}");
        let events: Vec<serde_json::Value> = std::fs::read_to_string(d.join(file))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), count, "{key}");
        ocsf_check::assert_all_valid(&events);
        assert!(
            events
                .iter()
                .all(|e| e["metadata"]["loggers"][0]["name"] == logger),
            "{key}"
        );
    }
    let client = samples_client(&url).await;
    let rows = client
        .query(
            "SELECT DISTINCT split_part(namespace, '/', 1) FROM checkpoints ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let namespaces: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(namespaces, ["acme", "contoso"]);
    assert!(!log.contains(DEFAULT_API_TOKEN), "{log}");
    okta.shutdown().await;
}
