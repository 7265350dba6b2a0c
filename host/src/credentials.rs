//! Host-held credentials: private keys the host signs with, and the certificates that go
//! with them (issue 20). A guest never holds a key: it writes `{{assertion:NAME}}` where a
//! client assertion belongs, and the host signs one there ([`crate::doors::http::secrets`]).
//!
//! **What is kept, and why.** A [`PrivateKeyCredential`] is loaded at each run from the
//! tenant file's `[secrets.NAME] kind = "private_key"` (so a rotated key or certificate file
//! is picked up at the next run, without a restart) and dropped with the run. It keeps:
//!
//! - the signing key, as a `jsonwebtoken` [`EncodingKey`] (zeroized on drop by that crate);
//!   every buffer that held key bytes on the way (the file's text, the PEM's DER, a SEC1 key
//!   rewrapped as PKCS#8) is a [`Zeroizing`] buffer, wiped when dropped;
//! - the key's public part (a JWK), to check the certificate against it;
//! - from the certificate, only what goes into an assertion or an alert: its `x5t#S256`
//!   and `x5t` thumbprints (base64url SHA-256 and SHA-1 of its DER, RFC 7515 §4.1.7–4.1.8)
//!   and its `notAfter` ([`PrivateKeyCredential::not_after`], the credential's expiry);
//! - the client id it signs for, the algorithm and the optional `kid`;
//! - with `dpop = true`, a second key, generated here for the run (ES256, P-256), that signs
//!   the DPoP proofs: Okta's DPoP guide says "The JWK that's used for DPoP authentication is
//!   separate from the JWK used for client authentication"
//!   (developer.okta.com/docs/guides/dpop/nonoktaresourceserver/main/, "What you need").
//!   A token the run obtains is bound to that key (RFC 9449 §6), and the run's proofs all
//!   come from it; it is never written anywhere and is wiped when the run ends.
//!
//! `Debug` never prints a key. Keys are parsed by kept crates only: `pem` for the armour,
//! `pkcs8` and `sec1` for the key structures, `x509-cert` for the certificate, `jsonwebtoken`
//! (RustCrypto's `rsa`, `p256`, `p384`) for signing, `sha1`/`sha2` for thumbprints.
//!
//! Accepted keys: PKCS#8 `PRIVATE KEY` (RSA, EC P-256, EC P-384), PKCS#1 `RSA PRIVATE KEY`,
//! SEC1 `EC PRIVATE KEY`. Encrypted keys are refused with the command that decrypts them.
//! Every error is one line naming the file, what is wrong and what to do.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use pkcs8::der::{Decode, Encode};
use zeroize::Zeroizing;

/// The algorithms a `[secrets.NAME] algorithm` may name, in the order the errors list them.
pub const ALGORITHMS: [&str; 8] = [
    "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "ES256", "ES384",
];

/// Lifetime of a client assertion: `exp = iat + 300`. Microsoft asks for an `exp` 5 to 10
/// minutes ahead (learn.microsoft.com/entra/identity-platform/certificate-credentials,
/// "Claims (payload)"); Okta accepts at most one hour
/// (developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp/, "Create and sign
/// the JWT": "exp … maximum of only an hour in the future").
pub const ASSERTION_LIFETIME_SECS: u64 = 300;

/// `algorithm = "…"` as a JWS algorithm, if it is one of [`ALGORITHMS`].
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        _ => return None,
    })
}

/// The default algorithm of an RSA key by the connector that asks for assertions (its
/// `describe` name), where [`KeyType::default_algorithm`]'s PS256 is refused by the receiver.
///
/// - `okta-users` (the Okta connector): Okta's org authorization server verifies
///   `private_key_jwt` client assertions signed with RS256, RS384, RS512, ES256, ES384 or
///   ES512 and no PS* algorithm (developer.okta.com/docs/guides/build-self-signed-jwt, "JWT
///   with a private key"; developer.okta.com/docs/api/openapi/okta-oauth/guides/client-auth,
///   "JWT with private key"; host/okta-emulator/OKTA.md, "Auth"), so RS256, the one every
///   Okta guide's key is generated for ("Algorithm — RSA256",
///   developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp, "Create a
///   public/private key pair").
///
/// Every other connector keeps PS256 (Entra ID: Microsoft's recommendation). An explicit
/// `algorithm` always wins; EC keys keep ES256/ES384, which Okta accepts too.
pub const RSA_DEFAULTS: &[(&str, Algorithm)] = &[("okta-users", Algorithm::RS256)];

