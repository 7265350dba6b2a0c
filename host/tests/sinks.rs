//! The push sinks (`[sink] kind = "sekoia"` and `"http"`) against a local receiver on
//! 127.0.0.1 that checks what arrives (path, body shape, credential header, batch sizes) and
//! misbehaves on demand: 429 with and without `Retry-After`, 5xx, an answer slower than the
//! request timeout, a connection closed mid-body, a 400 with a message, a 3xx. The rule under
//! test is the checkpoint's: `flush_durable` is `Ok` only when every event written before it
//! was acknowledged, so a cursor never moves ahead of an unacknowledged batch; nothing is lost
//! or reordered (a batch may arrive twice: at least once); the key is in no error.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connector_host::config::{DeliverySpec, SinkSpec};
use connector_host::doors::checkpoint::{CheckpointError, Stored, Write};
use connector_host::doors::emit::{PushOptions, PushSink};
use connector_host::doors::http::netguard::{NameResolver, StaticResolver, SystemResolver};
use connector_host::simulation::emulator::{Emulator, EmulatorConfig, Tenant};
use connector_host::{
    CheckpointStore, EventSink, RunError, Runtime, RuntimeLimits, SqliteCheckpointStore,
    TenantConfig,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

const KEY: &str = "sk-test-7f3a9c2e-DO-NOT-LEAK";
const UUID: &str = "04716e25-c97f-4a22-925e-8b636ad9c8a4";

// ---------------------------------------------------------------------------------------
// The receiver.

/// What the receiver does with one request.
#[derive(Clone, Debug)]
enum Act {
    /// 200, with a `task_id` for Sekoia-shaped requests.
    Accept,
    /// This status, these headers, this body.
    Answer(u16, Vec<(&'static str, String)>, String),
    /// Waits this long, then accepts (the client has given up by then).
    Slow(Duration),
    /// Reads part of the request body, then drops the connection without answering.
    CloseMidRequest,
    /// Starts a 200 whose body breaks off (Content-Length promised, connection dropped).
    CloseMidResponse,
    /// 200 with the credential it got (`Bearer ` stripped) as the `task_id`.
    EchoCredential,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    content_type: String,
    /// The credential header's value (the one the test configured).
    credential: String,
    /// The body as it arrived.
    raw: Bytes,
    /// The events of the batch, parsed.
    items: Vec<serde_json::Value>,
    /// Answered with a 2xx (the batch was acknowledged).
    acknowledged: bool,
}

#[derive(Default)]
struct ReceiverState {
    seen: Vec<Seen>,
    script: VecDeque<Act>,
    /// What to do when the script is empty (None: accept).
    otherwise: Option<Act>,
    /// Refuse with 400 every batch smaller than this (the run's last, partial batch).
    refuse_batches_under: Option<usize>,
    tasks: u64,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    /// The header carrying the credential (lower-case).
    credential_header: &'static str,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start(credential_header: &'static str) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx = Receiver {
            addr: listener.local_addr().unwrap(),
            credential_header,
            state: Arc::default(),
        };
        let serving = rx.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let rx = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let rx = rx.clone();
                        async move { rx.handle(req).await }
                    });
                    // A dropped connection is one of the behaviours under test.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        rx
    }

    fn script(&self, acts: impl IntoIterator<Item = Act>) {
        self.state.lock().unwrap().script.extend(acts);
    }

    fn otherwise(&self, act: Act) {
        self.state.lock().unwrap().otherwise = Some(act);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>, std::io::Error>
    {
        let act = {
            let mut s = self.state.lock().unwrap();
            let next = s.script.pop_front();
            next.or_else(|| s.otherwise.clone()).unwrap_or(Act::Accept)
        };
        let path = req.uri().path().to_string();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let content_type = header("content-type");
        let credential = header(self.credential_header);
        let mut body = req.into_body();
        if let Act::CloseMidRequest = act {
            // Take one frame of the body, then drop the connection without an answer.
            let _ = body.frame().await;
            return Err(std::io::Error::other("closing mid-body"));
        }
        let bytes = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let items = parse_items(&content_type, &bytes);
        let act = {
            let s = self.state.lock().unwrap();
            match s.refuse_batches_under {
                Some(n) if items.len() < n => Act::Answer(
                    400,
                    vec![],
                    r#"{"code":"T400","message":"the last batch is refused by the test"}"#.into(),
                ),
                _ => act,
            }
        };
        let mut seen = Seen {
            path,
            content_type,
            credential,
            items,
            raw: bytes,
            acknowledged: false,
        };
        let reply = |status: u16, headers: Vec<(&'static str, String)>, body: String| {
            let mut r = Response::builder().status(status);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.body(
                Full::new(Bytes::from(body))
                    .map_err(|e: Infallible| match e {})
                    .boxed(),
            )
            .unwrap()
        };
        let response = match act {
            Act::Accept | Act::Slow(_) => {
                if let Act::Slow(d) = act {
                    tokio::time::sleep(d).await;
                }
                seen.acknowledged = true;
                let task = {
                    let mut s = self.state.lock().unwrap();
                    s.tasks += 1;
                    s.tasks
                };
                reply(200, vec![], format!(r#"{{"task_id":"task-{task}"}}"#))
            }
            Act::Answer(status, headers, body) => {
                seen.acknowledged = (200..300).contains(&status);
                reply(status, headers, body)
            }
            Act::EchoCredential => {
                seen.acknowledged = true;
                let token = seen.credential.trim_start_matches("Bearer ");
                reply(
                    200,
                    vec![],
                    serde_json::json!({ "task_id": token }).to_string(),
                )
            }
            Act::CloseMidResponse => {
                // 200 and a promise of 1,000 bytes; 10 arrive, then the connection drops.
                let frames = futures::stream::iter(vec![
                    Ok(hyper::body::Frame::data(Bytes::from_static(
                        b"{\"task_id\"",
                    ))),
                    Err(std::io::Error::other("cut")),
                ]);
                Response::builder()
                    .status(200)
                    .header("content-length", "1000")
                    .body(http_body_util::StreamBody::new(frames).boxed())
                    .unwrap()
            }
            Act::CloseMidRequest => unreachable!("handled above"),
        };
        self.state.lock().unwrap().seen.push(seen);
        Ok(response)
    }
}

/// The events of a request body: Sekoia's `{"version": 1, "items": [...]}` (the version
/// checked) or NDJSON lines (each ending in a newline).
fn parse_items(content_type: &str, body: &[u8]) -> Vec<serde_json::Value> {
    match content_type {
        "application/json" => {
            let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
            assert_eq!(v["version"], 1, "{v}");
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), 2, "only version and items: {v}");
            v["items"].as_array().expect("items is an array").clone()
        }
        "application/x-ndjson" => {
            let text = std::str::from_utf8(body).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
            text.lines()
                .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
                .collect()
        }
        other => panic!("unexpected content type {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn event(i: usize) -> String {
    format!(r#"{{"seq":{i},"class_uid":5003,"user":{{"uid":"u{i}"}}}}"#)
}

fn events(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(event).collect()
}

/// Tiny waits, a short request timeout, few attempts: the tests never sleep long.
fn quick(batch_size: usize) -> PushOptions {
    connector_host::assembly::push_options(
        batch_size,
        &DeliverySpec {
            request_timeout_ms: 2_000,
            connect_timeout_ms: 2_000,
            backoff_initial_ms: 1,
            backoff_max_ms: 5,
            max_attempts: 8,
            max_retry_ms: 20_000,
        },
        true,
    )
}

fn sekoia(rx: &Receiver, options: PushOptions) -> PushSink {
    PushSink::sekoia(
        &rx.base(),
        UUID,
        KEY.into(),
        options,
        Arc::new(SystemResolver),
    )
    .expect("the sink builds")
}

/// The `seq` of every event of every acknowledged batch, in arrival order.
fn acknowledged_seqs(seen: &[Seen]) -> Vec<u64> {
    seen.iter()
        .filter(|s| s.acknowledged)
        .flat_map(|s| s.items.iter().map(|e| e["seq"].as_u64().unwrap()))
        .collect()
}

/// Nothing lost, nothing reordered: every request carries a contiguous run of the written
/// events of at most `batch_size`, and the acknowledged batches, once repeats are dropped,
/// are exactly the events `0..n` in order.
fn assert_delivered_in_order(seen: &[Seen], n: usize, batch_size: usize) {
    for s in seen {
        assert!(
            !s.items.is_empty() && s.items.len() <= batch_size,
            "batch of {}",
            s.items.len()
        );
        let seqs: Vec<u64> = s.items.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "not contiguous: {seqs:?}"
        );
    }
    let mut delivered: Vec<u64> = Vec::new();
    for seq in acknowledged_seqs(seen) {
        if !delivered.contains(&seq) {
            assert_eq!(
                seq,
                delivered.len() as u64,
                "a new event arrived out of order"
            );
            delivered.push(seq);
        }
    }
    assert_eq!(delivered.len(), n, "every event acknowledged once at least");
}

fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "the key leaked: {text}");
    assert!(
        !text.contains("sk-test-7f3a9c2e"),
        "part of the key leaked: {text}"
    );
}

