//! The connector components the `connector-host` CLI ships built in, by name: `entra-id`
//! (the default) and `okta`.
//!
//! The host library embeds no connector: a platform passes the bytes of any
//! `connector:runtime` component to `connector_host::Runtime`. The CLI (the `builtin`
//! feature of `connector-host`, on by default) takes these, chosen by a tenant file's
//! `[tenant] connector = "<name>"`.

/// The Entra ID users connector (`guest/`, OCSF 5003 User Inventory Info), built for
/// `wasm32-wasip2` by this crate's build script.
pub static ENTRA_ID: &[u8] = include_bytes!(env!("ENTRA_CONNECTOR_WASM"));

/// The Okta users connector (`okta/`, OCSF 5003 User Inventory Info), built for
/// `wasm32-wasip2` by this crate's build script.
pub static OKTA: &[u8] = include_bytes!(env!("OKTA_CONNECTOR_WASM"));

/// The name a tenant file gives when it names no connector.
pub const DEFAULT: &str = "entra-id";

/// Every built-in connector: (name in `[tenant] connector`, component bytes).
pub static ALL: &[(&str, &[u8])] = &[("entra-id", ENTRA_ID), ("okta", OKTA)];

/// The built-in connector called `name`, if there is one.
pub fn by_name(name: &str) -> Option<&'static [u8]> {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The built-in names, comma-separated (for messages).
pub fn names() -> String {
    ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_and_okta_are_built_in_and_are_components() {
        let bytes = super::by_name(super::DEFAULT).expect("the default is built in");
        // A component's preamble: "\0asm", version 0x0d, layer 1 (a core module has layer 0).
        assert_eq!(&bytes[..4], b"\0asm");
        assert_eq!(&bytes[4..8], &[0x0d, 0x00, 0x01, 0x00]);
        let okta = super::by_name("okta").expect("the Okta connector is built in");
        assert_eq!(&okta[..8], &bytes[..8], "a component too");
        assert_ne!(okta, bytes);
        assert!(
            super::by_name("okta-users").is_none(),
            "a built-in name, not a describe name"
        );
        assert_eq!(super::names(), "entra-id, okta");
    }
}
