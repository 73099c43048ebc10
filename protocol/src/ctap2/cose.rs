//! COSE algorithm identifiers and `COSE_Key` public keys as CTAP2 uses them (RFC 9052/9053,
//! CTAP 2.1 §6.5.6 key agreement, WebAuthn §6.5.1.1 credential public keys).
//!
//! Only P-256 keys are fully understood (parsed into a [`p256::PublicKey`], so the point is
//! validated to be on the curve): they are both the ES256 credential keys and the ECDH key
//! agreement keys of PIN/UV auth protocols 1 and 2. Ed25519 and RSA keys are recognised and kept
//! as raw components so they can be shown and re-encoded, but nothing here verifies with them.
//! Any other key shape is preserved as the raw CBOR value.

use super::error::Ctap2Error;
use crate::cbor::Value;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};

/// COSE key parameter labels (RFC 9052 §7.1, RFC 9053 §7).
mod label {
    pub const KTY: i64 = 1;
    pub const ALG: i64 = 3;
    pub const CRV_OR_N: i64 = -1;
    pub const X_OR_E: i64 = -2;
    pub const Y: i64 = -3;
}
const KTY_OKP: i64 = 1;
const KTY_EC2: i64 = 2;
const KTY_RSA: i64 = 3;
const CRV_P256: i64 = 1;
const CRV_ED25519: i64 = 6;

/// A COSE algorithm identifier (IANA "COSE Algorithms").
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoseAlgorithm {
    /// ECDSA with SHA-256 on P-256 (-7).
    Es256,
    /// EdDSA (-8), in practice Ed25519.
    EdDsa,
    /// ECDH-ES + HKDF-256 (-25): the PIN/UV auth protocol key agreement.
    EcdhEsHkdf256,
    /// ECDSA with SHA-384 (-35).
    Es384,
    /// ECDSA with SHA-512 (-36).
    Es512,
    /// RSASSA-PSS with SHA-256 (-37).
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (-257).
    Rs256,
    /// Anything else, kept as its number.
    Other(i64),
}

impl CoseAlgorithm {
    /// From the COSE number.
    pub fn from_i64(n: i64) -> Self {
        match n {
            -7 => CoseAlgorithm::Es256,
            -8 => CoseAlgorithm::EdDsa,
            -25 => CoseAlgorithm::EcdhEsHkdf256,
            -35 => CoseAlgorithm::Es384,
            -36 => CoseAlgorithm::Es512,
            -37 => CoseAlgorithm::Ps256,
            -257 => CoseAlgorithm::Rs256,
            other => CoseAlgorithm::Other(other),
        }
    }

    /// The COSE number.
    pub fn to_i64(self) -> i64 {
        match self {
            CoseAlgorithm::Es256 => -7,
            CoseAlgorithm::EdDsa => -8,
            CoseAlgorithm::EcdhEsHkdf256 => -25,
            CoseAlgorithm::Es384 => -35,
            CoseAlgorithm::Es512 => -36,
            CoseAlgorithm::Ps256 => -37,
            CoseAlgorithm::Rs256 => -257,
            CoseAlgorithm::Other(n) => n,
        }
    }

    /// A short name (`"ES256"`).
    pub fn name(self) -> &'static str {
        match self {
            CoseAlgorithm::Es256 => "ES256",
            CoseAlgorithm::EdDsa => "EdDSA",
            CoseAlgorithm::EcdhEsHkdf256 => "ECDH-ES+HKDF-256",
            CoseAlgorithm::Es384 => "ES384",
            CoseAlgorithm::Es512 => "ES512",
            CoseAlgorithm::Ps256 => "PS256",
            CoseAlgorithm::Rs256 => "RS256",
            CoseAlgorithm::Other(_) => "unknown",
        }
    }
}

/// A `COSE_Key` public key.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    /// kty EC2, crv P-256: an ES256 credential key or an ECDH-ES+HKDF-256 key agreement key.
    P256 {
        /// The `alg` (3) parameter.
        alg: CoseAlgorithm,
        /// The validated point.
        key: p256::PublicKey,
    },
    /// kty OKP, crv Ed25519.
    Ed25519 {
        /// The `alg` parameter (normally EdDSA).
        alg: CoseAlgorithm,
        /// The 32-byte public key.
        x: [u8; 32],
    },
    /// kty RSA.
    Rsa {
        /// The `alg` parameter (RS256 or PS256).
        alg: CoseAlgorithm,
        /// Modulus, big-endian.
        n: Vec<u8>,
        /// Public exponent, big-endian.
        e: Vec<u8>,
    },
    /// Any other well-formed map, kept verbatim.
    Other(Value),
}

