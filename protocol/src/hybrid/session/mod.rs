//! Sans-IO hybrid session state machines over `eid`, `noise`, `crypter` and `messages` (§1.1,
//! §5, §7–§9), from the pairing secret to shutdown.
//!
//! One type per phase, consumed on transition (STYLE.md principle 3):
//!
//! * Pairing ([`pairing`](DesktopPairing)): [`DesktopPairing::from_qr`] / `from_link` → matched
//!   advert ([`DesktopPairing::offer_advert`], or the multi-session [`AdvertMatcher`]) →
//!   `start_handshake`; [`PhonePairing::qr`] / `linked` → advert → `respond`. The QR secret, link
//!   secret and PSK stay inside these types.
//! * Desktop: [`DesktopHandshake`] → (msg 2) → [`DesktopAwaitingPostHandshake`] → [`DesktopOpen`]
//!   → (`send_ctap`, once) → [`DesktopAwaitingResponse`] → (`shutdown`) → [`DesktopClosed`].
//! * Phone: [`PhoneHandshaken::respond_qr`] / `respond_linked` (msg 1) → (`send_post_handshake`) →
//!   [`PhoneOpen`].
//!
//! Drive them like every state machine in this crate: feed one received WebSocket message, send
//! whatever ciphertext comes back, then feed the next. Any error is fatal for the connection;
//! methods taking `&mut self` refuse further use after one ([`SessionError::Failed`]). Timers (the
//! 3-minute wait for late updates after shutdown, §8.4) belong to the driver.

mod desktop;
pub mod matcher;
mod pairing;
mod phone;

pub use desktop::{
    DesktopAwaitingPostHandshake, DesktopAwaitingResponse, DesktopClosed, DesktopEvent,
    DesktopHandshake, DesktopOpen,
};
pub use matcher::{AdvertMatcher, MatchOutcome};
pub use pairing::{DesktopPairing, PhonePairing};
pub use phone::{PhoneEvent, PhoneFrame, PhoneHandshaken, PhoneOpen};

use crate::error::{Classify, Fault, Stage};
use crate::hybrid::crypter::CrypterError;
use crate::hybrid::messages::{FrameType, MessageError};
use crate::hybrid::noise::HandshakeError;
use core::fmt;

/// CTAP command the desktop answers from the cached post-handshake getInfo (§8.1).
pub const CTAP_GET_INFO: u8 = crate::ctap2::Command::GetInfo.to_u8();

/// Every error of a hybrid session, each naming its stage through [`Classify`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The Noise handshake failed.
    Handshake(HandshakeError),
    /// Sealing or opening a frame failed.
    Crypter(CrypterError),
    /// A message was malformed.
    Message(MessageError),
    /// A well-formed frame the receiver's role forbids at this point (a phone's shutdown, a CTAP
    /// response nobody asked for, an unsupported frame type for the negotiated features).
    UnexpectedFrame {
        /// The offending frame's type.
        frame: FrameType,
        /// Why it is not allowed.
        why: &'static str,
    },
    /// `authenticatorGetInfo` is answered locally from the post-handshake message, never sent.
    GetInfoIsLocal,
    /// The phone did not announce the "ctap" feature.
    CtapNotSupported,
    /// The phone did not announce the "dc" feature (absent features mean CTAP only, §8.1), or
    /// speaks revision 0 (no typed frames, so no JSON): no Digital Credentials request.
    DcNotSupported,
    /// A Digital Credentials request or reply that is empty or not UTF-8 (§8.2 type 3).
    BadJson,
    /// A linking update needs a QR session (the signature is keyed by the desktop's QR key).
    LinkingNeedsQrSession,
    /// An earlier error (or a shutdown) ended this session.
    Failed,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Handshake(e) => e.fmt(f),
            SessionError::Crypter(e) => e.fmt(f),
            SessionError::Message(e) => e.fmt(f),
            SessionError::UnexpectedFrame { frame, why } => {
                write!(f, "unexpected {frame:?} frame: {why}")
            }
            SessionError::GetInfoIsLocal => write!(
                f,
                "getInfo is answered from the cached post-handshake message, not sent to the phone"
            ),
            SessionError::CtapNotSupported => write!(f, "the phone did not announce CTAP support"),
            SessionError::DcNotSupported => write!(
                f,
                "the phone did not announce the \"dc\" feature: it takes no Digital Credentials \
                 requests (absent features mean CTAP only)"
            ),
            SessionError::BadJson => {
                write!(f, "a Digital Credentials message must be non-empty UTF-8 JSON")
            }
            SessionError::LinkingNeedsQrSession => {
                write!(f, "linking info can only be sent in a QR-initiated session")
            }
            SessionError::Failed => write!(f, "the hybrid session already failed or shut down"),
        }
    }
}

impl std::error::Error for SessionError {}

impl Classify for SessionError {
    fn fault(&self) -> Fault {
        match self {
            SessionError::Handshake(e) => e.fault(),
            SessionError::Crypter(e) => e.fault(),
            SessionError::Message(e) => e.fault(),
            SessionError::UnexpectedFrame { .. }
            | SessionError::CtapNotSupported
            | SessionError::DcNotSupported => Fault::Peer,
            SessionError::BadJson => Fault::Caller,
            SessionError::GetInfoIsLocal
            | SessionError::LinkingNeedsQrSession
            | SessionError::Failed => Fault::Caller,
        }
    }
    fn stage(&self) -> Stage {
        match self {
            SessionError::Handshake(e) => e.stage(),
            SessionError::Crypter(e) => e.stage(),
            SessionError::Message(e) => e.stage(),
            SessionError::LinkingNeedsQrSession => Stage::Linking,
            SessionError::CtapNotSupported | SessionError::DcNotSupported => Stage::PostHandshake,
            _ => Stage::Transport,
        }
    }
}

impl From<HandshakeError> for SessionError {
    fn from(e: HandshakeError) -> Self {
        SessionError::Handshake(e)
    }
}
impl From<CrypterError> for SessionError {
    fn from(e: CrypterError) -> Self {
        SessionError::Crypter(e)
    }
}
impl From<MessageError> for SessionError {
    fn from(e: MessageError) -> Self {
        SessionError::Message(e)
    }
}

/// Copies `ciphertext` into the reusable `scratch` buffer and opens it there. Before the buffer
/// grows its old contents are wiped, so the block the allocator frees (or copies from) holds no
/// earlier plaintext.
fn open_into(
    crypter: &mut crate::hybrid::crypter::Crypter,
    scratch: &mut Vec<u8>,
    ciphertext: &[u8],
) -> Result<usize, SessionError> {
    if scratch.capacity() < ciphertext.len() {
        zeroize::Zeroize::zeroize(scratch);
    }
    scratch.clear();
    scratch.extend_from_slice(ciphertext);
    Ok(crypter.open_in_place(scratch)?)
}
