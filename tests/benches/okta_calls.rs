//! Okta calls: Sekoia's Okta user-asset pattern against ours, on one simulated org per size
//! (the Okta emulator on 127.0.0.1, in this process), in the same run. Prints a Markdown
//! table of the requests each sends, by the emulator's buckets, the wall time here, and the
//! time those requests need at the least under Okta's default rate limits.
//!
//! `cargo bench -p e2e-tests --bench okta_calls` (defaults: 10,000 and 100,000 users).
//! `BENCH_SIZES=10000,100000` picks the org sizes; `BENCH_SEKOIA_USERS=n` runs Sekoia's
//! per-user reads on the first n users only and scales its requests and time to the whole org
//! (marked in the table; its listing is always read in full). Orgs of at most
//! `BENCH_PACED_USERS` users (10,000) are also walked by ours at Okta's default limits on a
//! clock `BENCH_PACED_K` (20) times faster: the time those limits really cost it, measured
//! (`BENCH_PACED_ONLY=1` runs only those walks).
//!
//! The emulator's buckets are lifted here (nothing is refused, nobody waits), so "wall" is the
//! client's own cost over loopback; "at Okta's limits" is each bucket's requests over half its
//! default per-minute limit (one token's 50% share: users list 600/min, user by id 2,000, groups
//! 500, logs 120, other `/api/v1` 1,200; developer.okta.com/docs/reference/rl2-token-oauth), the
//! slowest bucket's figure being the floor of the run (buckets refill in parallel).
//!
//! Sekoia's pattern (`SEKOIA-IO/automation-library`, Okta `user_assets` connector): list
//! `/api/v1/users` (first run: no parameters, so DEPROVISIONED users are left out; later runs:
//! `search=created gt "<checkpoint>"&sortBy=created&sortOrder=asc`, the checkpoint being the
//! `created` of the last user listed), then for each user, one user after another, three
//! concurrent reads — `/users/{id}/groups` (each group of its first page followed by that
//! group's `/groups/{id}/roles`, one after another), `/users/{id}/factors` and
//! `/users/{id}/roles` — implemented here as a plain HTTP client. Ours: the real component in
//! the real host, a full walk, then an incremental run after 1% of the users changed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e_tests::okta::{read_events, runtime, tenant_run, wall_ms};
use okta_emulator::{Bucket, Emulator, OktaClock, OktaConfig, Org, DEFAULT_API_TOKEN};
use serde_json::{json, Value};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    what: String,
    users: usize,
    served: BTreeMap<Bucket, u64>,
    wall: Duration,
    events: u64,
    changes_seen: String,
    note: &'static str,
    /// Measured at Okta's default limits on a compressed clock (virtual time, 429s).
    paced: Option<(Duration, u64)>,
}

const COLUMNS: [(Bucket, &str); 5] = [
    (Bucket::UsersList, "users list"),
    (Bucket::UserById, "user by id"),
    (Bucket::Groups, "groups"),
    (Bucket::Logs, "logs"),
    (Bucket::OtherApi, "other /api/v1"),
];

/// Minutes the requests of one bucket take at least under one token's share of Okta's
/// default limit (half the bucket's per-minute figure).
fn minutes(bucket: Bucket, requests: u64) -> f64 {
    requests as f64 / (f64::from(bucket.default_limit()) / 2.0)
}

fn human(minutes: f64) -> String {
    if minutes < 1.0 {
        format!("{:.0} s", minutes * 60.0)
    } else if minutes < 120.0 {
        format!("{minutes:.1} min")
    } else {
        format!("{:.1} h", minutes / 60.0)
    }
}

