//! Errors of the CTAPHID layer, one enum per role plus the framing errors both share.
//!
//! Device misbehaviour is [`Fault::Peer`]; API misuse is [`Fault::Caller`]. All of them are
//! [`Stage::CtapHid`].

use super::codes::{Cid, Command, ErrorCode};
use crate::error::{Classify, Fault, Stage};

/// A framing or reassembly error (CTAP 2.1 §11.2.4).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The report is too short to hold a packet header.
    #[error("CTAPHID report of {len} bytes is shorter than the {min}-byte packet header")]
    ReportTooShort {
        /// Bytes received.
        len: usize,
        /// Header length needed.
        min: usize,
    },
    /// The peer announced a message longer than the report length allows.
    #[error("CTAPHID message announces {bcnt} bytes, more than the {max}-byte maximum")]
    BcntTooLarge {
        /// Announced length.
        bcnt: usize,
        /// Maximum for this report length.
        max: usize,
    },
    /// The caller asked to send a payload longer than the report length allows.
    #[error("CTAPHID payload of {len} bytes exceeds the {max}-byte maximum")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Maximum for this report length.
        max: usize,
    },
    /// A continuation packet arrived out of order.
    #[error("CTAPHID continuation packet out of sequence on channel {cid}: expected {expected}, got {got}")]
    BadSequence {
        /// The channel.
        cid: Cid,
        /// Expected SEQ.
        expected: u8,
        /// Received SEQ.
        got: u8,
    },
    /// A continuation packet arrived with no message in progress.
    #[error("CTAPHID continuation packet on channel {cid} with no message in progress")]
    ContinuationWithoutInit {
        /// The channel.
        cid: Cid,
    },
    /// A new initialization packet arrived on the channel while a message was being reassembled.
    #[error("CTAPHID initialization packet on channel {cid} in the middle of a message")]
    InitDuringMessage {
        /// The channel.
        cid: Cid,
    },
    /// A packet for another channel reached a reassembler bound to one channel.
    #[error("CTAPHID packet for channel {got} while reassembling on channel {expected}")]
    WrongChannel {
        /// Channel being reassembled.
        expected: Cid,
        /// Channel of the packet.
        got: Cid,
    },
}

impl Classify for FrameError {
    fn fault(&self) -> Fault {
        match self {
            FrameError::PayloadTooLarge { .. } => Fault::Caller,
            _ => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        Stage::CtapHid
    }
}

/// What the host was waiting for when its deadline passed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The INIT response (channel allocation or resync).
    InitResponse,
    /// The first packet of the response.
    Response,
    /// Continuation packets of a response already started (the device stopped mid-message).
    Continuation {
        /// Payload bytes received so far.
        received: usize,
        /// Payload bytes announced.
        expected: usize,
    },
}

impl core::fmt::Display for Waiting {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Waiting::InitResponse => f.write_str("the INIT response"),
            Waiting::Response => f.write_str("the response"),
            Waiting::Continuation { received, expected } => {
                write!(f, "the rest of the response ({received} of {expected} bytes received)")
            }
        }
    }
}

/// A failed host transaction.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The device is busy with another channel (`ERR_CHANNEL_BUSY`); retry after a short pause.
    #[error("CTAPHID device is busy with another channel; retry")]
    Busy,
    /// The device answered with a CTAPHID error code.
    #[error("CTAPHID device answered {command} with {code}")]
    Device {
        /// The command of the transaction.
        command: Command,
        /// The device's error code.
        code: ErrorCode,
    },
    /// The response could not be reassembled.
    #[error("CTAPHID response to {command} is malformed: {source}")]
    Frame {
        /// The command of the transaction.
        command: Command,
        /// What was wrong.
        source: FrameError,
    },
    /// The device answered with a command other than the one sent (or ERROR/KEEPALIVE).
    #[error("CTAPHID device answered {expected} with {got}")]
    UnexpectedCommand {
        /// Command sent.
        expected: Command,
        /// Command received.
        got: Command,
    },
    /// The INIT response is malformed.
    #[error("CTAPHID INIT response is malformed: {reason}")]
    BadInitResponse {
        /// What was wrong.
        reason: &'static str,
    },
    /// An ERROR frame without its one-byte code.
    #[error("CTAPHID ERROR frame with a {len}-byte payload instead of 1")]
    BadErrorFrame {
        /// Payload length.
        len: usize,
    },
    /// The transaction deadline passed.
    #[error("CTAPHID {command} timed out waiting for {waiting}")]
    Timeout {
        /// The command of the transaction.
        command: Command,
        /// What had not arrived.
        waiting: Waiting,
    },
    /// The caller cancelled the transaction.
    #[error("CTAPHID {command} cancelled")]
    Cancelled {
        /// The command of the transaction.
        command: Command,
    },
    /// `start_transaction` before a channel was allocated.
    #[error("CTAPHID transaction started before a channel was allocated (send INIT first)")]
    NoChannel,
    /// A second transaction while one is in progress.
    #[error("CTAPHID transaction started while another is in progress")]
    InProgress,
    /// A command the host may not send through `start_transaction`.
    #[error("CTAPHID command {0} cannot be sent as a transaction")]
    CommandNotAllowed(Command),
    /// The payload is too large for the report length.
    #[error("CTAPHID request payload of {len} bytes exceeds the {max}-byte maximum")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Maximum.
        max: usize,
    },
}

impl Classify for HostError {
    fn fault(&self) -> Fault {
        match self {
            HostError::NoChannel
            | HostError::InProgress
            | HostError::CommandNotAllowed(_)
            | HostError::PayloadTooLarge { .. }
            | HostError::Cancelled { .. } => Fault::Caller,
            HostError::Frame { source, .. } => source.fault(),
            _ => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        Stage::CtapHid
    }
}

/// Misuse of the device-side API by the application.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No request is pending on that channel (the host may have resynchronised it meanwhile).
    #[error("no CTAPHID request is pending on channel {cid}")]
    NoPendingRequest {
        /// The channel.
        cid: Cid,
    },
    /// The response is too large for the report length.
    #[error("CTAPHID response payload of {len} bytes exceeds the {max}-byte maximum")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Maximum.
        max: usize,
    },
}

impl Classify for DeviceError {
    fn fault(&self) -> Fault {
        Fault::Caller
    }
    fn stage(&self) -> Stage {
        Stage::CtapHid
    }
}
