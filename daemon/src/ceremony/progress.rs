//! Ceremony stages, the one events type every transport emits, and per-stage timings.
//!
//! A ceremony streams [`CeremonyEvent`]s: `Qr` (show this `FIDO:/` URL), `Progress` (a
//! [`ProgressEvent`]: "this stage just finished"; `elapsed_ms` counts from the start of the
//! ceremony, `stage_ms` is the time spent in that stage), `Warning` (something went wrong without
//! ending the ceremony), and last `Result` or `Error`. [`CeremonyEvent::to_json`] is the CLI's
//! `--json` line for each (the daemon's `ceremony.event` notifications carry the same objects).
//! The phone side (virtual phone, bridge) emits `Phone` events through the same [`EventSink`],
//! so one sink type subscribes to every kind of session.
//! [`Timings`] collects stage times for the result's `timings_ms`. An error names the stage that
//! was *in progress* (the one after the last finished stage). Stage names are stable snake_case
//! strings: they appear in JSON output and scripts match on them.
//!
//! Events go to an [`EventSink`]: a closure, or a tokio `mpsc` sender for consumers on another
//! task. Sinks must not block; the ceremony keeps running whatever the sink does. The
//! [`StageClock`] is the per-ceremony helper that turns "stage finished" into events.

use crate::phone::PhoneEvent;
use std::sync::Arc;
use std::time::Instant;

/// A step of a ceremony. Hybrid steps first, then USB steps; extendable.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CeremonyStage {
    /// Checking options, opening stores, building the request (before any IO).
    Setup,
    /// Hybrid: the QR code is shown; next the phone scans it and advertises.
    QrShown,
    /// Hybrid: the phone's BLE advert (or, linked, the contact request) arrived and matched.
    Advert,
    /// Hybrid: the tunnel WebSocket is connected.
    TunnelConnect,
    /// Hybrid: the Noise handshake completed.
    Handshake,
    /// Hybrid: the post-handshake message (getInfo, features) arrived; the request is sent and
    /// the user is being asked.
    PostHandshake,
    /// The authenticator answered the request (the user responded).
    UserResponse,
    /// Hybrid: linking info from the phone was verified and stored.
    Linking,
    /// USB: a device was chosen.
    DeviceSelect,
    /// USB: a CTAPHID keepalive said "processing".
    KeepaliveProcessing,
    /// USB: a CTAPHID keepalive said "user presence needed" (touch the key).
    UserPresence,
    /// Everything finished (shutdown sent, connection closed).
    Done,
}

impl CeremonyStage {
    /// Stable snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyStage::Setup => "setup",
            CeremonyStage::QrShown => "qr_shown",
            CeremonyStage::Advert => "advert",
            CeremonyStage::TunnelConnect => "tunnel_connect",
            CeremonyStage::Handshake => "handshake",
            CeremonyStage::PostHandshake => "post_handshake",
            CeremonyStage::UserResponse => "user_response",
            CeremonyStage::Linking => "linking",
            CeremonyStage::DeviceSelect => "device_select",
            CeremonyStage::KeepaliveProcessing => "keepalive_processing",
            CeremonyStage::UserPresence => "user_presence",
            CeremonyStage::Done => "done",
        }
    }

    /// The stage named `name` ([`CeremonyStage::as_str`]'s inverse), for clients that read the
    /// JSON events back (the CLI renders a daemon's events like its own).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Every stage, in the order of the enum.
    pub const ALL: [CeremonyStage; 12] = {
        use CeremonyStage::*;
        [
            Setup,
            QrShown,
            Advert,
            TunnelConnect,
            Handshake,
            PostHandshake,
            UserResponse,
            Linking,
            DeviceSelect,
            KeepaliveProcessing,
            UserPresence,
            Done,
        ]
    };

    /// The protocol layer this stage works in (for [`Classify::stage`]).
    ///
    /// [`Classify::stage`]: cablebridge_protocol::error::Classify::stage
    pub fn protocol_stage(self) -> cablebridge_protocol::error::Stage {
        use cablebridge_protocol::error::Stage;
        match self {
            CeremonyStage::Setup | CeremonyStage::QrShown => Stage::Qr,
            CeremonyStage::Advert => Stage::Advert,
            CeremonyStage::TunnelConnect => Stage::Tunnel,
            CeremonyStage::Handshake => Stage::Handshake,
            CeremonyStage::PostHandshake => Stage::PostHandshake,
            CeremonyStage::UserResponse => Stage::Ctap2,
            CeremonyStage::Linking => Stage::Linking,
            CeremonyStage::DeviceSelect
            | CeremonyStage::KeepaliveProcessing
            | CeremonyStage::UserPresence => Stage::CtapHid,
            CeremonyStage::Done => Stage::Transport,
        }
    }

    /// One line for people, said when the stage has finished.
    pub fn finished_text(self) -> &'static str {
        match self {
            CeremonyStage::Setup => "ready",
            CeremonyStage::QrShown => "QR code shown; waiting for the phone to scan it",
            CeremonyStage::Advert => "advert received",
            CeremonyStage::TunnelConnect => "tunnel connected",
            CeremonyStage::Handshake => "handshake done",
            CeremonyStage::PostHandshake => "phone ready; waiting for the user",
            CeremonyStage::UserResponse => "authenticator answered",
            CeremonyStage::Linking => "phone linked (stored for next time)",
            CeremonyStage::DeviceSelect => "device selected",
            CeremonyStage::KeepaliveProcessing => "authenticator processing",
            CeremonyStage::UserPresence => "touch your security key",
            CeremonyStage::Done => "done",
        }
    }
}

