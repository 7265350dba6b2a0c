//! `connector-host check`'s probe of a tenant's sink: can the run's events get where they
//! go, without one event being delivered or one file created?
//!
//! - **jsonl**: the events file, when it exists, is writable; when it does not, the nearest
//!   folder on its path that exists is a folder this user may create entries in (the first
//!   run creates the missing folders and the file). Nothing is opened for writing.
//! - **stdout**: nothing to probe.
//! - **Sekoia.io**: `GET {base_url}/v1/me` with the key. Sekoia.io's "Getting Started with
//!   the Sekoia.io API" (<https://docs.sekoia.io/developer/api>, from the
//!   `SEKOIA-IO/documentation` repository), step 3 "Make your first API call": "To verify
//!   that your key works, retrieve your user profile. This endpoint requires no special
//!   permissions beyond a valid key" — `curl -X GET https://api.sekoia.io/v1/me -H
//!   "Authorization: Bearer $SEKOIA_API_KEY"`; step 1: another region's base URL (e.g.
//!   `https://app.mco1.sekoia.io/api`) takes the same paths; its troubleshooting table: 401
//!   "the API key is missing, expired, or invalid", 403 "the key does not have the required
//!   permission", 429 rate limit. The asset connector's push endpoint has no documented dry
//!   run (Sekoia's SDK never posts an empty list), so no request is made to it.
//! - **http** (NDJSON intake): a `POST` of an empty body to the intake URL, with the
//!   credential header and `Content-Type: application/x-ndjson`: zero lines, so zero events.
//!   Our README's sink section defines this probe (no receiver we name documents a dry run);
//!   a receiver that refuses an empty body (Elastic's HTTP endpoint input answers 406 "if the
//!   POST request does not contain a body") is reachable, and the probe says the credential
//!   was not confirmed.
//!
//! Answers: 2xx ok; 401 and 403 the credential refused; 404 and 405 nothing there to take
//! events (the URL); 3xx a redirect (never followed: set the final URL); 429 and 5xx the
//! receiver failing now; no answer (refused, a timeout, TLS) unreachable. The same egress
//! rules as delivery: https only (loopback http only with `allow_loopback_http`), public
//! addresses only, no proxies; the credential is scrubbed from every message.

use std::path::Path;
use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};

use super::push::{receiver_message, secret_parts, PushOptions};
use crate::doors::http::client::{http_client, truncate_at_char_boundary};
use crate::doors::http::netguard::{NameResolver, NonPublicAddress};
use crate::doors::http::secrets::Scrubber;
use crate::doors::http::{EgressPolicy, Origin};

/// What a sink probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkProbe {
    /// The sink can take events: what was found.
    Ok(String),
    /// Reachable, but the credential could not be confirmed: why.
    Unconfirmed(String),
    /// Events could not be delivered: why, and the fix.
    Failed(String),
}

/// The request a push sink's probe sends.
pub struct ProbeRequest {
    /// `GET` (Sekoia.io's `/v1/me`) or `POST` with an empty body (an NDJSON intake).
    pub method: reqwest::Method,
    /// The URL.
    pub url: String,
    /// The `Content-Type` of the empty body of a `POST`.
    pub content_type: Option<&'static str>,
    /// The header carrying the credential.
    pub header: String,
    /// Its whole value (e.g. `Bearer <key>`).
    pub value: String,
    /// The secret itself (scrubbed from every message).
    pub secret: String,
    /// How the sink's settings name the URL in a fix (`[sink] url`, `[sink] base_url`).
    pub url_key: &'static str,
    /// How they name the credential (`[sink] value`, `[sink] api_key`).
    pub credential_key: &'static str,
}

/// The probe of Sekoia.io's API at `base_url` (a trailing `/` dropped, a path prefix kept)
/// with `api_key`: `GET {base_url}/v1/me`.
pub fn sekoia_probe(base_url: &str, api_key: String) -> ProbeRequest {
    ProbeRequest {
        method: reqwest::Method::GET,
        url: format!("{}/v1/me", base_url.trim().trim_end_matches('/')),
        content_type: None,
        header: "Authorization".into(),
        value: format!("Bearer {api_key}"),
        secret: api_key,
        url_key: "[sink] base_url",
        credential_key: "[sink] api_key",
    }
}

