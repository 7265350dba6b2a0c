//! `cargo bench -p e2e-tests --bench mapping`: OCSF events per second from the Entra
//! connector's mapping compiled into a WebAssembly component and run by the host, against
//! the same code built natively; printed as a table with the ratio.
//!
//! Both sides map the same 1,000 generated Graph users with the same enrichment and
//! serialise each event to JSON; no I/O is measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_host::doors::http::secrets::SecretSet;
use connector_host::doors::http::EgressPolicy;
use connector_host::{Runtime, RuntimeLimits, SqliteCheckpointStore, StdoutSink, TenantRun};
use entra_connector::ocsf::{map_user, MapContext};
use graph_emulator::Tenant;

const COMPONENT: &[u8] = include_bytes!(env!("MAPPING_BENCH_WASM"));
const ROUNDS: u64 = 50;

include!("../mapbench/src/enrichment.rs");

fn main() {
    let users: Vec<serde_json::Value> = Tenant::generated(42, 1000)
        .users()
        .iter()
        .map(|u| u.user.clone())
        .collect();
    let events = ROUNDS * users.len() as u64;

    // Native.
    let ctx = MapContext {
        tenant_uid: "bench-tenant",
        collected_at_ms: 1_750_000_000_000,
        connector_version: "0.1.0",
    };
    let e = bench_enrichment();
    let start = Instant::now();
    let mut native_bytes = 0u64;
    for _ in 0..ROUNDS {
        for u in &users {
            native_bytes += map_user(u, &e, &ctx)
                .map(|v| v.to_string().len() as u64)
                .unwrap_or(0);
        }
    }
    let native = start.elapsed();

    // Component, through the real host.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let (wasm, wasm_bytes) = rt.block_on(async {
        let runtime = Runtime::new(
            COMPONENT,
            RuntimeLimits {
                cpu_budget_ms: 3_600_000,
                ..RuntimeLimits::default()
            },
        )
        .await
        .expect("the bench component loads");
        let dir = tempfile::tempdir().expect("temp dir");
        let run = TenantRun {
            tenant: "bench".into(),
            connector_config: vec![
                (
                    "users".into(),
                    serde_json::to_string(&users).expect("users serialise"),
                ),
                ("rounds".into(), ROUNDS.to_string()),
            ],
            policy: EgressPolicy::new(vec![]),
            secrets: Arc::new(SecretSet::new()),
            checkpoints: Arc::new(
                SqliteCheckpointStore::open(&dir.path().join("c.sqlite")).expect("store"),
            ),
            sink: Arc::new(StdoutSink::default()),
            timeout: Duration::from_secs(3600),
            time_scale: Default::default(),
        };
        let start = Instant::now();
        let report = runtime.run(&run).await.expect("the bench run succeeds");
        assert_eq!(
            report.items_seen, events,
            "the component mapped every user every round"
        );
        (start.elapsed(), report.requests)
    });
    assert_eq!(
        wasm_bytes, native_bytes,
        "both sides produced the same JSON"
    );

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!("\n## OCSF mapping throughput ({} users x {ROUNDS} rounds = {events} events, map + serialise)\n", users.len());
    println!("| build | time | events/s |");
    println!("|---|---|---|");
    println!(
        "| native (x86_64, release) | {:.3} s | {:.0} |",
        native.as_secs_f64(),
        rate(native)
    );
    println!(
        "| component (wasm32-wasip2 in the host) | {:.3} s | {:.0} |",
        wasm.as_secs_f64(),
        rate(wasm)
    );
    println!(
        "\ncomponent / native throughput: {:.2}",
        rate(wasm) / rate(native)
    );
}
