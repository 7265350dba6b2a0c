//! Values the connector places into Graph URLs and into the token request's form body.
//!
//! The encodings are the `percent-encoding` and `form_urlencoded` crates (the ones the
//! `url` crate, and so the host's egress check, is built on), not code of our own. What is
//! ours is the rule for ids: an id comes from a Graph response and is untrusted, and a few
//! ids would change the path of the request they are placed in however they are encoded.
//! A URL parser (WHATWG, as the host's `url` crate and Graph's front ends apply it) resolves
//! the segments `.` and `..` — and their encoded forms `%2e`, `.%2e`, `%2E%2E`, … — so
//! `/users/../groups` becomes `/groups`; and an empty segment (`/users//memberOf`) is a
//! different path. [`path_segment`] refuses those ids instead of encoding them, and the
//! callers skip what holds one with a warning, as they skip a user without an id.
//!
//! The two crates replaced a hand-rolled `form_encode`/`path_segment` (kept crates over our
//! own code for encodings); what they cost in component size is in the README ("Figures").

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a path segment or query value of ours keeps as it is: RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`). Everything else, `%` included, is percent-encoded, so
/// no id can close a segment (`/`), start a query (`?`) or a fragment (`#`), or smuggle an
/// escape of its own (`%2e`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `id` percent-encoded as one URL path segment, or `None` when no encoding can make it
/// one: an empty id, or one whose encoded form a URL parser reads as `.` or `..` (see the
/// module documentation). Callers skip such an id with a warning.
pub fn path_segment(id: &str) -> Option<String> {
    let encoded = utf8_percent_encode(id, UNRESERVED).to_string();
    (!encoded.is_empty() && !is_dot_segment(&encoded)).then_some(encoded)
}

/// Whether `id` can be placed in a request path ([`path_segment`] accepts it).
pub fn is_usable_id(id: &str) -> bool {
    path_segment(id).is_some()
}

/// `id` as an OData string literal inside a query (`'…'`, quotes doubled, as OData's ABNF
/// writes `SQUOTE-in-string`), percent-encoded for the query string.
pub fn odata_string(id: &str) -> String {
    format!(
        "'{}'",
        utf8_percent_encode(&id.replace('\'', "''"), UNRESERVED)
    )
}

/// An `application/x-www-form-urlencoded` body of these fields, each value encoded.
pub fn form_body<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// A single-dot or double-dot path segment as the WHATWG URL standard defines them: `.` or
/// `%2e`, `..` or any of `.%2e`, `%2e.`, `%2e%2e` (ASCII case-insensitive).
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "." | "%2e" | ".." | ".%2e" | "%2e." | "%2e%2e"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(path_segment("0b5c-11").as_deref(), Some("0b5c-11"));
        assert_eq!(path_segment("a.b_c~d").as_deref(), Some("a.b_c~d"));
        assert_eq!(path_segment("../x?y").as_deref(), Some("..%2Fx%3Fy"));
        assert_eq!(path_segment("a b#c").as_deref(), Some("a%20b%23c"));
        assert_eq!(path_segment("é").as_deref(), Some("%C3%A9"));
        assert_eq!(
            path_segment("...").as_deref(),
            Some("..."),
            "three dots are an ordinary segment"
        );
    }

    #[test]
    fn hostile_dot_ids_do_not_walk_the_path() {
        for id in ["", ".", ".."] {
            assert_eq!(path_segment(id), None, "{id:?}");
            assert!(!is_usable_id(id), "{id:?}");
        }
        // Escapes in the id are the id's own characters: `%` is encoded, so Graph reads them
        // back as typed and no parser sees a dot segment.
        for id in ["%2e", "%2E%2e", ".%2e", "%2e."] {
            let seg = path_segment(id).expect("an escape in an id is text");
            assert!(seg.starts_with("%25") || seg.starts_with(".%25"), "{seg}");
        }
        // The check is on the encoded form: every WHATWG dot segment is recognised.
        for seg in [".", "..", "%2e", "%2E", ".%2E", "%2e.", "%2E%2e"] {
            assert!(is_dot_segment(seg), "{seg}");
        }
        assert!(!is_dot_segment("...") && !is_dot_segment("%2e%2e%2e"));
    }

    #[test]
    fn odata_strings_double_quotes_and_encode() {
        assert_eq!(odata_string("u1"), "'u1'");
        assert_eq!(odata_string("o'brien"), "'o%27%27brien'");
        assert_eq!(odata_string("a&b=c"), "'a%26b%3Dc'");
    }

    #[test]
    fn form_bodies_encode_every_value() {
        assert_eq!(
            form_body([
                ("grant_type", "client_credentials"),
                ("scope", "https://graph.microsoft.com/.default"),
            ]),
            "grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        );
        assert_eq!(form_body([("a", "a b&c=*")]), "a=a+b%26c%3D*");
    }
}
