//! The QR payload (§2.1) and its `FIDO:/` URL (§2.2).
//!
//! The desktop shows `FIDO:/` ‖ digits(CTAP2-canonical CBOR map). Keys 0–5 are understood; every
//! other key — GREASE such as 1000 or 65535, and the overloaded key 6 (bool in old GMS and
//! webauthn-rs, channel array in CTAP 2.3, pitfall §11.2 item 7) — is accepted and kept in
//! [`QrPayload::unknown_keys`] for display, never re-emitted.
//!
//! What it is not: key derivation from the secret (see [`super::keys`], [`super::eid`],
//! [`super::tunnel`]) or QR image rendering (the CLI does that).

use crate::cbor::{CborError, Value};
use crate::error::{Classify, Fault, Stage};
use crate::hybrid::digits::{self, DigitsError};
use crate::hybrid::domain::DomainId;
use crate::hybrid::keys::QrSecret;
use crate::hybrid::noise::IdentityKeyPair;
use crate::hybrid::tunnel::TunnelId;
use core::fmt;
use p256::elliptic_curve::sec1::ToEncodedPoint;

pub use crate::hybrid::tunnel::RequestHint;

/// The URL scheme prefix, written uppercase so it fits QR alphanumeric mode.
pub const URL_PREFIX: &str = "FIDO:/";

/// Why a QR payload or URL was rejected. Each rule is its own variant.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrError {
    /// The text does not start with `FIDO:/` (any case).
    MissingPrefix,
    /// The digits after the prefix break a §2.2 rule.
    Digits(DigitsError),
    /// The decoded bytes are not one well-formed CBOR item.
    Cbor(CborError),
    /// The CBOR item is not a map.
    NotAMap,
    /// A required key (0 or 1) is absent.
    MissingKey(u8),
    /// A known key has the wrong CBOR type.
    WrongType {
        /// The key.
        key: u8,
        /// What it should be.
        expected: &'static str,
    },
    /// Key 0 is not 33 bytes (a compressed P-256 point).
    PublicKeyLength(usize),
    /// Key 0 is 33 bytes but not a point on P-256 (or not in compressed form).
    InvalidPublicKey,
    /// Key 1 is not 16 bytes.
    SecretLength(usize),
}

impl fmt::Display for QrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QrError::MissingPrefix => write!(f, "QR text does not start with {URL_PREFIX}"),
            QrError::Digits(e) => write!(f, "QR digits: {e}"),
            QrError::Cbor(e) => write!(f, "QR payload is not valid CBOR: {e}"),
            QrError::NotAMap => write!(f, "QR payload is not a CBOR map"),
            QrError::MissingKey(0) => write!(f, "QR payload lacks key 0 (public key)"),
            QrError::MissingKey(k) => write!(f, "QR payload lacks key {k} (secret)"),
            QrError::WrongType { key, expected } => {
                write!(f, "QR key {key} must be {expected}")
            }
            QrError::PublicKeyLength(n) => {
                write!(f, "QR public key (key 0) is {n} bytes, expected 33 (compressed P-256)")
            }
            QrError::InvalidPublicKey => {
                write!(f, "QR public key (key 0) is not a valid compressed P-256 point")
            }
            QrError::SecretLength(n) => {
                write!(f, "QR secret (key 1) is {n} bytes, expected 16")
            }
        }
    }
}

impl std::error::Error for QrError {}

impl Classify for QrError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Qr
    }
}

/// A decoded QR payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrPayload {
    /// Key 0: the desktop's QR identity key (static `s` of Noise KN).
    pub public_key: p256::PublicKey,
    /// Key 1: the QR secret.
    pub secret: QrSecret,
    /// Key 2: number of assigned tunnel domains the desktop knows (absent ⇒ 0).
    pub known_domains: u64,
    /// Key 3: Unix time in seconds.
    pub timestamp: Option<u64>,
    /// Key 4: the desktop can store linking info. `None` only when parsed from a QR without it;
    /// [`Self::to_cbor`] always writes it (as `false` if `None`, pitfall §11.2 item 8).
    pub linking: Option<bool>,
    /// Key 5: request-type hint. `None` when absent (behaves as getAssertion, see
    /// [`Self::effective_hint`]).
    pub hint: Option<RequestHint>,
    /// Every other key with its value, in wire order (GREASE, key 6 in either shape, …).
    pub unknown_keys: Vec<(Value, Value)>,
}

