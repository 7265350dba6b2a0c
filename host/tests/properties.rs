//! Property tests (proptest) over what the host does with a guest's untrusted requests: the
//! egress check of any URL string (`EgressPolicy::check`), the public-address check of any
//! IPv4/IPv6 address (`netguard::is_public`), secret placeholders in any text
//! (`SecretSet::fill_body`), and any header names and values a guest hands `http-fetch`
//! (`HttpDoor::fetch`, against a loopback echo server). The JSON check of emitted events is
//! in `src/runtime/properties.rs` (it needs the run's private state).
//!
//! CI runs each property 256 times (proptest's default). The million-case run: every one of
//! the 5 properties `PROPTEST_CASES` times, 1,000,000 cases in all:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release -p connector-host --test properties
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use connector_host::doors::http::netguard::{is_public, StaticResolver};
use connector_host::doors::http::secrets::{SecretSet, SecretValue};
use connector_host::doors::http::{
    http_client, EgressPolicy, FetchFailure, FetchRequest, HttpDoor, Origin,
};
use hyper::header::{HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::{json, Value};

// ------------------------------------------------------------------ generators

const ODD_CHARS: &[char] = &[
    '\0', '\t', '\n', '\r', '\u{b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{200b}', '\u{2028}',
    '\u{feff}', 'é', 'ı', 'ſ', 'K', 'Ａ', '𝔊', '😀', ':', ';', ',', '@', '/', '\\', '%', '#', '?',
    '&', '=', '[', ']', '{', '}', '.', '-', '_', '~', ' ', '0', 'x',
];

fn odd_char() -> impl Strategy<Value = char> {
    prop_oneof![
        5 => prop::char::range(' ', '~'),
        2 => prop::sample::select(ODD_CHARS),
        1 => any::<char>(),
    ]
}

fn odd_string(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(odd_char(), 0..max).prop_map(|v| v.into_iter().collect()),
        1 => any::<String>(),
    ]
}

/// Hosts: the allowlisted ones in many spellings, look-alikes, non-public addresses in the
/// forms URL parsers normalise (hex, integer, short, IPv4-mapped), and anything.
const HOSTS: &[&str] = &[
    "graph.microsoft.com",
    "GRAPH.Microsoft.COM",
    "graph.microsoft.com.",
    "graph%2Emicrosoft.com",
    "ｇｒａｐｈ.microsoft.com",
    "graph.microsoft.com.evil.example",
    "evil.example",
    "login.microsoftonline.com",
    "127.0.0.1",
    "127.1",
    "0x7f.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "localhost",
    "LOCALHOST",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:0:0:1]",
    "20.1.2.3",
    "[2606:4700::1]",
    "[2606:4700:0::1]",
    "169.254.169.254",
    "0xa9fea9fe",
    "[::ffff:169.254.169.254]",
    "[fe80::1]",
    "10.0.0.5",
    "012.0.0.5",
    "0.0.0.0",
    "[::]",
    "",
];

const SCHEMES: &[&str] = &[
    "https",
    "http",
    "HTTPS",
    "hTtP",
    "ftp",
    "file",
    "data",
    "javascript",
    "ws",
    "",
];
const SEPARATORS: &[&str] = &[
    "://", "://", "://", ":", ":/", ":///", ":\\\\", "://\t", ":/\\",
];
const USERINFO: &[&str] = &[
    "user",
    "user:pw",
    ":pw",
    "",
    "graph.microsoft.com",
    "a%40b:c",
    "@",
];
const PORTS: &[&str] = &[
    "",
    "443",
    "80",
    "8080",
    "8443",
    "0",
    "65535",
    "65536",
    "0443",
    "+443",
    "-1",
    "99999999999",
];

/// A string that looks like a URL more often than not.
fn url_like() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        6 => prop::sample::select(HOSTS).prop_map(str::to_string),
        1 => odd_string(12),
    ];
    let port = prop::option::weighted(
        0.3,
        prop_oneof![
            3 => prop::sample::select(PORTS).prop_map(str::to_string),
            1 => any::<u16>().prop_map(|p| p.to_string()),
        ],
    );
    let url = (
        prop_oneof![
            6 => Just("https".to_string()),
            6 => prop::sample::select(SCHEMES).prop_map(str::to_string),
            1 => "[a-zA-Z+.-]{0,8}",
        ],
        prop_oneof![
            4 => Just("://"),
            1 => prop::sample::select(SEPARATORS),
        ],
        prop::option::weighted(0.1, prop::sample::select(USERINFO)),
        host,
        port,
        odd_string(16),
    )
        .prop_map(|(scheme, sep, userinfo, host, port, rest)| {
            let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}{sep}{userinfo}{host}{port}/{rest}")
        });
    prop_oneof![8 => url, 1 => odd_string(40)]
}

