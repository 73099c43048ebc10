//! `tunnel.*`: can this machine reach the tunnel services the way a hybrid ceremony needs?
//!
//! Hosts: the two assigned tunnel hosts (`cable.ua5v.com` Google/Android, `cable.auth.com`
//! Apple/iOS), `--tunnel-host` ones, and Apple's `app-site-association.cdn-apple.com` /
//! `app-site-association.networking.apple` (iOS fetches associated-domain data there; they are
//! not tunnels, so they get no WebSocket step). Per host, each step its own check and its own
//! timeout, a failed step skipping the later ones:
//! * `.dns` — the system resolver, or a `--resolve HOST:ADDR` override (ADDR = IP[:PORT],
//!   NAME[:PORT], or `nxdomain`).
//! * `.tcp` — a TCP connection to port 443 (or the override's port).
//! * `.tls` — a rustls handshake with SNI = the host, chain checked against the system roots (or
//!   `--ca-file`); a refused chain is explained through its issuer ([`super::tls`]).
//! * `.websocket` — `GET /cable/connect/<random routing id>/<random tunnel id>` with
//!   `Sec-WebSocket-Protocol: fido.cable` and `Origin` as Chrome sends them (§6.1). A tunnel
//!   service refuses an unknown tunnel with 404 (410 for a dead contact, §6.3) or holds a 101 that
//!   selects `fido.cable` open for a phone; a proxy page, a redirect, a 407 or a reset is what a
//!   middlebox answers instead, and is reported as such (with `Server`, `Via` and the page title).
//! * `tunnel.proxy` — proxy variables in the environment. cablebridge's tunnel client connects
//!   directly, so the checks above measure the direct path and the proxy is reported as context.

use super::tls::{self, RecordingVerifier, TlsFailure};
use super::{Check, DoctorOptions};
use cablebridge_protocol::hybrid::domain::DomainId;
use cablebridge_protocol::hybrid::tunnel::{RoutingId, TunnelId, TunnelPath, SUBPROTOCOL};
use rustls_pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::Error as WsError;

/// Apple's associated-domains hosts iOS needs besides `cable.auth.com`.
pub const APPLE_ASSOCIATION_HOSTS: [&str; 2] =
    ["app-site-association.cdn-apple.com", "app-site-association.networking.apple"];

/// Where `--resolve` sends a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveTarget {
    /// A fixed address; `port` replaces 443 when given.
    Ip {
        /// The address.
        ip: IpAddr,
        /// Port instead of 443.
        port: Option<u16>,
    },
    /// Resolve this other name instead (e.g. `localhost:8443`).
    Name {
        /// The name to resolve.
        name: String,
        /// Port instead of 443.
        port: Option<u16>,
    },
    /// Answer as if the name did not exist (NXDOMAIN).
    NxDomain,
}

/// `--resolve HOST:ADDR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// The host name as probed (compared case-insensitively).
    pub host: String,
    /// Where it goes instead.
    pub target: ResolveTarget,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

impl FromStr for ResolveOverride {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, addr) = s.split_once(':').ok_or_else(|| {
            format!(
                "--resolve {s:?}: expected HOST:ADDR (ADDR = IP, IP:PORT, NAME[:PORT] or nxdomain)"
            )
        })?;
        if !valid_name(host) {
            return Err(format!("--resolve {s:?}: {host:?} is not a host name"));
        }
        let bad = |why: &str| format!("--resolve {s:?}: {why}");
        let target = if addr.eq_ignore_ascii_case("nxdomain") {
            ResolveTarget::NxDomain
        } else if let Ok(sa) = addr.parse::<SocketAddr>() {
            ResolveTarget::Ip { ip: sa.ip(), port: Some(sa.port()) }
        } else if let Ok(ip) = addr.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
        {
            ResolveTarget::Ip { ip, port: None }
        } else {
            let (name, port) = match addr.rsplit_once(':') {
                Some((n, p)) => (n, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?)),
                None => (addr, None),
            };
            if !valid_name(name) {
                return Err(bad("ADDR must be an IP, IP:PORT, NAME[:PORT] or nxdomain"));
            }
            ResolveTarget::Name { name: name.to_owned(), port }
        };
        if matches!(
            target,
            ResolveTarget::Ip { port: Some(0), .. } | ResolveTarget::Name { port: Some(0), .. }
        ) {
            return Err(bad("port 0"));
        }
        Ok(ResolveOverride { host: host.to_ascii_lowercase(), target })
    }
}

