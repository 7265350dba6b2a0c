//! The module import graph of every crate of the product has no circle (issue 18: the host's
//! 13-file knot and the guest's `enrich` <-> `sync` are untied, and stay so).
//! `scripts/import-graph` (python3, standard library) prints the graph and exits 1 on a circle.

use std::path::Path;
use std::process::Command;

#[test]
fn no_crate_of_the_product_has_an_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root");
    let crates = [
        "host",
        "guest",
        "sdk",
        "connectors",
        "examples/example-connector",
    ];
    let out = Command::new("python3")
        .current_dir(root)
        .arg("scripts/import-graph")
        .arg("--quiet")
        .args(crates)
        .output()
        .expect("python3 runs scripts/import-graph");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "an import circle:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in crates {
        assert!(
            text.contains(&format!("# {name}: no import circle")),
            "{name} was not read:\n{text}"
        );
    }
}

#[test]
fn the_script_finds_a_circle_where_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A(pub B);\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "use crate::a::A;\npub struct B(pub Box<A>);\n",
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("python3")
        .arg(root.join("scripts/import-graph"))
        .arg("--quiet")
        .arg(dir.path())
        .output()
        .expect("python3 runs scripts/import-graph");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("CIRCLE of 2 modules: a, b"), "{text}");
}
