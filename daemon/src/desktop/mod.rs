//! The hybrid desktop role (§1.1 desktop checklist): show a QR code (or contact a linked phone),
//! wait for the phone's advert, connect the tunnel, run the Noise handshake, send one CTAP request,
//! wait for the user, shut down, keep linking info the phone sends.
//!
//! `run_qr` / `run_linked` are the whole ceremony, reached through the engine's one entry point
//! [`crate::ceremony::run`] (`Transport::Hybrid` / `Transport::Linked`); every stage has its own
//! timeout ([`StageTimeouts`]), the cancel token ends any stage at once (sending the hybrid
//! shutdown message when the tunnel is open), and a failure is a [`CeremonyError`] naming the
//! stage in progress. The protocol decisions are the
//! `cablebridge_protocol::hybrid::session` state machines; this module only moves bytes between
//! them, the advert source and the tunnel, and owns the timers.
//!
//! What it is not: the phone role, or BLE scanning (an [`AdvertInput`] delivers adverts, and
//! ends the wait with an environment error when BlueZ fails).

mod linked;
mod session;

pub use session::{LateUpdateMode, LateUpdates};

use std::sync::Arc;
use std::time::Duration;

use cablebridge_protocol::hybrid::advert_suffix::describe_suffix;
use cablebridge_protocol::hybrid::eid::OpenedAdvert;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::DesktopPairing;
use cablebridge_protocol::hybrid::tunnel::{self as wire, RequestHint, TunnelPath};
use tokio_util::sync::CancellationToken;

use crate::advert::{AdvertFeed, AdvertItem, AdvertMatcher, AdvertSource, MatchOutcome};
use crate::ceremony::{
    cancellable, AdvertInput, CeremonyError, CeremonyErrorKind, CeremonyOutcome, CeremonyRequest,
    CeremonyStage, Events, ProgressDetail, RawCtapReply, RawCtapRequest, StageClock,
};
use crate::evidence::aaguid::AaguidTable;
use crate::store::LinkStore;
use crate::tunnel::client::{connect, ConnectOptions, TlsRoots, TunnelConnection};
use cablebridge_protocol::ctap2::Command;

/// How long Chrome keeps reading after its shutdown (§8.4).
pub const CHROME_LATE_UPDATE_WINDOW: Duration = Duration::from_secs(180);

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
    /// Reading late updates (linking info) after shutdown (see [`LateUpdateMode`] for whether
    /// the result waits for it).
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

/// Everything about the desktop's environment.
#[derive(Debug, Clone)]
pub struct DesktopConfig {
    /// Where adverts come from (opened per ceremony unless the transport brings an open
    /// [`AdvertInput::Feed`]).
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
    /// Stage limits.
    pub timeouts: StageTimeouts,
    /// AAGUID → model names for results.
    pub aaguids: Arc<AaguidTable>,
    /// Whether the late-update window (`timeouts.late_updates`) delays the result
    /// ([`LateUpdateMode::BeforeResult`], the default) or runs after it.
    pub late_update_mode: LateUpdateMode,
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
            timeouts: StageTimeouts::default(),
            aaguids: Arc::new(AaguidTable::built_in()),
            late_update_mode: LateUpdateMode::BeforeResult,
        }
    }

    /// Chrome's late-update behaviour (§8.4) for a long-running owner (the daemon): after the
    /// shutdown keep reading linking/update messages for 3 minutes, in a spawned task, without
    /// delaying the result.
    pub fn read_late_updates_like_chrome(&mut self) {
        self.timeouts.late_updates = CHROME_LATE_UPDATE_WINDOW;
        self.late_update_mode = LateUpdateMode::Detached;
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

/// What one desktop session sends the phone: a ceremony the engine builds from options, or a
/// client's own CTAP request passed through ([`crate::ceremony::run_raw`]).
#[derive(Debug)]
pub(crate) enum DesktopRequest {
    /// Built here from options; the answer is interpreted and verified.
    Ceremony(CeremonyRequest),
    /// Sent byte for byte; the answer comes back verbatim.
    Raw(RawCtapRequest),
}

impl DesktopRequest {
    fn validate(&self) -> Result<(), CeremonyError> {
        match self {
            DesktopRequest::Ceremony(r) => r.validate(),
            DesktopRequest::Raw(r) => match r.command {
                Command::MakeCredential | Command::GetAssertion => Ok(()),
                other => Err(CeremonyError::usage(
                    CeremonyStage::Setup,
                    format!("{other:?} is not a request a phone is asked over hybrid"),
                )),
            },
        }
    }

    fn hint(&self) -> RequestHint {
        match self {
            DesktopRequest::Ceremony(r) => r.hint(),
            DesktopRequest::Raw(r) if r.command == Command::MakeCredential => {
                RequestHint::MakeCredential
            }
            DesktopRequest::Raw(_) => RequestHint::GetAssertion,
        }
    }
}

/// What a desktop session returns, matching its [`DesktopRequest`].
#[derive(Debug)]
pub(crate) enum DesktopOutcome {
    /// The interpreted, verified result.
    Ceremony(Box<CeremonyOutcome>),
    /// The phone's answer, verbatim.
    Raw(RawCtapReply),
}

/// Runs one QR-initiated hybrid session; the late-update read comes back as a task unless it
/// ran before the result ([`LateUpdateMode`]; a raw request always gets it as a task).
pub(crate) async fn run_qr(
    config: &DesktopConfig,
    adverts: AdvertInput,
    request: DesktopRequest,
    sink: Events,
    cancel: &CancellationToken,
) -> Result<(DesktopOutcome, Option<LateUpdates>), CeremonyError> {
    request.validate()?;
    let (conn, pairing, advert, mut progress) =
        open_qr_session(config, adverts, request.hint(), sink, cancel).await?;
    let start = session::Start { pairing, advert: &advert };
    let linking = config.link_store.as_ref().map(|store| session::LinkSink {
        store: store.clone(),
        tunnel_domain: advert.plaintext.domain_id(),
    });
    session::drive(conn, start, request, config, linking, &mut progress, cancel).await
}

/// What a Digital Credentials request asks for (the QR hint, §2.1 key 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcKind {
    /// `"dcp"`: present a credential.
    Presentation,
    /// `"dci"`: issue a credential.
    Issuance,
}

