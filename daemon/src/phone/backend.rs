//! What answers the desktop's CTAP requests in a phone-role session: the seam that lets ONE
//! session implementation ([`super::Phone`]) serve both the virtual phone (the software
//! authenticator, [`SoftwareBackend`]) and the bridge (a USB security key, see
//! `crate::bridge::KeyBackend`).
//!
//! The session owns everything hybrid (tunnel, adverts, Noise, framing, linking, fault
//! switches); a backend only turns `command ‖ CBOR` into `status ‖ CBOR` (PROTOCOL-hybrid.md
//! §8.1 post-handshake getInfo, §8.2 CTAP messages). While a backend works it may report
//! progress (user presence, "touch the key") through [`BackendCtx::emit`] and must stop promptly
//! when [`BackendCtx::cancel`] fires (the desktop left, or the operator pressed Ctrl-C).
//!
//! What it is not: a CTAP transport abstraction for the desktop side (see `crate::ctap`).

use super::error::PhoneError;
use super::progress::PhoneEvent;
use cablebridge_protocol::authenticator::{
    Authenticator, CredentialStore, Ctx, MemoryStore, PersistentState, PresenceOutcome,
    PresencePolicy, Step,
};
use cablebridge_protocol::ctap2::StatusCode;
use rand::rngs::OsRng;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// CTAP command byte of authenticatorGetInfo (defined once, by the command enum).
const GET_INFO: u8 = cablebridge_protocol::ctap2::Command::GetInfo.to_u8();

/// One CTAP answer: status byte and CBOR body (empty for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtapReply {
    /// CTAP status ([`StatusCode::Ok`] = OK; vendor codes pass through as
    /// [`StatusCode::Other`]).
    pub status: StatusCode,
    /// CBOR body, exactly as the authenticator produced it.
    pub body: Vec<u8>,
}

impl CtapReply {
    /// An error answer with no body.
    pub fn status(status: StatusCode) -> Self {
        CtapReply { status, body: Vec::new() }
    }
}

/// What a backend gets while answering one request.
pub struct BackendCtx<'a> {
    /// Emits a progress event (timestamped by the session).
    pub emit: &'a (dyn Fn(PhoneEvent) + Send + Sync),
    /// Fires when the answer is no longer wanted (desktop left, Ctrl-C): stop waiting for the
    /// user and cancel the authenticator's operation.
    pub cancel: &'a CancellationToken,
}

impl std::fmt::Debug for BackendCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendCtx").field("cancelled", &self.cancel.is_cancelled()).finish()
    }
}

/// Something that answers CTAP requests for a phone-role session.
pub trait CtapBackend: Send {
    /// The authenticatorGetInfo body (CBOR) for the post-handshake message (§8.1).
    fn get_info(
        &mut self,
        ctx: &BackendCtx<'_>,
    ) -> impl Future<Output = Result<Vec<u8>, PhoneError>> + Send;

    /// Answers one request (`command ‖ CBOR parameters`). A CTAP error is a reply, not an
    /// `Err`; `Err` ends the session (the authenticator is gone, or `ctx.cancel` fired).
    fn handle(
        &mut self,
        request: &[u8],
        ctx: &BackendCtx<'_>,
    ) -> impl Future<Output = Result<CtapReply, PhoneError>> + Send;

    /// State to persist in the phone's state file after a session (the software
    /// authenticator's credentials); `None` when the authenticator keeps its own.
    fn export_state(&self) -> Option<PersistentState> {
        None
    }
}

/// The virtual phone's authenticator: software, user presence approved after a delay on the
/// tokio timer (the runtime is never blocked).
pub struct SoftwareBackend {
    authenticator: Authenticator<MemoryStore>,
    presence_delay: Duration,
}

impl std::fmt::Debug for SoftwareBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareBackend")
            .field("presence_delay", &self.presence_delay)
            .finish_non_exhaustive()
    }
}

impl SoftwareBackend {
    /// Wraps `authenticator`; presence is approved `presence_delay` after it is requested.
    pub fn new(authenticator: Authenticator<MemoryStore>, presence_delay: Duration) -> Self {
        SoftwareBackend { authenticator, presence_delay }
    }

    async fn run(&mut self, request: &[u8], ctx: &BackendCtx<'_>) -> Result<CtapReply, PhoneError> {
        let mut presence = PresencePolicy::Deferred;
        let step = self.authenticator.handle(
            request,
            &mut Ctx { rng: &mut OsRng, now: Instant::now(), presence: &mut presence },
        );
        let response = match step {
            Step::Done(response) => response,
            Step::Pending(op) => {
                let delay = self.presence_delay;
                (ctx.emit)(PhoneEvent::PresenceRequested {
                    rp_id: op.request().rp_id.clone(),
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                });
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = ctx.cancel.cancelled() => {
                        return Err(PhoneError::Cancelled {
                            stage: cablebridge_protocol::Stage::Authenticator,
                        })
                    }
                }
                self.authenticator
                    .complete(
                        op,
                        PresenceOutcome::Approved,
                        &mut Ctx { rng: &mut OsRng, now: Instant::now(), presence: &mut presence },
                    )
                    .map_err(PhoneError::Authenticator)?
            }
        };
        Ok(CtapReply { status: response.status(), body: response.body().to_vec() })
    }
}

impl CtapBackend for SoftwareBackend {
    async fn get_info(&mut self, ctx: &BackendCtx<'_>) -> Result<Vec<u8>, PhoneError> {
        Ok(self.run(&[GET_INFO], ctx).await?.body)
    }

    async fn handle(
        &mut self,
        request: &[u8],
        ctx: &BackendCtx<'_>,
    ) -> Result<CtapReply, PhoneError> {
        self.run(request, ctx).await
    }

    fn export_state(&self) -> Option<PersistentState> {
        Some(self.authenticator.store().state().clone())
    }
}
