//! The compiled-component cache: compile a component once per engine configuration and
//! component hash, and reuse the machine code across runs and restarts.
//!
//! # Trust model
//!
//! Loading machine code is trusting it, so the host only loads an artifact it produced
//! itself, from a folder only its own user can change:
//!
//! - **The folder** must be a real folder (not a symbolic link), owned by the host's
//!   effective user, and not writable by group or others. A missing folder is created with
//!   mode 0700. The host opens it once (`O_DIRECTORY|O_NOFOLLOW`), checks the opened folder
//!   itself, and reaches every file through that handle (`openat`), so swapping a path
//!   component afterwards cannot redirect it.
//! - **The key** (`cache.key`, 32 bytes from the OS random source) must be a regular file
//!   owned by the host's user with mode 0600 or stricter. A key that is not — a symbolic
//!   link, another owner, readable or writable by others, the wrong size — is never used
//!   or written through: it is replaced by a fresh key (written to a new private file,
//!   then renamed over the old name), which also invalidates every artifact MACed under it.
//! - **Artifacts** are stored behind an HMAC-SHA256 under that key and verified in
//!   constant time before loading. An artifact that does not verify — written by someone
//!   else, truncated, or from another key — is ignored and recompiled. Artifacts are read
//!   with `O_NOFOLLOW` and at most [`MAX_ARTIFACT`] bytes.
//! - **Every file the host writes** is created under a random name with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600, then renamed into place: there is no
//!   predictable temporary name, and nothing planted in the folder is ever written through.
//!
//! A cache that cannot be used safely (refused folder, unwritable, cannot be created) is
//! never fatal: the host logs one warning saying what is wrong and what to do, and compiles
//! the component in memory ([`CacheOutcome::Unusable`]).

use std::hash::{Hash, Hasher};
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;
const MAC_LEN: usize = 32;
/// The largest artifact read back from the cache (the Entra component compiles to a few
/// MiB); a bigger file is ignored and the component recompiled.
pub const MAX_ARTIFACT: u64 = 256 << 20;

/// Where a component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache configured: compiled in memory.
    Disabled,
    /// Loaded from a verified artifact.
    Hit,
    /// Compiled and stored.
    Miss,
    /// A cache was configured but could not be used safely (see the warning logged):
    /// compiled in memory.
    Unusable,
}

/// Compiles `bytes`, or loads the verified artifact from `dir`. Fails only if the
/// component itself does not compile: cache problems are warnings.
pub fn load(
    engine: &Engine,
    bytes: &[u8],
    dir: Option<&Path>,
) -> anyhow::Result<(Component, CacheOutcome)> {
    let Some(dir) = dir else {
        return Ok((compile(engine, bytes)?, CacheOutcome::Disabled));
    };
    let cache = match store::CacheDir::open(dir) {
        Ok(cache) => cache,
        Err(why) => {
            tracing::warn!(
                "component cache {} not used: {why}; compiling the component in memory",
                dir.display()
            );
            return Ok((compile(engine, bytes)?, CacheOutcome::Unusable));
        }
    };
    let name = artifact_name(engine, bytes);
    if let Some(data) = cache.read_artifact(&name) {
        if data.len() > MAC_LEN && verify(cache.key(), &data[MAC_LEN..], &data[..MAC_LEN]) {
            // SAFETY: the MAC proves this host wrote these bytes with `precompile_component`
            // for an engine with the same compatibility hash.
            match unsafe { Component::deserialize(engine, &data[MAC_LEN..]) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(
                    path = %dir.join(&name).display(),
                    "cached component unusable, recompiling: {e}"
                ),
            }
        } else {
            tracing::warn!(
                path = %dir.join(&name).display(),
                "cached component failed verification, recompiling"
            );
        }
    }
    let artifact = engine
        .precompile_component(bytes)
        .map_err(|e| anyhow::anyhow!("the component does not compile: {e}"))?;
    let tag = mac(cache.key(), &artifact);
    let outcome = match cache.store(&name, &[&tag, &artifact]) {
        Ok(()) => CacheOutcome::Miss,
        Err(e) => {
            tracing::warn!(
                "cannot write to the component cache {}: {e}; check that the folder is \
                 writable and not full, or pass --no-cache; the component was compiled in memory",
                dir.display()
            );
            CacheOutcome::Unusable
        }
    };
    // SAFETY: produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &artifact) }
        .map_err(|e| anyhow::anyhow!("the compiled component does not load: {e}"))?;
    Ok((component, outcome))
}