// ---------------------------------------------------------------------------------------
// Shape, auth, batches.

#[tokio::test]
async fn sekoia_batches_have_the_path_body_key_and_size_and_task_ids_are_recorded() {
    let rx = Receiver::start("authorization").await;
    let sink = sekoia(&rx, quick(3));
    // Writes of 4, 4 and 2 events: full batches leave from write, the rest on flush.
    sink.write(events(0..4)).await.unwrap();
    assert_eq!(
        rx.seen().len(),
        1,
        "one full batch sent, one event buffered"
    );
    sink.write(events(4..8)).await.unwrap();
    sink.write(events(8..10)).await.unwrap();
    assert_eq!(rx.seen().len(), 3);
    assert_eq!(sink.acknowledged(), 9);
    sink.flush_durable().await.unwrap();
    let seen = rx.seen();
    assert_eq!(
        seen.iter().map(|s| s.items.len()).collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
    for s in &seen {
        assert_eq!(
            s.path,
            format!("/api/v2/asset-management/asset-connector/{UUID}")
        );
        assert_eq!(s.content_type, "application/json");
        assert_eq!(s.credential, format!("Bearer {KEY}"));
    }
    assert_delivered_in_order(&seen, 10, 3);
    // The events arrive byte for byte as written, joined into the envelope.
    assert_eq!(
        seen[0].raw,
        format!(
            r#"{{"version":1,"items":[{},{},{}]}}"#,
            event(0),
            event(1),
            event(2)
        )
    );
    assert_eq!(sink.receipts(), ["task-1", "task-2", "task-3", "task-4"]);
    assert_eq!(sink.written(), 10);
    assert_eq!(sink.acknowledged(), 10);
    // Nothing pending: a flush sends nothing more.
    sink.flush_durable().await.unwrap();
    assert_eq!(rx.seen().len(), 4);
}

#[tokio::test]
async fn http_sink_posts_ndjson_lines_with_the_configured_header() {
    let rx = Receiver::start("x-intake-token").await;
    let sink = PushSink::ndjson(
        &format!("{}/services/collector/raw", rx.base()),
        "X-Intake-Token",
        KEY.into(),
        quick(4),
        Arc::new(SystemResolver),
    )
    .unwrap();
    sink.write(events(0..9)).await.unwrap();
    sink.flush_durable().await.unwrap();
    let seen = rx.seen();
    assert_eq!(
        seen.iter().map(|s| s.items.len()).collect::<Vec<_>>(),
        [4, 4, 1]
    );
    for s in &seen {
        assert_eq!(s.path, "/services/collector/raw");
        assert_eq!(s.content_type, "application/x-ndjson");
        assert_eq!(s.credential, KEY);
    }
    assert_delivered_in_order(&seen, 9, 4);
    assert!(
        sink.receipts().is_empty(),
        "NDJSON receivers give no task id"
    );
}

// ---------------------------------------------------------------------------------------
// Misbehaving receivers.

#[tokio::test]
async fn throttling_honours_retry_after_in_seconds_and_dates_and_backs_off_without_it() {
    let rx = Receiver::start("authorization").await;
    rx.script([
        Act::Answer(429, vec![("retry-after", "1".into())], String::new()),
        Act::Answer(429, vec![], "slow down".into()),
        Act::Answer(
            429,
            vec![("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT".into())],
            String::new(),
        ),
    ]);
    let sink = sekoia(&rx, quick(5));
    sink.write(events(0..5)).await.unwrap();
    let stats = sink.stats();
    assert_eq!(stats.throttled, 3);
    assert_eq!(stats.attempts, 4);
    // The receiver's 1 s, then a backoff within the configured cap (5 ms), then the date in
    // the past: no wait.
    assert_eq!(stats.waits.len(), 3);
    assert_eq!(stats.waits[0], Duration::from_secs(1));
    assert!(
        stats.waits[1] <= Duration::from_millis(5),
        "{:?}",
        stats.waits
    );
    assert_eq!(stats.waits[2], Duration::ZERO);
    assert_delivered_in_order(&rx.seen(), 5, 5);
}

#[tokio::test]
async fn a_retry_after_beyond_the_retry_budget_fails_instead_of_waiting() {
    let rx = Receiver::start("authorization").await;
    rx.otherwise(Act::Answer(
        429,
        vec![("retry-after", "3600".into())],
        String::new(),
    ));
    let sink = sekoia(&rx, quick(5));
    sink.write(events(0..2)).await.unwrap();
    let e = sink.flush_durable().await.unwrap_err().to_string();
    assert!(
        e.contains("waiting 3600s more would pass max_retry_ms") && e.contains("events 1-2"),
        "{e}"
    );
    assert_eq!(rx.seen().len(), 1, "no second attempt an hour early");
    assert_no_key(&e);
}

#[tokio::test]
async fn server_errors_and_cut_connections_are_retried_until_acknowledged() {
    let rx = Receiver::start("authorization").await;
    rx.script([
        Act::Answer(500, vec![], "boom".into()),
        Act::CloseMidRequest,
        Act::Answer(
            503,
            vec![("retry-after", "0".into())],
            "{\"message\":\"maintenance\"}".into(),
        ),
        Act::CloseMidResponse,
    ]);
    let sink = sekoia(&rx, quick(2));
    // 50 KB events, so the request body is still arriving when the receiver hangs up.
    let big: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"seq":{i},"pad":"{}"}}"#, "x".repeat(50_000)))
        .collect();
    sink.write(big).await.unwrap();
    sink.flush_durable().await.unwrap();
    let stats = sink.stats();
    assert_eq!(stats.transient_failures, 4, "{stats:?}");
    // Backoffs, except after the 503 whose Retry-After said 0.
    assert_eq!(stats.waits.len(), 4);
    assert_eq!(stats.waits[2], Duration::ZERO);
    assert!(stats
        .waits
        .iter()
        .enumerate()
        .all(|(i, w)| i == 2 || *w > Duration::ZERO));
    assert_eq!(stats.batches_acknowledged, 3);
    // The cut answer was a 200 the sink never read whole: that batch arrived twice.
    let seen = rx.seen();
    assert_delivered_in_order(&seen, 5, 2);
    let firsts: Vec<u64> = seen
        .iter()
        .map(|s| s.items[0]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(firsts, [0, 0, 0, 0, 2, 4], "each batch resent as it was");
}

