//! `bridge.start` / `bridge.stop`: the phone role as a daemon session — a USB (or UDP-HID)
//! security key served as a phone (`kind: "usb"`, the engine's `bridge::KeyBackend`, what
//! `cablebridge bridge` runs) or the virtual phone (`kind: "virtual"`, the engine's
//! `VirtualPhone`, what `cablebridge phone` runs).
//!
//! Parameters are the CLI flags in snake_case (docs/api.md has the table). A session answers
//! the QR code in `qr_url` (if any); a virtual phone with `serve_linked` then keeps serving the
//! desktops it linked with (`/cable/listen` on the tunnel server) until `bridge.stop`, a
//! disconnect of its (non-detached) owner, or daemon shutdown. Its events are the CLI's
//! `--json` phone lines (`CeremonyEvent::Phone`), published as `ceremony.event` notifications
//! like every session's; the last one is `result` (what the CLI reports) or `error`.
//!
//! Both kinds can link: with `offer_linking` the QR session sends linking info, and with
//! `serve_linked` the session then serves that desktop's linked requests (no QR) until stopped —
//! for a USB key, through the same key and bridge policy. `bridge.stop` with `revoke_links`
//! ([`BridgeControls`]) revokes every link on the tunnel server as the session ends.
//!
//! A phone state file (`state`) is a *name*: the daemon keeps it as
//! `<state_dir>/phones/<name>.json` (0600), so a client cannot make the daemon write elsewhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cablebridge_protocol::authenticator::AttestationMode;
use cablebridge_protocol::error::Classify;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::bridge::{self, BridgeConfig, KeyBackend};
use cablebridged::ceremony::{CeremonyEvent, Events};
use cablebridged::evidence::Aaguid;
use cablebridged::hid::DeviceAddress;
use cablebridged::phone::backend::CtapBackend;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{
    FailAt, Phone, PhoneConfig, PhoneError, PhoneState, SessionSummary, VirtualPhone,
};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::rpc::{Params, RpcError};
use crate::sessions::{Ending, Registry, Session};

/// How long a stopped phone may take to cancel its key and close its tunnel.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Which phone.
#[derive(Debug)]
pub enum BridgeKind {
    /// A security key behind the phone role.
    Usb {
        /// The key.
        device: DeviceAddress,
        /// `touch_timeout_secs`.
        touch_timeout: Duration,
        /// The bridge's phone identity (root secret, linked desktops) under
        /// `<state_dir>/phones/`, if any; else in memory for the session's lifetime.
        state: Option<PathBuf>,
        /// Keep serving linked desktops after the QR session.
        serve_linked: bool,
        /// Stop serving after this many linked desktops.
        max_sessions: Option<u32>,
    },
    /// The software phone.
    Virtual {
        /// Phone state file under `<state_dir>/phones/`, if any.
        state: Option<PathBuf>,
        /// Keep serving linked desktops after the QR session.
        serve_linked: bool,
        /// Stop serving after this many linked desktops.
        max_sessions: Option<u32>,
    },
}

/// A parsed `bridge.start`.
#[derive(Debug)]
pub struct BridgeSpec {
    /// USB key or virtual phone.
    pub kind: BridgeKind,
    /// The desktop's QR code to answer.
    pub qr: Option<QrPayload>,
    /// Phone-side settings (tunnel, advert sink, timeouts, virtual authenticator).
    pub config: PhoneConfig,
    /// Keep running when the requesting connection closes.
    pub detach: bool,
}

impl BridgeSpec {
    /// `usb` or `virtual`.
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            BridgeKind::Usb { .. } => "usb",
            BridgeKind::Virtual { .. } => "virtual",
        }
    }
}

