//! The batch calls of the checkpoint store (`kv-checkpoint` 0.3.0: `get_many`, `set_many`,
//! `delete_prefix`) on both stores, against a real SQLite file and the real test PostgreSQL
//! (`scripts/test-postgres`; see `host/tests/postgres.rs` for the variables that point
//! elsewhere), and through a fleet lease's fenced store. The same checks run on each store:
//! the two must agree to the byte.

use std::time::Duration;

use connector_host::doors::checkpoint::{
    CheckpointError, CheckpointStore, Expect, PostgresCheckpointStore, SqliteCheckpointStore, Write,
};
use connector_host::fleet::{Fleet, LeaseOutcome};

mod pg;
use pg::*;

fn put(key: &str, value: &str, expect: Expect) -> Write {
    Write {
        key: key.into(),
        value: Some(value.as_bytes().to_vec()),
        expect,
    }
}

fn delete(key: &str, expect: Expect) -> Write {
    Write {
        key: key.into(),
        value: None,
        expect,
    }
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| k.to_string()).collect()
}

fn found(value: &str, version: u64) -> Option<(Vec<u8>, u64)> {
    Some((value.as_bytes().to_vec(), version))
}

/// Preconditions, deletes, atomicity and namespaces of `set_many` and `get_many`.
async fn batch_semantics(s: &dyn CheckpointStore) {
    let ns = "contoso/entra";
    assert_eq!(
        s.set_many(
            ns,
            &[put("k1", "1", Expect::Absent), put("k2", "2", Expect::Any)]
        )
        .await,
        Ok(vec![1, 1])
    );
    assert_eq!(
        s.get_many(ns, &keys(&["k1", "k2", "missing", "k1"]))
            .await
            .unwrap(),
        vec![found("1", 1), found("2", 1), None, found("1", 1)],
        "one answer per key, in order"
    );
    assert_eq!(
        s.set_many(
            ns,
            &[
                put("k1", "1b", Expect::Version(1)),
                put("k2", "2b", Expect::Any),
                put("k3", "3", Expect::Absent),
            ]
        )
        .await,
        Ok(vec![2, 2, 1])
    );
    // Atomic: one failed precondition (k2 is at 2, not 9) and nothing applies, not even the
    // writes before it; the conflict carries k2's version.
    assert_eq!(
        s.set_many(
            ns,
            &[
                put("k1", "X", Expect::Version(2)),
                put("k4", "4", Expect::Absent),
                put("k2", "Y", Expect::Version(9)),
                put("k3", "Z", Expect::Absent),
            ]
        )
        .await,
        Err(CheckpointError::Conflict { current: Some(2) })
    );
    assert_eq!(
        s.get_many(ns, &keys(&["k1", "k2", "k3", "k4"]))
            .await
            .unwrap(),
        vec![found("1b", 2), found("2b", 2), found("3", 1), None],
        "the failed batch applied nothing"
    );
    // The first failing key in batch order is the one reported.
    assert_eq!(
        s.set_many(
            ns,
            &[
                put("k3", "Z", Expect::Absent),
                put("k2", "Y", Expect::Version(9))
            ]
        )
        .await,
        Err(CheckpointError::Conflict { current: Some(1) })
    );
    assert_eq!(
        s.set_many(ns, &[put("never", "v", Expect::Version(1))])
            .await,
        Err(CheckpointError::Conflict { current: None }),
        "a version expected of a key that does not exist"
    );
    // Deletes in a batch: 0 as their version; `Absent` of an absent key is a no-op.
    assert_eq!(
        s.set_many(
            ns,
            &[
                delete("k1", Expect::Version(2)),
                put("k5", "5", Expect::Absent),
                delete("gone", Expect::Absent),
                delete("k3", Expect::Any),
            ]
        )
        .await,
        Ok(vec![0, 1, 0, 0])
    );
    assert_eq!(
        s.get_many(ns, &keys(&["k1", "k3", "k5"])).await.unwrap(),
        vec![None, None, found("5", 1)]
    );
    assert_eq!(
        s.set_many(
            ns,
            &[delete("k2", Expect::Any), delete("k5", Expect::Absent)]
        )
        .await,
        Err(CheckpointError::Conflict { current: Some(1) }),
        "deleting a key that must not exist"
    );
    assert_eq!(
        s.set_many(ns, &[delete("k1", Expect::Version(2))]).await,
        Err(CheckpointError::Conflict { current: None }),
        "deleting a version of a key that is gone"
    );
    assert_eq!(
        s.get_many(ns, &keys(&["k2", "k5"])).await.unwrap(),
        vec![found("2b", 2), found("5", 1)],
        "the refused deletes deleted nothing"
    );
    // A key deleted and written again starts over at version 1 (as `set` of a new key).
    assert_eq!(
        s.set_many(ns, &[put("k1", "again", Expect::Absent)]).await,
        Ok(vec![1])
    );
    // A key named twice is refused before anything is written.
    let twice = s
        .set_many(
            ns,
            &[put("k9", "a", Expect::Any), put("k9", "b", Expect::Any)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&twice, CheckpointError::Storage(m) if m.contains("'k9' is written twice")),
        "{twice:?}"
    );
    assert_eq!(s.get(ns, "k9").await.unwrap(), None);
    // Single calls and batches see the same data.
    assert_eq!(s.get(ns, "k2").await.unwrap(), found("2b", 2));
    assert_eq!(s.set(ns, "k2", b"2c", Some(2)).await, Ok(3));
    assert_eq!(
        s.get_many(ns, &keys(&["k2"])).await.unwrap(),
        vec![found("2c", 3)]
    );
    // Namespaces are separate.
    assert_eq!(
        s.get_many("fabrikam/entra", &keys(&["k1", "k2", "k5"]))
            .await
            .unwrap(),
        vec![None, None, None]
    );
    assert_eq!(
        s.set_many("fabrikam/entra", &[put("k2", "f", Expect::Absent)])
            .await,
        Ok(vec![1])
    );
    assert_eq!(s.get(ns, "k2").await.unwrap(), found("2c", 3));
    // Empty batches are fine.
    assert_eq!(s.set_many(ns, &[]).await, Ok(vec![]));
    assert_eq!(s.get_many(ns, &[]).await, Ok(vec![]));
    // A batch of 1,000 (the WIT's most) of ~250-byte values, read back in one call.
    let many: Vec<Write> = (0..1000)
        .map(|i| {
            put(
                &format!("big/{i:04}"),
                &format!("{i:0>250}"),
                Expect::Absent,
            )
        })
        .collect();
    assert_eq!(s.set_many(ns, &many).await, Ok(vec![1; 1000]));
    let names: Vec<String> = many.iter().map(|w| w.key.clone()).collect();
    let read = s.get_many(ns, &names).await.unwrap();
    assert!(
        read.iter()
            .zip(&many)
            .all(|(r, w)| r.as_ref() == Some(&(w.value.clone().unwrap(), 1))),
        "every value of the batch read back in order"
    );
}

