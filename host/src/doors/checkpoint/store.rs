//! The storage interface behind the `kv-checkpoint` door.

/// Why a checkpoint operation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    /// The stored version is not the expected one.
    #[error("version conflict: the cursor is at version {current:?}")]
    Conflict {
        /// The version now stored (None: the key does not exist).
        current: Option<u64>,
    },
    /// The store failed.
    #[error("checkpoint store: {0}")]
    Storage(String),
    /// The write carried a fencing token that is not the tenant's current lease (another
    /// host took the tenant, or the lease expired or was released): the cursor was not
    /// moved. Only a fenced store ([`super::postgres::FencedCheckpointStore`]) refuses so.
    #[error("{}", fenced_message(tenant, *token, *current))]
    Fenced {
        /// Tenant key.
        tenant: String,
        /// The stale token the write carried.
        token: u64,
        /// The tenant's current (last issued) token, if any.
        current: Option<u64>,
    },
}

fn fenced_message(tenant: &str, token: u64, current: Option<u64>) -> String {
    let why = match current {
        Some(c) if c == token => "the lease expired or was released".to_string(),
        Some(c) => format!("the tenant's current lease token is {c}: another host took it over"),
        None => "the tenant holds no lease".to_string(),
    };
    format!("checkpoint write refused: lease token {token} of tenant '{tenant}' is stale ({why}); the cursor was not moved")
}

/// A durable, versioned key-value store for cursors.
///
/// Async, because a store's work is I/O that must not hold a runtime worker: an
/// implementation over blocking I/O (the SQLite one) runs it on tokio's blocking pool. A
/// write that returned `Ok` is durable. Every `set` is a compare-and-set on a version number,
/// so two workers running the same tenant can never silently overwrite each other's cursor.
///
/// A caller that drops a `set` future may or may not have moved the cursor (the blocking work
/// runs to its end), but never half: a store commits atomically.
#[async_trait::async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Reads `key` in `namespace`: value and version.
    async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError>;

    /// Writes `key` if its version is `expected` (None: must not exist); returns the new version.
    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError>;
}
