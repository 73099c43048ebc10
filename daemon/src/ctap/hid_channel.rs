//! The CTAPHID driver loop: one [`HostChannel`] state machine driven over one [`HidTransport`].
//!
//! [`CtapHidDevice::open`] allocates a channel (INIT on broadcast) and keeps the device's
//! [`DeviceInfo`]; [`CtapHidDevice::transact`] runs one request to completion. Each step of the
//! loop drains the state machine's outputs (reports to write, events), then `select!`s on three
//! inputs: the next report (`recv_report` is cancel-safe), the state machine's next timer
//! ([`HostChannel::poll_timeout`]) and the caller's [`CancellationToken`]. Nothing blocks the
//! runtime and nothing polls on a period.
//!
//! * Keepalives are surfaced through the caller's progress callback as they arrive.
//! * On the deadline or a cancel, the state machine sends CTAPHID_CANCEL (which makes a real key
//!   stop blinking) and waits a short grace period for the key's final answer; the result is a
//!   typed [`CtapError::Timeout`] or [`CtapError::Cancelled`] and the channel is usable again.
//! * `ERR_CHANNEL_BUSY` (another process is mid-transaction on the key) is retried with a
//!   bounded linear back-off ([`BusyPolicy`]) and then reported as [`CtapError::Busy`].
//! * Reports for other channels (other processes on a shared hidraw node) are counted by the
//!   state machine ([`HostStats`]) and otherwise ignored.
//! * A transport failure mid-transaction leaves the channel in an unknown state; the next
//!   transaction re-runs INIT on a fresh channel first.
//! * One clock: deadlines, timers and every `now` fed to the state machine come from tokio's
//!   clock ([`tokio::time::Instant`], converted with `into_std`), so the driver behaves the same
//!   under `tokio::time::pause` as on the wall clock.
//!
//! Not here: CTAP2 (see [`super::client`]).

use std::time::Duration;

use cablebridge_protocol::ctap2;
use cablebridge_protocol::ctaphid::{
    Command, DeviceInfo, HostChannel, HostConfig, HostError, HostEvent, HostStats, KeepAliveStatus,
    ReportLen,
};
use rand_core::CryptoRngCore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{CtapError, Result};
use crate::hid::{HidError, HidTransport};

/// How long and how often to retry a device that answers `ERR_CHANNEL_BUSY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The n-th retry waits `n × step`.
    pub step: Duration,
}

impl Default for BusyPolicy {
    /// 8 retries, 100 ms step: about 3.6 s, long enough for another client's short command,
    /// short enough not to look hung when another client waits for a touch.
    fn default() -> Self {
        BusyPolicy { retries: 8, step: Duration::from_millis(100) }
    }
}

/// Driver parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// Deadline for the INIT exchange.
    pub init_timeout: Duration,
    /// How long to wait for the final answer after CANCEL.
    pub cancel_grace: Duration,
    /// Busy retries.
    pub busy: BusyPolicy,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            init_timeout: Duration::from_secs(3),
            cancel_grace: Duration::from_millis(500),
            busy: BusyPolicy::default(),
        }
    }
}

/// What the key is doing while a transaction runs.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProgress {
    /// KEEPALIVE(PROCESSING).
    Processing,
    /// KEEPALIVE(UPNEEDED): "touch your key".
    TouchNeeded,
    /// A keepalive status this client does not know.
    OtherKeepAlive(KeepAliveStatus),
    /// No key is attached: waiting for one to be plugged in ("insert your security key").
    InsertKey,
    /// The device was busy with another client; retry number `attempt` follows.
    BusyRetry {
        /// 1-based retry number.
        attempt: u32,
    },
}

/// The per-call context: absolute deadline, cancel signal, progress sink.
pub struct Call<'a> {
    /// Absolute deadline; keepalives never extend it.
    pub deadline: Instant,
    /// Cancels the call (sends CTAPHID_CANCEL for CBOR).
    pub cancel: &'a CancellationToken,
    /// Receives keepalive and busy-retry events.
    pub progress: &'a mut (dyn FnMut(DeviceProgress) + Send),
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

