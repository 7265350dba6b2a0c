//! Client assertions: the certificate credential of the client-credentials flow, verified for
//! real, as the Microsoft identity platform verifies them.
//!
//! An app whose registration holds certificates ("Certificates & secrets > Certificates")
//! authenticates with `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! and `client_assertion=<a JWT signed with the certificate's private key>` instead of a
//! `client_secret`. Nothing here comes from the connector: the rules are Microsoft's pages,
//! cited beside each check, and the signature is checked with the registered certificate's
//! public key by `jsonwebtoken` (the certificate parsed by `x509-cert`).
//!
//! Sources:
//! - Entra `identity-platform/certificate-credentials.md` ("Assertion format", ms.date
//!   01/04/2025): header `alg` "Should be PS256", `typ` JWT, `x5t#S256` "Base64url-encoded
//!   SHA-256 thumbprint of the X.509 certificate's DER encoding" (earlier versions of the page:
//!   `alg` RS256 and `x5t`, the SHA-1 thumbprint); claims `aud`
//!   `https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token`, `iss` and `sub` the
//!   client id, `jti` a GUID, `nbf`, `iat`, `exp` ("keep it short - 5-10 minutes after `nbf` at
//!   most. Microsoft Entra ID doesn't place restrictions on the `exp` time currently": so no
//!   upper limit on `exp` here); "Use PSS padding"; "Using a client assertion": the fixed
//!   `client_assertion_type`; the `keyCredentials` of an app are "multi-valued, so you may
//!   upload multiple certificates".
//! - Entra `identity-platform/reference-error-codes.md`: AADSTS700027 "Client assertion
//!   failed signature validation", AADSTS900144 (a missing parameter), AADSTS90023
//!   InvalidRequest, AADSTS50013 InvalidAssertion.
//! - The messages the endpoint answers, as quoted in Microsoft's own trackers:
//!   AADSTS700027 "The certificate with identifier used to sign the client assertion is not
//!   registered on application. [Reason - The key was not found., Thumbprint of key used by
//!   client: '…', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see
//!   configured keys for app Id '…'. …]" (AzureAD/microsoft-authentication-library-for-js#8339,
//!   MicrosoftDocs/entra-docs#1301 for an `x5t#S256` a tenant did not know);
//!   AADSTS700027 "Client assertion contains an invalid signature. [Reason - The key used is
//!   expired., Thumbprint of key used by client: '…', Found key 'Start=01/28/2018 16:00:00,
//!   End=01/28/2019 16:00:00', …]" (microsoft/azure-tools-for-java#2785: the registered
//!   certificate expired); "[Reason - Key was found, but use of the key to verify the signature
//!   failed., …]" (microsoftgraph/msgraph-sdk-php#1585);
//!   AADSTS700024 "Client assertion is not within its valid time range. Current time: …,
//!   assertion valid from …, expiry time of assertion …. Review the documentation at
//!   <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>"
//!   (AzureAD/microsoft-authentication-library-for-dotnet#4951, -for-java#984);
//!   AADSTS700023 "Client assertion audience claim does not match Realm issuer."
//!   (AzureAD/microsoft-authentication-library-for-dotnet#2746); AADSTS50048 "Subject must match
//!   the issuer claim in the client assertion." (-for-java#430); AADSTS50027 "Invalid JWT token.
//!   No certificate thumbprint specified in token header." (-for-dotnet#124) and "JWT token is
//!   invalid or malformed." (panva/openid-client#348); AADSTS700026 "Client application has no
//!   configured keys." (-for-dotnet#2938). AADSTS700021 ("Client assertion application
//!   identifier doesn't match 'client_id' parameter.") was not found in the stored copies: its
//!   message is the one the endpoint is widely quoted answering.
//! - Clock skew: Entra documents none; 5 minutes is the default of Microsoft's own token
//!   validation (`Microsoft.IdentityModel.Tokens.TokenValidationParameters.DefaultClockSkew`,
//!   "300 seconds (5 minutes)", learn.microsoft.com/dotnet/api).
//! - `jti` replay: RFC 7523 section 3 ("the authorization server MAY ensure that JWTs are not
//!   replayed by maintaining the set of used "jti" values for the length of time for which
//!   the JWT would be considered valid based on the applicable "exp" instant"); Entra documents
//!   no code for a replay, so the emulator answers the documented AADSTS50013 InvalidAssertion.
//!   The emulator is at least as strict as Entra here on purpose: a client that reuses an
//!   assertion is caught.