fn allowlist() -> Vec<Origin> {
    [
        "https://graph.microsoft.com",
        "https://login.microsoftonline.com",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "https://[::1]",
        "https://20.1.2.3",
        "https://[2606:4700::1]:8443",
        // Allowlisted by mistake: refused anyway, they are not public.
        "https://169.254.169.254",
        "https://10.0.0.5",
        "https://[::ffff:127.0.0.1]",
    ]
    .iter()
    .map(|s| Origin::parse(s).expect("test origin"))
    .collect()
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Non-public IPv4 ranges: (network, prefix length).
const NON_PUBLIC_V4: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),          // "this network"
    ([10, 0, 0, 0], 8),         // private
    ([100, 64, 0, 0], 10),      // shared (CGNAT)
    ([127, 0, 0, 0], 8),        // loopback
    ([169, 254, 0, 0], 16),     // link-local, cloud metadata
    ([172, 16, 0, 0], 12),      // private
    ([192, 0, 0, 0], 24),       // IETF protocol assignments
    ([192, 0, 2, 0], 24),       // documentation
    ([192, 168, 0, 0], 16),     // private
    ([198, 18, 0, 0], 15),      // benchmarking
    ([198, 51, 100, 0], 24),    // documentation
    ([203, 0, 113, 0], 24),     // documentation
    ([224, 0, 0, 0], 4),        // multicast
    ([240, 0, 0, 0], 4),        // reserved
    ([255, 255, 255, 255], 32), // broadcast
];

/// Non-public IPv6 ranges: (network, prefix length).
const NON_PUBLIC_V6: &[(u128, u32)] = &[
    (1, 128),                               // ::1 loopback
    (0, 128),                               // :: unspecified
    (0xfc00 << 112, 7),                     // unique local
    (0xfe80 << 112, 10),                    // link-local
    (0xfec0 << 112, 10),                    // site-local (deprecated)
    (0xff00 << 112, 8),                     // multicast
    ((0x2001 << 112) | (0x0db8 << 96), 32), // documentation
];

fn in_v4_range(range: usize, bits: u32) -> Ipv4Addr {
    let (net, len) = NON_PUBLIC_V4[range];
    let mask = if len == 32 {
        u32::MAX
    } else {
        !(u32::MAX >> len)
    };
    Ipv4Addr::from((u32::from_be_bytes(net) & mask) | (bits & !mask))
}

fn non_public_v4() -> impl Strategy<Value = Ipv4Addr> {
    (0..NON_PUBLIC_V4.len(), any::<u32>()).prop_map(|(r, bits)| in_v4_range(r, bits))
}

fn non_public_v6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        (0..NON_PUBLIC_V6.len(), any::<u128>()).prop_map(|(r, bits)| {
            let (net, len) = NON_PUBLIC_V6[r];
            let mask = if len == 128 {
                u128::MAX
            } else {
                !(u128::MAX >> len)
            };
            Ipv6Addr::from((net & mask) | (bits & !mask))
        }),
        // A non-public IPv4 address inside IPv6: mapped (::ffff:a.b.c.d) or NAT64
        // (64:ff9b::a.b.c.d); both reach the IPv4 address.
        (non_public_v4(), any::<bool>()).prop_map(|(v4, nat64)| {
            if nat64 {
                Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(u32::from(v4)))
            } else {
                v4.to_ipv6_mapped()
            }
        }),
    ]
}

// ------------------------------------------------------------------ a loopback echo server

/// A tokio runtime and an HTTP/1 server on 127.0.0.1 that answers every request with the
/// method and headers it received, as JSON.
fn echo() -> &'static (tokio::runtime::Runtime, SocketAddr) {
    static ECHO: OnceLock<(tokio::runtime::Runtime, SocketAddr)> = OnceLock::new();
    ECHO.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let headers: Vec<(String, String)> = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                                    (k.as_str().to_string(), v)
                                })
                                .collect();
                            let body = json!({"method": req.method().as_str(), "headers": headers});
                            Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body.to_string()),
                            )))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (rt, addr)
    })
}

fn echo_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        http_client(
            Duration::from_secs(10),
            Arc::new(StaticResolver(BTreeMap::new())),
        )
        .expect("the client builds")
    })
}

const SECRET: &str = "s3cr3t-Value";

/// The tenant's secrets: `token` may reach `origin`, `crlf` too (a value no header may
/// carry), `elsewhere` only Graph.
fn secrets(origin: &Origin) -> SecretSet {
    let mut s = SecretSet::new();
    s.insert("token", SecretValue::new(SECRET), vec![origin.clone()]);
    s.insert(
        "crlf",
        SecretValue::new("a\r\nInjected: yes"),
        vec![origin.clone()],
    );
    s.insert(
        "elsewhere",
        SecretValue::new("other"),
        vec![Origin::parse("https://graph.microsoft.com").expect("origin")],
    );
    s
}

