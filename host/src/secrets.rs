//! Host-side secrets: where a value comes from, and the one way the host loads it.
//!
//! A tenant file never holds a secret's value, only where to find it: `env = "VAR"` (an
//! environment variable of the host process) or `file = "path"` (a file, e.g. a Kubernetes
//! secret mount). Every secret the host loads goes through [`load`], whoever uses it: the
//! connector's `[secrets]` (filled into its token request by [`crate::doors::http::secrets`]),
//! a push sink's credential (`[sink] api_key` or `value`) and the PostgreSQL password
//! (`[state] password`, `[fleet] password`). The rules:
//!
//! - exactly one of `env` and `file`: both set would leave the reader guessing which one the
//!   host took, neither is no secret at all; either is refused, naming the key;
//! - an environment variable must be set and hold UTF-8 text; its value is taken as it is;
//! - a file is read like every file the host reads ([`crate::files`]): a regular file (a
//!   FIFO, a device, a directory is refused before it can hang the host), at most
//!   [`crate::files::MAX_SECRET_BYTES`], UTF-8; trailing `\r` and `\n` are cut (an editor's
//!   final newline is not part of the secret);
//! - the value must not be empty;
//! - a file readable or writable by its group or by others, or owned by another user (not
//!   this process's user, not root), is still read, with one warning naming the file and the
//!   fix ([`warn_if_exposed`]): a secret another account can read is no longer only the
//!   host's. Key files ([`crate::credentials`]) are held to the same rule.
//!
//! What a value must be beyond that belongs to its user: the connector's secrets and a sink's
//! credential must be strong enough to be redacted from everything the run hands out
//! ([`crate::doors::http::secrets::weakness`]); the database password never reaches the
//! connector and is not held to it.

use std::path::{Path, PathBuf};

/// Where a secret's value comes from: exactly one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the host process.
    Env(String),
    /// A file.
    File(PathBuf),
}

/// Why a secret could not be loaded (without the key: [`LoadError::keyed`] adds it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Both `env` and `file`, or neither.
    #[error("needs exactly one of env = \"VAR\" or file = \"path\"")]
    Source,
    /// The value could not be read, or is empty: why, and what to do.
    #[error("{0}")]
    Value(String),
}

impl LoadError {
    /// The error as one line naming `key` (`[sink] api_key`, `[state] password`, …).
    pub fn keyed(&self, key: &str) -> String {
        match self {
            LoadError::Source => format!("{key} {self}"),
            LoadError::Value(why) => format!("{key}: {why}"),
        }
    }
}

impl SecretSource {
    /// The source an `env` / `file` pair names: exactly one of them.
    pub fn from_parts(env: Option<&str>, file: Option<&Path>) -> Result<SecretSource, LoadError> {
        match (env, file) {
            (Some(var), None) => Ok(SecretSource::Env(var.to_string())),
            (None, Some(path)) => Ok(SecretSource::File(path.to_path_buf())),
            _ => Err(LoadError::Source),
        }
    }

    /// Reads the value by this module's rules (see the module doc).
    pub fn read(&self) -> Result<String, LoadError> {
        let value = match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    return Err(LoadError::Value(format!(
                        "environment variable {var} is not set; export it or use file = \"…\""
                    )))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(LoadError::Value(format!(
                        "environment variable {var} is not UTF-8 text; set it to the secret's text or use file = \"…\""
                    )))
                }
            },
            SecretSource::File(path) => {
                let text = crate::files::read_text_file(
                    path,
                    crate::files::MAX_SECRET_BYTES,
                    "secret file",
                )
                .map_err(|e| LoadError::Value(e.to_string()))?
                .trim_end_matches(['\r', '\n'])
                .to_string();
                warn_if_exposed(path, "secret file");
                text
            }
        };
        if value.is_empty() {
            return Err(LoadError::Value(
                "the value is empty; set the secret's value".into(),
            ));
        }
        Ok(value)
    }
}

/// Loads the secret an `env` / `file` pair names, by this module's rules.
pub fn load(env: Option<&str>, file: Option<&Path>) -> Result<String, LoadError> {
    SecretSource::from_parts(env, file)?.read()
}

/// Why a secret file with permission bits `mode`, owned by `owner`, is exposed to other
/// accounts of a host whose process runs as `euid`: one line naming the file and the fix,
/// or `None` when only this user (or root) can read it.
pub fn exposure(path: &Path, what: &str, mode: u32, owner: u32, euid: u32) -> Option<String> {
    let shown = path.display();
    if owner != euid && owner != 0 {
        return Some(format!(
            "{what} {shown} is owned by another user (uid {owner}, the host runs as uid {euid}): that account can change or read the secret; chown {euid} {shown} && chmod 600 {shown}"
        ));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "{what} {shown} can be read by other accounts (mode {:03o}); chmod 600 {shown}",
            mode & 0o777
        ));
    }
    None
}

