//! The uhid front in the daemon (issue 11): `[uhid]` configuration, starting and stopping the
//! virtual FIDO device (`bridge.uhid`), and the glue that makes each phone ceremony it starts a
//! session of the registry (its `qr` and progress events reach `events.subscribe`rs; `status`
//! lists it; `ceremony.cancel` cancels it).
//!
//! `front = "uhid"` creates the device through `/dev/uhid` (`device`, default `/dev/uhid`);
//! `front = "udp:HOST:PORT"` serves the same CTAPHID device over UDP-HID on loopback (CI, labs).
//! Ceremonies use the `[hybrid]` defaults (tunnel, advert source, timeouts) and, when
//! `[uhid] linked` names a linked phone, that phone without a QR code.
//!
//! What it is not: the device logic (`cablebridged::uhid`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cablebridge_protocol::cbor::Value as Cbor;
use cablebridge_protocol::ctap2::{AuthenticatorData, MakeCredentialResponse};
use cablebridged::ceremony::{b64url, CeremonyError, RawCtapReply};
use cablebridged::desktop::DesktopConfig;
use cablebridged::store::LinkStore;
use cablebridged::uhid::backend::{
    BridgeConfig, BridgeSession, PassThrough, PhoneBridge, SessionHooks,
};
use cablebridged::uhid::creds::CredentialMemory;
use cablebridged::uhid::device::{fido_create2, serve, FrontError, UdpPort, UhidFile, UhidPort};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ceremony::Kind;
use crate::config::{check_advert_source, Config};
use crate::rpc::{code, RpcError};
use crate::sessions::Registry;

/// Where the device is presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UhidFront {
    /// Through the kernel (`/dev/uhid` or another path).
    Kernel(PathBuf),
    /// Over UDP-HID on a loopback address.
    Udp(SocketAddr),
}

impl std::fmt::Display for UhidFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UhidFront::Kernel(p) => write!(f, "uhid ({})", p.display()),
            UhidFront::Udp(a) => write!(f, "udp:{a}"),
        }
    }
}

/// `[uhid]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UhidConfig {
    /// Start the device with the daemon.
    pub enabled: bool,
    /// Where.
    pub front: UhidFront,
    /// A linked phone (name or id) to ask instead of showing a QR code.
    pub linked: Option<String>,
}

impl Default for UhidConfig {
    fn default() -> Self {
        UhidConfig {
            enabled: false,
            front: UhidFront::Kernel(PathBuf::from("/dev/uhid")),
            linked: None,
        }
    }
}

impl UhidConfig {
    /// From the file's values; `Err((key, why))`.
    pub fn from_file(
        enabled: Option<bool>,
        front: Option<String>,
        device: Option<PathBuf>,
        linked: Option<String>,
    ) -> Result<Self, (&'static str, String)> {
        let mut c = UhidConfig { enabled: enabled.unwrap_or(false), linked, ..Self::default() };
        if let Some(device) = device {
            c.front = UhidFront::Kernel(device);
        }
        match front.as_deref() {
            None | Some("uhid") => {}
            Some(other) => {
                c.front = UhidFront::Udp(parse_udp(other).map_err(|m| ("front", m))?);
            }
        }
        Ok(c)
    }
}

/// `udp:HOST:PORT` on loopback (the device approves nothing itself, but it starts ceremonies
/// on a phone: only local clients may reach it).
pub fn parse_udp(spec: &str) -> Result<SocketAddr, String> {
    let rest = spec
        .strip_prefix("udp:")
        .ok_or_else(|| format!("{spec:?} is not a front (use \"uhid\" or \"udp:HOST:PORT\")"))?;
    let addr: SocketAddr =
        rest.parse().map_err(|e| format!("{rest:?} is not an IP address and port: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address (the front is for local clients)"));
    }
    Ok(addr)
}

/// The bridge's desktop settings from `[hybrid]`.
fn desktop_config(config: &Config) -> Result<DesktopConfig, RpcError> {
    let h = &config.hybrid;
    let source = check_advert_source(&h.advert_source)
        .map_err(|m| RpcError::new(code::REFUSED, format!("[hybrid] advert_source: {m}")))?;
    let mut d = DesktopConfig::new(source);
    d.tunnel_url = h.tunnel_url.clone();
    d.allow_insecure_tunnel = h.allow_insecure_tunnel;
    if h.linking || config.uhid.linked.is_some() {
        d.link_store = Some(LinkStore::in_dir(&config.state_dir));
    }
    d.timeouts.advert = h.advert_timeout;
    d.timeouts.connect = h.connect_timeout;
    d.timeouts.handshake = h.handshake_timeout;
    d.timeouts.user = h.user_timeout;
    // §8.4: a phone's late linking info is read for 3 min after its answer, in a spawned task
    // (`run_raw` never makes the waiting client wait for it).
    d.read_late_updates_like_chrome();
    Ok(d)
}

/// Registry-backed [`SessionHooks`].
struct RegistryHooks {
    registry: Arc<Registry>,
    transport: &'static str,
}

