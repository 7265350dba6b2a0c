//! A deterministic simulated Okta org served over loopback HTTP, written from Okta's
//! documentation (never from a connector's code), at least as strict as Okta.
//!
//! It serves the Management API reads an inventory connector makes — users (Link-header paging
//! with opaque `after` cursors, DEPROVISIONED users left out unless `search`/`filter` asks,
//! `search` on an eventually consistent index with a configurable lag, 404 after deletion),
//! groups and members, admin roles (assignees, user and group assignments, custom roles),
//! factors, the System Log (polling with `since`/`after` and `next` links, 90-day retention) —
//! and the org authorization server's token endpoint (OAuth 2.0 service apps with
//! `private_key_jwt`, DPoP with nonces), behind Okta's rate limits (per-bucket one-minute
//! windows with `X-Rate-Limit-*` headers, each client held to 50% of a bucket, a cap on
//! requests in flight) and per-endpoint scopes. Every behaviour cites its source next to the
//! code; OKTA.md (copied from the project's design notes) summarises the API facts.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use okta_emulator::{Emulator, OktaClock, OktaConfig, Org};
//! let clock = OktaClock::manual(1_780_000_000_000);
//! let org = Org::generated(7, 100, clock.now_ms());
//! let emulator = Emulator::start(org, OktaConfig::default(), clock.clone()).await?;
//! let users_url = format!("{}/api/v1/users", emulator.base_url());
//! // Authorization: SSWS {OktaConfig::default().api_tokens[0]}
//! # let _ = users_url;
//! clock.advance(std::time::Duration::from_secs(60)); // a new rate-limit window, no sleeping
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `model` (the org and the changes tests make, each logging its System Log event),
//! `generate` (seeded orgs with the hard cases), `query` (`search`/`filter` expressions,
//! cursors), `limits` (buckets, shares, concurrency), `auth` (SSWS, `private_key_jwt`, DPoP),
//! `api` (the endpoints), `server` (HTTP and the [`Emulator`] handle), `clock`
//! ([`OktaClock`]), `reply` (Okta's error bodies).

#![warn(missing_docs)]

mod api;
mod auth;
mod clock;
mod generate;
mod limits;
mod model;
mod query;
mod reply;
mod server;

use std::collections::HashMap;

pub use auth::{AppKey, ServiceApp, JWT_BEARER, SCOPES};
pub use clock::{format_ms, parse_time, OktaClock};
pub use generate::{LOGIN_DOMAIN, ORG_ID};
pub use limits::{Bucket, NOISY_NEIGHBOUR, WINDOW_SECS};
pub use model::{
    role_label, ChangeError, CustomRole, DeleteOutcome, DeletedUser, Factor, LogEvent, OktaGroup,
    OktaUser, Org, RoleAssignment, FACTOR_STATUSES, FACTOR_TYPES, LOG_RETENTION_MS, ROLE_TYPES,
    USER_STATUSES,
};
pub use server::{Emulator, Fault, Stats};

/// The default API token ([`OktaConfig::api_tokens`]).
pub const DEFAULT_API_TOKEN: &str = "00emulatorSSWStoken0000000000000000000000";

/// The default service app's client id.
pub const DEFAULT_CLIENT_ID: &str = "0oa1emulatorservice7";

/// The org's credentials and limits. [`OktaConfig::default`] is Okta's documented defaults.
#[derive(Clone, Debug)]
pub struct OktaConfig {
    /// API tokens accepted as `Authorization: SSWS <token>` (each acts with every read scope).
    pub api_tokens: Vec<String>,
    /// OAuth 2.0 service apps (default: [`DEFAULT_CLIENT_ID`], no keys registered, every
    /// scope in [`SCOPES`] granted, DPoP not required). Add a key before asking for tokens.
    pub service_apps: Vec<ServiceApp>,
    /// Org-wide requests per minute per bucket; a bucket not listed has
    /// [`Bucket::default_limit`].
    pub rate_limits: HashMap<Bucket, u32>,
    /// Each client's share of every bucket, in percent (Okta's default 50).
    pub client_share_percent: u32,
    /// Requests in flight allowed at once (Okta's default 75 per org).
    pub concurrency_limit: u32,
    /// How far the `search` index lags behind the org, in milliseconds (Okta: "typically under
    /// a second"; default 1,000).
    pub search_lag_ms: i64,
    /// Access token lifetime (Okta: "fixed at one hour").
    pub token_lifetime_secs: i64,
    /// The org URL written into links and expected in `aud`/`htu`, instead of
    /// `http://127.0.0.1:<port>`.
    pub public_base: Option<String>,
    /// Whether `/api/v1/iam/assignees/users` lists users holding a role only through a group
    /// (undocumented; default false, the strict reading).
    pub assignees_include_group_held: bool,
    /// Whether `/api/v1/users/{id}/roles` lists roles held through groups (`assignmentType`
    /// `GROUP`; undocumented, OKTA.md marks it unverified; default false, the strict reading).
    pub user_roles_include_group_held: bool,
}

impl Default for OktaConfig {
    fn default() -> OktaConfig {
        OktaConfig {
            api_tokens: vec![DEFAULT_API_TOKEN.to_owned()],
            service_apps: vec![ServiceApp {
                client_id: DEFAULT_CLIENT_ID.to_owned(),
                keys: Vec::new(),
                scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                require_dpop: false,
            }],
            rate_limits: HashMap::new(),
            client_share_percent: 50,
            concurrency_limit: 75,
            search_lag_ms: 1_000,
            token_lifetime_secs: 3_600,
            public_base: None,
            assignees_include_group_held: false,
            user_roles_include_group_held: false,
        }
    }
}
