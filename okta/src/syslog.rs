//! The System Log polling query of incremental runs, and what each log event says changed.
//!
//! Okta's sources (cited where each rule is used):
//! - developer.okta.com/docs/reference/system-log-query ("Polling requests", "Expression
//!   filter", "Transfer data to a separate system"), the companion guide of the System Log
//!   API;
//! - the spec's `listLogEvents` (okta-management-openapi-spec, management-minimal.yaml,
//!   release 2026.06.3): `since`, `until`, `after` (an opaque token in the `next` link),
//!   `filter` (a SCIM filter expression, "All operators except [ ] are supported"), `limit`
//!   ("Integer between 0 and 1000", default 100), `sortOrder` ASCENDING (default) or
//!   DESCENDING;
//! - developer.okta.com/docs/reference/core-okta-api, "Filter" and "Operators": string
//!   literals in double quotes, `eq` and `sw`, expressions joined by `or`.
//! - OKTA.md, "Deleted users": polling, store the `next` link, stop at an empty page; 90 days
//!   kept; a `since` beyond 180 days is an error.

use connector_sdk::doors::{Doors, HttpResponse};
use connector_sdk::paging::{first_line, Trail};
use connector_sdk::time::{format_rfc3339, parse_http_date_ms, parse_rfc3339_ms};
use connector_sdk::ConnectorError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::client::{next_link, path_of, upstream, Client};

/// Events a page asks for: the most `limit` takes ("Integer between 0 and 1000", spec
/// `listLogEvents`; OKTA.md: `limit` ≤ 1000). A page holding more is refused, not trusted.
pub const LIMIT: usize = 1000;

/// Most pages one run reads from the log. A busy org writes events as fast as they are read,
/// and a polling query never ends by itself ("They have an infinite number of pages",
/// system-log-query): past this the run stops with its position committed, and the next run
/// goes on from there. 200 pages of 1,000 is 200,000 events, 200 requests of the logs bucket
/// (120 a minute at Workforce's limit, OKTA.md "Rate limits"; our half is 60).
pub const MAX_PAGES_PER_RUN: u64 = 200;

/// The event types read, as one filter. Prefixes (`sw`, "Events that start with …",
/// system-log-query "Expression filter") take every event of a family, those Okta adds
/// later included:
/// - `user.lifecycle.` — create, activate, deactivate, suspend, unsuspend, and the deletions
///   `user.lifecycle.delete.initiated` / `.completed` (system-log-query "User events";
///   OKTA.md "Deleted users");
/// - `user.account.` — `update_profile` (the profile; OKTA.md "Users"), `privilege.grant` /
///   `.revoke` (roles assigned to the user; OKTA.md "Admin roles"), and whatever else Okta
///   logs about an account under that prefix (a user read again costs requests, no events
///   lost);
/// - `group.user_membership.` — `add` / `remove` (system-log-query "Group event");
/// - `group.privilege.` — `grant` / `revoke` (roles assigned to a group; OKTA.md "Admin
///   roles");
/// - `user.mfa.factor.` — `activate`, `deactivate`, `reset_all` (help.okta.com, Workflows
///   event cards "User MFA Factor Activated/Deactivated/Reset All": the events
///   `user.mfa.factor.activate`, `.deactivate`, `.reset_all`; on Identity Engine orgs a
///   reset logs `.deactivate` per factor).
pub const FILTER: &str = "eventType sw \"user.lifecycle.\" or eventType sw \"user.account.\" or eventType sw \"group.user_membership.\" or eventType sw \"group.privilege.\" or eventType sw \"user.mfa.factor.\"";

/// What a query value may hold unencoded: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The first request of a polling query that starts at `since_ms`: `since` without `until`
/// and `sortOrder=ASCENDING`, which makes it a polling request ("`until` must be
/// unspecified", "`sortOrder` must be `ASCENDING`", system-log-query "Polling requests"),
/// whose events are "time filtered by their internal persistence time to avoid skipping
/// records due to system delays". Later pages come from the `next` links, never built here
/// ("always follow the `next` links", "Transfer data to a separate system").
pub fn first_url(org_url: &str, since_ms: i64) -> String {
    format!(
        "{org_url}/api/v1/logs?since={}&sortOrder=ASCENDING&limit={LIMIT}&filter={}",
        utf8_percent_encode(&okta_time(since_ms), QUERY_VALUE),
        utf8_percent_encode(FILTER, QUERY_VALUE)
    )
}

