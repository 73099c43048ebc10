//! What travels inside the Crypter after the handshake (§8, §9): the phone's post-handshake
//! message, the typed frames of protocol revision 1, and update/linking messages.
//!
//! Parsers borrow from the decrypted plaintext; encoders produce CTAP2-canonical CBOR through
//! [`crate::cbor`]. Not here: encryption (`crypter`) or who may send what when (`session`, which
//! enforces e.g. that shutdown is desktop→phone only).

mod linking;
mod post_handshake;

pub use linking::{encode_padded_update, LinkingInfo, Update, PADDED_UPDATE_LEN};
pub use post_handshake::{Feature, PostHandshake, Revision};

use crate::cbor::CborError;
use crate::error::{Classify, Fault, Stage};
use core::fmt;

/// The 1-byte type of a revision-1 frame (§8.2).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Desktop → phone only; empty payload.
    Shutdown = 0,
    /// CTAP request (command ‖ CBOR) or response (status ‖ CBOR).
    Ctap = 1,
    /// CBOR map; key 1 = linking info.
    Update = 2,
    /// Digital Credentials JSON (feature "dc").
    Json = 3,
}

/// A decrypted revision-1 frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `[0x00]`. Any payload is ignored: the receiver is closing anyway.
    Shutdown,
    /// CTAP command or status byte followed by CBOR (never empty).
    Ctap(&'a [u8]),
    /// Update message CBOR.
    Update(&'a [u8]),
    /// JSON bytes (never empty).
    Json(&'a [u8]),
}

impl<'a> Frame<'a> {
    /// Parses a decrypted plaintext. Type ≥ 4 and empty CTAP/JSON payloads are errors (Chrome
    /// closes on the former, libwebauthn rejects the latter, §11.2 item 13).
    pub fn parse(plaintext: &'a [u8]) -> Result<Frame<'a>, MessageError> {
        let (&ty, payload) = plaintext.split_first().ok_or(MessageError::EmptyFrame)?;
        let frame = match ty {
            0 => Frame::Shutdown,
            1 => Frame::Ctap(payload),
            2 => Frame::Update(payload),
            3 => Frame::Json(payload),
            other => return Err(MessageError::UnknownFrameType(other)),
        };
        match frame {
            Frame::Ctap(p) | Frame::Json(p) if p.is_empty() => {
                Err(MessageError::EmptyPayload(frame.frame_type()))
            }
            _ => Ok(frame),
        }
    }

    /// The frame's type byte.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Shutdown => FrameType::Shutdown,
            Frame::Ctap(_) => FrameType::Ctap,
            Frame::Update(_) => FrameType::Update,
            Frame::Json(_) => FrameType::Json,
        }
    }
}

/// Errors in post-handshake, frame, update and linking messages.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// The post-handshake plaintext is not one CBOR item, and not a valid legacy revision-0
    /// padded form either (§8.1, §11.3: zeros ‖ 16-bit LE count, multiple of 512; or zeros ‖
    /// 8-bit count, multiple of 256; the rest exactly one CBOR item).
    Revision0PostHandshake,
    /// The post-handshake message is malformed.
    PostHandshake(CborError),
    /// Feature "ctap" is advertised but no getInfo (key 1) was sent, or getInfo sent without it.
    GetInfoMismatch,
    /// A decrypted frame with no type byte.
    EmptyFrame,
    /// A type byte ≥ 4.
    UnknownFrameType(u8),
    /// A CTAP or JSON frame with nothing after the type byte.
    EmptyPayload(FrameType),
    /// An update message that is not a CBOR map.
    Update(CborError),
    /// Linking info with a missing or mistyped field, or an invalid phone public key.
    Linking(CborError),
    /// The linking signature does not match this session's handshake hash.
    BadLinkingSignature,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Revision0PostHandshake => write!(
                f,
                "post-handshake message is neither one CBOR item (revision 1) nor validly padded \
                 CBOR (legacy revision 0)"
            ),
            MessageError::PostHandshake(e) => write!(f, "malformed post-handshake message: {e}"),
            MessageError::GetInfoMismatch => write!(
                f,
                "post-handshake getInfo (key 1) is inconsistent with the \"ctap\" feature"
            ),
            MessageError::EmptyFrame => write!(f, "decrypted frame has no type byte"),
            MessageError::UnknownFrameType(t) => write!(f, "unknown frame type {t}"),
            MessageError::EmptyPayload(t) => write!(f, "{t:?} frame has an empty payload"),
            MessageError::Update(e) => write!(f, "malformed update message: {e}"),
            MessageError::Linking(e) => write!(f, "malformed linking info: {e}"),
            MessageError::BadLinkingSignature => {
                write!(f, "linking signature does not verify over this session's handshake hash")
            }
        }
    }
}

impl std::error::Error for MessageError {}

impl Classify for MessageError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        match self {
            MessageError::Revision0PostHandshake
            | MessageError::PostHandshake(_)
            | MessageError::GetInfoMismatch => Stage::PostHandshake,
            MessageError::EmptyFrame
            | MessageError::UnknownFrameType(_)
            | MessageError::EmptyPayload(_)
            | MessageError::Update(_) => Stage::Transport,
            MessageError::Linking(_) | MessageError::BadLinkingSignature => Stage::Linking,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_reject() {
        assert_eq!(Frame::parse(&[0]), Ok(Frame::Shutdown));
        assert_eq!(Frame::parse(&[1, 2, 0xa0]), Ok(Frame::Ctap(&[2, 0xa0])));
        assert_eq!(Frame::parse(&[2, 0xa0]), Ok(Frame::Update(&[0xa0])));
        assert_eq!(Frame::parse(b"\x03{}"), Ok(Frame::Json(b"{}")));
        assert_eq!(Frame::parse(&[]), Err(MessageError::EmptyFrame));
        assert_eq!(Frame::parse(&[4, 1]), Err(MessageError::UnknownFrameType(4)));
        assert_eq!(Frame::parse(&[1]), Err(MessageError::EmptyPayload(FrameType::Ctap)));
        let e = Frame::parse(&[3]).unwrap_err();
        assert_eq!((e.stage(), e.fault()), (Stage::Transport, Fault::Peer));
    }
}
