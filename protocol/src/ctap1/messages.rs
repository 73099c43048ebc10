//! The three U2F messages (FIDO U2F Raw Message Formats v1.2 §4–§6): typed requests that encode
//! to / decode from [`CommandApdu`]s, and borrowing response views that check every length.
//!
//! * `U2F_REGISTER` (INS 0x01): `challenge(32) ‖ application(32)` →
//!   `0x05 ‖ publicKey(65) ‖ L ‖ keyHandle(L) ‖ attestationCert(DER) ‖ signature(DER)`.
//! * `U2F_AUTHENTICATE` (INS 0x02, P1 = control byte): `challenge(32) ‖ application(32) ‖ L ‖
//!   keyHandle(L)` → `userPresence(1) ‖ counter(4, big-endian) ‖ signature(DER)`.
//! * `U2F_VERSION` (INS 0x03): no data → `"U2F_V2"`.
//!
//! The attestation certificate has no length prefix in the registration response; its length
//! is read from its own DER header (a SEQUENCE), as every U2F client does.

use core::fmt;

use super::apdu::{CommandApdu, StatusWord};
use super::{P256_POINT_LEN, REGISTER_RESERVED};
use crate::error::{Classify, Fault, Stage};

/// Why a U2F message could not be used.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum U2fError {
    /// The APDU framing itself is broken.
    #[error("malformed APDU: {reason}")]
    MalformedApdu {
        /// What is wrong.
        reason: &'static str,
    },
    /// A field of a U2F message is missing, too short or invalid.
    #[error("malformed U2F {message}: {field} {problem}")]
    Malformed {
        /// `register response`, `authenticate request`, ...
        message: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A value does not fit its length field.
    #[error("{field} is {len} bytes, too long for U2F")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The device answered with a status word other than 0x9000.
    #[error("the key answered {0}")]
    Status(StatusWord),
}

impl Classify for U2fError {
    fn fault(&self) -> Fault {
        match self {
            U2fError::TooLong { .. } => Fault::Caller,
            _ => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Ctap2
    }
}

/// A U2F instruction byte.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction {
    /// `U2F_REGISTER` (0x01).
    Register,
    /// `U2F_AUTHENTICATE` (0x02).
    Authenticate,
    /// `U2F_VERSION` (0x03).
    Version,
    /// Anything else (answered with `SW_INS_NOT_SUPPORTED`).
    Other(u8),
}

impl Instruction {
    /// From INS.
    pub fn from_u8(b: u8) -> Self {
        match b {
            0x01 => Instruction::Register,
            0x02 => Instruction::Authenticate,
            0x03 => Instruction::Version,
            other => Instruction::Other(other),
        }
    }
    /// To INS.
    pub fn to_u8(self) -> u8 {
        match self {
            Instruction::Register => 0x01,
            Instruction::Authenticate => 0x02,
            Instruction::Version => 0x03,
            Instruction::Other(b) => b,
        }
    }
}

/// The control byte (P1) of `U2F_AUTHENTICATE` (U2F Raw Message Formats §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// 0x07: only check whether the key handle is this key's for this application; a valid one
    /// answers 0x6985, a foreign one 0x6A80. Nothing is signed.
    CheckOnly,
    /// 0x03: sign only with user presence (0x6985 until touched).
    EnforceUserPresence,
    /// 0x08: sign without requiring user presence.
    DontEnforceUserPresence,
}

impl Control {
    /// From P1; `None` for an unknown control byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0x07 => Some(Control::CheckOnly),
            0x03 => Some(Control::EnforceUserPresence),
            0x08 => Some(Control::DontEnforceUserPresence),
            _ => None,
        }
    }
    /// To P1.
    pub fn to_u8(self) -> u8 {
        match self {
            Control::CheckOnly => 0x07,
            Control::EnforceUserPresence => 0x03,
            Control::DontEnforceUserPresence => 0x08,
        }
    }
}

/// `U2F_VERSION` as an APDU.
pub fn version_request() -> CommandApdu {
    CommandApdu { cla: 0, ins: Instruction::Version.to_u8(), p1: 0, p2: 0, data: Vec::new() }
}

/// `U2F_REGISTER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The challenge parameter (WebAuthn: clientDataHash).
    pub challenge: [u8; 32],
    /// The application parameter (WebAuthn: rpIdHash).
    pub application: [u8; 32],
}

