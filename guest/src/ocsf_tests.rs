//! The mapping's tests, one or more per row of MAPPING.md: each event a test maps is checked
//! by the tests' OCSF oracle (`ocsf-check`: the official schema plus MAPPING.md's rules) on
//! the way, and then for the values the row asks for.

use super::*;
use connector_sdk::seeded_runner;
use ocsf_check::{assert_valid, schema, violations};
use proptest::prelude::*;
use serde_json::json;

const FULL_USER: &str = include_str!("../tests-data/graph_user_full.json");
const FULL_EVENT: &str = include_str!("../tests-data/ocsf_user_full.json");
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const COLLECTED_AT: i64 = 1_700_000_000_123;
const CTX: MapContext<'static> = MapContext {
    tenant_uid: TENANT,
    collected_at_ms: COLLECTED_AT,
    connector_version: "0.1.0",
};

const MFA_TYPES: [&str; 7] = [
    "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
    "#microsoft.graph.phoneAuthenticationMethod",
    "#microsoft.graph.softwareOathAuthenticationMethod",
    "#microsoft.graph.fido2AuthenticationMethod",
    "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
    "#microsoft.graph.platformCredentialAuthenticationMethod",
    "#microsoft.graph.externalAuthenticationMethod",
];
const SINGLE_FACTOR_TYPES: [&str; 3] = [
    "#microsoft.graph.passwordAuthenticationMethod",
    "#microsoft.graph.emailAuthenticationMethod",
    "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
];

// ---------------------------------------------------------------- harness

/// Every event a test looks at goes through here (or `deleted`), so all of them are checked.
fn map_with(user: &Value, enrichment: &Enrichment, ctx: &MapContext) -> Value {
    let event = map_user(user, enrichment, ctx)
        .unwrap_or_else(|err| panic!("mapping failed: {err:?} for {user}"));
    assert_valid(&event);
    event
}

fn map(user: &Value, enrichment: &Enrichment) -> Value {
    map_with(user, enrichment, &CTX)
}

fn map_plain(user: Value) -> Value {
    map(&user, &Enrichment::default())
}

fn deleted_with(user_id: &str, reason: &str, ctx: &MapContext) -> Value {
    let event = map_deleted_user(user_id, reason, ctx);
    assert_valid(&event);
    event
}

fn deleted(user_id: &str, reason: &str) -> Value {
    deleted_with(user_id, reason, &CTX)
}

fn full_user() -> Value {
    serde_json::from_str(FULL_USER).expect("fixture is JSON")
}

fn full_enrichment() -> Enrichment {
    Enrichment {
        groups: Some(vec![
            group("0f1c9d8e-1111-4a5b-9c3d-000000000001", Some("Sales")),
            group("0f1c9d8e-2222-4a5b-9c3d-000000000002", None),
        ]),
        member_of_roles: vec!["Global Reader".into()],
        roles: Some(vec!["User Administrator".into(), "Global Reader".into()]),
        eligible_roles: Some(vec!["Security Reader".into()]),
        mfa: Some(methods(&[
            "#microsoft.graph.passwordAuthenticationMethod",
            "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "#microsoft.graph.fido2AuthenticationMethod",
            "#microsoft.graph.phoneAuthenticationMethod",
            "#microsoft.graph.fido2AuthenticationMethod",
        ])),
        admin_hint: false,
    }
}

fn group(id: &str, name: Option<&str>) -> GroupRef {
    GroupRef {
        id: id.into(),
        display_name: name.map(String::from),
    }
}

