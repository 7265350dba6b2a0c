//! Reading and opening the files an operator names (tenant and tenants files, secret files,
//! the component, the events file, the database's `sslrootcert` CA file) without trusting
//! what the path points at. Every file the host reads goes through here, except the
//! compiled-component cache, which has its own reader with the same rules and more
//! (`O_NOFOLLOW`, ownership: [`crate::runtime`]'s cache module).
//!
//! A path can name a FIFO (opening it waits for a writer, reading it waits for data: forever),
//! a character device such as `/dev/zero` (endless: the process grows until it dies) or a
//! directory. Every open here therefore:
//!
//! - looks at what the path names first (following symlinks: a Kubernetes secret mount is
//!   a chain of symlinks, and that is normal) and refuses anything but a regular file before
//!   opening it, since opening a device can itself have effects;
//! - opens with `O_NONBLOCK`, so a FIFO put there after that look cannot block the open, and
//!   checks the opened handle again (`fstat`); on a regular file `O_NONBLOCK` changes nothing;
//! - reads at most the cap plus one byte, and refuses a file over the cap.
//!
//! Errors are one line naming the file, what is wrong with it and what to do.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

pub mod identity;

/// The largest secret file read: 64 KiB (a client secret is about 40 bytes, a PEM key a few KiB).
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;
/// The largest tenant or tenants file read: 4 MiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// The largest component file read: 64 MiB (the embedded connector is well under 1 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest host name file read (`/proc/sys/kernel/hostname`; a host name is at most
/// 64 bytes on Linux).
pub const MAX_HOSTNAME_BYTES: u64 = 4096;

/// Why a file named by the operator could not be used.
#[derive(Debug)]
pub struct FileError {
    /// The path as given.
    pub path: PathBuf,
    /// What the file is for, e.g. "secret file".
    pub what: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a file.
#[derive(Debug)]
pub enum Problem {
    /// It could not be opened or read.
    Io(std::io::Error),
    /// It is not a regular file; the text says what it is (e.g. "a FIFO (named pipe)").
    NotRegular(&'static str),
    /// It holds more than the cap (in bytes).
    TooLarge(u64),
    /// It is not UTF-8 text.
    NotUtf8,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, path) = (&self.what, self.path.display());
        match &self.problem {
            Problem::Io(e) => write!(
                f,
                "cannot read {what} {path}: {e}; check the path and its permissions"
            ),
            Problem::NotRegular(kind) => write!(
                f,
                "{what} {path} is {kind}, not a regular file; point it at a regular file"
            ),
            Problem::TooLarge(max) => write!(
                f,
                "{what} {path} is larger than {}, the most accepted for a {what}; check that it is the right file",
                size(*max)
            ),
            Problem::NotUtf8 => write!(f, "{what} {path} is not UTF-8 text; save it as UTF-8"),
        }
    }
}

impl std::error::Error for FileError {}

fn size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a path names, said for a person, when it is not a regular file.
fn kind_of(meta: &std::fs::Metadata) -> Option<&'static str> {
    let ft = meta.file_type();
    if ft.is_file() {
        return None;
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    Some("a special file")
}

/// Opens `path` with `options` if it is a regular file (after following symlinks), without
/// ever blocking in the open: see the module comment. A path that does not exist is left to
/// `options` (an error, or created if they say so).
pub fn open_regular(path: &Path, options: &OpenOptions, what: &str) -> Result<File, FileError> {
    let error = |problem| FileError {
        path: path.to_path_buf(),
        what: what.to_string(),
        problem,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            if let Some(kind) = kind_of(&meta) {
                return Err(error(Problem::NotRegular(kind)));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(Problem::Io(e))),
    }
    let mut options = options.clone();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| error(Problem::Io(e)))?;
    let meta = file.metadata().map_err(|e| error(Problem::Io(e)))?;
    if let Some(kind) = kind_of(&meta) {
        return Err(error(Problem::NotRegular(kind)));
    }
    Ok(file)
}

