//! Which file a path names, told by device and inode rather than by its spelling, and the
//! rule that an events file is never another file the host depends on.
//!
//! The JSONL sink appends to its file and, after a crash, cuts a torn last line off it. Pointed
//! at a checkpoint database, a secret, a tenant file or another tenant's events file, that
//! would corrupt or erase it. Comparing paths as text does not find those: `../`, `./`, a
//! symlink or a hard link spell one file many ways. So files are compared by identity:
//!
//! - a file that exists is its device and inode (`stat`, following symlinks, as `open` does);
//! - a file that does not exist yet (it is created at the first run) is the device and inode of
//!   the nearest folder on its path that exists, plus the rest of the path, `..` and `.` taken
//!   out as `create_dir_all` and `open` will walk them. Symlinks on the way are followed
//!   first, dangling ones too: a dangling symlink names the file its target will become.
//!   Two spellings of one future file therefore get the same identity, and a future file
//!   never equals an existing one (were it the same file, it would exist).
//!
//! A path whose identity cannot be told (a folder on the way that cannot be searched, a
//! symlink loop) is refused when it is an events file; a protected file whose identity cannot
//! be told is left out (its own reader reports the problem when it reads it).
//!
//! What is checked is what the path names when the host starts: someone who can rename files
//! in those folders while the host runs can still swap them. Those folders are the operator's.
//! Case-insensitive file systems: two spellings that differ only in case are one file there
//! but not here for files that do not exist yet (existing ones are compared by inode).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::config::{SecretSpec, SinkSpec};
use crate::TenantConfig;

/// The most symlinks followed while resolving one path (Linux's own limit is 40).
const MAX_SYMLINKS: u32 = 40;

/// What a path names: see the module comment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileId {
    /// A file that exists.
    Existing {
        /// Device.
        dev: u64,
        /// Inode.
        ino: u64,
    },
    /// A file still to be created: the nearest existing folder on its path, and the rest.
    Planned {
        /// Device of that folder.
        dev: u64,
        /// Inode of that folder.
        ino: u64,
        /// The path below it, only plain names.
        rest: PathBuf,
    },
}

fn id_of(path: &Path, meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        let _ = path;
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        // No inode numbers here: the canonical path is the next best thing (it misses hard
        // links). The host is built for Unix; this keeps the library compiling elsewhere.
        use std::hash::{Hash, Hasher};
        let _ = meta;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .hash(&mut h);
        (0, h.finish())
    }
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// Follows one symlink at `path`, if there is one: its target, resolved against the link's
/// folder. `None` when `path` is not a symlink (or does not exist).
fn follow(path: &Path, hops: &mut u32) -> std::io::Result<Option<PathBuf>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            *hops += 1;
            if *hops > MAX_SYMLINKS {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_SYMLINKS} symlinks (a loop?)"
                )));
            }
            let target = std::fs::read_link(path)?;
            Ok(Some(if target.is_absolute() {
                target
            } else {
                path.parent().unwrap_or(Path::new("")).join(target)
            }))
        }
        Ok(_) => Ok(None),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn dot_if_empty(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}

