//! Opening a tunnel connection: URL checks, DNS, TCP, TLS, the upgrade request with the caBLE
//! headers, redirects, and the checks on the 101 response (§6.1–§6.3, pitfall 19).

use super::{redact_url, ConnectOptions, TlsRoots, TunnelClientError, TunnelConnection};
use crate::tunnel::Io;
use cablebridge_protocol::hybrid::tunnel::{
    RoutingId, TunnelPath, CLIENT_PAYLOAD_HEADER, ROUTING_ID_HEADER, SIGNAL_CONNECTION_HEADER,
    SUBPROTOCOL,
};
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::header::{LOCATION, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Error as WsError;
use url::Url;

/// Opens a tunnel connection; see [`ConnectOptions`].
pub async fn connect(
    url: &str,
    opts: &ConnectOptions,
) -> Result<TunnelConnection, TunnelClientError> {
    tokio::time::timeout(opts.timeout, connect_following_redirects(url, opts))
        .await
        .map_err(|_| TunnelClientError::Timeout { after: opts.timeout })?
}

async fn connect_following_redirects(
    url: &str,
    opts: &ConnectOptions,
) -> Result<TunnelConnection, TunnelClientError> {
    let invalid = |why: String| TunnelClientError::InvalidUrl { url: redact_url(url), why };
    let mut current = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let mut visited: Vec<Url> = Vec::new();
    loop {
        let location = match attempt(&current, opts).await? {
            Attempt::Open(conn) => return Ok(*conn),
            Attempt::Redirect(location) => location,
        };
        let bad = |why: String| TunnelClientError::BadRedirect { url: redact(&current), why };
        let mut next = current.join(&location).map_err(|e| bad(e.to_string()))?;
        // A Location may name the http(s) form of the WebSocket URL.
        let ws_scheme = match next.scheme() {
            "http" | "ws" => "ws",
            "https" | "wss" => "wss",
            other => return Err(bad(format!("unsupported scheme {other:?}"))),
        };
        next.set_scheme(ws_scheme).map_err(|()| bad("cannot set scheme".into()))?;
        visited.push(current);
        if visited.contains(&next) {
            return Err(TunnelClientError::RedirectLoop { url: redact(&next) });
        }
        if visited.len() > usize::from(opts.max_redirects) {
            return Err(TunnelClientError::TooManyRedirects { limit: opts.max_redirects });
        }
        tracing::debug!(host = ?next.host_str(), "following tunnel redirect");
        current = next;
    }
}

enum Attempt {
    Open(Box<TunnelConnection>),
    Redirect(String),
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// One hop: DNS, TCP, TLS, upgrade.
async fn attempt(url: &Url, opts: &ConnectOptions) -> Result<Attempt, TunnelClientError> {
    let invalid = |why: &str| TunnelClientError::InvalidUrl { url: redact(url), why: why.into() };
    let tls = match url.scheme() {
        "wss" => true,
        "ws" => false,
        _ => return Err(invalid("scheme must be ws or wss")),
    };
    let host = url.host().ok_or_else(|| invalid("no host"))?;
    let host_name = match &host {
        url::Host::Domain(d) => (*d).to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    if !tls && !opts.allow_insecure && !is_loopback(&host) {
        return Err(TunnelClientError::InsecureNotAllowed { host: host_name });
    }
    let port = url.port_or_known_default().ok_or_else(|| invalid("no port"))?;

    let tcp = tcp_connect(&host_name, port).await?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if tls {
        let config = client_tls_config(&opts.tls_roots)?;
        let name = match host_name.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host_name.clone())
                .map_err(|_| invalid("host is not a valid TLS server name"))?,
        };
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|source| TunnelClientError::Tls { host: host_name.clone(), source })?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };

    let request = build_request(url, opts)?;
    let ws_config = crate::tunnel::ws_config(opts.max_message);
    let (ws, response) =
        match tokio_tungstenite::client_async_with_config(request, io, Some(ws_config)).await {
            Ok(ok) => ok,
            Err(WsError::Http(resp)) => {
                let status = resp.status();
                if status.is_redirection() {
                    let location =
                        resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(
                            || TunnelClientError::BadRedirect {
                                url: redact(url),
                                why: format!("HTTP {} without a Location header", status.as_u16()),
                            },
                        )?;
                    return Ok(Attempt::Redirect(location.to_owned()));
                }
                return Err(TunnelClientError::HttpStatus {
                    url: redact(url),
                    status: status.as_u16(),
                });
            }
            Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(_))) => {
                return Err(TunnelClientError::MissingSubprotocol)
            }
            Err(WsError::Io(e)) => return Err(TunnelClientError::Io(e)),
            Err(e) => return Err(TunnelClientError::WebSocket(e.to_string())),
        };

    // tungstenite checks this too; checked here so the rule does not depend on its version.
    let selected = response.headers().get(SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
    if selected.map(str::trim) != Some(SUBPROTOCOL) {
        return Err(TunnelClientError::MissingSubprotocol);
    }
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
    let routing_id = header(ROUTING_ID_HEADER).and_then(|v| RoutingId::parse_hex(v.trim()).ok());
    if routing_id.is_none() && matches!(TunnelPath::parse(url.path()), Ok(TunnelPath::New { .. })) {
        return Err(TunnelClientError::MissingRoutingId);
    }
    let signal_connection = opts.signal_connection
        && header(SIGNAL_CONNECTION_HEADER).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    Ok(Attempt::Open(Box::new(TunnelConnection {
        ws,
        url: url.clone(),
        routing_id,
        signal_connection,
        max_message: opts.max_message,
        close_frame: None,
    })))
}

