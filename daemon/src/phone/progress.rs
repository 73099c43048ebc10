//! Events of the phone side (virtual phone and USB-key bridge), for humans (stderr lines) and
//! machines (JSON lines with an `event` field). Nothing secret goes in here: no keys, no link
//! secrets, no full contact ids.
//!
//! They travel through the same [`EventSink`](crate::ceremony::EventSink) as ceremony events, wrapped in
//! [`CeremonyEvent::Phone`] with the milliseconds since the phone started, so one sink type
//! subscribes to desktop ceremonies and phone sessions alike. [`phone_sink`] adapts a closure
//! that only cares about phone events.

use crate::ceremony::{CeremonyEvent, Events};
use crate::tunnel::client::redact_url;
use cablebridge_protocol::ctap2::{Command, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

/// An [`Events`] sink that calls `f(elapsed_ms, event)` for each [`CeremonyEvent::Phone`] and
/// ignores every other event.
pub fn phone_sink(f: impl Fn(u64, &PhoneEvent) + Send + Sync + 'static) -> Events {
    let sink = move |event: &CeremonyEvent| {
        if let CeremonyEvent::Phone { elapsed_ms, event } = event {
            f(*elapsed_ms, event)
        }
    };
    Some(Arc::new(sink))
}

/// Sends `event` to `events` (if anyone watches) as a [`CeremonyEvent::Phone`].
pub(crate) fn emit_to(events: &Events, elapsed_ms: u64, event: PhoneEvent) {
    if let Some(sink) = events {
        sink.emit(&CeremonyEvent::Phone { elapsed_ms, event });
    }
}

/// One step of a phone (or bridge) session.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneEvent {
    /// Opening the tunnel (`/cable/new`, `/cable/listen`).
    Connecting {
        /// The path opened. Rendered (JSON, human) without its ids, which let someone occupy
        /// or join the tunnel: see [`crate::tunnel::client::redact_url`].
        path: String,
    },
    /// The tunnel is open; for `/cable/new` the server assigned this routing id.
    TunnelOpen {
        /// Routing id (hex), if any.
        routing_id: Option<String>,
    },
    /// Advertising started on the sink.
    Advertising {
        /// The sink (`stdout`, `fifo:…`, `unix:…`).
        sink: String,
        /// The 20-byte advert, hex (public: it is broadcast).
        advert: String,
    },
    /// Noise message 2 sent; advertising stopped.
    HandshakeDone,
    /// The post-handshake message (getInfo) was sent.
    PostHandshakeSent,
    /// Linking info was sent in an update message.
    LinkingSent {
        /// The link id (hex), public in the client payload of later connections.
        link_id: String,
    },
    /// A CTAP request arrived.
    Request {
        /// The CTAP command (its byte in JSON).
        command: Command,
    },
    /// The authenticator waits for user presence.
    PresenceRequested {
        /// The relying party, when known.
        rp_id: Option<String>,
        /// Simulated delay before approval, in milliseconds.
        delay_ms: u64,
    },
    /// A CTAP response was sent.
    Responded {
        /// Its status (its byte in JSON).
        status: StatusCode,
    },
    /// A fault switch fired.
    FaultInjected {
        /// Which one.
        what: String,
    },
    /// Waiting on `/cable/listen` for a desktop.
    Listening {
        /// The first 4 bytes of the contact id, hex (enough to correlate, not to connect).
        contact: String,
    },
    /// A desktop arrived on a contact.
    DesktopArrived {
        /// Link id named by the client payload (hex).
        link_id: String,
        /// Whether it is a link this phone issued.
        known: bool,
    },
    /// A linked desktop's session failed (malformed client payload, unknown link, failed
    /// handshake, …); the phone keeps serving the others.
    SessionFailed {
        /// The stage that failed (`Stage::as_str`).
        stage: String,
        /// Why.
        reason: String,
    },
    /// A listener's connection to the tunnel server failed; it tries again after a pause.
    ListenRetry {
        /// The first 4 bytes of the contact id, hex.
        contact: String,
        /// The pause before the next attempt, in milliseconds (doubles up to 30 s).
        after_ms: u64,
        /// Why the attempt failed.
        reason: String,
    },
    /// The session ended.
    Closed {
        /// Why.
        reason: String,
    },
    /// Bridge: the USB key answered getInfo; this is what the desktop will be told.
    KeyReady {
        /// Device path or address.
        device: String,
        /// The key's AAGUID (hex), passed through to the desktop.
        aaguid: String,
        /// getInfo options withheld from the desktop (PIN/UV-auth machinery).
        removed: Vec<String>,
        /// A PIN is set and makeCredential will want it: registrations will fail.
        pin_needed: bool,
    },
    /// Bridge: the key waits for the person at the bridge (keepalive UPNEEDED).
    KeyWaiting {
        /// What to do ("touch the key").
        what: String,
    },
    /// Bridge: a desktop request was not forwarded to the key.
    Refused {
        /// The CTAP command (its byte in JSON).
        command: Command,
        /// Status answered instead (its byte in JSON).
        status: StatusCode,
        /// Why.
        reason: String,
        /// The relying party the request named (control characters escaped), if readable.
        rp_id: Option<String>,
    },
    /// Bridge: a desktop request goes to the key (before any touch is asked for).
    Forwarding {
        /// The command's name (`authenticatorGetAssertion`).
        command: String,
        /// The relying party it names (control characters escaped), if any.
        rp_id: Option<String>,
    },
    /// Something the operator should know (the key needs a PIN, the key was not touched).
    Warning {
        /// The message.
        message: String,
    },
}

