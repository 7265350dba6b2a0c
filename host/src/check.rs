//! `connector-host check`: the connector's own probes, the host's account of what their
//! requests met, and a probe of the sink, turned into verdicts with fixes.
//!
//! The host knows no provider, but it saw every request: the ones its own policy refused
//! (an egress refusal: fix `[egress] allow`), the 404s (a wrong endpoint setting), the 4xx
//! answering a request that carried a secret the host filled in (the credentials refused
//! where they were sent, e.g. the token endpoint) and the 401s (a token the API refused), the
//! 403s (a permission missing), the 5xx and requests without an answer (the service
//! failing). When the check failed, its [`Verdict`] is the most fundamental of those
//! ([`Verdict`]'s order), of the connector's error, and of its failed probes' own verdicts
//! (the word their detail opens with: [`PROBE_VERDICTS`]); a failed probe nothing explains
//! counts as a missing permission, as before verdicts. A refusal by the host's policy counts
//! even when every probe passed: the run would meet it too.
//!
//! Three lines are the host's own: `egress` (only when it refused a request: which origin,
//! which rule), `credentials` (only when a secret ends within 30 days, a warning, or has
//! ended, a failure: [`crate::expiry`]) and `sink` ([`crate::doors::emit::probe`]:
//! reachable, the credential accepted, nothing delivered, no file created).

use std::sync::Arc;

use crate::config::{SinkSpec, TenantConfig};
use crate::doors::emit::probe::{self, SinkProbe};
use crate::doors::http::netguard::SystemResolver;
use crate::doors::http::Observed;
use crate::error::{ConnectorErrorKind, RunError};
use crate::runtime::{Probe, Runtime, TenantRun};

/// Why a check failed, most fundamental first: fix the first and check again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The host's own policy refused a request (`[egress] allow`, a secret's `hosts`, a
    /// size or budget limit).
    Egress,
    /// The configuration is unusable (the connector or the host said so).
    Config,
    /// An endpoint setting names no API: a 404, or an answer that is not the API.
    Endpoint,
    /// The credentials were refused where they were sent, or the API refused the token.
    Token,
    /// The host or the sandbox failed (a trap, a limit, a timeout).
    Host,
    /// The sink cannot take events (unreachable, its credential refused, a file that cannot
    /// be written).
    Sink,
    /// A permission is missing (a 403 that is not a licence gap).
    Permission,
    /// The upstream service failed (5xx, 429, no answer).
    Upstream,
}

/// The words a failed probe's detail may open with, and the verdict each names: the
/// convention a connector's `check` follows so that `check` can say more than the host saw
/// (e.g. a 2xx answer that is not the API is a wrong endpoint).
pub const PROBE_VERDICTS: &[(&str, Verdict)] = &[
    ("egress refused:", Verdict::Egress),
    ("wrong endpoint:", Verdict::Endpoint),
    ("token refused:", Verdict::Token),
    ("permission missing:", Verdict::Permission),
];

/// What `check` found: the lines to print (the connector's probes, then the host's), the
/// connector's error if its check failed, and the verdict (None: every probe passed).
#[derive(Debug)]
pub struct CheckReport {
    /// The probes, in order: the connector's, then `egress` (when the host refused a
    /// request), then `sink`. A `warning:` detail on an `ok` probe is a warning.
    pub lines: Vec<Probe>,
    /// Why the connector's check failed, if it did (its probes are then not in `lines`).
    pub error: Option<RunError>,
    /// The most fundamental failure; None when the check passed.
    pub verdict: Option<Verdict>,
}

