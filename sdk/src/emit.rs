//! Handing events to the host in batches it accepts, whatever the events weigh.
//!
//! Why it exists: one odd item must not fail every run of its tenant, and one big page must
//! not make one oversized call. A batch is bounded by count ([`EMIT_BATCH`]) and by bytes
//! ([`EMIT_BATCH_BYTES`], far below the host's per-call limit), so items of tens of kilobytes
//! each (Entra users in hundreds of groups) never make one oversized call. A connector
//! should keep its events under [`MAX_EVENT_BYTES`] itself (the Entra mapping keeps the
//! groups that fit and marks the event truncated, `ocsf::map_user_within`); an event still
//! larger is skipped and named. A batch the host refuses as invalid is split in halves and
//! sent again, down to the single event the host refuses, which is skipped and named too; a
//! sink failure (the host could not store the batch) ends the run, so the cursor never moves
//! past events that did not reach the sink.

use crate::doors::EmitError;

/// Most events per `emit` call.
pub const EMIT_BATCH: usize = 250;

/// Most bytes of events per `emit` call: a quarter of the reference host's default per-call
/// limit (16 MiB), so a batch never comes near it.
pub const EMIT_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Largest event the connector hands over: the reference host's default event limit (1 MiB,
/// `RuntimeLimits::max_event_bytes`). A host configured lower refuses the event, which is
/// then skipped the same way.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// What happened to a page's events.
#[derive(Debug, Default, PartialEq)]
pub struct Emitted {
    /// Events the host accepted.
    pub accepted: u64,
    /// Events not delivered: (user id, why).
    pub skipped: Vec<(String, String)>,
    /// How many of the skipped events the host refused (the others were too large to send).
    pub refused: u64,
}

/// Emits `events` (parallel to `ids`, the user each event is about) through `emit`, in
/// bounded batches. Fails only on a sink error, or when the host refused several events and
/// accepted none (a host-wide refusal, not one odd user).
pub fn emit_bounded(
    ids: Vec<String>,
    events: Vec<String>,
    emit: &mut dyn FnMut(&[String]) -> Result<(), EmitError>,
) -> Result<Emitted, EmitError> {
    let mut out = Emitted::default();
    let total = events.len();
    let (mut kept_ids, mut kept) = (Vec::new(), Vec::with_capacity(total));
    for (id, event) in ids.into_iter().zip(events) {
        if event.len() > MAX_EVENT_BYTES {
            out.skipped.push((
                id,
                format!(
                    "its event is {} bytes, over the {MAX_EVENT_BYTES}-byte event limit",
                    event.len()
                ),
            ));
        } else {
            kept_ids.push(id);
            kept.push(event);
        }
    }
    let mut start = 0;
    while start < kept.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < kept.len()
            && end - start < EMIT_BATCH
            && (end == start || bytes + kept[end].len() <= EMIT_BATCH_BYTES)
        {
            bytes += kept[end].len();
            end += 1;
        }
        send(&kept_ids[start..end], &kept[start..end], emit, &mut out)?;
        start = end;
    }
    if out.accepted == 0 && out.refused > 1 {
        if let Some((_, why)) = out.skipped.last() {
            return Err(EmitError::Invalid(format!(
                "the host refused every event of a page of {total} ({why})"
            )));
        }
    }
    Ok(out)
}

