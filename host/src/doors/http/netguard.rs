//! Which network addresses a connector may reach, and name resolution that enforces it.
//!
//! An allowlisted name is not enough: a hostile or compromised DNS answer could point
//! `graph.example` at 169.254.169.254 (cloud metadata) or an internal service. Every name is
//! resolved by [`PublicOnlyResolver`], which refuses the whole answer when any address in it
//! is not public; IP literals are checked by [`is_public`] before a request leaves
//! (`EgressPolicy::check`). Both paths ask the same question of the same table. The only
//! exception is loopback for the local emulator, and only when the operator opts in (IP
//! literals only: names are never allowed to resolve to loopback).
//!
//! # The table
//!
//! [`SPECIAL_PURPOSE`] is one table for both families, transcribed row by row from the
//! IANA IPv4 and IPv6 Special-Purpose Address Registries
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry/>,
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/>; the registries' format is
//! RFC 6890 as updated by RFC 8190), with each row's name, the RFC that assigned it and its
//! "Globally Reachable" column. Where the registry says "N/A" (Teredo, 6to4, the deprecated
//! ORCHID and 6to4-relay blocks) the row is taken as not globally reachable. A few rows come
//! from the IANA address-space registries instead, and say so: IPv4 multicast 224.0.0.0/4
//! (RFC 5771), IPv6 multicast ff00::/8 and the deprecated site-local fec0::/10 (RFC 4291,
//! RFC 3879), and everything outside IPv6 Global Unicast 2000::/3 (RFC 4291 section 2.4:
//! reserved by the IETF; it holds the deprecated IPv4-compatible `::a.b.c.d` form).
//!
//! **An address is public only if no row that is not globally reachable covers it.** A
//! globally reachable row inside a non-global one (the PCP and TURN anycast addresses in
//! 192.0.0.0/24, AMT and AS112 in 2001::/23) therefore stays refused: no connector needs
//! them, and refusing more is the safe side of a mistake.
//!
//! # IPv6 prefixes that embed an IPv4 address
//!
//! Two of them are judged by the IPv4 address they stand for, through the IPv4 rows:
//! IPv4-mapped `::ffff:0:0/96` (RFC 4291; the kernel connects to the IPv4 address itself) and
//! the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052; DNS64 answers with it on IPv6-only
//! networks, so refusing it would cut those hosts off from Microsoft Graph). The IPv4 part
//! sits in the last 32 bits in both, unambiguously, so `64:ff9b::a9fe:a9fe` is judged as
//! 169.254.169.254 and refused.
//!
//! The others are refused outright, whatever they embed:
//! - the local-use NAT64 prefix `64:ff9b:1::/48` (RFC 8215): a site chooses any RFC 6052
//!   length inside it (/48 to /96), so where the IPv4 address sits, and hence what it is,
//!   cannot be read from the address; the registry marks it not globally reachable;
//! - 6to4 `2002::/16` (RFC 3056, relays deprecated by RFC 7526) and Teredo `2001::/32`
//!   (RFC 4380, inside the non-global 2001::/23): tunnels to whatever IPv4 address they
//!   carry (`2002:a9fe:a9fe::` reaches 169.254.169.254 through a 6to4 gateway), and no
//!   identity provider serves from them;
//! - the IPv4-compatible `::a.b.c.d` and IPv4-translated `::ffff:0:a.b.c.d` forms
//!   (deprecated; outside 2000::/3).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// One row of [`SPECIAL_PURPOSE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialPurpose {
    /// The address block.
    pub block: IpNet,
    /// The registry's name for it.
    pub name: &'static str,
    /// Where it is assigned (the registry's RFC column, or the address-space registry).
    pub source: &'static str,
    /// The registry's "Globally Reachable" column ("N/A" taken as false).
    pub global: bool,
}

