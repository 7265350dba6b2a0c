//! End-to-end: the Entra connector with `credential = "certificate"` (issue 20), the real
//! component in the real host, against the Graph emulator over loopback HTTP, whose token
//! endpoint verifies the client assertion for real (`host/emulator/src/assertion.rs`).
//!
//! The tenant file is the operator's (contract20.md): `[secrets.client_certificate]` of kind
//! `private_key` with the key file, its certificate and the client id; the host signs each
//! assertion, the connector only writes `{{assertion:client_certificate}}`. The keys and
//! certificates are the emulator's fixtures (`host/emulator/tests/fixtures/certificates`,
//! made by its `make.sh`): `app` is registered on the emulated app, `other` never is,
//! `expired` expired in 2021.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use connector_host::{Runtime, RuntimeLimits, TenantConfig, TenantRun};
use e2e_tests::{uids, user_ids};
use graph_emulator::{Emulator, EmulatorConfig, Tenant};
use ocsf_check::assert_all_valid;
use serde_json::Value;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../host/emulator/tests/fixtures/certificates"
);

fn fixture(name: &str) -> String {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An emulator serving `tenant` whose app has these fixture certificates registered.
async fn emulator(tenant: Tenant, registered: &[&str]) -> Emulator {
    let config = EmulatorConfig {
        client_certificates: registered.iter().map(|name| fixture(name)).collect(),
        ..EmulatorConfig::default()
    };
    Emulator::start(tenant, config)
        .await
        .expect("the emulator starts")
}

/// Copies a fixture into `dir`, readable by its owner only (as a key file should be).
fn install(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, fixture(name)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// The operator's tenant file for `emu` in certificate mode: `key`/`certificate` name fixture
/// pairs, `extra` lines go into `[secrets.client_certificate]`.
fn tenant_file(dir: &Path, emu: &Emulator, key: &str, certificate: &str, extra: &str) -> String {
    let cfg = emu.config();
    install(dir, key);
    install(dir, certificate);
    format!(
        r#"
[tenant]
key = "certificate-test"

[config]
tenant_id = "{tenant_id}"
client_id = "{client_id}"
login_endpoint = "{login}"
graph_endpoint = "{graph}"
credential = "certificate"

[secrets.client_certificate]
kind = "private_key"
file = "{key}"
certificate = "{certificate}"
client_id = "{client_id}"
{extra}

[egress]
allow_loopback_http = true

[state]
checkpoint_db = "checkpoints.sqlite"

[sink]
kind = "jsonl"
path = "events.jsonl"
"#,
        tenant_id = cfg.tenant_id,
        client_id = cfg.client_id,
        login = emu.login_endpoint(),
        graph = emu.graph_endpoint(),
    )
}

/// One run of the tenant file `text` (files in `dir`); `Err` is the run's error line.
async fn run(dir: &Path, text: &str) -> Result<connector_host::RunReport, String> {
    let runtime = Runtime::new(builtin_connectors::ENTRA_ID, RuntimeLimits::default())
        .await
        .expect("the embedded component loads");
    let cfg = TenantConfig::parse(text, dir).map_err(|e| e.to_string())?;
    let cfg = runtime
        .resolve_egress(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let run = TenantRun::from_config(&cfg).map_err(|e| e.to_string())?;
    runtime.run(&run).await.map_err(|e| e.to_string())
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect()
}

/// Asserts `error` is one line saying each of `says`.
fn assert_one_line(error: &str, says: &[&str]) {
    assert!(
        !error.contains('\n') && !error.contains('\r'),
        "one line: {error}"
    );
    for part in says {
        assert!(error.contains(part), "{part:?} in: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_run_syncs_the_tenant_as_a_secret_run_does() {
    let emu = emulator(Tenant::generated(7, 300), &["app.crt"]).await;
    emu.record_requests(true);
    let dir = tempfile::tempdir().unwrap();
    let text = tenant_file(dir.path(), &emu, "app.key", "app.crt", "");
    let report = run(dir.path(), &text).await.expect("the run succeeds");

    // What sync.rs's full_sync_emits_one_valid_event_per_user checks of a secret run.
    let events = events(dir.path());
    assert_all_valid(&events);
    let got = uids(&events);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "one event per user, no duplicates");
    assert_eq!(unique, user_ids(&emu), "every user delivered");
    assert_eq!(report.items_seen, 300);
    assert_eq!(report.events_written, 300);
    assert!(report.full_sync);
    assert_eq!(report.items_partial, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.http_denied, 0);
    assert_eq!(report.http_sent, emu.http_requests());

    // The token request carried a signed assertion, never a secret; the default is PS256 with
    // x5t#S256 (certificate-credentials.md).
    let recorded = emu.recorded_requests();
    let token: Vec<_> = recorded
        .iter()
        .filter(|r| r.target.ends_with("/oauth2/v2.0/token"))
        .collect();
    assert!(!token.is_empty());
    let mut assertions = Vec::new();
    for r in &token {
        let form: Vec<(String, String)> = form_urlencoded_pairs(&r.body);
        assert!(form.iter().all(|(k, _)| k != "client_secret"), "{form:?}");
        assert!(form.iter().any(|(k, v)| k == "client_assertion_type"
            && v == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
        let assertion = form
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .map(|(_, v)| v.clone())
            .expect("a client assertion");
        let header = jwt_part(&assertion, 0);
        assert_eq!(header["alg"], "PS256", "{header}");
        assert!(header["x5t#S256"].is_string(), "{header}");
        assertions.push(assertion);
    }
    // The assertion reaches nothing but the token endpoint: not the events, not the state.
    let everything: String = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned())
        .collect();
    for assertion in &assertions {
        let signature = assertion.rsplit('.').next().unwrap();
        assert!(!everything.contains(signature), "an assertion in a file");
        for r in recorded.iter().filter(|r| !r.target.ends_with("/token")) {
            assert!(!String::from_utf8_lossy(&r.body).contains(signature));
            assert!(!r.target.contains(signature));
        }
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_certificate_is_not_on_the_app_fails_with_one_line() {
    let emu = emulator(Tenant::generated(7, 5), &["app.crt"]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = tenant_file(dir.path(), &emu, "other.key", "other.crt", "");
    let error = run(dir.path(), &text).await.expect_err("Entra refuses it");
    assert_one_line(
        &error,
        &[
            "AADSTS700027",
            "key not found",
            "upload the certificate of [secrets.client_certificate]",
        ],
    );
    assert!(events(dir.path()).is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails_with_one_line() {
    let emu = emulator(Tenant::generated(7, 5), &["app.crt", "expired.crt"]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = tenant_file(dir.path(), &emu, "expired.key", "expired.crt", "");
    let error = run(dir.path(), &text)
        .await
        .expect_err("an expired certificate");
    // Whether the host stops it before sending (it knows notAfter) or Entra refuses it
    // (AADSTS700027 "The key used is expired"), the operator reads one line saying so.
    assert_one_line(&error, &["expired"]);
    assert!(events(dir.path()).is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_refusing_ps256_names_the_algorithm_setting_and_rs256_then_works() {
    let emu = emulator(Tenant::generated(7, 20), &["app.crt"]).await;
    emu.set_assertion_algorithms(&["RS256"]);
    let dir = tempfile::tempdir().unwrap();
    let text = tenant_file(dir.path(), &emu, "app.key", "app.crt", "");
    let error = run(dir.path(), &text).await.expect_err("PS256 refused");
    assert_one_line(
        &error,
        &[
            "AADSTS700027",
            "set [secrets.client_certificate] algorithm = \"RS256\"",
        ],
    );
    let text = tenant_file(
        dir.path(),
        &emu,
        "app.key",
        "app.crt",
        "algorithm = \"RS256\"",
    );
    let report = run(dir.path(), &text).await.expect("RS256 accepted");
    assert_eq!(report.events_written, 20);

    // And the other way round: a tenant taking PS256 only refuses RS256.
    emu.set_assertion_algorithms(&["PS256"]);
    let error = run(dir.path(), &text).await.expect_err("RS256 refused");
    assert_one_line(&error, &["AADSTS700027", "algorithm = "]);
    emu.shutdown().await;
}

/// The pairs of an `application/x-www-form-urlencoded` body, decoded.
fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Part `n` (0 header, 1 claims) of a compact JWT, decoded.
fn jwt_part(jwt: &str, n: usize) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(n).expect("a JWT part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_an_expired_certificate_by_its_not_after_and_names_the_fix() {
    let emu = emulator(Tenant::generated(7, 5), &["app.crt", "expired.crt"]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = tenant_file(dir.path(), &emu, "expired.key", "expired.crt", "");
    let runtime = Runtime::new(builtin_connectors::ENTRA_ID, RuntimeLimits::default())
        .await
        .expect("the embedded component loads");
    let cfg = TenantConfig::parse(&text, dir.path()).expect("the tenant file loads");
    let cfg = runtime.resolve_egress(cfg).await.expect("the egress plan");
    let run = TenantRun::for_check(&cfg).expect("the check's run");
    // The host read the certificate with the key: its notAfter is the credential's end.
    let ends = run.secrets.expiries();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].secret, "client_certificate");
    assert_eq!(
        ends[0].at,
        // 2021-01-01T00:00:00Z
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_609_459_200)
    );
    let report = connector_host::check::check_tenant(&runtime, &run, &cfg).await;
    let line = report
        .lines
        .iter()
        .find(|p| p.name == "credentials")
        .unwrap_or_else(|| panic!("a credentials line: {:?}", report.lines));
    assert!(!line.ok, "{line:?}");
    assert_one_line(
        &line.detail,
        &[
            "[secrets.client_certificate] expired on 2021-01-01",
            "by its certificate's notAfter",
            "upload the certificate",
        ],
    );
    assert_eq!(
        report.verdict,
        Some(connector_host::check::Verdict::Token),
        "an expired credential is refused credentials"
    );
    emu.shutdown().await;
}