/// The algorithm a key of `key_type` signs with when the tenant file sets none, for the
/// connector named `connector` (its `describe` name; None: not known, the key type's own
/// default): [`RSA_DEFAULTS`], else [`KeyType::default_algorithm`].
pub fn default_algorithm(key_type: KeyType, connector: Option<&str>) -> Algorithm {
    let table = connector.and_then(|name| RSA_DEFAULTS.iter().find(|(n, _)| *n == name));
    match (key_type, table) {
        (KeyType::Rsa, Some((_, alg))) => *alg,
        _ => key_type.default_algorithm(),
    }
}

/// What kind of key a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA (any size the `rsa` crate accepts).
    Rsa,
    /// EC on P-256.
    P256,
    /// EC on P-384.
    P384,
}

impl KeyType {
    /// The algorithm used when `algorithm` is not set: PS256 for RSA (Microsoft's current
    /// recommendation, learn.microsoft.com/entra/identity-platform/certificate-credentials),
    /// ES256 for P-256, ES384 for P-384.
    pub fn default_algorithm(self) -> Algorithm {
        match self {
            KeyType::Rsa => Algorithm::PS256,
            KeyType::P256 => Algorithm::ES256,
            KeyType::P384 => Algorithm::ES384,
        }
    }

    /// Whether this key can sign with `alg`.
    pub fn signs(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyType::Rsa => matches!(alg, PS256 | PS384 | PS512 | RS256 | RS384 | RS512),
            KeyType::P256 => alg == ES256,
            KeyType::P384 => alg == ES384,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyType::Rsa => "an RSA key",
            KeyType::P256 => "an EC P-256 key",
            KeyType::P384 => "an EC P-384 key",
        }
    }

    fn fits(self) -> &'static str {
        match self {
            KeyType::Rsa => "PS256, PS384, PS512, RS256, RS384 or RS512",
            KeyType::P256 => "ES256",
            KeyType::P384 => "ES384",
        }
    }
}

