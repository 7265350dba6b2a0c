//! Compressed time (simulation only): the emulator's limit windows and the guest's clocks and
//! sleeps run k times faster, so a sync paced by Graph's reports limits finishes in 1/k of the
//! real time while both sides still agree on every window and `Retry-After`.
//!
//! Only functional properties are asserted (the run completes, every user is delivered, the
//! guest's waits are k times shorter in real time than what was asked, at most a few 429s);
//! the times are printed, never asserted as a speed claim.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e_tests::{uids, user_ids, Harness};
use graph_emulator::{EmulatorConfig, Endpoint, FaultRule, Tenant};

/// One full sync of a fresh tenant at time factor `factor`: (real time, report, harness).
async fn full_sync(users: usize, factor: u32) -> (Duration, connector_host::RunReport, Harness) {
    let h = Harness::start_with_time_scale(
        Tenant::generated(7, users),
        EmulatorConfig::default(),
        factor,
    )
    .await;
    let started = Instant::now();
    let report = h.sync().await.expect("the run succeeds");
    (started.elapsed(), report, h)
}

fn assert_every_user_once(h: &Harness, users: usize) {
    let got = uids(&h.events());
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), users, "one event per user");
    assert_eq!(unique, user_ids(&h.emulator), "every user delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sleep_lasts_one_kth_of_the_time_asked() {
    // One throttled users/delta page with `Retry-After: 50`: the guest pauses the tenant for
    // 50 of its seconds. At k = 50 that is 1 s of real time: at least 1 s (the wait is
    // honoured), far below the 50 s it would take in real time.
    const K: u32 = 50;
    let h = Harness::start_with_time_scale(Tenant::generated(23, 20), EmulatorConfig::default(), K)
        .await;
    let mut fault = FaultRule::throttle(Endpoint::UsersDelta, 50);
    fault.count = 1;
    h.emulator.add_fault(fault);
    let started = Instant::now();
    // The run's figures, taken while it runs and read after it ended (RunFigures outlives it).
    let watch = async {
        loop {
            if let Some(figures) = h.runtime.live_run(&h.run.tenant) {
                return figures;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let (report, figures) = tokio::join!(h.sync(), watch);
    let report = report.expect("the run succeeds after the pause");
    let real = started.elapsed();
    println!("k = {K}: a Retry-After of 50 s took {real:?} of real time (the whole run)");
    // The host counts the guest's sleeps in real time: the 50 virtual seconds are 1 s, less
    // what of them had passed when the guest went to sleep (its own work since the 429).
    let slept = figures.slept();
    assert!(
        slept >= Duration::from_millis(900) && slept < Duration::from_secs(5),
        "the host counts the compressed wait: {slept:?}"
    );
    assert_eq!(
        figures.peak_guest_memory_bytes(),
        report.peak_guest_memory_bytes,
        "the live figures are the report's"
    );
    assert_eq!(report.events_written, 20);
    assert_eq!(report.http_status.get(&429), Some(&1), "{report:?}");
    assert!(
        real >= Duration::from_millis(50_000 / u64::from(K)),
        "the 50 virtual seconds were waited: {real:?}"
    );
    assert!(
        real < Duration::from_secs(25),
        "the wait was compressed, not 50 s real: {real:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_full_sync_completes_in_compressed_time_with_few_429s() {
    // 1,500 users: 15 pages of the registration report (100 rows each), which the default
    // limit of 5 per 10 s (EmulatorConfig::reports_limit) makes last at least 20 s of the
    // emulator's clock: the guest has to pace itself.
    const USERS: usize = 1_500;
    const K: u32 = 20;
    let (fast, report, h) = full_sync(USERS, K).await;
    assert_every_user_once(&h, USERS);
    assert_eq!(report.events_written, USERS as u64);
    assert!(report.full_sync);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let throttled = h.emulator.throttled_responses();
    let reports_requests = h.emulator.counters()[&Endpoint::RegistrationDetails];
    println!(
        "k = {K}: {USERS} users in {fast:?} real ({:?} virtual), {} Graph requests, {reports_requests} report requests, {throttled} x 429 ({} by the reports limits)",
        fast * K,
        h.emulator.graph_requests(),
        h.emulator.reports_throttled()
    );
    assert!(
        throttled <= 2,
        "the guest paces on the emulator's clock: {throttled} x 429"
    );
    // n report requests at 5 per 10 s need at least (ceil(n / 5) - 1) x 10 s of the
    // emulator's clock; less real time than that means both clocks ran compressed.
    let windows = reports_requests.div_ceil(5).saturating_sub(1);
    assert!(
        windows >= 2,
        "the limit paced the run: {reports_requests} requests"
    );
    let uncompressed = Duration::from_secs(10 * windows);
    assert!(
        fast < uncompressed,
        "{fast:?} real for {uncompressed:?} of windows"
    );
    // The same sync in real time took 33.0 s on the 2-core machine (README, "Figures"); it is
    // not repeated here: the suite's time matters more than a printed comparison, and pacing
    // at real time is what every other end-to-end test runs.
}
