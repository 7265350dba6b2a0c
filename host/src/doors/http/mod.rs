//! The `http-fetch` door: real HTTP behind the tenant's egress policy.
//!
//! - [`policy`]: the tenant's [`EgressPolicy`] (allowed origins, loopback switch, request
//!   budget, sizes, timeouts);
//! - [`secrets`]: the tenant's secrets, held by the host; placeholders filled only where a
//!   secret may go, and a [`secrets::Scrubber`] for everything the guest hands out;
//! - [`netguard`]: name resolution that refuses non-public addresses;
//! - [`observed`]: what a run's requests met (refusals, error answers), for `check`;
//! - [`client`]: the request path ([`HttpDoor`]) enforcing all of it, and the shared
//!   connection pools ([`HttpClients`]);
//! - this module: the per-run state (`HttpState`), its WIT implementation and linker
//!   registration.

pub mod client;
pub mod netguard;
pub mod observed;
pub mod policy;
pub mod secrets;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use client::{
    http_client, ClientBuildError, FetchFailure, FetchRequest, FetchResponse, HttpClients,
    HttpCounters, HttpDoor,
};
pub use observed::Observed;
pub use policy::{EgressPolicy, InvalidOrigin, Origin};
pub use secrets::{SecretSet, SecretValue};

use super::bindings::connector::runtime::http_fetch;
use super::RunShared;

/// One run's `http-fetch` door.
pub(crate) struct HttpState {
    shared: Arc<RunShared>,
    door: Arc<HttpDoor>,
}

impl HttpState {
    pub fn new(shared: Arc<RunShared>, door: HttpDoor) -> HttpState {
        HttpState {
            shared,
            door: Arc::new(door),
        }
    }

    /// What this run's requests did.
    pub fn counters(&self) -> Arc<HttpCounters> {
        self.door.counters()
    }
}

/// Registers the `http-fetch` interface, served by the [`HttpState`] `get` finds.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut HttpState,
) -> wasmtime::Result<()> {
    http_fetch::add_to_linker::<T, HasSelf<HttpState>>(linker, get)
}

fn request_bytes(r: &http_fetch::Request) -> usize {
    r.method.len()
        + r.url.len()
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + r.body.as_ref().map_or(0, Vec::len)
}

impl http_fetch::Host for HttpState {
    async fn fetch(
        &mut self,
        req: http_fetch::Request,
    ) -> wasmtime::Result<Result<http_fetch::Response, http_fetch::FetchError>> {
        self.shared.enter();
        self.shared.check_call_bytes("fetch", request_bytes(&req))?;
        let door = self.door.clone();
        Ok(door
            .fetch(from_wit(req))
            .await
            .map(to_wit)
            .map_err(fail_to_wit))
    }

    async fn fetch_all(
        &mut self,
        reqs: Vec<http_fetch::Request>,
    ) -> wasmtime::Result<Vec<Result<http_fetch::Response, http_fetch::FetchError>>> {
        self.shared.enter();
        let bytes = reqs.iter().map(request_bytes).sum::<usize>() + reqs.len() * 64;
        self.shared.check_call_bytes("fetch-all", bytes)?;
        let door = self.door.clone();
        let out = door
            .fetch_all(reqs.into_iter().map(from_wit).collect())
            .await;
        Ok(out
            .into_iter()
            .map(|r| r.map(to_wit).map_err(fail_to_wit))
            .collect())
    }
}

fn from_wit(r: http_fetch::Request) -> FetchRequest {
    FetchRequest {
        method: r.method,
        url: r.url,
        headers: r.headers,
        body: r.body,
    }
}

fn to_wit(r: FetchResponse) -> http_fetch::Response {
    http_fetch::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

fn fail_to_wit(f: FetchFailure) -> http_fetch::FetchError {
    match f {
        FetchFailure::Denied(m) => http_fetch::FetchError::Denied(m),
        FetchFailure::Timeout => http_fetch::FetchError::Timeout,
        FetchFailure::TooLarge(n) => http_fetch::FetchError::TooLarge(n),
        FetchFailure::Transport(m) => http_fetch::FetchError::Transport(m),
        FetchFailure::BudgetExhausted => http_fetch::FetchError::BudgetExhausted,
    }
}
