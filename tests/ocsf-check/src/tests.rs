//! The checker against events written by hand from MAPPING.md: a valid one passes, and each
//! rule, broken on its own, is reported as that rule's [`Violation`].

use super::*;
use serde_json::json;

/// A 5003 event as MAPPING.md describes it, every optional part present.
fn valid() -> Value {
    json!({
        "activity_id": 2,
        "activity_name": "Collect",
        "category_uid": 5,
        "category_name": "Discovery",
        "class_uid": 5003,
        "class_name": "User Inventory Info",
        "type_uid": 500302,
        "type_name": "User Inventory Info: Collect",
        "severity_id": 1,
        "severity": "Informational",
        "time": 1_750_000_000_000_i64,
        "metadata": {
            "version": "1.8.0",
            "product": {"name": "Microsoft Entra ID", "vendor_name": "Microsoft", "version": "9.9.9"},
            "tenant_uid": "contoso.onmicrosoft.com",
            "uid": "5f0c3a0e9b1d4c2a8e7f6d5c4b3a2910"
        },
        "user": {
            "uid": "u-7",
            "name": "jo_fabrikam.com#EXT#@contoso.onmicrosoft.com",
            "domain": "contoso.onmicrosoft.com",
            "display_name": "Jo Bloggs",
            "full_name": "Jo Bloggs",
            "email_addr": "jo@fabrikam.com",
            "uid_alt": "jbloggs",
            "type_id": 1,
            "type": "User",
            "has_mfa": false,
            "account": {
                "uid": "u-7",
                "name": "jo_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                "type_id": 6,
                "type": "Azure AD Account",
                "is_disabled": true,
                "is_on_premises_sync_enabled": false
            },
            "org": {"name": "Fabrikam", "ou_name": "B-12"},
            "ldap_person": {
                "created_time": 1_600_000_000_000_i64,
                "department": "Finance",
                "job_title": "Auditor",
                "labels": ["Contractor", "Guest"],
                "last_login_time": 1_740_000_000_000_i64,
                "office_location": "B-12"
            },
            "groups": [{"uid": "g-1", "name": "Auditors"}, {"uid": "g-2"}]
        },
        "enrichments": [
            {
                "name": "account",
                "value": "status",
                "data": {
                    "is_enabled": false,
                    "is_mfa": false,
                    "is_restricted": false,
                    "last_logon": 1_740_000_000_000_i64,
                    "last_sign_in_attempt": 1_745_000_000_000_i64,
                    "mfa_methods": ["email"],
                    "roles": [],
                    "mail_nickname": "jbloggs"
                }
            },
            {
                "name": "employment",
                "value": "Finance - Auditor",
                "data": {"department": "Finance", "job_title": "Auditor", "employee_type": "Contractor"}
            }
        ]
    })
}

/// `valid()` with the value at `pointer` replaced (the parent must exist).
fn with(pointer: &str, value: Value) -> Value {
    let mut event = valid();
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let parent = event
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} exists in valid()"));
    match parent {
        Value::Object(object) => {
            object.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("an index")] = value,
        other => panic!("{pointer}: parent is {other}"),
    }
    event
}

/// `valid()` without the key at `pointer`.
fn without(pointer: &str) -> Value {
    let mut event = valid();
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    event
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|object| object.remove(key))
        .unwrap_or_else(|| panic!("{pointer} exists in valid()"));
    event
}

/// Asserts that `event` breaks `expected` (among whatever else it breaks).
fn assert_reports(event: &Value, expected: &Violation) {
    let found = violations(event);
    assert!(
        found.contains(expected),
        "expected {expected:?}, found {found:#?}"
    );
}

#[test]
fn a_valid_event_passes() {
    assert_eq!(violations(&valid()), vec![]);
    assert_valid(&valid());
    assert_all_valid(&[valid(), valid()]);
}