/// The identity of the file `path` names (see the module comment).
pub fn file_id(path: &Path) -> std::io::Result<FileId> {
    let mut hops = 0;
    let mut path = path.to_path_buf();
    loop {
        match std::fs::metadata(dot_if_empty(&path)) {
            Ok(meta) => {
                let (dev, ino) = id_of(&path, &meta);
                return Ok(FileId::Existing { dev, ino });
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        match follow(&path, &mut hops)? {
            Some(target) => path = target,
            None => break,
        }
    }
    // Nothing there yet: the folder it will be created in, and its name.
    let name = match path.components().next_back() {
        Some(Component::Normal(name)) => name.to_os_string(),
        _ => {
            return Err(std::io::Error::other(
                "the path does not end in a file name",
            ));
        }
    };
    let parent = path.parent().unwrap_or(Path::new(""));
    let (dev, ino, mut rest) = folder(parent, &mut hops)?;
    rest.push(name);
    Ok(FileId::Planned {
        dev,
        ino,
        rest: rest.into_iter().collect(),
    })
}

/// The nearest existing folder of `dir` (following symlinks) and the names below it.
fn folder(dir: &Path, hops: &mut u32) -> std::io::Result<(u64, u64, Vec<OsString>)> {
    let mut dir = dir.to_path_buf();
    loop {
        match std::fs::metadata(dot_if_empty(&dir)) {
            Ok(meta) if meta.is_dir() => {
                let (dev, ino) = id_of(&dir, &meta);
                return Ok((dev, ino, Vec::new()));
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a folder",
                    dir.display()
                )))
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        match follow(&dir, hops)? {
            Some(target) => dir = target,
            None => break,
        }
    }
    let parent = dir.parent().unwrap_or(Path::new("")).to_path_buf();
    match dir.components().next_back() {
        Some(Component::Normal(name)) => {
            let (dev, ino, mut rest) = folder(&parent, hops)?;
            rest.push(name.to_os_string());
            Ok((dev, ino, rest))
        }
        Some(Component::CurDir) => folder(&parent, hops),
        // `missing/..`: `missing` is created, then left again.
        Some(Component::ParentDir) => {
            let (dev, ino, mut rest) = folder(&parent, hops)?;
            if rest.pop().is_none() {
                // `existing/..` exists, so it was found above; this is unreachable in practice.
                return Err(std::io::Error::other(format!(
                    "cannot tell which folder {} is",
                    dir.display()
                )));
            }
            Ok((dev, ino, rest))
        }
        _ => Err(std::io::Error::other(format!(
            "cannot tell which folder {} is",
            dir.display()
        ))),
    }
}

/// Files the host reads or owns, by identity, each with a description for messages ("the
/// checkpoint database of tenant 'a' (/var/lib/ch/state.sqlite)").
#[derive(Debug, Default)]
pub struct Protected {
    files: BTreeMap<FileId, String>,
}

/// SQLite keeps a database's rollback journal and WAL files next to it, named after it.
const SQLITE_SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

impl Protected {
    /// No file yet.
    pub fn new() -> Protected {
        Protected::default()
    }

    /// Adds `path`, described as `what` ("the tenant file"); the path is appended to the
    /// description. A path whose identity cannot be told is left out (see the module comment).
    pub fn add(&mut self, path: &Path, what: &str) {
        if path.as_os_str().is_empty() {
            return;
        }
        if let Ok(id) = file_id(path) {
            self.files
                .entry(id)
                .or_insert_with(|| format!("{what} ({})", path.display()));
        }
    }

    /// Adds a SQLite database and its side files (`-wal`, `-shm`, `-journal`), both next to
    /// the path as written and next to the file it resolves to (SQLite resolves symlinks).
    pub fn add_sqlite(&mut self, path: &Path, what: &str) {
        if path.as_os_str().is_empty() {
            return;
        }
        self.add(path, what);
        let mut bases = vec![path.to_path_buf()];
        if let Ok(real) = std::fs::canonicalize(path) {
            bases.push(real);
        }
        for base in bases {
            for suffix in SQLITE_SIDE_FILES {
                let mut side = base.clone().into_os_string();
                side.push(suffix);
                self.add(Path::new(&side), &format!("the {suffix} file of {what}"));
            }
        }
    }

    /// Adds a secret's file, if it comes from one.
    pub fn add_secret(&mut self, spec: &SecretSpec, what: &str) {
        if let Some(file) = &spec.file {
            self.add(file, what);
        }
    }

    /// Adds every file of a tenant but its events file: its SQLite checkpoint database (and
    /// side files), its secret files (the connector's, the push sink's credential, the
    /// PostgreSQL password) and its component.
    pub fn add_tenant(&mut self, cfg: &TenantConfig) {
        let key = &cfg.key;
        self.add_sqlite(
            &cfg.checkpoint_db,
            &format!("the checkpoint database of tenant '{key}'"),
        );
        for (name, spec) in &cfg.secrets {
            self.add_secret(
                spec,
                &format!("the secret file of [secrets.{name}] of tenant '{key}'"),
            );
            if let Some(certificate) = &spec.certificate {
                self.add(
                    certificate,
                    &format!("the certificate file of [secrets.{name}] of tenant '{key}'"),
                );
            }
        }
        match &cfg.sink {
            SinkSpec::Sekoia(s) => self.add_secret(
                &s.api_key,
                &format!("the [sink] api_key file of tenant '{key}'"),
            ),
            SinkSpec::Http(s) => self.add_secret(
                &s.value,
                &format!("the [sink] value file of tenant '{key}'"),
            ),
            SinkSpec::Jsonl { .. } | SinkSpec::Stdout => {}
        }
        if let Some(password) = cfg.postgres.as_ref().and_then(|pg| pg.password.as_ref()) {
            self.add_secret(
                password,
                &format!("the [state] password file of tenant '{key}'"),
            );
        }
        if let crate::config::ConnectorChoice::File(component) = &cfg.component {
            self.add(component, &format!("the component file of tenant '{key}'"));
        }
    }

    /// Checks that `events`, an events file, is none of these files. Returns its identity
    /// (to compare with other tenants' events files); `Err` is one line naming the file, the
    /// one it is, and what to do.
    pub fn check_events(&self, events: &Path) -> Result<FileId, String> {
        let id = file_id(events).map_err(|e| {
            format!(
                "[sink] path {}: cannot tell which file it is: {e}; check the path and its folders' permissions",
                events.display()
            )
        })?;
        if let Some(what) = self.files.get(&id) {
            return Err(format!(
                "[sink] path {} is {what}: events written there would destroy it; give the events a file of their own",
                events.display()
            ));
        }
        Ok(id)
    }
}

/// The one check a single tenant needs (`connector-host run` and `check`, and every
/// [`crate::TenantRun`] built from a tenant file): its events file, if it has one, is none of
/// its other files nor any file in `also` (path, description: the tenant file itself).
pub fn check_tenant_events(cfg: &TenantConfig, also: &[(&Path, &str)]) -> Result<(), String> {
    let SinkSpec::Jsonl { path } = &cfg.sink else {
        return Ok(());
    };
    let mut protected = Protected::new();
    protected.add_tenant(cfg);
    for (file, what) in also {
        protected.add(file, what);
    }
    protected.check_events(path).map(|_| ())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_file_have_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("events.jsonl"), "").unwrap();
        let id = file_id(&d.join("events.jsonl")).unwrap();
        assert!(matches!(id, FileId::Existing { .. }));
        std::os::unix::fs::symlink(d.join("events.jsonl"), d.join("link")).unwrap();
        std::fs::hard_link(d.join("events.jsonl"), d.join("hard")).unwrap();
        for spelling in ["sub/../events.jsonl", "./events.jsonl", "link", "hard"] {
            assert_eq!(file_id(&d.join(spelling)).unwrap(), id, "{spelling}");
        }
        assert_ne!(file_id(&d.join("sub")).unwrap(), id);
    }

    #[test]
    fn spellings_of_one_future_file_have_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("sublink")).unwrap();
        let id = file_id(&d.join("sub/new/e.jsonl")).unwrap();
        assert!(matches!(id, FileId::Planned { .. }), "{id:?}");
        for spelling in [
            "sublink/new/e.jsonl",
            "sub/./new/e.jsonl",
            "sub/x/../new/e.jsonl",
            "sub/../sub/new/e.jsonl",
        ] {
            assert_eq!(file_id(&d.join(spelling)).unwrap(), id, "{spelling}");
        }
        // A dangling symlink names the file its target will become.
        std::os::unix::fs::symlink(d.join("sub/new/e.jsonl"), d.join("dangling")).unwrap();
        assert_eq!(file_id(&d.join("dangling")).unwrap(), id);
        assert_ne!(file_id(&d.join("sub/new/f.jsonl")).unwrap(), id);
        // Created, it exists: a new identity, the same for every spelling.
        std::fs::create_dir(d.join("sub/new")).unwrap();
        std::fs::write(d.join("sub/new/e.jsonl"), "").unwrap();
        assert_eq!(
            file_id(&d.join("dangling")).unwrap(),
            file_id(&d.join("sublink/new/e.jsonl")).unwrap()
        );
        // A loop is an error, not a hang.
        std::os::unix::fs::symlink(d.join("loop"), d.join("loop")).unwrap();
        assert!(file_id(&d.join("loop")).is_err());
    }

    #[test]
    fn operator_an_events_file_that_is_a_checkpoint_side_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut p = Protected::new();
        p.add_sqlite(
            &d.join("state.sqlite"),
            "the checkpoint database of tenant 'a'",
        );
        let e = p.check_events(&d.join("./state.sqlite-wal")).unwrap_err();
        assert!(
            e.starts_with("[sink] path ")
                && e.contains("is the -wal file of the checkpoint database of tenant 'a' (")
                && e.ends_with("give the events a file of their own"),
            "{e}"
        );
        assert!(p.check_events(&d.join("events.jsonl")).is_ok());
    }

    #[test]
    fn operator_an_events_file_that_is_a_secrets_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("entra.crt"), "-----BEGIN CERTIFICATE-----").unwrap();
        let text = format!(
            "[tenant]\nkey = \"c\"\n[secrets.client_certificate]\nkind = \"private_key\"\nfile = \"entra.key\"\ncertificate = \"entra.crt\"\nclient_id = \"abc\"\n[state]\ncheckpoint_db = \"s.sqlite\"\n[sink]\nkind = \"jsonl\"\npath = \"{}\"\n",
            d.join("entra.crt").display()
        );
        let cfg = TenantConfig::parse(&text, d).unwrap();
        let e = check_tenant_events(&cfg, &[]).unwrap_err();
        assert!(
            e.contains("is the certificate file of [secrets.client_certificate] of tenant 'c' ("),
            "{e}"
        );
    }
}
