//! The `log` door: the guest's log lines, scrubbed of the tenant's secrets, cut to the
//! longest line kept, and written to the host's log with the tenant key.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::connector::runtime::log;
use super::RunShared;

/// One run's `log` door.
pub(crate) struct LogState {
    shared: Arc<RunShared>,
    /// Longest line kept, bytes.
    max_line_bytes: usize,
}

impl LogState {
    pub fn new(shared: Arc<RunShared>, max_line_bytes: usize) -> LogState {
        LogState {
            shared,
            max_line_bytes,
        }
    }
}

/// Registers the `log` interface, served by the [`LogState`] `get` finds.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogState,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasSelf<LogState>>(linker, get)
}

impl log::Host for LogState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.shared.enter();
        // Before the cut: a cut could leave a part of the secret no pattern matches.
        let mut m = self.shared.redact("log", message);
        if m.len() > self.max_line_bytes {
            let mut cut = self.max_line_bytes;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        let tenant = &self.shared.tenant;
        match level {
            log::Level::Trace => tracing::trace!(tenant = %tenant, "{m}"),
            log::Level::Debug => tracing::debug!(tenant = %tenant, "{m}"),
            log::Level::Info => tracing::info!(tenant = %tenant, "{m}"),
            log::Level::Warn => tracing::warn!(tenant = %tenant, "{m}"),
            log::Level::Error => tracing::error!(tenant = %tenant, "{m}"),
        }
        Ok(())
    }
}
