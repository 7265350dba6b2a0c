//! Progress of `run`, `demo` and `check` as the operator sees it (issue 19, point 1).
//!
//! The connector reports where it stands (WIT `log.progress`: phase, pages, items, the wait
//! the provider's limits impose, a detail saying why) and the host keeps the latest report
//! ([`Runtime::progress`]). The CLI polls it twice a second and shows it:
//!
//! - on a terminal, as the live line of a progress bar (events written, rate, elapsed, then
//!   the report);
//! - otherwise (stderr piped to a file or a collector), as log lines at `info` with the
//!   target `progress` (the CLI's default filter lets that target through; `--log` may
//!   silence it), at most one every [`PIPED_EVERY`] and at least one every [`PIPED_EVERY`]
//!   while the run has a report: a run waiting 40 s for Graph's limits writes a line every
//!   10 s naming the wait's reason and what is left of it. Under `--log-format json` each is
//!   a JSON object like every other log line.
//!
//! The doors' own progress lines (one per report, for `serve`) are turned off for these
//! commands: one line per 10 s is enough.

use std::time::{Duration, Instant};

use connector_host::{Progress, Runtime, TenantRun};

/// The most often, and while a run reports, the least often a piped progress line is
/// written.
pub const PIPED_EVERY: Duration = Duration::from_secs(10);

/// How often the CLI reads the run's latest report.
const POLL: Duration = Duration::from_millis(500);

/// The text of a report as the operator reads it; `waited` is how long the same report
/// has been the latest, so what is left of its wait counts down. `waiting 8 s for Graph's
/// reports limit: 5 requests per 10 s per app and tenant; full walk: registration report
/// page 3 of ~20 (1000 items; about 40 s of waiting left)`.
pub fn text(p: &Progress, waited: Duration) -> String {
    let left = p
        .wait_ms
        .map(|ms| Duration::from_millis(ms).saturating_sub(waited))
        .filter(|left| !left.is_zero());
    let mut out = if p.detail.is_empty() {
        match p.pages_expected {
            Some(total) => format!("{}: page {} of ~{total}", p.phase, p.pages_done),
            None => format!("{}: page {}", p.phase, p.pages_done),
        }
    } else {
        p.detail.clone()
    };
    out.push_str(&format!(" ({} items", p.items_done));
    if let Some(left) = left {
        out.push_str(&format!(
            "; about {} s of waiting left",
            left.as_millis().div_ceil(1000)
        ));
    }
    out.push(')');
    // Bounded, redacted and escaped by the host when the guest reported it; escaped again
    // as all shown text.
    connector_host::doors::log::escape_control(&out).into_owned()
}

/// The piped lines' pace: a line when a report is first seen, then at most and at least one
/// every [`PIPED_EVERY`] while there is a report (the clock is passed in, for tests).
#[derive(Debug, Default)]
pub struct PipedLines {
    /// When the last line was written.
    last_line: Option<Instant>,
    /// The latest report and since when it has been the latest.
    current: Option<(Progress, Instant)>,
}

impl PipedLines {
    /// The line to write now, if one is due, given the run's latest report `latest`.
    pub fn line(&mut self, latest: Option<Progress>, now: Instant) -> Option<String> {
        let latest = latest?;
        let since = match &self.current {
            Some((p, since)) if *p == latest => *since,
            _ => now,
        };
        self.current = Some((latest.clone(), since));
        if self
            .last_line
            .is_some_and(|at| now.saturating_duration_since(at) < PIPED_EVERY)
        {
            return None;
        }
        self.last_line = Some(now);
        Some(text(&latest, now.saturating_duration_since(since)))
    }
}

