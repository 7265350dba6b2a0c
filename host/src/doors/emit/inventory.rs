//! The inventory summary of a run (issue 19, point 5): what the events the sink accepted say
//! about the tenant's accounts, counted by the host from the OCSF 1.8.0 "User Inventory Info"
//! (5003) events themselves, so it holds for any connector that writes them.
//!
//! The OCSF fields read (docs/MAPPING.md writes them for Entra ID):
//!
//! - a deletion: `user.ldap_person.deleted_time` is set (MAPPING.md, "Deleted users"); a
//!   deleted account counts only as a deletion;
//! - `admins`: `user.type_id` 2 (OCSF `user.type_id`: 0 Unknown, 1 User, 2 Admin);
//! - `without_mfa`: `user.has_mfa` false (absent, i.e. unknown, is not counted);
//! - `disabled`: `user.account.is_disabled` true;
//! - `guests`: `user.ldap_person.labels` holds `Guest` (the account's type, Entra's
//!   `userType`, as MAPPING.md writes it);
//! - `dormant`: `user.ldap_person.last_login_time` (the last successful sign-in) more than
//!   [`DORMANT_AFTER_MS`] before the event's `time` (when it was collected); an account with no
//!   known sign-in is not counted.
//!
//! The fields are read in the same single parse that checks each event is JSON (the door did
//! that parse already): a field of another type than OCSF's is not counted, never an error,
//! since the door checks JSON, not OCSF.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// How long without a successful sign-in makes an account dormant: 90 days.
pub const DORMANT_AFTER_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// What a run's accepted events say about the accounts (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Inventory {
    /// Accounts (5003 events that are not deletions).
    pub users: u64,
    /// Accounts holding a role (`user.type_id` 2).
    pub admins: u64,
    /// Accounts known to have no strong method (`user.has_mfa` false).
    pub without_mfa: u64,
    /// Guests (`Guest` in `user.ldap_person.labels`).
    pub guests: u64,
    /// Disabled accounts (`user.account.is_disabled`).
    pub disabled: u64,
    /// Accounts whose last successful sign-in is over 90 days before the event's time.
    pub dormant: u64,
    /// Deleted accounts (`user.ldap_person.deleted_time`).
    pub deleted: u64,
}

impl Inventory {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Inventory) {
        self.users += other.users;
        self.admins += other.admins;
        self.without_mfa += other.without_mfa;
        self.guests += other.guests;
        self.disabled += other.disabled;
        self.dormant += other.dormant;
        self.deleted += other.deleted;
    }

    /// Counts one event.
    pub(crate) fn count(&mut self, e: &Event) {
        if e.class_uid.int() != Some(5003) {
            return;
        }
        let user = &e.user.0;
        let person = &user.ldap_person.0;
        if person.deleted_time.int().is_some() {
            self.deleted += 1;
            return;
        }
        self.users += 1;
        self.admins += u64::from(user.type_id.int() == Some(2));
        self.without_mfa += u64::from(user.has_mfa.bool() == Some(false));
        self.disabled += u64::from(user.account.0.is_disabled.bool() == Some(true));
        self.guests += u64::from(person.labels.has_guest());
        if let (Some(login), Some(time)) = (person.last_login_time.int(), e.time.int()) {
            self.dormant += u64::from(time.saturating_sub(login) > DORMANT_AFTER_MS);
        }
    }
}

impl fmt::Display for Inventory {
    /// `2000 users: 12 admins, 450 without MFA, 98 guests, 61 disabled, 700 dormant (no
    /// sign-in for 90 days); 0 deleted`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users: {} admins, {} without MFA, {} guests, {} disabled, {} dormant (no sign-in for 90 days); {} deleted",
            self.users,
            self.admins,
            self.without_mfa,
            self.guests,
            self.disabled,
            self.dormant,
            self.deleted
        )
    }
}

/// The fields of an event the inventory reads; every other field is skipped (and checked as
/// JSON) by the parse.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct Event {
    class_uid: Scalar,
    time: Scalar,
    user: Obj<User>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct User {
    type_id: Scalar,
    has_mfa: Scalar,
    account: Obj<Account>,
    ldap_person: Obj<Person>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Account {
    is_disabled: Scalar,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Person {
    labels: Scalar,
    last_login_time: Scalar,
    deleted_time: Scalar,
}

/// An object of shape `T`, or `T::default()` when the value is not an object.
#[derive(Default)]
struct Obj<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Obj<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj(T::default()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_str<E>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_unit<E>(self) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Any JSON value other than an object, as far as the inventory cares: a boolean, an
/// integer, whether a string is `Guest`, whether an array holds the string `Guest`.
#[derive(Default)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Guest(bool),
    HasGuest(bool),
    #[default]
    Other,
}

impl Scalar {
    fn int(&self) -> Option<i64> {
        match self {
            Scalar::Int(v) => Some(*v),
            _ => None,
        }
    }

    fn bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(v) => Some(*v),
            _ => None,
        }
    }

    fn has_guest(&self) -> bool {
        matches!(self, Scalar::HasGuest(true))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Guest(v == "Guest"))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                let mut guest = false;
                while let Some(item) = seq.next_element::<Scalar>()? {
                    guest |= matches!(item, Scalar::Guest(true));
                }
                Ok(Scalar::HasGuest(guest))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}