/// What a probed host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A caBLE tunnel service (gets the WebSocket step).
    Tunnel,
    /// Apple's associated-domains service (DNS, TCP, TLS only).
    AppleAssociation,
}

/// Every host the doctor probes, in order: assigned tunnels, `--tunnel-host` ones, Apple's.
pub fn hosts(opts: &DoctorOptions) -> Vec<(String, HostKind)> {
    let mut out: Vec<(String, HostKind)> = Vec::new();
    let mut add = |h: String, kind| {
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        if !h.is_empty() && !out.iter().any(|(x, _)| *x == h) {
            out.push((h, kind));
        }
    };
    for id in [DomainId::GOOGLE, DomainId::APPLE] {
        if let Ok(h) = id.host() {
            add(h.into_owned(), HostKind::Tunnel);
        }
    }
    for h in &opts.extra_tunnel_hosts {
        add(h.clone(), HostKind::Tunnel);
    }
    for h in APPLE_ASSOCIATION_HOSTS {
        add(h.to_owned(), HostKind::AppleAssociation);
    }
    out
}

/// Runs the tunnel section: every host concurrently, then `tunnel.proxy`.
pub async fn run(opts: &DoctorOptions) -> Vec<Check> {
    let hosts = hosts(opts);
    let probes = hosts.iter().map(|(h, kind)| probe_host(h, *kind, opts));
    let mut out: Vec<Check> =
        futures_util::future::join_all(probes).await.into_iter().flatten().collect();
    let env: Vec<(String, String)> = match &opts.proxy_env {
        Some(v) => v.clone(),
        None => std::env::vars().collect(),
    };
    let tunnel_hosts: Vec<&str> =
        hosts.iter().filter(|(_, k)| *k == HostKind::Tunnel).map(|(h, _)| h.as_str()).collect();
    out.push(proxy_check(&env, &tunnel_hosts));
    out
}

fn steps(kind: HostKind) -> &'static [&'static str] {
    match kind {
        HostKind::Tunnel => &["dns", "tcp", "tls", "websocket"],
        HostKind::AppleAssociation => &["dns", "tcp", "tls"],
    }
}

