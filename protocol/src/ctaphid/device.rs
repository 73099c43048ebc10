//! The device (authenticator) side of CTAPHID (CTAP 2.1 §11.2.5–§11.2.9): channel allocation,
//! reassembly with a per-message timeout, the built-in commands (INIT, PING, WINK, LOCK, CANCEL)
//! and the busy/lock rules. CBOR, MSG and vendor requests go to the application as
//! [`DeviceEvent::Request`]; it answers with [`DeviceState::respond`].
//!
//! This is what a virtual USB key wraps; it does not implement CTAP2 itself (that is
//! [`crate::authenticator`]). One transaction at a time, as on every real key: while one channel
//! is receiving or being processed, other channels get `ERR_CHANNEL_BUSY`. INIT that fits in one
//! packet is answered even while busy, because allocating a channel does not touch the
//! transaction in progress and a host must be able to get a channel to learn it is busy.
//!
//! Any byte sequence is survivable: every report either changes state according to the rules
//! below or is ignored/answered with an ERROR; nothing panics (see the proptest in this file).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;

use super::codes::{Capabilities, Cid, Command, ErrorCode, KeepAliveStatus};
use super::error::{DeviceError, FrameError};
use super::fragment::{fragment, Message, Reassembler};
use super::info::DeviceInfo;
use super::packet::{Packet, Report, ReportLen};
use super::{INIT_NONCE_LEN, PROTOCOL_VERSION};

/// Longest LOCK the spec allows, in seconds (§11.2.9.2.4).
pub const MAX_LOCK_SECONDS: u8 = 10;

/// Device parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Report length from our HID descriptor.
    pub report_len: ReportLen,
    /// Device version (major, minor, build) for INIT responses.
    pub version: (u8, u8, u8),
    /// Capability flags for INIT responses; also decide which commands are accepted.
    pub capabilities: Capabilities,
    /// How long to wait for the next continuation packet before `ERR_MSG_TIMEOUT`.
    pub msg_timeout: Duration,
    /// Channels remembered at once; the oldest idle one is forgotten when full.
    pub max_channels: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            report_len: ReportLen::DEFAULT,
            version: (1, 0, 0),
            capabilities: Capabilities::WINK | Capabilities::CBOR | Capabilities::NMSG,
            msg_timeout: Duration::from_millis(500),
            max_channels: 16,
        }
    }
}

/// Something the application must act on.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A CBOR, MSG or vendor request; answer with [`DeviceState::respond`].
    Request {
        /// The channel to answer on.
        cid: Cid,
        /// The command.
        cmd: Command,
        /// The request payload.
        payload: Vec<u8>,
    },
    /// The host asked the device to identify itself (blink).
    Wink {
        /// The channel that asked.
        cid: Cid,
    },
    /// The pending request on `cid` is cancelled (CANCEL, or INIT resync of that channel): for
    /// CBOR, answer with `CTAP2_ERR_KEEPALIVE_CANCEL`; after a resync the answer is refused.
    Cancel {
        /// The channel.
        cid: Cid,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Idle,
    Receiving { cid: Cid, deadline: Instant },
    Processing { cid: Cid },
}

/// The device end of CTAPHID.
#[derive(Debug)]
pub struct DeviceState {
    config: DeviceConfig,
    channels: VecDeque<Cid>,
    busy: Busy,
    reassembler: Reassembler,
    lock: Option<(Cid, Instant)>,
    transmit: VecDeque<Report>,
    events: VecDeque<DeviceEvent>,
}