/// `<sha256 of the component>-<engine compatibility hash>.cwasm`.
fn artifact_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{}-{:016x}.cwasm", hex(&Sha256::digest(bytes)), h.finish())
}

fn compile(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Component> {
    Component::new(engine, bytes).map_err(|e| anyhow::anyhow!("the component does not load: {e}"))
}

/// HMAC-SHA256 of `data` under `key`.
fn mac(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; MAC_LEN] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `data` under `key` (constant-time comparison).
fn verify(key: &[u8; KEY_LEN], data: &[u8], tag: &[u8]) -> bool {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.verify_slice(tag).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
mod store {
    //! The cache folder, reached only through a handle to the checked folder.

    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    use std::path::{Path, PathBuf};

    use rustix::fs::{linkat, openat, renameat, unlinkat, AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;

    use super::{hex, KEY_FILE, KEY_LEN, MAX_ARTIFACT};

    /// An opened, checked cache folder and its key.
    pub(super) struct CacheDir {
        dir: File,
        path: PathBuf,
        key: [u8; KEY_LEN],
    }

    impl CacheDir {
        /// Opens (creating it with mode 0700 if missing) and checks the folder, then loads
        /// or creates the key. `Err` is the reason and the remedy, for a one-line warning.
        pub(super) fn open(path: &Path) -> Result<CacheDir, String> {
            // Without a trailing slash, which would make the look-ups below follow a
            // symbolic link at the last component.
            let path: &Path = &path.components().collect::<PathBuf>();
            let show = path.display();
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err("it is a symbolic link; pass --cache-dir with the real folder \
                                (one you own, mode 700)"
                        .into())
                }
                Ok(m) if !m.is_dir() => {
                    return Err(
                        "it is not a folder; pass --cache-dir with a folder you own, or --no-cache"
                            .into(),
                    )
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(path)
                        .map_err(|e| {
                            format!(
                                "cannot create it ({e}); pass --cache-dir with a writable \
                                 folder, or --no-cache"
                            )
                        })?;
                }
                Err(e) => {
                    return Err(format!(
                        "cannot inspect it ({e}); pass --cache-dir with a folder you own, or --no-cache"
                    ))
                }
            }
            // The checks below are on the opened folder itself; O_NOFOLLOW refuses a
            // symbolic link swapped in since the look above.
            let dir = openat(
                CWD,
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(File::from)
            .map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => "it is a symbolic link or not a folder; pass \
                                                --cache-dir with a folder you own"
                    .to_string(),
                e => format!("cannot open it ({e}); pass --cache-dir with a folder you own"),
            })?;
            let meta = dir
                .metadata()
                .map_err(|e| format!("cannot inspect it ({e}); pass --no-cache"))?;
            let me = euid();
            if meta.uid() != me {
                return Err(format!(
                    "it belongs to uid {} but the host runs as uid {me}, so that user could \
                     plant code; pass --cache-dir with a folder you own",
                    meta.uid()
                ));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(format!(
                    "it is writable by other users (mode {:03o}), who could plant code; run \
                     `chmod 700 {show}` or pass --cache-dir with a private folder",
                    meta.mode() & 0o777
                ));
            }
            let key = load_or_create_key(&dir, path)?;
            Ok(CacheDir {
                dir,
                path: path.to_path_buf(),
                key,
            })
        }

        pub(super) fn key(&self) -> &[u8; KEY_LEN] {
            &self.key
        }

        /// The artifact `name`, if present, a regular file and at most [`MAX_ARTIFACT`]
        /// bytes (problems other than absence are logged).
        pub(super) fn read_artifact(&self, name: &str) -> Option<Vec<u8>> {
            let path = self.path.join(name);
            let fd = match openat(
                &self.dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return None,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot open the cached component, recompiling: {e}");
                    return None;
                }
            };
            let file = File::from(fd);
            match file.metadata() {
                Ok(m) if m.is_file() && m.len() <= MAX_ARTIFACT => {}
                Ok(m) if m.is_file() => {
                    tracing::warn!(
                        path = %path.display(),
                        "cached component is {} bytes, over the {MAX_ARTIFACT}-byte limit; recompiling",
                        m.len()
                    );
                    return None;
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "cached component is not a regular file; recompiling");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot inspect the cached component, recompiling: {e}");
                    return None;
                }
            }
            let mut data = Vec::new();
            match file.take(MAX_ARTIFACT + 1).read_to_end(&mut data) {
                Ok(_) if data.len() as u64 <= MAX_ARTIFACT => Some(data),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot read the cached component, recompiling: {e}");
                    None
                }
            }
        }

        /// Stores `parts` (concatenated) as `name`: a new private file, renamed into place.
        pub(super) fn store(&self, name: &str, parts: &[&[u8]]) -> std::io::Result<()> {
            let tmp = write_private_temp(&self.dir, parts)?;
            renameat(&self.dir, &tmp, &self.dir, name).map_err(|e| {
                let _ = unlinkat(&self.dir, &tmp, AtFlags::empty());
                std::io::Error::from(e)
            })
        }
    }

    fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
        getrandom::fill(buf).map_err(|e| std::io::Error::other(format!("no OS random source: {e}")))
    }

    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    /// The existing key if it is sound, else a new one (a bad key is replaced, never
    /// written through).
    fn load_or_create_key(dir: &File, path: &Path) -> Result<[u8; KEY_LEN], String> {
        let key_path = path.join(KEY_FILE);
        // A few rounds: another host may create the key between our look and our link.
        for _ in 0..3 {
            let problem = match openat(
                dir,
                KEY_FILE,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            ) {
                Ok(fd) => match read_key(File::from(fd)) {
                    Ok(key) => return Ok(key),
                    Err(problem) => problem,
                },
                Err(Errno::NOENT) => match create_key(dir) {
                    Ok(Some(key)) => return Ok(key),
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(format!(
                            "cannot create the cache key {} ({e}); make the folder writable \
                             or pass --no-cache",
                            key_path.display()
                        ))
                    }
                },
                Err(Errno::LOOP) => "is a symbolic link".to_string(),
                Err(e) => {
                    return Err(format!(
                        "cannot open the cache key {} ({e}); delete it or pass --no-cache",
                        key_path.display()
                    ))
                }
            };
            tracing::warn!(
                "cache key {} {problem}: replacing it with a new private key (cached \
                 components will be recompiled)",
                key_path.display()
            );
            return replace_key(dir).map_err(|e| {
                format!(
                    "cannot replace the cache key {} ({e}); delete it or pass --no-cache",
                    key_path.display()
                )
            });
        }
        Err(format!(
            "the cache key {} keeps changing (another process?); pass --no-cache",
            key_path.display()
        ))
    }

    /// The key in `file` if it is a regular file owned by us, mode 0600 or stricter, and
    /// exactly [`KEY_LEN`] bytes; else what is wrong with it.
    fn read_key(mut file: File) -> Result<[u8; KEY_LEN], String> {
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot be inspected ({e})"))?;
        if !meta.is_file() {
            return Err("is not a regular file".into());
        }
        if meta.uid() != euid() {
            return Err(format!("belongs to uid {}, not to this user", meta.uid()));
        }
        if meta.mode() & 0o7777 & !0o600 != 0 {
            return Err(format!(
                "has mode {:03o} (must be 600 or stricter)",
                meta.mode() & 0o7777
            ));
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(format!("is {} bytes, not {KEY_LEN}", meta.len()));
        }
        let mut key = [0u8; KEY_LEN];
        file.read_exact(&mut key)
            .map_err(|e| format!("cannot be read ({e})"))?;
        Ok(key)
    }

    /// A fresh random key, written to a new private file; returns the key and the file's name.
    fn fresh_key_file(dir: &File) -> std::io::Result<([u8; KEY_LEN], String)> {
        let mut key = [0u8; KEY_LEN];
        fill_random(&mut key)?;
        let tmp = write_private_temp(dir, &[&key])?;
        Ok((key, tmp))
    }

    /// Creates `cache.key` with a fresh key, or `Ok(None)` if another process created one
    /// meanwhile (the caller reads that one).
    fn create_key(dir: &File) -> std::io::Result<Option<[u8; KEY_LEN]>> {
        let (key, tmp) = fresh_key_file(dir)?;
        let placed = match linkat(dir, &tmp, dir, KEY_FILE, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            // No hard links here (some file systems): a rename cannot lose more than a
            // key another host made an instant ago (its artifacts get recompiled).
            Err(_) => renameat(dir, &tmp, dir, KEY_FILE).map(|()| true),
        };
        let _ = unlinkat(dir, &tmp, AtFlags::empty());
        Ok(placed?.then_some(key))
    }

    /// Replaces whatever is at `cache.key` (a link or file is replaced, never written
    /// through) with a fresh key.
    fn replace_key(dir: &File) -> std::io::Result<[u8; KEY_LEN]> {
        let (key, tmp) = fresh_key_file(dir)?;
        renameat(dir, &tmp, dir, KEY_FILE).map_err(|e| {
            let _ = unlinkat(dir, &tmp, AtFlags::empty());
            std::io::Error::from(e)
        })?;
        Ok(key)
    }

    /// Writes `parts` to a new file in `dir` with a random name, created with
    /// `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600 (nothing planted is written through);
    /// returns its name.
    fn write_private_temp(dir: &File, parts: &[&[u8]]) -> std::io::Result<String> {
        let mut nonce = [0u8; 16];
        fill_random(&mut nonce)?;
        let name = format!(".tmp-{}", hex(&nonce));
        let fd = openat(
            dir,
            &name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )?;
        let mut file = File::from(fd);
        let written = parts.iter().try_for_each(|p| file.write_all(p));
        if let Err(e) = written {
            let _ = unlinkat(dir, &name, AtFlags::empty());
            return Err(e);
        }
        Ok(name)
    }
}

