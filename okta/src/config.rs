//! The connector's configuration: the tenant's key/value pairs, parsed once into a typed
//! value, one line per mistake naming the key and what to write instead. Unknown keys are
//! refused (a typo would otherwise fall back to a default without a word).
//!
//! The credential is never here: the host holds it. With `auth = "token"` the host writes
//! the API token into the `Authorization` header (`{{secret:okta_token}}`; the tenant file
//! declares the `SSWS` prefix); with `auth = "service_app"` it signs the client assertion
//! `{{assertion:okta_key}}` stands for, and adds the DPoP proofs when the tenant file asks.

use connector_sdk::connector::ConfigError;

/// The secret of `auth = "token"`: an Okta API token.
pub const OKTA_TOKEN: &str = "okta_token";
/// The secret of `auth = "service_app"`: the service app's private key (the host signs).
pub const OKTA_KEY: &str = "okta_key";

/// Every key the connector reads (anything else is refused).
pub const KEYS: &[&str] = &[
    "org_url",
    "auth",
    "client_id",
    "dpop",
    "page_size",
    "max_concurrency",
];

/// How requests are authorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// An API token: `Authorization: SSWS <token>` (developer.okta.com/docs/guides/
    /// create-an-api-token: "API tokens ... SSWS"; Okta recommends OAuth instead).
    Token,
    /// An OAuth 2.0 service app with `private_key_jwt` (developer.okta.com/docs/guides/
    /// implement-oauth-for-okta-serviceapp).
    ServiceApp,
}

/// The parsed configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The org's origin, `https://{org}.okta.com` (no path, no trailing slash).
    pub org_url: String,
    /// How requests are authorised.
    pub auth: Auth,
    /// The service app's client id (`auth = "service_app"` only).
    pub client_id: String,
    /// Whether the service app requires DPoP-bound tokens (the host adds the proofs).
    pub dpop: bool,
    /// Users per page (`limit`): Okta's default and the emulator's maximum is 200.
    pub page_size: u32,
    /// Requests in flight at most (Okta allows 75 per org, 35 on free orgs).
    pub max_concurrency: u32,
}

impl Config {
    /// Parses the tenant's pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Config, ConfigError> {
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !KEYS.contains(&k.as_str())) {
            return Err(ConfigError(format!(
                "config key '{k}' is unknown: the Okta connector reads {}",
                KEYS.join(", ")
            )));
        }
        let get = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim())
        };
        let org_url = org_url(get("org_url"))?;
        let auth = match get("auth").map(str::to_ascii_lowercase).as_deref() {
            None | Some("token") => Auth::Token,
            Some("service_app") => Auth::ServiceApp,
            Some(other) => {
                return Err(ConfigError(format!(
                    "config key 'auth' = '{other}' is unknown: use \"token\" (an API token in secret '{OKTA_TOKEN}') or \"service_app\" (a service app's key in secret '{OKTA_KEY}')"
                )))
            }
        };
        let client_id = get("client_id").unwrap_or_default().to_string();
        let dpop = match get("dpop").map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "config key 'dpop' = '{other}' is not a boolean: write true or false"
                )))
            }
        };
        match auth {
            Auth::ServiceApp if client_id.is_empty() => {
                return Err(ConfigError(
                    "config key 'client_id' is missing: auth = \"service_app\" needs the service app's client id (Admin Console, Applications, the app's General tab)".into(),
                ))
            }
            Auth::Token if !client_id.is_empty() || get("dpop").is_some() => {
                return Err(ConfigError(
                    "config keys 'client_id' and 'dpop' belong to auth = \"service_app\": remove them, or set auth = \"service_app\"".into(),
                ))
            }
            _ => {}
        }
        Ok(Config {
            org_url,
            auth,
            client_id,
            dpop,
            page_size: number(get("page_size"), "page_size", 1, 200, 200)?,
            max_concurrency: number(get("max_concurrency"), "max_concurrency", 1, 75, 10)?,
        })
    }

    /// The secret this configuration's requests carry.
    pub fn secret(&self) -> &'static str {
        match self.auth {
            Auth::Token => OKTA_TOKEN,
            Auth::ServiceApp => OKTA_KEY,
        }
    }
}

/// `org_url`: an https origin (`https://acme.okta.com`); plain http only on the loopback
/// interface, for emulators.
fn org_url(v: Option<&str>) -> Result<String, ConfigError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Err(ConfigError(
            "config key 'org_url' is missing: set it to the org's address, e.g. https://acme.okta.com".into(),
        ));
    };
    let v = v.trim_end_matches('/');
    let rest = if let Some(rest) = v.strip_prefix("https://") {
        rest
    } else if let Some(rest) = v.strip_prefix("http://").filter(|r| is_loopback(r)) {
        rest
    } else {
        return Err(ConfigError(format!(
            "config key 'org_url' = '{v}' is not an https URL: write https://<your org>.okta.com"
        )));
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(ConfigError(format!(
            "config key 'org_url' = '{v}' is not an origin: write the scheme and host only, e.g. https://acme.okta.com"
        )));
    }
    Ok(v.to_string())
}

fn is_loopback(host_port: &str) -> bool {
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

fn number(
    v: Option<&str>,
    key: &str,
    min: u32,
    max: u32,
    default: u32,
) -> Result<u32, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError(format!(
            "config key '{key}' = '{v}' is not a whole number from {min} to {max}: write one, or remove it for {default}"
        ))),
    }
}
