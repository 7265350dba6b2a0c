//! The `http-fetch` door's policy: which origins a tenant's connector may reach, how, and
//! how much. A value handed in per tenant ([`EgressPolicy`]); [`super::client`] enforces it
//! on every request before it leaves the host.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Why a text is not an origin: one line naming it and the expected form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidOrigin(pub String);

/// `scheme://host[:port]`: the unit of the allowlist.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// `https` or `http`.
    pub scheme: String,
    /// Lower-case host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default when not written).
    pub port: u16,
}

impl Origin {
    /// Parses `https://host[:port][/path]` (the path is ignored).
    pub fn parse(s: &str) -> Result<Origin, InvalidOrigin> {
        Self::parse_text(s).map_err(InvalidOrigin)
    }

    fn parse_text(s: &str) -> Result<Origin, String> {
        let url = url::Url::parse(s.trim()).map_err(|e| format!("'{s}' is not a URL ({e})"))?;
        Self::of(&url).ok_or_else(|| format!("'{s}' is not an http(s) URL with a host"))
    }

    /// The origin of a URL, if it is http(s) with a host.
    pub fn of(url: &url::Url) -> Option<Origin> {
        let scheme = url.scheme();
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_ascii_lowercase(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        Some(Origin {
            scheme: scheme.to_string(),
            host,
            port: url.port_or_known_default()?,
        })
    }

    fn default_port(&self) -> bool {
        (self.scheme == "https" && self.port == 443) || (self.scheme == "http" && self.port == 80)
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.default_port() {
            write!(f, "{}://{}", self.scheme, host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, host, self.port)
        }
    }
}

/// What one tenant's connector may reach, and how.
#[derive(Clone, Debug)]
pub struct EgressPolicy {
    /// Reachable origins; everything else is denied.
    pub allow: Vec<Origin>,
    /// Permit `http://` to loopback origins in `allow` (for the local emulator only).
    pub allow_loopback_http: bool,
    /// Most requests per run.
    pub max_requests: u64,
    /// Most requests in flight at once.
    pub max_concurrent: usize,
    /// Largest response body, bytes.
    pub max_response_bytes: u64,
    /// Largest request body, bytes.
    pub max_request_bytes: u64,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Origins reached at a fixed socket instead of by name, like curl's `--resolve`: a
    /// request to one is checked against the policy under its own origin (the URL, `Host`
    /// and the secrets' origins stay as the connector wrote them) and sent to the socket.
    /// Only the host's own simulation sets it (the simulated Graph keeps one origin across
    /// restarts and hosts while its port changes); no tenant file can. The socket is judged
    /// like an IP literal: loopback needs `allow_loopback_http`, any other non-public
    /// address is refused. Empty by default.
    pub resolve: Vec<(Origin, SocketAddr)>,
}

impl EgressPolicy {
    /// A policy allowing exactly `allow`, with safe defaults for everything else.
    pub fn new(allow: Vec<Origin>) -> Self {
        EgressPolicy {
            allow,
            allow_loopback_http: false,
            max_requests: 1_000_000,
            max_concurrent: 32,
            max_response_bytes: 32 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            resolve: Vec::new(),
        }
    }

    /// The socket a [`EgressPolicy::resolve`] entry fixes for `origin`, if any.
    pub fn resolved(&self, origin: &Origin) -> Option<SocketAddr> {
        self.resolve
            .iter()
            .find(|(o, _)| o == origin)
            .map(|(_, addr)| *addr)
    }