#[cfg(not(unix))]
mod store {
    //! Without Unix ownership and `openat`, the cache cannot check who wrote it: disabled.

    use std::path::Path;

    use super::KEY_LEN;

    pub(super) enum CacheDir {}

    impl CacheDir {
        pub(super) fn open(_: &Path) -> Result<CacheDir, String> {
            Err("the compiled-component cache is only supported on Unix; pass --no-cache".into())
        }
        pub(super) fn key(&self) -> &[u8; KEY_LEN] {
            match *self {}
        }
        pub(super) fn read_artifact(&self, _: &str) -> Option<Vec<u8>> {
            match *self {}
        }
        pub(super) fn store(&self, _: &str, _: &[&[u8]]) -> std::io::Result<()> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    mod local_user {
        //! A hostile neighbour on the machine, and a careless operator, against the cache
        //! folder. Each test runs `load` on the smallest component and checks what the
        //! host did to the folder and what it logged.

        use std::io::Write;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        use std::path::Path;
        use std::sync::{Arc, Mutex};

        use super::super::*;

        /// The empty component (magic, component-model version, layer 1).
        const COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

        #[derive(Clone, Default)]
        struct Logs(Arc<Mutex<Vec<u8>>>);

        impl Write for Logs {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
            type Writer = Logs;
            fn make_writer(&'a self) -> Logs {
                self.clone()
            }
        }

        fn engine() -> Engine {
            Engine::new(&wasmtime::Config::new()).unwrap()
        }

        /// `load` with the cache in `dir`: the outcome and the log lines.
        fn load_logged(engine: &Engine, dir: &Path) -> (CacheOutcome, String) {
            let logs = Logs::default();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(logs.clone())
                .with_ansi(false)
                .finish();
            let (_, outcome) = tracing::subscriber::with_default(subscriber, || {
                load(engine, COMPONENT, Some(dir)).expect("a cache problem is never fatal")
            });
            let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
            (outcome, text)
        }

        fn names(dir: &Path) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }

        fn mode(path: &Path) -> u32 {
            std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
        }

        fn private_dir() -> tempfile::TempDir {
            let dir = tempfile::tempdir().unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            dir
        }

        fn is_root() -> bool {
            rustix::process::geteuid().is_root()
        }

        /// The one warning line about the refused cache `dir`, which must name `remedy`.
        fn assert_refusal(logs: &str, dir: &Path, remedy: &str) {
            let lines: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains("WARN") && l.contains("component cache"))
                .collect();
            assert_eq!(lines.len(), 1, "one warning line:\n{logs}");
            let line = lines[0];
            assert!(
                line.contains(&dir.display().to_string()),
                "names the folder: {line}"
            );
            assert!(line.contains(remedy), "says what to do ({remedy}): {line}");
            assert!(line.contains("compiling the component in memory"), "{line}");
        }

        #[test]
        fn local_user_world_writable_cache_folder_is_refused_and_compiled_in_memory() {
            let engine = engine();
            let dir = private_dir();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
            let (outcome, logs) = load_logged(&engine, dir.path());
            assert_eq!(outcome, CacheOutcome::Unusable);
            assert_refusal(
                &logs,
                dir.path(),
                &format!("chmod 700 {}", dir.path().display()),
            );
            assert!(
                logs.contains("writable by other users (mode 777)"),
                "{logs}"
            );
            assert!(
                names(dir.path()).is_empty(),
                "nothing written: {:?}",
                names(dir.path())
            );

            // Group-writable is refused too; once fixed, the cache works.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
            assert_eq!(load_logged(&engine, dir.path()).0, CacheOutcome::Unusable);
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            assert_eq!(load_logged(&engine, dir.path()).0, CacheOutcome::Miss);
            assert_eq!(load_logged(&engine, dir.path()).0, CacheOutcome::Hit);
        }