/// An open CTAPHID device: a transport plus an allocated channel.
#[derive(Debug)]
pub struct CtapHidDevice<T: HidTransport> {
    transport: T,
    channel: HostChannel,
    host_config: HostConfig,
    info: DeviceInfo,
    config: DriverConfig,
    needs_init: bool,
    nonce_rng: rand::rngs::StdRng,
}

enum Outcome {
    Init(DeviceInfo),
    Response(Vec<u8>),
}

impl<T: HidTransport> CtapHidDevice<T> {
    /// Allocates a channel on the device (CTAPHID_INIT on broadcast).
    pub async fn open(
        transport: T,
        rng: &mut (impl CryptoRngCore + Send),
        config: DriverConfig,
    ) -> Result<Self> {
        let report_len = ReportLen::new(transport.report_len()).ok_or_else(|| {
            CtapError::Hid(HidError::ReportLength {
                device: transport.path().to_owned(),
                reason: format!("report length {} is not usable", transport.report_len()),
            })
        })?;
        let host_config = HostConfig { report_len, cancel_grace: config.cancel_grace };
        let nonce_rng = rand::SeedableRng::from_rng(RngAdapter(rng)).map_err(|e| {
            CtapError::Hid(HidError::Io {
                device: transport.path().to_owned(),
                action: "seeding the nonce generator",
                source: std::io::Error::other(e.to_string()),
            })
        })?;
        let placeholder = DeviceInfo {
            cid: cablebridge_protocol::ctaphid::Cid(1),
            protocol_version: 0,
            major: 0,
            minor: 0,
            build: 0,
            capabilities: Default::default(),
        };
        let mut dev = CtapHidDevice {
            transport,
            channel: HostChannel::new(host_config),
            host_config,
            info: placeholder,
            config,
            needs_init: true,
            nonce_rng,
        };
        dev.ensure_init().await?;
        Ok(dev)
    }

    /// What INIT said (channel, versions, capabilities).
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Device path or address.
    pub fn path(&self) -> &str {
        self.transport.path()
    }

    /// The transport (for descriptions and stats).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Counters of ignored reports (foreign channels, strays).
    pub fn stats(&self) -> HostStats {
        self.channel.stats()
    }