/// The checks of one host.
pub async fn probe_host(host: &str, kind: HostKind, opts: &DoctorOptions) -> Vec<Check> {
    let mut out = Vec::new();
    let id = |step: &str| format!("tunnel.{host}.{step}");
    let finish = |mut out: Vec<Check>, why: &str| {
        for step in steps(kind).iter().skip(out.len()) {
            out.push(Check::skip(id(step), format!("skipped: {why}")));
        }
        out
    };
    let t = opts.step_timeout;

    // DNS.
    let over = opts.resolve.iter().find(|r| r.host.eq_ignore_ascii_case(host));
    let (addrs, how) = match resolve(host, over.map(|o| &o.target), t).await {
        Ok(found) => found,
        Err(detail) => {
            out.push(Check::fail(
                id("dns"),
                detail,
                format!(
                    "make {host} resolvable: check the resolver (resolvectl status, /etc/resolv.conf) \
                     and allow the name {host} on any DNS filter"
                ),
            ));
            return finish(out, "DNS failed");
        }
    };
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    out.push(Check::pass(id("dns"), format!("{host} → {} ({how})", shown.join(", "))));

    // TCP.
    let port = addrs.first().map(|a| a.port()).unwrap_or(443);
    let tcp = match connect_any(&addrs, t).await {
        Ok(tcp) => tcp,
        Err(detail) => {
            out.push(Check::fail(
                id("tcp"),
                format!("TCP {port} to {host}: {detail}"),
                format!(
                    "allow outbound TCP {port} from this machine to {host} ({}) on the firewall",
                    shown.join(", ")
                ),
            ));
            return finish(out, "no TCP connection");
        }
    };
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    out.push(Check::pass(id("tcp"), format!("connected to {peer}")));

    // TLS.
    let (roots, which) = match &opts.tls_roots {
        Some(r) => (Ok(r.clone()), "the --ca-file roots"),
        None => (tls::system_roots(), "the system roots"),
    };
    let verifier = roots.and_then(RecordingVerifier::new);
    let config = verifier.as_ref().map_err(Clone::clone).and_then(|v| v.client_config());
    let (verifier, config) = match (verifier, config) {
        (Ok(v), Ok(c)) => (v, c),
        (Err(e), _) | (_, Err(e)) => {
            out.push(Check::fail(
                id("tls"),
                format!("cannot check certificates: {e}"),
                "install the CA certificates package (ca-certificates)",
            ));
            return finish(out, "no trust store");
        }
    };
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        out.push(Check::fail(
            id("tls"),
            format!("{host:?} is not a TLS server name"),
            "fix the host name",
        ));
        return finish(out, "bad host name");
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = match timeout(t, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            out.push(tls_failure(host, which, &tls::classify(&e, &verifier.chain())));
            return finish(out, "TLS failed");
        }
        Err(_) => {
            out.push(Check::fail(
                id("tls"),
                format!("no TLS handshake within {t:?} (a firewall filtering by SNI stalls it so)"),
                format!("allow TLS to {host} (SNI {host}) on the firewall"),
            ));
            return finish(out, "TLS failed");
        }
    };
    let chain = verifier.chain();
    let leaf = chain.first().and_then(tls::names);
    let top = chain.last().and_then(tls::names);
    out.push(Check::pass(
        id("tls"),
        format!(
            "chain verified against {which}: {} issued by {}",
            leaf.map(|l| l.0).unwrap_or_else(|| "?".into()),
            top.map(|t| t.1).unwrap_or_else(|| "?".into())
        ),
    ));

    // WebSocket.
    if kind == HostKind::Tunnel {
        out.push(websocket_probe(host, port, stream, t).await);
    }
    out
}

async fn resolve(
    host: &str,
    over: Option<&ResolveTarget>,
    t: Duration,
) -> Result<(Vec<SocketAddr>, String), String> {
    match over {
        Some(ResolveTarget::NxDomain) => {
            Err(format!("{host} does not resolve (NXDOMAIN, as set by --resolve)"))
        }
        Some(ResolveTarget::Ip { ip, port }) => {
            Ok((vec![SocketAddr::new(*ip, port.unwrap_or(443))], "from --resolve".into()))
        }
        Some(ResolveTarget::Name { name, port }) => {
            lookup(name, port.unwrap_or(443), t).await.map(|a| (a, format!("--resolve via {name}")))
        }
        None => lookup(host, 443, t).await.map(|a| (a, "system resolver".into())),
    }
}

async fn lookup(name: &str, port: u16, t: Duration) -> Result<Vec<SocketAddr>, String> {
    match timeout(t, tokio::net::lookup_host((name, port))).await {
        Err(_) => Err(format!("resolving {name} took longer than {t:?}")),
        Ok(Err(e)) => Err(format!("{name} does not resolve: {e}")),
        Ok(Ok(found)) => {
            let v: Vec<SocketAddr> = found.collect();
            if v.is_empty() {
                Err(format!("{name} resolves to no address"))
            } else {
                Ok(v)
            }
        }
    }
}

