//! The Okta connector's oracle and harness: what the events of a simulated org must say,
//! computed from the org's own data (`okta_emulator::Org`) by this file's reading of OKTA.md's
//! "Mapping" table (host/okta-emulator/OKTA.md), never from the connector's code (this crate
//! does not depend on `okta-connector`), and a harness that runs the real component in the
//! real host against the emulator over loopback HTTP.
//!
//! The comparison is by a *view* of each event: the fields the mapping table fixes for a user
//! (uid, name, domain, email, display and full name, disabled, locked, groups, type, MFA,
//! methods, roles, status, job title), so a difference names the user and the field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use connector_host::doors::http::secrets::{SecretSet, SecretValue};
use connector_host::doors::http::{EgressPolicy, Origin};
use connector_host::{JsonlFileSink, Runtime, SqliteCheckpointStore, TenantRun, TimeScale};
use okta_emulator::{Emulator, OktaGroup, OktaUser, Org, DEFAULT_API_TOKEN};
use serde_json::{json, Value};

/// `user.account.type_id` / `type` of every Okta account (OKTA.md, "Mapping": 99 Other,
/// "Okta Account").
pub const ACCOUNT_TYPE: (i64, &str) = (99, "Okta Account");

/// Factor types that count as a second factor (OKTA.md, "Mapping", `user.has_mfa`: "strong:
/// push, signed_nonce, token:software:totp, token:hotp, token:hardware, token, u2f, webauthn,
/// web, sms, call; not strong: email, question").
pub const STRONG_FACTORS: [&str; 11] = [
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

/// A non-blank profile string, trimmed (null, absent and blank are nothing: MAPPING.md,
/// "Absent data").
fn text<'a>(user: &'a OktaUser, key: &str) -> Option<&'a str> {
    user.profile
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An address OCSF's `email_t` takes: one `@`, a dotted domain, no spaces.
fn valid_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// What OKTA.md's mapping says the event of `user` holds, as a view (see [`view_of_event`]).
/// Groups, roles and factors are read from the org: every group the user is in, every role it
/// holds directly or through a group (built-in by type, custom by label), every factor.
pub fn expected_view(org: &Org, user: &OktaUser) -> Value {
    let groups: HashMap<&str, &OktaGroup> = org.groups().map(|g| (g.id.as_str(), g)).collect();
    view_with(org, &groups, user)
}

