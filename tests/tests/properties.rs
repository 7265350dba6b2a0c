//! Property test (proptest) of the mapping on hostile Graph JSON: `map_user` on arbitrary
//! Graph-user-shaped objects (every property the connector selects, with values of any JSON
//! type, odd strings and almost-right timestamps, unknown extra keys, sometimes not an object
//! at all) and arbitrary enrichment, checked with the tests' OCSF checker
//! ([`ocsf_check::violations`]: the official OCSF 1.8.0 schema plus MAPPING.md's rules).
//! The generators are the guest's (`guest/tests/strategies/`).
//!
//! CI runs 256 cases (proptest's default). The million-case run:
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release -p e2e-tests --test properties
//! ```

#[path = "../../guest/tests/strategies/mod.rs"]
mod strategies;

use entra_connector::ocsf::{map_user, MapContext, MapError};
use proptest::prelude::*;
use serde_json::{json, Value};
use strategies::{enrichment, graph_user};

const CTX: MapContext<'static> = MapContext {
    tenant_uid: "contoso.onmicrosoft.com",
    collected_at_ms: 1_700_000_000_000,
    connector_version: "0.1.0",
};

proptest! {
    /// Whatever Graph sends, a user with a non-blank string `id` maps to one OCSF 5003 event
    /// that passes the OCSF checker and carries that id as `user.uid`; any other user
    /// is `MissingId` (skipped and counted). Never a panic.
    #[test]
    fn hostile_graph_user_json_maps_to_a_valid_event_or_is_skipped(
        user in graph_user(),
        enrichment in enrichment(),
    ) {
        let id = user
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.trim().is_empty());
        match map_user(&user, &enrichment, &CTX) {
            Ok(event) => {
                prop_assert!(event.is_object(), "{}", event);
                prop_assert_eq!(&event["class_uid"], &json!(5003));
                prop_assert!(id.is_some(), "mapped a user without a usable id: {}", user);
                prop_assert_eq!(event["user"]["uid"].as_str(), id);
                let violations: Vec<String> = ocsf_check::violations(&event)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                prop_assert!(
                    violations.is_empty(),
                    "{}\nuser: {}\nevent: {}",
                    violations.join("\n"),
                    user,
                    event
                );
            }
            Err(MapError::MissingId) => {
                prop_assert!(id.is_none(), "a usable id was refused: {}", user);
            }
        }
    }
}
