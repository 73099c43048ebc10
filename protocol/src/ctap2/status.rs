//! CTAP2 status codes (CTAP 2.1 §8.2 "Status codes"), mapped in one place.
//!
//! The first byte of every CTAP2 response is a status; [`StatusCode`] names every code the 2.1
//! spec defines (plus the CTAP 2.0 codes 2.1 retired, which older keys still send). Codes the spec
//! does not name — extension (0xE0..=0xEF) and vendor (0xF0..=0xFF) ranges included — become
//! [`StatusCode::Other`] so that nothing a device sends is lost or rejected.
//!
//! This is not the CTAPHID error set (`ctaphid` has its own), although codes 0x01..=0x0B share
//! numbers with it.

use crate::error::{Classify, Fault, Stage};
use core::fmt;

/// A CTAP2 response status byte.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// `CTAP2_OK` (0x00): success.
    Ok,
    /// `CTAP1_ERR_INVALID_COMMAND` (0x01): the command is not a valid CTAP command.
    InvalidCommand,
    /// `CTAP1_ERR_INVALID_PARAMETER` (0x02): the command included an invalid parameter.
    InvalidParameter,
    /// `CTAP1_ERR_INVALID_LENGTH` (0x03): invalid message or item length.
    InvalidLength,
    /// `CTAP1_ERR_INVALID_SEQ` (0x04): invalid message sequencing.
    InvalidSeq,
    /// `CTAP1_ERR_TIMEOUT` (0x05): message timed out.
    Timeout,
    /// `CTAP1_ERR_CHANNEL_BUSY` (0x06): channel busy; the client should retry after a short delay.
    ChannelBusy,
    /// `CTAP1_ERR_LOCK_REQUIRED` (0x0A): command requires a channel lock.
    LockRequired,
    /// `CTAP1_ERR_INVALID_CHANNEL` (0x0B): command not allowed on this channel id.
    InvalidChannel,
    /// `CTAP2_ERR_CBOR_UNEXPECTED_TYPE` (0x11): invalid or unexpected CBOR type in the request.
    CborUnexpectedType,
    /// `CTAP2_ERR_INVALID_CBOR` (0x12): error when parsing the CBOR request.
    InvalidCbor,
    /// `CTAP2_ERR_MISSING_PARAMETER` (0x14): a required parameter is missing.
    MissingParameter,
    /// `CTAP2_ERR_LIMIT_EXCEEDED` (0x15): a limit for the number of items was exceeded.
    LimitExceeded,
    /// `CTAP2_ERR_UNSUPPORTED_EXTENSION` (0x16): unsupported extension (CTAP 2.0).
    UnsupportedExtension,
    /// `CTAP2_ERR_FP_DATABASE_FULL` (0x17): the fingerprint database is full.
    FpDatabaseFull,
    /// `CTAP2_ERR_LARGE_BLOB_STORAGE_FULL` (0x18): the large-blob storage is full.
    LargeBlobStorageFull,
    /// `CTAP2_ERR_CREDENTIAL_EXCLUDED` (0x19): a credential in the exclude list is already on this authenticator.
    CredentialExcluded,
    /// `CTAP2_ERR_PROCESSING` (0x21): processing (lengthy operation is in progress).
    Processing,
    /// `CTAP2_ERR_INVALID_CREDENTIAL` (0x22): the credential is not valid for this authenticator.
    InvalidCredential,
    /// `CTAP2_ERR_USER_ACTION_PENDING` (0x23): authentication is waiting for user interaction.
    UserActionPending,
    /// `CTAP2_ERR_OPERATION_PENDING` (0x24): processing, lengthy operation is in progress.
    OperationPending,
    /// `CTAP2_ERR_NO_OPERATIONS` (0x25): no request is pending.
    NoOperations,
    /// `CTAP2_ERR_UNSUPPORTED_ALGORITHM` (0x26): none of the requested algorithms is supported.
    UnsupportedAlgorithm,
    /// `CTAP2_ERR_OPERATION_DENIED` (0x27): the user or the authenticator denied the operation.
    OperationDenied,
    /// `CTAP2_ERR_KEY_STORE_FULL` (0x28): internal key storage is full.
    KeyStoreFull,
    /// `CTAP2_ERR_NOT_BUSY` (0x29): no outstanding operations (CTAP 2.0).
    NotBusy,
    /// `CTAP2_ERR_NO_OPERATION_PENDING` (0x2A): no outstanding operation (CTAP 2.0).
    NoOperationPending,
    /// `CTAP2_ERR_UNSUPPORTED_OPTION` (0x2B): an unsupported option was requested.
    UnsupportedOption,
    /// `CTAP2_ERR_INVALID_OPTION` (0x2C): an option is not valid for this command.
    InvalidOption,
    /// `CTAP2_ERR_KEEPALIVE_CANCEL` (0x2D): the pending operation was cancelled.
    KeepaliveCancel,
    /// `CTAP2_ERR_NO_CREDENTIALS` (0x2E): no valid credentials were provided or found.
    NoCredentials,
    /// `CTAP2_ERR_USER_ACTION_TIMEOUT` (0x2F): timed out waiting for user interaction.
    UserActionTimeout,
    /// `CTAP2_ERR_NOT_ALLOWED` (0x30): continuation command (such as getNextAssertion) not allowed.
    NotAllowed,
    /// `CTAP2_ERR_PIN_INVALID` (0x31): the PIN is wrong.
    PinInvalid,
    /// `CTAP2_ERR_PIN_BLOCKED` (0x32): the PIN is blocked (too many wrong attempts); the authenticator must be reset.
    PinBlocked,
    /// `CTAP2_ERR_PIN_AUTH_INVALID` (0x33): the PIN/UV auth parameter did not verify.
    PinAuthInvalid,
    /// `CTAP2_ERR_PIN_AUTH_BLOCKED` (0x34): PIN auth is blocked until the authenticator is power-cycled.
    PinAuthBlocked,
    /// `CTAP2_ERR_PIN_NOT_SET` (0x35): no PIN has been set.
    PinNotSet,
    /// `CTAP2_ERR_PUAT_REQUIRED` (0x36): a PIN/UV auth token is required for this operation.
    PuatRequired,
    /// `CTAP2_ERR_PIN_POLICY_VIOLATION` (0x37): the PIN does not satisfy the authenticator's PIN policy.
    PinPolicyViolation,
    /// `CTAP2_ERR_PIN_TOKEN_EXPIRED` (0x38): the PIN token expired (CTAP 2.0; reserved in 2.1).
    PinTokenExpired,
    /// `CTAP2_ERR_REQUEST_TOO_LARGE` (0x39): the request is larger than the authenticator can handle.
    RequestTooLarge,
    /// `CTAP2_ERR_ACTION_TIMEOUT` (0x3A): the current operation timed out.
    ActionTimeout,
    /// `CTAP2_ERR_UP_REQUIRED` (0x3B): user presence is required for this operation.
    UpRequired,
    /// `CTAP2_ERR_UV_BLOCKED` (0x3C): built-in user verification is blocked.
    UvBlocked,
    /// `CTAP2_ERR_INTEGRITY_FAILURE` (0x3D): an integrity check failed (e.g. large-blob hash).
    IntegrityFailure,
    /// `CTAP2_ERR_INVALID_SUBCOMMAND` (0x3E): the subcommand is invalid for this command.
    InvalidSubcommand,
    /// `CTAP2_ERR_UV_INVALID` (0x3F): built-in user verification failed (no match).
    UvInvalid,
    /// `CTAP2_ERR_UNAUTHORIZED_PERMISSION` (0x40): the PIN/UV auth token lacks the permission for this operation.
    UnauthorizedPermission,
    /// `CTAP1_ERR_OTHER` (0x7F): other unspecified error.
    OtherError,
    /// Any code the spec does not name (reserved, extension-specific 0xE0..=0xEF, vendor
    /// 0xF0..=0xFF).
    Other(u8),
}

