//! [`CeremonyError`]: the one error a ceremony ends with, whatever layer failed.
//!
//! It keeps three things a caller acts on: the [`CeremonyStage`] that was in progress, a kind
//! that decides the exit code, and one human-readable line that says what failed (the lower
//! error's own message, which already names the peer, file or host). Lower errors are mapped
//! through their [`Classify`] fault: peer faults and authenticator statuses make the ceremony fail
//! (exit 1), the environment (no Bluetooth, DNS, TCP, files) is exit 3, bad input exit 2.

use std::fmt;
use std::time::Duration;

use cablebridge_protocol::ctap2::Ctap2Error;
use cablebridge_protocol::error::{Classify, Fault};

use super::CeremonyStage;

/// Why a ceremony failed, as far as the exit code is concerned.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyErrorKind {
    /// The authenticator answered with an error status (user declined, no credentials, ...).
    Authenticator,
    /// A stage's timeout expired.
    Timeout,
    /// The phone, tunnel server or device misbehaved (bad frame, failed handshake, closed early).
    Peer,
    /// The machine or network failed us (no Bluetooth, DNS, TCP, TLS roots, unwritable state).
    Environment,
    /// The options or input are wrong (bad base64url, unknown linked phone, insecure URL).
    Usage,
}

impl CeremonyErrorKind {
    /// Stable name for JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyErrorKind::Authenticator => "authenticator",
            CeremonyErrorKind::Timeout => "timeout",
            CeremonyErrorKind::Peer => "peer",
            CeremonyErrorKind::Environment => "environment",
            CeremonyErrorKind::Usage => "usage",
        }
    }
}

/// A failed ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyError {
    /// The stage in progress when it failed.
    pub stage: CeremonyStage,
    /// The class of failure.
    pub kind: CeremonyErrorKind,
    /// One line for people (never contains secrets).
    pub message: String,
}

impl CeremonyError {
    /// A new error.
    pub fn new(stage: CeremonyStage, kind: CeremonyErrorKind, message: impl Into<String>) -> Self {
        CeremonyError { stage, kind, message: message.into() }
    }

    /// Bad options or input (exit 2).
    pub fn usage(stage: CeremonyStage, message: impl Into<String>) -> Self {
        Self::new(stage, CeremonyErrorKind::Usage, message)
    }

    /// The environment failed (exit 3).
    pub fn environment(stage: CeremonyStage, message: impl Into<String>) -> Self {
        Self::new(stage, CeremonyErrorKind::Environment, message)
    }

    /// The peer misbehaved (exit 1).
    pub fn peer(stage: CeremonyStage, message: impl Into<String>) -> Self {
        Self::new(stage, CeremonyErrorKind::Peer, message)
    }

    /// `what` did not happen within `after` (exit 1).
    pub fn timeout(stage: CeremonyStage, what: &str, after: Duration) -> Self {
        Self::new(
            stage,
            CeremonyErrorKind::Timeout,
            format!("timed out after {} ms {what}", after.as_millis()),
        )
    }

    /// Maps any classified lower error; its fault decides the kind. `context` says what we were
    /// doing ("opening the tunnel").
    pub fn classified<E: Classify + fmt::Display + ?Sized>(
        stage: CeremonyStage,
        context: &str,
        e: &E,
    ) -> Self {
        let kind = match e.fault() {
            Fault::Environment => CeremonyErrorKind::Environment,
            Fault::Caller => CeremonyErrorKind::Usage,
            _ => CeremonyErrorKind::Peer,
        };
        Self::new(stage, kind, format!("{context}: {e}"))
    }

    /// A CTAP2 error: an error status is the authenticator saying no; anything else is a
    /// malformed response.
    pub fn ctap2(stage: CeremonyStage, e: &Ctap2Error) -> Self {
        match e {
            Ctap2Error::Status(s) => Self::new(
                stage,
                CeremonyErrorKind::Authenticator,
                format!("the authenticator refused: {s}"),
            ),
            other => Self::classified(stage, "the authenticator's response is invalid", other),
        }
    }

    /// Process exit code: 1 ceremony failed, 2 usage, 3 environment.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            CeremonyErrorKind::Usage => 2,
            CeremonyErrorKind::Environment => 3,
            _ => 1,
        }
    }

    /// `{"event":"error","stage":..,"kind":..,"message":..,"exit_code":..}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "error",
            "stage": self.stage.as_str(),
            "kind": self.kind.as_str(),
            "message": self.message,
            "exit_code": self.exit_code(),
        })
    }
}

impl fmt::Display for CeremonyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.stage, self.message)
    }
}

impl std::error::Error for CeremonyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use cablebridge_protocol::ctap2::StatusCode;

    #[test]
    fn kinds_map_to_exit_codes() {
        let s = CeremonyStage::UserResponse;
        let refused = CeremonyError::ctap2(s, &Ctap2Error::Status(StatusCode::OperationDenied));
        assert_eq!(refused.kind, CeremonyErrorKind::Authenticator);
        assert_eq!(refused.exit_code(), 1);
        assert!(refused.message.contains("OPERATION_DENIED"), "{}", refused.message);
        let malformed = CeremonyError::ctap2(s, &Ctap2Error::MissingField("authData"));
        assert_eq!(malformed.kind, CeremonyErrorKind::Peer);
        assert_eq!(CeremonyError::timeout(s, "waiting", Duration::from_secs(1)).exit_code(), 1);
        assert_eq!(CeremonyError::usage(s, "x").exit_code(), 2);
        assert_eq!(CeremonyError::environment(s, "x").exit_code(), 3);
        let j = refused.to_json();
        assert_eq!(j["event"], "error");
        assert_eq!(j["stage"], "user_response");
    }
}
