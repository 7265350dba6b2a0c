//! JSON text packed for holding a million user objects in memory: every `"key":` of a fixed
//! dictionary of Graph property names becomes one byte.
//!
//! A generated user object is ~1,000 bytes of compact JSON text on average, about half of
//! which is its ~22 property names and `signInActivity`'s six (packed: ~510 bytes, measured
//! over the first 2,000 users of seed 7). serde_json writes no raw control character (it escapes U+0000–U+001F
//! inside strings and writes no whitespace), so bytes 0x01–0x1F are free to stand for the
//! dictionary's keys: packing replaces each occurrence of `"key":` (left to right, wherever it
//! occurs) by its byte, unpacking replaces each such byte back. Because the original text held
//! none of those bytes, unpacking gives back exactly the text that was packed, whatever the
//! text (a key that is not in the dictionary, or a string value that looks like a key, is
//! kept as it is or restored as it was). [`pack`] refuses a text holding a control byte.

/// The dictionary: byte `i + 1` stands for `"KEYS[i]":`. Graph user properties
/// (resources/user.md) and `signInActivity`'s (resources/signinactivity.md) as the generator
/// writes them, plus two keys of relation objects; at most 31 entries.
const KEYS: [&str; 31] = [
    "id",
    "displayName",
    "givenName",
    "surname",
    "mailNickname",
    "userPrincipalName",
    "mail",
    "userType",
    "accountEnabled",
    "createdDateTime",
    "department",
    "jobTitle",
    "employeeId",
    "employeeType",
    "companyName",
    "officeLocation",
    "isManagementRestricted",
    "onPremisesSyncEnabled",
    "onPremisesSamAccountName",
    "mobilePhone",
    "businessPhones",
    "preferredLanguage",
    "signInActivity",
    "lastSignInDateTime",
    "lastSignInRequestId",
    "lastNonInteractiveSignInDateTime",
    "lastNonInteractiveSignInRequestId",
    "lastSuccessfulSignInDateTime",
    "lastSuccessfulSignInRequestId",
    "@odata.type",
    "description",
];

/// Compact JSON text with the dictionary's keys packed, or `None` when `text` holds a control
/// byte (then it cannot be packed losslessly).
pub(crate) fn pack(text: &str) -> Option<Box<str>> {
    let bytes = text.as_bytes();
    if bytes.iter().any(|&b| b < 0x20) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            // A candidate key runs to the next quote, which a colon must follow.
            let start = i + 1;
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'"')
                .map(|n| start + n);
            if let Some(end) = end.filter(|&e| bytes.get(e + 1) == Some(&b':')) {
                if let Some(code) = KEYS.iter().position(|k| *k == &text[start..end]) {
                    out.push_str(&text[copied..i]);
                    out.push(char::from(code as u8 + 1));
                    i = end + 2;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    Some(out.into_boxed_str())
}

/// The text [`pack`] was given.
pub(crate) fn unpack(packed: &str) -> String {
    let mut out = String::with_capacity(packed.len() * 3 / 2);
    let mut copied = 0;
    for (i, b) in packed.bytes().enumerate() {
        if (1..=31).contains(&b) {
            out.push_str(&packed[copied..i]);
            out.push('"');
            out.push_str(KEYS[usize::from(b - 1)]);
            out.push_str("\":");
            copied = i + 1;
        }
    }
    out.push_str(&packed[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packing_gives_back_the_exact_text_and_saves_the_keys() {
        let tricky = json!({
            "id": "a",
            "displayName": "\"displayName\":",
            "x\"mail": {"mail": "\"id\":\"id\":", "surname\\": null},
            "notAKey": ["signInActivity", "\\\"jobTitle\":"],
            "signInActivity": {"lastSignInDateTime": "2024-01-01T00:00:00Z"},
            "ünïcode": "日本語 \u{7f}",
        });
        for value in [tricky, json!({}), json!("plain"), json!({"id": ""})] {
            let text = value.to_string();
            let packed = pack(&text).expect("serde_json writes no control bytes");
            assert_eq!(unpack(&packed), text);
        }
        let user = json!({"id": "u1", "displayName": "Ann", "userPrincipalName": "ann@x"});
        let text = user.to_string();
        let packed = pack(&text).expect("packs");
        assert_eq!(
            packed.len(),
            text.len() - 3 * 2 - "iddisplayNameuserPrincipalName".len()
        );
        assert!(pack("{\"a\":\"\u{1}\"}").is_none());
    }
}