impl StatusCode {
    /// Maps a wire byte to a status; never fails.
    pub fn from_u8(b: u8) -> Self {
        use StatusCode::*;
        match b {
            0x00 => Ok,
            0x01 => InvalidCommand,
            0x02 => InvalidParameter,
            0x03 => InvalidLength,
            0x04 => InvalidSeq,
            0x05 => Timeout,
            0x06 => ChannelBusy,
            0x0A => LockRequired,
            0x0B => InvalidChannel,
            0x11 => CborUnexpectedType,
            0x12 => InvalidCbor,
            0x14 => MissingParameter,
            0x15 => LimitExceeded,
            0x16 => UnsupportedExtension,
            0x17 => FpDatabaseFull,
            0x18 => LargeBlobStorageFull,
            0x19 => CredentialExcluded,
            0x21 => Processing,
            0x22 => InvalidCredential,
            0x23 => UserActionPending,
            0x24 => OperationPending,
            0x25 => NoOperations,
            0x26 => UnsupportedAlgorithm,
            0x27 => OperationDenied,
            0x28 => KeyStoreFull,
            0x29 => NotBusy,
            0x2A => NoOperationPending,
            0x2B => UnsupportedOption,
            0x2C => InvalidOption,
            0x2D => KeepaliveCancel,
            0x2E => NoCredentials,
            0x2F => UserActionTimeout,
            0x30 => NotAllowed,
            0x31 => PinInvalid,
            0x32 => PinBlocked,
            0x33 => PinAuthInvalid,
            0x34 => PinAuthBlocked,
            0x35 => PinNotSet,
            0x36 => PuatRequired,
            0x37 => PinPolicyViolation,
            0x38 => PinTokenExpired,
            0x39 => RequestTooLarge,
            0x3A => ActionTimeout,
            0x3B => UpRequired,
            0x3C => UvBlocked,
            0x3D => IntegrityFailure,
            0x3E => InvalidSubcommand,
            0x3F => UvInvalid,
            0x40 => UnauthorizedPermission,
            0x7F => OtherError,
            other => Other(other),
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        use StatusCode::*;
        match self {
            Ok => 0x00,
            InvalidCommand => 0x01,
            InvalidParameter => 0x02,
            InvalidLength => 0x03,
            InvalidSeq => 0x04,
            Timeout => 0x05,
            ChannelBusy => 0x06,
            LockRequired => 0x0A,
            InvalidChannel => 0x0B,
            CborUnexpectedType => 0x11,
            InvalidCbor => 0x12,
            MissingParameter => 0x14,
            LimitExceeded => 0x15,
            UnsupportedExtension => 0x16,
            FpDatabaseFull => 0x17,
            LargeBlobStorageFull => 0x18,
            CredentialExcluded => 0x19,
            Processing => 0x21,
            InvalidCredential => 0x22,
            UserActionPending => 0x23,
            OperationPending => 0x24,
            NoOperations => 0x25,
            UnsupportedAlgorithm => 0x26,
            OperationDenied => 0x27,
            KeyStoreFull => 0x28,
            NotBusy => 0x29,
            NoOperationPending => 0x2A,
            UnsupportedOption => 0x2B,
            InvalidOption => 0x2C,
            KeepaliveCancel => 0x2D,
            NoCredentials => 0x2E,
            UserActionTimeout => 0x2F,
            NotAllowed => 0x30,
            PinInvalid => 0x31,
            PinBlocked => 0x32,
            PinAuthInvalid => 0x33,
            PinAuthBlocked => 0x34,
            PinNotSet => 0x35,
            PuatRequired => 0x36,
            PinPolicyViolation => 0x37,
            PinTokenExpired => 0x38,
            RequestTooLarge => 0x39,
            ActionTimeout => 0x3A,
            UpRequired => 0x3B,
            UvBlocked => 0x3C,
            IntegrityFailure => 0x3D,
            InvalidSubcommand => 0x3E,
            UvInvalid => 0x3F,
            UnauthorizedPermission => 0x40,
            OtherError => 0x7F,
            Other(b) => b,
        }
    }

    /// Whether this is `CTAP2_OK`.
    pub fn is_ok(self) -> bool {
        self == StatusCode::Ok
    }

    /// The spec's constant name (`CTAP2_ERR_PIN_INVALID`), or a range name for unnamed codes.
    pub fn name(self) -> &'static str {
        use StatusCode::*;
        match self {
            Ok => "CTAP2_OK",
            InvalidCommand => "CTAP1_ERR_INVALID_COMMAND",
            InvalidParameter => "CTAP1_ERR_INVALID_PARAMETER",
            InvalidLength => "CTAP1_ERR_INVALID_LENGTH",
            InvalidSeq => "CTAP1_ERR_INVALID_SEQ",
            Timeout => "CTAP1_ERR_TIMEOUT",
            ChannelBusy => "CTAP1_ERR_CHANNEL_BUSY",
            LockRequired => "CTAP1_ERR_LOCK_REQUIRED",
            InvalidChannel => "CTAP1_ERR_INVALID_CHANNEL",
            CborUnexpectedType => "CTAP2_ERR_CBOR_UNEXPECTED_TYPE",
            InvalidCbor => "CTAP2_ERR_INVALID_CBOR",
            MissingParameter => "CTAP2_ERR_MISSING_PARAMETER",
            LimitExceeded => "CTAP2_ERR_LIMIT_EXCEEDED",
            UnsupportedExtension => "CTAP2_ERR_UNSUPPORTED_EXTENSION",
            FpDatabaseFull => "CTAP2_ERR_FP_DATABASE_FULL",
            LargeBlobStorageFull => "CTAP2_ERR_LARGE_BLOB_STORAGE_FULL",
            CredentialExcluded => "CTAP2_ERR_CREDENTIAL_EXCLUDED",
            Processing => "CTAP2_ERR_PROCESSING",
            InvalidCredential => "CTAP2_ERR_INVALID_CREDENTIAL",
            UserActionPending => "CTAP2_ERR_USER_ACTION_PENDING",
            OperationPending => "CTAP2_ERR_OPERATION_PENDING",
            NoOperations => "CTAP2_ERR_NO_OPERATIONS",
            UnsupportedAlgorithm => "CTAP2_ERR_UNSUPPORTED_ALGORITHM",
            OperationDenied => "CTAP2_ERR_OPERATION_DENIED",
            KeyStoreFull => "CTAP2_ERR_KEY_STORE_FULL",
            NotBusy => "CTAP2_ERR_NOT_BUSY",
            NoOperationPending => "CTAP2_ERR_NO_OPERATION_PENDING",
            UnsupportedOption => "CTAP2_ERR_UNSUPPORTED_OPTION",
            InvalidOption => "CTAP2_ERR_INVALID_OPTION",
            KeepaliveCancel => "CTAP2_ERR_KEEPALIVE_CANCEL",
            NoCredentials => "CTAP2_ERR_NO_CREDENTIALS",
            UserActionTimeout => "CTAP2_ERR_USER_ACTION_TIMEOUT",
            NotAllowed => "CTAP2_ERR_NOT_ALLOWED",
            PinInvalid => "CTAP2_ERR_PIN_INVALID",
            PinBlocked => "CTAP2_ERR_PIN_BLOCKED",
            PinAuthInvalid => "CTAP2_ERR_PIN_AUTH_INVALID",
            PinAuthBlocked => "CTAP2_ERR_PIN_AUTH_BLOCKED",
            PinNotSet => "CTAP2_ERR_PIN_NOT_SET",
            PuatRequired => "CTAP2_ERR_PUAT_REQUIRED",
            PinPolicyViolation => "CTAP2_ERR_PIN_POLICY_VIOLATION",
            PinTokenExpired => "CTAP2_ERR_PIN_TOKEN_EXPIRED",
            RequestTooLarge => "CTAP2_ERR_REQUEST_TOO_LARGE",
            ActionTimeout => "CTAP2_ERR_ACTION_TIMEOUT",
            UpRequired => "CTAP2_ERR_UP_REQUIRED",
            UvBlocked => "CTAP2_ERR_UV_BLOCKED",
            IntegrityFailure => "CTAP2_ERR_INTEGRITY_FAILURE",
            InvalidSubcommand => "CTAP2_ERR_INVALID_SUBCOMMAND",
            UvInvalid => "CTAP2_ERR_UV_INVALID",
            UnauthorizedPermission => "CTAP2_ERR_UNAUTHORIZED_PERMISSION",
            OtherError => "CTAP1_ERR_OTHER",
            Other(0xE0..=0xEF) => "CTAP2_ERR_EXTENSION",
            Other(0xF0..=0xFF) => "CTAP2_ERR_VENDOR",
            Other(_) => "reserved status code",
        }
    }

