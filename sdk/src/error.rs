//! The error type of every connector: what a run or check can end in, in the WIT's
//! categories (`connector-error`), so the host can tell a configuration mistake from a
//! refused credential, a missing permission, a failing provider or a failing door.
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
            ConnectorError::Upstream(m) => write!(f, "upstream service: {m}"),
            ConnectorError::Host(m) => write!(f, "host: {m}"),
        }
    }
}

impl ConnectorError {
    /// Classifies a transport-level failure of a request to `what` (`service` names the
    /// provider in the advice: "Microsoft Graph").
    pub fn from_fetch(service: &str, what: &str, e: &FetchError) -> ConnectorError {
        match e {
            FetchError::Denied(_) | FetchError::BudgetExhausted | FetchError::TooLarge(_) => {
                ConnectorError::Host(format!("{what}: {e}"))
            }
            FetchError::Timeout | FetchError::Transport(_) => ConnectorError::Upstream(format!(
                "{what}: {e}; check the network path to {service} and run again"
            )),
        }
    }
}

impl std::error::Error for ConnectorError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_or_oversized_fetch_is_the_hosts_and_a_network_failure_the_providers() {
        let denied =
            ConnectorError::from_fetch("Okta", "listing users", &FetchError::Denied("x".into()));
        assert!(matches!(denied, ConnectorError::Host(_)), "{denied:?}");
        let timeout = ConnectorError::from_fetch("Okta", "listing users", &FetchError::Timeout);
        assert_eq!(
            timeout,
            ConnectorError::Upstream(
                "listing users: timed out; check the network path to Okta and run again".into()
            )
        );
        assert!(timeout
            .to_string()
            .starts_with("upstream service: listing users"));
    }
}