/// Keys that trip a `LIKE` pattern (`%`, `_`), byte-order edges (U+007F/U+0080, U+10FFFF,
/// a multibyte last character) and their neighbours.
const KEYS: &[&str] = &[
    "stage/%a",
    "stage/_b",
    "stage/x",
    "stage/\u{10FFFF}",
    "stage/\u{10FFFF}z",
    "stagez",
    "stage%",
    "stagea",
    "stage_1",
    "stageX1",
    "s%tage/",
    "sXtage/",
    "pre\u{10FFFF}",
    "pre\u{10FFFF}x",
    "prf",
    "é1",
    "é2",
    "ê",
    "a\u{7f}b",
    "a\u{80}",
    "Stage/x",
];

/// What `delete_prefix` deletes, and how its limit and key order behave.
async fn prefix_deletes(s: &dyn CheckpointStore) {
    let (ns, other) = ("contoso/entra", "contoso2/entra");
    for n in [ns, other] {
        let writes: Vec<Write> = KEYS.iter().map(|k| put(k, "v", Expect::Absent)).collect();
        s.set_many(n, &writes).await.unwrap();
    }
    let all = keys(KEYS);
    let mut left: Vec<&str> = KEYS.to_vec();
    for (prefix, expected) in [
        ("stage/", 5u32),
        ("stage%", 1),
        ("stage_", 1),
        ("s%", 1),
        ("pre\u{10FFFF}", 2),
        ("é", 2),
        ("a\u{7f}", 1),
    ] {
        assert_eq!(
            s.delete_prefix(ns, prefix, 100).await,
            Ok(expected),
            "prefix {prefix:?}"
        );
        left.retain(|k| !k.starts_with(prefix));
        let now = s.get_many(ns, &all).await.unwrap();
        for (k, v) in KEYS.iter().zip(&now) {
            assert_eq!(
                v.is_some(),
                left.contains(k),
                "after prefix {prefix:?}: key {k:?}"
            );
        }
    }
    assert_eq!(
        left,
        ["stagez", "stagea", "stageX1", "sXtage/", "prf", "ê", "a\u{80}", "Stage/x"],
        "only the keys that start with a prefix went; wildcards and case are not"
    );
    // The other namespace lost nothing.
    let theirs = s.get_many(other, &all).await.unwrap();
    assert!(theirs.iter().all(Option::is_some), "{theirs:?}");

    // The limit: the first keys in key order go first; fewer than the limit means done.
    let pages: Vec<Write> = (0..25)
        .map(|i| put(&format!("page/{i:04}"), "v", Expect::Absent))
        .collect();
    s.set_many(ns, &pages).await.unwrap();
    let page_keys: Vec<String> = pages.iter().map(|w| w.key.clone()).collect();
    assert_eq!(s.delete_prefix(ns, "page/", 10).await, Ok(10));
    let now = s.get_many(ns, &page_keys).await.unwrap();
    assert!(now[..10].iter().all(Option::is_none), "{now:?}");
    assert!(now[10..].iter().all(Option::is_some), "{now:?}");
    assert_eq!(s.delete_prefix(ns, "page/", 10).await, Ok(10));
    assert_eq!(s.delete_prefix(ns, "page/", 10).await, Ok(5), "the rest");
    assert_eq!(s.delete_prefix(ns, "page/", 10).await, Ok(0));
    assert_eq!(s.delete_prefix(ns, "stagez", 0).await, Ok(0), "limit 0");
    assert!(s.get(ns, "stagez").await.unwrap().is_some());
    // An empty prefix would name the whole namespace.
    assert!(matches!(
        s.delete_prefix(ns, "", 10).await,
        Err(CheckpointError::Storage(m)) if m.contains("empty prefix")
    ));
    assert!(s.get(ns, "stagez").await.unwrap().is_some());
    let theirs = s.get_many(other, &all).await.unwrap();
    assert!(theirs.iter().all(Option::is_some), "{theirs:?}");
}

