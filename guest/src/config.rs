//! The connector's configuration: parsed once from the operator's key/value pairs into a
//! typed value, with one actionable message per mistake.
//!
//! Unknown keys are refused (a typo such as `tenantid` would otherwise silently fall back to
//! a default). The credential is not here: the host holds it and substitutes the
//! `{{secret:client_secret}}` placeholder, or signs the client assertion that
//! `{{assertion:client_certificate}}` stands for (`credential = "certificate"`).

/// Name of the secret the token request refers to with `credential = "secret"`.
pub const CLIENT_SECRET: &str = "client_secret";

/// Name of the private key the host signs client assertions with, `credential = "certificate"`.
pub const CLIENT_CERTIFICATE: &str = "client_certificate";

/// How the app registration authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A client secret (`client_secret={{secret:client_secret}}`).
    Secret,
    /// A certificate: a client assertion the host signs with the key
    /// (`client_assertion={{assertion:client_certificate}}`).
    Certificate,
}

impl Credential {
    /// The name of the tenant file's `[secrets.NAME]` this credential uses.
    pub fn secret_name(self) -> &'static str {
        match self {
            Credential::Secret => CLIENT_SECRET,
            Credential::Certificate => CLIENT_CERTIFICATE,
        }
    }
}

/// A Microsoft cloud: which login and Graph hosts a tenant lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// Worldwide (`login.microsoftonline.com`, `graph.microsoft.com`).
    Global,
    /// US Government L4.
    UsGov,
    /// US Government L5 (DoD).
    UsDod,
    /// Microsoft Azure operated by 21Vianet.
    China,
}

impl Cloud {
    /// Parses the `cloud` key.
    pub fn parse(s: &str) -> Option<Cloud> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" => Some(Cloud::Global),
            "usgov" | "us-gov" | "gcc-high" => Some(Cloud::UsGov),
            "usdod" | "us-dod" | "dod" => Some(Cloud::UsDod),
            "china" | "cn" => Some(Cloud::China),
            _ => None,
        }
    }

    /// `https://` base of the login host.
    pub fn login_endpoint(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// `https://` base of the Graph host.
    pub fn graph_endpoint(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// Whether to ask Graph for `signInActivity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// Ask; when the tenant is not licensed for it, carry on without and warn.
    Auto,
    /// Never ask (tenants without Entra ID P1/P2 or without `AuditLog.Read.All`).
    Off,
}

/// How a run chooses which users to collect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `users/delta`: the first run walks every user and keeps the delta link; later runs
    /// collect users created, changed or removed since, plus a full refresh on a cadence.
    Delta,
    /// The seed's mode: first run every user; later runs users created since the last run.
    Created,
    /// Every run collects every user.
    Full,
}

/// The typed configuration of one tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Entra tenant id (GUID) or primary domain.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// The cloud (for display; the endpoints below are what is used).
    pub cloud: Cloud,
    /// Login base URL, no trailing slash.
    pub login_endpoint: String,
    /// Graph base URL, no trailing slash.
    pub graph_endpoint: String,
    /// `$top` for `/users` (1..=999; capped at 500 while `signInActivity` is selected).
    pub page_size: u32,
    /// Whether to select `signInActivity`.
    pub sign_in: SignIn,
    /// Incremental mode.
    pub sync_mode: SyncMode,
    /// `$batch` requests in flight at once (each carries up to 20 reads).
    pub batch_concurrency: usize,
    /// Delta mode: a full walk (fresh groups, roles, MFA for everyone) at least this often,
    /// hours; 0 never.
    pub refresh_hours: u64,
    /// Delta mode: a sign-in sweep at least this often, hours; 0 on every run.
    pub sign_in_sweep_hours: u64,
    /// Retries (of throttled or failed requests) one run may spend.
    pub retry_budget: u64,
    /// A client secret or a certificate.
    pub credential: Credential,
}

pub use connector_sdk::connector::ConfigError;

