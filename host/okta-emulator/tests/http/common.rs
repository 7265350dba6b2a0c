//! A small client for the tests: real requests over loopback, answers as (status, headers,
//! JSON), and helpers that sign client assertions and DPoP proofs as a client would.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use okta_emulator::{Emulator, OktaClock, OktaConfig, Org};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// 2026-05-28T20:26:40Z: the tests' "now".
pub const NOW_MS: i64 = 1_780_000_000_000;

pub const RSA_PRIVATE: &str = include_str!("../keys/rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../keys/rsa_public.pem");
pub const RSA_OTHER_PRIVATE: &str = include_str!("../keys/rsa_other_private.pem");
pub const EC_PRIVATE: &str = include_str!("../keys/ec_private.pem");

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The URL of the `Link` header with `rel="next"`.
    pub fn next_link(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("link"))
            .find(|(_, v)| v.ends_with("rel=\"next\""))
            .map(|(_, v)| v[1..v.find('>').expect("<url>")].to_owned())
    }

    pub fn items(&self) -> Vec<Value> {
        self.body.as_array().cloned().unwrap_or_default()
    }

    pub fn ids(&self) -> Vec<String> {
        self.items()
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_owned())
            .collect()
    }

    pub fn code(&self) -> &str {
        self.body["errorCode"].as_str().unwrap_or("")
    }

    /// Okta's error object has all its fields.
    pub fn assert_okta_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.code(), code, "{}", self.body);
        assert_eq!(self.body["errorLink"], code);
        assert!(self.body["errorSummary"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
        assert!(self.body["errorId"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(self.body["errorCauses"].is_array());
    }
}

pub async fn start_with(users: usize, config: OktaConfig) -> (Emulator, OktaClock) {
    let clock = OktaClock::manual(NOW_MS);
    let org = Org::generated(11, users, clock.now_ms());
    let emulator = Emulator::start(org, config, clock.clone())
        .await
        .expect("the emulator starts");
    (emulator, clock)
}

pub async fn start(users: usize) -> (Emulator, OktaClock) {
    start_with(users, OktaConfig::default()).await
}

pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = tokio::time::timeout(Duration::from_secs(30), request.send())
        .await
        .expect("answered in time")
        .expect("the request is answered");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// GET with an `Authorization` header (a path, or a full URL from a link).
pub async fn get(emulator: &Emulator, target: &str, authorization: Option<&str>) -> Answer {
    let url = if target.starts_with("http") {
        target.to_owned()
    } else {
        format!("{}{target}", emulator.base_url())
    };
    let mut request = reqwest::Client::new().get(url);
    if let Some(a) = authorization {
        request = request.header("Authorization", a);
    }
    send(request).await
}

/// GET with the default API token.
pub async fn ssws(emulator: &Emulator, target: &str) -> Answer {
    let token = format!("SSWS {}", emulator.config().api_tokens[0]);
    get(emulator, target, Some(&token)).await
}

/// Every item of a Link-paged list, following `next` to the end; also the pages' sizes.
pub async fn walk(emulator: &Emulator, first: &str) -> (Vec<Value>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut target = first.to_owned();
    loop {
        let answer = ssws(emulator, &target).await;
        assert_eq!(answer.status, 200, "{target}: {}", answer.body);
        sizes.push(answer.items().len());
        items.extend(answer.items());
        match answer.next_link() {
            Some(next) => target = next,
            None => return (items, sizes),
        }
    }
}

/// A client assertion signed with `pem` (RS256) carrying these claims.
pub fn assertion(pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("signed")
}

/// The claims of a good assertion for `client_id` at `token_url`, now.
pub fn good_claims(client_id: &str, token_url: &str, now_secs: i64, jti: &str) -> Value {
    json!({"iss": client_id, "sub": client_id, "aud": token_url,
           "iat": now_secs, "exp": now_secs + 300, "jti": jti})
}

/// A DPoP proof signed with the EC test key (ES256), with its public JWK in the header.
pub fn dpop_proof(
    method: &str,
    url: &str,
    iat: i64,
    jti: &str,
    nonce: Option<&str>,
    token: Option<&str>,
) -> String {
    dpop_proof_with(EC_PRIVATE, method, url, iat, jti, nonce, token)
}

pub fn dpop_proof_with(
    pem: &str,
    method: &str,
    url: &str,
    iat: i64,
    jti: &str,
    nonce: Option<&str>,
    token: Option<&str>,
) -> String {
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("an EC key");
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(Jwk::from_encoding_key(&key, Algorithm::ES256).expect("a JWK"));
    let mut claims = json!({"htm": method, "htu": url, "iat": iat, "jti": jti});
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(t) = token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())));
    }
    jsonwebtoken::encode(&header, &claims, &key).expect("signed")
}

/// POSTs a token request.
pub async fn token_request(
    emulator: &Emulator,
    form: &[(&str, &str)],
    dpop: Option<&str>,
) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let mut request = reqwest::Client::new()
        .post(emulator.token_url())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body);
    if let Some(p) = dpop {
        request = request.header("DPoP", p);
    }
    send(request).await
}
