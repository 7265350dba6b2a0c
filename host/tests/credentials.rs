//! Host-held credentials (issue 20), through the real `HttpDoor` against a local verifying
//! server on 127.0.0.1: client assertions signed by the host (checked with `jsonwebtoken`
//! against the key's public half and the certificate's thumbprints), header tokens
//! (`Authorization: SSWS …`) for their origin only, DPoP proofs with the `use_dpop_nonce`
//! retry, redaction of echoed assertions and proofs, the hostile placements that must never
//! be signed or filled, and the key files' handling (FIFO, directory, mode, owner,
//! encryption, a certificate of another key, an algorithm that does not fit).
//!
//! Test keys: `tests/fixtures/credentials/` (its README says how they were made).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use connector_host::assembly::connector_secrets;
use connector_host::config::SecretSpec;
use connector_host::doors::http::netguard::StaticResolver;
use connector_host::doors::http::{
    http_client, EgressPolicy, FetchFailure, FetchRequest, FetchResponse, HttpDoor, Origin,
    SecretSet,
};
use http_body_util::BodyExt;
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::Digest;

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const SSWS_TOKEN: &str = "00aBcD3fGh1JkLmN0pQrStUvWxYz-SSWS-9x";
const CLIENT_SECRET: &str = "Xq48Q~Vd3.kLp0_aZ9rT-uW2yB7nC1mE5gH6jS8f";
const AS_NONCE: &str = "as-nonce-4f1c";
const RS_NONCE: &str = "rs-nonce-77d2";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/credentials")
        .join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

/// A copy of a fixture in `dir`, mode 600 (git keeps no mode).
fn private_copy(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, read_fixture(name)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn der_of(pem_name: &str) -> Vec<u8> {
    pem::parse(read_fixture(pem_name)).unwrap().into_contents()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One request as the server received it.
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    /// Everything that reached the server, as text.
    fn raw(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} {}\n{}\n\n{}",
            self.method,
            self.target,
            headers.join("\n"),
            String::from_utf8_lossy(&self.body)
        )
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The verifying server's state.
#[derive(Default)]
struct State {
    origin: OnceLock<String>,
    log: Mutex<Vec<Recorded>>,
    seen_jti: Mutex<HashSet<String>>,
    /// Access token → the JWK thumbprint of the DPoP key it is bound to (RFC 9449 §6).
    bound: Mutex<HashMap<String, String>>,
    issued: Mutex<u64>,
}

impl State {
    fn requests(&self, path_prefix: &str) -> Vec<Recorded> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    fn origin(&self) -> &str {
        self.origin.get().unwrap()
    }

    fn fresh_jti(&self, jti: &str) -> Result<(), String> {
        uuid::Uuid::parse_str(jti).map_err(|_| format!("jti {jti} is not a UUID"))?;
        if !self.seen_jti.lock().unwrap().insert(jti.to_string()) {
            return Err(format!("jti {jti} was used before"));
        }
        Ok(())
    }

    /// Verifies a client assertion for `aud`: signature with the public key of the fixture
    /// of its algorithm, claims, thumbprints. The claims on success.
    fn verify_assertion(&self, jwt: &str, aud: &str) -> Result<Value, String> {
        let header = decode_header(jwt).map_err(|e| e.to_string())?;
        if header.typ.as_deref() != Some("JWT") {
            return Err(format!("typ {:?}", header.typ));
        }
        let (key, cert) = match header.alg {
            Algorithm::ES256 => (
                DecodingKey::from_ec_pem(&read_fixture("p256.pub")),
                "p256.crt",
            ),
            Algorithm::ES384 => (
                DecodingKey::from_ec_pem(&read_fixture("p384.pub")),
                "p384.crt",
            ),
            _ => (
                DecodingKey::from_rsa_pem(&read_fixture("rsa.pub")),
                "rsa.crt",
            ),
        };
        let key = key.map_err(|e| e.to_string())?;
        let der = der_of(cert);
        if let Some(t) = &header.x5t_s256 {
            if *t != b64(&sha2::Sha256::digest(&der)) {
                return Err("x5t#S256 is not the certificate's".into());
            }
        }
        if let Some(t) = &header.x5t {
            if *t != b64(&sha1::Sha1::digest(&der)) {
                return Err("x5t is not the certificate's".into());
            }
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[aud]);
        validation.set_issuer(&[CLIENT_ID]);
        validation.sub = Some(CLIENT_ID.into());
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        let claims = decode::<Value>(jwt, &key, &validation)
            .map_err(|e| format!("assertion: {e}"))?
            .claims;
        let (iat, exp, nbf) = (
            claims["iat"].as_u64(),
            claims["exp"].as_u64(),
            claims["nbf"].as_u64(),
        );
        if iat.is_none() || iat != nbf || exp.zip(iat).map(|(e, i)| e - i) != Some(300) {
            return Err(format!("iat/nbf/exp: {claims}"));
        }
        self.fresh_jti(claims["jti"].as_str().unwrap_or(""))?;
        Ok(claims)
    }

    /// Verifies a DPoP proof (RFC 9449 §4.3) for `htm` `htu`; `ath` the token's hash when
    /// bound to one. The proof's header, claims and JWK thumbprint on success.
    fn verify_proof(
        &self,
        proof: &str,
        htm: &str,
        htu: &str,
        token: Option<&str>,
    ) -> Result<(jsonwebtoken::Header, Value, String), String> {
        let header = decode_header(proof).map_err(|e| e.to_string())?;
        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err(format!("typ {:?}", header.typ));
        }
        let jwk = header.jwk.clone().ok_or("no jwk")?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
        let claims = decode::<Value>(proof, &key, &validation)
            .map_err(|e| format!("proof: {e}"))?
            .claims;
        if claims["htm"] != htm || claims["htu"] != htu {
            return Err(format!("htm/htu: {claims}"));
        }
        let now = jsonwebtoken::get_current_timestamp();
        let iat = claims["iat"].as_u64().ok_or("no iat")?;
        if iat.abs_diff(now) > 60 {
            return Err("iat is not now".into());
        }
        self.fresh_jti(claims["jti"].as_str().unwrap_or(""))?;
        let ath = token.map(|t| b64(&sha2::Sha256::digest(t.as_bytes())));
        if claims.get("ath").and_then(Value::as_str) != ath.as_deref() {
            return Err(format!("ath: {claims}"));
        }
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| e.to_string())?;
        Ok((header, claims, jkt))
    }
}

