//! What a run can end in, typed so a platform can branch on it and phrased so a person can
//! act on it: every message names the tenant, what failed, and what to do.

/// Why a configuration file — a tenant file or a tenants file — cannot be used: one line
/// naming the file, the line or key, and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The kinds of failure a connector itself reports (mirror of the WIT `connector-error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorErrorKind {
    /// Configuration unusable.
    Config,
    /// Credentials refused by the provider.
    Auth,
    /// Permission missing at the provider.
    Permission,
    /// Provider failed or answered nonsense.
    Upstream,
    /// A host door failed under the connector.
    Host,
}

/// Why a run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The tenant's host-side configuration is unusable.
    #[error("tenant '{tenant}': configuration: {message}")]
    Config {
        /// Tenant key.
        tenant: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A secret could not be loaded.
    #[error("tenant '{tenant}': secret '{name}': {message}")]
    Secret {
        /// Tenant key.
        tenant: String,
        /// Secret name.
        name: String,
        /// Why, and what to do.
        message: String,
    },
    /// The connector ended the run with an error of its own.
    #[error("tenant '{tenant}': {message}")]
    Connector {
        /// Tenant key.
        tenant: String,
        /// Category.
        kind: ConnectorErrorKind,
        /// The connector's one-line explanation.
        message: String,
    },
    /// The component trapped (a bug or hostile code); the host is unaffected.
    #[error(
        "tenant '{tenant}': the connector crashed (trap): {message}; the checkpoint keeps what the connector committed before it (the next run resumes there)"
    )]
    Trap {
        /// Tenant key.
        tenant: String,
        /// The trap, first line.
        message: String,
    },
    /// A sandbox limit stopped the run (memory, CPU, stack, call size).
    #[error("tenant '{tenant}': the connector was stopped by the {} limit: {detail}; the checkpoint keeps what the connector committed before it (the next run resumes there)", kind.as_str())]
    Limit {
        /// Tenant key.
        tenant: String,
        /// Which limit.
        kind: crate::runtime::LimitKind,
        /// What happened, with the limit's value.
        detail: String,
    },
    /// The run exceeded its wall-clock limit and was stopped.
    #[error("tenant '{tenant}': the run exceeded its time limit of {seconds} s and was stopped; the checkpoint keeps what the connector committed before it, and a checkpoint write in flight at that moment may still commit (within the store's lock timeout; the events it covers reached the sink first), so the next run resumes from the last cursor stored")]
    Timeout {
        /// Tenant key.
        tenant: String,
        /// The limit.
        seconds: u64,
    },
    /// The host itself failed (engine, sink, store).
    #[error("tenant '{tenant}': host: {message}")]
    Host {
        /// Tenant key.
        tenant: String,
        /// What failed.
        message: String,
    },
}
