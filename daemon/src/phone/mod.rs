//! The virtual phone: the hybrid **phone role** (PROTOCOL-hybrid.md §1.1 phone checklist, §6.2,
//! §8, §9) in front of the software authenticator (`Config::virtual_phone()`), so a desktop can
//! run complete cross-device ceremonies on one machine with no radio.
//!
//! QR flow ([`VirtualPhone::run_qr`]): parse QR → open `/cable/new/<TunnelId>` and read the
//! routing id → seal the EID (fresh nonce, routing id, domain id) under the QR's EID key →
//! "advertise" it through an [`sink::AdvertSink`] every ~200 ms → wait for Noise message 1 →
//! answer KNpsk0 → stop advertising → post-handshake (getInfo) → optional linking update → serve
//! CTAP requests (user presence approved after a delay, without blocking the runtime) → close on
//! shutdown or when the desktop leaves.
//!
//! Linked flow ([`VirtualPhone::serve_links`]): hold our tunnel server's private
//! `/cable/listen/<contact>` path (see `tunnel::server`); when a desktop arrives with a client
//! payload, derive the EID key from the link secret and the client nonce, advertise (bytes 1–13
//! random, bytes 14–15 a valid domain id: pitfall §11.2 item 16), answer NKpsk0 with the identity
//! key and serve one request.
//!
//! Fault switches ([`Faults`]) make the phone misbehave at a chosen stage so labs and tests can
//! check that a desktop fails cleanly and names the stage; they are applied as a policy on the
//! outgoing frames (`fault`), not inside the protocol loop.
//!
//! The session code is generic over what answers CTAP requests ([`backend::CtapBackend`]):
//! [`VirtualPhone`] is [`Phone`] with the software authenticator ([`backend::SoftwareBackend`]);
//! the bridge (`crate::bridge`) is the same [`Phone`] with a USB security key behind it. There
//! is one phone session implementation.
//!
//! What it is not: a real phone's tunnel protocol (Google's and Apple's phone sides are private),
//! BLE advertising (see [`sink`]), or UI.

pub mod backend;
mod error;
mod fault;
mod progress;
mod session;
pub mod sink;
pub mod state;

pub use error::PhoneError;
pub use progress::{phone_sink, PhoneEvent};
pub use state::{Contact, PhoneState};

use crate::ceremony::Events;
use crate::tunnel::client::ConnectOptions;
use backend::{CtapBackend, SoftwareBackend};
use cablebridge_protocol::authenticator::{
    AttestationMode, Authenticator, Config, MemoryStore, CABLEBRIDGE_AAGUID,
};
use cablebridge_protocol::hybrid::domain::tunnel_domain;
use cablebridge_protocol::hybrid::tunnel::wss_base;
use sink::AdvertSinkSpec;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where [`Faults::fail_at`] makes the phone misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAt {
    /// Send a corrupted Noise message 2 (the desktop's handshake fails).
    Handshake,
    /// Send a corrupted post-handshake message (the desktop fails opening it).
    PostHandshake,
    /// Answer every CTAP request with CTAP2_ERR_OPERATION_DENIED (0x27) as a phone whose user
    /// said no, instead of closing silently: the desktop then reports a clean ceremony failure.
    Ctap,
}

impl std::str::FromStr for FailAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "handshake" => Ok(FailAt::Handshake),
            "post-handshake" => Ok(FailAt::PostHandshake),
            "ctap" => Ok(FailAt::Ctap),
            _ => Err(format!("{s:?} is not handshake, post-handshake or ctap")),
        }
    }
}

/// Lab fault switches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Misbehave at this stage.
    pub fail_at: Option<FailAt>,
    /// Close the tunnel after this many frames were sent (0 = right after message 1 arrived,
    /// i.e. mid-handshake).
    pub drop_after: Option<u32>,
    /// Never open the tunnel (and so never advertise): the desktop must time out waiting.
    pub never_connect: bool,
}