impl QrPayload {
    /// Fresh key pair and secret for a desktop. `unix_time_secs` becomes key 3. The pair keeps
    /// its public half, so the handshake does not compute it again.
    pub fn generate(
        rng: &mut impl rand_core::CryptoRngCore,
        unix_time_secs: u64,
        hint: RequestHint,
        linking: bool,
    ) -> (IdentityKeyPair, QrPayload) {
        let sk = IdentityKeyPair::new(p256::SecretKey::random(rng));
        let payload = QrPayload {
            public_key: sk.public_key(),
            secret: QrSecret::random(rng),
            known_domains: DomainId::KNOWN_ASSIGNED,
            timestamp: Some(unix_time_secs),
            linking: Some(linking),
            hint: Some(hint),
            unknown_keys: Vec::new(),
        };
        (sk, payload)
    }

    /// Key 0 as written: 33-byte compressed SEC1.
    pub fn public_key_compressed(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out.copy_from_slice(self.public_key.to_encoded_point(true).as_bytes());
        out
    }

    /// The 65-byte uncompressed form the Noise handshake hashes (pitfall §11.2 item 4).
    pub fn public_key_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out.copy_from_slice(self.public_key.to_encoded_point(false).as_bytes());
        out
    }

    /// The hint to act on: absent or unknown ⇒ getAssertion.
    pub fn effective_hint(&self) -> RequestHint {
        self.hint.as_ref().map(RequestHint::effective).unwrap_or_default()
    }

    /// Tunnel ID derived from the secret.
    pub fn tunnel_id(&self) -> TunnelId {
        TunnelId::derive(&self.secret)
    }

    /// Canonical CBOR with keys 0–5. Key 4 is always present; unknown keys are never re-emitted.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut entries = vec![
            (0, Value::bytes(self.public_key_compressed().to_vec())),
            (1, Value::bytes(self.secret.expose().to_vec())),
            (2, Value::Unsigned(self.known_domains)),
            (4, Value::Bool(self.linking.unwrap_or(false))),
        ];
        if let Some(t) = self.timestamp {
            entries.push((3, Value::Unsigned(t)));
        }
        if let Some(h) = &self.hint {
            entries.push((5, Value::text(h.as_str())));
        }
        // The encoder sorts keys canonically.
        Value::int_map(entries).to_vec()
    }

    /// `FIDO:/` ‖ digits of [`Self::to_cbor`].
    pub fn to_url(&self) -> String {
        format!("{URL_PREFIX}{}", digits::encode(&self.to_cbor()))
    }

    /// Parses a `FIDO:/` URL; the prefix is matched case-insensitively (as Chrome does).
    pub fn from_url(url: &str) -> Result<QrPayload, QrError> {
        let rest = match url.get(..URL_PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(URL_PREFIX) => &url[URL_PREFIX.len()..],
            _ => return Err(QrError::MissingPrefix),
        };
        let bytes = digits::decode(rest).map_err(QrError::Digits)?;
        QrPayload::from_cbor(&bytes)
    }

    /// Parses the CBOR map, tolerating non-canonical order and unknown keys.
    pub fn from_cbor(bytes: &[u8]) -> Result<QrPayload, QrError> {
        let v = Value::decode(bytes).map_err(QrError::Cbor)?;
        let Value::Map(entries) = v else { return Err(QrError::NotAMap) };
        let mut public_key = None;
        let mut secret = None;
        let mut known_domains = 0;
        let mut timestamp = None;
        let mut linking = None;
        let mut hint = None;
        let mut unknown_keys = Vec::new();
        for (k, val) in entries {
            let wrong = |key: u8, expected| QrError::WrongType { key, expected };
            match k.as_u64() {
                Some(0) => {
                    let b = val.as_bytes().ok_or(wrong(0, "a byte string"))?;
                    public_key = Some(parse_public_key(b)?);
                }
                Some(1) => {
                    let b = val.as_bytes().ok_or(wrong(1, "a byte string"))?;
                    secret = Some(QrSecret::from_slice(b).ok_or(QrError::SecretLength(b.len()))?);
                }
                Some(2) => {
                    known_domains = val.as_u64().ok_or(wrong(2, "an unsigned integer"))?;
                }
                Some(3) => timestamp = Some(val.as_u64().ok_or(wrong(3, "an unsigned integer"))?),
                Some(4) => linking = Some(val.as_bool().ok_or(wrong(4, "a boolean"))?),
                Some(5) => {
                    let s = val.as_text().ok_or(wrong(5, "a text string"))?;
                    hint = Some(RequestHint::from_wire(s));
                }
                _ => unknown_keys.push((k, val)),
            }
        }
        Ok(QrPayload {
            public_key: public_key.ok_or(QrError::MissingKey(0))?,
            secret: secret.ok_or(QrError::MissingKey(1))?,
            known_domains,
            timestamp,
            linking,
            hint,
            unknown_keys,
        })
    }
}