/// The probe of an NDJSON intake at `url`: a `POST` of zero lines with `header: value`.
pub fn ndjson_probe(url: &str, header: &str, value: String) -> ProbeRequest {
    ProbeRequest {
        method: reqwest::Method::POST,
        url: url.to_string(),
        content_type: Some("application/x-ndjson"),
        header: header.to_string(),
        secret: value.clone(),
        value,
        url_key: "[sink] url",
        credential_key: "[sink] value",
    }
}

/// Sends `probe` under the sink's egress rules and delivery timeouts, and says what the
/// answer means. No event is sent.
pub async fn probe_push(
    probe: ProbeRequest,
    options: &PushOptions,
    resolver: Arc<dyn NameResolver>,
) -> SinkProbe {
    let scrub = Scrubber::new(secret_parts(&probe.secret).iter().map(String::as_str));
    let failed = |why: String| SinkProbe::Failed(scrub.clean(why));
    let origin = match Origin::parse(&probe.url) {
        Ok(o) => o,
        Err(e) => return failed(format!("{}: {e}", probe.url_key)),
    };
    let mut policy = EgressPolicy::new(vec![origin.clone()]);
    policy.allow_loopback_http = options.allow_loopback_http;
    let url = match policy.check(&probe.url) {
        Ok((url, _)) => url,
        Err(why) => {
            return failed(format!(
                "{} is refused by the egress rules: {why}",
                probe.url_key
            ))
        }
    };
    let (Ok(name), Ok(mut value)) = (
        HeaderName::from_bytes(probe.header.as_bytes()),
        HeaderValue::from_str(&probe.value),
    ) else {
        return failed(format!(
            "the credential header cannot be sent (its name or value holds a character a header cannot carry): check {}",
            probe.credential_key
        ));
    };
    value.set_sensitive(true);
    let client = match http_client(options.connect_timeout, resolver) {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let mut request = client
        .request(probe.method.clone(), url)
        .timeout(options.request_timeout)
        .header(name, value);
    if let Some(ct) = probe.content_type {
        request = request.header(CONTENT_TYPE, ct).body(Vec::<u8>::new());
    }
    let what = if probe.method == reqwest::Method::GET {
        format!("GET {}", path_of(&probe.url))
    } else {
        "an empty POST (zero events)".to_string()
    };
    let mut resp = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(unanswered(&e, &origin, probe.url_key)),
    };
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // At most the sink's answer cap is read; the text is only quoted.
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= options.max_response_bytes {
            break;
        }
    }
    let says = || scrub.clean(receiver_message(&body));
    match status {
        200..=299 => SinkProbe::Ok(format!(
            "{origin} answered HTTP {status} to {what}: reachable, credential accepted; no event sent"
        )),
        401 | 403 => failed(format!(
            "credentials refused: {origin} answered HTTP {status} to {what} ({}); check {}",
            says(),
            probe.credential_key
        )),
        404 | 405 => failed(format!(
            "wrong URL: {origin} answered HTTP {status} to {what} ({}): nothing takes events there; check {}",
            says(),
            probe.url_key
        )),
        300..=399 => {
            let mut to = location.unwrap_or_else(|| "no Location".into());
            truncate_at_char_boundary(&mut to, 300);
            failed(format!(
                "{origin} redirects (HTTP {status} to {to}); redirects are not followed: set {} to the final address",
                probe.url_key
            ))
        }
        429 | 500..=599 => failed(format!(
            "the receiver failed: {origin} answered HTTP {status} to {what} ({}); run check again later",
            says()
        )),
        _ => SinkProbe::Unconfirmed(scrub.clean(format!(
            "warning: {origin} is reachable but answered HTTP {status} to {what} ({}), so the credential was not confirmed",
            says()
        ))),
    }
}

/// Why a request got no answer, with the fix.
fn unanswered(e: &reqwest::Error, origin: &Origin, url_key: &str) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut causes = Vec::new();
    while let Some(s) = source {
        if let Some(np) = s.downcast_ref::<NonPublicAddress>() {
            return format!("{url_key} is refused by the egress rules: {np}");
        }
        causes.push(s.to_string());
        source = s.source();
    }
    let mut why = if e.is_timeout() {
        "no answer in time".to_string()
    } else if causes.is_empty() {
        "no connection".to_string()
    } else {
        causes.join(": ")
    };
    truncate_at_char_boundary(&mut why, 300);
    format!("unreachable: {origin} ({why}); check {url_key} and that the receiver is up")
}

