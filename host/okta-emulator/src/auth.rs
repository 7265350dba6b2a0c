//! Authentication: API tokens (`Authorization: SSWS <token>`) and OAuth 2.0 service apps
//! (client credentials with a `private_key_jwt` client assertion at `POST /oauth2/v1/token`,
//! optionally DPoP-bound access tokens presented as `Authorization: DPoP <token>`).
//!
//! Sources:
//! - API tokens: "Okta API tokens are used to authenticate requests to Okta APIs … the
//!   `Authorization: SSWS {token}` header" (developer.okta.com/docs/guides/create-an-api-token/);
//! - service apps: client credentials is the only grant, `private_key_jwt` the only client
//!   authentication for Okta scopes; the assertion's `aud` is the full token URL
//!   `https://{yourOktaDomain}/oauth2/v1/token`, `iss` and `sub` the client id, `exp` "a
//!   maximum of only an hour in the future", `jti` makes it single-use; the access token lives
//!   one hour ("The lifetime for this token is fixed at one hour"); scopes must be granted to
//!   the app (developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp/main/);
//! - signing algorithms RS256/384/512, ES256/384/512 (the org authorization server's
//!   `token_endpoint_auth_signing_alg_values_supported` and `dpop_signing_alg_values_supported`);
//! - DPoP: RFC 9449; a token request without a nonce is answered 400 `use_dpop_nonce` with a
//!   `DPoP-Nonce` header, the client retries with the nonce in its proof
//!   (developer.okta.com/docs/guides/dpop/main/); a missing proof is 400 `invalid_dpop_proof`
//!   "The DPoP proof JWT header is missing." (support.okta.com, "The DPoP Proof JWT Header Is
//!   Missing"); the proof checks are RFC 9449 §4.3; on API calls the proof carries `ath`, the
//!   base64url SHA-256 of the access token (§4.2), and its key must be the one the token is
//!   bound to (`cnf.jkt`, the RFC 7638 thumbprint, §6.1).
//!
//! The emulator checks DPoP before the client assertion, so a `use_dpop_nonce` answer does not
//! spend the assertion's `jti`: the client may retry with the same assertion (RFC 9449 §8
//! puts the nonce check first; Okta's guide retries the same token request with a new proof).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::reply::{oauth_error, Reply};

/// The client assertion type of `private_key_jwt` (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The Okta scopes the emulator knows, one per read area.
pub const SCOPES: [&str; 4] = [
    "okta.users.read",
    "okta.groups.read",
    "okta.roles.read",
    "okta.logs.read",
];

/// The asymmetric algorithms Okta accepts for client assertions and DPoP proofs, but ES512,
/// which `jsonwebtoken` cannot verify (the emulator refuses it: a client must not rely on it).
const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// How far a DPoP proof's `iat` may be in the past or future (RFC 9449 §4.3 leaves the window
/// to the server; the emulator allows 5 minutes back and 1 minute ahead).
const PROOF_PAST_MS: i64 = 300_000;
const PROOF_FUTURE_MS: i64 = 60_000;

/// A public key registered for a service app.
#[derive(Clone, Debug)]
pub enum AppKey {
    /// A PEM public key (`-----BEGIN PUBLIC KEY-----`, RSA or EC).
    Pem(String),
    /// A public JWK, as in the app's JWKS.
    Jwk(Value),
}

/// An OAuth 2.0 service app registered in the org.
#[derive(Clone, Debug)]
pub struct ServiceApp {
    /// The client id (`0oa…`).
    pub client_id: String,
    /// Its registered public keys (any one may sign).
    pub keys: Vec<AppKey>,
    /// The Okta scopes granted to it.
    pub scopes: Vec<String>,
    /// "Require Demonstrating Proof of Possession (DPoP) header in token requests".
    pub require_dpop: bool,
}

/// Who a request authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Principal {
    /// An API token (acts with every read scope, as the admin who made it).
    ApiToken(String),
    /// An OAuth app's access token.
    OAuth {
        client_id: String,
        scopes: Vec<String>,
    },
}

impl Principal {
    /// The client its rate-limit share is counted under.
    pub(crate) fn client(&self) -> String {
        match self {
            Principal::ApiToken(t) => format!("token:{}", &t[..t.len().min(8)]),
            Principal::OAuth { client_id, .. } => format!("app:{client_id}"),
        }
    }

    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        match self {
            Principal::ApiToken(_) => true,
            Principal::OAuth { scopes, .. } => scopes.iter().any(|s| s == scope),
        }
    }
}

#[derive(Clone, Debug)]
struct Issued {
    client_id: String,
    scopes: Vec<String>,
    expires_ms: i64,
    jkt: Option<String>,
}

