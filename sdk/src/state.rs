//! What a connector keeps between runs, in the host's checkpoint store (`kv-checkpoint`).
//!
//! Why it exists: a resumable connector needs one record it can trust — its cursor — and
//! every connector wrote the same three steps around it: read the value and its version,
//! refuse a value of another format, write it back by compare-and-set so that two runs of one
//! tenant cannot both move it. [`Cell`] is those steps once. Its stored form is a JSON object
//! with a format stamp first, `{"format":1, ...the value's fields}`: the form the Entra
//! connector's cursors had before the SDK existed, so their stored checkpoints stay readable.
//! A value whose stamp is not the expected one reads as [`Stored::Unreadable`]: the caller
//! starts over (a full sync) and the next write replaces it, at the version it was read at.
//!
//! Bulk data beside the cursor (per-item facts, staged records) needs no compare-and-set —
//! the cursor write that relies on it is fenced — only chunking to the contract's limits:
//! [`get_many`], [`put_many`], [`delete_all`], with [`encode`] / [`decode`] (postcard:
//! compact, serde).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::doors::{Doors, Expect, KvWrite, MAX_DELETE_PREFIX, MAX_KV_BATCH, MAX_KV_BATCH_BYTES};
use crate::error::ConnectorError;

/// What a cell held when it was read.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored<T> {
    /// No value under the key: a first run.
    Absent,
    /// A value of the expected format.
    Value(T),
    /// A value that is not one (another format stamp, no stamp, damaged): start over; the
    /// next write replaces it.
    Unreadable,
}

/// One versioned value under one key, written by compare-and-set.
#[derive(Debug)]
pub struct Cell {
    key: String,
    format: u32,
    what: String,
    version: Option<u64>,
}

#[derive(Serialize)]
struct StampedRef<'a, T> {
    format: u32,
    #[serde(flatten)]
    value: &'a T,
}

#[derive(Deserialize)]
struct Stamped<T> {
    format: u32,
    #[serde(flatten)]
    value: T,
}

impl Cell {
    /// Reads the cell under `key`, expecting values stamped `format`. `what` names it in
    /// errors ("the delta cursor").
    pub fn read<T: DeserializeOwned, D: Doors + ?Sized>(
        doors: &D,
        key: &str,
        format: u32,
        what: &str,
    ) -> Result<(Cell, Stored<T>), ConnectorError> {
        let (stored, version) = match doors.kv_get(key) {
            Ok(None) => (Stored::Absent, None),
            Ok(Some((bytes, version))) => (Self::decode_value(&bytes, format), Some(version)),
            Err(e) => return Err(ConnectorError::Host(format!("reading {what}: {e}"))),
        };
        let cell = Cell {
            key: key.to_string(),
            format,
            what: what.to_string(),
            version,
        };
        Ok((cell, stored))
    }

    fn decode_value<T: DeserializeOwned>(bytes: &[u8], format: u32) -> Stored<T> {
        match serde_json::from_slice::<Stamped<T>>(bytes) {
            Ok(s) if s.format == format => Stored::Value(s.value),
            _ => Stored::Unreadable,
        }
    }

    /// The version the value was read or last written at (None: no value yet).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The stored bytes of `value`: `{"format":N, ...}`.
    pub fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, ConnectorError> {
        serde_json::to_vec(&StampedRef {
            format: self.format,
            value,
        })
        .map_err(|e| ConnectorError::Host(format!("encoding {}: {e}", self.what)))
    }

    /// The compare-and-set write of `value`, for a caller that batches it itself.
    pub fn write_of<T: Serialize>(&self, value: &T) -> Result<KvWrite, ConnectorError> {
        Ok(KvWrite {
            key: self.key.clone(),
            value: Some(self.encode(value)?),
            expect: match self.version {
                Some(v) => Expect::Version(v),
                None => Expect::Absent,
            },
        })
    }

    /// Writes `value` if the cell is still at the version it was read at; a conflict (another
    /// run moved it) fails with the host's one-line reason.
    pub fn write<T: Serialize, D: Doors + ?Sized>(
        &mut self,
        doors: &D,
        value: &T,
    ) -> Result<(), ConnectorError> {
        let bytes = self.encode(value)?;
        let v = doors
            .kv_set(&self.key, &bytes, self.version)
            .map_err(|e| ConnectorError::Host(format!("committing {}: {e}", self.what)))?;
        self.version = Some(v);
        Ok(())
    }

