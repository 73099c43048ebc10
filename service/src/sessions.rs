//! The session registry: one tokio task per ceremony, each with its own [`CancellationToken`]
//! and its own events channel, so one session failing, hanging or being cancelled never touches
//! another. A session removes itself from the registry when its task ends, whatever the reason.
//!
//! Events are `ceremony.event` notification params (`{"session": id, ...the CLI's object}`),
//! published on the session's broadcast channel and on the daemon-wide one (`events.subscribe`
//! without a session). A slow subscriber lags on its own receiver (it is told how many events it
//! missed); the ceremony never waits for anyone.
//!
//! Ownership: a session belongs to the connection that started it. When that connection closes
//! the session is cancelled, unless it was started with `detach: true`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cablebridged::ceremony::{
    AdvertInput, CeremonyError, CeremonyErrorKind, CeremonyEvent, CeremonyStage, Transport,
};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::adverts::AdvertHub;
use crate::ceremony::{self, CeremonySpec, Route};
use crate::events;
use crate::rpc::{code, RpcError};

/// Events buffered per subscriber before it lags (a ceremony emits about a dozen).
const EVENTS_CAPACITY: usize = 256;

/// Daemon-wide counters (`status`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Ceremonies started.
    pub sessions_started: AtomicU64,
    /// Ended with a result.
    pub sessions_succeeded: AtomicU64,
    /// Ended with an error (cancelled ones excluded).
    pub sessions_failed: AtomicU64,
    /// Cancelled (by `ceremony.cancel`, a disconnect or shutdown).
    pub sessions_cancelled: AtomicU64,
    /// Control connections accepted (access check passed).
    pub connections_accepted: AtomicU64,
    /// Control connections refused by the access check or the connection limit.
    pub connections_refused: AtomicU64,
    /// Requests handled.
    pub requests: AtomicU64,
    /// Requests answered with an error.
    pub request_errors: AtomicU64,
    /// Requests refused by the rate limit.
    pub rate_limited: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "sessions_started": g(&self.sessions_started),
            "sessions_succeeded": g(&self.sessions_succeeded),
            "sessions_failed": g(&self.sessions_failed),
            "sessions_cancelled": g(&self.sessions_cancelled),
            "connections_accepted": g(&self.connections_accepted),
            "connections_refused": g(&self.connections_refused),
            "requests": g(&self.requests),
            "request_errors": g(&self.request_errors),
            "rate_limited": g(&self.rate_limited),
        })
    }
}

/// How a session ended: its last event object, and which counter it goes to.
#[derive(Debug)]
pub enum Ending {
    /// A `result`.
    Succeeded(Value),
    /// An `error`.
    Failed(Value),
    /// An `error` after `ceremony.cancel`/`bridge.stop`, a disconnect or shutdown.
    Cancelled(Value),
}

/// One running session (a ceremony or a bridge).
#[derive(Debug)]
pub struct Session {
    /// Session id (unique for the daemon's lifetime).
    pub id: u64,
    /// `register`, `authenticate` or `bridge`.
    pub kind: &'static str,
    /// `hybrid`, `linked` or `usb`.
    pub transport: &'static str,
    /// The connection that started it.
    pub owner: u64,
    /// Survives its connection.
    pub detached: bool,
    /// Cancels this session only.
    pub cancel: CancellationToken,
    events: broadcast::Sender<Arc<Value>>,
    started: Instant,
    last_stage: Mutex<&'static str>,
}

