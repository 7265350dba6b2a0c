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
//! Layout: `tenant` (the data), `generate` (seeded tenants, their hard cases and role cases,
//! and [`ScaleSpec`]'s enterprise tenants, generated straight into a directory by
//! [`Emulator::start_scaled`]), `directory` (the live, indexed copy a running server serves,
//! kept compact — see `MEMORY.md` — with the groups, roles and members derived from it, and
//! the membership log `groups/delta` reads), `packed` (the packed JSON text it keeps objects
//! in), `login` (token
//! endpoint), `assertion` (client assertions, the certificate credential, verified for real), `graph` (routing, authentication, throttling), `users`, `relations`,
//! `groups_delta`, `roles` (the role-management API and the [`Tenant::admin_roles`] oracle),
//! `batch` (the Graph endpoints), `registration` (a user's row of the registration-details
//! report, from Microsoft's docs), `odata` (query options, filters and skip tokens), `faults`
//! (injected failures: [`FaultRule`]), `throttle` (rate throttling: [`Throttle`], and the Entra
//! reports limits), `clock` (dates, and the limit windows' [`VirtualClock`]), `server` (axum
//! serving, latency injection and [`Emulator`]).
//!
//! Realistic by default ([`EmulatorConfig::default`]), at least as strict as Microsoft Graph's
//! documentation (each limit cites its source next to the code):
//! - `users/delta`: 200 users a page, or fewer with `Prefer: odata.maxpagesize`, every 5th page of
//!   a round short (half); `groups/delta`: up to 200 groups and 500 member links a page;
//! - member lists (`memberOf`, group members, transitive roles): at most 500 a page whatever
//!   `$top` says; OData casts (`transitiveMembers/microsoft.graph.user`,
//!   `transitiveMemberOf/microsoft.graph.directoryRole`) only as advanced queries
//!   (`ConsistencyLevel: eventual` and `$count=true`);
//! - the Entra reports limits ([`EmulatorConfig::reports_limit`],
//!   [`EmulatorConfig::sign_in_activity_limit`]) on the registration report and on `/users`
//!   requests reading `signInActivity`, `$batch` items one by one;
//! - permissions ([`EmulatorConfig::missing_permissions`]) and licences
//!   ([`EmulatorConfig::premium`], [`EmulatorConfig::p2`]);
//! - query options the docs do not list are refused (registration report `$select`/`$top`,
//!   any option on `authentication/methods`, `$top` on role assignments, …);
//!   [`EmulatorConfig::registration_top`] accepts `$top` on the registration report as
//!   Microsoft's own PowerShell cmdlets use it.
//!
//! Simulation only: [`EmulatorConfig::time_scale`] runs the limit windows on a
//! [`VirtualClock`] k times faster than real time (and `Retry-After` in its seconds), for a
//! benchmark whose client's clocks run k times faster too.
//!
//! `generous: true` restores the earlier, kinder behaviour, for comparison only.
//!
//! Test switches on a running [`Emulator`]: [`Emulator::add_fault`] (canned failures at chosen
//! requests), [`Emulator::set_throttle`] (429 on every n-th request),
//! [`Emulator::set_latency`] (every HTTP answer delayed, asynchronously),
//! [`Emulator::set_registration_top`], [`Emulator::set_premium`], [`Emulator::set_p2`],
//! [`Emulator::set_missing_permissions`], [`Emulator::set_client_certificates`] and
//! [`Emulator::set_assertion_algorithms`] (the app's certificates and the `alg` values its
//! token endpoint accepts on client assertions),
//! [`Emulator::expire_tokens`], [`Emulator::expire_delta_tokens_with`]; counters:
//! [`Emulator::counters`], [`Emulator::reports_throttled`], [`Emulator::throttled_responses`];
//! data changes: [`Emulator::modify_user`] (a change `users/delta` reports) and
//! [`Emulator::modify_relations`] (memberships, roles and methods, which `users/delta` does not
//! report, as in Graph; `groups/delta` reports the membership changes of both).

#![warn(missing_docs)]

