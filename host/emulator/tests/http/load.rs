//! A load run shaped like the demo (10,000 users, ~35,000 requests), ignored by default:
//! `cargo test -p graph-emulator --release -- --ignored --nocapture load`.

use std::sync::Arc;
use std::time::Instant;

use graph_emulator::{Endpoint, Tenant};

use crate::common::{start_generous, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --release --ignored"]
async fn load_like_the_demo() {
    let began = Instant::now();
    let tenant_size = 10_000;
    let _ = Tenant::generated(1, tenant_size);
    println!("generated {tenant_size} users in {:?}", began.elapsed());
    // generous: a throughput benchmark, not a test of Graph's limits (the reports limit would
    // hold the signInActivity sweep for minutes, and authentication/methods takes no $top).
    let emulator = start_generous(1, tenant_size).await;
    let client = Arc::new(Client::new(&emulator).await);
    let began = Instant::now();
    let pages = client
        .walk(
            "/v1.0/users?$select=id,displayName,mail,createdDateTime,signInActivity&$top=500",
            &[],
        )
        .await;
    let ids = crate::common::ids(&pages);
    assert_eq!(ids.len(), tenant_size);
    println!(
        "listed users in {} pages in {:?}",
        pages.len(),
        began.elapsed()
    );
    let began = Instant::now();
    let ids = Arc::new(ids);
    let mut workers = Vec::new();
    for worker in 0..16 {
        let client = Arc::clone(&client);
        let ids = Arc::clone(&ids);
        workers.push(tokio::spawn(async move {
            for id in ids.iter().skip(worker).step_by(16) {
                for path in ["memberOf", "authentication/methods"] {
                    let pages = client.walk(&format!("/v1.0/users/{id}/{path}?$top=999"), &[]).await;
                    assert_eq!(pages.len(), 1);
                }
                let roles = client
                    .get(
                        &format!("/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"),
                        &[("ConsistencyLevel", "eventual")],
                    )
                    .await;
                assert_eq!(roles.status, 200);
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker ran");
    }
    let total = emulator.total_requests();
    let elapsed = began.elapsed();
    println!(
        "{} per-user requests in {elapsed:?} ({:.0}/s); {total} in all",
        emulator.counters()[&Endpoint::MemberOf] * 3,
        (tenant_size * 3) as f64 / elapsed.as_secs_f64()
    );
    assert!(total >= 30_000);
    emulator.shutdown().await;
}