impl Row {
    fn print(&self) {
        let total: u64 = self.served.values().sum();
        let cols: Vec<String> = COLUMNS
            .iter()
            .map(|(b, _)| self.served.get(b).copied().unwrap_or(0).to_string())
            .collect();
        let (slowest, floor) = self.served.iter().map(|(b, n)| (*b, minutes(*b, *n))).fold(
            (Bucket::OtherApi, 0.0),
            |a, b| if b.1 > a.1 { b } else { a },
        );
        let at_limits = match self.paced {
            Some((virtual_time, throttled)) => format!(
                "**measured {}**, {throttled} × 429 (floor {} {slowest:?})",
                human(virtual_time.as_secs_f64() / 60.0),
                human(floor)
            ),
            None => format!("{} ({slowest:?})", human(floor)),
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.1} | {} | {} | {} | {} |",
            self.what,
            self.users,
            cols.join(" | "),
            total,
            total as f64 / self.users as f64,
            self.wall.as_secs_f64(),
            at_limits,
            self.events,
            self.changes_seen,
            self.note
        );
    }
}

/// Sekoia's reads, as its connector makes them (see the file's doc), against `base`.
struct Sekoia {
    http: reqwest::Client,
    base: String,
}

impl Sekoia {
    async fn get(&self, url: &str) -> (Value, Option<String>) {
        let resp = self
            .http
            .get(url)
            .header("Authorization", format!("SSWS {DEFAULT_API_TOKEN}"))
            .header("Accept", "application/json")
            .send()
            .await
            .expect("the emulator answers");
        assert_eq!(resp.status(), 200, "{url}");
        let next = resp
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.contains("rel=\"next\""))
            .and_then(|v| v.split(['<', '>']).nth(1))
            .map(str::to_owned);
        (resp.json().await.expect("a JSON answer"), next)
    }

    /// Every user the listing gives (`query` appended to `/api/v1/users`), page by page.
    async fn list(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(format!("{}/api/v1/users{query}", self.base));
        while let Some(url) = next.take() {
            let (page, link) = self.get(&url).await;
            out.extend(page.as_array().cloned().unwrap_or_default());
            next = link;
        }
        out
    }

    /// One user's reads: groups (and the roles of each group listed), factors and roles,
    /// the three concurrently.
    async fn enrich(&self, id: &str) {
        let groups = async {
            let (groups, _) = self
                .get(&format!("{}/api/v1/users/{id}/groups", self.base))
                .await;
            for g in groups.as_array().into_iter().flatten() {
                let gid = g["id"].as_str().unwrap_or_default();
                self.get(&format!("{}/api/v1/groups/{gid}/roles", self.base))
                    .await;
            }
        };
        let (factors_url, roles_url) = (
            format!("{}/api/v1/users/{id}/factors", self.base),
            format!("{}/api/v1/users/{id}/roles", self.base),
        );
        let factors = self.get(&factors_url);
        let roles = self.get(&roles_url);
        tokio::join!(groups, factors, roles);
    }
}

/// A run of Sekoia's pattern: (users emitted, the checkpoint it keeps, whether it was scaled).
async fn sekoia_run(
    s: &Sekoia,
    query: &str,
    sample: usize,
) -> (Vec<String>, Option<String>, Option<f64>) {
    let users = s.list(query).await;
    let ids: Vec<String> = users
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    let checkpoint = users
        .last()
        .and_then(|u| u["created"].as_str())
        .map(str::to_owned);
    let n = ids.len().min(sample);
    for id in &ids[..n] {
        s.enrich(id).await;
    }
    let scale = (n < ids.len() && n > 0).then(|| ids.len() as f64 / n as f64);
    (ids, checkpoint, scale)
}

/// Changes 1% of the users (at least 4): a quarter each a profile attribute, a new group, a
/// new admin role and a new factor. Their ids.
fn change_one_percent(emulator: &Emulator) -> Vec<String> {
    let users = emulator.with_org(|o| o.users().count());
    let n = (users / 100).max(4);
    let (ids, group) = emulator.with_org(|o| {
        let active = o.users().filter(|u| u.status == "ACTIVE").count();
        let ids: Vec<String> = o
            .users()
            .filter(|u| u.status == "ACTIVE")
            .skip(1)
            .step_by((active / (n + n / 4 + 1)).max(1))
            .map(|u| u.id.clone())
            .collect();
        let group = o
            .groups()
            .filter(|g| g.group_type == "OKTA_GROUP" && o.roles_of_group(&g.id).is_empty())
            .last()
            .map(|g| g.id.clone())
            .expect("a group");
        (ids, group)
    });
    let mut changed = Vec::new();
    for (k, id) in ids.into_iter().enumerate() {
        if changed.len() == n {
            break;
        }
        let ok = match k % 4 {
            0 => emulator
                .update_profile(&id, json!({"title": "Changed"}))
                .is_ok(),
            1 => emulator.add_member(&id, &group).is_ok(),
            2 => emulator.grant_user_role(&id, "REPORT_ADMIN").is_ok(),
            _ => emulator.enroll_factor(&id, "webauthn").is_ok(),
        };
        if ok {
            changed.push(id);
        }
    }
    changed
}

