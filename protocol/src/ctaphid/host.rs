//! The host (client) side of CTAPHID: channel allocation and one transaction at a time
//! (CTAP 2.1 §11.2.5–§11.2.9).
//!
//! [`HostChannel`] is a sans-IO state machine; see the [module docs](super) for the run loop.
//! It is deliberately tolerant of what it cannot attribute (reports for other channels, stale
//! continuations, INIT responses with another process's nonce: all counted in [`HostStats`] and
//! ignored) and strict about what it can (wrong command, bad SEQ, oversized BCNT, ERROR frames on
//! its channel: typed [`HostError`]s). It does not retry: `HostError::Busy` goes to the caller,
//! which decides how long to back off.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;

use super::codes::{Cid, Command, ErrorCode, KeepAliveStatus};
use super::error::{FrameError, HostError, Waiting};
use super::fragment::{fragment, Reassembler};
use super::info::DeviceInfo;
use super::packet::{Packet, Report, ReportLen};
use super::{CTAP2_ERR_KEEPALIVE_CANCEL, INIT_NONCE_LEN};

/// Host parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// Report length of the device.
    pub report_len: ReportLen,
    /// How long to wait for the device's final answer after sending CANCEL.
    pub cancel_grace: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig { report_len: ReportLen::DEFAULT, cancel_grace: Duration::from_millis(500) }
    }
}

/// Something the application must hear about.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// INIT completed; the channel is ready.
    Initialized(DeviceInfo),
    /// The device is still working; `UpNeeded` means "touch your key". Every one is surfaced.
    KeepAlive(KeepAliveStatus),
    /// The transaction completed.
    Response {
        /// The response command (the request's).
        cmd: Command,
        /// The response payload.
        payload: Vec<u8>,
    },
    /// The transaction (or INIT) failed; the channel is idle again.
    Failed(HostError),
}

/// Counters of reports that were ignored rather than fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostStats {
    /// Reports for another channel (other processes on the same hidraw node).
    pub foreign_frames: u64,
    /// Reports on our channel that belong to no transaction (late answers, stale continuations,
    /// INIT responses carrying another nonce).
    pub stray_frames: u64,
    /// Reports too short to parse.
    pub malformed_reports: u64,
    /// Keepalives received.
    pub keepalives: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    Deadline(Waiting),
    Caller,
}

#[derive(Debug, Clone)]
enum Pending {
    Idle,
    Init { nonce: [u8; INIT_NONCE_LEN], on: Cid, deadline: Instant },
    Transaction { cmd: Command, deadline: Instant, cancel: Option<(CancelReason, Instant)> },
}

/// The host end of one CTAPHID channel.
#[derive(Debug)]
pub struct HostChannel {
    config: HostConfig,
    info: Option<DeviceInfo>,
    pending: Pending,
    reassembler: Reassembler,
    transmit: VecDeque<Report>,
    events: VecDeque<HostEvent>,
    stats: HostStats,
}

impl HostChannel {
    /// A channel with no CID yet; call [`init`](Self::init) first.
    pub fn new(config: HostConfig) -> HostChannel {
        HostChannel {
            config,
            info: None,
            pending: Pending::Idle,
            reassembler: Reassembler::new(config.report_len),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: HostStats::default(),
        }
    }

    /// The allocated channel, once INIT succeeded.
    pub fn cid(&self) -> Option<Cid> {
        self.info.map(|i| i.cid)
    }

    /// What the last INIT response said.
    pub fn device_info(&self) -> Option<&DeviceInfo> {
        self.info.as_ref()
    }

    /// Counters of ignored reports.
    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// True when neither INIT nor a transaction is pending.
    pub fn is_idle(&self) -> bool {
        matches!(self.pending, Pending::Idle)
    }

