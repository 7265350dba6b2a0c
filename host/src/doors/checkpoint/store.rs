//! The storage interface behind the `kv-checkpoint` door.

/// Why a checkpoint operation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    /// The stored version is not the expected one.
    #[error("version conflict: the cursor is at version {current:?}")]
    Conflict {
        /// The version now stored (None: the key does not exist).
        current: Option<u64>,
    },
    /// The store failed.
    #[error("checkpoint store: {0}")]
    Storage(String),
    /// The write carried a fencing token that is not the tenant's current lease (another
    /// host took the tenant, or the lease expired or was released): the cursor was not
    /// moved. Only a fenced store ([`super::postgres::FencedCheckpointStore`]) refuses so.
    #[error("{}", fenced_message(tenant, *token, *current))]
    Fenced {
        /// Tenant key.
        tenant: String,
        /// The stale token the write carried.
        token: u64,
        /// The tenant's current (last issued) token, if any.
        current: Option<u64>,
    },
}

fn fenced_message(tenant: &str, token: u64, current: Option<u64>) -> String {
    let why = match current {
        Some(c) if c == token => "the lease expired or was released".to_string(),
        Some(c) => format!("the tenant's current lease token is {c}: another host took it over"),
        None => "the tenant holds no lease".to_string(),
    };
    format!("checkpoint write refused: lease token {token} of tenant '{tenant}' is stale ({why}); the cursor was not moved")
}

/// A key's stored value and version, or `None` when it was never set (or was deleted).
pub type Stored = Option<(Vec<u8>, u64)>;

/// What the stored version of a key must be for a write of a batch
/// ([`CheckpointStore::set_many`]) to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it is, or no value at all (a blind write).
    Any,
    /// The key must not exist.
    Absent,
    /// The key must be at this version.
    Version(u64),
}

impl Expect {
    /// Whether a key now at `current` (None: absent) meets this precondition.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// One write of a [`CheckpointStore::set_many`] batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
    /// The precondition on the stored version.
    pub expect: Expect,
}

/// Refuses a batch that names a key twice (which write would win is not defined, and
/// PostgreSQL refuses to touch one row twice in a statement).
pub fn check_distinct_keys(writes: &[Write]) -> Result<(), CheckpointError> {
    let mut seen = std::collections::HashSet::with_capacity(writes.len());
    for w in writes {
        if !seen.insert(w.key.as_str()) {
            return Err(CheckpointError::Storage(format!(
                "key '{}' is written twice in one batch; name each key once",
                w.key
            )));
        }
    }
    Ok(())
}

/// The first failing precondition of a batch, in the batch's order, as the conflict to
/// report: `current(i)` is the version write `i`'s key is at.
pub fn first_conflict(
    writes: &[Write],
    mut current: impl FnMut(usize) -> Option<u64>,
) -> Result<(), CheckpointError> {
    for (i, w) in writes.iter().enumerate() {
        let now = current(i);
        if !w.expect.holds(now) {
            return Err(CheckpointError::Conflict { current: now });
        }
    }
    Ok(())
}

/// The least string greater than every string that starts with `prefix`, in byte order
/// (= code point order for UTF-8), so `key >= prefix AND key < bound` selects exactly the
/// keys that start with `prefix`, through the key index and whatever `%` or `_` they hold
/// (a `LIKE` pattern would read those as wildcards). The last character is replaced by the
/// next one (skipping the surrogates, which UTF-8 cannot encode); a last character U+10FFFF
/// has none, so it is dropped and the one before it is raised. `None`: `prefix` is all
/// U+10FFFF (or empty), and no bound is needed.
///
/// Byte-wise incrementing the last byte would be wrong for text: `"a\u{7f}"` would become
/// the invalid UTF-8 `"a\x80"`, which neither SQLite's text nor PostgreSQL's accepts.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A durable, versioned key-value store for cursors.
///
/// Async, because a store's work is I/O that must not hold a runtime worker: an
/// implementation over blocking I/O (the SQLite one) runs it on tokio's blocking pool. A
/// write that returned `Ok` is durable. Every `set` is a compare-and-set on a version number,
/// so two workers running the same tenant can never silently overwrite each other's cursor.
///
/// A caller that drops a `set` future may or may not have moved the cursor (the blocking work
/// runs to its end), but never half: a store commits atomically.
#[async_trait::async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Reads `key` in `namespace`: value and version.
    async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, CheckpointError>;

    /// Writes `key` if its version is `expected` (None: must not exist); returns the new version.
    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError>;

    /// Reads several keys of `namespace`: one answer per key, in order (a key named twice
    /// gets the same answer twice).
    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> Result<Vec<Stored>, CheckpointError>;

    /// Applies `writes` atomically — all or none — and returns each key's new version in
    /// order (0 for a delete). A failed precondition applies nothing and is a
    /// [`CheckpointError::Conflict`] carrying the version of the first key (in batch order)
    /// whose precondition failed. A key named twice is refused ([`check_distinct_keys`]).
    async fn set_many(
        &self,
        namespace: &str,
        writes: &[Write],
    ) -> Result<Vec<u64>, CheckpointError>;

    /// Deletes, atomically, up to `limit` keys of `namespace` that start with `prefix` (the
    /// first ones in byte order) and returns how many it deleted: fewer than `limit` means
    /// none is left. An empty prefix is refused (it would name every key of the namespace).
    async fn delete_prefix(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<u32, CheckpointError>;

    /// Records how a run of `tenant` ended, in the store's host-owned run-status table (no
    /// door of the guest reaches it): merged with the stored record in one transaction, and
    /// never over the record of a run that started later ([`super::record::merge`]). A
    /// store that keeps no run status (the default) records nothing.
    async fn record_run(
        &self,
        tenant: &str,
        end: &super::record::RunEnd,
    ) -> Result<(), CheckpointError> {
        let _ = (tenant, end);
        Ok(())
    }
}

