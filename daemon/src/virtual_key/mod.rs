//! The virtual USB security key: the software authenticator behind the CTAPHID device side, on a
//! UDP-HID socket (one 64-byte report per datagram, no report-ID byte — the simulator convention
//! of shared/notes/testing-without-radios.md), for labs and CI.
//!
//! [`VirtualKey::bind`] binds the socket, loads (or creates) the state, powers up an
//! [`Authenticator`](cablebridge_protocol::authenticator::Authenticator) with
//! [`Config::virtual_key`](cablebridge_protocol::authenticator::Config::virtual_key) and spawns
//! **one** task that runs the [`DeviceState`](cablebridge_protocol::ctaphid::DeviceState) loop:
//! datagram in → `handle_report` → CTAP2 requests to the authenticator → reports out, with
//! every timer (CTAPHID message timeout, 100 ms keepalives, the presence delay) on
//! `tokio::time`. Nothing blocks the runtime; state-file writes run on the blocking pool and
//! are awaited before the response that depends on them is sent.
//!
//! User presence (CTAP 2.1 §11.2.9.2.1): a request that needs a touch is deferred; while it is
//! pending the key sends KEEPALIVE(UPNEEDED) every 100 ms and approves after
//! [`VirtualKeyConfig::presence_delay`] (zero: at once, no keepalive). CTAPHID_CANCEL completes
//! it as cancelled, which answers `CTAP2_ERR_KEEPALIVE_CANCEL`.
//!
//! Replies go to the address that last spoke on the report's channel, or always to
//! [`VirtualKeyConfig::reply_to`] for clients that bind a fixed port. By default the key is
//! CTAP2-only: it advertises NMSG and answers MSG with `ERR_INVALID_CMD`, as CTAP2-only keys do.
//!
//! With [`VirtualKeyConfig::u2f_only`] it is the opposite, a U2F-only key: the INIT
//! capabilities carry neither CBOR nor NMSG, CBOR requests answer `ERR_INVALID_CMD`, and
//! CTAPHID_MSG APDUs go to a [`U2fAuthenticator`](cablebridge_protocol::ctap1::U2fAuthenticator)
//! (self-signed attestation certificate; key handles wrapped with the state's master key, so
//! they survive restarts with `--state`; the counter is the state's signature counter). U2F has
//! no keepalives: a request that needs a touch answers 0x6985 and the host polls; the touch
//! "happens" [`VirtualKeyConfig::presence_delay`] after the first such request and is consumed
//! by the request it approves. Lab faults apply to CBOR only.
//!
//! What this is not: a HID gadget (no /dev/uhid), or a fuzzer — the [`LabFault`] switches are a
//! fixed list of documented misbehaviours.

mod error;
mod fault;
mod runner;
mod state_file;

pub use error::VirtualKeyError;
pub use fault::LabFault;
/// The old name of [`LabFault`], kept for one merge round (branches written before the rename);
/// it clashed with the protocol's `Fault` taxonomy. Remove once nothing uses it.
#[doc(hidden)]
pub use fault::LabFault as Fault;
pub use state_file::InitialPin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cablebridge_protocol::authenticator::{AttestationMode, CABLEBRIDGE_AAGUID};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Keepalive cadence while a request is pending (CTAP 2.1 §11.2.9.2.1: "every 100 ms").
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);

/// Which attestation makeCredential produces.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attestation {
    /// `packed` with an x5c chain from a per-process test CA (the default).
    #[default]
    Packed,
    /// `none`.
    None,
}

impl Attestation {
    fn mode(self) -> AttestationMode {
        match self {
            Attestation::Packed => AttestationMode::PackedTestCa,
            Attestation::None => AttestationMode::None,
        }
    }
}

/// Everything `virtual-key` takes.
#[derive(Debug, Clone)]
pub struct VirtualKeyConfig {
    /// Where to listen (port 0: ephemeral; read it back from [`VirtualKeyHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Send every report here instead of to the sender (simulator clients on a fixed port).
    pub reply_to: Option<SocketAddr>,
    /// AAGUID reported in getInfo and attested credential data.
    pub aaguid: [u8; 16],
    /// Attestation format.
    pub attestation: Attestation,
    /// How long the "user" takes to touch the key.
    pub presence_delay: Duration,
    /// Where the state lives; `None` = in memory, forgotten on exit.
    pub state_file: Option<PathBuf>,
    /// PIN to set at start when the state has none.
    pub initial_pin: Option<InitialPin>,
    /// Misbehaviour switch (can be changed at run time with [`VirtualKeyHandle::set_fault`]).
    pub fault: LabFault,
    /// Apply `fault` only to CBOR requests of this CTAP2 command byte (e.g. 0x01,
    /// makeCredential), answering the others (getInfo, clientPIN...) normally, so a fault hits
    /// mid-ceremony instead of at the first request. `None`: every CBOR request.
    pub fault_on: Option<u8>,
    /// A U2F-only (CTAP1) key: no CBOR capability, CTAPHID_MSG answered with U2F APDUs.
    pub u2f_only: bool,
    /// Lab switch for `u2f_only`: INIT still claims CBOR, but every CBOR request (getInfo
    /// first) answers `ERR_INVALID_CMD`, like early FIDO2 firmware; hosts must fall back to U2F.
    pub u2f_claims_cbor: bool,
    /// RP ids on the vendor-facilitated enterprise-attestation list (`--enterprise-rp-id`);
    /// enterprise attestation itself is off until `cablebridge config enable-ep`.
    pub enterprise_rp_ids: Vec<String>,
    /// A simulated fingerprint sensor (`--bio`): bio enrollment, samples captured at once, and
    /// built-in UV once a finger is enrolled.
    pub bio: bool,
}

