//! [`PhoneBridge`]: the [`CtapBackend`] behind the uhid front. A client's makeCredential or
//! getAssertion becomes one hybrid desktop session through the engine
//! ([`crate::ceremony::run_raw`]): the linked phone when one is configured, otherwise a QR code
//! (delivered through the session's events, i.e. `ceremony.event` notifications). The client's
//! request bytes go to the phone unchanged and the phone's answer comes back unchanged (the
//! client built the client data and checks the result, as with any USB key).
//!
//! Answered locally, never reaching a phone (decision and evidence: ARCHITECTURE.md, "uhid
//! probes"):
//! * getInfo — the static [`bridge_get_info`].
//! * makeCredential with `up: false` — `CTAP2_ERR_INVALID_OPTION` (CTAP 2.1 §6.1.2 step 6).
//! * getAssertion with `up: false` (the silent pre-flight probes of python-fido2, Firefox's
//!   authenticator-rs and Chrome's batching) — no phone can be asked without its user, so the
//!   answer is local and carries **no signature**: an allowList names a credential → "present"
//!   with a [`probe_marker`] (authData with UP and UV clear, empty signature) naming the first id
//!   this host saw a phone return for the RP (the credential memory), else the first id listed;
//!   no allowList → `CTAP2_ERR_NO_CREDENTIALS`. The client then sends the real request (UP
//!   required), which goes to the phone, whose user decides.
//! * `pinUvAuthParam` in a request — `CTAP2_ERR_PIN_AUTH_INVALID` (we advertise no clientPin);
//!   selection — OK at once (the only "device"); getNextAssertion — `CTAP2_ERR_NOT_ALLOWED`
//!   (phones return one assertion); anything else — `CTAP1_ERR_INVALID_COMMAND`.
//!
//! Policy seam: [`ResultReview`] sees every phone answer before the client does (the Entra
//! passkey-profile check is the follow-up; [`PassThrough`] is the default).

use std::sync::Arc;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    AuthDataFlags, AuthenticatorData, Command, CoseAlgorithm, CredentialDescriptor,
    CredentialParameters, GetAssertionRequest, GetAssertionResponse, GetInfo,
    MakeCredentialRequest, MakeCredentialResponse, StatusCode,
};
use tokio_util::sync::CancellationToken;

use super::creds::CredentialMemory;
use crate::ceremony::{
    run_raw, CeremonyError, CeremonyErrorKind, Events, HybridTransport, LinkedTransport,
    RawCtapReply, RawCtapRequest, Transport,
};
use crate::desktop::DesktopConfig;
use crate::phone::backend::{BackendCtx, CtapBackend, CtapReply};
use crate::phone::PhoneError;

/// The getInfo the front answers with (static; documented in README "Phone as a local security
/// key"): versions FIDO_2_0 and FIDO_2_1; extension credProtect; options `rk`, `up`, `uv` true,
/// `plat` false and no `clientPin` (phones verify their user themselves); an all-zero AAGUID
/// (the real model is the phone's, in its attestation); algorithms ES256 and RS256; room for 64
/// ids of up to 1023 bytes in a list so clients do not split lists into probe batches;
/// transport `usb` (what the client sees).
pub fn bridge_get_info() -> GetInfo {
    GetInfo {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        extensions: vec!["credProtect".into()],
        aaguid: [0; 16],
        options: vec![
            ("rk".into(), true),
            ("up".into(), true),
            ("uv".into(), true),
            ("plat".into(), false),
        ],
        max_msg_size: Some(7609),
        max_credential_count_in_list: Some(64),
        max_credential_id_length: Some(1023),
        transports: vec!["usb".into()],
        algorithms: vec![
            CredentialParameters::public_key(CoseAlgorithm::Es256),
            CredentialParameters::public_key(CoseAlgorithm::Rs256),
        ],
        ..GetInfo::default()
    }
}

/// The local answer to a silent (`up: false`) getAssertion naming `credential`: authData for
/// `rp_id` with UP and UV clear and counter 0, and an EMPTY signature — it proves nothing and
/// signs nothing; it only tells the client to go on to the real request.
pub fn probe_marker(rp_id: &str, credential: &[u8]) -> Vec<u8> {
    let auth = AuthenticatorData::new(rp_id, AuthDataFlags(0), 0);
    let response = GetAssertionResponse {
        credential: Some(CredentialDescriptor::public_key(credential.to_vec())),
        auth_data: auth.to_bytes().unwrap_or_default(),
        signature: Vec::new(),
        user: None,
        number_of_credentials: None,
        user_selected: None,
        large_blob_key: None,
        unsigned_extension_outputs: None,
    };
    response.to_cbor().to_vec()
}

/// The policy seam: every phone answer passes through `review` before the client sees it. An
/// Entra passkey-profile check (AAGUID allow/block list, attestation) plugs in here; returning
/// a CTAP error status refuses the result.
pub trait ResultReview: Send + Sync {
    /// The reply the client gets for `request`.
    fn review(&self, request: &RawCtapRequest, reply: RawCtapReply) -> RawCtapReply;
}