/// Reads `bridge.start`'s params.
pub fn parse(p: &mut Params, config: &Config) -> Result<BridgeSpec, RpcError> {
    let kind = p.string("kind")?;
    let qr = match p.opt_string("qr_url")? {
        Some(url) => Some(
            // The error names the rule, never the digits (they carry the QR secret).
            QrPayload::from_url(url.trim()).map_err(|e| RpcError::param("qr_url", e))?,
        ),
        None => None,
    };
    let domain_id = match p.opt_u64("domain_id")? {
        Some(d) => u16::try_from(d).map_err(|_| RpcError::param("domain_id", "too large"))?,
        None => 0,
    };
    let base = match p.opt_string("tunnel_url")? {
        Some(u) => {
            crate::config::check_tunnel_url(&u).map_err(|m| RpcError::param("tunnel_url", m))?;
            u
        }
        None => PhoneConfig::default_tunnel_base(domain_id)
            .map_err(|e| RpcError::param("domain_id", e))?,
    };
    let mut c = PhoneConfig::new(base);
    c.domain_id = domain_id;
    let sink = p.opt_string("advert_sink")?.unwrap_or_else(|| "bluez".to_owned());
    c.sink = sink.parse::<AdvertSinkSpec>().map_err(|e| RpcError::param("advert_sink", e))?;
    if c.sink == AdvertSinkSpec::Stdout {
        return Err(RpcError::param(
            "advert_sink",
            "stdout is not an advert sink for the daemon (use bluez, fifo:PATH or unix:PATH)",
        ));
    }
    let timeout = Duration::from_secs(p.opt_u64("timeout_secs")?.unwrap_or(120));
    c.desktop_timeout = timeout;
    c.idle_timeout = timeout;
    c.connect.allow_insecure = p.opt_bool("allow_insecure_tunnel")?.unwrap_or(false);
    let detach = p.opt_bool("detach")?.unwrap_or(false);

    let kind = match kind.as_str() {
        "usb" => {
            let device = p
                .string("device")?
                .parse::<DeviceAddress>()
                .map_err(|e| RpcError::param("device", e))?;
            let touch_timeout =
                Duration::from_secs(p.opt_u64("touch_timeout_secs")?.unwrap_or(120));
            c.name = p.opt_string("name")?.unwrap_or_else(|| "cablebridge bridge".to_owned());
            c.offer_linking = p.opt_bool("offer_linking")?.unwrap_or(false);
            let (state, serve_linked, max_sessions) = linking_params(p, config, &qr, &c)?;
            BridgeKind::Usb { device, touch_timeout, state, serve_linked, max_sessions }
        }
        "virtual" => {
            if let Some(a) = p.opt_string("aaguid")? {
                c.aaguid = a.parse::<Aaguid>().map_err(|e| RpcError::param("aaguid", e))?.0;
            }
            c.attestation = match p.opt_string("attestation")?.as_deref() {
                None | Some("none") => AttestationMode::None,
                Some("packed") => AttestationMode::PackedTestCa,
                Some(other) => {
                    return Err(RpcError::param(
                        "attestation",
                        format!("{other:?} is not none or packed"),
                    ))
                }
            };
            c.backup_eligible = p.opt_bool("backup_eligible")?.unwrap_or(false);
            c.presence_delay =
                Duration::from_millis(p.opt_u64("user_presence_delay_ms")?.unwrap_or(0));
            c.offer_linking = p.opt_bool("offer_linking")?.unwrap_or(false);
            if let Some(name) = p.opt_string("name")? {
                c.name = name;
            }
            c.faults.fail_at = p
                .opt_string("fail_at")?
                .map(|f| f.parse::<FailAt>().map_err(|e| RpcError::param("fail_at", e)))
                .transpose()?;
            c.faults.drop_after = p
                .opt_u64("drop_after")?
                .map(|n| u32::try_from(n).map_err(|_| RpcError::param("drop_after", "too large")))
                .transpose()?;
            c.faults.never_connect = p.opt_bool("never_connect")?.unwrap_or(false);
            let (state, serve_linked, max_sessions) = linking_params(p, config, &qr, &c)?;
            BridgeKind::Virtual { state, serve_linked, max_sessions }
        }
        other => return Err(RpcError::param("kind", format!("{other:?} is not usb or virtual"))),
    };
    Ok(BridgeSpec { kind, qr, config: c, detach })
}

/// `state`, `serve_linked`, `max_sessions` (both kinds): what a phone that links needs.
fn linking_params(
    p: &mut Params,
    config: &Config,
    qr: &Option<QrPayload>,
    c: &PhoneConfig,
) -> Result<(Option<PathBuf>, bool, Option<u32>), RpcError> {
    let state = p.opt_string("state")?.map(|n| state_path(&n, config)).transpose()?;
    let serve_linked = p.opt_bool("serve_linked")?.unwrap_or(false);
    let max_sessions = p
        .opt_u64("max_sessions")?
        .map(|n| u32::try_from(n).map_err(|_| RpcError::param("max_sessions", "too large")))
        .transpose()?;
    if qr.is_none() && !serve_linked {
        return Err(RpcError::param("qr_url", "give qr_url, serve_linked or both"));
    }
    if qr.is_none() && state.is_none() {
        return Err(RpcError::param(
            "state",
            "serving linked desktops without a QR session needs the phone's state",
        ));
    }
    if serve_linked && qr.is_some() && state.is_none() && !c.offer_linking {
        return Err(RpcError::param(
            "offer_linking",
            "serve_linked without state needs offer_linking (nothing would be linked)",
        ));
    }
    Ok((state, serve_linked, max_sessions))
}