#[tokio::test]
async fn a_receiver_slower_than_the_request_timeout_is_retried() {
    let rx = Receiver::start("authorization").await;
    rx.script([Act::Slow(Duration::from_secs(2))]);
    let mut options = quick(3);
    options.request_timeout = Duration::from_millis(300);
    let sink = sekoia(&rx, options);
    sink.write(events(0..3)).await.unwrap();
    sink.flush_durable().await.unwrap();
    let stats = sink.stats();
    assert_eq!(
        (stats.transient_failures, stats.attempts),
        (1, 2),
        "{stats:?}"
    );
    assert_eq!(sink.acknowledged(), 3);
}

#[tokio::test]
async fn flush_fails_while_a_batch_is_unacknowledged_and_stays_failed() {
    let rx = Receiver::start("authorization").await;
    rx.otherwise(Act::Answer(503, vec![], "down".into()));
    let mut options = quick(10);
    options.max_attempts = 3;
    let sink = sekoia(&rx, options);
    sink.write(events(0..4)).await.unwrap();
    let e = sink.flush_durable().await.unwrap_err().to_string();
    assert!(
        e.contains("gave up after 3 attempts")
            && e.contains("HTTP 503: down")
            && e.contains("events 1-4")
            && e.contains("the cursor stays behind them")
            && !e.contains('\n'),
        "{e}"
    );
    assert_eq!(rx.seen().len(), 3);
    assert_eq!(sink.acknowledged(), 0);
    // The receiver recovers, but this sink is done: its run ends, the next one resends.
    rx.otherwise(Act::Accept);
    let again = sink.flush_durable().await.unwrap_err().to_string();
    assert!(again.starts_with("an earlier delivery failed"), "{again}");
    assert!(sink.write(events(4..5)).await.is_err());
    assert_eq!(rx.seen().len(), 3, "nothing sent after the failure");
    assert_no_key(&e);
}

