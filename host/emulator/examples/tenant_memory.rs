//! Memory of a generated tenant in the emulator, stage by stage (Linux: `/proc/self/status`).
//!
//! `cargo run --release -p graph-emulator --example tenant_memory -- 100000`
//! `cargo run --release -p graph-emulator --example tenant_memory -- --scale 1000000`
//!
//! Prints a table of resident memory (VmRSS) and its peak (VmHWM) after generating the
//! tenant, after starting the emulator on it (the live directory and its indexes), after the
//! first `/groups` request (the derived catalog of groups, roles, members and grants) and after
//! the first registration-report page, with the tenant's membership counts, so the cost per
//! user and per membership can be read off and extrapolated.
//!
//! With `--scale N`: the enterprise tenant of `ScaleSpec::enterprise(7, N)` generated straight
//! into the directory (`Emulator::start_scaled`), then one page of every endpoint a sync reads
//! (users, sign-in activity, users/delta, groups, groups/delta, a huge group's members, a wide
//! user's memberOf, roles, the registration report), then a batch of 1,000 changes and the
//! catalog rebuild it costs, each row with its wall time.

use std::collections::HashSet;

use std::time::Instant;

use graph_emulator::{Emulator, EmulatorConfig, ScaleSpec, Tenant, GROUP_TYPE};

/// (VmRSS, VmHWM) in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn row(stage: &str, users: usize) {
    let (rss, hwm) = memory();
    let per_user = rss * 1024.0 * 1024.0 / users as f64;
    println!("| {stage:<38} | {rss:>9.1} | {hwm:>9.1} | {per_user:>12.0} |");
}

fn timed_row(stage: &str, users: usize, started: Instant) {
    let (rss, hwm) = memory();
    let per_user = rss * 1024.0 * 1024.0 / users as f64;
    let secs = started.elapsed().as_secs_f64();
    println!("| {stage:<44} | {rss:>9.1} | {hwm:>9.1} | {per_user:>9.0} | {secs:>8.2} |");
}

fn parse_users(text: Option<String>) -> anyhow::Result<usize> {
    match text {
        None => Ok(100_000),
        Some(text) => text.parse().map_err(|_| {
            anyhow::anyhow!("the argument is the number of users (e.g. 100000), not '{text}'")
        }),
    }
}

