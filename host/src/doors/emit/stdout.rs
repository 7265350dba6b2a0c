//! Events written as JSON lines to standard output; `flush_durable` flushes it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::sink::{blocking, EventSink, SinkError};

/// Writes JSON lines to standard output; `flush_durable` flushes it.
#[derive(Default)]
pub struct StdoutSink {
    written: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl EventSink for StdoutSink {
    async fn write(&self, events: Vec<String>) -> Result<(), SinkError> {
        let written = self.written.clone();
        blocking(move || {
            let mut out = std::io::stdout().lock();
            for e in &events {
                writeln!(out, "{e}").map_err(|e| SinkError(format!("writing to stdout: {e}")))?;
            }
            written.fetch_add(events.len() as u64, Ordering::Relaxed);
            Ok(())
        })
        .await
    }

    async fn flush_durable(&self) -> Result<(), SinkError> {
        blocking(|| {
            std::io::stdout()
                .flush()
                .map_err(|e| SinkError(format!("flushing stdout: {e}")))
        })
        .await
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}