/// Reads a regular file of at most `max_bytes` bytes; `what` names its use in errors
/// ("secret file", "component", …).
pub fn read_regular_file(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>, FileError> {
    let error = |problem| FileError {
        path: path.to_path_buf(),
        what: what.to_string(),
        problem,
    };
    let file = open_regular(path, OpenOptions::new().read(true), what)?;
    let len = file.metadata().map_err(|e| error(Problem::Io(e)))?.len();
    if len > max_bytes {
        return Err(error(Problem::TooLarge(max_bytes)));
    }
    // The length can change while reading: read one byte past the cap, never more.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| error(Problem::Io(e)))?;
    if bytes.len() as u64 > max_bytes {
        return Err(error(Problem::TooLarge(max_bytes)));
    }
    Ok(bytes)
}

/// [`read_regular_file`] for UTF-8 text.
pub fn read_text_file(path: &Path, max_bytes: u64, what: &str) -> Result<String, FileError> {
    let bytes = read_regular_file(path, max_bytes, what)?;
    String::from_utf8(bytes).map_err(|_| FileError {
        path: path.to_path_buf(),
        what: what.to_string(),
        problem: Problem::NotUtf8,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }

    #[test]
    fn a_regular_file_and_a_symlink_to_one_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, "value\n").unwrap();
        assert_eq!(read_text_file(&p, 64, "secret file").unwrap(), "value\n");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(
            read_regular_file(&link, 6, "secret file").unwrap(),
            b"value\n"
        );
    }

    #[test]
    fn operator_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_text_file(dir.path(), 64, "config file")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "config file {} is a directory, not a regular file; point it at a regular file",
                dir.path().display()
            )
        );
    }

    #[test]
    fn operator_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        mkfifo(&p);
        // No writer ever comes: a blocking open or read would never return. Read on another
        // thread so that a hang fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = p.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_text_file(&path, 64, "secret file"));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("reading a FIFO returns")
            .unwrap_err();
        assert!(matches!(e.problem, Problem::NotRegular(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        // Opened for appending (the events file), too.
        let e = open_regular(
            &p,
            OpenOptions::new().read(true).append(true).create(true),
            "events file",
        )
        .unwrap_err();
        assert!(e.to_string().contains("events file"), "{e}");
        assert!(e.to_string().contains("a FIFO"), "{e}");
    }

    #[test]
    fn operator_dev_zero_is_refused_as_a_character_device() {
        let e = read_regular_file(Path::new("/dev/zero"), MAX_COMPONENT_BYTES, "component")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "component /dev/zero is a character device, not a regular file; point it at a regular file"
        );
        let e = open_regular(
            Path::new("/dev/null"),
            OpenOptions::new().append(true),
            "events file",
        )
        .unwrap_err();
        assert!(matches!(
            e.problem,
            Problem::NotRegular("a character device")
        ));
    }

    #[test]
    fn operator_a_file_over_the_cap_is_refused_naming_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, vec![b'a'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        let e = read_text_file(&p, MAX_SECRET_BYTES, "secret file")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is larger than 64 KiB, the most accepted for a secret file"),
            "{e}"
        );
        std::fs::write(&p, vec![b'a'; MAX_SECRET_BYTES as usize]).unwrap();
        assert_eq!(
            read_text_file(&p, MAX_SECRET_BYTES, "secret file")
                .unwrap()
                .len(),
            MAX_SECRET_BYTES as usize,
            "exactly the cap is accepted"
        );
        assert_eq!(size(MAX_CONFIG_BYTES), "4 MiB");
        assert_eq!(size(1000), "1000 bytes");
    }

    #[test]
    fn operator_missing_and_non_utf8_files_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.toml");
        let e = read_text_file(&absent, 64, "config file")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("cannot read config file {}: ", absent.display())),
            "{e}"
        );
        let p = dir.path().join("latin1.toml");
        std::fs::write(&p, b"key = \"caf\xe9\"").unwrap();
        let e = read_text_file(&p, 64, "config file")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("is not UTF-8 text; save it as UTF-8"), "{e}");
    }
}