async fn connect_any(addrs: &[SocketAddr], t: Duration) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for addr in addrs {
        match timeout(t, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => {
                use std::io::ErrorKind as K;
                last = match e.kind() {
                    K::ConnectionRefused => format!(
                        "{addr} refused the connection (nothing listens, or a firewall rejects it)"
                    ),
                    K::NetworkUnreachable | K::HostUnreachable => {
                        format!("{addr} unreachable (no route: {e})")
                    }
                    _ => format!("{addr}: {e}"),
                }
            }
            Err(_) => {
                last = format!("{addr} did not answer within {t:?} (a firewall dropping packets)")
            }
        }
    }
    Err(last)
}

fn tls_failure(host: &str, which: &str, f: &TlsFailure) -> Check {
    let id = format!("tunnel.{host}.tls");
    match f {
        TlsFailure::UntrustedIssuer { issuer, self_signed } => Check::fail(
            id,
            format!(
                "{host} presented a {}certificate chain issued by \"{issuer}\", which is not in \
                 {which}: probable TLS interception",
                if *self_signed { "self-signed " } else { "" }
            ),
            format!(
                "exempt {host} from TLS inspection on the proxy/firewall whose CA is \"{issuer}\" \
                 (the tunnel must be end-to-end TLS: cablebridge, phones and browsers that do not \
                 trust that CA refuse it)"
            ),
        ),
        TlsFailure::WrongName { subject } => Check::fail(
            id,
            format!("the certificate is for \"{subject}\", not {host}: a captive portal or interception device answered"),
            format!("log in to the captive portal, or exempt {host} from interception"),
        ),
        TlsFailure::Time { what } => Check::fail(
            id,
            format!("certificate rejected as {what}"),
            "check this machine's clock (timedatectl status); if it is right, the server's certificate is out of date",
        ),
        TlsFailure::Certificate(what) => Check::fail(
            id,
            format!("certificate rejected: {what}"),
            format!("exempt {host} from TLS inspection, or report the server's certificate"),
        ),
        TlsFailure::Handshake(what) => Check::fail(
            id,
            format!("TLS handshake failed: {what} (a firewall filtering by SNI resets it so)"),
            format!("allow TLS to {host} (SNI {host}) on the firewall"),
        ),
    }
}

async fn websocket_probe<S>(host: &str, port: u16, stream: S, t: Duration) -> Check
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let id = format!("tunnel.{host}.websocket");
    let path = TunnelPath::Connect {
        routing_id: RoutingId(rand::random()),
        tunnel_id: TunnelId(rand::random()),
    };
    let authority = if port == 443 { host.to_owned() } else { format!("{host}:{port}") };
    let url = format!("wss://{authority}{}", path.to_path());
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                id,
                format!("cannot build the upgrade request: {e}"),
                "fix the host name",
            )
        }
    };
    request.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    if let Ok(origin) = HeaderValue::from_str(&format!("wss://{authority}")) {
        request.headers_mut().insert(ORIGIN, origin);
    }
    let allow = format!(
        "allow WebSocket upgrades (wss, paths /cable/*) to {host} on the proxy/web filter and exempt it from inspection"
    );
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 * 1024));
    match timeout(t, tokio_tungstenite::client_async_with_config(request, stream, Some(config))).await {
        Err(_) => Check::fail(id, format!("no answer to the upgrade within {t:?}"), allow),
        Ok(Ok((mut ws, _resp))) => {
            let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
            Check::pass(
                id,
                "101 Switching Protocols selecting fido.cable for a random tunnel id (the service holds it open for a phone)",
            )
        }
        Ok(Err(WsError::Http(resp))) => http_answer(host, &resp, &allow),
        Ok(Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)))) => Check::fail(
            id,
            "101 Switching Protocols without the fido.cable subprotocol: a proxy terminated the \
             WebSocket, or this is not a caBLE tunnel service (Chrome aborts on it)",
            allow,
        ),
        Ok(Err(
            WsError::Protocol(ProtocolError::HandshakeIncomplete)
            | WsError::ConnectionClosed
            | WsError::AlreadyClosed,
        )) => Check::fail(
            id,
            "the connection was closed before any HTTP answer (a filter resetting WebSocket upgrades)",
            allow,
        ),
        Ok(Err(WsError::Io(e))) => Check::fail(
            id,
            format!("the connection failed during the upgrade: {e} (a filter resetting WebSocket upgrades)"),
            allow,
        ),
        Ok(Err(e)) => Check::fail(id, format!("the answer is not a WebSocket upgrade: {e}"), allow),
    }
}