use std::collections::HashMap;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha1::Digest as _;
use x509_cert::der::{DecodePem, Encode};

/// The only `client_assertion_type` the identity platform takes (certificate-credentials.md,
/// "Using a client assertion": "This is a fixed value").
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew allowed on `nbf` and `exp`: 5 minutes (see the module's sources).
pub(crate) const CLOCK_SKEW_SECS: i64 = 300;

/// The algorithms an emulated tenant accepts by default: PS256 (the current page) and RS256
/// (its earlier versions).
pub(crate) const DEFAULT_ALGORITHMS: [&str; 2] = ["PS256", "RS256"];

/// `rsaEncryption` (RFC 8017 appendix C).
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// `id-ecPublicKey` (RFC 5480 section 2.1.1).
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// One certificate registered on the app: its thumbprints, public key and validity.
#[derive(Clone)]
pub(crate) struct RegisteredCertificate {
    sha1: [u8; 20],
    sha256: [u8; 32],
    key: DecodingKey,
    not_before: i64,
    not_after: i64,
}

impl RegisteredCertificate {
    /// Parses a PEM `CERTIFICATE` (what the portal takes: .cer, .pem, .crt). `Err` is one line.
    pub(crate) fn from_pem(pem: &str) -> Result<RegisteredCertificate, String> {
        let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes()).map_err(|e| {
            format!("a registered client certificate is not a PEM X.509 certificate ({e}): pass the text of a .crt/.pem file")
        })?;
        let der = cert
            .to_der()
            .map_err(|e| format!("a registered client certificate cannot be encoded ({e})"))?;
        let tbs = &cert.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        let bits = spki.subject_public_key.raw_bytes();
        let key = match spki.algorithm.oid.to_string().as_str() {
            RSA_ENCRYPTION => DecodingKey::from_rsa_der(bits),
            EC_PUBLIC_KEY => DecodingKey::from_ec_der(bits),
            other => {
                return Err(format!(
                    "a registered client certificate holds a key of algorithm {other}: use an RSA (or EC) certificate"
                ))
            }
        };
        let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        Ok(RegisteredCertificate {
            sha1: sha1::Sha1::digest(&der).into(),
            sha256: sha2::Sha256::digest(&der).into(),
            key,
            not_before: secs(tbs.validity.not_before),
            not_after: secs(tbs.validity.not_after),
        })
    }
}

/// Why the token endpoint refuses an assertion: what `login_error` sends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The OAuth `error`.
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u32,
    /// The message after `AADSTSnnnn: `.
    pub message: String,
}

fn refuse(status: u16, error: &'static str, code: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error,
        code,
        message: message.into(),
    }
}

fn invalid_client(code: u32, message: impl Into<String>) -> Refusal {
    refuse(401, "invalid_client", code, message)
}

/// The `jti` of every assertion accepted, kept until it could no longer be accepted anyway
/// (its `exp` plus the skew), so a replay inside that window is refused.
#[derive(Default)]
pub(crate) struct JtiBook {
    seen: HashMap<String, i64>,
}

impl JtiBook {
    /// Records `jti` (forgotten after `until`); false when it is already recorded.
    fn record(&mut self, jti: &str, until: i64, now: i64) -> bool {
        if self.seen.len() > 10_000 {
            self.seen.retain(|_, until| *until >= now);
        }
        match self.seen.get(jti) {
            Some(kept) if *kept >= now => false,
            _ => {
                self.seen.insert(jti.to_owned(), until);
                true
            }
        }
    }
}

