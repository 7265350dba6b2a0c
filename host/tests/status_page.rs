//! The `/status` page of a real `serve`, in a real headless browser: Debian's Chromium
//! (`scripts/test-browser` installs it; README command 2 and `.ci/run` call that script).
//!
//! `serve` runs two tenants: a simulated one that succeeds, and one whose login endpoint —
//! a hostile server on 127.0.0.1 — answers with an error description holding HTML and a
//! script. Chromium loads the page: `--dump-dom` shows the rows, the outcomes and the hostile
//! text as text, and no script element; `--screenshot` is decoded and must show the failed
//! tenant's red badge on a page that is not blank. The screenshot is kept in
//! `target/test-output/status.png` (the path is printed) for a person to look at. A page
//! rendered for a hostile tenant key (which a tenants file refuses, but a platform's data
//! could hold) is loaded from a file the same way.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connector-host");
const CHROMIUM: &str = "/usr/bin/chromium";

/// What the hostile login endpoint puts in its error description.
const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";
/// A tenant key that would be markup, were it not escaped.
const HOSTILE_KEY: &str = "<script>alert('key')</script>";
/// The failed badge's colour (status/render.rs: #d32f2f).
const RED: (u8, u8, u8) = (0xd3, 0x2f, 0x2f);

/// `target/test-output`, made if missing.
fn output_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .to_path_buf();
    let dir = target.join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Chromium, or a failure naming the script that installs it (CI runs it: no skip).
fn chromium() -> &'static str {
    let ok = Command::new(CHROMIUM)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{CHROMIUM} is missing: run `bash scripts/test-browser` (as root) to install Debian's chromium"
    );
    CHROMIUM
}

/// Runs headless Chromium with `args` (a fresh profile, no background networking: the
/// machine's network is closed), at most 60 s; returns its stdout.
fn browse(args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} exited {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// A login endpoint that refuses every token request with an OAuth error whose description
/// holds HTML (as a compromised or hostile upstream might).
fn hostile_login() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The headers, then the body its length announces.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = serde_json::json!({
                    "error": "invalid_client",
                    "error_description": format!("AADSTS7000215: {HOSTILE} & more"),
                })
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// Sends SIGTERM to the serve process on drop (and waits for it), whatever the test did.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pixels of `png` close to `rgb`, and pixels that are not near-white.
fn count_pixels(png: &Path, rgb: (u8, u8, u8)) -> (usize, usize, u32, u32) {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "a colour screenshot: {:?}", info.color_type);
    let near = |a: u8, b: u8| a.abs_diff(b) <= 12;
    let (mut matching, mut ink) = (0, 0);
    for px in buf[..info.buffer_size()].chunks_exact(channels) {
        let (r, g, b) = (px[0], px[1], px[2]);
        if near(r, rgb.0) && near(g, rgb.1) && near(b, rgb.2) {
            matching += 1;
        }
        if r < 230 || g < 230 || b < 230 {
            ink += 1;
        }
    }
    (matching, ink, info.width, info.height)
}

#[test]
fn browser_status_page_of_a_real_serve_shows_outcomes_escapes_hostile_text_and_a_red_badge() {
    chromium();
    let out = output_dir();
    let dir = tempfile::tempdir().unwrap();
    let login = hostile_login();
    std::fs::write(
        dir.path().join("hostile.toml"),
        format!(
            r#"[tenant]
key = "hostile-upstream"

[config]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
login_endpoint = "http://127.0.0.1:{login}"
graph_endpoint = "http://127.0.0.1:{login}"

[secrets.client_secret]
env = "STATUS_PAGE_SECRET"

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "hostile/checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "hostile/events.jsonl"
"#
        ),
    )
    .unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        "include = [\"hostile.toml\"]\n[serve]\nlisten = \"127.0.0.1:0\"\n\
         [schedule]\ninterval_secs = 3600\njitter_secs = 0\nbackoff_initial_secs = 3600\n\
         [simulation]\ntenants = 1\nusers_per_tenant = 10\nseed = 7\n\
         checkpoint_db = \"sim/checkpoints.sqlite\"\nevents_dir = \"sim/events\"\n",
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let serve = Serve(
        Command::new(BIN)
            .args(["serve", "--tenants"])
            .arg(&tenants)
            .env(
                "STATUS_PAGE_SECRET",
                "Xq48Q~Vd3.kLp0_aZ9rT-uW2yB7nC1mE5gH6jS8f",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // The address from the start line, then the page once both tenants have run.
    let started = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("status http://") {
            let rest = &text[at + "status ".len()..];
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "serve did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let page = loop {
        let page = http::get(&url);
        if page.contains("badge succeeded") && page.contains("badge failed") {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "both tenants did not run: {page}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!page.contains(HOSTILE), "served unescaped: {page}");

    // What the browser made of it.
    let dom = browse(&["--dump-dom".into(), url.clone()]);
    assert!(dom.contains("<td>sim-0000</td>"), "{dom}");
    assert!(dom.contains("<td>hostile-upstream</td>"), "{dom}");
    assert!(
        dom.contains("<span class=\"badge succeeded\">succeeded</span>"),
        "{dom}"
    );
    assert!(
        dom.contains("<span class=\"badge failed\">failed</span>"),
        "{dom}"
    );
    assert!(
        dom.contains("AADSTS7000215: &lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; more"),
        "the hostile description is text: {dom}"
    );
    assert!(
        !dom.to_lowercase().contains("<script"),
        "no script element: {dom}"
    );
    assert!(!dom.contains("<img"), "no image element: {dom}");
    let png = out.join("status.png");
    let _ = std::fs::remove_file(&png);
    browse(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1600,500".into(),
        url.clone(),
    ]);
    println!("status page screenshot: {}", png.display());
    let (red, ink, width, height) = count_pixels(&png, RED);
    assert_eq!((width, height), (1600, 500));
    assert!(
        red >= 300,
        "the failed tenant's red badge is on the screenshot: {red} red pixels"
    );
    assert!(
        ink >= 5_000,
        "the page is not blank: {ink} non-white pixels"
    );
    drop(serve);

    // A hostile tenant key, rendered by the page's own code and loaded from a file.
    let view = |tenant: &str| connector_host::status::TenantView {
        tenant: tenant.into(),
        record: None,
        next_due_ms: None,
        lease: None,
        running: false,
        unreadable: None,
    };
    let html = connector_host::status::render::html(
        &[view(HOSTILE_KEY), view("contoso")],
        std::time::SystemTime::now(),
    );
    let file = out.join("status-hostile-key.html");
    std::fs::write(&file, html).unwrap();
    let dom = browse(&["--dump-dom".into(), format!("file://{}", file.display())]);
    assert!(
        dom.contains("<td>&lt;script&gt;alert('key')&lt;/script&gt;</td>"),
        "the key is shown as text: {dom}"
    );
    assert!(
        !dom.to_lowercase().contains("<script"),
        "no script element: {dom}"
    );
    assert!(dom.contains("<td>contoso</td>"), "{dom}");
}

mod http {
    /// GETs `url` (plain HTTP on loopback) and returns the body, or the error as text.
    pub fn get(url: &str) -> String {
        let url = url.to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            match reqwest::get(&url).await {
                Ok(r) => r.text().await.unwrap_or_else(|e| e.to_string()),
                Err(e) => e.to_string(),
            }
        })
    }
}
