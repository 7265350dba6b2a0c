//! Where tenants stand, shown: a text table for a terminal, JSON, and the HTML page `serve`
//! answers at `/status`.
//!
//! **Escaping.** Every text that comes from outside the host — tenant keys, error lines (they
//! quote the upstream service), phases and details (the connector's), host names of a fleet
//! — is escaped where it is shown: for the terminal by [`crate::doors::log::escape_control`]
//! (no control character, line separator or bidi control acts), for the page by
//! `html-escape`'s `encode_text` (`&`, `<`, `>` become entities, so no text becomes markup).
//! The page is one table written with `format!`, so escaping is one function applied to
//! each value at the one place it is written, not a template engine: `askama` or `maud`
//! would escape by default too, but bring a procedural-macro build and a template language
//! for a page this size; `html-escape` is a small kept crate with no dependencies of note.
//! The page holds no script and loads nothing: its CSS is inline, and a
//! `Content-Security-Policy` of `default-src 'none'; style-src 'unsafe-inline'` is sent
//! with it (see [`crate::metrics`]'s server), so even a text that got through unescaped
//! could not run.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::{instant, millis, TenantView};
use crate::doors::log::escape_control;

/// `12 s ago`, `in 5 min`, `3 h ago`, `2 d ago` (relative to `now_ms`).
pub fn relative(ms: i64, now_ms: i64) -> String {
    let delta = ms.saturating_sub(now_ms);
    let secs = delta.unsigned_abs() / 1000;
    let amount = match secs {
        0..=89 => format!("{secs} s"),
        90..=5_399 => format!("{} min", (secs + 30) / 60),
        5_400..=172_799 => format!("{} h", (secs + 1_800) / 3_600),
        _ => format!("{} d", (secs + 43_200) / 86_400),
    };
    if delta >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// An instant as RFC 3339, seconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_seconds(instant(ms)).to_string()
}

/// The cells of one tenant's row, unescaped, and its error line (when it failed).
struct Row {
    cells: [String; 9],
    error: Option<String>,
}

const HEADERS: [&str; 9] = [
    "TENANT",
    "STATE",
    "LAST RUN",
    "SYNC",
    "PROGRESS",
    "NEXT DUE",
    "LAST FULL WALK",
    "LAST SIGN-IN SWEEP",
    "LEASE",
];

