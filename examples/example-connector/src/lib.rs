//! An example connector on `connector-sdk`: the users of a small JSON API as OCSF 5003 "User
//! Inventory Info" events. It shows a new author the whole path in one file — configuration,
//! egress plan, a token from a secret the connector never sees, paged reads with retries, a
//! resumable cursor, the SDK's envelope — and `tests/tests/example.rs` runs it in the real
//! host against `tests/src/example_api.rs` on 127.0.0.1.
//!
//! The API (any base URL):
//! - `POST {base}/token`, form `api_key=<key>` → `{"access_token": "..."}`;
//! - `GET {base}/users[?updated_after=<RFC 3339>]` with `Authorization: Bearer <token>` →
//!   `{"users": [{"id", "name", "email", "updated_at"}], "next": "<url>" | null}`, sorted by
//!   `updated_at`; 401 without a valid token, 429 with `Retry-After` when throttled.
//!
//! The cursor (one state cell) holds the next page of the listing in flight and the newest
//! `updated_at` delivered: a run killed midway resumes at its page, and a finished listing's
//! next run asks only for users updated since.

use connector_sdk::connector::{origin_of, ConfigError, Connector, Description, EgressPlan, Probe};
use connector_sdk::doors::{Doors, HttpRequest, HttpResponse};
use connector_sdk::ocsf::{Envelope, USER_INVENTORY_COLLECT};
use connector_sdk::paging::{Listed, Trail};
use connector_sdk::retry::{is_retryable_status, wait_ms, RetryPolicy};
use connector_sdk::state::{Cell, Stored};
use connector_sdk::{emit, time, ConnectorError, Report};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The checkpoint key of the cursor, and its format.
const CURSOR_KEY: &str = "users/cursor";
const CURSOR_FORMAT: u32 = 1;

/// The example connector.
pub struct ExampleConnector;

/// Its configuration: where the API is, and the tenant's name for `metadata.tenant_uid`.
pub struct Config {
    base_url: String,
    tenant: String,
}

/// Where the last run stopped.
#[derive(Default, Serialize, Deserialize)]
struct Cursor {
    /// The next page of the listing in flight (None: start a new listing).
    next: Option<String>,
    /// The newest `updated_at` delivered, as the API wrote it.
    updated_after: Option<String>,
}

impl Connector for ExampleConnector {
    type Config = Config;

    fn describe() -> Description {
        Description {
            name: "example-users",
            version: env!("CARGO_PKG_VERSION"),
            permissions: &["users:read"],
            config_keys: &[
                (
                    "base_url",
                    true,
                    "The API's base URL, e.g. https://api.example.com",
                ),
                (
                    "tenant",
                    false,
                    "The tenant's name, emitted as metadata.tenant_uid",
                ),
            ],
            secrets: &[(
                "api_key",
                "The API key (held by the host, never by the connector).",
            )],
            event_classes: &[5003],
        }
    }

    fn parse(pairs: &[(String, String)]) -> Result<Config, ConfigError> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let base_url = get("base_url").ok_or_else(|| {
            ConfigError("base_url is missing: set it to the API's base URL".into())
        })?;
        if !base_url.starts_with("https://") && !base_url.starts_with("http://") {
            return Err(ConfigError(format!(
                "base_url '{base_url}' is not an http(s) URL"
            )));
        }
        let base_url = base_url.trim_end_matches('/').to_string();
        Ok(Config {
            base_url,
            tenant: get("tenant").unwrap_or_default(),
        })
    }

    fn egress(config: &Config) -> EgressPlan {
        let origin = origin_of(&config.base_url);
        EgressPlan {
            origins: vec![origin.clone()],
            secrets: vec![("api_key".into(), vec![origin])],
        }
    }

    fn check<D: Doors>(doors: &D, config: &Config) -> Result<Vec<Probe>, ConnectorError> {
        let (ok, detail) = match token(doors, config, &mut Report::default()) {
            Ok(_) => (true, "the API key was accepted".to_string()),
            Err(e) => (false, e.to_string()),
        };
        Ok(vec![Probe {
            name: "token [api_key]".into(),
            ok,
            detail,
        }])
    }

    fn run<D: Doors>(doors: &D, config: &Config) -> Result<Report, ConnectorError> {
        let (mut cell, stored) = Cell::read(doors, CURSOR_KEY, CURSOR_FORMAT, "the cursor")?;
        let mut cursor: Cursor = match stored {
            Stored::Value(c) => c,
            Stored::Absent | Stored::Unreadable => Cursor::default(),
        };
        let mut report = Report {
            full_sync: cursor.updated_after.is_none(),
            ..Report::default()
        };
        let bearer = format!("Bearer {}", token(doors, config, &mut report)?);
        let first = match &cursor.updated_after {
            Some(t) => format!(
                "{}/users?updated_after={}",
                config.base_url,
                t.replace('+', "%2B")
            ),
            None => format!("{}/users", config.base_url),
        };
        let mut next = Some(cursor.next.clone().unwrap_or(first));
        let mut trail = Trail::default();
        while let Some(url) = next.take() {
            let req = HttpRequest::get(&url, vec![("authorization".into(), bearer.clone())]);
            let resp = send(doors, req, &mut report)?;
            let body = serde_json::from_slice(&resp.body).map_err(|e| upstream(&url, e))?;
            let page = Listed::parse(body, "users", "next").map_err(|e| upstream(&url, e))?;
            if let Some(link) = &page.next_link {
                trail
                    .step(&page.items, link)
                    .map_err(|e| upstream(&url, e))?;
            }
            let (mut ids, mut events) = (Vec::new(), Vec::new());
            for user in &page.items {
                report.items_seen += 1;
                let id = user["id"].as_str().unwrap_or_default();
                if id.is_empty() {
                    report.items_skipped += 1;
                    continue;
                }
                ids.push(id.to_string());
                events.push(map_user(config, user, doors.now_ms()).to_string());
                if let Some(t) = user["updated_at"].as_str().filter(|t| newer(t, &cursor)) {
                    cursor.updated_after = Some(t.to_string());
                }
            }
            let out = emit::emit_bounded(ids, events, &mut |batch| doors.emit(batch))
                .map_err(|e| ConnectorError::Host(e.to_string()))?;
            report.events_emitted += out.accepted;
            report.items_skipped += out.skipped.len() as u64;
            cursor.next = page.next_link.clone();
            cell.write(doors, &cursor)?;
            next = page.next_link;
        }
        Ok(report)
    }
}

