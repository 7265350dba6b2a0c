//! The `kv-checkpoint` door: durable, versioned cursors, namespaced per tenant and connector.
//!
//! - [`store`]: the async storage interface ([`CheckpointStore`], compare-and-set on a
//!   version number);
//! - [`sqlite`]: the embedded default, one SQLite file;
//! - [`postgres`]: PostgreSQL (`[state] url`), and the fenced view a fleet lease writes
//!   through ([`postgres::FencedCheckpointStore`]: a stale fencing token is refused);
//! - [`record`]: the run-status record each store keeps per tenant in a host-owned table
//!   (what `connector-host status` reads; no door of the guest reaches it);
//! - this module: the per-run state (`CheckpointState`: the tenant's namespace, its store,
//!   the size caps of [`CheckpointPolicy`]), its WIT implementation and linker registration.
//!
//! The batch calls of 0.3.0 (`get-many`, `set-many`, `delete-prefix`) are held to the WIT's
//! figures ([`MAX_BATCH_ITEMS`], [`MAX_BATCH_BYTES`], [`MAX_DELETE_LIMIT`]) and the same
//! key and value caps; `set-many` and `delete-prefix` are durability points like `set`.
//!
//! The rule that makes "nothing lost" true lives here: before a cursor is written, the run's
//! event sink is made durable ([`crate::doors::emit::EventSink::flush_durable`]), so a cursor
//! never covers an event that did not reach the sink. A value that holds a tenant secret is
//! stored redacted (refusing it would stall the cursor on every run; a redacted cursor is at
//! worst one the connector cannot use).

pub mod postgres;
pub mod record;
pub mod sqlite;
pub mod store;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use postgres::{FencedCheckpointStore, PostgresCheckpointStore};
pub use sqlite::SqliteCheckpointStore;
pub use store::{CheckpointError, CheckpointStore, Expect, Stored, Write};

use super::bindings::connector::runtime::kv_checkpoint;
use super::emit::EventSink;
use super::RunShared;

/// Size caps of checkpoint keys and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Longest key, bytes.
    pub max_key_bytes: usize,
    /// Largest value, bytes (a cursor is a link or a token: 4 MiB is generous).
    pub max_value_bytes: usize,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            max_key_bytes: 256,
            max_value_bytes: 4 * 1024 * 1024,
        }
    }
}

/// One run's `kv-checkpoint` door.
pub(crate) struct CheckpointState {
    shared: Arc<RunShared>,
    policy: CheckpointPolicy,
    /// `<tenant>/<connector>`: all this run's keys live there.
    namespace: String,
    store: Arc<dyn CheckpointStore>,
    /// The run's sink, made durable before any cursor moves.
    sink: Arc<dyn EventSink>,
}

impl CheckpointState {
    pub fn new(
        shared: Arc<RunShared>,
        policy: CheckpointPolicy,
        namespace: String,
        store: Arc<dyn CheckpointStore>,
        sink: Arc<dyn EventSink>,
    ) -> CheckpointState {
        CheckpointState {
            shared,
            policy,
            namespace,
            store,
            sink,
        }
    }
}

/// Registers the `kv-checkpoint` interface, served by the [`CheckpointState`] `get` finds.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut CheckpointState,
) -> wasmtime::Result<()> {
    kv_checkpoint::add_to_linker::<T, HasSelf<CheckpointState>>(linker, get)
}

