//! `hmac-secret` (CTAP 2.1 §12.5) and `hmac-secret-mc` (CTAP 2.2 §12.7): an HMAC-SHA-256 of one
//! or two 32-byte salts under a per-credential secret (`CredRandom`, one with UV and one without),
//! with the salts and the outputs encrypted under a PIN/UV auth protocol shared secret.
//!
//! Input map (getAssertion `hmac-secret`, makeCredential `hmac-secret-mc`):
//!
//! | key | value |
//! |---|---|
//! | 1 | keyAgreement: the platform's COSE key (alg -25) |
//! | 2 | saltEnc: `encrypt(shared, salt1 (32) [‖ salt2 (32)])` |
//! | 3 | saltAuth: `authenticate(shared, saltEnc)` |
//! | 4 | pinUvAuthProtocol (optional, default 1) |
//!
//! Output (in the authenticator data extensions): `encrypt(shared, output1 [‖ output2])`,
//! `outputN = HMAC-SHA-256(CredRandom, saltN)`. The platform side is [`HmacSecretInput::seal`] +
//! [`open_outputs`]; the authenticator side is [`HmacSecretInput::from_cbor`],
//! [`HmacSecretInput::open`], [`evaluate`] and [`seal_outputs`]. Randomness (v2 IVs) comes from
//! the caller. Outputs are secrets ([`PrfOutputs`] redacts its `Debug`).

use crate::cbor::Value;
use crate::ctap2::cose::CoseKey;
use crate::ctap2::error::Ctap2Error;
use crate::ctap2::fields::{self, opt, Fields, MapBuilder};
use crate::ctap2::pin::protocol::hmac_sha256;
use crate::ctap2::pin::{PinUvAuthProtocol, SharedSecret};
use crate::ctap2::StatusCode;
use crate::secret::Secret;

/// One or two 32-byte salts (already hashed when they come from WebAuthn `prf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salts {
    /// The first salt.
    pub first: [u8; 32],
    /// The optional second salt (key rotation).
    pub second: Option<[u8; 32]>,
}

impl Salts {
    /// `salt1 ‖ salt2?`, the plaintext of saltEnc.
    pub fn concat(&self) -> Vec<u8> {
        let mut v = self.first.to_vec();
        if let Some(s) = &self.second {
            v.extend_from_slice(s);
        }
        v
    }