impl std::fmt::Display for CeremonyStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extra information attached to a progress event.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressDetail {
    /// Nothing more to say.
    None,
    /// A matched advert.
    Advert {
        /// Signal strength when the source knows it.
        rssi: Option<i16>,
        /// Routing id from the advert (uppercase hex).
        routing_id: String,
        /// Tunnel host the advert names.
        tunnel_host: String,
        /// What the bytes after the first 20 said (CTAP 2.3 suffix, §12): parsed and reported,
        /// never trusted (the tag does not cover them). `None` for a 20-byte advert.
        suffix: Option<String>,
    },
    /// Free text (tunnel URL, keepalive status, link name, ...). Never a secret.
    Text(String),
}

/// "This stage finished."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// The stage.
    pub stage: CeremonyStage,
    /// Milliseconds since the ceremony started.
    pub elapsed_ms: u64,
    /// Milliseconds spent in this stage.
    pub stage_ms: u64,
    /// Extra information.
    pub detail: ProgressDetail,
}

/// One event of a ceremony, whatever the transport. The order is: any number of `Qr`,
/// `Progress` and `Warning` events, then exactly one `Result` or `Error` (emitted by
/// [`crate::ceremony::run`] just before it returns the same value).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum CeremonyEvent {
    /// Show this `FIDO:/` URL as a QR code (hybrid); a `qr_shown` progress event follows.
    Qr {
        /// The URL. It carries the session's QR secret: show it, never log it.
        url: String,
    },
    /// A stage finished.
    Progress(ProgressEvent),
    /// Something went wrong without ending the ceremony (a malformed injected advert, an advert
    /// that is ours but invalid, a linking update that could not be stored).
    Warning {
        /// The stage in progress.
        stage: CeremonyStage,
        /// Milliseconds since the ceremony started.
        elapsed_ms: u64,
        /// What happened (never a secret).
        message: String,
    },
    /// The ceremony succeeded (boxed: results are large).
    Result(Box<super::CeremonyOutcome>),
    /// The ceremony failed.
    Error(super::CeremonyError),
    /// A step of a phone-side session (virtual phone, USB-key bridge); its `--json` line is the
    /// phone's own ([`PhoneEvent::to_json`]), unchanged.
    Phone {
        /// Milliseconds since the phone started.
        elapsed_ms: u64,
        /// What happened.
        event: PhoneEvent,
    },
}

