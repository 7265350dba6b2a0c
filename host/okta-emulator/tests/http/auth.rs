//! Authentication: SSWS tokens, the service app's private_key_jwt checks, scopes per endpoint,
//! and DPoP (the nonce dance, bound tokens, `ath`, replay).

use okta_emulator::{AppKey, OktaConfig, ServiceApp, DEFAULT_CLIENT_ID, JWT_BEARER};
use serde_json::json;

use crate::common::{
    assertion, dpop_proof, get, good_claims, start_with, token_request, Answer, RSA_OTHER_PRIVATE,
    RSA_PRIVATE, RSA_PUBLIC,
};

fn config(require_dpop: bool, scopes: &[&str]) -> OktaConfig {
    OktaConfig {
        service_apps: vec![ServiceApp {
            client_id: DEFAULT_CLIENT_ID.into(),
            keys: vec![AppKey::Pem(RSA_PUBLIC.into())],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            require_dpop,
        }],
        ..OktaConfig::default()
    }
}

async fn ask(
    emulator: &okta_emulator::Emulator,
    client_assertion: &str,
    scope: &str,
    dpop: Option<&str>,
) -> Answer {
    token_request(
        emulator,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", client_assertion),
        ],
        dpop,
    )
    .await
}

#[tokio::test]
async fn ssws_tokens_are_checked() {
    let (emulator, _clock) = start_with(20, OktaConfig::default()).await;
    get(&emulator, "/api/v1/users", None)
        .await
        .assert_okta_error(401, "E0000011");
    get(&emulator, "/api/v1/users", Some("SSWS not-a-token"))
        .await
        .assert_okta_error(401, "E0000011");
    get(&emulator, "/api/v1/users", Some("SSWS "))
        .await
        .assert_okta_error(401, "E0000011");
    get(
        &emulator,
        "/api/v1/users",
        Some(&format!("Bearer {}", okta_emulator::DEFAULT_API_TOKEN)),
    )
    .await
    .assert_okta_error(401, "E0000011");
    let ok = get(
        &emulator,
        "/api/v1/users",
        Some(&format!("SSWS {}", okta_emulator::DEFAULT_API_TOKEN)),
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn private_key_jwt_is_verified_and_scopes_are_enforced() {
    let (emulator, clock) =
        start_with(20, config(false, &["okta.users.read", "okta.groups.read"])).await;
    let url = emulator.token_url();
    let now = clock.now_secs();
    let good = assertion(
        RSA_PRIVATE,
        &good_claims(DEFAULT_CLIENT_ID, &url, now, "jti-1"),
    );
    let answer = ask(&emulator, &good, "okta.users.read", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3600);
    assert_eq!(answer.body["scope"], "okta.users.read");
    let token = answer.body["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get(&emulator, "/api/v1/users", Some(&bearer)).await.status,
        200
    );
    // A scope the token lacks: 403 E0000006 with the insufficient_scope challenge.
    let denied = get(&emulator, "/api/v1/logs", Some(&bearer)).await;
    denied.assert_okta_error(403, "E0000006");
    assert!(denied
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    assert!(denied
        .header("www-authenticate")
        .unwrap()
        .contains("okta.logs.read"));
    assert_eq!(
        get(&emulator, "/api/v1/groups", Some(&bearer)).await.status,
        403
    );

    // The same assertion again: jti replay.
    let replay = ask(&emulator, &good, "okta.users.read", None).await;
    assert_eq!(
        (replay.status, replay.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(replay.body["error_description"]
        .as_str()
        .unwrap()
        .contains("jti"));
    // Signed by a key the app did not register.
    let forged = assertion(
        RSA_OTHER_PRIVATE,
        &good_claims(DEFAULT_CLIENT_ID, &url, now, "jti-2"),
    );
    let bad = ask(&emulator, &forged, "okta.users.read", None).await;
    assert_eq!(
        (bad.status, bad.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(bad.body["error_description"]
        .as_str()
        .unwrap()
        .contains("signature"));
    // aud is not the token URL (the issuer alone is not enough).
    let mut claims = good_claims(DEFAULT_CLIENT_ID, &url, now, "jti-3");
    claims["aud"] = json!(emulator.base_url());
    let wrong_aud = ask(
        &emulator,
        &assertion(RSA_PRIVATE, &claims),
        "okta.users.read",
        None,
    )
    .await;
    assert_eq!(wrong_aud.status, 401);
    assert!(wrong_aud.body["error_description"]
        .as_str()
        .unwrap()
        .contains("aud"));
    // exp more than an hour ahead, and exp past.
    let mut claims = good_claims(DEFAULT_CLIENT_ID, &url, now, "jti-4");
    claims["exp"] = json!(now + 3601);
    let far = ask(
        &emulator,
        &assertion(RSA_PRIVATE, &claims),
        "okta.users.read",
        None,
    )
    .await;
    assert_eq!(far.status, 401);
    assert!(far.body["error_description"]
        .as_str()
        .unwrap()
        .contains("one hour"));
    claims["exp"] = json!(now + 3600);
    claims["jti"] = json!("jti-5");
    assert_eq!(
        ask(
            &emulator,
            &assertion(RSA_PRIVATE, &claims),
            "okta.users.read",
            None
        )
        .await
        .status,
        200
    );
    claims["exp"] = json!(now);
    claims["jti"] = json!("jti-6");
    assert_eq!(
        ask(
            &emulator,
            &assertion(RSA_PRIVATE, &claims),
            "okta.users.read",
            None
        )
        .await
        .status,
        401
    );
    // iss and sub must both be the client id.
    let mut claims = good_claims(DEFAULT_CLIENT_ID, &url, now, "jti-7");
    claims["sub"] = json!("someone-else");
    assert_eq!(
        ask(
            &emulator,
            &assertion(RSA_PRIVATE, &claims),
            "okta.users.read",
            None
        )
        .await
        .status,
        401
    );
    // A scope not granted to the app.
    let fresh = assertion(
        RSA_PRIVATE,
        &good_claims(DEFAULT_CLIENT_ID, &url, now, "jti-8"),
    );
    let scope = ask(&emulator, &fresh, "okta.users.read okta.logs.read", None).await;
    assert_eq!(
        (scope.status, scope.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // The token expires after an hour on the emulator's clock.
    clock.advance(std::time::Duration::from_secs(3600));
    get(&emulator, "/api/v1/users", Some(&bearer))
        .await
        .assert_okta_error(401, "E0000011");
}

#[tokio::test]
async fn dpop_nonce_dance_bound_tokens_and_ath() {
    let (emulator, clock) = start_with(20, config(true, &["okta.users.read"])).await;
    let url = emulator.token_url();
    let now = clock.now_secs();
    let client_assertion = assertion(
        RSA_PRIVATE,
        &good_claims(DEFAULT_CLIENT_ID, &url, now, "a-1"),
    );
    // No proof at all.
    let missing = ask(&emulator, &client_assertion, "okta.users.read", None).await;
    assert_eq!(
        (missing.status, missing.body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    // A proof without the nonce: use_dpop_nonce with the nonce in DPoP-Nonce.
    let proof = dpop_proof("POST", &url, now, "p-1", None, None);
    let first = ask(
        &emulator,
        &client_assertion,
        "okta.users.read",
        Some(&proof),
    )
    .await;
    assert_eq!(
        (first.status, first.body["error"].as_str()),
        (400, Some("use_dpop_nonce"))
    );
    let nonce = first
        .header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_owned();
    // A proof for another URL or method is refused.
    let elsewhere = dpop_proof("POST", &format!("{url}/x"), now, "p-2", Some(&nonce), None);
    let refused = ask(
        &emulator,
        &client_assertion,
        "okta.users.read",
        Some(&elsewhere),
    )
    .await;
    assert_eq!(refused.body["error"], "invalid_dpop_proof");
    // With the nonce (and the same, unspent assertion): a DPoP token.
    let proof = dpop_proof("POST", &url, now, "p-3", Some(&nonce), None);
    let granted = ask(
        &emulator,
        &client_assertion,
        "okta.users.read",
        Some(&proof),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body["token_type"], "DPoP");
    let token = granted.body["access_token"].as_str().unwrap().to_owned();

    let api = format!("{}/api/v1/users", emulator.base_url());
    let call = |proof: String, scheme: &'static str| {
        let token = token.clone();
        let api = api.clone();
        async move {
            crate::common::send(
                reqwest::Client::new()
                    .get(format!("{api}?limit=2"))
                    .header("Authorization", format!("{scheme} {token}"))
                    .header("DPoP", proof),
            )
            .await
        }
    };
    // Presented as Bearer: refused.
    call(
        dpop_proof("GET", &api, now, "p-4", None, Some(&token)),
        "Bearer",
    )
    .await
    .assert_okta_error(401, "E0000011");
    // DPoP with ath: served (htu without the query).
    let ok = call(
        dpop_proof("GET", &api, now, "p-5", None, Some(&token)),
        "DPoP",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The same proof again: replay.
    let replay = call(
        dpop_proof("GET", &api, now, "p-5", None, Some(&token)),
        "DPoP",
    )
    .await;
    replay.assert_okta_error(401, "E0000011");
    assert!(replay
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_dpop_proof"));
    // ath of another token, or no ath.
    let wrong_ath = call(
        dpop_proof("GET", &api, now, "p-6", None, Some("other-token")),
        "DPoP",
    )
    .await;
    assert_eq!(wrong_ath.status, 401);
    let no_ath = call(dpop_proof("GET", &api, now, "p-7", None, None), "DPoP").await;
    assert_eq!(no_ath.status, 401);
    // A stale proof (iat 10 minutes old).
    let stale = call(
        dpop_proof("GET", &api, now - 600, "p-8", None, Some(&token)),
        "DPoP",
    )
    .await;
    assert_eq!(stale.status, 401);
    // After a nonce rotation the old nonce is refused at the token endpoint.
    emulator.rotate_dpop_nonce();
    let next_assertion = assertion(
        RSA_PRIVATE,
        &good_claims(DEFAULT_CLIENT_ID, &url, now, "a-2"),
    );
    let old = ask(
        &emulator,
        &next_assertion,
        "okta.users.read",
        Some(&dpop_proof("POST", &url, now, "p-9", Some(&nonce), None)),
    )
    .await;
    assert_eq!(old.body["error"], "use_dpop_nonce");
    assert_ne!(old.header("dpop-nonce"), Some(nonce.as_str()));
}

#[tokio::test]
async fn a_jwk_registered_key_signs_es256_assertions_and_tokens_can_be_revoked() {
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let private = EncodingKey::from_ec_pem(crate::common::EC_PRIVATE.as_bytes()).unwrap();
    let public =
        serde_json::to_value(Jwk::from_encoding_key(&private, Algorithm::ES256).unwrap()).unwrap();
    let config = OktaConfig {
        service_apps: vec![ServiceApp {
            client_id: "0oaJWKclient".into(),
            keys: vec![AppKey::Jwk(public)],
            scopes: vec!["okta.logs.read".into()],
            require_dpop: false,
        }],
        ..OktaConfig::default()
    };
    let (emulator, clock) = start_with(20, config).await;
    let claims = good_claims(
        "0oaJWKclient",
        &emulator.token_url(),
        clock.now_secs(),
        "es-1",
    );
    let signed = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &private).unwrap();
    let answer = ask(&emulator, &signed, "okta.logs.read", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let bearer = format!("Bearer {}", answer.body["access_token"].as_str().unwrap());
    assert_eq!(
        get(&emulator, "/api/v1/logs", Some(&bearer)).await.status,
        200
    );
    // An unknown client, and an alg the org does not take (HS256).
    let unknown = good_claims("0oaNobody", &emulator.token_url(), clock.now_secs(), "es-2");
    let signed = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &unknown, &private).unwrap();
    assert_eq!(
        ask(&emulator, &signed, "okta.logs.read", None).await.status,
        401
    );
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(
            "0oaJWKclient",
            &emulator.token_url(),
            clock.now_secs(),
            "es-3",
        ),
        &EncodingKey::from_secret(b"guess").unwrap(),
    )
    .unwrap();
    let refused = ask(&emulator, &hmac, "okta.logs.read", None).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Not client_credentials.
    let grant = token_request(&emulator, &[("grant_type", "password")], None).await;
    assert_eq!(grant.body["error"], "unsupported_grant_type");
    // Only GET on the API; unknown paths are 404.
    let post = crate::common::send(
        reqwest::Client::new()
            .post(format!("{}/api/v1/users", emulator.base_url()))
            .header("Authorization", &bearer),
    )
    .await;
    assert_eq!(post.status, 405);
    get(&emulator, "/api/v1/apps", Some(&bearer))
        .await
        .assert_okta_error(404, "E0000007");
    // Revoked tokens stop working.
    emulator.expire_tokens();
    get(&emulator, "/api/v1/logs", Some(&bearer))
        .await
        .assert_okta_error(401, "E0000011");
}