/// Header names: the ones the host drops or HTTP treats specially, pseudo-headers, in odd
/// cases, and anything.
const HEADER_NAMES: &[&str] = &[
    "Authorization",
    "Content-Type",
    "ConsistencyLevel",
    "Accept",
    "User-Agent",
    "host",
    "Host",
    "HOST",
    "content-length",
    "Content-Length",
    "transfer-encoding",
    "Transfer-Encoding",
    "connection",
    "Connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "x-forwarded-for",
    ":authority",
    ":path",
    "",
    " host",
    "host ",
    "a b",
    "x\r\ny",
    "hoſt",
    "X-Ünïcode",
];

/// Text with secret placeholders (known, unknown, for another origin, unterminated).
fn text_with_placeholders() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        12 => odd_string(12),
        1 => Just("{{secret:token}}".to_string()),
        1 => Just("{{secret:crlf}}".to_string()),
        1 => Just("{{secret:elsewhere}}".to_string()),
        1 => Just("{{secret:nope}}".to_string()),
        1 => Just("{{secret:".to_string()),
        1 => Just("}}".to_string()),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|p| p.concat())
}

fn header() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            3 => prop::sample::select(HEADER_NAMES).prop_map(str::to_string),
            1 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
            1 => odd_string(12),
        ],
        prop_oneof![
            2 => text_with_placeholders(),
            2 => "[ -~]{0,30}",
            1 => (odd_char(), 0usize..2000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
        ],
    )
}

const SKIPPED: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

// ------------------------------------------------------------------ properties