/// The default [`ResultReview`]: the phone's answer, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl ResultReview for PassThrough {
    fn review(&self, _: &RawCtapRequest, reply: RawCtapReply) -> RawCtapReply {
        reply
    }
}

/// Called once with a bridge session's outcome.
pub type FinishSession = Box<dyn FnOnce(Result<&RawCtapReply, &CeremonyError>) + Send>;

/// One hybrid session the bridge starts, as the service sees it.
pub struct BridgeSession {
    /// The ceremony's events (QR, progress, error).
    pub events: Events,
    /// Fires when someone else cancels it (a control client's `ceremony.cancel`, shutdown).
    pub cancel: CancellationToken,
    /// Called once with the outcome (the service publishes the final event).
    pub finish: FinishSession,
}

impl std::fmt::Debug for BridgeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeSession").finish_non_exhaustive()
    }
}

/// Where the bridge's sessions are announced (the daemon's session registry); `None` from
/// `start` refuses the request (`CTAP2_ERR_NOT_ALLOWED`, e.g. too many sessions).
pub trait SessionHooks: Send + Sync {
    /// A session for `ceremony` (`register`/`authenticate`) at `rp_id` starts.
    fn start(&self, ceremony: &'static str, rp_id: &str) -> Option<BridgeSession>;
}

/// No registry: sessions run with no events (tests, embedders).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl SessionHooks for NoHooks {
    fn start(&self, _: &'static str, _: &str) -> Option<BridgeSession> {
        Some(BridgeSession {
            events: None,
            cancel: CancellationToken::new(),
            finish: Box::new(|_| {}),
        })
    }
}

/// What the bridge needs.
#[derive(Clone)]
pub struct BridgeConfig {
    /// Tunnel, adverts, timeouts (the daemon's `[hybrid]`).
    pub desktop: DesktopConfig,
    /// A linked phone's name or id: asked without a QR code.
    pub linked: Option<String>,
    /// Remembered credential ids (excludeList/allowList probes).
    pub memory: Option<CredentialMemory>,
    /// Session announcements.
    pub hooks: Arc<dyn SessionHooks>,
    /// The policy seam.
    pub review: Arc<dyn ResultReview>,
}

impl std::fmt::Debug for BridgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeConfig")
            .field("desktop", &self.desktop)
            .field("linked", &self.linked)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

/// The backend: see the module docs.
#[derive(Debug)]
pub struct PhoneBridge {
    config: BridgeConfig,
    info: Vec<u8>,
}

impl PhoneBridge {
    /// A bridge with `config`.
    pub fn new(config: BridgeConfig) -> Self {
        PhoneBridge { config, info: bridge_get_info().to_cbor().to_vec() }
    }

    fn transport(&self) -> Transport {
        let d = self.config.desktop.clone();
        match &self.config.linked {
            Some(link) => Transport::Linked(LinkedTransport::new(link.clone(), d)),
            None => Transport::Hybrid(HybridTransport::new(d)),
        }
    }

    async fn ask_phone(
        &self,
        ceremony: &'static str,
        rp_id: &str,
        raw: RawCtapRequest,
        ctx: &BackendCtx<'_>,
    ) -> CtapReply {
        let Some(session) = self.config.hooks.start(ceremony, rp_id) else {
            return CtapReply::status(StatusCode::NotAllowed);
        };
        // Either side cancels: the client (CTAPHID_CANCEL) or the daemon (ceremony.cancel).
        let cancel = CancellationToken::new();
        let result = {
            let run = run_raw(self.transport(), raw.clone(), session.events, cancel.clone());
            tokio::pin!(run);
            tokio::select! {
                r = &mut run => r,
                () = ctx.cancel.cancelled() => { cancel.cancel(); run.await }
                () = session.cancel.cancelled() => { cancel.cancel(); run.await }
            }
        };
        (session.finish)(result.as_ref());
        match result {
            Ok(reply) => {
                let reply = self.config.review.review(&raw, reply);
                if raw.command == Command::MakeCredential && reply.status.is_ok() {
                    self.remember(rp_id, &reply.body);
                }
                CtapReply { status: reply.status, body: reply.body }
            }
            Err(e) => CtapReply::status(status_for(&e)),
        }
    }

    fn remember(&self, rp_id: &str, body: &[u8]) {
        let Some(memory) = &self.config.memory else { return };
        let id = Value::decode(body)
            .ok()
            .and_then(|v| MakeCredentialResponse::from_cbor(&v).ok())
            .and_then(|r| AuthenticatorData::parse(&r.auth_data).ok())
            .and_then(|a| a.attested_credential.map(|c| c.credential_id));
        let Some(id) = id else { return };
        let phone = self.config.linked.as_deref().unwrap_or("qr");
        if let Err(e) = memory.remember(rp_id, &id, phone, crate::desktop::unix_now()) {
            tracing::warn!("uhid front: could not remember the new credential id: {e}");
        }
    }

