//! What a full walk of a generated org costs the emulator: generation time, then every user
//! through `search=status pr` (200 a page, Link paging) over loopback HTTP with an API token,
//! and every factor list of the first 2,000 users, on a clock that moves one minute per 250
//! requests so the per-minute buckets never refuse (a figure of the emulator, not of a client).
//!
//! `cargo run --release -p okta-emulator --example walk -- 100000`

use std::time::{Duration, Instant};

use okta_emulator::{Emulator, OktaClock, OktaConfig, Org, DEFAULT_API_TOKEN};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|_| {
            anyhow::anyhow!("the argument '{n}' is not a number of users; give e.g. 100000")
        })?,
        None => 10_000,
    };
    let clock = OktaClock::manual(1_780_000_000_000);
    let started = Instant::now();
    let org = Org::generated(7, users, clock.now_ms());
    let generated = started.elapsed();
    let emulator = Emulator::start(org, OktaConfig::default(), clock.clone()).await?;
    let http = reqwest::Client::new();
    let auth = format!("SSWS {DEFAULT_API_TOKEN}");
    let mut url = format!(
        "{}/api/v1/users?search=status%20pr&limit=200",
        emulator.base_url()
    );
    let (mut pages, mut seen, mut requests) = (0, 0, 0u32);
    let walk = Instant::now();
    loop {
        let response = http.get(&url).header("Authorization", &auth).send().await?;
        requests += 1;
        if requests % 250 == 0 {
            clock.advance(Duration::from_secs(60));
        }
        anyhow::ensure!(
            response.status() == 200,
            "page {pages}: {}",
            response.status()
        );
        let next = response
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.ends_with("rel=\"next\""))
            .map(|v| v[1..v.find('>').unwrap_or(1)].to_owned());
        let body: serde_json::Value = serde_json::from_str(&response.text().await?)?;
        seen += body.as_array().map_or(0, Vec::len);
        pages += 1;
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    let walked = walk.elapsed();
    let ids: Vec<String> =
        emulator.with_org(|org| org.users().take(2_000).map(|u| u.id.clone()).collect());
    let factors = Instant::now();
    for id in &ids {
        let response = http
            .get(format!("{}/api/v1/users/{id}/factors", emulator.base_url()))
            .header("Authorization", &auth)
            .send()
            .await?;
        requests += 1;
        if requests % 250 == 0 {
            clock.advance(Duration::from_secs(60));
        }
        anyhow::ensure!(
            response.status() == 200,
            "factors of {id}: {}",
            response.status()
        );
        response.bytes().await?;
    }
    let factor_time = factors.elapsed();
    println!(
        "users {users}: generated in {:.2} s; walked {seen} users in {pages} pages in {:.2} s ({:.1} ms a page); {} factor lists in {:.2} s ({:.2} ms each)",
        generated.as_secs_f64(),
        walked.as_secs_f64(),
        walked.as_secs_f64() * 1000.0 / f64::from(pages),
        ids.len(),
        factor_time.as_secs_f64(),
        factor_time.as_secs_f64() * 1000.0 / ids.len() as f64
    );
    emulator.shutdown().await;
    Ok(())
}
