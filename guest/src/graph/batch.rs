//! JSON batching: up to 20 GETs in one `POST /v1.0/$batch`, several batches in flight.
//!
//! Per-user reads (memberships, roles, methods) are what make a naive connector slow; a batch
//! carries twenty of them in one round trip. Graph answers the items in any order and each
//! on its own terms, so every item is matched by its `id`, and a throttled item (429, 503,
//! 504, with its own `Retry-After`) is retried alone in a later batch while its neighbours
//! are done. A throttled item pauses the whole tenant like a throttled request does.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::intake::{self, quote};
use super::{first_line, status_error, GraphClient, GraphError, GraphGet, Outgoing};
use connector_sdk::doors::{Doors, HttpResponse};
use connector_sdk::retry;

/// Most requests Graph accepts in one batch.
pub const MAX_PER_BATCH: usize = 20;

/// One GET to send inside a batch: an absolute URL on the Graph host
/// (`{graph_endpoint}/v1.0/...`, as built or as a next link arrived), and extra headers —
/// the same as a GET sent on its own.
pub type SubGet = GraphGet;

impl<D: Doors> GraphClient<'_, D> {
    /// The batch-relative form (`/users/...`) of an absolute v1.0 URL on the Graph host.
    fn relative(&self, url: &str) -> Option<String> {
        let base = format!("{}/v1.0", self.config.graph_endpoint);
        url.strip_prefix(base.as_str())
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_string)
    }

    /// GETs every item through `$batch` (at most `batch_concurrency` batches in flight),
    /// retrying throttled items one by one; returns each item's JSON body in order.
    pub fn batch_get(&self, items: &[SubGet]) -> Vec<Result<Value, GraphError>> {
        let mut out: Vec<Option<Result<Value, GraphError>>> = vec![None; items.len()];
        let mut pending: Vec<(usize, u32)> = Vec::with_capacity(items.len());
        let mut relative = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match self.relative(&item.url) {
                Some(r) => {
                    relative.push(r);
                    pending.push((i, 0));
                }
                None => {
                    relative.push(String::new());
                    out[i] = Some(Err(GraphError::Malformed(format!(
                        "a link points away from {}/v1.0 ({}); it is not followed",
                        self.config.graph_endpoint,
                        first_line(&item.url)
                    ))));
                }
            }
        }
        let per_round = self.config.batch_concurrency.max(1) * MAX_PER_BATCH;
        while !pending.is_empty() {
            let mut again = Vec::new();
            for round in pending.chunks(per_round) {
                let batches: Vec<&[(usize, u32)]> = round.chunks(MAX_PER_BATCH).collect();
                let reqs: Vec<Outgoing> = batches
                    .iter()
                    .map(|batch| {
                        let requests: Vec<Value> = batch
                            .iter()
                            .enumerate()
                            .map(|(n, (i, _))| {
                                let headers: serde_json::Map<String, Value> = items[*i]
                                    .headers
                                    .iter()
                                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                                    .collect();
                                let mut r = json!({
                                    "id": n.to_string(),
                                    "method": "GET",
                                    "url": relative[*i],
                                });
                                if !headers.is_empty() {
                                    r["headers"] = Value::Object(headers);
                                }
                                r
                            })
                            .collect();
                        Outgoing {
                            method: "POST",
                            url: self.config.graph_url("/$batch"),
                            headers: Vec::new(),
                            body: Some(json!({ "requests": requests }).to_string().into_bytes()),
                            weight: batch.len() as u64,
                            reports: batch
                                .iter()
                                .filter(|(i, _)| super::is_reports_class(&items[*i].url))
                                .count(),
                            sign_in: batch
                                .iter()
                                .filter(|(i, _)| super::is_sign_in_class(&items[*i].url))
                                .count(),
                        }
                    })
                    .collect();
                let results = self.send_all(&reqs);
                for (batch, result) in batches.into_iter().zip(results) {
                    let answers = result.and_then(|resp| parse_batch(&resp.body));
                    let mut answers = match answers {
                        Ok(a) => a,
                        Err(e) => {
                            for (i, _) in batch {
                                out[*i] = Some(Err(e.clone()));
                            }
                            continue;
                        }
                    };
                    for (n, &(i, attempt)) in batch.iter().enumerate() {
                        match answers.remove(&n.to_string()) {
                            Some(Err(e)) => out[i] = Some(Err(e)),
                            Some(Ok(Answer { response: sub, at }))
                                if (200..300).contains(&sub.status) =>
                            {
                                out[i] = Some(self.item_body(&items[i].url, &sub.body, &at));
                            }
                            Some(Ok(Answer { response: sub, .. }))
                                if retry::is_retryable_status(sub.status) =>
                            {
                                if self.take_retry(attempt) {
                                    let wait = self.retry_wait(attempt, Some(&sub));
                                    self.pause_tenant(
                                        wait,
                                        &format!("answered {} inside a batch", sub.status),
                                    );
                                    again.push((i, attempt + 1));
                                } else {
                                    out[i] = Some(Err(self.out_of_retries(status_error(&sub))));
                                }
                            }
                            Some(Ok(Answer { response: sub, .. })) => {
                                out[i] = Some(Err(status_error(&sub)))
                            }
                            None if self.take_retry(attempt) => again.push((i, attempt + 1)),
                            None => {
                                out[i] = Some(Err(GraphError::Malformed(
                                    "the batch answer has no response with this request's id"
                                        .into(),
                                )))
                            }
                        }
                    }
                }
            }
            pending = again;
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(GraphError::Malformed("no result".into()))))
            .collect()
    }

    /// Collects every page of several collections through `$batch`: for each item, all
    /// `value` items of all its pages, or the first error.
    pub fn batch_collect(&self, starts: Vec<SubGet>) -> Vec<Result<Vec<Value>, GraphError>> {
        self.list_pages(starts, |gets| self.batch_get(gets))
    }
}