        #[test]
        fn local_user_cache_folder_owned_by_another_user_is_refused() {
            if !is_root() {
                eprintln!(
                    "skipped: making a folder owned by another user needs root (chown); CI runs as root"
                );
                return;
            }
            let engine = engine();
            let dir = private_dir();
            // uid 65534 (nobody) planted a cache key and an artifact in its own folder.
            std::fs::write(dir.path().join(KEY_FILE), [1u8; KEY_LEN]).unwrap();
            std::fs::set_permissions(
                dir.path().join(KEY_FILE),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            std::os::unix::fs::chown(dir.path().join(KEY_FILE), Some(65534), None).unwrap();
            std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
            let (outcome, logs) = load_logged(&engine, dir.path());
            assert_eq!(outcome, CacheOutcome::Unusable);
            assert_refusal(&logs, dir.path(), "a folder you own");
            assert!(logs.contains("belongs to uid 65534"), "{logs}");
            assert_eq!(names(dir.path()), [KEY_FILE], "nothing written");
        }

        #[test]
        fn local_user_cache_folder_that_is_a_symlink_is_refused() {
            let engine = engine();
            let base = private_dir();
            let real = base.path().join("real");
            std::fs::create_dir(&real).unwrap();
            std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
            let link = base.path().join("cache");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            let (outcome, logs) = load_logged(&engine, &link);
            assert_eq!(outcome, CacheOutcome::Unusable);
            assert_refusal(&logs, &link, "the real folder");
            // A trailing slash (which makes the system follow the link) changes nothing.
            let slashed = Path::new(&format!("{}/", link.display())).to_path_buf();
            assert_eq!(load_logged(&engine, &slashed).0, CacheOutcome::Unusable);
            assert!(names(&real).is_empty(), "nothing written through the link");
        }

        #[test]
        fn local_user_cache_key_symlink_is_not_followed() {
            let engine = engine();
            let dir = private_dir();
            let elsewhere = private_dir();
            // A file the host must not touch (e.g. root's), and a 32-byte file whose
            // content a neighbour knows: neither may be overwritten nor used as the key.
            for (target, content) in [
                ("precious", b"root-owned configuration\n".to_vec()),
                ("known", vec![0x41u8; KEY_LEN]),
            ] {
                let target = elsewhere.path().join(target);
                std::fs::write(&target, &content).unwrap();
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
                let key = dir.path().join(KEY_FILE);
                let _ = std::fs::remove_file(&key);
                std::os::unix::fs::symlink(&target, &key).unwrap();
                let (outcome, logs) = load_logged(&engine, dir.path());
                assert_eq!(std::fs::read(&target).unwrap(), content, "target unchanged");
                assert_eq!(outcome, CacheOutcome::Miss, "{logs}");
                assert!(logs.contains("is a symbolic link"), "{logs}");
                let meta = std::fs::symlink_metadata(&key).unwrap();
                assert!(meta.is_file(), "the link was replaced by a real key file");
                assert_eq!(mode(&key), 0o600);
                let new_key = std::fs::read(&key).unwrap();
                assert_eq!(new_key.len(), KEY_LEN);
                assert_ne!(new_key, content, "the known content is not the key");
                // The artifact is MACed under the new key, not under the known one.
                let name = artifact_name(&engine, COMPONENT);
                let data = std::fs::read(dir.path().join(&name)).unwrap();
                let key: [u8; KEY_LEN] = new_key.try_into().unwrap();
                assert!(verify(&key, &data[MAC_LEN..], &data[..MAC_LEN]));
                assert!(!verify(
                    &[0x41; KEY_LEN],
                    &data[MAC_LEN..],
                    &data[..MAC_LEN]
                ));
                std::fs::remove_file(dir.path().join(&name)).unwrap();
            }
        }

        #[test]
        fn local_user_planted_symlink_at_temp_name_is_not_written_through() {
            let engine = engine();
            let dir = private_dir();
            let elsewhere = private_dir();
            let target = elsewhere.path().join("victim");
            std::fs::write(&target, b"do not overwrite").unwrap();
            // The name the host used to write through: `<artifact>.tmp<PID>`.
            let name = artifact_name(&engine, COMPONENT);
            let planted = dir
                .path()
                .join(&name)
                .with_extension(format!("tmp{}", std::process::id()));
            std::os::unix::fs::symlink(&target, &planted).unwrap();
            let (outcome, logs) = load_logged(&engine, dir.path());
            assert_eq!(outcome, CacheOutcome::Miss, "{logs}");
            assert_eq!(std::fs::read(&target).unwrap(), b"do not overwrite");
            assert!(std::fs::symlink_metadata(&planted).unwrap().is_symlink());
            // The artifact and the key are private files; no temporary file is left.
            let artifact = dir.path().join(&name);
            assert!(std::fs::symlink_metadata(&artifact).unwrap().is_file());
            assert_eq!(mode(&artifact), 0o600);
            assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
            let mut expected = vec![
                name.clone(),
                KEY_FILE.to_string(),
                planted.file_name().unwrap().to_string_lossy().into_owned(),
            ];
            expected.sort();
            assert_eq!(names(dir.path()), expected);

            // A symlink planted at the artifact's own name is not followed on reading.
            std::fs::remove_file(&artifact).unwrap();
            std::os::unix::fs::symlink(&target, &artifact).unwrap();
            assert_eq!(load_logged(&engine, dir.path()).0, CacheOutcome::Miss);
            assert_eq!(std::fs::read(&target).unwrap(), b"do not overwrite");
            assert!(std::fs::symlink_metadata(&artifact).unwrap().is_file());
        }

        #[test]
        fn local_user_world_readable_or_writable_key_is_replaced_not_kept() {
            let engine = engine();
            let dir = private_dir();
            let key = dir.path().join(KEY_FILE);
            // A right-sized key others could read or write, and a wrong-sized one (which
            // the host used to rewrite in place, keeping its mode).
            for (content, file_mode) in [
                (vec![9u8; KEY_LEN], 0o666),
                (vec![9u8; KEY_LEN], 0o644),
                (vec![9u8; 5], 0o666),
            ] {
                let _ = std::fs::remove_file(&key);
                std::fs::write(&key, &content).unwrap();
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(file_mode)).unwrap();
                let (outcome, logs) = load_logged(&engine, dir.path());
                assert_eq!(outcome, CacheOutcome::Miss, "{logs}");
                assert_eq!(mode(&key), 0o600, "a {file_mode:o} key is not kept");
                let new_key = std::fs::read(&key).unwrap();
                assert_eq!(new_key.len(), KEY_LEN);
                assert_ne!(new_key, content, "the exposed key is not used");
                assert!(
                    logs.contains("replacing it with a new private key"),
                    "{logs}"
                );
                std::fs::remove_file(dir.path().join(artifact_name(&engine, COMPONENT))).unwrap();
            }
            if is_root() {
                // A key owned by another user is not trusted either.
                std::fs::write(&key, [9u8; KEY_LEN]).unwrap();
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
                std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
                let (outcome, logs) = load_logged(&engine, dir.path());
                assert_eq!(outcome, CacheOutcome::Miss, "{logs}");
                assert!(logs.contains("belongs to uid 65534"), "{logs}");
                assert_eq!(std::fs::metadata(&key).unwrap().uid(), 0);
                assert_ne!(std::fs::read(&key).unwrap(), [9u8; KEY_LEN]);
            } else {
                eprintln!("skipped the foreign-owner key case: chown needs root");
            }
        }

