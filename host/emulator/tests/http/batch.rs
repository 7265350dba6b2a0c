//! `POST /v1.0/$batch`: sub-requests answered on their own, matched by id.

use graph_emulator::{Endpoint, FaultRule};
use serde_json::{json, Value};

use crate::common::{start, Client};

#[tokio::test]
async fn batch_answers_each_sub_request_on_its_own() {
    let emulator = start(51, 25).await;
    let client = Client::new(&emulator).await;
    let users = emulator.users();
    let (a, b) = (users[0].id().expect("id"), users[11].id().expect("id"));
    let mut throttle = FaultRule::throttle(Endpoint::AuthMethods, 7);
    throttle.path_contains = Some(b.to_owned());
    emulator.add_fault(throttle);
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{a}/memberOf")},
        {"id": "2", "method": "GET", "url": format!("/users/{b}/authentication/methods")},
        {"id": "3", "method": "GET", "url": "/users/nobody/memberOf"},
        {"id": "4", "method": "GET", "url": format!("/users/{a}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"),
         "headers": {"ConsistencyLevel": "eventual"}},
    ]});
    let answer = client.post_json("/v1.0/$batch", &batch).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let responses = answer.body["responses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let order: Vec<&str> = responses.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(
        order,
        ["4", "3", "2", "1"],
        "not in request order: match by id"
    );
    let by_id = |id: &str| answer.batch_item(id);
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(
        by_id("1")["body"]["value"].as_array().map(Vec::len),
        Some(4)
    );
    assert!(by_id("1")["body"]["@odata.nextLink"]
        .as_str()
        .is_some_and(|l| l.starts_with(&format!(
            "{}/v1.0/users/{a}/memberOf?",
            emulator.graph_endpoint()
        ))));
    assert_eq!(by_id("2")["status"], 429);
    assert_eq!(by_id("2")["headers"]["Retry-After"], "7");
    assert_eq!(by_id("2")["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(by_id("3")["status"], 404);
    assert_eq!(
        by_id("3")["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(by_id("4")["body"]["@odata.count"], 1);

    let counters = emulator.counters();
    assert_eq!(counters[&Endpoint::Batch], 1);
    assert_eq!(counters[&Endpoint::MemberOf], 2);
    assert_eq!(counters[&Endpoint::AuthMethods], 1);
    assert_eq!(counters[&Endpoint::TransitiveRoles], 1);
    assert_eq!(
        emulator.http_requests(),
        2,
        "the token request and one batch"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn malformed_batches_are_refused() {
    let emulator = start(52, 5).await;
    let client = Client::new(&emulator).await;
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let duplicate = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users"},
        {"id": "1", "method": "GET", "url": "/groups"},
    ]});
    for body in [
        json!({"requests": too_many}),
        duplicate,
        json!({"nope": []}),
        json!({"requests": []}),
    ] {
        let answer = client.post_json("/v1.0/$batch", &body).await;
        assert_eq!(
            (answer.status, answer.graph_code()),
            (400, "BadRequest"),
            "{body}"
        );
    }
    let get = client.get("/v1.0/$batch", &[]).await;
    assert_eq!(get.status, 405);
    emulator.shutdown().await;
}
