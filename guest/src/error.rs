//! The connector's error type: what a run or check can end in, in the WIT's categories.
//!
//! Each variant carries one line for a person: what failed, for which tenant, what to do.

use crate::doors::FetchError;

/// Why a run or check failed (mirror of `connector-error`).
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectorError {
    /// The configuration is unusable.
    Config(String),
    /// The provider refused the credentials.
    Auth(String),
    /// The provider refused for lack of permission.
    Permission(String),
    /// The provider failed or answered nonsense; retry later.
    Upstream(String),
    /// A host door failed.
    Host(String),
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectorError::Config(m) => write!(f, "configuration: {m}"),
            ConnectorError::Auth(m) => write!(f, "authentication: {m}"),
            ConnectorError::Permission(m) => write!(f, "permission: {m}"),
            ConnectorError::Upstream(m) => write!(f, "Microsoft Graph: {m}"),
            ConnectorError::Host(m) => write!(f, "host: {m}"),
        }
    }
}

impl ConnectorError {
    /// Classifies a transport-level failure of a request to `what`.
    pub fn from_fetch(what: &str, e: &FetchError) -> ConnectorError {
        match e {
            FetchError::Denied(_) | FetchError::BudgetExhausted | FetchError::TooLarge(_) => {
                ConnectorError::Host(format!("{what}: {e}"))
            }
            FetchError::Timeout | FetchError::Transport(_) => ConnectorError::Upstream(format!(
                "{what}: {e}; check the network path to Microsoft Graph and run again"
            )),
        }
    }
}