    /// Sends INIT with a fresh nonce: on the broadcast channel to allocate a channel, or on our
    /// channel to resynchronise it (which makes the device abort whatever it was doing for us).
    pub fn init(
        &mut self,
        rng: &mut impl CryptoRngCore,
        deadline: Instant,
    ) -> Result<(), HostError> {
        if !self.is_idle() {
            return Err(HostError::InProgress);
        }
        let mut nonce = [0u8; INIT_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let on = self.cid().unwrap_or(Cid::BROADCAST);
        self.send_init(nonce, on, deadline);
        Ok(())
    }

    /// Forgets the allocated channel, so that the next [`init`](Self::init) uses broadcast.
    pub fn forget_channel(&mut self) {
        self.info = None;
    }

    /// Starts a transaction: queues the request reports; the outcome arrives as an event.
    /// `deadline` is absolute; keepalives never extend it.
    pub fn start_transaction(
        &mut self,
        cmd: Command,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<(), HostError> {
        let cid = self.cid().ok_or(HostError::NoChannel)?;
        if !self.is_idle() {
            return Err(HostError::InProgress);
        }
        if matches!(cmd, Command::Init | Command::Cancel | Command::KeepAlive | Command::Error) {
            return Err(HostError::CommandNotAllowed(cmd));
        }
        let reports = fragment(cid, cmd, payload, self.config.report_len).map_err(|e| match e {
            FrameError::PayloadTooLarge { len, max } => HostError::PayloadTooLarge { len, max },
            source => HostError::Frame { command: cmd, source },
        })?;
        self.transmit.extend(reports);
        self.reassembler.reset();
        self.pending = Pending::Transaction { cmd, deadline, cancel: None };
        Ok(())
    }

    /// Cancels the pending transaction (Ctrl-C, or another key won a touch-to-select). For CBOR
    /// and MSG this sends CANCEL and waits the grace period for the device's final answer.
    pub fn cancel(&mut self, now: Instant) {
        match self.pending {
            Pending::Idle => {}
            Pending::Init { .. } => self.fail(HostError::Cancelled { command: Command::Init }),
            Pending::Transaction { cmd, cancel: None, .. } => {
                self.begin_cancel(cmd, CancelReason::Caller, now)
            }
            Pending::Transaction { cancel: Some(_), .. } => {}
        }
    }

    /// Feeds one received report.
    pub fn handle_report(&mut self, report: &[u8], now: Instant) {
        // Deadlines are absolute: a stream of reports must not starve the timer.
        self.handle_timeout(now);
        let packet = match Packet::parse(report) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed_reports += 1;
                return;
            }
        };
        match self.pending.clone() {
            Pending::Idle => self.count_unattributed(packet.cid()),
            Pending::Init { nonce, on, .. } => self.on_init_report(packet, nonce, on),
            Pending::Transaction { cmd, cancel, .. } => {
                self.on_transaction_report(packet, cmd, cancel)
            }
        }
    }