        #[test]
        fn local_user_oversized_artifact_is_not_read() {
            let engine = engine();
            let dir = private_dir();
            assert_eq!(load_logged(&engine, dir.path()).0, CacheOutcome::Miss);
            let artifact = dir.path().join(artifact_name(&engine, COMPONENT));
            // A sparse file just over the limit: refused from its size, never slurped.
            std::fs::File::options()
                .write(true)
                .open(&artifact)
                .unwrap()
                .set_len(MAX_ARTIFACT + 1)
                .unwrap();
            let (outcome, logs) = load_logged(&engine, dir.path());
            assert_eq!(outcome, CacheOutcome::Miss);
            assert!(logs.contains("over the"), "{logs}");
            assert_eq!(load_logged(&engine, dir.path()).0, CacheOutcome::Hit);
        }

        #[test]
        fn operator_unusable_cache_folder_compiles_in_memory_with_a_warning() {
            let engine = engine();
            let base = private_dir();
            // Under a regular file: the folder cannot be created (even by root).
            let file = base.path().join("file");
            std::fs::write(&file, b"").unwrap();
            let under_file = file.join("cache");
            let (outcome, logs) = load_logged(&engine, &under_file);
            assert_eq!(outcome, CacheOutcome::Unusable);
            assert_refusal(&logs, &under_file, "--cache-dir");
            // The folder is a regular file.
            let (outcome, logs) = load_logged(&engine, &file);
            assert_eq!(outcome, CacheOutcome::Unusable);
            assert_refusal(&logs, &file, "not a folder");
            // A private folder no file can be created in (procfs refuses even root).
            let proc_fd = Path::new("/proc/self/fd");
            if proc_fd.is_dir() {
                let (outcome, logs) = load_logged(&engine, proc_fd);
                assert_eq!(outcome, CacheOutcome::Unusable, "{logs}");
                assert_refusal(&logs, proc_fd, "make the folder writable");
            }
        }
    }

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
        assert!(!verify(&key, b"artifact", &tag[..31]), "a short tag");
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