impl Session {
    /// A receiver for this session's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.events.subscribe()
    }

    fn stage(&self) -> &'static str {
        self.last_stage.lock().map(|s| *s).unwrap_or("setup")
    }

    /// Records the stage in progress (for `status`).
    pub fn set_stage(&self, stage: &'static str) {
        if let Ok(mut s) = self.last_stage.lock() {
            *s = stage;
        }
    }

    fn summary(&self) -> Value {
        json!({
            "session": self.id,
            "ceremony": self.kind,
            "transport": self.transport,
            "stage": self.stage(),
            "detached": self.detached,
            "elapsed_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// All running sessions.
#[derive(Debug)]
pub struct Registry {
    sessions: Mutex<HashMap<u64, Arc<Session>>>,
    next_id: AtomicU64,
    all: broadcast::Sender<Arc<Value>>,
    emptied: Notify,
    max_sessions: usize,
    /// Counters for `status`.
    pub counters: Counters,
    /// The advert intake every pending hybrid/linked session shares.
    pub adverts: Arc<AdvertHub>,
}

impl Registry {
    /// An empty registry allowing `max_sessions` at once.
    pub fn new(max_sessions: usize) -> Self {
        Registry {
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            all: broadcast::channel(EVENTS_CAPACITY).0,
            emptied: Notify::new(),
            max_sessions,
            counters: Counters::default(),
            adverts: Arc::new(AdvertHub::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Session>>> {
        // A poisoned lock means a panic elsewhere while holding it; the map itself is intact.
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver for every session's events from now on.
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<Value>> {
        self.all.subscribe()
    }

    /// The session, while it runs.
    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.lock().get(&id).cloned()
    }

    /// Running sessions (for `status`).
    pub fn summaries(&self) -> Vec<Value> {
        let mut list: Vec<Value> = self.lock().values().map(|s| s.summary()).collect();
        list.sort_by_key(|v| v["session"].as_u64());
        list
    }

    /// Number of running sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts `spec` on behalf of connection `owner`. The returned receiver is subscribed
    /// before the task starts, so it sees every event.
    pub fn start(
        self: &Arc<Self>,
        spec: CeremonySpec,
        owner: u64,
    ) -> Result<(Arc<Session>, broadcast::Receiver<Arc<Value>>), RpcError> {
        let kind = spec.kind.as_str();
        let transport = spec.route.transport();
        let detach = spec.detach;
        self.spawn(kind, transport, detach, owner, move |registry, session| {
            registry.drive(session, spec)
        })
    }

    /// Runs `body` as a session of `kind` over `transport` for connection `owner`: registered
    /// (bounded by `max_sessions`), its own cancel token and events channel; `body`'s
    /// [`Ending`] is published as the last event, counted, and the session removed. The
    /// returned receiver is subscribed before the task starts, so it sees every event.
    pub fn spawn<F, Fut>(
        self: &Arc<Self>,
        kind: &'static str,
        transport: &'static str,
        detach: bool,
        owner: u64,
        body: F,
    ) -> Result<(Arc<Session>, broadcast::Receiver<Arc<Value>>), RpcError>
    where
        F: FnOnce(Arc<Registry>, Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = Ending> + Send + 'static,
    {
        let session = {
            let mut map = self.lock();
            if map.len() >= self.max_sessions {
                return Err(RpcError::new(
                    code::TOO_MANY_SESSIONS,
                    format!(
                        "{} ceremonies are running already ([control] max_sessions)",
                        map.len()
                    ),
                ));
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let session = Arc::new(Session {
                id,
                kind,
                transport,
                owner,
                detached: detach,
                cancel: CancellationToken::new(),
                events: broadcast::channel(EVENTS_CAPACITY).0,
                started: Instant::now(),
                last_stage: Mutex::new("setup"),
            });
            map.insert(id, Arc::clone(&session));
            session
        };
        let rx = session.subscribe();
        Counters::bump(&self.counters.sessions_started);
        tracing::info!(
            session = session.id,
            transport = session.transport,
            ceremony = session.kind,
            owner,
            detached = session.detached,
            "session started"
        );
        let work = body(Arc::clone(self), Arc::clone(&session));
        tokio::spawn(Arc::clone(self).finish(Arc::clone(&session), work));
        self.report_status();
        Ok((session, rx))
    }

    /// Awaits a session's body, publishes its last event, counts it and removes the session.
    async fn finish(
        self: Arc<Self>,
        session: Arc<Session>,
        work: impl std::future::Future<Output = Ending>,
    ) {
        let (counter, last) = match work.await {
            Ending::Succeeded(v) => (&self.counters.sessions_succeeded, v),
            Ending::Failed(v) => (&self.counters.sessions_failed, v),
            Ending::Cancelled(v) => (&self.counters.sessions_cancelled, v),
        };
        Counters::bump(counter);
        self.publish(&session, &last);
        let now_empty = {
            let mut map = self.lock();
            map.remove(&session.id);
            map.is_empty()
        };
        if now_empty {
            self.emptied.notify_waiters();
        }
        self.report_status();
    }

    /// Publishes one event object of `session` (as a `ceremony.event` notification's params).
    pub fn publish(&self, session: &Session, object: &Value) {
        let params = Arc::new(events::with_session(session.id, object));
        // No receivers is fine: nobody is watching.
        let _ = session.events.send(Arc::clone(&params));
        let _ = self.all.send(params);
    }

    async fn drive(self: Arc<Self>, session: Arc<Session>, spec: CeremonySpec) -> Ending {
        let CeremonySpec { request, route, public_key, judge, credential_aaguid, .. } = spec;
        let this = Arc::clone(&self);
        let s = Arc::clone(&session);
        let sink = move |e: &CeremonyEvent| {
            if let CeremonyEvent::Progress(p) = e {
                s.set_stage(p.stage.as_str());
                // Stage names only: a qr event carries the QR secret and stays out of the logs.
                tracing::debug!(
                    session = s.id,
                    transport = s.transport,
                    stage = p.stage.as_str(),
                    "progress"
                );
            }
            if let Some(object) = events::event_line(e) {
                this.publish(&s, &object);
            }
        };
        let outcome = match self.shared_adverts(route, &session.cancel).await {
            Ok(route) => {
                ceremony::run(route, request, Some(Arc::new(sink)), session.cancel.clone()).await
            }
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(o) => {
                tracing::info!(
                    session = session.id,
                    transport = session.transport,
                    stage = "done",
                    "ceremony succeeded"
                );
                Ending::Succeeded(ceremony::result_json(
                    o,
                    public_key.as_ref(),
                    &judge,
                    credential_aaguid,
                ))
            }
            Err(e) => {
                tracing::info!(
                    session = session.id,
                    transport = session.transport,
                    stage = e.stage.as_str(),
                    error = %e,
                    "ceremony failed"
                );
                if e.kind == CeremonyErrorKind::Cancelled || session.cancel.is_cancelled() {
                    Ending::Cancelled(events::error_object(e))
                } else {
                    Ending::Failed(events::error_object(e))
                }
            }
        }
    }

    /// A hybrid or linked route's advert source replaced by a feed from the daemon's shared
    /// intake ([`AdvertHub`]): one open source per spec for all pending sessions.
    pub(crate) async fn shared_adverts(
        &self,
        mut route: Route,
        cancel: &CancellationToken,
    ) -> Result<Route, CeremonyError> {
        let input = match &mut route.0 {
            Transport::Hybrid(h) => &mut h.adverts,
            Transport::Linked(l) => &mut l.adverts,
            _ => return Ok(route),
        };
        if let AdvertInput::Source(source) = input {
            let source = source.clone();
            let feed = tokio::select! {
                () = cancel.cancelled() => return Err(CeremonyError::cancelled(CeremonyStage::Setup)),
                r = self.adverts.subscribe(&source) => r.map_err(|e| {
                    CeremonyError::classified(CeremonyStage::Advert, "cannot receive adverts", &e)
                })?,
            };
            *input = AdvertInput::Feed(feed);
        }
        Ok(route)
    }

    /// `STATUS=` for `systemctl status`.
    fn report_status(&self) {
        crate::systemd::status(&format!("{} ceremonies running", self.len()));
    }

    /// Cancels one session; `false` when it is not running.
    pub fn cancel(&self, id: u64) -> bool {
        match self.get(id) {
            Some(s) => {
                tracing::info!(session = id, transport = s.transport, "ceremony cancel requested");
                s.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Connection `owner` closed: cancels its sessions that were not detached.
    pub fn connection_closed(&self, owner: u64) {
        let mine: Vec<Arc<Session>> =
            self.lock().values().filter(|s| s.owner == owner && !s.detached).cloned().collect();
        for s in mine {
            tracing::info!(session = s.id, transport = s.transport, "client went away; cancelling");
            s.cancel.cancel();
        }
    }

    /// Cancels everything and waits (bounded by `limit`) for the tasks to finish.
    pub async fn shutdown(&self, limit: std::time::Duration) {
        let all: Vec<Arc<Session>> = self.lock().values().cloned().collect();
        for s in &all {
            s.cancel.cancel();
        }
        let wait = async {
            loop {
                let notified = self.emptied.notified();
                if self.is_empty() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

// --- sessions the daemon starts on its own (the uhid front, issue 11) -------------------------

/// A session the daemon runs on a local client's behalf (the uhid front): listed in `status`,
/// its events published to `events.subscribe` like any other, cancellable with
/// `ceremony.cancel`. The front drives the engine itself; this handle only publishes.
#[derive(Debug)]
pub struct ExternalSession {
    registry: Arc<Registry>,
    session: Arc<Session>,
}

impl Registry {
    /// Registers a session started by the daemon itself (owner 0, detached: no control
    /// connection owns it). Refused like any session when `max_sessions` are running.
    pub fn start_external(
        self: &Arc<Self>,
        kind: crate::ceremony::Kind,
        transport: &'static str,
    ) -> Result<ExternalSession, RpcError> {
        let session = {
            let mut map = self.lock();
            if map.len() >= self.max_sessions {
                return Err(RpcError::new(
                    code::TOO_MANY_SESSIONS,
                    format!("{} ceremonies are running already", map.len()),
                ));
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let session = Arc::new(Session {
                id,
                kind: kind.as_str(),
                transport,
                owner: 0,
                detached: true,
                cancel: CancellationToken::new(),
                events: broadcast::channel(EVENTS_CAPACITY).0,
                started: Instant::now(),
                last_stage: Mutex::new("setup"),
            });
            map.insert(id, Arc::clone(&session));
            session
        };
        Counters::bump(&self.counters.sessions_started);
        tracing::info!(
            session = session.id,
            transport,
            ceremony = kind.as_str(),
            "uhid ceremony started"
        );
        self.report_status();
        Ok(ExternalSession { registry: Arc::clone(self), session })
    }
}

impl ExternalSession {
    /// The session id.
    pub fn id(&self) -> u64 {
        self.session.id
    }

    /// Fires on `ceremony.cancel` and daemon shutdown.
    pub fn cancel_token(&self) -> CancellationToken {
        self.session.cancel.clone()
    }

    /// An engine event sink publishing qr/progress/warning as `ceremony.event`.
    pub fn sink(&self) -> cablebridged::ceremony::Events {
        let registry = Arc::clone(&self.registry);
        let s = Arc::clone(&self.session);
        Some(Arc::new(move |e: &CeremonyEvent| {
            if let CeremonyEvent::Progress(p) = e {
                s.set_stage(p.stage.as_str());
            }
            if let Some(object) = events::event_line(e) {
                registry.publish(&s, &object);
            }
        }))
    }

    /// Publishes the last event (`result` or `error` object) and removes the session.
    pub fn finish(self, last: &Value, outcome: Result<(), CeremonyErrorKind>) {
        let c = &self.registry.counters;
        match outcome {
            Ok(()) => Counters::bump(&c.sessions_succeeded),
            Err(CeremonyErrorKind::Cancelled) => Counters::bump(&c.sessions_cancelled),
            Err(_) => Counters::bump(&c.sessions_failed),
        }
        self.registry.publish(&self.session, last);
        let now_empty = {
            let mut map = self.registry.lock();
            map.remove(&self.session.id);
            map.is_empty()
        };
        if now_empty {
            self.registry.emptied.notify_waiters();
        }
        self.registry.report_status();
    }
}
