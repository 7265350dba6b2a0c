//! Tenant secrets: loaded by the host ([`crate::secrets`], through [`crate::assembly`]),
//! never handed to the guest. This door receives the values and where each may go; it fills
//! them into the one request that may carry them and redacts them everywhere else.
//!
//! **Where a placeholder is filled.** The guest writes `{{secret:<name>}}` where a secret
//! belongs; [`SecretSet::fill_body`] replaces it with the value in exactly one place: as the
//! whole value of a field (`name={{secret:<name>}}`, unencoded) of an
//! `application/x-www-form-urlencoded` body (the one `Content-Type` header) of a `POST` —
//! the client-credentials token request — and only when the request goes to an origin that
//! secret may reach (the request is refused otherwise, naming the secret and the origin).
//! The value is form-encoded there. Anywhere else the placeholder is plain text, sent as it
//! is and never filled: the URL, every header, any other body (JSON, `$batch`), a `GET`, a
//! placeholder inside a longer value. Data that came from a response cannot take the filled
//! position: a connector form-encodes the values it puts in a form (`{` becomes `%7B`), so
//! a placeholder a server plants in a next link or a user property stays text wherever it
//! travels (issue 9, item 3).
//!
//! **Header credentials, client assertions, DPoP** (issue 20; [`SecretSet::prepare`]):
//!
//! - a secret with a `header` (Okta's `Authorization: SSWS …`) is filled only where
//!   `{{secret:<name>}}` is the whole value of that header (name compared
//!   case-insensitively) of a request to one of its origins, as `<prefix> <value>`; to any
//!   other origin the request is refused naming the secret and the origin; in any other
//!   header, the URL or a body it is text, and it is never a form value;
//! - a private key ([`crate::credentials`]) is never sent: `{{assertion:<name>}}` as the
//!   whole value of a form field of a form `POST` to one of its origins becomes a client
//!   assertion the host signs for that request's URL (without query); to another origin the
//!   request is refused; anywhere else (URL, header, JSON or `$batch` body, a `GET`, inside
//!   a longer value) it is text, never signed;
//! - with `dpop`, the host attaches the `DPoP` proof itself (RFC 9449): to the form `POST`
//!   carrying the key's assertion, and to a request to the key's origins whose
//!   `Authorization` is `DPoP <token>` (with `ath`). The door retries a `use_dpop_nonce`
//!   answer once and remembers each origin's last nonce for the run
//!   ([`super::client`]).
//!
//! Every assertion and proof the host issues is redacted from the response it was sent for
//! (and every assertion from all later responses of the run), like a secret: the guest never
//! holds a key, an assertion or a proof, so it cannot hand one to logs or events either.
//!
//! **Redaction.** A server can send a secret back (a token endpoint echoing the request in
//! its error) and a connector can hand it on. Every text and byte string crossing the
//! host in either direction goes through the tenant's [`Scrubber`]: responses before the
//! guest sees them, and everything the guest hands out (log lines, its stdout and stderr,
//! events, checkpoint values, errors, probes, report lines) plus the host's own messages.
//! It replaces each value, raw and in the encodings a server or connector is likely to
//! use (form and percent encodings, JSON escaping, standard and URL-safe base64, hex,
//! reversed), with [`REDACTED`]. Values are wrapped so `Debug` never prints them.
//!
//! **Too weak to redact.** Redaction finds a value wherever it appears, so a value that is
//! ordinary text would erase ordinary text: a secret `Employee` silently cut `employee_id`
//! out of every event (issue 16). [`weakness`] refuses, at load, a value shorter than
//! [`MIN_SECRET_CHARS`], one of a single kind of character (only lower-case letters, only
//! digits…) shorter than [`ONE_KIND_MIN_CHARS`], or one that repeats a few characters (less
//! than [`MIN_SECRET_BITS`] of Shannon entropy by its own character frequencies). Generated
//! secrets pass: an Entra client secret is 40 characters of letters, digits and `~._-`; a
//! Sekoia.io API key and intake tokens are long and mixed. The PostgreSQL password is not
//! held to it: it never reaches the connector, so it is in no tenant's redaction of events
//! and logs and cannot erase anything from them.
//!
//! **Base64 inside a longer text.** A secret's base64 form depends on where the secret
//! starts in the encoded bytes (at a multiple of 3 or 1 or 2 past one): each of the 3
//! alignments is encoded and cut to the characters that depend on the secret's bytes alone,
//! dropping the 1–2 boundary characters that mix in the neighbours' bits. That is the
//! usual way secret scanners find an encoded secret (the boundary characters stay visible
//! around the `[redacted]`). Encodings come from the `base64` and `hex` crates.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::credentials::PrivateKeyCredential;
use crate::doors::http::Origin;

const OPEN: &str = "{{secret:";
const ASSERTION_OPEN: &str = "{{assertion:";
const CLOSE: &str = "}}";

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Why a secret could not be loaded: its name, and one line saying why and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("secret '{name}': {message}")]
pub struct SecretError {
    /// The secret's name.
    pub name: String,
    /// Why, and what to do.
    pub message: String,
}