/// The authorization server's memory: issued tokens, spent `jti`s, the DPoP nonce.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    issued: HashMap<String, Issued>,
    assertion_jtis: HashMap<String, i64>,
    proof_jtis: HashMap<String, i64>,
    nonce: String,
    serial: u64,
    secret: String,
}

/// A refusal of an API call's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// A token the org does not know, expired, or presented with the wrong scheme.
    Invalid(String),
    /// A DPoP proof that fails RFC 9449 §4.3 / §7.
    BadProof(String),
}

/// What the token endpoint and API calls need to know about the request.
pub(crate) struct Presented<'a> {
    pub method: &'a str,
    /// The request URL without query, as the client addressed it (`htu`).
    pub url: String,
    pub authorization: Option<&'a str>,
    pub dpop: Vec<&'a str>,
    pub form: HashMap<String, String>,
}

impl AuthState {
    pub(crate) fn new(secret: String) -> AuthState {
        let mut state = AuthState {
            secret,
            ..AuthState::default()
        };
        state.rotate_nonce();
        state
    }

    /// A new DPoP nonce; proofs with the old one are refused with `use_dpop_nonce`.
    pub(crate) fn rotate_nonce(&mut self) -> String {
        self.serial += 1;
        let digest = Sha256::digest(format!("{}|nonce|{}", self.secret, self.serial).as_bytes());
        self.nonce = URL_SAFE_NO_PAD.encode(&digest[..18]);
        self.nonce.clone()
    }

    /// Makes every issued access token expire.
    pub(crate) fn expire_tokens(&mut self) {
        self.issued.clear();
    }

    fn new_token(&mut self) -> String {
        self.serial += 1;
        let digest = Sha256::digest(format!("{}|token|{}", self.secret, self.serial).as_bytes());
        format!("eyJ.emu.{}", URL_SAFE_NO_PAD.encode(digest))
    }

    fn prune(&mut self, now_ms: i64) {
        if self.assertion_jtis.len() > 50_000 {
            self.assertion_jtis.retain(|_, exp| *exp * 1000 > now_ms);
        }
        if self.proof_jtis.len() > 50_000 {
            self.proof_jtis.retain(|_, until| *until > now_ms);
        }
        if self.issued.len() > 50_000 {
            self.issued.retain(|_, t| t.expires_ms > now_ms);
        }
    }

    /// Authenticates an API call.
    pub(crate) fn authenticate(
        &mut self,
        api_tokens: &[String],
        request: &Presented<'_>,
        now_ms: i64,
    ) -> Result<Principal, AuthFailure> {
        let Some(header) = request.authorization else {
            return Err(AuthFailure::Missing);
        };
        let (scheme, credential) = header.split_once(' ').unwrap_or((header, ""));
        let credential = credential.trim();
        match scheme {
            s if s.eq_ignore_ascii_case("SSWS") => {
                if !credential.is_empty() && api_tokens.iter().any(|t| t == credential) {
                    Ok(Principal::ApiToken(credential.to_owned()))
                } else {
                    Err(AuthFailure::Invalid("an unknown API token".into()))
                }
            }
            s if s.eq_ignore_ascii_case("Bearer") || s.eq_ignore_ascii_case("DPoP") => {
                let issued = self
                    .issued
                    .get(credential)
                    .filter(|t| t.expires_ms > now_ms)
                    .cloned()
                    .ok_or_else(|| {
                        AuthFailure::Invalid("an unknown or expired access token".into())
                    })?;
                let dpop_scheme = s.eq_ignore_ascii_case("DPoP");
                match (&issued.jkt, dpop_scheme) {
                    (Some(_), false) => {
                        return Err(AuthFailure::Invalid(
                            "a DPoP-bound access token presented as Bearer".into(),
                        ))
                    }
                    (None, true) => {
                        return Err(AuthFailure::Invalid(
                            "a Bearer access token presented as DPoP".into(),
                        ))
                    }
                    (Some(jkt), true) => {
                        let proof = self
                            .check_proof(request, now_ms, Some(credential), false)
                            .map_err(AuthFailure::BadProof)?;
                        if &proof != jkt {
                            return Err(AuthFailure::BadProof(
                                "the proof's key is not the key the access token is bound to"
                                    .into(),
                            ));
                        }
                    }
                    (None, false) => {}
                }
                Ok(Principal::OAuth {
                    client_id: issued.client_id,
                    scopes: issued.scopes,
                })
            }
            _ => Err(AuthFailure::Invalid(format!(
                "the unknown scheme '{scheme}'"
            ))),
        }
    }

