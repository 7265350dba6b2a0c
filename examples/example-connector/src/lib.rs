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

use connector_sdk::connector::{self, origin_of, ConfigError, Connector, Description, Probe};
use connector_sdk::doors::{Doors, HttpRequest, HttpResponse};
use connector_sdk::ocsf::{Envelope, USER_INVENTORY_COLLECT};
use connector_sdk::paging::{Listed, Trail};
use connector_sdk::retry::{self, RetryPolicy};
use connector_sdk::state::{Cell, Stored};
use connector_sdk::{emit, time, ConnectorError, Report};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The connector's name and version, in `describe` and in every event's `metadata.loggers`.
const NAME: &str = "example-users";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The example connector.
pub struct ExampleConnector;

/// Its configuration: where the API is, and the tenant's name for `metadata.tenant_uid`.
pub struct Config {
    base_url: String,
    tenant: String,
}

/// Where the last run stopped (the state cell `users/cursor`, format 1).
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
            name: NAME,
            version: VERSION,
            permissions: &["users:read"],
            config_keys: &[("base_url", true, "The API's URL"), ("tenant", false, "Tenant name")],
            secrets: &[("api_key", "The API key (held by the host, never by the connector).")],
            event_classes: &[5003],
        }
    }

    fn parse(pairs: &[(String, String)]) -> Result<Config, ConfigError> {
        let base_url = connector::value(pairs, "base_url").unwrap_or_default();
        if !base_url.starts_with("https://") && !base_url.starts_with("http://") {
            let why = format!("base_url '{base_url}' is not an http(s) URL: set the API's URL");
            return Err(ConfigError(why));
        }
        let base_url = base_url.trim_end_matches('/').to_string();
        let tenant = connector::value(pairs, "tenant").unwrap_or_default().to_string();
        Ok(Config { base_url, tenant })
    }

    fn egress(config: &Config) -> connector::EgressPlan {
        let origin = origin_of(&config.base_url);
        let secrets = vec![("api_key".into(), vec![origin.clone()])];
        connector::EgressPlan { origins: vec![origin], secrets }
    }

    fn check<D: Doors>(doors: &D, config: &Config) -> Result<Vec<Probe>, ConnectorError> {
        let got = token(doors, config, &mut Report::default());
        let detail = got.as_ref().map_or_else(|e| e.to_string(), |_| "key accepted".into());
        Ok(vec![Probe { name: "token [api_key]".into(), ok: got.is_ok(), detail }])
    }

    fn run<D: Doors>(doors: &D, config: &Config) -> Result<Report, ConnectorError> {
        let (mut cell, stored) = Cell::read(doors, "users/cursor", 1, "the cursor")?;
        // Absent (a first run) or unreadable (another format): start over.
        let mut cursor = if let Stored::Value(c) = stored { c } else { Cursor::default() };
        let mut report = Report { full_sync: cursor.updated_after.is_none(), ..Report::default() };
        let auth = format!("Bearer {}", token(doors, config, &mut report)?);
        let first = match &cursor.updated_after {
            Some(t) => format!("{}/users?updated_after={}", config.base_url, t.replace('+', "%2B")),
            None => format!("{}/users", config.base_url),
        };
        let (mut next, mut trail) = (Some(cursor.next.clone().unwrap_or(first)), Trail::default());
        while let Some(url) = next.take() {
            let resp = send(
                doors,
                HttpRequest::get(&url, vec![("authorization".into(), auth.clone())]),
                &mut report,
            )?;
            let body = serde_json::from_slice(&resp.body).map_err(|e| upstream(&url, e))?;
            let page = Listed::parse(body, "users", "next").map_err(|e| upstream(&url, e))?;
            if let Some(link) = &page.next_link {
                trail.step(&page.items, link).map_err(|e| upstream(&url, e))?;
            }
            let (mut ids, mut events) = (Vec::new(), Vec::new());
            for user in &page.items {
                report.items_seen += 1;
                let Some(id) = user["id"].as_str().filter(|id| !id.is_empty()) else {
                    report.items_skipped += 1; // No id, no event: nothing could name it.
                    continue;
                };
                ids.push(id.to_string());
                events.push(map_user(config, user, doors.now_ms()).to_string());
                if let Some(t) = user["updated_at"].as_str().filter(|t| newer(t, &cursor)) {
                    cursor.updated_after = Some(t.to_string());
                }
            }
            let out = emit::emit_bounded(ids, events, &mut |batch| doors.emit(batch))
                .map_err(|e| ConnectorError::Host(e.to_string()))?;
            report.emitted(doors, out);
            cursor.next = page.next_link.clone();
            cell.write(doors, &cursor)?; // The host makes the events durable first.
            next = page.next_link;
        }
        Ok(report)
    }
}

