//! Tunnel client (§6.1–§6.3): opens `/cable/new`, `/cable/connect` or `/cable/contact` (or our
//! private `/cable/listen`) and exchanges whole binary messages.
//!
//! What it does beyond a plain WebSocket connect: always offers `fido.cable` and refuses a 101
//! that does not select it (Chrome aborts then, §6.1); sends `Origin` = the URL's own origin as
//! Chrome does; follows 3xx `Location` redirects re-attaching every header (libwebauthn
//! learned this the hard way, pitfall 19); reads the `X-caBLE-Routing-ID` of `/cable/new`;
//! caps messages at 1 MiB both ways; refuses plain `ws://` except to loopback unless asked.
//! DNS, TCP and TLS are separate steps so each failure is reported as what it is.
//!
//! What it is not: the hybrid session. Messages are opaque bytes here; Noise and the Crypter
//! live in `cablebridge_protocol::hybrid`.

mod error;

pub use error::TunnelClientError;

use crate::tunnel::Io;
use cablebridge_protocol::hybrid::tunnel::{
    RoutingId, TunnelPath, CLIENT_PAYLOAD_HEADER, MAX_MESSAGE_LEN, ROUTING_ID_HEADER,
    SIGNAL_CONNECTION_HEADER, SUBPROTOCOL,
};
use futures_util::{SinkExt, StreamExt};
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::http::header::{LOCATION, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use url::Url;

/// Which certificates a `wss://` server must chain to.
#[derive(Debug, Clone, Default)]
pub enum TlsRoots {
    /// The operating system's store (rustls-native-certs), loaded once per process.
    #[default]
    Native,
    /// Only these roots (tests with a self-signed CA, pinned deployments).
    Custom(Arc<RootCertStore>),
}

/// How to connect. [`Default`] is what a desktop talking to a real tunnel service wants.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `X-caBLE-Client-Payload` (hex), for `/cable/contact` (§6.3); e.g.
    /// `ClientPayload::header_value()`.
    pub client_payload: Option<String>,
    /// Send `X-caBLE-Signal-Connection: true`; only if the caller will handle the `0x00`
    /// connect signal (see [`TunnelConnection::await_phone_connected`]).
    pub signal_connection: bool,
    /// Further request headers (name, value), re-sent on every redirect hop too.
    pub extra_headers: Vec<(String, String)>,
    /// Send `Origin: <the URL's origin>` as Chrome and webauthn-rs do.
    pub send_origin: bool,
    /// Trust anchors for `wss://`.
    pub tls_roots: TlsRoots,
    /// Allow plain `ws://` to non-loopback hosts.
    pub allow_insecure: bool,
    /// 3xx responses followed before giving up.
    pub max_redirects: u8,
    /// Limit for DNS + TCP + TLS + upgrade, redirects included.
    pub timeout: Duration,
    /// Largest message sent or accepted (1 MiB, Chrome's limit).
    pub max_message: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client_payload: None,
            signal_connection: false,
            extra_headers: Vec::new(),
            send_origin: true,
            tls_roots: TlsRoots::Native,
            allow_insecure: false,
            max_redirects: 3,
            timeout: Duration::from_secs(15),
            max_message: MAX_MESSAGE_LEN,
        }
    }
}

/// An open tunnel connection carrying whole binary messages.
pub struct TunnelConnection {
    ws: WebSocketStream<Box<dyn Io>>,
    url: Url,
    routing_id: Option<RoutingId>,
    signal_connection: bool,
    max_message: usize,
    close_frame: Option<(u16, String)>,
}