impl CeremonyEvent {
    /// The `--json` line of this event: `{"event":"qr","url":..}`,
    /// `{"event":"progress","stage":..,"elapsed_ms":..,"stage_ms":..[,detail fields]}`,
    /// `{"event":"warning","stage":..,"elapsed_ms":..,"message":..}`, the result object, or
    /// `{"event":"error","stage":..,"kind":..,"message":..}`; a phone event's own line.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            CeremonyEvent::Qr { url } => json!({"event": "qr", "url": url}),
            CeremonyEvent::Warning { stage, elapsed_ms, message } => json!({
                "event": "warning",
                "stage": stage.as_str(),
                "elapsed_ms": elapsed_ms,
                "message": message,
            }),
            CeremonyEvent::Progress(event) => {
                let mut progress = json!({
                    "event": "progress",
                    "stage": event.stage.as_str(),
                    "elapsed_ms": event.elapsed_ms,
                    "stage_ms": event.stage_ms,
                });
                match &event.detail {
                    ProgressDetail::Advert { rssi, routing_id, tunnel_host, suffix } => {
                        progress["rssi"] = json!(rssi);
                        progress["routing_id"] = json!(routing_id);
                        progress["tunnel_host"] = json!(tunnel_host);
                        if let Some(suffix) = suffix {
                            progress["advert_suffix"] = json!(suffix);
                        }
                    }
                    ProgressDetail::Text(t) => progress["detail"] = json!(t),
                    ProgressDetail::None => {}
                }
                progress
            }
            CeremonyEvent::Result(outcome) => outcome.to_json(),
            CeremonyEvent::Error(e) => e.to_json(),
            CeremonyEvent::Phone { elapsed_ms, event } => event.to_json(*elapsed_ms),
        }
    }
}

/// Receives ceremony events. Must not block.
pub trait EventSink: Send + Sync {
    /// Called once per event, in order.
    fn emit(&self, event: &CeremonyEvent);
}

impl<F: Fn(&CeremonyEvent) + Send + Sync> EventSink for F {
    fn emit(&self, event: &CeremonyEvent) {
        self(event)
    }
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<CeremonyEvent> {
    fn emit(&self, event: &CeremonyEvent) {
        // A receiver that went away only means nobody is watching.
        let _ = self.send(event.clone());
    }
}

/// Where a ceremony's events go: `None` when nobody watches.
pub type Events = Option<Arc<dyn EventSink>>;

/// Per-stage durations in the order the stages finished (a stage that repeats, like USB
/// keepalives, accumulates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timings {
    stages: Vec<(CeremonyStage, u64)>,
}

impl Timings {
    /// Adds `ms` to `stage`.
    pub fn add(&mut self, stage: CeremonyStage, ms: u64) {
        match self.stages.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total = total.saturating_add(ms),
            None => self.stages.push((stage, ms)),
        }
    }

    /// The time recorded for `stage`.
    pub fn get(&self, stage: CeremonyStage) -> Option<u64> {
        self.stages.iter().find(|(s, _)| *s == stage).map(|(_, ms)| *ms)
    }

    /// All entries, in order.
    pub fn entries(&self) -> &[(CeremonyStage, u64)] {
        &self.stages
    }

    /// Sum over all stages.
    pub fn total_ms(&self) -> u64 {
        self.stages.iter().map(|(_, ms)| ms).sum()
    }

    /// `{"advert": 12, "tunnel_connect": 3, ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.stages.iter().map(|(s, ms)| (s.as_str().to_owned(), (*ms).into())).collect(),
        )
    }
}

/// The clock of one ceremony: turns "stage finished" into events and timings, and remembers which
/// stage is in progress so errors can name it.
#[derive(Clone)]
pub struct StageClock {
    start: Instant,
    last: Instant,
    current: CeremonyStage,
    timings: Timings,
    sink: Events,
}

