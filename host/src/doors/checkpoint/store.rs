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