fn sqlite() -> (tempfile::TempDir, SqliteCheckpointStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteCheckpointStore::open(&dir.path().join("c.sqlite")).unwrap();
    (dir, s)
}

async fn postgres(test: &str) -> PostgresCheckpointStore {
    let url = fresh_database(test).await;
    PostgresCheckpointStore::connect(&url, Some(&password()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn sqlite_batches_are_atomic_and_follow_their_preconditions() {
    let (_dir, s) = sqlite();
    batch_semantics(&s).await;
}

#[tokio::test]
async fn sqlite_prefix_delete_takes_exactly_the_prefix_within_the_limit() {
    let (_dir, s) = sqlite();
    prefix_deletes(&s).await;
}

#[tokio::test]
async fn postgres_batches_are_atomic_and_follow_their_preconditions() {
    let s = postgres("batch_semantics").await;
    batch_semantics(&s).await;
}

#[tokio::test]
async fn postgres_prefix_delete_takes_exactly_the_prefix_within_the_limit() {
    let s = postgres("prefix_deletes").await;
    prefix_deletes(&s).await;
}

#[tokio::test]
async fn postgres_prefix_delete_is_byte_order_whatever_the_database_collation() {
    // A database whose default collation orders by language rules (where "a" < "B" and
    // accents are secondary): the prefix range must still be byte order.
    let name = "ct_prefix_collation";
    let admin = admin().await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    let created = admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        ))
        .await;
    if let Err(e) = created {
        panic!(
            "cannot create a database with an ICU collation ({e} {:?}); the test PostgreSQL of scripts/test-postgres (15, with ICU) can",
            e.as_db_error().map(|d| d.message())
        );
    }
    let s = PostgresCheckpointStore::connect(&url_of(name), Some(&password()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    prefix_deletes(&s).await;
}

#[tokio::test]
async fn postgres_concurrent_batches_on_one_key_exactly_one_wins() {
    let s = std::sync::Arc::new(postgres("batch_race").await);
    s.set_many("t/c", &[put("cursor", "0", Expect::Absent)])
        .await
        .unwrap();
    for round in 1..=10u64 {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.set_many(
                        "t/c",
                        &[
                            put(&format!("stage/{round}/{w}"), "x", Expect::Any),
                            put("cursor", &format!("{w}"), Expect::Version(round)),
                        ],
                    )
                    .await
                })
            })
            .collect();
        let mut won = 0;
        for w in writers {
            match w.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, [1, round + 1]);
                    won += 1
                }
                Err(CheckpointError::Conflict { current }) => {
                    assert_eq!(current, Some(round + 1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one batch applies");
        let staged: Vec<String> = (0..4).map(|w| format!("stage/{round}/{w}")).collect();
        let staged = s.get_many("t/c", &staged).await.unwrap();
        assert_eq!(
            staged.iter().filter(|v| v.is_some()).count(),
            1,
            "the losers staged nothing: {staged:?}"
        );
    }
}

#[tokio::test]
async fn fenced_batches_refuse_a_stale_lease_and_apply_nothing() {
    let url = fresh_database("fenced_batches").await;
    let a = Fleet::connect(&url, Some(&password()), "host-a")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.register(&["contoso".to_string()]).await.unwrap();
    let lease = a
        .claim(10, Duration::from_secs(600))
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.tenant == "contoso")
        .unwrap();
    let store = a.checkpoint_store(&lease);
    let ns = "contoso/entra";
    // Under a live lease the batches go through, like `set`.
    assert_eq!(
        store
            .set_many(
                ns,
                &[
                    put("stage/1", "a", Expect::Absent),
                    put("stage/2", "b", Expect::Absent),
                    put("cursor", "c1", Expect::Absent),
                ]
            )
            .await,
        Ok(vec![1, 1, 1])
    );
    assert_eq!(store.delete_prefix(ns, "stage/1", 10).await, Ok(1));
    assert_eq!(
        store
            .set_many(ns, &[put("cursor", "c2", Expect::Version(9))])
            .await,
        Err(CheckpointError::Conflict { current: Some(1) }),
        "a conflict under a live lease is a conflict, not a fence"
    );
    assert!(
        matches!(
            store.set_many("fabrikam/entra", &[put("k", "x", Expect::Any)]).await,
            Err(CheckpointError::Storage(m)) if m.contains("not tenant 'contoso''s")
        ),
        "a lease writes only its own tenant's namespaces"
    );
    assert!(matches!(
        store.delete_prefix("fabrikam/entra", "k", 10).await,
        Err(CheckpointError::Storage(m)) if m.contains("not tenant 'contoso''s")
    ));
    assert_eq!(a.fenced_writes(), 0);
    // The lease ends: the same store's batches are refused, naming the token, and move
    // nothing.
    assert!(a
        .release(&lease, &LeaseOutcome::succeeded(Duration::from_secs(600)))
        .await
        .unwrap());
    let stale = CheckpointError::Fenced {
        tenant: "contoso".into(),
        token: lease.token,
        current: Some(lease.token),
    };
    assert_eq!(
        store
            .set_many(
                ns,
                &[
                    put("cursor", "c2", Expect::Version(1)),
                    put("stage/3", "x", Expect::Absent),
                    delete("stage/2", Expect::Any),
                ]
            )
            .await,
        Err(stale.clone())
    );
    assert_eq!(store.delete_prefix(ns, "stage/", 10).await, Err(stale));
    assert_eq!(a.fenced_writes(), 2);
    let plain = PostgresCheckpointStore::connect(&url, Some(&password()))
        .await
        .unwrap();
    assert_eq!(
        plain
            .get_many(ns, &keys(&["cursor", "stage/2", "stage/3"]))
            .await
            .unwrap(),
        vec![found("c1", 1), found("b", 1), None],
        "the refused batch and prefix delete moved nothing"
    );
}
