//! The PostgreSQL store, migrations, leases and fencing against a real PostgreSQL: the
//! throwaway cluster `scripts/test-postgres` sets up (the README's test command runs it
//! first). Nothing is mocked. Each test makes its own database, so tests run in parallel.
//!
//! `CONNECTOR_TEST_POSTGRES_URL`, `CONNECTOR_TEST_POSTGRES_PASSWORD` and
//! `CONNECTOR_TEST_POSTGRES_CA` point the tests elsewhere; the defaults are what the script
//! prints. A test that cannot reach the server fails (never skips), saying what to run.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use connector_host::doors::checkpoint::{
    CheckpointError, CheckpointPolicy, CheckpointStore, PostgresCheckpointStore,
};
use connector_host::fleet::{Database, DatabaseError, Fleet, LeaseOutcome, Password};

/// What `scripts/test-postgres` sets up.
mod pg;
use pg::*;

async fn fleet(url: &str, host: &str) -> Fleet {
    Fleet::connect(url, Some(&password()), host)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

const LONG: Duration = Duration::from_secs(600);

#[tokio::test]
async fn store_compare_and_set_namespaces_and_reopen() {
    let url = fresh_database("store_cas").await;
    let s = PostgresCheckpointStore::connect(&url, Some(&password()))
        .await
        .unwrap();
    assert_eq!(s.get("a/x", "k").await.unwrap(), None);
    assert_eq!(s.set("a/x", "k", b"1", None).await.unwrap(), 1);
    assert_eq!(
        s.set("a/x", "k", b"2", None).await,
        Err(CheckpointError::Conflict { current: Some(1) })
    );
    assert_eq!(
        s.set("a/x", "k", b"2", Some(7)).await,
        Err(CheckpointError::Conflict { current: Some(1) })
    );
    assert_eq!(
        s.set("a/x", "other", b"2", Some(1)).await,
        Err(CheckpointError::Conflict { current: None }),
        "expecting a version of a key that does not exist"
    );
    assert_eq!(s.set("a/x", "k", b"2", Some(1)).await.unwrap(), 2);
    assert_eq!(
        s.get("b/x", "k").await.unwrap(),
        None,
        "namespaces are separate"
    );
    assert_eq!(s.set("b/x", "k", b"b", None).await.unwrap(), 1);
    drop(s);
    let s = PostgresCheckpointStore::connect(&url, Some(&password()))
        .await
        .unwrap();
    assert_eq!(
        s.get("a/x", "k").await.unwrap(),
        Some((b"2".to_vec(), 2)),
        "durable across reopen"
    );
    assert_eq!(s.get("b/x", "k").await.unwrap(), Some((b"b".to_vec(), 1)));
}

#[tokio::test]
async fn store_two_writers_with_one_expected_version_exactly_one_wins() {
    let url = fresh_database("store_race").await;
    let s = Arc::new(
        PostgresCheckpointStore::connect(&url, Some(&password()))
            .await
            .unwrap(),
    );
    assert_eq!(s.set("t/c", "cursor", b"0", None).await.unwrap(), 1);
    for round in 1..=20u64 {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.set("t/c", "cursor", format!("{w}").as_bytes(), Some(round))
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for w in writers {
            match w.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, round + 1);
                    won += 1
                }
                Err(CheckpointError::Conflict { current }) => {
                    assert_eq!(current, Some(round + 1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            won, 1,
            "round {round}: exactly one compare-and-set succeeds"
        );
    }
}

#[tokio::test]
async fn store_keeps_values_at_the_caps_byte_for_byte() {
    let url = fresh_database("store_caps").await;
    let s = PostgresCheckpointStore::connect(&url, Some(&password()))
        .await
        .unwrap();
    let caps = CheckpointPolicy::default();
    let key = "k".repeat(caps.max_key_bytes);
    let value: Vec<u8> = (0..caps.max_value_bytes).map(|i| (i % 251) as u8).collect();
    assert_eq!(s.set("t/c", &key, &value, None).await.unwrap(), 1);
    let (read, version) = s.get("t/c", &key).await.unwrap().unwrap();
    assert_eq!(version, 1);
    assert!(read == value, "the 4 MiB value comes back byte for byte");
    let binary: Vec<u8> = (0..=255u8).collect();
    assert_eq!(s.set("t/c", "bin", &binary, None).await.unwrap(), 1);
    assert_eq!(
        s.get("t/c", "bin").await.unwrap(),
        Some((binary, 1)),
        "every byte value, NUL included"
    );
}

#[tokio::test]
async fn migrations_from_two_hosts_at_once_apply_once() {
    let url = fresh_database("migrate_race").await;
    let pw = password();
    let (a, b) = tokio::join!(
        Database::connect(&url, Some(&pw)),
        Database::connect(&url, Some(&pw))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (ra, rb) = tokio::join!(
        connector_host::postgres::migrate::migrate(&a),
        connector_host::postgres::migrate::migrate(&b)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut all = ra.clone();
    all.extend(&rb);
    assert_eq!(
        all,
        [1, 2, 3, 4],
        "one migrator applied 0001 to 0004, the other nothing: {ra:?} {rb:?}"
    );
    assert_eq!(
        connector_host::postgres::migrate::migrate(&a)
            .await
            .unwrap(),
        Vec::<i32>::new(),
        "idempotent"
    );
    let admin = admin().await;
    drop(admin);
    let check = {
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
        let (c, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c
    };
    let rows = check
        .query("SELECT version FROM connector_schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "0001 to 0004, once each");
    let tables = check
        .query(
            "SELECT count(*) FROM information_schema.tables
             WHERE table_name IN ('checkpoints', 'fleet_tenants', 'fleet_runs', 'fleet_hosts', 'host_run_status')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(tables[0].get::<_, i64>(0), 5);
}

#[tokio::test]
async fn migrations_an_edited_applied_file_stops_start_up() {
    let url = fresh_database("migrate_edited").await;
    let f = fleet(&url, "a").await;
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
    let (c, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.execute(
        "UPDATE connector_schema_migrations SET sha256 = 'edited' WHERE version = 1",
        &[],
    )
    .await
    .unwrap();
    let e = f.migrate().await.unwrap_err().to_string();
    assert!(
        e.contains("0001_fleet.sql was changed after it was applied") && !e.contains('\n'),
        "{e}"
    );
    c.execute(
        "INSERT INTO connector_schema_migrations (version, name, sha256) VALUES (999, '0999_future.sql', 'x')",
        &[],
    )
    .await
    .unwrap();
    c.execute(
        "DELETE FROM connector_schema_migrations WHERE version = 1",
        &[],
    )
    .await
    .unwrap();
    let e = f.migrate().await.unwrap_err().to_string();
    assert!(
        e.contains("migration 999") && e.contains("newer host"),
        "{e}"
    );
}

#[tokio::test]
async fn claim_is_exclusive_under_concurrency() {
    let url = fresh_database("claim_race").await;
    let tenants: Vec<String> = (0..60).map(|i| format!("t{i:03}")).collect();
    let first = fleet(&url, "host-0").await;
    assert_eq!(first.register(&tenants).await.unwrap(), 60);
    assert_eq!(
        first.register(&tenants).await.unwrap(),
        0,
        "registering is idempotent"
    );
    let mut hosts = vec![first];
    for h in 1..8 {
        let f = fleet(&url, &format!("host-{h}")).await;
        assert_eq!(f.register(&tenants).await.unwrap(), 0);
        hosts.push(f);
    }
    // Every host claims at once, repeatedly, until nothing is left.
    let claimers: Vec<_> = hosts
        .into_iter()
        .map(|f| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = f.claim(3, LONG).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    assert!(got.iter().all(|l| l.host == f.host() && !l.takeover));
                    mine.extend(got);
                }
            })
        })
        .collect();
    let mut leases = Vec::new();
    for c in claimers {
        leases.extend(c.await.unwrap());
    }
    let names: BTreeSet<_> = leases.iter().map(|l| l.tenant.clone()).collect();
    assert_eq!(leases.len(), 60, "each tenant claimed exactly once");
    assert_eq!(names, tenants.iter().cloned().collect::<BTreeSet<_>>());
    let tokens: BTreeSet<_> = leases.iter().map(|l| l.token).collect();
    assert_eq!(tokens.len(), 60, "fencing tokens are unique");
    let f = fleet(&url, "observer").await;
    assert!(f.overlapping_runs().await.unwrap().is_empty());
    f.register(&tenants).await.unwrap();
    let wait = f.time_to_next_claim().await.unwrap().unwrap();
    assert!(
        wait > LONG / 2 && wait <= LONG,
        "every tenant is leased for {LONG:?}: {wait:?}"
    );
}

/// Issue 19, point 7: claims spread evenly. Two hosts registered on 40 due tenants claim
/// at once, repeatedly, as much as they have room for (64): each ends with its share, 20
/// (give or take the ±2 of claims racing), not whatever it grabbed first. A lone host, or one
/// whose peer has not been seen within the TTL, takes everything.
#[tokio::test]
async fn claims_spread_evenly_over_the_live_hosts() {
    let url = fresh_database("claim_share").await;
    let tenants: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    let a = fleet(&url, "host-a").await;
    let b = fleet(&url, "host-b").await;
    a.register(&tenants).await.unwrap();
    b.register(&tenants).await.unwrap();
    let claimer = |f: Fleet| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..5 {
                mine.extend(f.claim(64, LONG).await.unwrap());
            }
            mine
        })
    };
    let (la, lb) = (claimer(a.clone()), claimer(b.clone()));
    let (la, lb) = (la.await.unwrap(), lb.await.unwrap());
    assert_eq!(la.len() + lb.len(), 40, "every tenant claimed");
    for (host, leases) in [("host-a", &la), ("host-b", &lb)] {
        assert!(
            (18..=22).contains(&leases.len()),
            "{host} holds {} of 40, not its share (20±2)",
            leases.len()
        );
    }
    // A lone host takes everything.
    let url = fresh_database("claim_share_lone").await;
    let lone = fleet(&url, "host-lone").await;
    lone.register(&tenants).await.unwrap();
    assert_eq!(lone.claim(64, LONG).await.unwrap().len(), 40);

    // A peer not seen within the TTL is not live: everything again.
    let url = fresh_database("claim_share_gone").await;
    let (c, gone) = (fleet(&url, "host-c").await, fleet(&url, "host-gone").await);
    gone.register(&tenants).await.unwrap();
    c.register(&tenants).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.register(&tenants).await.unwrap();
    assert_eq!(c.claim(64, Duration::from_secs(1)).await.unwrap().len(), 40);
}

#[tokio::test]
async fn expired_lease_is_taken_over_with_a_higher_token() {
    let url = fresh_database("takeover").await;
    let a = fleet(&url, "host-a").await;
    let b = fleet(&url, "host-b").await;
    a.register(&["contoso".to_string()]).await.unwrap();
    assert!(
        b.claim(10, LONG).await.unwrap().is_empty(),
        "a host claims only the tenants it registered"
    );
    b.register(&["contoso".to_string()]).await.unwrap();
    let la = a.claim(10, LONG).await.unwrap();
    assert_eq!(la.len(), 1);
    let la = la.into_iter().next().unwrap();
    assert!(!la.takeover);
    assert!(
        b.claim(10, LONG).await.unwrap().is_empty(),
        "held: not claimable"
    );
    // Host A stops renewing: its last renewal gives the lease one more second (a
    // short TTL set only now, so the checks above cannot race it on a busy machine).
    assert!(a.renew(&la, Duration::from_secs(1)).await.unwrap());
    let expired_at = a.state("contoso").await.unwrap().unwrap().lease_expires;
    assert!(expired_at.is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b.time_to_next_claim().await.unwrap(), Some(Duration::ZERO));
    let lb = b.claim(10, LONG).await.unwrap();
    assert_eq!(lb.len(), 1, "expired: claimable");
    let lb = lb.into_iter().next().unwrap();
    assert!(lb.takeover);
    assert_eq!(lb.previous_host.as_deref(), Some("host-a"));
    assert!(lb.token > la.token, "{} > {}", lb.token, la.token);
    assert!(!a.renew(&la, LONG).await.unwrap(), "the old holder lost it");
    assert!(
        !a.release(&la, &LeaseOutcome::succeeded(Duration::ZERO))
            .await
            .unwrap(),
        "the old holder cannot release (nor reschedule) it"
    );
    assert!(b.renew(&lb, LONG).await.unwrap());
    let state = b.state("contoso").await.unwrap().unwrap();
    assert_eq!(state.lease_host.as_deref(), Some("host-b"));
    assert_eq!(state.lease_token, Some(lb.token));
    let runs = b.runs("contoso").await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].token, la.token);
    assert_eq!(runs[0].outcome.as_deref(), Some("expired"));
    assert_eq!(runs[0].ended, expired_at, "closed when its lease ran out");
    assert_eq!((runs[1].token, runs[1].ended), (lb.token, None));
    assert!(b.overlapping_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn fencing_refuses_a_stale_token_after_another_host_took_the_lease() {
    let url = fresh_database("fencing").await;
    let a = fleet(&url, "host-a").await;
    let b = fleet(&url, "host-b").await;
    for f in [&a, &b] {
        f.register(&["contoso".to_string(), "fabrikam".to_string()])
            .await
            .unwrap();
    }
    let leases = a.claim(10, LONG).await.unwrap();
    let la = leases
        .iter()
        .find(|l| l.tenant == "contoso")
        .unwrap()
        .clone();
    let store_a = a.checkpoint_store(&la);
    assert_eq!(
        store_a.set("contoso/entra", "cursor", b"a1", None).await,
        Ok(1)
    );
    assert!(
        matches!(
            store_a.set("fabrikam/entra", "cursor", b"x", None).await,
            Err(CheckpointError::Storage(m)) if m.contains("not tenant 'contoso''s")
        ),
        "a lease writes only its own tenant's namespaces"
    );
    // Host A stalls past its lease; host B takes contoso over.
    // It stops renewing: its last renewal gives the lease one more second (a
    // short TTL set only now, so the checks above cannot race it on a busy machine).
    assert!(a.renew(&la, Duration::from_secs(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lb = b
        .claim(10, LONG)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.tenant == "contoso")
        .unwrap();
    assert!(lb.takeover);
    // A resumes and tries to move the cursor: refused, naming the stale token.
    let refused = store_a
        .set("contoso/entra", "cursor", b"a2", Some(1))
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        CheckpointError::Fenced {
            tenant: "contoso".into(),
            token: la.token,
            current: Some(lb.token),
        }
    );
    let text = refused.to_string();
    assert!(
        text.contains(&format!(
            "lease token {} of tenant 'contoso' is stale",
            la.token
        )) && text.contains(&format!("current lease token is {}", lb.token))
            && !text.contains('\n'),
        "{text}"
    );
    assert_eq!(a.fenced_writes(), 1);
    // B's writes go through, and see A's last committed cursor.
    let store_b = b.checkpoint_store(&lb);
    assert_eq!(
        store_b.get("contoso/entra", "cursor").await.unwrap(),
        Some((b"a1".to_vec(), 1)),
        "the stale write moved nothing"
    );
    assert_eq!(
        store_b.set("contoso/entra", "cursor", b"b2", Some(1)).await,
        Ok(2)
    );
    assert_eq!(b.fenced_writes(), 0);
    // A fresh key is fenced too (the insert path).
    assert!(matches!(
        store_a.set("contoso/entra", "new-key", b"a", None).await,
        Err(CheckpointError::Fenced { .. })
    ));
    assert_eq!(a.fenced_writes(), 2);
    // Once B releases, its own token is no longer current either.
    assert!(b
        .release(&lb, &LeaseOutcome::succeeded(LONG))
        .await
        .unwrap());
    assert!(matches!(
        store_b.set("contoso/entra", "cursor", b"b3", Some(2)).await,
        Err(CheckpointError::Fenced { current: Some(t), .. }) if t == lb.token
    ));
    assert_eq!(b.fenced_writes(), 1);
}

#[tokio::test]
async fn release_stores_the_schedule_and_it_survives_a_restart() {
    let url = fresh_database("schedule").await;
    let a = fleet(&url, "host-a").await;
    a.register(&["contoso".to_string(), "fabrikam".to_string()])
        .await
        .unwrap();
    let leases = a.claim(10, LONG).await.unwrap();
    assert_eq!(leases.len(), 2);
    let contoso = leases.iter().find(|l| l.tenant == "contoso").unwrap();
    let fabrikam = leases.iter().find(|l| l.tenant == "fabrikam").unwrap();
    assert_eq!(contoso.failures, 0);
    assert!(a
        .release(
            contoso,
            &LeaseOutcome::failed("Graph answered 503", Duration::from_secs(3600))
        )
        .await
        .unwrap());
    assert!(a
        .release(
            fabrikam,
            &LeaseOutcome::failed("Graph answered 503", Duration::ZERO)
        )
        .await
        .unwrap());
    let before = a.state("contoso").await.unwrap().unwrap();
    assert_eq!(before.consecutive_failures, 1);
    assert_eq!(before.last_outcome.as_deref(), Some("failed"));
    assert_eq!(
        (before.lease_host.as_ref(), before.lease_expires),
        (None, None)
    );
    // A restart (a new handle, a re-registration) keeps the schedule.
    drop(a);
    let a = fleet(&url, "host-a-restarted").await;
    assert_eq!(
        a.register(&["contoso".to_string(), "fabrikam".to_string()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(a.state("contoso").await.unwrap().unwrap(), before);
    let wait = a.time_to_next_claim().await.unwrap().unwrap();
    assert_eq!(wait, Duration::ZERO, "fabrikam is due now");
    // Only fabrikam is due; its lease says how many failures preceded it.
    let again = a.claim(10, LONG).await.unwrap();
    assert_eq!(again.len(), 1, "contoso is not due for an hour");
    assert_eq!(
        (again[0].tenant.as_str(), again[0].failures),
        ("fabrikam", 1)
    );
    assert!(a
        .release(
            &again[0],
            &LeaseOutcome::succeeded(Duration::from_secs(7200))
        )
        .await
        .unwrap());
    let wait = a.time_to_next_claim().await.unwrap().unwrap();
    assert!(
        wait > Duration::from_secs(3000) && wait <= Duration::from_secs(3600),
        "contoso is next, in an hour (fabrikam in two): {wait:?}"
    );
    let after = a.state("fabrikam").await.unwrap().unwrap();
    assert_eq!(
        after.consecutive_failures, 0,
        "a success resets the failures"
    );
    assert_eq!(after.last_outcome.as_deref(), Some("succeeded"));
    let runs = a.runs("fabrikam").await.unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r.outcome.as_deref())
            .collect::<Vec<_>>(),
        [Some("failed"), Some("succeeded")]
    );
    assert_eq!(runs[0].message.as_deref(), Some("Graph answered 503"));
    assert!(a.overlapping_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn coordination_costs_three_round_trips_per_run() {
    let url = fresh_database("round_trips").await;
    let f = fleet(&url, "host-a").await;
    f.register(&["contoso".to_string()]).await.unwrap();
    let one_run = |f: Fleet| async move {
        let before = f.round_trips();
        let lease = f.claim(1, LONG).await.unwrap().pop().unwrap();
        assert!(f.renew(&lease, LONG).await.unwrap());
        assert!(f
            .release(&lease, &LeaseOutcome::succeeded(Duration::ZERO))
            .await
            .unwrap());
        f.round_trips() - before
    };
    let first = one_run(f.clone()).await;
    // The pool may hand out another connection, which prepares its statements once.
    let steady = one_run(f.clone()).await.min(one_run(f.clone()).await);
    assert!(first >= steady);
    assert_eq!(
        steady, 3,
        "claim (with its history row), one renewal, release (with its history row)"
    );
}

#[tokio::test]
async fn overlapping_runs_are_found() {
    // The drill's oracle must be able to fail: plant two overlapping runs of one tenant.
    let url = fresh_database("overlap").await;
    let f = fleet(&url, "host-a").await;
    f.register(&["contoso".to_string()]).await.unwrap();
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
    let (c, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(
        "INSERT INTO fleet_runs (token, tenant, host, started, ended) VALUES
           (100, 'contoso', 'a', now() - interval '10 minutes', now() - interval '5 minutes'),
           (101, 'contoso', 'b', now() - interval '6 minutes', NULL),
           (102, 'contoso', 'c', now() - interval '20 minutes', now() - interval '10 minutes')",
    )
    .await
    .unwrap();
    let pairs = f.overlapping_runs().await.unwrap();
    let tokens: Vec<_> = pairs.iter().map(|(a, b)| (a.token, b.token)).collect();
    assert_eq!(
        tokens,
        [(100, 101)],
        "touching intervals (102 then 100) do not overlap"
    );
}

#[tokio::test]
async fn operator_a_password_in_the_url_is_refused() {
    let url = base_url().replacen("connector_test@", "connector_test:hunter2-value@", 1);
    let e = Fleet::connect(&url, None, "a").await.unwrap_err();
    assert!(matches!(e, DatabaseError::Config { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("holds a password") && !text.contains("hunter2") && !text.contains('\n'),
        "{text}"
    );
}

#[tokio::test]
async fn operator_a_missing_database_is_one_line_saying_what_to_do() {
    let _ = admin().await; // the server itself is up
    let e = Fleet::connect(&url_of("ct_no_such_database"), Some(&password()), "a")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, DatabaseError::Unavailable { .. }), "{e:?}");
    assert!(
        text.contains("ct_no_such_database")
            && text.contains("does not exist")
            && text.contains("create it")
            && !text.contains('\n'),
        "{text}"
    );
}

#[tokio::test]
async fn operator_a_wrong_password_is_one_line() {
    let _ = admin().await;
    let e = Database::connect(&base_url(), Some(&Password::new("not-the-password")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("password authentication failed")
            && e.contains("[state] password")
            && !e.contains("not-the-password")
            && !e.contains('\n'),
        "{e}"
    );
}

#[tokio::test]
async fn tls_verify_full_against_the_databases_ca_and_refusal_without_it() {
    let ca = env_or("CONNECTOR_TEST_POSTGRES_CA", DEFAULT_CA);
    let admin = admin().await;
    let mut url = url::Url::parse(&base_url()).unwrap();
    url.query_pairs_mut()
        .append_pair("sslmode", "verify-full")
        .append_pair("sslrootcert", &ca)
        .append_pair("application_name", "connector-tls-test");
    let db = Database::connect(url.as_str(), Some(&password()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'connector-tls-test'",
            &[],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "the pool's connection is open");
    assert!(rows.iter().all(|r| r.get::<_, bool>(0)), "and encrypted");
    drop(db);
    // `require` verifies too: the test CA is no public root, so the certificate is refused.
    let mut url = url::Url::parse(&base_url()).unwrap();
    url.query_pairs_mut().append_pair("sslmode", "require");
    let e = Database::connect(url.as_str(), Some(&password()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("certificate") && e.contains("sslrootcert") && !e.contains('\n'),
        "{e}"
    );
}

/// `connector-host run` with `[state] url`: the real component syncs the emulator's tenant
/// and its cursor lands in PostgreSQL (password from the host's environment, never in the
/// file); the second run is incremental from that cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_a_tenant_file_with_a_postgres_state_runs_and_resumes_from_it() {
    use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};
    let url = fresh_database("cli_state").await;
    let emu = Emulator::start(Tenant::generated(5, 30), EmulatorConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = emu.config();
    let file = dir.path().join("tenant.toml");
    std::fs::write(
        &file,
        format!(
            "[tenant]\nkey = \"pg-tenant\"\n[config]\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
             login_endpoint = \"{}\"\ngraph_endpoint = \"{}\"\n[secrets.client_secret]\n\
             env = \"PG_TEST_CLIENT_SECRET\"\n[egress]\nallow_loopback_http = true\n[state]\n\
             url = \"{url}\"\npassword = {{ env = \"PG_TEST_PASSWORD\" }}\n[sink]\n\
             kind = \"jsonl\"\npath = \"events.jsonl\"\n",
            cfg.tenant_id,
            cfg.client_id,
            emu.login_endpoint(),
            emu.graph_endpoint()
        ),
    )
    .unwrap();
    let (file_path, client_secret) = (file.clone(), cfg.client_secret.clone());
    let run = move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
            .args(["--no-cache", "run", "--json", "--config"])
            .arg(&file_path)
            .env("PG_TEST_CLIENT_SECRET", &client_secret)
            .env(
                "PG_TEST_PASSWORD",
                env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report
    };
    let first = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    assert_eq!(first["full_sync"], true);
    assert_eq!(first["events_written"], 30);
    let store = PostgresCheckpointStore::connect(&url, Some(&password()))
        .await
        .unwrap();
    let (cursor, version) = store
        .get("pg-tenant/entra-id-users", "users/delta-cursor")
        .await
        .unwrap()
        .expect("the delta cursor is in PostgreSQL");
    assert!(!cursor.is_empty() && version >= 1);
    let second = tokio::task::spawn_blocking(run).await.unwrap();
    assert_eq!(
        second["full_sync"], false,
        "resumed from PostgreSQL: {second}"
    );
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), 30, "nothing new, nothing twice");
    emu.shutdown().await;
}

/// A plain connection to `url` (the driver itself, not the code under test), named
/// `application` in `pg_stat_activity`.
async fn session(url: &str, application: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.password(env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD));
    config.application_name(application);
    let (c, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| unreachable(e));
    tokio::spawn(conn);
    c
}

/// `f` within a minute, else the test fails: a statement that waits for ever fails the test
/// instead of hanging it (a guard, not a timing assertion).
async fn within_a_minute<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} was still waiting after a minute"))
}

/// The key `migrate` locks ("connmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_6e6e_6d69_6772;

fn options(lock_secs: u64) -> connector_host::fleet::DatabaseOptions {
    connector_host::fleet::DatabaseOptions::from_settings("state", None, Some(lock_secs), false)
        .unwrap()
}

#[tokio::test]
async fn operator_password_smuggled_in_the_url_user_is_refused_and_never_printed() {
    let _ = admin().await; // the server itself is up
                           // The driver decodes the user as `connector_test:hunter2-value`; the server would print
                           // it back in "password authentication failed for user …", and so would our target.
    for url in [
        base_url().replacen("connector_test@", "connector_test%3Ahunter2-value@", 1),
        base_url().replacen("connector_test@", "connector_test%3ahunter2-value@", 1),
        format!("{}?pass%77ord=hunter2-value", base_url()),
    ] {
        for password in [None, Some(password())] {
            let e = Database::connect(&url, password.as_ref())
                .await
                .unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, DatabaseError::Config { .. }), "{url}: {e:?}");
            assert!(
                !text.contains("hunter2") && !text.contains('\n') && text.contains("password"),
                "{url}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn operator_the_configured_password_is_never_printed_in_database_errors() {
    let _ = admin().await;
    // A password that is also the (missing) database's name: the server's error and the
    // target name it; both are scrubbed.
    let secret = "ct_pw_is_also_the_dbname";
    let e = Database::connect(&url_of(secret), Some(&Password::new(secret)))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, DatabaseError::Unavailable { .. }), "{e:?}");
    assert!(
        !text.contains(secret) && text.contains("<redacted>") && !text.contains('\n'),
        "{text}"
    );
}

#[tokio::test]
async fn operator_held_migration_lock_times_out_with_one_line() {
    let url = fresh_database("migrate_lock_held").await;
    // An operator's session left holding the lock (a stuck migrator looks the same).
    let holder = session(&url, "lock-holder-test").await;
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .unwrap();
    let db = Database::connect_with(&url, Some(&password()), options(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = within_a_minute(
        "a migration behind a held lock",
        connector_host::postgres::migrate::migrate(&db),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, DatabaseError::Schema { .. }), "{e:?}");
    assert!(
        text.contains("the migration lock")
            && text.contains(&format!("held by process {pid} ("))
            && text.contains("application 'lock-holder-test'")
            && text.contains("within 2 s (lock_timeout_secs)")
            && text.contains("pg_terminate_backend")
            && !text.contains('\n'),
        "{text}"
    );
    // The same for a fleet host's start-up.
    let e = within_a_minute(
        "a fleet start-up behind a held lock",
        Fleet::connect_with(&url, Some(&password()), "a", options(1)),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("the migration lock"), "{e}");
    // Once the holder lets go, start-up goes through.
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .unwrap();
    assert_eq!(
        connector_host::postgres::migrate::migrate(&db)
            .await
            .unwrap(),
        [1, 2, 3, 4]
    );
}

#[tokio::test]
async fn hostile_row_held_for_update_fails_the_checkpoint_write_within_the_lock_timeout() {
    let url = fresh_database("row_held").await;
    let store = PostgresCheckpointStore::connect_with(&url, Some(&password()), options(1))
        .await
        .unwrap();
    assert_eq!(store.set("t/c", "cursor", b"1", None).await.unwrap(), 1);
    // Another session locks the row and keeps its transaction open.
    let mut holder = session(&url, "row-holder-test").await;
    let tx = holder.transaction().await.unwrap();
    tx.query(
        "SELECT * FROM checkpoints WHERE namespace = 't/c' AND key = 'cursor' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let e = within_a_minute(
        "a checkpoint write behind a row lock",
        store.set("t/c", "cursor", b"2", Some(1)),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, CheckpointError::Storage(_))
            && text.contains("lock timeout")
            && text.contains("SQLSTATE 55P03")
            && text.contains("lock_timeout_secs")
            && !text.contains('\n'),
        "{text}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        store.get("t/c", "cursor").await.unwrap(),
        Some((b"1".to_vec(), 1)),
        "the refused write moved nothing"
    );
    assert_eq!(store.set("t/c", "cursor", b"2", Some(1)).await, Ok(2));

    // The fenced store of a fleet lease: the lease row held FOR UPDATE by another session.
    let f = Fleet::connect_with(&url, Some(&password()), "host-a", options(1))
        .await
        .unwrap();
    f.register(&["contoso".to_string()]).await.unwrap();
    let lease = f.claim(1, LONG).await.unwrap().pop().unwrap();
    let fenced = f.checkpoint_store(&lease);
    let tx = holder.transaction().await.unwrap();
    tx.query(
        "SELECT * FROM fleet_tenants WHERE tenant = 'contoso' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let e = within_a_minute(
        "a fenced checkpoint write behind a row lock",
        fenced.set("contoso/entra", "cursor", b"x", None),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("SQLSTATE 55P03"), "{e}");
    tx.rollback().await.unwrap();
    assert_eq!(
        fenced.set("contoso/entra", "cursor", b"x", None).await,
        Ok(1)
    );
}

#[tokio::test]
async fn operator_password_without_tls_refused_at_connect() {
    // No server is asked: the rule holds before any connection (db.invalid never resolves).
    let e = Database::connect("postgres://app@db.invalid/app", Some(&password()))
        .await
        .unwrap_err();
    assert!(matches!(e, DatabaseError::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("not encrypted"), "{e}");
    let e = Fleet::connect("postgres://app@db.invalid/app", Some(&password()), "a")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not encrypted"), "{e}");
    // Over loopback the password goes (the test server is on 127.0.0.1 without TLS).
    let _ = admin().await;
    Database::connect(&base_url(), Some(&password()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `connector-host run` whose start-up meets a held migration lock: it ends with one line
/// naming the holder after `lock_timeout_secs`; with a long lock timeout, the run's own
/// time limit bounds the start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_run_behind_a_held_migration_lock_ends_with_one_line() {
    let url = fresh_database("cli_lock_held").await;
    let holder = session(&url, "cli-lock-holder").await;
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let base = dir.path().to_path_buf();
    let run = move |state: &str, limits: &str| {
        let file = base.join("tenant.toml");
        std::fs::write(
            &file,
            format!(
                "[tenant]\nkey = \"pg-lock\"\n[config]\ntenant_id = \"00000000-0000-0000-0000-000000000001\"\n\
                 client_id = \"00000000-0000-0000-0000-000000000002\"\n\
                 login_endpoint = \"http://127.0.0.1:9\"\ngraph_endpoint = \"http://127.0.0.1:9\"\n\
                 [secrets.client_secret]\nenv = \"PG_TEST_CLIENT_SECRET\"\n[egress]\n\
                 allow_loopback_http = true\n[state]\nurl = \"{url}\"\n\
                 password = {{ env = \"PG_TEST_PASSWORD\" }}\n{state}\n[limits]\n{limits}\n[sink]\n\
                 kind = \"jsonl\"\npath = \"events.jsonl\"\n"
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
            .arg("--cache-dir")
            .arg(&cache)
            .args(["run", "--config"])
            .arg(&file)
            .env(
                "PG_TEST_CLIENT_SECRET",
                "Xq7~vR2pL9sT4wZ8kM1nB6cD3fG5hJ0aQe",
            )
            .env(
                "PG_TEST_PASSWORD",
                env_or("CONNECTOR_TEST_POSTGRES_PASSWORD", DEFAULT_PASSWORD),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
            text
        });
        // A guard against a hang (the component is compiled first: generous).
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "run behind a held migration lock had not ended after 5 minutes (killed): {}",
                    reader.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, reader.join().unwrap())
    };
    let (first, second) = tokio::task::spawn_blocking(move || {
        (
            run("lock_timeout_secs = 2", "run_timeout_secs = 600"),
            run("lock_timeout_secs = 3600", "run_timeout_secs = 3"),
        )
    })
    .await
    .unwrap();
    for ((status, stderr), says) in [
        (first, "within 2 s (lock_timeout_secs)"),
        (
            second,
            "took the whole run time limit (3 s, run_timeout_secs)",
        ),
    ] {
        assert!(!status.success(), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(says) && last.contains("pg-lock"),
            "the last line says what failed: {stderr}"
        );
        assert!(
            !stderr.contains(&env_or(
                "CONNECTOR_TEST_POSTGRES_PASSWORD",
                DEFAULT_PASSWORD
            )),
            "{stderr}"
        );
    }
    drop(holder);
}
