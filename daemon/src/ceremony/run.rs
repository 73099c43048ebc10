//! The one entry point of the engine: [`run`] a WebAuthn ceremony on any [`Transport`].
//!
//! ```text
//! run(transport, request, events, cancel) -> Result<CeremonyOutcome, CeremonyError>
//! ```
//!
//! * `transport` says how to reach the authenticator: a USB key ([`UsbTransport`]), a phone that
//!   scans our QR code ([`HybridTransport`]), or a linked phone ([`LinkedTransport`]). The hybrid
//!   transports take their adverts as an [`AdvertInput`]: a source spec opened for this ceremony,
//!   or an already-open [`AdvertFeed`] (a daemon fanning one BLE scan out to several pending
//!   sessions hands each its own feed).
//! * `events` receives the one [`CeremonyEvent`] stream (`qr`, `progress`, `warning`, then
//!   `result` or `error`), the same for every transport.
//! * `cancel` ends the ceremony at once, in any stage: a USB key gets CTAPHID_CANCEL, an open
//!   tunnel gets the hybrid shutdown message (or a close before the handshake), and the error
//!   names the stage in progress ([`super::CeremonyErrorKind::Cancelled`]).
//!
//! Hybrid late updates (§8.4): with [`crate::desktop::LateUpdateMode::AfterResult`] `run`
//! emits the result, then keeps reading the phone's late linking/update messages for the
//! configured window before it returns; with `Detached` (the daemon) that read is spawned on the
//! current runtime and `run` returns at once; the default reads a short window first.
//! [`run_raw`] (the uhid front's pass-through) never reads before answering: its read is
//! always spawned.
//!
//! Concurrency: `run` owns nothing global. Any number of ceremonies may run at once on one
//! runtime, each with its own sink and token; everything a ceremony opened (advert sockets and
//! readers, tunnel, hidraw handle) is closed by the time `run` returns — except the tunnel of a
//! `Detached` late-update read, which its spawned task closes at the end of its window.

use std::sync::Arc;
use std::time::Duration;

use cablebridge_protocol::hybrid::tunnel::RequestHint;
use tokio_util::sync::CancellationToken;

use super::{
    AuthenticateOptions, AuthenticationResult, CeremonyError, CeremonyEvent, CeremonyStage, Events,
    RegisterOptions, RegistrationResult,
};
use crate::advert::{AdvertFeed, AdvertSource};
use crate::ctap::OpenOptions;
use crate::desktop::{DesktopConfig, DesktopOutcome, DesktopRequest, LateUpdateMode, LateUpdates};
use crate::evidence::AaguidTable;
use crate::hid::DeviceAddress;
use cablebridge_protocol::ctap2::pin::Pin;
use cablebridge_protocol::ctap2::CoseKey;

/// What to run.
#[derive(Debug, Clone)]
pub enum CeremonyRequest {
    /// makeCredential.
    Register(RegisterOptions),
    /// getAssertion.
    Authenticate(AuthenticateOptions),
}

impl CeremonyRequest {
    /// The hint a hybrid QR code / client payload carries.
    pub fn hint(&self) -> RequestHint {
        match self {
            CeremonyRequest::Register(_) => RequestHint::MakeCredential,
            CeremonyRequest::Authenticate(_) => RequestHint::GetAssertion,
        }
    }

