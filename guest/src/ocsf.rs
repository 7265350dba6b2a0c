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
//!
//! Speed: the mapping is a pure function over `serde_json` values, measured against the
//! same code compiled natively by `cargo bench -p e2e-tests --bench mapping`; where the
//! component's time goes (the content hash, serialising) is in the README ("Figures").

use connector_sdk::ocsf::{Envelope, USER_INVENTORY_COLLECT};
use connector_sdk::time::parse_rfc3339_ms;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

pub use connector_sdk::ocsf::OCSF_VERSION;

/// Context of one collection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapContext<'a> {
    /// The Entra tenant as configured (GUID or domain), emitted as `metadata.tenant_uid`.
    pub tenant_uid: &'a str,
    /// When the collection happened, in milliseconds since the Unix epoch: the event `time`.
    pub collected_at_ms: i64,
    /// The connector's own version, emitted in `metadata.loggers` (with the connector's name)
    /// when not blank; `metadata.product` is Entra ID's, without a version.
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
    /// The registration report marks the user `isAdmin` (documented on
    /// `userRegistrationDetails`): proof of Admin when the role assignments were not read.
    pub admin_hint: bool,
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

/// The tag that starts every event's content hash (`metadata.uid`).
const UID_TAG: &str = "ocsf-5003/v1";
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
    map_user_marked(user, enrichment, ctx, None)
}

/// How a user's event was cut to fit (MAPPING.md, "Users in too many groups").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The user's direct groups: `groups_total` of the account enrichment.
    pub total: usize,
    /// The groups the event lists.
    pub kept: usize,
    /// Bytes of the whole event: `metadata.untruncated_size`.
    pub untruncated_size: usize,
}

/// A user's event, serialised, and how it was cut to fit, if it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The event's JSON.
    pub json: String,
    /// Set when groups were left out so the event fits.
    pub truncation: Option<Truncation>,
}

/// Bytes kept free under the limit for what the final event adds over the estimate (the
/// digits of the counts).
const TRUNCATION_MARGIN: usize = 256;

/// [`map_user`], serialised, and at most `max_bytes` long when only its groups make it longer:
/// a user in tens of thousands of groups would otherwise make an event the host refuses, and
/// an admin would disappear from the inventory. The groups that fit are kept — those in
/// `first` (groups that hold a directory role) before the others, each part by id — and the
/// event is marked: `metadata.is_truncated` true and `metadata.untruncated_size` (OCSF 1.8.0
/// metadata attributes), and `groups_total` in the account enrichment (MAPPING.md, "Users in
/// too many groups"). An event still too large with no group at all (a multi-megabyte name)
/// is returned whole, for the caller to skip and name.
pub fn map_user_within(
    user: &Value,
    enrichment: &Enrichment,
    ctx: &MapContext,
    max_bytes: usize,
    first: &std::collections::HashSet<String>,
) -> Result<Mapped, MapError> {
    let json = map_user(user, enrichment, ctx)?.to_string();
    let groups = match &enrichment.groups {
        Some(groups) if json.len() > max_bytes && !groups.is_empty() => groups,
        _ => {
            return Ok(Mapped {
                json,
                truncation: None,
            })
        }
    };
    let total = groups.len();
    let marks = |kept: usize| Truncation {
        total,
        kept,
        untruncated_size: json.len(),
    };
    let with_groups = |kept: Vec<GroupRef>| {
        let n = kept.len();
        let e = Enrichment {
            groups: Some(kept),
            ..enrichment.clone()
        };
        map_user_marked(user, &e, ctx, Some(marks(n))).map(|v| v.to_string())
    };
    let base = with_groups(Vec::new())?;
    let Some(budget) = max_bytes
        .checked_sub(base.len())
        .and_then(|b| b.checked_sub(TRUNCATION_MARGIN))
    else {
        return Ok(Mapped {
            json,
            truncation: None,
        });
    };
    let mut order: Vec<&GroupRef> = groups.iter().collect();
    order.sort_by(|a, b| (!first.contains(&a.id), &a.id).cmp(&(!first.contains(&b.id), &b.id)));
    let mut used = 0usize;
    let mut kept: Vec<GroupRef> = Vec::new();
    for g in order {
        // Its JSON and a comma; a group with neither id nor name is not emitted at all.
        let size = group_object(g).map_or(0, |v| v.to_string().len() + 1);
        if used.saturating_add(size) > budget {
            break;
        }
        used += size;
        kept.push(g.clone());
    }
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    loop {
        let n = kept.len();
        let out = with_groups(kept.clone())?;
        if out.len() <= max_bytes || n == 0 {
            return Ok(Mapped {
                json: out,
                truncation: Some(marks(n)),
            });
        }
        // Not reached with the margin above; dropping an eighth more keeps it bounded.
        kept.truncate(n - n.div_ceil(8));
    }
}

fn map_user_marked(
    user: &Value,
    enrichment: &Enrichment,
    ctx: &MapContext,
    truncation: Option<Truncation>,
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
    put(
        &mut status,
        "groups_total",
        truncation.map(|t| t.total as u64),
    );

    let mut enrichments = vec![account_status(status)];
    enrichments.extend(employment(
        department,
        job_title,
        employee_id,
        employee_type,
    ));

    let mut metadata = Map::new();
    if let Some(t) = truncation {
        metadata.insert("is_truncated".into(), Value::Bool(true));
        metadata.insert(
            "untruncated_size".into(),
            (t.untruncated_size as u64).into(),
        );
    }
    Ok(event(id, out, enrichments, ctx, metadata))
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

    let mut event = event(user_id, user, vec![account_status(status)], ctx, Map::new());
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
            || !sorted_unique(seen_in_member_of).is_empty()
            // The report's isAdmin proves a role only where the assignments are unknown;
            // where they were read, they are the truth.
            || (names.is_none() && enrichment.admin_hint);
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

/// Wraps the user in the class 5003 envelope of the SDK (`connector_sdk::ocsf`), which
/// stamps `time` and `metadata.uid`. `metadata` holds what the event's metadata says beyond
/// the envelope (a truncation).
fn event(
    user_id: &str,
    user: Map<String, Value>,
    enrichments: Vec<Value>,
    ctx: &MapContext,
    metadata: Map<String, Value>,
) -> Value {
    let envelope = Envelope {
        class: &USER_INVENTORY_COLLECT,
        product_name: PRODUCT_NAME,
        vendor_name: VENDOR_NAME,
        connector_name: crate::NAME,
        connector_version: ctx.connector_version,
        tenant_uid: ctx.tenant_uid,
        uid_tag: UID_TAG,
    };
    let mut body = Map::new();
    body.insert("user".into(), Value::Object(user));
    body.insert("enrichments".into(), Value::Array(enrichments));
    envelope.wrap(user_id, body, metadata, ctx.collected_at_ms)
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
        .and_then(parse_rfc3339_ms)
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

/// The mapping's tests, in their own file so this one reads as the mapping.
#[cfg(test)]
#[path = "ocsf_tests.rs"]
mod tests;
