//! Test and demo helpers: the "phone scans the desktop's QR code" plumbing, written once.
//!
//! A hybrid ceremony in one process needs the same wiring every time: run
//! [`crate::ceremony::run`], catch the `Qr` event, hand the `FIDO:/` URL to a phone (the
//! virtual phone, the bridge, a test's hand-made peer), and run both concurrently. `demo`, the
//! daemon's tests and hw-tests use [`with_phone`] and [`EventLog`] instead of re-wiring it.
//!
//! ```no_run
//! # async fn f(transport: cablebridged::ceremony::Transport,
//! #            request: cablebridged::ceremony::CeremonyRequest,
//! #            phone: &mut cablebridged::phone::VirtualPhone) {
//! use cablebridged::testkit::{with_phone, EventLog};
//! let mut log = EventLog::new();
//! let (result, phone_result) =
//!     with_phone(transport, request, &mut log, |qr| async move { phone.run_qr(&qr).await }).await;
//! println!("{:?} {:?} stages {:?}", result.is_ok(), phone_result.is_some(), log.stages());
//! # }
//! ```
//!
//! Not a mock: everything runs the production code paths over real sockets.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use cablebridge_protocol::hybrid::qr::QrPayload;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ceremony::{
    CeremonyError, CeremonyEvent, CeremonyOutcome, CeremonyRequest, EventSink, Events, Transport,
};

type Forward = Box<dyn Fn(&CeremonyEvent) + Send + Sync>;

/// Records a ceremony's events and hands out the QR URLs it shows.
pub struct EventLog {
    seen: Arc<Mutex<Vec<CeremonyEvent>>>,
    qr: mpsc::UnboundedReceiver<String>,
    sink: Arc<dyn EventSink>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// A log that only records.
    pub fn new() -> Self {
        Self::forwarding(Box::new(|_| {}))
    }

    /// A log that also passes every event to `forward` (e.g. a renderer).
    pub fn forwarding(forward: Forward) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, qr) = mpsc::unbounded_channel();
        let recorded = Arc::clone(&seen);
        let sink = move |e: &CeremonyEvent| {
            if let CeremonyEvent::Qr { url } = e {
                let _ = tx.send(url.clone());
            }
            recorded.lock().unwrap_or_else(PoisonError::into_inner).push(e.clone());
            forward(e);
        };
        EventLog { seen, qr, sink: Arc::new(sink) }
    }

    /// The sink to give a ceremony.
    pub fn sink(&self) -> Events {
        Some(Arc::clone(&self.sink))
    }

    /// The next QR URL shown (waits for it).
    pub async fn next_qr(&mut self) -> Option<String> {
        self.qr.recv().await
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<CeremonyEvent> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The stages of the progress events so far, in order.
    pub fn stages(&self) -> Vec<&'static str> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                CeremonyEvent::Progress(p) => Some(p.stage.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The warnings so far.
    pub fn warnings(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                CeremonyEvent::Warning { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Runs one ceremony on `transport` while `phone` answers the QR code it shows (the phone gets
/// the parsed payload). Returns the ceremony's result and the phone's, `None` when the
/// ceremony ended before showing a QR code (or showed an unparsable one).
pub async fn with_phone<F, T>(
    transport: Transport,
    request: CeremonyRequest,
    log: &mut EventLog,
    phone: impl FnOnce(QrPayload) -> F,
) -> (Result<CeremonyOutcome, CeremonyError>, Option<T>)
where
    F: Future<Output = T>,
{
    with_phone_cancel(transport, request, log, CancellationToken::new(), phone).await
}

/// [`with_phone`] with a cancel token the test controls.
pub async fn with_phone_cancel<F, T>(
    transport: Transport,
    request: CeremonyRequest,
    log: &mut EventLog,
    cancel: CancellationToken,
    phone: impl FnOnce(QrPayload) -> F,
) -> (Result<CeremonyOutcome, CeremonyError>, Option<T>)
where
    F: Future<Output = T>,
{
    let desktop = crate::ceremony::run(transport, request, log.sink(), cancel);
    tokio::pin!(desktop);
    tokio::select! {
        result = &mut desktop => (result, None),
        url = log.qr.recv() => {
            let Some(qr) = url.and_then(|u| QrPayload::from_url(&u).ok()) else {
                return (desktop.await, None);
            };
            let (result, answered) = tokio::join!(desktop, phone(qr));
            (result, Some(answered))
        }
    }
}