    /// Checks the options before any IO.
    pub fn validate(&self) -> Result<(), CeremonyError> {
        match self {
            CeremonyRequest::Register(o) => o.validate(),
            CeremonyRequest::Authenticate(o) => o.validate(),
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub enum CeremonyOutcome {
    /// A new credential.
    Registered(RegistrationResult),
    /// An assertion.
    Authenticated(AuthenticationResult),
}

impl CeremonyOutcome {
    /// The `{"event":"result",...}` object the CLI prints, `verification` included (see
    /// [`Self::verification`]; no public key for an assertion).
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = match self {
            CeremonyOutcome::Registered(r) => r.to_json(),
            CeremonyOutcome::Authenticated(a) => a.to_json(),
        };
        json["verification"] = self.verification(None);
        json
    }

    /// `{"ok":..,"detail":..}`: the attestation of a registration verified, or the assertion's
    /// signature verified against `public_key` (`"ok": null` without one).
    pub fn verification(&self, public_key: Option<&CoseKey>) -> serde_json::Value {
        use serde_json::json;
        match (self, public_key) {
            (CeremonyOutcome::Registered(reg), _) => match reg.verify() {
                Ok(kind) => {
                    json!({"ok": true, "detail": format!("attestation verified ({kind:?})")})
                }
                Err(e) => json!({"ok": false, "detail": e.to_string()}),
            },
            (CeremonyOutcome::Authenticated(auth), Some(k)) => match auth.verify(k) {
                Ok(()) => json!({"ok": true, "detail": "signature verified"}),
                Err(e) => json!({"ok": false, "detail": e.to_string()}),
            },
            (CeremonyOutcome::Authenticated(_), None) => {
                json!({"ok": null, "detail": "pass --public-key to verify the signature"})
            }
        }
    }
}

/// Where a hybrid ceremony's adverts come from.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdvertInput {
    /// Open this source for the ceremony (and close it when the ceremony ends).
    Source(AdvertSource),
    /// An already-open feed (e.g. one branch of a shared scan); dropped when the ceremony ends.
    Feed(AdvertFeed),
}

impl From<AdvertSource> for AdvertInput {
    fn from(s: AdvertSource) -> Self {
        AdvertInput::Source(s)
    }
}

impl From<AdvertFeed> for AdvertInput {
    fn from(f: AdvertFeed) -> Self {
        AdvertInput::Feed(f)
    }
}

/// A security key over USB HID (or UDP-HID).
#[derive(Debug, Default)]
pub struct UsbTransport {
    /// Keys to use; empty = every attached hidraw key (waiting for one to be plugged in when
    /// there are none). Several = touch-to-select.
    pub devices: Vec<DeviceAddress>,
    /// Deadline for the whole ceremony, touch included.
    pub timeout: Duration,
    /// The PIN, when the user supplied one (secret).
    pub pin: Option<Pin>,
    /// Driver and hidraw options.
    pub open: OpenOptions,
    /// The engine's AAGUID table (names in results; `--mds` extends it).
    pub aaguids: Arc<AaguidTable>,
}

/// A phone that scans our QR code (QR-initiated hybrid).
#[derive(Debug)]
pub struct HybridTransport {
    /// Tunnel, link store, timeouts, AAGUID names.
    pub config: DesktopConfig,
    /// Where adverts come from.
    pub adverts: AdvertInput,
}

impl HybridTransport {
    /// Adverts from `config.advert_source`.
    pub fn new(config: DesktopConfig) -> Self {
        let adverts = AdvertInput::Source(config.advert_source.clone());
        HybridTransport { config, adverts }
    }
}

/// A phone linked in an earlier QR ceremony (state-assisted hybrid).
#[derive(Debug)]
pub struct LinkedTransport {
    /// The linked phone's name or id (see the link store).
    pub link: String,
    /// Tunnel, link store (required), timeouts, AAGUID names.
    pub config: DesktopConfig,
    /// Where adverts come from.
    pub adverts: AdvertInput,
}

impl LinkedTransport {
    /// Adverts from `config.advert_source`.
    pub fn new(link: impl Into<String>, config: DesktopConfig) -> Self {
        let adverts = AdvertInput::Source(config.advert_source.clone());
        LinkedTransport { link: link.into(), config, adverts }
    }
}

/// How to reach the authenticator.
#[derive(Debug)]
#[non_exhaustive]
pub enum Transport {
    /// A security key.
    Usb(UsbTransport),
    /// A phone scanning our QR code.
    Hybrid(HybridTransport),
    /// A linked phone.
    Linked(LinkedTransport),
}

/// Runs one ceremony; see the module docs. The last event emitted is `Result` or `Error`,
/// carrying the value returned.
pub async fn run(
    transport: Transport,
    request: CeremonyRequest,
    events: Events,
    cancel: CancellationToken,
) -> Result<CeremonyOutcome, CeremonyError> {
    let (result, late) = match transport {
        Transport::Usb(usb) => {
            (crate::ctap::ceremony::run(&usb, request, events.clone(), &cancel).await, None)
        }
        phone => match run_phone(phone, DesktopRequest::Ceremony(request), events.clone(), &cancel)
            .await
        {
            Ok((DesktopOutcome::Ceremony(outcome), late)) => (Ok(*outcome), late),
            Ok((DesktopOutcome::Raw(_), _)) => (
                Err(CeremonyError::new(
                    CeremonyStage::Done,
                    super::CeremonyErrorKind::Usage,
                    "the desktop answered a built ceremony with a raw reply (a bug)",
                )),
                None,
            ),
            Err(e) => (Err(e), None),
        },
    };
    if let Some(sink) = &events {
        let last = match &result {
            Ok(outcome) => CeremonyEvent::Result(Box::new(outcome.clone())),
            Err(e) => CeremonyEvent::Error(e.clone()),
        };
        sink.emit(&last);
    }
    // The hybrid late-update window (§8.4) runs after the result, never before it, unless the
    // desktop config asked for the old order (then it already ran and `late` is None).
    if let Some(late) = late {
        match late.mode {
            LateUpdateMode::Detached => drop(tokio::spawn(late.task)),
            _ => late.task.await,
        }
    }
    result
}

/// A CTAP request a client built itself (a browser behind the uhid front), sent to a phone
/// byte for byte: the engine adds no client data and checks nothing in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCtapRequest {
    /// makeCredential or getAssertion (anything else is refused before any IO).
    pub command: cablebridge_protocol::ctap2::Command,
    /// The CBOR parameters as the client sent them.
    pub params: Vec<u8>,
}

