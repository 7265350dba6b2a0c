//! A component built against another version of the `connector:runtime` contract is
//! refused when it is loaded, in one line naming both versions (not with the linker's
//! "missing function" error, which names a symptom).

use connector_host::runtime::contract::{host_version, ContractError};
use connector_host::{Runtime, RuntimeLimits};

/// A minimal component, in the component binary format, that imports one instance (of no
/// functions) under `name`: enough for the host to read its contract version.
fn component_importing(name: &str) -> Vec<u8> {
    assert!(name.len() < 100, "one-byte lengths below");
    let mut c = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]; // "\0asm", component layer
                                                                      // Type section (7): one type, an instance type (0x42) declaring nothing.
    c.extend([0x07, 0x03, 0x01, 0x42, 0x00]);
    // Import section (10): one import, a plain name (0x00), of instance (0x05) type 0.
    let mut import = vec![0x01, 0x00, name.len() as u8];
    import.extend(name.as_bytes());
    import.extend([0x05, 0x00]);
    c.push(0x0a);
    c.push(import.len() as u8);
    c.extend(import);
    c
}

async fn load(bytes: &[u8]) -> anyhow::Result<Runtime> {
    Runtime::new(
        bytes,
        RuntimeLimits {
            pool_size: 0,
            ..RuntimeLimits::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_component_of_another_contract_version_is_refused_in_one_line_naming_both() {
    let ours = host_version();
    let e = load(&component_importing("connector:runtime/log@0.2.0"))
        .await
        .err()
        .expect("a 0.2.0 component is refused");
    assert!(e.downcast_ref::<ContractError>().is_some(), "{e:#}");
    let text = format!("{e:#}");
    assert_eq!(
        text,
        format!("it was built against connector:runtime@0.2.0 (connector:runtime/log@0.2.0); this host serves connector:runtime@{ours}: rebuild it against the wit/ of this host")
    );
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn a_component_of_no_contract_is_refused_and_one_of_this_version_passes_the_check() {
    let e = load(&component_importing("wasi:cli/environment@0.2.0"))
        .await
        .err()
        .expect("not a connector");
    assert!(e.downcast_ref::<ContractError>().is_some(), "{e:#}");
    assert!(
        format!("{e:#}").contains("imports and exports no connector:runtime interface"),
        "{e:#}"
    );

    // This host's version passes the contract check; the component still is no connector
    // (it exports nothing), which linking says, not the check.
    let e = load(&component_importing(&format!(
        "connector:runtime/log@{}",
        host_version()
    )))
    .await
    .err()
    .expect("exports no connector");
    assert!(e.downcast_ref::<ContractError>().is_none(), "{e:#}");
}

#[tokio::test]
async fn serve_refuses_to_start_with_a_tenant_of_another_contract_version_naming_it() {
    use connector_host::serve::{DeployError, Deployment, ServeFile};
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.wasm");
    std::fs::write(&old, component_importing("connector:runtime/log@0.2.0")).unwrap();
    std::fs::write(
        dir.path().join("old.toml"),
        "[tenant]\nkey = \"old\"\nconnector = \"old.wasm\"\n\
         [egress]\nallow = [\"https://example.com\"]\n\
         [state]\ncheckpoint_db = \"old.sqlite\"\n\
         [sink]\nkind = \"jsonl\"\npath = \"old.jsonl\"\n",
    )
    .unwrap();
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        "include = [\"old.toml\"]\n[serve]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let file = ServeFile::load(&path).unwrap();
    let components = connector_host::Components::new(connector_host::RuntimeOptions {
        limits: RuntimeLimits {
            pool_size: 0,
            ..RuntimeLimits::default()
        },
        ..connector_host::RuntimeOptions::default()
    });
    let e = match Deployment::start(file, &components).await {
        Err(DeployError::Config(e)) => e,
        Err(other) => panic!("not a configuration error: {other}"),
        Ok(_) => panic!("a 0.2.0 component was served"),
    };
    assert_eq!(
        e,
        format!(
            "{}: tenant 'old': cannot load the component {}: it was built against connector:runtime@0.2.0 (connector:runtime/log@0.2.0); this host serves connector:runtime@{}: rebuild it against the wit/ of this host",
            path.display(),
            old.display(),
            host_version()
        )
    );
}
