//! Events POSTed as NDJSON to an HTTP intake (`[sink] kind = "http"`): Cribl Stream's HTTP
//! source, Vector's `http_server` source (`decoding.codec = "json"`, `framing.method =
//! "newline_delimited"`), Logstash's `http` input with the `json_lines` codec, a data lake's
//! intake. One event per line, each line ending in `\n`, `Content-Type:
//! application/x-ndjson`; the credential goes in one configured header (e.g.
//! `Authorization: Bearer …`), its whole value a host-side secret.
//!
//! Batching, acknowledgement (any 2xx), retries and egress are [`super::push`]'s.

use std::sync::Arc;

use super::push::{PushFormat, PushOptions, PushSink, PushTarget};
use super::sink::SinkError;
use crate::doors::http::netguard::NameResolver;

/// Newline-delimited JSON: each event on its own line.
pub struct Ndjson;

impl PushFormat for Ndjson {
    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn body(&self, events: &[String]) -> Vec<u8> {
        let mut body = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum());
        for e in events {
            body.extend_from_slice(e.as_bytes());
            body.push(b'\n');
        }
        body
    }
}

impl PushSink {
    /// A sink POSTing NDJSON batches to `url`, with `header: value` on every request.
    pub fn ndjson(
        url: &str,
        header: &str,
        value: String,
        options: PushOptions,
        resolver: Arc<dyn NameResolver>,
    ) -> Result<PushSink, SinkError> {
        PushSink::new(
            PushTarget {
                url: url.to_string(),
                header: header.to_string(),
                secret: value.clone(),
                value,
            },
            Box::new(Ndjson),
            options,
            resolver,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_one_line() {
        let events = vec![r#"{"a":1}"#.to_string(), r#"{"b":2}"#.to_string()];
        assert_eq!(Ndjson.body(&events), b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(Ndjson.body(&[]), b"");
    }
}