    /// Fires timers whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.pending {
            Pending::Idle => {}
            Pending::Init { deadline, .. } => {
                if now >= deadline {
                    self.fail(HostError::Timeout {
                        command: Command::Init,
                        waiting: Waiting::InitResponse,
                    });
                }
            }
            Pending::Transaction { cmd, deadline, cancel: None } => {
                if now >= deadline {
                    let waiting = self.waiting();
                    self.begin_cancel(cmd, CancelReason::Deadline(waiting), now);
                }
            }
            Pending::Transaction { cmd, cancel: Some((reason, give_up_at)), .. } => {
                if now >= give_up_at {
                    self.fail(cancel_error(cmd, reason));
                }
            }
        }
    }

    /// The next report to write to the device.
    pub fn poll_transmit(&mut self) -> Option<Report> {
        self.transmit.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.pending {
            Pending::Idle => None,
            Pending::Init { deadline, .. } => Some(deadline),
            Pending::Transaction { deadline, cancel, .. } => {
                Some(cancel.map_or(deadline, |(_, at)| at))
            }
        }
    }

    fn send_init(&mut self, nonce: [u8; INIT_NONCE_LEN], on: Cid, deadline: Instant) {
        // An 8-byte payload always fits (max_payload >= 385).
        if let Ok(reports) = fragment(on, Command::Init, &nonce, self.config.report_len) {
            self.transmit.extend(reports);
        }
        self.reassembler.reset();
        self.pending = Pending::Init { nonce, on, deadline };
    }

    fn waiting(&self) -> Waiting {
        match self.reassembler.in_progress() {
            Some((_, _, received, expected)) => Waiting::Continuation { received, expected },
            None => Waiting::Response,
        }
    }

    fn begin_cancel(&mut self, cmd: Command, reason: CancelReason, now: Instant) {
        if !matches!(cmd, Command::Cbor | Command::Msg) {
            // Nothing to cancel on the device for PING/WINK/LOCK/vendor commands.
            return self.fail(cancel_error(cmd, reason));
        }
        if let Some(cid) = self.cid() {
            // CANCEL has no response (§11.2.9.1.5); the device answers the CBOR request instead.
            if let Ok(reports) = fragment(cid, Command::Cancel, &[], self.config.report_len) {
                self.transmit.extend(reports);
            }
        }
        if let Pending::Transaction { cancel, .. } = &mut self.pending {
            *cancel = Some((reason, now + self.config.cancel_grace));
        }
    }

    fn fail(&mut self, err: HostError) {
        self.finish(HostEvent::Failed(err));
    }

    fn finish(&mut self, event: HostEvent) {
        self.pending = Pending::Idle;
        self.reassembler.reset();
        self.events.push_back(event);
    }

    fn count_unattributed(&mut self, cid: Cid) {
        if Some(cid) == self.cid() {
            self.stats.stray_frames += 1;
        } else {
            self.stats.foreign_frames += 1;
        }
    }

    fn on_init_report(&mut self, packet: Packet<'_>, nonce: [u8; INIT_NONCE_LEN], on: Cid) {
        if packet.cid() != on {
            return self.count_unattributed(packet.cid());
        }
        if let Packet::Init(init) = packet {
            match init.command() {
                Command::Init => {}
                Command::Error => {
                    let code = init.data().first().copied().map(ErrorCode::from_u8);
                    match code {
                        // Our old channel is gone (device re-plugged): allocate a new one.
                        Some(ErrorCode::InvalidChannel) if on != Cid::BROADCAST => {
                            if let Pending::Init { deadline, .. } = self.pending {
                                self.info = None;
                                self.send_init(nonce, Cid::BROADCAST, deadline);
                            }
                        }
                        Some(ErrorCode::ChannelBusy) => self.fail(HostError::Busy),
                        // On broadcast an ERROR may answer another process's INIT.
                        Some(code) if on != Cid::BROADCAST => {
                            self.fail(HostError::Device { command: Command::Init, code })
                        }
                        _ => self.stats.stray_frames += 1,
                    }
                    return;
                }
                // Late answers to an aborted transaction: the reason for resyncing.
                _ => {
                    self.stats.stray_frames += 1;
                    return;
                }
            }
        }
        match self.reassembler.push(packet) {
            Ok(None) => {}
            Ok(Some(msg)) => match DeviceInfo::parse(&msg.payload) {
                Ok((got, info)) if got == nonce => {
                    self.info = Some(info);
                    self.finish(HostEvent::Initialized(info));
                }
                // Another process's INIT response on the broadcast channel.
                Ok(_) => self.stats.stray_frames += 1,
                Err(e) => self.fail(e),
            },
            Err(_) => {
                // Interleaved fragments of other processes' INIT responses: not ours to judge.
                self.reassembler.reset();
                self.stats.stray_frames += 1;
            }
        }
    }

    fn on_transaction_report(
        &mut self,
        packet: Packet<'_>,
        cmd: Command,
        cancel: Option<(CancelReason, Instant)>,
    ) {
        if Some(packet.cid()) != self.cid() {
            return self.stats.foreign_frames += 1;
        }
        if let Packet::Init(init) = packet {
            match init.command() {
                Command::KeepAlive => {
                    self.stats.keepalives += 1;
                    match init.data().first() {
                        Some(&b) if init.bcnt() >= 1 => {
                            self.events.push_back(HostEvent::KeepAlive(KeepAliveStatus::from_u8(b)))
                        }
                        _ => self.stats.malformed_reports += 1,
                    }
                    return;
                }
                Command::Error => {
                    let err = match init.data().first() {
                        Some(&b) if init.bcnt() == 1 => match ErrorCode::from_u8(b) {
                            ErrorCode::ChannelBusy => HostError::Busy,
                            code => HostError::Device { command: cmd, code },
                        },
                        _ => HostError::BadErrorFrame { len: init.bcnt() },
                    };
                    return self.fail(err);
                }
                got if got != cmd => {
                    return self.fail(HostError::UnexpectedCommand { expected: cmd, got });
                }
                _ => {}
            }
        }
        match self.reassembler.push(packet) {
            Ok(None) => {}
            Ok(Some(msg)) => {
                let cancelled = cmd == Command::Cbor && msg.payload == [CTAP2_ERR_KEEPALIVE_CANCEL];
                match cancel {
                    Some((reason, _)) if cancelled => self.fail(cancel_error(cmd, reason)),
                    _ => self.finish(HostEvent::Response { cmd: msg.cmd, payload: msg.payload }),
                }
            }
            // A leftover continuation of an earlier, abandoned response.
            Err(FrameError::ContinuationWithoutInit { .. }) => self.stats.stray_frames += 1,
            Err(source) => self.fail(HostError::Frame { command: cmd, source }),
        }
    }
}

fn cancel_error(cmd: Command, reason: CancelReason) -> HostError {
    match reason {
        CancelReason::Deadline(waiting) => HostError::Timeout { command: cmd, waiting },
        CancelReason::Caller => HostError::Cancelled { command: cmd },
    }
}