fn path_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default()
}

/// The probe of a JSONL events file at `path`: writable if it exists, else creatable (the
/// nearest folder on its path that exists is writable). Nothing is created or opened for
/// writing; `access(2)` answers for this process's user.
pub fn probe_jsonl(path: &Path) -> SinkProbe {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return SinkProbe::Failed(format!(
                "events file {shown} is a folder: set [sink] path to a file"
            ))
        }
        Ok(meta) => {
            return match writable(path, false) {
                Ok(()) => SinkProbe::Ok(format!(
                    "events file {shown} exists ({} bytes) and is writable; nothing written",
                    meta.len()
                )),
                Err(e) => SinkProbe::Failed(format!(
                    "events file {shown} is not writable by this user ({e}): fix its permissions or set [sink] path"
                )),
            };
        }
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return SinkProbe::Failed(format!("cannot look at events file {shown}: {e}"))
        }
        Err(_) => {}
    }
    // The file does not exist: the first run creates it, and the folders missing on its path.
    let mut folder = path.parent();
    while let Some(dir) = folder {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {
                return match writable(dir, true) {
                    Ok(()) => SinkProbe::Ok(format!(
                        "events file {shown} does not exist yet: the first run creates it (folder {} is writable); nothing created",
                        dir.display()
                    )),
                    Err(e) => SinkProbe::Failed(format!(
                        "events file {shown} cannot be created: folder {} is not writable by this user ({e}): fix its permissions or set [sink] path",
                        dir.display()
                    )),
                };
            }
            Ok(_) => {
                return SinkProbe::Failed(format!(
                    "events file {shown} cannot be created: {} is not a folder; set [sink] path",
                    dir.display()
                ))
            }
            Err(_) => folder = dir.parent(),
        }
    }
    SinkProbe::Failed(format!(
        "events file {shown} cannot be created: no folder on its path exists; set [sink] path"
    ))
}

/// Whether this process's user may write `path` (create entries in it, for a `folder`):
/// `access(2)`, which answers for the real user, root and read-only mounts included.
#[cfg(unix)]
fn writable(path: &Path, folder: bool) -> Result<(), String> {
    use rustix::fs::Access;
    let wanted = if folder {
        Access::WRITE_OK | Access::EXEC_OK
    } else {
        Access::WRITE_OK
    };
    rustix::fs::access(path, wanted).map_err(|e| e.to_string())
}

/// Whether `path` is writable, as far as its read-only flag tells.
#[cfg(not(unix))]
fn writable(path: &Path, _folder: bool) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().readonly() => Err("read-only".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jsonl_probe_creates_nothing_and_says_where_the_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("out/sub/events.jsonl");
        match probe_jsonl(&path) {
            SinkProbe::Ok(text) => assert!(
                text.contains("does not exist yet")
                    && text.contains(&format!("folder {} is writable", d.display())),
                "{text}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(!d.join("out").exists(), "no folder created");
        std::fs::write(d.join("events.jsonl"), b"{}\n").unwrap();
        assert!(
            matches!(probe_jsonl(&d.join("events.jsonl")), SinkProbe::Ok(t) if t.contains("3 bytes"))
        );
        assert!(matches!(probe_jsonl(d), SinkProbe::Failed(t) if t.contains("is a folder")));
        // A regular file in the way of the folders the run would create.
        assert!(
            matches!(probe_jsonl(&d.join("events.jsonl/x.jsonl")), SinkProbe::Failed(t) if t.contains("is not a folder"))
        );
    }

    #[test]
    fn the_sekoia_probe_reads_the_profile_of_the_key() {
        let p = sekoia_probe("https://app.mco1.sekoia.io/api/", "k".into());
        assert_eq!(p.url, "https://app.mco1.sekoia.io/api/v1/me");
        assert_eq!(p.method, reqwest::Method::GET);
        assert_eq!(p.value, "Bearer k");
        let p = ndjson_probe("https://intake.example/ocsf", "X-Key", "v".into());
        assert_eq!(
            (p.method, p.content_type),
            (reqwest::Method::POST, Some("application/x-ndjson"))
        );
    }
}