fn methods(types: &[&str]) -> Mfa {
    Mfa::Methods(types.iter().map(|t| t.to_string()).collect())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn with(field: &str, value: Value) -> Value {
    let mut user = json!({"id": "u-1"});
    user[field] = value;
    user
}

fn without(mut user: Value, field: &str) -> Value {
    if let Some(object) = user.as_object_mut() {
        object.remove(field);
    }
    user
}

fn status(event: &Value) -> &Value {
    assert_eq!(event["enrichments"][0]["name"], "account");
    &event["enrichments"][0]["data"]
}

fn has_key(value: &Value, key: &str) -> bool {
    value
        .as_object()
        .is_some_and(|object| object.contains_key(key))
}

fn uid_of(event: &Value) -> String {
    event["metadata"]["uid"]
        .as_str()
        .expect("metadata.uid")
        .to_string()
}

#[test]
fn checker_rejects_what_the_rules_forbid() {
    let good = map(&full_user(), &full_enrichment());
    assert!(violations(&good).is_empty());
    let broken: [(&str, Value); 8] = [
        ("/time", json!(1_700_000_000)),
        ("/time", json!(1_700_000_000_000.5)),
        ("/user/ldap_person/created_time", json!(1_504_232_706)),
        ("/type_uid", json!(500301)),
        ("/user/display_name", Value::Null),
        ("/user/display_name", json!("Unknown")),
        ("/user/display_name", json!("")),
        ("/metadata/version", json!("1.6.0")),
    ];
    for (pointer, value) in broken {
        let mut event = good.clone();
        *event.pointer_mut(pointer).expect("pointer exists") = value.clone();
        assert!(!violations(&event).is_empty(), "{pointer} = {value} passed");
    }
    let mut extra = good.clone();
    extra["user"]["type_str"] = json!("User");
    assert!(
        !violations(&extra).is_empty(),
        "unknown key passed the schema"
    );
    // The OCSF caption next to type_id 0 is not a placeholder.
    let unknown = map_plain(json!({"id": "u-1"}));
    assert_eq!(unknown["user"]["type"], "Unknown");
    assert!(violations(&unknown).is_empty());
}

// ---------------------------------------------------------------- golden

#[test]
fn full_user_matches_the_golden_event() {
    let event = map(&full_user(), &full_enrichment());
    let expected: Value = serde_json::from_str(FULL_EVENT).expect("golden is JSON");
    assert_valid(&expected);
    assert_eq!(
        event,
        expected,
        "actual:\n{}",
        serde_json::to_string_pretty(&event).unwrap_or_default()
    );
}

// ---------------------------------------------------------------- envelope

#[test]
fn envelope_is_user_inventory_collect() {
    let event = map_plain(json!({"id": "u-1"}));
    assert_eq!(event["activity_id"], 2);
    assert_eq!(event["activity_name"], "Collect");
    assert_eq!(event["category_uid"], 5);
    assert_eq!(event["category_name"], "Discovery");
    assert_eq!(event["class_uid"], 5003);
    assert_eq!(event["class_name"], "User Inventory Info");
    assert_eq!(event["type_uid"], 500302);
    assert_eq!(event["type_name"], "User Inventory Info: Collect");
    assert_eq!(event["severity_id"], 1);
    assert_eq!(event["severity"], "Informational");
}

#[test]
fn time_is_the_collection_time_in_ms_not_created_date_time() {
    let event = map(&full_user(), &full_enrichment());
    assert_eq!(event["time"], json!(COLLECTED_AT));
    assert!(event["time"].is_i64());
    let later = MapContext {
        collected_at_ms: COLLECTED_AT + 5_000,
        ..CTX
    };
    let event = map_with(&json!({"id": "u-1"}), &Enrichment::default(), &later);
    assert_eq!(event["time"], json!(COLLECTED_AT + 5_000));
}

#[test]
fn metadata_version_product_and_tenant() {
    let event = map_plain(json!({"id": "u-1"}));
    assert_eq!(event["metadata"]["version"], "1.8.0");
    assert_eq!(
        event["metadata"]["product"],
        json!({"name": "Microsoft Entra ID", "vendor_name": "Microsoft"}),
        "the source, with no version of the connector's"
    );
    assert_eq!(
        event["metadata"]["loggers"],
        json!([{"name": "entra-id-users", "version": "0.1.0"}]),
        "the connector is the logger between Entra ID and the destination"
    );
    assert_eq!(event["metadata"]["tenant_uid"], TENANT);
    let by_domain = MapContext {
        tenant_uid: "contoso.onmicrosoft.com",
        ..CTX
    };
    let event = map_with(&json!({"id": "u-1"}), &Enrichment::default(), &by_domain);
    assert_eq!(event["metadata"]["tenant_uid"], "contoso.onmicrosoft.com");
}

#[test]
fn blank_context_strings_are_omitted_not_emitted_empty() {
    let blank = MapContext {
        tenant_uid: " ",
        collected_at_ms: COLLECTED_AT,
        connector_version: "",
    };
    let event = map_with(&json!({"id": "u-1"}), &Enrichment::default(), &blank);
    assert!(!has_key(&event["metadata"], "tenant_uid"));
    assert_eq!(
        event["metadata"]["loggers"],
        json!([{"name": "entra-id-users"}]),
        "a blank version is left out, not emitted empty"
    );
    assert_eq!(event["metadata"]["product"]["name"], "Microsoft Entra ID");
}

// ---------------------------------------------------------------- metadata.uid

#[test]
fn metadata_uid_is_32_lower_hex() {
    let uid = uid_of(&map(&full_user(), &full_enrichment()));
    assert_eq!(uid.len(), 32);
    assert!(uid
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

#[test]
fn metadata_uid_is_stable_for_the_same_content() {
    let first = map(&full_user(), &full_enrichment());
    let again = map(&full_user(), &full_enrichment());
    assert_eq!(uid_of(&first), uid_of(&again));
    // Key order of the Graph JSON does not matter.
    let reordered: Value = serde_json::from_str(
        r#"{"userPrincipalName": "jane@contoso.com", "displayName": "Jane", "id": "u-1"}"#,
    )
    .expect("JSON");
    let ordered =
        json!({"id": "u-1", "displayName": "Jane", "userPrincipalName": "jane@contoso.com"});
    assert_eq!(uid_of(&map_plain(reordered)), uid_of(&map_plain(ordered)));
}

#[test]
fn metadata_uid_ignores_the_collection_time() {
    let later = MapContext {
        collected_at_ms: COLLECTED_AT + 86_400_000,
        ..CTX
    };
    let first = map(&full_user(), &full_enrichment());
    let second = map_with(&full_user(), &full_enrichment(), &later);
    assert_ne!(first["time"], second["time"]);
    assert_eq!(uid_of(&first), uid_of(&second));
}

#[test]
fn metadata_uid_changes_with_the_content() {
    let base = uid_of(&map(&full_user(), &full_enrichment()));
    let mut changed_user = full_user();
    changed_user["department"] = json!("Finance");
    let mut other_id = full_user();
    other_id["id"] = json!("11111111-2222-3333-4444-555555555555");
    let mut signed_in_again = full_user();
    signed_in_again["signInActivity"]["lastSuccessfulSignInDateTime"] =
        json!("2023-06-01T00:00:00Z");
    let mut fewer_groups = full_enrichment();
    fewer_groups.groups = Some(vec![]);
    let mut no_mfa_read = full_enrichment();
    no_mfa_read.mfa = None;
    let other_tenant = MapContext {
        tenant_uid: "contoso.onmicrosoft.com",
        ..CTX
    };
    let variants = [
        map(&changed_user, &full_enrichment()),
        map(&other_id, &full_enrichment()),
        map(&signed_in_again, &full_enrichment()),
        map(&full_user(), &fewer_groups),
        map(&full_user(), &no_mfa_read),
        map_with(&full_user(), &full_enrichment(), &other_tenant),
    ];
    let mut seen = BTreeSet::from([base]);
    for event in &variants {
        assert!(seen.insert(uid_of(event)), "uid repeated for {event}");
    }
}

#[test]
fn deleted_user_uid_ignores_deletion_time_but_not_reason() {
    let later = MapContext {
        collected_at_ms: COLLECTED_AT + 60_000,
        ..CTX
    };
    let first = deleted("u-9", "deleted");
    let second = deleted_with("u-9", "deleted", &later);
    assert_ne!(
        first["user"]["ldap_person"]["deleted_time"],
        second["user"]["ldap_person"]["deleted_time"]
    );
    assert_eq!(uid_of(&first), uid_of(&second));
    assert_ne!(uid_of(&first), uid_of(&deleted("u-9", "changed")));
    assert_ne!(uid_of(&first), uid_of(&deleted("u-8", "deleted")));
    assert_ne!(uid_of(&first), uid_of(&map_plain(json!({"id": "u-9"}))));
}

// ---------------------------------------------------------------- user rows

#[test]
fn id_is_user_uid_and_account_uid() {
    let event = map_plain(json!({"id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd"}));
    assert_eq!(event["user"]["uid"], "87d349ed-44d7-43e1-9a83-5f2406dee5bd");
    assert_eq!(
        event["user"]["account"]["uid"],
        "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
    );
}

#[test]
fn a_user_without_a_usable_id_is_an_error() {
    let no_id = without(full_user(), "id");
    let bad_ids = [
        Value::Null,
        json!(""),
        json!("   "),
        json!(42),
        json!(true),
        json!(["u-1"]),
        json!({"id": "u-1"}),
    ];
    assert_eq!(
        map_user(&no_id, &full_enrichment(), &CTX),
        Err(MapError::MissingId)
    );
    for id in bad_ids {
        let mut user = full_user();
        user["id"] = id.clone();
        assert_eq!(
            map_user(&user, &full_enrichment(), &CTX),
            Err(MapError::MissingId),
            "id {id}"
        );
    }
    assert!(MapError::MissingId.to_string().contains("id"));
}

#[test]
fn upn_is_user_name_and_account_name_not_the_display_name() {
    let event = map_plain(json!({
        "id": "u-1",
        "userPrincipalName": "janedoe1@contoso.com",
        "displayName": "Jane Doe"
    }));
    assert_eq!(event["user"]["name"], "janedoe1@contoso.com");
    assert_eq!(event["user"]["account"]["name"], "janedoe1@contoso.com");
    assert_ne!(event["user"]["name"], "Jane Doe");
}

#[test]
fn domain_is_the_text_after_the_last_at_of_the_upn() {
    let cases = [
        ("jane@contoso.com", Some("contoso.com")),
        (
            "jo_contoso.com#EXT#@tenant.onmicrosoft.com",
            Some("tenant.onmicrosoft.com"),
        ),
        ("odd@name@fabrikam.com", Some("fabrikam.com")),
        ("no-at-sign", None),
        ("trailing@", None),
        ("trailing@  ", None),
    ];
    for (upn, domain) in cases {
        let event = map_plain(with("userPrincipalName", json!(upn)));
        match domain {
            Some(domain) => assert_eq!(event["user"]["domain"], domain, "{upn}"),
            None => assert!(!has_key(&event["user"], "domain"), "{upn}"),
        }
        assert_eq!(event["user"]["name"], upn);
    }
    assert!(!has_key(&map_plain(json!({"id": "u-1"}))["user"], "domain"));
}

#[test]
fn display_name_is_display_name_and_full_name() {
    let event = map_plain(with("displayName", json!("Adele Vance")));
    assert_eq!(event["user"]["display_name"], "Adele Vance");
    assert_eq!(event["user"]["full_name"], "Adele Vance");
    let event = map_plain(json!({"id": "u-1"}));
    assert!(!has_key(&event["user"], "display_name"));
    assert!(!has_key(&event["user"], "full_name"));
}

#[test]
fn a_valid_mail_is_email_addr() {
    for mail in [
        "AdeleV@contoso.onmicrosoft.com",
        "first.last+tag@sub.example.co.uk",
        "o'brien@contoso.com",
        "x@y.z",
    ] {
        let event = map_plain(with("mail", json!(mail)));
        assert_eq!(event["user"]["email_addr"], mail);
    }
}

#[test]
fn an_invalid_or_placeholder_mail_is_omitted() {
    for mail in [
        "Unknown",
        "N/A",
        "adelev",
        "adele@",
        "@contoso.com",
        "adele@contoso",
        "adele@contoso.",
        "adele vance@contoso.com",
        "adélé@contoso.com",
        "adele@contoso.com ",
        "a@b@contoso.com",
        "adele@.com",
    ] {
        let event = map_plain(with("mail", json!(mail)));
        assert!(!has_key(&event["user"], "email_addr"), "{mail}");
    }
}

#[test]
fn mail_nickname_goes_to_the_enrichment_never_to_email_addr() {
    // No mail: the seed would have used the alias; here email_addr stays absent.
    let event = map_plain(with("mailNickname", json!("AdeleV")));
    assert!(!has_key(&event["user"], "email_addr"));
    assert_eq!(status(&event)["mail_nickname"], "AdeleV");
    // Invalid mail: still no fallback to the alias.
    let mut user = with("mailNickname", json!("AdeleV"));
    user["mail"] = json!("not-an-address");
    let event = map_plain(user);
    assert!(!has_key(&event["user"], "email_addr"));
    assert_eq!(status(&event)["mail_nickname"], "AdeleV");
    // Even an alias that would pass the pattern is never used as an address.
    let event = map_plain(with("mailNickname", json!("adele@contoso.com")));
    assert!(!has_key(&event["user"], "email_addr"));
    assert_eq!(status(&event)["mail_nickname"], "adele@contoso.com");
    assert!(!has_key(
        status(&map_plain(json!({"id": "u-1"}))),
        "mail_nickname"
    ));
}

#[test]
fn account_type_is_azure_ad_account() {
    let event = map_plain(json!({"id": "u-1"}));
    assert_eq!(event["user"]["account"]["type_id"], 6);
    assert_eq!(event["user"]["account"]["type"], "Azure AD Account");
}

#[test]
fn account_enabled_is_the_negation_of_is_disabled() {
    let enabled = map_plain(with("accountEnabled", json!(true)));
    assert_eq!(enabled["user"]["account"]["is_disabled"], false);
    assert_eq!(status(&enabled)["is_enabled"], true);
    let disabled = map_plain(with("accountEnabled", json!(false)));
    assert_eq!(disabled["user"]["account"]["is_disabled"], true);
    assert_eq!(status(&disabled)["is_enabled"], false);
    for unknown in [Value::Null, json!("false"), json!(0)] {
        let event = map_plain(with("accountEnabled", unknown));
        assert!(!has_key(&event["user"]["account"], "is_disabled"));
        assert!(!has_key(status(&event), "is_enabled"));
    }
}

#[test]
fn on_premises_sync_enabled_is_copied() {
    for value in [true, false] {
        let event = map_plain(with("onPremisesSyncEnabled", json!(value)));
        assert_eq!(
            event["user"]["account"]["is_on_premises_sync_enabled"],
            value
        );
    }
    // Cloud-only users have null.
    let event = map_plain(with("onPremisesSyncEnabled", Value::Null));
    assert!(!has_key(
        &event["user"]["account"],
        "is_on_premises_sync_enabled"
    ));
}

#[test]
fn on_premises_sam_account_name_is_uid_alt() {
    let event = map_plain(with("onPremisesSamAccountName", json!("adelev")));
    assert_eq!(event["user"]["uid_alt"], "adelev");
    assert!(!has_key(
        &map_plain(json!({"id": "u-1"}))["user"],
        "uid_alt"
    ));
}

#[test]
fn company_name_is_org_name_and_office_location_its_ou_name() {
    let mut user = with("companyName", json!("Contoso Ltd"));
    user["officeLocation"] = json!("18/2111");
    let event = map_plain(user);
    assert_eq!(
        event["user"]["org"],
        json!({"name": "Contoso Ltd", "ou_name": "18/2111"})
    );
    assert_eq!(event["user"]["ldap_person"]["office_location"], "18/2111");
    let event = map_plain(with("companyName", json!("Contoso Ltd")));
    assert_eq!(event["user"]["org"], json!({"name": "Contoso Ltd"}));
}

#[test]
fn org_is_omitted_without_company_name_even_with_an_office() {
    let event = map_plain(with("officeLocation", json!("18/2111")));
    assert!(!has_key(&event["user"], "org"));
    assert_eq!(event["user"]["ldap_person"]["office_location"], "18/2111");
}

#[test]
fn department_job_title_and_employee_id_are_ldap_person_fields() {
    let event = map_plain(json!({
        "id": "u-1",
        "department": "Retail",
        "jobTitle": "Retail Manager",
        "employeeId": "E-1042"
    }));
    let ldap = &event["user"]["ldap_person"];
    assert_eq!(ldap["department"], "Retail");
    assert_eq!(ldap["job_title"], "Retail Manager");
    assert_eq!(ldap["employee_uid"], "E-1042");
}

#[test]
fn employee_type_and_user_type_are_labels() {
    let both = map_plain(json!({"id": "u-1", "employeeType": "Employee", "userType": "Member"}));
    assert_eq!(
        both["user"]["ldap_person"]["labels"],
        json!(["Employee", "Member"])
    );
    let guest = map_plain(with("userType", json!("Guest")));
    assert_eq!(guest["user"]["ldap_person"]["labels"], json!(["Guest"]));
    let contractor = map_plain(with("employeeType", json!("Contractor")));
    assert_eq!(
        contractor["user"]["ldap_person"]["labels"],
        json!(["Contractor"])
    );
    let same = map_plain(json!({"id": "u-1", "employeeType": "Member", "userType": "Member"}));
    assert_eq!(same["user"]["ldap_person"]["labels"], json!(["Member"]));
    let blank = map_plain(json!({"id": "u-1", "employeeType": "", "userType": null}));
    assert!(!has_key(&blank["user"], "ldap_person"));
}

#[test]
fn created_date_time_is_created_time_in_ms() {
    let event = map_plain(with("createdDateTime", json!("2017-09-01T02:25:06Z")));
    assert_eq!(
        event["user"]["ldap_person"]["created_time"],
        json!(1_504_232_706_000_i64)
    );
    let event = map_plain(with(
        "createdDateTime",
        json!("2017-09-01T02:25:06.9999999Z"),
    ));
    assert_eq!(
        event["user"]["ldap_person"]["created_time"],
        json!(1_504_232_706_999_i64)
    );
}

#[test]
fn a_null_or_unusable_created_date_time_is_omitted_never_zero() {
    for value in [
        Value::Null,
        json!(""),
        json!("yesterday"),
        json!("0001-01-01T00:00:00Z"),
        json!("1970-01-01T00:00:00Z"),
        json!("9999-12-31T23:59:59.9999999Z"),
        json!(1_504_232_706),
    ] {
        let event = map_plain(with("createdDateTime", value.clone()));
        assert!(!has_key(&event["user"], "ldap_person"), "{value}");
    }
}

#[test]
fn the_last_successful_sign_in_is_last_login_time_and_the_attempt_is_kept_apart() {
    let event = map_plain(with(
        "signInActivity",
        json!({
            "lastSignInDateTime": "2023-06-01T00:00:00.5Z",
            "lastSuccessfulSignInDateTime": "2023-05-17T08:12:44.1234567Z"
        }),
    ));
    assert_eq!(
        event["user"]["ldap_person"]["last_login_time"],
        json!(1_684_311_164_123_i64)
    );
    assert_eq!(status(&event)["last_logon"], json!(1_684_311_164_123_i64));
    assert_eq!(
        status(&event)["last_sign_in_attempt"],
        json!(1_685_577_600_500_i64)
    );
}

#[test]
fn a_failed_attempt_alone_never_becomes_a_login() {
    // A password spray on a dormant account: attempts, no success.
    for success in [json!(null), json!("0001-01-01T00:00:00Z")] {
        let event = map_plain(with(
            "signInActivity",
            json!({"lastSignInDateTime": "2023-06-01T00:00:00Z",
                   "lastSuccessfulSignInDateTime": success}),
        ));
        assert!(!has_key(&event["user"], "ldap_person"), "{success}");
        assert!(!has_key(status(&event), "last_logon"), "{success}");
        assert_eq!(
            status(&event)["last_sign_in_attempt"],
            json!(1_685_577_600_000_i64)
        );
    }
}

#[test]
fn a_year_0001_or_missing_sign_in_means_never_and_is_omitted() {
    for activity in [
        json!({"lastSuccessfulSignInDateTime": "0001-01-01T00:00:00Z"}),
        json!({"lastSuccessfulSignInDateTime": null}),
        json!({"lastNonInteractiveSignInDateTime": "2023-05-17T08:12:44Z"}),
        json!({}),
        Value::Null,
        json!("2023-05-17T08:12:44Z"),
    ] {
        let event = map_plain(with("signInActivity", activity.clone()));
        assert!(!has_key(&event["user"], "ldap_person"), "{activity}");
        assert!(!has_key(status(&event), "last_logon"), "{activity}");
        assert!(
            !has_key(status(&event), "last_sign_in_attempt"),
            "{activity}"
        );
    }
    // A user read without signInActivity at all.
    let event = map_plain(json!({"id": "u-1"}));
    assert!(!has_key(status(&event), "last_logon"));
}

#[test]
fn ldap_person_is_omitted_when_empty() {
    let event = map_plain(json!({"id": "u-1", "displayName": "Jane"}));
    assert!(!has_key(&event["user"], "ldap_person"));
}

// ---------------------------------------------------------------- groups

#[test]
fn groups_keep_order_uid_and_name() {
    let enrichment = Enrichment {
        groups: Some(vec![
            group("g-2", Some("Zeta")),
            group("g-1", Some("Alpha")),
            group("g-3", None),
            group("g-4", Some("  ")),
        ]),
        ..Enrichment::default()
    };
    let event = map(&json!({"id": "u-1"}), &enrichment);
    assert_eq!(
        event["user"]["groups"],
        json!([
            {"uid": "g-2", "name": "Zeta"},
            {"uid": "g-1", "name": "Alpha"},
            {"uid": "g-3"},
            {"uid": "g-4"}
        ])
    );
}

#[test]
fn groups_read_and_empty_are_an_empty_list_unread_are_omitted() {
    let empty = Enrichment {
        groups: Some(vec![]),
        ..Enrichment::default()
    };
    assert_eq!(
        map(&json!({"id": "u-1"}), &empty)["user"]["groups"],
        json!([])
    );
    let unread = map_plain(json!({"id": "u-1"}));
    assert!(!has_key(&unread["user"], "groups"));
}

#[test]
fn a_group_with_neither_id_nor_name_is_dropped() {
    let enrichment = Enrichment {
        groups: Some(vec![
            group("", None),
            group(" ", Some("Named")),
            group("g-1", None),
        ]),
        ..Enrichment::default()
    };
    let event = map(&json!({"id": "u-1"}), &enrichment);
    assert_eq!(
        event["user"]["groups"],
        json!([{"name": "Named"}, {"uid": "g-1"}])
    );
}

#[test]
fn directory_roles_are_not_groups() {
    let enrichment = Enrichment {
        groups: Some(vec![group("g-1", Some("Sales"))]),
        member_of_roles: strings(&["Global Administrator"]),
        roles: Some(strings(&["Global Administrator"])),
        ..Enrichment::default()
    };
    let event = map(&json!({"id": "u-1"}), &enrichment);
    assert_eq!(
        event["user"]["groups"],
        json!([{"uid": "g-1", "name": "Sales"}])
    );
}

// ---------------------------------------------------------------- roles

fn roles(member_of: &[&str], authoritative: Option<&[&str]>) -> Value {
    let enrichment = Enrichment {
        member_of_roles: strings(member_of),
        roles: authoritative.map(strings),
        ..Enrichment::default()
    };
    map(&json!({"id": "u-1"}), &enrichment)
}

#[test]
fn any_directory_role_makes_an_admin_with_sorted_unique_roles() {
    let event = roles(
        &["Global Reader"],
        Some(&["User Administrator", "Global Reader", "User Administrator"]),
    );
    assert_eq!(event["user"]["type_id"], 2);
    assert_eq!(event["user"]["type"], "Admin");
    assert_eq!(
        status(&event)["roles"],
        json!(["Global Reader", "User Administrator"])
    );
}

#[test]
fn roles_read_and_none_found_make_a_user_with_empty_roles() {
    let event = roles(&[], Some(&[]));
    assert_eq!(event["user"]["type_id"], 1);
    assert_eq!(event["user"]["type"], "User");
    assert_eq!(status(&event)["roles"], json!([]));
    let blank_only = roles(&[" "], Some(&[""]));
    assert_eq!(blank_only["user"]["type_id"], 1);
    assert_eq!(status(&blank_only)["roles"], json!([]));
}

#[test]
fn a_role_seen_only_in_member_of_still_counts() {
    let event = roles(&["Helpdesk Administrator"], Some(&[]));
    assert_eq!(event["user"]["type_id"], 2);
    assert_eq!(status(&event)["roles"], json!(["Helpdesk Administrator"]));
}

fn eligible(active: Option<&[&str]>, eligible: Option<&[&str]>) -> Value {
    let enrichment = Enrichment {
        roles: active.map(strings),
        eligible_roles: eligible.map(strings),
        ..Enrichment::default()
    };
    map(&json!({"id": "u-1"}), &enrichment)
}

#[test]
fn an_eligible_only_admin_is_an_admin_with_eligible_roles() {
    let event = eligible(Some(&[]), Some(&["Global Administrator"]));
    assert_eq!(event["user"]["type_id"], 2);
    assert_eq!(status(&event)["roles"], json!([]));
    assert_eq!(
        status(&event)["eligible_roles"],
        json!(["Global Administrator"])
    );
    // Eligibility proves a role even when the active assignments were unreadable.
    let unread = eligible(None, Some(&["Global Administrator"]));
    assert_eq!(unread["user"]["type_id"], 2);
    assert!(!has_key(status(&unread), "roles"));
}

#[test]
fn unreadable_eligibility_neither_proves_nor_hides_anything() {
    let user = eligible(Some(&[]), None);
    assert_eq!(
        user["user"]["type_id"], 1,
        "eligibility unread does not make it 0"
    );
    assert!(!has_key(status(&user), "eligible_roles"));
    let unknown = eligible(None, None);
    assert_eq!(unknown["user"]["type_id"], 0);
    assert_eq!(unknown["user"]["type"], "Unknown");
    let none = eligible(Some(&[]), Some(&[]));
    assert_eq!(none["user"]["type_id"], 1);
    assert_eq!(status(&none)["eligible_roles"], json!([]));
}

#[test]
fn roles_unread_but_seen_in_member_of_make_an_admin_without_a_roles_list() {
    let event = roles(&["Global Administrator"], None);
    assert_eq!(event["user"]["type_id"], 2);
    assert_eq!(event["user"]["type"], "Admin");
    assert!(!has_key(status(&event), "roles"));
}

#[test]
fn roles_unread_and_none_known_is_unknown_never_a_guess() {
    for member_of in [&[][..], &["", "  "][..]] {
        let event = roles(member_of, None);
        assert_eq!(event["user"]["type_id"], 0);
        assert_eq!(event["user"]["type"], "Unknown");
        assert!(!has_key(status(&event), "roles"));
    }
}

// ---------------------------------------------------------------- MFA

fn with_mfa(mfa: Option<Mfa>) -> Value {
    let enrichment = Enrichment {
        mfa,
        ..Enrichment::default()
    };
    map(&json!({"id": "u-1"}), &enrichment)
}

#[test]
fn each_second_factor_method_gives_has_mfa() {
    for odata_type in MFA_TYPES {
        let event = with_mfa(Some(methods(&[
            "#microsoft.graph.passwordAuthenticationMethod",
            odata_type,
        ])));
        assert_eq!(event["user"]["has_mfa"], true, "{odata_type}");
        assert_eq!(status(&event)["is_mfa"], true, "{odata_type}");
    }
}

#[test]
fn password_email_and_temporary_access_pass_are_not_mfa() {
    let event = with_mfa(Some(methods(&SINGLE_FACTOR_TYPES)));
    assert_eq!(event["user"]["has_mfa"], false);
    assert_eq!(status(&event)["is_mfa"], false);
    assert_eq!(
        status(&event)["mfa_methods"],
        json!(["email", "temporaryAccessPass"]),
        "password is never listed"
    );
}

#[test]
fn unknown_method_types_are_tolerated_and_listed() {
    let event = with_mfa(Some(methods(&[
        "#microsoft.graph.passwordAuthenticationMethod",
        "#microsoft.graph.qrCodePinAuthenticationMethod",
        "#microsoft.graph.somethingNew",
        "",
    ])));
    assert_eq!(event["user"]["has_mfa"], false);
    assert_eq!(
        status(&event)["mfa_methods"],
        json!(["qrCodePin", "somethingNew"])
    );
}

#[test]
fn mfa_methods_are_sorted_unique_short_names() {
    let event = with_mfa(Some(methods(&[
        "#microsoft.graph.phoneAuthenticationMethod",
        "#microsoft.graph.fido2AuthenticationMethod",
        "#microsoft.graph.phoneAuthenticationMethod",
        "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
        "#microsoft.graph.passwordAuthenticationMethod",
    ])));
    assert_eq!(
        status(&event)["mfa_methods"],
        json!(["fido2", "microsoftAuthenticator", "phone"])
    );
}

#[test]
fn methods_read_and_empty_are_no_mfa_and_an_empty_list() {
    let event = with_mfa(Some(Mfa::Methods(vec![])));
    assert_eq!(event["user"]["has_mfa"], false);
    assert_eq!(status(&event)["mfa_methods"], json!([]));
}

#[test]
fn mfa_unread_omits_has_mfa_is_mfa_and_methods() {
    let event = with_mfa(None);
    assert!(!has_key(&event["user"], "has_mfa"));
    assert!(!has_key(status(&event), "is_mfa"));
    assert!(!has_key(status(&event), "mfa_methods"));
}

#[test]
fn the_registration_report_maps_to_the_method_vocabulary() {
    let registered = with_mfa(Some(Mfa::Registration(strings(&[
        "mobilePhone",
        "microsoftAuthenticatorPush",
        "sms",
        "",
    ]))));
    assert_eq!(registered["user"]["has_mfa"], true);
    assert_eq!(status(&registered)["is_mfa"], true);
    assert_eq!(
        status(&registered)["mfa_methods"],
        json!(["microsoftAuthenticator", "phone"])
    );
    let unregistered = with_mfa(Some(Mfa::Registration(vec![])));
    assert_eq!(unregistered["user"]["has_mfa"], false);
    assert_eq!(status(&unregistered)["mfa_methods"], json!([]));
    let weak = with_mfa(Some(Mfa::Registration(strings(&[
        "email",
        "temporaryAccessPass",
        "securityQuestion",
        "somethingNew",
    ]))));
    assert_eq!(weak["user"]["has_mfa"], false, "no strong name");
}

#[test]
fn both_sources_give_the_same_event_for_the_same_methods() {
    // MAPPING.md: the same user read through either source must not flap.
    let pairs: [(&str, &[&str]); 9] = [
        (
            "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            &[
                "microsoftAuthenticatorPush",
                "microsoftAuthenticatorPasswordless",
            ],
        ),
        (
            "#microsoft.graph.phoneAuthenticationMethod",
            &[
                "mobilePhone",
                "alternateMobilePhone",
                "officePhone",
                "sms",
                "voiceMobile",
                "voiceAlternateMobile",
                "voiceOffice",
            ],
        ),
        (
            "#microsoft.graph.softwareOathAuthenticationMethod",
            &["softwareOneTimePasscode"],
        ),
        (
            "#microsoft.graph.hardwareOathAuthenticationMethod",
            &["hardwareOneTimePasscode"],
        ),
        (
            "#microsoft.graph.fido2AuthenticationMethod",
            &[
                "fido2",
                "passKeyDeviceBound",
                "passKeyDeviceBoundAuthenticator",
                "passKeyDeviceBoundWindowsHello",
                "fido2SecurityKey",
                "passKeySynced",
            ],
        ),
        (
            "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
            &["windowsHelloForBusiness"],
        ),
        (
            "#microsoft.graph.platformCredentialAuthenticationMethod",
            &["macOsSecureEnclaveKey"],
        ),
        (
            "#microsoft.graph.externalAuthenticationMethod",
            &["externalAuthenticationMethod", "externalAuthMethod"],
        ),
        ("#microsoft.graph.emailAuthenticationMethod", &["email"]),
    ];
    for (odata_type, registered) in pairs {
        let from_methods = with_mfa(Some(methods(&[
            "#microsoft.graph.passwordAuthenticationMethod",
            odata_type,
        ])));
        for value in registered {
            let from_report = with_mfa(Some(Mfa::Registration(strings(&[value]))));
            assert_eq!(
                status(&from_report)["mfa_methods"],
                status(&from_methods)["mfa_methods"],
                "{odata_type} vs {value}"
            );
            assert_eq!(
                from_report["user"]["has_mfa"], from_methods["user"]["has_mfa"],
                "{odata_type} vs {value}"
            );
        }
    }
}

#[test]
fn short_method_names() {
    let cases = [
        ("#microsoft.graph.fido2AuthenticationMethod", "fido2"),
        ("#microsoft.graph.passwordAuthenticationMethod", "password"),
        ("#microsoft.graph.phoneAuthenticationMethod", "phone"),
        (
            "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "microsoftAuthenticator",
        ),
        (
            "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
            "temporaryAccessPass",
        ),
        ("microsoft.graph.emailAuthenticationMethod", "email"),
        ("softwareOathAuthenticationMethod", "softwareOath"),
        ("#microsoft.graph.somethingNew", "somethingNew"),
        (
            "#microsoft.graph.AuthenticationMethod",
            "AuthenticationMethod",
        ),
        ("  #microsoft.graph.fido2AuthenticationMethod ", "fido2"),
        ("", ""),
    ];
    for (odata_type, short) in cases {
        assert_eq!(short_method_name(odata_type), short, "{odata_type}");
    }
}

#[test]
fn is_mfa_method_follows_the_mapping_list() {
    for odata_type in MFA_TYPES {
        assert!(is_mfa_method(odata_type), "{odata_type}");
    }
    for odata_type in SINGLE_FACTOR_TYPES {
        assert!(!is_mfa_method(odata_type), "{odata_type}");
    }
    for odata_type in [
        "",
        "#microsoft.graph.somethingNew",
        "#microsoft.graph.authenticationMethod",
    ] {
        assert!(!is_mfa_method(odata_type), "{odata_type}");
    }
    assert!(is_mfa_method("#microsoft.graph.FIDO2AuthenticationMethod"));
}

// ---------------------------------------------------------------- enrichments

#[test]
fn the_account_enrichment_is_always_first_even_when_empty() {
    let event = map_plain(json!({"id": "u-1"}));
    assert_eq!(
        event["enrichments"],
        json!([{"name": "account", "value": "status", "data": {}}])
    );
    let full = map(&full_user(), &full_enrichment());
    assert_eq!(full["enrichments"][0]["name"], "account");
    assert_eq!(full["enrichments"][0]["value"], "status");
    assert_eq!(full["enrichments"][1]["name"], "employment");
    assert_eq!(full["enrichments"].as_array().map(Vec::len), Some(2));
}

#[test]
fn is_restricted_is_present_whenever_it_was_read() {
    let restricted = map_plain(with("isManagementRestricted", json!(true)));
    assert_eq!(status(&restricted)["is_restricted"], true);
    let not_restricted = map_plain(with("isManagementRestricted", json!(false)));
    assert_eq!(status(&not_restricted)["is_restricted"], false);
    // Graph's null means false.
    let null = map_plain(with("isManagementRestricted", Value::Null));
    assert_eq!(status(&null)["is_restricted"], false);
    for unread in [
        json!({"id": "u-1"}),
        with("isManagementRestricted", json!("true")),
    ] {
        assert!(!has_key(status(&map_plain(unread)), "is_restricted"));
    }
}

#[test]
fn the_account_enrichment_holds_every_known_fact() {
    let event = map(&full_user(), &full_enrichment());
    assert_eq!(
        *status(&event),
        json!({
            "is_enabled": true,
            "is_mfa": true,
            "is_restricted": false,
            "last_logon": 1_684_311_164_000_i64,
            "last_sign_in_attempt": 1_684_311_164_123_i64,
            "mfa_methods": ["fido2", "microsoftAuthenticator", "phone"],
            "roles": ["Global Reader", "User Administrator"],
            "eligible_roles": ["Security Reader"],
            "mail_nickname": "AdeleV"
        })
    );
}

fn employment_of(user: Value) -> Option<Value> {
    map_plain(user)["enrichments"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["name"] == "employment").cloned())
}

#[test]
fn employment_value_joins_department_and_job_title() {
    let both = employment_of(
        json!({"id": "u-1", "department": "Engineering", "jobTitle": "Senior Engineer"}),
    );
    assert_eq!(
        both,
        Some(json!({
            "name": "employment",
            "value": "Engineering - Senior Engineer",
            "data": {"department": "Engineering", "job_title": "Senior Engineer"}
        }))
    );
    let department = employment_of(with("department", json!("Engineering")));
    assert_eq!(
        department,
        Some(
            json!({"name": "employment", "value": "Engineering", "data": {"department": "Engineering"}})
        )
    );
    let title = employment_of(with("jobTitle", json!("Senior Engineer")));
    assert_eq!(
        title,
        Some(
            json!({"name": "employment", "value": "Senior Engineer", "data": {"job_title": "Senior Engineer"}})
        )
    );
}

#[test]
fn employment_value_is_employment_when_only_id_or_type_is_known() {
    let id = employment_of(with("employeeId", json!("E-1")));
    assert_eq!(
        id,
        Some(json!({"name": "employment", "value": "employment", "data": {"employee_id": "E-1"}}))
    );
    let kind = employment_of(with("employeeType", json!("Contractor")));
    assert_eq!(
        kind,
        Some(
            json!({"name": "employment", "value": "employment", "data": {"employee_type": "Contractor"}})
        )
    );
}

#[test]
fn no_employment_enrichment_without_employment_facts() {
    assert_eq!(
        employment_of(json!({"id": "u-1", "userType": "Member"})),
        None
    );
    assert_eq!(
        employment_of(json!({"id": "u-1", "department": " ", "jobTitle": null, "employeeId": 7})),
        None
    );
}

// ---------------------------------------------------------------- absent data

/// Graph string fields of the mapping, and what an odd value of each kind must map to.
const STRING_FIELDS: [&str; 14] = [
    "userPrincipalName",
    "displayName",
    "mail",
    "mailNickname",
    "onPremisesSamAccountName",
    "companyName",
    "officeLocation",
    "department",
    "jobTitle",
    "employeeId",
    "employeeType",
    "userType",
    "createdDateTime",
    "id",
];
const BOOL_FIELDS: [&str; 3] = [
    "accountEnabled",
    "onPremisesSyncEnabled",
    "isManagementRestricted",
];

fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(""),
        json!("   "),
        json!("\t\n"),
        json!(0),
        json!(42),
        json!(-1.5),
        json!(true),
        json!(false),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"value": "x"}),
    ]
}

