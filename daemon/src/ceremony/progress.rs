//! Ceremony stages, progress events and per-stage timings.
//!
//! A [`ProgressEvent`] says "this stage just finished": `elapsed_ms` counts from the start of the
//! ceremony, `stage_ms` is the time spent in that stage, and [`Timings`] collects the latter for
//! the result's `timings_ms`. An error names the stage that was *in progress* (the one after the
//! last finished stage). Stage names are stable snake_case strings: they appear in JSON output and
//! scripts match on them.
//!
//! Events go to a [`ProgressSink`]: a closure, or a tokio `mpsc` sender for consumers on another
//! task. Sinks must not block; the ceremony keeps running whatever the sink does.

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
    /// The `FIDO:/` URL to show (with [`CeremonyStage::QrShown`]).
    Qr {
        /// The URL.
        url: String,
    },
    /// A matched advert.
    Advert {
        /// Signal strength when the source knows it.
        rssi: Option<i16>,
        /// Routing id from the advert (uppercase hex).
        routing_id: String,
        /// Tunnel host the advert names.
        tunnel_host: String,
    },
    /// Free text (tunnel URL, keepalive status, link name, ...). Never a secret.
    Text(String),
    /// Something went wrong without ending the ceremony (a malformed injected advert, an advert
    /// that is ours but invalid, a linking update that could not be stored). Not a finished
    /// stage: `stage` is the stage in progress and `stage_ms` is 0.
    Warning(String),
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

/// Receives progress events. Must not block.
pub trait ProgressSink: Send + Sync {
    /// Called once per finished stage.
    fn emit(&self, event: &ProgressEvent);
}

impl<F: Fn(&ProgressEvent) + Send + Sync> ProgressSink for F {
    fn emit(&self, event: &ProgressEvent) {
        self(event)
    }
}

impl ProgressSink for tokio::sync::mpsc::UnboundedSender<ProgressEvent> {
    fn emit(&self, event: &ProgressEvent) {
        // A receiver that went away only means nobody is watching.
        let _ = self.send(event.clone());
    }
}

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
pub struct Progress {
    start: Instant,
    last: Instant,
    current: CeremonyStage,
    timings: Timings,
    sink: Option<Arc<dyn ProgressSink>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("current", &self.current)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// Starts the clock now; `first` is the stage in progress at the start.
    pub fn new(first: CeremonyStage, sink: Option<Arc<dyn ProgressSink>>) -> Self {
        let now = Instant::now();
        Progress { start: now, last: now, current: first, timings: Timings::default(), sink }
    }

    /// Marks `stage` finished, emits the event and moves on to `next`.
    pub fn finish(&mut self, stage: CeremonyStage, next: CeremonyStage, detail: ProgressDetail) {
        let now = Instant::now();
        let stage_ms = millis(now.duration_since(self.last));
        self.last = now;
        self.timings.add(stage, stage_ms);
        self.current = next;
        let event = ProgressEvent { stage, elapsed_ms: millis(now - self.start), stage_ms, detail };
        if let Some(sink) = &self.sink {
            sink.emit(&event);
        }
    }

    /// Emits an event for `stage` that happened on the side (linking info stored during the
    /// wait for the user): no timing is recorded and the stage in progress does not change.
    pub fn note(&self, stage: CeremonyStage, detail: ProgressDetail) {
        let event = ProgressEvent { stage, elapsed_ms: self.elapsed_ms(), stage_ms: 0, detail };
        if let Some(sink) = &self.sink {
            sink.emit(&event);
        }
    }

    /// Reports a non-fatal problem in the stage in progress (no timing recorded).
    pub fn warn(&self, message: impl Into<String>) {
        let event = ProgressEvent {
            stage: self.current,
            elapsed_ms: self.elapsed_ms(),
            stage_ms: 0,
            detail: ProgressDetail::Warning(message.into()),
        };
        if let Some(sink) = &self.sink {
            sink.emit(&event);
        }
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
        let sink = move |e: &ProgressEvent| s2.lock().unwrap().push(e.stage);
        let mut p = Progress::new(CeremonyStage::QrShown, Some(Arc::new(sink)));
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
    fn repeated_stage_accumulates() {
        let mut t = Timings::default();
        t.add(CeremonyStage::KeepaliveProcessing, 5);
        t.add(CeremonyStage::KeepaliveProcessing, 7);
        assert_eq!(t.get(CeremonyStage::KeepaliveProcessing), Some(12));
        assert_eq!(t.entries().len(), 1);
        assert_eq!(t.total_ms(), 12);
    }
}
