//! Builds the built-in connector components (today the Entra ID users connector, `guest/`)
//! for `wasm32-wasip2` and hands their paths to this crate (`ENTRA_CONNECTOR_WASM`), so the
//! CLI embeds, and every test runs, the current guest. The host library does not: it builds
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
        &["entra-connector"],
        &["guest/src", "guest/Cargo.toml"],
    );
    println!("cargo:rustc-env=ENTRA_CONNECTOR_WASM={}", wasm[0].display());
}
