//! The OCSF envelope every event of every connector shares, and its content uid.
//!
//! Why it exists: an OCSF event is a class-specific body (`user`, `enrichments`, …) inside an
//! envelope that is the same for every connector — class and category, activity, type,
//! severity, `metadata` (schema version, the product the data comes from, the connector that
//! collected it, the tenant, a stable `uid`), and `time`.
//!
//! `metadata.product` is the **source** (Microsoft Entra ID, with no version of ours: a
//! consumer reads a product's version as the source's). The connector — the software between
//! the source and the destination — is in `metadata.loggers`, OCSF's list of the loggers an
//! event passed through: one [`logger`](https://schema.ocsf.io/1.8.0/objects/logger) with
//! its `name` and `version`, and the same as its `product` (`name`, `version`), the fields the
//! OCSF 1.8.0 `logger` and `product` objects define. [`Envelope::wrap`] builds it once, so each connector writes
//! only its mapping. `metadata.uid` is a 128-bit FNV-1a hash of the event's content
//! ([`content_uid`]): equal content, equal uid, so consumers can de-duplicate re-deliveries;
//! `time` is left out of it.
//!
//! The hash is written out here (no crate): WebAssembly has no 128-bit multiply, and the
//! multiplication in halves of [`Fnv1a128::times_prime`] is what keeps mapping fast inside
//! the component (README, "Figures").

use serde_json::{Map, Value};

/// The OCSF schema version every event declares in `metadata.version`.
pub const OCSF_VERSION: &str = "1.8.0";

/// The class of an event and its activity: the envelope's fixed fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Class {
    /// `class_uid`.
    pub uid: i64,
    /// `class_name`.
    pub name: &'static str,
    /// `category_uid`.
    pub category_uid: i64,
    /// `category_name`.
    pub category_name: &'static str,
    /// `activity_id`.
    pub activity_id: i64,
    /// `activity_name`.
    pub activity_name: &'static str,
    /// `type_name` (`"<class_name>: <activity_name>"`).
    pub type_name: &'static str,
}

/// OCSF 1.8.0 class 5003 "User Inventory Info" (category 5 "Discovery"), activity 2
/// "Collect": an inventory of the users of a directory.
pub const USER_INVENTORY_COLLECT: Class = Class {
    uid: 5003,
    name: "User Inventory Info",
    category_uid: 5,
    category_name: "Discovery",
    activity_id: 2,
    activity_name: "Collect",
    type_name: "User Inventory Info: Collect",
};

/// Where events come from and who collected them: the envelope's `metadata`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Envelope<'a> {
    /// The class and activity.
    pub class: &'a Class,
    /// `metadata.product.name`: the source of the data ("Microsoft Entra ID").
    pub product_name: &'a str,
    /// `metadata.product.vendor_name` ("Microsoft").
    pub vendor_name: &'a str,
    /// The connector's name (its `describe` name): `metadata.loggers[0].name`.
    pub connector_name: &'a str,
    /// The connector's version: `metadata.loggers[0].version`; left out when blank.
    pub connector_version: &'a str,
    /// `metadata.tenant_uid`; left out when blank.
    pub tenant_uid: &'a str,
    /// The tag that starts the content hash (`ocsf-5003/v1`): a new tag, new uids.
    pub uid_tag: &'a str,
}

