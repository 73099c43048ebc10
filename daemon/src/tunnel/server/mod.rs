//! Our own caBLE tunnel server: a relay that pairs a phone's and a desktop's WebSocket by tunnel
//! id and forwards binary messages verbatim (PROTOCOL-hybrid.md §6). It never sees keys.
//!
//! What it is not: a Google-compatible push service. Google wakes a linked phone through FCM;
//! that phone side is private to each vendor (§6.2, §6.3), so this server defines its own.
//!
//! # Paths
//!
//! | path | who | answer |
//! |---|---|---|
//! | `/cable/new/<TUNNEL>` | phone (QR) | 101 + `X-caBLE-Routing-ID: <6 uppercase hex>`; 409 if the id is in use |
//! | `/cable/connect/<ROUTING>/<TUNNEL>` | desktop (QR) | 101, paired; 404 unknown/expired tunnel or other routing id; 409 already paired |
//! | `/cable/contact/<base64url id>` | desktop (linked) | 101, paired with the listening phone; **404** if no phone listens on it right now (the desktop keeps the link: "phone not reachable"); **410 Gone** only if its phone revoked it (the desktop then forgets the link); 400 without a hex `X-caBLE-Client-Payload` |
//! | `/cable/listen/<base64url id>` | phone (linked) | 101 with the id's listen secret; 403 without it; 410 if revoked (and as the answer to a revocation); **private to this server** |
//!
//! Every path requires `Sec-WebSocket-Protocol: fido.cable` (HTTP 400 without, as Google's
//! server answers) and the 101 echoes it. Hex is accepted in either case. Over capacity: 503.
//!
//! # The private state-assisted phone path
//!
//! A linked phone keeps `/cable/listen/<base64url contact id>` open (subprotocol `fido.cable`,
//! header `X-Cablebridge-Listen-Secret: <hex>` whose one-way derivation is the contact id, see
//! [`crate::tunnel::listen`]), one connection per linked desktop (each has its own contact id),
//! re-registering after [`TunnelServerConfig::listen_ttl`] or whenever the socket drops; a newer
//! registration for the same contact id replaces the older one. When a desktop arrives on
//! `/cable/contact/<same id>`, the server sends the listening phone exactly **one text message**,
//! the JSON object `{"client_payload": "<lowercase hex of the desktop's CBOR payload>"}`, and from
//! then on the connection is an ordinary tunnel: binary messages relayed both ways. The phone
//! derives the EID key from the payload's client nonce, advertises, and answers the desktop's
//! NKpsk0 handshake over this same socket. One listen connection serves one desktop; the phone
//! opens a new listen connection for the next. If the desktop sent
//! `X-caBLE-Signal-Connection: true`, the 101 echoes it and the desktop's first message is the
//! unencrypted byte `0x00` ("phone connected", §6.3) — sent immediately, since the phone is by
//! construction already connected. A desktop knows only the contact id, which is no credential:
//! it cannot listen in the phone's place. The phone unlinks a desktop by sending the same
//! request with `X-Cablebridge-Revoke: true`; the server drops any listener on the id, answers
//! `410 Gone`, and from then on answers 410 to desktops on that id (remembered in memory, the
//! newest 16 Ki revocations; an id forgotten after a restart falls back to 404, which keeps links).
//!
//! # Resource use
//!
//! One tokio task per connection; a paired tunnel runs in the phone's task, which owns both
//! sockets. Pairing is one O(1) hash-map operation. TTL and idle limits are entries in tokio's
//! timer wheel (no polling). Buffering is bounded: see [`relay`](self) and the WebSocket
//! settings in [`crate::tunnel`].

mod config;
mod phone;
mod registry;
mod relay;
mod upgrade;

pub use config::{TlsFiles, TunnelServerConfig};
pub use registry::{Reject, ServerStats};

use crate::tunnel::Io;
use cablebridge_protocol::error::{Classify, Fault, Stage};
use registry::{Counters, Registry};
use relay::{close_one, DesktopArrival, Ws};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Error as WsError;
use upgrade::Admission;

/// Errors starting the server.
#[non_exhaustive]
#[derive(Debug)]
pub enum ServerError {
    /// Binding the listen address failed (in use, permission denied).
    Bind(SocketAddr, std::io::Error),
    /// The TLS certificate or key could not be loaded.
    Tls(String),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Bind(addr, e) => write!(f, "tunnel server cannot listen on {addr}: {e}"),
            ServerError::Tls(what) => write!(f, "tunnel server TLS setup: {what}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Bind(_, e) => Some(e),
            ServerError::Tls(_) => None,
        }
    }
}

impl Classify for ServerError {
    fn fault(&self) -> Fault {
        // Both come from the machine or the operator's files, not from a peer.
        Fault::Environment
    }
    fn stage(&self) -> Stage {
        Stage::Tunnel
    }
}

