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
//! Ids must have their exact length (hex) or a bounded one (base64url, at most
//! [`MAX_CONTACT_ID_LEN`] bytes decoded); otherwise 400.
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
//!
//! # Limits under abuse
//!
//! Every limit is a [`TunnelServerConfig`] field (and a `cablebridge tunnel-server` flag):
//!
//! | what | limit | answer |
//! |---|---|---|
//! | connections at once, from `accept` to close, both ends of every tunnel | `max_connections` | 503 before the upgrade |
//! | connections at once from one source (IPv4 address, IPv6 /64) | `max_connections_per_ip` | 429 before the upgrade |
//! | tunnels + listeners (incl. paired contact tunnels) | `max_tunnels` | 503 |
//! | bytes held for unpaired phones, all together | `max_unpaired_buffer` | 503 for new phones; 1008 close for the phone crossing it |
//! | upgrade request size | `max_request_bytes` | 431 |
//! | time to TLS + send the upgrade request | `handshake_timeout` | connection closed |
//! | malformed ids | exact/bounded shapes | 400 |
//! | unpaired phone / listener waiting | `unpaired_ttl` / `listen_ttl` | close 1001 |
//! | paired tunnel without data (pings don't count) | `idle_timeout` | close 1001 |
//! | paired tunnel, however busy | `max_tunnel_lifetime` | close 1001 |
//! | a peer not taking a message | `send_timeout` (every send) | close 1001 |
//!
//! Refusals before the upgrade read the request (bounded) and write the status themselves; at
//! most [`MAX_REFUSING`] of them run at once, beyond that an over-cap connection is closed
//! unanswered (`dropped_connections`). Each refusal reason is logged once when it first
//! happens and then at most once per 10 s with its running total; [`ServerStats`] has every
//! counter. Worst-case memory is about `max_connections` × (`max_message` + ~20 KiB): a
//! connection may hold one partly received message.

mod config;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod phone;
mod registry;
mod relay;
mod upgrade;

pub use config::{TlsFiles, TunnelServerConfig};
pub use registry::{Reject, ServerStats};
pub use upgrade::MAX_CONTACT_ID_LEN;

/// Over-cap connections answered with an HTTP status at the same time; more are closed
/// unanswered. Each such refusal lives at most [`REFUSAL_TIME`].
pub const MAX_REFUSING: u64 = 64;
/// Limit for answering one over-cap connection (TLS, reading its request, writing the status).
const REFUSAL_TIME: Duration = Duration::from_secs(2);

use crate::tunnel::Io;
use cablebridge_protocol::error::{Classify, Fault, Stage};
use limits::{BufferBudget, ConnPermit, ConnTable, RequestError};
use registry::{Counters, Registry};
use relay::{close_one, DesktopArrival, Holds, Ws};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64};
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
    conns: Arc<ConnTable>,
    budget: Arc<BufferBudget>,
    /// Over-cap connections being answered right now (at most [`MAX_REFUSING`]).
    refusing: AtomicU64,
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
            conns: ConnTable::new(config.max_connections, config.max_connections_per_ip),
            budget: BufferBudget::new(config.max_unpaired_buffer),
            refusing: AtomicU64::new(0),
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
        let mut stats = self.shared.counters.snapshot();
        stats.connections = self.shared.conns.open.load(Ordering::Relaxed);
        stats.unpaired_buffered_bytes = self.shared.budget.held.load(Ordering::Relaxed);
        stats
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
                Ok((tcp, peer)) => match shared.conns.admit(peer.ip()) {
                    Ok(permit) => {
                        let stop = for_connections.clone();
                        connections.spawn(handle_connection(shared.clone(), tcp, peer, permit, stop));
                    }
                    Err(reason) => {
                        shared.counters.reject(reason);
                        match RefusalSlot::take(&shared) {
                            Some(slot) => {
                                connections.spawn(refuse(shared.clone(), tcp, reason, slot));
                            }
                            None => {
                                shared.counters.dropped_connections.fetch_add(1, Relaxed);
                                drop(tcp);
                            }
                        }
                    }
                },
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

