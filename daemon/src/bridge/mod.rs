//! The bridge: a USB security key served to a desktop as if it were a phone over hybrid.
//!
//! It is the hybrid **phone role** ([`crate::phone::Phone`], the same session code as the
//! virtual phone) with a [`KeyBackend`] answering CTAP requests: every request from the desktop
//! is forwarded as raw `command ‖ CBOR` bytes over CTAPHID to the key, and the key's raw
//! `status ‖ CBOR` goes back over the tunnel. Nothing is decoded and re-encoded on the way, so
//! the key's AAGUID, attestation statement and signatures reach the relying party untouched —
//! the credential is hardware-backed, which is the point.
//!
//! What the desktop sees and may do ([`policy`], PROTOCOL-hybrid.md §8.3, §11.2 item 10):
//! * getInfo is the key's own minus `pinUvAuthProtocols` and the PIN/UV-token options
//!   (`clientPin`, `pinUvAuthToken`, `credMgmt`, `bioEnroll`, `authnrCfg`, `largeBlobs`, ...),
//!   with `"hybrid"` added to the transports. PIN/UV auth is never run over hybrid: phones
//!   verify users themselves and Chrome/Safari never send `pinUvAuthParam` to a hybrid
//!   authenticator, so a desktop offered `clientPin` would either ignore it or try a protocol
//!   nobody else speaks.
//! * Only makeCredential, getAssertion, getNextAssertion and selection are forwarded; requests
//!   carrying `pinUvAuthParam`, getAssertion with `up: false` (a silent probe for credential
//!   ids) and every other command are answered with a CTAP error status and the reason is
//!   logged as a `refused` progress event.
//! * Every forwarded request is announced first (`forwarding`, with the relying party it names)
//!   so the operator knows what a touch will approve; `key_waiting` names it again.
//! * A key with a PIN that requires UV for makeCredential is still asked: it answers
//!   `PUAT_REQUIRED` itself, the desktop sees that status, and the operator gets a `warning`
//!   event saying the PIN cannot be entered over hybrid.
//! * While the key waits for a touch (keepalive UPNEEDED) the desktop simply waits; the bridge
//!   emits one `key_waiting` event ("touch the key") per request. Each request may take up to
//!   [`BridgeConfig::request_timeout`] (120 s by default, like libwebauthn's hybrid timeout);
//!   an untouched key answers `USER_ACTION_TIMEOUT`. Ctrl-C (the phone's shutdown token) and a
//!   desktop that leaves both send CTAPHID_CANCEL so the key stops blinking.
//! * Linking is offered only when asked (`PhoneConfig::offer_linking`, built with
//!   [`bridge_with_state`]): the bridge then has a phone identity (a [`PhoneState`]: root
//!   secret and one contact per linked desktop, in memory or in a state file) and, served with
//!   `Phone::serve_links`, answers that desktop's linked (state-assisted) requests with the same
//!   key and the same policy, no QR code — in the daemon for as long as the bridge session runs
//!   (`bridge.start` with `kind: "usb"`, `offer_linking`, `serve_linked`). `Phone::forget_links`
//!   revokes the links on the tunnel server (`bridge.stop` with `revoke_links`; the CLI's
//!   `bridge --forget-links`). [`bridge`] never offers linking: a one-shot bridge with no
//!   identity.
//! * WebAuthn `prf`: a key with `hmac-secret` is announced with `prf` instead (the desktop
//!   cannot run hmac-secret's key agreement over hybrid), and the desktop's `prf` requests are
//!   translated to hmac-secret and back ([`prf`]).
//!
//! The QR comes as a string or from a screenshot ([`qr_image`]).
//!
//! What it is not: BLE advertising (adverts go to the phone's advert sinks), or a way to use
//! the key's PIN remotely.

pub mod policy;
pub mod prf;
pub mod qr_image;

use crate::ceremony::{CeremonyEvent, Events};
use crate::ctap::{Call, CtapError, CtapHidDevice, DeviceProgress, OpenOptions};
use crate::hid::{DeviceAddress, HidDevice};
use crate::phone::backend::{BackendCtx, CtapBackend, CtapReply};
use crate::phone::{Phone, PhoneConfig, PhoneError, PhoneEvent, PhoneState};
use cablebridge_protocol::ctap2::{self, GetInfo, StatusCode};
use cablebridge_protocol::ctaphid::{Capabilities, Command as HidCommand};
use cablebridge_protocol::Stage;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bridge: the phone role with a USB key behind it.
pub type Bridge = Phone<KeyBackend>;

/// Bridge-specific knobs.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// How to open the key.
    pub open: OpenOptions,
    /// How long one forwarded request may take (the person has to walk to the key).
    pub request_timeout: Duration,
    /// How long getInfo may take when the key is opened.
    pub info_timeout: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            open: OpenOptions::default(),
            request_timeout: Duration::from_secs(120),
            info_timeout: Duration::from_secs(5),
        }
    }
}