mod assertion;
mod batch;
mod clock;
mod directory;
mod faults;
mod generate;
mod graph;
mod groups_delta;
mod login;
mod odata;
mod packed;
mod registration;
mod relations;
mod reply;
mod roles;
mod server;
mod tenant;
mod throttle;
mod users;

pub use clock::VirtualClock;
pub use faults::FaultRule;
pub use generate::{
    hard_case, role_case, ScaleSpec, AUTH_METHOD_TYPES, INITIAL_DOMAIN, VERIFIED_DOMAIN,
};
pub use roles::BUILT_IN_ROLES;
pub use server::{Emulator, RecordedRequest};
pub use tenant::{
    SimUser, Tenant, ADMINISTRATIVE_UNIT_TYPE, DIRECTORY_ROLE_TYPE, GROUP_TYPE, VIA_GROUP,
};
pub use throttle::{RetryAfter, Throttle};

/// Credentials and switches of the simulated tenant.
///
/// [`EmulatorConfig::default`] is realistic Microsoft Graph: the documented page caps, the
/// Entra reports throttle, advanced-query rules on OData casts, a tenant with Entra ID P1 and
/// P2 and an application holding every permission it may ask for. `generous: true` switches
/// the stricter limits off, for comparison only.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// The tenant id accepted in the token URL path (exactly this string).
    pub tenant_id: String,
    /// The only application id the token endpoint knows.
    pub client_id: String,
    /// That application's client secret.
    pub client_secret: String,
    /// The certificates registered on that application (the portal's "Certificates & secrets >
    /// Certificates"; `keyCredentials` is "multi-valued, so you may upload multiple
    /// certificates", certificate-credentials.md), each the text of a PEM `CERTIFICATE`. A token
    /// request may then authenticate with a client assertion signed by one of their keys,
    /// verified for real (see `assertion.rs`): the named certificate (`x5t#S256` or `x5t`), its
    /// validity, the signature, `iss`/`sub`, `aud`, the time range with 5 minutes of skew, and
    /// `jti` replay. Default empty: client secrets only. Change it at run time with
    /// [`Emulator::set_client_certificates`]; an unreadable certificate is refused by
    /// [`Emulator::start`].
    pub client_certificates: Vec<String>,
    /// The `alg` values the tenant accepts on client assertions. Default `["PS256", "RS256"]`
    /// (the current certificate-credentials page says PS256, its earlier versions RS256). Any
    /// other value, e.g. `["RS256"]` alone, makes an assertion signed with an algorithm not
    /// listed fail like a bad signature (AADSTS700027), as some tenants answer to one or the
    /// other. Change it at run time with [`Emulator::set_assertion_algorithms`].
    pub assertion_algorithms: Vec<String>,
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
    /// **For comparison only.** true restores the emulator's earlier, kinder behaviour:
    /// `users/delta` pages up to 999 (`Prefer: odata.maxpagesize`) and never short, no reports
    /// throttling, OData casts on member lists accepted without the advanced-query parameters,
    /// member lists up to 999 per page, `$select`/`$top` accepted on the registration report and
    /// query options accepted on `authentication/methods`. Default false (realistic Graph).
    pub generous: bool,
    /// The tenant has Microsoft Entra ID P2: PIM eligibility
    /// (`roleManagement/directory/roleEligibilityScheduleInstances`) is readable. false: that
    /// endpoint answers 400 `AadPremiumLicenseRequired`. Default true.
    pub p2: bool,
    /// Application permissions the app has NOT been granted (e.g. `"AuditLog.Read.All"`); it
    /// holds every other one. Compared case-insensitively. Default empty. Change it at run time
    /// with [`Emulator::set_missing_permissions`].
    pub missing_permissions: Vec<String>,
    /// The Entra "identity and access reports" limit per app per tenant: at most this many
    /// requests in any sliding window of this length, counted over the registration-details
    /// report (list and by id) and every `/users` request that selects or filters on
    /// `signInActivity` (`$batch` items one by one). Beyond it: 429 `TooManyRequests` with
    /// `Retry-After`. Default `Some((5, 10 s))` (throttling-limits.md); `None`, or
    /// `generous: true`, switches it off.
    pub reports_limit: Option<(u32, std::time::Duration)>,
    /// The stricter limit the same table sets on `GET signInActivity`: at most this many
    /// `/users` requests selecting or filtering on `signInActivity` per sliding window, on top
    /// of [`EmulatorConfig::reports_limit`]. Default `Some((10, 60 s))` ("10 requests per
    /// minute", throttling-limits.md); `None`, or `generous: true`, switches it off.
    pub sign_in_activity_limit: Option<(u32, std::time::Duration)>,
    /// `$top` on the registration-details report list. false (default, strict): refused with
    /// 400 `BadRequest` naming `$top`, because the v1.0 page of the list
    /// (authenticationmethodsroot-list-userregistrationdetails.md) says "This method supports
    /// only the `$filter` and `$orderBy` OData query parameters". true: accepted as Microsoft's
    /// own Entra PowerShell cmdlets use it (`Get-EntraUserRegistrationDetail` /
    /// Microsoft.Graph.Reports send `$top` up to 999 to this endpoint and it works there):
    /// 1..=999 sets the page size; 0, more than 999 or not a number is a 400 naming `$top`.
    /// Without `$top` the page holds 100 rows either way (see `REPORT_PAGE_SIZE`: the docs
    /// give no size; 100 is the default of Graph's directory lists). `$select` stays refused.
    /// Change it at run time with [`Emulator::set_registration_top`].
    pub registration_top: bool,
    /// **Simulation only.** Compresses time for the limit windows: with factor k, every window
    /// the emulator enforces ([`EmulatorConfig::reports_limit`],
    /// [`EmulatorConfig::sign_in_activity_limit`]) is measured on a [`VirtualClock`] running k
    /// times faster than real time, and each `Retry-After` it sends is in virtual seconds, so a
    /// client whose clocks run k times faster too (a guest run with the same time scale) waits
    /// the right real time. Token lifetimes and the dates in answers stay real. Default 1 (real
    /// time); 0 is refused by [`Emulator::start`]. Never set from a tenant file.
    pub time_scale: u32,
    /// The base URL the Graph server writes into the links it hands out (`@odata.nextLink`,
    /// `@odata.deltaLink`, `@odata.context`) instead of its own `http://127.0.0.1:<port>`, for
    /// clients that reach it through a stable name mapped to its socket (the `serve`
    /// simulation: a restart or another host gets a new port, and the links a client stored
    /// must still lead to the same simulated tenant). `None` (default): its own address.
    /// A trailing `/` is dropped.
    pub public_graph_endpoint: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            tenant_id: "00000000-0000-4000-8000-00000000c0de".into(),
            client_id: "11111111-2222-4333-8444-555555555555".into(),
            client_secret: "emulator-Secret-4f9c1".into(),
            client_certificates: Vec::new(),
            assertion_algorithms: assertion::DEFAULT_ALGORITHMS
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
            premium: true,
            member_of_page_size: 4,
            token_lifetime_secs: 3599,
            generous: false,
            p2: true,
            missing_permissions: Vec::new(),
            reports_limit: Some((5, std::time::Duration::from_secs(10))),
            sign_in_activity_limit: Some((10, std::time::Duration::from_secs(60))),
            registration_top: false,
            time_scale: 1,
            public_graph_endpoint: None,
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
    /// `GET /v1.0/roleManagement/directory/roleDefinitions`.
    RoleDefinitions,
    /// `GET /v1.0/roleManagement/directory/roleAssignments`.
    RoleAssignments,
    /// `GET /v1.0/roleManagement/directory/roleEligibilityScheduleInstances`.
    RoleEligibilityScheduleInstances,
    /// `GET /v1.0/groups/delta`.
    GroupsDelta,
}

impl Endpoint {
    /// Every endpoint, in order.
    pub const ALL: [Endpoint; 17] = [
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
        Endpoint::RoleDefinitions,
        Endpoint::RoleAssignments,
        Endpoint::RoleEligibilityScheduleInstances,
        Endpoint::GroupsDelta,
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