/// Whether the phone appends a CTAP 2.3 suffix to its QR-session advert (PROTOCOL-hybrid.md §12,
/// pitfall §11.2 item 15). Linked sessions never carry one (no BLE negotiation exists there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AdvertSuffixPolicy {
    /// Exactly 20 bytes, like every phone before CTAP 2.3.
    #[default]
    Never,
    /// Append `{1: psm}` only when the QR offered the BLE channel (key 6 contains 1); otherwise
    /// 20 bytes, so a desktop that wants exactly 20 (Chrome) still sees the advert. This phone
    /// serves no L2CAP channel: the desktop must fall back to the tunnel.
    BlePsm(u16),
    /// Lab switch: append these bytes whatever the QR said (malformed suffixes included), to
    /// test how a desktop treats them.
    Force(Vec<u8>),
}

/// How a phone-role session behaves. `aaguid`, `attestation` and `presence_delay` configure the
/// virtual phone's software authenticator and are ignored by other backends (the bridge's
/// key has its own).
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// `ws(s)://host:port` of the tunnel server.
    pub tunnel_base: String,
    /// Tunnel client options (TLS roots, timeouts).
    pub connect: ConnectOptions,
    /// Tunnel domain id put into the EID (§4); 0 = cable.ua5v.com.
    pub domain_id: u16,
    /// Where adverts go.
    pub sink: AdvertSinkSpec,
    /// Advert repetition interval.
    pub advert_interval: Duration,
    /// AAGUID of the software authenticator.
    pub aaguid: [u8; 16],
    /// Attestation format of makeCredential.
    pub attestation: AttestationMode,
    /// Model a synced passkey provider: authenticator data carries BE and BS (software
    /// authenticator only, like `aaguid`).
    pub backup_eligible: bool,
    /// How long the "user" takes to approve.
    pub presence_delay: Duration,
    /// Send linking info when the QR allows it (key 4 = true).
    pub offer_linking: bool,
    /// Authenticator name sent in linking info.
    pub name: String,
    /// Fault switches.
    pub faults: Faults,
    /// CTAP 2.3 advert suffix (QR sessions).
    pub advert_suffix: AdvertSuffixPolicy,
    /// Speak the legacy protocol revision 0 (§8.1, §11.3): a padded post-handshake message
    /// (16-bit trailer, 512-byte blocks) and no type bytes afterwards; linking info then rides
    /// in post-handshake key 2 (there are no update messages in revision 0).
    pub legacy_revision_0: bool,
    /// Send the linking update late: after the desktop's shutdown, this long after it (the
    /// desktop must still be reading late updates, §8.4). `None` = right after the
    /// post-handshake message, like Chrome's phone.
    pub late_linking: Option<Duration>,
    /// Digital Credentials (lab fixture): when set, the post-handshake message announces
    /// `["ctap", "dc"]` and every JSON request is answered with this JSON document verbatim.
    /// `None`: CTAP only (a JSON request then ends the session with a typed error).
    pub dc_document: Option<Vec<u8>>,
    /// How long to wait for the desktop's message 1 once advertising.
    pub desktop_timeout: Duration,
    /// How long to wait for each further desktop frame.
    pub idle_timeout: Duration,
}

impl PhoneConfig {
    /// Defaults for a tunnel at `tunnel_base` (sink: stdout, 200 ms adverts, no delay).
    pub fn new(tunnel_base: impl Into<String>) -> Self {
        PhoneConfig {
            tunnel_base: tunnel_base.into(),
            connect: ConnectOptions::default(),
            domain_id: 0,
            sink: AdvertSinkSpec::Stdout,
            advert_interval: Duration::from_millis(200),
            aaguid: CABLEBRIDGE_AAGUID,
            attestation: AttestationMode::None,
            backup_eligible: false,
            presence_delay: Duration::ZERO,
            offer_linking: false,
            name: "cablebridge virtual phone".to_owned(),
            faults: Faults::default(),
            advert_suffix: AdvertSuffixPolicy::Never,
            legacy_revision_0: false,
            late_linking: None,
            dc_document: None,
            desktop_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(120),
        }
    }

    /// The production tunnel of `domain_id` (`wss://cable.ua5v.com` for 0). A real Google or
    /// Apple tunnel will not accept our phone side: use it only to see that failure.
    pub fn default_tunnel_base(domain_id: u16) -> Result<String, PhoneError> {
        tunnel_domain(domain_id).map(|h| wss_base(&h)).map_err(PhoneError::Domain)
    }
}