async fn size(users: usize, sekoia_sample: usize) -> Vec<Row> {
    let clock = OktaClock::manual(wall_ms());
    let t = Instant::now();
    let org = Org::generated(2026, users, clock.now_ms());
    let mut config = OktaConfig::default();
    for bucket in Bucket::ALL {
        config.rate_limits.insert(bucket, u32::MAX / 2);
    }
    let emulator = Emulator::start(org, config, clock.clone())
        .await
        .expect("the emulator starts");
    eprintln!("{users} users: org generated in {:?}", t.elapsed());
    let mut rows = Vec::new();

    // Ours: a full walk, then an incremental run after 1% changed.
    let rt = runtime().await;
    let dir = tempfile::tempdir().expect("a folder");
    let run = tenant_run(&emulator, dir.path(), &[]);
    emulator.reset_stats();
    let t = Instant::now();
    let report = rt.run(&run).await.expect("our full walk");
    let wall = t.elapsed();
    eprintln!("{users} users: our walk in {wall:?}: {report:?}");
    rows.push(Row {
        what: "ours: full walk".into(),
        users,
        served: emulator.stats().served,
        wall,
        events: report.events_written,
        changes_seen: "-".into(),
        note: "",
        paced: None,
    });
    let walked = read_events(&dir.path().join("events.jsonl")).len();
    clock.advance(Duration::from_secs(60));
    let changed = change_one_percent(&emulator);
    clock.advance(Duration::from_secs(5));
    emulator.reset_stats();
    let t = Instant::now();
    let report = rt.run(&run).await.expect("our incremental run");
    let wall = t.elapsed();
    let emitted: Vec<String> = read_events(&dir.path().join("events.jsonl"))
        .split_off(walked)
        .iter()
        .filter_map(|e| e["user"]["uid"].as_str().map(str::to_owned))
        .collect();
    let seen = changed.iter().filter(|c| emitted.contains(c)).count();
    rows.push(Row {
        what: format!("ours: incremental, 1% changed ({} users)", changed.len()),
        users,
        served: emulator.stats().served,
        wall,
        events: report.events_written,
        changes_seen: format!("{seen} of {}", changed.len()),
        note: "",
        paced: None,
    });

    // Sekoia's pattern on a fresh copy of the same org (same seed, size and time): its first
    // run, then its next run after the same 1% changed.
    drop(rt);
    emulator.shutdown().await;
    let clock = OktaClock::manual(clock.now_ms() - 65_000);
    let org = Org::generated(2026, users, clock.now_ms());
    let mut config = OktaConfig::default();
    for bucket in Bucket::ALL {
        config.rate_limits.insert(bucket, u32::MAX / 2);
    }
    let emulator = Emulator::start(org, config, clock.clone())
        .await
        .expect("the emulator starts");
    let s = Sekoia {
        http: reqwest::Client::new(),
        base: emulator.base_url(),
    };
    emulator.reset_stats();
    let t = Instant::now();
    let (ids, checkpoint, scale) = sekoia_run(&s, "", sekoia_sample).await;
    let mut wall = t.elapsed();
    let mut served = emulator.stats().served;
    if let Some(k) = scale {
        wall = wall.mul_f64(k);
        // The listing was read in full; the per-user reads are scaled.
        for (b, n) in served.iter_mut() {
            if *b == Bucket::OtherApi {
                *n = (*n as f64 * k) as u64;
            }
        }
    }
    rows.push(Row {
        what: "Sekoia's pattern: first run".into(),
        users,
        served,
        wall,
        events: ids.len() as u64,
        changes_seen: "-".into(),
        note: if scale.is_some() {
            "per-user reads scaled from a sample"
        } else {
            ""
        },
        paced: None,
    });
    clock.advance(Duration::from_secs(60));
    let changed = change_one_percent(&emulator);
    clock.advance(Duration::from_secs(5));
    emulator.reset_stats();
    let query = match &checkpoint {
        Some(c) => format!(
            "?search={}&sortBy=created&sortOrder=asc",
            percent(&format!("created gt \"{c}\""))
        ),
        None => String::new(),
    };
    let t = Instant::now();
    let (ids, _, _) = sekoia_run(&s, &query, usize::MAX).await;
    let wall = t.elapsed();
    let seen = changed.iter().filter(|c| ids.contains(c)).count();
    rows.push(Row {
        what: format!(
            "Sekoia's pattern: next run, 1% changed ({} users)",
            changed.len()
        ),
        users,
        served: emulator.stats().served,
        wall,
        events: ids.len() as u64,
        changes_seen: format!("{seen} of {}", changed.len()),
        note: "",
        paced: None,
    });
    emulator.shutdown().await;
    rows
}