/// Answers the desktop's CTAP requests with a USB (or UDP-HID) security key.
#[derive(Debug)]
pub struct KeyBackend {
    dev: CtapHidDevice<HidDevice>,
    key_info: GetInfo,
    announced: Vec<u8>,
    request_timeout: Duration,
}

impl KeyBackend {
    /// Opens the key at `address`, allocates a CTAPHID channel and reads its getInfo.
    /// `cancel` aborts the wait (Ctrl-C).
    pub async fn open(
        address: &DeviceAddress,
        config: &BridgeConfig,
        cancel: &CancellationToken,
    ) -> Result<Self, CtapError> {
        let transport = HidDevice::open(address, &config.open.hidraw).await?;
        let mut dev =
            CtapHidDevice::open(transport, &mut rand::rngs::OsRng, config.open.driver).await?;
        if !dev.info().capabilities.contains(Capabilities::CBOR) {
            return Err(CtapError::Unsupported {
                device: dev.path().to_owned(),
                what: "this is a U2F-only key (no CTAP2): it cannot serve hybrid".to_owned(),
            });
        }
        let mut ignore = |_: DeviceProgress| {};
        let mut call =
            Call { deadline: Instant::now() + config.info_timeout, cancel, progress: &mut ignore };
        let command = ctap2::Command::GetInfo;
        let answer = dev.transact(HidCommand::Cbor, &[command.to_u8()], &mut call).await?;
        let decode_err =
            |source| CtapError::Decode { device: address.to_string(), command, source };
        let key_info = match ctap2::framing::decode_response(&answer) {
            Ok((StatusCode::Ok, Some(body))) => GetInfo::from_cbor(&body).map_err(decode_err)?,
            Ok((StatusCode::Ok, None)) => {
                return Err(decode_err(ctap2::Ctap2Error::MissingField("response body")))
            }
            Ok((status, _)) => {
                return Err(CtapError::Status {
                    device: address.to_string(),
                    command,
                    status,
                    retries: None,
                })
            }
            Err(e) => return Err(decode_err(e)),
        };
        let announced = policy::hybrid_get_info(&key_info).to_cbor().to_vec();
        Ok(KeyBackend { dev, key_info, announced, request_timeout: config.request_timeout })
    }

    /// The key's own getInfo.
    pub fn key_info(&self) -> &GetInfo {
        &self.key_info
    }

    /// The getInfo the desktop is told (see [`policy::hybrid_get_info`]).
    pub fn announced_info(&self) -> GetInfo {
        policy::hybrid_get_info(&self.key_info)
    }

    /// Device path or address.
    pub fn path(&self) -> &str {
        self.dev.path()
    }

    /// The `key_ready` progress event describing this key.
    pub fn ready_event(&self) -> PhoneEvent {
        PhoneEvent::KeyReady {
            device: self.path().to_owned(),
            aaguid: hex::encode(self.key_info.aaguid),
            removed: policy::removed_options(&self.key_info),
            pin_needed: policy::needs_pin_for_make_credential(&self.key_info),
        }
    }

    async fn forward(
        &mut self,
        request: &[u8],
        checked: &policy::Checked,
        ctx: &BackendCtx<'_>,
    ) -> Result<CtapReply, PhoneError> {
        let command = checked.command;
        let emit = ctx.emit;
        let mut told = false;
        let what = match &checked.rp_id {
            Some(rp) => format!("touch the key to approve {} for {rp}", command.name()),
            None => "touch the key".to_owned(),
        };
        let mut progress = |p: DeviceProgress| {
            if p == DeviceProgress::TouchNeeded && !told {
                told = true;
                emit(PhoneEvent::KeyWaiting { what: what.clone() });
            }
        };
        let timeout = self.request_timeout;
        let mut call = Call {
            deadline: Instant::now() + timeout,
            cancel: ctx.cancel,
            progress: &mut progress,
        };
        match self.dev.transact(HidCommand::Cbor, request, &mut call).await {
            Ok(answer) => {
                let Some((&status, body)) = answer.split_first() else {
                    emit(PhoneEvent::Warning {
                        message: format!("the key answered {} with nothing", command.name()),
                    });
                    return Ok(CtapReply::status(StatusCode::OtherError));
                };
                // Unknown (vendor) codes become `StatusCode::Other` and go back byte for byte.
                let status = StatusCode::from_u8(status);
                if pin_status(status) {
                    emit(PhoneEvent::Warning {
                        message: format!(
                            "the key refused {} with {}: this key requires a PIN, which cannot \
                             be entered over hybrid",
                            command.name(),
                            status.name()
                        ),
                    });
                }
                Ok(CtapReply { status, body: body.to_vec() })
            }
            Err(CtapError::Timeout { .. }) => {
                emit(PhoneEvent::Warning {
                    message: format!(
                        "the key was not touched within {} s; answering USER_ACTION_TIMEOUT",
                        timeout.as_secs()
                    ),
                });
                Ok(CtapReply::status(StatusCode::UserActionTimeout))
            }
            Err(CtapError::Cancelled { .. }) => {
                Err(PhoneError::Cancelled { stage: Stage::Authenticator })
            }
            Err(e) => Err(PhoneError::Key(e)),
        }
    }
}