connector_sdk::export_connector!(ExampleConnector);

type Failed = ConnectorError;

/// Whether `t` is newer than the cursor's watermark (compared as instants, not as text).
fn newer(t: &str, cursor: &Cursor) -> bool {
    let at = time::parse_rfc3339_ms;
    at(t).is_some() && cursor.updated_after.as_deref().is_none_or(|w| at(t) > at(w))
}

/// A bearer token for the API key: the host fills the placeholder in the form body.
fn token<D: Doors>(doors: &D, config: &Config, report: &mut Report) -> Result<String, Failed> {
    let url = format!("{}/token", config.base_url);
    let resp = send(doors, HttpRequest::post_form(&url, "api_key={{secret:api_key}}"), report)?;
    let body: Value = serde_json::from_slice(&resp.body).map_err(|e| upstream(&url, e))?;
    let token = body["access_token"].as_str().map(str::to_string);
    token.ok_or_else(|| upstream(&url, "no access_token in the answer"))
}

/// Sends `req`, waiting out 429/503/504 (`Retry-After`); 401 and 403 are the key's fault.
fn send<D: Doors>(
    doors: &D,
    req: HttpRequest,
    report: &mut Report,
) -> Result<HttpResponse, Failed> {
    let resp = retry::fetch(doors, &req, &RetryPolicy::default(), &mut report.requests)
        .map_err(|e| ConnectorError::from_fetch("the example API", &req.url, &e))?;
    match resp.status {
        200 => Ok(resp),
        401 | 403 => Err(ConnectorError::Auth(format!(
            "{} answered {}: check the api_key secret",
            req.url, resp.status
        ))),
        s => Err(upstream(&req.url, format!("status {s}"))),
    }
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
    let envelope = Envelope {
        class: &USER_INVENTORY_COLLECT,
        product_name: "Example Directory",
        vendor_name: "Example",
        connector_name: NAME,
        connector_version: VERSION,
        tenant_uid: &config.tenant,
        uid_tag: "example-5003/v1",
    };
    let body = Map::from_iter([("user".to_string(), Value::Object(out))]);
    envelope.wrap(user["id"].as_str().unwrap_or_default(), body, Map::new(), now_ms)
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
            _ => json(200, &[], r#"{"users":[{"id":"u1","updated_at":"2026-01-01T00:00:00Z"}]}"#),
        });
        let report = ExampleConnector::run(&doors, &config()).unwrap();
        assert_eq!((report.events_emitted, report.requests), (1, 3), "token, 429, page");
        assert_eq!(doors.slept.get(), 2_000, "Retry-After: 2");
        let stored = doors.kv.borrow()["users/cursor"].0.clone();
        assert_eq!(
            String::from_utf8(stored).unwrap(),
            r#"{"format":1,"next":null,"updated_after":"2026-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn a_bad_base_url_is_one_line_naming_it() {
        let e = ExampleConnector::parse(&[("base_url".into(), "ftp://x".into())]).err().unwrap();
        assert_eq!(e.0, "base_url 'ftp://x' is not an http(s) URL: set the API's URL");
    }
}
