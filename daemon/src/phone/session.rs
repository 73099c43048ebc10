//! The phone's run loops: one QR-initiated session ([`Phone::run_qr`]) and the linked
//! listener ([`Phone::serve_links`]). Both feed `hybrid::session` phone phases with tunnel
//! messages and the [`CtapBackend`] with CTAP requests (§1.1, §8, §9.3). Generic over the
//! backend so the virtual phone and the bridge share this one implementation.

use super::backend::{BackendCtx, CtapBackend, CtapReply};
use super::fault::{FramePolicy, Outgoing, Verdict};
use super::progress::PhoneEvent;
use super::sink::{AdvertSink, Advertiser};
use super::{AdvertSuffixPolicy, LinksForgotten, Phone, PhoneError, SessionSummary};
use crate::tunnel::client::{connect, TunnelClientError, TunnelConnection};
use crate::tunnel::listen::listen_headers;
use crate::tunnel::listen_url;
use cablebridge_protocol::ctap2::StatusCode;
use cablebridge_protocol::error::Classify;
use cablebridge_protocol::hybrid::advert_suffix::{ble_suffix, qr_offers_ble};
use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridge_protocol::hybrid::messages::{FrameType, LinkingInfo, PostHandshake, Revision};
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::{
    PhoneFrame, PhoneHandshaken, PhoneOpen, PhonePairing, SessionError,
};
use cablebridge_protocol::hybrid::tunnel::{url, ClientPayload, TunnelPath};
use cablebridge_protocol::Stage;
use rand::rngs::OsRng;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Bytes;

/// Why a session ended when the desktop said goodbye properly.
const SHUTDOWN_RECEIVED: &str = "desktop sent shutdown";
/// CTAP2_ERR_OPERATION_DENIED: what `--fail-at ctap` answers.
const OPERATION_DENIED: StatusCode = StatusCode::OperationDenied;
/// Pause before re-registering a listener the server closed (TTL, replacement).
const RELISTEN_PAUSE: Duration = Duration::from_millis(100);
/// First wait after a listener's connection failed; doubled after each further failure.
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
/// Longest wait between two attempts of one listener.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A desktop that reached one of our contacts, handed from its listener to the session loop.
struct Arrival {
    conn: TunnelConnection,
    contact_id: Vec<u8>,
    payload: Vec<u8>,
}

/// One contact's listener task: hold `/cable/listen/<contact>` and hand over each desktop.
struct Listener<E> {
    url: String,
    connect: crate::tunnel::client::ConnectOptions,
    headers: Vec<(String, String)>,
    contact_id: Vec<u8>,
    emit: E,
    arrivals: mpsc::Sender<Arrival>,
}