/// Key 0 must be exactly a compressed point (Chrome rejects anything else, §2.1).
fn parse_public_key(b: &[u8]) -> Result<p256::PublicKey, QrError> {
    if b.len() != 33 {
        return Err(QrError::PublicKeyLength(b.len()));
    }
    if !matches!(b.first(), Some(0x02 | 0x03)) {
        return Err(QrError::InvalidPublicKey);
    }
    p256::PublicKey::from_sec1_bytes(b).map_err(|_| QrError::InvalidPublicKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const CHROMIUM_POINT: &str =
        "03364c15eec34331d2865757421d497e569e1eba6cff9a69d32e90f19e7f6fd15e";

    fn map_with(extra: Vec<(Value, Value)>) -> Vec<u8> {
        let mut entries = vec![
            (Value::int(0), Value::bytes(hex::decode(CHROMIUM_POINT).unwrap())),
            (Value::int(1), Value::bytes(vec![7u8; 16])),
        ];
        entries.extend(extra);
        Value::Map(entries).to_vec()
    }

    #[test]
    fn generate_round_trips_and_always_writes_key_4() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let (sk, qr) =
            QrPayload::generate(&mut rng, 1_700_000_000, RequestHint::MakeCredential, false);
        assert_eq!(sk.public_key(), qr.public_key);
        let back = QrPayload::from_url(&qr.to_url()).unwrap();
        assert_eq!(back, qr);
        let map = Value::decode(&qr.to_cbor()).unwrap();
        assert_eq!(map.get(4), Some(&Value::Bool(false)));
        assert_eq!(map.get(2), Some(&Value::Unsigned(2)));
        assert_eq!(map.get(6), None);
        assert_eq!(qr.public_key_uncompressed()[0], 4);
    }

    #[test]
    fn unknown_keys_and_key_6_are_kept_but_not_emitted() {
        let bytes = map_with(vec![
            (Value::int(65535), Value::text("grease")),
            (Value::int(1000), Value::Null),
            (Value::int(6), Value::Array(vec![Value::int(0), Value::int(1)])),
        ]);
        let qr = QrPayload::from_cbor(&bytes).unwrap();
        assert_eq!(qr.unknown_keys.len(), 3);
        assert_eq!(qr.hint, None);
        assert_eq!(qr.effective_hint(), RequestHint::GetAssertion);
        assert_eq!(qr.linking, None);
        let again = Value::decode(&qr.to_cbor()).unwrap();
        assert_eq!(again.get(6), None);
        assert_eq!(again.get(65535), None);
        let qr = QrPayload::from_cbor(&map_with(vec![(Value::int(6), Value::Bool(true))])).unwrap();
        assert_eq!(qr.unknown_keys, vec![(Value::int(6), Value::Bool(true))]);
    }

    #[test]
    fn rejections_are_distinct() {
        let point = hex::decode(CHROMIUM_POINT).unwrap();
        let build = |k0: Value, k1: Value| Value::int_map([(0, k0), (1, k1)]).to_vec();
        let s16 = Value::bytes(vec![0u8; 16]);
        assert_eq!(
            QrPayload::from_cbor(&build(Value::bytes(point[..32].to_vec()), s16.clone())),
            Err(QrError::PublicKeyLength(32))
        );
        // X = p, the field modulus: not a field element, so never a valid point.
        let x_is_p =
            hex::decode("02ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")
                .unwrap();
        let r = QrPayload::from_cbor(&build(Value::bytes(x_is_p), s16.clone()));
        assert_eq!(r, Err(QrError::InvalidPublicKey));
        let mut bad_tag = point.clone();
        bad_tag[0] = 0x04;
        assert_eq!(
            QrPayload::from_cbor(&build(Value::bytes(bad_tag), s16.clone())),
            Err(QrError::InvalidPublicKey)
        );
        assert_eq!(
            QrPayload::from_cbor(&build(Value::bytes(point.clone()), Value::bytes(vec![0; 15]))),
            Err(QrError::SecretLength(15))
        );
        assert_eq!(
            QrPayload::from_cbor(&build(Value::bytes(point.clone()), Value::int(1))),
            Err(QrError::WrongType { key: 1, expected: "a byte string" })
        );
        let only0 = Value::int_map([(0, Value::bytes(point))]).to_vec();
        assert_eq!(QrPayload::from_cbor(&only0), Err(QrError::MissingKey(1)));
        assert_eq!(QrPayload::from_cbor(&[0x80]), Err(QrError::NotAMap));
        assert!(matches!(QrPayload::from_cbor(&[0xa1]), Err(QrError::Cbor(_))));
        assert_eq!(QrPayload::from_url("FIDO:12"), Err(QrError::MissingPrefix));
        assert!(matches!(QrPayload::from_url("fido:/1"), Err(QrError::Digits(_))));
    }
}