    /// A human-readable explanation, suitable for a CLI error line.
    pub fn description(self) -> &'static str {
        use StatusCode::*;
        match self {
            Ok => "success",
            InvalidCommand => "the command is not a valid CTAP command",
            InvalidParameter => "the command included an invalid parameter",
            InvalidLength => "invalid message or item length",
            InvalidSeq => "invalid message sequencing",
            Timeout => "message timed out",
            ChannelBusy => "channel busy; the client should retry after a short delay",
            LockRequired => "command requires a channel lock",
            InvalidChannel => "command not allowed on this channel id",
            CborUnexpectedType => "invalid or unexpected CBOR type in the request",
            InvalidCbor => "error when parsing the CBOR request",
            MissingParameter => "a required parameter is missing",
            LimitExceeded => "a limit for the number of items was exceeded",
            UnsupportedExtension => "unsupported extension (CTAP 2.0)",
            FpDatabaseFull => "the fingerprint database is full",
            LargeBlobStorageFull => "the large-blob storage is full",
            CredentialExcluded => {
                "a credential in the exclude list is already on this authenticator"
            }
            Processing => "processing (lengthy operation is in progress)",
            InvalidCredential => "the credential is not valid for this authenticator",
            UserActionPending => "authentication is waiting for user interaction",
            OperationPending => "processing, lengthy operation is in progress",
            NoOperations => "no request is pending",
            UnsupportedAlgorithm => "none of the requested algorithms is supported",
            OperationDenied => "the user or the authenticator denied the operation",
            KeyStoreFull => "internal key storage is full",
            NotBusy => "no outstanding operations (CTAP 2.0)",
            NoOperationPending => "no outstanding operation (CTAP 2.0)",
            UnsupportedOption => "an unsupported option was requested",
            InvalidOption => "an option is not valid for this command",
            KeepaliveCancel => "the pending operation was cancelled",
            NoCredentials => "no valid credentials were provided or found",
            UserActionTimeout => "timed out waiting for user interaction",
            NotAllowed => "continuation command (such as getNextAssertion) not allowed",
            PinInvalid => "the PIN is wrong",
            PinBlocked => {
                "the PIN is blocked (too many wrong attempts); the authenticator must be reset"
            }
            PinAuthInvalid => "the PIN/UV auth parameter did not verify",
            PinAuthBlocked => "PIN auth is blocked until the authenticator is power-cycled",
            PinNotSet => "no PIN has been set",
            PuatRequired => "a PIN/UV auth token is required for this operation",
            PinPolicyViolation => "the PIN does not satisfy the authenticator's PIN policy",
            PinTokenExpired => "the PIN token expired (CTAP 2.0; reserved in 2.1)",
            RequestTooLarge => "the request is larger than the authenticator can handle",
            ActionTimeout => "the current operation timed out",
            UpRequired => "user presence is required for this operation",
            UvBlocked => "built-in user verification is blocked",
            IntegrityFailure => "an integrity check failed (e.g. large-blob hash)",
            InvalidSubcommand => "the subcommand is invalid for this command",
            UvInvalid => "built-in user verification failed (no match)",
            UnauthorizedPermission => {
                "the PIN/UV auth token lacks the permission for this operation"
            }
            OtherError => "other unspecified error",
            Other(0xE0..=0xEF) => "extension-specific error",
            Other(0xF0..=0xFF) => "vendor-specific error",
            Other(_) => "status code not defined by CTAP 2.1",
        }
    }
}