impl RegisterRequest {
    /// As an APDU.
    pub fn to_apdu(&self) -> CommandApdu {
        let data = [self.challenge.as_slice(), self.application.as_slice()].concat();
        CommandApdu { cla: 0, ins: Instruction::Register.to_u8(), p1: 0, p2: 0, data }
    }

    /// From an APDU's data (device side).
    pub fn parse(data: &[u8]) -> Result<Self, U2fError> {
        let bad =
            |problem| U2fError::Malformed { message: "register request", field: "data", problem };
        let data: &[u8; 64] = data.try_into().map_err(|_| bad("is not 64 bytes"))?;
        let (challenge, application) = data.split_at(32);
        Ok(RegisterRequest {
            challenge: challenge.try_into().map_err(|_| bad("is not 64 bytes"))?,
            application: application.try_into().map_err(|_| bad("is not 64 bytes"))?,
        })
    }
}

/// A registration response, borrowing the APDU's data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RegisterResponse<'a> {
    /// The new credential's public key, `0x04 ‖ x ‖ y`.
    pub public_key: &'a [u8; P256_POINT_LEN],
    /// The key handle (WebAuthn: the credential id).
    pub key_handle: &'a [u8],
    /// The attestation certificate (DER).
    pub certificate: &'a [u8],
    /// ECDSA signature (DER) over `0x00 ‖ application ‖ challenge ‖ keyHandle ‖ publicKey`.
    pub signature: &'a [u8],
}

impl fmt::Debug for RegisterResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterResponse")
            .field("key_handle_len", &self.key_handle.len())
            .field("certificate_len", &self.certificate.len())
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

impl<'a> RegisterResponse<'a> {
    /// Parses the data of a 0x9000 registration response.
    pub fn parse(data: &'a [u8]) -> Result<Self, U2fError> {
        let bad =
            |field, problem| U2fError::Malformed { message: "register response", field, problem };
        let (&reserved, rest) = data.split_first().ok_or(bad("reserved byte", "is missing"))?;
        if reserved != REGISTER_RESERVED {
            return Err(bad("reserved byte", "is not 0x05"));
        }
        let (public_key, rest) =
            rest.split_first_chunk::<P256_POINT_LEN>().ok_or(bad("public key", "is truncated"))?;
        if public_key[0] != 0x04 {
            return Err(bad("public key", "is not an uncompressed P-256 point"));
        }
        let (&kh_len, rest) = rest.split_first().ok_or(bad("key handle length", "is missing"))?;
        let kh_len = usize::from(kh_len);
        if kh_len == 0 || rest.len() < kh_len {
            return Err(bad("key handle", "is empty or truncated"));
        }
        let (key_handle, rest) = rest.split_at(kh_len);
        let cert_len = der_sequence_len(rest)
            .ok_or(bad("attestation certificate", "is not a DER SEQUENCE or is truncated"))?;
        let (certificate, signature) = rest.split_at(cert_len);
        if der_sequence_len(signature) != Some(signature.len()) {
            return Err(bad("signature", "is missing or not one DER SEQUENCE"));
        }
        Ok(RegisterResponse { public_key, key_handle, certificate, signature })
    }

    /// Encodes the response data (device side).
    pub fn encode(&self) -> Result<Vec<u8>, U2fError> {
        let kh_len = u8::try_from(self.key_handle.len())
            .map_err(|_| U2fError::TooLong { field: "key handle", len: self.key_handle.len() })?;
        let mut out = Vec::with_capacity(
            1 + P256_POINT_LEN + 1 + self.key_handle.len() + self.certificate.len() + 72,
        );
        out.push(REGISTER_RESERVED);
        out.extend_from_slice(self.public_key);
        out.push(kh_len);
        out.extend_from_slice(self.key_handle);
        out.extend_from_slice(self.certificate);
        out.extend_from_slice(self.signature);
        Ok(out)
    }
}

/// The message a registration signature covers (U2F Raw Message Formats §4.3).
pub fn register_signed_data(
    application: &[u8; 32],
    challenge: &[u8; 32],
    key_handle: &[u8],
    public_key: &[u8; P256_POINT_LEN],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(1 + 64 + key_handle.len() + P256_POINT_LEN);
    m.push(0x00);
    m.extend_from_slice(application);
    m.extend_from_slice(challenge);
    m.extend_from_slice(key_handle);
    m.extend_from_slice(public_key);
    m
}