    /// Writes `value` together with `writes`, atomically (one `set-many`, the cell last): the
    /// data a cursor relies on lands with it or not at all.
    pub fn write_with<T: Serialize, D: Doors + ?Sized>(
        &mut self,
        doors: &D,
        value: &T,
        mut writes: Vec<KvWrite>,
    ) -> Result<(), ConnectorError> {
        if writes.is_empty() {
            return self.write(doors, value);
        }
        writes.push(self.write_of(value)?);
        let versions = doors
            .kv_set_many(&writes)
            .map_err(|e| ConnectorError::Host(format!("committing {}: {e}", self.what)))?;
        self.version = versions.last().copied();
        Ok(())
    }
}

/// Most keys written in one `set-many` by [`put_many`] (a margin under the contract's 1,000).
const WRITE_CHUNK: usize = 500;

/// Encodes a value (postcard).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ConnectorError> {
    postcard::to_allocvec(value)
        .map_err(|e| ConnectorError::Host(format!("encoding a checkpoint value: {e}")))
}

/// Decodes a value; None when it is not one (an older or damaged value: treated as absent).
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

/// Reads keys in chunks the contract allows; values in order.
pub fn get_many<D: Doors + ?Sized>(
    doors: &D,
    keys: &[String],
) -> Result<Vec<Option<Vec<u8>>>, ConnectorError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_KV_BATCH) {
        let got = doors
            .kv_get_many(chunk)
            .map_err(|e| ConnectorError::Host(format!("reading checkpoint facts: {e}")))?;
        out.extend(got.into_iter().map(|v| v.map(|(bytes, _)| bytes)));
    }
    Ok(out)
}