    /// Verifies a DPoP proof (RFC 9449 §4.3) and returns its key's thumbprint. `nonce`: whether
    /// the current nonce is required (the token endpoint).
    fn check_proof(
        &mut self,
        request: &Presented<'_>,
        now_ms: i64,
        access_token: Option<&str>,
        nonce: bool,
    ) -> Result<String, String> {
        // 1. exactly one DPoP header.
        let proof = match request.dpop.as_slice() {
            [] => return Err("The DPoP proof JWT header is missing.".into()),
            [one] => *one,
            _ => return Err("more than one DPoP header".into()),
        };
        // 2. a well-formed JWT.
        let parts: Vec<&str> = proof.split('.').collect();
        if parts.len() != 3 {
            return Err("the DPoP proof is not a JWT".into());
        }
        let raw_header: Value = URL_SAFE_NO_PAD
            .decode(parts[0])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("the DPoP proof header is not base64url JSON")?;
        // 3. typ dpop+jwt.
        if raw_header["typ"] != "dpop+jwt" {
            return Err("the DPoP proof's typ is not dpop+jwt".into());
        }
        // 4. an asymmetric algorithm the server supports.
        let header = jsonwebtoken::decode_header(proof)
            .map_err(|e| format!("the DPoP proof header: {e}"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!(
                "the DPoP proof algorithm {:?} is not supported",
                header.alg
            ));
        }
        // 5. a public key in `jwk` (no private part).
        if raw_header["jwk"].get("d").is_some() {
            return Err("the DPoP proof's jwk holds a private key".into());
        }
        let jwk: Jwk = header
            .jwk
            .clone()
            .ok_or("the DPoP proof has no jwk header")?;
        // 6. the signature verifies with that key.
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("the DPoP proof's jwk: {e}"))?;
        let claims: Value = verify(proof, &key, header.alg)
            .map_err(|e| format!("the DPoP proof signature: {e}"))?;
        // 7. jti, 8. htm, 9. htu.
        let jti = claims["jti"]
            .as_str()
            .ok_or("the DPoP proof has no jti")?
            .to_owned();
        if claims["htm"].as_str() != Some(request.method) {
            return Err(format!("the DPoP proof's htm is not {}", request.method));
        }
        let htu = claims["htu"].as_str().unwrap_or("");
        let htu = htu.split(['?', '#']).next().unwrap_or("");
        if htu != request.url {
            return Err(format!("the DPoP proof's htu is not {}", request.url));
        }
        // 10. nonce.
        if nonce && claims["nonce"].as_str() != Some(self.nonce.as_str()) {
            return Err("use_dpop_nonce".into());
        }
        // 11. iat within the window.
        let iat = claims["iat"].as_i64().ok_or("the DPoP proof has no iat")? * 1000;
        if iat < now_ms - PROOF_PAST_MS || iat > now_ms + PROOF_FUTURE_MS {
            return Err("the DPoP proof's iat is outside the acceptable window".into());
        }
        // 12. ath with an access token.
        if let Some(token) = access_token {
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            if claims["ath"].as_str() != Some(ath.as_str()) {
                return Err("the DPoP proof's ath does not match the access token".into());
            }
        }
        if self.proof_jtis.contains_key(&jti) {
            return Err("the DPoP proof's jti was already used".into());
        }
        self.proof_jtis
            .insert(jti, iat + PROOF_PAST_MS + PROOF_FUTURE_MS);
        jwk.thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("the DPoP proof's jwk: {e}"))
    }

    /// `POST /oauth2/v1/token`.
    pub(crate) fn token(
        &mut self,
        apps: &[ServiceApp],
        request: &Presented<'_>,
        now_ms: i64,
        lifetime_secs: i64,
    ) -> Reply {
        self.prune(now_ms);
        let form = &request.form;
        if request.method != "POST" {
            return oauth_error(405, "invalid_request", "The token endpoint takes POST.");
        }
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            Some(other) => {
                return oauth_error(
                    400,
                    "unsupported_grant_type",
                    format!("The grant_type '{other}' is not supported for this client; use client_credentials."),
                )
            }
            None => return oauth_error(400, "invalid_request", "The grant_type parameter is missing."),
        }
        let Some(assertion) = form.get("client_assertion") else {
            return oauth_error(
                401,
                "invalid_client",
                "Client authentication failed: the client_assertion (private_key_jwt) is missing.",
            );
        };
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return oauth_error(
                401,
                "invalid_client",
                format!("The client_assertion_type must be {JWT_BEARER}."),
            );
        }
        // Which app: the assertion's iss (checked against its signature below).
        let unverified: Value = assertion
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let iss = unverified["iss"].as_str().unwrap_or("");
        let Some(app) = apps.iter().find(|a| a.client_id == iss) else {
            return oauth_error(
                401,
                "invalid_client",
                "The client_assertion's iss is not a registered client_id.",
            );
        };
        if form.get("client_id").is_some_and(|c| c != &app.client_id) {
            return oauth_error(
                401,
                "invalid_client",
                "The client_id does not match the client_assertion's iss.",
            );
        }
        // DPoP first (see the module docs).
        let mut jkt = None;
        if app.require_dpop || !request.dpop.is_empty() {
            match self.check_proof(request, now_ms, None, true) {
                Ok(thumbprint) => jkt = Some(thumbprint),
                Err(e) if e == "use_dpop_nonce" => {
                    return oauth_error(
                        400,
                        "use_dpop_nonce",
                        "Authorization server requires nonce in DPoP proof.",
                    )
                    .with_header("DPoP-Nonce", self.nonce.clone())
                }
                Err(e) => return oauth_error(400, "invalid_dpop_proof", e),
            }
        }
        // The assertion: signature, then claims.
        let header = match jsonwebtoken::decode_header(assertion.as_str()) {
            Ok(h) => h,
            Err(e) => {
                return oauth_error(
                    401,
                    "invalid_client",
                    format!("The client_assertion is not a JWT: {e}."),
                )
            }
        };
        if !ALGORITHMS.contains(&header.alg) {
            return oauth_error(401, "invalid_client", format!("The client_assertion algorithm {:?} is not allowed; use RS256/384/512 or ES256/384/512.", header.alg));
        }
        let claims = app.keys.iter().find_map(|key| {
            let key = match key {
                AppKey::Pem(pem) => DecodingKey::from_rsa_pem(pem.as_bytes())
                    .or_else(|_| DecodingKey::from_ec_pem(pem.as_bytes()))
                    .ok()?,
                AppKey::Jwk(jwk) => {
                    DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).ok()?).ok()?
                }
            };
            verify(assertion, &key, header.alg).ok()
        });
        let Some(claims) = claims else {
            return oauth_error(
                401,
                "invalid_client",
                "The client_assertion signature is invalid.",
            );
        };
        let token_url = request.url.as_str();
        let aud_ok = match &claims["aud"] {
            Value::String(a) => a == token_url,
            Value::Array(a) => a.iter().any(|v| v == token_url),
            _ => false,
        };
        if !aud_ok {
            return oauth_error(
                401,
                "invalid_client",
                format!("The audience [aud] claim in the client_assertion must be {token_url}."),
            );
        }
        if claims["sub"].as_str() != Some(app.client_id.as_str()) {
            return oauth_error(
                401,
                "invalid_client",
                "The client_assertion's sub must be the client_id.",
            );
        }
        let now = now_ms.div_euclid(1000);
        let Some(exp) = claims["exp"].as_i64() else {
            return oauth_error(
                401,
                "invalid_client",
                "The client_assertion has no exp claim.",
            );
        };
        if exp <= now {
            return oauth_error(
                401,
                "invalid_client",
                "The client_assertion token is expired.",
            );
        }
        if exp > now + 3600 {
            return oauth_error(401, "invalid_client", "The client_assertion token has an expiration too far into the future (at most one hour).");
        }
        let Some(jti) = claims["jti"].as_str() else {
            return oauth_error(
                401,
                "invalid_client",
                "The client_assertion has no jti claim.",
            );
        };
        if self.assertion_jtis.contains_key(jti) {
            return oauth_error(
                401,
                "invalid_client",
                "The client_assertion token has already been used (jti replay).",
            );
        }
        self.assertion_jtis.insert(jti.to_owned(), exp);
        // Scopes: required, each granted to the app.
        let requested: Vec<String> = form
            .get("scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        if requested.is_empty() {
            return oauth_error(
                400,
                "invalid_scope",
                "The authorization server requires at least one scope.",
            );
        }
        let refused: Vec<&String> = requested
            .iter()
            .filter(|s| !app.scopes.contains(s))
            .collect();
        if !refused.is_empty() {
            let list: Vec<&str> = refused.iter().map(|s| s.as_str()).collect();
            return oauth_error(
                400,
                "invalid_scope",
                format!("The following scopes are not allowed: {}", list.join(" ")),
            );
        }
        let token = self.new_token();
        let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
        self.issued.insert(
            token.clone(),
            Issued {
                client_id: app.client_id.clone(),
                scopes: requested.clone(),
                expires_ms: now_ms + lifetime_secs * 1000,
                jkt,
            },
        );
        Reply::json(
            200,
            json!({
                "token_type": token_type,
                "expires_in": lifetime_secs,
                "access_token": token,
                "scope": requested.join(" "),
            }),
        )
        .with_header("Cache-Control", "no-cache, no-store")
        .with_header("Pragma", "no-cache")
    }
}

/// Verifies a JWS signature and returns the claims, leaving every claim check to the caller
/// (they are made on the emulator's clock, not the system's).
fn verify(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, key, &validation).map(|data| data.claims)
}