/// What an assertion is checked against.
pub(crate) struct Expected<'a> {
    /// The certificates registered on the app.
    pub certificates: &'a [RegisteredCertificate],
    /// The `alg` values the tenant accepts.
    pub algorithms: &'a [String],
    /// The application id of the request's `client_id` (already known to the tenant).
    pub client_id: &'a str,
    /// The token endpoint's URL as the request reached it: what `aud` must be.
    pub token_url: &'a str,
    /// Now, Unix seconds.
    pub now: i64,
}

/// Verifies one token request's client assertion, in the order: the assertion type, the JWT's
/// shape, the certificate it names, that certificate's validity, the algorithm and signature,
/// then the claims (`iss`, `sub`, `aud`, the time range, `jti`). Claims are read only once the
/// signature holds. An accepted assertion's `jti` is recorded in `book`.
pub(crate) fn verify(
    expected: &Expected<'_>,
    assertion_type: Option<&str>,
    assertion: Option<&str>,
    book: &mut JtiBook,
) -> Result<(), Refusal> {
    let Some(assertion_type) = assertion_type else {
        return Err(refuse(
            400,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'client_assertion_type'.",
        ));
    };
    if assertion_type != JWT_BEARER {
        return Err(refuse(
            400,
            "invalid_request",
            90_023,
            format!("The authentication service request isn't valid: client_assertion_type '{assertion_type}' is not supported; the only value is '{JWT_BEARER}'."),
        ));
    }
    let Some(assertion) = assertion else {
        return Err(refuse(
            400,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'client_assertion'.",
        ));
    };
    let malformed = |why: &str| {
        refuse(
            400,
            "invalid_request",
            50_027,
            format!("JWT token is invalid or malformed ({why})."),
        )
    };
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|e| malformed(&format!("header: {e}")))?;
    if expected.certificates.is_empty() {
        return Err(invalid_client(
            700_026,
            "Client application has no configured keys.",
        ));
    }
    // The thumbprint that names the key: x5t#S256 (the current page), else x5t (SHA-1).
    let (named, shown) = match (&header.x5t_s256, &header.x5t) {
        (Some(s256), _) => {
            let bytes = decode_thumbprint(s256);
            let found = expected
                .certificates
                .iter()
                .find(|c| bytes.as_deref() == Some(&c.sha256[..]));
            (found, shown_thumbprint(s256, bytes.as_deref()))
        }
        (None, Some(x5t)) => {
            let bytes = decode_thumbprint(x5t);
            let found = expected
                .certificates
                .iter()
                .find(|c| bytes.as_deref() == Some(&c.sha1[..]));
            (found, shown_thumbprint(x5t, bytes.as_deref()))
        }
        (None, None) => {
            return Err(refuse(
                400,
                "invalid_request",
                50_027,
                "Invalid JWT token. No certificate thumbprint specified in token header.",
            ))
        }
    };
    let see_keys = format!(
        "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.",
        expected.client_id
    );
    let Some(certificate) = named else {
        return Err(invalid_client(
            700_027,
            format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{shown}', {see_keys}]"),
        ));
    };
    // Both thumbprints sent: they must name the same certificate.
    if let (Some(_), Some(x5t)) = (&header.x5t_s256, &header.x5t) {
        if decode_thumbprint(x5t).as_deref() != Some(&certificate.sha1[..]) {
            return Err(invalid_client(
                700_027,
                format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', {see_keys}]", shown_thumbprint(x5t, decode_thumbprint(x5t).as_deref())),
            ));
        }
    }
    let found_key = format!(
        "Found key 'Start={}, End={}'",
        portal_date(certificate.not_before),
        portal_date(certificate.not_after)
    );
    if expected.now > certificate.not_after || expected.now < certificate.not_before {
        return Err(invalid_client(
            700_027,
            format!("Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{shown}', {found_key}, {see_keys}]"),
        ));
    }
    let signature_failed = || {
        invalid_client(
            700_027,
            format!("Client assertion contains an invalid signature. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '{shown}', {found_key}, {see_keys}]"),
        )
    };
    // The tenant's algorithm policy: an `alg` it does not take fails like a bad signature
    // (the "some tenants answer AADSTS700027 to PS256, others to RS256" case).
    let alg = format!("{:?}", header.alg);
    if !expected.algorithms.iter().any(|a| a == &alg) || !is_asymmetric(header.alg) {
        return Err(signature_failed());
    }
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims: Value = jsonwebtoken::decode::<Value>(assertion, &certificate.key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_)
            | jsonwebtoken::errors::ErrorKind::Base64(_)
            | jsonwebtoken::errors::ErrorKind::Utf8(_)
            | jsonwebtoken::errors::ErrorKind::InvalidToken => malformed(&format!("{e}")),
            _ => signature_failed(),
        })?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let issuer = text("iss").unwrap_or("");
    if issuer != expected.client_id {
        return Err(invalid_client(
            700_021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
        ));
    }
    if text("sub") != Some(issuer) {
        return Err(invalid_client(
            50_048,
            "Subject must match the issuer claim in the client assertion.",
        ));
    }
    if text("aud") != Some(expected.token_url) {
        return Err(invalid_client(
            700_023,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
        ));
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_f64).map(|t| t as i64);
    let not_before = time("nbf").unwrap_or(0);
    let expiry = time("exp").unwrap_or(0);
    if expected.now + CLOCK_SKEW_SECS < not_before || expected.now - CLOCK_SKEW_SECS >= expiry {
        return Err(invalid_client(
            700_024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                sts_time(expected.now),
                sts_time(not_before),
                sts_time(expiry)
            ),
        ));
    }
    let Some(jti) = text("jti").filter(|j| !j.is_empty()) else {
        return Err(malformed("the client assertion has no 'jti' claim"));
    };
    // `exp` is the client's (Entra sets no upper bound): a huge one must not overflow.
    if !book.record(jti, expiry.saturating_add(CLOCK_SKEW_SECS), expected.now) {
        return Err(invalid_client(
            50_013,
            format!("Assertion is invalid: the client assertion with jti '{jti}' was already presented; sign a new assertion, with a new jti, for every token request."),
        ));
    }
    Ok(())
}