    async fn make_credential(&self, params: &[u8], ctx: &BackendCtx<'_>) -> CtapReply {
        let req = match Value::decode(params)
            .map_err(|e| e.to_string())
            .and_then(|v| MakeCredentialRequest::from_cbor(&v).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("uhid front: malformed makeCredential: {e}");
                return CtapReply::status(StatusCode::InvalidCbor);
            }
        };
        if req.options.up == Some(false) {
            return CtapReply::status(StatusCode::InvalidOption);
        }
        if req.pin_uv_auth_param.is_some() {
            return CtapReply::status(StatusCode::PinAuthInvalid);
        }
        let raw = RawCtapRequest { command: Command::MakeCredential, params: params.to_vec() };
        self.ask_phone("register", &req.rp.id, raw, ctx).await
    }

    async fn get_assertion(&self, params: &[u8], ctx: &BackendCtx<'_>) -> CtapReply {
        let req = match Value::decode(params)
            .map_err(|e| e.to_string())
            .and_then(|v| GetAssertionRequest::from_cbor(&v).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("uhid front: malformed getAssertion: {e}");
                return CtapReply::status(StatusCode::InvalidCbor);
            }
        };
        if req.pin_uv_auth_param.is_some() {
            return CtapReply::status(StatusCode::PinAuthInvalid);
        }
        if req.options.up == Some(false) {
            return self.silent_probe(&req);
        }
        let raw = RawCtapRequest { command: Command::GetAssertion, params: params.to_vec() };
        self.ask_phone("authenticate", &req.rp_id, raw, ctx).await
    }

    fn silent_probe(&self, req: &GetAssertionRequest) -> CtapReply {
        let Some(first) = req.allow_list.first() else {
            return CtapReply::status(StatusCode::NoCredentials);
        };
        let ids = req.allow_list.iter().map(|d| d.id.as_slice());
        let known = match &self.config.memory {
            Some(m) => m.first_known(&req.rp_id, ids).unwrap_or_else(|e| {
                tracing::warn!("uhid front: credential memory unreadable: {e}");
                None
            }),
            None => None,
        };
        let id = known.unwrap_or_else(|| first.id.clone());
        CtapReply { status: StatusCode::Ok, body: probe_marker(&req.rp_id, &id) }
    }
}

/// The CTAP status a client gets when the hybrid session itself failed (a phone's own CTAP
/// error comes back as the phone's status, verbatim).
pub fn status_for(e: &CeremonyError) -> StatusCode {
    match e.kind {
        CeremonyErrorKind::Cancelled => StatusCode::KeepaliveCancel,
        CeremonyErrorKind::Timeout => StatusCode::UserActionTimeout,
        CeremonyErrorKind::Authenticator => StatusCode::OperationDenied,
        // The phone, tunnel or this machine failed: nothing the user did.
        _ => StatusCode::OtherError,
    }
}

impl CtapBackend for PhoneBridge {
    async fn get_info(&mut self, _: &BackendCtx<'_>) -> Result<Vec<u8>, PhoneError> {
        Ok(self.info.clone())
    }

    async fn handle(
        &mut self,
        request: &[u8],
        ctx: &BackendCtx<'_>,
    ) -> Result<CtapReply, PhoneError> {
        let Some((&command, params)) = request.split_first() else {
            return Ok(CtapReply::status(StatusCode::InvalidLength));
        };
        Ok(match Command::from_u8(command) {
            Command::GetInfo => CtapReply { status: StatusCode::Ok, body: self.info.clone() },
            Command::MakeCredential => self.make_credential(params, ctx).await,
            Command::GetAssertion => self.get_assertion(params, ctx).await,
            Command::Selection => CtapReply::status(StatusCode::Ok),
            Command::GetNextAssertion => CtapReply::status(StatusCode::NotAllowed),
            _ => CtapReply::status(StatusCode::InvalidCommand),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn get_info_is_static_and_phone_like() {
        let info =
            GetInfo::from_cbor(&Value::decode(&bridge_get_info().to_cbor().to_vec()).unwrap())
                .unwrap();
        assert!(info.supports_version("FIDO_2_1"));
        assert_eq!(info.option("clientPin"), None);
        assert_eq!(info.option("rk"), Some(true));
        assert_eq!(info.option("uv"), Some(true));
        assert!(info.pin_uv_auth_protocols.is_empty());
        assert_eq!(info.aaguid, [0; 16]);
    }

    #[test]
    fn the_probe_marker_signs_nothing() {
        let v = Value::decode(&probe_marker("example.com", b"cred")).unwrap();
        let r = GetAssertionResponse::from_cbor(&v).unwrap();
        assert!(r.signature.is_empty());
        let a = AuthenticatorData::parse(&r.auth_data).unwrap();
        assert_eq!(a.flags.0, 0, "UP and UV clear");
        assert_eq!(r.credential.unwrap().id, b"cred");
    }
}
