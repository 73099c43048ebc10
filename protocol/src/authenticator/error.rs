//! The authenticator's error types.
//!
//! Every failure inside a command handler is a [`crate::ctap2::StatusCode`] (CTAP 2.1 §8.2); the
//! response bytes are `status ‖ CBOR`. Request-decoding failures map through
//! [`crate::ctap2::Ctap2Error::to_status`]. [`AuthenticatorError`] is only for misuse of the Rust API
//! (a stale [`super::PendingOp`]) and [`StoreError`] for the persistent store.

use crate::error::{Classify, Fault, Stage};
use core::fmt;

/// Errors from the authenticator's Rust API (not CTAP statuses, which are responses).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticatorError {
    /// [`super::Authenticator::complete`] was given a ticket that is no longer pending (another
    /// request, a power cycle or a reset superseded it).
    StalePending,
    /// The credential store refused a commit.
    Store(StoreError),
}

impl fmt::Display for AuthenticatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthenticatorError::StalePending => {
                write!(f, "authenticator: the pending user-presence request is no longer current")
            }
            AuthenticatorError::Store(e) => write!(f, "authenticator: {e}"),
        }
    }
}

impl std::error::Error for AuthenticatorError {}

impl Classify for AuthenticatorError {
    fn fault(&self) -> Fault {
        match self {
            AuthenticatorError::StalePending => Fault::Caller,
            AuthenticatorError::Store(e) => e.fault(),
        }
    }
    fn stage(&self) -> Stage {
        Stage::Authenticator
    }
}

/// Errors from a [`super::CredentialStore`] or from importing an exported state.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The exported state bytes are malformed; names the field.
    Corrupt(&'static str),
    /// The backing storage failed to persist the new state (the old state stays in force).
    CommitFailed(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt(what) => write!(f, "credential store state is corrupt: {what}"),
            StoreError::CommitFailed(why) => write!(f, "credential store commit failed: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl Classify for StoreError {
    fn fault(&self) -> Fault {
        match self {
            StoreError::Corrupt(_) => Fault::Caller,
            StoreError::CommitFailed(_) => Fault::Environment,
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
    fn errors_classify_and_name_what_failed() {
        assert_eq!(AuthenticatorError::StalePending.fault(), Fault::Caller);
        assert!(StoreError::Corrupt("credentials").to_string().contains("credentials"));
    }
}
