//! Events appended to a JSON-lines file; `flush_durable` flushes and fsyncs it. A torn last
//! line (a process killed mid-write) is cut when the file is opened.

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
        repair_torn_tail(&mut file)
            .map_err(|e| SinkError(format!("cannot repair {}: {e}", path.display())))?;
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

/// A process killed while writing can leave a last line without its newline. No checkpoint
/// ever covered that event (the cursor moves only after a durable flush), so it will be
/// delivered again: cut the torn line off instead of letting the next event glue onto it.
/// Returns how many bytes were cut.
fn repair_torn_tail(f: &mut File) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Walk back in blocks to the last newline.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(0);
        }
        if let Some(pos) = chunk.iter().rposition(|b| *b == b'\n') {
            let keep = start + pos as u64 + 1;
            f.set_len(keep)?;
            f.sync_data()?;
            return Ok(len - keep);
        }
        if start == 0 {
            f.set_len(0)?;
            f.sync_data()?;
            return Ok(len);
        }
        end = start;
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
        std::fs::write(&path, "no newline at all").unwrap();
        assert_eq!(repair(&path), 17);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, "whole\n").unwrap();
        assert_eq!(repair(&path), 0);
        let absent = dir.path().join("absent");
        JsonlFileSink::open(&absent).unwrap();
        assert_eq!(std::fs::read(&absent).unwrap(), b"", "created empty");
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
