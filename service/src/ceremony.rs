//! `ceremony.register` / `ceremony.authenticate`: request parameters (the CLI's flags in
//! snake_case) → a [`CeremonySpec`], and [`run`], the ONE place the service calls the engine:
//! `cablebridged::ceremony::run(transport, request, events, cancel)`, the same entry point the
//! CLI's in-process path uses.
//!
//! Parameters (docs/api.md has the table): `transport` (`hybrid` | `usb` | `linked`), `rp_id`,
//! `origin`, `challenge`, `uv`, `user_timeout`; register: `user_name`, `user_id`,
//! `display_name`, `resident_key`, `min_pin_length`, `enterprise_attestation`; authenticate: `allow_credentials`, `public_key`; hybrid:
//! `advert_source`, `tunnel_url`, `allow_insecure_tunnel`, `no_linking`, `linked`,
//! `advert_timeout`, `connect_timeout`, `handshake_timeout`; usb: `device`, `pin`; evidence:
//! `policy`, `profile`, `mds` (loaded by the engine's [`Judge::load`], as the CLI's flags are),
//! authenticate: `credential_aaguid`; WebAuthn extensions ([`extensions`]): `prf_first`,
//! `prf_second`, register: `cred_protect`, `cred_blob`, `large_blob`; authenticate:
//! `get_cred_blob`, `large_blob_read`, `large_blob_write` (the blob, base64url). `detach` is
//! read by the session layer.

use cablebridge_protocol::cbor::Value as Cbor;
use cablebridge_protocol::ctap2::extensions::CredProtect;
use cablebridge_protocol::ctap2::pin::Pin;
use cablebridge_protocol::ctap2::CoseKey;
use cablebridged::ceremony::{
    from_b64url, AuthenticateOptions, CeremonyError, CeremonyOutcome, CeremonyRequest, Events,
    ExtensionInputs, HybridTransport, LargeBlobInput, LinkedTransport, PrfInputs, RegisterOptions,
    Requirement, Transport, UsbTransport,
};
use cablebridged::ctap::OpenOptions;
use cablebridged::desktop::DesktopConfig;
use cablebridged::evidence::Aaguid;
use cablebridged::hid::DeviceAddress;
use cablebridged::policy::{Judge, JudgeLoadError};
use cablebridged::store::LinkStore;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::{check_advert_source, check_tunnel_url, Config};
use crate::rpc::{Params, RpcError};

/// Which ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ceremony.register`.
    Register,
    /// `ceremony.authenticate`.
    Authenticate,
}

impl Kind {
    /// `register` / `authenticate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Authenticate => "authenticate",
        }
    }
}

/// How to reach the authenticator: the engine's [`Transport`], fully resolved.
#[derive(Debug)]
pub struct Route(pub Transport);

impl Route {
    /// `hybrid`, `linked` or `usb` (for logs and `status`).
    pub fn transport(&self) -> &'static str {
        match &self.0 {
            Transport::Linked(_) => "linked",
            Transport::Usb(_) => "usb",
            _ => "hybrid",
        }
    }
}

/// A ceremony ready to run.
#[derive(Debug)]
pub struct CeremonySpec {
    /// Register or authenticate.
    pub kind: Kind,
    /// The WebAuthn request.
    pub request: CeremonyRequest,
    /// Transport and its settings.
    pub route: Route,
    /// `public_key` of `authenticate`: verify the signature with it.
    pub public_key: Option<CoseKey>,
    /// Keep running when the requesting connection closes.
    pub detach: bool,
    /// The AAGUID table and policy the result is judged with (`policy`, `profile`, `mds`).
    pub judge: Judge,
    /// `credential_aaguid` of `authenticate`: the credential's model (assertions carry none).
    pub credential_aaguid: Option<Aaguid>,
}

/// `policy`, `profile`, `mds` → the engine's [`Judge`]; a bad file is -32602 naming its field.
fn judge(params: &mut Params) -> Result<Judge, RpcError> {
    let policy = params.opt_string("policy")?;
    let profile = params.opt_string("profile")?;
    let mds = params.opt_string("mds")?;
    if profile.is_some() && policy.is_none() {
        return Err(RpcError::param("profile", "requires policy"));
    }
    Judge::load(policy.as_deref().map(Path::new), profile.as_deref(), mds.as_deref().map(Path::new))
        .map_err(|e| {
            let field = match &e {
                JudgeLoadError::Policy(cablebridged::policy::PolicyError::UnknownProfile {
                    ..
                })
                | JudgeLoadError::Policy(cablebridged::policy::PolicyError::AmbiguousProfile {
                    ..
                }) => "profile",
                JudgeLoadError::Policy(_) => "policy",
                _ => "mds",
            };
            RpcError::param(field, e)
        })
}

