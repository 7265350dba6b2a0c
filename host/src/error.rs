//! What a run can end in, typed so a platform can branch on it and phrased so a person can
//! act on it: every message names the tenant, what failed, and what to do.

pub use crate::doors::log::Progress;

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
        "tenant '{tenant}': the connector crashed (trap): {message}; {} (the next run resumes there)", kept(progress.as_deref())
    )]
    Trap {
        /// Tenant key.
        tenant: String,
        /// The trap, first line.
        message: String,
        /// The run's last progress (what the checkpoint kept), if the connector reported one.
        progress: Option<Box<Progress>>,
    },
    /// A sandbox limit stopped the run (memory, CPU, stack, call size).
    #[error("tenant '{tenant}': the connector was stopped by the {} limit: {detail}; {} (the next run resumes there)", kind.as_str(), kept(progress.as_deref()))]
    Limit {
        /// Tenant key.
        tenant: String,
        /// Which limit.
        kind: crate::runtime::LimitKind,
        /// What happened, with the limit's value.
        detail: String,
        /// The run's last progress (what the checkpoint kept), if the connector reported one.
        progress: Option<Box<Progress>>,
    },
    /// The run exceeded its wall-clock limit and was stopped.
    #[error("tenant '{tenant}': the run exceeded its time limit of {seconds} s and was stopped; {}, and a checkpoint write in flight at that moment may still commit (within the store's lock timeout; the events it covers reached the sink first), so the next run resumes from the last cursor stored", kept(progress.as_deref()))]
    Timeout {
        /// Tenant key.
        tenant: String,
        /// The limit.
        seconds: u64,
        /// The run's last progress (what the checkpoint kept), if the connector reported one.
        progress: Option<Box<Progress>>,
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

/// What the checkpoint kept when a run was stopped: the last progress the connector reported
/// (it reports one after each commit, WIT `log.progress`), else the general rule.
fn kept(progress: Option<&Progress>) -> String {
    match progress {
        Some(p) => format!(
            "the checkpoint keeps phase '{}', {} pages committed",
            p.phase, p.pages_done
        ),
        None => "the checkpoint keeps what the connector committed before it".into(),
    }
}

impl RunError {
    /// The failure's kind as one word — `config`, `secret`, `auth`, `permission`,
    /// `upstream`, `host`, `trap`, `limit`, `timeout` — the same as `/metrics`' `kind`
    /// label (`crate::metrics::FailureKind`; a test holds the two to one table). The run
    /// status records it beside the error.
    pub fn kind_label(&self) -> &'static str {
        match self {
            RunError::Config { .. } => "config",
            RunError::Secret { .. } => "secret",
            RunError::Connector { kind, .. } => match kind {
                ConnectorErrorKind::Config => "config",
                ConnectorErrorKind::Auth => "auth",
                ConnectorErrorKind::Permission => "permission",
                ConnectorErrorKind::Upstream => "upstream",
                ConnectorErrorKind::Host => "host",
            },
            RunError::Trap { .. } => "trap",
            RunError::Limit { .. } => "limit",
            RunError::Timeout { .. } => "timeout",
            RunError::Host { .. } => "host",
        }
    }

    /// The run's last progress, for an error that stopped a running connector.
    pub fn progress(&self) -> Option<&Progress> {
        match self {
            RunError::Trap { progress, .. }
            | RunError::Limit { progress, .. }
            | RunError::Timeout { progress, .. } => progress.as_deref(),
            _ => None,
        }
    }

    /// This error with the run's last progress attached (to a trap, a limit or a timeout).
    pub fn with_progress(mut self, latest: Option<Progress>) -> RunError {
        if let RunError::Trap { progress, .. }
        | RunError::Limit { progress, .. }
        | RunError::Timeout { progress, .. } = &mut self
        {
            *progress = latest.map(Box::new);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_run_says_which_phase_the_checkpoint_keeps() {
        let timeout = RunError::Timeout {
            tenant: "contoso".into(),
            seconds: 3,
            progress: None,
        };
        let generic = timeout.to_string();
        assert!(
            generic.contains("the checkpoint keeps what the connector committed before it"),
            "{generic}"
        );
        let p = Progress {
            phase: "users".into(),
            pages_done: 12,
            ..Progress::default()
        };
        let named = timeout.with_progress(Some(p.clone())).to_string();
        assert!(
            named.contains("the checkpoint keeps phase 'users', 12 pages committed, and a checkpoint write in flight")
                && !named.contains('\n'),
            "{named}"
        );
        let limit = RunError::Limit {
            tenant: "contoso".into(),
            kind: crate::runtime::LimitKind::Memory,
            detail: "over".into(),
            progress: Some(Box::new(p)),
        };
        assert!(
            limit
                .to_string()
                .ends_with("the checkpoint keeps phase 'users', 12 pages committed (the next run resumes there)"),
            "{limit}"
        );
    }
}