impl kv_checkpoint::Host for CheckpointState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<(Vec<u8>, u64)>, kv_checkpoint::KvError>> {
        self.shared.enter();
        self.shared
            .check_call_bytes("kv-checkpoint.get", key.len())?;
        if key.len() > self.policy.max_key_bytes {
            return Ok(Err(kv_checkpoint::KvError::Invalid(format!(
                "key longer than {} bytes",
                self.policy.max_key_bytes
            ))));
        }
        Ok(self
            .store
            .get(&self.namespace, &key)
            .await
            .map_err(|e| kv_checkpoint::KvError::Storage(e.to_string())))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> wasmtime::Result<Result<u64, kv_checkpoint::KvError>> {
        self.shared.enter();
        self.shared
            .check_call_bytes("kv-checkpoint.set", key.len() + value.len())?;
        let CheckpointPolicy {
            max_key_bytes,
            max_value_bytes,
        } = self.policy;
        if key.len() > max_key_bytes || value.len() > max_value_bytes {
            return Ok(Err(kv_checkpoint::KvError::Invalid(format!(
                "key over {max_key_bytes} bytes or value over {max_value_bytes} bytes"
            ))));
        }
        let value = self.shared.redact_bytes("kv-checkpoint", value);
        // Nothing lost: every event emitted before this cursor is made durable first.
        if let Err(e) = self.sink.flush_durable().await {
            return Ok(Err(not_durable(e)));
        }
        Ok(self
            .store
            .set(&self.namespace, &key, &value, expected)
            .await
            .map_err(kv_error))
    }

    async fn get_many(
        &mut self,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Stored>, kv_checkpoint::KvError>> {
        self.shared.enter();
        let bytes: usize = keys.iter().map(String::len).sum();
        self.shared
            .check_call_bytes("kv-checkpoint.get-many", bytes)?;
        if let Err(invalid) = self.check_batch(keys.len(), bytes, keys.iter().map(|k| (k, None))) {
            return Ok(Err(invalid));
        }
        Ok(self
            .store
            .get_many(&self.namespace, &keys)
            .await
            .map_err(kv_error))
    }

    async fn set_many(
        &mut self,
        writes: Vec<kv_checkpoint::Write>,
    ) -> wasmtime::Result<Result<Vec<u64>, kv_checkpoint::KvError>> {
        self.shared.enter();
        let bytes: usize = writes
            .iter()
            .map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len))
            .sum();
        self.shared
            .check_call_bytes("kv-checkpoint.set-many", bytes)?;
        let sizes = writes
            .iter()
            .map(|w| (&w.key, w.value.as_ref().map(Vec::len)));
        if let Err(invalid) = self.check_batch(writes.len(), bytes, sizes) {
            return Ok(Err(invalid));
        }
        let mut seen = std::collections::HashSet::with_capacity(writes.len());
        if let Some(twice) = writes.iter().find(|w| !seen.insert(w.key.as_str())) {
            return Ok(Err(kv_checkpoint::KvError::Invalid(format!(
                "key '{}' is named twice in one set-many; name each key once",
                crate::doors::log::escape_control(&clip(&twice.key, 64))
            ))));
        }
        let writes: Vec<Write> = writes
            .into_iter()
            .map(|w| Write {
                key: w.key,
                value: w
                    .value
                    .map(|v| self.shared.redact_bytes("kv-checkpoint", v)),
                expect: match w.expect {
                    kv_checkpoint::Expect::Any => Expect::Any,
                    kv_checkpoint::Expect::Absent => Expect::Absent,
                    kv_checkpoint::Expect::Version(v) => Expect::Version(v),
                },
            })
            .collect();
        // A durability point like `set`: the events emitted before this batch first.
        if let Err(e) = self.sink.flush_durable().await {
            return Ok(Err(not_durable(e)));
        }
        Ok(self
            .store
            .set_many(&self.namespace, &writes)
            .await
            .map_err(kv_error))
    }

    async fn delete_prefix(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> wasmtime::Result<Result<u32, kv_checkpoint::KvError>> {
        self.shared.enter();
        self.shared
            .check_call_bytes("kv-checkpoint.delete-prefix", prefix.len())?;
        let invalid = |m: String| Ok(Err(kv_checkpoint::KvError::Invalid(m)));
        if prefix.is_empty() {
            return invalid(
                "an empty prefix would name every key of the tenant; name a prefix".into(),
            );
        }
        if prefix.len() > self.policy.max_key_bytes {
            return invalid(format!(
                "prefix longer than {} bytes (the key cap)",
                self.policy.max_key_bytes
            ));
        }
        if limit > MAX_DELETE_LIMIT {
            return invalid(format!(
                "limit {limit} is over {MAX_DELETE_LIMIT}; delete in several calls"
            ));
        }
        // A durability point like `set`.
        if let Err(e) = self.sink.flush_durable().await {
            return Ok(Err(not_durable(e)));
        }
        Ok(self
            .store
            .delete_prefix(&self.namespace, &prefix, limit)
            .await
            .map_err(kv_error))
    }
}