impl PhoneEvent {
    /// The `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            PhoneEvent::Connecting { .. } => "connecting",
            PhoneEvent::TunnelOpen { .. } => "tunnel_open",
            PhoneEvent::Advertising { .. } => "advertising",
            PhoneEvent::HandshakeDone => "handshake_done",
            PhoneEvent::PostHandshakeSent => "post_handshake_sent",
            PhoneEvent::LinkingSent { .. } => "linking_sent",
            PhoneEvent::Request { .. } => "request",
            PhoneEvent::PresenceRequested { .. } => "presence_requested",
            PhoneEvent::Responded { .. } => "responded",
            PhoneEvent::FaultInjected { .. } => "fault_injected",
            PhoneEvent::Listening { .. } => "listening",
            PhoneEvent::DesktopArrived { .. } => "desktop_arrived",
            PhoneEvent::SessionFailed { .. } => "session_failed",
            PhoneEvent::ListenRetry { .. } => "listen_retry",
            PhoneEvent::Closed { .. } => "closed",
            PhoneEvent::KeyReady { .. } => "key_ready",
            PhoneEvent::KeyWaiting { .. } => "key_waiting",
            PhoneEvent::Refused { .. } => "refused",
            PhoneEvent::Forwarding { .. } => "forwarding",
            PhoneEvent::Warning { .. } => "warning",
        }
    }

    /// One JSON object: `{"event": name, "elapsed_ms": n, ...fields}`.
    pub fn to_json(&self, elapsed_ms: u64) -> Value {
        let mut v = match self {
            PhoneEvent::Connecting { path } => json!({ "path": redact_url(path) }),
            PhoneEvent::TunnelOpen { routing_id } => json!({ "routing_id": routing_id }),
            PhoneEvent::Advertising { sink, advert } => json!({ "sink": sink, "advert": advert }),
            PhoneEvent::HandshakeDone | PhoneEvent::PostHandshakeSent => json!({}),
            PhoneEvent::LinkingSent { link_id } => json!({ "link_id": link_id }),
            PhoneEvent::Request { command } => json!({ "command": command.to_u8() }),
            PhoneEvent::PresenceRequested { rp_id, delay_ms } => {
                json!({ "rp_id": rp_id, "delay_ms": delay_ms })
            }
            PhoneEvent::Responded { status } => json!({ "status": status.to_u8() }),
            PhoneEvent::FaultInjected { what } => json!({ "what": what }),
            PhoneEvent::Listening { contact } => json!({ "contact": contact }),
            PhoneEvent::DesktopArrived { link_id, known } => {
                json!({ "link_id": link_id, "known": known })
            }
            PhoneEvent::SessionFailed { stage, reason } => {
                json!({ "stage": stage, "reason": reason })
            }
            PhoneEvent::ListenRetry { contact, after_ms, reason } => {
                json!({ "contact": contact, "after_ms": after_ms, "reason": reason })
            }
            PhoneEvent::Closed { reason } => json!({ "reason": reason }),
            PhoneEvent::KeyReady { device, aaguid, removed, pin_needed } => json!({
                "device": device, "aaguid": aaguid, "removed": removed, "pin_needed": pin_needed,
            }),
            PhoneEvent::KeyWaiting { what } => json!({ "what": what }),
            PhoneEvent::Refused { command, status, reason, rp_id } => {
                let (command, status) = (command.to_u8(), status.to_u8());
                json!({ "command": command, "status": status, "reason": reason, "rp_id": rp_id })
            }
            PhoneEvent::Forwarding { command, rp_id } => {
                json!({ "command": command, "rp_id": rp_id })
            }
            PhoneEvent::Warning { message } => json!({ "message": message }),
        };
        if let Value::Object(map) = &mut v {
            map.insert("event".into(), self.name().into());
            map.insert("elapsed_ms".into(), elapsed_ms.into());
        }
        v
    }

    /// One human line.
    pub fn to_human(&self, elapsed_ms: u64) -> String {
        let what = match self {
            PhoneEvent::Connecting { path } => format!("connecting to tunnel {}", redact_url(path)),
            PhoneEvent::TunnelOpen { routing_id: Some(r) } => {
                format!("tunnel open, routing id {r}")
            }
            PhoneEvent::TunnelOpen { routing_id: None } => "tunnel open".to_owned(),
            PhoneEvent::Advertising { sink, advert } => format!("advertising {advert} on {sink}"),
            PhoneEvent::HandshakeDone => "handshake done, advertising stopped".to_owned(),
            PhoneEvent::PostHandshakeSent => "post-handshake message (getInfo) sent".to_owned(),
            PhoneEvent::LinkingSent { link_id } => format!("linking info sent (link id {link_id})"),
            PhoneEvent::Request { command } => format!("CTAP request {:#04x}", command.to_u8()),
            PhoneEvent::PresenceRequested { rp_id, delay_ms } => format!(
                "user presence for {} (approving in {delay_ms} ms)",
                rp_id.as_deref().unwrap_or("?")
            ),
            PhoneEvent::Responded { status } => {
                format!("CTAP response status {:#04x}", status.to_u8())
            }
            PhoneEvent::FaultInjected { what } => format!("fault injected: {what}"),
            PhoneEvent::Listening { contact } => {
                format!("listening for desktops on contact {contact}…")
            }
            PhoneEvent::DesktopArrived { link_id, known: true } => {
                format!("desktop arrived for link {link_id}")
            }
            PhoneEvent::DesktopArrived { link_id, known: false } => {
                format!("desktop arrived for unknown link {link_id}; refusing")
            }
            PhoneEvent::SessionFailed { stage, reason } => {
                format!("linked session failed at {stage}: {reason}; still serving")
            }
            PhoneEvent::ListenRetry { contact, after_ms, reason } => {
                format!(
                    "listening on contact {contact} failed ({reason}); retrying in {after_ms} ms"
                )
            }
            PhoneEvent::Closed { reason } => format!("session closed: {reason}"),
            PhoneEvent::KeyReady { device, aaguid, removed, pin_needed } => format!(
                "key {device} ready (AAGUID {aaguid}; withheld from the desktop: {}){}",
                if removed.is_empty() { "nothing".to_owned() } else { removed.join(", ") },
                if *pin_needed { "; WARNING: it has a PIN, registrations will fail" } else { "" }
            ),
            PhoneEvent::KeyWaiting { what } => what.clone(),
            PhoneEvent::Refused { command, status, reason, rp_id } => format!(
                "refused CTAP request {:#04x}{} with status {:#04x}: {reason}",
                command.to_u8(),
                rp_id.as_deref().map(|rp| format!(" for {rp}")).unwrap_or_default(),
                status.to_u8()
            ),
            PhoneEvent::Forwarding { command, rp_id: Some(rp) } => {
                format!("{command} for relying party {rp}: forwarding to the key")
            }
            PhoneEvent::Forwarding { command, rp_id: None } => {
                format!("{command}: forwarding to the key")
            }
            PhoneEvent::Warning { message } => format!("warning: {message}"),
        };
        format!("[{elapsed_ms:>6} ms] phone: {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_event_and_elapsed() {
        let v = PhoneEvent::Responded { status: StatusCode::from_u8(0x27) }.to_json(12);
        assert_eq!(v, json!({"event": "responded", "elapsed_ms": 12, "status": 0x27}));
        assert!(PhoneEvent::HandshakeDone.to_human(5).contains("handshake done"));
    }

    #[test]
    fn phone_events_share_the_ceremony_sink_and_json() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = std::sync::Arc::clone(&seen);
        let events = phone_sink(move |ms, p| {
            if let Ok(mut seen) = s2.lock() {
                seen.push((ms, p.clone()));
            }
        });
        emit_to(&events, 7, PhoneEvent::HandshakeDone);
        // A ceremony event on the same sink is not a phone event: the adapter skips it.
        if let Some(sink) = &events {
            sink.emit(&CeremonyEvent::Qr { url: "FIDO:/1".into() });
        }
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(seen, vec![(7, PhoneEvent::HandshakeDone)]);
        // The wire line of the wrapped event is the phone's own line, unchanged.
        let wrapped = CeremonyEvent::Phone {
            elapsed_ms: 12,
            event: PhoneEvent::Responded { status: StatusCode::from_u8(0x27) },
        };
        assert_eq!(
            wrapped.to_json(),
            PhoneEvent::Responded { status: StatusCode::from_u8(0x27) }.to_json(12)
        );
        emit_to(&None, 1, PhoneEvent::HandshakeDone);
    }

    #[test]
    fn tunnel_paths_are_shown_without_ids() {
        let p =
            PhoneEvent::Connecting { path: "/cable/new/00112233445566778899AABBCCDDEEFF".into() };
        assert_eq!(p.to_json(1)["path"], "/cable/new/…");
        let human = p.to_human(1);
        assert!(human.ends_with("connecting to tunnel /cable/new/…"), "{human}");
    }
}