/// Writes blind puts and deletes in chunks of at most 500 writes and
/// [`MAX_KV_BATCH_BYTES`] bytes (each chunk atomic; the writes must be idempotent, so a crash
/// between chunks leaves nothing a rerun does not repair).
pub fn put_many<D: Doors + ?Sized>(doors: &D, writes: Vec<KvWrite>) -> Result<(), ConnectorError> {
    let mut start = 0;
    while start < writes.len() {
        let (mut end, mut bytes) = (start, 0);
        while end < writes.len() && end - start < WRITE_CHUNK {
            let w = &writes[end];
            let size = w.key.len() + w.value.as_ref().map_or(0, Vec::len);
            if end > start && bytes + size > MAX_KV_BATCH_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        doors
            .kv_set_many(&writes[start..end])
            .map_err(|e| ConnectorError::Host(format!("writing checkpoint facts: {e}")))?;
        start = end;
    }
    Ok(())
}

/// Deletes every key under `prefix`, [`MAX_DELETE_PREFIX`] a call.
pub fn delete_all<D: Doors + ?Sized>(doors: &D, prefix: &str) -> Result<u64, ConnectorError> {
    let mut deleted = 0u64;
    loop {
        let n = doors
            .kv_delete_prefix(prefix, MAX_DELETE_PREFIX)
            .map_err(|e| ConnectorError::Host(format!("deleting '{prefix}…': {e}")))?;
        deleted += u64::from(n);
        if n < MAX_DELETE_PREFIX {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doors::fake::{json, FakeDoors};

    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Cursor {
        next: Option<String>,
        #[serde(default)]
        seen: u64,
    }

    fn doors() -> FakeDoors<impl Fn(usize, &crate::doors::HttpRequest) -> crate::doors::HttpResponse>
    {
        FakeDoors::new(|_, _| json(500, &[], "{}"))
    }

    #[test]
    fn a_cell_round_trips_with_its_stamp_first_and_its_version() {
        let d = doors();
        let (mut cell, stored) = Cell::read::<Cursor, _>(&d, "c", 3, "the cursor").unwrap();
        assert_eq!(stored, Stored::Absent);
        assert_eq!(cell.version(), None);
        let value = Cursor {
            next: Some("p2".into()),
            seen: 7,
        };
        cell.write(&d, &value).unwrap();
        assert_eq!(cell.version(), Some(1));
        assert_eq!(
            d.kv.borrow()["c"].0,
            br#"{"format":3,"next":"p2","seen":7}"#.to_vec(),
            "the stored form the Entra cursors always had"
        );
        let (again, stored) = Cell::read::<Cursor, _>(&d, "c", 3, "the cursor").unwrap();
        assert_eq!((stored, again.version()), (Stored::Value(value), Some(1)));
    }

    #[test]
    fn a_value_of_another_format_or_none_is_unreadable_and_replaced_at_its_version() {
        let d = doors();
        for (i, old) in [
            &br#"{"format":2,"next":"p9"}"#[..],
            br#"{"next":"p9"}"#,
            b"\x00garbage",
        ]
        .into_iter()
        .enumerate()
        {
            let key = format!("k{i}");
            d.kv_set(&key, old, None).unwrap();
            let (mut cell, stored) = Cell::read::<Cursor, _>(&d, &key, 3, "the cursor").unwrap();
            assert_eq!(
                stored,
                Stored::Unreadable,
                "{}",
                String::from_utf8_lossy(old)
            );
            assert_eq!(cell.version(), Some(1), "read at the version it holds");
            cell.write(&d, &Cursor::default()).unwrap();
            assert_eq!(cell.version(), Some(2));
        }
    }

    #[test]
    fn a_cell_moved_by_another_run_refuses_the_write_and_keeps_the_other_value() {
        let d = doors();
        let (mut mine, _) = Cell::read::<Cursor, _>(&d, "c", 1, "the cursor").unwrap();
        let (mut theirs, _) = Cell::read::<Cursor, _>(&d, "c", 1, "the cursor").unwrap();
        theirs
            .write(
                &d,
                &Cursor {
                    next: Some("theirs".into()),
                    seen: 1,
                },
            )
            .unwrap();
        let err = mine.write(&d, &Cursor::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("committing the cursor: checkpoint was moved by another run"),
            "{err}"
        );
        let err = mine
            .write_with(
                &d,
                &Cursor::default(),
                vec![KvWrite::put("data".into(), b"x".to_vec())],
            )
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Host(_)), "{err:?}");
        assert!(
            !d.kv.borrow().contains_key("data"),
            "nothing of a lost batch lands"
        );
        let (_, stored) = Cell::read::<Cursor, _>(&d, "c", 1, "the cursor").unwrap();
        assert_eq!(
            stored,
            Stored::Value(Cursor {
                next: Some("theirs".into()),
                seen: 1
            })
        );
    }

    #[test]
    fn a_write_with_data_lands_together_and_moves_the_version() {
        let d = doors();
        let (mut cell, _) = Cell::read::<Cursor, _>(&d, "c", 1, "the cursor").unwrap();
        cell.write_with(
            &d,
            &Cursor::default(),
            vec![KvWrite::put("data".into(), b"x".to_vec())],
        )
        .unwrap();
        assert_eq!(cell.version(), Some(1));
        assert_eq!(d.kv_calls.get(), 2, "one read, one set-many");
        assert!(d.kv.borrow().contains_key("data"));
    }

    #[test]
    fn bulk_writes_are_chunked_by_count_and_bytes_and_read_back_in_order() {
        let d = doors();
        let writes: Vec<KvWrite> = (0..1_200)
            .map(|i| KvWrite::put(format!("f/{i:04}"), encode(&(i as u64)).unwrap()))
            .collect();
        put_many(&d, writes).unwrap();
        assert_eq!(d.kv_calls.get(), 3, "500 + 500 + 200");
        let keys: Vec<String> = (0..1_200).map(|i| format!("f/{i:04}")).collect();
        let values = get_many(&d, &keys).unwrap();
        assert_eq!(d.kv_calls.get(), 5, "1,000 + 200");
        assert!(values
            .iter()
            .enumerate()
            .all(|(i, v)| v.as_deref().and_then(decode::<u64>) == Some(i as u64)));
        // 30 values of 900 KiB: 13 fit under the 12 MiB bound (the fake refuses a batch over
        // the contract's 16 MiB), so 13 + 13 + 4.
        let big: Vec<KvWrite> = (0..30)
            .map(|i| KvWrite::put(format!("b/{i:02}"), vec![0; 900 << 10]))
            .collect();
        let before = d.kv_calls.get();
        put_many(&d, big).unwrap();
        assert_eq!(d.kv_calls.get() - before, 3);
        assert_eq!(delete_all(&d, "f/").unwrap(), 1_200);
    }
}