impl VirtualKeyConfig {
    /// A well-behaved, in-memory key on `listen` with packed attestation and instant presence.
    pub fn new(listen: SocketAddr) -> Self {
        VirtualKeyConfig {
            listen,
            reply_to: None,
            aaguid: CABLEBRIDGE_AAGUID,
            attestation: Attestation::Packed,
            presence_delay: Duration::ZERO,
            state_file: None,
            initial_pin: None,
            fault: LabFault::None,
            fault_on: None,
            u2f_only: false,
            u2f_claims_cbor: false,
            enterprise_rp_ids: Vec::new(),
            bio: false,
        }
    }

    /// The same key as a U2F-only (CTAP1) key.
    pub fn u2f_only(mut self) -> Self {
        self.u2f_only = true;
        self
    }
}

/// Counters reported when the key stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Datagrams received (any size).
    pub datagrams_in: u64,
    /// Datagrams that were not 64 bytes (ignored).
    pub datagrams_malformed: u64,
    /// Reports sent.
    pub reports_out: u64,
    /// CTAP2 requests handled.
    pub cbor_requests: u64,
    /// U2F APDUs (CTAPHID_MSG) handled (`u2f_only` keys).
    pub msg_requests: u64,
    /// Keepalives sent.
    pub keepalives: u64,
    /// Requests cancelled by CTAPHID_CANCEL or resync.
    pub cancels: u64,
    /// WINK requests.
    pub winks: u64,
    /// State-file writes.
    pub state_writes: u64,
}

/// The virtual key.
#[derive(Debug)]
pub struct VirtualKey;

impl VirtualKey {
    /// Binds the socket, loads the state (persisting a fresh one / the initial PIN at once) and
    /// spawns the key's task.
    pub async fn bind(config: VirtualKeyConfig) -> Result<VirtualKeyHandle, VirtualKeyError> {
        let (runner, local_addr, ca_der) = runner::Runner::start(&config).await?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (fault_tx, fault_rx) = watch::channel(config.fault);
        let task = tokio::spawn(runner.run(shutdown_rx, fault_rx));
        tracing::info!(%local_addr, fault = %config.fault, "virtual key listening");
        Ok(VirtualKeyHandle {
            local_addr,
            shutdown: Some(shutdown_tx),
            fault: fault_tx,
            task: Some(task),
            ended: None,
            ca_der,
        })
    }
}

/// A running virtual key. Dropping it stops the key.
#[derive(Debug)]
pub struct VirtualKeyHandle {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    fault: watch::Sender<LabFault>,
    task: Option<JoinHandle<Result<KeyStats, VirtualKeyError>>>,
    /// What the task returned, once awaited (`None` inside: it ended with an error).
    ended: Option<Option<KeyStats>>,
    ca_der: Option<Vec<u8>>,
}

impl VirtualKeyHandle {
    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The device address a client opens: `udp:HOST:PORT`.
    pub fn device_address(&self) -> String {
        match self.local_addr {
            SocketAddr::V4(a) => format!("udp:{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("udp:[{}]:{}", a.ip(), a.port()),
        }
    }

    /// The attestation CA certificate (DER) for packed attestation, to trust in tests; for a
    /// U2F-only key its self-signed U2F attestation certificate.
    pub fn attestation_ca_der(&self) -> Option<&[u8]> {
        self.ca_der.as_deref()
    }

    /// Switches the fault behaviour for the next CBOR request.
    pub fn set_fault(&self, fault: LabFault) {
        self.fault.send_replace(fault);
    }

    /// Whether the key's task has ended by itself (vanish fault, fatal error).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the key to end by itself (or forever); returns its counters or fatal error.
    /// Once it has ended, later calls return the same counters (or a `Task` error).
    pub async fn wait(&mut self) -> Result<KeyStats, VirtualKeyError> {
        if let Some(task) = self.task.as_mut() {
            let result = match task.await {
                Ok(result) => result,
                Err(e) => Err(VirtualKeyError::Task(e.to_string())),
            };
            self.task = None;
            self.ended = Some(result.as_ref().ok().copied());
            return result;
        }
        match self.ended {
            Some(Some(stats)) => Ok(stats),
            _ => Err(VirtualKeyError::Task("the key had already stopped with an error".into())),
        }
    }

    /// Stops the key and returns its counters (or the fatal error that stopped it earlier).
    pub async fn shutdown(mut self) -> Result<KeyStats, VirtualKeyError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }
}

impl Drop for VirtualKeyHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
