//! Events appended to a JSON-lines file; `flush_durable` flushes and fsyncs it. A torn last
//! line (a process killed mid-write) is cut when the file is opened — and nothing else is
//! ever cut: an existing file that is not JSON lines (a checkpoint database, a secret, any
//! other file an events path was pointed at by mistake) or whose tail is not the start of
//! an event is refused and left unchanged, with one line saying what to do. Which files an
//! events path may not name at all (the tenant's own database and secrets, other tenants'
//! files) is [`crate::files::identity`]'s business, checked before the sink is opened.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::sink::{blocking, EventSink, SinkError};

/// Appends JSON lines to a file; `flush_durable` flushes and fsyncs it.
pub struct JsonlFileSink {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
    written: AtomicU64,
}

impl JsonlFileSink {
    /// Opens `path` for appending (creating it and its folder).
    ///
    /// The path must be (or become) a regular file: a FIFO, a device or a directory is
    /// refused, without blocking (see [`crate::files`]). `/dev/null` is refused too: the
    /// checkpoint moves only after the events are durable, and events written to
    /// `/dev/null` are gone while the cursor moves past them. To throw events away, use
    /// `kind = "stdout"` and redirect it.
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SinkError(format!("cannot create {}: {e}", dir.display())))?;
        }
        // One handle for the repair and the appends: read to find a torn tail, append to write.
        let mut file = crate::files::open_regular(
            path,
            OpenOptions::new().read(true).append(true).create(true),
            "events file",
        )
        .map_err(|e| SinkError(e.to_string()))?;
        repair_torn_tail(&mut file).map_err(|r| r.message(path))?;
        Ok(JsonlFileSink {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                file: Mutex::new(BufWriter::with_capacity(1 << 20, file)),
                written: AtomicU64::new(0),
            }),
        })
    }
}

impl Inner {
    fn fail(&self, e: std::io::Error) -> SinkError {
        SinkError(format!("writing {}: {e}", self.path.display()))
    }
}

/// The longest line an events file holds: the largest event the host accepts
/// ([`crate::RuntimeLimits`]'s default `max_event_bytes`, 1 MiB) and its newline. A torn tail
/// longer than an event is not a torn write, and is not cut.
pub const MAX_LINE_BYTES: u64 = 1024 * 1024 + 1;

/// How much of the start and of the end of the file is read first (most events are a few
/// KiB).
const TAIL_PROBE_BYTES: u64 = 64 * 1024;
/// The most of the end of the file read: a torn tail, the last whole line and the newline
/// before it.
const TAIL_WINDOW_BYTES: u64 = 2 * MAX_LINE_BYTES + 1;

/// What opening an existing events file found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Empty, or whole lines of JSON objects.
    Whole,
    /// JSON lines and, after the last newline, the start of an event that a process killed
    /// mid-write left: everything from `keep` on is to be cut.
    Torn { keep: u64 },
}

