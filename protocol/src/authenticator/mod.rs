//! A software CTAP2 authenticator as a pure state machine (CTAP 2.1 §6).
//!
//! It backs the virtual USB key (behind the CTAPHID device side, with clientPIN and credential
//! management) and the virtual phone (answering makeCredential/getAssertion over the hybrid
//! tunnel). Randomness, time and user presence come in through [`Ctx`]; persistent state lives
//! in a [`CredentialStore`] that adopts each new state whole or not at all.
//!
//! Commands: getInfo, makeCredential (ES256; `none`/`packed` attestation; resident and
//! non-resident credentials), getAssertion + getNextAssertion, clientPIN (protocols 2 and 1;
//! PIN subcommands on PIN-capable configs, the built-in-UV token subcommands on configs with
//! [`Config::builtin_uv_token`]), reset, selection, credentialManagement.
//!
//! Wire formats are not re-implemented here: requests are split with [`crate::ctap2::framing`]
//! and decoded with the typed `ctap2` request types (a decoding failure answers
//! [`crate::ctap2::Ctap2Error::to_status`]); responses are the `ctap2` response types and
//! [`crate::ctap2::AuthenticatorData`]; the PIN/UV auth protocols are [`crate::ctap2::pin`].
//! This module owns only policy and state.
//!
//! authenticatorConfig (toggleAlwaysUv, setMinPINLength, enableEnterpriseAttestation; see
//! `auth_config`), enterprise attestation and the `minPinLength` extension on makeCredential,
//! the persistent read-only credential-management token (`pcmr`), bio enrollment on a simulated
//! fingerprint sensor ([`Config::bio`]; see `bio`).
//!
//! Extensions (hmac-secret, hmac-secret-mc, phone-style prf, credProtect, credBlob,
//! largeBlobKey) are `extensions`; the large-blob store is `large_blobs`.
//!
//! Not here: CTAPHID framing, keepalive timing, U2F/CTAP1 (that is `ctap1`).
//!
//! # Run loop
//!
//! ```text
//! loop {
//!     request = next CTAP2 message (command byte ‖ CBOR) from CTAPHID_CBOR or the tunnel
//!     match auth.handle(&request, &mut Ctx { rng, now, presence }) {
//!         Step::Done(resp)   => send resp.as_bytes()
//!         Step::Pending(op)  => {
//!             // CTAPHID: send KEEPALIVE(UPNEEDED) every 100 ms until the user answers,
//!             // the --user-presence-delay-ms timer fires, or CTAPHID_CANCEL arrives.
//!             outcome = Approved | Denied | Cancelled (on CANCEL) | TimedOut
//!             resp = auth.complete(op, outcome, &mut Ctx { .. })?
//!             send resp.as_bytes()
//!         }
//!     }
//! }
//! ```
//!
//! A new `handle` while an operation is pending supersedes it (the old [`PendingOp`] then
//! completes with [`AuthenticatorError::StalePending`]). [`Authenticator::power_cycle`] models
//! unplugging: PIN tokens, key agreement and the PIN_AUTH_BLOCKED latch are reset.

mod attestation;
mod auth_config;
mod bio;
mod ceremony;
mod client_pin;
mod config;
mod cred_mgmt;
mod error;
mod extensions;
mod get_assertion;
mod info;
mod keys;
mod large_blobs;
mod make_credential;
mod store;

pub(crate) use attestation::self_signed_certificate;
pub use attestation::{AttestationMode, TestCa, OID_FIDO_GEN_CE_AAGUID};
pub use auth_config::{Enrollment, PersistentToken, Settings, MAX_MIN_PIN_LENGTH_RPIDS};
pub use bio::{MAX_ENROLLMENTS, SAMPLES_PER_ENROLLMENT};
pub use config::{
    Config, PresenceDecision, PresenceKind, PresenceOutcome, PresencePolicy, PresenceRequest,
    UserPresence, CABLEBRIDGE_AAGUID,
};
pub use error::{AuthenticatorError, StoreError};
pub use extensions::MAX_CRED_BLOB_LENGTH;
pub use keys::{rp_id_hash, CredentialKey, MasterKey};
pub use store::{
    CredRandom, CredentialExtensions, CredentialStore, LargeBlobKey, MemoryStore, PersistentState,
    PinHash, ResidentCredential,
};

