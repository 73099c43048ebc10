//! The one error type of the virtual USB key: start-up failures (socket, state file, PIN) and the
//! fatal run-time ones (the state file can no longer be written, the socket failed).
//!
//! Classification follows STYLE.md principle 5: a bad flag or a corrupt state file the user
//! pointed us at is [`Fault::Caller`], the OS refusing a socket or a write is
//! [`Fault::Environment`]. All of them happen at [`Stage::Authenticator`].

use std::io;
use std::path::PathBuf;

use cablebridge_protocol::error::{Classify, Fault, Stage};

/// Errors of the virtual USB key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VirtualKeyError {
    /// The UDP listen socket could not be bound.
    #[error("virtual key: cannot listen on UDP {listen}: {source}")]
    Bind {
        /// The requested listen address.
        listen: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The state file exists but is not a state this key wrote. It is left untouched.
    #[error(
        "virtual key: state file {} is corrupt ({reason}); it was not modified — move it away \
         to start with a fresh key",
        path.display()
    )]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The state file could not be read or written (the error names the file).
    #[error("virtual key: state file: {0}")]
    State(#[from] crate::store::StoreError),
    /// The U2F attestation certificate could not be built (`u2f_only` keys).
    #[error("virtual key: cannot build the U2F attestation certificate: {0}")]
    U2fSetup(String),
    /// The initial PIN violates CTAP 2.1 §6.5.5.5 (4..=63 bytes, at least 4 code points).
    #[error("virtual key: initial PIN rejected: {0}")]
    BadPin(&'static str),
    /// Receiving or sending on the UDP socket failed for a reason other than a vanished peer.
    #[error("virtual key: UDP socket failed while {action}: {source}")]
    Socket {
        /// What the key was doing.
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The key's task ended abnormally (it panicked or was aborted).
    #[error("virtual key: the key task ended abnormally: {0}")]
    Task(String),
}

impl Classify for VirtualKeyError {
    fn fault(&self) -> Fault {
        match self {
            VirtualKeyError::CorruptState { .. } | VirtualKeyError::BadPin(_) => Fault::Caller,
            VirtualKeyError::Bind { .. }
            | VirtualKeyError::State(_)
            | VirtualKeyError::Socket { .. }
            | VirtualKeyError::Task(_)
            | VirtualKeyError::U2fSetup(_) => Fault::Environment,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Authenticator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_state_names_the_file_and_blames_the_caller() {
        let e = VirtualKeyError::CorruptState {
            path: PathBuf::from("/tmp/key.cbor"),
            reason: "not CBOR".into(),
        };
        let text = e.to_string();
        assert!(text.contains("/tmp/key.cbor") && text.contains("not CBOR"), "{text}");
        assert_eq!(e.fault(), Fault::Caller);
        assert_eq!(e.stage(), Stage::Authenticator);
    }
}