#[tokio::test]
async fn a_400_fails_at_once_with_the_receivers_message_and_without_the_key() {
    let rx = Receiver::start("authorization").await;
    // The receiver quotes the credential it got back in its message.
    rx.script([Act::Answer(
        400,
        vec![],
        format!(
            r#"{{"code":"INVALID_ITEM","message":"items[2].user: required\nfield missing (auth was Bearer {KEY})"}}"#
        ),
    )]);
    let sink = sekoia(&rx, quick(10));
    sink.write(events(0..3)).await.unwrap();
    let e = sink.flush_durable().await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("HTTP 400: INVALID_ITEM: items[2].user: required field missing")
            && !text.contains('\n'),
        "{text}"
    );
    assert_no_key(&text);
    assert_no_key(&format!("{e:?}"));
    assert_eq!(sink.stats().attempts, 1, "a 400 is not retried");
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_fails_naming_the_location() {
    let rx = Receiver::start("authorization").await;
    rx.script([Act::Answer(
        307,
        vec![(
            "location",
            format!("https://elsewhere.example/intake?token={KEY}"),
        )],
        String::new(),
    )]);
    let sink = sekoia(&rx, quick(10));
    sink.write(events(0..1)).await.unwrap();
    let e = sink.flush_durable().await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 307 redirecting to https://elsewhere.example/intake?token=[redacted]")
            && e.contains("redirects are not followed"),
        "{e}"
    );
    assert_no_key(&e);
    assert_eq!(rx.seen().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Egress.

#[tokio::test]
async fn egress_rules_hold_for_the_sink() {
    let build = |url: &str, loopback: bool, resolver: Arc<dyn NameResolver>| {
        let mut o = quick(10);
        o.allow_loopback_http = loopback;
        PushSink::ndjson(url, "Authorization", KEY.into(), o, resolver)
    };
    let system: Arc<dyn NameResolver> = Arc::new(SystemResolver);
    let e = build("http://127.0.0.1:9/x", false, system.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("plain http is refused"), "{e}");
    let e = build("https://10.1.2.3/x", true, system.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("non-public address"), "{e}");
    let e = build("https://user:pw@intake.example/x", false, system)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("credentials in the URL"), "{e}");
    // A name that resolves to a private address is refused when the request is made.
    let resolver: Arc<dyn NameResolver> = Arc::new(StaticResolver(
        [(
            "intake.example".to_string(),
            vec!["192.168.1.20".parse().unwrap()],
        )]
        .into(),
    ));
    let sink = build("https://intake.example/x", false, resolver).unwrap();
    sink.write(events(0..1)).await.unwrap();
    let e = sink.flush_durable().await.unwrap_err().to_string();
    assert!(
        e.contains("egress denied") && e.contains("192.168.1.20"),
        "{e}"
    );
    assert_eq!(sink.stats().attempts, 1, "a refused address is not retried");
    assert_no_key(&e);
}