impl Envelope<'_> {
    /// Wraps `body` (the class's own fields, `user`, `enrichments`…) about the item `item_id`
    /// in the envelope; `metadata` holds what the event's metadata says beyond the envelope
    /// (a truncation, say). Then stamps `metadata.uid` (the content hash of everything but
    /// `time`) and `time` (`time_ms`, integer milliseconds since the epoch).
    pub fn wrap(
        &self,
        item_id: &str,
        body: Map<String, Value>,
        mut metadata: Map<String, Value>,
        time_ms: i64,
    ) -> Value {
        let mut product = Map::new();
        product.insert("name".into(), self.product_name.into());
        product.insert("vendor_name".into(), self.vendor_name.into());
        // The logger's `name` and `version` alone (OCSF's `logger` needs `name` or `uid`; its
        // `product` would repeat both in every event, ~50 bytes hashed and serialised each).
        let mut logger = Map::new();
        logger.insert("name".into(), self.connector_name.into());
        if let Some(v) = non_blank(self.connector_version) {
            logger.insert("version".into(), v.into());
        }
        metadata.insert("version".into(), OCSF_VERSION.into());
        metadata.insert("product".into(), Value::Object(product));
        metadata.insert("loggers".into(), Value::Array(vec![Value::Object(logger)]));
        if let Some(t) = non_blank(self.tenant_uid) {
            metadata.insert("tenant_uid".into(), t.into());
        }

        let class = self.class;
        let mut event = body;
        event.insert("activity_id".into(), class.activity_id.into());
        event.insert("activity_name".into(), class.activity_name.into());
        event.insert("category_uid".into(), class.category_uid.into());
        event.insert("category_name".into(), class.category_name.into());
        event.insert("class_uid".into(), class.uid.into());
        event.insert("class_name".into(), class.name.into());
        event.insert(
            "type_uid".into(),
            (class.uid * 100 + class.activity_id).into(),
        );
        event.insert("type_name".into(), class.type_name.into());
        event.insert("severity_id".into(), SEVERITY_ID_INFORMATIONAL.into());
        event.insert("severity".into(), "Informational".into());
        event.insert("metadata".into(), Value::Object(metadata));

        // Everything so far is content; `time` (and, for deletions, `deleted_time`) is not.
        let uid = content_uid(self.uid_tag, self.tenant_uid, item_id, &event);
        if let Some(metadata) = event.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("uid".into(), uid.into());
        }
        event.insert("time".into(), time_ms.into());
        Value::Object(event)
    }
}

const SEVERITY_ID_INFORMATIONAL: i64 = 1;

