//! The one error type of the CTAP2-over-HID client, [`CtapError`].
//!
//! It folds the three layers a security-key operation crosses — the HID transport
//! ([`HidError`]), CTAPHID ([`HostError`]) and CTAP2 (authenticator [`StatusCode`]s and
//! [`Ctap2Error`] decode failures) — into variants a person can act on: "touch your key" timed
//! out, the key is busy with another client, the PIN is wrong with N retries left, the key needs
//! a PIN, it holds no credential for this site. CTAP2 statuses are turned into human text here
//! and only here ([`status_text`]).
//!
//! Not here: exit codes. The CLI maps [`Classify::fault`] (Environment → 3, Caller → 2, Peer → 1).

use std::time::Duration;

use cablebridge_protocol::ctap2::{self, Ctap2Error, StatusCode};
use cablebridge_protocol::ctaphid::{Command as HidCommand, HostError, Waiting};
use cablebridge_protocol::error::{Classify, Fault, Stage};

use crate::hid::HidError;

/// A failed security-key operation.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CtapError {
    /// The HID transport failed (permissions, unplugged, simulator not running).
    #[error(transparent)]
    Hid(#[from] HidError),
    /// CTAPHID framing or a CTAPHID error frame from the device.
    #[error("{device}: {source}")]
    Channel {
        /// Device path or address.
        device: String,
        /// What the channel state machine reported.
        #[source]
        source: HostError,
    },
    /// The device stayed busy with another channel through every retry.
    #[error(
        "{device}: device busy (another client is using it) after {attempts} attempts over \
         {waited:?}; finish the other client's operation and retry"
    )]
    Busy {
        /// Device path or address.
        device: String,
        /// How many times we asked.
        attempts: u32,
        /// How long we kept trying.
        waited: Duration,
    },
    /// The deadline passed; CANCEL was sent (for CBOR) so the key stops blinking.
    #[error("{device}: {} timed out waiting for {waiting}{}", op_name(*.command, *.ctap), timeout_hint(*.command, *.touch_needed))]
    Timeout {
        /// Device path or address.
        device: String,
        /// CTAPHID command of the transaction.
        command: HidCommand,
        /// CTAP2 command, for CBOR transactions.
        ctap: Option<ctap2::Command>,
        /// What had not arrived.
        waiting: Waiting,
        /// Whether the last keepalive said "user presence needed".
        touch_needed: bool,
    },
    /// The caller cancelled (Ctrl-C, or another key won touch-to-select); CANCEL was sent.
    #[error("{device}: {} cancelled", op_name(*.command, *.ctap))]
    Cancelled {
        /// Device path or address.
        device: String,
        /// CTAPHID command of the transaction.
        command: HidCommand,
        /// CTAP2 command, for CBOR transactions.
        ctap: Option<ctap2::Command>,
    },
    /// The authenticator answered with an error status.
    #[error("{device}: {} failed: {}", .command.name(), status_text(*.status, *.retries))]
    Status {
        /// Device path or address.
        device: String,
        /// The CTAP2 command.
        command: ctap2::Command,
        /// The status byte.
        status: StatusCode,
        /// PIN retries left, when known (PIN_INVALID).
        retries: Option<u64>,
    },
    /// The authenticator's answer did not decode.
    #[error("{device}: malformed answer to {}: {source}", .command.name())]
    Decode {
        /// Device path or address.
        device: String,
        /// The CTAP2 command.
        command: ctap2::Command,
        /// What was wrong.
        #[source]
        source: Ctap2Error,
    },
    /// The key lacks a feature the operation needs.
    #[error("{device}: {what}")]
    Unsupported {
        /// Device path or address.
        device: String,
        /// What is missing, as a sentence.
        what: String,
    },
    /// The key speaks only CTAP1/U2F and the request needs CTAP2.
    #[error("{device}: this is a U2F-only (CTAP1) key: {what}")]
    U2fOnly {
        /// Device path or address.
        device: String,
        /// What it cannot do, as a sentence.
        what: String,
    },
    /// A CTAP1/U2F exchange failed (a status word other than success, a malformed answer).
    #[error("{device}: U2F {op} failed: {source}")]
    U2f {
        /// Device path or address.
        device: String,
        /// The U2F operation.
        op: &'static str,
        /// What went wrong.
        #[source]
        source: cablebridge_protocol::ctap1::U2fError,
    },
    /// The operation needs user verification and none is available.
    #[error("{device}: this key requires a PIN: use --pin-stdin or CABLEBRIDGE_PIN")]
    PinRequired {
        /// Device path or address.
        device: String,
    },
    /// The key reports forcePINChange (set through authenticatorConfig setMinPINLength): it
    /// issues no PIN token until the PIN is changed.
    #[error(
        "{device}: this key requires a PIN change before it can be used (forcePINChange): run \
         `cablebridge pin change`"
    )]
    PinChangeRequired {
        /// Device path or address.
        device: String,
    },
    /// A PIN typed by the user breaks the CTAP rules (too short, too long, NUL).
    #[error("invalid PIN: {0}")]
    InvalidPin(Ctap2Error),
    /// No FIDO key is attached (or none could be opened).
    #[error("no FIDO security key found{hint}")]
    NoDevice {
        /// Extra explanation (e.g. permission problems), starting with "; " when present.
        hint: String,
    },
    /// No key was attached and none was plugged in before the deadline (or Ctrl-C).
    #[error(
        "no FIDO security key was plugged in within {}{}",
        humantime_secs(*.waited),
        if *.cancelled { " (cancelled)" } else { "" }
    )]
    NoKeyInserted {
        /// How long we waited for a hot-plug event.
        waited: Duration,
        /// The caller cancelled (Ctrl-C) rather than the deadline passing.
        cancelled: bool,
    },
}