#[test]
fn the_schema_file_is_the_one_provenance_names() {
    use sha2::{Digest, Sha256};
    let provenance = include_str!("../schema/PROVENANCE.md");
    let digest: String = Sha256::digest(SCHEMA_JSON.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert!(
        provenance.contains(&format!("sha256 `{digest}`")),
        "the schema's sha256 is {digest}, not the one PROVENANCE.md names"
    );
    // PROVENANCE.md: "every object inlined under `$defs`, unknown keys rejected".
    let schema = schema();
    assert_eq!(schema["properties"]["class_uid"]["const"], json!(5003));
    assert_eq!(schema["additionalProperties"], json!(false));
    assert!(schema["$defs"]["user"].is_object());
}

#[test]
fn schema_an_unknown_key_is_refused() {
    // The seed's `type_str` is not an OCSF attribute.
    let found = violations(&with("/user/type_str", json!("User")));
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::Schema { path, .. } if path == "/user")),
        "{found:#?}"
    );
}

#[test]
fn schema_an_invalid_email_addr_is_refused() {
    // The alias fallback of the seed: not an address.
    let found = violations(&with("/user/email_addr", json!("jbloggs")));
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::Schema { path, .. } if path == "/user/email_addr")),
        "{found:#?}"
    );
}

#[test]
fn schema_a_missing_required_field_is_refused() {
    let found = violations(&without("/user"));
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::Schema { message, .. } if message.contains("user"))),
        "{found:#?}"
    );
}

#[test]
fn type_uid_must_be_class_uid_times_100_plus_activity_id() {
    // 500301 is a valid integer to the schema: only this rule catches it.
    let event = with("/type_uid", json!(500301));
    assert_reports(
        &event,
        &Violation::TypeUid {
            class_uid: Some(5003),
            activity_id: Some(2),
            type_uid: Some(500301),
        },
    );
    assert_eq!(violations(&event).len(), 1, "{:#?}", violations(&event));
    assert_reports(
        &without("/activity_id"),
        &Violation::TypeUid {
            class_uid: Some(5003),
            activity_id: None,
            type_uid: Some(500302),
        },
    );
    assert_reports(
        &with("/class_uid", json!("5003")),
        &Violation::TypeUid {
            class_uid: None,
            activity_id: Some(2),
            type_uid: Some(500302),
        },
    );
}

#[test]
fn metadata_version_must_be_1_8_0() {
    let event = with("/metadata/version", json!("1.6.0"));
    assert_reports(
        &event,
        &Violation::MetadataVersion {
            found: Some(json!("1.6.0")),
        },
    );
    assert_eq!(violations(&event).len(), 1, "{:#?}", violations(&event));
    assert_reports(
        &without("/metadata/version"),
        &Violation::MetadataVersion { found: None },
    );
}

#[test]
fn null_is_refused_anywhere() {
    // Inside `enrichments[].data` the schema itself allows null: only this rule catches it.
    let event = with("/enrichments/0/data/mail_nickname", Value::Null);
    assert_eq!(
        violations(&event),
        vec![Violation::Null {
            path: "/enrichments/0/data/mail_nickname".into()
        }]
    );
    assert_reports(
        &with("/enrichments/0/data/mfa_methods", json!(["email", null])),
        &Violation::Null {
            path: "/enrichments/0/data/mfa_methods/1".into(),
        },
    );
    assert_reports(
        &with("/user/display_name", Value::Null),
        &Violation::Null {
            path: "/user/display_name".into(),
        },
    );
}

#[test]
fn every_placeholder_word_and_blank_text_is_refused() {
    let mut texts: Vec<String> = vec!["".into(), " ".into(), "\t\n".into(), "\u{a0}".into()];
    for word in PLACEHOLDER_WORDS {
        texts.push(word.to_string());
        texts.push(word.to_ascii_uppercase());
        texts.push(format!("  {word} "));
    }
    texts.extend(["Unknown", "N/A", "None", "Null", "Undefined"].map(String::from));
    for text in texts {
        assert_reports(
            &with("/user/display_name", json!(text)),
            &Violation::Placeholder {
                path: "/user/display_name".into(),
                text: text.clone(),
            },
        );
        // Array items too.
        assert_reports(
            &with("/user/ldap_person/labels", json!(["Guest", text])),
            &Violation::Placeholder {
                path: "/user/ldap_person/labels/1".into(),
                text: text.clone(),
            },
        );
        // And where the schema takes any data.
        assert_reports(
            &with("/enrichments/1/data/department", json!(text)),
            &Violation::Placeholder {
                path: "/enrichments/1/data/department".into(),
                text: text.clone(),
            },
        );
    }
}