/// The message an authentication signature covers (§5.4): `application ‖ userPresence ‖
/// counter ‖ challenge` — which is exactly WebAuthn's `authenticatorData ‖ clientDataHash`.
pub fn authenticate_signed_data(
    application: &[u8; 32],
    user_presence: u8,
    counter: u32,
    challenge: &[u8; 32],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + 1 + 4 + 32);
    m.extend_from_slice(application);
    m.push(user_presence);
    m.extend_from_slice(&counter.to_be_bytes());
    m.extend_from_slice(challenge);
    m
}

/// Total length of the DER SEQUENCE at the start of `bytes` (tag + length + contents), if it
/// is one and fits.
fn der_sequence_len(bytes: &[u8]) -> Option<usize> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (header, len) = match first {
        n if n < 0x80 => (2, usize::from(n)),
        0x81..=0x83 => {
            let count = usize::from(first & 0x7f);
            let len_bytes = rest.get(..count)?;
            let len = len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (2 + count, len)
        }
        _ => return None,
    };
    let total = header + len;
    (total <= bytes.len()).then_some(total)
}

/// `U2F_AUTHENTICATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateRequest {
    /// The control byte.
    pub control: Control,
    /// The challenge parameter (WebAuthn: clientDataHash).
    pub challenge: [u8; 32],
    /// The application parameter (WebAuthn: rpIdHash).
    pub application: [u8; 32],
    /// The key handle (credential id), 1..=255 bytes.
    pub key_handle: Vec<u8>,
}

impl AuthenticateRequest {
    /// As an APDU; a key handle longer than 255 bytes cannot be sent.
    pub fn to_apdu(&self) -> Result<CommandApdu, U2fError> {
        let len = u8::try_from(self.key_handle.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or(U2fError::TooLong { field: "key handle", len: self.key_handle.len() })?;
        let mut data = Vec::with_capacity(65 + self.key_handle.len());
        data.extend_from_slice(&self.challenge);
        data.extend_from_slice(&self.application);
        data.push(len);
        data.extend_from_slice(&self.key_handle);
        Ok(CommandApdu {
            cla: 0,
            ins: Instruction::Authenticate.to_u8(),
            p1: self.control.to_u8(),
            p2: 0,
            data,
        })
    }

    /// From an APDU (device side): P1 must be a known control byte.
    pub fn parse(apdu: &CommandApdu) -> Result<Self, U2fError> {
        let bad = |field, problem| U2fError::Malformed {
            message: "authenticate request",
            field,
            problem,
        };
        let control = Control::from_u8(apdu.p1).ok_or(bad("control byte", "is unknown"))?;
        let (params, rest) =
            apdu.data.split_first_chunk::<64>().ok_or(bad("data", "is too short"))?;
        let (&len, key_handle) =
            rest.split_first().ok_or(bad("key handle length", "is missing"))?;
        if key_handle.len() != usize::from(len) || key_handle.is_empty() {
            return Err(bad("key handle", "does not match its length byte"));
        }
        let (challenge, application) = params.split_at(32);
        let arr = |s: &[u8]| <[u8; 32]>::try_from(s).map_err(|_| bad("data", "is too short"));
        Ok(AuthenticateRequest {
            control,
            challenge: arr(challenge)?,
            application: arr(application)?,
            key_handle: key_handle.to_vec(),
        })
    }
}

/// An authentication response, borrowing the APDU's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticateResponse<'a> {
    /// The user-presence byte (bit 0: the user touched the key).
    pub user_presence: u8,
    /// The signature counter.
    pub counter: u32,
    /// ECDSA signature (DER) over [`authenticate_signed_data`].
    pub signature: &'a [u8],
}

impl<'a> AuthenticateResponse<'a> {
    /// Parses the data of a 0x9000 authentication response.
    pub fn parse(data: &'a [u8]) -> Result<Self, U2fError> {
        let bad = |field, problem| U2fError::Malformed {
            message: "authenticate response",
            field,
            problem,
        };
        let (&user_presence, rest) =
            data.split_first().ok_or(bad("user presence", "is missing"))?;
        let (counter, signature) =
            rest.split_first_chunk::<4>().ok_or(bad("counter", "is truncated"))?;
        if der_sequence_len(signature) != Some(signature.len()) {
            return Err(bad("signature", "is missing or not one DER SEQUENCE"));
        }
        if user_presence & !0x01 != 0 {
            return Err(bad("user presence", "has reserved bits set"));
        }
        Ok(AuthenticateResponse { user_presence, counter: u32::from_be_bytes(*counter), signature })
    }

    /// Encodes the response data (device side).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.signature.len());
        out.push(self.user_presence);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(self.signature);
        out
    }
}

