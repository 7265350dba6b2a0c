//! Builds the test-only components for `wasm32-wasip2` and hands their paths to the tests:
//! the hostile connector (`HOSTILE_CONNECTOR_WASM`, run by `tests/hostile.rs` against the
//! real host), the mapping benchmark (`MAPPING_BENCH_WASM`, `benches/mapping.rs`) and the
//! example connector on the SDK (`EXAMPLE_CONNECTOR_WASM`, `tests/example.rs`). The Okta
//! connector is `connectors/`'s (`builtin_connectors::OKTA`), built once for the CLI and the
//! tests.

include!("../build-support/wasm_build.rs");

fn main() {
    let manifest = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest
        .parent()
        .expect("tests/ lives in the workspace root");
    let wasm = build_wasm_components(
        root,
        "test-components-build",
        &["hostile-connector", "mapping-bench", "example-connector"],
        &[
            "tests/hostile",
            "tests/mapbench",
            "guest/src",
            "guest/Cargo.toml",
            "examples/example-connector",
        ],
    );
    println!(
        "cargo:rustc-env=HOSTILE_CONNECTOR_WASM={}",
        wasm[0].display()
    );
    println!("cargo:rustc-env=MAPPING_BENCH_WASM={}", wasm[1].display());
    println!(
        "cargo:rustc-env=EXAMPLE_CONNECTOR_WASM={}",
        wasm[2].display()
    );
}