#[test]
fn odd_values_map_exactly_like_a_missing_field() {
    let enrichment = full_enrichment();
    for field in STRING_FIELDS.into_iter().filter(|f| *f != "id") {
        let expected = map(&without(full_user(), field), &enrichment);
        for odd in odd_values() {
            let mut user = full_user();
            user[field] = odd.clone();
            assert_eq!(map(&user, &enrichment), expected, "{field} = {odd}");
        }
    }
    for field in BOOL_FIELDS {
        let expected = map(&without(full_user(), field), &enrichment);
        for odd in odd_values().into_iter().filter(|v| !v.is_boolean()) {
            if field == "isManagementRestricted" && odd.is_null() {
                continue; // null is Graph's "false" here
            }
            let mut user = full_user();
            user[field] = odd.clone();
            assert_eq!(map(&user, &enrichment), expected, "{field} = {odd}");
        }
    }
    let expected = map(&without(full_user(), "signInActivity"), &enrichment);
    let mut odd_activities = odd_values();
    odd_activities.extend(odd_values().into_iter().flat_map(|v| {
        [
            json!({"lastSignInDateTime": v.clone()}),
            json!({"lastSuccessfulSignInDateTime": v}),
        ]
    }));
    for odd in odd_activities {
        let mut user = full_user();
        user["signInActivity"] = odd.clone();
        assert_eq!(map(&user, &enrichment), expected, "signInActivity = {odd}");
    }
}

