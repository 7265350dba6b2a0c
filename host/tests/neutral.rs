//! The library knows no provider: built as an embedder builds it (`default-features =
//! false`), its dependency tree holds no connector guest, no built-in connectors crate and no
//! emulator (Graph, Okta). `cargo tree` resolves the graph without compiling anything, so this is
//! cheap.

use std::process::Command;

/// The package names in `cargo tree -p connector-host` with `extra` arguments.
fn tree(extra: &[&str]) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--manifest-path", manifest])
        .args([
            "-p",
            "connector-host",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(extra)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

const PROVIDER_CRATES: [&str; 5] = [
    "builtin-connectors",
    "entra-connector",
    "okta-connector",
    "graph-emulator",
    "okta-emulator",
];

#[test]
fn without_default_features_the_library_builds_no_guest_and_no_emulator() {
    let packages = tree(&["--no-default-features"]);
    assert!(packages.iter().any(|p| p == "wasmtime"), "{packages:?}");
    for name in PROVIDER_CRATES {
        assert!(
            !packages.iter().any(|p| p == name),
            "`cargo tree -p connector-host --no-default-features` lists {name}"
        );
    }
}

#[test]
fn the_cli_default_features_ship_the_builtin_connectors_and_the_simulation() {
    let packages = tree(&[]);
    for name in ["builtin-connectors", "graph-emulator", "okta-emulator"] {
        assert!(packages.iter().any(|p| p == name), "{name}: {packages:?}");
    }
}
