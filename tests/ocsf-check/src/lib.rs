//! The tests' OCSF oracle: is this event what the connector may emit?
//!
//! One checker for every test that looks at an event — the guest's unit tests of the mapping,
//! the property strategies (which must not generate what it refuses) and the end-to-end tests
//! of the real component — so they cannot drift apart (they used to: three placeholder lists).
//!
//! It owns the official OCSF 1.8.0 JSON Schema of class 5003 (`schema/`, with its provenance
//! note), embedded so no test juggles paths, and the rules of the mapping contract
//! (`docs/MAPPING.md`) that the schema cannot express: the **(check)** rules
//! and the "Absent data" rules. It is written from those two documents, never from the
//! connector's code (it does not depend on `entra-connector`), so a misunderstanding in the
//! mapping cannot pass both sides.
//!
//! [`violations`] lists every breach as a typed [`Violation`], so a test can assert which rule
//! failed; [`assert_valid`] and [`assert_all_valid`] panic with all of them.

use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The official OCSF 1.8.0 JSON Schema of class 5003 "User Inventory Info", no profiles (see
/// `schema/PROVENANCE.md` for where it comes from and its sha256).
pub const SCHEMA_JSON: &str = include_str!("../schema/user_inventory-1.8.0.schema.json");

/// `metadata.version` of every event (MAPPING.md, "Event envelope": `"1.8.0"`, the OCSF schema
/// version).
pub const OCSF_VERSION: &str = "1.8.0";

/// Milliseconds since the Unix epoch allowed in a time field: MAPPING.md, "Event envelope",
/// "**(check)** every `time` and `*_time` field is an integer in `[1e12, 1e13)`: seconds are a
/// bug".
pub const MS_RANGE: std::ops::Range<i64> = 1_000_000_000_000..10_000_000_000_000;

/// Placeholder words: text that stands in for a value nobody knows. MAPPING.md, "Absent data":
///
/// > Null, missing or empty-string Graph values are left out of the event; no key is ever
/// > `null` (OCSF rejects nulls), no placeholder string is ever invented (the enum caption
/// > `"Unknown"` next to a `type_id` of 0 is the OCSF caption, not a placeholder).
///
/// and, for `mail`: "never a placeholder such as `"Unknown"`" (the seed connector wrote
/// `"Unknown"` for a missing name, full name or mail). `"Unknown"` is the one MAPPING.md names;
/// "such as" makes it one of a kind, and the others are that kind: `"N/A"`, `"None"`,
/// `"undefined"`, and `"null"` (a null spelled as text, which "no key is ever `null`" rules out
/// in spirit). Compared trimmed and ASCII-case-insensitively. Blank text (empty or whitespace
/// only, MAPPING.md's "empty-string") is a placeholder too: see [`is_placeholder`].
///
/// A Graph value is passed through verbatim, so an event can only hold one of these if Graph
/// sent it: test input (fixtures, the emulator, the property strategies) holds none, and then
/// any one in an event was invented.
pub const PLACEHOLDER_WORDS: &[&str] = &["unknown", "n/a", "none", "null", "undefined"];

/// True for blank text and for the [`PLACEHOLDER_WORDS`] (trimmed, any ASCII case).
pub fn is_placeholder(text: &str) -> bool {
    let text = text.trim();
    text.is_empty() || PLACEHOLDER_WORDS.contains(&text.to_ascii_lowercase().as_str())
}

/// The schema, parsed.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(SCHEMA_JSON)
            .expect("schema/user_inventory-1.8.0.schema.json is JSON: restore it from git")
    })
}

/// The schema, compiled (offline: `jsonschema` without default features fetches nothing).
pub fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(schema())
            .expect("the OCSF schema compiles: restore schema/ from git")
    })
}

