//! Test helpers of the Entra connector's unit tests, over the SDK's fake doors: the
//! configuration of a fake Graph and the answer of a fake `$batch`.

use connector_sdk::doors::fake::json;
use connector_sdk::doors::{HttpRequest, HttpResponse};

/// The configuration of the unit tests' fake Graph (`https://graph.test`).
pub(crate) fn graph_test_config() -> crate::config::Config {
    crate::config::Config::parse(&[
        ("tenant_id".to_string(), "t".to_string()),
        ("client_id".to_string(), "c".to_string()),
        (
            "graph_endpoint".to_string(),
            "https://graph.test".to_string(),
        ),
    ])
    .expect("the test configuration parses")
}

/// The answer of a fake Graph to a `$batch` request: each item answered 200 with the
/// `value` list `items` gives for its URL.
pub(crate) fn batch_reply(
    r: &HttpRequest,
    items: impl Fn(&str) -> serde_json::Value,
) -> HttpResponse {
    let req: serde_json::Value =
        serde_json::from_slice(r.body.as_ref().expect("a $batch body")).expect("JSON");
    let responses: Vec<serde_json::Value> = req["requests"]
        .as_array()
        .expect("a requests list")
        .iter()
        .map(|item| {
            let value = items(item["url"].as_str().unwrap_or(""));
            serde_json::json!({"id": item["id"], "status": 200, "body": {"value": value}})
        })
        .collect();
    json(
        200,
        &[],
        &serde_json::json!({ "responses": responses }).to_string(),
    )
}