/// Sends one batch; a refused batch is halved until the refused events stand alone.
fn send(
    ids: &[String],
    events: &[String],
    emit: &mut dyn FnMut(&[String]) -> Result<(), EmitError>,
    out: &mut Emitted,
) -> Result<(), EmitError> {
    match emit(events) {
        Ok(()) => {
            out.accepted += events.len() as u64;
            Ok(())
        }
        Err(EmitError::Invalid(_)) if events.len() > 1 => {
            let mid = events.len() / 2;
            send(&ids[..mid], &events[..mid], emit, out)?;
            send(&ids[mid..], &events[mid..], emit, out)
        }
        Err(EmitError::Invalid(why)) => {
            out.refused += 1;
            out.skipped
                .push((ids[0].clone(), format!("the host refused its event: {why}")));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(sizes: &[usize]) -> (Vec<String>, Vec<String>) {
        let ids = (0..sizes.len()).map(|i| format!("u{i}")).collect();
        let events = sizes
            .iter()
            .map(|n| format!("{{\"x\":\"{}\"}}", "a".repeat(n.saturating_sub(8))))
            .collect();
        (ids, events)
    }

    /// A host that refuses calls over `call_cap` bytes and events over `event_cap`, like the
    /// reference host; records every call's size.
    fn host(
        call_cap: usize,
        event_cap: usize,
        calls: &mut Vec<(usize, usize)>,
    ) -> impl FnMut(&[String]) -> Result<(), EmitError> + '_ {
        move |batch: &[String]| {
            let bytes: usize = batch.iter().map(String::len).sum();
            calls.push((batch.len(), bytes));
            if bytes > call_cap {
                return Err(EmitError::Invalid(format!("{bytes} bytes over {call_cap}")));
            }
            if batch.iter().any(|e| e.len() > event_cap) {
                return Err(EmitError::Invalid("an event is too large".into()));
            }
            Ok(())
        }
    }

    #[test]
    fn hostile_many_normal_sized_events_go_in_batches_bounded_by_bytes() {
        // 300 users in 700 groups each: ~69 KB per event, 20 MB in all.
        let (ids, events) = page(&[69_000; 300]);
        let mut calls = Vec::new();
        let out = emit_bounded(ids, events, &mut host(16 << 20, 1 << 20, &mut calls)).unwrap();
        assert_eq!(out.accepted, 300);
        assert!(out.skipped.is_empty());
        assert!(
            calls.iter().all(|(_, bytes)| *bytes <= EMIT_BATCH_BYTES),
            "{calls:?}"
        );
        assert_eq!(calls.len(), 5, "60 events of 69 KB fit in 4 MiB: {calls:?}");
    }

    #[test]
    fn hostile_oversized_event_is_skipped_and_named_and_its_neighbours_delivered() {
        let (ids, events) = page(&[100, MAX_EVENT_BYTES + 1, 100]);
        let mut calls = Vec::new();
        let out = emit_bounded(ids, events, &mut host(16 << 20, 1 << 20, &mut calls)).unwrap();
        assert_eq!(out.accepted, 2);
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].0, "u1");
        assert!(out.skipped[0]
            .1
            .contains("over the 1048576-byte event limit"));
        assert_eq!(calls, vec![(2, 200)], "the big one never reaches the host");
    }

    #[test]
    fn hostile_a_refused_batch_is_split_until_the_refused_event_stands_alone() {
        // A stricter host: events over 1,000 bytes are refused.
        let (ids, events) = page(&[100, 100, 5_000, 100, 100, 100, 100, 100]);
        let mut calls = Vec::new();
        let out = emit_bounded(ids, events, &mut host(16 << 20, 1_000, &mut calls)).unwrap();
        assert_eq!(out.accepted, 7, "every other event delivered");
        assert_eq!(
            out.skipped,
            vec![(
                "u2".to_string(),
                "the host refused its event: an event is too large".to_string()
            )]
        );
        assert_eq!(out.refused, 1);
        // 8 (refused) → 4 (refused) → 2 + 2 (refused) → 1 + 1, then the other 4 at once.
        assert_eq!(calls.len(), 7, "{calls:?}");
    }

    #[test]
    fn a_host_refusing_everything_fails_the_page_instead_of_skipping_it() {
        let (ids, events) = page(&[100, 100, 100]);
        let mut calls = Vec::new();
        let err = emit_bounded(ids, events, &mut host(16 << 20, 10, &mut calls)).unwrap_err();
        assert!(
            err.to_string()
                .contains("the host refused every event of a page of 3"),
            "{err}"
        );
    }

    #[test]
    fn a_page_of_only_oversized_events_is_skipped_not_failed() {
        let (ids, events) = page(&[MAX_EVENT_BYTES + 1, MAX_EVENT_BYTES + 2]);
        let mut calls = Vec::new();
        let out = emit_bounded(ids, events, &mut host(16 << 20, 1 << 20, &mut calls)).unwrap();
        assert_eq!((out.accepted, out.skipped.len(), out.refused), (0, 2, 0));
        assert!(calls.is_empty());
    }

    #[test]
    fn a_sink_failure_ends_the_page() {
        let (ids, events) = page(&[100, 100]);
        let mut sink = |_: &[String]| Err(EmitError::Sink("disk full".into()));
        assert_eq!(
            emit_bounded(ids, events, &mut sink),
            Err(EmitError::Sink("disk full".into()))
        );
    }
}