/// Whether `alg` is a public-key algorithm (never an HMAC over a shared secret).
fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// A base64url thumbprint's bytes (padding tolerated), if it decodes.
fn decode_thumbprint(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// A thumbprint as the endpoint quotes it: upper-case hex of its bytes (the text as sent if it
/// does not decode).
fn shown_thumbprint(text: &str, bytes: Option<&[u8]>) -> String {
    match bytes {
        Some(bytes) => bytes.iter().map(|b| format!("{b:02X}")).collect(),
        None => text.to_owned(),
    }
}

/// A date as the "Found key 'Start=…, End=…'" text shows it: `MM/DD/YYYY HH:MM:SS`, UTC.
fn portal_date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%m/%d/%Y %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A time as AADSTS700024 shows it: `2024-10-02T22:05:03.0000000Z`.
fn sts_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S.0000000Z").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_refused_again_until_its_assertion_could_no_longer_be_used() {
        let mut book = JtiBook::default();
        assert!(book.record("a", 1_000, 100));
        assert!(!book.record("a", 1_000, 999), "replayed inside the window");
        assert!(book.record("b", 1_000, 999));
        assert!(book.record("a", 2_000, 1_001), "forgotten after its window");
    }

    #[test]
    fn thumbprints_are_quoted_as_upper_case_hex() {
        assert_eq!(shown_thumbprint("x", Some(&[0xab, 0x01])), "AB01");
        assert_eq!(shown_thumbprint("not base64!", None), "not base64!");
        assert_eq!(decode_thumbprint("qwE"), Some(vec![0xab, 0x01]));
        assert_eq!(decode_thumbprint("qwE="), Some(vec![0xab, 0x01]));
    }

    #[test]
    fn times_read_as_the_endpoint_writes_them() {
        assert_eq!(sts_time(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(portal_date(1_517_155_200), "01/28/2018 16:00:00");
    }
}