/// A private key ready to sign, with its public part. `Debug` shows neither key.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    key_type: KeyType,
    public: AlgorithmParameters,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_type", &self.key_type)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// The kind of key.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The public key as a JWK carrying `alg` (never the private part: RFC 9449 §4.2 "MUST
    /// NOT contain a private key").
    pub fn public_jwk(&self, alg: Algorithm) -> Jwk {
        let mut jwk = Jwk {
            common: Default::default(),
            algorithm: self.public.clone(),
        };
        jwk.common.key_algorithm = Some(alg.into());
        jwk
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// Parses a PEM private key (`what` and `path` name it in errors, e.g. "key file" and the
/// path). See the module doc for the accepted forms.
pub fn parse_private_key(text: &str, what: &str, path: &str) -> Result<SigningKey, String> {
    let convert = format!(
        "convert it with: openssl pkey -in {path} -out {path}.pem (PKCS#8 'PRIVATE KEY', PKCS#1 'RSA PRIVATE KEY' or SEC1 'EC PRIVATE KEY')"
    );
    let blocks = pem::parse_many(text.as_bytes())
        .map_err(|_| format!("{what} {path} is not PEM text; {convert}"))?;
    // PKCS#8 `ENCRYPTED PRIVATE KEY` (RFC 5958 §3), or OpenSSL's legacy encrypted PEM
    // (`Proc-Type: 4,ENCRYPTED`, RFC 1421 §4.6.1.1).
    if blocks.iter().any(|b| {
        b.tag() == "ENCRYPTED PRIVATE KEY"
            || b.headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED"))
    }) {
        return Err(format!(
            "{what} {path} holds an encrypted private key, which the host cannot use; decrypt it to a file only this user can read: openssl pkey -in {path} -out {path}.plain && chmod 600 {path}.plain, and name that file"
        ));
    }
    let mut found = None;
    for block in blocks {
        if matches!(
            block.tag(),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"
        ) && found.is_none()
        {
            let tag = block.tag().to_string();
            found = Some((tag, Zeroizing::new(block.into_contents())));
        } else {
            // Other blocks (a certificate kept beside the key, EC PARAMETERS) are dropped;
            // their bytes are wiped too, in case one was a second key.
            drop(Zeroizing::new(block.into_contents()));
        }
    }
    let Some((tag, der)) = found else {
        return Err(format!("{what} {path} holds no private key; {convert}"));
    };
    let bad = |detail: &str| format!("{what} {path}: {detail}; {convert}");
    let (key, key_type) = match tag.as_str() {
        "RSA PRIVATE KEY" => (EncodingKey::from_rsa_der(&der), KeyType::Rsa),
        "EC PRIVATE KEY" => {
            let (pkcs8, key_type) = sec1_to_pkcs8(&der).map_err(|e| bad(&e))?;
            (EncodingKey::from_ec_der(&pkcs8), key_type)
        }
        _ => {
            let info = pkcs8::PrivateKeyInfoRef::from_der(&der)
                .map_err(|_| bad("the PRIVATE KEY block is not PKCS#8"))?;
            match info.algorithm.oid.to_string().as_str() {
                OID_RSA => (
                    EncodingKey::from_rsa_der(info.private_key.as_bytes()),
                    KeyType::Rsa,
                ),
                OID_EC => {
                    let curve = info
                        .algorithm
                        .parameters
                        .and_then(|p| p.decode_as::<pkcs8::ObjectIdentifier>().ok())
                        .map(|oid| oid.to_string());
                    let key_type = match curve.as_deref() {
                        Some(OID_P256) => KeyType::P256,
                        Some(OID_P384) => KeyType::P384,
                        _ => {
                            return Err(format!(
                                "{what} {path} is an EC key on a curve the host does not sign with; use P-256 or P-384 (openssl ecparam -name prime256v1 -genkey -noout | openssl pkey -out key.pem)"
                            ))
                        }
                    };
                    (EncodingKey::from_ec_der(&der), key_type)
                }
                other => {
                    return Err(format!(
                        "{what} {path} is a key of algorithm {other}, which the host does not sign with; use an RSA (2048 bits or more) or EC P-256/P-384 key"
                    ))
                }
            }
        }
    };
    let public = Jwk::from_encoding_key(&key, key_type.default_algorithm())
        .map_err(|e| bad(&format!("the key cannot be read ({e})")))?
        .algorithm;
    Ok(SigningKey {
        key,
        key_type,
        public,
    })
}

/// A SEC1 `EC PRIVATE KEY` rewrapped as PKCS#8 (what the signer takes): the same key bytes,
/// with the curve named in the PKCS#8 algorithm (RFC 5915 §2, RFC 5958 §2).
fn sec1_to_pkcs8(der: &[u8]) -> Result<(Zeroizing<Vec<u8>>, KeyType), String> {
    let key = sec1::EcPrivateKey::from_der(der)
        .map_err(|_| "the EC PRIVATE KEY block is not a SEC1 key".to_string())?;
    let Some(sec1::EcParameters::NamedCurve(curve)) = key.parameters else {
        return Err("the EC PRIVATE KEY does not name its curve".into());
    };
    let key_type = match curve.to_string().as_str() {
        OID_P256 => KeyType::P256,
        OID_P384 => KeyType::P384,
        _ => return Err("the EC key is on a curve other than P-256 or P-384".into()),
    };
    Ok((wrap_ec_pkcs8(der, curve)?, key_type))
}

/// PKCS#8 `PrivateKeyInfo` around a SEC1 key on `curve`.
fn wrap_ec_pkcs8(
    sec1_der: &[u8],
    curve: pkcs8::ObjectIdentifier,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let algorithm = pkcs8::spki::AlgorithmIdentifier {
        oid: pkcs8::ObjectIdentifier::new_unwrap(OID_EC),
        parameters: Some(
            pkcs8::der::Any::encode_from(&curve).map_err(|e| format!("the curve ({e})"))?,
        ),
    };
    let octets = pkcs8::der::asn1::OctetString::new(sec1_der.to_vec())
        .map_err(|e| format!("the key ({e})"))?;
    let info = pkcs8::PrivateKeyInfoOwned::new(algorithm, octets);
    let out = info.to_der().map(Zeroizing::new);
    // The owned copy of the key bytes inside `info` is wiped before it is freed.
    let mut inner = info.private_key.into_bytes();
    zeroize::Zeroize::zeroize(&mut inner);
    out.map_err(|e| format!("the key cannot be re-encoded ({e})"))
}

/// What the host keeps of a certificate (see the module doc).
#[derive(Clone, Debug)]
pub struct CertificateInfo {
    /// base64url(SHA-256(DER)): the `x5t#S256` header.
    pub x5t_s256: String,
    /// base64url(SHA-1(DER)): the `x5t` header.
    pub x5t: String,
    /// The certificate's `notAfter`.
    pub not_after: SystemTime,
    public: AlgorithmParameters,
}

/// Parses the first `CERTIFICATE` of a PEM file.
pub fn parse_certificate(text: &str, path: &str) -> Result<CertificateInfo, String> {
    let what = "certificate file";
    let fix = "name the PEM X.509 certificate uploaded to the app registration (-----BEGIN CERTIFICATE-----)";
    let blocks = pem::parse_many(text.as_bytes())
        .map_err(|_| format!("{what} {path} is not PEM text; {fix}"))?;
    let der = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.contents().to_vec())
        .ok_or_else(|| format!("{what} {path} holds no CERTIFICATE block; {fix}"))?;
    // A private key must not sit in the certificate file: it is not read as a secret.
    if blocks.iter().any(|b| b.tag().contains("PRIVATE KEY")) {
        return Err(format!(
            "{what} {path} also holds a private key; keep the key in its own file (file = \"…\", chmod 600) and only the certificate here"
        ));
    }
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| format!("{what} {path} is not an X.509 certificate ({e}); {fix}"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let raw = spki.subject_public_key.raw_bytes();
    let decoding = match spki.algorithm.oid.to_string().as_str() {
        OID_RSA => DecodingKey::from_rsa_der(raw),
        OID_EC => DecodingKey::from_ec_der(raw),
        other => {
            return Err(format!(
                "{what} {path} holds a public key of algorithm {other}; the host signs with RSA or EC P-256/P-384 keys"
            ))
        }
    };
    let public = Jwk::from_decoding_key(&decoding, None)
        .map_err(|e| format!("{what} {path}: its public key cannot be read ({e})"))?
        .algorithm;
    let not_after = cert.tbs_certificate.validity.not_after.to_system_time();
    Ok(CertificateInfo {
        x5t_s256: URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(&der)),
        x5t: URL_SAFE_NO_PAD.encode(<sha1::Sha1 as sha1::Digest>::digest(&der)),
        not_after,
        public,
    })
}