fn requirement(p: &mut Params, field: &str) -> Result<Option<Requirement>, RpcError> {
    match p.opt_string(field)?.as_deref() {
        None => Ok(None),
        Some("required") => Ok(Some(Requirement::Required)),
        Some("preferred") => Ok(Some(Requirement::Preferred)),
        Some("discouraged") => Ok(Some(Requirement::Discouraged)),
        Some(other) => Err(RpcError::param(
            field,
            format!("{other:?} is not required, preferred or discouraged"),
        )),
    }
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, RpcError> {
    from_b64url(s).ok_or_else(|| RpcError::param(field, "not valid base64url"))
}

/// The WebAuthn extension params (the CLI's `--prf-*`, `--cred-*`, `--large-blob*` flags).
fn extensions(params: &mut Params, register: bool) -> Result<ExtensionInputs, RpcError> {
    let mut e = ExtensionInputs::default();
    let first = params.opt_string("prf_first")?;
    let second = params.opt_string("prf_second")?;
    e.prf = match (first, second) {
        (Some(f), s) => Some(PrfInputs {
            first: b64("prf_first", &f)?,
            second: s.map(|s| b64("prf_second", &s)).transpose()?,
        }),
        (None, Some(_)) => return Err(RpcError::param("prf_second", "needs prf_first")),
        (None, None) => None,
    };
    if register {
        e.cred_protect = match params.opt_u64("cred_protect")? {
            Some(n) => Some(
                CredProtect::from_u64(n)
                    .ok_or_else(|| RpcError::param("cred_protect", "not 1, 2 or 3"))?,
            ),
            None => None,
        };
        e.cred_blob = params.opt_string("cred_blob")?.map(|b| b64("cred_blob", &b)).transpose()?;
        if params.opt_bool("large_blob")?.unwrap_or(false) {
            e.large_blob = Some(LargeBlobInput::Support);
        }
    } else {
        e.get_cred_blob = params.opt_bool("get_cred_blob")?.unwrap_or(false);
        let read = params.opt_bool("large_blob_read")?.unwrap_or(false);
        let write = params.opt_string("large_blob_write")?;
        e.large_blob = match (read, write) {
            (true, Some(_)) => {
                return Err(RpcError::param("large_blob_write", "excludes large_blob_read"))
            }
            (_, Some(w)) => Some(LargeBlobInput::Write(b64("large_blob_write", &w)?)),
            (true, None) => Some(LargeBlobInput::Read),
            (false, None) => None,
        };
    }
    Ok(e)
}

/// Reads a ceremony request's params against the daemon's configuration.
pub fn parse(kind: Kind, params: &mut Params, config: &Config) -> Result<CeremonySpec, RpcError> {
    let transport = params.opt_string("transport")?.unwrap_or_else(|| "hybrid".to_owned());
    let rp_id = params.string("rp_id")?;
    let origin = params.opt_string("origin")?;
    let challenge = params.opt_string("challenge")?.map(|c| b64("challenge", &c)).transpose()?;
    let uv = requirement(params, "uv")?.unwrap_or(Requirement::Preferred);
    let user_timeout = params.opt_duration("user_timeout")?;
    let detach = params.opt_bool("detach")?.unwrap_or(false);
    let judge = judge(params)?;
    let mut credential_aaguid = None;

    let mut public_key = None;
    let request = match kind {
        Kind::Register => {
            let user_name = params.string("user_name")?;
            let mut o = RegisterOptions::new(&rp_id, &user_name);
            if let Some(id) = params.opt_string("user_id")? {
                o.user.id = b64("user_id", &id)?;
            }
            if let Some(d) = params.opt_string("display_name")? {
                o.user.display_name = d;
            }
            o.resident_key = requirement(params, "resident_key")?.unwrap_or(Requirement::Preferred);
            o.min_pin_length = params.opt_bool("min_pin_length")?.unwrap_or(false);
            o.enterprise_attestation = params.opt_u64("enterprise_attestation")?;
            o.origin = origin;
            o.uv = uv;
            if let Some(c) = challenge {
                o.challenge = c;
            }
            o.extensions = Box::new(extensions(params, true)?);
            o.validate().map_err(|e| RpcError::param(setup_field(&e), e.message))?;
            CeremonyRequest::Register(o)
        }
        Kind::Authenticate => {
            let mut o = AuthenticateOptions::new(&rp_id);
            o.allow_credentials = params
                .strings("allow_credentials")?
                .iter()
                .enumerate()
                .map(|(i, c)| b64(&format!("allow_credentials[{i}]"), c))
                .collect::<Result<_, _>>()?;
            if let Some(k) = params.opt_string("public_key")? {
                let bytes = b64("public_key", &k)?;
                let key = Cbor::decode(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|v| CoseKey::from_cbor(&v).map_err(|e| e.to_string()))
                    .map_err(|e| RpcError::param("public_key", format!("not a COSE key: {e}")))?;
                public_key = Some(key);
            }
            credential_aaguid = params
                .opt_string("credential_aaguid")?
                .map(|a| a.parse::<Aaguid>().map_err(|e| RpcError::param("credential_aaguid", e)))
                .transpose()?;
            o.origin = origin;
            o.uv = uv;
            if let Some(c) = challenge {
                o.challenge = c;
            }
            o.extensions = Box::new(extensions(params, false)?);
            o.validate().map_err(|e| RpcError::param(setup_field(&e), e.message))?;
            CeremonyRequest::Authenticate(o)
        }
    };

    let route = match transport.as_str() {
        "hybrid" | "linked" => {
            let h = &config.hybrid;
            let spec =
                params.opt_string("advert_source")?.unwrap_or_else(|| h.advert_source.clone());
            let source =
                check_advert_source(&spec).map_err(|m| RpcError::param("advert_source", m))?;
            let mut d = DesktopConfig::new(source);
            d.tunnel_url = match params.opt_string("tunnel_url")? {
                Some(u) => {
                    check_tunnel_url(&u).map_err(|m| RpcError::param("tunnel_url", m))?;
                    Some(u)
                }
                None => h.tunnel_url.clone(),
            };
            d.allow_insecure_tunnel =
                params.opt_bool("allow_insecure_tunnel")?.unwrap_or(h.allow_insecure_tunnel);
            let no_linking = params.opt_bool("no_linking")?.unwrap_or(!h.linking);
            let linked = params.opt_string("linked")?;
            if transport == "linked" && linked.is_none() {
                return Err(RpcError::param(
                    "linked",
                    "transport linked needs the linked phone's name or id",
                ));
            }
            if !no_linking || linked.is_some() {
                d.link_store = Some(LinkStore::in_dir(&config.state_dir));
            }
            d.timeouts.advert = params.opt_duration("advert_timeout")?.unwrap_or(h.advert_timeout);
            d.timeouts.connect =
                params.opt_duration("connect_timeout")?.unwrap_or(h.connect_timeout);
            d.timeouts.handshake =
                params.opt_duration("handshake_timeout")?.unwrap_or(h.handshake_timeout);
            d.timeouts.user = user_timeout.unwrap_or(h.user_timeout);
            d.read_late_updates_like_chrome(); // §8.4: 3 min after the result, detached
            d.aaguids = Arc::clone(&judge.table);
            match linked {
                Some(link) => Route(Transport::Linked(LinkedTransport::new(link, d))),
                None => Route(Transport::Hybrid(HybridTransport::new(d))),
            }
        }
        "usb" => {
            let devices = params
                .strings("device")?
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    d.parse::<DeviceAddress>()
                        .map_err(|e| RpcError::param(&format!("device[{i}]"), e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The PIN travels in the request like `--pin-stdin`'s line; it goes straight into the
            // zeroizing `Pin` type and is never logged.
            let pin = params
                .opt_string("pin")?
                .map(|p| Pin::new(&p).map_err(|e| RpcError::param("pin", e)))
                .transpose()?;
            Route(Transport::Usb(UsbTransport {
                devices,
                timeout: user_timeout.unwrap_or(config.usb_timeout),
                pin,
                open: OpenOptions::default(),
                aaguids: Arc::clone(&judge.table),
            }))
        }
        other => {
            return Err(RpcError::param(
                "transport",
                format!("{other:?} is not hybrid, usb or linked"),
            ))
        }
    };
    Ok(CeremonySpec { kind, request, route, public_key, detach, judge, credential_aaguid })
}

/// The parameter an options check complains about (its messages name the CLI flag).
fn setup_field(e: &CeremonyError) -> &'static str {
    let m = &e.message;
    if m.contains("rp-id") {
        "rp_id"
    } else if m.contains("challenge") {
        "challenge"
    } else if m.contains("user id") {
        "user_id"
    } else if m.contains("user name") {
        "user_name"
    } else {
        "params"
    }
}

/// Runs one ceremony on the engine until it ends or `cancel` fires. This adapter is the only
/// call into the engine's ceremony code; `events` receives the engine's one event stream.
pub async fn run(
    route: Route,
    request: CeremonyRequest,
    events: Events,
    cancel: CancellationToken,
) -> Result<CeremonyOutcome, CeremonyError> {
    cablebridged::ceremony::run(route.0, request, events, cancel).await
}

/// The final `result` object for an outcome, with the CLI's `verification` (the engine's
/// `CeremonyOutcome::verification`, checked against `public_key` for an assertion) and the
/// judge's `attestation_chain` / `policy` fields (as the CLI adds them).
pub fn result_json(
    outcome: &CeremonyOutcome,
    public_key: Option<&CoseKey>,
    judge: &Judge,
    credential_aaguid: Option<Aaguid>,
) -> Value {
    let (result, extra) = match outcome {
        CeremonyOutcome::Registered(reg) => (reg.to_json(), judge.registration_fields(reg)),
        CeremonyOutcome::Authenticated(auth) => {
            (auth.to_json(), judge.authentication_fields(auth, credential_aaguid))
        }
    };
    let mut object = crate::events::result_object(&result, outcome.verification(public_key));
    if let Value::Object(fields) = &mut object {
        for (k, v) in extra {
            fields.insert(k.to_owned(), v);
        }
    }
    object
}