impl CoseKey {
    /// An ES256 credential public key.
    pub fn es256(key: p256::PublicKey) -> Self {
        CoseKey::P256 { alg: CoseAlgorithm::Es256, key }
    }

    /// A PIN/UV auth protocol key agreement key (alg -25, CTAP 2.1 §6.5.6).
    pub fn key_agreement(key: p256::PublicKey) -> Self {
        CoseKey::P256 { alg: CoseAlgorithm::EcdhEsHkdf256, key }
    }

    /// The `alg` parameter, when known.
    pub fn alg(&self) -> Option<CoseAlgorithm> {
        match self {
            CoseKey::P256 { alg, .. } | CoseKey::Ed25519 { alg, .. } | CoseKey::Rsa { alg, .. } => {
                Some(*alg)
            }
            CoseKey::Other(v) => {
                v.get(label::ALG).and_then(Value::as_i64).map(CoseAlgorithm::from_i64)
            }
        }
    }

    /// The P-256 point, if this is one.
    pub fn as_p256(&self) -> Option<&p256::PublicKey> {
        match self {
            CoseKey::P256 { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Encodes as a COSE_Key map (canonical on `to_vec`).
    pub fn to_cbor(&self) -> Value {
        match self {
            CoseKey::P256 { alg, key } => {
                let point = key.to_encoded_point(false);
                // An uncompressed point always has both coordinates; the fallbacks are unreachable.
                let x = point.x().map(|x| x.to_vec()).unwrap_or_default();
                let y = point.y().map(|y| y.to_vec()).unwrap_or_default();
                Value::int_map([
                    (label::KTY, Value::int(KTY_EC2)),
                    (label::ALG, Value::int(alg.to_i64())),
                    (label::CRV_OR_N, Value::int(CRV_P256)),
                    (label::X_OR_E, Value::Bytes(x)),
                    (label::Y, Value::Bytes(y)),
                ])
            }
            CoseKey::Ed25519 { alg, x } => Value::int_map([
                (label::KTY, Value::int(KTY_OKP)),
                (label::ALG, Value::int(alg.to_i64())),
                (label::CRV_OR_N, Value::int(CRV_ED25519)),
                (label::X_OR_E, Value::bytes(x.to_vec())),
            ]),
            CoseKey::Rsa { alg, n, e } => Value::int_map([
                (label::KTY, Value::int(KTY_RSA)),
                (label::ALG, Value::int(alg.to_i64())),
                (label::CRV_OR_N, Value::bytes(n.clone())),
                (label::X_OR_E, Value::bytes(e.clone())),
            ]),
            CoseKey::Other(v) => v.clone(),
        }
    }

    /// Parses a COSE_Key map. Unknown key types are kept as [`CoseKey::Other`]; a known type
    /// with a malformed parameter (wrong coordinate length, a point not on the curve) is an error.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        if v.as_map().is_none() {
            return Err(Ctap2Error::field("COSE_Key", "not a map"));
        }
        let kty = int(v, label::KTY, "COSE_Key.kty")?;
        let alg = match v.get(label::ALG) {
            Some(a) => CoseAlgorithm::from_i64(
                a.as_i64().ok_or(Ctap2Error::field("COSE_Key.alg", "not an integer"))?,
            ),
            None => return Err(Ctap2Error::MissingField("COSE_Key.alg")),
        };
        match kty {
            KTY_EC2 => {
                let crv = int(v, label::CRV_OR_N, "COSE_Key.crv")?;
                if crv != CRV_P256 {
                    return Ok(CoseKey::Other(v.clone()));
                }
                let x = coord(v, label::X_OR_E, "COSE_Key.x")?;
                let y = coord(v, label::Y, "COSE_Key.y")?;
                let point = p256::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
                let key: Option<p256::PublicKey> =
                    p256::PublicKey::from_encoded_point(&point).into();
                let key = key
                    .ok_or(Ctap2Error::InvalidPublicKey("COSE P-256 point is not on the curve"))?;
                Ok(CoseKey::P256 { alg, key })
            }
            KTY_OKP => {
                let crv = int(v, label::CRV_OR_N, "COSE_Key.crv")?;
                if crv != CRV_ED25519 {
                    return Ok(CoseKey::Other(v.clone()));
                }
                let x = coord(v, label::X_OR_E, "COSE_Key.x")?;
                Ok(CoseKey::Ed25519 { alg, x: *x })
            }
            KTY_RSA => {
                let n = bytes(v, label::CRV_OR_N, "COSE_Key.n")?;
                let e = bytes(v, label::X_OR_E, "COSE_Key.e")?;
                if n.is_empty() || e.is_empty() {
                    return Err(Ctap2Error::field("COSE_Key.n/e", "empty"));
                }
                Ok(CoseKey::Rsa { alg, n: n.to_vec(), e: e.to_vec() })
            }
            _ => Ok(CoseKey::Other(v.clone())),
        }
    }
}

fn int(v: &Value, key: i64, name: &'static str) -> Result<i64, Ctap2Error> {
    v.get(key)
        .ok_or(Ctap2Error::MissingField(name))?
        .as_i64()
        .ok_or(Ctap2Error::field(name, "not an integer"))
}

fn bytes<'a>(v: &'a Value, key: i64, name: &'static str) -> Result<&'a [u8], Ctap2Error> {
    v.get(key)
        .ok_or(Ctap2Error::MissingField(name))?
        .as_bytes()
        .ok_or(Ctap2Error::field(name, "not a byte string"))
}

fn coord<'a>(v: &'a Value, key: i64, name: &'static str) -> Result<&'a [u8; 32], Ctap2Error> {
    bytes(v, key, name)?.try_into().map_err(|_| Ctap2Error::field(name, "not 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn key() -> p256::PublicKey {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        p256::SecretKey::random(&mut rng).public_key()
    }

    #[test]
    fn p256_key_round_trips_in_canonical_layout() {
        let k = CoseKey::key_agreement(key());
        let enc = k.to_cbor().to_vec();
        // {1:2, 3:-25, -1:1, -2:x, -3:y}: canonical order 1, 3, -1, -2, -3.
        assert_eq!(&enc[..8], &[0xa5, 0x01, 0x02, 0x03, 0x38, 0x18, 0x20, 0x01]);
        assert_eq!(enc[8..11], [0x21, 0x58, 0x20]);
        assert_eq!(enc.len(), 8 + 3 + 32 + 3 + 32);
        let back = CoseKey::from_cbor(&Value::decode(&enc).unwrap()).unwrap();
        assert_eq!(back, k);
        assert_eq!(back.alg(), Some(CoseAlgorithm::EcdhEsHkdf256));
    }

    #[test]
    fn rejects_bad_points_and_types() {
        let mut v = CoseKey::es256(key()).to_cbor();
        if let Value::Map(m) = &mut v {
            for (k, val) in m.iter_mut() {
                if *k == Value::int(-3) {
                    *val = Value::bytes(vec![0u8; 32]);
                }
            }
        }
        assert!(matches!(CoseKey::from_cbor(&v), Err(Ctap2Error::InvalidPublicKey(_))));
        let short = Value::int_map([
            (1, Value::int(2)),
            (3, Value::int(-7)),
            (-1, Value::int(1)),
            (-2, Value::bytes(vec![1u8; 31])),
            (-3, Value::bytes(vec![1u8; 32])),
        ]);
        assert_eq!(
            CoseKey::from_cbor(&short),
            Err(Ctap2Error::field("COSE_Key.x", "not 32 bytes"))
        );
        assert_eq!(
            CoseKey::from_cbor(&Value::int_map([(3, Value::int(-7))])),
            Err(Ctap2Error::MissingField("COSE_Key.kty"))
        );
        assert!(CoseKey::from_cbor(&Value::Null).is_err());
    }

    #[test]
    fn recognises_other_algorithms() {
        assert_eq!(CoseAlgorithm::from_i64(-257), CoseAlgorithm::Rs256);
        assert_eq!(CoseAlgorithm::from_i64(-8), CoseAlgorithm::EdDsa);
        assert_eq!(CoseAlgorithm::from_i64(-7).name(), "ES256");
        assert_eq!(CoseAlgorithm::from_i64(-999).to_i64(), -999);
        let ed = CoseKey::Ed25519 { alg: CoseAlgorithm::EdDsa, x: [9; 32] };
        assert_eq!(CoseKey::from_cbor(&ed.to_cbor()).unwrap(), ed);
        let rsa = CoseKey::Rsa { alg: CoseAlgorithm::Rs256, n: vec![0xC1; 256], e: vec![1, 0, 1] };
        assert_eq!(CoseKey::from_cbor(&rsa.to_cbor()).unwrap(), rsa);
        let p384 = Value::int_map([(1, Value::int(2)), (3, Value::int(-35)), (-1, Value::int(2))]);
        assert_eq!(CoseKey::from_cbor(&p384).unwrap(), CoseKey::Other(p384.clone()));
    }
}