/// What one QR or linked session did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSummary {
    /// The routing id our tunnel assigned (QR sessions).
    pub routing_id: Option<String>,
    /// CTAP requests answered.
    pub requests: u32,
    /// Status byte of the last CTAP response.
    pub last_status: Option<u8>,
    /// Whether linking info was sent.
    pub linking_sent: bool,
    /// Frames this phone sent on the tunnel.
    pub frames_sent: u32,
    /// A fault switch ended the session early.
    pub fault_injected: bool,
}

/// What [`Phone::forget_links`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinksForgotten {
    /// Contacts the tunnel server confirmed revoked (their desktops now get 410 Gone).
    pub revoked: u32,
    /// Contacts forgotten here whose revocation the server did not confirm, with why.
    pub unconfirmed: Vec<String>,
}

/// A phone-role endpoint: configuration, persistent state (identity, links) and the backend
/// that answers CTAP requests.
pub struct Phone<B: CtapBackend> {
    config: PhoneConfig,
    state: PhoneState,
    state_path: Option<PathBuf>,
    backend: B,
    events: Events,
    started: Instant,
    shutdown: CancellationToken,
}

/// The virtual phone: [`Phone`] with the software authenticator.
pub type VirtualPhone = Phone<SoftwareBackend>;

impl<B: CtapBackend> std::fmt::Debug for Phone<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone")
            .field("config", &self.config)
            .field("state_path", &self.state_path)
            .finish_non_exhaustive()
    }
}

impl<B: CtapBackend> Phone<B> {
    /// A phone answering with `backend`; `state` holds its identity and links (saved to
    /// `state_path` after each session, if given).
    pub fn with_backend(
        config: PhoneConfig,
        state: PhoneState,
        state_path: Option<PathBuf>,
        backend: B,
        events: Events,
    ) -> Self {
        Phone {
            config,
            state,
            state_path,
            backend,
            events,
            started: Instant::now(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Cancelling this token (Ctrl-C) ends the session: a pending CTAP operation is cancelled
    /// (a USB key gets CTAPHID_CANCEL) and the run returns [`PhoneError::Cancelled`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &PhoneConfig {
        &self.config
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The current persistent state (authenticator part refreshed).
    pub fn state(&mut self) -> &PhoneState {
        self.refresh_state();
        &self.state
    }

    /// Writes the state file (if any), atomically.
    pub fn save(&mut self) -> Result<(), PhoneError> {
        self.refresh_state();
        if let Some(path) = &self.state_path {
            self.state.save(path)?;
        }
        Ok(())
    }

    fn refresh_state(&mut self) {
        if let Some(s) = self.backend.export_state() {
            self.state.authenticator = s;
        }
    }

    fn emit(&self, event: PhoneEvent) {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        progress::emit_to(&self.events, elapsed, event);
    }
}

impl VirtualPhone {
    /// A phone with `state` (fresh or loaded), saved to `state_path` after each session.
    pub fn new(
        config: PhoneConfig,
        state: PhoneState,
        state_path: Option<PathBuf>,
        events: Events,
    ) -> Self {
        let auth_config = Config {
            aaguid: config.aaguid,
            attestation: config.attestation,
            backup_eligible: config.backup_eligible,
            ..Config::virtual_phone()
        };
        let store = MemoryStore::from_state(state.authenticator.clone());
        let authenticator =
            Authenticator::new(auth_config, store, &mut rand::rngs::OsRng, Instant::now());
        let backend = SoftwareBackend::new(authenticator, config.presence_delay);
        Phone::with_backend(config, state, state_path, backend, events)
    }

    /// Loads (or creates) the state at `path` and builds the phone.
    pub fn with_state_file(
        config: PhoneConfig,
        path: PathBuf,
        events: Events,
    ) -> Result<Self, PhoneError> {
        let state = PhoneState::load_or_new(&path, &mut rand::rngs::OsRng)?;
        Ok(Self::new(config, state, Some(path), events))
    }
}
