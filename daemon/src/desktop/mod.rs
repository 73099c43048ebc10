//! The hybrid desktop role (§1.1 desktop checklist): show a QR code (or contact a linked phone),
//! wait for the phone's advert, connect the tunnel, run the Noise handshake, send one CTAP request,
//! wait for the user, shut down, keep linking info the phone sends.
//!
//! [`run`] is the whole ceremony; every stage has its own timeout ([`StageTimeouts`]) and a
//! failure is a [`CeremonyError`] naming the stage in progress. The protocol decisions are the
//! `cablebridge_protocol::hybrid::session` state machines; this module only moves bytes between
//! them, the advert source and the tunnel, and owns the timers.
//!
//! What it is not: the phone role, or BLE scanning (an [`AdvertSource`] delivers adverts, and
//! ends the wait with an environment error when BlueZ fails).

mod linked;
mod session;

use std::sync::Arc;
use std::time::Duration;

use cablebridge_protocol::hybrid::eid::OpenedAdvert;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::DesktopPairing;
use cablebridge_protocol::hybrid::tunnel::{self as wire, RequestHint, TunnelPath};

use crate::advert::{AdvertItem, AdvertMatcher, AdvertSource, AdvertStream, MatchOutcome};
use crate::ceremony::{
    AuthenticateOptions, AuthenticationResult, CeremonyError, CeremonyErrorKind, CeremonyStage,
    Progress, ProgressDetail, ProgressSink, RegisterOptions, RegistrationResult,
};
use crate::evidence::aaguid::AaguidTable;
use crate::store::LinkStore;
use crate::tunnel::client::{connect, ConnectOptions, TlsRoots, TunnelConnection};

/// Per-stage limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageTimeouts {
    /// Waiting for the phone's advert (the user has to find and scan the QR code).
    pub advert: Duration,
    /// DNS + TCP + TLS + WebSocket upgrade.
    pub connect: Duration,
    /// Noise message 2 and the post-handshake message.
    pub handshake: Duration,
    /// Waiting for the authenticator's answer (the user decides on the phone).
    pub user: Duration,
    /// Reading late updates (linking info) after shutdown.
    pub late_updates: Duration,
}