connector_sdk::export_connector!(ExampleConnector);

/// Whether `t` is newer than the cursor's watermark (compared as instants, not as text).
fn newer(t: &str, cursor: &Cursor) -> bool {
    let at = |s: &str| time::parse_rfc3339_ms(s);
    match cursor.updated_after.as_deref() {
        Some(w) => at(t) > at(w),
        None => at(t).is_some(),
    }
}

/// A bearer token for the API key: the host fills the placeholder in the form body.
fn token<D: Doors>(
    doors: &D,
    config: &Config,
    report: &mut Report,
) -> Result<String, ConnectorError> {
    let url = format!("{}/token", config.base_url);
    let req = HttpRequest {
        method: "POST".into(),
        url: url.clone(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: Some(b"api_key={{secret:api_key}}".to_vec()),
    };
    let resp = send(doors, req, report)?;
    let body: Value = serde_json::from_slice(&resp.body).map_err(|e| upstream(&url, e))?;
    match body["access_token"].as_str() {
        Some(t) => Ok(t.to_string()),
        None => Err(upstream(&url, "no access_token in the answer")),
    }
}

/// Sends `req`, waiting and retrying while the API throttles; 401/403 are the credentials'.
fn send<D: Doors>(
    doors: &D,
    req: HttpRequest,
    report: &mut Report,
) -> Result<HttpResponse, ConnectorError> {
    let policy = RetryPolicy::default();
    for attempt in 0.. {
        report.requests += 1;
        let resp = doors
            .fetch(req.clone())
            .map_err(|e| ConnectorError::from_fetch("the example API", &req.url, &e))?;
        match resp.status {
            200 => return Ok(resp),
            401 | 403 => {
                let why = format!(
                    "{} answered {}: check the api_key secret",
                    req.url, resp.status
                );
                return Err(ConnectorError::Auth(why));
            }
            s if is_retryable_status(s) && attempt + 1 < policy.max_attempts => {
                doors.sleep_ms(wait_ms(&policy, attempt, Some(&resp), doors.now_ms()));
            }
            s => return Err(upstream(&req.url, format!("status {s}"))),
        }
    }
    unreachable!("the loop returns")
}

fn upstream(url: &str, why: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Upstream(format!("{url}: {why}; run again later"))
}

/// One API user as an OCSF 5003 event, in the SDK's envelope.
pub fn map_user(config: &Config, user: &Value, now_ms: i64) -> Value {
    let mut out = Map::new();
    for (from, to) in [("id", "uid"), ("name", "name"), ("email", "email_addr")] {
        if let Some(v) = user[from].as_str().filter(|v| !v.trim().is_empty()) {
            out.insert(to.into(), v.into());
        }
    }
    let id = user["id"].as_str().unwrap_or_default();
    let mut body = Map::new();
    body.insert("user".into(), Value::Object(out));
    let envelope = Envelope {
        class: &USER_INVENTORY_COLLECT,
        product_name: "Example Directory",
        vendor_name: "Example",
        connector_name: "example-users",
        connector_version: env!("CARGO_PKG_VERSION"),
        tenant_uid: &config.tenant,
        uid_tag: "example-5003/v1",
    };
    envelope.wrap(id, body, Map::new(), now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_sdk::doors::fake::{json, FakeDoors};

    fn config() -> Config {
        ExampleConnector::parse(&[("base_url".into(), "https://api.test/".into())]).unwrap()
    }

    #[test]
    fn a_page_is_fetched_after_a_429_and_the_cursor_moves_past_it() {
        let doors = FakeDoors::new(|n, r: &HttpRequest| match (n, r.url.as_str()) {
            (_, "https://api.test/token") => json(200, &[], r#"{"access_token":"t"}"#),
            (1, _) => json(429, &[("Retry-After", "2")], "{}"),
            _ => json(
                200,
                &[],
                r#"{"users":[{"id":"u1","updated_at":"2026-01-01T00:00:00Z"}]}"#,
            ),
        });
        let report = ExampleConnector::run(&doors, &config()).unwrap();
        assert_eq!(
            (report.events_emitted, report.requests),
            (1, 3),
            "token, 429, page"
        );
        assert_eq!(doors.slept.get(), 2_000, "Retry-After: 2");
        let stored = doors.kv.borrow()[CURSOR_KEY].0.clone();
        assert_eq!(
            String::from_utf8(stored).unwrap(),
            r#"{"format":1,"next":null,"updated_after":"2026-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn a_bad_base_url_is_one_line_naming_it() {
        let e = ExampleConnector::parse(&[("base_url".into(), "ftp://x".into())])
            .err()
            .unwrap();
        assert_eq!(e.0, "base_url 'ftp://x' is not an http(s) URL");
    }
}