/// A time as Okta writes them, `YYYY-MM-DDTHH:mm:ss.SSSZ` ("All Date values use the ISO
/// 8601 format `YYYY-MM-DDTHH:mm:ss.SSSZ`", core-okta-api "Operators"; the system-log-query
/// examples' `since=2023-10-01T00:00:00.000Z`), to the second below (an earlier bound reads
/// more, never less).
pub fn okta_time(ms: i64) -> String {
    format_rfc3339(ms).replace('Z', ".000Z")
}

/// What one log event says changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A user was deleted (`user.lifecycle.delete.initiated` or `.completed`): its id, the
    /// target's `alternateId` (the login) and the event's `published`, ms.
    Deleted {
        /// The user id.
        id: String,
        /// The login, when the target gave one.
        login: Option<String>,
        /// When, if the event said so readably.
        published_ms: Option<i64>,
    },
    /// Something of a user changed: its status, profile, groups, roles or factors.
    User {
        /// The user id.
        id: String,
        /// The latest `published` of the page's events about it, ms (None: one of them had
        /// none readable).
        published_ms: Option<i64>,
    },
    /// The roles of a group changed (`group.privilege.grant` / `.revoke`).
    GroupPrivilege {
        /// The group id.
        id: String,
    },
}

/// The changes of a page of events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// In the order of the events, each (kind, id) once.
    pub changes: Vec<Change>,
    /// Events of a type read whose target names nothing usable (no target of the expected
    /// type, no id): skipped and counted, never a failure.
    pub skipped: u64,
    /// Events of a type not asked for (the filter should leave none): ignored.
    pub ignored: u64,
}

/// What kind of target an event's type is about.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Deleted,
    User,
    Group,
}

/// The kind of change of an event type; None for a type not read.
fn kind_of(event_type: &str) -> Option<Kind> {
    match event_type {
        "user.lifecycle.delete.initiated" | "user.lifecycle.delete.completed" => {
            Some(Kind::Deleted)
        }
        t if t.starts_with("group.privilege.") => Some(Kind::Group),
        t if [
            "user.lifecycle.",
            "user.account.",
            "group.user_membership.",
            "user.mfa.factor.",
        ]
        .iter()
        .any(|p| t.starts_with(p)) =>
        {
            Some(Kind::User)
        }
        _ => None,
    }
}

/// The changes `events` (one page, as Okta sent it) describe. A user is a target of type
/// `User`, a group one of type `UserGroup` (the spec's `LogTarget`: `id`, `type`,
/// `alternateId`, `displayName`; help.okta.com "Okta Expression Language and event hooks":
/// `event.target.?[type eq 'UserGroup' …]`). Every matching target of an event counts (a
/// membership event names the user and the group; only the user is read). Anything else
/// — not an object, no `eventType`, no target of the expected type, an id that is not a
/// non-blank string — is skipped and counted.
pub fn changes(events: &[Value]) -> Changes {
    let mut out = Changes::default();
    let mut seen = std::collections::HashMap::new();
    for event in events {
        let Some(event_type) = event["eventType"].as_str() else {
            out.skipped += 1;
            continue;
        };
        let Some(kind) = kind_of(event_type) else {
            out.ignored += 1;
            continue;
        };
        let wanted = if kind == Kind::Group {
            "UserGroup"
        } else {
            "User"
        };
        let targets: Vec<&Value> = event["target"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter(|t| {
                        t["type"]
                            .as_str()
                            .is_some_and(|k| k.eq_ignore_ascii_case(wanted))
                    })
                    .filter(|t| text(&t["id"]).is_some_and(is_okta_id))
                    .collect()
            })
            .unwrap_or_default();
        if targets.is_empty() {
            out.skipped += 1;
            continue;
        }
        let published_ms = event["published"].as_str().and_then(parse_rfc3339_ms);
        for target in targets {
            let id = text(&target["id"]).unwrap_or_default().to_string();
            if let Some(&at) = seen.get(&(kind as u8, id.clone())) {
                // Seen in this page: a user's change is as late as its latest event.
                if let Some(Change::User {
                    published_ms: p, ..
                }) = out.changes.get_mut(at)
                {
                    *p = p.zip(published_ms).map(|(a, b)| a.max(b));
                }
                continue;
            }
            seen.insert((kind as u8, id.clone()), out.changes.len());
            out.changes.push(match kind {
                Kind::Deleted => Change::Deleted {
                    id,
                    login: text(&target["alternateId"]).map(str::to_string),
                    published_ms,
                },
                Kind::User => Change::User { id, published_ms },
                Kind::Group => Change::GroupPrivilege { id },
            });
        }
    }
    out
}

