//! One Okta user as an OCSF 1.8.0 class 5003 "User Inventory Info" event, per OKTA.md's
//! "Mapping" table: the user record's fields, and what other endpoints say ([`Enrichment`]):
//! groups (`user.groups`), roles (`user.type_id`, the enrichment's `roles`) and factors
//! (`user.has_mfa`, `is_mfa`, `mfa_methods`).
//!
//! User fields: the spec's `User` schema (okta-management-openapi-spec,
//! management-minimal.yaml, release 2026.06.3; OKTA.md "Users"): `created`, `lastUpdated`
//! required, `activated`, `statusChanged`, `lastLogin`, `passwordChanged` nullable.

use connector_sdk::ocsf::{Envelope, USER_INVENTORY_COLLECT};
use connector_sdk::time::parse_rfc3339_ms;
use serde_json::{Map, Value};

/// One group a user belongs to: `user.groups[]` `{uid, name, type}` (OKTA.md, "Mapping").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRef {
    /// The group id (`00g…`).
    pub id: String,
    /// `profile.name`.
    pub name: String,
    /// The Okta group type: OKTA_GROUP, APP_GROUP or BUILT_IN.
    pub kind: String,
}

/// One enrolled factor: its `factorType` and `status` (OKTA.md, "MFA").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorRef {
    /// `factorType` (push, sms, token:software:totp, …).
    pub factor_type: String,
    /// `status` (ACTIVE, PENDING_ACTIVATION, …).
    pub status: String,
}

/// What other endpoints than the user record say about a user. `None` means the part could
/// not be read (a scope missing): the fields it feeds are omitted and the event counts as
/// partial.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Enrichment {
    /// The user's groups (None: unreadable -> `user.groups` omitted).
    pub groups: Option<Vec<GroupRef>>,
    /// The roles held, by type or custom label (None: unreadable -> `type_id` 0; Some(empty)
    /// -> 1 User; otherwise 2 Admin).
    pub roles: Option<Vec<String>>,
    /// The enrolled factors (None: unreadable -> `has_mfa` omitted).
    pub factors: Option<Vec<FactorRef>>,
}

impl Enrichment {
    /// Whether a part could not be read (the event is partial).
    pub fn is_partial(&self) -> bool {
        self.groups.is_none() || self.roles.is_none() || self.factors.is_none()
    }
}

use crate::{NAME, VERSION};

/// `user.account.type_id` 99 "Other" with `type` naming it: OCSF 1.8.0's account types have
/// no Okta value (OKTA.md, "Mapping").
const ACCOUNT_TYPE_ID: i64 = 99;
const ACCOUNT_TYPE: &str = "Okta Account";

