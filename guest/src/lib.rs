//! The Microsoft Entra ID user connector: Graph users in, OCSF 5003 "User Inventory Info"
//! events out, as a WebAssembly component that reaches the world only through the host's
//! doors (`http-fetch`, `kv-checkpoint`, `emit-event`, `log`).
//!
//! Where a Graph page becomes OCSF events: `sync/delta.rs` (or `sync/created.rs`) reads a
//! page through `graph/`, `sync/mod.rs` enriches it (`enrich.rs`), maps each user with
//! `ocsf.rs` (a pure function) and emits the events, and the mode's code moves the cursor.
//! The provider-neutral parts — doors, WIT glue, emit batching, the state cell, retries,
//! paging, time, the OCSF envelope — are the `connector-sdk` crate's; [`EntraConnector`]
//! is the SDK's `Connector` and `export_connector!` makes it the component.

pub mod check;
pub mod config;
pub mod enrich;
pub mod facts;
pub mod graph;
pub mod ocsf;
pub mod sync;
#[cfg(test)]
mod testing;

use connector_sdk::connector::{origin_of, ConfigError, Connector, Description, EgressPlan, Probe};
use connector_sdk::{ConnectorError, Doors, Report};

/// The connector's stable name, reported in `describe` and in every event's
/// `metadata.loggers`.
pub const NAME: &str = "entra-id-users";

/// The connector's version, reported in `describe` and in every event's `metadata.loggers`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Entra ID connector, as the SDK runs it.
pub struct EntraConnector;

impl Connector for EntraConnector {
    type Config = config::Config;

    fn describe() -> Description {
        describe()
    }

    fn parse(pairs: &[(String, String)]) -> Result<config::Config, ConfigError> {
        config::Config::parse(pairs)
    }

    fn egress(config: &config::Config) -> EgressPlan {
        egress(config)
    }

    fn check<D: Doors>(doors: &D, config: &config::Config) -> Result<Vec<Probe>, ConnectorError> {
        check::check(doors, config)
    }

    fn run<D: Doors>(doors: &D, config: &config::Config) -> Result<Report, ConnectorError> {
        sync::run(doors, config, VERSION)
    }
}

#[cfg(feature = "component")]
connector_sdk::export_connector!(EntraConnector);

/// The egress plan of `config` (no I/O): the tenant's login and Graph origins, and the
/// credential (`client_secret`, or `client_certificate` with `credential = "certificate"`) to
/// the login origin only.
pub fn egress(config: &config::Config) -> EgressPlan {
    let login = origin_of(&config.login_endpoint);
    let graph = origin_of(&config.graph_endpoint);
    let mut origins = vec![login.clone()];
    if graph != login {
        origins.push(graph);
    }
    EgressPlan {
        origins,
        secrets: vec![(config.credential.secret_name().to_string(), vec![login])],
    }
}

/// Static facts about this connector.
pub fn describe() -> Description {
    Description {
        name: NAME,
        version: VERSION,
        permissions: check::PERMISSIONS,
        config_keys: config::KEYS,
        secrets: &[
            (
                config::CLIENT_SECRET,
                "Client secret of the app registration (held by the host, never by the connector).",
            ),
            (
                config::CLIENT_CERTIFICATE,
                "With credential = \"certificate\": the private key whose certificate is uploaded to the app registration; the host signs each client assertion with it (kind = \"private_key\"; the connector never holds it).",
            ),
        ],
        event_classes: &[5003],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> config::Config {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config::Config::parse(&pairs).expect("a valid configuration")
    }

    #[test]
    fn egress_plan_names_the_clouds_endpoints_and_sends_the_secret_to_login_only() {
        let base = [
            ("tenant_id", "contoso.onmicrosoft.com"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
        ];
        let global = egress(&config(&base));
        assert_eq!(
            global.origins,
            [
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com"
            ]
        );
        assert_eq!(
            global.secrets,
            [(
                "client_secret".to_string(),
                vec!["https://login.microsoftonline.com".to_string()]
            )]
        );
        let mut china = base.to_vec();
        china.push(("cloud", "china"));
        assert_eq!(
            egress(&config(&china)).origins,
            [
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn"
            ]
        );
        let mut local = base.to_vec();
        local.push(("login_endpoint", "http://127.0.0.1:8080/login/"));
        local.push(("graph_endpoint", "http://127.0.0.1:8080"));
        let plan = egress(&config(&local));
        assert_eq!(plan.origins, ["http://127.0.0.1:8080"], "one origin once");
        assert_eq!(plan.secrets[0].1, ["http://127.0.0.1:8080"]);
    }

    #[test]
    fn egress_plan_names_the_certificate_key_to_login_only_with_credential_certificate() {
        let plan = egress(&config(&[
            ("tenant_id", "contoso.onmicrosoft.com"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("credential", "certificate"),
        ]));
        assert_eq!(
            plan.secrets,
            [(
                "client_certificate".to_string(),
                vec!["https://login.microsoftonline.com".to_string()]
            )],
            "the key, not the secret, and for the login origin only"
        );
        let names: Vec<&str> = describe().secrets.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["client_secret", "client_certificate"]);
    }
}
