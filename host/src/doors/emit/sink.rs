//! The storage interface behind the `emit-event` door.

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A destination for events.
///
/// A sink takes batches of JSON events and, on [`EventSink::flush_durable`], guarantees that
/// everything written before is on stable storage (or, for a push sink, acknowledged by the
/// receiver). The `kv-checkpoint` door calls that before committing any cursor: this is
/// what makes "nothing lost" true.
///
/// Async, because a sink's work is I/O that must not hold a runtime worker: an
/// implementation over blocking I/O (the file and stdout sinks) runs it on tokio's blocking
/// pool.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Appends a batch of events (each one JSON object, no newline inside).
    async fn write(&self, events: Vec<String>) -> Result<(), SinkError>;
    /// Makes everything written so far durable.
    async fn flush_durable(&self) -> Result<(), SinkError>;
    /// Events accepted so far.
    fn written(&self) -> u64;
    /// What the receiver answered for the batches it acknowledged (a push sink's task ids,
    /// in order); nothing for a file or stdout.
    fn receipts(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Runs blocking sink work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SinkError(format!("the sink's worker failed: {e}")))?
}
