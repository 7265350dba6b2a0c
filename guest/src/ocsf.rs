//! Graph user JSON → OCSF 1.8.0 "User Inventory Info" (class 5003) events.
//!
//! This is where a Microsoft Entra ID user becomes the event the connector emits, row by row
//! as `MAPPING.md` specifies. It is kept pure — plain functions from `serde_json::Value` to
//! `serde_json::Value`, no I/O — so that every rule of the mapping is tested on its own, without
//! a Graph client, a host or a network; fetching, paging and checkpoints live at the edges.
//!
//! Graph data is untrusted: any JSON value maps without panicking, values of the wrong type or
//! empty/whitespace-only strings count as absent, nothing is ever `null` and no placeholder is
//! invented, so every event validates against the OCSF 1.8.0 schema for class 5003.

use crate::time::parse_graph_time_ms;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// The OCSF schema version every event declares in `metadata.version`.
pub const OCSF_VERSION: &str = "1.8.0";

/// Context of one collection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapContext<'a> {
    /// The Entra tenant as configured (GUID or domain), emitted as `metadata.tenant_uid`.
    pub tenant_uid: &'a str,
    /// When the collection happened, in milliseconds since the Unix epoch: the event `time`.
    pub collected_at_ms: i64,
    /// The connector's own version, emitted as `metadata.product.version` when not blank.
    pub connector_version: &'a str,
}

/// A group the user is a direct member of.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRef {
    /// The group's Graph object id (`user.groups[].uid`).
    pub id: String,
    /// The group's display name (`user.groups[].name`), when Graph gave one.
    pub display_name: Option<String>,
}

/// Where MFA facts came from. Both map to one method vocabulary (MAPPING.md, "Method
/// vocabulary"), so `has_mfa` and `mfa_methods` are the same whichever source was read.
#[derive(Clone, Debug, PartialEq)]
pub enum Mfa {
    /// Per-user /authentication/methods: the "@odata.type" strings of every registered method.
    Methods(Vec<String>),
    /// The userRegistrationDetails report: its `methodsRegistered` values (e.g.
    /// `microsoftAuthenticatorPush`). The report's own `isMfaRegistered` is not used: it follows
    /// Microsoft's rules, not the vocabulary's, and would make `has_mfa` flap between sources.
    Registration(Vec<String>),
    /// Names already in the method vocabulary (what the connector remembers of a user between
    /// full walks).
    Vocabulary(Vec<String>),
}

/// What enrichment calls found for one user; `None` means "could not be read" (so the field is
/// omitted / type_id 0).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Enrichment {
    /// Groups from memberOf (`#microsoft.graph.group` items only), None if memberOf failed.
    pub groups: Option<Vec<GroupRef>>,
    /// Display names of directory roles seen in memberOf items (`#microsoft.graph.directoryRole`);
    /// empty when none or memberOf failed.
    pub member_of_roles: Vec<String>,
    /// Display names of the roles the user holds actively (built-in or custom, any scope,
    /// directly or through a role-assignable group), from the role assignments; None if they
    /// could not be read.
    pub roles: Option<Vec<String>>,
    /// Display names of the roles the user is PIM-eligible for; None if eligibility could not
    /// be read (no P2 licence, no permission).
    pub eligible_roles: Option<Vec<String>>,
    /// MFA facts, None if they could not be read.
    pub mfa: Option<Mfa>,
}

/// Why a Graph user could not be mapped.
#[derive(Clone, Debug, PartialEq)]
pub enum MapError {
    /// The Graph user has no usable `id` (missing, null, blank or not a string): it is skipped
    /// and counted as an error in the run report.
    MissingId,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::MissingId => f.write_str(
                "Graph returned a user without an `id`: it was skipped; \
                 check that `$select` includes `id`",
            ),
        }
    }
}

impl std::error::Error for MapError {}

const ACTIVITY_ID_COLLECT: i64 = 2;
const CATEGORY_UID_DISCOVERY: i64 = 5;
const CLASS_UID_USER_INVENTORY: i64 = 5003;
const SEVERITY_ID_INFORMATIONAL: i64 = 1;
const PRODUCT_NAME: &str = "Microsoft Entra ID";
const VENDOR_NAME: &str = "Microsoft";
const ACCOUNT_TYPE_ID_AZURE_AD: i64 = 6;
const ACCOUNT_TYPE_AZURE_AD: &str = "Azure AD Account";

/// Vocabulary names (MAPPING.md, "Method vocabulary") of the methods that are a second factor.
/// `password`, `email`, `temporaryAccessPass` and unknown names are deliberately absent.
const STRONG_METHODS: [&str; 8] = [
    "microsoftAuthenticator",
    "phone",
    "softwareOath",
    "hardwareOath",
    "fido2",
    "windowsHelloForBusiness",
    "platformCredential",
    "external",
];