#[test]
fn a_user_with_nothing_but_blanks_maps_to_the_bare_minimum() {
    let mut user = json!({"id": "u-1"});
    for field in STRING_FIELDS.into_iter().filter(|f| *f != "id") {
        user[field] = json!("  ");
    }
    for field in BOOL_FIELDS
        .into_iter()
        .filter(|f| *f != "isManagementRestricted")
    {
        user[field] = Value::Null;
    }
    user["signInActivity"] = json!({"lastSignInDateTime": ""});
    let event = map_plain(user);
    assert_eq!(
        event["user"],
        json!({
            "uid": "u-1",
            "account": {"uid": "u-1", "type_id": 6, "type": "Azure AD Account"},
            "type_id": 0,
            "type": "Unknown"
        })
    );
    assert_eq!(
        event["enrichments"],
        json!([{"name": "account", "value": "status", "data": {}}])
    );
}

#[test]
fn non_object_users_are_missing_an_id_not_a_panic() {
    for user in [
        Value::Null,
        json!(true),
        json!(42),
        json!("u-1"),
        json!([]),
        json!([{"id": "u-1"}]),
        json!({}),
    ] {
        assert_eq!(
            map_user(&user, &full_enrichment(), &CTX),
            Err(MapError::MissingId),
            "{user}"
        );
    }
}