impl Default for StageTimeouts {
    fn default() -> Self {
        StageTimeouts {
            advert: Duration::from_secs(180),
            connect: Duration::from_secs(20),
            handshake: Duration::from_secs(20),
            user: Duration::from_secs(180),
            late_updates: Duration::from_secs(2),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub enum CeremonyRequest {
    /// makeCredential.
    Register(RegisterOptions),
    /// getAssertion.
    Authenticate(AuthenticateOptions),
}

impl CeremonyRequest {
    fn hint(&self) -> RequestHint {
        match self {
            CeremonyRequest::Register(_) => RequestHint::MakeCredential,
            CeremonyRequest::Authenticate(_) => RequestHint::GetAssertion,
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

/// Everything about the desktop's environment.
#[derive(Debug, Clone)]
pub struct DesktopConfig {
    /// Where adverts come from.
    pub advert_source: AdvertSource,
    /// Tunnel base URL override (`ws://127.0.0.1:port`, `wss://tunnel.example`); `None` ⇒
    /// `wss://<host the advert or link names>`.
    pub tunnel_url: Option<String>,
    /// Allow plain `ws://` to non-loopback hosts.
    pub allow_insecure_tunnel: bool,
    /// Trust anchors for `wss://`.
    pub tls_roots: TlsRoots,
    /// Where linked phones are kept; `None` ⇒ linking is not offered (QR key 4 = false).
    pub link_store: Option<LinkStore>,
    /// Contact this linked phone (name or id) instead of showing a QR code.
    pub linked: Option<String>,
    /// Stage limits.
    pub timeouts: StageTimeouts,
    /// AAGUID → model names for results.
    pub aaguids: Arc<AaguidTable>,
}

impl DesktopConfig {
    /// Defaults for `advert_source`: BLE scanning, real tunnel hosts, no link store.
    pub fn new(advert_source: AdvertSource) -> Self {
        DesktopConfig {
            advert_source,
            tunnel_url: None,
            allow_insecure_tunnel: false,
            tls_roots: TlsRoots::Native,
            link_store: None,
            linked: None,
            timeouts: StageTimeouts::default(),
            aaguids: Arc::new(AaguidTable::built_in()),
        }
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            tls_roots: self.tls_roots.clone(),
            allow_insecure: self.allow_insecure_tunnel,
            timeout: self.timeouts.connect,
            ..ConnectOptions::default()
        }
    }

    fn tunnel_base(&self, host: &str) -> String {
        self.tunnel_url.clone().unwrap_or_else(|| wire::wss_base(host))
    }
}

/// Runs one hybrid ceremony (QR, or linked when `config.linked` is set).
pub async fn run(
    config: &DesktopConfig,
    request: CeremonyRequest,
    sink: Option<Arc<dyn ProgressSink>>,
) -> Result<CeremonyOutcome, CeremonyError> {
    match &request {
        CeremonyRequest::Register(o) => o.validate()?,
        CeremonyRequest::Authenticate(o) => o.validate()?,
    }
    if let Some(name) = &config.linked {
        return linked::run(config, name, request, sink).await;
    }
    let mut progress = Progress::new(CeremonyStage::Setup, sink);
    let adverts = open_source(config).await?;
    let now = unix_now();
    let (identity, qr) = QrPayload::generate(
        &mut rand::rngs::OsRng,
        now,
        request.hint(),
        config.link_store.is_some(),
    );
    progress.finish(CeremonyStage::Setup, CeremonyStage::QrShown, ProgressDetail::None);
    progress.finish(
        CeremonyStage::QrShown,
        CeremonyStage::Advert,
        ProgressDetail::Qr { url: qr.to_url() },
    );

    let mut matcher = AdvertMatcher::new(config.advert_source != AdvertSource::Bluez);
    let pairing = DesktopPairing::from_qr(&qr.secret, &identity);
    matcher.add(0, pairing.clone());
    let (advert, rssi) =
        wait_advert(adverts, &mut matcher, &progress, config.timeouts.advert).await?;
    let host = advert.plaintext.tunnel_host().map_err(|e| {
        CeremonyError::classified(CeremonyStage::Advert, "the advert names no usable tunnel", &e)
    })?;
    let routing_id = advert.plaintext.routing_id();
    progress.finish(
        CeremonyStage::Advert,
        CeremonyStage::TunnelConnect,
        ProgressDetail::Advert {
            rssi,
            routing_id: routing_id.to_hex(),
            tunnel_host: host.to_string(),
        },
    );

    let path = TunnelPath::Connect { routing_id, tunnel_id: qr.tunnel_id() };
    let url = wire::url(&config.tunnel_base(&host), &path);
    let conn = connect_tunnel(&url, &config.connect_options()).await?;
    progress.finish(
        CeremonyStage::TunnelConnect,
        CeremonyStage::Handshake,
        ProgressDetail::Text(redact_url(&url)),
    );

    let start = session::Start { pairing, advert: &advert };
    let linking = config
        .link_store
        .as_ref()
        .map(|store| session::LinkSink { store, tunnel_domain: advert.plaintext.domain_id() });
    session::drive(conn, start, request, config, linking, &mut progress).await
}

async fn open_source(config: &DesktopConfig) -> Result<AdvertStream, CeremonyError> {
    config
        .advert_source
        .open()
        .await
        .map_err(|e| CeremonyError::classified(CeremonyStage::Advert, "cannot receive adverts", &e))
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The URL without its path: tunnel and routing ids identify a live tunnel, so they stay out
/// of progress output and logs.
fn redact_url(url: &str) -> String {
    match url.find("/cable/") {
        Some(i) => format!("{}/cable/…", &url[..i]),
        None => url.to_owned(),
    }
}

async fn connect_tunnel(
    url: &str,
    opts: &ConnectOptions,
) -> Result<TunnelConnection, CeremonyError> {
    connect(url, opts).await.map_err(|e| {
        CeremonyError::classified(CeremonyStage::TunnelConnect, "cannot open the tunnel", &e)
    })
}

/// Feeds adverts to the matcher until the first match, a timeout, or the source's end.
async fn wait_advert(
    mut adverts: AdvertStream,
    matcher: &mut AdvertMatcher,
    progress: &Progress,
    limit: Duration,
) -> Result<(OpenedAdvert, Option<i16>), CeremonyError> {
    let stage = progress.current();
    let waiting = async {
        loop {
            match adverts.next().await {
                None => {
                    return Err(CeremonyError::new(
                        stage,
                        CeremonyErrorKind::Peer,
                        "the advert source ended before the phone's advert arrived",
                    ))
                }
                Some(AdvertItem::Warning(w)) => progress.warn(w),
                Some(AdvertItem::Failed(e)) => {
                    return Err(CeremonyError::classified(
                        CeremonyStage::Advert,
                        "BLE scanning stopped",
                        &e,
                    ))
                }
                Some(AdvertItem::Advert { service_data, rssi }) => {
                    match matcher.offer(&service_data) {
                        MatchOutcome::Matched { advert, .. } => return Ok((advert, rssi)),
                        MatchOutcome::Invalid { error, .. } => progress.warn(error.to_string()),
                        MatchOutcome::Duplicate { .. } | MatchOutcome::NotOurs => {}
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, waiting)
        .await
        .map_err(|_| CeremonyError::timeout(stage, "waiting for the phone's advert", limit))?
}
