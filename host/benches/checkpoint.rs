//! `cargo bench -p connector-host --bench checkpoint`: what the batch calls of
//! `kv-checkpoint` 0.3.0 save per page of users, printed as a table (README.md, "The
//! contract", quotes it).
//!
//! Per store — the SQLite file (WAL, `synchronous=FULL`, in a temporary directory) and the
//! test PostgreSQL (`bash scripts/test-postgres`; URL and password as in
//! `host/tests/pg/mod.rs`, a fresh database) — through the [`CheckpointStore`] API the
//! door calls:
//!
//! 1. reading 200 staged keys: 200 `get` against one `get_many` of 200;
//! 2. writing 500 keys of 250-byte values: 500 `set` (compare-and-set, each its own commit)
//!    against one `set_many` of 500 (`Expect::Any`, one commit);
//! 3. clearing 10,000 staged keys: one `delete_prefix` with the limit at 10,000, in a
//!    namespace that holds 190,000 other keys (staged once before the cases).
//!
//! Each figure is the median of `REPS` repetitions on fresh keys. Options (after `--`):
//! `--quick` (one repetition) to check the bench itself.

#[path = "../tests/pg/mod.rs"]
mod pg;

use std::time::{Duration, Instant};

use connector_host::doors::checkpoint::{
    CheckpointStore, Expect, PostgresCheckpointStore, SqliteCheckpointStore, Write,
};
use pg::*;

const READS: usize = 200;
const WRITES: usize = 500;
const STAGED: usize = 10_000;
const VALUE_BYTES: usize = 250;
/// Keys already in the namespace before the cases run (a walk's other staging, other
/// phases): the prefix delete must not read them.
const BACKGROUND: usize = 190_000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn value(i: usize) -> Vec<u8> {
    format!("{i:0>width$}", width = VALUE_BYTES).into_bytes()
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}/{i:06}")).collect()
}

/// Stages `keys` by batches of 1,000 (the WIT's most).
async fn stage(s: &dyn CheckpointStore, ns: &str, keys: &[String]) {
    for chunk in keys.chunks(1000) {
        let writes: Vec<Write> = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| Write {
                key: k.clone(),
                value: Some(value(i)),
                expect: Expect::Any,
            })
            .collect();
        s.set_many(ns, &writes).await.expect("staging");
    }
}

/// One table row per operation: (operation, single calls, one batch).
async fn measure(
    s: &dyn CheckpointStore,
    reps: usize,
) -> Vec<(String, Duration, Option<Duration>)> {
    let ns = "bench/entra";
    let (mut single_get, mut many_get) = (vec![], vec![]);
    let (mut single_set, mut many_set) = (vec![], vec![]);
    let mut prefix = vec![];
    stage(s, ns, &keys("other", BACKGROUND)).await;
    for rep in 0..reps {
        // Reads of staged keys.
        let read = keys(&format!("read{rep}"), READS);
        stage(s, ns, &read).await;
        let t = Instant::now();
        for k in &read {
            assert!(s.get(ns, k).await.unwrap().is_some());
        }
        single_get.push(t.elapsed());
        let t = Instant::now();
        let got = s.get_many(ns, &read).await.unwrap();
        many_get.push(t.elapsed());
        assert!(got.iter().all(Option::is_some));

        // Writes of new keys.
        let single = keys(&format!("single{rep}"), WRITES);
        let t = Instant::now();
        for (i, k) in single.iter().enumerate() {
            s.set(ns, k, &value(i), None).await.unwrap();
        }
        single_set.push(t.elapsed());
        let batch: Vec<Write> = keys(&format!("batch{rep}"), WRITES)
            .into_iter()
            .enumerate()
            .map(|(i, key)| Write {
                key,
                value: Some(value(i)),
                expect: Expect::Any,
            })
            .collect();
        let t = Instant::now();
        s.set_many(ns, &batch).await.unwrap();
        many_set.push(t.elapsed());

        // Clearing a page's worth of staging, many pages over.
        let staged = keys(&format!("stage{rep}"), STAGED);
        stage(s, ns, &staged).await;
        let t = Instant::now();
        let deleted = s
            .delete_prefix(ns, &format!("stage{rep}/"), STAGED as u32)
            .await
            .unwrap();
        prefix.push(t.elapsed());
        assert_eq!(deleted as usize, STAGED);
    }
    vec![
        (
            format!("read {READS} keys"),
            median(single_get),
            Some(median(many_get)),
        ),
        (
            format!("write {WRITES} keys of {VALUE_BYTES} B"),
            median(single_set),
            Some(median(many_set)),
        ),
        (
            format!(
                "delete_prefix of {STAGED} keys (of {} in the namespace)",
                STAGED + BACKGROUND
            ),
            median(prefix),
            None,
        ),
    ]
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 5 };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteCheckpointStore::open(&dir.path().join("bench.sqlite")).unwrap();
    let postgres = PostgresCheckpointStore::connect(
        &fresh_database("bench_checkpoint").await,
        Some(&password()),
    )
    .await
    .unwrap_or_else(|e| unreachable(e));
    println!("\n## Checkpoint batches (median of {reps}; `get`/`set` one call per key, `get_many`/`set_many` one call)\n");
    println!("| store | operation | one call per key | one batch call | batch speed-up |");
    println!("|---|---|---:|---:|---:|");
    let stores: [(&str, &dyn CheckpointStore); 2] =
        [("SQLite", &sqlite), ("PostgreSQL", &postgres)];
    for (name, store) in stores {
        for (op, single, batch) in measure(store, reps).await {
            match batch {
                Some(batch) => println!(
                    "| {name} | {op} | {} | {} | {:.0}x |",
                    ms(single),
                    ms(batch),
                    single.as_secs_f64() / batch.as_secs_f64().max(1e-9)
                ),
                None => println!("| {name} | {op} | {} (one call) | | |", ms(single)),
            }
        }
    }
}
