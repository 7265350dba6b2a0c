//! The list-based modes: `full` reads every user on every run; `created` (the seed's mode)
//! reads every user on its first run and afterwards only users created since the cursor. The cursor is the
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

use super::pipeline::{Entry, Pipeline, USER_SELECT};
use crate::config::{Config, SignIn, SyncMode};
use crate::graph::{is_not_licensed, GraphClient, GraphGet};
use connector_sdk::doors::{Doors, Level};
use connector_sdk::error::ConnectorError;
use connector_sdk::paging::Trail;
use connector_sdk::report::Report;
use connector_sdk::state::{Cell, Stored};

/// Checkpoint key of the `created` cursor (the host namespaces it per tenant).
pub const CURSOR_KEY: &str = "users/created-cursor";

/// Format version of [`Cursor`] (the stamp of its state cell).
const FORMAT: u32 = 1;

/// The stored cursor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
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

/// Runs one sync of `config`'s tenant in `created` or `full` mode.
pub fn run<D: Doors>(
    graph: &GraphClient<'_, D>,
    config: &Config,
    version: &str,
) -> Result<Report, ConnectorError> {
    let doors = graph.doors();
    let (mut cell, stored) = Cell::read::<Cursor, _>(doors, CURSOR_KEY, FORMAT, "the cursor")?;
    let stored = match stored {
        Stored::Value(cursor) => Some(cursor),
        Stored::Absent => None,
        Stored::Unreadable => {
            doors.log(
                Level::Warn,
                "the stored cursor is unreadable: this run is a full sync and replaces it",
            );
            None
        }
    };
    let incremental_from = match config.sync_mode {
        SyncMode::Created => stored
            .as_ref()
            .filter(|c| c.watermark_ms.is_some())
            .cloned(),
        _ => None,
    };
    let mut p = Pipeline::new(graph, config, version);
    p.report.full_sync = incremental_from.is_none();

    let mut cursor = incremental_from.clone().unwrap_or_default();
    if incremental_from.is_none() {
        // Every user: memberships, roles and MFA for the whole tenant, read once up front.
        p.enricher.load_tenant_wide(&mut p.report);
    }
    let mut sign_in = config.sign_in == SignIn::Auto;
    let mut next = Some(users_request(config, incremental_from.as_ref(), sign_in));
    let mut page_no = 0u64;
    let mut trail = Trail::default();
    while let Some(get) = next.take() {
        page_no += 1;
        let page = match graph.page(get.clone()) {
            // Refused on any page (licence or permission): list again without sign-in data;
            // users already emitted are emitted again, which consumers de-duplicate.
            Err(e) if sign_in && is_not_licensed(&e) => {
                p.sign_in_unavailable(&e);
                sign_in = false;
                page_no = 0;
                trail = Trail::default();
                next = Some(users_request(config, incremental_from.as_ref(), false));
                continue;
            }
            other => {
                other.map_err(|e| e.into_connector(&format!("listing users (page {page_no})")))?
            }
        };
        let checked = match &page.next_link {
            Some(link) => graph.follow(&mut trail, &page.items, link),
            None => Ok(()),
        };
        next = page.next_link.map(|url| GraphGet {
            url,
            headers: get.headers.clone(),
        });
        let mut entries = Vec::with_capacity(page.items.len());
        for user in page.items {
            let id = user.get("id").and_then(Value::as_str).unwrap_or("");
            let created = user
                .get("createdDateTime")
                .and_then(Value::as_str)
                .and_then(connector_sdk::time::parse_rfc3339_ms);
            if let Some(prev) = &incremental_from {
                if !id.is_empty() && prev.already_delivered(id, created) {
                    continue;
                }
            }
            entries.push(Entry::Upsert(user));
        }
        for (id, created) in p.deliver(entries)? {
            cursor.observe(&id, created);
        }
        checked.map_err(|e| {
            e.into_connector(&format!(
                "listing users (page {page_no}, delivered; the cursor is committed only at the end of a run, so it is unchanged)"
            ))
        })?;
    }
    p.finish();
    cursor.last_success_ms = doors.now_ms();
    if config.sync_mode == SyncMode::Created {
        cell.write(doors, &cursor)?;
    }
    Ok(p.report)
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
                connector_sdk::time::format_rfc3339(w)
            ));
            GraphGet::eventual(url)
        }
        None => GraphGet::new(url),
    }
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