fn view_with(org: &Org, by_id: &HashMap<&str, &OktaGroup>, user: &OktaUser) -> Value {
    let login = text(user, "login");
    let domain = login
        .and_then(|l| l.rsplit_once('@'))
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty());
    // `profile.displayName`, else `firstName lastName`.
    let full_name = text(user, "displayName").map(str::to_owned).or_else(|| {
        let parts: Vec<&str> = [text(user, "firstName"), text(user, "lastName")]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let disabled = matches!(user.status.as_str(), "SUSPENDED" | "DEPROVISIONED")
        || user.transitioning_to_status.as_deref() == Some("DEPROVISIONED");
    // `user.groups[]` `{uid, name: profile.name, type}`, sorted by uid, all of them.
    let mut groups: Vec<(String, String, String)> = org
        .groups_of(&user.id)
        .iter()
        .filter_map(|g| by_id.get(g.as_str()))
        .map(|g| (g.id.clone(), g.name.clone(), g.group_type.clone()))
        .collect();
    groups.sort();
    // Roles: USER or GROUP assignment, built-in (its type) or CUSTOM (its label).
    let roles: BTreeSet<String> = org
        .effective_roles(&user.id)
        .iter()
        .map(|r| {
            if r.role_type == "CUSTOM" {
                r.label.clone()
            } else {
                r.role_type.clone()
            }
        })
        .collect();
    let (type_id, type_name) = if roles.is_empty() {
        (1, "User")
    } else {
        (2, "Admin")
    };
    // ACTIVE factors: their types (sorted, once each) and whether one is strong.
    let active: BTreeSet<String> = org
        .factors_of(&user.id)
        .into_iter()
        .filter(|f| f.status == "ACTIVE")
        .map(|f| f.factor_type)
        .collect();
    let has_mfa = active.iter().any(|t| STRONG_FACTORS.contains(&t.as_str()));
    json!({
        "uid": user.id,
        "name": login,
        "domain": domain,
        "email_addr": text(user, "email").filter(|e| valid_email(e)),
        "display_name": full_name,
        "full_name": full_name,
        "is_disabled": disabled,
        "is_locked": user.status == "LOCKED_OUT",
        "groups": groups.iter().map(|(uid, name, kind)| json!({"uid": uid, "name": name, "type": kind})).collect::<Vec<_>>(),
        "type_id": type_id,
        "type": type_name,
        "has_mfa": has_mfa,
        "is_mfa": has_mfa,
        "mfa_methods": active.into_iter().collect::<Vec<_>>(),
        "roles": roles.into_iter().collect::<Vec<_>>(),
        "okta_status": user.status,
        "job_title": text(user, "title"),
    })
}

/// The same view read off an event (absent fields are `null` in the view).
pub fn view_of_event(event: &Value) -> Value {
    let u = &event["user"];
    let account = first_enrichment(event, "account");
    let data = &account["data"];
    let groups: Vec<Value> = u["groups"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| json!({"uid": g["uid"], "name": g["name"], "type": g["type"]}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "uid": u["uid"],
        "name": u["name"],
        "domain": u["domain"],
        "email_addr": u["email_addr"],
        "display_name": u["display_name"],
        "full_name": u["full_name"],
        "is_disabled": u["account"]["is_disabled"],
        "is_locked": u["account"]["is_locked"],
        "groups": if u.get("groups").is_some() { json!(groups) } else { Value::Null },
        "type_id": u["type_id"],
        "type": u["type"],
        "has_mfa": u["has_mfa"],
        "is_mfa": data["is_mfa"],
        "mfa_methods": data["mfa_methods"],
        "roles": data["roles"],
        "okta_status": data["okta_status"],
        "job_title": u["ldap_person"]["job_title"],
    })
}

/// The first enrichment called `name` (`Null` when there is none).
pub fn first_enrichment<'a>(event: &'a Value, name: &str) -> &'a Value {
    event["enrichments"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"] == name))
        .unwrap_or(&Value::Null)
}

/// Whether an event reports a deleted user (the account enrichment's `deleted: true`).
pub fn is_deletion(event: &Value) -> bool {
    first_enrichment(event, "account")["data"]["deleted"] == true
}

/// The deletion event's view OKTA.md ("Deleted users") asks for: `user.uid`, `user.name` (the
/// log target's `alternateId`, the login), `user.account` {uid, type_id 99, type},
/// `ldap_person.deleted_time` = the log event's `published`, the enrichment `deleted: true`.
pub fn expected_deletion(id: &str, login: &str, published_ms: i64) -> Value {
    json!({
        "uid": id,
        "name": login,
        "account": {"uid": id, "type_id": ACCOUNT_TYPE.0, "type": ACCOUNT_TYPE.1},
        "deleted_time": published_ms,
        "deleted": true,
    })
}

/// A deletion event's view.
pub fn deletion_view(event: &Value) -> Value {
    let u = &event["user"];
    json!({
        "uid": u["uid"],
        "name": u["name"],
        "account": {"uid": u["account"]["uid"], "type_id": u["account"]["type_id"], "type": u["account"]["type"]},
        "deleted_time": u["ldap_person"]["deleted_time"],
        "deleted": first_enrichment(event, "account")["data"]["deleted"],
    })
}

