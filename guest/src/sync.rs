//! One run of the Entra ID user sync: which users to read, how to enrich them, when to move
//! the cursor.
//!
//! Modes: `full` reads every user on every run; `created` (the default) reads every user on
//! its first run and afterwards only users created since the cursor. The cursor is the
//! newest `createdDateTime` delivered (Graph's precision is one second) plus the ids already
//! delivered within that second, so a user created in the same second as the last one of the
//! previous run is fetched again by `ge` and delivered exactly once. Users with a null
//! `createdDateTime` (created before mid-2018) are only collected by a full run.
//!
//! The cursor is committed once, after every event of the run was emitted; the host makes
//! the sink durable before it commits, so a failed run leaves the cursor where it was and the
//! next run redelivers rather than loses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, SignIn, SyncMode};
use crate::doors::{Doors, Level};
use crate::error::ConnectorError;
use crate::graph::{path_segment, GraphClient, GraphError, GraphGet, Page};
use crate::ocsf::{self, Enrichment, GroupRef, MapContext, Mfa};

/// Checkpoint key of the `created` cursor (the host namespaces it per tenant).
pub const CURSOR_KEY: &str = "users/created-cursor";

/// Properties read for every user (`GRAPH.md`, "Listing users").
pub const USER_SELECT: &str = "id,displayName,mail,userPrincipalName,mailNickname,accountEnabled,\
department,jobTitle,employeeId,employeeType,companyName,officeLocation,createdDateTime,\
isManagementRestricted,userType,onPremisesSamAccountName,onPremisesSyncEnabled";

/// Events per `emit` call.
const EMIT_BATCH: usize = 250;

/// Graph error codes that mean "this tenant may not read signInActivity".
const SIGN_IN_DENIED_CODES: &[&str] = &[
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "Authorization_RequestDenied",
];

/// The stored cursor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Format version of this record.
    pub format: u32,
    /// Newest `createdDateTime` delivered, ms since the epoch (second precision).
    pub watermark_ms: Option<i64>,
    /// Ids delivered whose `createdDateTime` falls in the watermark's second.
    pub boundary_ids: Vec<String>,
    /// When the last successful run finished, ms.
    pub last_success_ms: i64,
}

impl Cursor {
    /// Folds one delivered user's creation time into the cursor.
    pub fn observe(&mut self, id: &str, created_ms: Option<i64>) {
        let Some(created) = created_ms else { return };
        let second = created.div_euclid(1000) * 1000;
        match self.watermark_ms {
            Some(w) if second < w => {}
            Some(w) if second == w => {
                if !self.boundary_ids.iter().any(|b| b == id) {
                    self.boundary_ids.push(id.to_string());
                }
            }
            _ => {
                self.watermark_ms = Some(second);
                self.boundary_ids = vec![id.to_string()];
            }
        }
    }

    /// Whether an incremental run already delivered this user.
    pub fn already_delivered(&self, id: &str, created_ms: Option<i64>) -> bool {
        match (self.watermark_ms, created_ms) {
            (Some(w), Some(c)) if c.div_euclid(1000) * 1000 == w => {
                self.boundary_ids.iter().any(|b| b == id)
            }
            (Some(w), Some(c)) => c < w,
            _ => false,
        }
    }
}

/// The counts of a run (mirror of `run-report`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Users read from Graph.
    pub items_seen: u64,
    /// Events emitted.
    pub events_emitted: u64,
    /// Users skipped (no id).
    pub items_skipped: u64,
    /// Users emitted without part of their enrichment.
    pub items_partial: u64,
    /// HTTP requests.
    pub requests: u64,
    /// Whether every user was read.
    pub full_sync: bool,
    /// Warnings, one line each.
    pub warnings: Vec<String>,
    /// Optional data not collected.
    pub unavailable: Vec<String>,
}

impl Report {
    fn warn<D: Doors>(&mut self, doors: &D, msg: String) {
        doors.log(Level::Warn, &msg);
        self.warnings.push(msg);
    }
}