/// One breach of the schema or of MAPPING.md. Paths are JSON pointers (`/user/ldap_person`).
#[derive(Clone, Debug, PartialEq)]
pub enum Violation {
    /// The OCSF schema refuses the event (unknown key, wrong type, missing required field,
    /// `email_addr` off the `email_t` pattern...).
    Schema {
        /// Where in the event.
        path: String,
        /// The validator's message.
        message: String,
    },
    /// "**(check)** `type_uid == class_uid*100 + activity_id`" does not hold (or one of the
    /// three is not an integer).
    TypeUid {
        /// `class_uid`, when an integer.
        class_uid: Option<i64>,
        /// `activity_id`, when an integer.
        activity_id: Option<i64>,
        /// `type_uid`, when an integer.
        type_uid: Option<i64>,
    },
    /// `metadata.version` is not [`OCSF_VERSION`].
    MetadataVersion {
        /// What the event holds there, if anything.
        found: Option<Value>,
    },
    /// A `null` ("no key is ever `null`"), as an object value or an array item.
    Null {
        /// Where.
        path: String,
    },
    /// A placeholder string (see [`PLACEHOLDER_WORDS`]), as an object value or an array item.
    Placeholder {
        /// Where.
        path: String,
        /// The text.
        text: String,
    },
    /// A time that is not integer milliseconds in [`MS_RANGE`]: any `time` / `*_time` field,
    /// and the account enrichment's `last_logon` and `last_sign_in_attempt` ("integer ms").
    NotMilliseconds {
        /// Where.
        path: String,
        /// The value found.
        value: Value,
    },
    /// `user.ldap_person` or `user.org` is `{}` ("an object left empty (`ldap_person`, `org`)"
    /// is omitted).
    EmptyObject {
        /// Where.
        path: String,
    },
    /// The first enrichment is not `{name: "account", value: "status", ...}` ("Always, first").
    AccountEnrichmentNotFirst,
    /// A fact of the account enrichment disagrees with the same fact in `user`: `is_mfa` is
    /// "same value as `user.has_mfa`", `last_logon` "the same value as `last_login_time`",
    /// `is_enabled` is `accountEnabled` and `user.account.is_disabled` its negation. Present
    /// on one side only is a disagreement too.
    Disagree {
        /// The pointer in the account enrichment.
        enrichment: &'static str,
        /// The pointer in `user`.
        user: &'static str,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Schema { path, message } => write!(f, "schema: {message} at {path}"),
            Violation::TypeUid {
                class_uid,
                activity_id,
                type_uid,
            } => write!(
                f,
                "type_uid {type_uid:?} != class_uid {class_uid:?} * 100 + activity_id {activity_id:?}"
            ),
            Violation::MetadataVersion { found } => {
                write!(f, "metadata.version is {found:?}, not {OCSF_VERSION:?}")
            }
            Violation::Null { path } => write!(f, "null at {path}"),
            Violation::Placeholder { path, text } => {
                write!(f, "placeholder string {text:?} at {path}")
            }
            Violation::NotMilliseconds { path, value } => write!(
                f,
                "{path} is {value}, not integer milliseconds since the epoch in [1e12, 1e13)"
            ),
            Violation::EmptyObject { path } => write!(f, "empty object at {path}: omit it"),
            Violation::AccountEnrichmentNotFirst => write!(
                f,
                "the first enrichment is not {{name: \"account\", value: \"status\"}}"
            ),
            Violation::Disagree { enrichment, user } => {
                write!(f, "{enrichment} disagrees with {user}")
            }
        }
    }
}

/// Every breach of the schema and of MAPPING.md's rules in `event`; empty when it is valid.
pub fn violations(event: &Value) -> Vec<Violation> {
    let mut found: Vec<Violation> = validator()
        .iter_errors(event)
        .map(|err| Violation::Schema {
            path: err.instance_path.to_string(),
            message: err.to_string(),
        })
        .collect();
    let class_uid = event.get("class_uid").and_then(Value::as_i64);
    let activity_id = event.get("activity_id").and_then(Value::as_i64);
    let type_uid = event.get("type_uid").and_then(Value::as_i64);
    match (class_uid, activity_id, type_uid) {
        (Some(c), Some(a), Some(t))
            if c.checked_mul(100).and_then(|c| c.checked_add(a)) == Some(t) => {}
        _ => found.push(Violation::TypeUid {
            class_uid,
            activity_id,
            type_uid,
        }),
    }
    let version = event.pointer("/metadata/version");
    if version.and_then(Value::as_str) != Some(OCSF_VERSION) {
        found.push(Violation::MetadataVersion {
            found: version.cloned(),
        });
    }
    walk(event, "", &mut found);
    for path in ["/user/ldap_person", "/user/org"] {
        if event
            .pointer(path)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            found.push(Violation::EmptyObject { path: path.into() });
        }
    }
    account_enrichment(event, &mut found);
    found
}