// ---------------------------------------------------------------------------------------
// The tenant file.

const TENANT: &str = r#"
[tenant]
key = "contoso"
[config]
tenant_id = "contoso.onmicrosoft.com"
[state]
checkpoint_db = "state.sqlite"
"#;

fn parse(sink: &str) -> Result<TenantConfig, String> {
    TenantConfig::parse(&format!("{TENANT}{sink}"), Path::new("/etc/ch")).map_err(|e| e.to_string())
}

#[test]
fn operator_sink_sections_parse_with_defaults_and_mistakes_are_named() {
    let c = parse(&format!(
        "[sink]\nkind = \"sekoia\"\nbase_url = \"https://api.sekoia.io\"\nconnector_uuid = \"{UUID}\"\napi_key = {{ file = \"sekoia.key\" }}\n"
    ))
    .unwrap();
    let SinkSpec::Sekoia(s) = &c.sink else {
        panic!("{:?}", c.sink)
    };
    assert_eq!(s.batch_size, 100);
    assert_eq!(s.delivery, DeliverySpec::default());
    assert_eq!(
        s.api_key.file.as_deref(),
        Some(Path::new("/etc/ch/sekoia.key"))
    );
    let c = parse(
        "[sink]\nkind = \"http\"\nurl = \"https://intake.example/raw\"\nvalue = { env = \"INTAKE_TOKEN\" }\nbatch_size = 500\n[sink.delivery]\nmax_attempts = 3\n",
    )
    .unwrap();
    let SinkSpec::Http(h) = &c.sink else {
        panic!("{:?}", c.sink)
    };
    assert_eq!(
        (h.header.as_str(), h.batch_size, h.delivery.max_attempts),
        ("Authorization", 500, 3)
    );
    let sekoia = |extra: &str| {
        format!("[sink]\nkind = \"sekoia\"\nbase_url = \"https://api.sekoia.io\"\nconnector_uuid = \"{UUID}\"\napi_key = {{ env = \"K\" }}\n{extra}")
    };
    for (text, expected) in [
        (
            sekoia("").replace(UUID, "../../admin"),
            "connector_uuid = '../../admin' is not a UUID",
        ),
        (
            sekoia("").replace("https://api", "http://api"),
            "plain http is refused",
        ),
        (
            sekoia("batch_size = 0\n"),
            "batch_size = 0 must be between 1 and 10000",
        ),
        (
            sekoia("[sink.delivery]\nmax_retry_ms = 0\n"),
            "[sink.delivery] max_retry_ms is 0",
        ),
        (
            sekoia("[sink.delivery]\nbackoff_max_ms = 1\nbackoff_initial_ms = 5\n"),
            "backoff_max_ms (1) is below backoff_initial_ms (5)",
        ),
        (sekoia("[sink.delivery]\nretries = 3\n"), "retries"),
        (
            sekoia("").replace("{ env = \"K\" }", "{ env = \"K\", file = \"k\" }"),
            "[sink] api_key needs exactly one of",
        ),
        (
            sekoia("").replace(
                "{ env = \"K\" }",
                "{ env = \"K\", hosts = [\"https://x.example\"] }",
            ),
            "[sink] api_key takes no hosts",
        ),
        (
            "[sink]\nkind = \"http\"\nurl = \"https://i.example\"\nheader = \"Content-Type\"\nvalue = { env = \"K\" }\n".into(),
            "header = 'Content-Type' cannot carry the credential",
        ),
    ] {
        let e = parse(&text).unwrap_err();
        assert!(e.contains(expected) && !e.contains('\n'), "{expected}: {e}");
    }
    // Loopback http is accepted when the tenant opts in (tests).
    let text = sekoia("").replace("https://api.sekoia.io", "http://127.0.0.1:8080");
    assert!(parse(&text).is_err());
    assert!(parse(&format!("[egress]\nallow_loopback_http = true\n{text}")).is_ok());
}

