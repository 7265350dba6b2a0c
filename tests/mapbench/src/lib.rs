//! The Entra connector's OCSF mapping (`entra_connector::ocsf`) inside a component, so
//! `tests/benches/mapping.rs` can compare its throughput with the same code built natively.
//!
//! `run(config)`: `users` is a JSON array of Graph users, `rounds` how often to map them
//! all. Each user is mapped with the same enrichment the native side uses
//! ([`bench_enrichment`]) and serialised; nothing is emitted, so only mapping and
//! serialisation are measured. The report's `items-seen` is the number of events made and
//! `requests` the bytes of JSON produced (a check that the work was not optimised away).

#[cfg(target_arch = "wasm32")]
mod component {
    use entra_connector::ocsf::{map_user, MapContext};

    wit_bindgen::generate!({
        path: "../../wit",
        world: "asset-connector",
    });

    use exports::connector::runtime::connector as api;

    include!("enrichment.rs");

    struct Bench;

    impl api::Guest for Bench {
        fn describe() -> api::Description {
            api::Description {
                name: "mapping-bench".into(),
                version: "0.0.1".into(),
                permissions: vec![],
                config_keys: vec![],
                secrets: vec![],
                event_classes: vec![5003],
            }
        }

        fn egress(_: api::Config) -> Result<api::EgressPlan, api::ConnectorError> {
            Ok(api::EgressPlan {
                origins: Vec::new(),
                secrets: Vec::new(),
            })
        }

        fn check(_: api::Config) -> Result<Vec<api::Probe>, api::ConnectorError> {
            Ok(vec![])
        }

        fn run(config: api::Config) -> Result<api::RunReport, api::ConnectorError> {
            let get = |k: &str| {
                config
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            let users: Vec<serde_json::Value> = serde_json::from_str(get("users").unwrap_or("[]"))
                .map_err(|e| api::ConnectorError::Config(format!("users: {e}")))?;
            let rounds: u64 = get("rounds").and_then(|r| r.parse().ok()).unwrap_or(1);
            let enrichment = bench_enrichment();
            let ctx = MapContext {
                tenant_uid: "bench-tenant",
                collected_at_ms: 1_750_000_000_000,
                connector_version: "0.1.0",
            };
            let (mut events, mut bytes) = (0u64, 0u64);
            for _ in 0..rounds {
                for u in &users {
                    if let Ok(e) = map_user(u, &enrichment, &ctx) {
                        bytes += e.to_string().len() as u64;
                        events += 1;
                    }
                }
            }
            Ok(api::RunReport {
                items_seen: events,
                events_emitted: 0,
                items_skipped: 0,
                items_partial: 0,
                requests: bytes,
                full_sync: true,
                warnings: vec![],
                unavailable: vec![],
            })
        }
    }

    export!(Bench);
}