/// Runs the tenant's check: the connector's probes (changing nothing), then the sink's
/// probe (delivering nothing, creating no file). `sink` is the tenant file's `[sink]` and
/// its `[egress] allow_loopback_http`.
pub async fn check(rt: &Runtime, run: &TenantRun, sink: Option<(&SinkSpec, bool)>) -> CheckReport {
    let outcome = rt.check_observed(run).await;
    let sink_line = match sink {
        Some((spec, loopback)) => Some(probe_sink(spec, loopback).await),
        None => None,
    };
    let credentials =
        crate::expiry::check_line(run.secrets.expiries(), std::time::SystemTime::now()).map(
            |said| Probe {
                name: "credentials".into(),
                ok: said.is_ok(),
                detail: said.unwrap_or_else(|failure| failure),
            },
        );
    report(outcome.probes, &outcome.observed, credentials, sink_line)
}

/// [`check`] for a loaded tenant file.
pub async fn check_tenant(rt: &Runtime, run: &TenantRun, cfg: &TenantConfig) -> CheckReport {
    check(rt, run, Some((&cfg.sink, cfg.allow_loopback_http))).await
}

/// The report of a check from its parts: the connector's probes, what the host saw, the
/// host's `credentials` line ([`crate::expiry::check_line`]) and the sink's.
pub fn report(
    probes: Result<Vec<Probe>, RunError>,
    observed: &Observed,
    credentials: Option<Probe>,
    sink: Option<Probe>,
) -> CheckReport {
    let sink_failed = sink.as_ref().is_some_and(|p| !p.ok);
    // An expired credential is refused credentials (its detail opens with "token refused:"),
    // whatever the connector's probes met.
    let expired = credentials.as_ref().is_some_and(|p| !p.ok);
    let verdict = verdict(&probes, observed, sink_failed)
        .into_iter()
        .chain(expired.then_some(Verdict::Token))
        .min();
    let (mut lines, error) = match probes {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    lines.extend(egress_line(observed));
    lines.extend(credentials);
    lines.extend(sink);
    CheckReport {
        lines,
        error,
        verdict,
    }
}

/// The most fundamental failure among what the host saw, the connector's error and its
/// failed probes; None when nothing failed.
pub fn verdict(
    probes: &Result<Vec<Probe>, RunError>,
    observed: &Observed,
    sink_failed: bool,
) -> Option<Verdict> {
    let mut found = Vec::new();
    if !observed.denied.is_empty() {
        found.push(Verdict::Egress);
    }
    if sink_failed {
        found.push(Verdict::Sink);
    }
    let failed = match probes {
        Err(e) => {
            found.push(of_error(e));
            true
        }
        Ok(p) => {
            found.extend(p.iter().filter(|p| !p.ok).filter_map(|p| {
                PROBE_VERDICTS
                    .iter()
                    .find(|(word, _)| p.detail.starts_with(word))
                    .map(|(_, v)| *v)
            }));
            p.iter().any(|p| !p.ok)
        }
    };
    if failed {
        // Only when something failed: a passing check may have met a 403 that its connector
        // read as a licence gap (a warning), or a 404 it expected.
        //
        // What the statuses mean, in the words of the providers the built-in connector meets:
        // an OAuth token endpoint answers refused client credentials with a 4xx (RFC 6749
        // section 5.2: 400, or 401 for `invalid_client`; Microsoft's answers a wrong client
        // secret 401 `invalid_client` AADSTS7000215, an expired one AADSTS7000222, an unknown
        // application AADSTS700016 — learn.microsoft.com "Troubleshoot ... service principal
        // authentication", ClientSecretCredential); Microsoft Graph answers 401 "required
        // authentication information is either missing or not valid for the resource", 403
        // "access is denied ... might not have enough permission or ... a required license"
        // (`Authorization_RequestDenied`), 404 "the requested resource doesn't exist"
        // (<https://learn.microsoft.com/graph/errors>, "HTTP status codes";
        // <https://learn.microsoft.com/graph/resolve-auth-errors>).
        if observed.saw(404, true) {
            found.push(Verdict::Endpoint);
        }
        if observed.secret_refused().is_some() || observed.saw(401, false) {
            found.push(Verdict::Token);
        }
        // A token endpoint's `invalid_scope` (RFC 6749 §5.2: the scope "exceeds the scope
        // granted by the resource owner"; an Okta service app asking for an Okta API scope
        // it was not granted on its Okta API Scopes tab, developer.okta.com/docs/guides/
        // implement-oauth-for-okta-serviceapp, "Grant allowed scopes"): the credentials were
        // accepted, a permission is missing.
        if observed.saw(403, false) || observed.scope_refused().is_some() {
            found.push(Verdict::Permission);
        }
        if !observed.unanswered.is_empty()
            || observed
                .answered
                .iter()
                .any(|a| a.status == 429 || a.status >= 500)
        {
            found.push(Verdict::Upstream);
        }
        if found.is_empty() {
            found.push(Verdict::Permission);
        }
    }
    found.into_iter().min()
}

fn of_error(e: &RunError) -> Verdict {
    match e {
        RunError::Config { .. } | RunError::Secret { .. } => Verdict::Config,
        RunError::Connector { kind, .. } => match kind {
            ConnectorErrorKind::Config => Verdict::Config,
            ConnectorErrorKind::Auth => Verdict::Token,
            ConnectorErrorKind::Permission => Verdict::Permission,
            ConnectorErrorKind::Upstream => Verdict::Upstream,
            ConnectorErrorKind::Host => Verdict::Host,
        },
        RunError::Trap { .. }
        | RunError::Limit { .. }
        | RunError::Timeout { .. }
        | RunError::Host { .. } => Verdict::Host,
    }
}

/// The host's `egress` line: the requests its policy refused, by origin and rule.
pub fn egress_line(observed: &Observed) -> Option<Probe> {
    if observed.denied.is_empty() {
        return None;
    }
    let count: u64 = observed.denied.iter().map(|d| d.count).sum();
    let rules: Vec<String> = observed
        .denied
        .iter()
        .map(|d| format!("{} ({} request(s))", d.reason, d.count))
        .collect();
    Some(Probe {
        name: "egress".into(),
        ok: false,
        detail: format!(
            "egress refused: the host refused {count} request(s) of the connector: {}; add the origin to [egress] allow (or remove allow to use the connector's own list), a secret's origin to its hosts, or raise the [limits] the rule names",
            rules.join("; ")
        ),
    })
}

/// The `sink` line: [`crate::doors::emit::probe`] for the tenant's `[sink]`.
pub async fn probe_sink(spec: &SinkSpec, allow_loopback_http: bool) -> Probe {
    let found = match spec {
        SinkSpec::Jsonl { path } => probe::probe_jsonl(path),
        SinkSpec::Stdout => SinkProbe::Ok("events go to standard output; nothing to probe".into()),
        SinkSpec::Sekoia(s) => match crate::assembly::sink_secret("[sink] api_key", &s.api_key) {
            Err(e) => SinkProbe::Failed(e),
            Ok(key) => {
                let options =
                    crate::assembly::push_options(s.batch_size, &s.delivery, allow_loopback_http);
                probe::probe_push(
                    probe::sekoia_probe(&s.base_url, key),
                    &options,
                    Arc::new(SystemResolver),
                )
                .await
            }
        },
        SinkSpec::Http(s) => match crate::assembly::sink_secret("[sink] value", &s.value) {
            Err(e) => SinkProbe::Failed(e),
            Ok(value) => {
                let options =
                    crate::assembly::push_options(s.batch_size, &s.delivery, allow_loopback_http);
                probe::probe_push(
                    probe::ndjson_probe(&s.url, &s.header, value),
                    &options,
                    Arc::new(SystemResolver),
                )
                .await
            }
        },
    };
    let kind = match spec {
        SinkSpec::Jsonl { .. } => "jsonl",
        SinkSpec::Stdout => "stdout",
        SinkSpec::Sekoia(_) => "sekoia",
        SinkSpec::Http(_) => "http",
    };
    let name = format!("sink [{kind}]");
    match found {
        SinkProbe::Ok(detail) | SinkProbe::Unconfirmed(detail) => Probe {
            name,
            ok: true,
            detail,
        },
        SinkProbe::Failed(detail) => Probe {
            name,
            ok: false,
            detail: format!("sink failed: {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(ok: bool, detail: &str) -> Probe {
        Probe {
            name: "p".into(),
            ok,
            detail: detail.into(),
        }
    }

    #[test]
    fn the_most_fundamental_failure_wins() {
        let mut seen = Observed::default();
        let failed = Ok(vec![probe(true, "granted"), probe(false, "x")]);
        assert_eq!(
            verdict(&failed, &seen, false),
            Some(Verdict::Permission),
            "a failed probe nothing explains: as before verdicts"
        );
        seen.answer("https://graph", 503, false);
        assert_eq!(verdict(&failed, &seen, false), Some(Verdict::Upstream));
        seen.answer("https://graph", 403, false);
        assert_eq!(verdict(&failed, &seen, false), Some(Verdict::Permission));
        assert_eq!(verdict(&failed, &seen, true), Some(Verdict::Sink));
        seen.answer("https://login", 401, true);
        assert_eq!(verdict(&failed, &seen, true), Some(Verdict::Token));
        seen.answer("https://graph", 404, false);
        assert_eq!(verdict(&failed, &seen, true), Some(Verdict::Endpoint));
        seen.deny("https://graph", "not in the allowlist");
        assert_eq!(verdict(&failed, &seen, true), Some(Verdict::Egress));
    }

    #[test]
    fn a_scope_not_granted_at_the_token_endpoint_is_a_missing_permission_not_a_refusal() {
        let failed = Ok(vec![probe(false, "permission missing: invalid_scope")]);
        let mut seen = Observed::default();
        seen.answer_oauth("https://org", 400, true, Some("invalid_scope"));
        assert!(seen.secret_refused().is_none());
        assert_eq!(verdict(&failed, &seen, false), Some(Verdict::Permission));
        // Any other token error is refused credentials, as before.
        seen.answer_oauth("https://org", 401, true, Some("invalid_client"));
        assert_eq!(verdict(&failed, &seen, false), Some(Verdict::Token));
        assert_eq!(
            crate::doors::http::observed::oauth_error_of(
                br#"{"error":"invalid_scope","error_description":"x"}"#
            ),
            Some("invalid_scope")
        );
        assert_eq!(
            crate::doors::http::observed::oauth_error_of(br#"{"error":"made up"}"#),
            None,
            "only RFC 6749's codes are kept, never other text"
        );
        assert_eq!(
            crate::doors::http::observed::oauth_error_of(b"<html>"),
            None
        );
    }

    #[test]
    fn a_passing_check_passes_whatever_it_met_but_a_refusal_by_the_host() {
        let mut seen = Observed::default();
        seen.answer("https://graph", 403, false);
        seen.answer("https://graph", 404, false);
        let passed = Ok(vec![probe(true, "warning: no licence")]);
        assert_eq!(verdict(&passed, &seen, false), None);
        assert_eq!(verdict(&passed, &seen, true), Some(Verdict::Sink));
        seen.deny("https://other", "not in the allowlist");
        assert_eq!(verdict(&passed, &seen, false), Some(Verdict::Egress));
        let line = egress_line(&seen).unwrap();
        assert!(!line.ok && line.detail.contains("not in the allowlist (1 request(s))"));
    }

    #[test]
    fn a_probe_names_what_the_host_cannot_see_and_an_error_counts() {
        let seen = Observed::default();
        let not_the_api = Ok(vec![probe(false, "wrong endpoint: an HTML page")]);
        assert_eq!(verdict(&not_the_api, &seen, false), Some(Verdict::Endpoint));
        let auth = Err(RunError::Connector {
            tenant: "t".into(),
            kind: ConnectorErrorKind::Auth,
            message: "m".into(),
        });
        assert_eq!(verdict(&auth, &seen, false), Some(Verdict::Token));
    }
}
