//! Memory of a generated tenant in the emulator, stage by stage (Linux: `/proc/self/status`).
//!
//! `cargo run --release -p graph-emulator --example tenant_memory -- 100000`
//!
//! Prints a table of resident memory (VmRSS) and its peak (VmHWM) after generating the
//! tenant, after starting the emulator on it (the live directory and its indexes), after the
//! first `/groups` request (the derived catalog of groups, roles, members and grants) and after
//! the first registration-report page, with the tenant's membership counts, so the cost per
//! user and per membership can be read off and extrapolated.

use std::collections::HashSet;

use graph_emulator::{Emulator, EmulatorConfig, Tenant};

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users: usize = match std::env::args().nth(1) {
        None => 100_000,
        Some(text) => text.parse().map_err(|_| {
            anyhow::anyhow!("the argument is the number of users (e.g. 100000), not '{text}'")
        })?,
    };
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
