//! A deleted Okta user as an OCSF 1.8.0 class 5003 event (OKTA.md, "Deleted users"; the
//! deletion event of MAPPING.md, "Deleted users (incremental sync)", with Okta's values).
//!
//! Okta keeps nothing of a deleted user: `GET /api/v1/users/{id}` answers 404 and only the
//! System Log's `user.lifecycle.delete.initiated` / `.completed` events still name it, their
//! `target` carrying the id and, as `alternateId`, the login (OKTA.md, "Deleted users";
//! developer.okta.com/docs/reference/system-log-query, "Event types"). So the event holds
//! only what a deletion needs: `user.uid`, `user.name` (that login, when the log gave one),
//! `user.account` {uid, type_id 99, type}, `user.ldap_person.deleted_time` (the log event's
//! `published`) and the account enrichment with `deleted: true`. A DEPROVISIONED user is not
//! deleted: it stays an ordinary snapshot with `is_disabled: true` (`map::map_user`).

use connector_sdk::ocsf::{Envelope, USER_INVENTORY_COLLECT};
use serde_json::{Map, Value};

use crate::{NAME, VERSION};

/// `user.account.type_id` 99 "Other" named "Okta Account", as every Okta event has it
/// (OKTA.md, "Mapping": OCSF 1.8.0 has no Okta account type).
const ACCOUNT_TYPE_ID: i64 = 99;
const ACCOUNT_TYPE: &str = "Okta Account";

/// The deletion event of user `id` of org `org_id` (`metadata.tenant_uid`): `login` is the
/// log target's `alternateId` (None or blank: no `user.name`), `published_ms` the log event's
/// `published`, `now_ms` the collection time (`time`).
///
/// `deleted_time` is added after the envelope hashed the content, as the Entra deletion
/// event does (guest/src/ocsf.rs, `map_deleted_user`): the `.initiated` and `.completed`
/// events of one deletion, a few milliseconds apart, give the same `metadata.uid`, so a
/// consumer sees one deletion delivered twice, not two.
pub fn map_deleted(
    org_id: &str,
    id: &str,
    login: Option<&str>,
    published_ms: i64,
    now_ms: i64,
) -> Value {
    let login = login.map(str::trim).filter(|l| !l.is_empty());
    let mut account = Map::new();
    account.insert("uid".into(), id.into());
    account.insert("type_id".into(), ACCOUNT_TYPE_ID.into());
    account.insert("type".into(), ACCOUNT_TYPE.into());
    let mut user = Map::new();
    user.insert("uid".into(), id.into());
    if let Some(login) = login {
        user.insert("name".into(), login.into());
    }
    user.insert("account".into(), Value::Object(account));
    let mut status = Map::new();
    status.insert("deleted".into(), Value::Bool(true));
    let mut enrichment = Map::new();
    enrichment.insert("name".into(), "account".into());
    enrichment.insert("value".into(), "status".into());
    enrichment.insert("data".into(), Value::Object(status));
    let body = Map::from_iter([
        ("user".to_string(), Value::Object(user)),
        (
            "enrichments".to_string(),
            Value::Array(vec![Value::Object(enrichment)]),
        ),
    ]);
    let envelope = Envelope {
        class: &USER_INVENTORY_COLLECT,
        product_name: "Okta",
        vendor_name: "Okta",
        connector_name: NAME,
        connector_version: VERSION,
        tenant_uid: org_id,
        uid_tag: "okta-5003/v1",
    };
    let mut event = envelope.wrap(id, body, Map::new(), now_ms);
    if let Some(user) = event.get_mut("user").and_then(Value::as_object_mut) {
        let mut ldap = Map::new();
        ldap.insert("deleted_time".into(), published_ms.into());
        user.insert("ldap_person".into(), Value::Object(ldap));
    }
    event
}