// ---------------------------------------------------------------------------------------
// End to end: the real Entra component, the Graph emulator, a Sekoia sink.

/// A checkpoint store that, at every successful write of the delta cursor, records how
/// many distinct events the receiver had acknowledged and how many the sink had taken.
struct Watched {
    inner: SqliteCheckpointStore,
    rx: Receiver,
    sink: Arc<PushSink>,
    at_commits: Mutex<Vec<(usize, u64)>>,
}

#[async_trait::async_trait]
impl CheckpointStore for Watched {
    async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError> {
        self.inner.get(namespace, key).await
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        let v = self.inner.set(namespace, key, value, expected).await?;
        if key == DELTA_CURSOR {
            self.record_commit();
        }
        Ok(v)
    }

    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<Stored>, CheckpointError> {
        self.inner.get_many(namespace, keys).await
    }

    async fn set_many(
        &self,
        namespace: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, CheckpointError> {
        let v = self.inner.set_many(namespace, writes).await?;
        if writes
            .iter()
            .any(|w| w.key == DELTA_CURSOR && w.value.is_some())
        {
            self.record_commit();
        }
        Ok(v)
    }

    async fn delete_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<u32, CheckpointError> {
        self.inner.delete_prefix(namespace, prefix, limit).await
    }
}

const DELTA_CURSOR: &str = "users/delta-cursor";

impl Watched {
    /// Records, at a commit of the delta cursor, the events acknowledged and taken so far.
    fn record_commit(&self) {
        let mut acked: Vec<String> = self
            .rx
            .seen()
            .iter()
            .filter(|s| s.acknowledged)
            .flat_map(|s| s.items.iter().map(|e| e.to_string()))
            .collect();
        acked.sort();
        acked.dedup();
        self.at_commits
            .lock()
            .unwrap()
            .push((acked.len(), self.sink.written()));
    }
}

fn delta_cursor_rows(db: &Path) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM checkpoints WHERE key = 'users/delta-cursor'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as usize
}

/// The delta cursor in a SQLite checkpoint store, parsed.
fn delta_cursor(db: &Path) -> Option<serde_json::Value> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT value FROM checkpoints WHERE key = 'users/delta-cursor'",
        [],
        |r| r.get::<_, Vec<u8>>(0),
    )
    .ok()
    .map(|bytes| serde_json::from_slice(&bytes).unwrap())
}

