//! The one error type of the CTAP2 layer.
//!
//! It separates the peer's faults (a response or request that does not parse, an authenticator
//! status other than OK, a signature or PIN/UV auth param that does not verify) from the caller's
//! (a PIN that breaks the length rules, an argument out of range). Decoders run on both sides —
//! the platform decodes responses, the authenticator decodes requests — and in both cases the
//! bytes came from the other side, so malformed input is always [`Fault::Peer`].

use super::status::StatusCode;
use crate::cbor::CborError;
use crate::error::{Classify, Fault, Stage};
use core::fmt;

/// An error from CTAP2 encoding, decoding or PIN/UV crypto.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctap2Error {
    /// The CBOR body itself did not decode.
    Cbor(CborError),
    /// A required field is absent.
    MissingField(&'static str),
    /// A field is present but has the wrong type, length or value.
    InvalidField {
        /// The field, spelled as in the spec (`"authData"`, `"pubKeyCredParams[].alg"`).
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The authenticator answered with a status other than `CTAP2_OK`.
    Status(StatusCode),
    /// A response had no status byte at all.
    EmptyResponse,
    /// Authenticator data (or an attestation object) ended early or had inconsistent lengths.
    AuthData {
        /// The part being read (`"rpIdHash"`, `"credentialId"`, ...).
        what: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A public key (COSE or certificate) is not a valid point / key of its kind.
    InvalidPublicKey(&'static str),
    /// An algorithm we do not implement was required to continue.
    UnsupportedAlgorithm(i64),
    /// A ciphertext from the peer has a length the PIN/UV protocol cannot decrypt.
    Decrypt(&'static str),
    /// A PIN/UV auth param (HMAC) did not verify.
    PinUvAuthInvalid,
    /// A signature (assertion or attestation) did not verify.
    SignatureInvalid(&'static str),
    /// An X.509 certificate in an attestation statement did not parse.
    Certificate(&'static str),
    /// The caller passed a PIN that breaks the CTAP rules (length, UTF-8, NUL).
    InvalidPin(&'static str),
    /// A new PIN received from the platform breaks the PIN policy (authenticator side; answer
    /// `CTAP2_ERR_PIN_POLICY_VIOLATION`).
    PinPolicy(&'static str),
    /// The caller passed an argument that cannot be encoded.
    InvalidArgument(&'static str),
}

impl Ctap2Error {
    /// A field error, shorthand for parsers.
    pub(crate) fn field(field: &'static str, problem: &'static str) -> Self {
        Ctap2Error::InvalidField { field, problem }
    }

    /// The status code an authenticator should answer when decoding a *request* failed with this
    /// error (CTAP 2.1 §8.2 semantics: missing → MISSING_PARAMETER, wrong type →
    /// CBOR_UNEXPECTED_TYPE, undecodable → INVALID_CBOR).
    pub fn to_status(&self) -> StatusCode {
        match self {
            Ctap2Error::Cbor(_) => StatusCode::InvalidCbor,
            Ctap2Error::MissingField(_) => StatusCode::MissingParameter,
            Ctap2Error::InvalidField { problem, .. } if problem.starts_with("not a") => {
                StatusCode::CborUnexpectedType
            }
            Ctap2Error::InvalidField { .. } => StatusCode::InvalidParameter,
            Ctap2Error::Status(s) => *s,
            Ctap2Error::UnsupportedAlgorithm(_) => StatusCode::UnsupportedAlgorithm,
            Ctap2Error::PinUvAuthInvalid => StatusCode::PinAuthInvalid,
            Ctap2Error::InvalidPin(_) | Ctap2Error::PinPolicy(_) => StatusCode::PinPolicyViolation,
            _ => StatusCode::InvalidParameter,
        }
    }
}

impl From<CborError> for Ctap2Error {
    fn from(e: CborError) -> Self {
        match e {
            CborError::Field { field, problem: "missing" } => Ctap2Error::MissingField(field),
            CborError::Field { field, problem } => Ctap2Error::InvalidField { field, problem },
            other => Ctap2Error::Cbor(other),
        }
    }
}

impl From<StatusCode> for Ctap2Error {
    fn from(s: StatusCode) -> Self {
        Ctap2Error::Status(s)
    }
}

impl fmt::Display for Ctap2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ctap2Error::Cbor(e) => write!(f, "CTAP2 message is not valid CBOR: {e}"),
            Ctap2Error::MissingField(n) => write!(f, "CTAP2 field {n} is missing"),
            Ctap2Error::InvalidField { field, problem } => {
                write!(f, "CTAP2 field {field}: {problem}")
            }
            Ctap2Error::Status(s) => write!(f, "authenticator returned {s}"),
            Ctap2Error::EmptyResponse => write!(f, "CTAP2 response is empty (no status byte)"),
            Ctap2Error::AuthData { what, problem } => {
                write!(f, "authenticator data: {what}: {problem}")
            }
            Ctap2Error::InvalidPublicKey(w) => write!(f, "invalid public key: {w}"),
            Ctap2Error::UnsupportedAlgorithm(a) => write!(f, "unsupported COSE algorithm {a}"),
            Ctap2Error::Decrypt(w) => write!(f, "PIN/UV protocol decryption failed: {w}"),
            Ctap2Error::PinUvAuthInvalid => write!(f, "PIN/UV auth param does not verify"),
            Ctap2Error::SignatureInvalid(w) => write!(f, "signature does not verify: {w}"),
            Ctap2Error::Certificate(w) => write!(f, "attestation certificate: {w}"),
            Ctap2Error::InvalidPin(w) => write!(f, "invalid PIN: {w}"),
            Ctap2Error::PinPolicy(w) => write!(f, "new PIN violates the PIN policy: {w}"),
            Ctap2Error::InvalidArgument(w) => write!(f, "invalid argument: {w}"),
        }
    }
}

impl std::error::Error for Ctap2Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Ctap2Error::Cbor(e) => Some(e),
            _ => None,
        }
    }
}

impl Classify for Ctap2Error {
    fn fault(&self) -> Fault {
        match self {
            Ctap2Error::InvalidPin(_) | Ctap2Error::InvalidArgument(_) => Fault::Caller,
            _ => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Ctap2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{field, Value};

    #[test]
    fn field_errors_keep_the_field_name_and_map_to_statuses() {
        let m = Value::int_map([(1, Value::int(5))]);
        let missing: Ctap2Error = field::bytes(m.get(2), "clientDataHash").unwrap_err().into();
        assert_eq!(missing, Ctap2Error::MissingField("clientDataHash"));
        assert_eq!(missing.to_status(), StatusCode::MissingParameter);
        assert!(missing.to_string().contains("clientDataHash"));
        let wrong: Ctap2Error = field::bytes(m.get(1), "clientDataHash").unwrap_err().into();
        assert_eq!(wrong.to_status(), StatusCode::CborUnexpectedType);
        let cbor: Ctap2Error = CborError::Truncated.into();
        assert_eq!(cbor.to_status(), StatusCode::InvalidCbor);
    }

    #[test]
    fn classification_separates_peer_and_caller() {
        assert_eq!(Ctap2Error::Status(StatusCode::PinInvalid).fault(), Fault::Peer);
        assert_eq!(Ctap2Error::EmptyResponse.fault(), Fault::Peer);
        assert_eq!(Ctap2Error::InvalidPin("too short").fault(), Fault::Caller);
        assert_eq!(Ctap2Error::InvalidArgument("x").stage(), Stage::Ctap2);
    }
}