/// One of the [`MAX_REFUSING`] places for answering an over-cap connection.
struct RefusalSlot(Arc<Shared>);

impl RefusalSlot {
    fn take(shared: &Arc<Shared>) -> Option<RefusalSlot> {
        let taken =
            shared.refusing.fetch_update(Relaxed, Relaxed, |n| (n < MAX_REFUSING).then_some(n + 1));
        taken.is_ok().then(|| RefusalSlot(Arc::clone(shared)))
    }
}

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Relaxed);
    }
}

/// Answers an over-cap connection with `reason`'s status, before any upgrade: reads its
/// request (bounded), writes the status, and waits briefly for the client to close.
async fn refuse(shared: Arc<Shared>, tcp: TcpStream, reason: Reject, slot: RefusalSlot) {
    let limit = shared.config.handshake_timeout.min(REFUSAL_TIME);
    let _ = tokio::time::timeout(limit, async {
        let mut io: Box<dyn Io> = match &shared.tls {
            Some(acceptor) => match acceptor.accept(tcp).await {
                Ok(tls) => Box::new(tls),
                Err(_) => return,
            },
            None => Box::new(tcp),
        };
        if limits::read_request(&mut io, shared.config.max_request_bytes).await.is_err() {
            return;
        }
        limits::answer(&mut io, reason).await;
        limits::drain(&mut io, shared.config.max_request_bytes).await;
    })
    .await;
    drop(slot);
}

async fn handle_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: ConnPermit,
    shutdown: watch::Receiver<bool>,
) {
    // Tunnel messages are latency-bound and small; Nagle only adds delay.
    let _ = tcp.set_nodelay(true);
    // A connection still upgrading (possibly a slow-loris) does not hold up shutdown.
    let mut stop = shutdown.clone();
    let upgraded = tokio::select! {
        upgraded = upgrade(&shared, tcp) => upgraded,
        () = stopped(&mut stop) => return,
    };
    let (ws, admission) = match upgraded {
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
        Admission::Desktop { claim, kind, hold } => {
            // The phone's task takes over (with this connection's permit); if it vanished in
            // the meantime, say so and close.
            let holds = Holds { permit, contact: hold };
            if let Err(back) = claim.send(DesktopArrival { ws, kind, holds }) {
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

/// TLS (if configured), reading the upgrade request (at most `max_request_bytes`) and the
/// WebSocket upgrade, all within the handshake timeout.
async fn upgrade(shared: &Arc<Shared>, tcp: TcpStream) -> Upgrade {
    let mut admission = None;
    let got_request = AtomicBool::new(false);
    let handshake = async {
        let mut io: Box<dyn Io> = match &shared.tls {
            Some(acceptor) => match acceptor.accept(tcp).await {
                Ok(tls) => Box::new(tls),
                Err(_) => return Err(false),
            },
            None => Box::new(tcp),
        };
        let max = shared.config.max_request_bytes;
        let request = match limits::read_request(&mut io, max).await {
            Ok(request) => request,
            Err(RequestError::TooLarge) => {
                got_request.store(true, Relaxed);
                shared.counters.reject(Reject::RequestTooLarge);
                limits::answer(&mut io, Reject::RequestTooLarge).await;
                // Bounded by the handshake timeout; avoids a reset eating the answer.
                limits::drain(&mut io, 4 * max).await;
                return Err(true);
            }
            Err(RequestError::Io) => return Err(false),
        };
        got_request.store(true, Relaxed);
        // tungstenite parses the request from the bytes already read, then the live socket.
        let io: Box<dyn Io> = Box::new(limits::Prefixed::new(request, io));
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
        Ok(Err(false)) => Upgrade::Failed,
        Err(_) => {
            if !got_request.load(Relaxed) {
                shared.counters.request_timeouts.fetch_add(1, Relaxed);
            }
            Upgrade::Failed
        }
    }
}