#[test]
fn words_that_merely_contain_a_placeholder_pass() {
    for text in ["Unknown Soldier", "Nonesuch", "n/a/b", "nullable", "Jo"] {
        let event = with("/user/display_name", json!(text));
        assert_eq!(violations(&event), vec![], "{text:?}");
        assert!(!is_placeholder(text), "{text:?}");
    }
}

#[test]
fn the_unknown_caption_passes_only_as_type_next_to_type_id_0() {
    let mut event = with("/user/type_id", json!(0));
    event["user"]["type"] = json!("Unknown");
    assert_eq!(violations(&event), vec![]);

    // Next to another type_id it is a placeholder.
    assert_reports(
        &with("/user/type", json!("Unknown")),
        &Violation::Placeholder {
            path: "/user/type".into(),
            text: "Unknown".into(),
        },
    );
    // Any other placeholder next to type_id 0 is one.
    for text in ["unknown", "N/A", " Unknown"] {
        let mut event = with("/user/type_id", json!(0));
        event["user"]["type"] = json!(text);
        assert_reports(
            &event,
            &Violation::Placeholder {
                path: "/user/type".into(),
                text: text.into(),
            },
        );
    }
    // Under another key, next to type_id 0, it is one.
    let mut event = with("/user/type_id", json!(0));
    event["user"]["type"] = json!("Unknown");
    event["user"]["display_name"] = json!("Unknown");
    assert_eq!(
        violations(&event),
        vec![Violation::Placeholder {
            path: "/user/display_name".into(),
            text: "Unknown".into()
        }]
    );
}

#[test]
fn times_are_integer_milliseconds() {
    let cases = [
        ("/time", json!(1_750_000_000)),                          // seconds
        ("/time", json!(1_750_000_000_000.5)),                    // a fraction
        ("/time", json!(1_750_000_000.123)),                      // float seconds (the seed's)
        ("/time", json!(999_999_999_999_i64)),                    // just below 1e12
        ("/time", json!(10_000_000_000_000_i64)),                 // 1e13
        ("/time", json!(-1_750_000_000_000_i64)),                 // negative
        ("/time", json!("1750000000000")),                        // text
        ("/user/ldap_person/created_time", json!(1_600_000_000)), // seconds, nested
        ("/user/ldap_person/deleted_time", json!(0)),
        ("/enrichments/0/data/last_logon", json!(1_740_000_000)),
        ("/enrichments/0/data/last_sign_in_attempt", json!(1.745e12)),
    ];
    for (pointer, value) in cases {
        let mut event = with(pointer, value.clone());
        if pointer == "/enrichments/0/data/last_logon" {
            // Keep the two copies equal: only the unit is wrong.
            event["user"]["ldap_person"]["last_login_time"] = value.clone();
        }
        assert_reports(
            &event,
            &Violation::NotMilliseconds {
                path: pointer.into(),
                value: value.clone(),
            },
        );
    }
    // The bounds: 1e12 is in, 1e13 - 1 is in.
    for ms in [1_000_000_000_000_i64, 9_999_999_999_999] {
        assert_eq!(violations(&with("/time", json!(ms))), vec![], "{ms}");
    }
}

#[test]
fn ldap_person_and_org_are_omitted_not_empty() {
    // The schema takes an empty ldap_person: only this rule catches it.
    let mut event = with("/user/ldap_person", json!({}));
    event["enrichments"][0]["data"]
        .as_object_mut()
        .expect("data")
        .remove("last_logon");
    assert_eq!(
        violations(&event),
        vec![Violation::EmptyObject {
            path: "/user/ldap_person".into()
        }]
    );
    // An empty org fails the schema's "name or uid" too.
    assert_reports(
        &with("/user/org", json!({})),
        &Violation::EmptyObject {
            path: "/user/org".into(),
        },
    );
    // Omitted is fine.
    let mut event = without("/user/org");
    assert_eq!(violations(&event), vec![]);
    event["user"]
        .as_object_mut()
        .expect("user")
        .remove("ldap_person");
    event["enrichments"][0]["data"]
        .as_object_mut()
        .expect("data")
        .remove("last_logon");
    assert_eq!(violations(&event), vec![]);
}

