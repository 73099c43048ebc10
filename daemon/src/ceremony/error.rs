//! [`CeremonyError`]: the one error a ceremony ends with, whatever layer failed.
//!
//! It keeps what a caller acts on: the [`CeremonyStage`] that was in progress, who is at fault
//! (the protocol's [`Fault`]: peer, caller or environment), a finer [`CeremonyErrorKind`]
//! (authenticator said no, timeout, cancelled, ...), and one human-readable line that says what
//! failed (the lower error's own message, which already names the peer, file or host). Lower
//! errors are mapped through their [`Classify`] fault. The exit status a failure maps to is decided
//! here once ([`CeremonyError::exit_code`], [`exit_code_for_fault`]) for the CLI and the daemon.

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
    /// The caller cancelled the ceremony (Ctrl-C, a control client's `ceremony.cancel`).
    Cancelled,
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
            CeremonyErrorKind::Cancelled => "cancelled",
        }
    }

    /// Who is at fault for an error of this kind when nothing more precise is known.
    pub fn default_fault(self) -> Fault {
        match self {
            CeremonyErrorKind::Usage | CeremonyErrorKind::Cancelled => Fault::Caller,
            CeremonyErrorKind::Environment => Fault::Environment,
            _ => Fault::Peer,
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
    /// Who is at fault (the protocol's taxonomy).
    pub fault: Fault,
    /// One line for people (never contains secrets).
    pub message: String,
}

/// The exit status (`cablebridge`'s exit codes; the daemon's `exit_code` field) of a failure
/// classified only by who is at fault: the caller's input 2, the environment 3, the peer 1.
/// The one copy of this rule; [`CeremonyError::exit_code`] refines it for ceremonies.
pub fn exit_code_for_fault(fault: Fault) -> u8 {
    match fault {
        Fault::Caller => 2,
        Fault::Environment => 3,
        _ => 1,
    }
}

impl CeremonyError {
    /// The exit status this failure maps to, for the CLI and the daemon alike: the
    /// authenticator saying no, a timeout or a cancel is a failed ceremony (1); otherwise the
    /// fault decides ([`exit_code_for_fault`]).
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            CeremonyErrorKind::Authenticator
            | CeremonyErrorKind::Timeout
            | CeremonyErrorKind::Cancelled => 1,
            _ => exit_code_for_fault(self.fault),
        }
    }

    /// A new error.
    pub fn new(stage: CeremonyStage, kind: CeremonyErrorKind, message: impl Into<String>) -> Self {
        CeremonyError { stage, kind, fault: kind.default_fault(), message: message.into() }
    }

    /// The caller cancelled while `stage` was in progress.
    pub fn cancelled(stage: CeremonyStage) -> Self {
        Self::new(stage, CeremonyErrorKind::Cancelled, "cancelled")
    }

    /// Bad options or input.
    pub fn usage(stage: CeremonyStage, message: impl Into<String>) -> Self {
        Self::new(stage, CeremonyErrorKind::Usage, message)
    }

    /// The environment failed.
    pub fn environment(stage: CeremonyStage, message: impl Into<String>) -> Self {
        Self::new(stage, CeremonyErrorKind::Environment, message)
    }

    /// The peer misbehaved.
    pub fn peer(stage: CeremonyStage, message: impl Into<String>) -> Self {
        Self::new(stage, CeremonyErrorKind::Peer, message)
    }

    /// `what` did not happen within `after`.
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
        let fault = e.fault();
        let kind = match fault {
            Fault::Environment => CeremonyErrorKind::Environment,
            Fault::Caller => CeremonyErrorKind::Usage,
            _ => CeremonyErrorKind::Peer,
        };
        CeremonyError { stage, kind, fault, message: format!("{context}: {e}") }
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

    /// `{"event":"error","stage":..,"kind":..,"fault":..,"message":..}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "error",
            "stage": self.stage.as_str(),
            "kind": self.kind.as_str(),
            "fault": fault_str(self.fault),
            "message": self.message,
        })
    }
}

fn fault_str(f: Fault) -> &'static str {
    match f {
        Fault::Caller => "caller",
        Fault::Environment => "environment",
        _ => "peer",
    }
}

impl Classify for CeremonyError {
    fn fault(&self) -> Fault {
        self.fault
    }
    fn stage(&self) -> cablebridge_protocol::error::Stage {
        self.stage.protocol_stage()
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
    fn kinds_and_faults() {
        let s = CeremonyStage::UserResponse;
        let refused = CeremonyError::ctap2(s, &Ctap2Error::Status(StatusCode::OperationDenied));
        assert_eq!((refused.kind, refused.fault), (CeremonyErrorKind::Authenticator, Fault::Peer));
        assert!(refused.message.contains("OPERATION_DENIED"), "{}", refused.message);
        let malformed = CeremonyError::ctap2(s, &Ctap2Error::MissingField("authData"));
        assert_eq!(malformed.kind, CeremonyErrorKind::Peer);
        assert_eq!(CeremonyError::usage(s, "x").fault, Fault::Caller);
        assert_eq!(CeremonyError::environment(s, "x").fault, Fault::Environment);
        assert_eq!(CeremonyError::cancelled(s).kind, CeremonyErrorKind::Cancelled);
        let j = refused.to_json();
        assert_eq!(j["event"], "error");
        assert_eq!(j["stage"], "user_response");
        assert_eq!(j["fault"], "peer");
    }
}