/// Runs one sync of `config`'s tenant.
pub fn run<D: Doors>(doors: &D, config: &Config, version: &str) -> Result<Report, ConnectorError> {
    let graph = GraphClient::new(doors, config);
    let mut report = Report::default();
    let (stored, stored_version) = read_cursor(doors)?;
    let incremental_from = match config.sync_mode {
        SyncMode::Full => None,
        SyncMode::Created => stored
            .as_ref()
            .filter(|c| c.watermark_ms.is_some())
            .cloned(),
    };
    report.full_sync = incremental_from.is_none();
    graph
        .ensure_token()
        .map_err(|e| e.into_connector("acquiring a token"))?;

    let mut cursor = incremental_from.clone().unwrap_or_default();
    cursor.format = 1;
    let mut sign_in = config.sign_in == SignIn::Auto;
    let mut next = Some(users_request(config, incremental_from.as_ref(), sign_in));
    let mut page_no = 0u64;
    while let Some(get) = next.take() {
        page_no += 1;
        let body = match graph.get(get.clone()) {
            Err(e) if sign_in && page_no == 1 && is_sign_in_denied(&e) => {
                report.warn(
                    doors,
                    format!(
                        "signInActivity is not readable in tenant '{}' ({}): last_login_time is omitted; \
                         it needs an Entra ID P1/P2 licence and AuditLog.Read.All",
                        config.tenant_id,
                        e.code()
                    ),
                );
                report.unavailable.push("signInActivity".into());
                sign_in = false;
                page_no = 0;
                next = Some(users_request(config, incremental_from.as_ref(), false));
                continue;
            }
            other => {
                other.map_err(|e| e.into_connector(&format!("listing users (page {page_no})")))?
            }
        };
        let page = Page::parse(body)
            .map_err(|e| e.into_connector(&format!("listing users (page {page_no})")))?;
        next = page.next_link.map(|url| GraphGet {
            url,
            headers: get.headers.clone(),
        });
        report.items_seen += page.items.len() as u64;
        let mut users = Vec::with_capacity(page.items.len());
        for user in page.items {
            let Some(id) = user
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            else {
                report.items_skipped += 1;
                continue;
            };
            let created = user
                .get("createdDateTime")
                .and_then(Value::as_str)
                .and_then(crate::time::parse_graph_time_ms);
            if let Some(prev) = &incremental_from {
                if prev.already_delivered(id, created) {
                    continue;
                }
            }
            users.push((id.to_string(), created, user));
        }
        if report.items_skipped > 0 && report.warnings.iter().all(|w| !w.contains("without an id"))
        {
            report.warn(
                doors,
                "Graph returned users without an id: they are skipped".into(),
            );
        }
        for chunk in users.chunks(config.enrich_concurrency) {
            let enrichments = enrich(&graph, chunk.iter().map(|(id, _, _)| id.as_str()));
            let ctx = MapContext {
                tenant_uid: &config.tenant_id,
                collected_at_ms: doors.now_ms(),
                connector_version: version,
            };
            let mut events = Vec::with_capacity(chunk.len());
            for ((id, created, user), (enrichment, partial)) in chunk.iter().zip(enrichments) {
                if partial {
                    report.items_partial += 1;
                }
                match ocsf::map_user(user, &enrichment, &ctx) {
                    Ok(event) => events.push(event.to_string()),
                    Err(_) => report.items_skipped += 1,
                }
                cursor.observe(id, *created);
            }
            emit(doors, events, &mut report)?;
        }
    }
    if report.items_partial > 0 {
        report.warn(
            doors,
            format!(
                "{} users were emitted without their groups, roles or methods (Graph refused or failed those reads)",
                report.items_partial
            ),
        );
    }
    cursor.last_success_ms = doors.now_ms();
    if config.sync_mode == SyncMode::Created {
        let bytes = serde_json::to_vec(&cursor)
            .map_err(|e| ConnectorError::Host(format!("encoding the cursor: {e}")))?;
        doors
            .kv_set(CURSOR_KEY, &bytes, stored_version)
            .map_err(|e| ConnectorError::Host(format!("committing the cursor: {e}")))?;
    }
    report.requests = graph.requests();
    Ok(report)
}

fn read_cursor<D: Doors>(doors: &D) -> Result<(Option<Cursor>, Option<u64>), ConnectorError> {
    match doors.kv_get(CURSOR_KEY) {
        Ok(None) => Ok((None, None)),
        Ok(Some((bytes, version))) => match serde_json::from_slice::<Cursor>(&bytes) {
            Ok(c) if c.format == 1 => Ok((Some(c), Some(version))),
            _ => {
                doors.log(
                    Level::Warn,
                    "the stored cursor is unreadable: this run is a full sync and replaces it",
                );
                Ok((None, Some(version)))
            }
        },
        Err(e) => Err(ConnectorError::Host(format!("reading the cursor: {e}"))),
    }
}

fn users_request(config: &Config, from: Option<&Cursor>, sign_in: bool) -> GraphGet {
    let mut select = USER_SELECT.to_string();
    let mut top = config.page_size;
    if sign_in {
        select.push_str(",signInActivity");
        top = top.min(500);
    }
    let mut url = config.graph_url(&format!("/users?$select={select}&$top={top}"));
    match from.and_then(|c| c.watermark_ms) {
        Some(w) => {
            url.push_str(&format!(
                "&$filter=createdDateTime%20ge%20{}&$orderby=createdDateTime&$count=true",
                crate::time::format_graph_time(w)
            ));
            GraphGet::eventual(url)
        }
        None => GraphGet::new(url),
    }
}

fn is_sign_in_denied(e: &GraphError) -> bool {
    e.status() == Some(403) && SIGN_IN_DENIED_CODES.contains(&e.code())
}