impl<D: Doors> GraphClient<'_, D> {
    /// The JSON object a successful batch item answers. Graph gives a JSON response's body as
    /// the object itself (https://learn.microsoft.com/graph/json-batching, "Response format";
    /// non-JSON content comes as a base64 string, per Microsoft Q&A 1352007, and no endpoint
    /// we read answers non-JSON). Anything else — a string holding JSON, an array, a number,
    /// an object repeating a key — is a failed item, never read as an empty object (which
    /// would turn "unread" into "none"). `at`: where the batch answer's mends fall in `body`.
    fn item_body(&self, url: &str, body: &[u8], at: &[usize]) -> Result<Value, GraphError> {
        let decoded = intake::decode_mended(body, at)
            .map_err(|e| GraphError::Malformed(format!("a batch item's body {e}")))?;
        self.note_mended(url, &decoded.mended);
        Ok(decoded.value)
    }
}

/// One response of a `$batch` answer.
#[derive(Debug)]
struct Answer {
    response: HttpResponse,
    /// Where the mends of the batch answer fall in `response.body`.
    at: Vec<usize>,
}

/// A `$batch` answer's envelope: serde's derive refuses a repeated `responses` (and, in
/// [`BatchItem`], a repeated `id`, `status`, `headers` or `body`) and a field of the wrong
/// type (https://learn.microsoft.com/graph/json-batching, "Response format": `responses`
/// is an array of objects with `id`, `status`, `headers` and `body`).
#[derive(serde::Deserialize)]
struct BatchEnvelope<'a> {
    #[serde(borrow)]
    responses: Vec<&'a RawValue>,
}

/// One response of [`BatchEnvelope`], its body kept as raw text.
#[derive(serde::Deserialize)]
struct BatchItem<'a> {
    id: String,
    status: u16,
    #[serde(default)]
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
}