/// Graph-ish strings: blanks, names, addresses, timestamps (valid, "never", impossible),
/// control characters.
const RANDOM_STRINGS: [&str; 16] = [
    "",
    "  ",
    "Adele",
    "AdeleV@contoso.com",
    "jo_x.com#EXT#@tenant.onmicrosoft.com",
    "@",
    "a@b",
    "2023-05-17T08:12:44.1234567Z",
    "0001-01-01T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "1999-01-01T00:00:00+02:00",
    "Member",
    "ünïcödé ✓",
    "\u{0}",
    "{\"id\":1}",
    "#microsoft.graph.group",
];

/// Deepest level at which a user object (as a value, or as `signInActivity`) is generated.
const MAX_USER_DEPTH: u32 = 4;

/// A JSON scalar: null, a bool, an extreme number or a Graph-ish string.
fn random_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => prop_oneof![
            any::<i64>().prop_map(Value::from),
            Just(json!(-1.25e300)),
            Just(json!(u64::MAX)),
        ],
        2 => prop::sample::select(&RANDOM_STRINGS[..]).prop_map(Value::from),
    ]
    .boxed()
}

/// A user-shaped object whose fields are `value`s: each known Graph property present one time
/// in three, `id` half the time a usable one, `signInActivity` half the time a `nested` user.
fn random_user_with(
    value: BoxedStrategy<Value>,
    nested: Option<BoxedStrategy<Value>>,
) -> BoxedStrategy<Value> {
    let fields: Vec<_> = STRING_FIELDS
        .iter()
        .chain(BOOL_FIELDS.iter())
        .copied()
        .chain(["signInActivity", "lastSignInDateTime", "@odata.type"])
        .map(|key| {
            let field = match (key, &nested) {
                ("id", _) => prop_oneof![Just(json!("u-random")), value.clone()].boxed(),
                ("signInActivity", Some(nested)) => {
                    prop_oneof![nested.clone(), value.clone()].boxed()
                }
                _ => value.clone(),
            };
            prop::option::weighted(1.0 / 3.0, field.prop_map(move |v| (key.to_string(), v)))
        })
        .collect();
    fields
        .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
        .boxed()
}