async fn run_into_receiver(
    runtime: &Runtime,
    emu: &Emulator,
    dir: &Path,
    rx: &Receiver,
) -> (
    Result<connector_host::RunReport, RunError>,
    Arc<PushSink>,
    Vec<(usize, u64)>,
) {
    let db = dir.join("checkpoints.sqlite");
    let mut run = connector_host::simulation::emulator_tenant_run(
        emu,
        "contoso",
        &db,
        &dir.join("unused.jsonl"),
    )
    .unwrap();
    let sink = Arc::new(sekoia(rx, quick(10)));
    let store = Arc::new(Watched {
        inner: SqliteCheckpointStore::open(&db).unwrap(),
        rx: rx.clone(),
        sink: sink.clone(),
        at_commits: Mutex::new(Vec::new()),
    });
    run.sink = sink.clone();
    run.checkpoints = store.clone();
    let outcome = runtime.run(&run).await;
    let commits = store.at_commits.lock().unwrap().clone();
    (outcome, sink, commits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_run_delivers_every_user_and_commits_only_acknowledged_events() {
    let runtime = Runtime::new(builtin_connectors::ENTRA_ID, RuntimeLimits::default())
        .await
        .expect("the embedded component loads");
    let emu = Emulator::start(Tenant::generated(11, 25), EmulatorConfig::default())
        .await
        .unwrap();
    let user_ids: std::collections::BTreeSet<String> = emu
        .users()
        .iter()
        .map(|u| u.user["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(user_ids.len(), 25);

    // 1. A receiver that throttles and fails now and then: every user arrives, and every
    //    cursor commit came after the receiver acknowledged every event emitted before it.
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("authorization").await;
    rx.script([
        Act::Answer(500, vec![], "boom".into()),
        Act::Accept,
        Act::Answer(429, vec![("retry-after", "0".into())], String::new()),
    ]);
    let (outcome, sink, commits) = run_into_receiver(&runtime, &emu, dir.path(), &rx).await;
    let report = outcome.expect("the run succeeds");
    let seen = rx.seen();
    let delivered: std::collections::BTreeSet<String> = seen
        .iter()
        .filter(|s| s.acknowledged)
        .flat_map(|s| s.items.iter())
        .filter_map(|e| e["user"]["uid"].as_str().map(str::to_string))
        .collect();
    assert!(
        user_ids.is_subset(&delivered),
        "missing: {:?}",
        user_ids.difference(&delivered).collect::<Vec<_>>()
    );
    assert!(seen
        .iter()
        .all(|s| s.items.len() <= 10 && s.credential == format!("Bearer {KEY}")));
    let stats = sink.stats();
    assert_eq!(
        (stats.transient_failures, stats.throttled),
        (1, 1),
        "the receiver's 500 and 429 were met and retried: {stats:?}"
    );
    assert_eq!(report.events_written, sink.written());
    assert_eq!(sink.acknowledged(), sink.written());
    assert!(!commits.is_empty(), "the run committed its cursor");
    for (acked, written) in &commits {
        assert!(
            *acked as u64 >= *written,
            "cursor ahead of the receiver: {commits:?}"
        );
    }
    assert_eq!(
        sink.receipts().len() as u64,
        sink.stats().batches_acknowledged
    );
    assert_eq!(delta_cursor_rows(&dir.path().join("checkpoints.sqlite")), 1);

    // 2. A receiver that refuses the last (partial) batch with a 400: the run fails with its
    //    message, and the cursor was never written.
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("authorization").await;
    rx.state.lock().unwrap().refuse_batches_under = Some(10);
    let (outcome, sink, commits) = run_into_receiver(&runtime, &emu, dir.path(), &rx).await;
    assert_ne!(sink.written() % 10, 0, "the run ends with a partial batch");
    let e = outcome.expect_err("the run fails").to_string();
    assert!(
        e.contains("HTTP 400: T400: the last batch is refused by the test") && !e.contains('\n'),
        "{e}"
    );
    assert_no_key(&e);
    // The walk commits its staged sources and the pages the receiver took; never a cursor
    // past an event the receiver did not acknowledge, and never the end of the walk.
    for (acked, written) in &commits {
        assert!(
            *acked as u64 >= *written,
            "cursor ahead of the receiver: {commits:?}"
        );
    }
    let cursor = delta_cursor(&dir.path().join("checkpoints.sqlite"));
    assert!(
        cursor
            .as_ref()
            .is_none_or(|c| c["round"] == "full" && c["walk"].is_object()),
        "the walk did not finish: {cursor:?}"
    );
    assert!(sink.acknowledged() < sink.written());
}

#[test]
fn operator_a_tenant_file_with_a_sekoia_sink_builds_a_run_that_redacts_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("sekoia.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = |key: &str| {
        format!(
            "{TENANT}[egress]\nallow = [\"https://graph.microsoft.com\"]\n\
             [sink]\nkind = \"sekoia\"\nbase_url = \"https://api.sekoia.io\"\n\
             connector_uuid = \"{UUID}\"\napi_key = {{ file = \"{key}\" }}\n"
        )
    };
    let cfg = TenantConfig::parse(&text("sekoia.key"), dir.path()).unwrap();
    let run = connector_host::TenantRun::from_config(&cfg).unwrap();
    // The connector never holds the key, and whatever it hands out is scrubbed of it.
    assert_eq!(
        run.secrets.scrubber().scrub(&format!("echo: Bearer {KEY}")),
        "echo: Bearer [redacted]"
    );
    assert_eq!(run.sink.written(), 0);
    let cfg = TenantConfig::parse(&text("missing.key"), dir.path()).unwrap();
    let e = connector_host::TenantRun::from_config(&cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("tenant 'contoso': configuration: [sink] api_key:")
            && e.contains("missing.key")
            && !e.contains('\n'),
        "{e}"
    );
}

#[tokio::test]
async fn the_bare_token_of_a_header_value_is_scrubbed_too() {
    let rx = Receiver::start("authorization").await;
    rx.script([Act::Answer(
        401,
        vec![],
        format!("token {KEY} is not valid for this intake"),
    )]);
    let sink = PushSink::ndjson(
        &format!("{}/intake", rx.base()),
        "Authorization",
        format!("Bearer {KEY}"),
        quick(10),
        Arc::new(SystemResolver),
    )
    .unwrap();
    sink.write(events(0..1)).await.unwrap();
    let e = sink.flush_durable().await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 401: token [redacted] is not valid for this intake"),
        "{e}"
    );
    assert_no_key(&e);
    assert_eq!(rx.seen()[0].credential, format!("Bearer {KEY}"));
}

/// A receiver that answers every batch with the bearer key as its `task_id`: the receipts
/// of `run --json` are scrubbed like every other text from outside, and no log line at
/// debug level carries the key either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receiver_echoing_the_key_as_its_task_id_never_reaches_the_report() {
    let emu = Emulator::start(Tenant::generated(12, 25), EmulatorConfig::default())
        .await
        .unwrap();
    let rx = Receiver::start("authorization").await;
    rx.otherwise(Act::EchoCredential);
    let dir = tempfile::tempdir().unwrap();
    let cfg = emu.config();
    let tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &tenant,
        format!(
            "[tenant]\nkey = \"echo-sink\"\n\
             [config]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nlogin_endpoint = \"{}\"\ngraph_endpoint = \"{}\"\n\
             [secrets.client_secret]\nenv = \"SINKS_TEST_CLIENT_SECRET\"\n\
             [egress]\nallow_loopback_http = true\n\
             [state]\ncheckpoint_db = \"checkpoints.sqlite\"\n\
             [sink]\nkind = \"sekoia\"\nbase_url = \"{}\"\nconnector_uuid = \"{UUID}\"\n\
             api_key = {{ env = \"SINKS_TEST_API_KEY\" }}\nbatch_size = 10\n",
            cfg.tenant_id,
            cfg.client_id,
            emu.login_endpoint(),
            emu.graph_endpoint(),
            rx.base(),
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
            .args(["--log", "debug", "--no-cache", "run", "--json", "--config"])
            .arg(&tenant)
            .env("SINKS_TEST_CLIENT_SECRET", cfg.client_secret)
            .env("SINKS_TEST_API_KEY", KEY)
            .output()
            .expect("connector-host starts")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        rx.seen()
            .iter()
            .all(|s| s.credential == format!("Bearer {KEY}")),
        "the receiver got the key"
    );
    assert_no_key(&stdout);
    assert_no_key(&stderr);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
    assert_eq!(report["events_written"], 25);
    let receipts = report["receipts"].as_array().expect("receipts");
    assert!(!receipts.is_empty(), "one per batch: {report}");
    assert!(receipts.iter().all(|r| r == "[redacted]"), "{report}");
}

/// Log lines written while `f` runs (on this thread), as text without colours.
async fn logs_of<F: std::future::Future>(f: F) -> (F::Output, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[tokio::test(flavor = "current_thread")]
async fn every_retry_wait_of_a_sink_is_logged_at_warn_with_sink_attempt_wait_and_time_so_far() {
    let rx = Receiver::start("authorization").await;
    rx.script([
        Act::Answer(503, vec![], "{\"message\":\"down for maintenance\"}".into()),
        Act::Answer(503, vec![("retry-after", "0".into())], "{}".into()),
    ]);
    let sink = sekoia(&rx, quick(5));
    let (delivered, logs) = logs_of(async {
        sink.write(events(0..3)).await.unwrap();
        sink.flush_durable().await
    })
    .await;
    delivered.expect("acknowledged on the third attempt");
    let waits: Vec<&str> = logs.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(waits.len(), 2, "one warn line per wait: {logs}");
    let origin = rx.base();
    for (i, line) in waits.iter().enumerate() {
        assert!(
            line.contains(&format!(
                "the Sekoia.io sink's receiver at {origin} did not take a batch: HTTP 503"
            )),
            "{line}"
        );
        assert!(
            line.contains(&format!("attempt {} of 8, waiting ", i + 1)),
            "{line}"
        );
        assert!(
            line.contains("so far (gives up after max_retry_ms, 20 s)"),
            "{line}"
        );
        assert!(line.contains(&format!("attempt={}", i + 1)), "{line}");
        assert_no_key(line);
    }
    assert!(waits[0].contains("down for maintenance"), "{}", waits[0]);
    assert!(
        waits[1].contains("waiting 0 s before the next"),
        "{}",
        waits[1]
    );
}