/// Splits a `$batch` answer into its responses by id, each as a response of its own (its body
/// the raw text of `body`, mended with the rest of the answer). A response that is not what
/// Graph documents is an error for its id, when it has a readable one; an id answered twice
/// is an error for that id.
fn parse_batch(body: &[u8]) -> Result<HashMap<String, Result<Answer, GraphError>>, GraphError> {
    let mended = intake::mend(body);
    let bytes: &[u8] = &mended.bytes;
    let envelope: BatchEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| GraphError::Malformed(format!("the batch answer is not usable ({e})")))?;
    let mut out: HashMap<String, Result<Answer, GraphError>> =
        HashMap::with_capacity(envelope.responses.len());
    for raw in envelope.responses {
        let item = match serde_json::from_slice::<BatchItem<'_>>(raw.get().as_bytes()) {
            Ok(item) => item,
            Err(e) => {
                // Named by its id when one can be read, so that request fails now.
                let id = serde_json::from_slice::<Value>(raw.get().as_bytes())
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
                if let Some(id) = id {
                    let e = GraphError::Malformed(format!(
                        "the batch response for item {} is not usable ({e})",
                        quote(&id)
                    ));
                    out.insert(id, Err(e));
                }
                continue;
            }
        };
        let headers = item
            .headers
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let (body, at) = match item.body {
            None => (Vec::new(), Vec::new()),
            Some(b) => {
                let text = b.get();
                let start = (text.as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize);
                let end = start.saturating_add(text.len());
                let at = mended
                    .at
                    .iter()
                    .filter(|p| (start..end).contains(*p))
                    .map(|p| p - start)
                    .collect();
                (text.as_bytes().to_vec(), at)
            }
        };
        let answer = Ok(Answer {
            response: HttpResponse {
                status: item.status,
                headers,
                body,
            },
            at,
        });
        match out.entry(item.id) {
            Entry::Vacant(slot) => {
                slot.insert(answer);
            }
            Entry::Occupied(mut slot) => {
                let e = GraphError::Malformed(format!(
                    "the batch answer holds two responses for item {}",
                    quote(slot.key())
                ));
                *slot.get_mut() = Err(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_are_split_by_id_with_their_own_headers() {
        let body = br#"{"responses":[
            {"id":"1","status":429,"headers":{"Retry-After":"3"},"body":{"error":{"code":"TooManyRequests","message":"slow down"}}},
            {"id":"0","status":200,"body":{"value":[{"id":"g"}]}}
        ]}"#;
        let mut m = parse_batch(body).unwrap();
        let first = m.remove("0").unwrap().unwrap().response;
        assert_eq!(first.status, 200);
        assert_eq!(
            serde_json::from_slice::<Value>(&first.body).unwrap()["value"][0]["id"],
            "g"
        );
        let second = m.remove("1").unwrap().unwrap().response;
        assert_eq!(
            (second.status, second.header("retry-after")),
            (429, Some("3"))
        );
        assert_eq!(status_error(&second).code(), "TooManyRequests");
        assert!(parse_batch(b"{}").is_err());
        assert!(parse_batch(b"not json").is_err());
    }
    #[test]
    fn hostile_batch_envelopes_with_repeated_or_mistyped_fields_are_errors() {
        let e = parse_batch(
            br#"{"responses":[{"id":"0","status":200,"body":{"value":[]}}],"responses":[]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("duplicate field `responses`"), "{e}");
        let e = parse_batch(br#"{"responses":{"id":"0"}}"#).unwrap_err();
        assert!(e.to_string().contains("not usable"), "{e}");
        let mut m = parse_batch(
            br#"{"responses":[
                {"id":"0","status":200,"body":{"value":[{"id":"a"}]},"body":{"value":[]}},
                {"id":"1","status":"200","body":{"value":[]}},
                {"id":"2","status":200,"body":{"value":[]}},
                {"id":"2","status":200,"body":{"value":[{"id":"b"}]}},
                {"id":"3","status":200,"headers":"x","body":{"value":[]}},
                {"id":"4","status":200,"body":{"value":[]}}
            ]}"#,
        )
        .unwrap();
        for (id, why) in [
            ("0", "duplicate field `body`"),
            ("1", "invalid type"),
            ("2", "two responses"),
            ("3", "invalid type"),
        ] {
            let e = m.remove(id).unwrap().expect_err(id).to_string();
            assert!(e.contains(why), "{id}: {e}");
        }
        assert!(m.remove("4").unwrap().is_ok());
    }

    #[test]
    fn hostile_mends_inside_a_batch_item_body_are_located_in_that_body() {
        let body = br#"{"responses":[{"id":"0","status":200,"body":{"value":[{"id":"g1","displayName":"\ud800"}]}},{"id":"1","status":200,"body":{"value":[{"id":"g2","displayName":"\udc00x"}]}}]}"#;
        let mut m = parse_batch(body).unwrap();
        for (id, group) in [("1", "g2"), ("0", "g1")] {
            let a = m.remove(id).unwrap().unwrap();
            assert_eq!(a.at.len(), 1);
            assert_eq!(&a.response.body[a.at[0]..a.at[0] + 6], b"\\uFFFD");
            let d = intake::decode_mended(&a.response.body, &a.at).unwrap();
            assert_eq!(d.mended[0].record.as_deref(), Some(group));
            assert!(d.value["value"][0]["displayName"]
                .as_str()
                .unwrap()
                .starts_with('\u{FFFD}'));
        }
    }
}
