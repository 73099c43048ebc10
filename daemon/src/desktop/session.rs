//! Drives one connected tunnel through the desktop session phases (§7–§8): message 1 at once,
//! message 2, the post-handshake message (its getInfo is cached and answers getInfo locally),
//! the one CTAP request, its response, shutdown, then a bounded read of late updates for
//! linking info (Chrome waits up to 3 minutes; a CLI waits `late_updates`, 2 s by default).
//! With [`LateUpdateMode::AfterResult`] or [`LateUpdateMode::Detached`] that read is handed
//! back as a [`LateUpdates`] task instead, so the ceremony's result is not delayed by it.
//! A raw request (a client's own CTAP bytes, the uhid front) is sent unchanged, its answer comes
//! back verbatim, and its late-update read is always a [`LateUpdateMode::Detached`] task: the
//! client is waiting for the answer.
//!
//! A phone speaking the legacy revision 0 (padded post-handshake, §8.1) is served too: the
//! protocol session switches to untyped frames, there is no shutdown message to send and no
//! update to wait for; linking info can only come in post-handshake key 2.

use std::time::Duration;
use tokio_tungstenite::tungstenite::Bytes;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    Command, Ctap2Error, GetAssertionResponse, GetInfo, MakeCredentialResponse, StatusCode,
};
use cablebridge_protocol::hybrid::eid::OpenedAdvert;
use cablebridge_protocol::hybrid::messages::{LinkingInfo, Revision};
use cablebridge_protocol::hybrid::session::{
    DesktopClosed, DesktopEvent, DesktopPairing, SessionError,
};
use tokio_util::sync::CancellationToken;

use super::{unix_now, DesktopConfig, DesktopOutcome, DesktopRequest};
use crate::ceremony::{
    cancellable, AuthenticationResult, CeremonyError, CeremonyErrorKind, CeremonyOutcome,
    CeremonyRequest, CeremonyStage, ClientData, ExtensionOutputs, ProgressDetail, RawCtapReply,
    RawCtapRequest, RegistrationResult, StageClock, TransportKind,
};
use crate::store::{display_name, LinkStore, StoredLink};
use crate::tunnel::client::TunnelConnection;

/// How the handshake starts: the session's pairing and the advert that matched it (the PSK is
/// derived inside the protocol crate; no secret is handled here).
pub(super) struct Start<'a> {
    pub pairing: DesktopPairing,
    pub advert: &'a OpenedAdvert,
}

/// Where verified linking info goes (QR sessions with a link store).
pub(super) struct LinkSink {
    pub store: LinkStore,
    pub tunnel_domain: u16,
}

impl LinkSink {
    fn store(&self, info: &LinkingInfo, progress: &StageClock) {
        let link = StoredLink::from_linking(info, self.tunnel_domain, unix_now());
        let id = link.id();
        match self.store.upsert(link) {
            Ok(()) => progress.note(
                CeremonyStage::Linking,
                ProgressDetail::Text(format!("{} (id {id})", display_name(&info.name))),
            ),
            Err(e) => progress.warn(format!("could not store the phone's linking info: {e}")),
        }
    }
}

fn session_err(stage: CeremonyStage, e: &SessionError) -> CeremonyError {
    CeremonyError::classified(stage, "hybrid session", e)
}

