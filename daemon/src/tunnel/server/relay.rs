//! The relay between a paired phone and desktop (§6: "forwards binary messages verbatim, one
//! protocol message per WebSocket message").
//!
//! One task per tunnel (the phone's connection task, once the desktop has been handed over)
//! drives both directions concurrently. Each direction reads one message and awaits its write
//! to the other side before reading the next, so the only buffering is tungstenite's one
//! message plus the kernel socket buffers: a slow reader slows its writer through TCP flow
//! control instead of growing a queue. Payloads are `Bytes` and are moved, never copied.
//!
//! No await here is unbounded: every send is under [`Limits::send_timeout`] (a peer that stops
//! reading ends the tunnel instead of pinning this task), reads are bounded by the idle timeout
//! (data messages only: pings and pongs do not count as activity) and by the tunnel's absolute
//! deadline, and closing is bounded by the close grace.

use super::limits::{ConnPermit, Reservation};
use super::registry::{ContactHold, Counters};
use super::stopped;
use crate::tunnel::Io;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// A server-side WebSocket.
pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// How the desktop arrived; decides what is sent before relaying starts.
#[derive(Debug)]
pub(crate) enum DesktopKind {
    /// `/cable/connect` (QR-initiated).
    Connect,
    /// `/cable/contact` (state-assisted): the payload goes to the listening phone as one text
    /// message; `signal` ⇒ the desktop gets the unencrypted `0x00` connect signal (§6.3).
    Contact { client_payload_hex: String, signal: bool },
}

/// What keeps counting against the server's caps for as long as the desktop's socket lives.
/// Never read: held only for what their `Drop` gives back.
#[derive(Debug)]
#[allow(dead_code)]
pub(crate) struct Holds {
    /// The desktop's connection slot (global and per-source caps).
    pub permit: ConnPermit,
    /// `/cable/contact` only: the tunnel's place under `max_tunnels`.
    pub contact: Option<ContactHold>,
}

/// The desktop's upgraded connection, handed to the waiting phone's task.
pub(crate) struct DesktopArrival {
    pub ws: Ws,
    pub kind: DesktopKind,
    pub holds: Holds,
}

impl fmt::Debug for DesktopArrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesktopArrival").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// Which end of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Phone,
    Desktop,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Phone => "phone",
            Side::Desktop => "desktop",
        }
    }
}

/// Why a tunnel (or a waiting phone) ended. Logged, never containing message contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// That side closed the WebSocket or the TCP connection.
    Closed(Side),
    /// That side's connection failed (reset, TLS error, write failure).
    Failed(Side),
    /// That side sent a text message (hybrid uses binary only; Chrome closes too, §6.1).
    NonBinary(Side),
    /// That side sent a message over the size cap.
    TooLarge(Side),
    /// That side exceeded its message budget for the tunnel.
    TooManyMessages(Side),
    /// Nothing flowed for the idle timeout.
    Idle,
    /// The tunnel reached its absolute maximum lifetime.
    Lifetime,
    /// That side did not take a message within the send timeout.
    Stalled(Side),
    /// That (unpaired) side would have crossed the server-wide buffer budget.
    BufferFull(Side),
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Closed(s) => write!(f, "{} closed", s.as_str()),
            EndReason::Failed(s) => write!(f, "{} connection failed", s.as_str()),
            EndReason::NonBinary(s) => write!(f, "{} sent a non-binary message", s.as_str()),
            EndReason::TooLarge(s) => write!(f, "{} sent an oversized message", s.as_str()),
            EndReason::TooManyMessages(s) => {
                write!(f, "{} exceeded its message budget", s.as_str())
            }
            EndReason::Idle => f.write_str("idle timeout"),
            EndReason::Lifetime => f.write_str("maximum tunnel lifetime reached"),
            EndReason::Stalled(s) => write!(f, "{} stopped reading (send timeout)", s.as_str()),
            EndReason::BufferFull(s) => {
                write!(f, "{} crossed the server's buffer budget", s.as_str())
            }
            EndReason::Shutdown => f.write_str("server shutdown"),
        }
    }
}

