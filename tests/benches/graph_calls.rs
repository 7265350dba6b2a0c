//! Graph calls: the seed connector's call pattern against ours, on one simulated tenant that
//! keeps Graph's documented limits (the emulator's default: users delta pages of at most 200,
//! member lists of at most 500, the reports limits of 5 requests per 10 s and sign-in data 10
//! a minute), with the same latency per request, in the same process. Prints a Markdown table.
//!
//! Requests are counted as Graph counts them: every `$batch` item is one request (the
//! envelope itself is not counted), token requests included. `429s` is every throttled answer
//! the emulator gave.
//!
//! `cargo bench -p e2e-tests --bench graph_calls` (defaults: 10,000 users, 20 ms per request).
//! `BENCH_USERS=n`, `BENCH_LATENCY_MS=n` change the tenant and the latency;
//! `BENCH_SEED_USERS=n` runs the seed's pattern on the first n users only and scales its time
//! to the whole tenant (marked in the table) — the full pattern takes about
//! users × 3 × latency.
//!
//! The seed's pattern (`SEKOIA-IO/automation-library`, `user_assets.py`): list `/users` 100
//! per page, then for each user, one after another, `memberOf` (every page), the transitive
//! directory roles and `authentication/methods`. Ours: the real component in the real host,
//! `sync_mode = delta` (the default).

use std::time::{Duration, Instant};

use e2e_tests::Harness;
use graph_emulator::{EmulatorConfig, Tenant, DIRECTORY_ROLE_TYPE, GROUP_TYPE};
use serde_json::{json, Value};

/// One run of ours, timed, with the requests Graph counts and the 429s it gave.
async fn measured_run(h: &Harness, users: usize, what: String, expect: &str) -> (Row, Duration) {
    h.emulator.reset_counters();
    let t = Instant::now();
    let report = h.sync().await.expect(expect);
    let wall = t.elapsed();
    let row = Row {
        what,
        users,
        requests: h.emulator.graph_requests(),
        wall,
        events: report.events_written,
        throttled: h.emulator.throttled_responses(),
        note: "",
    };
    (row, wall)
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    what: String,
    users: usize,
    requests: u64,
    wall: Duration,
    events: u64,
    throttled: u64,
    note: &'static str,
}

impl Row {
    fn print(&self) {
        let secs = self.wall.as_secs_f64();
        println!(
            "| {} | {} | {} | {:.4} | {:.2} | {} | {} | {} |",
            self.what,
            self.users,
            self.requests,
            self.requests as f64 / self.users as f64,
            secs,
            self.throttled,
            self.events,
            self.note
        );
    }
}