impl std::fmt::Debug for TunnelConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelConnection")
            .field("host", &self.url.host_str())
            .field("routing_id", &self.routing_id)
            .field("signal_connection", &self.signal_connection)
            .finish_non_exhaustive()
    }
}

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
    let invalid = |why: String| TunnelClientError::InvalidUrl { url: url.to_owned(), why };
    let mut current = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let mut visited: Vec<Url> = Vec::new();
    loop {
        let location = match attempt(&current, opts).await? {
            Attempt::Open(conn) => return Ok(*conn),
            Attempt::Redirect(location) => location,
        };
        let bad = |why: String| TunnelClientError::BadRedirect { url: current.to_string(), why };
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
            return Err(TunnelClientError::RedirectLoop { url: next.to_string() });
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
    let invalid =
        |why: &str| TunnelClientError::InvalidUrl { url: url.to_string(), why: why.into() };
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
                                url: url.to_string(),
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

/// Scheme, host and path kind only: tunnel ids and contact ids stay out of error messages.
fn redact(url: &Url) -> String {
    let kind = url.path().split('/').take(3).collect::<Vec<_>>().join("/");
    format!("{}://{}{kind}/…", url.scheme(), url.host_str().unwrap_or_default())
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
    let bad = |why: String| TunnelClientError::InvalidUrl { url: url.to_string(), why };
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

impl TunnelConnection {
    /// The routing id the server assigned (present for `/cable/new`).
    pub fn routing_id(&self) -> Option<RoutingId> {
        self.routing_id
    }

    /// `true` if we asked for the connect signal and the server echoed the header (§6.3): the
    /// first message will then be the unencrypted byte `0x00`.
    pub fn signal_connection(&self) -> bool {
        self.signal_connection
    }

    /// The close code and reason the peer sent, once [`TunnelConnection::recv`] returned `None`.
    pub fn close_frame(&self) -> Option<(u16, &str)> {
        self.close_frame.as_ref().map(|(c, r)| (*c, r.as_str()))
    }

    /// Sends one binary message (one copy into the frame buffer).
    pub async fn send(&mut self, message: &[u8]) -> Result<(), TunnelClientError> {
        self.send_bytes(Bytes::copy_from_slice(message)).await
    }

    /// Sends one binary message without copying it.
    pub async fn send_bytes(&mut self, message: Bytes) -> Result<(), TunnelClientError> {
        if message.len() > self.max_message {
            return Err(TunnelClientError::SendTooLarge {
                len: message.len(),
                max: self.max_message,
            });
        }
        self.ws.send(Message::Binary(message)).await.map_err(write_error)
    }

    /// The next binary message; `None` once the connection closed in an orderly way.
    pub async fn recv(&mut self) -> Option<Result<Bytes, TunnelClientError>> {
        loop {
            return match self.ws.next().await? {
                Ok(Message::Binary(b)) => Some(Ok(b)),
                Ok(Message::Text(_)) => Some(Err(TunnelClientError::NonBinaryMessage)),
                Ok(Message::Close(frame)) => {
                    self.close_frame =
                        frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
                    None
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                    Some(Err(TunnelClientError::MessageTooLarge { max: self.max_message }))
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => None,
                Err(WsError::Io(e)) => Some(Err(TunnelClientError::Io(e))),
                Err(e) => Some(Err(TunnelClientError::WebSocket(e.to_string()))),
            };
        }
    }

    /// Consumes the `0x00` connect signal (only valid if [`Self::signal_connection`]).
    pub async fn await_phone_connected(&mut self) -> Result<(), TunnelClientError> {
        match self.recv().await {
            Some(Ok(m)) if m.as_ref() == [0u8] => Ok(()),
            Some(Ok(m)) => Err(TunnelClientError::BadConnectSignal { len: m.len() }),
            Some(Err(e)) => Err(e),
            None => Err(TunnelClientError::Closed),
        }
    }

    /// Phone side of our private `/cable/listen` path (see [`crate::tunnel::server`]): waits for
    /// the one text message announcing a desktop and returns its decoded client payload (CBOR,
    /// for `ClientPayload::from_cbor`). After it, the connection relays binary messages.
    pub async fn await_client_payload(&mut self) -> Result<Vec<u8>, TunnelClientError> {
        let bad = |why: &str| TunnelClientError::BadListenNotice(why.to_owned());
        let text = loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => break t,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => {
                    return Err(bad("binary message before the notice"))
                }
                Some(Ok(Message::Close(_))) | None => return Err(TunnelClientError::Closed),
                Some(Err(e)) => return Err(write_error(e)),
            }
        };
        let value: serde_json::Value =
            serde_json::from_str(text.as_str()).map_err(|_| bad("not JSON"))?;
        let payload_hex = value
            .get("client_payload")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("no client_payload string"))?;
        hex::decode(payload_hex).map_err(|_| bad("client_payload is not hex"))
    }

    /// Closes with 1000 and waits (briefly) for the server's close reply.
    pub async fn close(mut self) -> Result<(), TunnelClientError> {
        match self.ws.close(None).await {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {}
            Err(e) => return Err(write_error(e)),
        }
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        Ok(())
    }
}

fn write_error(e: WsError) -> TunnelClientError {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => TunnelClientError::Closed,
        WsError::Io(e) => TunnelClientError::Io(e),
        other => TunnelClientError::WebSocket(other.to_string()),
    }
}