/// Our full walk of a fresh copy of the org at Okta's default limits, on a clock running `k`
/// times faster (the emulator's windows, `X-Rate-Limit-Reset` and `Date`, and the guest's
/// clock and sleeps, from one origin): the time it takes at those limits, measured.
async fn paced_walk(users: usize, k: u32) -> Row {
    let origin = Instant::now();
    let origin_wall = std::time::SystemTime::now();
    let start_ms = origin_wall
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let clock = OktaClock::scaled_from(start_ms, k, origin);
    let org = Org::generated(2026, users, start_ms);
    let emulator = Emulator::start(org, OktaConfig::default(), clock)
        .await
        .expect("the emulator starts");
    let scale = connector_host::TimeScale::anchored(k, origin, origin_wall).expect("k ≥ 1");
    let rt = runtime().await;
    let dir = tempfile::tempdir().expect("a folder");
    let run = tenant_run(&emulator, dir.path(), &[]).with_time_scale(scale);
    let t = Instant::now();
    let report = rt.run(&run).await.expect("our paced walk");
    let wall = t.elapsed();
    let stats = emulator.stats();
    emulator.shutdown().await;
    Row {
        what: format!("ours: full walk at Okta's default limits (clock × {k})"),
        users,
        served: stats.served,
        wall,
        events: report.events_written,
        changes_seen: "-".into(),
        note: "wall is compressed time",
        paced: Some((wall * k, stats.rate_limited + stats.concurrency_limited)),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let sample = env_num("BENCH_SEKOIA_USERS", usize::MAX);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut rows = Vec::new();
    let paced_max = env_num("BENCH_PACED_USERS", 10_000);
    // At 20× a debug build's own work stays well under the limits' pace for 10,000 users
    // (at 60× it counted for most of the measured time).
    let k = env_num("BENCH_PACED_K", 20) as u32;
    // BENCH_PACED_ONLY=1: only the walks at Okta's limits (a 100,000-user one takes ~5 min).
    let paced_only = std::env::var("BENCH_PACED_ONLY").is_ok_and(|v| v == "1");
    for users in sizes {
        if !paced_only {
            rows.extend(rt.block_on(size(users, sample)));
        }
        if users <= paced_max {
            rows.push(rt.block_on(paced_walk(users, k)));
        }
    }
    let heads: Vec<&str> = COLUMNS.iter().map(|(_, h)| *h).collect();
    println!("\nOkta calls: requests by the emulator's buckets, wall time here, and the least time at Okta's default limits (one token's 50% share)\n");
    println!(
        "| run | users | {} | requests | per user | wall s | at Okta's limits (slowest bucket) | events | changed users emitted | note |",
        heads.join(" | ")
    );
    println!("|{}", "---|".repeat(heads.len() + 9));
    for r in &rows {
        r.print();
    }
}