fn row(v: &TenantView, now_ms: i64) -> Row {
    let when = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), |ms| relative(ms, now_ms));
    let r = v.record.as_ref();
    let last = r.map(|r| &r.last_run);
    let sync = match last.and_then(|l| l.full_sync) {
        Some(true) => "full",
        Some(false) => "incremental",
        None => "-",
    };
    let progress = last
        .and_then(|l| l.progress.as_ref())
        .map_or_else(|| "-".to_string(), |p| p.to_string());
    let lease = v.lease.as_ref().map_or_else(
        || "-".to_string(),
        |l| format!("{} (until {})", l.host, relative(l.expires_ms, now_ms)),
    );
    let error = match (&v.unreadable, last) {
        (Some(why), _) => Some(why.clone()),
        (None, Some(l)) if l.error.is_some() => Some(match &l.kind {
            Some(kind) => format!("{kind}: {}", l.error.as_deref().unwrap_or("")),
            None => l.error.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    Row {
        cells: [
            v.tenant.clone(),
            match r {
                Some(r) if r.consecutive_failures > 1 && !v.running => {
                    format!("{} ({} in a row)", v.state(), r.consecutive_failures)
                }
                _ => v.state().to_string(),
            },
            when(last.map(|l| l.ended_ms)),
            sync.to_string(),
            progress,
            when(v.next_due_ms),
            when(r.and_then(|r| r.last_full_walk_ms)),
            when(r.and_then(|r| r.last_sign_in_sweep_ms())),
            lease,
        ],
        error,
    }
}

/// The text table: one row per tenant, a failed tenant's error on the line under it.
pub fn table(views: &[TenantView], now: SystemTime) -> String {
    let now_ms = millis(now);
    let rows: Vec<Row> = views.iter().map(|v| row(v, now_ms)).collect();
    let shown = |s: &str| escape_control(s).into_owned();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(&r.cells) {
            *w = (*w).max(shown(c).chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c}{}  ", " ".repeat(w - c.chars().count()));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(HEADERS.iter().map(|h| h.to_string()).collect()) + "\n";
    for r in &rows {
        out.push_str(&line(r.cells.iter().map(|c| shown(c)).collect()));
        out.push('\n');
        if let Some(e) = &r.error {
            let _ = writeln!(out, "  error: {}", shown(e));
        }
    }
    out
}

/// The JSON document: `{"tenants": [...]}`, times as RFC 3339 and milliseconds.
pub fn json(views: &[TenantView]) -> Value {
    let time = |ms: Option<i64>| ms.map(rfc3339);
    let tenants: Vec<Value> = views
        .iter()
        .map(|v| {
            let r = v.record.as_ref();
            let last = r.map(|r| {
                let l = &r.last_run;
                json!({
                    "started": rfc3339(l.started_ms),
                    "ended": rfc3339(l.ended_ms),
                    "duration_ms": l.ended_ms.saturating_sub(l.started_ms),
                    "outcome": l.outcome.as_str(),
                    "error": l.error,
                    "kind": l.kind,
                    "sync": l.full_sync.map(|f| if f { "full" } else { "incremental" }),
                    "progress": l.progress,
                })
            });
            json!({
                "tenant": v.tenant,
                "state": v.state(),
                "last_run": last,
                "last_success": time(r.and_then(|r| r.last_success_ms)),
                "consecutive_failures": r.map_or(0, |r| r.consecutive_failures),
                "runs": r.map_or(0, |r| r.runs),
                "next_due": time(v.next_due_ms),
                "last_full_walk": time(r.and_then(|r| r.last_full_walk_ms)),
                "last_sign_in_sweep": time(r.and_then(|r| r.last_sign_in_sweep_ms())),
                "phases_completed": r.map(|r| r.phases_completed.iter()
                    .map(|(k, ms)| (k.clone(), Value::from(rfc3339(*ms))))
                    .collect::<serde_json::Map<_, _>>()),
                "lease": v.lease.as_ref().map(|l| json!({"host": l.host, "expires": rfc3339(l.expires_ms)})),
                "unreadable": v.unreadable,
            })
        })
        .collect();
    json!({ "tenants": tenants })
}

/// `text` as the page may hold it (an HTML text node): control characters escaped as in
/// the table, then `&`, `<` and `>` as entities.
fn esc(text: &str) -> String {
    html_escape::encode_text(&escape_control(text)).into_owned()
}

/// The page's style: plain, readable, a red badge for a failed tenant.
const CSS: &str = "body{font-family:sans-serif;margin:24px;color:#1a1a1a;background:#fff}\
h1{font-size:20px}table{border-collapse:collapse;font-size:14px}\
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f3f3f3}.badge{display:inline-block;padding:3px 10px;border-radius:4px;\
font-weight:bold;color:#fff;background:#6b6b6b}.badge.succeeded{background:#2e7d32}\
.badge.failed,.badge.unreadable{background:#d32f2f}.badge.running{background:#1565c0}\
tr.error td{color:#8e0000;font-family:monospace;white-space:pre-wrap}\
.muted{color:#666;font-size:12px}";

/// The HTML page: the same table, each state as a badge (red for a failed tenant), the
/// error under a failed tenant's row. Every value escaped (see the module doc).
pub fn html(views: &[TenantView], now: SystemTime) -> String {
    let now_ms = millis(now);
    let failing = views.iter().filter(|v| v.failing()).count();
    let mut out = String::with_capacity(2048 + views.len() * 512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>connector-host status</title><style>{CSS}</style></head><body>\
<h1>Tenants</h1><p class=\"muted\">{} tenants, {failing} failing; as of {}</p>\
<table><thead><tr>",
        views.len(),
        esc(&rfc3339(now_ms)),
    );
    for h in HEADERS {
        let _ = write!(out, "<th>{}</th>", esc(&h.to_lowercase()));
    }
    out.push_str("</tr></thead><tbody>");
    for v in views {
        let r = row(v, now_ms);
        out.push_str("<tr class=\"tenant\">");
        for (i, cell) in r.cells.iter().enumerate() {
            if i == 1 {
                // The badge's class is one of the fixed state words, never outside text.
                let _ = write!(
                    out,
                    "<td><span class=\"badge {}\">{}</span></td>",
                    v.state().replace(' ', "-"),
                    esc(cell)
                );
            } else {
                let _ = write!(out, "<td>{}</td>", esc(cell));
            }
        }
        out.push_str("</tr>");
        if let Some(e) = &r.error {
            let _ = write!(
                out,
                "<tr class=\"error\"><td colspan=\"{}\">error: {}</td></tr>",
                HEADERS.len(),
                esc(e)
            );
        }
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{LastRun, Outcome, RecordedProgress, TenantRecord};
    use super::*;

    const HOSTILE_KEY: &str = "<script>alert(1)</script>";
    const HOSTILE_ERROR: &str =
        "upstream: <img src=x onerror=alert(2)> & </td></tr><script>alert(3)</script>\u{1b}[31m";

    fn failed(tenant: &str) -> TenantView {
        TenantView {
            tenant: tenant.into(),
            record: Some(TenantRecord {
                last_run: LastRun {
                    started_ms: 1_000,
                    ended_ms: 2_000,
                    outcome: Outcome::Failed,
                    error: Some(HOSTILE_ERROR.into()),
                    kind: Some("upstream".into()),
                    full_sync: None,
                    progress: Some(RecordedProgress {
                        phase: "<b>users</b>".into(),
                        pages_done: 3,
                        pages_expected: Some(9),
                        items_done: 600,
                        detail: String::new(),
                    }),
                },
                last_success_ms: None,
                last_full_walk_ms: None,
                phases_completed: Default::default(),
                consecutive_failures: 2,
                runs: 2,
            }),
            next_due_ms: Some(62_000),
            lease: Some(super::super::read::LeaseView {
                host: "<i>host-a</i>".into(),
                expires_ms: 30_000,
            }),
            running: false,
            unreadable: None,
        }
    }

    fn never(tenant: &str) -> TenantView {
        TenantView {
            tenant: tenant.into(),
            record: None,
            next_due_ms: None,
            lease: None,
            running: false,
            unreadable: None,
        }
    }

    #[test]
    fn hostile_keys_errors_phases_and_hosts_are_text_on_the_page() {
        let page = html(&[failed(HOSTILE_KEY), never("contoso")], instant(10_000));
        for raw in [
            "<script>",
            "<img",
            "</td></tr><script>",
            "<b>users",
            "<i>host-a",
        ] {
            assert!(
                !page.contains(raw),
                "{raw} reached the page as markup: {page}"
            );
        }
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("&lt;img src=x onerror=alert(2)&gt; &amp; &lt;/td&gt;"));
        assert!(page.contains("<span class=\"badge failed\">failed (2 in a row)</span>"));
        assert!(page.contains("<span class=\"badge never-run\">never run</span>"));
        assert!(page.contains("1 failing"), "{page}");
        assert!(!page.to_lowercase().contains("<script"));
    }

    #[test]
    fn the_table_escapes_control_characters_and_says_never_run() {
        let text = table(&[failed(HOSTILE_KEY), never("contoso")], instant(10_000));
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("\\u{1b}[31m"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TENANT"), "{text}");
        assert!(lines[1].starts_with(HOSTILE_KEY) && lines[1].contains("failed (2 in a row)"));
        assert!(
            lines[1].contains("8 s ago") && lines[1].contains("in 52 s"),
            "{text}"
        );
        assert!(
            lines[1].contains("<b>users</b> 3/~9 pages, 600 items"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("  error: upstream: upstream: <img"),
            "{text}"
        );
        assert!(lines[3].starts_with("contoso") && lines[3].contains("never run"));
        let doc = json(&[failed(HOSTILE_KEY), never("contoso")]);
        assert_eq!(doc["tenants"][0]["tenant"], HOSTILE_KEY);
        assert_eq!(doc["tenants"][0]["state"], "failed");
        assert_eq!(doc["tenants"][0]["last_run"]["error"], HOSTILE_ERROR);
        assert_eq!(doc["tenants"][0]["lease"]["host"], "<i>host-a</i>");
        assert_eq!(doc["tenants"][1]["state"], "never run");
        assert_eq!(doc["tenants"][1]["last_run"], Value::Null);
    }

    #[test]
    fn relative_times_read_as_a_person_says_them() {
        assert_eq!(relative(0, 12_000), "12 s ago");
        assert_eq!(relative(300_000, 0), "in 5 min");
        assert_eq!(relative(0, 3 * 3_600_000), "3 h ago");
        assert_eq!(relative(0, 2 * 86_400_000), "2 d ago");
    }
}