/// A token for the emulator's own application.
async fn token(emulator: &Emulator, http: &reqwest::Client) -> anyhow::Result<String> {
    let config = emulator.config();
    let token: serde_json::Value = serde_json::from_slice(
        &http
            .post(emulator.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", config.client_id.as_str()),
                ("client_secret", config.client_secret.as_str()),
                ("scope", emulator.scope().as_str()),
            ])
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    Ok(token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// `--scale N`: the enterprise tenant, every endpoint once, then a batch of changes.
async fn scaled(users: usize) -> anyhow::Result<()> {
    let spec = ScaleSpec::enterprise(7, users);
    println!(
        "| stage (enterprise tenant, {users} users)          | RSS (MiB) | peak (MiB)| B / user  | time (s) |"
    );
    println!("|----------------------------------------------|-----------|-----------|-----------|----------|");
    timed_row("start", users, Instant::now());
    let started = Instant::now();
    let emulator = Emulator::start_scaled(
        &spec,
        EmulatorConfig {
            reports_limit: None,
            sign_in_activity_limit: None,
            ..EmulatorConfig::default()
        },
    )
    .await?;
    timed_row("Emulator::start_scaled (generated)", users, started);
    let http = reqwest::Client::new();
    let token = token(&emulator, &http).await?;
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", emulator.graph_endpoint());
        let token = token.clone();
        async move {
            let response = http
                .get(url)
                .bearer_auth(token)
                .header("ConsistencyLevel", "eventual")
                .send()
                .await?;
            let status = response.status();
            let body = response.bytes().await?;
            anyhow::ensure!(
                status.is_success(),
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            Ok::<usize, anyhow::Error>(body.len())
        }
    };
    let huge = spec.group_id(0);
    let wide = spec.user_id(spec.users / spec.wide_users.max(1) / 2);
    let pages: Vec<(&str, String)> = vec![
        ("/users (999)", "/v1.0/users?$top=999".to_owned()),
        (
            "/users signInActivity (500)",
            "/v1.0/users?$select=id,signInActivity&$top=500".to_owned(),
        ),
        ("/users/delta", "/v1.0/users/delta".to_owned()),
        (
            "/groups (first: builds the catalog)",
            "/v1.0/groups?$top=999".to_owned(),
        ),
        ("/groups/delta", "/v1.0/groups/delta".to_owned()),
        (
            "huge group /members (999)",
            format!("/v1.0/groups/{huge}/members?$top=999"),
        ),
        (
            "wide user /memberOf (999)",
            format!("/v1.0/users/{wide}/memberOf?$top=999"),
        ),
        ("/directoryRoles", "/v1.0/directoryRoles".to_owned()),
        (
            "roleEligibilityScheduleInstances",
            "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances".to_owned(),
        ),
        (
            "registration report page",
            "/v1.0/reports/authenticationMethods/userRegistrationDetails".to_owned(),
        ),
    ];
    for (stage, path) in pages {
        let started = Instant::now();
        get(path).await?;
        timed_row(stage, users, started);
    }
    // A batch of 1,000 changes, then one request: one catalog rebuild.
    let started = Instant::now();
    let ids: Vec<String> = (0..1_000)
        .map(|i| spec.user_id(i * (users / 1_000).max(1) % users))
        .collect();
    let extra = spec.group_id(spec.groups - 1);
    for (n, id) in ids.iter().enumerate() {
        match n % 4 {
            0 => {
                emulator.update_user(id, serde_json::json!({"jobTitle": "Scale tester"}));
            }
            1 => {
                let group = extra.clone();
                emulator.modify_relations(id, move |sim| {
                    sim.member_of.retain(|m| m["@odata.type"] != GROUP_TYPE);
                    sim.member_of.push(serde_json::json!({
                        "@odata.type": GROUP_TYPE,
                        "id": group,
                        "displayName": "Moved here",
                    }));
                });
            }
            2 => {
                emulator.modify_user(id, |sim| sim.auth_methods.clear());
            }
            _ => {
                emulator.remove_user(id);
            }
        }
    }
    timed_row(
        "1,000 changes (update/relations/modify/remove)",
        users,
        started,
    );
    let started = Instant::now();
    get("/v1.0/groups?$top=999".to_owned()).await?;
    timed_row("/groups after the batch (catalog rebuilt)", users, started);
    let started = Instant::now();
    get("/v1.0/groups/delta".to_owned()).await?;
    timed_row("/groups/delta after the batch", users, started);
    let started = Instant::now();
    let count = emulator.user_ids().len();
    timed_row("Emulator::user_ids", users, started);
    println!();
    println!(
        "{users} users ({count} live after the batch), {} groups, {} direct group memberships ({:.2} a user), {} wide users in {} groups, {} huge groups of ~{}",
        spec.groups,
        spec.total_memberships(),
        spec.total_memberships() as f64 / users as f64,
        spec.wide_users,
        spec.wide_user_groups,
        spec.huge_groups,
        spec.huge_group_members
    );
    emulator.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--scale") {
        return scaled(parse_users(args.next())?).await;
    }
    let users = parse_users(first)?;
    println!(
        "| stage ({users} users)                   | RSS (MiB) | peak (MiB)| RSS / user (B) |"
    );
    println!("|----------------------------------------|-----------|-----------|----------------|");
    row("start", users);
    let tenant = Tenant::generated(7, users);
    let memberships: usize = tenant.users().iter().map(|u| u.member_of.len()).sum();
    let inherited: usize = tenant.users().iter().map(|u| u.inherited_roles.len()).sum();
    let methods: usize = tenant.users().iter().map(|u| u.auth_methods.len()).sum();
    let groups: HashSet<&str> = tenant
        .users()
        .iter()
        .flat_map(|u| &u.member_of)
        .filter_map(|m| m.get("id").and_then(|v| v.as_str()))
        .collect();
    let distinct = groups.len();
    drop(groups);
    row("Tenant::generated", users);
    let emulator = Emulator::start(
        tenant,
        EmulatorConfig {
            reports_limit: None,
            ..EmulatorConfig::default()
        },
    )
    .await?;
    row("Emulator::start (directory, indexes)", users);
    let config = emulator.config();
    let http = reqwest::Client::new();
    let token: serde_json::Value = serde_json::from_slice(
        &http
            .post(emulator.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", config.client_id.as_str()),
                ("client_secret", config.client_secret.as_str()),
                ("scope", emulator.scope().as_str()),
            ])
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let get = |path: &str| {
        http.get(format!("{}{path}", emulator.graph_endpoint()))
            .bearer_auth(&token)
            .send()
    };
    let status = get("/v1.0/groups?$top=1").await?.status();
    anyhow::ensure!(status.is_success(), "/groups answered {status}");
    row("first /groups (catalog)", users);
    let status = get("/v1.0/reports/authenticationMethods/userRegistrationDetails")
        .await?
        .status();
    anyhow::ensure!(status.is_success(), "the report answered {status}");
    row("first report page", users);

    // What each part costs: copies of the users' parts, measured by the growth they cause.
    let snapshot = emulator.users();
    row("a copy of the tenant (Emulator::users)", users);
    let before = memory().0;
    let member_lists: Vec<Vec<serde_json::Value>> =
        snapshot.iter().map(|u| u.member_of.clone()).collect();
    let per_membership = (memory().0 - before) * 1048576.0 / memberships.max(1) as f64;
    let before = memory().0;
    let objects: Vec<serde_json::Value> = snapshot.iter().map(|u| u.user.clone()).collect();
    let per_object = (memory().0 - before) * 1048576.0 / users as f64;
    let before = memory().0;
    let method_lists: Vec<Vec<String>> = snapshot.iter().map(|u| u.auth_methods.clone()).collect();
    let per_method = (memory().0 - before) * 1048576.0 / methods.max(1) as f64;
    println!();
    println!(
        "parts: {per_object:.0} B per user object (JSON), {per_membership:.0} B per memberOf entry (JSON), {per_method:.0} B per authentication method"
    );
    drop((member_lists, objects, method_lists, snapshot));
    println!(
        "{users} users: {memberships} memberOf entries ({:.2} a user, {distinct} distinct objects), {inherited} inherited roles, {methods} authentication methods",
        memberships as f64 / users as f64
    );
    emulator.shutdown().await;
    Ok(())
}
