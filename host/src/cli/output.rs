//! Where the CLI's own words go (issue 19, point 7): the run summary (text or `--json`) on
//! stdout, so `run > report.txt` keeps it; logs, progress, notes and the one-line error on
//! stderr. Under `--log-format json` every line on stderr is a JSON object: the notes and the
//! error line are logged through the JSON formatter too, instead of printed as text.

use std::sync::atomic::{AtomicBool, Ordering};

use connector_host::RunReport;

/// The CLI's default log filter: warnings and errors, and the progress lines (written only
/// when stderr is not a terminal: `progress.rs`). The CLI's notes and error line are written
/// whatever the filter.
pub const DEFAULT_LOG: &str = "warn,progress=info";

/// Whether stderr carries JSON log lines (`--log-format json`).
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Stderr carries JSON log lines from now on.
pub fn set_json_logs() {
    JSON_LOGS.store(true, Ordering::Relaxed);
}

fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// `text` as the terminal may show it: control characters escaped.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    connector_host::doors::log::escape_control(text)
}

/// The one-line error of a failed command: `error: …` on stderr, or under JSON logs an
/// `ERROR` object shaped as the JSON log lines are (`timestamp`, `level`, `fields.message`,
/// `fields.exit_code`, `target` `cli`), written whatever `--log` filters: the error is always
/// said.
pub fn error_line(message: &str, code: i32) {
    if json_logs() {
        json_line(
            "ERROR",
            serde_json::json!({"message": message, "exit_code": code}),
        );
    } else {
        eprintln!("error: {}", shown(message));
    }
}

/// One line on stderr shaped as the JSON log lines are, whatever `--log` filters.
fn json_line(level: &str, fields: serde_json::Value) {
    let line = serde_json::json!({
        "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        "level": level,
        "fields": fields,
        "target": "cli",
    });
    eprintln!("{line}");
}

/// A line for the operator on stderr (what the demo starts, what `serve` serves), whatever
/// `--log` filters: as it is on a text log, an `INFO` object (target `cli`) under JSON logs.
pub fn note(text: &str) {
    if json_logs() {
        json_line("INFO", serde_json::json!({ "message": text }));
    } else {
        // The CLI's own text (the tenant keys in it were checked when the file was read).
        eprintln!("{text}");
    }
}

/// The text summary of a run, for stdout.
pub fn print_summary(r: &RunReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let secs = r.duration.as_secs_f64().max(1e-9);
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<23} {}", shown(&value));
    };
    line("tenant", r.tenant.clone());
    line(
        "sync",
        if r.full_sync { "full" } else { "incremental" }.into(),
    );
    line("items read", r.items_seen.to_string());
    line("events written", r.events_written.to_string());
    line(
        "items partial/skipped",
        format!("{}/{}", r.items_partial, r.items_skipped),
    );
    line(
        "HTTP requests",
        format!("{} (denied {})", r.http_sent, r.http_denied),
    );
    line(
        "duration",
        format!(
            "{:.2} s ({:.0} events/s)",
            secs,
            r.events_written as f64 / secs
        ),
    );
    line(
        "peak guest memory",
        format!(
            "{:.1} MiB",
            r.peak_guest_memory_bytes as f64 / (1024.0 * 1024.0)
        ),
    );
    // The inventory: what the events the sink took say about the accounts (counted by the
    // host from the OCSF 5003 events: `doors/emit/inventory.rs`).
    let i = &r.inventory;
    line("users", i.users.to_string());
    line("  admins", i.admins.to_string());
    line("  without MFA", i.without_mfa.to_string());
    line("  guests", i.guests.to_string());
    line("  disabled", i.disabled.to_string());
    line("  dormant over 90 days", i.dormant.to_string());
    line("deletions", i.deleted.to_string());
    if let Some(p) = &r.progress {
        // Bounded, redacted and escaped by the host when the guest reported it.
        line("last progress", p.to_string());
    }
    if !r.unavailable.is_empty() {
        line("unavailable", r.unavailable.join(", "));
    }
    for w in &r.warnings {
        let _ = writeln!(out, "  warning: {}", shown(w));
    }
    out
}

/// The run report as one JSON object.
pub fn report_json(r: &RunReport) -> String {
    serde_json::json!({
        "tenant": r.tenant,
        "full_sync": r.full_sync,
        "items_seen": r.items_seen,
        "events_emitted": r.events_emitted,
        "events_written": r.events_written,
        "items_skipped": r.items_skipped,
        "items_partial": r.items_partial,
        "requests": r.requests,
        "http_sent": r.http_sent,
        "http_denied": r.http_denied,
        "duration_ms": r.duration.as_millis() as u64,
        "peak_guest_memory_bytes": r.peak_guest_memory_bytes,
        "progress": r.progress,
        "inventory": r.inventory,
        "warnings": r.warnings,
        "unavailable": r.unavailable,
        "receipts": r.receipts,
    })
    .to_string()
}