/// The expected view of every live user of the org (DEPROVISIONED included), by id.
pub fn oracle(org: &Org) -> BTreeMap<String, Value> {
    let groups: HashMap<&str, &OktaGroup> = org.groups().map(|g| (g.id.as_str(), g)).collect();
    org.users()
        .map(|u| (u.id.clone(), view_with(org, &groups, u)))
        .collect()
}

/// The view of each user event (deletions left out), by uid; panics on a uid seen twice.
pub fn views(events: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in events.iter().filter(|e| !is_deletion(e)) {
        let view = view_of_event(e);
        let uid = view["uid"].as_str().unwrap_or("").to_owned();
        assert!(
            out.insert(uid.clone(), view).is_none(),
            "user {uid} was emitted twice in one run"
        );
    }
    out
}

/// Panics naming every user whose view differs, field by field (at most 10 users shown).
pub fn assert_views_equal(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) {
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let mut diffs = Vec::new();
    for (uid, w) in want {
        let Some(g) = got.get(uid) else { continue };
        if g == w {
            continue;
        }
        let fields: Vec<String> = w
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| g.get(k.as_str()) != Some(v))
            .map(|(k, v)| format!("{k}: got {} want {v}", short(&g[k.as_str()])))
            .collect();
        diffs.push(format!("{uid}: {}", fields.join("; ")));
    }
    assert!(
        missing.is_empty() && extra.is_empty() && diffs.is_empty(),
        "events differ from the oracle: {} missing {:?}, {} unexpected {:?}, {} differ:\n{}",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(10).collect::<Vec<_>>(),
        diffs.len(),
        diffs
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!("{}…", &s[..s.floor_char_boundary(300)])
    } else {
        s
    }
}

/// The tenant key every Okta test run uses.
pub const TENANT: &str = "acme-okta";

/// One tenant run of the Okta component against `emulator`, with an API token (the host
/// writes `Authorization: SSWS <token>`), a SQLite checkpoint file and a JSONL sink in `dir`.
pub fn tenant_run(emulator: &Emulator, dir: &Path, extra: &[(&str, &str)]) -> TenantRun {
    tenant_run_at(&emulator.base_url(), dir, extra)
}

/// [`tenant_run`] against the org at `base_url` (an emulator in another process).
pub fn tenant_run_at(base_url: &str, dir: &Path, extra: &[(&str, &str)]) -> TenantRun {
    let origin = Origin::parse(base_url).expect("the emulator's origin");
    let mut policy = EgressPolicy::new(vec![origin.clone()]);
    policy.allow_loopback_http = true;
    let mut secrets = SecretSet::new();
    secrets.insert_header(
        "okta_token",
        SecretValue::new(DEFAULT_API_TOKEN),
        vec![origin],
        "Authorization",
        Some("SSWS".into()),
    );
    let mut config = vec![("org_url".to_string(), base_url.to_string())];
    config.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TenantRun {
        tenant: TENANT.into(),
        connector_config: config,
        policy,
        secrets: Arc::new(secrets),
        checkpoints: Arc::new(
            SqliteCheckpointStore::open(&dir.join("state.sqlite")).expect("the store opens"),
        ),
        sink: Arc::new(JsonlFileSink::open(&dir.join("events.jsonl")).expect("the sink opens")),
        timeout: Duration::from_secs(600),
        time_scale: TimeScale::REAL,
    }
}

/// Every event of a JSONL sink file (a torn line fails).
pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn sink line ({e}): {l}")))
        .collect()
}

/// The Okta component, the one built into the CLI (`builtin_connectors::OKTA`).
pub fn component() -> &'static [u8] {
    builtin_connectors::OKTA
}

/// A runtime of the Okta component.
pub async fn runtime() -> Runtime {
    Runtime::new(component(), connector_host::RuntimeLimits::default())
        .await
        .expect("the Okta component loads")
}

/// The events file of a run folder.
pub fn events_path(dir: &Path) -> PathBuf {
    dir.join("events.jsonl")
}

/// The wall clock now, ms.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