/// Bridges asked to revoke their links as they stop (`bridge.stop` with `revoke_links`).
#[derive(Debug, Default)]
pub struct BridgeControls {
    revoke_on_stop: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl BridgeControls {
    /// Marks `session` to revoke every link it issued when it stops.
    pub fn request_revoke(&self, session: u64) {
        if let Ok(mut set) = self.revoke_on_stop.lock() {
            set.insert(session);
        }
    }

    /// Whether `session` was marked (and unmarks it).
    pub fn take_revoke(&self, session: u64) -> bool {
        self.revoke_on_stop.lock().map(|mut set| set.remove(&session)).unwrap_or(false)
    }
}

/// `<state_dir>/phones/<name>.json`; the name is one plain path component.
fn state_path(name: &str, config: &Config) -> Result<PathBuf, RpcError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        && !name.starts_with('.');
    if !ok {
        return Err(RpcError::param(
            "state",
            "a name of letters, digits, '-', '_' or '.' (kept under the daemon's state directory)",
        ));
    }
    let dir = config.state_dir.join("phones");
    std::fs::create_dir_all(&dir)
        .map_err(|e| RpcError::param("state", format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir.join(format!("{name}.json")))
}

/// The session body: runs the phone until it is done or the session is cancelled.
pub async fn run(
    registry: Arc<Registry>,
    session: Arc<Session>,
    spec: BridgeSpec,
    controls: Arc<BridgeControls>,
) -> Ending {
    let id = session.id;
    let revoke = move || controls.take_revoke(id);
    let s = Arc::clone(&session);
    let r = Arc::clone(&registry);
    let sink = move |e: &CeremonyEvent| {
        if let CeremonyEvent::Phone { event, .. } = e {
            s.set_stage(event.name());
            tracing::debug!(session = s.id, transport = s.transport, step = event.name(), "bridge");
        }
        if let Some(object) = crate::events::event_line(e) {
            r.publish(&s, &object);
        }
    };
    let events: Events = Some(Arc::new(sink));
    let cancel = session.cancel.clone();
    let BridgeSpec { kind, qr, config, .. } = spec;
    let outcome = match kind {
        BridgeKind::Usb { device, touch_timeout, state, serve_linked, max_sessions } => {
            let bc = BridgeConfig { request_timeout: touch_timeout, ..BridgeConfig::default() };
            let opened = tokio::select! {
                r = KeyBackend::open(&device, &bc, &cancel) => r,
                () = cancel.cancelled() => return cancelled("key_open"),
            };
            match opened {
                Err(e) => Err(failure(&e)),
                Ok(backend) => {
                    let mut extra = Map::new();
                    extra.insert("device".into(), json!(backend.path()));
                    extra.insert("aaguid".into(), json!(hex::encode(backend.key_info().aaguid)));
                    let loaded = match &state {
                        Some(path) => PhoneState::load_or_new(path, &mut rand::rngs::OsRng)
                            .map_err(|e| failure(&PhoneError::from(e))),
                        None => Ok(PhoneState::new(&mut rand::rngs::OsRng)),
                    };
                    match loaded {
                        Err(f) => Err(f),
                        Ok(phone_state) => {
                            let mut phone = bridge::bridge_with_state(
                                config,
                                backend,
                                phone_state,
                                state,
                                events,
                            );
                            let linked = (serve_linked, max_sessions);
                            serve(&mut phone, qr.as_ref(), linked, &revoke, &cancel).await.map(
                                |mut v| {
                                    v.append(&mut extra);
                                    v
                                },
                            )
                        }
                    }
                }
            }
        }
        BridgeKind::Virtual { state, serve_linked, max_sessions } => {
            let phone = match state {
                Some(path) => VirtualPhone::with_state_file(config, path, events),
                None => Ok(VirtualPhone::new(
                    config,
                    PhoneState::new(&mut rand::rngs::OsRng),
                    None,
                    events,
                )),
            };
            match phone {
                Err(e) => Err(failure(&e)),
                Ok(mut phone) => {
                    let linked = (serve_linked, max_sessions);
                    serve(&mut phone, qr.as_ref(), linked, &revoke, &cancel).await
                }
            }
        }
    };
    match outcome {
        Ok(fields) => {
            let mut out = Map::new();
            out.insert("event".into(), json!("result"));
            out.extend(fields);
            tracing::info!(session = session.id, transport = session.transport, "bridge finished");
            Ending::Succeeded(Value::Object(out))
        }
        Err(Failure::Cancelled(stage)) => cancelled(stage),
        Err(Failure::Failed(object)) => {
            tracing::info!(
                session = session.id,
                transport = session.transport,
                stage = object["stage"].as_str().unwrap_or("?"),
                error = object["message"].as_str().unwrap_or("?"),
                "bridge failed"
            );
            Ending::Failed(object)
        }
    }
}

enum Failure {
    Cancelled(&'static str),
    Failed(Value),
}

fn cancelled(stage: &'static str) -> Ending {
    let message = "bridge stopped: cancelled";
    Ending::Cancelled(json!({"event": "error", "stage": stage, "message": message,
                             "error": message, "exit_code": 1}))
}

fn failure<E: Classify + std::fmt::Display>(e: &E) -> Failure {
    let message = e.to_string();
    Failure::Failed(json!({
        "event": "error",
        "stage": e.stage().as_str(),
        "message": message,
        "error": message,
        "exit_code": cablebridged::ceremony::exit_code_for_fault(e.fault()),
    }))
}

/// The QR session (if any), then linked desktops (if asked) until `cancel`; then, if `revoke`
/// says so (`bridge.stop` with `revoke_links`), every link is revoked on the tunnel server.
async fn serve<B: CtapBackend>(
    phone: &mut Phone<B>,
    qr: Option<&QrPayload>,
    (serve_linked, max_sessions): (bool, Option<u32>),
    revoke: &(dyn Fn() -> bool + Send + Sync),
    cancel: &CancellationToken,
) -> Result<Map<String, Value>, Failure> {
    let mut out = Map::new();
    if let Some(qr) = qr {
        let summary = stoppable(phone.shutdown_token(), cancel, phone.run_qr(qr)).await?;
        summary_fields(&summary, &mut out);
        if let Err(e) = phone.save() {
            return Err(failure(&e));
        }
    }
    if serve_linked {
        match stoppable(phone.shutdown_token(), cancel, phone.serve_links(max_sessions)).await {
            Ok(n) => {
                out.insert("linked_sessions".into(), json!(n));
            }
            // Stopping is how a serving phone normally ends: still a result.
            Err(Failure::Cancelled(_)) => {
                out.insert("stopped".into(), json!(true));
            }
            Err(e) => return Err(e),
        }
        if let Err(e) = phone.save() {
            return Err(failure(&e));
        }
    }
    if revoke() {
        // Desktops then get 410 Gone on their contact id and forget the link.
        let done = phone.forget_links().await.map_err(|e| failure(&e))?;
        out.insert("links_revoked".into(), json!(done.revoked));
        out.insert("revocations_unconfirmed".into(), json!(done.unconfirmed));
    }
    Ok(out)
}

/// Runs `work` (a future on the phone whose shutdown token is `shutdown`); `cancel` fires that
/// token (a key gets CTAPHID_CANCEL, the tunnel closes) and waits a short grace for the phone
/// to wind down.
async fn stoppable<T>(
    shutdown: CancellationToken,
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = Result<T, PhoneError>>,
) -> Result<T, Failure> {
    tokio::pin!(work);
    let r = tokio::select! {
        r = &mut work => r,
        () = cancel.cancelled() => {
            shutdown.cancel();
            match tokio::time::timeout(STOP_GRACE, &mut work).await {
                Ok(r) => r,
                Err(_) => return Err(Failure::Cancelled("stopping")),
            }
        }
    };
    r.map_err(|e| match e {
        PhoneError::Cancelled { stage } => Failure::Cancelled(stage.as_str()),
        other => failure(&other),
    })
}

fn summary_fields(s: &SessionSummary, out: &mut Map<String, Value>) {
    if let Some(r) = &s.routing_id {
        out.insert("routing_id".into(), json!(r));
    }
    out.insert("requests".into(), json!(s.requests));
    if let Some(st) = s.last_status {
        out.insert("last_status".into(), json!(st));
    }
    out.insert("linking_sent".into(), json!(s.linking_sent));
    out.insert("frames_sent".into(), json!(s.frames_sent));
    out.insert("fault_injected".into(), json!(s.fault_injected));
}
