//! Tenant secrets: loaded by the host, never handed to the guest.
//!
//! The guest writes `{{secret:<name>}}` where a secret belongs; [`SecretSet::substitute`]
//! replaces it with the value only when the request goes to an origin that secret may
//! reach, and refuses the request otherwise. Values are wrapped so `Debug` never prints
//! them.

use std::collections::BTreeMap;

use crate::config::SecretSpec;
use crate::egress::Origin;

const OPEN: &str = "{{secret:";
const CLOSE: &str = "}}";

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

/// One tenant's secrets and where each may go.
#[derive(Clone, Debug, Default)]
pub struct SecretSet {
    entries: BTreeMap<String, (SecretValue, Vec<Origin>)>,
}

impl SecretSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret allowed to reach `origins`.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretValue, origins: Vec<Origin>) {
        self.entries.insert(name.into(), (value, origins));
    }

    /// Loads the secrets a tenant file names (environment variables or files).
    pub fn load(specs: &BTreeMap<String, SecretSpec>) -> Result<SecretSet, (String, String)> {
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
                .map(|h| Origin::parse(h).map_err(|e| (name.clone(), e)))
                .collect::<Result<Vec<_>, _>>()?;
            set.insert(name.clone(), SecretValue::new(value), origins);
        }
        Ok(set)
    }

    /// Replaces every placeholder in `text` for a request to `origin`. `form` encodes the
    /// value for an `application/x-www-form-urlencoded` body.
    pub fn substitute(&self, text: &str, origin: &Origin, form: bool) -> Result<String, String> {
        if !text.contains(OPEN) {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len() + 32);
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let end = after
                .find(CLOSE)
                .ok_or_else(|| "an unterminated secret placeholder".to_string())?;
            let name = &after[..end];
            let (value, origins) = self.entries.get(name).ok_or_else(|| {
                format!("the secret placeholder '{name}' names no secret of this tenant")
            })?;
            if !origins.contains(origin) {
                return Err(format!("the secret '{name}' may not be sent to {origin}"));
            }
            if form {
                out.extend(form_urlencoded::byte_serialize(value.0.as_bytes()));
            } else {
                out.push_str(&value.0);
            }
            rest = &after[end + CLOSE.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// [`substitute`](Self::substitute) over a body; non-UTF-8 bodies pass unchanged.
    pub fn substitute_bytes(
        &self,
        body: Vec<u8>,
        origin: &Origin,
        form: bool,
    ) -> Result<Vec<u8>, String> {
        match String::from_utf8(body) {
            Ok(text) => self.substitute(&text, origin, form).map(String::into_bytes),
            Err(e) => Ok(e.into_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn substitutes_only_for_the_allowed_origin() {
        let (s, login, graph) = set();
        let body = "grant_type=client_credentials&client_secret={{secret:client_secret}}&x=1";
        assert_eq!(
            s.substitute(body, &login, true).unwrap(),
            "grant_type=client_credentials&client_secret=p%40ss+w%26rd&x=1"
        );
        assert_eq!(
            s.substitute("Basic {{secret:client_secret}}", &login, false)
                .unwrap(),
            "Basic p@ss w&rd"
        );
        let e = s.substitute(body, &graph, true).unwrap_err();
        assert!(
            e.contains("may not be sent to https://graph.microsoft.com"),
            "{e}"
        );
        let e = s.substitute("{{secret:other}}", &login, false).unwrap_err();
        assert!(e.contains("names no secret"), "{e}");
        assert!(s
            .substitute("{{secret:client_secret", &login, false)
            .is_err());
        assert_eq!(
            s.substitute("no placeholder", &graph, false).unwrap(),
            "no placeholder"
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let (s, _, _) = set();
        assert!(!format!("{s:?}").contains("p@ss"));
    }
}
