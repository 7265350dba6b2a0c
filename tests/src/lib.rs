//! Shared pieces of the end-to-end tests: a harness that starts the Graph emulator on
//! 127.0.0.1 and runs the real component in the real host against it, with a real SQLite
//! checkpoint file and a real JSONL sink, and the awkward secret whose leaks they look for; the
//! Okta connector's oracle and harness ([`okta`]).
//! The OCSF checks of the events are the `ocsf-check` crate's (`tests/ocsf-check/`). The
//! example connector's API is [`example_api`].

pub mod example_api;
pub mod okta;

use std::collections::BTreeSet;
use std::path::PathBuf;

use connector_host::{
    RunOutcome, Runtime, RuntimeLimits, SqliteCheckpointStore, TenantRun, TimeScale,
};
use graph_emulator::{Emulator, EmulatorConfig, Tenant};
use serde_json::Value;

/// A client secret whose raw, form-encoded, percent-encoded and JSON-escaped forms all
/// differ: it holds a space, `+`, `/`, `=`, `&`, `%`, `"`, `\` and `~`.
pub const AWKWARD_SECRET: &str = "a+b/c=d&e f%\"g\\h~i";

/// The forms a leak of [`AWKWARD_SECRET`] could take, written out by hand (not by the
/// encoders under test): raw; `application/x-www-form-urlencoded` (upper- and lower-case
/// hex); percent-encoded with `%20`; as a URI component (`~` kept); JSON-escaped.
pub const AWKWARD_SECRET_FORMS: [&str; 6] = [
    "a+b/c=d&e f%\"g\\h~i",
    "a%2Bb%2Fc%3Dd%26e+f%25%22g%5Ch%7Ei",
    "a%2bb%2fc%3dd%26e+f%25%22g%5ch%7ei",
    "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch%7Ei",
    "a%2Bb%2Fc%3Dd%26e%20f%25%22g%5Ch~i",
    "a+b/c=d&e f%\\\"g\\\\h~i",
];

/// Panics, naming the form, when `text` (which is `what`) holds [`AWKWARD_SECRET`] in any
/// of [`AWKWARD_SECRET_FORMS`].
pub fn assert_no_awkward_secret(what: &str, text: &str) {
    for form in AWKWARD_SECRET_FORMS {
        assert!(
            !text.contains(form),
            "{what} holds the secret as {form:?}: {text}"
        );
    }
}

/// One tenant's run set-up against a live emulator, with files in a temporary folder.
pub struct Harness {
    /// The emulator (login + Graph on 127.0.0.1).
    pub emulator: Emulator,
    /// The host runtime with the embedded Entra connector.
    pub runtime: Runtime,
    /// The tenant run (policy, secrets, SQLite checkpoints, JSONL sink).
    pub run: TenantRun,
    /// Temporary folder holding the files.
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Starts an emulator serving `tenant` and a runtime pointed at it.
    pub async fn start(tenant: Tenant, config: EmulatorConfig) -> Harness {
        let factor = config.time_scale;
        Harness::start_with_time_scale(tenant, config, factor).await
    }

    /// **Simulation only.** Like [`Harness::start`], with time compressed `factor` times for
    /// both parties: the emulator's limit windows ([`EmulatorConfig::time_scale`]) and the
    /// run's guest clocks and sleeps ([`TenantRun::with_time_scale`]), on one origin (the
    /// emulator's clock), so a `Retry-After` in seconds or as a date means the same to both.
    pub async fn start_with_time_scale(
        tenant: Tenant,
        config: EmulatorConfig,
        factor: u32,
    ) -> Harness {
        let config = EmulatorConfig {
            time_scale: factor,
            ..config
        };
        let emulator = Emulator::start(tenant, config)
            .await
            .expect("the emulator starts");
        let runtime = Runtime::new(builtin_connectors::ENTRA_ID, RuntimeLimits::default())
            .await
            .expect("the embedded component loads");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let run = connector_host::simulation::emulator_tenant_run(
            &emulator,
            "tenant-a",
            &dir.path().join("checkpoints.sqlite"),
            &dir.path().join("events.jsonl"),
        )
        .expect("the tenant run is wired");
        let (origin, origin_wall) = emulator.clock().origin();
        let scale =
            TimeScale::anchored(factor, origin, origin_wall).expect("a time scale of 1 or more");
        let run = run.with_time_scale(scale);
        Harness {
            emulator,
            runtime,
            run,
            dir,
        }
    }

