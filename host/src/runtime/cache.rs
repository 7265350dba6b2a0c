//! The compiled-component cache: compile a component once per engine configuration and
//! component hash, and reuse the machine code across runs and restarts.
//!
//! Loading machine code is trusting it, so the host only loads an artifact it produced
//! itself: every artifact is stored behind an HMAC-SHA256 under a random key that the host
//! created in the cache folder (mode 0600). An artifact whose MAC does not verify — written
//! by someone else, truncated, or from another key — is ignored and recompiled.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const KEY_FILE: &str = "cache.key";
const MAC_LEN: usize = 32;

/// Where a component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache configured: compiled in memory.
    Disabled,
    /// Loaded from a verified artifact.
    Hit,
    /// Compiled and stored.
    Miss,
}

/// Compiles `bytes`, or loads the verified artifact from `dir`.
pub fn load(
    engine: &Engine,
    bytes: &[u8],
    dir: Option<&Path>,
) -> anyhow::Result<(Component, CacheOutcome)> {
    let Some(dir) = dir else {
        return Ok((compile(engine, bytes)?, CacheOutcome::Disabled));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the component cache {}: {e}", dir.display()))?;
    let key = load_or_create_key(dir)?;
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let name = format!("{}-{:016x}.cwasm", hex(&Sha256::digest(bytes)), h.finish());
    let path = dir.join(name);
    if let Ok(data) = std::fs::read(&path) {
        if data.len() > MAC_LEN && verify(&key, &data[MAC_LEN..], &data[..MAC_LEN]) {
            // SAFETY: the MAC proves this host wrote these bytes with `precompile_component`
            // for an engine with the same compatibility hash.
            match unsafe { Component::deserialize(engine, &data[MAC_LEN..]) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cached component unusable, recompiling: {e}")
                }
            }
        } else {
            tracing::warn!(path = %path.display(), "cached component failed verification, recompiling");
        }
    }
    let artifact = engine
        .precompile_component(bytes)
        .map_err(|e| anyhow::anyhow!("the component does not compile: {e}"))?;
    let mut data = mac(&key, &artifact).to_vec();
    data.extend_from_slice(&artifact);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &data)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| anyhow::anyhow!("cannot write the component cache {}: {e}", path.display()))?;
    // SAFETY: produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &artifact) }
        .map_err(|e| anyhow::anyhow!("the compiled component does not load: {e}"))?;
    Ok((component, CacheOutcome::Miss))
}

fn compile(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Component> {
    Component::new(engine, bytes).map_err(|e| anyhow::anyhow!("the component does not load: {e}"))
}

fn load_or_create_key(dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    if let Ok(k) = std::fs::read(&path) {
        if let Ok(key) = <[u8; 32]>::try_from(k.as_slice()) {
            return Ok(key);
        }
    }
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
        .map_err(|e| anyhow::anyhow!("cannot read /dev/urandom for the cache key: {e}"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&path)
        .and_then(|mut f| f.write_all(&key))
        .map_err(|e| anyhow::anyhow!("cannot write the cache key {}: {e}", path.display()))?;
    Ok(key)
}

/// HMAC-SHA256 (RFC 2104).
fn mac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(key);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let ih = Sha256::new()
        .chain_update(&inner)
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(ih)
        .finalize()
        .into()
}

fn verify(key: &[u8; 32], data: &[u8], tag: &[u8]) -> bool {
    let expected = mac(key, data);
    tag.len() == MAC_LEN
        && expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_fails_verification() {
        let key = [7u8; 32];
        let tag = mac(&key, b"artifact");
        assert!(verify(&key, b"artifact", &tag));
        assert!(!verify(&key, b"artifacT", &tag));
        let mut bad = tag;
        bad[0] ^= 1;
        assert!(!verify(&key, b"artifact", &bad));
        assert!(!verify(&[8u8; 32], b"artifact", &tag));
    }

    #[test]
    fn hmac_sha256_known_answer() {
        // HMAC-SHA256(key = 32 x 0x0b, "Hi There"), computed with Python's hmac module.
        let tag = mac(&[0x0b; 32], b"Hi There");
        assert_eq!(
            hex(&tag),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }
}