fn non_blank(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// `metadata.uid`: 128-bit FNV-1a over a tag naming the kind of event (`ocsf-5003/v1`), the
/// tenant, the item's id and a canonical encoding of the event content (keys sorted
/// explicitly, so the result does not depend on the map implementation).
pub fn content_uid(
    tag: &str,
    tenant_uid: &str,
    user_id: &str,
    content: &Map<String, Value>,
) -> String {
    let mut hash = Fnv1a128::new();
    hash.text(tag);
    hash.text(tenant_uid);
    hash.text(user_id);
    hash.object(content);
    format!("{:032x}", hash.0)
}

/// FNV-1a, 128-bit (offset basis and prime from the FNV reference).
pub struct Fnv1a128(pub u128);

impl Default for Fnv1a128 {
    fn default() -> Self {
        Self::new()
    }
}

/// FNV-1a (128 bits) of a string: the content hash of `metadata.uid`, reused wherever a
/// connector needs a stable spread of ids (checkpoint shards) or a short fingerprint of a
/// link (`paging.rs`).
pub fn text_hash(text: &str) -> u128 {
    let mut hash = Fnv1a128::new();
    hash.bytes(text.as_bytes());
    hash.0
}

/// FNV-1a (128 bits) of a list of JSON values, in the canonical encoding of `metadata.uid`
/// (object keys sorted): the content of a collection page, which a paging loop compares with
/// the pages it already read (`paging::Trail`).
pub fn values_hash(values: &[Value]) -> u128 {
    let mut hash = Fnv1a128::new();
    hash.bytes(b"[");
    hash.length(values.len());
    for value in values {
        hash.value(value);
    }
    hash.0
}

impl Fnv1a128 {
    /// The offset basis.
    pub const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    /// The prime.
    pub const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    /// The hash of nothing.
    pub fn new() -> Self {
        Fnv1a128(Self::OFFSET_BASIS)
    }

    /// Hashes bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
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
    pub fn times_prime(x: u128) -> u128 {
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

    /// Hashes a length.
    pub fn length(&mut self, len: usize) {
        self.bytes(&(len as u64).to_le_bytes());
    }

    /// Length-prefixed, so that no two sequences of strings encode alike.
    pub fn text(&mut self, text: &str) {
        self.length(text.len());
        self.bytes(text.as_bytes());
    }

    /// Hashes a JSON object canonically (keys sorted).
    pub fn object(&mut self, object: &Map<String, Value>) {
        let mut entries: Vec<(&String, &Value)> = object.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.bytes(b"{");
        self.length(entries.len());
        for (key, value) in entries {
            self.text(key);
            self.value(value);
        }
    }

    /// Hashes a JSON value canonically.
    pub fn value(&mut self, value: &Value) {
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
        for x in [
            0,
            1,
            u128::MAX,
            u128::from(u64::MAX),
            1 << 64,
            Fnv1a128::OFFSET_BASIS,
        ] {
            assert_eq!(
                Fnv1a128::times_prime(x),
                x.wrapping_mul(Fnv1a128::PRIME),
                "{x:#x}"
            );
        }
        crate::seeded_runner(100_000)
            .run(&proptest::prelude::any::<u128>(), |x| {
                proptest::prop_assert_eq!(
                    Fnv1a128::times_prime(x),
                    x.wrapping_mul(Fnv1a128::PRIME)
                );
                Ok(())
            })
            .unwrap_or_else(|err| panic!("{err}"));
    }

    fn envelope<'a>(version: &'a str, tenant: &'a str) -> Envelope<'a> {
        Envelope {
            class: &USER_INVENTORY_COLLECT,
            product_name: "Example Directory",
            vendor_name: "Example",
            connector_name: "example-users",
            connector_version: version,
            tenant_uid: tenant,
            uid_tag: "ocsf-5003/v1",
        }
    }

    fn body(name: &str) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("user".into(), json!({"uid": "u1", "name": name}));
        body
    }

    #[test]
    fn the_envelope_carries_the_class_the_source_and_the_tenant() {
        let event =
            envelope("1.2.3", "acme").wrap("u1", body("ann"), Map::new(), 1_700_000_000_000);
        assert_eq!(event["class_uid"], 5003);
        assert_eq!(event["type_uid"], 500302, "class_uid * 100 + activity_id");
        assert_eq!(event["type_name"], "User Inventory Info: Collect");
        assert_eq!(event["category_uid"], 5);
        assert_eq!(event["severity_id"], 1);
        assert_eq!(event["time"], 1_700_000_000_000i64);
        assert_eq!(event["metadata"]["version"], OCSF_VERSION);
        assert_eq!(
            event["metadata"]["product"],
            json!({"name": "Example Directory", "vendor_name": "Example"}),
            "the source, without the connector's version"
        );
        assert_eq!(
            event["metadata"]["loggers"],
            json!([{"name": "example-users", "version": "1.2.3"}]),
            "the connector, as the logger between source and destination"
        );
        assert_eq!(event["metadata"]["tenant_uid"], "acme");
        assert_eq!(event["user"]["name"], "ann");
        let uid = event["metadata"]["uid"].as_str().unwrap();
        assert!(
            uid.len() == 32 && uid.bytes().all(|b| b.is_ascii_hexdigit()),
            "{uid}"
        );
        // Blank tenant: no tenant_uid rather than an empty one.
        let blank = envelope("", " ").wrap("u1", body("ann"), Map::new(), 0);
        assert!(blank["metadata"].get("tenant_uid").is_none());
        assert_eq!(
            blank["metadata"]["loggers"],
            json!([{"name": "example-users"}]),
            "a blank version is left out, not emitted empty"
        );
    }

    #[test]
    fn the_uid_follows_the_content_not_the_time() {
        let e = envelope("1.2.3", "acme");
        let uid = |v: &Value| v["metadata"]["uid"].as_str().unwrap().to_string();
        let a = e.wrap("u1", body("ann"), Map::new(), 1);
        let later = e.wrap("u1", body("ann"), Map::new(), 2);
        let renamed = e.wrap("u1", body("anne"), Map::new(), 1);
        let other_tenant = envelope("1.2.3", "globex").wrap("u1", body("ann"), Map::new(), 1);
        assert_eq!(uid(&a), uid(&later));
        assert_ne!(uid(&a), uid(&renamed));
        assert_ne!(uid(&a), uid(&other_tenant));
    }
}