/// Graph times outside `[1e12, 1e13)` ms (before 2001-09-09 or after 2286-11-20) cannot be real
/// Entra ID facts (Entra ID did not exist yet; .NET's `DateTime.MaxValue` is a sentinel): they are
/// treated as absent, which also keeps every `*_time` of the event plausible milliseconds.
const PLAUSIBLE_MS: std::ops::Range<i64> = 1_000_000_000_000..10_000_000_000_000;

/// Maps one Graph user object (as returned by GET /users with $select; may or may not contain
/// signInActivity) to one OCSF 5003 event.
///
/// Never panics, whatever the JSON: a `user` that is not an object, or has no usable `id`, is
/// [`MapError::MissingId`]; any other field that is missing, null, blank or of the wrong type is
/// left out of the event.
pub fn map_user(
    user: &Value,
    enrichment: &Enrichment,
    ctx: &MapContext,
) -> Result<Value, MapError> {
    let id = text(user, "id").ok_or(MapError::MissingId)?;
    let upn = text(user, "userPrincipalName");
    let display_name = text(user, "displayName");
    let account_enabled = boolean(user, "accountEnabled");
    let office_location = text(user, "officeLocation");
    let department = text(user, "department");
    let job_title = text(user, "jobTitle");
    let employee_id = text(user, "employeeId");
    let employee_type = text(user, "employeeType");
    // The last *successful* sign-in: `lastSignInDateTime` counts failed attempts too, so a
    // password spray would make a dormant account look active (MAPPING.md).
    let sign_in = user.get("signInActivity");
    let last_sign_in =
        sign_in.and_then(|activity| graph_time(activity, "lastSuccessfulSignInDateTime"));
    let last_attempt = sign_in.and_then(|activity| graph_time(activity, "lastSignInDateTime"));
    let roles = RoleFacts::from(enrichment);
    let mfa = enrichment.mfa.as_ref().map(MfaFacts::from);

    let mut account = Map::new();
    put(&mut account, "uid", Some(id));
    put(&mut account, "name", upn);
    put_azure_ad_type(&mut account);
    put(&mut account, "is_disabled", account_enabled.map(|on| !on));
    put(
        &mut account,
        "is_on_premises_sync_enabled",
        boolean(user, "onPremisesSyncEnabled"),
    );

    let mut out = Map::new();
    put(&mut out, "uid", Some(id));
    put(&mut out, "name", upn);
    put(&mut out, "domain", upn.and_then(upn_domain));
    put(&mut out, "display_name", display_name);
    put(&mut out, "full_name", display_name);
    put(
        &mut out,
        "email_addr",
        text(user, "mail").filter(|mail| is_ocsf_email(mail)),
    );
    put(&mut out, "uid_alt", text(user, "onPremisesSamAccountName"));
    out.insert("account".into(), Value::Object(account));

    if let Some(company) = text(user, "companyName") {
        let mut org = Map::new();
        put(&mut org, "name", Some(company));
        put(&mut org, "ou_name", office_location);
        out.insert("org".into(), Value::Object(org));
    }

    let mut ldap = Map::new();
    put(&mut ldap, "office_location", office_location);
    put(&mut ldap, "department", department);
    put(&mut ldap, "job_title", job_title);
    put(&mut ldap, "employee_uid", employee_id);
    let mut labels: Vec<&str> = Vec::new();
    for label in [employee_type, text(user, "userType")]
        .into_iter()
        .flatten()
    {
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    if !labels.is_empty() {
        put(&mut ldap, "labels", Some(labels));
    }
    put(
        &mut ldap,
        "created_time",
        graph_time(user, "createdDateTime"),
    );
    put(&mut ldap, "last_login_time", last_sign_in);
    if !ldap.is_empty() {
        out.insert("ldap_person".into(), Value::Object(ldap));
    }

    if let Some(groups) = &enrichment.groups {
        let groups = groups.iter().filter_map(group_object).collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    out.insert("type_id".into(), roles.type_id.into());
    out.insert("type".into(), roles.caption.into());
    put(&mut out, "has_mfa", mfa.as_ref().map(|m| m.has_mfa));

    let mut status = Map::new();
    put(&mut status, "is_enabled", account_enabled);
    put(&mut status, "is_mfa", mfa.as_ref().map(|m| m.has_mfa));
    put(&mut status, "is_restricted", management_restricted(user));
    put(&mut status, "last_logon", last_sign_in);
    put(&mut status, "last_sign_in_attempt", last_attempt);
    put(&mut status, "mfa_methods", mfa.map(|m| m.methods));
    put(&mut status, "roles", roles.names);
    put(&mut status, "eligible_roles", roles.eligible);
    put(&mut status, "mail_nickname", text(user, "mailNickname"));

    let mut enrichments = vec![account_status(status)];
    enrichments.extend(employment(
        department,
        job_title,
        employee_id,
        employee_type,
    ));

    Ok(event(id, out, enrichments, ctx))
}

/// Maps a user that delta reported as removed (`reason` is Graph's "changed" or "deleted") —
/// MAPPING.md "Deleted users".
///
/// The event carries only `user.uid`, `user.account` (uid and type), `user.ldap_person.deleted_time`
/// (the collection time) and the account enrichment with `deleted: true` and `deleted_reason`
/// (Graph's word, passed through; omitted when blank). `user_id` must not be blank: callers skip
/// `@removed` entries without an id, as [`map_user`] does for users without one.
pub fn map_deleted_user(user_id: &str, reason: &str, ctx: &MapContext) -> Value {
    let user_id_text = non_blank(user_id);
    let mut account = Map::new();
    put(&mut account, "uid", user_id_text);
    put_azure_ad_type(&mut account);
    let mut user = Map::new();
    put(&mut user, "uid", user_id_text);
    user.insert("account".into(), Value::Object(account));

    let mut status = Map::new();
    status.insert("deleted".into(), Value::Bool(true));
    put(&mut status, "deleted_reason", non_blank(reason));

    let mut event = event(user_id, user, vec![account_status(status)], ctx);
    // Added after `event` computed metadata.uid: the deletion time is the collection time, so a
    // re-delivered deletion keeps its uid.
    if let Some(user) = event.get_mut("user").and_then(Value::as_object_mut) {
        let mut ldap = Map::new();
        ldap.insert("deleted_time".into(), ctx.collected_at_ms.into());
        user.insert("ldap_person".into(), Value::Object(ldap));
    }
    event
}

/// The short method name used in enrichments: "#microsoft.graph.fido2AuthenticationMethod" ->
/// "fido2".
///
/// Drops a leading `#`, everything up to the last `.` (the namespace) and a trailing
/// `AuthenticationMethod`; a type without those parts is returned trimmed, as it is.
pub fn short_method_name(odata_type: &str) -> String {
    let name = odata_type.trim();
    let name = name.strip_prefix('#').unwrap_or(name);
    let name = name.rsplit('.').next().unwrap_or(name);
    let name = name
        .strip_suffix("AuthenticationMethod")
        .filter(|short| !short.is_empty())
        .unwrap_or(name);
    name.to_string()
}

/// True when the method type counts as a second factor (MAPPING.md list).
///
/// Microsoft Authenticator, phone, software and hardware OATH, FIDO2, Windows Hello for
/// Business, platform credential and external methods count; password, email, temporary access
/// pass and unknown types do not. Compares vocabulary names, ignoring ASCII case.
pub fn is_mfa_method(odata_type: &str) -> bool {
    is_strong(&short_method_name(odata_type))
}

fn is_strong(name: &str) -> bool {
    STRONG_METHODS
        .iter()
        .any(|method| method.eq_ignore_ascii_case(name))
}

/// The vocabulary name of a registration report `methodsRegistered` value (MAPPING.md table);
/// a value the table does not know is kept as given (and so never counts as strong).
pub fn registered_method_name(value: &str) -> String {
    let name = match value.trim() {
        "microsoftAuthenticatorPush" | "microsoftAuthenticatorPasswordless" => {
            "microsoftAuthenticator"
        }
        "mobilePhone"
        | "alternateMobilePhone"
        | "officePhone"
        | "sms"
        | "voiceMobile"
        | "voiceAlternateMobile"
        | "voiceOffice" => "phone",
        "softwareOneTimePasscode" => "softwareOath",
        "hardwareOneTimePasscode" => "hardwareOath",
        // `fido2SecurityKey` and `passKeySynced` are values Graph's `methodsRegistered` enum
        // uses beside the ones MAPPING.md lists (seen in the report's public consumers).
        "fido2"
        | "fido2SecurityKey"
        | "passKeyDeviceBound"
        | "passKeyDeviceBoundAuthenticator"
        | "passKeyDeviceBoundWindowsHello"
        | "passKeySynced" => "fido2",
        "windowsHelloForBusiness" => "windowsHelloForBusiness",
        "macOsSecureEnclaveKey" => "platformCredential",
        // The enum spells it `externalAuthMethod`; MAPPING.md's `externalAuthenticationMethod`
        // is kept too.
        "externalAuthenticationMethod" | "externalAuthMethod" => "external",
        other => other,
    };
    name.to_string()
}

/// `user.type_id` / `user.type` and the `roles` / `eligible_roles` lists of the account
/// enrichment (MAPPING.md: 2 whenever any source proves a role; 1 only when the active
/// assignments were read and none was found; 0 when they could not be read and none is known).
struct RoleFacts {
    type_id: i64,
    caption: &'static str,
    /// Only when the active assignments were read: otherwise the list is incomplete.
    names: Option<Vec<String>>,
    /// Only when eligibility was read.
    eligible: Option<Vec<String>>,
}

impl From<&Enrichment> for RoleFacts {
    fn from(enrichment: &Enrichment) -> Self {
        let seen_in_member_of = enrichment.member_of_roles.iter();
        let names = enrichment
            .roles
            .as_ref()
            .map(|roles| sorted_unique(roles.iter().chain(seen_in_member_of.clone())));
        let eligible = enrichment.eligible_roles.as_ref().map(sorted_unique);
        let proven = names.as_ref().is_some_and(|n| !n.is_empty())
            || eligible.as_ref().is_some_and(|e| !e.is_empty())
            || !sorted_unique(seen_in_member_of).is_empty();
        let (type_id, caption) = match (proven, &names) {
            (true, _) => (2, "Admin"),
            (false, Some(_)) => (1, "User"),
            (false, None) => (0, "Unknown"),
        };
        RoleFacts {
            type_id,
            caption,
            names,
            eligible,
        }
    }
}

/// `user.has_mfa` (= enrichment `is_mfa`) and the enrichment's `mfa_methods`: vocabulary
/// names, `password` never listed (the report cannot see it, so listing it from one source
/// only would make events flap).
struct MfaFacts {
    has_mfa: bool,
    methods: Vec<String>,
}

impl From<&Mfa> for MfaFacts {
    fn from(mfa: &Mfa) -> Self {
        let names: Vec<String> = match mfa {
            Mfa::Methods(types) => types.iter().map(|t| short_method_name(t)).collect(),
            Mfa::Registration(values) => values.iter().map(|v| registered_method_name(v)).collect(),
            Mfa::Vocabulary(names) => names.clone(),
        };
        let methods = sorted_unique(
            names
                .iter()
                .filter(|n| !n.trim().is_empty() && !n.eq_ignore_ascii_case("password")),
        );
        MfaFacts {
            has_mfa: methods.iter().any(|n| is_strong(n)),
            methods,
        }
    }
}

/// The method vocabulary names of `mfa`, as `mfa_methods` lists them (sorted, without
/// `password`).
pub fn vocabulary(mfa: &Mfa) -> Vec<String> {
    MfaFacts::from(mfa).methods
}

/// Wraps the user in the class 5003 envelope, then stamps `time` and `metadata.uid`.
fn event(
    user_id: &str,
    user: Map<String, Value>,
    enrichments: Vec<Value>,
    ctx: &MapContext,
) -> Value {
    let mut product = Map::new();
    put(&mut product, "name", Some(PRODUCT_NAME));
    put(&mut product, "vendor_name", Some(VENDOR_NAME));
    put(&mut product, "version", non_blank(ctx.connector_version));
    let mut metadata = Map::new();
    put(&mut metadata, "version", Some(OCSF_VERSION));
    metadata.insert("product".into(), Value::Object(product));
    put(&mut metadata, "tenant_uid", non_blank(ctx.tenant_uid));

    let mut event = Map::new();
    event.insert("activity_id".into(), ACTIVITY_ID_COLLECT.into());
    event.insert("activity_name".into(), "Collect".into());
    event.insert("category_uid".into(), CATEGORY_UID_DISCOVERY.into());
    event.insert("category_name".into(), "Discovery".into());
    event.insert("class_uid".into(), CLASS_UID_USER_INVENTORY.into());
    event.insert("class_name".into(), "User Inventory Info".into());
    event.insert(
        "type_uid".into(),
        (CLASS_UID_USER_INVENTORY * 100 + ACTIVITY_ID_COLLECT).into(),
    );
    event.insert("type_name".into(), "User Inventory Info: Collect".into());
    event.insert("severity_id".into(), SEVERITY_ID_INFORMATIONAL.into());
    event.insert("severity".into(), "Informational".into());
    event.insert("metadata".into(), Value::Object(metadata));
    event.insert("user".into(), Value::Object(user));
    event.insert("enrichments".into(), Value::Array(enrichments));

    // Everything so far is content; `time` (and, for deletions, `deleted_time`) is not.
    let uid = content_uid(ctx.tenant_uid, user_id, &event);
    if let Some(metadata) = event.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("uid".into(), uid.into());
    }
    event.insert("time".into(), ctx.collected_at_ms.into());
    Value::Object(event)
}

/// The account enrichment that always comes first.
fn account_status(data: Map<String, Value>) -> Value {
    let mut enrichment = Map::new();
    enrichment.insert("name".into(), "account".into());
    enrichment.insert("value".into(), "status".into());
    enrichment.insert("data".into(), Value::Object(data));
    Value::Object(enrichment)
}

/// The employment enrichment, only when one of its four facts is known.
fn employment(
    department: Option<&str>,
    job_title: Option<&str>,
    employee_id: Option<&str>,
    employee_type: Option<&str>,
) -> Option<Value> {
    if department.is_none()
        && job_title.is_none()
        && employee_id.is_none()
        && employee_type.is_none()
    {
        return None;
    }
    let value = match (department, job_title) {
        (Some(department), Some(job_title)) => format!("{department} - {job_title}"),
        (Some(one), None) | (None, Some(one)) => one.to_string(),
        (None, None) => "employment".to_string(),
    };
    let mut data = Map::new();
    put(&mut data, "department", department);
    put(&mut data, "job_title", job_title);
    put(&mut data, "employee_id", employee_id);
    put(&mut data, "employee_type", employee_type);

    let mut enrichment = Map::new();
    enrichment.insert("name".into(), "employment".into());
    enrichment.insert("value".into(), value.into());
    enrichment.insert("data".into(), Value::Object(data));
    Some(Value::Object(enrichment))
}

/// `{uid, name}`; a blank id or name is left out, and a group with neither is dropped (an OCSF
/// group needs one of them).
fn group_object(group: &GroupRef) -> Option<Value> {
    let mut object = Map::new();
    put(&mut object, "uid", non_blank(&group.id));
    put(
        &mut object,
        "name",
        group.display_name.as_deref().and_then(non_blank),
    );
    (!object.is_empty()).then_some(Value::Object(object))
}

fn put_azure_ad_type(account: &mut Map<String, Value>) {
    account.insert("type_id".into(), ACCOUNT_TYPE_ID_AZURE_AD.into());
    account.insert("type".into(), ACCOUNT_TYPE_AZURE_AD.into());
}

/// `isManagementRestricted`: Graph's null means false, so the value is known whenever the
/// property was returned; absent or of another type means it was not read.
fn management_restricted(user: &Value) -> Option<bool> {
    match user.get("isManagementRestricted")? {
        Value::Bool(restricted) => Some(*restricted),
        Value::Null => Some(false),
        _ => None,
    }
}

/// Text after the last `@` of a UPN (`jo_contoso.com#EXT#@tenant.onmicrosoft.com` →
/// `tenant.onmicrosoft.com`).
fn upn_domain(upn: &str) -> Option<&str> {
    upn.rsplit_once('@')
        .and_then(|(_, domain)| non_blank(domain))
}

/// The language of OCSF 1.8.0 `email_t`, checked by hand (no regex crate in the guest):
/// ``^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$``.
///
/// Read exactly as a regex engine reads it: `+-/` in the first class is a *range* (`+ , - . /`),
/// and none of the classes contains `@`, so the address has exactly one `@`; the `\.` must be the
/// first dot of the domain, because the class before it has no dot.
fn is_ocsf_email(candidate: &str) -> bool {
    let Some((local, domain)) = candidate.split_once('@') else {
        return false;
    };
    let Some((first_label, rest)) = domain.split_once('.') else {
        return false;
    };
    !local.is_empty()
        && local.bytes().all(is_email_local_byte)
        && !first_label.is_empty()
        && first_label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The non-alphanumeric characters of the pattern's first class, its range `+-/` spelled out as
/// `+ , - . /`.
const EMAIL_LOCAL_SPECIALS: &[u8] = b"!#$%&'*+,-./=?^_`{|}~";

fn is_email_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || EMAIL_LOCAL_SPECIALS.contains(&b)
}

/// A Graph string: absent when missing, not a string, empty or whitespace-only.
fn text<'v>(object: &'v Value, key: &str) -> Option<&'v str> {
    object.get(key).and_then(Value::as_str).and_then(non_blank)
}