/// A non-blank string, trimmed.
fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// Whether `id` can be an Okta object id, and so a path segment as it is: Okta's ids are
/// short tokens of letters and digits (`00u1ero7vZFVEIYLWPBN`, the spec's examples); this
/// takes RFC 3986's unreserved characters, at most 64. Anything else in a log target or a
/// users page (`../`, `?`, `%`, spaces) is hostile or broken input: skipped and counted,
/// never put into a URL.
pub fn is_okta_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// One page of the polling query.
#[derive(Debug)]
pub struct LogPage {
    /// The events, as sent.
    pub events: Vec<Value>,
    /// The `next` link (a polling query always has one, system-log-query "Polling requests":
    /// "a `next` link relation header is always present, even if there are no new events").
    pub next: Option<String>,
    /// The answer's `Date`, ms (None: absent or not an HTTP date).
    pub date_ms: Option<i64>,
}

/// How a page request ended.
#[derive(Debug)]
pub enum Answer {
    /// A page.
    Page(LogPage),
    /// The log cannot be read from here: 403 (no `okta.logs.read`) or 400 (the position or
    /// query refused, e.g. a `since` past 180 days). The line says which and what happens.
    Refused(String),
}

/// Reads one page of the polling query at `url`, with the checks a hostile or broken answer
/// needs: a JSON array of at most [`LIMIT`] events, a `next` link on the org's own origin,
/// and (through `trail`) no link followed twice and no page repeating an earlier page's
/// events under a new link.
pub fn read_page<D: Doors>(
    client: &Client<D>,
    org_url: &str,
    url: &str,
    trail: &mut Trail,
) -> Result<Answer, ConnectorError> {
    let resp = client.get(url)?;
    match resp.status {
        200 => {}
        401 => {
            return Err(ConnectorError::Auth(format!(
                "{} answered 401: check the tenant's Okta credential",
                path_of(url)
            )))
        }
        403 => {
            return Ok(Answer::Refused(format!(
                "{} answered 403: without okta.logs.read deleted users are never reported and runs cannot be incremental; grant okta.logs.read",
                path_of(url)
            )))
        }
        400 => {
            return Ok(Answer::Refused(format!(
                "{} answered 400 ({}): the System Log refused the stored position",
                path_of(url),
                error_summary(&resp)
            )))
        }
        s => return Err(upstream(url, format!("status {s}"))),
    }
    let events: Vec<Value> = serde_json::from_slice(&resp.body)
        .map_err(|e| upstream(url, format!("the log page is not a JSON array ({e})")))?;
    if events.len() > LIMIT {
        return Err(upstream(
            url,
            format!(
                "the log page holds {} events, more than the {LIMIT} asked for",
                events.len()
            ),
        ));
    }
    let next = next_link(&resp);
    if let Some(link) = &next {
        if !link.starts_with(&format!("{org_url}/")) {
            return Err(upstream(
                url,
                format!("the next link leaves the org ({})", first_line(link)),
            ));
        }
        // An empty page's link may be the request itself (nothing new: poll the same
        // position again), which is no loop.
        if !events.is_empty() {
            trail.step(&events, link).map_err(|e| upstream(url, e))?;
        }
    }
    Ok(Answer::Page(LogPage {
        events,
        next,
        date_ms: date_ms(&resp),
    }))
}

/// The answer's `Date` header, ms.
pub fn date_ms(resp: &HttpResponse) -> Option<i64> {
    resp.header("date")
        .and_then(|d| parse_http_date_ms(d.trim()))
}

/// Okta's `errorSummary` of an error answer, first line, or "no error summary".
fn error_summary(resp: &HttpResponse) -> String {
    serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|j| j["errorSummary"].as_str().map(first_line))
        .unwrap_or_else(|| "no error summary".into())
}
