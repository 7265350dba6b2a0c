//! Builds the built-in connector components (the Entra ID users connector, `guest/`, and
//! the Okta users connector, `okta/`) for `wasm32-wasip2` in one nested cargo and hands
//! their paths to this crate (`ENTRA_CONNECTOR_WASM`, `OKTA_CONNECTOR_WASM`), so the CLI
//! embeds, and every test runs, the current guests. The host library does not: it builds
//! this crate only through its `builtin` feature.

include!("../build-support/wasm_build.rs");

fn main() {
    let manifest = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest
        .parent()
        .expect("connectors/ lives in the workspace root");
    let wasm = build_wasm_components(
        root,
        "guest-build",
        &["entra-connector", "okta-connector"],
        &["guest/src", "guest/Cargo.toml", "okta"],
    );
    println!("cargo:rustc-env=ENTRA_CONNECTOR_WASM={}", wasm[0].display());
    println!("cargo:rustc-env=OKTA_CONNECTOR_WASM={}", wasm[1].display());
}