/// `user` as a 5003 event in the SDK envelope (`metadata.product` Okta/Okta,
/// `metadata.tenant_uid` the org id); None without an `id` (skipped and counted).
pub fn map_user(org_id: &str, user: &Value, e: &Enrichment, now_ms: i64) -> Option<Value> {
    let id = text(&user["id"])?;
    let p = &user["profile"];
    let mut u = Map::new();
    let mut account = Map::new();
    u.insert("uid".into(), id.into());
    account.insert("uid".into(), id.into());
    if let Some(login) = text(&p["login"]) {
        u.insert("name".into(), login.into());
        account.insert("name".into(), login.into());
        // The domain is what follows the last `@`; none without one.
        if let Some((_, domain)) = login.rsplit_once('@').filter(|(_, d)| !d.is_empty()) {
            u.insert("domain".into(), domain.into());
        }
    }
    let full_name = text(&p["displayName"]).map(str::to_string).or_else(|| {
        let parts: Vec<&str> = [text(&p["firstName"]), text(&p["lastName"])]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    if let Some(name) = full_name {
        u.insert("display_name".into(), name.clone().into());
        u.insert("full_name".into(), name.into());
    }
    if let Some(email) = text(&p["email"]).filter(|e| is_email(e)) {
        u.insert("email_addr".into(), email.into());
    }
    if let Some(phone) = text(&p["primaryPhone"]).or_else(|| text(&p["mobilePhone"])) {
        u.insert("phone_number".into(), phone.into());
    }
    account.insert("type_id".into(), ACCOUNT_TYPE_ID.into());
    account.insert("type".into(), ACCOUNT_TYPE.into());
    let status = user["status"].as_str().unwrap_or("");
    let deprovisioning = user["transitioningToStatus"].as_str() == Some("DEPROVISIONED");
    let disabled = matches!(status, "SUSPENDED" | "DEPROVISIONED") || deprovisioning;
    account.insert("is_disabled".into(), disabled.into());
    account.insert("is_locked".into(), (status == "LOCKED_OUT").into());
    u.insert("account".into(), Value::Object(account));
    if let Some(org) = text(&p["organization"]) {
        let mut o = Map::new();
        o.insert("name".into(), org.into());
        if let Some(ou) = text(&p["division"]) {
            o.insert("ou_name".into(), ou.into());
        }
        u.insert("org".into(), Value::Object(o));
    }
    if let Some(groups) = &e.groups {
        let mut groups: Vec<&GroupRef> = groups.iter().collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        groups.dedup_by(|a, b| a.id == b.id);
        let list = groups
            .into_iter()
            .map(|g| {
                let mut o = Map::new();
                o.insert("uid".into(), g.id.clone().into());
                if !g.name.is_empty() {
                    o.insert("name".into(), g.name.clone().into());
                }
                if !g.kind.is_empty() {
                    o.insert("type".into(), g.kind.clone().into());
                }
                Value::Object(o)
            })
            .collect();
        u.insert("groups".into(), Value::Array(list));
    }
    // Roles held (USER or GROUP assignment, standard or CUSTOM): 2 Admin; read and none
    // held: 1 User; unreadable: 0 Unknown, never a guess (OKTA.md, "Mapping").
    let (type_id, type_name) = match &e.roles {
        None => (0, "Unknown"),
        Some(r) if r.is_empty() => (1, "User"),
        Some(_) => (2, "Admin"),
    };
    u.insert("type_id".into(), type_id.into());
    u.insert("type".into(), type_name.into());
    if let Some(mfa) = has_mfa(e) {
        u.insert("has_mfa".into(), mfa.into());
    }
    let ldap = ldap_person(user, p);
    if !ldap.is_empty() {
        u.insert("ldap_person".into(), Value::Object(ldap));
    }
    let envelope = Envelope {
        class: &USER_INVENTORY_COLLECT,
        product_name: "Okta",
        vendor_name: "Okta",
        connector_name: NAME,
        connector_version: VERSION,
        tenant_uid: org_id,
        uid_tag: "okta-5003/v1",
    };
    let enrichments = enrichments(user, p, e, disabled, status);
    let body = Map::from_iter([
        ("user".to_string(), Value::Object(u)),
        ("enrichments".to_string(), Value::Array(enrichments)),
    ]);
    Some(envelope.wrap(id, body, Map::new(), now_ms))
}

/// `enrichments`, as MAPPING.md lays them out and OKTA.md fills them: first, always, the
/// account's status (`is_enabled`, `is_locked`, `last_logon` = `last_login_time`,
/// `okta_status`, `password_changed`, `status_changed`, `activated`; `is_mfa`,
/// `mfa_methods` and `roles` once factors and roles are read), then `employment` when any
/// of department, title, employee number or user type is set.
fn enrichments(
    user: &Value,
    p: &Value,
    e: &Enrichment,
    disabled: bool,
    status: &str,
) -> Vec<Value> {
    let mut data = Map::new();
    data.insert("is_enabled".into(), (!disabled).into());
    if let Some(mfa) = has_mfa(e) {
        data.insert("is_mfa".into(), mfa.into());
    }
    data.insert("is_locked".into(), (status == "LOCKED_OUT").into());
    if let Some(factors) = &e.factors {
        let mut methods: Vec<&str> = factors
            .iter()
            .filter(|f| f.status == "ACTIVE")
            .map(|f| f.factor_type.as_str())
            .collect();
        methods.sort_unstable();
        methods.dedup();
        data.insert("mfa_methods".into(), methods.into());
    }
    if let Some(roles) = &e.roles {
        let mut roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        roles.sort_unstable();
        roles.dedup();
        data.insert("roles".into(), roles.into());
    }
    if !status.is_empty() {
        data.insert("okta_status".into(), status.into());
    }
    for (from, to) in [
        ("lastLogin", "last_logon"),
        ("passwordChanged", "password_changed"),
        ("statusChanged", "status_changed"),
        ("activated", "activated"),
    ] {
        if let Some(ms) = user[from].as_str().and_then(parse_rfc3339_ms) {
            data.insert(to.into(), ms.into());
        }
    }
    let mut out = vec![j(&[
        ("name", "account".into()),
        ("value", "status".into()),
        ("data", Value::Object(data)),
    ])];
    let (department, title) = (text(&p["department"]), text(&p["title"]));
    let (number, kind) = (text(&p["employeeNumber"]), text(&p["userType"]));
    if department.is_some() || title.is_some() || number.is_some() || kind.is_some() {
        let value = match (department, title) {
            (Some(d), Some(t)) => format!("{d} - {t}"),
            (Some(one), None) | (None, Some(one)) => one.to_string(),
            (None, None) => "employment".to_string(),
        };
        let mut data = Map::new();
        for (k, v) in [
            ("department", department),
            ("job_title", title),
            ("employee_id", number),
            ("employee_type", kind),
        ] {
            if let Some(v) = v {
                data.insert(k.into(), v.into());
            }
        }
        out.push(j(&[
            ("name", "employment".into()),
            ("value", value.into()),
            ("data", Value::Object(data)),
        ]));
    }
    out
}

/// The factor types that make `has_mfa` true when ACTIVE (OKTA.md, "Mapping": push,
/// signed_nonce, token:software:totp, token:hotp, token:hardware, token, u2f, webauthn, web,
/// sms, call; email and security questions are not strong). Factor types: the spec's
/// `FactorType` (okta-management-openapi-spec; developer.okta.com/docs/api/openapi/
/// okta-management/management/tag/UserFactor).
const STRONG_FACTORS: &[&str] = &[
    "push",
    "signed_nonce",
    "token:software:totp",
    "token:hotp",
    "token:hardware",
    "token",
    "u2f",
    "webauthn",
    "web",
    "sms",
    "call",
];

/// `user.has_mfa` (and the enrichment's `is_mfa`): an ACTIVE strong factor; None when the
/// factors could not be read.
pub fn has_mfa(e: &Enrichment) -> Option<bool> {
    e.factors.as_ref().map(|f| {
        f.iter()
            .any(|f| f.status == "ACTIVE" && STRONG_FACTORS.contains(&f.factor_type.as_str()))
    })
}

fn j(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// `user.ldap_person`: names, job, manager, location, second email and the times.
fn ldap_person(user: &Value, p: &Value) -> Map<String, Value> {
    let mut l = Map::new();
    for (from, to) in [
        ("firstName", "given_name"),
        ("lastName", "surname"),
        ("title", "job_title"),
        ("department", "department"),
        ("employeeNumber", "employee_uid"),
        ("costCenter", "cost_center"),
    ] {
        if let Some(v) = text(&p[from]) {
            l.insert(to.into(), v.into());
        }
    }
    if let Some(second) = text(&p["secondEmail"]).filter(|e| is_email(e)) {
        l.insert("email_addrs".into(), Value::Array(vec![second.into()]));
    }
    if let Some(kind) = text(&p["userType"]) {
        l.insert("labels".into(), Value::Array(vec![kind.into()]));
    }
    if let Some(manager_id) = text(&p["managerId"]) {
        let mut m = Map::new();
        m.insert("uid".into(), manager_id.into());
        if let Some(name) = text(&p["manager"]) {
            m.insert("name".into(), name.into());
        }
        l.insert("manager".into(), Value::Object(m));
    }
    let mut loc = Map::new();
    for (from, to) in [
        ("city", "city"),
        ("state", "region"),
        ("zipCode", "postal_code"),
    ] {
        if let Some(v) = text(&p[from]) {
            loc.insert(to.into(), v.into());
        }
    }
    if let Some(c) = text(&p["countryCode"]) {
        loc.insert("country".into(), c.to_uppercase().into());
    }
    if !loc.is_empty() {
        l.insert("location".into(), Value::Object(loc));
    }
    for (from, to) in [
        ("created", "created_time"),
        ("lastUpdated", "modified_time"),
        ("lastLogin", "last_login_time"),
    ] {
        if let Some(ms) = user[from].as_str().and_then(parse_rfc3339_ms) {
            l.insert(to.into(), ms.into());
        }
    }
    l
}

/// A non-blank string, trimmed; null, absent and other types are nothing.
fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// An address worth mapping: one `@`, something on both sides, a dot in the domain, no
/// spaces or controls (Okta's own profile check is looser for custom attributes).
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}
