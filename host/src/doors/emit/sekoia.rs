//! Events pushed to a Sekoia.io asset connector (`[sink] kind = "sekoia"`), the platform the
//! seed connector was written for.
//!
//! `POST {base_url}/api/v2/asset-management/asset-connector/{connector_uuid}` with
//! `Authorization: Bearer <api key>` and the JSON body `{"version": 1, "items": [<OCSF
//! event>, …]}`; an error answer carries `code` and `message`. This is what Sekoia.io's own
//! SDK sends and reads (`SEKOIA-IO/sekoia-automation-sdk`,
//! `sekoia_automation/asset_connector/__init__.py`: `asset_connector_endpoint`,
//! `_http_header`, `post_assets_to_api`, `AssetList(version=1, items=…)`). Where an
//! acknowledgement's JSON body names a `task_id` (the platform processes a push as a task),
//! it is recorded ([`PushSink::receipts`]) for the run report.
//!
//! Batching, acknowledgement, retries and egress are [`super::push`]'s.

use std::sync::Arc;

use super::push::{PushFormat, PushOptions, PushSink, PushTarget};
use super::sink::SinkError;
use crate::doors::http::netguard::NameResolver;

/// The asset-connector wire format: `{"version": 1, "items": [...]}`.
pub struct SekoiaAssets;

impl PushFormat for SekoiaAssets {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn kind(&self) -> &'static str {
        "Sekoia.io"
    }

    /// The events are JSON objects already (checked by the `emit-event` door): they are
    /// joined into the body as they are, never parsed again.
    fn body(&self, events: &[String]) -> Vec<u8> {
        let len = events.iter().map(|e| e.len() + 1).sum::<usize>() + 32;
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(br#"{"version":1,"items":["#);
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e.as_bytes());
        }
        body.extend_from_slice(b"]}");
        body
    }

    fn receipt(&self, body: &[u8]) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Accepted {
            task_id: Option<serde_json::Value>,
        }
        let accepted: Accepted = serde_json::from_slice(body).ok()?;
        match accepted.task_id? {
            serde_json::Value::String(s) if !s.is_empty() && s.len() <= 128 => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// The push URL of an asset connector: `base_url` (a trailing `/` dropped, a path prefix
/// kept) and the connector's UUID.
pub fn asset_connector_url(base_url: &str, connector_uuid: &str) -> String {
    format!(
        "{}/api/v2/asset-management/asset-connector/{}",
        base_url.trim().trim_end_matches('/'),
        connector_uuid.trim()
    )
}

impl PushSink {
    /// A sink pushing to the asset connector `connector_uuid` of the Sekoia.io API at
    /// `base_url` with `api_key`.
    pub fn sekoia(
        base_url: &str,
        connector_uuid: &str,
        api_key: String,
        options: PushOptions,
        resolver: Arc<dyn NameResolver>,
    ) -> Result<PushSink, SinkError> {
        PushSink::new(
            PushTarget {
                url: asset_connector_url(base_url, connector_uuid),
                header: "Authorization".into(),
                value: format!("Bearer {api_key}"),
                secret: api_key,
            },
            Box::new(SekoiaAssets),
            options,
            resolver,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_events_joined_into_version_and_items() {
        let events = vec![
            r#"{"a":1}"#.to_string(),
            r#"{"b":[2,{"c":"é"}]}"#.to_string(),
        ];
        let body = SekoiaAssets.body(&events);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"version": 1, "items": [{"a": 1}, {"b": [2, {"c": "é"}]}]})
        );
        let empty: serde_json::Value = serde_json::from_slice(&SekoiaAssets.body(&[])).unwrap();
        assert_eq!(empty, serde_json::json!({"version": 1, "items": []}));
    }

    #[test]
    fn a_task_id_is_recorded_when_the_answer_names_one() {
        assert_eq!(
            SekoiaAssets.receipt(br#"{"task_id": "0b6c2f9e-1", "status": "accepted"}"#),
            Some("0b6c2f9e-1".into())
        );
        assert_eq!(
            SekoiaAssets.receipt(br#"{"task_id": 42}"#),
            Some("42".into())
        );
        for none in [
            &b""[..],
            b"{}",
            b"not json",
            br#"{"task_id": null}"#,
            br#"{"task_id": ""}"#,
        ] {
            assert_eq!(SekoiaAssets.receipt(none), None);
        }
    }

    #[test]
    fn the_url_joins_base_and_uuid() {
        assert_eq!(
            asset_connector_url("https://api.sekoia.io/", "04716e25-c97f-4a22-925e-8b636ad9c8a4"),
            "https://api.sekoia.io/api/v2/asset-management/asset-connector/04716e25-c97f-4a22-925e-8b636ad9c8a4"
        );
        assert_eq!(
            asset_connector_url("https://example.test/prefix", "u"),
            "https://example.test/prefix/api/v2/asset-management/asset-connector/u"
        );
    }
}