    async fn ensure_init(&mut self) -> Result<()> {
        if !self.channel.is_idle() {
            // A transaction future was dropped mid-flight (touch-to-select loser, caller
            // timeout): the channel state is unknown, so start over on a fresh channel.
            self.channel = HostChannel::new(self.host_config);
            self.needs_init = true;
        }
        if !self.needs_init {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.init_timeout;
        self.channel.forget_channel();
        let host_err = |e| CtapError::from_host(self.transport.path(), None, false, e);
        self.channel.init(&mut self.nonce_rng, deadline.into_std()).map_err(host_err)?;
        let never = CancellationToken::new();
        let mut ignore = |_: DeviceProgress| {};
        let mut call = Call { deadline, cancel: &never, progress: &mut ignore };
        match self.drive(&mut call, None).await? {
            Outcome::Init(info) => {
                self.info = info;
                self.needs_init = false;
                Ok(())
            }
            Outcome::Response(_) => Err(CtapError::Channel {
                device: self.path().to_owned(),
                source: HostError::BadInitResponse { reason: "answered INIT with a response" },
            }),
        }
    }

    /// Runs one CTAPHID transaction; returns the response payload.
    pub async fn transact(
        &mut self,
        cmd: Command,
        payload: &[u8],
        call: &mut Call<'_>,
    ) -> Result<Vec<u8>> {
        let ctap = match cmd {
            Command::Cbor => payload.first().map(|&b| ctap2::Command::from_u8(b)),
            _ => None,
        };
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            self.ensure_init().await?;
            let path = self.transport.path().to_owned();
            self.channel
                .start_transaction(cmd, payload, call.deadline.into_std())
                .map_err(|e| CtapError::from_host(&path, ctap, false, e))?;
            match self.drive(call, ctap).await {
                Ok(Outcome::Response(payload)) => return Ok(payload),
                Ok(Outcome::Init(_)) => {
                    return Err(CtapError::Channel {
                        device: path,
                        source: HostError::UnexpectedCommand { expected: cmd, got: Command::Init },
                    })
                }
                Err(CtapError::Channel { source: HostError::Busy, .. }) => {
                    attempt += 1;
                    if attempt > self.config.busy.retries {
                        return Err(CtapError::Busy {
                            device: path,
                            attempts: attempt,
                            waited: started.elapsed(),
                        });
                    }
                    (call.progress)(DeviceProgress::BusyRetry { attempt });
                    let wake = Instant::now() + self.config.busy.step * attempt;
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake.min(call.deadline)) => {}
                        _ = call.cancel.cancelled() => {
                            return Err(CtapError::Cancelled { device: path, command: cmd, ctap });
                        }
                    }
                    if Instant::now() >= call.deadline {
                        return Err(CtapError::Busy {
                            device: path,
                            attempts: attempt,
                            waited: started.elapsed(),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The select loop: outputs first, then one input, until a terminal event.
    async fn drive(
        &mut self,
        call: &mut Call<'_>,
        ctap: Option<ctap2::Command>,
    ) -> Result<Outcome> {
        let mut buf = vec![0u8; self.transport.report_len().max(64)];
        let mut cancel_sent = false;
        let mut touch_needed = false;
        loop {
            while let Some(report) = self.channel.poll_transmit() {
                if let Err(e) = self.transport.send_report(&report).await {
                    self.needs_init = true;
                    return Err(e.into());
                }
            }
            while let Some(event) = self.channel.poll_event() {
                match event {
                    HostEvent::Initialized(info) => return Ok(Outcome::Init(info)),
                    HostEvent::Response { payload, .. } => return Ok(Outcome::Response(payload)),
                    HostEvent::KeepAlive(status) => {
                        let p = match status {
                            KeepAliveStatus::Processing => DeviceProgress::Processing,
                            KeepAliveStatus::UpNeeded => {
                                touch_needed = true;
                                DeviceProgress::TouchNeeded
                            }
                            other => DeviceProgress::OtherKeepAlive(other),
                        };
                        (call.progress)(p);
                    }
                    HostEvent::Failed(e) => {
                        return Err(CtapError::from_host(
                            self.transport.path(),
                            ctap,
                            touch_needed,
                            e,
                        ))
                    }
                    _ => {}
                }
            }
            let timer = self.channel.poll_timeout().map(Instant::from_std);
            let sleep = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = call.cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    self.channel.cancel(now());
                }
                received = self.transport.recv_report(&mut buf) => match received {
                    Ok(n) => self.channel.handle_report(&buf[..n], now()),
                    Err(e) => {
                        self.needs_init = true;
                        return Err(e.into());
                    }
                },
                _ = sleep => self.channel.handle_timeout(now()),
            }
        }
    }
}

/// `now` for the state machine, read from the same clock its timers are armed on (tokio's).
///
/// Deadlines arrive as [`tokio::time::Instant`]s and the machine's timers are slept on with
/// `sleep_until`, so `now` must come from tokio's clock too: under `tokio::time::pause` (tests)
/// that clock jumps to each timer while the wall clock barely moves, and a wall-clock `now`
/// would never reach the deadline — the timer would fire forever without expiring anything.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Lets a `&mut impl CryptoRngCore` seed a `StdRng` (rand's `from_rng` wants an owned `RngCore`).
struct RngAdapter<'a, R: CryptoRngCore>(&'a mut R);

impl<R: CryptoRngCore> rand_core::RngCore for RngAdapter<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}
