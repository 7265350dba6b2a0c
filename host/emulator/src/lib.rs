//! A deterministic simulated Microsoft Entra ID tenant served over loopback HTTP.
//!
//! The Entra ID connector must be proven against the Graph behaviour it will meet in
//! production — client-credential errors, paging by opaque next links, advanced-query rules,
//! licence errors on `signInActivity`, throttling, per-user relations — without a real tenant,
//! in a CLI demo, end-to-end tests and benchmarks. This crate runs two HTTP/1.1 servers on
//! 127.0.0.1: a login server answering like the Microsoft identity platform's token endpoint,
//! and a Graph server answering the `/v1.0` endpoints the connector reads, from a [`Tenant`]
//! that is either generated from a seed or written by hand.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use graph_emulator::{Emulator, EmulatorConfig, Tenant};
//! let emulator = Emulator::start(Tenant::generated(7, 100), EmulatorConfig::default()).await?;
//! let token_url = emulator.token_url();
//! let users_url = format!("{}/v1.0/users", emulator.graph_endpoint());
//! # let _ = (token_url, users_url);
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `tenant` (the data), `generate` (seeded tenants and their hard cases),
//! `directory` (the live, indexed copy a running server serves, with the groups, roles and
//! members derived from it), `login` (token endpoint), `graph`, `users`, `relations`, `batch`
//! (the Graph endpoints), `odata` (query options and skip tokens), `faults` (injected
//! failures: [`FaultRule`]), `throttle` (rate throttling: [`Throttle`]), `clock` (dates),
//! `server` (hyper plumbing, latency injection and [`Emulator`]).
//!
//! Test switches on a running [`Emulator`]: [`Emulator::add_fault`] (canned failures at chosen
//! requests), [`Emulator::set_throttle`] (429 on every n-th request),
//! [`Emulator::set_latency`] (every HTTP answer delayed, asynchronously),
//! [`Emulator::set_premium`], [`Emulator::expire_tokens`],
//! [`Emulator::expire_delta_tokens_with`]; data changes: [`Emulator::modify_user`] (a change
//! `users/delta` reports) and [`Emulator::modify_relations`] (memberships, roles and methods,
//! which `users/delta` does not report, as in Graph).

#![warn(missing_docs)]

mod batch;
mod clock;
mod directory;
mod faults;
mod generate;
mod graph;
mod login;
mod odata;
mod relations;
mod reply;
mod server;
mod tenant;
mod throttle;
mod users;

pub use faults::FaultRule;
pub use generate::{hard_case, AUTH_METHOD_TYPES, INITIAL_DOMAIN, VERIFIED_DOMAIN};
pub use server::Emulator;
pub use tenant::{
    SimUser, Tenant, ADMINISTRATIVE_UNIT_TYPE, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP,
};
pub use throttle::{RetryAfter, Throttle};

/// Credentials and switches of the simulated tenant.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// The tenant id accepted in the token URL path (exactly this string).
    pub tenant_id: String,
    /// The only application id the token endpoint knows.
    pub client_id: String,
    /// That application's client secret.
    pub client_secret: String,
    /// false: any /users request selecting signInActivity answers the real 403 (code
    /// Authentication_RequestFromNonPremiumTenantOrB2CTenant); the registration-details report
    /// answers the same.
    pub premium: bool,
    /// Page size of /memberOf, transitive roles and /authentication/methods lists when the
    /// request has no $top (Graph uses 100; a small default makes some generated users need
    /// several pages).
    pub member_of_page_size: usize,
    /// Token lifetime in seconds (3599 by default).
    pub token_lifetime_secs: u64,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            tenant_id: "00000000-0000-4000-8000-00000000c0de".into(),
            client_id: "11111111-2222-4333-8444-555555555555".into(),
            client_secret: "emulator-secret".into(),
            premium: true,
            member_of_page_size: 4,
            token_lifetime_secs: 3599,
        }
    }
}

/// Which Graph endpoint a request hit, for counters, fault rules and throttling.
///
/// The discriminants follow the declaration order and [`Endpoint::ALL`] lists every variant in
/// that order; new variants are added at the end so existing positions never move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /{tenant}/oauth2/v2.0/token` on the login server.
    Token,
    /// `GET /v1.0/users` (and `GET /v1.0/users/{id}`).
    Users,
    /// `GET /v1.0/users/delta`.
    UsersDelta,
    /// `GET /v1.0/users/{id}/memberOf`.
    MemberOf,
    /// `GET /v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole`.
    TransitiveRoles,
    /// `GET /v1.0/users/{id}/authentication/methods`.
    AuthMethods,
    /// `GET /v1.0/groups`.
    Groups,
    /// `GET /v1.0/directoryRoles`.
    DirectoryRoles,
    /// `GET /v1.0/directoryRoles/{id}/members`: the role's direct members, users and
    /// role-assignable groups.
    DirectoryRoleMembers,
    /// `GET /v1.0/reports/authenticationMethods/userRegistrationDetails` and
    /// `GET /v1.0/reports/authenticationMethods/userRegistrationDetails/{id}`.
    RegistrationDetails,
    /// `POST /v1.0/$batch` (its sub-requests count under their own endpoints).
    Batch,
    /// Anything else, on either server.
    Other,
    /// `GET /v1.0/groups/{id}/members` and
    /// `GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user`.
    GroupMembers,
}

impl Endpoint {
    /// Every endpoint, in order.
    pub const ALL: [Endpoint; 13] = [
        Endpoint::Token,
        Endpoint::Users,
        Endpoint::UsersDelta,
        Endpoint::MemberOf,
        Endpoint::TransitiveRoles,
        Endpoint::AuthMethods,
        Endpoint::Groups,
        Endpoint::DirectoryRoles,
        Endpoint::DirectoryRoleMembers,
        Endpoint::RegistrationDetails,
        Endpoint::Batch,
        Endpoint::Other,
        Endpoint::GroupMembers,
    ];

    /// Position in [`Endpoint::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_sits_at_its_index() {
        for (position, endpoint) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(endpoint.index(), position, "{endpoint:?}");
        }
        let mut sorted = Endpoint::ALL;
        sorted.sort();
        assert_eq!(sorted, Endpoint::ALL, "ALL is in declaration order");
    }
}