/// Logs one warning when the secret file at `path` can be read by other accounts or is
/// another user's ([`exposure`]), once a day per file and finding in this process (files are
/// read at every run: a `serve` would repeat it every few minutes). The file is used all the
/// same: refusing it would stop runs that work today (a Kubernetes secret mounted without
/// `defaultMode: 0400`).
pub fn warn_if_exposed(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let euid = rustix::process::geteuid().as_raw();
        if let Some(line) = exposure(path, what, meta.mode(), meta.uid(), euid) {
            if crate::expiry::first_today(&format!("exposed\0{line}"), std::time::SystemTime::now())
            {
                tracing::warn!(target: "secrets", "{line}");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn both_env_and_file_are_refused_naming_the_key() {
        let (_dir, path) = temp_file("s", b"value-from-file\n");
        let e = load(Some("PATH"), Some(&path)).unwrap_err();
        assert_eq!(e, LoadError::Source);
        assert_eq!(
            e.keyed("[sink] api_key"),
            "[sink] api_key needs exactly one of env = \"VAR\" or file = \"path\""
        );
    }

    #[test]
    fn neither_env_nor_file_is_refused_naming_the_key() {
        let e = load(None, None).unwrap_err();
        assert_eq!(
            e.keyed("[state] password"),
            "[state] password needs exactly one of env = \"VAR\" or file = \"path\""
        );
    }

    #[test]
    fn an_unset_environment_variable_is_named() {
        let e = load(Some("CONNECTOR_HOST_TEST_SECRETS_UNSET_VAR"), None).unwrap_err();
        assert_eq!(
            e.keyed("[secrets.client_secret]"),
            "[secrets.client_secret]: environment variable CONNECTOR_HOST_TEST_SECRETS_UNSET_VAR is not set; export it or use file = \"…\""
        );
    }

    #[test]
    fn an_environment_value_is_taken_as_it_is() {
        // `PATH` is set in every test environment; its value is not trimmed or changed.
        let expected = std::env::var("PATH").unwrap();
        assert_eq!(load(Some("PATH"), None).unwrap(), expected);
    }

    #[test]
    fn a_file_loses_its_trailing_newlines_only() {
        let (_dir, path) = temp_file("s", b"  the secret \r\n\n");
        assert_eq!(load(None, Some(&path)).unwrap(), "  the secret ");
        let (_dir, path) = temp_file("t", b"no newline");
        assert_eq!(load(None, Some(&path)).unwrap(), "no newline");
    }

    #[test]
    fn an_empty_value_is_refused() {
        let (_dir, path) = temp_file("s", b"\n");
        let e = load(None, Some(&path)).unwrap_err();
        assert_eq!(
            e.keyed("[state] password"),
            "[state] password: the value is empty; set the secret's value"
        );
    }

    #[test]
    fn operator_an_exposed_secret_file_is_named_with_the_fix() {
        let p = Path::new("/etc/connector-host/secret");
        assert_eq!(exposure(p, "secret file", 0o100600, 1000, 1000), None);
        assert_eq!(
            exposure(p, "secret file", 0o100400, 0, 1000),
            None,
            "root's is fine"
        );
        let line = exposure(p, "secret file", 0o100644, 1000, 1000).unwrap();
        assert_eq!(
            line,
            "secret file /etc/connector-host/secret can be read by other accounts (mode 644); chmod 600 /etc/connector-host/secret"
        );
        let line = exposure(p, "key file", 0o100600, 1234, 1000).unwrap();
        assert!(
            line.starts_with(
                "key file /etc/connector-host/secret is owned by another user (uid 1234"
            ) && line.contains("chown 1000 /etc/connector-host/secret")
                && !line.contains('\n'),
            "{line}"
        );
    }

    #[test]
    fn a_file_is_read_by_the_files_rules() {
        let dir = tempfile::tempdir().unwrap();
        // Not a regular file.
        let e = load(None, Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        // Over the cap.
        let (_big, path) = temp_file(
            "big",
            &vec![b'x'; crate::files::MAX_SECRET_BYTES as usize + 1],
        );
        let e = load(None, Some(&path)).unwrap_err().to_string();
        assert!(e.contains("is larger than 64 KiB"), "{e}");
        // Not UTF-8.
        let (_bin, path) = temp_file("bin", &[0xff, 0xfe, 0x00]);
        let e = load(None, Some(&path)).unwrap_err().to_string();
        assert!(e.contains("is not UTF-8 text"), "{e}");
        // Missing.
        let e = load(None, Some(&dir.path().join("absent")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read secret file") && !e.contains('\n'),
            "{e}"
        );
    }
}