type Reply = hyper::Response<http_body_util::Full<bytes::Bytes>>;

fn reply(status: u16, headers: &[(&str, &str)], body: Value) -> Reply {
    let mut r = hyper::Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap()
}

/// The server's answers, by path:
/// - `/oauth2/v1/token`: a token endpoint verifying the client assertion;
/// - `/dpop/oauth2/v1/token`: the same, requiring a DPoP proof with its nonce (§8);
/// - `/dpop/api/…`: a resource server requiring `Authorization: DPoP` and a proof with `ath`,
///   the nonce (§9) and the key the token is bound to;
/// - `/ssws/…`: requires `Authorization: SSWS <token>`;
/// - `/echo/…`: answers 400 quoting the body and every header (a careless token endpoint);
/// - anything else: 200.
async fn handle(state: Arc<State>, req: hyper::Request<hyper::body::Incoming>) -> Reply {
    let method = req.method().as_str().to_string();
    let target = req.uri().to_string();
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    let rec = Recorded {
        method,
        target,
        headers,
        body,
    };
    state.log.lock().unwrap().push(rec.clone());
    let url = format!("{}{path}", state.origin());
    let form: BTreeMap<String, String> = form_urlencoded::parse(&rec.body).into_owned().collect();
    let fail = |status: u16, why: String| {
        reply(
            status,
            &[],
            json!({"error": "invalid_client", "error_description": why}),
        )
    };
    if path.starts_with("/echo/") {
        return reply(
            400,
            &[],
            json!({"error": "invalid_request", "error_description": rec.raw()}),
        );
    }
    if path == "/oauth2/v1/token" || path == "/dpop/oauth2/v1/token" {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return fail(400, "client_assertion_type".into());
        }
        let mut jkt = None;
        if path.starts_with("/dpop/") {
            let Some(proof) = rec.header("dpop") else {
                return reply(
                    400,
                    &[],
                    json!({"error": "invalid_dpop_proof", "error_description": "The DPoP proof JWT header is missing."}),
                );
            };
            let (_, claims, thumb) = match state.verify_proof(proof, "POST", &url, None) {
                Ok(ok) => ok,
                Err(why) => {
                    return reply(
                        400,
                        &[],
                        json!({"error": "invalid_dpop_proof", "error_description": why}),
                    )
                }
            };
            if claims.get("nonce").and_then(Value::as_str) != Some(AS_NONCE) {
                return reply(
                    400,
                    &[("DPoP-Nonce", AS_NONCE)],
                    json!({"error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof."}),
                );
            }
            jkt = Some(thumb);
        }
        let assertion = form.get("client_assertion").cloned().unwrap_or_default();
        if let Err(why) = state.verify_assertion(&assertion, &url) {
            return fail(401, why);
        }
        let token = {
            let mut n = state.issued.lock().unwrap();
            *n += 1;
            format!("at-{n}-0123456789abcdef")
        };
        let kind = match jkt {
            Some(jkt) => {
                state.bound.lock().unwrap().insert(token.clone(), jkt);
                "DPoP"
            }
            None => "Bearer",
        };
        return reply(
            200,
            &[],
            json!({"access_token": token, "token_type": kind, "expires_in": 3600}),
        );
    }
    if path.starts_with("/dpop/api/") {
        let Some(token) = rec
            .header("authorization")
            .and_then(|a| a.strip_prefix("DPoP "))
        else {
            return reply(
                401,
                &[("WWW-Authenticate", "DPoP algs=\"ES256\"")],
                json!({}),
            );
        };
        let Some(proof) = rec.header("dpop") else {
            return reply(
                401,
                &[("WWW-Authenticate", "DPoP error=\"invalid_dpop_proof\"")],
                json!({}),
            );
        };
        let htu = url.clone();
        let (_, claims, jkt) = match state.verify_proof(proof, &rec.method, &htu, Some(token)) {
            Ok(ok) => ok,
            Err(why) => {
                return reply(
                    401,
                    &[],
                    json!({"error": "invalid_dpop_proof", "error_description": why}),
                )
            }
        };
        if state.bound.lock().unwrap().get(token) != Some(&jkt) {
            return reply(
                401,
                &[],
                json!({"error": "invalid_token", "error_description": "the proof's key is not the token's"}),
            );
        }
        if claims.get("nonce").and_then(Value::as_str) != Some(RS_NONCE) {
            return reply(
                401,
                &[
                    ("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\", error_description=\"Resource server requires nonce in DPoP proof\""),
                    ("DPoP-Nonce", RS_NONCE),
                ],
                json!({}),
            );
        }
        return reply(200, &[], json!({"value": [{"id": "u1"}]}));
    }
    if path.starts_with("/ssws/") {
        let expected = format!("SSWS {SSWS_TOKEN}");
        return match rec.header("authorization") {
            Some(a) if a == expected => reply(200, &[], json!({"ok": true, "you_sent": a})),
            other => reply(
                401,
                &[],
                json!({"errorCode": "E0000011", "you_sent": other}),
            ),
        };
    }
    reply(200, &[], json!({"ok": true}))
}