/// The next tunnel message within `limit`, or an error naming `stage` and `what`.
async fn recv(
    conn: &mut TunnelConnection,
    stage: CeremonyStage,
    what: &str,
    limit: Duration,
) -> Result<Bytes, CeremonyError> {
    match tokio::time::timeout(limit, conn.recv()).await {
        Err(_) => Err(CeremonyError::timeout(stage, what, limit)),
        Ok(None) => Err(CeremonyError::peer(
            stage,
            format!("the tunnel closed while {what} (the phone or tunnel server hung up)"),
        )),
        Ok(Some(Err(e))) => Err(CeremonyError::classified(stage, "tunnel", &e)),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

async fn send(
    conn: &mut TunnelConnection,
    stage: CeremonyStage,
    bytes: &[u8],
) -> Result<(), CeremonyError> {
    conn.send(bytes).await.map_err(|e| CeremonyError::classified(stage, "tunnel", &e))
}

/// What the desktop asks the phone in the one request of a connection.
pub(super) enum Ask<'a> {
    /// A WebAuthn ceremony (CTAP makeCredential/getAssertion).
    Ceremony(&'a CeremonyRequest),
    /// A client's own CTAP request, sent byte for byte (the uhid front).
    Raw(&'a RawCtapRequest),
    /// A Digital Credentials request (JSON, feature "dc").
    Json(&'a [u8]),
}

/// The phone's answer.
enum Reply {
    /// `client_data` is what a built ceremony signed over; `None` for a raw request.
    Ctap {
        status: StatusCode,
        body: Vec<u8>,
        client_data: Option<ClientData>,
    },
    Json(Vec<u8>),
}

/// The CTAP answer and what is left of the session once the shutdown went out.
struct Answered {
    reply: Reply,
    /// `Some` when the session may still deliver late updates (revision 1, shutdown sent).
    closed: Option<DesktopClosed>,
}

/// Runs the session on `conn` to its end and closes the tunnel, whatever happened (or hands
/// the tunnel to the returned [`LateUpdates`] task, see [`LateUpdateMode`]). A cancel before
/// the handshake completed closes the tunnel; after it, the phone first gets the encrypted
/// shutdown message.
pub(super) async fn drive(
    conn: TunnelConnection,
    start: Start<'_>,
    request: DesktopRequest,
    config: &DesktopConfig,
    linking: Option<LinkSink>,
    progress: &mut StageClock,
    cancel: &CancellationToken,
) -> Result<(DesktopOutcome, Option<LateUpdates>), CeremonyError> {
    let (ask, mode) = match &request {
        DesktopRequest::Ceremony(r) => (Ask::Ceremony(r), config.late_update_mode),
        // The client behind a raw request is waiting: never read late updates before it has
        // its answer.
        DesktopRequest::Raw(r) => (Ask::Raw(r), LateUpdateMode::Detached),
    };
    let (reply, late) = exchange(conn, start, ask, config, mode, linking, progress, cancel).await?;
    let Reply::Ctap { status, body, client_data } = reply else {
        return Err(CeremonyError::peer(CeremonyStage::UserResponse, "a JSON reply to CTAP"));
    };
    let outcome = match (&request, client_data) {
        (DesktopRequest::Ceremony(r), Some(cd)) => {
            let outcome = interpret(r, status, &body, &cd, config, progress)?;
            DesktopOutcome::Ceremony(Box::new(outcome))
        }
        (DesktopRequest::Raw(_), None) => {
            DesktopOutcome::Raw(RawCtapReply { status, body, timings: progress.timings().clone() })
        }
        _ => {
            return Err(CeremonyError::new(
                CeremonyStage::Done,
                CeremonyErrorKind::Usage,
                "client data does not match the request kind (a bug)",
            ))
        }
    };
    progress.finish(CeremonyStage::Done, CeremonyStage::Done, ProgressDetail::None);
    Ok((outcome, late))
}

/// [`drive`] for a Digital Credentials request: the phone's JSON reply, parsed.
pub(super) async fn drive_json(
    conn: TunnelConnection,
    start: Start<'_>,
    json: &[u8],
    config: &DesktopConfig,
    progress: &mut StageClock,
    cancel: &CancellationToken,
) -> Result<serde_json::Value, CeremonyError> {
    let (ask, mode) = (Ask::Json(json), config.late_update_mode);
    let (reply, _late) = exchange(conn, start, ask, config, mode, None, progress, cancel).await?;
    let ur = CeremonyStage::UserResponse;
    let Reply::Json(bytes) = reply else {
        return Err(CeremonyError::peer(ur, "a CTAP reply to a Digital Credentials request"));
    };
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        CeremonyError::peer(ur, format!("the phone's Digital Credentials reply is not JSON: {e}"))
    })?;
    progress.finish(CeremonyStage::Done, CeremonyStage::Done, ProgressDetail::None);
    Ok(value)
}

/// One request/reply on `conn`, then the late-update read per `mode`.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    mut conn: TunnelConnection,
    start: Start<'_>,
    ask: Ask<'_>,
    config: &DesktopConfig,
    mode: LateUpdateMode,
    linking: Option<LinkSink>,
    progress: &mut StageClock,
    cancel: &CancellationToken,
) -> Result<(Reply, Option<LateUpdates>), CeremonyError> {
    let answered =
        drive_inner(&mut conn, start, ask, config, linking.as_ref(), progress, cancel).await;
    let (answered, closed) = match answered {
        Ok(mut a) => {
            let closed = a.closed.take();
            (Ok(a), closed)
        }
        Err(e) => (Err(e), None),
    };
    let window = config.timeouts.late_updates;
    let late = match (closed, mode) {
        (Some(closed), mode) if mode != LateUpdateMode::BeforeResult => {
            let (progress, cancel) = (progress.clone(), cancel.clone());
            Some(LateUpdates {
                mode,
                task: Box::pin(async move {
                    let sink = linking.as_ref();
                    read_late_updates(&mut conn, closed, sink, &progress, window, &cancel).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
                }),
            })
        }
        (closed, _) => {
            if let Some(closed) = closed {
                read_late_updates(&mut conn, closed, linking.as_ref(), progress, window, cancel)
                    .await;
            }
            // Close whatever happened; a failed close changes nothing about the outcome.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
            None
        }
    };
    Ok((answered?.reply, late))
}

/// When the desktop reads late updates (linking info) after its shutdown, relative to the
/// ceremony's result (§8.4: Chrome keeps reading for up to 3 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LateUpdateMode {
    /// Read for `timeouts.late_updates`, then report the result (the CLI's short default).
    #[default]
    BeforeResult,
    /// Report the result at once, then read for the window before `ceremony::run` returns
    /// (the CLI's `--wait-for-linking`).
    AfterResult,
    /// Report the result and return at once; the window runs in a spawned task (the daemon,
    /// which outlives the ceremony).
    Detached,
}