/// Shortest secret value [`SecretSet::add`] accepts, characters.
pub const MIN_SECRET_CHARS: usize = 16;

/// Shortest value accepted with a single kind of character (only lower-case letters, only
/// upper-case, only digits, only other characters), characters.
pub const ONE_KIND_MIN_CHARS: usize = 32;

/// Least Shannon entropy of a value by its own character frequencies, bits (entropy per
/// character times length). A random 16-character hex string has about 51 (fewer than 1
/// in 1,000 fall below 40); `EmployeeEmployee` has 44, `abababababababab` 16.
pub const MIN_SECRET_BITS: f64 = 36.0;

/// Why `value` is too weak to be redacted safely (see the module doc), as the end of a
/// one-line message; `None` when it is strong enough.
pub fn weakness(value: &str) -> Option<String> {
    const FIX: &str = "use a generated secret (an Entra client secret, an API key)";
    let chars = value.chars().count();
    if chars < MIN_SECRET_CHARS {
        return Some(format!(
            "the value is only {chars} characters; the host redacts every secret from logs and events, and a value shorter than {MIN_SECRET_CHARS} characters can match ordinary text and erase it: {FIX}"
        ));
    }
    let kinds = [
        value.chars().any(|c| c.is_lowercase()),
        value.chars().any(|c| c.is_uppercase()),
        value.chars().any(|c| c.is_numeric()),
        value.chars().any(|c| !c.is_alphanumeric()),
    ]
    .into_iter()
    .filter(|&k| k)
    .count();
    if kinds < 2 && chars < ONE_KIND_MIN_CHARS {
        return Some(format!(
            "the value has one kind of character only (letters of one case, or digits, or symbols) and {chars} characters: it may be an ordinary word that the host's redaction would erase from logs and events; mix letters, digits and symbols, or use at least {ONE_KIND_MIN_CHARS} characters: {FIX}"
        ));
    }
    let bits = shannon_bits(value);
    if bits < MIN_SECRET_BITS {
        return Some(format!(
            "the value repeats a few characters ({bits:.0} bits of entropy, at least {MIN_SECRET_BITS:.0} needed): it may match ordinary text that the host's redaction would erase from logs and events: {FIX}"
        ));
    }
    None
}

/// Shannon entropy of `value` by its own character frequencies, times its length: bits.
fn shannon_bits(value: &str) -> f64 {
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    for c in value.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let n = counts.values().sum::<usize>() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_char * n
}

/// A secret value that never prints itself.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// One secret of a [`SecretSet`]: what it is, and the origins it may reach.
#[derive(Clone, Debug)]
struct Entry {
    kind: EntryKind,
    origins: Vec<Origin>,
}

#[derive(Clone, Debug)]
enum EntryKind {
    /// Filled as the whole value of a form field.
    Value(SecretValue),
    /// Filled as the whole value of `header` (case-insensitive), as `<prefix> <value>`.
    Header {
        value: SecretValue,
        header: String,
        prefix: Option<String>,
    },
    /// Signs client assertions and DPoP proofs; never sent itself.
    PrivateKey(Arc<PrivateKeyCredential>),
}

impl EntryKind {
    fn value(&self) -> Option<&str> {
        match self {
            EntryKind::Value(v) | EntryKind::Header { value: v, .. } => Some(v.0.as_str()),
            EntryKind::PrivateKey(_) => None,
        }
    }
}

/// One tenant's secrets, where each may go, and the [`Scrubber`] redacting them.
#[derive(Clone, Debug, Default)]
pub struct SecretSet {
    entries: BTreeMap<String, Entry>,
    scrubber: Scrubber,
}

/// A request after [`SecretSet::prepare`]: placeholders filled, assertions signed, the DPoP
/// proof attached. `Debug` shows no header value and no token.
#[derive(Clone, Default)]
pub struct Prepared {
    /// The headers to send.
    pub headers: Vec<(String, String)>,
    /// The body to send.
    pub body: Option<Vec<u8>>,
    /// Every JWT the host issued for this request (assertions, the DPoP proof): a response
    /// echoing one is redacted before the guest sees it.
    pub issued: Vec<String>,
    /// The client assertions among them (redacted for the rest of the run).
    pub assertions: Vec<String>,
    /// Whether a secret was filled in or an assertion signed.
    pub carried_secret: bool,
    /// Whether a DPoP proof was attached (a `use_dpop_nonce` answer is then retried once).
    pub dpop: bool,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("headers", &self.headers.len())
            .field("issued", &self.issued.len())
            .field("carried_secret", &self.carried_secret)
            .field("dpop", &self.dpop)
            .finish()
    }
}

/// The name in `value` when `value` is exactly `<open><name>}}`.
fn whole<'v>(value: &'v str, open: &str) -> Option<&'v str> {
    let name = value.strip_prefix(open)?.strip_suffix(CLOSE)?;
    (!name.is_empty() && !name.contains(CLOSE)).then_some(name)
}

