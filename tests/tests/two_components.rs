//! One `serve` deployment, tenants of three different components: the built-in Entra
//! connector (a simulated tenant, its Graph emulator on 127.0.0.1), the example connector
//! (`examples/example-connector`, against its API on 127.0.0.1) and the hostile test
//! component in its well-behaved `upstream` mode, whose upstream is a small HTTP server on
//! 127.0.0.1. Each tenant's events come from its own component, `/metrics` names each
//! tenant's connector, and a failure names the failing connector's upstream, not Graph.

use std::path::Path;

use connector_host::serve::{Deployment, ServeFile};
use connector_host::{Components, RuntimeOptions};
use e2e_tests::example_api::{ApiUser, ExampleApi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The hostile test component, as a file a tenant names (`[tenant] connector = "<path>"`).
const HOSTILE_WASM: &str = env!("HOSTILE_CONNECTOR_WASM");

/// The example connector, as a file a tenant names.
const EXAMPLE_WASM: &str = env!("EXAMPLE_CONNECTOR_WASM");

/// A tenant file of the example connector against `base_url`, its API key in a file.
fn example_tenant(dir: &Path, key: &str, base_url: &str) {
    std::fs::write(dir.join(format!("{key}.key")), "example-api-key-1\n").unwrap();
    std::fs::write(
        dir.join(format!("{key}.toml")),
        format!(
            "[tenant]\nkey = \"{key}\"\nconnector = \"{EXAMPLE_WASM}\"\n\n\
             [config]\nbase_url = \"{base_url}\"\ntenant = \"{key}\"\n\n\
             [secrets.api_key]\nfile = \"{key}.key\"\n\n\
             [egress]\nallow_loopback_http = true\n\n\
             [state]\ncheckpoint_db = \"{key}.sqlite\"\n\n\
             [sink]\nkind = \"jsonl\"\npath = \"{key}.jsonl\"\n"
        ),
    )
    .unwrap();
}

/// An upstream service on 127.0.0.1: `GET /ok` answers 200, anything else 503.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let ok = request.starts_with(b"GET /ok ");
                let (status, body) = if ok {
                    ("200 OK", "ok")
                } else {
                    ("503 Service Unavailable", "down")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// A tenant file of the hostile component in `upstream` mode, GETting `path` of `port`.
fn hostile_tenant(dir: &Path, key: &str, port: u16, path: &str) {
    std::fs::write(
        dir.join(format!("{key}.toml")),
        format!(
            "[tenant]\nkey = \"{key}\"\nconnector = \"{HOSTILE_WASM}\"\n\n\
             [config]\nattack = \"upstream\"\nurl = \"http://127.0.0.1:{port}{path}\"\ncount = \"3\"\n\n\
             [egress]\nallow = [\"http://127.0.0.1:{port}\"]\nallow_loopback_http = true\n\n\
             [state]\ncheckpoint_db = \"{key}.sqlite\"\n\n\
             [sink]\nkind = \"jsonl\"\npath = \"{key}.jsonl\"\n"
        ),
    )
    .unwrap();
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each event is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_serve_runs_tenants_of_two_components_each_named_by_its_own_connector() {
    let dir = tempfile::tempdir().unwrap();
    let port = upstream().await;
    let t = dir.path().join("t");
    std::fs::create_dir(&t).unwrap();
    hostile_tenant(&t, "h-ok", port, "/ok");
    hostile_tenant(&t, "h-down", port, "/down");
    let api = ExampleApi::start(
        (1..=4)
            .map(|n| ApiUser {
                id: format!("u{n}"),
                name: format!("user{n}"),
                email: format!("user{n}@example.com"),
                updated_at: format!("2026-01-01T00:00:0{n}Z"),
            })
            .collect(),
        "example-api-key-1",
    )
    .await;
    example_tenant(&t, "x-ok", &api.base_url);
    // A port nothing listens on: the example's upstream is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    example_tenant(&t, "x-down", &closed_url);
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        "include = [\"t/*.toml\"]\n\n[serve]\nlisten = \"127.0.0.1:0\"\nonce = true\n\n\
         [schedule]\ninterval_secs = 3600\njitter_secs = 0\n\n\
         [simulation]\ntenants = 1\nusers_per_tenant = 5\nseed = 3\n",
    )
    .unwrap();
    let file = ServeFile::load(&path).unwrap();
    let components = Components::new(RuntimeOptions::default());
    let deployment = Deployment::start(file, &components).await.unwrap();
    assert_eq!(
        components.count().await,
        3,
        "one compiled component each, shared by its tenants"
    );

    // A failure names the failing connector's upstream (its describe name), not Graph.
    let failed = deployment
        .server
        .run_now("h-down")
        .await
        .expect("started")
        .expect_err("its upstream answers 503");
    let text = failed.to_string();
    assert_eq!(
        text,
        format!("tenant 'h-down': hostile upstream: GET http://127.0.0.1:{port}/down answered 503")
    );

    let failed = deployment
        .server
        .run_now("x-down")
        .await
        .expect("started")
        .expect_err("nothing listens at its API");
    let text = failed.to_string();
    assert!(
        text.starts_with("tenant 'x-down': example-users upstream: "),
        "{text}"
    );
    assert!(!text.contains("Graph"), "{text}");

    let addr = deployment.endpoint.local_addr();
    let summary = deployment.server.serve(std::future::pending()).await;
    assert_eq!(
        (summary.tenants, summary.successes),
        (5, 3),
        "sim-0000, h-ok and x-ok succeed, h-down and x-down fail: {summary}"
    );

    // Each tenant's events come from its own component.
    let entra = lines(&dir.path().join("sim/events/sim-0000.jsonl"));
    assert_eq!(entra.len(), 5, "one event per simulated user");
    assert!(entra.iter().all(|e| e["class_uid"] == 5003), "{entra:?}");
    assert!(
        entra
            .iter()
            .all(|e| e["metadata"]["loggers"][0]["name"] == "entra-id-users"),
        "{entra:?}"
    );
    let hostile = lines(&t.join("h-ok.jsonl"));
    assert_eq!(
        hostile,
        (0..3)
            .map(|i| serde_json::json!({"hostile": i, "status": 200}))
            .collect::<Vec<_>>()
    );
    assert!(lines(&t.join("h-down.jsonl")).is_empty());
    let example = lines(&t.join("x-ok.jsonl"));
    assert_eq!(
        example
            .iter()
            .map(|e| e["user"]["uid"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["u1", "u2", "u3", "u4"]
    );
    for e in &example {
        assert_eq!(e["class_uid"], 5003);
        assert_eq!(e["metadata"]["product"]["name"], "Example Directory");
        assert_eq!(e["metadata"]["loggers"][0]["name"], "example-users");
        assert_eq!(e["metadata"]["tenant_uid"], "x-ok");
    }
    assert!(lines(&t.join("x-down.jsonl")).is_empty());

    // /metrics names each tenant's connector; the failures are the upstream's.
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "connector_tenant_info{tenant=\"sim-0000\",connector=\"entra-id-users\"} 1",
        "connector_tenant_info{tenant=\"h-ok\",connector=\"hostile\"} 1",
        "connector_tenant_info{tenant=\"h-down\",connector=\"hostile\"} 1",
        "connector_tenant_info{tenant=\"x-ok\",connector=\"example-users\"} 1",
        "connector_tenant_info{tenant=\"x-down\",connector=\"example-users\"} 1",
        "connector_run_failures_total{tenant=\"x-down\",kind=\"upstream\"} 2",
        "connector_events_total{tenant=\"x-ok\"} 4",
        "connector_run_failures_total{tenant=\"h-down\",kind=\"upstream\"} 2",
        "connector_events_total{tenant=\"h-ok\"} 3",
        "connector_events_total{tenant=\"sim-0000\"} 5",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    deployment.stop().await;
}
