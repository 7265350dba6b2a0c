//! The `emit-event` door's destinations.
//!
//! A sink takes batches of JSON events and, on [`EventSink::flush_durable`], guarantees
//! that everything written before is on stable storage. The runtime calls that before
//! committing any checkpoint: this is what makes "nothing lost" true.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A destination for events.
pub trait EventSink: Send + Sync {
    /// Appends a batch of events (each one JSON object, no newline inside).
    fn write(&self, events: &[String]) -> Result<(), SinkError>;
    /// Makes everything written so far durable.
    fn flush_durable(&self) -> Result<(), SinkError>;
    /// Events accepted so far.
    fn written(&self) -> u64;
}

/// Appends JSON lines to a file; `flush_durable` flushes and fsyncs it.
pub struct JsonlFileSink {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
    written: AtomicU64,
}

impl JsonlFileSink {
    /// Opens `path` for appending (creating it and its folder).
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SinkError(format!("cannot create {}: {e}", dir.display())))?;
        }
        repair_torn_tail(path)
            .map_err(|e| SinkError(format!("cannot repair {}: {e}", path.display())))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| SinkError(format!("cannot open {} for appending: {e}", path.display())))?;
        Ok(JsonlFileSink {
            path: path.to_path_buf(),
            file: Mutex::new(BufWriter::with_capacity(1 << 20, file)),
            written: AtomicU64::new(0),
        })
    }

    fn fail(&self, e: std::io::Error) -> SinkError {
        SinkError(format!("writing {}: {e}", self.path.display()))
    }
}

/// A process killed while writing can leave a last line without its newline. No checkpoint
/// ever covered that event (the cursor moves only after a durable flush), so it will be
/// delivered again: cut the torn line off instead of letting the next event glue onto it.
/// Returns how many bytes were cut.
fn repair_torn_tail(path: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
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

impl EventSink for JsonlFileSink {
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

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// Writes JSON lines to standard output; `flush_durable` flushes it.
#[derive(Default)]
pub struct StdoutSink {
    written: AtomicU64,
}

impl EventSink for StdoutSink {
    fn write(&self, events: &[String]) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        for e in events {
            writeln!(out, "{e}").map_err(|e| SinkError(format!("writing to stdout: {e}")))?;
        }
        self.written
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn flush_durable(&self) -> Result<(), SinkError> {
        std::io::stdout()
            .flush()
            .map_err(|e| SinkError(format!("flushing stdout: {e}")))
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let sink = JsonlFileSink::open(&path).unwrap();
        sink.write(&["{\"d\":4}".to_string()]).unwrap();
        sink.flush_durable().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n"
        );
        std::fs::write(&path, "no newline at all").unwrap();
        assert_eq!(repair_torn_tail(&path).unwrap(), 17);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, "whole\n").unwrap();
        assert_eq!(repair_torn_tail(&path).unwrap(), 0);
        assert_eq!(repair_torn_tail(&dir.path().join("absent")).unwrap(), 0);
    }

    #[test]
    fn jsonl_appends_lines_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("sink-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("e.jsonl");
        let s = JsonlFileSink::open(&path).unwrap();
        s.write(&["{\"a\":1}".into(), "{\"a\":2}".into()]).unwrap();
        s.flush_durable().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        drop(s);
        let s = JsonlFileSink::open(&path).unwrap();
        s.write(&["{\"a\":3}".into()]).unwrap();
        s.flush_durable().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        assert_eq!(s.written(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
