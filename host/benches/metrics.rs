//! `cargo bench -p connector-host --bench metrics`: what a scrape of `/metrics` and the
//! bookkeeping of a finished run cost, printed as a table (`host/src/metrics/mod.rs` quotes
//! it).
//!
//! For 1, 100, 1,000 and 10,000 tenants, each with one success (statuses 200 and 429) and,
//! for every third tenant, one failure: the time to render the exposition (median and p99
//! of repeated renders, and its size), and the time to record one run.
//!
//! Options (after `--`): `--quick` (fewer samples), `--tenants 1,1000`.
//!
//! The figures in `host/src/metrics/mod.rs` come from a dev build with the hot crates
//! optimised, which reuses the dev build's compiled dependencies:
//!
//! ```text
//! O=profile.dev.package; cargo bench -p connector-host --bench metrics --profile dev \
//!   $(for p in connector-host prometheus-client dtoa itoa parking_lot parking_lot_core lock_api; do
//!     echo --config $O.$p.opt-level=3 --config $O.$p.debug-assertions=false \
//!          --config $O.$p.overflow-checks=false; done)
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_host::metrics::{FailureKind, Metrics};
use connector_host::RunReport;

fn report(tenant: &str) -> RunReport {
    RunReport {
        tenant: tenant.into(),
        items_seen: 100,
        events_emitted: 100,
        events_written: 100,
        items_skipped: 0,
        items_partial: 0,
        requests: 3,
        http_sent: 3,
        http_denied: 0,
        http_status: BTreeMap::from([(200, 2), (429, 1)]),
        full_sync: true,
        warnings: vec![],
        unavailable: vec![],
        receipts: vec![],
        duration: Duration::from_millis(1_250),
        peak_guest_memory_bytes: 0,
        progress: None,
        inventory: Default::default(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let tenants: Vec<usize> = args
        .iter()
        .position(|a| a == "--tenants")
        .and_then(|p| args.get(p + 1))
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 100, 1_000, 10_000]);
    println!("\n## /metrics: render time and size, and the cost of recording a run\n");
    println!("| tenants | render median | render p99 | bytes | record one run (mean) |");
    println!("|---:|---:|---:|---:|---:|");
    for n in tenants {
        let metrics = Arc::new(Metrics::new(64));
        let keys: Vec<String> = (0..n).map(|i| format!("tenant-{i:05}")).collect();
        let reports: Vec<RunReport> = keys.iter().map(|k| report(k)).collect();
        for key in &keys {
            metrics.add_tenant(key);
        }
        // Recording: every tenant's run, repeated until about 200k runs are recorded.
        let rounds = (200_000 / n.max(1)).max(1);
        let started = Instant::now();
        for _ in 0..rounds {
            for (key, report) in keys.iter().zip(&reports) {
                metrics.record_success(key, report);
            }
        }
        let record = started.elapsed() / (rounds * n) as u32;
        for key in keys.iter().step_by(3) {
            metrics.record_failure(key, FailureKind::Auth, Duration::from_secs(2));
        }
        let samples = match (quick, n) {
            (true, _) => 20,
            (false, n) if n >= 10_000 => 50,
            _ => 300,
        };
        let bytes = black_box(metrics.render()).len();
        let mut times: Vec<Duration> = (0..samples)
            .map(|_| {
                let started = Instant::now();
                black_box(metrics.render());
                started.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "| {n} | {:.3} ms | {:.3} ms | {bytes} | {} ns |",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            record.as_nanos()
        );
    }
}