/// What the CLI shows while a run or a check goes on.
pub struct Shown {
    bar: Option<indicatif::ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Shown {
    /// For a run: on a terminal a bar of the events the sink took (of `total`, when known);
    /// piped, lines (see the module doc).
    pub fn run(run: &TenantRun, total: Option<u64>) -> Shown {
        connector_host::doors::log::log_progress_lines(false);
        if !terminal() {
            return Shown {
                bar: None,
                task: None,
            };
        }
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        // The report on a line of its own, wrapped rather than cut: on an 80-column
        // terminal the wait's reason would not fit after the bar.
        let style = if total.is_some() {
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} events  {rate}  {elapsed}\n  {msg}",
            )
        } else {
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} events  {rate}  {elapsed}\n  {msg}",
            )
        };
        if let Ok(style) = style {
            bar.set_style(style.with_key("rate", rate_key));
        }
        let sink = run.sink.clone();
        let start = sink.written();
        let b = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                b.set_position(sink.written().saturating_sub(start));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Shown {
            bar: Some(bar),
            task: Some(task),
        }
    }

    /// For a check: on a terminal a spinner with the probe under way; piped, lines.
    pub fn check() -> Shown {
        connector_host::doors::log::log_progress_lines(false);
        if !terminal() {
            return Shown {
                bar: None,
                task: None,
            };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed}  {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar.set_message("checking the tenant file");
        Shown {
            bar: Some(bar),
            task: None,
        }
    }

    /// Runs `run`, showing the connector's latest report, polled twice a second.
    pub async fn watch<F: std::future::Future>(
        &self,
        rt: &Runtime,
        tenant: &str,
        run: F,
    ) -> F::Output {
        tokio::pin!(run);
        let mut piped = PipedLines::default();
        let mut since: Option<(Progress, Instant)> = None;
        loop {
            tokio::select! {
                out = &mut run => return out,
                _ = tokio::time::sleep(POLL) => {
                    let latest = rt.progress(tenant);
                    let now = Instant::now();
                    match &self.bar {
                        Some(bar) => {
                            let Some(p) = latest else { continue };
                            let first = match &since {
                                Some((seen, at)) if *seen == p => *at,
                                _ => now,
                            };
                            bar.set_message(text(&p, now.saturating_duration_since(first)));
                            since = Some((p, first));
                        }
                        None => {
                            if let Some(line) = piped.line(latest, now) {
                                tracing::info!(target: "progress", tenant = %tenant, "{line}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// Clears the live line.
    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

fn terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// The `{rate}` of the progress line: events per second, rounded to a whole number with
/// thousands separators (`2,167/s`; indicatif's `{per_sec}` prints four decimals).
fn rate_key(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{}", rate_text(state.per_sec()));
}

pub fn rate_text(per_sec: f64) -> String {
    let rounded = if per_sec.is_finite() && per_sec > 0.0 {
        per_sec.round() as u64
    } else {
        0
    };
    format!("{}/s", indicatif::HumanCount(rounded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(page: u64, wait_ms: u64) -> Progress {
        Progress {
            phase: "registration report".into(),
            pages_done: page,
            pages_expected: Some(20),
            items_done: page * 999,
            wait_ms: Some(wait_ms),
            detail: format!(
                "waiting 8 s for Graph's reports limit: 5 requests per 10 s per app and tenant; full walk: registration report page {page} of ~20"
            ),
        }
    }

    #[test]
    fn piped_lines_come_at_most_and_at_least_every_10_s_while_a_run_reports() {
        let mut lines = PipedLines::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        assert_eq!(lines.line(None, at(0)), None, "nothing reported yet");
        let first = lines.line(Some(waiting(3, 40_000)), at(500));
        assert_eq!(
            first.as_deref(),
            Some("waiting 8 s for Graph's reports limit: 5 requests per 10 s per app and tenant; full walk: registration report page 3 of ~20 (2997 items; about 40 s of waiting left)"),
            "the first report at once"
        );
        // Polled twice a second: new reports and the same one, no line before 10 s.
        for ms in (1_000..10_500).step_by(500) {
            let page = if ms < 5_000 { 3 } else { 4 };
            assert_eq!(
                lines.line(Some(waiting(page, 40_000)), at(ms)),
                None,
                "{ms} ms"
            );
        }
        // 10 s after the last line: the report seen since 5 s, its wait counted down.
        let line = lines.line(Some(waiting(4, 40_000)), at(10_500)).unwrap();
        assert!(
            line.ends_with("page 4 of ~20 (3996 items; about 35 s of waiting left)"),
            "{line}"
        );
        // The run stays silent (a long sleep): still one line every 10 s, counting down.
        assert_eq!(lines.line(Some(waiting(4, 40_000)), at(20_000)), None);
        let line = lines.line(Some(waiting(4, 40_000)), at(20_500)).unwrap();
        assert!(
            line.ends_with("(3996 items; about 25 s of waiting left)"),
            "{line}"
        );
        let line = lines.line(Some(waiting(4, 40_000)), at(50_500)).unwrap();
        assert!(line.ends_with("(3996 items)"), "the wait is over: {line}");
    }

    #[test]
    fn a_report_without_detail_names_its_phase_and_page() {
        let p = Progress {
            phase: "users".into(),
            pages_done: 2,
            pages_expected: Some(10),
            items_done: 400,
            ..Progress::default()
        };
        assert_eq!(text(&p, Duration::ZERO), "users: page 2 of ~10 (400 items)");
        let hostile = Progress {
            detail: "a\nb".into(),
            ..p
        };
        assert_eq!(text(&hostile, Duration::ZERO), "a\\nb (400 items)");
    }

    #[test]
    fn the_progress_rate_is_a_whole_number_with_separators() {
        assert_eq!(rate_text(2_167.431_3), "2,167/s");
        assert_eq!(rate_text(0.4), "0/s");
        assert_eq!(rate_text(999.5), "1,000/s");
        assert_eq!(rate_text(f64::NAN), "0/s");
    }
}