struct Server {
    state: Arc<State>,
    origin: Origin,
}

/// The shared runtime.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A verifying server on 127.0.0.1 (one per test: its log and jti set are the test's).
fn server() -> Server {
    let listener = rt()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let state = Arc::new(State::default());
    state.origin.set(format!("http://{addr}")).unwrap();
    let shared = state.clone();
    rt().spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        origin: Origin::parse(&format!("http://{addr}")).unwrap(),
        state,
    }
}

fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            http_client(Duration::from_secs(10), Arc::new(StaticResolver::default())).unwrap()
        })
        .clone()
}

fn door(secrets: SecretSet, allow: &[&Origin]) -> HttpDoor {
    let mut policy = EgressPolicy::new(allow.iter().map(|o| (*o).clone()).collect());
    policy.allow_loopback_http = true;
    HttpDoor::new(client(), policy, Arc::new(secrets), "contoso".into())
}

/// `[secrets.NAME]` of kind private_key for the key fixture `key` (copied, mode 600).
fn key_spec(dir: &Path, key: &str, cert: Option<&str>, hosts: &[&Origin]) -> SecretSpec {
    SecretSpec {
        file: Some(private_copy(dir, key)),
        hosts: hosts.iter().map(|o| o.to_string()).collect(),
        kind: Some("private_key".into()),
        certificate: cert.map(fixture),
        client_id: Some(CLIENT_ID.into()),
        ..Default::default()
    }
}

fn env_spec(var: &str, value: &str, hosts: &[&Origin]) -> SecretSpec {
    // SAFETY of set_var: the variables are unique to this test binary and set before use.
    unsafe { std::env::set_var(var, value) };
    SecretSpec {
        env: Some(var.into()),
        hosts: hosts.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    }
}

fn secrets(specs: Vec<(&str, SecretSpec)>) -> SecretSet {
    connector_secrets(&specs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).unwrap()
}

fn form_post(url: String, body: &str) -> FetchRequest {
    FetchRequest {
        method: "POST".into(),
        url,
        headers: vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: Some(body.as_bytes().to_vec()),
    }
}

fn token_body(name: &str) -> String {
    format!("grant_type=client_credentials&scope=x&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={{{{assertion:{name}}}}}")
}

fn fetch(door: &HttpDoor, req: FetchRequest) -> Result<FetchResponse, FetchFailure> {
    rt().block_on(door.fetch(req))
}

