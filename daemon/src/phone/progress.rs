//! Progress events of the virtual phone, for humans (stderr lines) and machines (JSON lines with
//! an `event` field). Nothing secret goes in here: no keys, no link secrets, no full contact ids.

use crate::tunnel::client::redact_url;
use cablebridge_protocol::ctap2::{Command, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

/// Receives `(elapsed milliseconds since the phone started, event)`.
pub type ProgressFn = Arc<dyn Fn(u64, &Progress) + Send + Sync>;

/// One step of a phone session.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
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
        /// CTAP command byte.
        command: u8,
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
        /// Its status byte.
        status: u8,
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

impl Progress {
    /// The `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            Progress::Connecting { .. } => "connecting",
            Progress::TunnelOpen { .. } => "tunnel_open",
            Progress::Advertising { .. } => "advertising",
            Progress::HandshakeDone => "handshake_done",
            Progress::PostHandshakeSent => "post_handshake_sent",
            Progress::LinkingSent { .. } => "linking_sent",
            Progress::Request { .. } => "request",
            Progress::PresenceRequested { .. } => "presence_requested",
            Progress::Responded { .. } => "responded",
            Progress::FaultInjected { .. } => "fault_injected",
            Progress::Listening { .. } => "listening",
            Progress::DesktopArrived { .. } => "desktop_arrived",
            Progress::SessionFailed { .. } => "session_failed",
            Progress::ListenRetry { .. } => "listen_retry",
            Progress::Closed { .. } => "closed",
            Progress::KeyReady { .. } => "key_ready",
            Progress::KeyWaiting { .. } => "key_waiting",
            Progress::Refused { .. } => "refused",
            Progress::Forwarding { .. } => "forwarding",
            Progress::Warning { .. } => "warning",
        }
    }

    /// One JSON object: `{"event": name, "elapsed_ms": n, ...fields}`.
    pub fn to_json(&self, elapsed_ms: u64) -> Value {
        let mut v = match self {
            Progress::Connecting { path } => json!({ "path": redact_url(path) }),
            Progress::TunnelOpen { routing_id } => json!({ "routing_id": routing_id }),
            Progress::Advertising { sink, advert } => json!({ "sink": sink, "advert": advert }),
            Progress::HandshakeDone | Progress::PostHandshakeSent => json!({}),
            Progress::LinkingSent { link_id } => json!({ "link_id": link_id }),
            Progress::Request { command } => json!({ "command": command }),
            Progress::PresenceRequested { rp_id, delay_ms } => {
                json!({ "rp_id": rp_id, "delay_ms": delay_ms })
            }
            Progress::Responded { status } => json!({ "status": status }),
            Progress::FaultInjected { what } => json!({ "what": what }),
            Progress::Listening { contact } => json!({ "contact": contact }),
            Progress::DesktopArrived { link_id, known } => {
                json!({ "link_id": link_id, "known": known })
            }
            Progress::SessionFailed { stage, reason } => {
                json!({ "stage": stage, "reason": reason })
            }
            Progress::ListenRetry { contact, after_ms, reason } => {
                json!({ "contact": contact, "after_ms": after_ms, "reason": reason })
            }
            Progress::Closed { reason } => json!({ "reason": reason }),
            Progress::KeyReady { device, aaguid, removed, pin_needed } => json!({
                "device": device, "aaguid": aaguid, "removed": removed, "pin_needed": pin_needed,
            }),
            Progress::KeyWaiting { what } => json!({ "what": what }),
            Progress::Refused { command, status, reason, rp_id } => {
                let (command, status) = (command.to_u8(), status.to_u8());
                json!({ "command": command, "status": status, "reason": reason, "rp_id": rp_id })
            }
            Progress::Forwarding { command, rp_id } => {
                json!({ "command": command, "rp_id": rp_id })
            }
            Progress::Warning { message } => json!({ "message": message }),
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
            Progress::Connecting { path } => format!("connecting to tunnel {}", redact_url(path)),
            Progress::TunnelOpen { routing_id: Some(r) } => format!("tunnel open, routing id {r}"),
            Progress::TunnelOpen { routing_id: None } => "tunnel open".to_owned(),
            Progress::Advertising { sink, advert } => format!("advertising {advert} on {sink}"),
            Progress::HandshakeDone => "handshake done, advertising stopped".to_owned(),
            Progress::PostHandshakeSent => "post-handshake message (getInfo) sent".to_owned(),
            Progress::LinkingSent { link_id } => format!("linking info sent (link id {link_id})"),
            Progress::Request { command } => format!("CTAP request {command:#04x}"),
            Progress::PresenceRequested { rp_id, delay_ms } => format!(
                "user presence for {} (approving in {delay_ms} ms)",
                rp_id.as_deref().unwrap_or("?")
            ),
            Progress::Responded { status } => format!("CTAP response status {status:#04x}"),
            Progress::FaultInjected { what } => format!("fault injected: {what}"),
            Progress::Listening { contact } => {
                format!("listening for desktops on contact {contact}…")
            }
            Progress::DesktopArrived { link_id, known: true } => {
                format!("desktop arrived for link {link_id}")
            }
            Progress::DesktopArrived { link_id, known: false } => {
                format!("desktop arrived for unknown link {link_id}; refusing")
            }
            Progress::SessionFailed { stage, reason } => {
                format!("linked session failed at {stage}: {reason}; still serving")
            }
            Progress::ListenRetry { contact, after_ms, reason } => {
                format!(
                    "listening on contact {contact} failed ({reason}); retrying in {after_ms} ms"
                )
            }
            Progress::Closed { reason } => format!("session closed: {reason}"),
            Progress::KeyReady { device, aaguid, removed, pin_needed } => format!(
                "key {device} ready (AAGUID {aaguid}; withheld from the desktop: {}){}",
                if removed.is_empty() { "nothing".to_owned() } else { removed.join(", ") },
                if *pin_needed { "; WARNING: it has a PIN, registrations will fail" } else { "" }
            ),
            Progress::KeyWaiting { what } => what.clone(),
            Progress::Refused { command, status, reason, rp_id } => format!(
                "refused CTAP request {:#04x}{} with status {:#04x}: {reason}",
                command.to_u8(),
                rp_id.as_deref().map(|rp| format!(" for {rp}")).unwrap_or_default(),
                status.to_u8()
            ),
            Progress::Forwarding { command, rp_id: Some(rp) } => {
                format!("{command} for relying party {rp}: forwarding to the key")
            }
            Progress::Forwarding { command, rp_id: None } => {
                format!("{command}: forwarding to the key")
            }
            Progress::Warning { message } => format!("warning: {message}"),
        };
        format!("[{elapsed_ms:>6} ms] phone: {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_event_and_elapsed() {
        let v = Progress::Responded { status: 0x27 }.to_json(12);
        assert_eq!(v, json!({"event": "responded", "elapsed_ms": 12, "status": 0x27}));
        assert!(Progress::HandshakeDone.to_human(5).contains("handshake done"));
    }

    #[test]
    fn tunnel_paths_are_shown_without_ids() {
        let p = Progress::Connecting { path: "/cable/new/00112233445566778899AABBCCDDEEFF".into() };
        assert_eq!(p.to_json(1)["path"], "/cable/new/…");
        let human = p.to_human(1);
        assert!(human.ends_with("connecting to tunnel /cable/new/…"), "{human}");
    }
}
