//! Tunnel client (§6.1–§6.3): opens `/cable/new`, `/cable/connect` or `/cable/contact` (or our
//! private `/cable/listen`) and exchanges whole binary messages.
//!
//! What it does beyond a plain WebSocket connect: always offers `fido.cable` and refuses a 101
//! that does not select it (Chrome aborts then, §6.1); sends `Origin` = the URL's own origin as
//! Chrome does; follows 3xx `Location` redirects re-attaching every header (libwebauthn
//! learned this the hard way, pitfall 19); reads the `X-caBLE-Routing-ID` of `/cable/new`;
//! caps messages at 1 MiB both ways; refuses plain `ws://` except to loopback unless asked.
//! DNS, TCP and TLS are separate steps so each failure is reported as what it is. Every URL in
//! an error is [`redact_url`]ed: tunnel, routing and contact ids never reach a message or log.
//!
//! What it is not: the hybrid session. Messages are opaque bytes here; Noise and the Crypter
//! live in `cablebridge_protocol::hybrid`.

mod connect;
mod error;
mod redact;

pub use connect::connect;
pub use error::TunnelClientError;
pub use redact::redact_url;

use crate::tunnel::Io;
use cablebridge_protocol::hybrid::tunnel::{RoutingId, MAX_MESSAGE_LEN};
use futures_util::{SinkExt, StreamExt};
use rustls::RootCertStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::error::CapacityError;
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