impl<E: Fn(PhoneEvent) + Send + Sync + 'static> Listener<E> {
    /// Runs until the session loop is gone or the server revoked/refused the contact.
    async fn run(mut self) {
        self.connect.extra_headers.extend(std::mem::take(&mut self.headers));
        let short = hex::encode(self.contact_id.get(..4).unwrap_or_default());
        let mut backoff = BACKOFF_INITIAL;
        loop {
            (self.emit)(PhoneEvent::Connecting { path: format!("/cable/listen/{short}…") });
            let failure = match connect(&self.url, &self.connect).await {
                Ok(mut conn) => {
                    (self.emit)(PhoneEvent::Listening { contact: short.clone() });
                    match conn.await_client_payload().await {
                        Ok(payload) => {
                            backoff = BACKOFF_INITIAL;
                            let contact_id = self.contact_id.clone();
                            let arrival = Arrival { conn, contact_id, payload };
                            if self.arrivals.send(arrival).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        // Listen TTL passed or a newer registration replaced us: register again.
                        Err(TunnelClientError::Closed) => {
                            backoff = BACKOFF_INITIAL;
                            tokio::time::sleep(RELISTEN_PAUSE).await;
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            let status = match &failure {
                TunnelClientError::HttpStatus { status, .. } => Some(*status),
                _ => None,
            };
            if matches!(status, Some(403 | 410)) {
                // Revoked, or the server does not accept our credential: retrying cannot help.
                (self.emit)(PhoneEvent::Warning {
                    message: format!("stopped listening on contact {short}: {failure}"),
                });
                return;
            }
            (self.emit)(PhoneEvent::ListenRetry {
                contact: short.clone(),
                after_ms: u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                reason: failure.to_string(),
            });
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// The tunnel behind the lab fault policy on outgoing frames.
struct Outbox {
    conn: TunnelConnection,
    policy: FramePolicy,
}

/// What became of a frame handed to [`Outbox::send`].
enum Sent {
    /// On the wire; carry on.
    Continue,
    /// On the wire, and a fault switch says the session ends here (which one).
    FaultClose(String),
}

impl Outbox {
    fn new(conn: TunnelConnection, faults: &super::Faults) -> Self {
        Outbox { conn, policy: FramePolicy::new(faults) }
    }

    /// Sends one frame as the fault policy decides.
    async fn send(&mut self, kind: Outgoing, frame: &mut [u8]) -> Result<Sent, PhoneError> {
        let verdict = self.policy.apply(kind, frame);
        self.conn.send(frame).await?;
        Ok(match verdict {
            Verdict::Send => Sent::Continue,
            Verdict::SendThenClose(what) => Sent::FaultClose(what),
        })
    }

    fn sent(&self) -> u32 {
        self.policy.sent()
    }
}

impl<B: CtapBackend> Phone<B> {
    /// One QR-initiated session, start to close. A `--never-connect` phone sleeps for the
    /// desktop timeout instead and reports `fault_injected`.
    pub async fn run_qr(&mut self, qr: &QrPayload) -> Result<SessionSummary, PhoneError> {
        let mut summary = SessionSummary::default();
        if self.config.faults.never_connect {
            self.emit(PhoneEvent::FaultInjected { what: "never-connect".into() });
            tokio::time::sleep(self.config.desktop_timeout).await;
            summary.fault_injected = true;
            return Ok(summary);
        }
        let path = TunnelPath::New { tunnel_id: qr.tunnel_id() };
        self.emit(PhoneEvent::Connecting { path: path.to_path() });
        let mut conn = connect(&url(&self.config.tunnel_base, &path), &self.config.connect).await?;
        let routing = conn.routing_id().ok_or(TunnelClientError::MissingRoutingId)?;
        summary.routing_id = Some(routing.to_hex());
        self.emit(PhoneEvent::TunnelOpen { routing_id: Some(routing.to_hex()) });

        let pairing = PhonePairing::qr(qr, routing, self.config.domain_id, &mut OsRng);
        let mut advert = pairing.advert().to_vec();
        match &self.config.advert_suffix {
            AdvertSuffixPolicy::Never => {}
            AdvertSuffixPolicy::BlePsm(psm) if qr_offers_ble(qr) => {
                advert.extend_from_slice(&ble_suffix(*psm));
            }
            AdvertSuffixPolicy::BlePsm(_) => {}
            AdvertSuffixPolicy::Force(bytes) => advert.extend_from_slice(bytes),
        }
        let msg1 = self.advertise_until_msg1(&mut conn, &advert).await?;
        let out = Outbox::new(conn, &self.config.faults);
        if let Some(what) = out.policy.close_before_first_frame() {
            return self.inject(out, summary, &what).await;
        }
        let (hs, msg2) = pairing.respond(&msg1, &mut OsRng)?;
        let linking = self.config.offer_linking && qr.linking == Some(true);
        self.after_msg1(out, hs, msg2, linking, summary).await
    }

    /// Holds `/cable/listen/<contact>` for every stored contact (one listener task per linked
    /// desktop, each proving the contact's listen secret) and serves desktops that arrive with a
    /// link this phone issued, one session at a time, until `max_sessions` desktops arrived (or
    /// forever). One desktop cannot take the service down: a malformed client payload, an unknown
    /// link or a failed session is reported ([`PhoneEvent::SessionFailed`]) and the phone carries
    /// on; a listener whose connection fails retries with exponential backoff
    /// ([`PhoneEvent::ListenRetry`]). Only Ctrl-C ([`Phone::shutdown_token`]) or every contact being
    /// revoked/refused by the server ends it early.
    pub async fn serve_links(&mut self, max_sessions: Option<u32>) -> Result<u32, PhoneError> {
        if self.state.contacts.is_empty() {
            return Err(PhoneError::Identity(
                "no links stored: run a QR session with --offer-linking first".into(),
            ));
        }
        let (tx, mut arrivals) = mpsc::channel(self.state.contacts.len());
        let mut listeners = JoinSet::new();
        for contact in &self.state.contacts {
            let listener = Listener {
                url: listen_url(&self.config.tunnel_base, &contact.contact_id),
                connect: self.config.connect.clone(),
                headers: listen_headers(&contact.listen_secret, false),
                contact_id: contact.contact_id.clone(),
                emit: self.emitter(),
                arrivals: tx.clone(),
            };
            listeners.spawn(listener.run());
        }
        drop(tx);
        let mut served = 0;
        while max_sessions.is_none_or(|m| served < m) {
            let arrival = tokio::select! {
                a = arrivals.recv() => a,
                () = self.shutdown.cancelled() => {
                    return Err(PhoneError::Cancelled { stage: Stage::Tunnel })
                }
            };
            let Some(arrival) = arrival else {
                return Err(PhoneError::Identity(
                    "the tunnel server revoked or refused every stored contact".into(),
                ));
            };
            served += 1;
            match self.serve_arrival(arrival).await {
                Ok(_) => {}
                Err(e @ PhoneError::Cancelled { .. }) => return Err(e),
                Err(e) => self.emit(PhoneEvent::SessionFailed {
                    stage: e.stage().as_str().to_owned(),
                    reason: e.to_string(),
                }),
            }
        }
        // Dropping the set aborts the listener tasks, which closes their connections.
        drop(listeners);
        Ok(served)
    }

    /// One desktop that reached a contact: check its client payload and link, then run it.
    async fn serve_arrival(&mut self, arrival: Arrival) -> Result<SessionSummary, PhoneError> {
        let Arrival { conn, contact_id, payload } = arrival;
        let payload = match ClientPayload::from_cbor(&payload) {
            Ok(p) => p,
            Err(e) => {
                let _ = conn.close().await;
                return Err(PhoneError::ClientPayload(e));
            }
        };
        let secret = self.state.link_secret(&contact_id, &payload.link_id);
        let link_id = hex::encode(payload.link_id);
        self.emit(PhoneEvent::DesktopArrived { link_id: link_id.clone(), known: secret.is_some() });
        let Some(secret) = secret else {
            let _ = conn.close().await;
            return Err(PhoneError::UnknownLink { link_id });
        };
        self.linked_session(conn, &secret, &payload).await
    }

    /// Revokes every stored contact on the tunnel server (desktops then get 410 Gone and forget
    /// the link) and forgets them here. A contact the server could not be asked about is
    /// forgotten too (its listen secret is gone, so nobody can ever listen on it again; its
    /// desktops get 404 "not reachable" until they forget the link themselves): such contacts
    /// are reported in [`LinksForgotten::unconfirmed`].
    pub async fn forget_links(&mut self) -> Result<LinksForgotten, PhoneError> {
        let mut report = LinksForgotten::default();
        for contact in &self.state.contacts {
            let mut opts = self.config.connect.clone();
            opts.extra_headers.extend(listen_headers(&contact.listen_secret, true));
            let url = listen_url(&self.config.tunnel_base, &contact.contact_id);
            let short = hex::encode(contact.contact_id.get(..4).unwrap_or_default());
            match connect(&url, &opts).await {
                Err(e) if e.is_gone() => report.revoked += 1,
                Err(e) => report.unconfirmed.push(format!("contact {short}: {e}")),
                Ok(conn) => {
                    let _ = conn.close().await;
                    report.unconfirmed.push(format!(
                        "contact {short}: the tunnel server does not support revocation"
                    ));
                }
            }
        }
        self.state.forget_contacts();
        self.save()?;
        Ok(report)
    }

    /// One state-assisted session on a listen connection a desktop just reached.
    async fn linked_session(
        &mut self,
        mut conn: TunnelConnection,
        secret: &LinkSecret,
        payload: &ClientPayload,
    ) -> Result<SessionSummary, PhoneError> {
        let identity = self.state.identity_key().map_err(PhoneError::Identity)?;
        let domain = self.config.domain_id;
        let pairing =
            PhonePairing::linked(secret, &payload.client_nonce, domain, &identity, &mut OsRng);
        let msg1 = self.advertise_until_msg1(&mut conn, pairing.advert()).await?;
        let out = Outbox::new(conn, &self.config.faults);
        let summary = SessionSummary::default();
        if let Some(what) = out.policy.close_before_first_frame() {
            return self.inject(out, summary, &what).await;
        }
        let (hs, msg2) = pairing.respond(&msg1, &mut OsRng)?;
        self.after_msg1(out, hs, msg2, false, summary).await
    }

    /// Opens the sink, advertises every interval and returns Noise message 1.
    async fn advertise_until_msg1(
        &self,
        conn: &mut TunnelConnection,
        advert: &[u8],
    ) -> Result<Bytes, PhoneError> {
        let spec = &self.config.sink;
        let sink = AdvertSink::open(spec)
            .await
            .map_err(|source| PhoneError::Sink { sink: spec.to_string(), source })?;
        let advertiser = Advertiser::start(sink, advert.to_vec(), self.config.advert_interval);
        self.emit(PhoneEvent::Advertising { sink: spec.to_string(), advert: hex::encode(advert) });
        let waited = tokio::time::timeout(self.config.desktop_timeout, conn.recv()).await;
        advertiser.stop().await;
        let stage = Stage::Handshake;
        match waited {
            Err(_) => Err(PhoneError::Timeout { stage, after: self.config.desktop_timeout }),
            Ok(None) => Err(PhoneError::DesktopClosed { stage }),
            Ok(Some(Err(e))) => Err(e.into()),
            Ok(Some(Ok(msg1))) => Ok(msg1),
        }
    }

    /// Message 2, post-handshake, optional linking update, then the request loop.
    async fn after_msg1(
        &mut self,
        mut out: Outbox,
        hs: PhoneHandshaken,
        mut msg2: [u8; 81],
        offer_linking: bool,
        mut summary: SessionSummary,
    ) -> Result<SessionSummary, PhoneError> {
        if let Sent::FaultClose(what) = out.send(Outgoing::HandshakeResponse, &mut msg2).await? {
            return self.inject(out, summary, &what).await;
        }
        summary.frames_sent = out.sent();
        self.emit(PhoneEvent::HandshakeDone);

        let get_info = self.get_info().await?;
        let mut message = match self.config.dc_document {
            Some(_) => PostHandshake::ctap_and_dc(get_info),
            None => PostHandshake::ctap(get_info),
        };
        let revision = if self.config.legacy_revision_0 { Revision::Zero } else { Revision::One };
        let mut legacy_link = None;
        if offer_linking && revision == Revision::Zero {
            // Revision 0 has no update messages: linking rides in post-handshake key 2.
            let identity = self.state.identity_key().map_err(PhoneError::Identity)?;
            let signature = hs.linking_signature(&identity)?;
            let (info, link_id) = self.issue_linking(&identity, signature);
            message.legacy_linking = Some(info);
            legacy_link = Some(link_id);
            summary.linking_sent = true;
            self.save()?;
        }
        let (mut open, mut post) = hs.send_post_handshake_revision(&message, revision)?;
        if let Sent::FaultClose(what) = out.send(Outgoing::PostHandshake, &mut post).await? {
            return self.inject(out, summary, &what).await;
        }
        self.emit(PhoneEvent::PostHandshakeSent);
        if let Some(link_id) = legacy_link {
            self.emit(PhoneEvent::LinkingSent { link_id });
        }

        if offer_linking && revision == Revision::One && self.config.late_linking.is_none() {
            let (mut frame, link_id) = self.linking_update(&mut open)?;
            summary.linking_sent = true;
            self.save()?;
            if let Sent::FaultClose(what) = out.send(Outgoing::Linking, &mut frame).await? {
                return self.inject(out, summary, &what).await;
            }
            self.emit(PhoneEvent::LinkingSent { link_id });
        }
        let late_linking = self.config.late_linking.filter(|_| offer_linking);
        let late_linking = late_linking.filter(|_| revision == Revision::One);
        self.request_loop(open, out, summary, late_linking).await
    }

    /// Issues a link and seals the update carrying it; returns the frame and the link id (hex).
    fn linking_update(&mut self, open: &mut PhoneOpen) -> Result<(Vec<u8>, String), PhoneError> {
        let identity = self.state.identity_key().map_err(PhoneError::Identity)?;
        let signature = open.linking_signature(&identity)?;
        let (info, link_id) = self.issue_linking(&identity, signature);
        Ok((open.send_update(Some(&info))?, link_id))
    }

    /// Issues a link (stored in the phone state) and the linking info carrying it; the link
    /// id in hex for progress.
    fn issue_linking(
        &mut self,
        identity: &p256::SecretKey,
        signature: [u8; 32],
    ) -> (LinkingInfo, String) {
        let (contact_id, link_id, link_secret) = self.state.issue_link(&mut OsRng);
        let info = LinkingInfo {
            contact_id,
            link_id,
            link_secret,
            phone_public_key: identity.public_key(),
            name: self.config.name.clone(),
            signature,
            gms_marker: None,
        };
        (info, hex::encode(link_id))
    }

    /// Answers CTAP requests until the desktop shuts down or leaves. With `late_linking`, the
    /// linking update goes out that long after the desktop's shutdown (§8.4: the desktop keeps
    /// reading late updates).
    async fn request_loop(
        &mut self,
        mut open: PhoneOpen,
        mut out: Outbox,
        mut summary: SessionSummary,
        late_linking: Option<Duration>,
    ) -> Result<SessionSummary, PhoneError> {
        let mut request: Vec<u8> = Vec::new();
        let mut sealed: Vec<u8> = Vec::new();
        let reason = loop {
            let idle = self.config.idle_timeout;
            let frame = match tokio::time::timeout(idle, out.conn.recv()).await {
                Err(_) => return Err(PhoneError::Timeout { stage: Stage::Transport, after: idle }),
                // A phone must tolerate the desktop simply closing (§8.4) — after it was
                // served. A tunnel that ends before any request came (the desktop vanished,
                // or the server cut it for misbehaving and told us only "peer left") is a
                // failed session, not a clean one.
                Ok(None) if summary.requests == 0 => {
                    return Err(PhoneError::DesktopClosed { stage: Stage::Transport })
                }
                Ok(None) => break "desktop closed the tunnel",
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(Some(Ok(frame))) => frame,
            };
            // The request is copied once, from the session's scratch into this reused buffer
            // (the backend needs `command ‖ params` contiguous); responses are sealed in place.
            let command = match open.receive_borrowed(&frame)? {
                PhoneFrame::CtapRequest { command, params } => {
                    request.clear();
                    request.push(command.to_u8());
                    request.extend_from_slice(params);
                    command
                }
                PhoneFrame::UpdateIgnored => continue,
                PhoneFrame::Shutdown => break SHUTDOWN_RECEIVED,
                PhoneFrame::Json(json) if self.config.dc_document.is_some() => {
                    if serde_json::from_slice::<serde_json::Value>(json).is_err() {
                        return Err(SessionError::BadJson.into());
                    }
                    let document = self.config.dc_document.clone().unwrap_or_default();
                    let mut reply = open.respond_json(&document)?;
                    summary.requests += 1;
                    let sent = out.send(Outgoing::CtapResponse, &mut reply).await?;
                    summary.frames_sent = out.sent();
                    if let Sent::FaultClose(what) = sent {
                        return self.inject(out, summary, &what).await;
                    }
                    continue;
                }
                // We announce only "ctap"; a JSON request breaks the negotiated features.
                _ => {
                    return Err(SessionError::UnexpectedFrame {
                        frame: FrameType::Json,
                        why: "this phone offers only the ctap feature",
                    }
                    .into())
                }
            };
            self.emit(PhoneEvent::Request { command });
            let CtapReply { status, body } = if out.policy.denies_ctap() {
                self.emit(PhoneEvent::FaultInjected { what: "ctap: denied".into() });
                summary.fault_injected = true;
                CtapReply::status(OPERATION_DENIED)
            } else {
                self.ctap(&request, &mut out.conn).await?
            };
            open.respond_ctap_into(status, &body, &mut sealed)?;
            summary.requests += 1;
            summary.last_status = Some(status.to_u8());
            let sent = out.send(Outgoing::CtapResponse, &mut sealed).await?;
            summary.frames_sent = out.sent();
            self.emit(PhoneEvent::Responded { status });
            if let Sent::FaultClose(what) = sent {
                return self.inject(out, summary, &what).await;
            }
        };
        if let Some(delay) = late_linking.filter(|_| reason == SHUTDOWN_RECEIVED) {
            tokio::time::sleep(delay).await;
            let (mut frame, link_id) = self.linking_update(&mut open)?;
            summary.linking_sent = true;
            self.save()?;
            if let Sent::FaultClose(what) = out.send(Outgoing::Linking, &mut frame).await? {
                return self.inject(out, summary, &what).await;
            }
            self.emit(PhoneEvent::LinkingSent { link_id });
        }
        summary.frames_sent = out.sent();
        let _ = out.conn.close().await;
        self.save()?;
        self.emit(PhoneEvent::Closed { reason: reason.into() });
        Ok(summary)
    }

    /// A progress emitter the backend can hold while `self.backend` is borrowed mutably.
    fn emitter(&self) -> impl Fn(PhoneEvent) + Send + Sync + 'static {
        let events = self.events.clone();
        let started = self.started;
        move |event: PhoneEvent| {
            let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            super::progress::emit_to(&events, elapsed, event);
        }
    }

    /// The backend's getInfo for the post-handshake message; Ctrl-C cancels it.
    async fn get_info(&mut self) -> Result<Vec<u8>, PhoneError> {
        let emit = self.emitter();
        let cancel = self.shutdown.child_token();
        self.backend.get_info(&BackendCtx { emit: &emit, cancel: &cancel }).await
    }

    /// Runs one CTAP request through the backend. If the desktop leaves (or sends anything:
    /// it must wait for our answer, §8.2) or Ctrl-C fires while the backend waits for the user,
    /// the backend is cancelled (a USB key gets CTAPHID_CANCEL) and the session ends.
    async fn ctap(
        &mut self,
        request: &[u8],
        conn: &mut TunnelConnection,
    ) -> Result<CtapReply, PhoneError> {
        let emit = self.emitter();
        let cancel = self.shutdown.child_token();
        let ctx = BackendCtx { emit: &emit, cancel: &cancel };
        let answer = self.backend.handle(request, &ctx);
        tokio::pin!(answer);
        let mut desktop_gone = false;
        let result = loop {
            tokio::select! {
                result = &mut answer => break result,
                _ = conn.recv(), if !desktop_gone => {
                    desktop_gone = true;
                    cancel.cancel();
                }
            }
        };
        if desktop_gone {
            return Err(PhoneError::DesktopClosed { stage: Stage::Authenticator });
        }
        result
    }

    /// Ends a session a fault switch cut short: closes the tunnel, reports, saves.
    async fn inject(
        &mut self,
        out: Outbox,
        mut summary: SessionSummary,
        what: &str,
    ) -> Result<SessionSummary, PhoneError> {
        summary.fault_injected = true;
        summary.frames_sent = out.sent();
        self.emit(PhoneEvent::FaultInjected { what: what.into() });
        let _ = out.conn.close().await;
        self.save()?;
        Ok(summary)
    }
}
