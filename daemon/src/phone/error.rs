//! Errors of the virtual phone, each naming its stage (`Classify`).

use crate::ctap::CtapError;
use crate::store::StoreError;
use crate::tunnel::client::TunnelClientError;
use cablebridge_protocol::authenticator::AuthenticatorError;
use cablebridge_protocol::error::{Classify, Fault, Stage};
use cablebridge_protocol::hybrid::domain::DomainError;
use cablebridge_protocol::hybrid::session::SessionError;
use cablebridge_protocol::hybrid::tunnel::TunnelError;
use core::fmt;
use std::time::Duration;

/// Why a phone session failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum PhoneError {
    /// Opening or using the tunnel failed.
    Tunnel(TunnelClientError),
    /// The advert sink could not be opened.
    Sink {
        /// The sink (`unix:…`).
        sink: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The hybrid session failed (handshake, Crypter, frames).
    Session(SessionError),
    /// The desktop did not send what was expected in time.
    Timeout {
        /// What we were waiting for.
        stage: Stage,
        /// How long we waited.
        after: Duration,
    },
    /// The desktop closed the tunnel before the session ended.
    DesktopClosed {
        /// What we were waiting for.
        stage: Stage,
    },
    /// A linked desktop's client payload was malformed.
    ClientPayload(TunnelError),
    /// A linked desktop named a link id this phone did not issue under that contact.
    UnknownLink {
        /// The link id (hex; public: it travels in the client payload).
        link_id: String,
    },
    /// The tunnel domain id has no host name.
    Domain(DomainError),
    /// The state file could not be read or written.
    State(StoreError),
    /// The identity key could not be derived, or no link is stored.
    Identity(String),
    /// The software authenticator's API failed (not a CTAP status: those are responses).
    Authenticator(AuthenticatorError),
    /// The session was cancelled (Ctrl-C, or the desktop left while the authenticator waited).
    Cancelled {
        /// What was running.
        stage: Stage,
    },
    /// The USB security key behind the bridge failed (unplugged, not answering, garbled).
    Key(CtapError),
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneError::Tunnel(e) => write!(f, "phone tunnel: {e}"),
            PhoneError::Sink { sink, source } => {
                write!(f, "advert sink {sink} cannot be opened: {source}")
            }
            PhoneError::Session(e) => write!(f, "phone session: {e}"),
            PhoneError::Timeout { stage, after } => {
                write!(f, "desktop sent nothing for {} ms (stage {stage})", after.as_millis())
            }
            PhoneError::DesktopClosed { stage } => {
                write!(f, "desktop closed the tunnel early (stage {stage})")
            }
            PhoneError::ClientPayload(e) => write!(f, "desktop client payload: {e}"),
            PhoneError::UnknownLink { link_id } => {
                write!(f, "desktop named link {link_id}, which this phone did not issue")
            }
            PhoneError::Domain(e) => write!(f, "tunnel domain: {e}"),
            PhoneError::State(e) => e.fmt(f),
            PhoneError::Identity(e) => write!(f, "phone identity: {e}"),
            PhoneError::Authenticator(e) => e.fmt(f),
            PhoneError::Cancelled { stage } => write!(f, "phone session cancelled (stage {stage})"),
            PhoneError::Key(e) => write!(f, "security key behind the bridge: {e}"),
        }
    }
}

impl std::error::Error for PhoneError {}

impl Classify for PhoneError {
    fn fault(&self) -> Fault {
        match self {
            PhoneError::Tunnel(e) => e.fault(),
            PhoneError::Session(e) => e.fault(),
            PhoneError::Domain(e) => e.fault(),
            PhoneError::Timeout { .. }
            | PhoneError::DesktopClosed { .. }
            | PhoneError::ClientPayload(_)
            | PhoneError::UnknownLink { .. } => Fault::Peer,
            PhoneError::Sink { .. } | PhoneError::State(_) | PhoneError::Identity(_) => {
                Fault::Environment
            }
            PhoneError::Authenticator(_) | PhoneError::Cancelled { .. } => Fault::Caller,
            PhoneError::Key(e) => e.fault(),
        }
    }
    fn stage(&self) -> Stage {
        match self {
            PhoneError::Tunnel(_)
            | PhoneError::ClientPayload(_)
            | PhoneError::UnknownLink { .. }
            | PhoneError::Domain(_) => Stage::Tunnel,
            PhoneError::Sink { .. } => Stage::Advert,
            PhoneError::Session(e) => e.stage(),
            PhoneError::Timeout { stage, .. } | PhoneError::DesktopClosed { stage } => *stage,
            PhoneError::State(_) | PhoneError::Identity(_) => Stage::Linking,
            PhoneError::Authenticator(_) => Stage::Authenticator,
            PhoneError::Cancelled { stage } => *stage,
            PhoneError::Key(e) => e.stage(),
        }
    }
}

impl From<TunnelClientError> for PhoneError {
    fn from(e: TunnelClientError) -> Self {
        PhoneError::Tunnel(e)
    }
}
impl From<SessionError> for PhoneError {
    fn from(e: SessionError) -> Self {
        PhoneError::Session(e)
    }
}
impl From<CtapError> for PhoneError {
    fn from(e: CtapError) -> Self {
        PhoneError::Key(e)
    }
}
impl From<StoreError> for PhoneError {
    fn from(e: StoreError) -> Self {
        PhoneError::State(e)
    }
}