    /// From 32 or 64 decrypted bytes.
    pub fn from_concat(b: &[u8]) -> Option<Self> {
        match b.len() {
            32 => Some(Salts { first: b.try_into().ok()?, second: None }),
            64 => Some(Salts {
                first: b.get(..32)?.try_into().ok()?,
                second: Some(b.get(32..)?.try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// One or two 32-byte outputs (hmac-secret outputs or WebAuthn PRF results). Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrfOutputs {
    /// HMAC(CredRandom, salt1).
    pub first: Secret<32>,
    /// HMAC(CredRandom, salt2), when a second salt was given.
    pub second: Option<Secret<32>>,
}

impl PrfOutputs {
    /// `output1 ‖ output2?` (zeroize the copy when done).
    pub fn concat(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = zeroize::Zeroizing::new(self.first.expose().to_vec());
        if let Some(s) = &self.second {
            v.extend_from_slice(s.expose());
        }
        v
    }

    /// From 32 or 64 bytes.
    pub fn from_concat(b: &[u8]) -> Option<Self> {
        match b.len() {
            32 => Some(PrfOutputs { first: Secret::from_slice(b)?, second: None }),
            64 => Some(PrfOutputs {
                first: Secret::from_slice(b.get(..32)?)?,
                second: Some(Secret::from_slice(b.get(32..)?)?),
            }),
            _ => None,
        }
    }
}

/// The hmac-secret / hmac-secret-mc input map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacSecretInput {
    /// The platform's key-agreement public key.
    pub key_agreement: CoseKey,
    /// Encrypted salts.
    pub salt_enc: Vec<u8>,
    /// `authenticate(shared, saltEnc)`.
    pub salt_auth: Vec<u8>,
    /// The PIN/UV protocol of the shared secret.
    pub protocol: PinUvAuthProtocol,
}

impl HmacSecretInput {
    /// Platform: encrypts `salts` under `shared` (made with `platform_key` and the
    /// authenticator's key-agreement key, e.g. by `pin::key_agreement::encapsulate`).
    pub fn seal(
        shared: &SharedSecret,
        platform_key: CoseKey,
        salts: &Salts,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Self, Ctap2Error> {
        let salt_enc = shared.encrypt(rng, &salts.concat())?;
        Ok(HmacSecretInput {
            key_agreement: platform_key,
            salt_auth: shared.authenticate(&salt_enc),
            salt_enc,
            protocol: shared.protocol(),
        })
    }

    /// The wire map.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put(1, self.key_agreement.to_cbor())
            .put(2, self.salt_enc.clone())
            .put(3, self.salt_auth.clone())
            .put(4, self.protocol.to_u64())
            .build()
    }

    /// Decodes the wire map (authenticator side). A missing protocol means protocol one.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "hmac-secret")?;
        let key = fields::req(f.get(1), "hmac-secret.keyAgreement")?;
        let protocol = opt(f.get(4), "hmac-secret.pinUvAuthProtocol", fields::uint)?.unwrap_or(1);
        Ok(HmacSecretInput {
            key_agreement: CoseKey::from_cbor(key)?,
            salt_enc: fields::bytes(fields::req(f.get(2), "hmac-secret.saltEnc")?, "saltEnc")?,
            salt_auth: fields::bytes(fields::req(f.get(3), "hmac-secret.saltAuth")?, "saltAuth")?,
            protocol: PinUvAuthProtocol::from_u64(protocol).ok_or(Ctap2Error::InvalidField {
                field: "hmac-secret.pinUvAuthProtocol",
                problem: "out of range",
            })?,
        })
    }

    /// Authenticator: checks saltAuth and decrypts the salts (CTAP 2.1 §12.5 steps 2–4). The
    /// status is what the authenticator answers: PIN_AUTH_INVALID for a bad saltAuth,
    /// INVALID_LENGTH for salts that are not 32 or 64 bytes.
    pub fn open(&self, shared: &SharedSecret) -> Result<Salts, StatusCode> {
        shared.verify(&self.salt_enc, &self.salt_auth).map_err(|_| StatusCode::PinAuthInvalid)?;
        let plain = shared.decrypt(&self.salt_enc).map_err(|_| StatusCode::InvalidLength)?;
        Salts::from_concat(plain.expose()).ok_or(StatusCode::InvalidLength)
    }
}

/// `HMAC-SHA-256(cred_random, salt)` for each salt.
pub fn evaluate(cred_random: &[u8; 32], salts: &Salts) -> PrfOutputs {
    let one = |salt: &[u8; 32]| Secret::new(hmac_sha256(cred_random, salt));
    PrfOutputs { first: one(&salts.first), second: salts.second.as_ref().map(one) }
}

/// Authenticator: the encrypted output bytes.
pub fn seal_outputs(
    shared: &SharedSecret,
    outputs: &PrfOutputs,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<u8>, Ctap2Error> {
    shared.encrypt(rng, &outputs.concat())
}

/// Platform: decrypts the authenticator's output; `two` says whether two salts were sent (the
/// answer must then be 64 bytes, else 32).
pub fn open_outputs(
    shared: &SharedSecret,
    encrypted: &[u8],
    two: bool,
) -> Result<PrfOutputs, Ctap2Error> {
    let plain = shared.decrypt(encrypted)?;
    let want = if two { 64 } else { 32 };
    if plain.len() != want {
        return Err(Ctap2Error::InvalidField {
            field: "hmac-secret output",
            problem: "wrong length for the number of salts",
        });
    }
    PrfOutputs::from_concat(plain.expose()).ok_or(Ctap2Error::Decrypt("hmac-secret output"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::pin::key_agreement::encapsulate;
    use crate::ctap2::pin::KeyAgreementKey;
    use rand::SeedableRng;
    use sha2::Digest;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(15)
    }

    #[test]
    fn output_is_hmac_sha256_by_hand() {
        // The construction against a by-hand HMAC: H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)).
        let k = [0x0b_u8; 32];
        let salt = [0x5a_u8; 32];
        let out = evaluate(&k, &Salts { first: salt, second: None });
        let pad = |b: u8| {
            let mut p = [b; 64];
            p.iter_mut().zip(k.iter()).for_each(|(p, k)| *p ^= k);
            p
        };
        let inner = sha2::Sha256::digest([&pad(0x36)[..], &salt].concat());
        let outer: [u8; 32] = sha2::Sha256::digest([&pad(0x5c)[..], &inner[..]].concat()).into();
        assert_eq!(out.first.expose(), &outer);
        assert!(out.second.is_none());
    }

    #[test]
    fn platform_and_authenticator_agree_for_both_protocols_and_salt_counts() {
        let mut rng = rng();
        let auth = KeyAgreementKey::generate(&mut rng);
        let cred_random = [7u8; 32];
        for p in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
            for salts in [
                Salts { first: [1; 32], second: None },
                Salts { first: [1; 32], second: Some([2; 32]) },
            ] {
                let (platform_key, shared) = encapsulate(p, &mut rng, &auth.public_cose()).unwrap();
                let input = HmacSecretInput::seal(&shared, platform_key, &salts, &mut rng).unwrap();
                let wire = Value::decode(&input.to_cbor().to_vec()).unwrap();
                let got = HmacSecretInput::from_cbor(&wire).unwrap();
                assert_eq!(got, input);
                let auth_shared = auth.shared_secret(got.protocol, &got.key_agreement).unwrap();
                let opened = got.open(&auth_shared).unwrap();
                assert_eq!(opened, salts);
                let outputs = evaluate(&cred_random, &opened);
                let enc = seal_outputs(&auth_shared, &outputs, &mut rng).unwrap();
                assert_eq!(enc.len(), p.ciphertext_len(salts.concat().len()));
                let back = open_outputs(&shared, &enc, salts.second.is_some()).unwrap();
                assert_eq!(back, outputs);
                assert!(open_outputs(&shared, &enc, salts.second.is_none()).is_err());
            }
        }
    }

    /// Known answers computed independently with python-fido2 2.2.1 (`PinProtocolV1.kdf`,
    /// `encrypt`, `authenticate`) and `cryptography`'s ECDH: platform scalar 0x11…11,
    /// authenticator scalar 0x22…22, salts 00..1f and 20..3f, CredRandom 0x33…33. Protocol one
    /// is deterministic (IV 0), so every byte is fixed.
    #[test]
    fn protocol_one_known_answers_from_python_fido2() {
        let key = |b: u8| {
            KeyAgreementKey::from_secret_key(p256::SecretKey::from_slice(&[b; 32]).unwrap())
        };
        let (platform, auth) = (key(0x11), key(0x22));
        let shared = platform.shared_secret(PinUvAuthProtocol::One, &auth.public_cose()).unwrap();
        let first: [u8; 32] = core::array::from_fn(|i| i as u8);
        let second: [u8; 32] = core::array::from_fn(|i| 32 + i as u8);
        let salts = Salts { first, second: Some(second) };
        let input =
            HmacSecretInput::seal(&shared, platform.public_cose(), &salts, &mut rng()).unwrap();
        assert_eq!(
            hex::encode(&input.salt_enc),
            "3a6fce1f2c0517ade8dc3b3f9f6dbb4b735732c052d19aafbcf85f336946cd07\
             ad825a3373395baf9a855f53681420c0bc4ce0dc3f51d484edbbfe329ff34778"
        );
        assert_eq!(hex::encode(&input.salt_auth), "7fe72686ef87d865b786b495d52cd455");
        let auth_shared = auth.shared_secret(PinUvAuthProtocol::One, &input.key_agreement).unwrap();
        let outputs = evaluate(&[0x33; 32], &input.open(&auth_shared).unwrap());
        assert_eq!(
            hex::encode(outputs.concat().as_slice()),
            "71cc1050905c872a02b6abcf0f8cd6ac6f27fede446d3b348efed8b925624fcd\
             682c8ce566c7413949528b79e925c85196c8c8d70cf88cd2a5559781b23ca326"
        );
        assert_eq!(
            hex::encode(seal_outputs(&auth_shared, &outputs, &mut rng()).unwrap()),
            "ba00a8d171c0fd4e8d018b9c0ac2c418c2185bc664675dc16ea37cfe3a5d2137\
             ad5560aaf3aed5fb07fb674753726ac5707ab37dee8d2a6c7f7b77f8e4a4cd6e"
        );
    }

    #[test]
    fn bad_salt_auth_and_lengths_answer_the_spec_statuses() {
        let mut rng = rng();
        let auth = KeyAgreementKey::generate(&mut rng);
        let (pk, shared) =
            encapsulate(PinUvAuthProtocol::Two, &mut rng, &auth.public_cose()).unwrap();
        let salts = Salts { first: [3; 32], second: None };
        let mut input = HmacSecretInput::seal(&shared, pk.clone(), &salts, &mut rng).unwrap();
        let auth_shared = auth.shared_secret(PinUvAuthProtocol::Two, &pk).unwrap();
        input.salt_auth[0] ^= 1;
        assert_eq!(input.open(&auth_shared), Err(StatusCode::PinAuthInvalid));
        // 48 bytes of salt: authenticated, but the wrong length.
        let enc = shared.encrypt(&mut rng, &[0u8; 48]).unwrap();
        let odd = HmacSecretInput {
            salt_auth: shared.authenticate(&enc),
            salt_enc: enc,
            ..input.clone()
        };
        assert_eq!(odd.open(&auth_shared), Err(StatusCode::InvalidLength));
        // Protocol defaults to one; 3 is out of range.
        let mut wire = input.to_cbor();
        if let Value::Map(m) = &mut wire {
            m.retain(|(k, _)| *k != Value::int(4));
        }
        assert_eq!(HmacSecretInput::from_cbor(&wire).unwrap().protocol, PinUvAuthProtocol::One);
        if let Value::Map(m) = &mut wire {
            m.push((Value::int(4), Value::int(3)));
        }
        assert!(HmacSecretInput::from_cbor(&wire).is_err());
        assert!(!format!("{:?}", evaluate(&[1; 32], &salts)).contains("0x"));
    }
}
