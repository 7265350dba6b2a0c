//! `connector-host check --config tenant.toml`: the connector's probes, the host's `egress`
//! and `sink` lines ([`connector_host::check`]), one verdict, one exit code.
//!
//! Each line is `ok`, `warn` or `FAIL`, the probe's name and its verdict with the fix; a
//! failed check ends with a `verdict:` line naming the most fundamental failure and its exit
//! code (main.rs `check_exit_code`). A connector's own error (no token, say) is the last line
//! on stderr, as every error is.

use std::path::Path;

use connector_host::check::{CheckReport, Verdict};
use connector_host::runtime::Probe;
use connector_host::{Runtime, TenantConfig, TenantRun};

use super::{check_exit_code, fail, print_quietly, shown, EXIT_CONFIG};

/// Checks the tenant `run` of the tenant file `config` (loaded by `load_tenant`, which
/// opened nothing for writing) and prints the report; returns the exit code.
pub(super) async fn run_check(config: &Path, run: &TenantRun, rt: &Runtime) -> i32 {
    // The file's [sink], for its probe: `load_tenant` read the file a moment ago and keeps
    // only the run it built, whose sink for a check takes nothing.
    let cfg = match TenantConfig::load(config) {
        Ok(cfg) => cfg,
        Err(e) => return fail(e, EXIT_CONFIG),
    };
    // Progress while the probes run (a probe may wait for the provider's limits): a live
    // line on a terminal, lines at most every 10 s piped.
    let shown = super::progress::Shown::check();
    let report = shown
        .watch(
            rt,
            &run.tenant,
            connector_host::check::check_tenant(rt, run, &cfg),
        )
        .await;
    shown.finish();
    let code = check_exit_code(report.verdict);
    let written = print_quietly(&text(&report, code));
    if let Some(e) = &report.error {
        fail(e, code);
    }
    if written != 0 {
        written
    } else {
        code
    }
}

/// The report as printed on stdout: a line per probe, then the verdict of a failed check.
fn text(report: &CheckReport, code: i32) -> String {
    let mut text = String::new();
    for p in &report.lines {
        text.push_str(&line(p));
    }
    if let Some(v) = report.verdict {
        text.push_str(&format!("verdict: {} (exit {code})\n", words(v)));
    }
    text
}

fn line(p: &Probe) -> String {
    format!(
        "{} {:<36} {}\n",
        match (p.ok, p.detail.starts_with("warning")) {
            (false, _) => "FAIL",
            (true, true) => "warn",
            (true, false) => "ok  ",
        },
        shown(&p.name),
        shown(&p.detail)
    )
}

/// What a verdict means, and where its fix is.
fn words(v: Verdict) -> &'static str {
    match v {
        Verdict::Egress => {
            "egress refused: the host's policy refused requests; fix [egress] allow as the egress line says"
        }
        Verdict::Config => "configuration: fix the setting the error names",
        Verdict::Endpoint => {
            "wrong endpoint: an endpoint setting names no API; fix the key the FAIL lines name"
        }
        Verdict::Token => {
            "credentials refused: fix the tenant id, client id or secret the error names"
        }
        Verdict::Host => "host or sandbox failure: see the error",
        Verdict::Sink => "sink failed: events could not be delivered; fix [sink] as its line says",
        Verdict::Permission => {
            "permission missing: grant what the FAIL lines name, with admin consent"
        }
        Verdict::Upstream => "the upstream service failed: run check again later",
    }
}
