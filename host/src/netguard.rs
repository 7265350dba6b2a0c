//! Which network addresses a connector may reach, and name resolution that enforces it.
//!
//! An allowlisted name is not enough: a hostile or compromised DNS answer could point
//! `graph.example` at 169.254.169.254 (cloud metadata) or an internal service. Every name is
//! resolved by [`PublicOnlyResolver`], which refuses the whole answer when any address in it
//! is not public; IP literals are checked by [`is_public`] before a request leaves. The only
//! exception is loopback for the local emulator, and only when the operator opts in (IP
//! literals only: names are never allowed to resolve to loopback).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// True when `ip` is a globally routable unicast address: not loopback, private, link-local
/// (169.254.0.0/16, cloud metadata included), shared (100.64.0.0/10), unspecified,
/// broadcast, multicast, documentation, benchmarking or reserved, and the same for IPv6
/// (IPv4-mapped and -compatible addresses are judged by their IPv4 part).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // IPv4-compatible (deprecated ::a.b.c.d) and NAT64 (64:ff9b::/96) embed an IPv4.
            if s[..6] == [0, 0, 0, 0, 0, 0]
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
            {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return !v6.is_unspecified() && !v6.is_loopback() && is_public_v4(v4);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240) // reserved
}

/// Looks names up. The default uses the system resolver; tests and platforms may inject
/// their own (e.g. a fixed map, or a resolver pinned to a trusted DNS server).
pub trait NameResolver: Send + Sync {
    /// Resolves `name` to addresses (port 0).
    fn lookup(
        &self,
        name: &str,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (through tokio).
pub struct SystemResolver;

impl NameResolver for SystemResolver {
    fn lookup(
        &self,
        name: &str,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let name = name.to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed name → addresses table (for tests and air-gapped platforms).
#[derive(Clone, Debug, Default)]
pub struct StaticResolver(pub BTreeMap<String, Vec<IpAddr>>);

impl NameResolver for StaticResolver {
    fn lookup(
        &self,
        name: &str,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let found = self.0.get(&name.to_ascii_lowercase()).cloned();
        let name = name.to_string();
        Box::pin(async move {
            found.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no address for {name}"),
                )
            })
        })
    }
}

/// The error a refused resolution carries, so the HTTP door can report it as a policy denial.
#[derive(Debug)]
pub struct NonPublicAddress {
    /// The name looked up.
    pub name: String,
    /// The offending address.
    pub addr: IpAddr,
}

impl std::fmt::Display for NonPublicAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to the non-public address {}",
            self.name, self.addr
        )
    }
}

impl std::error::Error for NonPublicAddress {}

/// reqwest's resolver hook: resolves through a [`NameResolver`] and refuses any answer that
/// contains a non-public address.
pub struct PublicOnlyResolver {
    inner: Arc<dyn NameResolver>,
}

impl PublicOnlyResolver {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn NameResolver>) -> Self {
        PublicOnlyResolver { inner }
    }
}

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let lookup = self.inner.lookup(&host);
        Box::pin(async move {
            let addrs = lookup.await?;
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if let Some(bad) = addrs.iter().find(|a| !is_public(**a)) {
                return Err(Box::new(NonPublicAddress {
                    name: host,
                    addr: *bad,
                }) as _);
            }
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for s in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
        for s in [
            "20.190.151.68",
            "40.126.32.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2603:1030::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[tokio::test]
    async fn resolution_to_a_private_address_is_refused() {
        use reqwest::dns::Resolve;
        let mut map = BTreeMap::new();
        map.insert(
            "intranet.test".to_string(),
            vec![ip("20.1.2.3"), ip("10.1.2.3")],
        );
        map.insert("ok.test".to_string(), vec![ip("20.1.2.3")]);
        let r = PublicOnlyResolver::new(Arc::new(StaticResolver(map)));
        let err = r
            .resolve("intranet.test".parse().unwrap())
            .await
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "intranet.test resolves to the non-public address 10.1.2.3"
        );
        let ok: Vec<SocketAddr> = r
            .resolve("ok.test".parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("resolves: {e}"))
            .collect();
        assert_eq!(ok, vec![SocketAddr::new(ip("20.1.2.3"), 0)]);
    }
}