/// The late-update read of a finished ceremony, handed to `ceremony::run` (which emits the
/// result first, then awaits or spawns it according to `mode`). Owns the tunnel; closes it at
/// the end of the window, on cancel or when the phone hangs up.
pub struct LateUpdates {
    /// Await after the result, or spawn.
    pub mode: LateUpdateMode,
    /// The read itself.
    pub task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for LateUpdates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateUpdates").field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// Reads late updates for up to `window` (or until cancel / the phone closes / a bad frame),
/// storing verified linking info.
async fn read_late_updates(
    conn: &mut TunnelConnection,
    mut closed: DesktopClosed,
    linking: Option<&LinkSink>,
    progress: &StageClock,
    window: Duration,
    cancel: &CancellationToken,
) {
    let late = async {
        while let Some(Ok(msg)) = conn.recv().await {
            match closed.receive(&msg) {
                Ok(DesktopEvent::LinkingInfo(info)) => {
                    if let Some(sink) = linking {
                        sink.store(&info, progress);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    progress.warn(format!("ignored a late message from the phone: {e}"));
                    break;
                }
            }
        }
    };
    tokio::select! {
        biased;
        () = cancel.cancelled() => {}
        _ = tokio::time::timeout(window, late) => {}
    }
}

async fn drive_inner(
    conn: &mut TunnelConnection,
    start: Start<'_>,
    ask: Ask<'_>,
    config: &DesktopConfig,
    linking: Option<&LinkSink>,
    progress: &mut StageClock,
    cancel: &CancellationToken,
) -> Result<Answered, CeremonyError> {
    let t = config.timeouts;
    // Handshake: message 1 goes out as soon as the socket is open (§6.1).
    let hs = CeremonyStage::Handshake;
    let (handshake, msg1) = start.pairing.start_handshake(start.advert, &mut rand::rngs::OsRng);
    send(conn, hs, &msg1).await?;
    let msg2 =
        cancellable(cancel, hs, recv(conn, hs, "waiting for Noise message 2", t.handshake)).await?;
    let awaiting = handshake.read_response(&msg2).map_err(|e| session_err(hs, &e))?;
    progress.finish(hs, CeremonyStage::PostHandshake, ProgressDetail::None);

    // Post-handshake: cache getInfo, build and send the one request.
    let ph = CeremonyStage::PostHandshake;
    let post = cancellable(
        cancel,
        ph,
        recv(conn, ph, "waiting for the post-handshake message", t.handshake),
    )
    .await?;
    let open = awaiting.read_post_handshake(&post).map_err(|e| session_err(ph, &e))?;
    let revision = open.revision();
    if let (Some(link), Some(sink)) = (&open.post_handshake().legacy_linking, linking) {
        // Key 2 (verified over this session's handshake hash by the protocol session).
        sink.store(link, progress);
    }
    let info = match open.get_info() {
        Some(bytes) => Value::decode(bytes)
            .map_err(Ctap2Error::from)
            .and_then(|v| GetInfo::from_cbor(&v))
            .map_err(|e| CeremonyError::classified(ph, "the phone's getInfo is invalid", &e))?,
        None => GetInfo::default(),
    };
    let wants_json = matches!(ask, Ask::Json(_));
    let (mut awaiting, ct, mut client_data) = match ask {
        Ask::Ceremony(request) => {
            let (command, params, client_data) = build(request, &info)?;
            let (awaiting, ct) =
                open.send_ctap(command, &params).map_err(|e| session_err(ph, &e))?;
            (awaiting, ct, Some(client_data))
        }
        // The client's own bytes; its answer goes back unread (no client data).
        Ask::Raw(raw) => {
            let (awaiting, ct) =
                open.send_ctap(raw.command, &raw.params).map_err(|e| session_err(ph, &e))?;
            (awaiting, ct, None)
        }
        // Refused with a typed error unless the phone announced "dc" (§8.1).
        Ask::Json(json) => {
            let (awaiting, ct) = open.send_json(json).map_err(|e| session_err(ph, &e))?;
            (awaiting, ct, None)
        }
    };
    send(conn, ph, &ct).await?;
    let detail = match revision {
        Revision::One => ProgressDetail::None,
        Revision::Zero => ProgressDetail::Text(
            "legacy protocol revision 0 (padded post-handshake, untyped frames)".into(),
        ),
    };
    progress.finish(ph, CeremonyStage::UserResponse, detail);

    // The user decides; updates (linking info) may come before or after the response.
    let ur = CeremonyStage::UserResponse;
    let deadline = tokio::time::Instant::now() + t.user;
    let reply = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let received = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            r = recv(conn, ur, "waiting for the user to respond on the phone", left) => Some(r),
        };
        let Some(received) = received else {
            // Tell the phone the desktop is gone (it stops asking the user), then fail.
            // (Revision 0 has no shutdown message: the frame is empty, the close says it.)
            if let Ok((_, ct)) = awaiting.shutdown() {
                if !ct.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), send(conn, ur, &ct)).await;
                }
            }
            return Err(CeremonyError::cancelled(ur));
        };
        let msg = received.map_err(|e| {
            if left.is_zero() {
                CeremonyError::timeout(ur, "waiting for the user to respond on the phone", t.user)
            } else {
                e
            }
        })?;
        match awaiting.receive(&msg).map_err(|e| session_err(ur, &e))? {
            DesktopEvent::CtapResponse { .. } if wants_json => {
                return Err(CeremonyError::peer(ur, "a CTAP reply to a JSON request"))
            }
            DesktopEvent::CtapResponse { status, body } => {
                break Reply::Ctap { status, body, client_data: client_data.take() }
            }
            DesktopEvent::JsonResponse(json) => break Reply::Json(json),
            DesktopEvent::LinkingInfo(info) => {
                if let Some(sink) = linking {
                    sink.store(&info, progress);
                }
            }
            _ => {}
        }
    };
    progress.finish(ur, CeremonyStage::Done, ProgressDetail::None);

    // Shutdown; late updates (§8.4) are read by the caller.
    let (closed, ct) = awaiting.shutdown().map_err(|e| session_err(CeremonyStage::Done, &e))?;
    let closed = if ct.is_empty() {
        None // revision 0: no shutdown message, no updates.
    } else {
        send(conn, CeremonyStage::Done, &ct).await.ok().map(|()| closed)
    };
    Ok(Answered { reply, closed })
}