impl SecretSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn put(&mut self, name: String, entry: Entry) {
        self.entries.insert(name, entry);
        self.scrubber = Scrubber::new(self.entries.values().filter_map(|e| e.kind.value()));
    }

    /// Adds a secret allowed to reach `origins`.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretValue, origins: Vec<Origin>) {
        self.put(
            name.into(),
            Entry {
                kind: EntryKind::Value(value),
                origins,
            },
        );
    }

    /// Adds a header credential: `{{secret:<name>}}` as the whole value of `header` of a
    /// request to one of `origins` becomes `<prefix> <value>` (`<value>` without a prefix).
    pub fn insert_header(
        &mut self,
        name: impl Into<String>,
        value: SecretValue,
        origins: Vec<Origin>,
        header: impl Into<String>,
        prefix: Option<String>,
    ) {
        self.put(
            name.into(),
            Entry {
                kind: EntryKind::Header {
                    value,
                    header: header.into(),
                    prefix,
                },
                origins,
            },
        );
    }

    /// Adds a private key: `{{assertion:<name>}}` in a form field of a form `POST` to one of
    /// `origins` becomes a client assertion it signs (and, with DPoP, proofs are attached).
    pub fn insert_private_key(
        &mut self,
        name: impl Into<String>,
        credential: Arc<PrivateKeyCredential>,
        origins: Vec<Origin>,
    ) {
        self.put(
            name.into(),
            Entry {
                kind: EntryKind::PrivateKey(credential),
                origins,
            },
        );
    }

    /// The private keys of this set, by name (for their certificates' expiry).
    pub fn private_keys(&self) -> impl Iterator<Item = (&str, &PrivateKeyCredential)> {
        self.entries.iter().filter_map(|(name, e)| match &e.kind {
            EntryKind::PrivateKey(c) => Some((name.as_str(), c.as_ref())),
            _ => None,
        })
    }

    /// Whether a private key of this set adds DPoP proofs.
    pub fn has_dpop(&self) -> bool {
        self.private_keys().any(|(_, c)| c.dpop())
    }

    /// The redaction of every value of this set and of `issued` (JWTs the host signed).
    pub fn scrubber_with(&self, issued: &[String]) -> Scrubber {
        Scrubber::new(
            self.entries
                .values()
                .filter_map(|e| e.kind.value())
                .chain(issued.iter().map(String::as_str)),
        )
    }

    /// The redaction of every value of this set.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// The name of a secret of this set whose value `text` holds (raw or in a form the
    /// [`Scrubber`] knows), if any.
    pub fn secret_in(&self, text: &str) -> Option<&str> {
        self.scrubber.redacted(text)?;
        self.entries
            .iter()
            .find(|(_, e)| {
                e.kind
                    .value()
                    .is_some_and(|v| Scrubber::new([v]).redacted(text).is_some())
            })
            .map(|(name, _)| name.as_str())
    }

    /// Adds a loaded secret allowed to reach `origins`, after checking that it is strong
    /// enough to be redacted ([`weakness`]); `Err` names it and says why, never the value.
    pub fn add(
        &mut self,
        name: &str,
        value: String,
        origins: Vec<Origin>,
    ) -> Result<(), SecretError> {
        Self::strong(name, &value)?;
        self.insert(name, SecretValue::new(value), origins);
        Ok(())
    }

    /// [`SecretSet::add`] for a header credential ([`SecretSet::insert_header`]).
    pub fn add_header(
        &mut self,
        name: &str,
        value: String,
        origins: Vec<Origin>,
        header: &str,
        prefix: Option<String>,
    ) -> Result<(), SecretError> {
        Self::strong(name, &value)?;
        self.insert_header(name, SecretValue::new(value), origins, header, prefix);
        Ok(())
    }

    fn strong(name: &str, value: &str) -> Result<(), SecretError> {
        match weakness(value) {
            Some(message) => Err(SecretError {
                name: name.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Fills the placeholders of a request body by the rule of this module (see
    /// [`SecretSet::prepare`]); an assertion's audience is then the origin itself. Every
    /// other body is returned unchanged, placeholders and all.
    pub fn fill_body(
        &self,
        method: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        origin: &Origin,
    ) -> Result<Vec<u8>, String> {
        self.fill_form(method, headers, body, origin, &origin.to_string())
            .map(|f| f.body)
    }

    /// The form rule: only in a `POST` whose one `Content-Type` is
    /// `application/x-www-form-urlencoded`, only where a field's whole value is a
    /// placeholder, and only for an origin that secret may reach (`Err` otherwise, or for a
    /// name this tenant has no secret of). `{{secret:<name>}}` of a value secret becomes
    /// the value; `{{assertion:<name>}}` of a private key becomes a client assertion for
    /// `audience`. A header credential's or a private key's `{{secret:…}}` stays text.
    fn fill_form(
        &self,
        method: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        origin: &Origin,
        audience: &str,
    ) -> Result<FormFill, String> {
        let unchanged = |body| FormFill {
            body,
            assertions: Vec::new(),
            signer: None,
            filled: false,
        };
        if method != "POST" || !is_form(headers) {
            return Ok(unchanged(body));
        }
        let text = match String::from_utf8(body) {
            Ok(text) if text.contains(OPEN) || text.contains(ASSERTION_OPEN) => text,
            Ok(text) => return Ok(unchanged(text.into_bytes())),
            Err(e) => return Ok(unchanged(e.into_bytes())),
        };
        let mut out = FormFill {
            body: Vec::new(),
            assertions: Vec::new(),
            signer: None,
            filled: false,
        };
        let mut fields = Vec::new();
        for field in text.split('&') {
            let Some((key, value)) = field.split_once('=') else {
                fields.push(Cow::Borrowed(field));
                continue;
            };
            if let Some(name) = whole(value, OPEN) {
                let entry = self.entries.get(name).ok_or_else(|| {
                    format!("the secret placeholder '{name}' names no secret of this tenant")
                })?;
                let EntryKind::Value(secret) = &entry.kind else {
                    // A header credential or a private key is never a form value.
                    fields.push(Cow::Borrowed(field));
                    continue;
                };
                if !entry.origins.contains(origin) {
                    return Err(format!("the secret '{name}' may not be sent to {origin}"));
                }
                let encoded: String =
                    form_urlencoded::byte_serialize(secret.0.as_bytes()).collect();
                fields.push(Cow::Owned(format!("{key}={encoded}")));
                out.filled = true;
            } else if let Some(name) = whole(value, ASSERTION_OPEN) {
                let credential = match self.entries.get(name) {
                    Some(Entry {
                        kind: EntryKind::PrivateKey(c),
                        origins,
                    }) => {
                        if !origins.contains(origin) {
                            return Err(format!(
                                "the assertion of secret '{name}' may not be sent to {origin}"
                            ));
                        }
                        c
                    }
                    _ => {
                        return Err(format!(
                            "the assertion placeholder '{name}' names no private_key secret of this tenant"
                        ))
                    }
                };
                let jwt = credential.assertion(audience)?;
                let encoded: String = form_urlencoded::byte_serialize(jwt.as_bytes()).collect();
                fields.push(Cow::Owned(format!("{key}={encoded}")));
                out.assertions.push(jwt);
                out.signer.get_or_insert_with(|| credential.clone());
                out.filled = true;
            } else {
                fields.push(Cow::Borrowed(field));
            }
        }
        out.body = fields.join("&").into_bytes();
        Ok(out)
    }

    /// Fills a request for `url` (whose origin is `origin`) by the rules of this module:
    ///
    /// - the body by the form rule ([`SecretSet::fill_body`]): `{{secret:<name>}}` and
    ///   `{{assertion:<name>}}`, an assertion's `aud` being `url` without query or fragment;
    /// - a header whose whole value is `{{secret:<name>}}` of a header credential whose
    ///   `header` it is (case-insensitive) becomes `<prefix> <value>`, for the secret's
    ///   origins only (`Err` naming the secret and the origin otherwise); in any other
    ///   header, and for any other secret, it is text;
    /// - DPoP (RFC 9449), for a private key with `dpop` and a request to one of its origins:
    ///   the form `POST` carrying its assertion gets a `DPoP` proof (§4.2, §5); a request
    ///   whose `Authorization` is `DPoP <token>` gets one with `ath` (§7.1). `nonce` is the
    ///   last `DPoP-Nonce` the origin gave (§8, §9). A `DPoP` header the guest wrote is
    ///   replaced: a guest cannot sign a proof.
    pub fn prepare(
        &self,
        method: &str,
        url: &url::Url,
        origin: &Origin,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        nonce: Option<&str>,
    ) -> Result<Prepared, String> {
        let htu = crate::credentials::without_query(url);
        let mut prepared = Prepared::default();
        let mut signer = None;
        prepared.body = match body {
            Some(b) => {
                let form = self.fill_form(method, &headers, b, origin, &htu)?;
                prepared.carried_secret |= form.filled;
                prepared.issued.extend(form.assertions.iter().cloned());
                prepared.assertions = form.assertions;
                signer = form.signer;
                Some(form.body)
            }
            None => None,
        };
        let mut filled_headers = Vec::with_capacity(headers.len() + 1);
        for (k, v) in headers {
            let credential = whole(&v, OPEN).and_then(|name| {
                let entry = self.entries.get(name)?;
                match &entry.kind {
                    EntryKind::Header {
                        value,
                        header,
                        prefix,
                    } if header.eq_ignore_ascii_case(&k) => Some((name, entry, value, prefix)),
                    _ => None,
                }
            });
            match credential {
                Some((name, entry, value, prefix)) => {
                    if !entry.origins.contains(origin) {
                        return Err(format!("the secret '{name}' may not be sent to {origin}"));
                    }
                    let filled = match prefix {
                        Some(p) => format!("{p} {}", value.0),
                        None => value.0.clone(),
                    };
                    prepared.carried_secret = true;
                    filled_headers.push((k, filled));
                }
                None => filled_headers.push((k, v)),
            }
        }
        // The proof: for the assertion's request, or for a DPoP-bound access token.
        let proof = match signer {
            Some(c) if c.dpop() => c.dpop_proof(method, &htu, nonce, None),
            _ => {
                let token = filled_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .and_then(|(_, v)| {
                        let (scheme, token) = v.split_once(' ')?;
                        // Authentication schemes are case-insensitive (RFC 9110 §11.1).
                        scheme
                            .eq_ignore_ascii_case("DPoP")
                            .then(|| token.trim().to_string())
                    });
                match token {
                    Some(token) => self
                        .entries
                        .values()
                        .find_map(|e| match &e.kind {
                            EntryKind::PrivateKey(c) if c.dpop() && e.origins.contains(origin) => {
                                Some(c.clone())
                            }
                            _ => None,
                        })
                        .and_then(|c| c.dpop_proof(method, &htu, nonce, Some(&token))),
                    None => None,
                }
            }
        };
        if let Some(proof) = proof {
            let proof = proof?;
            filled_headers.retain(|(k, _)| !k.eq_ignore_ascii_case("dpop"));
            filled_headers.push(("DPoP".to_string(), proof.clone()));
            prepared.issued.push(proof);
            prepared.dpop = true;
        }
        prepared.headers = filled_headers;
        Ok(prepared)
    }
}

/// What the form rule made of a body.
struct FormFill {
    body: Vec<u8>,
    assertions: Vec<String>,
    signer: Option<Arc<PrivateKeyCredential>>,
    filled: bool,
}

/// Whether the request has exactly one `Content-Type` header and it is a form.
fn is_form(headers: &[(String, String)]) -> bool {
    let mut types = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.split(';').next().unwrap_or("").trim());
    matches!(
        (types.next(), types.next()),
        (Some(t), None) if t.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    )
}

/// Percent-encoding as `encodeURIComponent` does it (keeps `-_.!~*'()`).
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Percent-encoding keeping RFC 3986's unreserved characters (`-._~`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The form-urlencoded set (keeps `*-._`), with a space as `%20` rather than `+`.
const FORM_WITH_PERCENT_SPACE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// Shortest derived form (base64, hex, reversed) a [`Scrubber`] looks for: shorter ones,
/// from a value too short to be loaded but inserted by hand, would match ordinary text.
const MIN_DERIVED_CHARS: usize = 8;

/// The base64 forms of `bytes`, standard and URL-safe: whole (padded and not), and for each
/// of the 3 alignments inside a longer encoded text, the characters that depend on `bytes`
/// alone (see the module doc).
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let mut out = Vec::new();
    for (padded, bare) in [(STANDARD, STANDARD_NO_PAD), (URL_SAFE, URL_SAFE_NO_PAD)] {
        out.push(padded.encode(bytes));
        for shift in 0..3usize {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(bytes);
            let encoded = bare.encode(&shifted);
            // Characters are 6 bits: keep those whose bits all come from `bytes`.
            let first = (shift * 8).div_ceil(6);
            let end = ((shift + bytes.len()) * 8) / 6;
            if let Some(inner) = encoded.get(first..end) {
                out.push(inner.to_string());
            }
        }
    }
    out
}

/// The forms `value` may take in text a server or connector produced: raw, form-encoded
/// (`+` for a space), percent-encoded (`%20`) with the usual sets of kept characters,
/// base64 (standard and URL-safe, see [`base64_forms`]), hex (the match ignores case) and
/// reversed, and each of those JSON-escaped (also with `/` as `\/`).
fn forms(value: &str) -> BTreeSet<String> {
    let mut encoded = BTreeSet::from([
        value.to_string(),
        form_urlencoded::byte_serialize(value.as_bytes()).collect(),
    ]);
    for set in [
        NON_ALPHANUMERIC,
        URI_COMPONENT,
        UNRESERVED,
        FORM_WITH_PERCENT_SPACE,
    ] {
        encoded.insert(utf8_percent_encode(value, set).to_string());
    }
    let mut derived = base64_forms(value.as_bytes());
    derived.push(hex::encode(value));
    derived.push(hex::encode_upper(value));
    derived.push(value.chars().rev().collect());
    encoded.extend(
        derived
            .into_iter()
            .filter(|f| f.chars().count() >= MIN_DERIVED_CHARS),
    );
    let mut all = encoded.clone();
    for form in &encoded {
        let json = serde_json::to_string(form).unwrap_or_default();
        let inner = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or("");
        all.insert(inner.replace('/', "\\/"));
        all.insert(inner.to_string());
    }
    all.retain(|f| !f.is_empty());
    all
}

/// Replaces a tenant's secret values with [`REDACTED`] wherever they appear, in any of the
/// forms of `forms` (hex digits of percent escapes in either case: the match ignores ASCII
/// case). Cheap to clone; one per tenant, built with its [`SecretSet`].
#[derive(Clone, Default)]
pub struct Scrubber {
    finder: Option<Finder>,
}

#[derive(Clone)]
enum Finder {
    Patterns(AhoCorasick),
    /// The patterns could not be compiled (never for a handful of secrets): fail closed,
    /// redacting whole texts.
    Everything,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let patterns = match &self.finder {
            Some(Finder::Patterns(ac)) => ac.patterns_len(),
            Some(Finder::Everything) => usize::MAX,
            None => 0,
        };
        f.debug_struct("Scrubber")
            .field("patterns", &patterns)
            .finish()
    }
}

impl Scrubber {
    /// A scrubber of these secret values (empty values are ignored).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let patterns: BTreeSet<String> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .flat_map(forms)
            .collect();
        if patterns.is_empty() {
            return Scrubber::default();
        }
        let finder = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_or(Finder::Everything, Finder::Patterns);
        Scrubber {
            finder: Some(finder),
        }
    }

    /// `text` with every secret replaced; borrowed when there was none.
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.finder {
            None => Cow::Borrowed(text),
            Some(Finder::Patterns(ac)) if !ac.is_match(text) => Cow::Borrowed(text),
            Some(Finder::Patterns(ac)) => {
                let mut out = String::with_capacity(text.len());
                ac.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str(REDACTED);
                    true
                });
                Cow::Owned(out)
            }
            Some(Finder::Everything) => Cow::Owned(REDACTED.to_string()),
        }
    }

    /// [`scrub`](Self::scrub) over bytes (any bytes: a secret is found as its UTF-8 bytes).
    pub fn scrub_bytes<'t>(&self, bytes: &'t [u8]) -> Cow<'t, [u8]> {
        match &self.finder {
            None => Cow::Borrowed(bytes),
            Some(Finder::Patterns(ac)) if !ac.is_match(bytes) => Cow::Borrowed(bytes),
            Some(Finder::Patterns(ac)) => {
                let mut out = Vec::with_capacity(bytes.len());
                ac.replace_all_with_bytes(bytes, &mut out, |_, _, out| {
                    out.extend_from_slice(REDACTED.as_bytes());
                    true
                });
                Cow::Owned(out)
            }
            Some(Finder::Everything) => Cow::Owned(REDACTED.as_bytes().to_vec()),
        }
    }

    /// [`scrub`](Self::scrub) of an owned string; `None` when nothing was redacted.
    pub fn redacted(&self, text: &str) -> Option<String> {
        match self.scrub(text) {
            Cow::Borrowed(_) => None,
            Cow::Owned(clean) => Some(clean),
        }
    }

    /// The string with every secret replaced.
    pub fn clean(&self, text: String) -> String {
        self.redacted(&text).unwrap_or(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "application/x-www-form-urlencoded";

    fn set() -> (SecretSet, Origin, Origin) {
        let login = Origin::parse("https://login.microsoftonline.com").unwrap();
        let graph = Origin::parse("https://graph.microsoft.com").unwrap();
        let mut s = SecretSet::new();
        s.insert(
            "client_secret",
            SecretValue::new("p@ss w&rd"),
            vec![login.clone()],
        );
        (s, login, graph)
    }

    fn fill(
        s: &SecretSet,
        method: &str,
        ctype: &str,
        body: &str,
        to: &Origin,
    ) -> Result<String, String> {
        let headers = vec![("Content-Type".to_string(), ctype.to_string())];
        s.fill_body(method, &headers, body.as_bytes().to_vec(), to)
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn fills_a_form_field_only_for_the_allowed_origin() {
        let (s, login, graph) = set();
        let body = "grant_type=client_credentials&client_secret={{secret:client_secret}}&x=1";
        assert_eq!(
            fill(&s, "POST", FORM, body, &login).unwrap(),
            "grant_type=client_credentials&client_secret=p%40ss+w%26rd&x=1"
        );
        assert_eq!(
            fill(
                &s,
                "POST",
                "Application/X-WWW-Form-Urlencoded; charset=utf-8",
                body,
                &login
            )
            .unwrap(),
            "grant_type=client_credentials&client_secret=p%40ss+w%26rd&x=1"
        );
        let e = fill(&s, "POST", FORM, body, &graph).unwrap_err();
        assert!(
            e.contains("may not be sent to https://graph.microsoft.com"),
            "{e}"
        );
        let e = fill(&s, "POST", FORM, "a={{secret:other}}", &login).unwrap_err();
        assert!(e.contains("names no secret"), "{e}");
        assert_eq!(
            fill(&s, "POST", FORM, "no=placeholder", &graph).unwrap(),
            "no=placeholder"
        );
    }

    #[test]
    fn hostile_placeholder_outside_a_form_field_stays_text() {
        let (s, login, _) = set();
        let placeholder = "{{secret:client_secret}}";
        // A JSON or $batch body, a GET, a longer value, a key, an encoded placeholder, an
        // unterminated one: all sent as written, never filled, never refused.
        for (method, ctype, body) in [
            (
                "POST",
                "application/json",
                format!(r#"{{"url":"/x?$skiptoken={placeholder}"}}"#),
            ),
            ("POST", "text/plain", format!("client_secret={placeholder}")),
            ("GET", FORM, format!("client_secret={placeholder}")),
            ("PUT", FORM, format!("client_secret={placeholder}")),
            ("post", FORM, format!("client_secret={placeholder}")),
            ("POST", FORM, format!("next=https://g/x?t={placeholder}")),
            ("POST", FORM, format!("x={placeholder}{placeholder}")),
            ("POST", FORM, format!("{placeholder}=x")),
            (
                "POST",
                FORM,
                "client_secret=%7B%7Bsecret%3Aclient_secret%7D%7D".to_string(),
            ),
            (
                "POST",
                FORM,
                "client_secret={{secret:client_secret".to_string(),
            ),
        ] {
            assert_eq!(
                fill(&s, method, ctype, &body, &login).unwrap(),
                body,
                "{method} {ctype}"
            );
        }
        // Two Content-Type headers: not unambiguously a form.
        let headers = vec![
            ("content-type".to_string(), FORM.to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        let body = format!("client_secret={placeholder}");
        assert_eq!(
            s.fill_body("POST", &headers, body.clone().into_bytes(), &login)
                .unwrap(),
            body.into_bytes()
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let (s, _, _) = set();
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    /// A secret whose encodings all differ, and each encoding written out by hand.
    const AWKWARD: &str = "a+b/c=d&e f%\"g\\h~i'j*k";

    #[test]
    fn hostile_echo_of_the_secret_is_redacted_in_every_encoding() {
        let scrub = Scrubber::new([AWKWARD]);
        for (encoding, form) in [
            ("raw", AWKWARD),
            (
                "form-urlencoded",
                "a%2Bb%2Fc%3Dd%26e+f%25%22g%5Ch%7Ei%27j*k",
            ),
            (
                "form-urlencoded, lower-case hex",
                "a%2bb%2fc%3dd%26e+f%25%22g%5ch%7ei%27j*k",
            ),
            (
                "percent, every non-alphanumeric",
                "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch%7Ei%27j%2Ak",
            ),
            (
                "percent, form set with %20",
                "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch%7Ei%27j*k",
            ),
            (
                "percent, URI component",
                "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch~i'j*k",
            ),
            (
                "percent, RFC 3986 unreserved",
                "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch~i%27j%2Ak",
            ),
            ("JSON-escaped", r#"a+b/c=d&e f%\"g\\h~i'j*k"#),
            ("JSON-escaped with \\/", r#"a+b\/c=d&e f%\"g\\h~i'j*k"#),
        ] {
            let text = format!("error_description: client_secret={form}; see log");
            assert_eq!(
                scrub.scrub(&text),
                "error_description: client_secret=[redacted]; see log",
                "{encoding}"
            );
            assert_eq!(
                scrub.scrub_bytes(text.as_bytes()).as_ref(),
                b"error_description: client_secret=[redacted]; see log".as_slice(),
                "{encoding}, as bytes"
            );
        }
    }

    #[test]
    fn a_secret_is_redacted_everywhere_and_other_text_is_left_alone() {
        let scrub = Scrubber::new(["s3cr3t-value", ""]);
        assert_eq!(
            scrub.scrub("s3cr3t-value and S3CR3T-VALUE, twice"),
            "[redacted] and [redacted], twice"
        );
        let clean = "nothing to see: s3cr3t-valu";
        assert!(matches!(scrub.scrub(clean), Cow::Borrowed(_)));
        assert_eq!(scrub.redacted(clean), None);
        // Inside JSON the replacement keeps the document valid.
        let event = serde_json::json!({"echo": "x s3cr3t-value y"}).to_string();
        let cleaned = scrub.clean(event);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&cleaned).unwrap()["echo"],
            "x [redacted] y"
        );
        // Invalid UTF-8 around the value is no obstacle.
        assert_eq!(
            scrub.scrub_bytes(b"\xff\xfes3cr3t-value\xff").as_ref(),
            b"\xff\xfe[redacted]\xff".as_slice()
        );
    }

    #[test]
    fn no_secret_means_nothing_is_redacted() {
        let empty = Scrubber::new([""]);
        assert!(matches!(empty.scrub("anything at all"), Cow::Borrowed(_)));
        assert!(matches!(
            SecretSet::new().scrubber().scrub("x"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_set_redacts_every_secret_it_holds() {
        let (mut s, login, _) = set();
        s.insert("other", SecretValue::new("another-one"), vec![login]);
        assert_eq!(
            s.scrubber().scrub("p@ss w&rd, p%40ss+w%26rd, another-one"),
            "[redacted], [redacted], [redacted]"
        );
    }

    #[test]
    fn operator_a_secret_too_short_to_redact_is_refused_at_load() {
        let origins = || vec![Origin::parse("https://login.microsoftonline.com").unwrap()];
        let mut set = SecretSet::new();
        let SecretError { name, message } = set
            .add("client_secret", "short".into(), origins())
            .unwrap_err();
        assert_eq!(name, "client_secret");
        assert!(
            message.contains("only 5 characters") && !message.contains('\n'),
            "{message}"
        );
        assert_eq!(set.scrubber().scrub("short"), "short", "not added");
        set.add("client_secret", "long-enough-Secret-7".into(), origins())
            .unwrap();
        assert_eq!(set.scrubber().scrub("long-enough-Secret-7"), "[redacted]");
    }

    /// An Entra client secret as the portal makes them (40 characters, `~` in it).
    const ENTRA_LIKE: &str = "Xq48Q~Vd3.kLp0_aZ9rT-uW2yB7nC1mE5gH6jS8f";

    #[test]
    fn operator_a_secret_too_weak_to_redact_is_refused_with_one_line() {
        let load = |value: &str| {
            let mut set = SecretSet::new();
            let origins = vec![Origin::parse("https://login.microsoftonline.com").unwrap()];
            set.add("client_secret", value.to_string(), origins)
                .map(|()| set)
        };
        for (weak, why) in [
            // The word that erased employee_id from every event.
            ("Employee", "only 8 characters"),
            ("Employee_Number", "only 15 characters"),
            ("employeeemployee", "one kind of character"),
            ("1234567890123456", "one kind of character"),
            ("abababab12121212", "repeats a few characters"),
            (
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "repeats a few characters",
            ),
        ] {
            let e = load(weak).unwrap_err();
            assert_eq!(e.name, "client_secret");
            let line = e.to_string();
            assert!(
                line.contains(why)
                    && line.starts_with("secret 'client_secret': ")
                    && !line.contains('\n')
                    && !line.contains(weak),
                "{weak}: {line}"
            );
        }
        // Real secrets pass: an Entra client secret, a long API key, a passphrase, 32
        // random lower-case letters, the emulator's and the tests' secrets.
        for strong in [
            ENTRA_LIKE,
            "sk-test-7f3a9c2e-DO-NOT-LEAK",
            "correct horse battery staple",
            "kqzvbnxtrlpwmhgfdsaeyuiocjwqpzrt",
            "emulator-Secret-4f9c1",
            "any-secret-value",
        ] {
            let set = load(strong).unwrap_or_else(|e| panic!("{strong}: {e}"));
            assert_eq!(set.scrubber().scrub(strong), "[redacted]");
        }
    }

    /// Every run of 12 characters of `encoded[from..to]` (the part that depends on the
    /// secret alone) is gone from `scrubbed`.
    fn assert_gone(scrubbed: &str, encoded: &str, from: usize, to: usize, what: &str) {
        assert!(scrubbed.contains(REDACTED), "{what}: {scrubbed}");
        for start in from..=to.saturating_sub(12) {
            let window = &encoded[start..start + 12];
            assert!(
                !scrubbed.contains(window),
                "{what}: '{window}' survived in {scrubbed}"
            );
        }
    }

    #[test]
    fn hostile_echo_of_the_secret_in_base64_hex_or_reversed_is_redacted() {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use base64::Engine;
        let scrub = Scrubber::new([ENTRA_LIKE]);
        let n = ENTRA_LIKE.len();
        // The secret alone, and inside longer data at each of the 3 alignments.
        for prefix in ["", "{", "{\"", "{\"client_secret\":\""] {
            for suffix in ["", "\"}", "\",\"grant_type\":\"client_credentials\"}"] {
                let data = format!("{prefix}{ENTRA_LIKE}{suffix}");
                let p = prefix.len();
                for (name, engine) in [
                    ("standard", STANDARD),
                    ("standard, no padding", STANDARD_NO_PAD),
                    ("URL-safe", URL_SAFE),
                    ("URL-safe, no padding", URL_SAFE_NO_PAD),
                ] {
                    let encoded = engine.encode(&data);
                    let text = format!("echo: {encoded} end");
                    let scrubbed = scrub.scrub(&text);
                    // Characters whose 6 bits all come from the secret's bytes.
                    let from = (p * 8).div_ceil(6);
                    let to = ((p + n) * 8) / 6;
                    let what = format!("base64 {name}, {p} bytes before");
                    assert_gone(&scrubbed, &encoded, from, to, &what);
                }
                let lower: String = data.bytes().map(|b| format!("{b:02x}")).collect();
                for hex in [lower.clone(), lower.to_uppercase()] {
                    let scrubbed = scrub.scrub(&hex);
                    assert_gone(&scrubbed, &hex, 2 * p, 2 * (p + n), "hex");
                }
            }
        }
        let reversed: String = ENTRA_LIKE.chars().rev().collect();
        assert_eq!(
            scrub.scrub(&format!("<{reversed}>")),
            format!("<{REDACTED}>")
        );
        // Ordinary text, and base64 and hex of other data, are left alone.
        for clean in [
            STANDARD.encode("an ordinary token body, nothing secret in it"),
            "00ff10ab".repeat(8),
            "Employee employee_id".to_string(),
        ] {
            assert!(matches!(scrub.scrub(&clean), Cow::Borrowed(_)), "{clean}");
        }
    }
}