impl std::fmt::Debug for StageClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageClock")
            .field("current", &self.current)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl StageClock {
    /// Starts the clock now; `first` is the stage in progress at the start.
    pub fn new(first: CeremonyStage, sink: Events) -> Self {
        let now = Instant::now();
        StageClock { start: now, last: now, current: first, timings: Timings::default(), sink }
    }

    fn emit(&self, event: CeremonyEvent) {
        if let Some(sink) = &self.sink {
            sink.emit(&event);
        }
    }

    /// Marks `stage` finished, emits the event and moves on to `next`.
    pub fn finish(&mut self, stage: CeremonyStage, next: CeremonyStage, detail: ProgressDetail) {
        let now = Instant::now();
        let stage_ms = millis(now.duration_since(self.last));
        self.last = now;
        self.timings.add(stage, stage_ms);
        self.current = next;
        let event = ProgressEvent { stage, elapsed_ms: millis(now - self.start), stage_ms, detail };
        self.emit(CeremonyEvent::Progress(event));
    }

    /// Emits the QR event for `url`, then finishes [`CeremonyStage::QrShown`] and moves on to
    /// `next`.
    pub fn show_qr(&mut self, url: String, next: CeremonyStage) {
        self.emit(CeremonyEvent::Qr { url });
        self.finish(CeremonyStage::QrShown, next, ProgressDetail::None);
    }

    /// Emits an event for `stage` that happened on the side (linking info stored during the
    /// wait for the user): no timing is recorded and the stage in progress does not change.
    pub fn note(&self, stage: CeremonyStage, detail: ProgressDetail) {
        let event = ProgressEvent { stage, elapsed_ms: self.elapsed_ms(), stage_ms: 0, detail };
        self.emit(CeremonyEvent::Progress(event));
    }

    /// Reports a non-fatal problem in the stage in progress (no timing recorded).
    pub fn warn(&self, message: impl Into<String>) {
        self.emit(CeremonyEvent::Warning {
            stage: self.current,
            elapsed_ms: self.elapsed_ms(),
            message: message.into(),
        });
    }

    /// The stage in progress (the one an error now would name).
    pub fn current(&self) -> CeremonyStage {
        self.current
    }

    /// Sets the stage in progress without finishing one (e.g. after an optional stage).
    pub fn enter(&mut self, stage: CeremonyStage) {
        self.current = stage;
    }

    /// Milliseconds since the start.
    pub fn elapsed_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }

    /// Timings so far.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn finish_emits_and_records_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&seen);
        let sink = move |e: &CeremonyEvent| {
            if let CeremonyEvent::Progress(p) = e {
                s2.lock().unwrap().push(p.stage)
            }
        };
        let mut p = StageClock::new(CeremonyStage::QrShown, Some(Arc::new(sink)));
        p.finish(CeremonyStage::QrShown, CeremonyStage::Advert, ProgressDetail::None);
        p.finish(CeremonyStage::Advert, CeremonyStage::TunnelConnect, ProgressDetail::None);
        assert_eq!(p.current(), CeremonyStage::TunnelConnect);
        assert_eq!(*seen.lock().unwrap(), vec![CeremonyStage::QrShown, CeremonyStage::Advert]);
        let keys: Vec<_> = p.timings().entries().iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(keys, vec!["qr_shown", "advert"]);
        let json = p.timings().to_json();
        assert!(json.get("advert").unwrap().is_u64());
    }

    #[test]
    fn stage_names_round_trip() {
        for (i, s) in CeremonyStage::ALL.into_iter().enumerate() {
            assert_eq!(CeremonyStage::from_name(s.as_str()), Some(s));
            // `ALL` is in declaration order and complete: a new variant that is not added
            // there breaks this exhaustive index.
            let index = match s {
                CeremonyStage::Setup => 0,
                CeremonyStage::QrShown => 1,
                CeremonyStage::Advert => 2,
                CeremonyStage::TunnelConnect => 3,
                CeremonyStage::Handshake => 4,
                CeremonyStage::PostHandshake => 5,
                CeremonyStage::UserResponse => 6,
                CeremonyStage::Linking => 7,
                CeremonyStage::DeviceSelect => 8,
                CeremonyStage::KeepaliveProcessing => 9,
                CeremonyStage::UserPresence => 10,
                CeremonyStage::Done => 11,
            };
            assert_eq!(index, i, "{s}");
        }
        assert_eq!(CeremonyStage::from_name("nope"), None);
    }

    #[test]
    fn repeated_stage_accumulates() {
        let mut t = Timings::default();
        t.add(CeremonyStage::KeepaliveProcessing, 5);
        t.add(CeremonyStage::KeepaliveProcessing, 7);
        assert_eq!(t.get(CeremonyStage::KeepaliveProcessing), Some(12));
        assert_eq!(t.entries().len(), 1);
        assert_eq!(t.total_ms(), 12);
    }
}