/// `<title>` of an HTML body, trimmed and bounded.
fn html_title(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]).into_owned();
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title: String = text.get(open_end..close)?.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then(|| title.chars().take(120).collect())
}

fn http_answer(
    host: &str,
    resp: &tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
    allow: &str,
) -> Check {
    let id = format!("tunnel.{host}.websocket");
    let status = resp.status().as_u16();
    let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut evidence = Vec::new();
    for name in ["server", "via", "x-squid-error", "content-type"] {
        if let Some(v) = header(name) {
            evidence.push(format!("{name}: {}", v.chars().take(80).collect::<String>()));
        }
    }
    if let Some(title) = resp.body().as_deref().and_then(html_title) {
        evidence.push(format!("page title \"{title}\""));
    }
    let evidence =
        if evidence.is_empty() { String::new() } else { format!(" ({})", evidence.join(", ")) };
    match status {
        404 | 410 => Check::pass(
            id,
            format!(
                "HTTP {status} for a random tunnel id with fido.cable offered: the tunnel \
                 service's refusal of an unknown tunnel, as expected"
            ),
        ),
        400 => Check::warn(
            id,
            format!(
                "HTTP 400{evidence}: tunnel services answer 400 when the fido.cable subprotocol \
                 is missing, so a proxy may be stripping Sec-WebSocket-Protocol"
            ),
            allow.to_owned(),
        ),
        407 => Check::fail(
            id,
            format!("HTTP 407 Proxy Authentication Required{evidence}: a proxy intercepts {host}"),
            format!("exempt {host} from the proxy and its authentication (cablebridge connects directly and does not authenticate to proxies)"),
        ),
        300..=399 => Check::fail(
            id,
            format!(
                "redirected to {}{evidence}: a captive portal or filtering proxy answered instead of the tunnel",
                header("location").unwrap_or_else(|| "(no Location)".into())
            ),
            format!("log in to the captive portal, or {allow}"),
        ),
        200..=299 => Check::fail(
            id,
            format!("HTTP {status} with a page{evidence} instead of a WebSocket upgrade: a proxy or web filter answered"),
            allow.to_owned(),
        ),
        403 | 451 => Check::fail(
            id,
            format!("HTTP {status}{evidence}: refused, typically by a web filter or proxy policy"),
            allow.to_owned(),
        ),
        _ => Check::fail(
            id,
            format!("HTTP {status}{evidence} instead of a tunnel answer (404 or 101)"),
            allow.to_owned(),
        ),
    }
}

/// `scheme://user:pass@host:port` → `scheme://…@host:port`.
fn redact_proxy(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}…{}", &url[..s + 3], &url[at..]),
        (None, Some(at)) => format!("…{}", &url[at..]),
        _ => url.to_owned(),
    }
}

