//! Generators of hostile Graph input for the property tests (`proptest`), shared by
//! `guest/tests/properties.rs` and `tests/tests/properties.rs` (the latter includes this file
//! by path, to check `map_user` with the OCSF checker, `ocsf-check`).
//!
//! Strings lean on what breaks parsers: control characters, CR/LF, NUL, BOM, zero-width and
//! line-separator characters, multibyte and astral characters, URL and JSON punctuation, long
//! runs, and timestamps that are almost right (out-of-range fields, odd fractions and offsets,
//! one character inserted, dropped or replaced).

#![allow(dead_code)]

use entra_connector::ocsf::{Enrichment, GroupRef, Mfa};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Every property `map_user` reads (`USER_SELECT`, `signInActivity`) and a few Graph adds.
pub const USER_KEYS: &[&str] = &[
    "id",
    "displayName",
    "mail",
    "userPrincipalName",
    "mailNickname",
    "accountEnabled",
    "department",
    "jobTitle",
    "employeeId",
    "employeeType",
    "companyName",
    "officeLocation",
    "createdDateTime",
    "isManagementRestricted",
    "userType",
    "onPremisesSamAccountName",
    "onPremisesSyncEnabled",
    "signInActivity",
    "lastSignInDateTime",
    "lastSuccessfulSignInDateTime",
    "@odata.type",
    "@odata.context",
    "@removed",
];

/// Characters that break parsers, mixed with plain ones.
const ODD_CHARS: &[char] = &[
    '\0', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{200b}',
    '\u{200e}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{fffd}', 'é', 'ß', 'İ', 'ﬀ', 'Ａ', '𝔊',
    '😀', ':', ';', ',', '@', '/', '\\', '%', '#', '?', '&', '=', '{', '}', '[', ']', '"', '\'',
    '.', '-', '+', 'T', 'Z', '0', '9', ' ',
];

/// Strings found in Graph answers, or close to them.
const POOL: &[&str] = &[
    "",
    " ",
    "\t\n",
    "Adele Vance",
    "AdeleV@contoso.com",
    "jo_x.com#EXT#@tenant.onmicrosoft.com",
    "@",
    "a@",
    "@b",
    "a@b@c",
    "user@[127.0.0.1]",
    "\"quoted\"@example.com",
    "Member",
    "Guest",
    "2023-05-17T08:12:44Z",
    "2023-05-17T08:12:44.1234567Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.9999999Z",
    "2023-02-29T00:00:00Z",
    "2024-02-29T23:59:59+23:59",
    "1970-01-01T00:00:00Z",
    "2001-09-09T01:46:40Z",
    "2286-11-20T17:46:40Z",
    "#microsoft.graph.user",
    "#microsoft.graph.group",
    "{{secret:client_secret}}",
    "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
    "../..",
    "%2e%2e",
    "\u{202e}gnp.exe",
];

/// Authentication method names, in both Graph spellings, and near misses.
const METHODS: &[&str] = &[
    "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
    "#microsoft.graph.phoneAuthenticationMethod",
    "#microsoft.graph.passwordAuthenticationMethod",
    "#microsoft.graph.fido2AuthenticationMethod",
    "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
    "#microsoft.graph.",
    "#",
    ".",
    "microsoftAuthenticatorPush",
    "mobilePhone",
    "fido2",
    "passKeySynced",
    "windowsHelloForBusiness",
    "macOsSecureEnclaveKey",
    "externalAuthMethod",
    "email",
    "password",
];

pub fn odd_char() -> impl Strategy<Value = char> {
    prop_oneof![
        5 => prop::char::range(' ', '~'),
        2 => prop::sample::select(ODD_CHARS),
        1 => any::<char>(),
    ]
}

/// Any string, leaning on the odd.
pub fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(odd_char(), 0..24).prop_map(|v| v.into_iter().collect()),
        2 => prop::sample::select(POOL).prop_map(str::to_string),
        2 => near_timestamp(),
        1 => (odd_char(), 0usize..3000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
        1 => any::<String>(),
    ]
}

/// A placeholder word of the OCSF checker (`ocsf_check::PLACEHOLDER_WORDS`). Blank text is a
/// placeholder to the checker too, but stays in the input: `map_user` drops it as absent.
fn is_placeholder_word(s: &str) -> bool {
    !s.trim().is_empty() && ocsf_check::is_placeholder(s)
}

/// [`odd_string`] without the OCSF checker's placeholder words: `map_user` passes a Graph
/// value through verbatim (it invents none) and the checker refuses these anywhere in an
/// event, so one is given a suffix. (Generators here never filter: a million cases would
/// exhaust proptest's budget of rejected values.)
pub fn graph_string() -> impl Strategy<Value = String> {
    odd_string().prop_map(|s| if is_placeholder_word(&s) { s + "-x" } else { s })
}