/// (any JSON value, a Graph-user-shaped object), both nested up to two levels of values
/// (arrays, user objects) and [`MAX_USER_DEPTH`] of users, built from the deepest level up.
fn random_graph_json() -> (BoxedStrategy<Value>, BoxedStrategy<Value>) {
    // Values two levels down are scalars.
    let scalar = random_scalar();
    let mut user = random_user_with(scalar.clone(), None);
    for _ in 2..MAX_USER_DEPTH {
        user = random_user_with(scalar.clone(), Some(user));
    }
    // Levels 1 and 0: a value is a scalar (5 in 7), an array of the level below, or a user of
    // the level below.
    let mut value = scalar;
    for _ in 0..2 {
        value = prop_oneof![
            5 => random_scalar(),
            1 => prop::collection::vec(value, 0..4).prop_map(Value::Array),
            1 => user.clone(),
        ]
        .boxed();
        user = random_user_with(value.clone(), Some(user));
    }
    (value, user)
}

/// What enrichment could bring back, with blank and odd names, each part read or not.
fn random_enrichment() -> impl Strategy<Value = Enrichment> {
    const NAMES: [&str; 6] = [
        "",
        " ",
        "Sales",
        "Global Administrator",
        "Helpdesk Administrator",
        "g-1",
    ];
    let name = || prop::sample::select(&NAMES[..]).prop_map(String::from);
    let names = || prop::collection::vec(name(), 0..4);
    let groups = prop::option::of(prop::collection::vec(
        (name(), prop::option::of(name()))
            .prop_map(|(id, display_name)| GroupRef { id, display_name }),
        0..4,
    ));
    let method = prop::sample::select(vec![MFA_TYPES[3], SINGLE_FACTOR_TYPES[0], "", "#", "."])
        .prop_map(String::from);
    let mfa = prop_oneof![
        Just(None),
        prop::collection::vec(method, 0..4).prop_map(|m| Some(Mfa::Methods(m))),
        names().prop_map(|n| Some(Mfa::Registration(n))),
    ];
    (
        groups,
        names(),
        prop::option::of(names()),
        prop::option::of(names()),
        mfa,
    )
        .prop_map(
            |(groups, member_of_roles, roles, eligible_roles, mfa)| Enrichment {
                groups,
                member_of_roles,
                roles,
                eligible_roles,
                mfa,
                admin_hint: false,
            },
        )
}