use crate::cbor::Value;
use crate::ctap2::framing::{decode_request, encode_response};
use crate::ctap2::{Command, StatusCode};
use ceremony::{auth_data_flags, UvInputs};
use rand_core::CryptoRngCore;
use std::time::Instant;

/// Per-call environment: randomness, the current time and the presence hook.
pub struct Ctx<'a> {
    /// Cryptographic RNG.
    pub rng: &'a mut dyn CryptoRngCore,
    /// Now (token lifetime, getNextAssertion timeout, reset window).
    pub now: Instant,
    /// Decides user presence.
    pub presence: &'a mut dyn UserPresence,
}

impl core::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ctx").field("now", &self.now).finish_non_exhaustive()
    }
}

/// A complete CTAP2 response: `status ‖ CBOR` (CBOR empty on error and for empty successes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response(Vec<u8>);

impl Response {
    fn ok(body: Option<Value>) -> Self {
        Response(encode_response(StatusCode::Ok, body.as_ref()))
    }
    fn error(status: StatusCode) -> Self {
        Response(encode_response(status, None))
    }
    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The status byte.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u8(self.0.first().copied().unwrap_or(0x7f))
    }
    /// The CBOR body (empty for errors).
    pub fn body(&self) -> &[u8] {
        self.0.get(1..).unwrap_or_default()
    }
}

/// What `handle` produced.
#[derive(Debug)]
pub enum Step {
    /// The response is ready.
    Done(Response),
    /// Waiting for user presence; call [`Authenticator::complete`] with this ticket.
    Pending(PendingOp),
}

/// A ticket for an operation waiting for user presence. Consumed by `complete`.
#[derive(Debug)]
pub struct PendingOp {
    id: u64,
    request: PresenceRequest,
}

impl PendingOp {
    /// What the user is asked to confirm.
    pub fn request(&self) -> &PresenceRequest {
        &self.request
    }
}

/// Work to finish once presence is approved.
enum Continuation {
    MakeCredential(make_credential::Plan),
    GetAssertion(get_assertion::Plan),
    UvToken(client_pin::UvTokenPlan),
    Reset,
    Selection,
}

/// What a command handler wants next.
enum Flow {
    Reply(Option<Value>),
    Presence(PresenceRequest, Continuation),
}

type CmdResult = Result<Flow, StatusCode>;

/// State that does not survive a power cycle.
struct Volatile {
    powered_up_at: Instant,
    pin: client_pin::PinRuntime,
    next_assertion: Option<get_assertion::NextState>,
    enumeration: cred_mgmt::Cursor,
    enrolling: Option<bio::Enrolling>,
    large_blob_write: Option<large_blobs::PendingWrite>,
}

/// The software authenticator.
pub struct Authenticator<S: CredentialStore> {
    config: Config,
    store: S,
    test_ca: Option<TestCa>,
    volatile: Volatile,
    pending: Option<(u64, Continuation)>,
    next_pending_id: u64,
}

impl<S: CredentialStore> core::fmt::Debug for Authenticator<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .field("pending", &self.pending.as_ref().map(|p| p.0))
            .finish_non_exhaustive()
    }
}

impl<S: CredentialStore> Authenticator<S> {
    /// Powers up an authenticator over `store`. With [`AttestationMode::PackedTestCa`] a fresh
    /// test CA and attestation certificate are generated here (falling back to self attestation
    /// if certificate building fails, which it does not for valid keys).
    pub fn new(config: Config, store: S, rng: &mut impl CryptoRngCore, now: Instant) -> Self {
        let test_ca = match config.attestation {
            AttestationMode::PackedTestCa => TestCa::generate(config.aaguid, rng).ok(),
            _ => None,
        };
        Authenticator {
            config,
            store,
            test_ca,
            volatile: Volatile::power_up(rng, now),
            pending: None,
            next_pending_id: 1,
        }
    }