fn non_blank(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// A Graph boolean: absent when missing or not a boolean.
fn boolean(object: &Value, key: &str) -> Option<bool> {
    object.get(key).and_then(Value::as_bool)
}

/// A Graph timestamp in ms: absent when missing, unparseable, "never" (year 0001) or implausible.
fn graph_time(object: &Value, key: &str) -> Option<i64> {
    text(object, key)
        .and_then(parse_graph_time_ms)
        .filter(|ms| PLAUSIBLE_MS.contains(ms))
}

/// Sorted, de-duplicated, blank entries dropped.
fn sorted_unique<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|item| non_blank(item.as_ref()).map(str::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn put<T: Into<Value>>(object: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value {
        object.insert(key.to_string(), value.into());
    }
}

/// `metadata.uid`: 128-bit FNV-1a over tenant, user id and a canonical encoding of the event
/// content (keys sorted explicitly, so the result does not depend on the map implementation).
fn content_uid(tenant_uid: &str, user_id: &str, content: &Map<String, Value>) -> String {
    let mut hash = Fnv1a128::new();
    hash.text("ocsf-5003/v1");
    hash.text(tenant_uid);
    hash.text(user_id);
    hash.object(content);
    format!("{:032x}", hash.0)
}

/// FNV-1a, 128-bit (offset basis and prime from the FNV reference).
struct Fnv1a128(u128);

/// FNV-1a (128 bits) of a string: the content hash of `metadata.uid`, reused wherever the
/// connector needs a stable spread of ids (checkpoint shards).
pub(crate) fn text_hash(text: &str) -> u128 {
    let mut hash = Fnv1a128::new();
    hash.bytes(text.as_bytes());
    hash.0
}

impl Fnv1a128 {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn new() -> Self {
        Fnv1a128(Self::OFFSET_BASIS)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = Self::times_prime(self.0 ^ u128::from(byte));
        }
    }

    /// `x * PRIME` (mod 2^128) in 64-bit halves. WebAssembly has no 128-bit multiply: a
    /// `u128` product is a call to compiler-rt's `__multi3` for every byte hashed, about a
    /// third of the component's mapping time (`cargo bench -p e2e-tests --bench mapping`:
    /// 4.03 s → 2.68 s for 50,000 events, README "Figures"). The prime is `2^88 + 0x13b`, so
    /// the product is `x * 0x13b + (x << 88)`: four 64-bit multiplies, a shift and adds.
    /// Equal to `wrapping_mul` for every `x` (tested against it).
    #[inline(always)]
    fn times_prime(x: u128) -> u128 {
        const LOW: u64 = Fnv1a128::PRIME as u64;
        const _: () = assert!(Fnv1a128::PRIME == (1 << 88) + LOW as u128);
        let (hi, lo) = ((x >> 64) as u64, x as u64);
        // The carry of lo * 0x13b into the high half, from 32-bit pieces (each < 2^41).
        let carry = (((lo & 0xffff_ffff) * LOW) >> 32).wrapping_add((lo >> 32) * LOW) >> 32;
        let new_lo = lo.wrapping_mul(LOW);
        let new_hi = hi
            .wrapping_mul(LOW)
            .wrapping_add(carry)
            .wrapping_add(lo << 24);
        (u128::from(new_hi) << 64) | u128::from(new_lo)
    }

    fn length(&mut self, len: usize) {
        self.bytes(&(len as u64).to_le_bytes());
    }

    /// Length-prefixed, so that no two sequences of strings encode alike.
    fn text(&mut self, text: &str) {
        self.length(text.len());
        self.bytes(text.as_bytes());
    }

    fn object(&mut self, object: &Map<String, Value>) {
        let mut entries: Vec<(&String, &Value)> = object.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.bytes(b"{");
        self.length(entries.len());
        for (key, value) in entries {
            self.text(key);
            self.value(value);
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.bytes(b"n"),
            Value::Bool(true) => self.bytes(b"t"),
            Value::Bool(false) => self.bytes(b"f"),
            Value::Number(number) => {
                self.bytes(b"#");
                self.text(&number.to_string());
            }
            Value::String(text) => {
                self.bytes(b"s");
                self.text(text);
            }
            Value::Array(items) => {
                self.bytes(b"[");
                self.length(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(object) => self.object(object),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    const SCHEMA_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/ocsf/user_inventory-1.8.0.schema.json"
    );
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

    fn schema() -> &'static Value {
        static SCHEMA: OnceLock<Value> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let text = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_else(|err| {
                panic!("cannot read {SCHEMA_PATH}: {err}; copy it from /work/shared/ocsf/")
            });
            serde_json::from_str(&text).expect("the OCSF schema is JSON")
        })
    }

    fn validator() -> &'static jsonschema::Validator {
        static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
        VALIDATOR
            .get_or_init(|| jsonschema::validator_for(schema()).expect("the OCSF schema compiles"))
    }

    fn is_placeholder(text: &str) -> bool {
        matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "" | "unknown" | "n/a" | "null"
        )
    }

    /// Schema errors plus the (check) rules of MAPPING.md that the schema cannot express.
    fn violations(event: &Value) -> Vec<String> {
        let mut found: Vec<String> = validator()
            .iter_errors(event)
            .map(|err| format!("schema: {err} at {}", err.instance_path))
            .collect();
        let ids = (
            event["type_uid"].as_i64(),
            event["class_uid"].as_i64(),
            event["activity_id"].as_i64(),
        );
        match ids {
            (Some(type_uid), Some(class_uid), Some(activity_id))
                if type_uid == class_uid * 100 + activity_id => {}
            _ => found.push(format!("type_uid != class_uid*100 + activity_id: {ids:?}")),
        }
        if event["metadata"]["version"] != json!(OCSF_VERSION) {
            found.push("metadata.version is not 1.8.0".into());
        }
        walk(event, "", &mut found);
        found
    }

    fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::Null => found.push(format!("null at {path}")),
            Value::String(text) if is_placeholder(text) => {
                found.push(format!("placeholder {text:?} at {path}"))
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}/{index}"), found);
                }
            }
            Value::Object(object) => {
                for (key, item) in object {
                    let item_path = format!("{path}/{key}");
                    if key == "time" || key.ends_with("_time") {
                        match item.as_i64() {
                            Some(ms) if (1_000_000_000_000..10_000_000_000_000).contains(&ms) => {}
                            _ => found.push(format!("{item_path} is not integer ms: {item}")),
                        }
                    }
                    let is_unknown_caption =
                        key == "type" && object.get("type_id") == Some(&json!(0));
                    if !is_unknown_caption {
                        walk(item, &item_path, found);
                    }
                }
            }
            _ => {}
        }
    }

    fn assert_valid(event: &Value) {
        let found = violations(event);
        assert!(
            found.is_empty(),
            "invalid event:\n{}\n{}",
            found.join("\n"),
            serde_json::to_string_pretty(event).unwrap_or_default()
        );
    }

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

    /// SplitMix64: deterministic randomness without a crate.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True once in `n` draws, on average.
    fn one_in(state: &mut u64, n: u64) -> bool {
        splitmix(state).is_multiple_of(n)
    }

    fn pick<'a, T>(state: &mut u64, items: &'a [T]) -> &'a T {
        &items[(splitmix(state) % items.len() as u64) as usize]
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
            json!({"name": "Microsoft Entra ID", "vendor_name": "Microsoft", "version": "0.1.0"})
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
        assert!(!has_key(&event["metadata"]["product"], "version"));
        assert_eq!(event["metadata"]["product"]["name"], "Microsoft Entra ID");
    }

    // ---------------------------------------------------------------- metadata.uid

    #[test]
    fn fnv1a_128_matches_reference_vectors() {
        for (input, expected) in [
            ("", "6c62272e07bb014262b821756295c58d"),
            ("a", "d228cb696f1a8caf78912b704e4a8964"),
            ("foobar", "343e1662793c64bf6f0d3597ba446f18"),
        ] {
            let mut hash = Fnv1a128::new();
            hash.bytes(input.as_bytes());
            assert_eq!(format!("{:032x}", hash.0), expected, "{input:?}");
        }
    }

    #[test]
    fn fnv_multiplication_in_halves_is_the_128_bit_product() {
        let mut state = 0x0123_4567_89ab_cdef_u64;
        let mut next = || splitmix(&mut state);
        let mut samples = vec![
            0,
            1,
            u128::MAX,
            u128::from(u64::MAX),
            1 << 64,
            Fnv1a128::OFFSET_BASIS,
        ];
        for _ in 0..100_000 {
            samples.push((u128::from(next()) << 64) | u128::from(next()));
        }
        for x in samples {
            assert_eq!(
                Fnv1a128::times_prime(x),
                x.wrapping_mul(Fnv1a128::PRIME),
                "{x:#x}"
            );
        }
    }

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
        let both =
            map_plain(json!({"id": "u-1", "employeeType": "Employee", "userType": "Member"}));
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
            Some(
                json!({"name": "employment", "value": "employment", "data": {"employee_id": "E-1"}})
            )
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
            employment_of(
                json!({"id": "u-1", "department": " ", "jobTitle": null, "employeeId": 7})
            ),
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

    fn random_string(state: &mut u64) -> Value {
        const POOL: [&str; 16] = [
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
        json!(pick(state, &POOL))
    }

    fn random_value(state: &mut u64, depth: u32) -> Value {
        let kinds = if depth >= 2 { 5 } else { 7 };
        match splitmix(state) % kinds {
            0 => Value::Null,
            1 => json!(one_in(state, 2)),
            2 => match splitmix(state) % 3 {
                0 => json!(splitmix(state) as i64),
                1 => json!(-1.25e300),
                _ => json!(u64::MAX),
            },
            3 | 4 => random_string(state),
            5 => Value::Array(
                (0..splitmix(state) % 4)
                    .map(|_| random_value(state, depth + 1))
                    .collect(),
            ),
            _ => random_user(state, depth + 1),
        }
    }

    fn random_user(state: &mut u64, depth: u32) -> Value {
        let keys: Vec<&str> = STRING_FIELDS
            .iter()
            .chain(BOOL_FIELDS.iter())
            .copied()
            .chain(["signInActivity", "lastSignInDateTime", "@odata.type"])
            .collect();
        let mut user = Map::new();
        for key in keys {
            if !one_in(state, 3) {
                continue;
            }
            let value = match (key, splitmix(state) % 2) {
                ("id", 0) => json!("u-random"),
                ("signInActivity", 0) => random_user(state, depth + 1),
                _ => random_value(state, depth),
            };
            user.insert(key.to_string(), value);
        }
        Value::Object(user)
    }

    fn random_enrichment(state: &mut u64) -> Enrichment {
        const NAMES: [&str; 6] = [
            "",
            " ",
            "Sales",
            "Global Administrator",
            "Helpdesk Administrator",
            "g-1",
        ];
        let names = |state: &mut u64| -> Vec<String> {
            (0..splitmix(state) % 4)
                .map(|_| pick(state, &NAMES).to_string())
                .collect()
        };
        Enrichment {
            groups: one_in(state, 2).then(|| {
                (0..splitmix(state) % 4)
                    .map(|_| GroupRef {
                        id: pick(state, &NAMES).to_string(),
                        display_name: one_in(state, 2).then(|| pick(state, &NAMES).to_string()),
                    })
                    .collect()
            }),
            member_of_roles: names(state),
            roles: one_in(state, 2).then(|| names(state)),
            eligible_roles: one_in(state, 2).then(|| names(state)),
            mfa: match splitmix(state) % 3 {
                0 => None,
                1 => Some(Mfa::Methods(
                    (0..splitmix(state) % 4)
                        .map(|_| {
                            pick(state, &[MFA_TYPES[3], SINGLE_FACTOR_TYPES[0], "", "#", "."])
                                .to_string()
                        })
                        .collect(),
                )),
                _ => Some(Mfa::Registration(names(state))),
            },
        }
    }

    #[test]
    fn random_graph_json_never_panics_and_always_validates() {
        let mut state = 0x5EED;
        let mut mapped = 0;
        for _ in 0..3_000 {
            let user = if one_in(&mut state, 10) {
                random_value(&mut state, 0)
            } else {
                random_user(&mut state, 0)
            };
            let enrichment = random_enrichment(&mut state);
            match map_user(&user, &enrichment, &CTX) {
                Ok(event) => {
                    assert_valid(&event);
                    mapped += 1;
                }
                Err(MapError::MissingId) => assert!(text(&user, "id").is_none(), "{user}"),
            }
        }
        assert!(
            mapped > 300,
            "the generator rarely produced an id ({mapped})"
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
                    "product": {"name": "Microsoft Entra ID", "vendor_name": "Microsoft", "version": "0.1.0"},
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
        let mut corpus: Vec<String> = [
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let alphabet: Vec<char> = "aZ09!#$%&'*+,-./=?^_`{|}~@ \"()<>[]:;\\é\n"
            .chars()
            .collect();
        let plain: Vec<char> = "aZ09-".chars().collect();
        let mut state = 99;
        for _ in 0..20_000 {
            let mut candidate = String::new();
            for part in 0..3 {
                for _ in 0..splitmix(&mut state) % 4 {
                    // Mostly characters every class accepts, so that many candidates match.
                    let pool = if one_in(&mut state, 5) {
                        &alphabet
                    } else {
                        &plain
                    };
                    candidate.push(*pick(&mut state, pool));
                }
                let separator = match part {
                    0 if !one_in(&mut state, 8) => Some('@'),
                    1 if !one_in(&mut state, 8) => Some('.'),
                    _ => None,
                };
                candidate.extend(separator);
            }
            corpus.push(candidate);
        }
        let (mut accepted, mut rejected) = (0, 0);
        for candidate in &corpus {
            let expected = regex.is_valid(&json!(candidate));
            assert_eq!(is_ocsf_email(candidate), expected, "{candidate:?}");
            if expected {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        assert!(
            accepted > 1_000 && rejected > 1_000,
            "{accepted} / {rejected}"
        );
    }
}
