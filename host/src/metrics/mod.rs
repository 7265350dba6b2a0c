//! What `connector-host serve` tells an operator while it runs many tenants: Prometheus
//! metrics on `/metrics` and a health check on `/healthz`, from one small HTTP server.
//!
//! - [`model`]: the metrics ([`Metrics`]), held in `prometheus-client` metrics registered in
//!   a `Registry` that [`Metrics`] owns (a value, not a global), and their exposition.
//! - [`server`]: the endpoint ([`MetricsEndpoint`]): an axum router served by
//!   `axum::serve` from a listener that caps connections, so the endpoint never costs the
//!   runs their file descriptors; and the open-files limit it derives that cap from.
//!
//! A fleet of tenants fails one tenant at a time (a revoked secret, a missing permission,
//! throttling), so every counter carries the tenant key.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `connector_runs_total` | counter | `tenant`, `outcome` = `success` \| `failure` |
//! | `connector_run_failures_total` | counter | `tenant`, `kind` = `config` \| `secret` \| `auth` \| `permission` \| `upstream` \| `host` \| `trap` \| `limit` \| `timeout` |
//! | `connector_runs_cut_total` | counter | `tenant`: runs dropped when the shutdown grace period ended |
//! | `connector_events_total` | counter | `tenant`: events written by successful runs |
//! | `connector_http_requests_total` | counter | `tenant`, `status`: responses of successful runs |
//! | `connector_throttled_total` | counter | `tenant`: 429 responses of successful runs |
//! | `connector_run_duration_seconds` | histogram | none (all tenants; buckets 0.1 s … 3600 s) |
//! | `connector_last_run_duration_seconds` | gauge | `tenant` |
//! | `connector_last_success_timestamp_seconds` | gauge | `tenant` (Unix time; absent before the first success) |
//! | `connector_consecutive_failures` | gauge | `tenant` |
//! | `connector_runs_in_flight`, `connector_runs_waiting`, `connector_pool_capacity`, `connector_tenants` | gauge | none |
//! | `connector_leases_held` | gauge | none: tenant leases this host holds (fleet mode) |
//! | `connector_lease_takeovers_total` | counter | `tenant`: leases taken over from a host whose lease expired |
//! | `connector_fenced_writes_total` | counter | none: checkpoint writes refused for a stale fencing token |
//! | `connector_walk_pages_done` | gauge | `tenant`, `phase`: pages the walk committed in its last phase, as the run under way (read at each scrape) or the last finished run reported (`log.progress`; one series per tenant) |
//! | `connector_walk_wait_seconds` | gauge | `tenant`: the least wait the provider's limits still impose on the walk, when the guest reported one |
//! | `connector_guest_memory_peak_bytes` | gauge | `tenant`: the most linear memory the connector held in the last successful run |
//!
//! A failed run has no [`RunReport`](crate::RunReport), so its HTTP statuses and the events
//! it wrote before failing are not counted; its failure kind is.
//!
//! # Format
//!
//! `/metrics` answers the Prometheus text format, version 0.0.4, with the content type
//! `text/plain; version=0.0.4; charset=utf-8` (`PrometheusText0.0.4` in
//! <https://prometheus.io/docs/instrumenting/content_negotiation>), written by
//! prometheus-client's `encoding::prometheus_text`, not its OpenMetrics encoder: every
//! Prometheus accepts it whatever its `Accept` header prefers, Prometheus 3 included (it
//! fails a scrape whose content type is missing or unparsable; this one is neither), and
//! there is no `# EOF` line to get wrong. It is what the hand-written exposition produced
//! before, line for line (the tests check the same lines), except that series within a
//! family come in hash order rather than by tenant key (no scraper cares), a family with
//! no series yet has no `# HELP`/`# TYPE` lines, and gauges in seconds print as shortest
//! round-trip floats (`1.0`, `1764395012.4418254`). Counters are registered without `_total`: the encoder
//! appends it to the samples and to `# HELP`/`# TYPE`, as the exposition always had them.
//!
//! # Adding a metric
//!
//! A field of `Series` in [`model`] and one line in `Series::register` (name without
//! `_total` for a counter, help text without its final period), then a method of
//! [`Metrics`] that updates it. For example a per-tenant counter
//! `connector_lease_takeovers_total{tenant}`:
//!
//! ```text
//! lease_takeovers: PerTenant,                                        // in Series
//! lease_takeovers: add(r, "connector_lease_takeovers", "Leases taken over from another host"),
//! pub fn record_lease_takeover(&self, tenant: &str) {
//!     self.series.lease_takeovers.get_or_create(&labels(tenant)).inc();
//! }
//! ```
//!
//! and a host-wide gauge `connector_leases_held` is an `IntGauge` field, `add(r, …)`, and
//! `self.series.leases_held.set(n)`.
//!
//! # Measurements
//!
//! Lines of code (without tests, comments and blank lines), before (one 1,023-line
//! `metrics.rs`) and after:
//!
//! | part | before | after |
//! |---|---:|---:|
//! | model and exposition | 452 (224 of them writing the text format) | 431 (57 registering the metrics) |
//! | HTTP server, connection cap, open-files limit | 232 | 423 |
//!
//! The server grew: axum does the HTTP, but `axum::serve` has no header timeout, no
//! connection lifetime and no connection cap, so the capping listener and the stream
//! that carries the deadlines (`server::CappedStream`, which also ends every connection at
//! shutdown) are ours; the 503 over the cap is an axum layer instead of bytes written by
//! hand, and the accept/shutdown loop is axum's.
//!
//! What a render and the record of a run cost at 100 to 10,000 tenants is measured by
//! `cargo bench -p connector-host --bench metrics`; the figures are in the README ("Figures").
pub mod model;
pub mod server;

pub use model::{
    FailureKind, Gauge, GaugeGuard, LiveProgress, Metrics, TenantCounters, DURATION_BUCKETS,
};
pub use server::{
    connection_cap, open_files_limit, raise_open_files_limit, MetricsEndpoint, MAX_CONNECTIONS,
};