/// The seed's calls, one after another, for the first `limit` users.
async fn seed_pattern(
    graph: &str,
    token_url: &str,
    cfg: &EmulatorConfig,
    limit: usize,
) -> (u64, usize) {
    let http = reqwest::Client::new();
    let mut requests = 1u64;
    let token: Value = http
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.as_str()),
            ("scope", &format!("{graph}/.default")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let get = |url: String| {
        let http = http.clone();
        let bearer = bearer.clone();
        async move {
            let v: Value = http
                .get(&url)
                .header("Authorization", bearer)
                .header("ConsistencyLevel", "eventual")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(v.get("value").is_some(), "{url}: {v}");
            v
        }
    };
    let mut done = 0usize;
    let mut next = Some(format!(
        "{graph}/v1.0/users?$select=id,displayName,mail,identities,createdDateTime,userPrincipalName,mailNickname"
    ));
    while let Some(url) = next.take() {
        let page = get(url).await;
        requests += 1;
        for user in page["value"].as_array().unwrap() {
            if done == limit {
                return (requests, done);
            }
            let id = user["id"].as_str().unwrap();
            let mut member_of = Some(format!("{graph}/v1.0/users/{id}/memberOf"));
            while let Some(u) = member_of.take() {
                let p = get(u).await;
                requests += 1;
                member_of = p["@odata.nextLink"].as_str().map(str::to_string);
            }
            get(format!(
                "{graph}/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"
            ))
            .await;
            get(format!("{graph}/v1.0/users/{id}/authentication/methods")).await;
            requests += 2;
            done += 1;
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    (requests, done)
}

fn main() {
    let users = env_num("BENCH_USERS", 10_000);
    let latency = Duration::from_millis(env_num("BENCH_LATENCY_MS", 20) as u64);
    let seed_users = env_num("BENCH_SEED_USERS", users).min(users);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = EmulatorConfig {
            // Graph's own page size for relation lists.
            member_of_page_size: 100,
            ..EmulatorConfig::default()
        };
        let h = Harness::start(Tenant::generated(2026, users), config.clone()).await;
        h.emulator.set_latency(latency);
        let mut rows = Vec::new();

        // Ours, full sync (first run).
        let (row, ours_full) =
            measured_run(&h, users, "ours: full sync (delta round 1)".into(), "our full sync").await;
        assert_eq!(row.events as usize, users);
        rows.push(row);

        // Ours, incremental runs after 1% of users changed: a third of them a property
        // (users/delta), a third a group membership (groups/delta), a third a role.
        let all = h.emulator.users();
        let group = all
            .iter()
            .flat_map(|u| u.member_of.iter())
            .find(|m| m["@odata.type"] == GROUP_TYPE)
            .cloned()
            .expect("a group");
        let role = all
            .iter()
            .flat_map(|u| u.member_of.iter())
            .find(|m| m["@odata.type"] == DIRECTORY_ROLE_TYPE)
            .cloned()
            .expect("a role");
        let changed = (users / 100).max(3);
        for (n, u) in all.iter().skip(100).take(changed).enumerate() {
            let id = u.id().unwrap();
            match n % 3 {
                0 => {
                    h.emulator
                        .update_user(id, json!({"jobTitle": "Changed"}));
                }
                1 => {
                    h.emulator.modify_relations(id, |s| s.member_of.push(group.clone()));
                }
                _ => {
                    h.emulator.modify_relations(id, |s| s.member_of.push(role.clone()));
                }
            }
        }
        let (row, _) = measured_run(
            &h,
            users,
            format!(
                "ours: incremental, 1% of users changed ({changed}: property, membership, role)"
            ),
            "our incremental run",
        )
        .await;
        rows.push(row);
        let (row, _) = measured_run(
            &h,
            users,
            "ours: incremental, nothing changed".into(),
            "our idle run",
        )
        .await;
        rows.push(row);

        // The seed's pattern on the same tenant and latency.
        h.emulator.reset_counters();
        let t = Instant::now();
        let (requests, done) = seed_pattern(
            &h.emulator.graph_endpoint(),
            &h.emulator.token_url(),
            &config,
            seed_users,
        )
        .await;
        let mut wall = t.elapsed();
        let mut requests = requests;
        let mut note = "";
        if done < users {
            let scale = users as f64 / done as f64;
            wall = wall.mul_f64(scale);
            requests = (requests as f64 * scale) as u64;
            note = "scaled from a sample";
        }
        let seed = Row {
            what: format!("seed pattern: full sync ({done} users measured)"),
            users,
            requests,
            wall,
            events: users as u64,
            throttled: h.emulator.throttled_responses(),
            note,
        };

        println!(
            "\nGraph calls, {users} users, {} ms latency per request\n",
            latency.as_millis()
        );
        println!("| run | users | Graph requests | requests/user | wall s | 429s | events | note |");
        println!("|---|---|---|---|---|---|---|---|");
        seed.print();
        for r in &rows {
            r.print();
        }
        println!(
            "\nfull sync: ours is {:.0}x faster than the seed's pattern, with {:.1}x fewer requests",
            seed.wall.as_secs_f64() / ours_full.as_secs_f64(),
            seed.requests as f64 / rows[0].requests as f64
        );
    });
}
