//! `POST /v1.0/$batch`: up to 20 Graph requests in one HTTP round trip.
//!
//! Batching is how a connector keeps per-user calls affordable, and it is where partial
//! failure lives: each sub-request has its own status, headers (`Retry-After` on a 429) and
//! body. Sub-requests go through the same counting, fault rules and handlers as direct
//! requests, so a fault rule on [`Endpoint::MemberOf`](crate::Endpoint::MemberOf) fails one
//! entry of a batch, not the batch; likewise the rate throttle counts each sub-request under
//! its own endpoint and throttles single entries (429 with their own `Retry-After`).
//! Sub-responses come back in reverse request order — Graph
//! promises no order, and a client that matches by position instead of by `id` should fail
//! visibly here rather than in production.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::graph::{dispatch, RequestIds, Route};
use crate::odata::QueryOptions;
use crate::reply::{Body, GraphError, Reply};
use crate::server::{HttpRequest, Shared};
use crate::throttle;

/// Most requests one batch may carry. Source: json-batching.md ("combining multiple requests
/// (up to 20) into a single JSON object").
const MAX_REQUESTS: usize = 20;

/// Answers a `$batch` envelope (already authenticated).
pub(crate) fn handle(shared: &Shared, request: &HttpRequest) -> Result<Reply, GraphError> {
    QueryOptions::parse(request.query.as_deref(), &[])?;
    let payload: Value = serde_json::from_slice(&request.body).map_err(|e| {
        GraphError::bad_request(format!(
            "Invalid batch payload format: the body is not JSON ({e})."
        ))
    })?;
    let requests = payload
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            GraphError::bad_request(
                "Invalid batch payload format: expected {\"requests\": [{\"id\", \"method\", \"url\"}, ...]}.",
            )
        })?;
    if requests.is_empty() {
        return Err(GraphError::bad_request(
            "The batch request contains no requests.",
        ));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(GraphError::bad_request(format!(
            "Number of requests in the batch ({}) exceeds the limit of {MAX_REQUESTS}.",
            requests.len()
        )));
    }
    let mut ids = HashSet::new();
    let mut parsed = Vec::with_capacity(requests.len());
    for (position, sub) in requests.iter().enumerate() {
        let field = |name: &str| {
            sub.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let id = field("id").ok_or_else(|| {
            GraphError::bad_request(format!(
                "Request #{position} of the batch has no string 'id'."
            ))
        })?;
        if !ids.insert(id) {
            return Err(GraphError::bad_request(format!(
                "Request id '{id}' appears more than once in the batch: ids must be unique."
            )));
        }
        let method = field("method").ok_or_else(|| {
            GraphError::bad_request(format!("Request '{id}' of the batch has no 'method'."))
        })?;
        let url = field("url").ok_or_else(|| {
            GraphError::bad_request(format!("Request '{id}' of the batch has no 'url'."))
        })?;
        parsed.push((id, method, url, sub));
    }
    let mut responses: Vec<Value> = parsed
        .into_iter()
        .map(|(id, method, url, sub)| run(shared, id, method, url, sub))
        .collect();
    responses.reverse();
    Ok(Reply::graph_json(200, json!({ "responses": responses })))
}

/// Runs one sub-request and renders its sub-response.
fn run(shared: &Shared, id: &str, method: &str, url: &str, sub: &Value) -> Value {
    let headers: Vec<(String, String)> = sub
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (url, None),
    };
    let request = HttpRequest {
        method: method.to_ascii_uppercase(),
        path: format!("/v1.0/{}", path.trim_start_matches('/')),
        query,
        headers,
        body: sub
            .get("body")
            .map(|b| Bytes::from(b.to_string()))
            .unwrap_or_default(),
    };
    let ids = RequestIds::new(shared, &request);
    let route = Route::parse(&request.path);
    shared.count(route.endpoint());
    let reply = if let Some(fault) = shared.fault(route.endpoint(), &request.target()) {
        fault
    } else if url.contains("://") {
        ids.render(GraphError::bad_request(format!(
            "The url '{url}' of request '{id}' must be relative to the Graph version, e.g. /users."
        )))
    } else if route == Route::Batch {
        ids.render(GraphError::bad_request(
            "A $batch cannot contain another $batch.",
        ))
    } else if let Some(retry_after) = shared.throttled(route.endpoint()) {
        throttle::answer(&ids, retry_after, shared.clock.wall_secs())
    } else if let Some(secs) = route
        .reports_kind(&request)
        .and_then(|kind| shared.reports_throttled(kind))
    {
        // Each item counts against the reports limits on its own (json-batching.md and
        // throttling.md, "Throttling and batching": "Requests in a batch are evaluated
        // individually against throttling limits and if any request exceeds the limits, it
        // fails with a status code of 429 … The batch itself succeeds with a status code of 200").
        throttle::answer(
            &ids,
            throttle::RetryAfter::Seconds(secs),
            shared.clock.wall_secs(),
        )
    } else {
        dispatch(shared, &route, &request, &ids)
    };
    shared.note_status(reply.status);
    let reply = ids.stamp(reply);
    let headers: Map<String, Value> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let body = match reply.body {
        Body::Json(value) => value,
        Body::Text(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    };
    json!({"id": id, "status": reply.status, "headers": headers, "body": body})
}
