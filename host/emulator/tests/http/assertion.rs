//! Client assertions (the certificate credential) at the token endpoint, over real HTTP: each
//! assertion is signed here with `jsonwebtoken` and a fixture key (`tests/fixtures/certificates`,
//! made by its `make.sh`), and each refusal must carry the AADSTS code and message Entra gives
//! (`src/assertion.rs` cites them).

use base64::Engine as _;
use graph_emulator::{Emulator, EmulatorConfig, Tenant};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha1::Digest as _;

use crate::common::{Answer, Client};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/certificates/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The DER bytes of a PEM certificate.
fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `x5t#S256` of a certificate (certificate-credentials.md: base64url SHA-256 of the DER).
fn x5t_s256(cert: &str) -> String {
    b64url(&sha2::Sha256::digest(der(cert)))
}

/// `x5t` of a certificate (base64url SHA-1 of the DER).
fn x5t(cert: &str) -> String {
    b64url(&sha1::Sha1::digest(der(cert)))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// An assertion as certificate-credentials.md describes it, for `emulator`, signed with `key`;
/// `change` edits the header and claims before signing.
fn assertion(
    emulator: &Emulator,
    key: &str,
    alg: Algorithm,
    change: impl FnOnce(&mut Header, &mut Value),
) -> String {
    let mut header = Header::new(alg);
    header.x5t_s256 = Some(x5t_s256(&fixture("app.crt")));
    let client_id = emulator.config().client_id;
    let t = now();
    let mut claims = json!({
        "aud": emulator.token_url(),
        "iss": client_id,
        "sub": client_id,
        "jti": format!("jti-{}-{t}", JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        "nbf": t,
        "iat": t,
        "exp": t + 300,
    });
    change(&mut header, &mut claims);
    let key = EncodingKey::from_rsa_pem(fixture(key).as_bytes()).expect("an RSA key");
    jsonwebtoken::encode(&header, &claims, &key).expect("signed")
}

/// An emulator whose app has `app.crt` and `expired.crt` registered.
async fn start() -> Emulator {
    let config = EmulatorConfig {
        client_certificates: vec![fixture("app.crt"), fixture("expired.crt")],
        ..EmulatorConfig::default()
    };
    Emulator::start(Tenant::generated(1, 5), config)
        .await
        .expect("the emulator starts")
}

/// POSTs a token request authenticating with `assertion` (no client secret).
async fn with_assertion(client: &Client, assertion: &str) -> Answer {
    client
        .request_token(&[
            ("client_secret", ""),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
        .await
}

/// Asserts an identity-platform refusal: status, `error`, the code in `error_codes` and at the
/// start of `error_description`, and a piece of its message.
fn assert_refused(answer: &Answer, status: u16, error: &str, code: u32, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.raw);
    assert_eq!(answer.body["error"], error, "{}", answer.raw);
    assert_eq!(answer.body["error_codes"], json!([code]), "{}", answer.raw);
    let description = answer.body["error_description"].as_str().unwrap_or("");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")) && description.contains(says),
        "expected AADSTS{code} saying {says:?}: {description}"
    );
    assert!(answer.body.get("access_token").is_none());
}

#[tokio::test]
async fn a_ps256_assertion_with_x5t_s256_or_an_rs256_one_with_x5t_gets_a_token() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let ps256 = assertion(&emulator, "app.key", Algorithm::PS256, |_, _| {});
    let answer = with_assertion(&client, &ps256).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let token = answer.body["access_token"].as_str().expect("a token");
    let users = client
        .get_with("/v1.0/users?$top=1", Some(token), &[])
        .await;
    assert_eq!(users.status, 200, "the token opens Graph");

    let rs256 = assertion(&emulator, "app.key", Algorithm::RS256, |h, _| {
        h.x5t_s256 = None;
        h.x5t = Some(x5t(&fixture("app.crt")));
    });
    let answer = with_assertion(&client, &rs256).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    // Both thumbprints, naming the same certificate: fine too.
    let both = assertion(&emulator, "app.key", Algorithm::RS256, |h, _| {
        h.x5t = Some(x5t(&fixture("app.crt")));
    });
    assert_eq!(with_assertion(&client, &both).await.status, 200);
    // The client secret still works for an app that also has certificates.
    assert_eq!(client.request_token(&[]).await.status, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_key_whose_certificate_is_not_registered_is_not_found() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let other = fixture("other.crt");
    let wrong = assertion(&emulator, "other.key", Algorithm::PS256, |h, _| {
        h.x5t_s256 = Some(x5t_s256(&other));
    });
    let answer = with_assertion(&client, &wrong).await;
    let thumbprint: String = sha2::Sha256::digest(der(&other))
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_refused(
        &answer,
        401,
        "invalid_client",
        700_027,
        &format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}'"),
    );
    let client_id = emulator.config().client_id;
    assert!(answer.raw.contains(&format!("app Id '{client_id}'")));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_under_the_registered_thumbprint_fails_the_signature() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    // Names app.crt (registered) but is signed with another key.
    let forged = assertion(&emulator, "other.key", Algorithm::PS256, |_, _| {});
    assert_refused(
        &with_assertion(&client, &forged).await,
        401,
        "invalid_client",
        700_027,
        "Client assertion contains an invalid signature. [Reason - Key was found, but use of the key to verify the signature failed.",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_expired_registered_certificate_is_refused() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let expired = assertion(&emulator, "expired.key", Algorithm::PS256, |h, _| {
        h.x5t_s256 = Some(x5t_s256(&fixture("expired.crt")));
    });
    assert_refused(
        &with_assertion(&client, &expired).await,
        401,
        "invalid_client",
        700_027,
        "[Reason - The key used is expired., Thumbprint of key used by client: ",
    );
    let answer = with_assertion(&client, &expired).await;
    assert!(
        answer
            .raw
            .contains("Found key 'Start=01/01/2020 00:00:00, End=01/01/2021 00:00:00'"),
        "{}",
        answer.raw
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_reused_jti_is_refused() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let once = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
        c["jti"] = json!("00aa00aa-bb11-cc22-dd33-44ee44ee44ee");
    });
    assert_eq!(with_assertion(&client, &once).await.status, 200);
    assert_refused(
        &with_assertion(&client, &once).await,
        401,
        "invalid_client",
        50_013,
        "jti '00aa00aa-bb11-cc22-dd33-44ee44ee44ee' was already presented",
    );
    // The same jti in a newly signed assertion is a replay too.
    let again = assertion(&emulator, "app.key", Algorithm::RS256, |_, c| {
        c["jti"] = json!("00aa00aa-bb11-cc22-dd33-44ee44ee44ee");
    });
    assert_eq!(
        with_assertion(&client, &again).await.body["error_codes"],
        json!([50013])
    );
    let none = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    assert_refused(
        &with_assertion(&client, &none).await,
        400,
        "invalid_request",
        50_027,
        "no 'jti' claim",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_wrong_audience_issuer_or_subject_is_refused() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let tenant = emulator.config().tenant_id;
    for aud in [
        format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        format!("{}/{tenant}/oauth2/token", emulator.login_endpoint()),
        format!("{}?x=1", emulator.token_url()),
    ] {
        let wrong = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
            c["aud"] = json!(aud);
        });
        assert_refused(
            &with_assertion(&client, &wrong).await,
            401,
            "invalid_client",
            700_023,
            "Client assertion audience claim does not match Realm issuer.",
        );
    }
    let issuer = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
        c["iss"] = json!("99999999-0000-4000-8000-000000000000");
    });
    assert_refused(
        &with_assertion(&client, &issuer).await,
        401,
        "invalid_client",
        700_021,
        "Client assertion application identifier doesn't match 'client_id' parameter.",
    );
    let subject = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
        c["sub"] = json!("someone-else");
    });
    assert_refused(
        &with_assertion(&client, &subject).await,
        401,
        "invalid_client",
        50_048,
        "Subject must match the issuer claim in the client assertion.",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_assertion_outside_its_time_range_with_five_minutes_of_skew_is_refused() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let t = now();
    // Expired six minutes ago: beyond the 5-minute skew.
    let old = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
        c["nbf"] = json!(t - 900);
        c["iat"] = json!(t - 900);
        c["exp"] = json!(t - 360);
    });
    let answer = with_assertion(&client, &old).await;
    assert_refused(
        &answer,
        401,
        "invalid_client",
        700_024,
        "Client assertion is not within its valid time range. Current time: ",
    );
    assert!(
        answer.raw.contains("assertion valid from ") && answer.raw.contains(".0000000Z"),
        "{}",
        answer.raw
    );
    // Not valid before ten minutes from now.
    let future = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
        c["nbf"] = json!(t + 600);
        c["exp"] = json!(t + 900);
    });
    assert_refused(
        &with_assertion(&client, &future).await,
        401,
        "invalid_client",
        700_024,
        "not within its valid time range",
    );
    // Expired two minutes ago, or valid from two minutes on: inside the skew, accepted.
    for (nbf, exp) in [(t - 400, t - 120), (t + 120, t + 400)] {
        let skewed = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
            c["nbf"] = json!(nbf);
            c["exp"] = json!(exp);
        });
        assert_eq!(with_assertion(&client, &skewed).await.status, 200);
    }
    // No upper limit on exp ("Microsoft Entra ID doesn't place restrictions on the exp time").
    let long = assertion(&emulator, "app.key", Algorithm::PS256, |_, c| {
        c["exp"] = json!(t + 86_400 * 365);
    });
    assert_eq!(with_assertion(&client, &long).await.status, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_tenant_refusing_ps256_or_rs256_answers_aadsts700027() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let signature_failed = "Key was found, but use of the key to verify the signature failed.";
    emulator.set_assertion_algorithms(&["RS256"]);
    let ps256 = assertion(&emulator, "app.key", Algorithm::PS256, |_, _| {});
    assert_refused(
        &with_assertion(&client, &ps256).await,
        401,
        "invalid_client",
        700_027,
        signature_failed,
    );
    let rs256 = assertion(&emulator, "app.key", Algorithm::RS256, |_, _| {});
    assert_eq!(with_assertion(&client, &rs256).await.status, 200);

    emulator.set_assertion_algorithms(&["PS256"]);
    let rs256 = assertion(&emulator, "app.key", Algorithm::RS256, |_, _| {});
    assert_refused(
        &with_assertion(&client, &rs256).await,
        401,
        "invalid_client",
        700_027,
        signature_failed,
    );
    assert_eq!(emulator.config().assertion_algorithms, ["PS256"]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_x5t_naming_another_certificate_than_x5t_s256_is_not_found() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let mismatch = assertion(&emulator, "app.key", Algorithm::RS256, |h, _| {
        h.x5t = Some(x5t(&fixture("other.crt")));
    });
    assert_refused(
        &with_assertion(&client, &mismatch).await,
        401,
        "invalid_client",
        700_027,
        "[Reason - The key was not found.",
    );
    // An SHA-1 thumbprint sent as x5t#S256 names nothing either.
    let swapped = assertion(&emulator, "app.key", Algorithm::RS256, |h, _| {
        h.x5t_s256 = Some(x5t(&fixture("app.crt")));
    });
    assert_refused(
        &with_assertion(&client, &swapped).await,
        401,
        "invalid_client",
        700_027,
        "[Reason - The key was not found.",
    );
    let none = assertion(&emulator, "app.key", Algorithm::PS256, |h, _| {
        h.x5t_s256 = None;
    });
    assert_refused(
        &with_assertion(&client, &none).await,
        400,
        "invalid_request",
        50_027,
        "Invalid JWT token. No certificate thumbprint specified in token header.",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_malformed_request_is_named() {
    let emulator = start().await;
    let client = Client::new(&emulator).await;
    let good = assertion(&emulator, "app.key", Algorithm::PS256, |_, _| {});
    assert_refused(
        &client
            .request_token(&[("client_secret", ""), ("client_assertion", &good)])
            .await,
        400,
        "invalid_request",
        900_144,
        "'client_assertion_type'",
    );
    assert_refused(
        &client
            .request_token(&[
                ("client_secret", ""),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", &good),
            ])
            .await,
        400,
        "invalid_request",
        90_023,
        "client_assertion_type",
    );
    assert_refused(
        &client
            .request_token(&[
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &good),
            ])
            .await,
        400,
        "invalid_request",
        90_023,
        "not both",
    );
    assert_refused(
        &with_assertion(&client, "not.a.jwt").await,
        400,
        "invalid_request",
        50_027,
        "JWT token is invalid or malformed",
    );
    // An HMAC "assertion" is never a certificate credential.
    let mut header = Header::new(Algorithm::HS256);
    header.x5t_s256 = Some(x5t_s256(&fixture("app.crt")));
    let hmac = jsonwebtoken::encode(
        &header,
        &json!({"iss": "x"}),
        &EncodingKey::from_secret(b"a shared secret of 32 bytes long").unwrap(),
    )
    .unwrap();
    assert_eq!(
        with_assertion(&client, &hmac).await.body["error_codes"],
        json!([700027])
    );
    // The good assertion was never used: it still works.
    assert_eq!(with_assertion(&client, &good).await.status, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_app_without_certificates_has_no_configured_keys() {
    let emulator = Emulator::start(Tenant::generated(1, 5), EmulatorConfig::default())
        .await
        .expect("the emulator starts");
    let client = Client::new(&emulator).await;
    let good = assertion(&emulator, "app.key", Algorithm::PS256, |_, _| {});
    assert_refused(
        &with_assertion(&client, &good).await,
        401,
        "invalid_client",
        700_026,
        "Client application has no configured keys.",
    );
    // Registered at run time: accepted from then on.
    emulator
        .set_client_certificates(&[&fixture("app.crt")])
        .expect("a certificate");
    let good = assertion(&emulator, "app.key", Algorithm::PS256, |_, _| {});
    assert_eq!(with_assertion(&client, &good).await.status, 200);
    assert_eq!(emulator.config().client_certificates.len(), 1);
    let bad = emulator.set_client_certificates(&[
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ]);
    let message = bad.expect_err("not a certificate").to_string();
    assert!(
        message.contains("not a PEM X.509 certificate") && !message.contains('\n'),
        "{message}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_registered_certificate_stops_the_start_with_one_line() {
    let config = EmulatorConfig {
        client_certificates: vec![fixture("app.key")],
        ..EmulatorConfig::default()
    };
    let error = Emulator::start(Tenant::generated(1, 5), config)
        .await
        .err()
        .expect("a key is not a certificate")
        .to_string();
    assert!(
        error.contains("registered client certificate") && !error.contains('\n'),
        "{error}"
    );
}

#[tokio::test]
async fn an_ec_certificate_verifies_only_where_the_tenant_takes_es256() {
    let config = EmulatorConfig {
        client_certificates: vec![fixture("ec.crt")],
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(Tenant::generated(1, 5), config)
        .await
        .expect("the emulator starts");
    let client = Client::new(&emulator).await;
    let sign = || {
        let mut header = Header::new(Algorithm::ES256);
        header.x5t_s256 = Some(x5t_s256(&fixture("ec.crt")));
        let client_id = emulator.config().client_id;
        let t = now();
        let claims = json!({
            "aud": emulator.token_url(), "iss": client_id, "sub": client_id,
            "jti": format!("ec-{}", JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            "nbf": t, "exp": t + 300,
        });
        let key = EncodingKey::from_ec_pem(fixture("ec.key").as_bytes()).expect("an EC key");
        jsonwebtoken::encode(&header, &claims, &key).expect("signed")
    };
    // The default policy (PS256, RS256) does not take ES256.
    assert_eq!(
        with_assertion(&client, &sign()).await.body["error_codes"],
        json!([700027])
    );
    emulator.set_assertion_algorithms(&["ES256"]);
    let answer = with_assertion(&client, &sign()).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    emulator.shutdown().await;
}