/// Every key the connector reads: (name, required, description).
pub const KEYS: &[(&str, bool, &str)] = &[
    (
        "tenant_id",
        true,
        "Entra tenant id (GUID) or primary domain, e.g. contoso.onmicrosoft.com.",
    ),
    (
        "client_id",
        true,
        "Application (client) id of the app registration.",
    ),
    (
        "cloud",
        false,
        "global (default), usgov, usdod or china: picks the login and Graph hosts.",
    ),
    (
        "login_endpoint",
        false,
        "Overrides the login base URL (the simulator uses this).",
    ),
    (
        "graph_endpoint",
        false,
        "Overrides the Graph base URL (the simulator uses this).",
    ),
    (
        "page_size",
        false,
        "Users per /users page, 1-999 (default 999; 500 while signInActivity is read).",
    ),
    (
        "sign_in_activity",
        false,
        "auto (default: read it when licensed, else warn) or off.",
    ),
    (
        "sync_mode",
        false,
        "delta (default: users/delta, later runs fetch what changed), created (later runs fetch users created since the last run) or full.",
    ),
    (
        "batch_concurrency",
        false,
        "$batch requests (20 reads each) in flight at once, 1-16 (default 8).",
    ),
    (
        "refresh_hours",
        false,
        "delta mode: walk every user again (fresh groups, roles, MFA) at least this often, hours, 0-8760 (default 24; 0 never).",
    ),
    (
        "sign_in_sweep_hours",
        false,
        "delta mode: re-read sign-in activity at least this often, hours, 0-8760 (default 24; 0 every run).",
    ),
    (
        "retry_budget",
        false,
        "Retries of throttled or failed Graph requests one run may spend, 0-100000 (default 500).",
    ),
    (
        "credential",
        false,
        "secret (default: [secrets.client_secret]) or certificate (a client assertion the host signs with [secrets.client_certificate], kind = \"private_key\").",
    ),
];

impl Config {
    /// Parses and validates the operator's pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for (k, _) in pairs {
            if !KEYS.iter().any(|(name, _, _)| name == k) {
                let known: Vec<&str> = KEYS.iter().map(|(n, _, _)| *n).collect();
                return Err(ConfigError(format!(
                    "unknown config key '{k}': use one of {}",
                    known.join(", ")
                )));
            }
            if !seen.insert(k.as_str()) {
                return Err(ConfigError(format!(
                    "config key '{k}' is given twice: keep one"
                )));
            }
        }
        let get = |key: &str| -> Option<&str> {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let required = |key: &str| -> Result<String, ConfigError> {
            get(key).map(str::to_string).ok_or_else(|| {
                ConfigError(format!(
                    "config key '{key}' is missing: set it in the tenant's [config] table"
                ))
            })
        };
        let tenant_id = required("tenant_id")?;
        if !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ConfigError(format!(
                "config key 'tenant_id' = {} is not a tenant GUID or domain (letters, digits, '-' and '.')",
                shown(&tenant_id)
            )));
        }
        let client_id = required("client_id")?;
        if !client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConfigError(format!(
                "config key 'client_id' = {} is not an application id (a GUID): copy the Application (client) ID of the app registration",
                shown(&client_id)
            )));
        }
        let cloud = match get("cloud") {
            None => Cloud::Global,
            Some(c) => Cloud::parse(c).ok_or_else(|| {
                ConfigError(format!(
                    "config key 'cloud' = {} is unknown: use global, usgov, usdod or china",
                    shown(c)
                ))
            })?,
        };
        let endpoint = |key: &str, default: &str| -> Result<String, ConfigError> {
            let v = get(key).unwrap_or(default);
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "config key '{key}' = {} is not an http(s) URL",
                    shown(v)
                )));
            }
            Ok(v.trim_end_matches('/').to_string())
        };
        let login_endpoint = endpoint("login_endpoint", cloud.login_endpoint())?;
        let graph_endpoint = endpoint("graph_endpoint", cloud.graph_endpoint())?;
        let page_size = number(get("page_size"), "page_size", 1, 999, 999)? as u32;
        let batch_concurrency =
            number(get("batch_concurrency"), "batch_concurrency", 1, 16, 8)? as usize;
        let refresh_hours = number(get("refresh_hours"), "refresh_hours", 0, 8760, 24)?;
        let sign_in_sweep_hours = number(
            get("sign_in_sweep_hours"),
            "sign_in_sweep_hours",
            0,
            8760,
            24,
        )?;
        let retry_budget = number(get("retry_budget"), "retry_budget", 0, 100_000, 500)?;
        let sign_in = match get("sign_in_activity")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("auto") => SignIn::Auto,
            Some("off") | Some("false") => SignIn::Off,
            Some(other) => {
                return Err(ConfigError(format!(
                    "config key 'sign_in_activity' = {} is unknown: use auto or off",
                    shown(other)
                )))
            }
        };
        let sync_mode = match get("sync_mode").map(str::to_ascii_lowercase).as_deref() {
            None | Some("delta") => SyncMode::Delta,
            Some("created") => SyncMode::Created,
            Some("full") => SyncMode::Full,
            Some(other) => {
                return Err(ConfigError(format!(
                    "config key 'sync_mode' = {} is unknown: use delta, created or full",
                    shown(other)
                )))
            }
        };
        let credential = match get("credential").map(str::to_ascii_lowercase).as_deref() {
            None | Some("secret") => Credential::Secret,
            Some("certificate") => Credential::Certificate,
            Some(other) => {
                return Err(ConfigError(format!(
                    "config key 'credential' = {} is unknown: use secret or certificate",
                    shown(other)
                )))
            }
        };
        Ok(Config {
            tenant_id,
            client_id,
            cloud,
            login_endpoint,
            graph_endpoint,
            page_size,
            sign_in,
            sync_mode,
            batch_concurrency,
            refresh_hours,
            sign_in_sweep_hours,
            retry_budget,
            credential,
        })
    }

    /// The token endpoint of this tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_endpoint, self.tenant_id
        )
    }

    /// A Graph v1.0 URL for `path` (which starts with `/`).
    pub fn graph_url(&self, path: &str) -> String {
        format!("{}/v1.0{}", self.graph_endpoint, path)
    }
}

