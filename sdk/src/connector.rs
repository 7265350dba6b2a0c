//! The one trait a connector implements, and the plain data it answers with.
//!
//! Why it exists: the WIT `connector` interface has four functions — `describe`, `egress`,
//! `check`, `run` — and every connector answers them the same way around its own logic:
//! parse the configuration, then act through the doors. [`Connector`] is that shape in Rust;
//! `export_connector!` turns an implementation into the component's exports, and a
//! connector's tests call the same functions natively with `doors::fake::FakeDoors`.

use crate::doors::Doors;
use crate::error::ConnectorError;
use crate::report::Report;

/// Static facts about a connector (the WIT `description`).
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// Stable connector name (`entra-id-users`).
    pub name: &'static str,
    /// The connector's version.
    pub version: &'static str,
    /// Permissions the connector needs of the provider, for the operator.
    pub permissions: &'static [&'static str],
    /// (key, required, description) of every configuration key.
    pub config_keys: &'static [(&'static str, bool, &'static str)],
    /// (name, description) of every secret the host holds for it.
    pub secrets: &'static [(&'static str, &'static str)],
    /// OCSF classes emitted.
    pub event_classes: &'static [u32],
}

/// Where a run with a configuration sends requests (the WIT `egress-plan`), computed without
/// I/O: the origins it calls, and which origins each secret may be sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressPlan {
    /// Origins the connector calls.
    pub origins: Vec<String>,
    /// (secret name, origins it may be sent to).
    pub secrets: Vec<(String, Vec<String>)>,
}

/// One result of `check` (the WIT `probe`).
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// What was probed (a source, a permission).
    pub name: String,
    /// Whether it worked.
    pub ok: bool,
    /// One line: what was found or why it failed.
    pub detail: String,
}

/// A configuration mistake, phrased for the operator (one line: the key, what is wrong, what
/// to write instead).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for ConnectorError {
    fn from(e: ConfigError) -> Self {
        ConnectorError::Config(e.0)
    }
}

/// A connector: static facts, its configuration, and what it does through the doors.
/// Every function is called afresh by the host (a component keeps nothing between calls but
/// what it stores in the checkpoint doors).
pub trait Connector {
    /// The parsed configuration.
    type Config;

    /// Static facts (no configuration, no I/O).
    fn describe() -> Description;

    /// Parses the tenant's configuration pairs; a mistake is one line for the operator.
    fn parse(pairs: &[(String, String)]) -> Result<Self::Config, ConfigError>;

    /// Where a run of `config` sends requests (no I/O).
    fn egress(config: &Self::Config) -> EgressPlan;

    /// Probes the credentials and permissions of `config` without emitting anything.
    fn check<D: Doors>(doors: &D, config: &Self::Config) -> Result<Vec<Probe>, ConnectorError>;

    /// One run: read the provider, emit events, move the cursor.
    fn run<D: Doors>(doors: &D, config: &Self::Config) -> Result<Report, ConnectorError>;
}

/// The value of `key` among a tenant's configuration pairs.
pub fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `scheme://host[:port]` of an endpoint URL whose scheme the configuration checked: what
/// comes before the first `/`, `?` or `#` after `://` (an egress plan's origin).
pub fn origin_of(endpoint: &str) -> String {
    let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
    match endpoint[after_scheme..].find(['/', '?', '#']) {
        Some(end) => endpoint[..after_scheme + end].to_string(),
        None => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_by_its_key() {
        let pairs = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        assert_eq!((value(&pairs, "b"), value(&pairs, "c")), (Some("2"), None));
    }

    #[test]
    fn an_origin_is_what_comes_before_the_path() {
        assert_eq!(origin_of("https://api.test/v1/users"), "https://api.test");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            origin_of("http://127.0.0.1:8080?x#y"),
            "http://127.0.0.1:8080"
        );
    }
}
