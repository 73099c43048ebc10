//! A phone's connection task: wait (bounded by a TTL) for the desktop, then become the tunnel's
//! relay task.
//!
//! While waiting the task keeps reading the phone's socket, so a phone that leaves is noticed
//! at once (its slot is freed by the guard) and pings are answered. Messages the phone sends
//! before pairing are held, bounded by the per-peer message budget and one maximum-size
//! message in total, and delivered first once the desktop arrives; all phones' early messages
//! together are bounded by the server's buffer budget. Every send (the contact prelude, early
//! messages, relayed data) is under the send timeout.

use super::registry::{DesktopReceiver, Gauge, SlotGuard};
use super::relay::{self, close_one, DesktopArrival, DesktopKind, EndReason, Side, Ws};
use super::{stopped, Shared};
use cablebridge_protocol::hybrid::tunnel::TunnelId;
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// Which table the phone waits in.
#[derive(Debug)]
pub(crate) enum Waiting {
    /// `/cable/new/<tunnel>` (QR).
    Tunnel(TunnelId),
    /// `/cable/listen/<contact>` (state-assisted, our private path).
    Listener,
}

// One short-lived value per connection, moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum WaitEnd {
    Paired(DesktopArrival),
    Expired,
    /// The claim was dropped: the desktop's upgrade failed after claiming, or (listeners) a
    /// newer registration replaced this one.
    Abandoned,
    Ended(EndReason),
}