/// Longest value a configuration error quotes, characters: shorter than any secret the host
/// accepts (16), so a secret pasted into the wrong key is never echoed; the host refuses a
/// `[config]` value holding a secret before the connector runs, and this is the second line.
const MAX_QUOTED_CHARS: usize = 15;

/// A value as a configuration error shows it: quoted, with control characters escaped, when
/// shorter than [`MAX_QUOTED_CHARS`]; otherwise only its length.
fn shown(value: &str) -> String {
    let chars = value.chars().count();
    if chars > MAX_QUOTED_CHARS {
        format!("(a value of {chars} characters, not shown)")
    } else {
        format!("'{}'", value.escape_debug())
    }
}

fn number(
    v: Option<&str>,
    key: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError(format!(
                "config key '{key}' = {} must be a whole number from {min} to {max}",
                shown(s)
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_cloud_hosts() {
        let c = Config::parse(&pairs(&[
            ("tenant_id", "contoso.onmicrosoft.com"),
            ("client_id", "abc-1"),
        ]))
        .unwrap();
        assert_eq!(c.login_endpoint, "https://login.microsoftonline.com");
        assert_eq!(c.graph_endpoint, "https://graph.microsoft.com");
        assert_eq!(c.page_size, 999);
        assert_eq!(c.sync_mode, SyncMode::Delta);
        assert_eq!(
            (
                c.batch_concurrency,
                c.refresh_hours,
                c.sign_in_sweep_hours,
                c.retry_budget
            ),
            (8, 24, 24, 500)
        );
        assert_eq!(
            c.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let dod = Config::parse(&pairs(&[
            ("tenant_id", "t"),
            ("client_id", "c"),
            ("cloud", "usdod"),
        ]))
        .unwrap();
        assert_eq!(dod.graph_endpoint, "https://dod-graph.microsoft.us");
        assert_eq!(dod.login_endpoint, "https://login.microsoftonline.us");
        let cn = Config::parse(&pairs(&[
            ("tenant_id", "t"),
            ("client_id", "c"),
            ("cloud", "china"),
        ]))
        .unwrap();
        assert_eq!(
            cn.graph_url("/users"),
            "https://microsoftgraph.chinacloudapi.cn/v1.0/users"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = Config::parse(&pairs(&[("client_id", "c")])).unwrap_err();
        assert!(e.0.contains("'tenant_id' is missing"), "{}", e.0);
        // The tenant file's table is `[config]` (host/src/config.rs), not `[connector]`.
        assert!(e.0.contains("tenant's [config] table"), "{}", e.0);
        let e = Config::parse(&pairs(&[
            ("tenant_id", "t"),
            ("client_id", "c"),
            ("tenantid", "x"),
        ]))
        .unwrap_err();
        assert!(e.0.contains("unknown config key 'tenantid'"), "{}", e.0);
        let e = Config::parse(&pairs(&[
            ("tenant_id", "t"),
            ("client_id", "c"),
            ("page_size", "5000"),
        ]))
        .unwrap_err();
        assert!(
            e.0.contains("'page_size'") && e.0.contains("1 to 999"),
            "{}",
            e.0
        );
        let e = Config::parse(&pairs(&[
            ("tenant_id", "t"),
            ("client_id", "c"),
            ("cloud", "mars"),
        ]))
        .unwrap_err();
        assert!(e.0.contains("'cloud' = 'mars'"), "{}", e.0);
        let e = Config::parse(&pairs(&[("tenant_id", "t/../x"), ("client_id", "c")])).unwrap_err();
        assert!(e.0.contains("not a tenant GUID"), "{}", e.0);
    }

    #[test]
    fn operator_the_credential_is_a_secret_unless_certificate_is_chosen() {
        let base = [("tenant_id", "t"), ("client_id", "c")];
        let c = Config::parse(&pairs(&base)).unwrap();
        assert_eq!(c.credential, Credential::Secret);
        assert_eq!(c.credential.secret_name(), "client_secret");
        let mut cert = base.to_vec();
        cert.push(("credential", "Certificate"));
        let c = Config::parse(&pairs(&cert)).unwrap();
        assert_eq!(c.credential, Credential::Certificate);
        assert_eq!(c.credential.secret_name(), "client_certificate");
        let mut wrong = base.to_vec();
        wrong.push(("credential", "cert"));
        let e = Config::parse(&pairs(&wrong)).unwrap_err();
        assert!(
            e.0.contains("'credential' = 'cert'") && e.0.contains("secret or certificate"),
            "{}",
            e.0
        );
    }

    /// An Entra client secret (40 characters, `~` in it) pasted into `client_id`, or into
    /// any other key, is never echoed by the error; a short mistake still is.
    #[test]
    fn operator_a_secret_pasted_into_a_config_key_is_not_echoed() {
        let secret = "Xq48Q~Vd3.kLp0_aZ9rT-uW2yB7nC1mE5gH6jS8f";
        for key in [
            "client_id",
            "tenant_id",
            "cloud",
            "login_endpoint",
            "graph_endpoint",
            "page_size",
            "sign_in_activity",
            "sync_mode",
        ] {
            let mut p = vec![("tenant_id", "t"), ("client_id", "c")];
            p.retain(|(k, _)| *k != key);
            p.push((key, secret));
            let e = Config::parse(&pairs(&p)).unwrap_err();
            assert!(
                !e.0.contains(secret) && !e.0.contains("Xq48Q") && e.0.contains(key),
                "{key}: {}",
                e.0
            );
            assert!(e.0.contains("40 characters, not shown"), "{key}: {}", e.0);
        }
        let e = Config::parse(&pairs(&[("tenant_id", "t"), ("client_id", "a b")])).unwrap_err();
        assert!(e.0.contains("'client_id' = 'a b'"), "{}", e.0);
        let e =
            Config::parse(&pairs(&[("tenant_id", "t\u{1b}[2J"), ("client_id", "c")])).unwrap_err();
        assert!(e.0.contains("'t\\u{1b}[2J'"), "{}", e.0);
    }
}