/// Where a private key credential comes from and what it signs, as the tenant file says
/// (plain values: [`crate::assembly`] builds it from `[secrets.NAME]`).
#[derive(Clone, Debug, Default)]
pub struct CredentialSpec {
    /// The key: an environment variable or a file, by [`crate::secrets`]' rules.
    pub key: Option<crate::secrets::SecretSource>,
    /// The certificate file, if any.
    pub certificate: Option<PathBuf>,
    /// `algorithm = "…"`, if set.
    pub algorithm: Option<String>,
    /// The client id: `iss` and `sub`.
    pub client_id: String,
    /// `x5t = …`, if set.
    pub x5t: Option<bool>,
    /// `kid = "…"`, if set.
    pub kid: Option<String>,
    /// `dpop = true`.
    pub dpop: bool,
    /// The `describe` name of the connector the assertions are for (set once its component
    /// is loaded: [`crate::config::TenantConfig::connector_name`]); with no `algorithm`, it
    /// picks an RSA key's default ([`default_algorithm`]).
    pub connector: Option<String>,
}

/// A loaded private key credential: signs client assertions and, with `dpop`, DPoP proofs.
#[derive(Clone)]
pub struct PrivateKeyCredential {
    client_id: String,
    algorithm: Algorithm,
    key: SigningKey,
    certificate: Option<CertificateInfo>,
    x5t: bool,
    kid: Option<String>,
    dpop: Option<SigningKey>,
}