/// Statuses by which a key says "I want a PIN/UV auth token".
fn pin_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::PuatRequired
            | StatusCode::PinNotSet
            | StatusCode::PinAuthInvalid
            | StatusCode::UnauthorizedPermission
    )
}

impl CtapBackend for KeyBackend {
    async fn get_info(&mut self, _ctx: &BackendCtx<'_>) -> Result<Vec<u8>, PhoneError> {
        Ok(self.announced.clone())
    }

    async fn handle(
        &mut self,
        request: &[u8],
        ctx: &BackendCtx<'_>,
    ) -> Result<CtapReply, PhoneError> {
        let checked = match policy::check_request(request) {
            Ok(checked) => checked,
            Err(refusal) => {
                let byte = request.first().copied().unwrap_or_default();
                tracing::warn!(command = byte, reason = %refusal.reason, "request refused");
                (ctx.emit)(PhoneEvent::Refused {
                    command: ctap2::Command::from_u8(byte),
                    status: refusal.status,
                    reason: refusal.reason,
                    rp_id: refusal.rp_id,
                });
                return Ok(CtapReply::status(refusal.status));
            }
        };
        let command = checked.command;
        (ctx.emit)(PhoneEvent::Forwarding {
            command: command.name().to_owned(),
            rp_id: checked.rp_id.clone(),
        });
        if command == ctap2::Command::MakeCredential
            && policy::needs_pin_for_make_credential(&self.key_info)
        {
            (ctx.emit)(PhoneEvent::Warning {
                message: "this key requires a PIN, which cannot be entered over hybrid; \
                          forwarding anyway, the key will most likely refuse"
                    .to_owned(),
            });
        }
        match prf::find(request) {
            Ok(Some(found)) if prf::can_serve(&self.key_info) => {
                self.forward_prf(found, &checked, ctx).await
            }
            _ => self.forward(request, &checked, ctx).await,
        }
    }
}

impl KeyBackend {
    /// A request with `prf`: getKeyAgreement with the key, the request translated to
    /// hmac-secret, and the key's answer translated back ([`prf`]). A translation failure is
    /// answered with a CTAP error status and a warning, like any refused request.
    async fn forward_prf(
        &mut self,
        found: prf::Found,
        checked: &policy::Checked,
        ctx: &BackendCtx<'_>,
    ) -> Result<CtapReply, PhoneError> {
        let refuse = |what: String| {
            (ctx.emit)(PhoneEvent::Warning { message: format!("prf → hmac-secret: {what}") });
            Ok(CtapReply::status(StatusCode::InvalidParameter))
        };
        let Some(protocol) = prf::protocol(&self.key_info) else {
            return refuse("the key has no PIN/UV protocol".to_owned());
        };
        let mut ignore = |_: DeviceProgress| {};
        let mut call = Call {
            deadline: Instant::now() + self.request_timeout,
            cancel: ctx.cancel,
            progress: &mut ignore,
        };
        let answer = match self
            .dev
            .transact(HidCommand::Cbor, &prf::key_agreement(protocol), &mut call)
            .await
        {
            Ok(a) => a,
            Err(CtapError::Cancelled { .. }) => {
                return Err(PhoneError::Cancelled { stage: Stage::Authenticator })
            }
            Err(e) => return Err(PhoneError::Key(e)),
        };
        let translated = match found.translate(&self.key_info, &answer, &mut rand::rngs::OsRng) {
            Ok(t) => t,
            Err(e) => return refuse(e.to_string()),
        };
        let reply = self.forward(&translated.request, checked, ctx).await?;
        if !reply.status.is_ok() {
            return Ok(reply);
        }
        match translated.answer(&reply.body) {
            Ok(body) => Ok(CtapReply { status: StatusCode::Ok, body }),
            Err(e) => {
                (ctx.emit)(PhoneEvent::Warning {
                    message: format!("the key's hmac-secret answer: {e}"),
                });
                Ok(CtapReply::status(StatusCode::OtherError))
            }
        }
    }
}

/// Builds the bridge: the phone role over `backend`. Linking is never offered (the bridge has
/// no persistent identity), and the key's `key_ready` event is emitted at once.
pub fn bridge(mut config: PhoneConfig, backend: KeyBackend, events: Events) -> Bridge {
    config.offer_linking = false;
    let state = PhoneState::new(&mut rand::rngs::OsRng);
    bridge_with_state(config, backend, state, None, events)
}

/// Builds a bridge with a phone identity: `state` (fresh, or loaded from `state_path`, where it
/// is saved after each session) holds its root secret and linked desktops, and
/// `config.offer_linking` is honoured. The key's `key_ready` event is emitted at once.
pub fn bridge_with_state(
    config: PhoneConfig,
    backend: KeyBackend,
    state: PhoneState,
    state_path: Option<std::path::PathBuf>,
    events: Events,
) -> Bridge {
    if let Some(sink) = &events {
        sink.emit(&CeremonyEvent::Phone { elapsed_ms: 0, event: backend.ready_event() });
    }
    Phone::with_backend(config, state, state_path, backend, events)
}