/// Refuses an empty prefix for [`CheckpointStore::delete_prefix`].
pub fn check_prefix(prefix: &str) -> Result<(), CheckpointError> {
    if prefix.is_empty() {
        return Err(CheckpointError::Storage(
            "an empty prefix would delete every key of the namespace; name a prefix".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_of_a_prefix_is_the_next_string_in_byte_order() {
        assert_eq!(prefix_upper_bound("user/"), Some("user0".into()));
        assert_eq!(prefix_upper_bound("a%"), Some("a&".into()));
        assert_eq!(prefix_upper_bound("a\u{7f}"), Some("a\u{80}".into()));
        assert_eq!(prefix_upper_bound("é"), Some("ê".into()));
        assert_eq!(prefix_upper_bound("a\u{d7ff}"), Some("a\u{e000}".into()));
        assert_eq!(prefix_upper_bound("a\u{10ffff}"), Some("b".into()));
        assert_eq!(
            prefix_upper_bound("ab\u{10ffff}\u{10ffff}"),
            Some("ac".into())
        );
        assert_eq!(prefix_upper_bound("\u{10ffff}"), None);
        assert_eq!(prefix_upper_bound(""), None);
        // The defining property, over byte order: every key that starts with the prefix is
        // below the bound, and every key at or above the prefix that does not is not.
        let prefixes = ["a", "a\u{7f}", "é", "\u{ffff}", "x\u{10ffff}", "%_"];
        let keys = [
            "a",
            "a\u{7f}",
            "a\u{7f}\u{10ffff}",
            "a\u{80}",
            "b",
            "é",
            "éz",
            "ê",
            "\u{ffff}",
            "\u{ffff}\u{0}",
            "\u{10000}",
            "x\u{10ffff}",
            "x\u{10ffff}\u{10ffff}",
            "y",
            "%_",
            "%_x",
            "%`",
            "&",
        ];
        for p in prefixes {
            let bound = prefix_upper_bound(p).unwrap();
            for k in keys {
                let inside = k.as_bytes() >= p.as_bytes() && k.as_bytes() < bound.as_bytes();
                assert_eq!(inside, k.starts_with(p), "prefix {p:?}, key {k:?}");
            }
        }
    }

    #[test]
    fn preconditions_and_the_first_conflict_in_batch_order() {
        assert!(Expect::Any.holds(None) && Expect::Any.holds(Some(3)));
        assert!(Expect::Absent.holds(None) && !Expect::Absent.holds(Some(1)));
        assert!(Expect::Version(2).holds(Some(2)) && !Expect::Version(2).holds(None));
        let w = |key: &str, expect| Write {
            key: key.into(),
            value: None,
            expect,
        };
        let batch = [
            w("a", Expect::Any),
            w("b", Expect::Version(4)),
            w("c", Expect::Absent),
        ];
        let now = [Some(1), Some(5), Some(2)];
        assert_eq!(
            first_conflict(&batch, |i| now[i]),
            Err(CheckpointError::Conflict { current: Some(5) })
        );
        assert_eq!(check_distinct_keys(&batch), Ok(()));
        let twice = [w("a", Expect::Any), w("a", Expect::Absent)];
        assert!(check_distinct_keys(&twice).is_err());
    }
}