fn humantime_secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn timeout_hint(command: HidCommand, touch_needed: bool) -> &'static str {
    match (command, touch_needed) {
        (HidCommand::Init, _) => " (is the key plugged in / the simulator running?)",
        (_, true) => " (the key was waiting for a touch)",
        _ => "",
    }
}

fn op_name(command: HidCommand, ctap: Option<ctap2::Command>) -> String {
    match ctap {
        Some(c) => c.name().to_owned(),
        None => format!("CTAPHID {command}"),
    }
}

/// Human text for a CTAP2 status, with the remedy where there is one.
pub fn status_text(status: StatusCode, retries: Option<u64>) -> String {
    match status {
        StatusCode::PinInvalid => match retries {
            Some(n) => format!("wrong PIN ({n} retries left)"),
            None => "wrong PIN".to_owned(),
        },
        StatusCode::PinBlocked => {
            "PIN blocked (no retries left): the key must be reset, which deletes its credentials"
                .to_owned()
        }
        StatusCode::PinAuthBlocked => {
            "too many wrong PINs in a row: unplug and re-insert the key, then retry".to_owned()
        }
        StatusCode::PinNotSet => {
            "no PIN is set on this key: set one with `cablebridge pin set`".to_owned()
        }
        StatusCode::PuatRequired => {
            "this key requires a PIN: use --pin-stdin or CABLEBRIDGE_PIN".to_owned()
        }
        StatusCode::PinPolicyViolation => {
            "the new PIN violates the key's PIN policy (too short?)".to_owned()
        }
        StatusCode::NoCredentials => "the key holds no credential for this request".to_owned(),
        StatusCode::CredentialExcluded => {
            "the key already holds a credential for this account (excludeCredentials)".to_owned()
        }
        StatusCode::OperationDenied => "the user declined on the key".to_owned(),
        StatusCode::NotAllowed => {
            "not allowed: reset only works within 10 seconds of plugging the key in and needs a \
             touch; re-plug the key and retry at once"
                .to_owned()
        }
        StatusCode::UserActionTimeout => "the key timed out waiting for a touch".to_owned(),
        StatusCode::KeyStoreFull => "the key's credential storage is full".to_owned(),
        StatusCode::UvBlocked => "built-in user verification is blocked: use the PIN".to_owned(),
        StatusCode::UvInvalid => "built-in user verification failed".to_owned(),
        StatusCode::UnsupportedAlgorithm => "the key supports none of the algorithms".to_owned(),
        other => other.to_string(),
    }
}