/// Most keys of a `get-many` or writes of a `set-many` (the WIT's figure).
pub const MAX_BATCH_ITEMS: usize = 1_000;
/// Most bytes of keys and values of one batch (the WIT's figure).
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Largest `limit` of a `delete-prefix` (the WIT's figure).
pub const MAX_DELETE_LIMIT: u32 = 10_000;

impl CheckpointState {
    /// The WIT's limits of a batch of `count` items of `bytes` in all: each `(key, value
    /// length)` within the caps.
    fn check_batch<'a>(
        &self,
        count: usize,
        bytes: usize,
        mut items: impl Iterator<Item = (&'a String, Option<usize>)>,
    ) -> Result<(), kv_checkpoint::KvError> {
        let invalid = |m: String| Err(kv_checkpoint::KvError::Invalid(m));
        if count > MAX_BATCH_ITEMS {
            return invalid(format!(
                "{count} keys in one batch, over {MAX_BATCH_ITEMS}; split it"
            ));
        }
        if bytes > MAX_BATCH_BYTES {
            return invalid(format!(
                "{bytes} bytes of keys and values in one batch, over {MAX_BATCH_BYTES}; split it"
            ));
        }
        let CheckpointPolicy {
            max_key_bytes,
            max_value_bytes,
        } = self.policy;
        if let Some((i, _)) = items
            .by_ref()
            .enumerate()
            .find(|(_, (k, v))| k.len() > max_key_bytes || v.is_some_and(|v| v > max_value_bytes))
        {
            return invalid(format!(
                "item {i} of the batch: key over {max_key_bytes} bytes or value over {max_value_bytes} bytes"
            ));
        }
        Ok(())
    }
}

/// The first `max` bytes of `text` (on a character boundary).
fn clip(text: &str, max: usize) -> String {
    let mut cut = max.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

/// The sink failed before a durability point: nothing was committed.
fn not_durable(e: impl std::fmt::Display) -> kv_checkpoint::KvError {
    kv_checkpoint::KvError::Storage(format!(
        "the event sink could not be made durable, so the cursor was not moved: {e}"
    ))
}

/// A store error as the guest sees it.
fn kv_error(e: CheckpointError) -> kv_checkpoint::KvError {
    match e {
        CheckpointError::Conflict { current } => kv_checkpoint::KvError::Conflict(current),
        CheckpointError::Storage(m) => kv_checkpoint::KvError::Storage(m),
        // A storage error for the guest: it cannot fix it, the run ends and the host holding
        // the lease runs the tenant. The message names the stale token.
        fenced @ CheckpointError::Fenced { .. } => {
            kv_checkpoint::KvError::Storage(fenced.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    //! The door's limits and durability points, over a real SQLite store; the stores'
    //! semantics are tested in `host/tests/checkpoint_batches.rs`.

    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::kv_checkpoint::{Expect as WitExpect, Host, KvError, Write as WitWrite};
    use super::*;
    use crate::doors::emit::SinkError;
    use crate::doors::http::secrets::Scrubber;
    use crate::runtime::limits::LimitKind;

    const SECRET: &str = "hunter2-very-secret-value";

    /// A sink that counts its flushes and fails them on demand.
    #[derive(Default)]
    struct Flushes {
        count: AtomicU64,
        fail: AtomicBool,
    }

    #[async_trait::async_trait]
    impl EventSink for Flushes {
        async fn write(&self, _: Vec<String>) -> Result<(), SinkError> {
            Ok(())
        }
        async fn flush_durable(&self) -> Result<(), SinkError> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(SinkError("disk full".into()));
            }
            self.count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn written(&self) -> u64 {
            0
        }
    }

    struct Door {
        _dir: tempfile::TempDir,
        state: CheckpointState,
        shared: Arc<RunShared>,
        store: SqliteCheckpointStore,
        sink: Arc<Flushes>,
    }

    fn door(max_call_bytes: usize) -> Door {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteCheckpointStore::open(&dir.path().join("c.sqlite")).unwrap();
        let shared = Arc::new(RunShared::new(
            "contoso".into(),
            Scrubber::new([SECRET]),
            max_call_bytes,
        ));
        let sink = Arc::new(Flushes::default());
        let state = CheckpointState::new(
            shared.clone(),
            CheckpointPolicy::default(),
            "contoso/entra".into(),
            Arc::new(store.clone()),
            sink.clone(),
        );
        Door {
            _dir: dir,
            state,
            shared,
            store,
            sink,
        }
    }

    fn write(key: &str, value: Option<Vec<u8>>) -> WitWrite {
        WitWrite {
            key: key.into(),
            value,
            expect: WitExpect::Any,
        }
    }

    fn invalid<T: std::fmt::Debug>(r: Result<T, KvError>, needle: &str) {
        match r {
            Err(KvError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected invalid({needle}), got {other:?}"),
        }
    }

    #[tokio::test]
    async fn hostile_batches_over_the_wit_limits_are_invalid_and_write_nothing() {
        let mut d = door(64 * 1024 * 1024);
        let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
        invalid(
            d.state.get_many(keys.clone()).await.unwrap(),
            "1001 keys in one batch, over 1000",
        );
        assert_eq!(
            d.state
                .get_many(keys[..1000].to_vec())
                .await
                .unwrap()
                .unwrap(),
            vec![None; 1000],
            "1,000 is allowed"
        );
        let writes: Vec<WitWrite> = keys.iter().map(|k| write(k, Some(vec![1]))).collect();
        invalid(d.state.set_many(writes).await.unwrap(), "1001 keys");
        invalid(
            d.state.get_many(vec!["k".repeat(257)]).await.unwrap(),
            "item 0 of the batch: key over 256 bytes",
        );
        invalid(
            d.state
                .set_many(vec![write("a", None), write(&"k".repeat(257), None)])
                .await
                .unwrap(),
            "item 1 of the batch",
        );
        invalid(
            d.state
                .set_many(vec![write("big", Some(vec![0; 4 * 1024 * 1024 + 1]))])
                .await
                .unwrap(),
            "value over 4194304 bytes",
        );
        // Five values at the value cap: 20 MiB, over the batch's 16 MiB.
        let heavy: Vec<WitWrite> = (0..5)
            .map(|i| write(&format!("h{i}"), Some(vec![0; 4 * 1024 * 1024])))
            .collect();
        invalid(
            d.state.set_many(heavy).await.unwrap(),
            "bytes of keys and values in one batch, over 16777216",
        );
        invalid(
            d.state
                .set_many(vec![
                    write("twice", Some(b"1".to_vec())),
                    write("other", Some(b"2".to_vec())),
                    write("twice", None),
                ])
                .await
                .unwrap(),
            "key 'twice' is named twice in one set-many",
        );
        invalid(
            d.state.delete_prefix(String::new(), 10).await.unwrap(),
            "empty prefix",
        );
        invalid(
            d.state.delete_prefix("p/".into(), 10_001).await.unwrap(),
            "limit 10001 is over 10000",
        );
        invalid(
            d.state.delete_prefix("p".repeat(257), 1).await.unwrap(),
            "prefix longer than 256 bytes",
        );
        assert_eq!(
            d.state
                .delete_prefix("p/".into(), 10_000)
                .await
                .unwrap()
                .unwrap(),
            0
        );
        // Nothing was written by any refused call, and none of them was a durability point.
        assert_eq!(
            d.sink.count.load(Ordering::Relaxed),
            1,
            "only the last call flushed"
        );
        for k in ["twice", "other", "a", "h0", "big", "k0"] {
            assert_eq!(
                d.store.get_blocking("contoso/entra", k).unwrap(),
                None,
                "{k}"
            );
        }
        assert_eq!(d.shared.limit_hit(), None, "invalid, not a stopped run");
    }

    #[tokio::test]
    async fn hostile_a_batch_over_the_per_call_bytes_stops_the_run() {
        let mut d = door(1024);
        let stopped = d
            .state
            .set_many(vec![write("k", Some(vec![0; 2000]))])
            .await
            .unwrap_err();
        assert!(
            stopped
                .to_string()
                .contains("one kv-checkpoint.set-many call passed 2001 bytes"),
            "{stopped}"
        );
        assert_eq!(
            d.shared.limit_hit().map(|(k, _)| k),
            Some(LimitKind::CallSize)
        );
        let keys = vec!["k".repeat(200); 6];
        assert!(d.state.get_many(keys).await.is_err(), "1,200 bytes of keys");
    }

    #[tokio::test]
    async fn set_many_and_delete_prefix_are_durability_points_and_redact_values() {
        let mut d = door(64 * 1024 * 1024);
        let value = format!("token={SECRET};next=2").into_bytes();
        assert_eq!(
            d.state
                .set_many(vec![
                    write("stage/1", Some(value)),
                    write("stage/2", Some(b"plain".to_vec())),
                ])
                .await
                .unwrap()
                .unwrap(),
            vec![1, 1]
        );
        assert_eq!(d.sink.count.load(Ordering::Relaxed), 1, "flushed first");
        let (stored, _) = d
            .store
            .get_blocking("contoso/entra", "stage/1")
            .unwrap()
            .unwrap();
        let stored = String::from_utf8(stored).unwrap();
        assert!(
            !stored.contains(SECRET) && stored.contains("next=2"),
            "{stored}"
        );
        assert_eq!(d.shared.redactions(), 1);
        // The sink fails: neither call moves anything.
        d.sink.fail.store(true, Ordering::Relaxed);
        let refused = d
            .state
            .set_many(vec![write("stage/3", Some(b"x".to_vec()))])
            .await
            .unwrap();
        assert!(
            matches!(&refused, Err(KvError::Storage(m)) if m.contains("could not be made durable") && m.contains("disk full")),
            "{refused:?}"
        );
        let refused = d.state.delete_prefix("stage/".into(), 10).await.unwrap();
        assert!(matches!(refused, Err(KvError::Storage(_))), "{refused:?}");
        assert_eq!(
            d.store.get_blocking("contoso/entra", "stage/3").unwrap(),
            None
        );
        assert!(d
            .store
            .get_blocking("contoso/entra", "stage/2")
            .unwrap()
            .is_some());
        d.sink.fail.store(false, Ordering::Relaxed);
        assert_eq!(
            d.state
                .delete_prefix("stage/".into(), 10)
                .await
                .unwrap()
                .unwrap(),
            2
        );
        assert_eq!(d.sink.count.load(Ordering::Relaxed), 2);
        // A conflict comes back as the WIT's conflict, with the current version.
        d.state
            .set_many(vec![write("cursor", Some(b"1".to_vec()))])
            .await
            .unwrap()
            .unwrap();
        let conflict = d
            .state
            .set_many(vec![WitWrite {
                key: "cursor".into(),
                value: Some(b"2".to_vec()),
                expect: WitExpect::Absent,
            }])
            .await
            .unwrap();
        assert!(
            matches!(conflict, Err(KvError::Conflict(Some(1)))),
            "{conflict:?}"
        );
    }
}