impl EndReason {
    /// The close frame sent to `to`.
    pub(crate) fn close_frame(self, to: Side) -> CloseFrame {
        let (code, reason) = match self {
            EndReason::NonBinary(s) if s == to => (CloseCode::Unsupported, "binary messages only"),
            EndReason::TooLarge(s) if s == to => (CloseCode::Policy, "message too large"),
            EndReason::TooManyMessages(s) if s == to => (CloseCode::Policy, "too many messages"),
            EndReason::BufferFull(s) if s == to => (CloseCode::Policy, "server buffer full"),
            EndReason::Idle => (CloseCode::Away, "idle timeout"),
            EndReason::Lifetime => (CloseCode::Away, "tunnel lifetime reached"),
            EndReason::Stalled(_) => (CloseCode::Away, "peer stopped reading"),
            EndReason::Shutdown => (CloseCode::Away, "server shutdown"),
            _ => (CloseCode::Normal, "peer left"),
        };
        CloseFrame { code, reason: reason.into() }
    }
}

/// Limits applied while relaying.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_messages_per_peer: u32,
    pub idle_timeout: Duration,
    pub close_grace: Duration,
    /// Limit for each send to either side.
    pub send_timeout: Duration,
    /// The tunnel ends here however busy it is.
    pub deadline: Instant,
}

/// Sends `msg` within `limit`: `Err(Stalled(to))` if the peer does not take it in time,
/// `Err(Failed(to))` if the connection fails.
pub(crate) async fn send_bounded<S>(
    dst: &mut S,
    msg: Message,
    to: Side,
    limit: Duration,
) -> Result<(), EndReason>
where
    S: futures_util::Sink<Message> + Unpin,
{
    match tokio::time::timeout(limit, dst.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(EndReason::Failed(to)),
        Err(_) => Err(EndReason::Stalled(to)),
    }
}

/// Counters for one direction of one tunnel. Atomics (relaxed) only because both directions
/// and the idle watch are polled from one task through shared references.
#[derive(Debug, Default)]
struct Direction {
    messages: AtomicU64,
    bytes: AtomicU64,
}

/// Classifies a read error of `side`.
pub(crate) fn read_error(side: Side, e: &WsError) -> EndReason {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => EndReason::TooLarge(side),
        WsError::ConnectionClosed | WsError::AlreadyClosed => EndReason::Closed(side),
        _ => EndReason::Failed(side),
    }
}

