// Shared by the build scripts of `host/` and `tests/` (pulled in with `include!`): builds
// workspace packages for `wasm32-wasip2` with a nested cargo, so every build and test runs
// the current components. Every component builds on `sdk/`, so it is watched too.
//
// The nested cargo gets its own target directory (no lock contention with the outer build)
// and none of the outer build's flags or wrappers (they target the host, not wasm; clippy's
// wrapper would lint the guest with the host's settings).

/// Builds `packages` with the `guest` profile into `<root>/target/<target_subdir>` and
/// returns the path of each package's `.wasm`, in order. Panics with the fix on failure.
fn build_wasm_components(
    root: &std::path::Path,
    target_subdir: &str,
    packages: &[&str],
    watched: &[&str],
) -> Vec<std::path::PathBuf> {
    for w in watched.iter().chain(["wit", "sdk", "Cargo.lock", "build-support"].iter()) {
        println!("cargo:rerun-if-changed={}", root.join(w).display());
    }
    let target_dir = root.join("target").join(target_subdir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "--quiet", "--target", "wasm32-wasip2", "--profile", "guest"];
    for p in packages {
        args.extend(["-p", p]);
    }
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args(&args)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .status()
        .expect("could not start cargo to build the WebAssembly components");
    if !status.success() {
        panic!(
            "building {} for wasm32-wasip2 failed (see the errors above). Is the target \
             installed? Run: rustup target add wasm32-wasip2",
            packages.join(", ")
        );
    }
    packages
        .iter()
        .map(|p| {
            let wasm = target_dir
                .join("wasm32-wasip2")
                .join("guest")
                .join(format!("{}.wasm", p.replace('-', "_")));
            if !wasm.exists() {
                panic!("the build of {p} produced no {}", wasm.display());
            }
            wasm
        })
        .collect()
}