/// State shared by the accept loop and every connection task.
pub(crate) struct Shared {
    config: TunnelServerConfig,
    registry: Registry,
    counters: Counters,
    ws_config: WebSocketConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// The tunnel server; see the module docs.
#[derive(Debug)]
pub struct TunnelServer;

impl TunnelServer {
    /// Loads TLS (if configured), binds, and starts accepting in a background task.
    pub async fn bind(config: TunnelServerConfig) -> Result<TunnelServerHandle, ServerError> {
        let tls = match &config.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(config::load_tls(files)?)),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServerError::Bind(config.listen, e))?;
        let local_addr = listener.local_addr().map_err(|e| ServerError::Bind(config.listen, e))?;
        let shared = Arc::new(Shared {
            registry: Registry::new(config.max_tunnels),
            counters: Counters::default(),
            ws_config: crate::tunnel::ws_config(config.max_message),
            tls,
            config,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        tracing::info!(%local_addr, tls = shared.tls.is_some(), "tunnel server listening");
        Ok(TunnelServerHandle { local_addr, shared, stop: stop_tx, task })
    }
}

/// A running server. Dropping it stops the server as [`TunnelServerHandle::shutdown`] does,
/// without waiting for the connections to finish.
#[derive(Debug)]
pub struct TunnelServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TunnelServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://addr` or `wss://addr`: the base to pass to `hybrid::tunnel::url`.
    pub fn base_url(&self) -> String {
        let scheme = if self.shared.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// A snapshot of the server-wide counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting, closes every tunnel with 1001 (going away), and waits up to the
    /// configured grace for connections to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Resolves once the shutdown flag is set (at once if it already is, or if the sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    // The `Ref` this returns must not live across an await: it holds a lock.
    let _ = rx.wait_for(|stop| *stop).await.map(|_| ());
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let for_connections = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(handle_connection(shared.clone(), tcp, peer, for_connections.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "tunnel server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set stays the size of the live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    // Connection tasks saw the same signal and are closing; give them the grace (plus the
    // relay's own close grace) and then cut the rest.
    let grace = shared.config.shutdown_grace * 2;
    let _ = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} })
        .await;
    connections.abort_all();
    tracing::info!("tunnel server stopped");
}

async fn handle_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    // Tunnel messages are latency-bound and small; Nagle only adds delay.
    let _ = tcp.set_nodelay(true);
    let (ws, admission) = match upgrade(&shared, tcp).await {
        Upgrade::Accepted(ws, admission) => (ws, admission),
        // Answered with an HTTP status; counted by reason in `upgrade::decide`.
        Upgrade::Refused => return,
        Upgrade::Failed => {
            shared.counters.handshake_failures.fetch_add(1, Relaxed);
            tracing::debug!(%peer, "tunnel upgrade failed or timed out");
            return;
        }
    };
    match admission {
        Admission::Phone { tunnel_id, guard, desktop } => {
            let waiting = phone::Waiting::Tunnel(tunnel_id);
            phone::serve(shared, ws, waiting, guard, desktop, shutdown).await;
        }
        Admission::Listener { guard, desktop } => {
            phone::serve(shared, ws, phone::Waiting::Listener, guard, desktop, shutdown).await;
        }
        Admission::Desktop { claim, kind } => {
            // The phone's task takes over; if it vanished in the meantime, say so and close.
            if let Err(back) = claim.send(DesktopArrival { ws, kind }) {
                let frame = CloseFrame { code: CloseCode::Away, reason: "phone left".into() };
                close_one(back.ws, frame, shared.config.shutdown_grace).await;
            }
        }
    }
}

// One short-lived value per connection, moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Upgrade {
    Accepted(Ws, Admission),
    Refused,
    Failed,
}

/// TLS (if configured) and the WebSocket upgrade, within the handshake timeout.
async fn upgrade(shared: &Arc<Shared>, tcp: TcpStream) -> Upgrade {
    let mut admission = None;
    let handshake = async {
        let io: Box<dyn Io> = match &shared.tls {
            Some(acceptor) => match acceptor.accept(tcp).await {
                Ok(tls) => Box::new(tls),
                Err(_) => return Err(false),
            },
            None => Box::new(tcp),
        };
        // The error type is fixed by tungstenite's `Callback` trait.
        #[allow(clippy::result_large_err)]
        let callback = |req: &_, resp| upgrade::decide(shared, req, resp, &mut admission);
        tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(shared.ws_config))
            .await
            // tungstenite reports a refusal our callback made as `Http` after sending it.
            .map_err(|e| matches!(e, WsError::Http(_)))
    };
    match tokio::time::timeout(shared.config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => match admission {
            Some(admission) => Upgrade::Accepted(ws, admission),
            None => Upgrade::Failed,
        },
        Ok(Err(true)) => Upgrade::Refused,
        Ok(Err(false)) | Err(_) => Upgrade::Failed,
    }
}