impl DeviceState {
    /// A device with no channels allocated.
    pub fn new(config: DeviceConfig) -> DeviceState {
        DeviceState {
            config,
            channels: VecDeque::new(),
            busy: Busy::Idle,
            reassembler: Reassembler::new(config.report_len),
            lock: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The allocated channels, oldest first.
    pub fn channels(&self) -> impl Iterator<Item = Cid> + '_ {
        self.channels.iter().copied()
    }

    /// The channel whose request the application is processing.
    pub fn processing(&self) -> Option<Cid> {
        match self.busy {
            Busy::Processing { cid } => Some(cid),
            _ => None,
        }
    }

    /// Feeds one report from the host. `rng` draws new channel IDs.
    pub fn handle_report(&mut self, report: &[u8], now: Instant, rng: &mut impl CryptoRngCore) {
        self.handle_timeout(now);
        // Too short to carry a CID: there is nobody to answer.
        let Ok(packet) = Packet::parse(report) else {
            return;
        };
        match packet {
            Packet::Init(init) => {
                let cid = init.cid();
                let cmd = init.command();
                if cid == Cid::RESERVED {
                    return self.send_error(cid, ErrorCode::InvalidChannel);
                }
                if matches!(self.lock, Some((holder, _)) if holder != cid) {
                    return self.send_error(cid, ErrorCode::ChannelBusy);
                }
                if cmd == Command::Init {
                    if let Some(nonce) = init.data().get(..init.bcnt()) {
                        return self.handle_init(cid, nonce, rng);
                    }
                }
                if cid == Cid::BROADCAST && cmd != Command::Init {
                    return self.send_error(cid, ErrorCode::InvalidChannel);
                }
                if cid != Cid::BROADCAST && !self.channels.contains(&cid) {
                    return self.send_error(cid, ErrorCode::InvalidChannel);
                }
                match self.busy {
                    Busy::Receiving { cid: other, .. } | Busy::Processing { cid: other }
                        if other != cid =>
                    {
                        // CANCEL is never answered, not even with BUSY.
                        if cmd != Command::Cancel {
                            self.send_error(cid, ErrorCode::ChannelBusy);
                        }
                    }
                    Busy::Receiving { .. } => {
                        self.set_idle();
                        if cmd != Command::Cancel {
                            self.send_error(cid, ErrorCode::InvalidSeq);
                        }
                    }
                    Busy::Processing { .. } => {
                        if cmd == Command::Cancel {
                            self.events.push_back(DeviceEvent::Cancel { cid });
                        } else {
                            self.send_error(cid, ErrorCode::ChannelBusy);
                        }
                    }
                    Busy::Idle if cmd == Command::Cancel => {}
                    Busy::Idle => self.push_packet(packet, now, rng),
                }
            }
            Packet::Cont(cont) => {
                // Spurious continuations (no message in progress on that channel) are ignored.
                if matches!(self.busy, Busy::Receiving { cid, .. } if cid == cont.cid()) {
                    self.push_packet(packet, now, rng);
                }
            }
        }
    }

    /// Fires the message timeout and lock expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Busy::Receiving { cid, deadline } = self.busy {
            if now >= deadline {
                self.set_idle();
                self.send_error(cid, ErrorCode::MsgTimeout);
            }
        }
        if matches!(self.lock, Some((_, until)) if now >= until) {
            self.lock = None;
        }
    }

    /// Answers the pending request on `cid` (any command, normally the request's own).
    pub fn respond(&mut self, cid: Cid, cmd: Command, payload: &[u8]) -> Result<(), DeviceError> {
        if self.processing() != Some(cid) {
            return Err(DeviceError::NoPendingRequest { cid });
        }
        let reports = fragment(cid, cmd, payload, self.config.report_len).map_err(|e| match e {
            FrameError::PayloadTooLarge { len, max } => DeviceError::PayloadTooLarge { len, max },
            _ => DeviceError::PayloadTooLarge {
                len: payload.len(),
                max: self.config.report_len.max_payload(),
            },
        })?;
        self.transmit.extend(reports);
        self.set_idle();
        Ok(())
    }

    /// Answers the pending request on `cid` with a CTAPHID error.
    pub fn respond_error(&mut self, cid: Cid, code: ErrorCode) -> Result<(), DeviceError> {
        self.respond(cid, Command::Error, &[code.to_u8()])
    }

    /// Sends a keepalive for the pending request on `cid`; call it about every 100 ms while
    /// processing (CTAP 2.1 §11.2.9.2.1).
    pub fn keepalive(&mut self, cid: Cid, status: KeepAliveStatus) -> Result<(), DeviceError> {
        if self.processing() != Some(cid) {
            return Err(DeviceError::NoPendingRequest { cid });
        }
        self.queue(cid, Command::KeepAlive, &[status.to_u8()]);
        Ok(())
    }

    /// The next report to send to the host.
    pub fn poll_transmit(&mut self) -> Option<Report> {
        self.transmit.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let msg = match self.busy {
            Busy::Receiving { deadline, .. } => Some(deadline),
            _ => None,
        };
        let lock = self.lock.map(|(_, until)| until);
        match (msg, lock) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn push_packet(&mut self, packet: Packet<'_>, now: Instant, rng: &mut impl CryptoRngCore) {
        let cid = packet.cid();
        match self.reassembler.push(packet) {
            Ok(None) => {
                self.busy = Busy::Receiving { cid, deadline: now + self.config.msg_timeout }
            }
            Ok(Some(msg)) => {
                self.set_idle();
                self.dispatch(msg, now, rng);
            }
            Err(FrameError::BcntTooLarge { .. }) => {
                self.set_idle();
                self.send_error(cid, ErrorCode::InvalidLen);
            }
            Err(_) => {
                self.set_idle();
                self.send_error(cid, ErrorCode::InvalidSeq);
            }
        }
    }

    fn dispatch(&mut self, msg: Message, now: Instant, rng: &mut impl CryptoRngCore) {
        let Message { cid, cmd, payload } = msg;
        let caps = self.config.capabilities;
        match cmd {
            Command::Init => self.handle_init(cid, &payload, rng),
            Command::Ping => self.queue(cid, Command::Ping, &payload),
            Command::Wink if !caps.contains(Capabilities::WINK) => {
                self.send_error(cid, ErrorCode::InvalidCmd)
            }
            Command::Wink if !payload.is_empty() => self.send_error(cid, ErrorCode::InvalidLen),
            Command::Wink => {
                self.events.push_back(DeviceEvent::Wink { cid });
                self.queue(cid, Command::Wink, &[]);
            }
            Command::Lock => match payload.as_slice() {
                [0] => {
                    self.lock = None;
                    self.queue(cid, Command::Lock, &[]);
                }
                [s] if *s <= MAX_LOCK_SECONDS => {
                    self.lock = Some((cid, now + Duration::from_secs(u64::from(*s))));
                    self.queue(cid, Command::Lock, &[]);
                }
                [_] => self.send_error(cid, ErrorCode::InvalidPar),
                _ => self.send_error(cid, ErrorCode::InvalidLen),
            },
            Command::Cbor if !caps.contains(Capabilities::CBOR) => {
                self.send_error(cid, ErrorCode::InvalidCmd)
            }
            Command::Cbor if payload.is_empty() => self.send_error(cid, ErrorCode::InvalidLen),
            Command::Msg if caps.contains(Capabilities::NMSG) => {
                self.send_error(cid, ErrorCode::InvalidCmd)
            }
            Command::Cbor | Command::Msg | Command::Vendor(_) => {
                self.busy = Busy::Processing { cid };
                self.events.push_back(DeviceEvent::Request { cid, cmd, payload });
            }
            // CANCEL with a payload: still nothing pending here, still never answered.
            Command::Cancel => {}
            _ => self.send_error(cid, ErrorCode::InvalidCmd),
        }
    }

    fn handle_init(&mut self, cid: Cid, nonce: &[u8], rng: &mut impl CryptoRngCore) {
        let Ok(nonce) = <[u8; INIT_NONCE_LEN]>::try_from(nonce) else {
            return self.send_error(cid, ErrorCode::InvalidLen);
        };
        let assigned = if cid == Cid::BROADCAST {
            match self.allocate(rng) {
                Some(new) => new,
                None => return self.send_error(cid, ErrorCode::Other),
            }
        } else if self.channels.contains(&cid) {
            // Resync (§11.2.9.1.3): abort whatever this channel had in progress.
            match self.busy {
                Busy::Receiving { cid: c, .. } if c == cid => self.set_idle(),
                Busy::Processing { cid: c } if c == cid => {
                    self.set_idle();
                    self.events.push_back(DeviceEvent::Cancel { cid });
                }
                _ => {}
            }
            cid
        } else {
            return self.send_error(cid, ErrorCode::InvalidChannel);
        };
        let (major, minor, build) = self.config.version;
        let info = DeviceInfo {
            cid: assigned,
            protocol_version: PROTOCOL_VERSION,
            major,
            minor,
            build,
            capabilities: self.config.capabilities,
        };
        self.queue(cid, Command::Init, &info.encode(&nonce));
    }

    /// Draws a fresh CID; forgets the oldest channel that is not busy when the table is full.
    fn allocate(&mut self, rng: &mut impl CryptoRngCore) -> Option<Cid> {
        // A healthy RNG collides with probability ~16/2^32; bounded so a broken one cannot hang us.
        let new = (0..32)
            .map(|_| Cid(rng.next_u32()))
            .find(|c| c.is_allocatable() && !self.channels.contains(c))?;
        while self.channels.len() >= self.config.max_channels.max(1) {
            let busy = self.busy_cid();
            let lock = self.lock.map(|(c, _)| c);
            let victim = self.channels.iter().position(|c| Some(*c) != busy && Some(*c) != lock)?;
            self.channels.remove(victim);
        }
        self.channels.push_back(new);
        Some(new)
    }

    fn busy_cid(&self) -> Option<Cid> {
        match self.busy {
            Busy::Idle => None,
            Busy::Receiving { cid, .. } | Busy::Processing { cid } => Some(cid),
        }
    }

    fn set_idle(&mut self) {
        self.busy = Busy::Idle;
        self.reassembler.reset();
    }

    fn send_error(&mut self, cid: Cid, code: ErrorCode) {
        self.queue(cid, Command::Error, &[code.to_u8()]);
    }

    /// Queues a device-generated message; all of them are far below the maximum payload.
    fn queue(&mut self, cid: Cid, cmd: Command, payload: &[u8]) {
        if let Ok(reports) = fragment(cid, cmd, payload, self.config.report_len) {
            self.transmit.extend(reports);
        }
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