/// Checks the `U2F_VERSION` answer.
pub fn parse_version(data: &[u8]) -> Result<&str, U2fError> {
    core::str::from_utf8(data).map_err(|_| U2fError::Malformed {
        message: "version response",
        field: "version",
        problem: "is not UTF-8",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap1::apdu::ResponseApdu;

    fn fake_cert(len: usize) -> Vec<u8> {
        // SEQUENCE with a long-form length: enough for the parser, which reads only the header.
        let mut c = vec![0x30, 0x82];
        c.extend_from_slice(&(len as u16).to_be_bytes());
        c.extend(std::iter::repeat_n(0xab, len));
        c
    }

    #[test]
    fn register_response_round_trip_and_truncations() {
        let point = [0x04; 65];
        let cert = fake_cert(300);
        let sig = [0x30, 0x06, 2, 1, 1, 2, 1, 1];
        let r = RegisterResponse {
            public_key: &point,
            key_handle: &[9; 61],
            certificate: &cert,
            signature: &sig,
        };
        let bytes = r.encode().unwrap();
        let parsed = RegisterResponse::parse(&bytes).unwrap();
        assert_eq!(parsed, r);
        // Every truncation is a typed error, never a panic or a wrong split.
        for cut in 0..bytes.len() {
            assert!(RegisterResponse::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = 0x04;
        assert!(matches!(
            RegisterResponse::parse(&wrong),
            Err(U2fError::Malformed { field: "reserved byte", .. })
        ));
        let mut compressed = bytes.clone();
        compressed[1] = 0x02;
        assert!(RegisterResponse::parse(&compressed).is_err());
        let mut not_der = bytes.clone();
        not_der[1 + 65 + 1 + 61] = 0x31;
        assert!(matches!(
            RegisterResponse::parse(&not_der),
            Err(U2fError::Malformed { field: "attestation certificate", .. })
        ));
        assert!(RegisterResponse { key_handle: &[0; 256], ..r }.encode().is_err());
    }

    #[test]
    fn authenticate_request_and_response() {
        let req = AuthenticateRequest {
            control: Control::CheckOnly,
            challenge: [1; 32],
            application: [2; 32],
            key_handle: vec![3; 61],
        };
        let apdu = req.to_apdu().unwrap();
        assert_eq!((apdu.ins, apdu.p1), (0x02, 0x07));
        let wire = apdu.encode().unwrap();
        assert_eq!(AuthenticateRequest::parse(&CommandApdu::parse(&wire).unwrap()).unwrap(), req);
        let mut bad_p1 = apdu.clone();
        bad_p1.p1 = 0x05;
        assert!(AuthenticateRequest::parse(&bad_p1).is_err());
        let mut short_kh = apdu.clone();
        short_kh.data.pop();
        assert!(AuthenticateRequest::parse(&short_kh).is_err());
        assert!(AuthenticateRequest { key_handle: vec![0; 256], ..req.clone() }.to_apdu().is_err());
        assert!(AuthenticateRequest { key_handle: Vec::new(), ..req }.to_apdu().is_err());

        let resp = AuthenticateResponse {
            user_presence: 1,
            counter: 0x01020304,
            signature: &[0x30, 3, 2, 1, 1],
        };
        let data = resp.encode();
        assert_eq!(&data[..5], &[1, 1, 2, 3, 4]);
        assert_eq!(AuthenticateResponse::parse(&data).unwrap(), resp);
        for cut in 0..data.len() {
            assert!(AuthenticateResponse::parse(&data[..cut]).is_err(), "cut at {cut}");
        }
        assert!(AuthenticateResponse::parse(&[0x80, 0, 0, 0, 1, 0x30, 0]).is_err());
        assert!(AuthenticateResponse::parse(&[1, 0, 0, 0, 1, 0x30, 0, 0]).is_err());
        // A status-only answer carries no data at all.
        let only_sw = ResponseApdu::parse(&[0x6a, 0x80]).unwrap();
        assert_eq!(only_sw.ok(), Err(U2fError::Status(StatusWord::WrongData)));
    }

    #[test]
    fn register_request_is_64_bytes() {
        let req = RegisterRequest { challenge: [5; 32], application: [6; 32] };
        let apdu = req.to_apdu();
        assert_eq!((apdu.ins, apdu.data.len()), (0x01, 64));
        assert_eq!(RegisterRequest::parse(&apdu.data).unwrap(), req);
        assert!(RegisterRequest::parse(&apdu.data[..63]).is_err());
        assert_eq!(parse_version(b"U2F_V2").unwrap(), "U2F_V2");
    }
}