impl From<u8> for StatusCode {
    fn from(b: u8) -> Self {
        StatusCode::from_u8(b)
    }
}

impl From<StatusCode> for u8 {
    fn from(s: StatusCode) -> u8 {
        s.to_u8()
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X}): {}", self.name(), self.to_u8(), self.description())
    }
}

impl Classify for StatusCode {
    /// Every status is the authenticator's answer, so it is attributed to the peer; whether the
    /// *user* can fix it (wrong PIN) is a UI concern, not a fault class.
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Ctap2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for b in 0..=u8::MAX {
            let s = StatusCode::from_u8(b);
            assert_eq!(s.to_u8(), b, "{s:?}");
            assert!(!s.description().is_empty());
        }
    }

    #[test]
    fn named_codes_match_the_spec_table() {
        assert_eq!(StatusCode::from_u8(0x00), StatusCode::Ok);
        assert_eq!(StatusCode::from_u8(0x12), StatusCode::InvalidCbor);
        assert_eq!(StatusCode::from_u8(0x2D), StatusCode::KeepaliveCancel);
        assert_eq!(StatusCode::from_u8(0x2E), StatusCode::NoCredentials);
        assert_eq!(StatusCode::from_u8(0x31), StatusCode::PinInvalid);
        assert_eq!(StatusCode::from_u8(0x32), StatusCode::PinBlocked);
        assert_eq!(StatusCode::from_u8(0x33), StatusCode::PinAuthInvalid);
        assert_eq!(StatusCode::from_u8(0x35), StatusCode::PinNotSet);
        assert_eq!(StatusCode::from_u8(0x36), StatusCode::PuatRequired);
        assert_eq!(StatusCode::from_u8(0x40), StatusCode::UnauthorizedPermission);
        assert_eq!(StatusCode::from_u8(0x7F), StatusCode::OtherError);
        assert_eq!(StatusCode::from_u8(0xF3), StatusCode::Other(0xF3));
        assert_eq!(StatusCode::Other(0xE1).name(), "CTAP2_ERR_EXTENSION");
        assert!(StatusCode::Ok.is_ok() && !StatusCode::PinInvalid.is_ok());
    }

    #[test]
    fn display_names_code_and_meaning() {
        let s = StatusCode::PinInvalid.to_string();
        assert_eq!(s, "CTAP2_ERR_PIN_INVALID (0x31): the PIN is wrong");
        assert_eq!(StatusCode::PinBlocked.fault(), Fault::Peer);
        assert_eq!(StatusCode::PinBlocked.stage(), Stage::Ctap2);
    }
}