    /// Sets (or adds) one connector configuration key.
    pub fn set_config(&mut self, key: &str, value: &str) {
        self.run.connector_config.retain(|(k, _)| k != key);
        self.run.connector_config.push((key.into(), value.into()));
    }

    /// Runs one sync.
    pub async fn sync(&self) -> RunOutcome {
        self.run_with(&self.run).await
    }

    /// Runs one sync with a modified run.
    pub async fn run_with(&self, run: &TenantRun) -> RunOutcome {
        self.runtime.run(run).await
    }

    /// The events file.
    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// Every event in the sink file so far, parsed.
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.events_path()).unwrap_or_default();
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("a sink line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The stored cursor of the Entra connector in the configured `sync_mode`: (value,
    /// version).
    pub fn cursor(&self) -> Option<(Vec<u8>, u64)> {
        let mode = self
            .run
            .connector_config
            .iter()
            .find(|(k, _)| k == "sync_mode")
            .map(|(_, v)| v.as_str());
        let key = match mode {
            Some("created") | Some("full") => CURSOR_KEY,
            _ => DELTA_CURSOR_KEY,
        };
        self.checkpoint(key)
    }

    /// The delta cursor, parsed.
    pub fn delta_cursor(&self) -> Option<Value> {
        self.checkpoint(DELTA_CURSOR_KEY)
            .map(|(bytes, _)| serde_json::from_slice(&bytes).expect("the delta cursor is JSON"))
    }

    /// Moves the delta cursor's clocks `hours` into the past, as if that much time had
    /// passed since the last full walk and the last sign-in sweep.
    pub fn age_delta_cursor(&self, hours: i64) {
        let (bytes, version) = self
            .checkpoint(DELTA_CURSOR_KEY)
            .expect("a delta cursor to age");
        let mut cursor: Value = serde_json::from_slice(&bytes).expect("the delta cursor is JSON");
        for key in ["last_full_ms", "last_sweep_ms", "round_started_ms"] {
            let t = cursor[key].as_i64().expect("a time in the cursor");
            cursor[key] = Value::from(t - hours * 3_600_000);
        }
        let store = SqliteCheckpointStore::open(&self.dir.path().join("checkpoints.sqlite"))
            .expect("store opens");
        store
            .set_blocking(
                &format!("{}/{}", self.run.tenant, self.runtime.description().name),
                DELTA_CURSOR_KEY,
                &serde_json::to_vec(&cursor).unwrap(),
                Some(version),
            )
            .expect("store writes");
    }

    /// Makes the connector's memory of users between full walks unreadable, as lost facts
    /// would be: the delta cursor is pointed at a facts generation with nothing in it, so
    /// their users are read per user again.
    pub fn forget_facts(&self) {
        let (bytes, version) = self
            .checkpoint(DELTA_CURSOR_KEY)
            .expect("a delta cursor whose facts to forget");
        let mut cursor: Value = serde_json::from_slice(&bytes).expect("the delta cursor is JSON");
        assert!(
            cursor["facts_gen"].is_string(),
            "the cursor names a facts generation: {cursor}"
        );
        cursor["facts_gen"] = Value::from("forgotten");
        let store = SqliteCheckpointStore::open(&self.dir.path().join("checkpoints.sqlite"))
            .expect("store opens");
        store
            .set_blocking(
                &format!("{}/{}", self.run.tenant, self.runtime.description().name),
                DELTA_CURSOR_KEY,
                &serde_json::to_vec(&cursor).unwrap(),
                Some(version),
            )
            .expect("store writes");
    }

    /// One checkpoint key of the Entra connector: (value, version).
    pub fn checkpoint(&self, key: &str) -> Option<(Vec<u8>, u64)> {
        let store = SqliteCheckpointStore::open(&self.dir.path().join("checkpoints.sqlite"))
            .expect("store opens");
        store
            .get_blocking(
                &format!("{}/{}", self.run.tenant, self.runtime.description().name),
                key,
            )
            .expect("store reads")
    }
}

/// The Entra connector's cursor key in `created` mode.
pub const CURSOR_KEY: &str = "users/created-cursor";

/// The Entra connector's cursor key in `delta` mode (the default).
pub const DELTA_CURSOR_KEY: &str = "users/delta-cursor";

/// The `user.uid` of each event.
pub fn uids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e.pointer("/user/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The ids of the emulator's users.
pub fn user_ids(emulator: &Emulator) -> BTreeSet<String> {
    emulator
        .users()
        .iter()
        .filter_map(|u| u.user.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}