/// An RFC 3339 timestamp, well formed or almost: fields in and out of range, fractions of
/// any length, `Z`/offsets/nothing, lower-case separators, then maybe one character
/// inserted, removed or replaced.
pub fn near_timestamp() -> impl Strategy<Value = String> {
    let offset = prop_oneof![
        Just("Z".to_string()),
        Just("z".to_string()),
        Just(String::new()),
        "[+-][0-9]{2}:[0-9]{2}",
        "[+-][0-9]{4}",
        "[+-][0-9]{2}",
    ];
    let clean = (
        (0u32..10_000, 0u32..14, 0u32..33),
        (0u32..26, 0u32..62, 0u32..62),
        "(\\.[0-9]{0,12})?",
        offset,
        prop::sample::select(&['T', 't', ' ', '_'][..]),
    )
        .prop_map(|((y, mo, d), (h, mi, s), fraction, offset, t)| {
            format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        });
    (clean, 0u8..5, any::<prop::sample::Index>(), odd_char()).prop_map(|(s, op, at, c)| {
        let mut chars: Vec<char> = s.chars().collect();
        let i = at.index(chars.len() + 1);
        match op {
            0 if i < chars.len() => chars[i] = c,
            1 => chars.insert(i, c),
            2 if i < chars.len() => {
                chars.remove(i);
            }
            _ => {}
        }
        chars.into_iter().collect()
    })
}

fn object(entries: Vec<(String, Value)>) -> Value {
    Value::Object(entries.into_iter().collect::<Map<String, Value>>())
}

/// Any JSON value, nested a few levels, strings from [`graph_string`].
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => prop::sample::select(&[0.5, -1.25e300, 1e-300, 4.2e15, -0.0][..]).prop_map(Value::from),
        // Not finite: `Value::from` makes it null.
        1 => any::<f64>().prop_map(Value::from),
        4 => graph_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(object),
        ]
    })
}

/// An object key: a Graph property name or anything.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(USER_KEYS).prop_map(str::to_string),
        odd_string(),
    ]
}

/// A value for a known Graph user property: the right type more often than not.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => graph_string().prop_map(Value::String),
        1 => near_timestamp().prop_map(Value::String),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => json_value(),
    ]
}

/// `signInActivity`: an object of timestamps, or anything.
fn sign_in_activity() -> impl Strategy<Value = Value> {
    let stamp = prop_oneof![
        3 => near_timestamp().prop_map(Value::String),
        1 => json_value(),
    ];
    prop_oneof![
        3 => prop::collection::vec(
            (
                prop::sample::select(
                    &[
                        "lastSuccessfulSignInDateTime",
                        "lastSignInDateTime",
                        "lastNonInteractiveSignInDateTime",
                        "lastSuccessfulSignInRequestId",
                    ][..]
                )
                .prop_map(str::to_string),
                stamp,
            ),
            0..4,
        )
        .prop_map(object),
        1 => json_value(),
    ]
}

/// A Graph user as `/users` or `/users/delta` could send it: known properties with values of
/// any type, a string `id` most of the time, and unknown extra keys. Sometimes not an object.
pub fn graph_user() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        6 => graph_string().prop_map(Value::String),
        1 => json_value(),
    ];
    let user = (
        prop::option::weighted(0.9, id),
        prop::collection::vec(
            (
                prop::sample::select(USER_KEYS).prop_map(str::to_string),
                field_value(),
            ),
            0..20,
        ),
        prop::option::of(sign_in_activity()),
        prop::collection::vec((odd_string(), json_value()), 0..3),
    )
        .prop_map(|(id, fields, sign_in, extra)| {
            let mut map = Map::new();
            for (k, v) in extra.into_iter().chain(fields) {
                map.insert(k, v);
            }
            if let Some(s) = sign_in {
                map.insert("signInActivity".into(), s);
            }
            match id {
                Some(id) => {
                    map.insert("id".into(), id);
                }
                None => {
                    map.remove("id");
                }
            }
            Value::Object(map)
        });
    prop_oneof![12 => user, 1 => json_value()]
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(graph_string(), 0..5)
}

/// What the enrichment reads could bring back: group and role names, method types.
pub fn enrichment() -> impl Strategy<Value = Enrichment> {
    let methods = prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(METHODS).prop_map(str::to_string),
            1 => graph_string(),
        ],
        0..6,
    );
    let mfa = prop::option::of(prop_oneof![
        methods.clone().prop_map(Mfa::Methods),
        methods.clone().prop_map(Mfa::Registration),
        methods.prop_map(Mfa::Vocabulary),
    ]);
    let groups = prop::option::of(prop::collection::vec(
        (graph_string(), prop::option::of(graph_string()))
            .prop_map(|(id, display_name)| GroupRef { id, display_name }),
        0..5,
    ));
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