/// Nulls, placeholders and times, anywhere.
fn walk(value: &Value, path: &str, found: &mut Vec<Violation>) {
    match value {
        Value::Null => found.push(Violation::Null { path: path.into() }),
        Value::String(text) if is_placeholder(text) => found.push(Violation::Placeholder {
            path: path.into(),
            text: text.clone(),
        }),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, &format!("{path}/{index}"), found);
            }
        }
        Value::Object(object) => {
            for (key, item) in object {
                let item_path = format!("{path}/{}", escape(key));
                if key == "time" || key.ends_with("_time") {
                    check_ms(item, &item_path, found);
                }
                // The OCSF caption of enum value 0, exactly, next to `type_id` 0.
                let unknown_caption = key == "type"
                    && item.as_str() == Some("Unknown")
                    && object.get("type_id").and_then(Value::as_i64) == Some(0);
                if !unknown_caption {
                    walk(item, &item_path, found);
                }
            }
        }
        _ => {}
    }
}

fn check_ms(value: &Value, path: &str, found: &mut Vec<Violation>) {
    if !value.as_i64().is_some_and(|ms| MS_RANGE.contains(&ms)) {
        found.push(Violation::NotMilliseconds {
            path: path.into(),
            value: value.clone(),
        });
    }
}

/// A key as a JSON pointer segment (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// MAPPING.md, "`enrichments`": the account enrichment comes first, its times are integer ms,
/// and the facts it shares with `user` agree.
fn account_enrichment(event: &Value, found: &mut Vec<Violation>) {
    let first = event.pointer("/enrichments/0");
    let is_account = first.is_some_and(|e| {
        e.get("name").and_then(Value::as_str) == Some("account")
            && e.get("value").and_then(Value::as_str) == Some("status")
    });
    if !is_account {
        found.push(Violation::AccountEnrichmentNotFirst);
        return;
    }
    for key in ["last_logon", "last_sign_in_attempt"] {
        let path = format!("/enrichments/0/data/{key}");
        if let Some(value) = event.pointer(&path) {
            check_ms(value, &path, found);
        }
    }
    let same = |enrichment: &'static str, user: &'static str, negated: bool| {
        let left = event.pointer(enrichment);
        let right = event.pointer(user);
        let agree = match (left, right) {
            (None, None) => true,
            (Some(l), Some(r)) if negated => {
                l.as_bool().is_some() && l.as_bool() == r.as_bool().map(|b| !b)
            }
            (Some(l), Some(r)) => l == r,
            _ => false,
        };
        (!agree).then_some(Violation::Disagree { enrichment, user })
    };
    found.extend(
        [
            same("/enrichments/0/data/is_mfa", "/user/has_mfa", false),
            same(
                "/enrichments/0/data/last_logon",
                "/user/ldap_person/last_login_time",
                false,
            ),
            same(
                "/enrichments/0/data/is_enabled",
                "/user/account/is_disabled",
                true,
            ),
        ]
        .into_iter()
        .flatten(),
    );
}

/// Panics with every violation of `event`, and the event.
pub fn assert_valid(event: &Value) {
    let found = violations(event);
    assert!(
        found.is_empty(),
        "invalid OCSF event:\n{}\n{}",
        join(&found),
        serde_json::to_string_pretty(event).unwrap_or_default()
    );
}

/// Panics with every violation of every invalid event, each named by its `user.uid`.
pub fn assert_all_valid(events: &[Value]) {
    let bad: Vec<String> = events
        .iter()
        .filter_map(|event| {
            let found = violations(event);
            (!found.is_empty()).then(|| {
                format!(
                    "{}: {}",
                    event.pointer("/user/uid").unwrap_or(&Value::Null),
                    join(&found)
                )
            })
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} events are invalid OCSF:\n{}",
        bad.len(),
        events.len(),
        bad.join("\n")
    );
}

fn join(found: &[Violation]) -> String {
    found
        .iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