fn build(
    request: &CeremonyRequest,
    info: &GetInfo,
) -> Result<(Command, Vec<u8>, ClientData), CeremonyError> {
    match request {
        CeremonyRequest::Register(o) => {
            let cd = o.client_data();
            let req = o.to_request(info, &cd)?;
            Ok((Command::MakeCredential, req.to_cbor().to_vec(), cd))
        }
        CeremonyRequest::Authenticate(o) => {
            let cd = o.client_data();
            let req = o.to_request(info, &cd)?;
            Ok((Command::GetAssertion, req.to_cbor().to_vec(), cd))
        }
    }
}

fn interpret(
    request: &CeremonyRequest,
    status: StatusCode,
    body: &[u8],
    client_data: &ClientData,
    config: &DesktopConfig,
    progress: &StageClock,
) -> Result<CeremonyOutcome, CeremonyError> {
    let ur = CeremonyStage::UserResponse;
    if !status.is_ok() {
        return Err(CeremonyError::ctap2(ur, &Ctap2Error::Status(status)));
    }
    let value = Value::decode(body).map_err(|e| CeremonyError::ctap2(ur, &Ctap2Error::from(e)))?;
    let timings = progress.timings().clone();
    match request {
        CeremonyRequest::Register(o) => {
            let resp = MakeCredentialResponse::from_cbor(&value)
                .map_err(|e| CeremonyError::ctap2(ur, &e))?;
            // The phone's own `prf` answers in the unsigned outputs (no hmac-secret over hybrid).
            let extensions = ExtensionOutputs::of_registration(&o.extensions, &resp);
            RegistrationResult::from_response(
                TransportKind::Hybrid,
                &o.rp_id,
                resp,
                client_data,
                &config.aaguids,
                timings,
            )
            .map(|r| CeremonyOutcome::Registered(RegistrationResult { extensions, ..r }))
        }
        CeremonyRequest::Authenticate(o) => {
            let resp = GetAssertionResponse::from_cbor(&value)
                .map_err(|e| CeremonyError::ctap2(ur, &e))?;
            let allow: Vec<_> = o
                .allow_credentials
                .iter()
                .map(|id| cablebridge_protocol::ctap2::CredentialDescriptor::public_key(id.clone()))
                .collect();
            let extensions = ExtensionOutputs::of_assertion(&o.extensions, &resp);
            AuthenticationResult::from_response(
                TransportKind::Hybrid,
                &o.rp_id,
                resp,
                &allow,
                client_data,
                timings,
            )
            .map(|r| CeremonyOutcome::Authenticated(AuthenticationResult { extensions, ..r }))
        }
    }
}
