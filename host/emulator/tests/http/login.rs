//! The token endpoint and the bearer-token gate of the Graph server.

use graph_emulator::Endpoint;

use crate::common::{start, Client};

#[tokio::test]
async fn token_success_gives_a_usable_bearer_token() {
    let emulator = start(1, 25).await;
    let client = Client::new(&emulator).await;
    let answer = client.request_token(&[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3599);
    assert_eq!(answer.body["ext_expires_in"], 3599);
    let second = answer.body["access_token"].as_str().expect("token");
    assert!(!second.is_empty());
    assert_ne!(second, client.token, "every token is unique");
    assert!(answer
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let users = client
        .get_with("/v1.0/users?$top=1", Some(second), &[])
        .await;
    assert_eq!(users.status, 200);
    assert_eq!(users.values().len(), 1);
    assert_eq!(emulator.counters()[&Endpoint::Token], 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn token_errors_answer_like_the_identity_platform() {
    let emulator = start(1, 25).await;
    let client = Client::new(&emulator).await;
    let tenant = emulator.config().tenant_id;
    let client_id = emulator.config().client_id;

    let wrong_tenant = format!(
        "{}/contoso.onmicrosoft.com/oauth2/v2.0/token",
        emulator.login_endpoint()
    );
    let cases = [
        (
            client.request_token_at(&wrong_tenant, &[]).await,
            400,
            "invalid_request",
            90002,
        ),
        (
            client
                .request_token(&[("client_id", "99999999-0000-4000-8000-000000000000")])
                .await,
            400,
            "unauthorized_client",
            700016,
        ),
        (
            client
                .request_token(&[("client_secret", "not-the-secret")])
                .await,
            401,
            "invalid_client",
            7000215,
        ),
        (
            client.request_token(&[("grant_type", "password")]).await,
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            client.request_token(&[("scope", "")]).await,
            400,
            "invalid_scope",
            70011,
        ),
        (
            client
                .request_token(&[("scope", "https://graph.microsoft.com/User.Read.All")])
                .await,
            400,
            "invalid_scope",
            70011,
        ),
    ];
    for (answer, status, error, code) in cases {
        assert_eq!(answer.status, status, "{error}: {}", answer.raw);
        assert_eq!(answer.body["error"], error);
        assert_eq!(answer.body["error_codes"], serde_json::json!([code]));
        let description = answer.body["error_description"]
            .as_str()
            .expect("description");
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{description}"
        );
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(
                answer.body[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} missing"
            );
        }
    }
    let tenant_error = client.request_token_at(&wrong_tenant, &[]).await;
    assert!(tenant_error.body["error_description"]
        .as_str()
        .unwrap_or("")
        .contains("Tenant 'contoso.onmicrosoft.com' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    let app_error = client.request_token(&[("client_id", "abc")]).await;
    assert!(app_error.body["error_description"]
        .as_str()
        .unwrap_or("")
        .contains(&format!(
            "Application with identifier 'abc' was not found in the directory '{tenant}'"
        )));
    let secret_error = client.request_token(&[("client_secret", "x")]).await;
    assert!(secret_error.body["error_description"]
        .as_str()
        .unwrap_or("")
        .contains(&format!(
            "not the client secret ID, for a secret added to app '{client_id}'"
        )));
    emulator.shutdown().await;
}

#[tokio::test]
async fn graph_refuses_missing_unknown_and_expired_tokens() {
    let emulator = start(1, 25).await;
    let client = Client::new(&emulator).await;

    let none = client.get_with("/v1.0/users", None, &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.graph_code(), "InvalidAuthenticationToken");
    let inner = &none.body["error"]["innerError"];
    assert!(inner["request-id"].as_str().is_some_and(|v| v.len() == 36));
    assert!(inner["date"].as_str().is_some_and(|v| v.ends_with('Z')));
    assert_eq!(none.header("request-id"), inner["request-id"].as_str());

    let forged = client
        .get_with(
            "/v1.0/users",
            Some("forged"),
            &[("client-request-id", "abc-123")],
        )
        .await;
    assert_eq!(forged.status, 401);
    assert_eq!(
        forged.body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    assert_eq!(
        forged.body["error"]["innerError"]["client-request-id"],
        "abc-123"
    );

    assert_eq!(client.get("/v1.0/users?$top=1", &[]).await.status, 200);
    emulator.expire_tokens();
    let expired = client.get("/v1.0/users?$top=1", &[]).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.graph_code(), "InvalidAuthenticationToken");
    let fresh = Client::new(&emulator).await;
    assert_eq!(fresh.get("/v1.0/users?$top=1", &[]).await.status, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn short_token_lifetime_expires_for_real() {
    let config = graph_emulator::EmulatorConfig {
        token_lifetime_secs: 2,
        ..Default::default()
    };
    let emulator = graph_emulator::Emulator::start(graph_emulator::Tenant::generated(1, 5), config)
        .await
        .expect("starts");
    let client = Client::new(&emulator).await;
    assert_eq!(client.get("/v1.0/users", &[]).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(client.get("/v1.0/users", &[]).await.status, 401);
    emulator.shutdown().await;
}