const fn row(
    addr: IpAddr,
    len: u8,
    name: &'static str,
    source: &'static str,
    global: bool,
) -> SpecialPurpose {
    SpecialPurpose {
        block: IpNet::new_assert(addr, len),
        name,
        source,
        global,
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
}

/// The special-purpose address blocks of both families, in registry order (see the module
/// documentation for the sources and the rule applied).
#[rustfmt::skip]
pub const SPECIAL_PURPOSE: &[SpecialPurpose] = &[
    // ---- IANA IPv4 Special-Purpose Address Registry ----
    row(v4(0, 0, 0, 0), 8, "\"This network\"", "RFC 791, section 3.2", false),
    row(v4(0, 0, 0, 0), 32, "\"This host on this network\"", "RFC 1122, section 3.2.1.3", false),
    row(v4(10, 0, 0, 0), 8, "Private-Use", "RFC 1918", false),
    row(v4(100, 64, 0, 0), 10, "Shared Address Space", "RFC 6598", false),
    row(v4(127, 0, 0, 0), 8, "Loopback", "RFC 1122, section 3.2.1.3", false),
    row(v4(169, 254, 0, 0), 16, "Link Local", "RFC 3927", false),
    row(v4(172, 16, 0, 0), 12, "Private-Use", "RFC 1918", false),
    row(v4(192, 0, 0, 0), 24, "IETF Protocol Assignments", "RFC 6890, section 2.1", false),
    row(v4(192, 0, 0, 0), 29, "IPv4 Service Continuity Prefix", "RFC 7335", false),
    row(v4(192, 0, 0, 8), 32, "IPv4 dummy address", "RFC 7600", false),
    row(v4(192, 0, 0, 9), 32, "Port Control Protocol Anycast", "RFC 7723", true),
    row(v4(192, 0, 0, 10), 32, "Traversal Using Relays around NAT Anycast", "RFC 8155", true),
    row(v4(192, 0, 0, 170), 32, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", false),
    row(v4(192, 0, 0, 171), 32, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", false),
    row(v4(192, 0, 2, 0), 24, "Documentation (TEST-NET-1)", "RFC 5737", false),
    row(v4(192, 31, 196, 0), 24, "AS112-v4", "RFC 7535", true),
    row(v4(192, 52, 193, 0), 24, "AMT", "RFC 7450", true),
    row(v4(192, 88, 99, 0), 24, "Deprecated (6to4 Relay Anycast)", "RFC 7526 (N/A)", false),
    row(v4(192, 88, 99, 2), 32, "6a44-relay anycast address", "RFC 6751", false),
    row(v4(192, 168, 0, 0), 16, "Private-Use", "RFC 1918", false),
    row(v4(192, 175, 48, 0), 24, "Direct Delegation AS112 Service", "RFC 7534", true),
    row(v4(198, 18, 0, 0), 15, "Benchmarking", "RFC 2544", false),
    row(v4(198, 51, 100, 0), 24, "Documentation (TEST-NET-2)", "RFC 5737", false),
    row(v4(203, 0, 113, 0), 24, "Documentation (TEST-NET-3)", "RFC 5737", false),
    row(v4(240, 0, 0, 0), 4, "Reserved", "RFC 1112, section 4", false),
    row(v4(255, 255, 255, 255), 32, "Limited Broadcast", "RFC 8190, RFC 919 section 7", false),
    // From the IANA IPv4 Address Space Registry: multicast is not unicast to a server.
    row(v4(224, 0, 0, 0), 4, "Multicast", "RFC 5771 (IPv4 address space registry)", false),
    // ---- IANA IPv6 Special-Purpose Address Registry ----
    row(v6(0, 0, 0, 0, 0, 0, 0, 1), 128, "Loopback Address", "RFC 4291", false),
    row(v6(0, 0, 0, 0, 0, 0, 0, 0), 128, "Unspecified Address", "RFC 4291", false),
    row(v6(0, 0, 0, 0, 0, 0xffff, 0, 0), 96, "IPv4-mapped Address", "RFC 4291", false),
    row(v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, "IPv4-IPv6 Translat.", "RFC 6052", true),
    row(v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "IPv4-IPv6 Translat.", "RFC 8215", false),
    row(v6(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "Discard-Only Address Block", "RFC 6666", false),
    row(v6(0x100, 0, 0, 1, 0, 0, 0, 0), 64, "Dummy IPv6 Prefix", "RFC 9780", false),
    row(v6(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "IETF Protocol Assignments", "RFC 2928", false),
    row(v6(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "TEREDO", "RFC 4380, RFC 8190 (N/A)", false),
    row(v6(0x2001, 1, 0, 0, 0, 0, 0, 1), 128, "Port Control Protocol Anycast", "RFC 7723", true),
    row(v6(0x2001, 1, 0, 0, 0, 0, 0, 2), 128, "Traversal Using Relays around NAT Anycast", "RFC 8155", true),
    row(v6(0x2001, 1, 0, 0, 0, 0, 0, 3), 128, "DNS-SD Service Registration Protocol Anycast", "RFC 9665", true),
    row(v6(0x2001, 2, 0, 0, 0, 0, 0, 0), 48, "Benchmarking", "RFC 5180, RFC Errata 1752", false),
    row(v6(0x2001, 3, 0, 0, 0, 0, 0, 0), 32, "AMT", "RFC 7450", true),
    row(v6(0x2001, 4, 0x112, 0, 0, 0, 0, 0), 48, "AS112-v6", "RFC 7535", true),
    row(v6(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28, "Deprecated (previously ORCHID)", "RFC 4843 (N/A)", false),
    row(v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28, "ORCHIDv2", "RFC 7343", true),
    row(v6(0x2001, 0x30, 0, 0, 0, 0, 0, 0), 28, "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", true),
    row(v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "Documentation", "RFC 3849", false),
    row(v6(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "6to4", "RFC 3056 (N/A)", false),
    row(v6(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48, "Direct Delegation AS112 Service", "RFC 7534", true),
    row(v6(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, "Documentation", "RFC 9637", false),
    row(v6(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, "Segment Routing (SRv6) SIDs", "RFC 9602", false),
    row(v6(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "Unique-Local", "RFC 4193, RFC 8190", false),
    row(v6(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "Link-Local Unicast", "RFC 4291", false),
    // From the IANA IPv6 Address Space Registry.
    row(v6(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "Site-Local (deprecated)", "RFC 3879 (IPv6 address space registry)", false),
    row(v6(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "Multicast", "RFC 4291 (IPv6 address space registry)", false),
    // Everything outside Global Unicast 2000::/3 (its complement: ::/3, 4000::/2, 8000::/1)
    // is reserved by the IETF or special (RFC 4291 section 2.4, IPv6 address space registry).
    row(v6(0, 0, 0, 0, 0, 0, 0, 0), 3, "Outside Global Unicast 2000::/3", "RFC 4291 section 2.4 (IPv6 address space registry)", false),
    row(v6(0x4000, 0, 0, 0, 0, 0, 0, 0), 2, "Outside Global Unicast 2000::/3", "RFC 4291 section 2.4 (IPv6 address space registry)", false),
    row(v6(0x8000, 0, 0, 0, 0, 0, 0, 0), 1, "Outside Global Unicast 2000::/3", "RFC 4291 section 2.4 (IPv6 address space registry)", false),
];

/// The IPv6 prefixes judged by the IPv4 address in their last 32 bits (see the module
/// documentation): IPv4-mapped (RFC 4291) and the NAT64 well-known prefix (RFC 6052).
pub const IPV4_EMBEDDING: [IpNet; 2] = [
    IpNet::new_assert(v6(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    IpNet::new_assert(v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
];

/// The IPv4 address an IPv6 address stands for, when it is in an [`IPV4_EMBEDDING`] prefix.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let as_ip = IpAddr::V6(ip);
    IPV4_EMBEDDING
        .iter()
        .any(|p| p.contains(&as_ip))
        .then(|| Ipv4Addr::from(u128::from(ip) as u32))
}

/// The first row of [`SPECIAL_PURPOSE`] that is not globally reachable and covers `ip`
/// (for IPv4-mapped and NAT64 well-known addresses: covers the IPv4 address they carry).
pub fn non_global_block(ip: IpAddr) -> Option<&'static SpecialPurpose> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    SPECIAL_PURPOSE
        .iter()
        .find(|row| !row.global && row.block.contains(&ip))
}

/// True when `ip` is public: no special-purpose block that is not globally reachable covers
/// it ([`SPECIAL_PURPOSE`]; loopback, private, link-local with cloud metadata, shared,
/// documentation, benchmarking, multicast, reserved, unique-local, 6to4, local-use NAT64 and
/// the rest). IPv4-mapped and NAT64 well-known IPv6 addresses are judged by their IPv4 part.
pub fn is_public(ip: IpAddr) -> bool {
    non_global_block(ip).is_none()
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

    /// `ip` moved by `delta` addresses within its family (None past either end).
    fn step(ip: IpAddr, delta: i128) -> Option<IpAddr> {
        match ip {
            IpAddr::V4(v4) => {
                let n = i128::from(u32::from(v4)) + delta;
                u32::try_from(n).ok().map(|n| IpAddr::V4(n.into()))
            }
            IpAddr::V6(v6) => {
                let n = u128::from(v6);
                let moved = if delta < 0 {
                    n.checked_sub(delta.unsigned_abs())
                } else {
                    n.checked_add(delta as u128)
                };
                moved.map(|n| IpAddr::V6(n.into()))
            }
        }
    }

    #[test]
    fn hostile_addresses_in_every_non_global_special_purpose_block_are_refused() {
        let embedding = |ip: IpAddr| IPV4_EMBEDDING.iter().any(|p| p.contains(&ip));
        let refused_by_a_row = |ip: IpAddr| {
            SPECIAL_PURPOSE
                .iter()
                .any(|r| !r.global && r.block.contains(&ip))
        };
        for row in SPECIAL_PURPOSE {
            let (first, last) = (row.block.network(), row.block.broadcast());
            assert_eq!(
                row.block.addr(),
                first,
                "{} ({}) is written with host bits set: a transcription slip",
                row.block,
                row.name
            );
            if embedding(first) {
                // Judged by the IPv4 address carried in the last 32 bits: see the next tests.
                continue;
            }
            let host_bits = row.block.max_prefix_len() - row.block.prefix_len();
            let half = if host_bits == 0 {
                0
            } else {
                1i128 << (host_bits - 1)
            };
            let middle = step(first, half).expect("inside the block");
            for inside in [first, middle, last] {
                assert!(row.block.contains(&inside));
                let expected = row.global && !refused_by_a_row(inside);
                assert_eq!(
                    is_public(inside),
                    expected,
                    "{inside} in {} ({}, {}, globally reachable: {})",
                    row.block,
                    row.name,
                    row.source,
                    row.global
                );
            }
            // Just outside: public unless another non-global row covers it (the table's edges
            // are exact, not rounded to a byte or a segment).
            for outside in [step(first, -1), step(last, 1)].into_iter().flatten() {
                if !row.global && !refused_by_a_row(outside) && !embedding(outside) {
                    assert!(
                        is_public(outside),
                        "{outside}, just outside {} ({}), is public",
                        row.block,
                        row.name
                    );
                }
            }
        }
        // The edges, spelled out.
        for s in [
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "192.175.48.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2001:200::",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2001:ffff::1",
            "2003::",
            "2620:4f:8000::1",
            "3ffe:ffff::1",
            "3fff:1000::",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
        for s in [
            "192.0.0.9",
            "192.0.0.170",
            "192.88.99.2",
            "224.0.0.0",
            "239.255.255.255",
            "255.255.255.254",
            "100:0:0:1::1",
            "2001::a9fe:a9fe",
            "2001:1::1",
            "2001:2::1",
            "2001:db8:ffff::1",
            "3fff::1",
            "3fff:fff:ffff::1",
            "5f00::1",
            "fec0::1",
            "4000::1",
            "::ffff:0:a9fe:a9fe",
            "::8.8.8.8",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
    }

    #[test]
    fn ipv4_mapped_and_nat64_well_known_addresses_are_judged_by_their_ipv4_part() {
        for prefix in ["::ffff:", "64:ff9b::"] {
            for (v4, public) in [
                ("8.8.8.8", true),
                ("20.190.151.68", true),
                ("169.254.169.254", false),
                ("127.0.0.1", false),
                ("10.0.0.1", false),
                ("0.0.0.0", false),
                ("255.255.255.255", false),
                ("192.88.99.1", false),
            ] {
                let s = format!("{prefix}{v4}");
                assert_eq!(is_public(ip(&s)), public, "{s}");
            }
        }
        // Just past the well-known NAT64 /96: reserved space, not a translation.
        assert!(!is_public(ip("64:ff9b:0:0:0:1:808:808")));
    }

    async fn resolve(name: &str, to: &str) -> Result<Vec<SocketAddr>, String> {
        use reqwest::dns::Resolve;
        let mut map = BTreeMap::new();
        map.insert(name.to_string(), vec![ip(to)]);
        let r = PublicOnlyResolver::new(Arc::new(StaticResolver(map)));
        match r.resolve(name.parse().unwrap()).await {
            Ok(addrs) => Ok(addrs.collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The literal path: an allowlisted IP-literal origin is still refused by the policy.
    fn literal_refusal(v6: &str) -> String {
        let url = format!("https://[{v6}]/latest/meta-data");
        let policy = crate::doors::http::EgressPolicy::new(vec![
            crate::doors::http::Origin::parse(&url).unwrap(),
        ]);
        policy.check(&url).unwrap_err()
    }

    #[tokio::test]
    async fn hostile_nat64_local_use_prefix_embedding_the_metadata_ip_is_refused() {
        // 169.254.169.254 in the local-use NAT64 prefix, in the RFC 6052 /96 and /48 layouts;
        // and a public IPv4 address there too: the prefix is refused whatever it carries.
        for s in [
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:a9fe:a9:fe00::",
            "64:ff9b:1::808:808",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
            assert_eq!(
                non_global_block(ip(s)).map(|r| r.source),
                Some("RFC 8215"),
                "{s}"
            );
            assert!(
                literal_refusal(s).ends_with("is a non-public address"),
                "{s}"
            );
            let err = resolve("graph.evil.test", s).await.unwrap_err();
            assert_eq!(
                err,
                format!("graph.evil.test resolves to the non-public address {s}")
            );
        }
    }

    #[tokio::test]
    async fn hostile_6to4_prefix_embedding_the_metadata_ip_is_refused() {
        for s in ["2002:a9fe:a9fe::", "2002:a9fe:a9fe:1::1", "2002:808:808::1"] {
            assert!(!is_public(ip(s)), "{s} must not be public");
            assert_eq!(non_global_block(ip(s)).map(|r| r.name), Some("6to4"), "{s}");
            assert!(
                literal_refusal(s).ends_with("is a non-public address"),
                "{s}"
            );
            let err = resolve("graph.evil.test", s).await.unwrap_err();
            assert_eq!(
                err,
                format!("graph.evil.test resolves to the non-public address {s}")
            );
        }
        // Just outside 2002::/16, ordinary global unicast resolves.
        assert!(resolve("graph.ok.test", "2003::1").await.is_ok());
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