fn json_of(r: &FetchResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

#[test]
fn the_assertion_is_signed_by_the_host_for_its_url_and_verifies() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let door = door(
        secrets(vec![(
            "client_certificate",
            key_spec(dir.path(), "rsa.key", Some("rsa.crt"), &[&s.origin]),
        )]),
        &[&s.origin],
    );
    // The query is not part of the audience.
    let url = format!("{}/oauth2/v1/token?api-version=2", s.origin);
    for _ in 0..2 {
        let r = fetch(
            &door,
            form_post(url.clone(), &token_body("client_certificate")),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(json_of(&r)["token_type"], "Bearer");
    }
    let sent = s.state.requests("/oauth2/v1/token");
    assert_eq!(sent.len(), 2);
    let assertion = |r: &Recorded| {
        form_urlencoded::parse(&r.body)
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1
            .into_owned()
    };
    let (a, b) = (assertion(&sent[0]), assertion(&sent[1]));
    let header = decode_header(&a).unwrap();
    // PS256 by default for RSA, with x5t#S256 and no SHA-1 x5t (Microsoft's current form).
    assert_eq!(header.alg, Algorithm::PS256);
    assert_eq!(
        header.x5t_s256.as_deref(),
        Some(b64(&sha2::Sha256::digest(der_of("rsa.crt")))).as_deref()
    );
    assert_eq!(header.x5t, None);
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(a.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["aud"], format!("{}/oauth2/v1/token", s.origin));
    assert_eq!(payload["iss"], CLIENT_ID);
    assert_eq!(payload["sub"], CLIENT_ID);
    assert_ne!(a, b, "each request gets its own assertion");
    // The rest of the form is as the guest wrote it.
    assert!(String::from_utf8_lossy(&sent[0].body)
        .starts_with("grant_type=client_credentials&scope=x&client_assertion_type=urn%3Aietf"));
}

#[test]
fn rs256_adds_the_sha1_x5t_and_ec_keys_sign_es256_and_es384() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let mut rs = key_spec(dir.path(), "rsa-pkcs1.key", Some("rsa.crt"), &[&s.origin]);
    rs.algorithm = Some("RS256".into());
    rs.kid = Some("key-2026".into());
    let sec1 = key_spec(dir.path(), "p256-sec1.key", Some("p256.crt"), &[&s.origin]);
    let p256 = key_spec(dir.path(), "p256.key", None, &[&s.origin]);
    let p384 = key_spec(dir.path(), "p384.key", Some("p384.crt"), &[&s.origin]);
    let door = door(
        secrets(vec![
            ("rs", rs),
            ("sec1", sec1),
            ("p256", p256),
            ("p384", p384),
        ]),
        &[&s.origin],
    );
    let url = format!("{}/oauth2/v1/token", s.origin);
    for (name, alg, x5t, kid) in [
        ("rs", Algorithm::RS256, true, Some("key-2026")),
        ("sec1", Algorithm::ES256, false, None),
        ("p256", Algorithm::ES256, false, None),
        ("p384", Algorithm::ES384, false, None),
    ] {
        let r = fetch(&door, form_post(url.clone(), &token_body(name))).unwrap();
        assert_eq!(
            r.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let last = s.state.requests("/oauth2/v1/token").pop().unwrap();
        let jwt = form_urlencoded::parse(&last.body)
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1
            .into_owned();
        let h = decode_header(&jwt).unwrap();
        assert_eq!(h.alg, alg, "{name}");
        assert_eq!(h.x5t.is_some(), x5t, "{name}");
        assert_eq!(h.kid.as_deref(), kid, "{name}");
        assert_eq!(
            h.x5t_s256.is_some(),
            name != "p256",
            "{name}: x5t#S256 with a certificate only"
        );
    }
}

/// The default algorithm follows the connector the key signs for: an RSA key signs RS256
/// for the Okta connector (Okta verifies no PS* `private_key_jwt`), PS256 for any other; an
/// EC key keeps ES256; an explicit `algorithm` wins. Signed through the real door and
/// checked against the key's public half.
#[test]
fn an_rsa_keys_default_algorithm_is_rs256_for_okta_ps256_otherwise_and_an_explicit_one_wins() {
    use connector_host::assembly::connector_secrets_for;
    use connector_host::credentials::{default_algorithm, KeyType};
    assert_eq!(
        default_algorithm(KeyType::Rsa, Some("okta-users")),
        Algorithm::RS256
    );
    assert_eq!(
        default_algorithm(KeyType::Rsa, Some("entra-id-users")),
        Algorithm::PS256
    );
    assert_eq!(default_algorithm(KeyType::Rsa, None), Algorithm::PS256);
    assert_eq!(
        default_algorithm(KeyType::P256, Some("okta-users")),
        Algorithm::ES256
    );
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/oauth2/v1/token", s.origin);
    let mut explicit = key_spec(dir.path(), "rsa.key", None, &[&s.origin]);
    explicit.algorithm = Some("RS512".into());
    for (connector, name, spec, alg) in [
        (
            Some("okta-users"),
            "rsa",
            key_spec(dir.path(), "rsa.key", None, &[&s.origin]),
            Algorithm::RS256,
        ),
        (
            Some("entra-id-users"),
            "rsa",
            key_spec(dir.path(), "rsa.key", None, &[&s.origin]),
            Algorithm::PS256,
        ),
        (
            None,
            "rsa",
            key_spec(dir.path(), "rsa.key", None, &[&s.origin]),
            Algorithm::PS256,
        ),
        (Some("okta-users"), "rsa", explicit, Algorithm::RS512),
        (
            Some("okta-users"),
            "ec",
            key_spec(dir.path(), "p256.key", None, &[&s.origin]),
            Algorithm::ES256,
        ),
    ] {
        let specs = BTreeMap::from([(name.to_string(), spec)]);
        let set = connector_secrets_for(&specs, connector).unwrap();
        let door = door(set, &[&s.origin]);
        let r = fetch(&door, form_post(url.clone(), &token_body(name))).unwrap();
        assert_eq!(
            r.status,
            200,
            "{connector:?} {name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let last = s.state.requests("/oauth2/v1/token").pop().unwrap();
        let jwt = form_urlencoded::parse(&last.body)
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(
            decode_header(&jwt).unwrap().alg,
            alg,
            "{connector:?} {name}"
        );
    }
}

/// Whether a JWT (a base64url JSON header, `eyJ…`) is in `text`.
fn holds_jwt(text: &str) -> bool {
    text.contains("eyJ")
}

#[test]
fn hostile_assertion_placeholders_are_never_signed_and_other_origins_are_refused() {
    let s = server();
    let other = server();
    let dir = tempfile::tempdir().unwrap();
    let door = door(
        secrets(vec![
            (
                "cert",
                key_spec(dir.path(), "rsa.key", Some("rsa.crt"), &[&s.origin]),
            ),
            (
                "client_secret",
                env_spec("CREDENTIALS_TEST_VALUE_1", CLIENT_SECRET, &[&s.origin]),
            ),
        ]),
        &[&s.origin, &other.origin],
    );
    let p = "{{assertion:cert}}";
    let form = (
        "Content-Type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    );
    let json_type = ("Content-Type".to_string(), "application/json".to_string());
    let cases: Vec<(&str, FetchRequest)> = vec![
        ("in the URL", FetchRequest { method: "GET".into(), url: format!("{}/hostile/x?client_assertion={p}", s.origin), headers: vec![], body: None }),
        ("in a header", FetchRequest { method: "POST".into(), url: format!("{}/hostile/h", s.origin), headers: vec![form.clone(), ("X-Assertion".into(), p.into())], body: Some(b"a=b".to_vec()) }),
        ("in Authorization", FetchRequest { method: "GET".into(), url: format!("{}/hostile/auth", s.origin), headers: vec![("Authorization".into(), p.into())], body: None }),
        ("in a JSON body", FetchRequest { method: "POST".into(), url: format!("{}/hostile/json", s.origin), headers: vec![json_type.clone()], body: Some(format!(r#"{{"client_assertion":"{p}"}}"#).into_bytes()) }),
        ("in a $batch body", FetchRequest { method: "POST".into(), url: format!("{}/hostile/$batch", s.origin), headers: vec![json_type.clone()], body: Some(format!(r#"{{"requests":[{{"id":"1","method":"POST","url":"/token","headers":{{"Content-Type":"application/x-www-form-urlencoded"}},"body":"client_assertion={p}"}}]}}"#).into_bytes()) }),
        ("in a GET's form body", FetchRequest { method: "GET".into(), url: format!("{}/hostile/get", s.origin), headers: vec![form.clone()], body: Some(format!("client_assertion={p}").into_bytes()) }),
        ("in a PUT's form body", FetchRequest { method: "PUT".into(), url: format!("{}/hostile/put", s.origin), headers: vec![form.clone()], body: Some(format!("client_assertion={p}").into_bytes()) }),
        ("inside a longer value", form_post(format!("{}/hostile/longer", s.origin), &format!("client_assertion=x{p}&b={p}{p}"))),
        ("form-encoded", form_post(format!("{}/hostile/encoded", s.origin), "client_assertion=%7B%7Bassertion%3Acert%7D%7D")),
        ("as a field name", form_post(format!("{}/hostile/key", s.origin), &format!("{p}=x"))),
        ("as a secret placeholder", form_post(format!("{}/hostile/secret", s.origin), "client_assertion={{secret:cert}}")),
        ("a value secret in a header", FetchRequest { method: "GET".into(), url: format!("{}/hostile/value-header", s.origin), headers: vec![("Authorization".into(), "{{secret:client_secret}}".into())], body: None }),
    ];
    for (what, req) in cases {
        let r = fetch(&door, req).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(r.status, 200, "{what}");
    }
    let reached = s.state.requests("/hostile/");
    assert_eq!(reached.len(), 12);
    for r in &reached {
        let raw = r.raw();
        assert!(!holds_jwt(&raw), "a JWT was sent: {raw}");
        assert!(!raw.contains(CLIENT_SECRET), "a value was filled: {raw}");
        assert!(
            raw.contains("assertion") || raw.contains("secret:"),
            "the placeholder is sent as text: {raw}"
        );
    }
    // Aimed at another origin, an unknown name, a value secret's name: refused, nothing sent.
    let to_other = fetch(
        &door,
        form_post(
            format!("{}/oauth2/v1/token", other.origin),
            &token_body("cert"),
        ),
    );
    match to_other {
        Err(FetchFailure::Denied(why)) => assert_eq!(
            why,
            format!(
                "the assertion of secret 'cert' may not be sent to {}",
                other.origin
            )
        ),
        other => panic!("{other:?}"),
    }
    assert!(other.state.requests("/").is_empty());
    for (name, expected) in [
        (
            "nope",
            "the assertion placeholder 'nope' names no private_key secret of this tenant",
        ),
        (
            "client_secret",
            "the assertion placeholder 'client_secret' names no private_key secret of this tenant",
        ),
    ] {
        match fetch(
            &door,
            form_post(format!("{}/oauth2/v1/token", s.origin), &token_body(name)),
        ) {
            Err(FetchFailure::Denied(why)) => assert_eq!(why, expected),
            other => panic!("{other:?}"),
        }
    }
    assert!(s.state.requests("/oauth2/").is_empty());
}

#[test]
fn hostile_an_echoed_assertion_or_proof_reaches_the_guest_redacted() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = key_spec(dir.path(), "p256.key", Some("p256.crt"), &[&s.origin]);
    spec.dpop = Some(true);
    let door = door(secrets(vec![("cert", spec)]), &[&s.origin]);
    let r = fetch(
        &door,
        form_post(
            format!("{}/echo/oauth2/v1/token", s.origin),
            &token_body("cert"),
        ),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let sent = s.state.requests("/echo/").pop().unwrap();
    let proof = sent.header("dpop").unwrap().to_string();
    let assertion = form_urlencoded::parse(&sent.body)
        .find(|(k, _)| k == "client_assertion")
        .unwrap()
        .1
        .into_owned();
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        !body.contains(&assertion) && !body.contains(&proof),
        "{body}"
    );
    assert!(!holds_jwt(&body), "{body}");
    assert!(body.matches("[redacted]").count() >= 2, "{body}");
    assert!(
        body.contains("grant_type=client_credentials"),
        "the rest is kept: {body}"
    );
    assert_eq!(
        door.counters()
            .echoed_secret
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Later responses of the run are scrubbed of the run's assertions too.
    let later = FetchRequest {
        method: "POST".into(),
        url: format!("{}/echo/later", s.origin),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Some(format!("quoting {assertion}").into_bytes()),
    };
    let r = fetch(&door, later).unwrap();
    let body = String::from_utf8(r.body).unwrap();
    assert!(
        !body.contains(&assertion) && body.contains("quoting [redacted]"),
        "{body}"
    );
}

#[test]
fn a_header_token_goes_in_its_header_to_its_origin_only() {
    let s = server();
    let other = server();
    let okta = SecretSpec {
        header: Some("Authorization".into()),
        prefix: Some("SSWS".into()),
        ..env_spec("CREDENTIALS_TEST_SSWS", SSWS_TOKEN, &[&s.origin])
    };
    let plain = SecretSpec {
        header: Some("X-Api-Key".into()),
        ..env_spec("CREDENTIALS_TEST_PLAIN", CLIENT_SECRET, &[&s.origin])
    };
    let door = door(
        secrets(vec![("okta", okta), ("key", plain)]),
        &[&s.origin, &other.origin],
    );
    let get = |url: String, headers: Vec<(&str, &str)>| FetchRequest {
        method: "GET".into(),
        url,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: None,
    };
    // Filled in its header (any case of the name), with the prefix.
    for name in ["Authorization", "authorization"] {
        let r = fetch(
            &door,
            get(
                format!("{}/ssws/api/v1/users", s.origin),
                vec![(name, "{{secret:okta}}")],
            ),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        // The server quotes the header back: the guest gets it redacted.
        assert_eq!(json_of(&r)["you_sent"], "SSWS [redacted]");
    }
    let r = fetch(
        &door,
        get(
            format!("{}/plain", s.origin),
            vec![("x-api-key", "{{secret:key}}")],
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        s.state
            .requests("/plain")
            .pop()
            .unwrap()
            .header("x-api-key"),
        Some(CLIENT_SECRET)
    );
    // Anywhere else it is text: another header, inside a longer value, the URL, a form body.
    let r = fetch(
        &door,
        get(
            format!("{}/ssws/other-header?t={{{{secret:okta}}}}", s.origin),
            vec![
                ("X-Okta", "{{secret:okta}}"),
                ("Authorization", "SSWS {{secret:okta}}"),
            ],
        ),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let sent = s.state.requests("/ssws/other-header").pop().unwrap();
    assert_eq!(sent.header("x-okta"), Some("{{secret:okta}}"));
    assert_eq!(sent.header("authorization"), Some("SSWS {{secret:okta}}"));
    let r = fetch(
        &door,
        form_post(format!("{}/form", s.origin), "token={{secret:okta}}"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    for r in s.state.requests("/") {
        if !r.target.starts_with("/ssws/api") {
            assert!(!r.raw().contains(SSWS_TOKEN), "{}", r.raw());
        }
    }
    // To another origin: refused, naming the secret and the origin; nothing sent.
    match fetch(
        &door,
        get(
            format!("{}/ssws/api/v1/users", other.origin),
            vec![("Authorization", "{{secret:okta}}")],
        ),
    ) {
        Err(FetchFailure::Denied(why)) => assert_eq!(
            why,
            format!("the secret 'okta' may not be sent to {}", other.origin)
        ),
        other => panic!("{other:?}"),
    }
    assert!(other.state.requests("/").is_empty());
}

#[test]
fn dpop_proofs_bind_the_token_and_a_nonce_request_is_retried_once() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = key_spec(dir.path(), "rsa.key", Some("rsa.crt"), &[&s.origin]);
    spec.dpop = Some(true);
    spec.algorithm = Some("RS256".into());
    let door = door(secrets(vec![("okta_key", spec)]), &[&s.origin]);
    let url = format!("{}/dpop/oauth2/v1/token", s.origin);
    // The token request: answered use_dpop_nonce first (§8), retried once with the nonce.
    let r = fetch(&door, form_post(url, &token_body("okta_key"))).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let token = json_of(&r)["access_token"].as_str().unwrap().to_string();
    assert_eq!(json_of(&r)["token_type"], "DPoP");
    let sent = s.state.requests("/dpop/oauth2/v1/token");
    assert_eq!(sent.len(), 2, "one retry");
    assert_eq!(
        door.counters()
            .sent
            .load(std::sync::atomic::Ordering::Relaxed),
        2,
        "the retry is a request sent"
    );
    let proof_of = |r: &Recorded| decode_header(r.header("dpop").unwrap()).unwrap();
    let (first, second) = (proof_of(&sent[0]), proof_of(&sent[1]));
    assert_eq!(first.typ.as_deref(), Some("dpop+jwt"));
    assert_eq!(first.alg, Algorithm::ES256);
    // The DPoP key is the run's own, not the client-authentication key (Okta's rule).
    let jwk = first.jwk.clone().unwrap();
    assert!(matches!(
        jwk.algorithm,
        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)
    ));
    assert_eq!(second.jwk, first.jwk, "one key for the run");
    let assertion = |r: &Recorded| {
        form_urlencoded::parse(&r.body)
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1
            .into_owned()
    };
    assert_ne!(
        assertion(&sent[0]),
        assertion(&sent[1]),
        "the retry carries a fresh assertion"
    );
    // An API call with the DPoP-bound token: a proof with ath; the resource server's nonce
    // request (§9, 401) is retried once; the nonce is then remembered for the origin.
    let call = |path: &str| FetchRequest {
        method: "GET".into(),
        url: format!("{}{path}", s.origin),
        headers: vec![
            ("Authorization".into(), format!("DPoP {token}")),
            ("DPoP".into(), "guest-made".into()),
        ],
        body: None,
    };
    let r = fetch(&door, call("/dpop/api/v1/users?limit=200")).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        door.counters()
            .sent
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    let r = fetch(&door, call("/dpop/api/v1/groups")).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        door.counters()
            .sent
            .load(std::sync::atomic::Ordering::Relaxed),
        5,
        "the remembered nonce needs no retry"
    );
    for r in s.state.requests("/dpop/api/") {
        assert_eq!(
            r.headers.iter().filter(|(k, _)| k == "dpop").count(),
            1,
            "the guest's DPoP header is replaced"
        );
    }
    // A request without a DPoP token gets no proof; a Bearer one neither.
    fetch(
        &door,
        FetchRequest {
            method: "GET".into(),
            url: format!("{}/plain", s.origin),
            headers: vec![("Authorization".into(), "Bearer x".into())],
            body: None,
        },
    )
    .unwrap();
    assert_eq!(
        s.state.requests("/plain").pop().unwrap().header("dpop"),
        None
    );
}

/// Captures what `tracing` logs on this thread while `f` runs.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
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
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

fn load_error(spec: SecretSpec) -> String {
    let e = connector_secrets(&BTreeMap::from([("client_certificate".to_string(), spec)]))
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    assert!(e.starts_with("secret 'client_certificate': "), "{e}");
    e
}

#[test]
fn operator_key_files_are_handled_like_secret_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::parse("https://login.microsoftonline.com").unwrap();
    let spec = |key: &str, cert: Option<&str>| key_spec(dir.path(), key, cert, &[&origin]);
    // A FIFO and a directory: refused, one line, without blocking.
    let fifo = dir.path().join("key.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let e = load_error(SecretSpec {
        file: Some(fifo.clone()),
        ..spec("rsa.key", None)
    });
    assert!(
        e.contains("key file") && e.contains("is a FIFO (named pipe), not a regular file"),
        "{e}"
    );
    let e = load_error(SecretSpec {
        file: Some(dir.path().to_path_buf()),
        ..spec("rsa.key", None)
    });
    assert!(e.contains("is a directory, not a regular file"), "{e}");
    let e = load_error(SecretSpec {
        certificate: Some(fifo),
        ..spec("rsa.key", None)
    });
    assert!(
        e.contains("certificate file") && e.contains("a FIFO"),
        "{e}"
    );
    // Readable by others: loaded, with one warning naming the file and the fix.
    let path = dir.path().join("open.key");
    std::fs::write(&path, read_fixture("rsa.key")).unwrap();
    let open = SecretSpec {
        file: Some(path.clone()),
        ..spec("rsa.key", Some("rsa.crt"))
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (set, log) =
        logged(|| connector_secrets(&BTreeMap::from([("k".to_string(), open.clone())])));
    let set = set.unwrap();
    assert_eq!(set.private_keys().count(), 1);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains(&format!(
            "key file {} can be read by other accounts (mode 644); chmod 600 {}",
            path.display(),
            path.display()
        )),
        "{log}"
    );
    // Another user's file (possible to make when the tests run as root).
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(4321), None).unwrap();
        let (set, log) =
            logged(|| connector_secrets(&BTreeMap::from([("k".to_string(), open.clone())])));
        assert!(set.is_ok());
        assert!(
            log.contains("is owned by another user (uid 4321") && log.contains("chown 0"),
            "{log}"
        );
    }
    // Mode 600, this user's: no warning.
    let (_, log) = logged(|| {
        connector_secrets(&BTreeMap::from([("k".to_string(), spec("rsa.key", None))])).unwrap()
    });
    assert!(!log.contains("WARN"), "{log}");
    // Encrypted keys: one line with the command that decrypts them.
    for encrypted in ["rsa-encrypted.key", "rsa-encrypted-legacy.key"] {
        let e = load_error(spec(encrypted, None));
        assert!(
            e.contains("holds an encrypted private key") && e.contains("openssl pkey -in "),
            "{e}"
        );
    }
    // A certificate of another key.
    let e = load_error(spec("rsa.key", Some("other-rsa.crt")));
    assert!(
        e.contains("other-rsa.crt does not hold the public key of")
            && e.contains("openssl req -new -x509 -key"),
        "{e}"
    );
    let e = load_error(spec("p256.key", Some("rsa.crt")));
    assert!(e.contains("does not hold the public key"), "{e}");
    // An algorithm that does not fit the key.
    let e = load_error(SecretSpec {
        algorithm: Some("ES256".into()),
        ..spec("rsa.key", None)
    });
    assert!(
        e.contains("algorithm = \"ES256\" does not fit the key, an RSA key")
            && e.contains("PS256, PS384, PS512, RS256, RS384 or RS512"),
        "{e}"
    );
    let e = load_error(SecretSpec {
        algorithm: Some("PS256".into()),
        ..spec("p256.key", None)
    });
    assert!(
        e.contains("does not fit the key, an EC P-256 key") && e.contains("set algorithm to ES256"),
        "{e}"
    );
    let e = load_error(SecretSpec {
        algorithm: Some("ES256".into()),
        ..spec("p384.key", None)
    });
    assert!(e.contains("an EC P-384 key"), "{e}");
    // Not a key at all; a certificate where the key belongs; a key where the certificate belongs.
    let e = load_error(SecretSpec {
        file: Some(private_copy(dir.path(), "README.md")),
        ..spec("rsa.key", None)
    });
    assert!(
        e.contains("holds no private key") || e.contains("is not PEM text"),
        "{e}"
    );
    let e = load_error(spec("rsa.crt", None));
    assert!(e.contains("holds no private key"), "{e}");
    let e = load_error(SecretSpec {
        certificate: Some(fixture("rsa.key")),
        ..spec("rsa.key", None)
    });
    assert!(e.contains("holds no CERTIFICATE block"), "{e}");
}

#[test]
fn operator_the_certificate_gives_the_expiry_and_a_rotated_key_is_read_at_the_next_load() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::parse("https://login.microsoftonline.com").unwrap();
    let spec = key_spec(dir.path(), "rsa.key", Some("rsa.crt"), &[&origin]);
    let load = || {
        connector_secrets(&BTreeMap::from([(
            "client_certificate".to_string(),
            spec.clone(),
        )]))
        .unwrap()
    };
    let set = load();
    let (name, key) = set.private_keys().next().unwrap();
    assert_eq!(name, "client_certificate");
    // `openssl x509 -in rsa.crt -noout -enddate`: Nov 13 13:45:41 2126 GMT.
    assert_eq!(
        key.not_after(),
        Some(std::time::UNIX_EPOCH + Duration::from_secs(4_950_251_141))
    );
    let debug = format!("{set:?}");
    assert!(
        !debug.contains("MII") && debug.contains("<redacted>"),
        "{debug}"
    );
    // The files are read at each load: a rotated key and certificate are picked up.
    std::fs::write(spec.file.as_ref().unwrap(), read_fixture("other-rsa.key")).unwrap();
    let e = load_error(spec.clone());
    assert!(
        e.contains("does not hold the public key"),
        "the new key is read: {e}"
    );
    let rotated = SecretSpec {
        certificate: Some(fixture("other-rsa.crt")),
        ..spec.clone()
    };
    let set = connector_secrets(&BTreeMap::from([(
        "client_certificate".to_string(),
        rotated,
    )]))
    .unwrap();
    assert!(set.private_keys().next().unwrap().1.not_after().is_some());
}