/// Scheme, host, port and path kind only: tunnel ids and contact ids stay out of errors.
fn redact(url: &Url) -> String {
    redact_url(url.as_str())
}

async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, TunnelClientError> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| TunnelClientError::Dns { host: host.to_owned(), source })?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses");
    if addrs.is_empty() {
        return Err(TunnelClientError::Dns { host: host.to_owned(), source: last });
    }
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(TunnelClientError::TcpConnect { host: host.to_owned(), source: last })
}

fn build_request(
    url: &Url,
    opts: &ConnectOptions,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, TunnelClientError> {
    let bad = |why: String| TunnelClientError::InvalidUrl { url: redact(url), why };
    let mut request = url.as_str().into_client_request().map_err(|e| bad(e.to_string()))?;
    let mut headers: Vec<(String, String)> =
        vec![(SEC_WEBSOCKET_PROTOCOL.as_str().to_owned(), SUBPROTOCOL.to_owned())];
    if opts.send_origin {
        headers.push((ORIGIN.as_str().to_owned(), url.origin().ascii_serialization()));
    }
    if let Some(payload) = &opts.client_payload {
        headers.push((CLIENT_PAYLOAD_HEADER.to_owned(), payload.clone()));
    }
    if opts.signal_connection {
        headers.push((SIGNAL_CONNECTION_HEADER.to_owned(), "true".to_owned()));
    }
    headers.extend(opts.extra_headers.iter().cloned());
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("invalid header name {name:?}")))?;
        let v = HeaderValue::from_str(&value)
            .map_err(|_| bad(format!("invalid value for header {name}")))?;
        request.headers_mut().insert(n, v);
    }
    Ok(request)
}

fn client_tls_config(roots: &TlsRoots) -> Result<Arc<rustls::ClientConfig>, TunnelClientError> {
    static NATIVE: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    match roots {
        TlsRoots::Custom(store) => {
            build_tls_config(store.clone()).map_err(TunnelClientError::NativeRoots)
        }
        TlsRoots::Native => NATIVE
            .get_or_init(|| {
                let loaded = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
                if added == 0 {
                    return Err(format!("no usable root certificates ({:?})", loaded.errors));
                }
                build_tls_config(Arc::new(store))
            })
            .clone()
            .map_err(TunnelClientError::NativeRoots),
    }
}

fn build_tls_config(store: Arc<RootCertStore>) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_redaction() {
        let lo = |u: &str| is_loopback(&Url::parse(u).unwrap().host().unwrap());
        assert!(lo("ws://127.0.0.1/"));
        assert!(lo("ws://[::1]/"));
        assert!(lo("ws://LOCALHOST/"));
        assert!(!lo("ws://10.0.0.1/"));
        let u = Url::parse("wss://h.example/cable/connect/ABCDEF/00112233").unwrap();
        assert_eq!(redact(&u), "wss://h.example/cable/connect/…");
        let u = Url::parse("wss://h.example:8443/cable/contact/AQID").unwrap();
        assert_eq!(redact(&u), "wss://h.example:8443/cable/contact/…");
    }

    #[test]
    fn request_carries_subprotocol_origin_and_caller_headers() {
        let u = Url::parse("wss://h.example:8443/cable/contact/AQID").unwrap();
        let o = ConnectOptions {
            client_payload: Some("A1".into()),
            signal_connection: true,
            extra_headers: vec![("X-Test".into(), "1".into())],
            ..ConnectOptions::default()
        };
        let r = build_request(&u, &o).unwrap();
        let h = |n: &str| r.headers().get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("sec-websocket-protocol"), "fido.cable");
        assert_eq!(h("origin"), "wss://h.example:8443");
        assert_eq!(h(CLIENT_PAYLOAD_HEADER), "A1");
        assert_eq!(h(SIGNAL_CONNECTION_HEADER), "true");
        assert_eq!(h("x-test"), "1");
    }
}