impl std::fmt::Debug for PrivateKeyCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKeyCredential")
            .field("client_id", &self.client_id)
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .field("certificate", &self.certificate)
            .field("dpop", &self.dpop.is_some())
            .finish()
    }
}

/// Loads a credential: the key (and its file's permissions: [`crate::secrets`]), the
/// certificate, and checks that they belong together and fit the algorithm.
pub fn load(spec: &CredentialSpec) -> Result<PrivateKeyCredential, String> {
    let source = spec
        .key
        .as_ref()
        .ok_or_else(|| "needs exactly one of env = \"VAR\" or file = \"path\"".to_string())?;
    let (text, shown) = match source {
        crate::secrets::SecretSource::File(path) => {
            let text = Zeroizing::new(
                crate::files::read_text_file(path, crate::files::MAX_SECRET_BYTES, "key file")
                    .map_err(|e| e.to_string())?,
            );
            crate::secrets::warn_if_exposed(path, "key file");
            (text, path.display().to_string())
        }
        crate::secrets::SecretSource::Env(var) => (
            Zeroizing::new(source.read().map_err(|e| e.to_string())?),
            format!("in environment variable {var}"),
        ),
    };
    let what = match source {
        crate::secrets::SecretSource::File(_) => "key file",
        crate::secrets::SecretSource::Env(_) => "the key",
    };
    let key = parse_private_key(&text, what, &shown)?;
    drop(text);
    let algorithm = match &spec.algorithm {
        None => default_algorithm(key.key_type, spec.connector.as_deref()),
        Some(name) => parse_algorithm(name).ok_or_else(|| {
            format!(
                "algorithm = \"{name}\" is not one of {}",
                ALGORITHMS.join(", ")
            )
        })?,
    };
    if !key.key_type.signs(algorithm) {
        return Err(format!(
            "algorithm = \"{algorithm:?}\" does not fit the key, {} ({shown}); set algorithm to {} or remove it",
            key.key_type.describe(),
            key.key_type.fits()
        ));
    }
    let certificate = match &spec.certificate {
        None => None,
        Some(path) => {
            let text = crate::files::read_text_file(
                path,
                crate::files::MAX_SECRET_BYTES,
                "certificate file",
            )
            .map_err(|e| e.to_string())?;
            let cert = parse_certificate(&text, &path.display().to_string())?;
            if cert.public != key.public {
                return Err(format!(
                    "certificate file {} does not hold the public key of {shown}; name the certificate made from this key (openssl req -new -x509 -key <key> -out <certificate>) and upload that one",
                    path.display()
                ));
            }
            Some(cert)
        }
    };
    let rs = matches!(
        algorithm,
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
    );
    let x5t = spec.x5t.unwrap_or(rs) && certificate.is_some();
    if spec.x5t == Some(true) && certificate.is_none() {
        return Err(
            "x5t = true needs certificate = \"…\" (the thumbprint is the certificate's)".into(),
        );
    }
    if spec.client_id.is_empty() {
        return Err(
            "needs client_id = \"…\" (the application (client) id the assertion is signed for)"
                .into(),
        );
    }
    let dpop = if spec.dpop {
        Some(ephemeral_p256()?)
    } else {
        None
    };
    Ok(PrivateKeyCredential {
        client_id: spec.client_id.clone(),
        algorithm,
        key,
        certificate,
        x5t,
        kid: spec.kid.clone(),
        dpop,
    })
}

