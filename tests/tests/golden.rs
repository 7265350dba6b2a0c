//! Golden events: hand-written users (`tests/fixtures/golden-users.json`) that together
//! exercise every row of MAPPING.md, synced through the real component and host, compared
//! byte for byte (after fixing the collection time) with `tests/golden/events.jsonl`.
//!
//! To regenerate after an intended mapping change: `UPDATE_GOLDEN=1 cargo test -p e2e-tests
//! --test golden`, then review the diff line by line against MAPPING.md.

use e2e_tests::Harness;
use graph_emulator::{EmulatorConfig, Tenant};
use ocsf_check::assert_all_valid;
use serde_json::Value;

const FIXTURE: &str = include_str!("../fixtures/golden-users.json");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/events.jsonl");
const FIXED_TIME: i64 = 1_750_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_users_map_exactly_to_the_golden_events() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let tenant = Tenant::from_fixture(&fixture).expect("the fixture loads");
    let mut h = Harness::start(tenant, EmulatorConfig::default()).await;
    h.set_config("tenant_id", &h.emulator.config().tenant_id.clone());
    // The main path: memberships, roles and MFA from the tenant-wide sources. Users whose
    // parts cannot be read are covered where per-user reads happen (sync.rs, delta.rs).

    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let report = h.sync().await.expect("the run succeeds");
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(report.items_seen, 7);
    assert_eq!(report.items_skipped, 0);
    assert_eq!(report.items_partial, 0, "{:?}", report.warnings);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let mut events = h.events();
    assert_all_valid(&events);
    for e in &mut events {
        let t = e["time"].as_i64().expect("time is an integer");
        assert!(
            (started..=ended).contains(&t),
            "time is the collection time in ms"
        );
        e["time"] = FIXED_TIME.into();
    }
    events.sort_by(|a, b| a["user"]["uid"].as_str().cmp(&b["user"]["uid"].as_str()));
    let got: String = events
        .iter()
        .map(|e| format!("{}\n", serde_json::to_string(e).unwrap()))
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).expect("tests/golden/events.jsonl exists");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "golden event {i} differs");
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "number of golden events"
    );
}