/// Why an existing file is not an events file this host can append to.
#[derive(Debug)]
enum Refusal {
    /// Not JSON lines: the reason, e.g. "its first line is not a JSON object".
    NotEvents(&'static str),
    /// A SQLite database (the usual victim: a checkpoint database).
    Sqlite,
    /// After the last newline: something no torn write of this host leaves.
    BadTail { bytes: u64, why: &'static str },
    /// Reading it failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Io(e)
    }
}

impl Refusal {
    fn message(self, path: &Path) -> SinkError {
        let p = path.display();
        SinkError(match self {
            Refusal::Sqlite => format!(
                "events file {p} is a SQLite database, not a JSON-lines events file; it was left unchanged: point the sink at a file of its own"
            ),
            Refusal::NotEvents(why) => format!(
                "events file {p} is not a JSON-lines events file ({why}); it was left unchanged: point the sink at a new file or at an events file this host wrote"
            ),
            Refusal::BadTail { bytes, why } => format!(
                "events file {p} ends in {bytes} bytes without a newline that are not the start of an event ({why}); it was left unchanged: look at the end of the file, cut the damaged part by hand or move the file away, then run again"
            ),
            Refusal::Io(e) => format!(
                "cannot use events file {p}: {e}; check the file and its permissions"
            ),
        })
    }
}

fn read_range(f: &mut File, start: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// Whether `line` (no newline) is one JSON object, as the host writes events.
fn is_json_object(line: &[u8]) -> bool {
    line.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// Whether `tail` (the bytes after the last newline) can be the start of an event line cut
/// by a kill: blanks, then `{`, then text (UTF-8, its last character perhaps cut), no NUL,
/// no carriage return (events hold neither raw).
fn torn_tail_problem(tail: &[u8]) -> Option<&'static str> {
    if tail.len() as u64 >= MAX_LINE_BYTES {
        return Some("longer than the largest event, 1 MiB");
    }
    if tail.contains(&0) {
        return Some("it holds a NUL byte");
    }
    if tail.contains(&b'\r') {
        return Some("it holds a carriage return");
    }
    match tail.iter().find(|b| !matches!(b, b' ' | b'\t')) {
        None | Some(b'{') => {}
        Some(_) => return Some("it does not start with '{'"),
    }
    match std::str::from_utf8(tail) {
        Ok(_) => None,
        // Cut inside the last character: that is what a torn write does.
        Err(e) if e.error_len().is_none() => None,
        Err(_) => Some("it is not UTF-8 text"),
    }
}

/// Looks at an existing events file without changing it: is it JSON lines this host could
/// have written (its first and last whole lines JSON objects, no NUL byte in what is read, not
/// a SQLite database), and does it end in a torn line? Only the first line and the last
/// lines (2 MiB at most, usually 64 KiB) are read, whatever the file's size: a file this host
/// wrote holds nothing but event lines, so a wrong file shows at its start or its end.
fn examine(f: &mut File) -> Result<Found, Refusal> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(Found::Whole);
    }
    // The first line: most of the time in a small read, at most one line's worth.
    let mut head = read_range(f, 0, len.min(TAIL_PROBE_BYTES))?;
    if !head.contains(&b'\n') && len > TAIL_PROBE_BYTES {
        head = read_range(f, 0, len.min(MAX_LINE_BYTES))?;
    }
    if head.starts_with(b"SQLite format 3\0") {
        return Err(Refusal::Sqlite);
    }
    if head.contains(&0) {
        return Err(Refusal::NotEvents("it holds a NUL byte"));
    }
    let Some(first_end) = head.iter().position(|b| *b == b'\n') else {
        if len > MAX_LINE_BYTES {
            return Err(Refusal::NotEvents(
                "its first line is longer than the largest event, 1 MiB",
            ));
        }
        // One line, no newline: a first event cut by a kill, or something else entirely.
        return match torn_tail_problem(&head) {
            None => Ok(Found::Torn { keep: 0 }),
            Some(why) => Err(Refusal::BadTail { bytes: len, why }),
        };
    };
    if !is_json_object(&head[..first_end]) {
        return Err(Refusal::NotEvents("its first line is not a JSON object"));
    }
    // The end: the torn tail (after the last newline) and the last whole line before it.
    // Both fit in two lines' worth of bytes; most of the time in the first, small read.
    let mut window = len.min(TAIL_PROBE_BYTES);
    loop {
        let start = len - window;
        let tail = read_range(f, start, window)?;
        if tail.contains(&0) {
            return Err(Refusal::NotEvents("it holds a NUL byte"));
        }
        // `tail` ends with the file; its last newline ends the last whole line.
        let found = tail.iter().rposition(|b| *b == b'\n').and_then(|last_nl| {
            let line_start = tail[..last_nl]
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|p| p + 1)
                .or((start == 0).then_some(0))?;
            Some((line_start, last_nl))
        });
        match found {
            Some((line_start, last_nl)) => {
                let torn = &tail[last_nl + 1..];
                if !torn.is_empty() {
                    if let Some(why) = torn_tail_problem(torn) {
                        return Err(Refusal::BadTail {
                            bytes: torn.len() as u64,
                            why,
                        });
                    }
                }
                if !is_json_object(&tail[line_start..last_nl]) {
                    return Err(Refusal::NotEvents(
                        "its last whole line is not a JSON object",
                    ));
                }
                return Ok(if torn.is_empty() {
                    Found::Whole
                } else {
                    Found::Torn {
                        keep: start + last_nl as u64 + 1,
                    }
                });
            }
            None if window < len.min(TAIL_WINDOW_BYTES) => {
                window = len.min(TAIL_WINDOW_BYTES);
            }
            None => {
                // No newline in the last 2 MiB (or no whole line in them): the tail is longer
                // than an event, or the last whole line is.
                let torn = match tail.iter().rposition(|b| *b == b'\n') {
                    None => window,
                    Some(nl) => window - nl as u64 - 1,
                };
                return Err(if torn >= MAX_LINE_BYTES {
                    Refusal::BadTail {
                        bytes: torn,
                        why: "longer than the largest event, 1 MiB",
                    }
                } else {
                    Refusal::NotEvents(
                        "its last whole line is longer than the largest event, 1 MiB",
                    )
                });
            }
        }
    }
}

