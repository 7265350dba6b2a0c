//! A deliberately hostile connector component.
//!
//! It implements the `asset-connector` world like a real connector, but its `run` does
//! whatever the config key `attack` says: spin forever, exhaust memory or stack, flood or
//! poison the event sink, fetch where the egress policy forbids, leak a secret to the
//! wrong host, hand a secret a server echoed back out through every door, probe the sandbox
//! for environment, files and sockets, reach for other tenants' checkpoints, push the
//! checkpoint batches past their limits, or report a hostile progress and spin; or, in `upstream` mode, behave: read an upstream service and emit (the two-component serve test). The end-to-end tests run it in the real host to prove the host
//! contains each attack. It exists for those tests only; never deploy it.
//!
//! The code is compiled for wasm32 only; natively (`cargo test --workspace`) this crate
//! is empty.

#[cfg(target_arch = "wasm32")]
mod hostile;
