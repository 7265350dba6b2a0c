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
//!
//! `progress` (0.3.0): the host keeps the run's latest [`Progress`] (bounded, redacted and
//! escaped at once, since it is shown in the run's summary, error and `/metrics`) and logs
//! it at info when the phase changes, else at most every [`PROGRESS_LOG_EVERY`] (10 s).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    async fn progress(&mut self, p: log::RunProgress) -> wasmtime::Result<()> {
        self.shared.enter();
        let progress = Progress {
            phase: self.shown(p.phase, MAX_PHASE_BYTES),
            pages_done: p.pages_done,
            pages_expected: p.pages_expected,
            items_done: p.items_done,
            wait_ms: p.wait_ms,
            detail: self.shown(p.detail, MAX_DETAIL_BYTES),
        };
        if let Some(line) = self.shared.keep_progress(progress, Instant::now()) {
            if PROGRESS_LINES.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::info!(tenant = %self.shared.tenant, "progress: {line}");
            }
        }
        Ok(())
    }
}

/// Longest phase kept, bytes (after escaping).
pub const MAX_PHASE_BYTES: usize = 64;
/// Longest progress detail kept, bytes (after escaping).
pub const MAX_DETAIL_BYTES: usize = 512;
/// Longest time between two progress lines in the log while the phase stays the same
/// (issue 19: at most one every 10 s).
pub const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether the doors log the guest's progress reports (on by default). The CLI's `run`,
/// `demo` and `check` turn it off: they show progress themselves (a live line on a terminal,
/// else a line at most every 10 s, also while the guest sleeps), and one line per report is
/// enough.
static PROGRESS_LINES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the doors' progress lines on or off for the whole process (see [`PROGRESS_LINES`]).
pub fn log_progress_lines(on: bool) {
    PROGRESS_LINES.store(on, std::sync::atomic::Ordering::Relaxed);
}

impl LogState {
    /// A text of the guest as the host keeps and shows it: redacted (before the cut: a cut
    /// could leave a part of a secret no pattern matches), control characters escaped, and
    /// cut to `max` bytes (with `…`).
    fn shown(&self, text: String, max: usize) -> String {
        let text = self.shared.redact("log", text);
        clip(escape_control(&text).into_owned(), max)
    }
}

/// `text` cut to at most `max` bytes on a character boundary, ending with `…` when cut.
fn clip(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push('…');
    text
}

/// Where a run stands, as the guest last reported it (WIT `log.run-progress`), bounded and
/// cleaned by the host: `phase` and `detail` are redacted of the tenant's secrets, their
/// control characters escaped ([`escape_control`]) and cut to [`MAX_PHASE_BYTES`] and
/// [`MAX_DETAIL_BYTES`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// The phase, e.g. `users`.
    pub phase: String,
    /// Pages of this phase committed in the current walk, all runs together.
    pub pages_done: u64,
    /// Pages the phase is expected to take, when the guest can tell.
    pub pages_expected: Option<u64>,
    /// Records of this phase done in the current walk.
    pub items_done: u64,
    /// The least time, ms, the provider's limits still impose on the walk, when known.
    pub wait_ms: Option<u64>,
    /// One line for the operator.
    pub detail: String,
}

impl fmt::Display for Progress {
    /// `phase 'users': 12/40 pages, 11,900 items (wait ≥ 5 s): detail`, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "phase '{}': {}", self.phase, self.pages_done)?;
        if let Some(expected) = self.pages_expected {
            write!(f, "/{expected}")?;
        }
        write!(f, " pages, {} items", self.items_done)?;
        if let Some(ms) = self.wait_ms {
            write!(f, " (at least {} s of waiting left)", ms.div_ceil(1000))?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The latest progress of a run and when it was last logged (in [`RunShared`]).
#[derive(Debug, Default)]
pub(crate) struct ProgressLog {
    latest: Option<Progress>,
    logged: Option<(String, Instant)>,
}

impl ProgressLog {
    /// Keeps `p` as the latest; returns the line to log when its phase differs from the one
    /// last logged or [`PROGRESS_LOG_EVERY`] has passed since.
    pub fn keep(&mut self, p: Progress, now: Instant) -> Option<String> {
        let due = match &self.logged {
            None => true,
            Some((phase, at)) => {
                *phase != p.phase || now.saturating_duration_since(*at) >= PROGRESS_LOG_EVERY
            }
        };
        let line = due.then(|| {
            self.logged = Some((p.phase.clone(), now));
            p.to_string()
        });
        self.latest = Some(p);
        line
    }

    /// The latest progress.
    pub fn latest(&self) -> Option<Progress> {
        self.latest.clone()
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

    fn progress(phase: &str, pages: u64) -> Progress {
        Progress {
            phase: phase.into(),
            pages_done: pages,
            ..Progress::default()
        }
    }

    #[test]
    fn progress_is_logged_on_a_change_of_phase_else_every_10_s() {
        let mut log = ProgressLog::default();
        let t0 = Instant::now();
        assert!(log.keep(progress("groups", 1), t0).is_some(), "the first");
        assert!(log
            .keep(progress("groups", 2), t0 + Duration::from_secs(9))
            .is_none());
        assert_eq!(
            log.latest(),
            Some(progress("groups", 2)),
            "kept, not logged"
        );
        assert_eq!(
            log.keep(progress("users", 1), t0 + Duration::from_secs(9)),
            Some("phase 'users': 1 pages, 0 items".into()),
            "a new phase"
        );
        assert!(log
            .keep(progress("users", 2), t0 + Duration::from_secs(18))
            .is_none());
        assert!(
            log.keep(progress("users", 3), t0 + Duration::from_secs(19))
                .is_some(),
            "10 s after the last line"
        );
    }

    #[test]
    fn progress_line_names_pages_items_wait_and_detail() {
        let p = Progress {
            phase: "users".into(),
            pages_done: 12,
            pages_expected: Some(40),
            items_done: 11_900,
            wait_ms: Some(4_001),
            detail: "throttled".into(),
        };
        assert_eq!(
            p.to_string(),
            "phase 'users': 12/40 pages, 11900 items (at least 5 s of waiting left): throttled"
        );
    }

    #[test]
    fn clip_cuts_on_a_character_boundary_within_the_cap() {
        assert_eq!(clip("short".into(), 64), "short");
        let cut = clip("é".repeat(100), 64);
        assert!(cut.len() <= 64 && cut.ends_with('…'), "{cut}");
        assert_eq!(clip("abcdef".into(), 5), "ab…");
    }

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
