//! The `kv-checkpoint` door: durable, versioned cursors, namespaced per tenant and connector.
//!
//! - [`store`]: the async storage interface ([`CheckpointStore`], compare-and-set on a
//!   version number);
//! - [`sqlite`]: the embedded default, one SQLite file;
//! - [`postgres`]: PostgreSQL (`[state] url`), and the fenced view a fleet lease writes
//!   through ([`postgres::FencedCheckpointStore`]: a stale fencing token is refused);
//! - this module: the per-run state (`CheckpointState`: the tenant's namespace, its store,
//!   the size caps of [`CheckpointPolicy`]), its WIT implementation and linker registration.
//!
//! The rule that makes "nothing lost" true lives here: before a cursor is written, the run's
//! event sink is made durable ([`crate::doors::emit::EventSink::flush_durable`]), so a cursor
//! never covers an event that did not reach the sink. A value that holds a tenant secret is
//! stored redacted (refusing it would stall the cursor on every run; a redacted cursor is at
//! worst one the connector cannot use).

pub mod postgres;
pub mod sqlite;
pub mod store;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use postgres::{FencedCheckpointStore, PostgresCheckpointStore};
pub use sqlite::SqliteCheckpointStore;
pub use store::{CheckpointError, CheckpointStore};

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
            return Ok(Err(kv_checkpoint::KvError::Storage(format!(
                "the event sink could not be made durable, so the cursor was not moved: {e}"
            ))));
        }
        Ok(self
            .store
            .set(&self.namespace, &key, &value, expected)
            .await
            .map_err(|e| match e {
                CheckpointError::Conflict { current } => kv_checkpoint::KvError::Conflict(current),
                CheckpointError::Storage(m) => kv_checkpoint::KvError::Storage(m),
                // A storage error for the guest: it cannot fix it, the run ends and the
                // host holding the lease runs the tenant. The message names the stale token.
                fenced @ CheckpointError::Fenced { .. } => {
                    kv_checkpoint::KvError::Storage(fenced.to_string())
                }
            }))
    }

    // Placeholders until the store serves batches (issue 17, in progress on a branch).
    async fn get_many(
        &mut self,
        _keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(Vec<u8>, u64)>>, kv_checkpoint::KvError>> {
        self.shared.enter();
        Ok(Err(kv_checkpoint::KvError::Invalid(
            "get-many is not served by this host yet".into(),
        )))
    }

    async fn set_many(
        &mut self,
        _writes: Vec<kv_checkpoint::Write>,
    ) -> wasmtime::Result<Result<Vec<u64>, kv_checkpoint::KvError>> {
        self.shared.enter();
        Ok(Err(kv_checkpoint::KvError::Invalid(
            "set-many is not served by this host yet".into(),
        )))
    }

    async fn delete_prefix(
        &mut self,
        _prefix: String,
        _limit: u32,
    ) -> wasmtime::Result<Result<u32, kv_checkpoint::KvError>> {
        self.shared.enter();
        Ok(Err(kv_checkpoint::KvError::Invalid(
            "delete-prefix is not served by this host yet".into(),
        )))
    }
}
