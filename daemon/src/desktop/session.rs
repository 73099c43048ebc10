//! Drives one connected tunnel through the desktop session phases (§7–§8): message 1 at once,
//! message 2, the post-handshake message (its getInfo is cached and answers getInfo locally),
//! the one CTAP request, its response, shutdown, then a bounded read of late updates for
//! linking info (Chrome waits up to 3 minutes; a CLI waits `late_updates`, 2 s by default).

use std::time::Duration;
use tokio_tungstenite::tungstenite::Bytes;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    Command, Ctap2Error, GetAssertionResponse, GetInfo, MakeCredentialResponse, StatusCode,
};
use cablebridge_protocol::hybrid::eid::OpenedAdvert;
use cablebridge_protocol::hybrid::messages::LinkingInfo;
use cablebridge_protocol::hybrid::session::{DesktopEvent, DesktopPairing, SessionError};
use tokio_util::sync::CancellationToken;

use super::{unix_now, DesktopConfig, DesktopOutcome, DesktopRequest};
use crate::ceremony::{
    cancellable, AuthenticationResult, CeremonyError, CeremonyOutcome, CeremonyRequest,
    CeremonyStage, ClientData, ProgressDetail, RawCtapReply, RegistrationResult, StageClock,
    TransportKind,
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
pub(super) struct LinkSink<'a> {
    pub store: &'a LinkStore,
    pub tunnel_domain: u16,
}

impl LinkSink<'_> {
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

/// Runs the session on `conn` to its end and closes the tunnel, whatever happened. A cancel
/// before the handshake completed closes the tunnel; after it, the phone first gets the
/// encrypted shutdown message.
pub(super) async fn drive(
    mut conn: TunnelConnection,
    start: Start<'_>,
    request: DesktopRequest,
    config: &DesktopConfig,
    linking: Option<LinkSink<'_>>,
    progress: &mut StageClock,
    cancel: &CancellationToken,
) -> Result<DesktopOutcome, CeremonyError> {
    let result = drive_inner(&mut conn, start, request, config, linking, progress, cancel).await;
    // Close whatever happened; a failed close changes nothing about the outcome.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    if result.is_ok() {
        progress.finish(CeremonyStage::Done, CeremonyStage::Done, ProgressDetail::None);
    }
    result
}

async fn drive_inner(
    conn: &mut TunnelConnection,
    start: Start<'_>,
    request: DesktopRequest,
    config: &DesktopConfig,
    linking: Option<LinkSink<'_>>,
    progress: &mut StageClock,
    cancel: &CancellationToken,
) -> Result<DesktopOutcome, CeremonyError> {
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
    let info = match open.get_info() {
        Some(bytes) => Value::decode(bytes)
            .map_err(Ctap2Error::from)
            .and_then(|v| GetInfo::from_cbor(&v))
            .map_err(|e| CeremonyError::classified(ph, "the phone's getInfo is invalid", &e))?,
        None => GetInfo::default(),
    };
    let (command, params, client_data) = match &request {
        DesktopRequest::Ceremony(r) => {
            let (command, params, cd) = build(r, &info)?;
            (command, params, Some(cd))
        }
        DesktopRequest::Raw(raw) => (raw.command, raw.params.clone(), None),
    };
    let (mut awaiting, ct) = open.send_ctap(command, &params).map_err(|e| session_err(ph, &e))?;
    send(conn, ph, &ct).await?;
    progress.finish(ph, CeremonyStage::UserResponse, ProgressDetail::None);

    // The user decides; updates (linking info) may come before or after the response.
    let ur = CeremonyStage::UserResponse;
    let deadline = tokio::time::Instant::now() + t.user;
    let (status, body) = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let received = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            r = recv(conn, ur, "waiting for the user to respond on the phone", left) => Some(r),
        };
        let Some(received) = received else {
            // Tell the phone the desktop is gone (it stops asking the user), then fail.
            if let Ok((_, ct)) = awaiting.shutdown() {
                let _ = tokio::time::timeout(Duration::from_secs(1), send(conn, ur, &ct)).await;
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
            DesktopEvent::CtapResponse { status, body } => break (status, body),
            DesktopEvent::LinkingInfo(info) => {
                if let Some(sink) = &linking {
                    sink.store(&info, progress);
                }
            }
            _ => {}
        }
    };
    progress.finish(ur, CeremonyStage::Done, ProgressDetail::None);

    // Shutdown, then a bounded read of late updates (§8.4).
    let (mut closed, ct) = awaiting.shutdown().map_err(|e| session_err(CeremonyStage::Done, &e))?;
    if send(conn, CeremonyStage::Done, &ct).await.is_ok() {
        let late = async {
            while let Some(Ok(msg)) = conn.recv().await {
                match closed.receive(&msg) {
                    Ok(DesktopEvent::LinkingInfo(info)) => {
                        if let Some(sink) = &linking {
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
        let _ = tokio::time::timeout(t.late_updates, late).await;
    }

    match (&request, &client_data) {
        (DesktopRequest::Ceremony(r), Some(cd)) => {
            interpret(r, status, &body, cd, config, progress)
                .map(|o| DesktopOutcome::Ceremony(Box::new(o)))
        }
        _ => Ok(DesktopOutcome::Raw(RawCtapReply {
            status,
            body,
            timings: progress.timings().clone(),
        })),
    }
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
            RegistrationResult::from_response(
                TransportKind::Hybrid,
                &o.rp_id,
                resp,
                client_data,
                &config.aaguids,
                timings,
            )
            .map(CeremonyOutcome::Registered)
        }
        CeremonyRequest::Authenticate(o) => {
            let resp = GetAssertionResponse::from_cbor(&value)
                .map_err(|e| CeremonyError::ctap2(ur, &e))?;
            let allow: Vec<_> = o
                .allow_credentials
                .iter()
                .map(|id| cablebridge_protocol::ctap2::CredentialDescriptor::public_key(id.clone()))
                .collect();
            AuthenticationResult::from_response(
                TransportKind::Hybrid,
                &o.rp_id,
                resp,
                &allow,
                client_data,
                timings,
            )
            .map(CeremonyOutcome::Authenticated)
        }
    }
}