    /// Checks a URL against the policy; `Err` says which rule refused it.
    pub fn check(&self, raw: &str) -> Result<(url::Url, Origin), String> {
        let url = url::Url::parse(raw).map_err(|_| "the URL does not parse".to_string())?;
        let origin = Origin::of(&url).ok_or_else(|| {
            format!(
                "only http(s) URLs with a host are allowed, not '{}:'",
                url.scheme()
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("credentials in the URL are not allowed ({origin})"));
        }
        if !self.allow.contains(&origin) {
            return Err(format!("{origin} is not in the tenant's egress allowlist"));
        }
        let resolved = self.resolved(&origin);
        let loopback = match resolved {
            Some(addr) => addr.ip().is_loopback(),
            None => origin.is_loopback(),
        };
        if origin.scheme == "http" && !(self.allow_loopback_http && loopback) {
            return Err(format!(
                "{origin}: plain http is refused (https only; loopback http needs allow_loopback_http)"
            ));
        }
        let literal = origin.host.parse::<IpAddr>().ok();
        if let Some(ip) = resolved.map(|addr| addr.ip()).or(literal) {
            let loopback_ok = self.allow_loopback_http && ip.is_loopback();
            if !crate::doors::http::netguard::is_public(ip) && !loopback_ok {
                return Err(format!("{origin} is a non-public address"));
            }
        }
        Ok((url, origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EgressPolicy {
        EgressPolicy::new(vec![
            Origin::parse("https://login.microsoftonline.com").unwrap(),
            Origin::parse("https://graph.microsoft.com").unwrap(),
            Origin::parse("http://127.0.0.1:8080").unwrap(),
        ])
    }

    #[test]
    fn allowlist_is_by_exact_origin() {
        let p = policy();
        assert!(p
            .check("https://graph.microsoft.com/v1.0/users?$top=1")
            .is_ok());
        assert!(p
            .check("https://GRAPH.microsoft.com:443/v1.0/users")
            .is_ok());
        for bad in [
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "https://evil.example/https://graph.microsoft.com",
            "https://graph.microsoft.com:8443/v1.0/users",
            "http://graph.microsoft.com/v1.0/users",
            "ftp://graph.microsoft.com/",
            "https://user:pw@graph.microsoft.com/",
            "not a url",
        ] {
            assert!(p.check(bad).is_err(), "{bad} must be refused");
        }
        let e = p.check("https://evil.example/x").unwrap_err();
        assert!(
            e.contains("https://evil.example is not in the tenant's egress allowlist"),
            "{e}"
        );
    }

    #[test]
    fn loopback_http_needs_the_operator_switch() {
        let mut p = policy();
        let e = p.check("http://127.0.0.1:8080/v1.0/users").unwrap_err();
        assert!(e.contains("plain http is refused"), "{e}");
        p.allow_loopback_http = true;
        assert!(p.check("http://127.0.0.1:8080/v1.0/users").is_ok());
        assert!(p.check("http://127.0.0.1:8081/v1.0/users").is_err());
    }

    #[test]
    fn non_public_ip_literals_are_refused_even_when_allowlisted() {
        let mut p = EgressPolicy::new(
            [
                "https://169.254.169.254",
                "https://10.0.0.5",
                "https://[::ffff:127.0.0.1]",
                "http://127.0.0.1:8080",
                "https://20.1.2.3",
            ]
            .iter()
            .map(|s| Origin::parse(s).unwrap())
            .collect(),
        );
        p.allow_loopback_http = true;
        for bad in [
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            let e = p.check(bad).unwrap_err();
            assert!(e.contains("non-public address"), "{bad}: {e}");
        }
        assert!(
            p.check("http://127.0.0.1:8080/").is_ok(),
            "loopback for the emulator when opted in"
        );
        assert!(p.check("https://20.1.2.3/").is_ok());
        p.allow_loopback_http = false;
        assert!(p.check("http://127.0.0.1:8080/").is_err());
    }

    #[test]
    fn a_resolved_origin_is_judged_by_its_socket_and_only_when_listed() {
        let stable = Origin::parse("http://graph.sim.simulation.localhost").unwrap();
        let mut p = EgressPolicy::new(vec![stable.clone()]);
        p.allow_loopback_http = true;
        // Without the entry, a name is not loopback: plain http is refused.
        let e = p
            .check("http://graph.sim.simulation.localhost/v1.0/users")
            .unwrap_err();
        assert!(e.contains("plain http is refused"), "{e}");
        p.resolve = vec![(stable.clone(), "127.0.0.1:41000".parse().unwrap())];
        let (_, origin) = p
            .check("http://graph.sim.simulation.localhost/v1.0/users")
            .unwrap();
        assert_eq!(
            p.resolved(&origin),
            Some("127.0.0.1:41000".parse().unwrap())
        );
        // Another origin is not resolved, and the allowlist still decides.
        assert!(p.check("http://other.simulation.localhost/").is_err());
        // Loopback needs the switch; a non-public socket is refused whatever the switch.
        p.allow_loopback_http = false;
        assert!(p.check("http://graph.sim.simulation.localhost/").is_err());
        p.allow_loopback_http = true;
        p.resolve = vec![(stable, "169.254.169.254:80".parse().unwrap())];
        let e = p
            .check("http://graph.sim.simulation.localhost/")
            .unwrap_err();
        assert!(e.contains("plain http is refused"), "{e}");
        let https = Origin::parse("https://graph.sim.example").unwrap();
        p.allow.push(https.clone());
        p.resolve = vec![(https, "169.254.169.254:443".parse().unwrap())];
        let e = p.check("https://graph.sim.example/").unwrap_err();
        assert!(e.contains("non-public address"), "{e}");
    }

    #[test]
    fn origin_display_round_trips() {
        for s in [
            "https://graph.microsoft.com",
            "http://127.0.0.1:8080",
            "https://[::1]:9000",
        ] {
            assert_eq!(Origin::parse(s).unwrap().to_string(), s);
        }
    }
}