    /// Models unplug/replug: tokens, key agreement, PIN_AUTH_BLOCKED and cursors reset.
    pub fn power_cycle(&mut self, rng: &mut impl CryptoRngCore, now: Instant) {
        self.volatile = Volatile::power_up(rng, now);
        self.pending = None;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The store (e.g. to export its state).
    pub fn store(&self) -> &S {
        &self.store
    }
    /// The test CA certificate (DER), when attestation is [`AttestationMode::PackedTestCa`].
    pub fn attestation_ca_der(&self) -> Option<&[u8]> {
        self.test_ca.as_ref().map(TestCa::ca_der)
    }

    /// Handles one CTAP2 request (`command byte ‖ CBOR`). Never panics on any input.
    pub fn handle(&mut self, request: &[u8], ctx: &mut Ctx<'_>) -> Step {
        self.pending = None;
        let Some(&cmd) = request.first() else {
            return Step::Done(Response::error(StatusCode::InvalidLength));
        };
        // Volatile cursors are dropped by the command byte alone, even if its CBOR is broken.
        let cmd = Command::from_u8(cmd);
        if cmd != Command::GetNextAssertion {
            self.volatile.next_assertion = None;
        }
        if !matches!(cmd, Command::CredentialManagement | Command::CredentialManagementPreview) {
            self.volatile.enumeration = cred_mgmt::Cursor::None;
        }
        let flow = match parse_params(request) {
            Ok(params) => self.dispatch(cmd, &params, ctx),
            Err(status) => Err(status),
        };
        match flow {
            Ok(Flow::Reply(v)) => Step::Done(Response::ok(v)),
            Err(status) => Step::Done(Response::error(status)),
            Ok(Flow::Presence(request, cont)) => match ctx.presence.request(&request) {
                PresenceDecision::Now(outcome) => Step::Done(self.finish(cont, outcome, ctx)),
                PresenceDecision::Defer => {
                    let id = self.next_pending_id;
                    self.next_pending_id = self.next_pending_id.wrapping_add(1);
                    self.pending = Some((id, cont));
                    Step::Pending(PendingOp { id, request })
                }
            },
        }
    }

    /// Finishes a deferred operation with the user's answer.
    pub fn complete(
        &mut self,
        op: PendingOp,
        outcome: PresenceOutcome,
        ctx: &mut Ctx<'_>,
    ) -> Result<Response, AuthenticatorError> {
        match self.pending.take() {
            Some((id, cont)) if id == op.id => Ok(self.finish(cont, outcome, ctx)),
            other => {
                self.pending = other;
                Err(AuthenticatorError::StalePending)
            }
        }
    }

    fn finish(
        &mut self,
        cont: Continuation,
        outcome: PresenceOutcome,
        ctx: &mut Ctx<'_>,
    ) -> Response {
        let denied = match outcome {
            PresenceOutcome::Approved => None,
            PresenceOutcome::Denied => Some(StatusCode::OperationDenied),
            PresenceOutcome::Cancelled => Some(StatusCode::KeepaliveCancel),
            PresenceOutcome::TimedOut => Some(StatusCode::UserActionTimeout),
        };
        if let Some(status) = denied {
            return Response::error(status);
        }
        let result = match cont {
            Continuation::MakeCredential(plan) => self.finish_make_credential(plan, ctx),
            Continuation::GetAssertion(plan) => self.finish_get_assertion(plan, ctx),
            Continuation::UvToken(plan) => self
                .issue_token(&plan.shared, plan.permissions, plan.rp_id, ctx)
                .map(|r| Some(r.to_cbor())),
            Continuation::Reset => self.finish_reset(ctx),
            Continuation::Selection => Ok(None),
        };
        match result {
            Ok(v) => Response::ok(v),
            Err(status) => Response::error(status),
        }
    }

    fn dispatch(&mut self, cmd: Command, params: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        match cmd {
            Command::GetInfo => Ok(Flow::Reply(Some(self.get_info().to_cbor()))),
            Command::MakeCredential => self.make_credential(params, ctx),
            Command::GetAssertion => self.get_assertion(params, ctx),
            Command::GetNextAssertion => self.get_next_assertion(ctx),
            Command::ClientPin if self.config.pin_capable || self.config.uv_token() => {
                self.client_pin(params, ctx)
            }
            Command::CredentialManagement | Command::CredentialManagementPreview
                if self.config.pin_capable =>
            {
                self.credential_management(params, ctx)
            }
            Command::BioEnrollment | Command::BioEnrollmentPreview if self.config.bio => {
                self.bio_enrollment(params, ctx)
            }
            Command::Config if self.config.configurable() => self.authenticator_config(params, ctx),
            Command::LargeBlobs if self.config.pin_capable => self.large_blobs(params, ctx),
            Command::Reset => self.reset(ctx),
            Command::Selection => Ok(Flow::Presence(
                PresenceRequest {
                    kind: PresenceKind::Selection,
                    rp_id: None,
                    user_verification: false,
                },
                Continuation::Selection,
            )),
            _ => Err(StatusCode::InvalidCommand),
        }
    }

    /// Commits `next` to the store; a refused commit leaves everything as it was.
    fn commit(&mut self, next: PersistentState) -> Result<(), StatusCode> {
        self.store.commit(next).map_err(|_| StatusCode::OtherError)
    }

    fn reset(&mut self, ctx: &mut Ctx<'_>) -> CmdResult {
        if let Some(window) = self.config.reset_window {
            if ctx.now.saturating_duration_since(self.volatile.powered_up_at) > window {
                return Err(StatusCode::NotAllowed);
            }
        }
        Ok(Flow::Presence(
            PresenceRequest { kind: PresenceKind::Reset, rp_id: None, user_verification: false },
            Continuation::Reset,
        ))
    }

    fn finish_reset(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<Value>, StatusCode> {
        let mut rng = &mut *ctx.rng;
        self.commit(PersistentState::new(&mut rng))?;
        let powered_up_at = self.volatile.powered_up_at;
        self.volatile = Volatile::power_up(&mut rng, powered_up_at);
        Ok(None)
    }
}

impl Volatile {
    fn power_up(rng: &mut impl CryptoRngCore, now: Instant) -> Self {
        Volatile {
            powered_up_at: now,
            pin: client_pin::PinRuntime::new(rng),
            next_assertion: None,
            enumeration: cred_mgmt::Cursor::None,
            enrolling: None,
            large_blob_write: None,
        }
    }
}

/// The CBOR parameters after the command byte ([`decode_request`]): absent → an empty map (so
/// a missing required member reads as MISSING_PARAMETER); present → must be a map.
fn parse_params(request: &[u8]) -> Result<Value, StatusCode> {
    match decode_request(request).map_err(|e| e.to_status())? {
        (_, None) => Ok(Value::Map(Vec::new())),
        (_, Some(v)) if v.as_map().is_some() => Ok(v),
        (_, Some(_)) => Err(StatusCode::CborUnexpectedType),
    }
}

/// A ctap2 request-decoding error as the status an authenticator answers (CTAP 2.1 §8.2).
fn request_status(e: crate::ctap2::Ctap2Error) -> StatusCode {
    e.to_status()
}

/// Like [`request_status`], except that `field` being out of range answers `status` (a value no
/// decoder type can hold is a policy refusal there, not a malformed request).
fn decoded<T>(
    r: Result<T, crate::ctap2::Ctap2Error>,
    field: &str,
    status: StatusCode,
) -> Result<T, StatusCode> {
    r.map_err(|e| match e {
        crate::ctap2::Ctap2Error::InvalidField { field: f, problem: "out of range" }
            if f == field =>
        {
            status
        }
        e => e.to_status(),
    })
}
