//! The `log` door: the guest's log lines, scrubbed of the tenant's secrets, cut to the
//! longest line kept, and written to the host's log with the tenant key.
//!
//! **Text from outside is escaped where it is shown.** A log line or a warning may quote
//! what Graph sent (a user id) or what the connector wrote; a newline in it would start a
//! forged line at column 0 of a text log, and a terminal escape (`ESC[2J`) or a bidi override
//! would act on the operator's terminal. [`escape_control`] writes every control character
//! (C0 with `\n` `\r` `\t`, DEL, C1), the Unicode line and paragraph separators and the
//! bidi controls as escapes (`\n`, `\u{1b}`), leaving all other text as it is. The text log
//! format escapes every field with it ([`EscapedFields`]); the JSON format needs nothing
//! (its encoder escapes control characters itself), so messages are kept whole here and
//! escaped where they are rendered as text. The CLI escapes what it prints (run summary,
//! probes, error lines) the same way.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

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

    // Placeholder until the host keeps and shows progress (issue 17, on a branch).
    async fn progress(&mut self, _p: log::RunProgress) -> wasmtime::Result<()> {
        self.shared.enter();
        Ok(())
    }
}

/// Whether `c` must not reach a text log or a terminal as it is: a control character (C0,
/// DEL, C1), a line or paragraph separator, or a bidi control (marks, embeddings,
/// overrides, isolates).
fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every control character, line separator and bidi control escaped (`\n`,
/// `\r`, `\t`, else `\u{…}`); borrowed when there was none. A backslash is left as it is:
/// an escape can be imitated but never acts.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hazard) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hazard(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text log format's fields: as `tracing-subscriber`'s default (`message`, then
/// `name=value` separated by spaces, strings quoted), with every value passed through
/// [`escape_control`]. Install with `tracing_subscriber::fmt().fmt_fields(EscapedFields)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let pad = if std::mem::take(&mut self.empty) {
            ""
        } else {
            " "
        };
        let value = escape_control(value);
        self.result = match name {
            "message" => write!(self.writer, "{pad}{value}"),
            name => write!(
                self.writer,
                "{pad}{}={value}",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value);
        } else {
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_control_characters_and_bidi_controls_are_escaped() {
        assert!(matches!(
            escape_control("user 'ab-12' é, a\\b"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_control("id\n2026-01-01T00:00:00Z ERROR forged\r\t\u{1b}[2J\u{7f}\u{9b}"),
            "id\\n2026-01-01T00:00:00Z ERROR forged\\r\\t\\u{1b}[2J\\u{7f}\\u{9b}"
        );
        for c in [
            '\u{0}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{2028}', '\u{200f}',
        ] {
            let escaped = escape_control(&format!("a{c}b")).into_owned();
            assert_eq!(escaped, format!("a\\u{{{:x}}}b", c as u32));
        }
    }
}
