//! Property test (proptest) of the `emit-event` door: whatever strings a guest emits, the
//! host serves the call or refuses the whole batch, never panics, and the JSONL file it
//! writes stays one JSON object per line. It drives `emit_event::Host::emit` on a real
//! [`EmitState`] (that is why it lives inside the crate) with a real `JsonlFileSink`.
//!
//! CI runs 256 cases (proptest's default). The million-case run:
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release -p connector-host --lib doors::emit::properties
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::emit_event::{self, Host as _};
use super::{EmitPolicy, EmitState, EventSink, JsonlFileSink};
use crate::doors::RunShared;

/// Most bytes one call may pass into the host.
const MAX_CALL_BYTES: usize = 12 * 1024;

const POLICY: EmitPolicy = EmitPolicy {
    max_event_bytes: 4 * 1024,
    max_batch_events: 8,
    max_events_per_run: 100,
    max_depth: 64,
};

fn scratch_file() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"));
    dir.path().join(format!(
        "events-{}.jsonl",
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The door of a run that has already emitted `already_emitted` events.
fn emit_state(sink: Arc<dyn EventSink>, already_emitted: u64) -> (EmitState, Arc<RunShared>) {
    let shared = Arc::new(RunShared::new(
        "t".into(),
        Default::default(),
        MAX_CALL_BYTES,
    ));
    let mut state = EmitState::new(shared.clone(), POLICY, sink);
    state.written = already_emitted;
    (state, shared)
}

/// The sink's calls run on tokio's blocking pool: a runtime drives the door.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
    .block_on(f)
}

/// A JSON scalar. (Generators here never filter: a million cases would exhaust proptest's
/// budget of rejected values.)
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Not finite: `Value::from` makes it null.
        any::<f64>().prop_map(Value::from),
        // Line and paragraph separators, CR, NUL: escaped or kept by the serializer.
        prop::collection::vec(
            prop_oneof![
                3 => prop::char::range(' ', '~'),
                1 => prop::sample::select(&['\n', '\r', '\0', '\u{2028}', '\u{2029}', '\u{85}', 'é', '𝔊'][..]),
                1 => any::<char>(),
            ],
            0..12,
        )
        .prop_map(|c| Value::String(c.into_iter().collect())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z\n\"]{0,4}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn json_object_of(entries: std::ops::Range<usize>) -> impl Strategy<Value = Value> {
    prop::collection::vec(("[a-zA-Z_\r\n\u{2028}]{0,6}", json_value()), entries)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

fn json_object() -> impl Strategy<Value = Value> {
    json_object_of(0..5)
}

/// One emitted string and whether it is a single-line JSON object within the size limit:
/// known by construction, or (for arbitrary text) by parsing it.
fn event() -> impl Strategy<Value = (String, bool)> {
    let ws = prop::collection::vec(prop::sample::select(&[' ', '\t', '\r'][..]), 0..3)
        .prop_map(|w| w.into_iter().collect::<String>());
    prop_oneof![
        // Valid: a compact object, maybe inside JSON whitespace other than a newline.
        // A carriage return in the whitespace is refused (a line break to some readers).
        24 => (ws.clone(), json_object(), ws).prop_map(|(a, o, b)| {
            let s = format!("{a}{o}{b}");
            let ok = s.len() <= POLICY.max_event_bytes && !s.contains('\r');
            (s, ok)
        }),
        // A newline anywhere: refused even where JSON allows it.
        1 => json_object_of(1..5)
            .prop_map(|o| (serde_json::to_string_pretty(&o).expect("serializes"), false)),
        1 => json_object().prop_map(|o| (format!("{o}\n"), false)),
        // JSON, but not an object.
        1 => prop_oneof![
            json_leaf(),
            prop::collection::vec(json_value(), 0..4).prop_map(Value::Array),
        ]
        .prop_map(|v| (v.to_string(), false)),
        // An object with something after it, or cut short.
        1 => (json_object(), prop::sample::select(&["x", "{}", ",", "]", "}", "\0", "\u{2028}", "\u{feff}"][..]))
            .prop_map(|(o, tail)| (format!("{o}{tail}"), false)),
        1 => json_object().prop_map(|o| {
            let s = o.to_string();
            (s[..s.len() - 1].to_string(), false)
        }),
        // Something before it that is not JSON whitespace.
        1 => (prop::sample::select(&["\u{feff}", "\u{a0}", "\u{2028}", "x", "\0"][..]), json_object())
            .prop_map(|(head, o)| (format!("{head}{o}"), false)),
        // Nested up to and far past the host's depth limit (64 levels, half of serde_json's
        // 128): the host's check does not recurse, so no stack overflow at any depth.
        1 => (30usize..5000).prop_map(|depth| {
            let s = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            let ok = s.len() <= POLICY.max_event_bytes && depth < 64;
            (s, ok)
        }),
        // Over the event size limit.
        2 => (POLICY.max_event_bytes - 16..POLICY.max_event_bytes + 16).prop_map(|n| {
            let s = format!("{{\"pad\":\"{}\"}}", "x".repeat(n.saturating_sub(10)));
            let ok = s.len() <= POLICY.max_event_bytes;
            (s, ok)
        }),
        // Anything.
        1 => prop::collection::vec(any::<char>(), 0..20).prop_map(|c| {
            let s: String = c.into_iter().collect();
            let ok = !s.contains(['\n', '\r'])
                && serde_json::from_str::<Value>(&s).is_ok_and(|v| v.is_object());
            (s, ok)
        }),
    ]
}

/// Found by the property below: a bare `\r` (a line break to some JSONL readers) and nesting
/// deeper than tree parsers follow were accepted.
#[test]
fn hostile_events_with_a_carriage_return_or_deep_nesting_are_refused() {
    let nested = |depth: usize| format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    for (event, refused) in [
        ("{\"a\":\r1}".to_string(), "not a single-line JSON object"),
        ("{\"a\":1}\r".to_string(), "not a single-line JSON object"),
        (nested(64), "nests 65 levels deep, over the limit of 64"),
        (nested(500), "nests 501 levels deep"),
    ] {
        let path = scratch_file();
        let sink = Arc::new(JsonlFileSink::open(&path).expect("a scratch sink"));
        let (mut state, _) = emit_state(sink, 0);
        match block_on(state.emit(vec![event.clone()])) {
            Ok(Err(emit_event::EmitError::Invalid(why))) => {
                assert!(why.contains(refused), "{event:?}: {why}")
            }
            other => panic!("{event:?} was not refused: {other:?}"),
        }
    }
    let path = scratch_file();
    let sink = Arc::new(JsonlFileSink::open(&path).expect("a scratch sink"));
    let (mut state, _) = emit_state(sink, 0);
    let inside = vec![nested(63), "{\"s\":\"[[[[\\\"{{\"}".to_string()];
    assert!(matches!(block_on(state.emit(inside)), Ok(Ok(()))));
}

proptest! {
    /// Any batch: never a trap. Over the per-call byte cap, over the batch limit, or holding
    /// anything but single-line JSON objects within the size and depth limits, it is refused
    /// whole as `invalid` (the guest may split it); past the run's event limit it is refused
    /// as `sink` (splitting cannot help); nothing of a refused batch is written. Otherwise
    /// every event is written, verbatim, as one line of the JSONL file.
    #[test]
    fn hostile_emitted_batches_are_refused_whole_or_written_one_object_per_line(
        batch in prop::collection::vec(event(), 0..11),
        already in prop_oneof![3 => 0u64..10, 1 => 90u64..=100],
    ) {
        let path = scratch_file();
        let sink = Arc::new(JsonlFileSink::open(&path).expect("a scratch sink"));
        let (mut state, shared) = emit_state(sink.clone(), already);
        let events: Vec<String> = batch.iter().map(|(e, _)| e.clone()).collect();
        let result = block_on(state.emit(events.clone()));
        let limit_hit = shared.limit_hit().map(|(kind, _)| kind);
        let counted = state.written();
        drop(state);
        drop(sink);
        let written = std::fs::read_to_string(&path).expect("the scratch sink is readable");
        let _ = std::fs::remove_file(&path);

        let call_bytes = events.iter().map(String::len).sum::<usize>() + events.len() * 16;
        let over_call = call_bytes > MAX_CALL_BYTES;
        let over_run = already + events.len() as u64 > POLICY.max_events_per_run;
        let fits = events.len() <= POLICY.max_batch_events && !over_call;
        prop_assert_eq!(limit_hit, None, "emit never stops the run");
        match result {
            Err(trap) => {
                return Err(TestCaseError::fail(format!("emit trapped: {trap}")));
            }
            Ok(Err(emit_event::EmitError::Invalid(why))) => {
                prop_assert!(!fits || (!over_run && batch.iter().any(|(_, ok)| !ok)), "refused a good batch: {why}");
                prop_assert!(!why.is_empty() && !why.contains('\n'), "{why:?}");
                prop_assert!(written.is_empty(), "a refused batch was partly written");
                prop_assert_eq!(counted, already);
            }
            Ok(Err(emit_event::EmitError::Sink(why))) => {
                prop_assert!(over_run && !over_call, "a sink refusal without the run limit: {why}");
                prop_assert!(why.contains("the run's limit"), "{why:?}");
                prop_assert!(written.is_empty(), "a refused batch was partly written");
                prop_assert_eq!(counted, already);
            }
            Ok(Ok(())) => {
                prop_assert!(fits && !over_run && batch.iter().all(|(_, ok)| *ok), "accepted a bad batch: {events:?}");
                let lines: Vec<&str> = written.split_terminator('\n').collect();
                prop_assert_eq!(lines.len(), events.len());
                prop_assert_eq!(counted, already + events.len() as u64);
                for (line, event) in lines.iter().zip(&events) {
                    prop_assert_eq!(line, event);
                }
            }
        }
    }
}