impl CtapError {
    /// Wraps a channel error, turning Timeout/Cancelled into their own variants.
    pub(crate) fn from_host(
        device: &str,
        ctap: Option<ctap2::Command>,
        touch_needed: bool,
        source: HostError,
    ) -> CtapError {
        let device = device.to_owned();
        match source {
            HostError::Timeout { command, waiting } => {
                CtapError::Timeout { device, command, ctap, waiting, touch_needed }
            }
            HostError::Cancelled { command } => CtapError::Cancelled { device, command, ctap },
            source => CtapError::Channel { device, source },
        }
    }

    /// The authenticator status, when the key answered with one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            CtapError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for the timeout and cancel variants.
    pub fn is_timeout_or_cancel(&self) -> bool {
        matches!(
            self,
            CtapError::Timeout { .. }
                | CtapError::Cancelled { .. }
                | CtapError::NoKeyInserted { .. }
        )
    }
}

impl Classify for CtapError {
    fn fault(&self) -> Fault {
        match self {
            CtapError::Hid(e) => e.fault(),
            CtapError::Busy { .. } | CtapError::NoDevice { .. } => Fault::Environment,
            // No answer to INIT at all: nothing is there (simulator not running, dead key).
            CtapError::Timeout { command: HidCommand::Init, .. } => Fault::Environment,
            CtapError::Cancelled { .. } | CtapError::InvalidPin(_) => Fault::Caller,
            CtapError::PinRequired { .. } | CtapError::PinChangeRequired { .. } => Fault::Caller,
            CtapError::U2fOnly { .. } => Fault::Caller,
            CtapError::NoKeyInserted { cancelled: true, .. } => Fault::Caller,
            // Like a touch that never came: the user did not act in time.
            CtapError::NoKeyInserted { cancelled: false, .. } => Fault::Peer,
            CtapError::Status { status: StatusCode::PuatRequired, .. } => Fault::Caller,
            CtapError::Channel { source, .. } => source.fault(),
            _ => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        match self {
            CtapError::Hid(_)
            | CtapError::Channel { .. }
            | CtapError::Busy { .. }
            | CtapError::NoDevice { .. }
            | CtapError::NoKeyInserted { .. } => Stage::CtapHid,
            CtapError::Timeout { ctap: None, .. } | CtapError::Cancelled { ctap: None, .. } => {
                Stage::CtapHid
            }
            _ => Stage::Ctap2,
        }
    }
}

/// Result alias of this module.
pub type Result<T, E = CtapError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_advice() {
        let e = CtapError::Status {
            device: "udp:127.0.0.1:1".into(),
            command: ctap2::Command::GetAssertion,
            status: StatusCode::PinInvalid,
            retries: Some(5),
        };
        assert_eq!(
            e.to_string(),
            "udp:127.0.0.1:1: authenticatorGetAssertion failed: wrong PIN (5 retries left)"
        );
        assert_eq!(e.fault(), Fault::Peer);
        assert_eq!(e.stage(), Stage::Ctap2);
        assert!(status_text(StatusCode::PuatRequired, None).contains("--pin-stdin"));
        assert!(status_text(StatusCode::NotAllowed, None).contains("10 seconds"));
    }

    #[test]
    fn host_timeouts_become_typed_timeouts() {
        let e = CtapError::from_host(
            "d",
            Some(ctap2::Command::MakeCredential),
            true,
            HostError::Timeout { command: HidCommand::Cbor, waiting: Waiting::Response },
        );
        assert!(matches!(e, CtapError::Timeout { touch_needed: true, .. }));
        assert!(e.to_string().contains("waiting for a touch"), "{e}");
        let c = CtapError::from_host(
            "d",
            None,
            false,
            HostError::Cancelled { command: HidCommand::Wink },
        );
        assert!(matches!(c, CtapError::Cancelled { .. }));
        assert_eq!(c.stage(), Stage::CtapHid);
    }
}