/// A fresh P-256 key for this run's DPoP proofs: 32 random bytes from the OS as a SEC1 key
/// (re-drawn in the rare case they are not a valid scalar), never stored.
fn ephemeral_p256() -> Result<SigningKey, String> {
    let curve = pkcs8::ObjectIdentifier::new_unwrap(OID_P256);
    for _ in 0..8 {
        let mut scalar = Zeroizing::new([0u8; 32]);
        getrandom::fill(scalar.as_mut())
            .map_err(|e| format!("no randomness for a DPoP key: {e}"))?;
        let sec1 = sec1::EcPrivateKey {
            private_key: scalar.as_ref(),
            parameters: Some(sec1::EcParameters::NamedCurve(curve)),
            public_key: None,
        };
        let Ok(sec1_der) = sec1.to_der().map(Zeroizing::new) else {
            continue;
        };
        let pkcs8 = wrap_ec_pkcs8(&sec1_der, curve)?;
        let key = EncodingKey::from_ec_der(&pkcs8);
        if let Ok(jwk) = Jwk::from_encoding_key(&key, Algorithm::ES256) {
            return Ok(SigningKey {
                key,
                key_type: KeyType::P256,
                public: jwk.algorithm,
            });
        }
    }
    Err("could not make a DPoP key".into())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `url` without its query and fragment: an assertion's `aud` and a proof's `htu`
/// (RFC 9449 §4.2: "without query and fragment parts").
pub fn without_query(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

impl PrivateKeyCredential {
    /// When the certificate stops being valid (`notAfter`), when there is one.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.certificate.as_ref().map(|c| c.not_after)
    }

    /// The algorithm assertions are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The certificate's thumbprints and expiry, when there is one.
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        self.certificate.as_ref()
    }

    /// Whether this credential adds DPoP proofs.
    pub fn dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// A client assertion (RFC 7523 §3) for `audience` (the token endpoint's URL without
    /// query): header `alg`, `typ` JWT, `x5t#S256` with a certificate, `x5t` when enabled,
    /// `kid` when set; claims `aud`, `iss` = `sub` = the client id, a random `jti` (UUID v4),
    /// `iat` = `nbf` = now, `exp` = now + [`ASSERTION_LIFETIME_SECS`]. The claims are those of
    /// learn.microsoft.com/entra/identity-platform/certificate-credentials ("Claims
    /// (payload)") and of Okta's private_key_jwt (developer.okta.com/docs/guides/
    /// implement-oauth-for-okta-serviceapp/, "Create and sign the JWT").
    pub fn assertion(&self, audience: &str) -> Result<String, String> {
        let mut header = Header::new(self.algorithm);
        if let Some(cert) = &self.certificate {
            header.x5t_s256 = Some(cert.x5t_s256.clone());
            if self.x5t {
                header.x5t = Some(cert.x5t.clone());
            }
        }
        header.kid = self.kid.clone();
        let now = now_secs();
        let claims = serde_json::json!({
            "aud": audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(&header, &claims, &self.key.key)
            .map_err(|e| format!("the host could not sign the client assertion ({e})"))
    }

    /// A DPoP proof (RFC 9449 §4.2) for a request `htm` to `htu` (no query), signed with the
    /// run's DPoP key: header `typ` = `dpop+jwt`, `alg` = ES256, `jwk` = the public key;
    /// claims `jti`, `htm`, `htu`, `iat`, `nonce` when the server gave one (§8, §9), and
    /// `ath` = base64url(SHA-256(access token)) when the request carries one (§7.1).
    /// `None` when this credential has no DPoP key.
    pub fn dpop_proof(
        &self,
        htm: &str,
        htu: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Option<Result<String, String>> {
        let key = self.dpop.as_ref()?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(key.public_jwk(Algorithm::ES256));
        let mut claims = serde_json::json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": htm,
            "htu": htu,
            "iat": now_secs(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        if let Some(token) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()))
                .into();
        }
        Some(
            jsonwebtoken::encode(&header, &claims, &key.key)
                .map_err(|e| format!("the host could not sign the DPoP proof ({e})")),
        )
    }
}