/// The first 8 hex digits of a tunnel id: enough to correlate log lines, not enough to claim
/// the tunnel from a log.
fn log_id(waiting: &Waiting) -> String {
    match waiting {
        Waiting::Tunnel(id) => id.to_hex().chars().take(8).collect(),
        Waiting::Listener => "listener".to_owned(),
    }
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut ws: Ws,
    waiting: Waiting,
    guard: SlotGuard,
    mut desktop: DesktopReceiver,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = &shared.config;
    let counters = &shared.counters;
    let (ttl, gauge_counter) = match waiting {
        Waiting::Tunnel(_) => (cfg.unpaired_ttl, &counters.waiting),
        Waiting::Listener => (cfg.listen_ttl, &counters.listening),
    };
    let deadline = Instant::now() + ttl;
    let waiting_gauge = Gauge::up(gauge_counter);
    let mut backlog: Vec<Bytes> = Vec::new();
    let mut backlog_bytes = 0usize;
    let mut backlog_budget = shared.budget.reservation();
    let end = loop {
        tokio::select! {
            arrival = &mut desktop => break match arrival {
                Ok(a) => WaitEnd::Paired(a),
                Err(_) => WaitEnd::Abandoned,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    backlog_bytes = backlog_bytes.saturating_add(b.len());
                    if backlog.len() >= cfg.max_messages_per_peer as usize
                        || backlog_bytes > cfg.max_message
                    {
                        break WaitEnd::Ended(EndReason::TooManyMessages(Side::Phone));
                    }
                    if !backlog_budget.grow(b.len()) {
                        counters.buffer_overflows.fetch_add(1, Relaxed);
                        break WaitEnd::Ended(EndReason::BufferFull(Side::Phone));
                    }
                    backlog.push(b);
                }
                Some(Ok(Message::Text(_))) => break WaitEnd::Ended(EndReason::NonBinary(Side::Phone)),
                Some(Ok(Message::Close(_))) | None => {
                    break WaitEnd::Ended(EndReason::Closed(Side::Phone))
                }
                Some(Err(e)) => break WaitEnd::Ended(relay::read_error(Side::Phone, &e)),
                Some(Ok(_)) => {}
            },
            () = tokio::time::sleep_until(deadline) => break WaitEnd::Expired,
            () = stopped(&mut shutdown) => break WaitEnd::Ended(EndReason::Shutdown),
        }
    };
    drop(waiting_gauge);
    // An unpaired phone is finished as far as the tables go: free its slot before the closing
    // handshake, so nobody is answered from a tunnel that is already going away.
    drop(desktop);
    let guard = match end {
        WaitEnd::Paired(_) => Some(guard),
        _ => {
            drop(guard);
            None
        }
    };
    let id = log_id(&waiting);
    let grace = cfg.shutdown_grace;

    // The desktop's connection slot (and a contact tunnel's place under `max_tunnels`) stay
    // held until this task ends.
    let DesktopArrival { ws: mut desktop_ws, kind, holds: _desktop_holds } = match end {
        WaitEnd::Paired(arrival) => arrival,
        WaitEnd::Expired => {
            counters.expired.fetch_add(1, Relaxed);
            tracing::debug!(tunnel = %id, "unpaired tunnel expired");
            let frame = CloseFrame { code: CloseCode::Away, reason: "tunnel expired".into() };
            return close_one(ws, frame, grace).await;
        }
        WaitEnd::Abandoned => {
            tracing::debug!(tunnel = %id, "waiting phone abandoned (replaced or desktop failed)");
            let frame = CloseFrame { code: CloseCode::Away, reason: "replaced".into() };
            return close_one(ws, frame, grace).await;
        }
        WaitEnd::Ended(reason) => {
            tracing::debug!(tunnel = %id, %reason, "unpaired tunnel ended");
            return close_one(ws, reason.close_frame(Side::Phone), grace).await;
        }
    };

    let deadline = Instant::now() + cfg.max_tunnel_lifetime;
    let _paired = Gauge::up(&counters.paired);
    counters.total_paired.fetch_add(1, Relaxed);
    let kind_name = match kind {
        DesktopKind::Connect => "qr",
        DesktopKind::Contact { .. } => "contact",
    };
    // State-assisted prelude (§6.3 and module docs of `super`): the phone learns the client
    // payload, the desktop (if it asked) learns that the phone is there.
    if let DesktopKind::Contact { client_payload_hex, signal } = kind {
        let note = serde_json::json!({ "client_payload": client_payload_hex }).to_string();
        let note = Message::text(note);
        if let Err(e) = relay::send_bounded(&mut ws, note, Side::Phone, cfg.send_timeout).await {
            count_stall(counters, e);
            return close_one(desktop_ws, e.close_frame(Side::Desktop), grace).await;
        }
        if signal {
            let byte = Message::binary(vec![0u8]);
            let sent = relay::send_bounded(&mut desktop_ws, byte, Side::Desktop, cfg.send_timeout);
            if let Err(e) = sent.await {
                count_stall(counters, e);
                return close_one(ws, e.close_frame(Side::Phone), grace).await;
            }
        }
    }
    let limits = relay::Limits {
        max_messages_per_peer: cfg.max_messages_per_peer,
        idle_timeout: cfg.idle_timeout,
        close_grace: grace,
        send_timeout: cfg.send_timeout,
        deadline,
    };
    let totals =
        relay::relay(ws, desktop_ws, backlog, backlog_budget, limits, shutdown, counters).await;
    // Keep the slot (and its 409 answer) until the relay is over.
    drop(guard);
    tracing::info!(
        tunnel = %id,
        kind = kind_name,
        reason = %totals.reason,
        desktop_to_phone_messages = totals.desktop_to_phone.0,
        desktop_to_phone_bytes = totals.desktop_to_phone.1,
        phone_to_desktop_messages = totals.phone_to_desktop.0,
        phone_to_desktop_bytes = totals.phone_to_desktop.1,
        duration_ms = u64::try_from(totals.duration.as_millis()).unwrap_or(u64::MAX),
        "tunnel ended"
    );
}

fn count_stall(counters: &super::registry::Counters, reason: EndReason) {
    if matches!(reason, EndReason::Stalled(_)) {
        counters.send_timeouts.fetch_add(1, Relaxed);
    }
}