/// A process killed while writing can leave a last line without its newline. No checkpoint
/// ever covered that event (the cursor moves only after a durable flush), so it will be
/// delivered again: cut the torn line off instead of letting the next event glue onto it.
///
/// Only that line is ever cut, and only from a file that is JSON lines (see [`examine`]):
/// an events path that names some other file (a checkpoint database, a secret, a document)
/// is refused and left as it was. Returns how many bytes were cut.
fn repair_torn_tail(f: &mut File) -> Result<u64, Refusal> {
    match examine(f)? {
        Found::Whole => Ok(0),
        Found::Torn { keep } => {
            let len = f.metadata()?.len();
            f.set_len(keep)?;
            f.sync_data()?;
            Ok(len.saturating_sub(keep))
        }
    }
}

/// What opening `path` as an events file would do, without doing it (for
/// `connector-host check`): `Ok(None)` when it does not exist yet (it would be created),
/// `Ok(Some(n))` when it is an events file the sink would append to after cutting `n` bytes
/// of torn tail, `Err` (the same one-line error as [`JsonlFileSink::open`]) when it would be
/// refused. Nothing is created or changed.
pub fn inspect(path: &Path) -> Result<Option<u64>, SinkError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let mut file = crate::files::open_regular(path, OpenOptions::new().read(true), "events file")
        .map_err(|e| SinkError(e.to_string()))?;
    match examine(&mut file).map_err(|r| r.message(path))? {
        Found::Whole => Ok(Some(0)),
        Found::Torn { keep } => {
            let len = file
                .metadata()
                .map_err(|e| Refusal::Io(e).message(path))?
                .len();
            Ok(Some(len.saturating_sub(keep)))
        }
    }
}

impl Inner {
    fn write(&self, events: &[String]) -> Result<(), SinkError> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| SinkError("sink lock poisoned".into()))?;
        for e in events {
            f.write_all(e.as_bytes()).map_err(|e| self.fail(e))?;
            f.write_all(b"\n").map_err(|e| self.fail(e))?;
        }
        self.written
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn flush_durable(&self) -> Result<(), SinkError> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| SinkError("sink lock poisoned".into()))?;
        f.flush().map_err(|e| self.fail(e))?;
        f.get_ref().sync_data().map_err(|e| self.fail(e))
    }
}

#[async_trait::async_trait]
impl EventSink for JsonlFileSink {
    async fn write(&self, events: Vec<String>) -> Result<(), SinkError> {
        let inner = self.inner.clone();
        blocking(move || inner.write(&events)).await
    }

    async fn flush_durable(&self) -> Result<(), SinkError> {
        let inner = self.inner.clone();
        blocking(move || inner.flush_durable()).await
    }

    fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_torn_last_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let sink = JsonlFileSink::open(&path).unwrap();
        sink.write(vec!["{\"d\":4}".to_string()]).await.unwrap();
        sink.flush_durable().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n"
        );
        let repair = |path: &Path| {
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)
                .unwrap();
            repair_torn_tail(&mut f).unwrap()
        };
        // A first event cut by a kill: the file is cut to empty.
        std::fs::write(&path, "{\"torn\": \"no newl").unwrap();
        assert_eq!(repair(&path), 17);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, "{\"whole\":1}\n").unwrap();
        assert_eq!(repair(&path), 0);
        // Lines longer than the first read of the end (64 KiB): the window grows.
        let long = format!("{{\"x\":\"{}\"}}", "y".repeat(200_000));
        let text = format!("{long}\n{long}\n{}", &long[..150_000]);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(repair(&path), 150_000);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{long}\n{long}\n")
        );
        // A cut inside a multi-byte character is still a torn write.
        std::fs::write(
            &path,
            "{\"a\":1}\n{\"b\":\"\u{e9}"
                .as_bytes()
                .split_last()
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(repair(&path), 7);
        let absent = dir.path().join("absent");
        JsonlFileSink::open(&absent).unwrap();
        assert_eq!(std::fs::read(&absent).unwrap(), b"", "created empty");
    }

    /// Opening `bytes` as an events file is refused with a one-line error containing
    /// `expected`, and the file is left exactly as it was; `inspect` says the same.
    fn assert_refused_unchanged(bytes: &[u8], expected: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("victim");
        std::fs::write(&path, bytes).unwrap();
        let e = JsonlFileSink::open(&path)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.starts_with(&format!("events file {} ", path.display())) && e.contains(expected),
            "{expected}: {e}"
        );
        assert!(
            e.contains("it was left unchanged") && !e.contains('\n'),
            "{e}"
        );
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "unchanged: {expected}"
        );
        assert_eq!(inspect(&path).unwrap_err().to_string(), e);
    }

    #[test]
    fn operator_a_file_that_is_not_json_lines_is_never_cut() {
        // A checkpoint database: the torn-tail repair used to cut it at its last 0x0a byte.
        let mut sqlite = b"SQLite format 3\0".to_vec();
        sqlite.extend_from_slice(&[0x10, 0x00, 0x02, 0x02, b'\n', 0x40, 0x20, 0x20]);
        assert_refused_unchanged(&sqlite, "is a SQLite database");
        // A secret file without a final newline: it used to be cut to empty.
        assert_refused_unchanged(b"s3cr3t-client-secret-value", "it does not start with '{'");
        // The 48-byte file `check` cut to 9.
        let text = b"# notes\nthis file is not events and has no end";
        assert_refused_unchanged(text, "its first line is not a JSON object");
        assert_refused_unchanged(
            b"{\"a\":1}\nsecret = \"x\"\n",
            "its last whole line is not a JSON object",
        );
        assert_refused_unchanged(b"{\"a\":1}\n{\"b\":\"\0\0\0\0", "it holds a NUL byte");
        assert_refused_unchanged(b"{\"a\":1}\n{\"b\":2}\r", "it holds a carriage return");
        assert_refused_unchanged(b"{\"a\":1}\n\xff\xfe{", "it does not start with '{'");
        assert_refused_unchanged(b"{\"a\":1}\n{\"b\":\"\xff\"", "it is not UTF-8 text");
        // A torn tail longer than any event is not a torn write.
        let mut long = b"{\"a\":1}\n{\"b\":\"".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES as usize));
        assert_refused_unchanged(&long, "longer than the largest event, 1 MiB");
        let mut long = b"{\"b\":\"".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES as usize));
        assert_refused_unchanged(&long, "its first line is longer than the largest event");
        let mut long = b"{\"a\":1}\n{\"b\":\"".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2 * MAX_LINE_BYTES as usize));
        long.extend_from_slice(b"\"}\n{\"c\":");
        assert_refused_unchanged(
            &long,
            "its last whole line is longer than the largest event",
        );
    }

    #[test]
    fn inspect_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("sub/absent.jsonl");
        assert_eq!(inspect(&absent).unwrap(), None);
        assert!(!dir.path().join("sub").exists(), "no folder created");
        let path = dir.path().join("e.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\"").unwrap();
        assert_eq!(inspect(&path).unwrap(), Some(4));
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"b\"");
    }

    #[cfg(unix)]
    #[test]
    fn operator_a_fifo_device_or_directory_as_events_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("events.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // No reader ever comes: a blocking open for writing would never return. Opened on
        // another thread so that a hang fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(JsonlFileSink::open(&path).err().map(|e| e.to_string()));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("opening a FIFO as the events file returns")
            .expect("and is refused");
        assert_eq!(
            e,
            format!(
                "events file {} is a FIFO (named pipe), not a regular file; point it at a regular file",
                fifo.display()
            )
        );
        // Events written to /dev/null are lost while the cursor moves past them.
        let e = JsonlFileSink::open(Path::new("/dev/null"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/dev/null is a character device"), "{e}");
        let e = JsonlFileSink::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[tokio::test]
    async fn jsonl_appends_lines_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("sink-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("e.jsonl");
        let s = JsonlFileSink::open(&path).unwrap();
        s.write(vec!["{\"a\":1}".into(), "{\"a\":2}".into()])
            .await
            .unwrap();
        s.flush_durable().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        drop(s);
        let s = JsonlFileSink::open(&path).unwrap();
        s.write(vec!["{\"a\":3}".into()]).await.unwrap();
        s.flush_durable().await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        assert_eq!(s.written(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