impl SessionHooks for RegistryHooks {
    fn start(&self, ceremony: &'static str, rp_id: &str) -> Option<BridgeSession> {
        let kind = if ceremony == "register" { Kind::Register } else { Kind::Authenticate };
        let session = match self.registry.start_external(kind, self.transport) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("uhid front: refused a request for {rp_id}: {}", e.message);
                return None;
            }
        };
        let events = session.sink();
        let cancel = session.cancel_token();
        let rp_id = rp_id.to_owned();
        let transport = self.transport;
        Some(BridgeSession {
            events,
            cancel,
            finish: Box::new(move |outcome: Result<&RawCtapReply, &CeremonyError>| {
                let (last, result) = match outcome {
                    Ok(reply) => (result_object(ceremony, transport, &rp_id, reply), Ok(())),
                    Err(e) => (crate::events::error_object(e), Err(e.kind)),
                };
                session.finish(&last, result);
            }),
        })
    }
}

/// The `result` event of a uhid ceremony: the phone's CTAP status and, for a registration,
/// the new credential id and AAGUID (the client checks signatures itself).
fn result_object(
    ceremony: &'static str,
    transport: &'static str,
    rp_id: &str,
    reply: &RawCtapReply,
) -> Value {
    let mut out = json!({
        "event": "result",
        "ceremony": ceremony,
        "transport": transport,
        "front": "uhid",
        "rp_id": rp_id,
        "ctap_status": reply.status.name(),
        "timings_ms": reply.timings.to_json(),
    });
    if ceremony == "register" && reply.status.is_ok() {
        let attested = Cbor::decode(&reply.body)
            .ok()
            .and_then(|v| MakeCredentialResponse::from_cbor(&v).ok())
            .and_then(|r| AuthenticatorData::parse(&r.auth_data).ok())
            .and_then(|a| a.attested_credential);
        if let Some(c) = attested {
            out["credential_id"] = json!(b64url(&c.credential_id));
            out["aaguid"] = json!(cablebridged::evidence::Aaguid(c.aaguid).to_string());
        }
    }
    out
}

struct Running {
    front: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), FrontError>>,
}

/// The front's run-time switch (`bridge.uhid`).
#[derive(Default)]
pub struct UhidControl {
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for UhidControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UhidControl").finish_non_exhaustive()
    }
}

impl UhidControl {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `{"running", "front", ...}`; a front that ended by itself is reported with its error.
    pub fn status(&self) -> Value {
        let mut guard = self.lock();
        match guard.as_ref() {
            Some(r) if !r.task.is_finished() => json!({"running": true, "front": r.front}),
            Some(_) => {
                let front = guard.take().map(|r| r.front);
                json!({"running": false, "front": front, "detail": "the front stopped (see the log)"})
            }
            None => json!({"running": false}),
        }
    }

    /// Starts the device (idempotent: a running front is reported as is).
    pub async fn start(
        &self,
        config: &Config,
        registry: &Arc<Registry>,
        front: Option<UhidFront>,
    ) -> Result<Value, RpcError> {
        if self.status()["running"] == true {
            return Ok(self.status());
        }
        let front = front.unwrap_or_else(|| config.uhid.front.clone());
        let transport = if config.uhid.linked.is_some() { "linked" } else { "hybrid" };
        let bridge_config = BridgeConfig {
            desktop: desktop_config(config)?,
            linked: config.uhid.linked.clone(),
            memory: Some(CredentialMemory::in_dir(&config.state_dir)),
            hooks: Arc::new(RegistryHooks { registry: Arc::clone(registry), transport }),
            review: Arc::new(PassThrough),
        };
        let mut backend = PhoneBridge::new(bridge_config);
        let stop = CancellationToken::new();
        let env = |e: FrontError| RpcError::new(code::ENVIRONMENT, e.to_string());
        let (task, shown) = match &front {
            UhidFront::Kernel(path) => {
                let file = UhidFile::open(path).map_err(env)?;
                let what = path.display().to_string();
                let serial = format!("cablebridge-{}", std::process::id());
                let mut port =
                    UhidPort::create(file, &what, &fido_create2(&serial)).await.map_err(env)?;
                let s = stop.clone();
                let task = tokio::spawn(async move {
                    let r = serve(&mut port, &mut backend, &s).await.map(|_| ());
                    let _ = port.destroy().await;
                    r
                });
                (task, format!("uhid:{what}"))
            }
            UhidFront::Udp(addr) => {
                let mut port = UdpPort::bind(*addr).await.map_err(env)?;
                let shown = format!("udp:{}", port.local_addr());
                let s = stop.clone();
                let task =
                    tokio::spawn(
                        async move { serve(&mut port, &mut backend, &s).await.map(|_| ()) },
                    );
                (task, shown)
            }
        };
        tracing::info!(front = %shown, "uhid front started: a phone as a local security key");
        *self.lock() = Some(Running { front: shown, stop, task });
        Ok(self.status())
    }

    /// Stops the device (destroying it) and waits for the task.
    pub async fn stop(&self) -> Value {
        let running = self.lock().take();
        match running {
            Some(r) => {
                r.stop.cancel();
                match r.task.await {
                    Ok(Err(e)) => tracing::warn!("uhid front ended with: {e}"),
                    Err(e) => tracing::warn!("uhid front task: {e}"),
                    Ok(Ok(())) => {}
                }
                tracing::info!(front = %r.front, "uhid front stopped");
                json!({"running": false, "stopped": r.front})
            }
            None => json!({"running": false}),
        }
    }
}