#[test]
fn random_graph_json_never_panics_and_always_validates() {
    let (value, user) = random_graph_json();
    let input = (prop_oneof![1 => value, 9 => user], random_enrichment());
    let mapped = std::cell::Cell::new(0);
    seeded_runner(3_000)
        .run(&input, |(user, enrichment)| {
            match map_user(&user, &enrichment, &CTX) {
                Ok(event) => {
                    assert_valid(&event);
                    mapped.set(mapped.get() + 1);
                }
                Err(MapError::MissingId) => assert!(text(&user, "id").is_none(), "{user}"),
            }
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(
        mapped.get() > 300,
        "the generator rarely produced an id ({})",
        mapped.get()
    );
}

// ---------------------------------------------------------------- deleted users

#[test]
fn a_deleted_user_carries_only_identity_deletion_time_and_reason() {
    let event = deleted("87d349ed-44d7-43e1-9a83-5f2406dee5bd", "deleted");
    let uid = uid_of(&event);
    assert_eq!(
        event,
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
            "time": COLLECTED_AT,
            "metadata": {
                "version": "1.8.0",
                "product": {"name": "Microsoft Entra ID", "vendor_name": "Microsoft"},
                "loggers": [{"name": "entra-id-users", "version": "0.1.0"}],
                "tenant_uid": TENANT,
                "uid": uid
            },
            "user": {
                "uid": "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
                "account": {
                    "uid": "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
                    "type_id": 6,
                    "type": "Azure AD Account"
                },
                "ldap_person": {"deleted_time": COLLECTED_AT}
            },
            "enrichments": [
                {"name": "account", "value": "status", "data": {"deleted": true, "deleted_reason": "deleted"}}
            ]
        })
    );
}

#[test]
fn a_soft_deleted_user_says_changed() {
    let event = deleted("u-9", "changed");
    assert_eq!(
        event["enrichments"][0]["data"],
        json!({"deleted": true, "deleted_reason": "changed"})
    );
    assert_eq!(
        event["user"]["ldap_person"]["deleted_time"],
        json!(COLLECTED_AT)
    );
}

#[test]
fn a_blank_deletion_reason_is_omitted() {
    let event = deleted("u-9", " ");
    assert_eq!(event["enrichments"][0]["data"], json!({"deleted": true}));
}

// ---------------------------------------------------------------- departures from the seed

#[test]
fn departure_user_type_ids_are_ocsf_not_the_seeds() {
    // Seed: User = 0, Admin = 1. OCSF: 0 Unknown, 1 User, 2 Admin.
    assert_eq!(roles(&[], Some(&[]))["user"]["type_id"], 1);
    assert_eq!(
        roles(&[], Some(&["Global Administrator"]))["user"]["type_id"],
        2
    );
    assert_eq!(roles(&[], None)["user"]["type_id"], 0);
}

#[test]
fn departure_name_is_the_upn_and_the_display_name_goes_elsewhere() {
    let event = map(&full_user(), &full_enrichment());
    assert_eq!(event["user"]["name"], "AdeleV@contoso.onmicrosoft.com");
    assert_eq!(event["user"]["display_name"], "Adele Vance");
    assert_eq!(event["user"]["full_name"], "Adele Vance");
}

