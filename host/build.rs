//! Builds the Entra ID connector component (`guest/`) for `wasm32-wasip2` and hands its
//! path to the host crate, so every build and test of the host runs the current guest.
//!
//! The guest is built by a nested cargo with its own target directory (no lock contention
//! with the outer build) and without the outer build's flags or wrappers (they target the
//! host, not wasm).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    for watched in ["guest/src", "guest/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = root.join("target").join("guest-build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "-p",
            "entra-connector",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "guest",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .status()
        .expect("could not start cargo to build the guest component");
    if !status.success() {
        panic!(
            "building the guest component failed (see the errors above). Is the target installed? \
             Run: rustup target add wasm32-wasip2"
        );
    }
    let wasm = target_dir
        .join("wasm32-wasip2")
        .join("guest")
        .join("entra_connector.wasm");
    if !wasm.exists() {
        panic!("the guest build produced no {}", wasm.display());
    }
    println!("cargo:rustc-env=ENTRA_CONNECTOR_WASM={}", wasm.display());
}