/// The phone's answer to a [`RawCtapRequest`], verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCtapReply {
    /// CTAP status (a phone's refusal is a reply, not an error).
    pub status: cablebridge_protocol::ctap2::StatusCode,
    /// CBOR body (empty for errors).
    pub body: Vec<u8>,
    /// Per-stage timings of the hybrid session.
    pub timings: super::Timings,
}

/// Runs a hybrid or linked session that carries a client's own request ([`RawCtapRequest`]) to
/// the phone and returns its answer unchanged: the engine hook behind the uhid front (a browser
/// built the request and checks the answer). Same stages, timeouts, cancel and events as
/// [`run`], except that a success emits no `Result` event (the caller reports it; an `Error`
/// event is emitted as usual), and that the phone's late updates (linking info, §8.4) never
/// delay the answer: their read is spawned on the current runtime for the configured window
/// (`DesktopConfig::timeouts.late_updates`) whatever [`crate::desktop::LateUpdateMode`] says.
/// A USB transport is refused: a key is reached directly.
pub async fn run_raw(
    transport: Transport,
    request: RawCtapRequest,
    events: Events,
    cancel: CancellationToken,
) -> Result<RawCtapReply, CeremonyError> {
    let (result, late) = match transport {
        Transport::Usb(_) => (
            Err(CeremonyError::usage(
                CeremonyStage::Setup,
                "a raw CTAP request goes to a phone (hybrid or linked), not to a USB key",
            )),
            None,
        ),
        phone => {
            match run_phone(phone, DesktopRequest::Raw(request), events.clone(), &cancel).await {
                Ok((DesktopOutcome::Raw(reply), late)) => (Ok(reply), late),
                Ok((DesktopOutcome::Ceremony(_), _)) => (
                    Err(CeremonyError::new(
                        CeremonyStage::Done,
                        super::CeremonyErrorKind::Usage,
                        "the desktop answered a raw request with a ceremony outcome (a bug)",
                    )),
                    None,
                ),
                Err(e) => (Err(e), None),
            }
        }
    };
    if let (Some(sink), Err(e)) = (&events, &result) {
        sink.emit(&CeremonyEvent::Error(e.clone()));
    }
    // The client is waiting for the answer: late updates (§8.4, linking info) are never read
    // before it. The desktop hands a raw session's read back as a `Detached` task whatever the
    // config says; it is spawned here so a phone's linking info is still stored.
    if let Some(late) = late {
        drop(tokio::spawn(late.task));
    }
    result
}

async fn run_phone(
    transport: Transport,
    request: DesktopRequest,
    events: Events,
    cancel: &CancellationToken,
) -> Result<(DesktopOutcome, Option<LateUpdates>), CeremonyError> {
    match transport {
        Transport::Hybrid(h) => {
            crate::desktop::run_qr(&h.config, h.adverts, request, events, cancel).await
        }
        Transport::Linked(l) => {
            crate::desktop::run_linked(&l.config, &l.link, l.adverts, request, events, cancel).await
        }
        Transport::Usb(_) => Err(CeremonyError::usage(
            CeremonyStage::Setup,
            "a USB key is not a phone (internal routing error)",
        )),
    }
}

/// Races `work` against `cancel`: cancelled ⇒ [`CeremonyError::cancelled`] at `stage`.
pub(crate) async fn cancellable<T>(
    cancel: &CancellationToken,
    stage: CeremonyStage,
    work: impl std::future::Future<Output = Result<T, CeremonyError>>,
) -> Result<T, CeremonyError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(CeremonyError::cancelled(stage)),
        r = work => r,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ceremony::CeremonyErrorKind;

    #[tokio::test]
    async fn cancellable_names_the_stage() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r: Result<(), _> = cancellable(
            &cancel,
            CeremonyStage::Advert,
            std::future::pending::<Result<(), CeremonyError>>(),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!((e.stage, e.kind), (CeremonyStage::Advert, CeremonyErrorKind::Cancelled));
    }
}