/// Moves messages from `src` (sent by `from`) to `dst` until something ends the tunnel.
async fn pump(
    from: Side,
    src: &mut SplitStream<Ws>,
    dst: &mut SplitSink<Ws, Message>,
    dir: &Direction,
    activity: &AtomicU64,
    start: Instant,
    limits: Limits,
) -> EndReason {
    let to = match from {
        Side::Phone => Side::Desktop,
        Side::Desktop => Side::Phone,
    };
    loop {
        let msg = match src.next().await {
            None => return EndReason::Closed(from),
            Some(Err(e)) => return read_error(from, &e),
            Some(Ok(msg)) => msg,
        };
        match msg {
            Message::Binary(payload) => {
                // Only data counts as activity: a peer pinging forever is still idle.
                activity.store(elapsed_ms(start), Relaxed);
                let n = dir.messages.fetch_add(1, Relaxed) + 1;
                if n > u64::from(limits.max_messages_per_peer) {
                    return EndReason::TooManyMessages(from);
                }
                dir.bytes.fetch_add(payload.len() as u64, Relaxed);
                let sent = send_bounded(dst, Message::Binary(payload), to, limits.send_timeout);
                if let Err(reason) = sent.await {
                    return reason;
                }
            }
            Message::Text(_) => return EndReason::NonBinary(from),
            Message::Close(_) => return EndReason::Closed(from),
            // tungstenite answers pings itself; pongs and raw frames carry nothing to relay.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Resolves once nothing has been read for `idle`; sleeps until the earliest possible expiry
/// each time instead of polling, so an active tunnel wakes it at most once per `idle`.
async fn idle_watch(start: Instant, activity: &AtomicU64, idle: Duration) {
    loop {
        let deadline = start + Duration::from_millis(activity.load(Relaxed)) + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Totals of one finished tunnel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TunnelTotals {
    pub reason: EndReason,
    pub desktop_to_phone: (u64, u64),
    pub phone_to_desktop: (u64, u64),
    pub duration: Duration,
}

/// Relays until one side ends, then closes both. `phone_backlog` holds messages the phone sent
/// before its desktop arrived; they go out first (each under the send timeout), and
/// `backlog_budget` is given back once they have.
pub(crate) async fn relay(
    phone: Ws,
    desktop: Ws,
    phone_backlog: Vec<Bytes>,
    backlog_budget: Reservation,
    limits: Limits,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    counters: &Counters,
) -> TunnelTotals {
    let start = Instant::now();
    let (mut phone_tx, mut phone_rx) = phone.split();
    let (mut desktop_tx, mut desktop_rx) = desktop.split();
    let up = Direction::default();
    let down = Direction::default();
    let activity = AtomicU64::new(0);

    let mut reason = None;
    for payload in phone_backlog {
        down.messages.fetch_add(1, Relaxed);
        down.bytes.fetch_add(payload.len() as u64, Relaxed);
        let sent = send_bounded(
            &mut desktop_tx,
            Message::Binary(payload),
            Side::Desktop,
            limits.send_timeout,
        );
        if let Err(r) = sent.await {
            reason = Some(r);
            break;
        }
    }
    drop(backlog_budget);
    let reason = match reason {
        Some(r) => r,
        None => tokio::select! {
            r = pump(Side::Desktop, &mut desktop_rx, &mut phone_tx, &up, &activity, start, limits) => r,
            r = pump(Side::Phone, &mut phone_rx, &mut desktop_tx, &down, &activity, start, limits) => r,
            () = idle_watch(start, &activity, limits.idle_timeout) => EndReason::Idle,
            () = tokio::time::sleep_until(limits.deadline) => EndReason::Lifetime,
            () = stopped(&mut shutdown) => EndReason::Shutdown,
        },
    };
    match reason {
        EndReason::Idle => counters.idle_closed.fetch_add(1, Relaxed),
        EndReason::Lifetime => counters.lifetime_closed.fetch_add(1, Relaxed),
        EndReason::Stalled(_) => counters.send_timeouts.fetch_add(1, Relaxed),
        _ => 0,
    };

    tokio::join!(
        close_half(&mut phone_tx, &mut phone_rx, reason.close_frame(Side::Phone), limits),
        close_half(&mut desktop_tx, &mut desktop_rx, reason.close_frame(Side::Desktop), limits),
    );

    let totals = TunnelTotals {
        reason,
        desktop_to_phone: (up.messages.load(Relaxed), up.bytes.load(Relaxed)),
        phone_to_desktop: (down.messages.load(Relaxed), down.bytes.load(Relaxed)),
        duration: start.elapsed(),
    };
    counters.messages.fetch_add(totals.desktop_to_phone.0 + totals.phone_to_desktop.0, Relaxed);
    counters.bytes.fetch_add(totals.desktop_to_phone.1 + totals.phone_to_desktop.1, Relaxed);
    totals
}

/// Sends `frame` (if the connection still can) and waits briefly for the peer's close reply, so
/// the close frame is not lost to a TCP reset from unread data.
async fn close_half(
    tx: &mut SplitSink<Ws, Message>,
    rx: &mut SplitStream<Ws>,
    frame: CloseFrame,
    limits: Limits,
) {
    let _ = tokio::time::timeout(limits.close_grace, async {
        if tx.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = rx.next().await {}
    })
    .await;
}

/// Closes a single (unpaired) connection the same way.
pub(crate) async fn close_one(ws: Ws, frame: CloseFrame, grace: Duration) {
    let (mut tx, mut rx) = ws.split();
    let limits = Limits {
        max_messages_per_peer: 0,
        idle_timeout: grace,
        close_grace: grace,
        send_timeout: grace,
        deadline: Instant::now() + grace,
    };
    close_half(&mut tx, &mut rx, frame, limits).await;
}
