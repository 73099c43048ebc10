//! Error classification shared by every layer of the protocol crate.
//!
//! Each module has its own `#[non_exhaustive]` error enum (one per layer, STYLE.md principle 5);
//! all of them implement [`Classify`] so the daemon and the CLI can say *who* is at fault and
//! *which stage* failed without matching on every variant.

use core::fmt;

/// Who is at fault for an error.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The other side (device, phone, tunnel, advert, desktop) sent something invalid or said no.
    Peer,
    /// The caller used the API wrongly (wrong phase, buffer too small, invalid argument).
    Caller,
    /// The environment (no adapter, permission denied, DNS); protocol/ itself produces it only
    /// for a crypto library failure (`HandshakeError::Backend`, feature `aws-lc`), and shares the
    /// classification with the IO layers.
    Environment,
}

/// The protocol stage an error happened in. Stable names: they appear in JSON output.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Parsing or building the QR payload / `FIDO:/` URL.
    Qr,
    /// Sealing or trial-opening a BLE advert (EID).
    Advert,
    /// Tunnel domain or URL construction/parsing.
    Tunnel,
    /// Noise handshake.
    Handshake,
    /// The phone's post-handshake message.
    PostHandshake,
    /// Encrypted data phase (Crypter, typed frames).
    Transport,
    /// Linking info (update message, signature, store).
    Linking,
    /// CTAPHID framing or transaction.
    CtapHid,
    /// CTAP2 encoding/decoding or an authenticator status.
    Ctap2,
    /// CBOR decoding.
    Cbor,
    /// The software authenticator.
    Authenticator,
}

impl Stage {
    /// Stable lower-case name, used in JSON (`"stage": "handshake"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Qr => "qr",
            Stage::Advert => "advert",
            Stage::Tunnel => "tunnel",
            Stage::Handshake => "handshake",
            Stage::PostHandshake => "post_handshake",
            Stage::Transport => "transport",
            Stage::Linking => "linking",
            Stage::CtapHid => "ctaphid",
            Stage::Ctap2 => "ctap2",
            Stage::Cbor => "cbor",
            Stage::Authenticator => "authenticator",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error type in this crate.
pub trait Classify {
    /// Who is at fault.
    fn fault(&self) -> Fault;
    /// Which stage failed.
    fn stage(&self) -> Stage;
}