#[test]
fn the_account_enrichment_comes_first() {
    let mut swapped = valid();
    swapped["enrichments"]
        .as_array_mut()
        .expect("enrichments")
        .swap(0, 1);
    assert_eq!(
        violations(&swapped),
        vec![Violation::AccountEnrichmentNotFirst]
    );
    assert_reports(
        &without("/enrichments"),
        &Violation::AccountEnrichmentNotFirst,
    );
    assert_reports(
        &with("/enrichments", json!([])),
        &Violation::AccountEnrichmentNotFirst,
    );
    assert_reports(
        &with("/enrichments/0/value", json!("state")),
        &Violation::AccountEnrichmentNotFirst,
    );
}

#[test]
fn the_account_enrichment_agrees_with_user() {
    let is_mfa = Violation::Disagree {
        enrichment: "/enrichments/0/data/is_mfa",
        user: "/user/has_mfa",
    };
    assert_eq!(
        violations(&with("/enrichments/0/data/is_mfa", json!(true))),
        vec![is_mfa.clone()]
    );
    assert_eq!(violations(&without("/user/has_mfa")), vec![is_mfa.clone()]);
    assert_eq!(
        violations(&without("/enrichments/0/data/is_mfa")),
        vec![is_mfa]
    );

    let last_logon = Violation::Disagree {
        enrichment: "/enrichments/0/data/last_logon",
        user: "/user/ldap_person/last_login_time",
    };
    assert_eq!(
        violations(&with(
            "/enrichments/0/data/last_logon",
            json!(1_745_000_000_000_i64)
        )),
        vec![last_logon.clone()]
    );
    assert_eq!(
        violations(&without("/user/ldap_person/last_login_time")),
        vec![last_logon]
    );

    let enabled = Violation::Disagree {
        enrichment: "/enrichments/0/data/is_enabled",
        user: "/user/account/is_disabled",
    };
    // is_enabled false and is_disabled false: not each other's negation.
    assert_eq!(
        violations(&with("/user/account/is_disabled", json!(false))),
        vec![enabled.clone()]
    );
    assert_eq!(
        violations(&without("/enrichments/0/data/is_enabled")),
        vec![enabled]
    );
    // Both absent agree.
    let mut event = without("/user/has_mfa");
    event["enrichments"][0]["data"]
        .as_object_mut()
        .expect("data")
        .remove("is_mfa");
    assert_eq!(violations(&event), vec![]);
}

#[test]
fn a_deleted_user_event_passes() {
    // MAPPING.md, "Deleted users".
    let event = json!({
        "activity_id": 2, "activity_name": "Collect",
        "category_uid": 5, "category_name": "Discovery",
        "class_uid": 5003, "class_name": "User Inventory Info",
        "type_uid": 500302, "type_name": "User Inventory Info: Collect",
        "severity_id": 1, "severity": "Informational",
        "time": 1_750_000_000_000_i64,
        "metadata": {
            "version": "1.8.0",
            "product": {"name": "Microsoft Entra ID", "vendor_name": "Microsoft"},
            "tenant_uid": "contoso.onmicrosoft.com"
        },
        "user": {
            "uid": "u-7",
            "account": {"uid": "u-7", "type_id": 6, "type": "Azure AD Account"},
            "ldap_person": {"deleted_time": 1_750_000_000_000_i64}
        },
        "enrichments": [
            {"name": "account", "value": "status", "data": {"deleted": true, "deleted_reason": "deleted"}}
        ]
    });
    assert_eq!(violations(&event), vec![]);
}

#[test]
fn every_violation_is_one_line() {
    let mut event = with("/time", json!("x\ny"));
    event["user"]["display_name"] = json!("\n");
    let found = violations(&event);
    assert!(found.len() >= 2, "{found:#?}");
    for violation in found {
        let line = violation.to_string();
        assert!(!line.contains('\n'), "{line:?}");
    }
}

#[test]
#[should_panic(expected = "1 of 2 events are invalid OCSF")]
fn assert_all_valid_names_the_invalid_events() {
    assert_all_valid(&[valid(), with("/type_uid", json!(1))]);
}

#[test]
#[should_panic(expected = "type_uid Some(1)")]
fn assert_valid_panics_with_the_violation() {
    assert_valid(&with("/type_uid", json!(1)));
}
