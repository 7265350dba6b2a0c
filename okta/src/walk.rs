//! The full walk (OKTA.md, "Sync strategy", "Full walk"): every user, DEPROVISIONED ones
//! included, resumable at the page in flight.

use connector_sdk::doors::Doors;
use connector_sdk::paging::Trail;
use connector_sdk::state::Cell;
use connector_sdk::{emit, ConnectorError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{next_link, path_of, upstream};
use crate::cursor::Cursor;
use crate::incremental::SyncState;
use crate::map::{self, Enrichment};
use crate::Ctx;

/// Where a walk in flight stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WalkState {
    /// The facts generation the walk builds.
    pub gen: u32,
    /// The org the walk reads (a cursor of another org starts over).
    pub org_id: String,
    /// The `Date` of the walk's first answer (the incremental watermark once it finishes).
    pub start_ms: i64,
    /// The next users page (None: the first).
    pub next: Option<String>,
}

/// Runs the walk in flight, or a new one, to its end.
pub fn run<D: Doors>(
    ctx: &mut Ctx<D>,
    cursor: &mut Cursor,
    cell: &mut Cell,
) -> Result<(), ConnectorError> {
    let doors = ctx.doors;
    let config = ctx.config;
    let mut walk = match cursor.walk.take() {
        Some(w) if w.org_id == ctx.org_id => w,
        _ => WalkState {
            gen: cursor.gen.wrapping_add(1).max(1),
            org_id: ctx.org_id.clone(),
            start_ms: ctx.client.last_date_ms().unwrap_or_else(|| doors.now_ms()),
            next: None,
        },
    };
    // `search=status pr` lists every user, DEPROVISIONED ones included, which a list
    // without search or filter leaves out (OKTA.md, "Users"; spec, listUsers `search`).
    let first = format!(
        "{}/api/v1/users?search=status%20pr&limit={}",
        config.org_url, config.page_size
    );
    let mut next = Some(walk.next.clone().unwrap_or(first));
    let mut trail = Trail::default();
    while let Some(url) = next.take() {
        let resp = ctx.client.get(&url)?;
        match resp.status {
            200 => {}
            401 => {
                return Err(ConnectorError::Auth(format!(
                    "{} answered 401: check the secret '{}'",
                    path_of(&url),
                    config.secret()
                )))
            }
            403 => {
                return Err(ConnectorError::Permission(format!(
                    "{} answered 403: the credential cannot read users; grant okta.users.read",
                    path_of(&url)
                )))
            }
            s => return Err(upstream(&url, format!("status {s}"))),
        }
        let page: Vec<Value> = serde_json::from_slice(&resp.body)
            .map_err(|e| upstream(&url, format!("the users page is not a JSON array ({e})")))?;
        let link = next_link(&resp);
        if let Some(link) = &link {
            if !link.starts_with(&format!("{}/", config.org_url)) {
                return Err(upstream(
                    &url,
                    format!("the next link leaves the org ({link})"),
                ));
            }
            trail.step(&page, link).map_err(|e| upstream(&url, e))?;
        }
        let (mut ids, mut events) = (Vec::new(), Vec::new());
        let now = doors.now_ms();
        for user in &page {
            ctx.report.items_seen += 1;
            match map::map_user(&ctx.org_id, user, &Enrichment::default(), now) {
                Some(event) => {
                    ids.push(user["id"].as_str().unwrap_or_default().to_string());
                    events.push(event.to_string());
                }
                None => ctx.report.items_skipped += 1, // No id: nothing could name it.
            }
        }
        let out = emit::emit_bounded(ids, events, &mut |batch| doors.emit(batch))
            .map_err(|e| ConnectorError::Host(e.to_string()))?;
        ctx.report.emitted(doors, out);
        // The host makes the events durable before the cursor moves past them.
        match &link {
            Some(_) => {
                walk.next = link.clone();
                cursor.walk = Some(walk.clone());
            }
            None => {
                // The walk is done: the new generation, and incremental runs from its start.
                cursor.gen = walk.gen;
                cursor.walk = None;
                cursor.sync = Some(SyncState {
                    watermark_ms: walk.start_ms,
                    log_next: None,
                    log_since_ms: walk.start_ms,
                    log_at_ms: walk.start_ms,
                    ..SyncState::default()
                });
            }
        }
        cell.write(doors, &*cursor)?;
        next = link;
    }
    Ok(())
}
