//! The compiled-component cache: compiled once per engine configuration and component
//! hash, reused across restarts, and never loaded unless this host produced it.

use connector_host::runtime::CacheOutcome;
use connector_host::{Runtime, RuntimeLimits, RuntimeOptions};

async fn start(dir: &std::path::Path, component: &[u8]) -> Runtime {
    Runtime::with_options(
        component,
        RuntimeOptions {
            limits: RuntimeLimits::default(),
            cache_dir: Some(dir.to_path_buf()),
            ..RuntimeOptions::default()
        },
    )
    .await
    .expect("the runtime starts")
}

fn artifacts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_once_then_reused_and_tampering_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), builtin_connectors::ENTRA_ID).await;
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    drop(first);
    let second = start(dir.path(), builtin_connectors::ENTRA_ID).await;
    assert_eq!(
        second.cache_outcome(),
        CacheOutcome::Hit,
        "a restart reuses the compiled component"
    );
    assert_eq!(second.description().name, "entra-id-users");
    drop(second);
    let files = artifacts(dir.path());
    assert_eq!(files.len(), 1);

    // Flip one byte of machine code: the MAC fails, the artifact is recompiled, not loaded.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    let third = start(dir.path(), builtin_connectors::ENTRA_ID).await;
    assert_eq!(
        third.cache_outcome(),
        CacheOutcome::Miss,
        "a tampered artifact is not loaded"
    );
    drop(third);
    assert_eq!(
        start(dir.path(), builtin_connectors::ENTRA_ID)
            .await
            .cache_outcome(),
        CacheOutcome::Hit
    );

    // An artifact from another host (another key) is not loaded either.
    let other = tempfile::tempdir().unwrap();
    drop(start(other.path(), builtin_connectors::ENTRA_ID).await);
    std::fs::copy(&artifacts(other.path())[0], &files[0]).unwrap();
    assert_eq!(
        start(dir.path(), builtin_connectors::ENTRA_ID)
            .await
            .cache_outcome(),
        CacheOutcome::Miss,
        "an artifact MACed under another key is recompiled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_component_or_engine_configuration_gets_its_own_artifact() {
    let dir = tempfile::tempdir().unwrap();
    drop(start(dir.path(), builtin_connectors::ENTRA_ID).await);
    drop(start(dir.path(), include_bytes!(env!("HOSTILE_CONNECTOR_WASM"))).await);
    assert_eq!(
        artifacts(dir.path()).len(),
        2,
        "keyed by the component's hash"
    );
    let no_pool = Runtime::with_options(
        builtin_connectors::ENTRA_ID,
        RuntimeOptions {
            limits: RuntimeLimits {
                pool_size: 0,
                ..RuntimeLimits::default()
            },
            cache_dir: Some(dir.path().to_path_buf()),
            ..RuntimeOptions::default()
        },
    )
    .await
    .unwrap();
    // The allocator is not part of the compiled code, so the artifact is shared.
    assert_eq!(no_pool.cache_outcome(), CacheOutcome::Hit);
}