/// Reads groups, roles and methods of `ids` concurrently. Returns, per user, what was found
/// and whether any part failed.
fn enrich<'i, D: Doors>(
    graph: &GraphClient<'_, D>,
    ids: impl Iterator<Item = &'i str>,
) -> Vec<(Enrichment, bool)> {
    let cfg = graph.config();
    let ids: Vec<&str> = ids.collect();
    let mut starts = Vec::with_capacity(ids.len() * 3);
    for id in &ids {
        let seg = path_segment(id);
        starts.push(GraphGet::new(
            cfg.graph_url(&format!("/users/{seg}/memberOf")),
        ));
        starts.push(GraphGet::eventual(cfg.graph_url(&format!(
            "/users/{seg}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"
        ))));
        starts.push(GraphGet::new(
            cfg.graph_url(&format!("/users/{seg}/authentication/methods")),
        ));
    }
    let mut lists = graph.collect_lists(starts).into_iter();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let (member_of, roles, methods) = (lists.next(), lists.next(), lists.next());
        let mut e = Enrichment::default();
        let mut partial = false;
        match member_of {
            Some(Ok(items)) => {
                let mut groups = Vec::new();
                for item in &items {
                    let name = item
                        .get("displayName")
                        .and_then(Value::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .map(str::to_string);
                    match odata_type(item) {
                        "#microsoft.graph.group" => {
                            if let Some(gid) = item.get("id").and_then(Value::as_str) {
                                groups.push(GroupRef {
                                    id: gid.to_string(),
                                    display_name: name,
                                });
                            }
                        }
                        "#microsoft.graph.directoryRole" => e
                            .member_of_roles
                            .push(name.unwrap_or_else(|| "directoryRole".into())),
                        _ => {}
                    }
                }
                e.groups = Some(groups);
            }
            other => partial |= log_enrichment_failure(graph, id, "memberOf", other),
        }
        match roles {
            Some(Ok(items)) => {
                e.roles = Some(
                    items
                        .iter()
                        .filter_map(|r| r.get("displayName").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect(),
                )
            }
            other => partial |= log_enrichment_failure(graph, id, "directory roles", other),
        }
        match methods {
            Some(Ok(items)) => {
                e.mfa = Some(Mfa::Methods(
                    items.iter().map(|m| odata_type(m).to_string()).collect(),
                ))
            }
            other => partial |= log_enrichment_failure(graph, id, "authentication methods", other),
        }
        out.push((e, partial));
    }
    out
}

fn odata_type(item: &Value) -> &str {
    item.get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn log_enrichment_failure<D: Doors>(
    graph: &GraphClient<'_, D>,
    id: &str,
    what: &str,
    result: Option<Result<Vec<Value>, GraphError>>,
) -> bool {
    let why = match result {
        Some(Err(e)) => e.to_string(),
        _ => "no result".into(),
    };
    graph.log(Level::Warn, &format!("user {id}: {what} not read: {why}"));
    true
}

fn emit<D: Doors>(
    doors: &D,
    events: Vec<String>,
    report: &mut Report,
) -> Result<(), ConnectorError> {
    let mut events = events;
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(EMIT_BATCH));
        let n = events.len() as u64;
        doors
            .emit(events)
            .map_err(|e| ConnectorError::Host(format!("emitting events: {e}")))?;
        report.events_emitted += n;
        events = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn cursor_keeps_the_newest_second_and_its_ids() {
        let mut c = Cursor::default();
        c.observe("a", Some(T0 + 250));
        c.observe("b", Some(T0 - 5_000));
        c.observe("c", Some(T0 + 900));
        c.observe("n", None);
        assert_eq!(c.watermark_ms, Some(T0));
        assert_eq!(c.boundary_ids, vec!["a", "c"]);
        c.observe("d", Some(T0 + 1_000));
        assert_eq!(c.watermark_ms, Some(T0 + 1_000));
        assert_eq!(c.boundary_ids, vec!["d"]);
    }

    #[test]
    fn same_second_users_are_delivered_exactly_once() {
        let mut c = Cursor::default();
        c.observe("first", Some(T0));
        // Next run, `ge` the watermark returns both users of that second.
        assert!(c.already_delivered("first", Some(T0)));
        assert!(!c.already_delivered("second", Some(T0)));
        assert!(!c.already_delivered("later", Some(T0 + 1_000)));
        assert!(c.already_delivered("older", Some(T0 - 1_000)));
        assert!(!c.already_delivered("null-created", None));
    }

    #[test]
    fn incremental_request_is_an_advanced_query() {
        let cfg = Config::parse(&[
            ("tenant_id".into(), "t".into()),
            ("client_id".into(), "c".into()),
        ])
        .unwrap();
        let full = users_request(&cfg, None, true);
        assert!(
            full.url.contains("signInActivity") && full.url.contains("$top=500"),
            "{}",
            full.url
        );
        assert!(full.headers.is_empty());
        let mut c = Cursor::default();
        c.observe("a", Some(T0));
        let inc = users_request(&cfg, Some(&c), false);
        assert!(
            inc.url
                .contains("$filter=createdDateTime%20ge%202023-11-14T22:13:20Z"),
            "{}",
            inc.url
        );
        assert!(
            inc.url.contains("$orderby=createdDateTime&$count=true")
                && inc.url.contains("$top=999")
        );
        assert_eq!(
            inc.headers,
            vec![("ConsistencyLevel".to_string(), "eventual".to_string())]
        );
    }
}
