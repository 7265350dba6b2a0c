//! Tenant secrets: loaded by the host, never handed to the guest.
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
//! **Redaction.** A server can send a secret back (a token endpoint echoing the request in
//! its error) and a connector can hand it on. Every text and byte string crossing the
//! host in either direction goes through the tenant's [`Scrubber`]: responses before the
//! guest sees them, and everything the guest hands out (log lines, its stdout and stderr,
//! events, checkpoint values, errors, probes, report lines) plus the host's own messages.
//! It replaces each value, raw and in the encodings a server or connector is likely to
//! use (form and percent encodings, JSON escaping), with [`REDACTED`]. A secret shorter
//! than [`MIN_SECRET_CHARS`] is refused at load: it could not be told apart from ordinary
//! text. Values are wrapped so `Debug` never prints them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use aho_corasick::{AhoCorasick, MatchKind};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::SecretSpec;
use crate::doors::http::Origin;

const OPEN: &str = "{{secret:";
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

/// Shortest secret value [`SecretSet::load`] accepts.
pub const MIN_SECRET_CHARS: usize = 8;

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

/// One tenant's secrets, where each may go, and the [`Scrubber`] redacting them.
#[derive(Clone, Debug, Default)]
pub struct SecretSet {
    entries: BTreeMap<String, (SecretValue, Vec<Origin>)>,
    scrubber: Scrubber,
}

impl SecretSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret allowed to reach `origins`.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretValue, origins: Vec<Origin>) {
        self.entries.insert(name.into(), (value, origins));
        self.scrubber = Scrubber::new(self.entries.values().map(|(v, _)| v.0.as_str()));
    }

    /// The redaction of every value of this set.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// Loads the secrets a tenant file names (environment variables or files).
    pub fn load(specs: &BTreeMap<String, SecretSpec>) -> Result<SecretSet, SecretError> {
        Self::load_all(specs).map_err(|(name, message)| SecretError { name, message })
    }

    fn load_all(specs: &BTreeMap<String, SecretSpec>) -> Result<SecretSet, (String, String)> {
        let mut set = SecretSet::new();
        for (name, spec) in specs {
            let value = match (&spec.env, &spec.file) {
                (Some(var), _) => std::env::var(var).map_err(|_| {
                    (
                        name.clone(),
                        format!(
                            "environment variable {var} is not set; export it or use file = \"…\""
                        ),
                    )
                })?,
                (None, Some(path)) => crate::files::read_text_file(
                    path,
                    crate::files::MAX_SECRET_BYTES,
                    "secret file",
                )
                .map_err(|e| (name.clone(), e.to_string()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
                (None, None) => {
                    return Err((
                        name.clone(),
                        "needs env = \"VAR\" or file = \"path\"".into(),
                    ))
                }
            };
            if value.is_empty() {
                return Err((
                    name.clone(),
                    "the value is empty; set the secret's value".into(),
                ));
            }
            let origins = spec
                .hosts
                .iter()
                .map(|h| Origin::parse(h).map_err(|e| (name.clone(), e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            let chars = value.chars().count();
            if chars < MIN_SECRET_CHARS {
                return Err((
                    name.clone(),
                    format!(
                        "the value is only {chars} characters; the host cannot redact a secret shorter than {MIN_SECRET_CHARS} from logs and events without mangling them: check the value"
                    ),
                ));
            }
            set.insert(name.clone(), SecretValue::new(value), origins);
        }
        Ok(set)
    }

    /// Fills the placeholders of a request body by the rule of this module: only in a `POST`
    /// whose one `Content-Type` is `application/x-www-form-urlencoded`, only where a field's
    /// whole value is `{{secret:<name>}}`, and only for an origin that secret may reach (`Err`
    /// otherwise, or for a name this tenant has no secret of). Every other body is returned
    /// unchanged, placeholders and all.
    pub fn fill_body(
        &self,
        method: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        origin: &Origin,
    ) -> Result<Vec<u8>, String> {
        if method != "POST" || !is_form(headers) {
            return Ok(body);
        }
        let text = match String::from_utf8(body) {
            Ok(text) if text.contains(OPEN) => text,
            Ok(text) => return Ok(text.into_bytes()),
            Err(e) => return Ok(e.into_bytes()),
        };
        let mut fields = Vec::new();
        for field in text.split('&') {
            let filled = field.split_once('=').and_then(|(key, value)| {
                let name = value.strip_prefix(OPEN)?.strip_suffix(CLOSE)?;
                (!name.is_empty() && !name.contains(CLOSE)).then_some((key, name))
            });
            match filled {
                Some((key, name)) => {
                    let (value, origins) = self.entries.get(name).ok_or_else(|| {
                        format!("the secret placeholder '{name}' names no secret of this tenant")
                    })?;
                    if !origins.contains(origin) {
                        return Err(format!("the secret '{name}' may not be sent to {origin}"));
                    }
                    let encoded: String =
                        form_urlencoded::byte_serialize(value.0.as_bytes()).collect();
                    fields.push(Cow::Owned(format!("{key}={encoded}")));
                }
                None => fields.push(Cow::Borrowed(field)),
            }
        }
        Ok(fields.join("&").into_bytes())
    }
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

/// The forms `value` may take in text a server or connector produced: raw, form-encoded
/// (`+` for a space), percent-encoded (`%20`) with the usual sets of kept characters, and
/// each of those JSON-escaped (also with `/` as `\/`).
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "short\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let spec = |path: &std::path::Path| SecretSpec {
            env: None,
            file: Some(path.to_path_buf()),
            hosts: vec!["https://login.microsoftonline.com".into()],
        };
        let specs = BTreeMap::from([("client_secret".to_string(), spec(&path))]);
        let SecretError { name, message } = SecretSet::load(&specs).unwrap_err();
        assert_eq!(name, "client_secret");
        assert!(
            message.contains("only 5 characters") && !message.contains('\n'),
            "{message}"
        );
        std::fs::write(&path, "long-enough\n").unwrap();
        let set = SecretSet::load(&specs).unwrap();
        assert_eq!(set.scrubber().scrub("long-enough"), "[redacted]");
    }
}
