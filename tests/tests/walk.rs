//! The staged full walk, end to end (issue 17): a walk longer than the run timeout completes
//! over several runs of the real component in the real host, against an emulated tenant that
//! keeps Graph's documented limits, with time compressed for both parties (simulation only).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e_tests::{user_ids, Harness};
use graph_emulator::{EmulatorConfig, Endpoint, Tenant};
use serde_json::Value;

/// Time runs this many times faster for the emulator's limit windows and the guest's clocks.
const SCALE: u32 = 20;

/// Requests Graph counts (the token endpoint and `$batch` envelopes left out: every `$batch`
/// item counts under its own endpoint).
fn graph_requests(h: &Harness) -> u64 {
    h.emulator
        .counters()
        .iter()
        .filter(|(e, _)| !matches!(e, Endpoint::Token | Endpoint::Batch))
        .map(|(_, n)| n)
        .sum()
}

/// The last event of each user, by uid.
fn last_by_uid(events: &[Value]) -> BTreeMap<String, Value> {
    events
        .iter()
        .map(|e| (e["user"]["uid"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// What a user's event says, without the collection times.
fn content(event: &Value) -> Value {
    let mut e = event.clone();
    let o = e.as_object_mut().unwrap();
    for k in ["time", "metadata"] {
        o.remove(k);
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_longer_than_its_runs_completes_over_several_runs_within_five_percent_more_requests()
{
    let users = 5_000;
    // One uninterrupted walk: the reference.
    let whole = Harness::start_with_time_scale(
        Tenant::generated(17, users),
        EmulatorConfig::default(),
        SCALE,
    )
    .await;
    let t = Instant::now();
    let report = whole.sync().await.expect("an uninterrupted walk");
    let walk_time = t.elapsed();
    assert_eq!(report.events_written as usize, users);
    let reference_requests = graph_requests(&whole);
    let reference = last_by_uid(&whole.events());

    // The same tenant with a run timeout of a quarter of the walk.
    let mut h = Harness::start_with_time_scale(
        Tenant::generated(17, users),
        EmulatorConfig::default(),
        SCALE,
    )
    .await;
    h.run.timeout = (walk_time / 4).max(Duration::from_millis(500));
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 40, "the walk never completes ({runs} runs)");
        match h.sync().await {
            Ok(_) => break,
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("the next run resumes")
                        && (text.contains("the checkpoint keeps phase")
                            || text.contains("resumes there")),
                    "run {runs}: the error says what was kept: {text}"
                );
            }
        }
    }
    let requests = graph_requests(&h);
    println!(
        "walk of {users} users: {walk_time:?} uninterrupted, {reference_requests} Graph requests; \
         with a run timeout of {:?}: {runs} runs, {requests} Graph requests",
        h.run.timeout
    );
    assert!(
        runs >= 3,
        "the timeout stopped the walk at least twice: {runs} runs"
    );
    let events = h.events();
    let last = last_by_uid(&events);
    assert_eq!(
        last.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        user_ids(&h.emulator),
        "every user delivered"
    );
    for (uid, e) in &reference {
        assert_eq!(
            content(&last[uid]),
            content(e),
            "user {uid}: a complete snapshot"
        );
    }
    let duplicates = events.len() - last.len();
    assert!(
        duplicates <= 200 * (runs - 1),
        "{duplicates} events delivered twice over {} interrupted runs: more than a page each",
        runs - 1
    );
    assert!(
        requests as f64 <= 1.05 * reference_requests as f64,
        "{requests} Graph requests over {runs} runs against {reference_requests} for one walk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_read_with_top_where_graph_takes_it_and_a_refusal_is_remembered() {
    let users = 1_500;
    // Graph taking `$top` (as Microsoft's own PowerShell uses it): two pages of up to 999.
    let taking = Harness::start_with_time_scale(
        Tenant::generated(19, users),
        EmulatorConfig {
            registration_top: true,
            ..EmulatorConfig::default()
        },
        SCALE,
    )
    .await;
    taking.sync().await.expect("a walk");
    assert_eq!(
        taking.emulator.counters()[&Endpoint::RegistrationDetails],
        2
    );
    assert_eq!(
        taking.delta_cursor().unwrap()["registration_top_refused"],
        false
    );

    // Graph refusing it (the v1.0 docs list only $filter and $orderby): one refused request,
    // then Graph's own pages of 100; the refusal is remembered, so the next walk asks no more.
    let strict = Harness::start_with_time_scale(
        Tenant::generated(19, users),
        EmulatorConfig::default(),
        SCALE,
    )
    .await;
    let report = strict.sync().await.expect("a walk");
    assert!(
        report.warnings.iter().all(|w| !w.contains("$top")),
        "nothing is missing: no run-report warning: {:?}",
        report.warnings
    );
    assert_eq!(
        strict.emulator.counters()[&Endpoint::RegistrationDetails],
        1 + 15
    );
    assert_eq!(
        strict.delta_cursor().unwrap()["registration_top_refused"],
        true
    );
    strict.age_delta_cursor(25);
    strict.emulator.reset_counters();
    let refresh = strict.sync().await.expect("the refresh walk");
    assert!(refresh.full_sync, "the aged cursor makes a full walk");
    assert_eq!(
        strict.emulator.counters()[&Endpoint::RegistrationDetails],
        15
    );
    assert_eq!(
        last_by_uid(&strict.events()).len(),
        users,
        "every user delivered"
    );
}