#[test]
fn departure_time_is_collection_and_creation_is_created_time() {
    let event = map(&full_user(), &full_enrichment());
    assert_eq!(event["time"], json!(COLLECTED_AT));
    assert_eq!(
        event["user"]["ldap_person"]["created_time"],
        json!(1_504_232_706_000_i64)
    );
    // And a user without createdDateTime still has a time.
    let event = map(&without(full_user(), "createdDateTime"), &full_enrichment());
    assert_eq!(event["time"], json!(COLLECTED_AT));
}

#[test]
fn departure_type_not_type_str() {
    let event = map(&full_user(), &full_enrichment());
    assert!(!event.to_string().contains("type_str"));
    assert_eq!(event["user"]["type"], "Admin");
}

#[test]
fn departure_a_security_key_alone_is_a_second_factor() {
    for odata_type in [MFA_TYPES[3], MFA_TYPES[4], MFA_TYPES[5], MFA_TYPES[6]] {
        let event = with_mfa(Some(methods(&[odata_type])));
        assert_eq!(event["user"]["has_mfa"], true, "{odata_type}");
    }
}

#[test]
fn departure_mail_nickname_is_never_the_email() {
    let event = map(&without(full_user(), "mail"), &full_enrichment());
    assert!(!has_key(&event["user"], "email_addr"));
    assert_eq!(status(&event)["mail_nickname"], "AdeleV");
    assert!(!event.to_string().contains("\"email_addr\""));
}

// ---------------------------------------------------------------- email_t

#[test]
fn email_check_accepts_exactly_what_the_schema_pattern_accepts() {
    let pattern = schema()["$defs"]["user"]["properties"]["email_addr"]["pattern"]
        .as_str()
        .expect("email_addr has a pattern");
    let regex = jsonschema::validator_for(&json!({"type": "string", "pattern": pattern}))
        .expect("pattern compiles");
    let corpus = [
        "a@b.c",
        "a,b@c.d",
        "a/b@c.d",
        "-@-.-",
        ".@a..",
        "a@b.c.",
        "a@b-c.d-e",
        "a@b_c.d",
        "a@b.c_d",
        "a@b",
        "a@.b",
        "@b.c",
        "a@b.",
        "a@@b.c",
        "a@b.c@d.e",
        "a b@c.d",
        "a\"b@c.d",
        "a(b)@c.d",
        "a:b@c.d",
        "a;b@c.d",
        "a<b@c.d",
        "a[b@c.d",
        "a\\b@c.d",
        "é@c.d",
        "a@é.d",
        "a@c.é",
        "a@b.c\n",
        "\na@b.c",
        "",
    ];
    let alphabet: Vec<char> = "aZ09!#$%&'*+,-./=?^_`{|}~@ \"()<>[]:;\\é\n"
        .chars()
        .collect();
    let plain: Vec<char> = "aZ09-".chars().collect();
    // Mostly characters every class accepts, so that many candidates match.
    let part = prop::collection::vec(
        prop_oneof![1 => prop::sample::select(alphabet), 4 => prop::sample::select(plain)],
        0..4,
    )
    .prop_map(String::from_iter);
    let separator = |c: char| prop::option::weighted(7.0 / 8.0, Just(c));
    let candidate = (
        part.clone(),
        separator('@'),
        part.clone(),
        separator('.'),
        part,
    )
        .prop_map(|(local, at, domain, dot, tld)| {
            let mut candidate = local;
            candidate.extend(at);
            candidate.push_str(&domain);
            candidate.extend(dot);
            candidate.push_str(&tld);
            candidate
        });
    let (accepted, rejected) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let check = |candidate: &str| {
        let expected = regex.is_valid(&json!(candidate));
        assert_eq!(is_ocsf_email(candidate), expected, "{candidate:?}");
        let count = if expected { &accepted } else { &rejected };
        count.set(count.get() + 1);
    };
    for candidate in &corpus {
        check(candidate);
    }
    seeded_runner(20_000)
        .run(&candidate, |candidate| {
            check(&candidate);
            Ok(())
        })
        .unwrap_or_else(|err| panic!("{err}"));
    let (accepted, rejected) = (accepted.get(), rejected.get());
    assert!(
        accepted > 1_000 && rejected > 1_000,
        "{accepted} / {rejected}"
    );
}

// ---------------------------------------------------------------- users in too many groups

fn many_groups(n: usize) -> Vec<GroupRef> {
    (0..n)
        .map(|g| GroupRef {
            id: format!("00000000-0000-4000-8000-{g:012}"),
            display_name: Some(format!("Project group number {g} with a longish name")),
        })
        .collect()
}

#[test]
fn hostile_a_user_in_twenty_thousand_groups_keeps_the_groups_that_fit_and_is_marked() {
    let user: Value = serde_json::from_str(FULL_USER).unwrap();
    let groups = many_groups(20_000);
    let enrichment = Enrichment {
        groups: Some(groups.clone()),
        roles: Some(vec!["Global Administrator".into()]),
        ..Enrichment::default()
    };
    let whole = map_user(&user, &enrichment, &CTX).unwrap().to_string();
    assert!(whole.len() > 1_500_000, "{}", whole.len());
    // The role-holding groups (the last two by id) come first.
    let first: std::collections::HashSet<String> =
        [groups[19_999].id.clone(), groups[19_998].id.clone()].into();
    let limit = 1024 * 1024;
    let mapped = map_user_within(&user, &enrichment, &CTX, limit, &first).unwrap();
    assert!(mapped.json.len() <= limit, "{}", mapped.json.len());
    let event: Value = serde_json::from_str(&mapped.json).unwrap();
    assert_valid(&event);
    let kept = event["user"]["groups"].as_array().unwrap();
    let t = mapped.truncation.expect("marked truncated");
    assert_eq!(
        (t.total, t.kept, t.untruncated_size),
        (20_000, kept.len(), whole.len())
    );
    assert!(kept.len() > 10_000 && kept.len() < 20_000, "{}", kept.len());
    assert!(
        mapped.json.len() > limit - 4096,
        "as many groups as fit: {}",
        mapped.json.len()
    );
    let ids: Vec<&str> = kept.iter().map(|g| g["uid"].as_str().unwrap()).collect();
    assert!(ids.contains(&groups[19_999].id.as_str()) && ids.contains(&groups[19_998].id.as_str()));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "listed by id");
    assert_eq!(ids[0], groups[0].id, "then the others from the first id on");
    assert_eq!(event["metadata"]["is_truncated"], true);
    assert_eq!(event["metadata"]["untruncated_size"], whole.len() as u64);
    assert_eq!(event["enrichments"][0]["data"]["groups_total"], 20_000);
    assert_eq!(event["user"]["type_id"], 2, "the admin is still an admin");
    // The same input gives the same event (metadata.uid included).
    let again = map_user_within(&user, &enrichment, &CTX, limit, &first).unwrap();
    assert_eq!(again, mapped);
}

#[test]
fn an_event_that_fits_is_the_plain_mapping_and_one_that_cannot_fit_is_returned_whole() {
    let user: Value = serde_json::from_str(FULL_USER).unwrap();
    let enrichment = Enrichment {
        groups: Some(many_groups(50)),
        ..Enrichment::default()
    };
    let none = std::collections::HashSet::new();
    let mapped = map_user_within(&user, &enrichment, &CTX, 1024 * 1024, &none).unwrap();
    assert_eq!(mapped.truncation, None);
    assert_eq!(
        mapped.json,
        map_user(&user, &enrichment, &CTX).unwrap().to_string()
    );
    // A display name alone over the limit: nothing to cut, the whole event comes back.
    let mut giant = user.clone();
    giant["displayName"] = Value::String("x".repeat(2 * 1024 * 1024));
    let mapped = map_user_within(&giant, &enrichment, &CTX, 1024 * 1024, &none).unwrap();
    assert_eq!(mapped.truncation, None);
    assert!(mapped.json.len() > 4 * 1024 * 1024);
}
