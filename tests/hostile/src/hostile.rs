//! The `asset-connector` export whose `run` performs the attack named by config `attack`.
//! Every attack either misbehaves until the host stops it, or reports what the host let
//! it do in a fixed text format the end-to-end tests match on (see each attack's doc).

use core::hint::black_box;

use serde_json::json;

wit_bindgen::generate!({
    path: "../../wit",
    world: "asset-connector",
});

use connector::runtime::{emit_event, http_fetch, kv_checkpoint, log};
use exports::connector::runtime::connector as api;

use api::ConnectorError;

/// The checkpoint key the real Entra connector uses for its own cursor.
const OWN_CURSOR: &str = "users/created-cursor";

struct Component;

impl api::Guest for Component {
    fn describe() -> api::Description {
        api::Description {
            name: "hostile".into(),
            version: "0.0.1".into(),
            permissions: Vec::new(),
            config_keys: Vec::new(),
            secrets: Vec::new(),
            event_classes: Vec::new(),
        }
    }

    fn egress(_: api::Config) -> Result<api::EgressPlan, ConnectorError> {
        Ok(api::EgressPlan {
            origins: Vec::new(),
            secrets: Vec::new(),
        })
    }

    fn check(config: api::Config) -> Result<Vec<api::Probe>, ConnectorError> {
        if matches!(value(&config, "attack"), Ok("echo-secret")) {
            let text = echoed(&config)?;
            return Ok(vec![api::Probe {
                name: text.clone(),
                ok: false,
                detail: text,
            }]);
        }
        Ok(Vec::new())
    }

    fn run(config: api::Config) -> Result<api::RunReport, ConnectorError> {
        let attack = value(&config, "attack")?;
        match attack {
            "spin" => spin(),
            "memory-bomb" => memory_bomb(),
            "recursion" => {
                let depth = recurse(0);
                Err(ConnectorError::Host(format!(
                    "recursion returned at {depth}"
                )))
            }
            "giant-event" => giant_event(),
            "event-flood" => event_flood(),
            "fetch" => fetch(&config),
            "upstream" => upstream(&config),
            "secret-to-wrong-host" => secret_to_wrong_host(&config),
            "huge-request" => huge_request(&config),
            "request-flood" => request_flood(&config),
            "env-and-files" => env_and_files(),
            "foreign-checkpoint" => foreign_checkpoint(),
            "invalid-json" => invalid_json(),
            "trap-mid-run" => trap_mid_run(),
            "checkpoint-then-trap" => checkpoint_then_trap(),
            "echo-secret" => echo_secret(&config),
            "checkpoint-batches" => checkpoint_batches(),
            "grow-memory" => grow_memory(&config),
            "progress-then-spin" => progress_then_spin(&config),
            other => Err(ConnectorError::Config(format!("unknown attack '{other}'"))),
        }
    }
}

export!(Component);

/// The value of a config key, or `config("missing config key '<key>'")`.
fn value<'a>(config: &'a [(String, String)], key: &str) -> Result<&'a str, ConnectorError> {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ConnectorError::Config(format!("missing config key '{key}'")))
}

/// A run report with only the given counts and warnings.
fn report(events_emitted: u64, requests: u64, warnings: Vec<String>) -> api::RunReport {
    api::RunReport {
        items_seen: 0,
        events_emitted,
        items_skipped: 0,
        items_partial: 0,
        requests,
        full_sync: false,
        warnings,
        unavailable: Vec::new(),
    }
}

/// `denied: <msg>`, `timeout`, `too-large: <bytes>`, `transport: <msg>` or `budget-exhausted`.
fn fetch_error_text(e: &http_fetch::FetchError) -> String {
    match e {
        http_fetch::FetchError::Denied(m) => format!("denied: {m}"),
        http_fetch::FetchError::Timeout => "timeout".into(),
        http_fetch::FetchError::TooLarge(n) => format!("too-large: {n}"),
        http_fetch::FetchError::Transport(m) => format!("transport: {m}"),
        http_fetch::FetchError::BudgetExhausted => "budget-exhausted".into(),
    }
}