/// Sends one Digital Credentials request (UTF-8 JSON, §8.2 type 3) to a phone that scans our
/// QR code and returns its JSON reply. A phone that did not announce the `"dc"` feature (absent
/// features mean CTAP only; a USB key behind the bridge never does) is refused at stage
/// `post_handshake` before anything is sent. No linking is offered (QR key 4 = false).
pub async fn present(
    config: &DesktopConfig,
    adverts: AdvertInput,
    kind: DcKind,
    request_json: &[u8],
    sink: Events,
    cancel: &CancellationToken,
) -> Result<serde_json::Value, CeremonyError> {
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(request_json) {
        return Err(CeremonyError::new(
            CeremonyStage::Setup,
            CeremonyErrorKind::Usage,
            format!("the Digital Credentials request is not JSON: {e}"),
        ));
    }
    let hint = match kind {
        DcKind::Presentation => RequestHint::DcPresentation,
        DcKind::Issuance => RequestHint::DcIssuance,
    };
    let mut config = config.clone();
    config.link_store = None;
    let (conn, pairing, advert, mut progress) =
        open_qr_session(&config, adverts, hint, sink.clone(), cancel).await?;
    let start = session::Start { pairing, advert: &advert };
    let result =
        session::drive_json(conn, start, request_json, &config, &mut progress, cancel).await;
    if let Some(sink) = &sink {
        if let Err(e) = &result {
            sink.emit(&crate::ceremony::CeremonyEvent::Error(e.clone()));
        }
    }
    result
}

/// QR shown → advert matched → tunnel open: everything before the handshake of a QR session.
async fn open_qr_session(
    config: &DesktopConfig,
    adverts: AdvertInput,
    hint: RequestHint,
    sink: Events,
    cancel: &CancellationToken,
) -> Result<(TunnelConnection, DesktopPairing, OpenedAdvert, StageClock), CeremonyError> {
    let mut progress = StageClock::new(CeremonyStage::Setup, sink);
    let injected = injected(config, &adverts);
    let adverts = cancellable(cancel, CeremonyStage::Setup, open_input(adverts)).await?;
    let now = unix_now();
    let (identity, qr) =
        QrPayload::generate(&mut rand::rngs::OsRng, now, hint, config.link_store.is_some());
    progress.finish(CeremonyStage::Setup, CeremonyStage::QrShown, ProgressDetail::None);
    progress.show_qr(qr.to_url(), CeremonyStage::Advert);

    let mut matcher = AdvertMatcher::new(injected);
    let pairing = DesktopPairing::from_qr(&qr.secret, &identity);
    matcher.add(0, pairing.clone());
    let (advert, rssi) =
        wait_advert(adverts, &mut matcher, &progress, config.timeouts.advert, cancel).await?;
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
            suffix: describe_suffix(&advert.suffix),
        },
    );

    let path = TunnelPath::Connect { routing_id, tunnel_id: qr.tunnel_id() };
    let url = wire::url(&config.tunnel_base(&host), &path);
    let conn = cancellable(
        cancel,
        CeremonyStage::TunnelConnect,
        connect_tunnel(&url, &config.connect_options()),
    )
    .await?;
    progress.finish(
        CeremonyStage::TunnelConnect,
        CeremonyStage::Handshake,
        ProgressDetail::Text(redact_url(&url)),
    );

    Ok((conn, pairing, advert, progress))
}

pub(crate) use linked::run as run_linked;

/// Whether adverts are injected text (the matcher then reports foreign-looking adverts) rather
/// than heard over the air.
fn injected(config: &DesktopConfig, input: &AdvertInput) -> bool {
    match input {
        AdvertInput::Source(s) => *s != AdvertSource::Bluez,
        AdvertInput::Feed(_) => config.advert_source != AdvertSource::Bluez,
    }
}

/// The advert feed of a ceremony: the open one it was given, or its source opened now.
async fn open_input(input: AdvertInput) -> Result<AdvertFeed, CeremonyError> {
    match input {
        AdvertInput::Feed(feed) => Ok(feed),
        AdvertInput::Source(source) => source.open().await.map_err(|e| {
            CeremonyError::classified(CeremonyStage::Advert, "cannot receive adverts", &e)
        }),
    }
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

/// Feeds adverts to the matcher until the first match, a timeout, a cancel, or the source's end.
/// The feed is dropped (its task ended, its descriptors closed) before this returns.
async fn wait_advert(
    mut adverts: AdvertFeed,
    matcher: &mut AdvertMatcher,
    progress: &StageClock,
    limit: Duration,
    cancel: &CancellationToken,
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
    let timed = async {
        tokio::time::timeout(limit, waiting)
            .await
            .map_err(|_| CeremonyError::timeout(stage, "waiting for the phone's advert", limit))?
    };
    cancellable(cancel, stage, timed).await
}