/// `tunnel.proxy` from an environment snapshot.
pub fn proxy_check(env: &[(String, String)], tunnel_hosts: &[&str]) -> Check {
    let id = "tunnel.proxy";
    let get =
        |k: &str| env.iter().find(|(n, v)| n == k && !v.trim().is_empty()).map(|(_, v)| v.as_str());
    let names =
        ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"];
    let set: Vec<String> =
        names.iter().filter_map(|n| get(n).map(|v| format!("{n}={}", redact_proxy(v)))).collect();
    if set.is_empty() {
        return Check::pass(
            id,
            "no proxy in the environment (HTTPS_PROXY, ALL_PROXY, HTTP_PROXY unset): tunnel \
             connections go direct",
        );
    }
    let no_proxy = get("NO_PROXY").or_else(|| get("no_proxy"));
    let hosts = tunnel_hosts.join(", ");
    Check::warn(
        id,
        format!(
            "{}{} is set; cablebridge does not use proxies and connects to the tunnel hosts \
             directly, which is the path the checks above measured",
            set.join(", "),
            no_proxy.map(|n| format!(" (NO_PROXY={n})")).unwrap_or_default()
        ),
        format!(
            "if the direct checks fail, allow direct outbound TCP 443 to {hosts} and \
             {} on the firewall",
            APPLE_ASSOCIATION_HOSTS.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_overrides_parse() {
        let r: ResolveOverride = "cable.ua5v.com:127.0.0.1:8443".parse().unwrap();
        assert_eq!(r.host, "cable.ua5v.com");
        assert_eq!(r.target, ResolveTarget::Ip { ip: [127, 0, 0, 1].into(), port: Some(8443) });
        let r: ResolveOverride = "Cable.Auth.com:::1".parse().unwrap();
        assert_eq!(
            (r.host.as_str(), r.target),
            ("cable.auth.com", ResolveTarget::Ip { ip: "::1".parse().unwrap(), port: None })
        );
        let r: ResolveOverride = "h.example:[::1]:443".parse().unwrap();
        assert_eq!(r.target, ResolveTarget::Ip { ip: "::1".parse().unwrap(), port: Some(443) });
        let r: ResolveOverride = "h.example:localhost:9".parse().unwrap();
        assert_eq!(r.target, ResolveTarget::Name { name: "localhost".into(), port: Some(9) });
        let r: ResolveOverride = "h.example:NXDOMAIN".parse().unwrap();
        assert_eq!(r.target, ResolveTarget::NxDomain);
        for bad in [
            "nocolon",
            ":127.0.0.1",
            "h.example:",
            "h.example:1.2.3.4:0",
            "h.example:a b",
            "h.example:x:99999",
        ] {
            assert!(bad.parse::<ResolveOverride>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_list_has_assigned_custom_and_apple_hosts() {
        let opts = DoctorOptions {
            extra_tunnel_hosts: vec!["Cable.Example.org.".into(), "cable.ua5v.com".into()],
            ..DoctorOptions::default()
        };
        let h = hosts(&opts);
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "cable.ua5v.com",
                "cable.auth.com",
                "cable.example.org",
                "app-site-association.cdn-apple.com",
                "app-site-association.networking.apple"
            ]
        );
        assert_eq!(h[3].1, HostKind::AppleAssociation);
    }

    #[test]
    fn proxy_environment_is_reported_redacted() {
        let none = proxy_check(&[("PATH".into(), "/bin".into())], &["cable.ua5v.com"]);
        assert_eq!(none.status, super::super::Status::Pass);
        let env = vec![
            ("HTTPS_PROXY".to_owned(), "http://bob:hunter2@proxy.corp:3128".to_owned()),
            ("NO_PROXY".to_owned(), ".corp".to_owned()),
        ];
        let c = proxy_check(&env, &["cable.ua5v.com", "cable.auth.com"]);
        assert_eq!(c.status, super::super::Status::Warn);
        assert!(c.detail.contains("HTTPS_PROXY=http://…@proxy.corp:3128"), "{c:?}");
        assert!(!c.detail.contains("hunter2"));
        assert!(c.remedy.unwrap_or_default().contains("cable.auth.com"));
    }

    #[test]
    fn html_titles_are_found() {
        assert_eq!(
            html_title(b"<HTML><head><Title>\n Access  denied </title></head>").as_deref(),
            Some("Access denied")
        );
        assert_eq!(html_title(b"no html"), None);
    }
}