/// `conflict: v<N>` / `conflict: none`, `invalid: <msg>` or `storage: <msg>`.
fn kv_error_text(e: &kv_checkpoint::KvError) -> String {
    match e {
        kv_checkpoint::KvError::Conflict(Some(v)) => format!("conflict: v{v}"),
        kv_checkpoint::KvError::Conflict(None) => "conflict: none".into(),
        kv_checkpoint::KvError::Invalid(m) => format!("invalid: {m}"),
        kv_checkpoint::KvError::Storage(m) => format!("storage: {m}"),
    }
}

/// `invalid: <msg>` or `sink: <msg>`.
fn emit_error_text(e: &emit_event::EmitError) -> String {
    match e {
        emit_event::EmitError::Invalid(m) => format!("invalid: {m}"),
        emit_event::EmitError::Sink(m) => format!("sink: {m}"),
    }
}

/// Emits one batch; a refusal becomes `host("<emit error text>")`.
fn emit(events: &[String]) -> Result<(), ConnectorError> {
    emit_event::emit(events).map_err(|e| ConnectorError::Host(emit_error_text(&e)))
}

/// One request, reported as `Ok` with warnings `["status <code>"]`, or as
/// `host("<fetch error text>")`.
fn fetch_one(req: http_fetch::Request) -> Result<api::RunReport, ConnectorError> {
    match http_fetch::fetch(&req) {
        Ok(resp) => Ok(report(0, 1, vec![format!("status {}", resp.status)])),
        Err(e) => Err(ConnectorError::Host(fetch_error_text(&e))),
    }
}

fn get(url: &str) -> http_fetch::Request {
    http_fetch::Request {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
    }
}

/// `spin`: a busy loop that never calls the host and never returns; only the host's
/// CPU limit (fuel or epoch interruption) can stop it.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// `memory-bomb`: allocates, fills and keeps 16 MiB chunks until an allocation fails
/// (an allocation failure aborts, i.e. traps); only the host's memory limit stops it.
fn memory_bomb() -> ! {
    const CHUNK: usize = 16 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0xA5u8; CHUNK];
        black_box(&mut chunk);
        chunks.push(chunk);
        black_box(&mut chunks);
    }
}

/// `recursion`: unbounded non-tail recursion with a 256-byte frame on the stack, so it
/// exhausts the stack (shadow stack in linear memory or the wasm call stack) and traps.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 256];
    frame[(depth % 256) as usize] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(u64::from(frame[(depth % 251) as usize]))
}

/// `giant-event`: emits one valid JSON object of exactly 64 MiB, `{"x":"aaaa…"}`.
/// `Ok` (events_emitted 1) if accepted, else `host("<emit error text>")`.
fn giant_event() -> Result<api::RunReport, ConnectorError> {
    const SIZE: usize = 64 << 20;
    const HEAD: &str = "{\"x\":\"";
    const TAIL: &str = "\"}";
    let mut event = String::with_capacity(SIZE);
    event.push_str(HEAD);
    event.push_str(&"a".repeat(SIZE - HEAD.len() - TAIL.len()));
    event.push_str(TAIL);
    emit(&[event])?;
    Ok(report(1, 0, Vec::new()))
}

/// `event-flood`: 1,000 batches of 10,000 small events `{"batch":B,"i":I}`. Stops at
/// the first refused batch with `host("<emit error text>")`; `Ok` (events_emitted
/// 10,000,000) if all were accepted.
fn event_flood() -> Result<api::RunReport, ConnectorError> {
    let mut emitted = 0u64;
    for batch in 0..1_000u32 {
        let events: Vec<String> = (0..10_000u32)
            .map(|i| format!("{{\"batch\":{batch},\"i\":{i}}}"))
            .collect();
        emit(&events)?;
        emitted += events.len() as u64;
    }
    Ok(report(emitted, 0, Vec::new()))
}

/// `fetch`: GET config `url`. `Ok` with warnings `["status <code>"]`, or
/// `host("<fetch error text>")`, e.g. `host("denied: <msg>")`.
fn fetch(config: &[(String, String)]) -> Result<api::RunReport, ConnectorError> {
    fetch_one(get(value(config, "url")?))
}