proptest! {
    /// Any string: no panic; a refusal is one line; an accepted URL is http(s), without
    /// credentials, on an allowlisted origin (the one `check` returns), https unless it is
    /// loopback with the operator's switch on, a public address when it is an IP literal,
    /// and it serialises to a URL that `check` accepts with the same origin.
    #[test]
    fn hostile_urls_are_refused_or_stay_on_an_allowlisted_public_origin(
        raw in url_like(),
        loopback_http in any::<bool>(),
    ) {
        let mut policy = EgressPolicy::new(allowlist());
        policy.allow_loopback_http = loopback_http;
        match policy.check(&raw) {
            Ok((url, origin)) => {
                prop_assert!(policy.allow.contains(&origin), "{raw:?} -> {origin}");
                prop_assert_eq!(Origin::of(&url), Some(origin.clone()));
                prop_assert!(url.scheme() == "https" || url.scheme() == "http");
                prop_assert!(url.username().is_empty() && url.password().is_none(), "{raw:?}");
                prop_assert!(
                    origin.scheme == "https" || (loopback_http && is_loopback_host(&origin.host)),
                    "{raw:?} -> {origin}"
                );
                if let Ok(ip) = origin.host.parse::<IpAddr>() {
                    prop_assert!(
                        is_public(ip) || (loopback_http && ip.is_loopback()),
                        "{raw:?} -> {ip}"
                    );
                }
                prop_assert_eq!(url.port_or_known_default(), Some(origin.port));
                let again = policy.check(url.as_str());
                prop_assert_eq!(again.map(|(_, o)| o), Ok(origin), "{:?} -> {}", raw, url);
            }
            Err(why) => {
                prop_assert!(!why.is_empty() && !why.contains('\n'), "{raw:?}: {why:?}");
            }
        }
    }

    /// Loopback, private, link-local (cloud metadata included), shared, multicast,
    /// documentation, reserved: never public, in IPv4 or inside IPv6.
    #[test]
    fn hostile_non_public_addresses_are_never_public(v4 in non_public_v4(), v6 in non_public_v6()) {
        prop_assert!(!is_public(IpAddr::V4(v4)), "{}", v4);
        prop_assert!(!is_public(IpAddr::V6(v6)), "{}", v6);
        prop_assert!(!is_public(IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))));
    }

    /// Any address: no panic, and an IPv4 address is judged the same in its IPv4-mapped
    /// IPv6 form.
    #[test]
    fn any_address_is_judged_and_mapped_forms_agree(v4 in any::<u32>(), v6 in any::<u128>()) {
        let v4 = Ipv4Addr::from(v4);
        prop_assert_eq!(is_public(IpAddr::V4(v4)), is_public(IpAddr::V6(v4.to_ipv6_mapped())), "{}", v4);
        let _ = is_public(IpAddr::V6(Ipv6Addr::from(v6)));
    }

    /// Secret placeholders in any body: no panic; a secret's value never goes to an origin it
    /// may not reach; a body that is not a form `POST` is never changed; and in a form `POST`
    /// to its origin, the secret appears exactly when a field's whole value is its
    /// placeholder (the one place the host fills, `secrets.rs`).
    #[test]
    fn hostile_placeholders_never_leak_a_secret_elsewhere(
        text in text_with_placeholders(),
        form in any::<bool>(),
        post in any::<bool>(),
    ) {
        let graph = Origin::parse("https://graph.microsoft.com").expect("origin");
        let mine = Origin::parse("https://login.microsoftonline.com").expect("origin");
        let set = secrets(&mine);
        let kind = if form { "application/x-www-form-urlencoded" } else { "application/json" };
        let headers = vec![("Content-Type".to_string(), kind.to_string())];
        let method = if post { "POST" } else { "GET" };
        let encoded: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        let leaked = |out: &[u8]| {
            let out = String::from_utf8_lossy(out);
            out.contains(SECRET) || out.contains(&encoded)
        };
        let had = text.contains(SECRET) || text.contains(&encoded);
        if let Ok(out) = set.fill_body(method, &headers, text.clone().into_bytes(), &graph) {
            prop_assert!(!leaked(&out) || had, "{:?} -> {:?}", text, String::from_utf8_lossy(&out));
        }
        match set.fill_body(method, &headers, text.clone().into_bytes(), &mine) {
            Ok(out) if !(form && post) => prop_assert_eq!(out, text.clone().into_bytes()),
            Ok(out) if !had => {
                let whole_field = text
                    .split('&')
                    .any(|f| f.split_once('=').is_some_and(|(_, v)| v == "{{secret:token}}"));
                prop_assert_eq!(leaked(&out), whole_field, "{:?} -> {:?}", text, String::from_utf8_lossy(&out));
            }
            Ok(_) => {}
            Err(e) => prop_assert!(form && post && !e.contains('\n'), "{:?}: {}", text, e),
        }
    }

    /// Any header names and values from the guest: no panic; a placeholder is sent as
    /// text, never filled; a header HTTP cannot carry (CR/LF, NUL, bad names, pseudo-headers)
    /// is an error, never sent; otherwise the server gets every header verbatim, except the
    /// framing ones the host drops, and `Host` is always the checked origin's.
    #[test]
    fn hostile_request_headers_are_sent_verbatim_or_refused(
        headers in prop::collection::vec(header(), 0..6),
        method in prop_oneof![
            4 => Just("GET".to_string()),
            1 => Just("POST".to_string()),
            1 => prop::sample::select(&["get", "G ET", "", "GET\r\n", "PÖST"][..]).prop_map(str::to_string),
        ],
    ) {
        let (rt, addr) = echo();
        let origin = Origin::parse(&format!("http://{addr}")).expect("origin");
        let mut policy = EgressPolicy::new(vec![origin.clone()]);
        policy.allow_loopback_http = true;
        let set = secrets(&origin);
        let door = HttpDoor::new(echo_client().clone(), policy, Arc::new(set.clone()), "t".into());
        let req = FetchRequest {
            method: method.clone(),
            url: format!("http://{addr}/v1.0/users"),
            headers: headers.clone(),
            body: None,
        };
        let result = rt.block_on(door.fetch(req));

        // Headers are never filled (`secrets.rs`): a placeholder in one is sent as text.
        let filled = headers.clone();
        if reqwest::Method::from_bytes(method.as_bytes()).is_err() {
            prop_assert!(matches!(result, Err(FetchFailure::Denied(_))), "{:?}", result);
            return Ok(());
        }
        let sent: Vec<(String, String)> = filled
            .into_iter()
            .filter(|(k, _)| !SKIPPED.contains(&k.to_ascii_lowercase().as_str()))
            .collect();
        let sendable = sent.iter().all(|(k, v)| {
            HeaderName::from_bytes(k.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok()
        });
        if !sendable {
            prop_assert!(matches!(result, Err(FetchFailure::Transport(_))), "{:?}", result);
            return Ok(());
        }
        let response = match result {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(format!("{e:?} for {sent:?}"))),
        };
        prop_assert_eq!(response.status, 200);
        let echoed: Value = serde_json::from_slice(&response.body).expect("the echo is JSON");
        prop_assert_eq!(echoed["method"].as_str(), Some(method.as_str()));
        let received: Vec<(String, String)> =
            serde_json::from_value(echoed["headers"].clone()).expect("header pairs");
        let values = |list: &[(String, String)], name: &str| -> Vec<String> {
            list.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim_matches([' ', '\t']).to_string())
                .collect()
        };
        for (name, _) in &sent {
            prop_assert_eq!(values(&received, name), values(&sent, name), "header {:?}", name);
        }
        prop_assert_eq!(values(&received, "host"), vec![addr.to_string()]);
        for (name, _) in &received {
            prop_assert!(
                sent.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
                    || ["host", "user-agent", "accept"].contains(&name.as_str()),
                "the server got a header the guest did not send: {:?}", name
            );
        }
    }
}