/// `upstream`: a well-behaved connector of an upstream service at config `url`. GETs it; a
/// 2xx answer emits config `count` events `{"hostile":<i>,"status":<code>}` (i from 0) and
/// succeeds (items_seen = count); another status is `upstream("GET <url> answered
/// <status>")`, a fetch error `host("<fetch error text>")`. The host's two-component serve
/// test runs it beside the Entra connector.
fn upstream(config: &[(String, String)]) -> Result<api::RunReport, ConnectorError> {
    let url = value(config, "url")?;
    let count: u64 = value(config, "count")?
        .parse()
        .map_err(|_| ConnectorError::Config("count must be a number".into()))?;
    let resp =
        http_fetch::fetch(&get(url)).map_err(|e| ConnectorError::Host(fetch_error_text(&e)))?;
    if !(200..300).contains(&resp.status) {
        return Err(ConnectorError::Upstream(format!(
            "GET {url} answered {}",
            resp.status
        )));
    }
    let events: Vec<String> = (0..count)
        .map(|i| json!({"hostile": i, "status": resp.status}).to_string())
        .collect();
    emit(&events)?;
    let mut r = report(count, 1, Vec::new());
    r.items_seen = count;
    Ok(r)
}

/// `secret-to-wrong-host`: POSTs `client_secret={{secret:client_secret}}` (form-urlencoded)
/// to config `url`, hoping the host substitutes the secret for a host it is not bound to.
/// Reported as `fetch`.
fn secret_to_wrong_host(config: &[(String, String)]) -> Result<api::RunReport, ConnectorError> {
    fetch_one(http_fetch::Request {
        method: "POST".into(),
        url: value(config, "url")?.into(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: Some(b"client_secret={{secret:client_secret}}".to_vec()),
    })
}

/// The text to leak: config `text` when set (a secret the operator pasted into the
/// configuration); otherwise the answer of a token endpoint that echoes what it received:
/// POSTs the form `grant_type=client_credentials&client_secret={{secret:client_secret}}`
/// (or config `body`, e.g. a client assertion's `client_assertion={{assertion:NAME}}`) to
/// config `url` and returns the answer's `error_description` (decoded from the JSON), or its
/// whole body when it has none. A fetch error becomes `host("<fetch error text>")`.
fn echoed(config: &[(String, String)]) -> Result<String, ConnectorError> {
    if let Ok(text) = value(config, "text") {
        return Ok(text.to_string());
    }
    let resp = http_fetch::fetch(&http_fetch::Request {
        method: "POST".into(),
        url: value(config, "url")?.into(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: Some(
            value(config, "body")
                .unwrap_or("grant_type=client_credentials&client_secret={{secret:client_secret}}")
                .as_bytes()
                .to_vec(),
        ),
    })
    .map_err(|e| ConnectorError::Host(fetch_error_text(&e)))?;
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    Ok(serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error_description")?.as_str().map(str::to_owned))
        .unwrap_or(body))
}

/// `echo-secret`: takes [`echoed`] text (a secret a server echoed back) and hands it out
/// through every door: a `log` line at each level, stdout, stderr, one event
/// `{"echo": <text>, "echo_hex": <the text's bytes in hex>}` (the hex shows what the
/// connector received; the host redacts a secret's hex form too, so a secret the connector
/// held itself shows there as the hex of `[redacted]`), the checkpoint key `echo`;
/// then, as config `finish` says, returns
/// `host(<text>)` (`error`, the default) or a report whose only warning and only
/// unavailable item are the text (`report`). `check` with this attack returns one failed
/// probe named and detailed with the text.
fn echo_secret(config: &[(String, String)]) -> Result<api::RunReport, ConnectorError> {
    let text = echoed(config)?;
    for level in [
        log::Level::Trace,
        log::Level::Debug,
        log::Level::Info,
        log::Level::Warn,
        log::Level::Error,
    ] {
        log::write(level, &text);
    }
    println!("{text}");
    eprintln!("{text}");
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    emit(&[json!({ "echo": text, "echo_hex": hex }).to_string()])?;
    let version = kv_checkpoint::get("echo")
        .map_err(|e| ConnectorError::Host(kv_error_text(&e)))?
        .map(|(_, v)| v);
    kv_checkpoint::set("echo", text.as_bytes(), version)
        .map_err(|e| ConnectorError::Host(kv_error_text(&e)))?;
    if matches!(value(config, "finish"), Ok("report")) {
        let mut r = report(1, 1, vec![text.clone()]);
        r.unavailable = vec![text];
        return Ok(r);
    }
    Err(ConnectorError::Host(text))
}

/// `huge-request`: POSTs a 64 MiB body (`b'a'` repeated) to config `url`. Reported as `fetch`.
fn huge_request(config: &[(String, String)]) -> Result<api::RunReport, ConnectorError> {
    fetch_one(http_fetch::Request {
        method: "POST".into(),
        url: value(config, "url")?.into(),
        headers: vec![("content-type".into(), "application/octet-stream".into())],
        body: Some(vec![b'a'; 64 << 20]),
    })
}

/// `request-flood`: one `fetch-all` of 100,000 GETs of config `url`. Always `Ok`, with
/// warnings `["ok=<n> budget=<n> denied=<n> other=<n>"]` (ok counts responses of any
/// status, budget `budget-exhausted`, denied `denied`, other every other error).
fn request_flood(config: &[(String, String)]) -> Result<api::RunReport, ConnectorError> {
    let url = value(config, "url")?;
    let reqs: Vec<http_fetch::Request> = (0..100_000).map(|_| get(url)).collect();
    let (mut ok, mut budget, mut denied, mut other) = (0u64, 0u64, 0u64, 0u64);
    for outcome in http_fetch::fetch_all(&reqs) {
        match outcome {
            Ok(_) => ok += 1,
            Err(http_fetch::FetchError::BudgetExhausted) => budget += 1,
            Err(http_fetch::FetchError::Denied(_)) => denied += 1,
            Err(_) => other += 1,
        }
    }
    Ok(report(
        0,
        reqs.len() as u64,
        vec![format!(
            "ok={ok} budget={budget} denied={denied} other={other}"
        )],
    ))
}

/// `env-and-files`: probes what the WASI sandbox exposes and emits it as one event
/// `{"env_vars":N,"args":N,"read_dir_root":"ok:N entries|err:<msg>","read_passwd":
/// "ok:N bytes|err:<msg>","tcp_connect":"ok|err:<msg>","cwd":"ok:<path>|err:<msg>"}`,
/// then `Ok` (events_emitted 1); a refused emit is `host("<emit error text>")`.
fn env_and_files() -> Result<api::RunReport, ConnectorError> {
    let read_dir_root = match std::fs::read_dir("/") {
        Ok(entries) => format!("ok:{} entries", entries.count()),
        Err(e) => format!("err:{e}"),
    };
    let read_passwd = match std::fs::read("/etc/passwd") {
        Ok(bytes) => format!("ok:{} bytes", bytes.len()),
        Err(e) => format!("err:{e}"),
    };
    let tcp_connect = match std::net::TcpStream::connect("127.0.0.1:80") {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("err:{e}"),
    };
    let cwd = match std::env::current_dir() {
        Ok(path) => format!("ok:{}", path.display()),
        Err(e) => format!("err:{e}"),
    };
    let event = json!({
        "env_vars": std::env::vars().count(),
        "args": std::env::args().count(),
        "read_dir_root": read_dir_root,
        "read_passwd": read_passwd,
        "tcp_connect": tcp_connect,
        "cwd": cwd,
    });
    emit(&[event.to_string()])?;
    Ok(report(1, 0, Vec::new()))
}

/// `foreign-checkpoint`: for each key that tries to escape the tenant/connector namespace
/// (plus the connector's own cursor key as a control), `get` it and then `set` it to
/// `b"hostile"` with expected version none. Emits one event
/// `{"results":[{"key":K,"get":"none|some:v<N>|err:<kv error text>","set":"ok:v<N>|err:<kv error text>"},…]}`
/// and returns `Ok` (events_emitted 1); a refused emit is `host("<emit error text>")`.
fn foreign_checkpoint() -> Result<api::RunReport, ConnectorError> {
    let keys = [
        "../tenant-b/entra-id-users/users/created-cursor",
        "tenant-b/entra-id-users/users/created-cursor",
        "/tenant-b/x",
        OWN_CURSOR,
    ];
    let results: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| {
            let got = match kv_checkpoint::get(key) {
                Ok(None) => "none".to_string(),
                Ok(Some((_, version))) => format!("some:v{version}"),
                Err(e) => format!("err:{}", kv_error_text(&e)),
            };
            let set = match kv_checkpoint::set(key, b"hostile", None) {
                Ok(version) => format!("ok:v{version}"),
                Err(e) => format!("err:{}", kv_error_text(&e)),
            };
            json!({ "key": key, "get": got, "set": set })
        })
        .collect();
    emit(&[json!({ "results": results }).to_string()])?;
    Ok(report(1, 0, Vec::new()))
}

/// `invalid-json`: emits `["not json"]`. `host("<emit error text>")` if refused (the
/// expected outcome), `Ok` (events_emitted 1) if the host accepted it.
fn invalid_json() -> Result<api::RunReport, ConnectorError> {
    emit(&["not json".to_string()])?;
    Ok(report(1, 0, Vec::new()))
}

/// `trap-mid-run`: emits one batch of 3 valid events `{"n":1}`, `{"n":2}`, `{"n":3}`,
/// then panics with "hostile trap" (a panic aborts, i.e. traps, in the `guest` profile).
/// A refused emit is `host("<emit error text>")` instead.
fn trap_mid_run() -> Result<api::RunReport, ConnectorError> {
    let events: Vec<String> = (1..=3).map(|n| format!("{{\"n\":{n}}}")).collect();
    emit(&events)?;
    panic!("hostile trap");
}

/// `checkpoint-then-trap`: moves its own cursor `users/created-cursor` to `b"moved"`
/// (expected version: whatever `get` reports, none if unset), emits one event
/// `{"n":1}`, then panics with "hostile trap after checkpoint". A failed `get`/`set` is
/// `host("checkpoint: <kv error text>")`, a refused emit `host("<emit error text>")`.
fn checkpoint_then_trap() -> Result<api::RunReport, ConnectorError> {
    let checkpoint = |e: kv_checkpoint::KvError| {
        ConnectorError::Host(format!("checkpoint: {}", kv_error_text(&e)))
    };
    let expected = kv_checkpoint::get(OWN_CURSOR)
        .map_err(checkpoint)?
        .map(|(_, version)| version);
    kv_checkpoint::set(OWN_CURSOR, b"moved", expected).map_err(checkpoint)?;
    emit(&["{\"n\":1}".to_string()])?;
    panic!("hostile trap after checkpoint");
}

/// `checkpoint-batches`: the batch calls of `kv-checkpoint` 0.3.0 at and past their limits.
/// Emits one event `{"results":{NAME: OUTCOME,…}}`, OUTCOME `ok:<answer>` or
/// `err:<kv error text>`, for: `get-many-1001` (1,001 keys), `set-many-1001`,
/// `set-many-value-over-cap` (one value of 4 MiB + 1), `set-many-duplicate` (a key twice),
/// `set-many-atomic` (a staging write plus its own cursor at a wrong version), then
/// `staged-after-atomic` (`get-many` of that staging key: `ok:none` when nothing applied),
/// `delete-prefix-empty`, `delete-prefix-10001`, `delete-prefix-escape` (prefixes
/// `../tenant-b/` and `tenant-b/`, which stay inside its own namespace: `ok:0+0`),
/// `set-many-ok` (two staging keys) and `delete-prefix-staging` (`stage/`, limit 10).
/// Returns `Ok` (events_emitted 1); a refused emit is `host("<emit error text>")`.
fn checkpoint_batches() -> Result<api::RunReport, ConnectorError> {
    use kv_checkpoint::{Expect, Write};
    let text = |r: Result<String, kv_checkpoint::KvError>| match r {
        Ok(v) => format!("ok:{v}"),
        Err(e) => format!("err:{}", kv_error_text(&e)),
    };
    let put = |key: &str, value: Vec<u8>, expect: Expect| Write {
        key: key.into(),
        value: Some(value),
        expect,
    };
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let mut results = serde_json::Map::new();
    let mut record = |name: &str, outcome: String| {
        results.insert(name.into(), outcome.into());
    };
    record(
        "get-many-1001",
        text(kv_checkpoint::get_many(&many).map(|v| v.len().to_string())),
    );
    let writes: Vec<Write> = many
        .iter()
        .map(|k| put(k, b"x".to_vec(), Expect::Any))
        .collect();
    record(
        "set-many-1001",
        text(kv_checkpoint::set_many(&writes).map(|v| format!("{v:?}"))),
    );
    record(
        "set-many-value-over-cap",
        text(
            kv_checkpoint::set_many(&[put("big", vec![7; (4 << 20) + 1], Expect::Any)])
                .map(|v| format!("{v:?}")),
        ),
    );
    record(
        "set-many-duplicate",
        text(
            kv_checkpoint::set_many(&[
                put("dup", b"1".to_vec(), Expect::Any),
                put("dup", b"2".to_vec(), Expect::Any),
            ])
            .map(|v| format!("{v:?}")),
        ),
    );
    record(
        "set-many-atomic",
        text(
            kv_checkpoint::set_many(&[
                put("stage/atomic", b"staged".to_vec(), Expect::Absent),
                put(OWN_CURSOR, b"hostile".to_vec(), Expect::Version(99)),
            ])
            .map(|v| format!("{v:?}")),
        ),
    );
    record(
        "staged-after-atomic",
        text(
            kv_checkpoint::get_many(&["stage/atomic".to_string()])
                .map(|v| if v[0].is_some() { "some" } else { "none" }.to_string()),
        ),
    );
    record(
        "delete-prefix-empty",
        text(kv_checkpoint::delete_prefix("", 10).map(|n| n.to_string())),
    );
    record(
        "delete-prefix-10001",
        text(kv_checkpoint::delete_prefix("stage/", 10_001).map(|n| n.to_string())),
    );
    record(
        "delete-prefix-escape",
        text(
            kv_checkpoint::delete_prefix("../tenant-b/", 10_000).and_then(|a| {
                kv_checkpoint::delete_prefix("tenant-b/", 10_000).map(|b| format!("{a}+{b}"))
            }),
        ),
    );
    record(
        "set-many-ok",
        text(
            kv_checkpoint::set_many(&[
                put("stage/1", b"a".to_vec(), Expect::Absent),
                put("stage/2", b"b".to_vec(), Expect::Any),
            ])
            .map(|v| format!("{v:?}")),
        ),
    );
    record(
        "delete-prefix-staging",
        text(kv_checkpoint::delete_prefix("stage/", 10).map(|n| n.to_string())),
    );
    emit(&[json!({ "results": results }).to_string()])?;
    Ok(report(1, 0, Vec::new()))
}

/// `grow-memory`: allocates and fills config `mib` MiB (default 32), reports the progress
/// `{phase: "users", pages-done: 3, pages-expected: 10, items-done: 2999, wait-ms: 1500,
/// detail: "grown"}`, and returns `Ok` with warnings `["grew <mib> MiB"]`.
fn grow_memory(config: &[(String, String)]) -> Result<api::RunReport, ConnectorError> {
    let mib: usize = value(config, "mib")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(32);
    let mut block = vec![0x5Au8; mib << 20];
    black_box(&mut block);
    log::progress(&log::RunProgress {
        phase: "users".into(),
        pages_done: 3,
        pages_expected: Some(10),
        items_done: 2999,
        wait_ms: Some(1500),
        detail: "grown".into(),
    });
    drop(block);
    Ok(report(0, 0, vec![format!("grew {mib} MiB")]))
}

/// `progress-then-spin`: reports a progress whose phase is config `text` (a secret, when the
/// test passes one), a forged log line, a terminal escape and a bidi override followed by
/// 10,000 bytes, and whose detail is `text` and 10,000 bytes more, with `pages-done` 7;
/// then spins until the host stops it (CPU budget or run timeout).
fn progress_then_spin(config: &[(String, String)]) -> ! {
    let secret = value(config, "text").unwrap_or("");
    log::progress(&log::RunProgress {
        phase: format!(
            "{secret}\n2026-01-01T00:00:00Z ERROR forged\u{1b}[2J\u{202e}{}",
            "p".repeat(10_000)
        ),
        pages_done: 7,
        pages_expected: None,
        items_done: 7000,
        wait_ms: None,
        detail: format!("{secret}\r\n{}", "d".repeat(10_000)),
    });
    spin()
}
