//! PIN/UV auth protocols 1 and 2, authenticator side (CTAP 2.1 §6.5.6 and §6.5.7).
//!
//! Protocol 1: shared secret `SHA-256(Z)`, AES-256-CBC with a zero IV, HMAC-SHA-256 truncated to
//! 16 bytes. Protocol 2: `HKDF-SHA-256(salt = 32×00, Z)` with info "CTAP2 HMAC key" and
//! "CTAP2 AES key", AES-256-CBC with a random IV prefixed to the ciphertext, full 32-byte HMAC.
//! `Z` is the x-coordinate of the ECDH point between our key-agreement key and the platform's.
//!
//! Not the platform side (that is `ctap2`'s job) and not PIN policy (see `client_pin`). Kept here
//! because the authenticator needed it before the shared `ctap2` PIN module landed; only the
//! authenticator-side half is implemented.

use crate::cbor::Value;
use crate::ctap2::{CoseKey, StatusCode as Status};
use crate::secret::{Secret, SecretBytes};
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// A PIN/UV auth protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinProtocol {
    /// Protocol one.
    One,
    /// Protocol two.
    Two,
}

impl PinProtocol {
    /// From the request's `pinUvAuthProtocol` integer.
    pub fn from_u64(n: u64) -> Option<Self> {
        match n {
            1 => Some(PinProtocol::One),
            2 => Some(PinProtocol::Two),
            _ => None,
        }
    }

    /// Verifies `signature` = authenticate(`key`, `message`) in constant time.
    pub fn verify(self, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return false };
        mac.update(message);
        match self {
            PinProtocol::One => {
                signature.len() == 16 && mac.verify_truncated_left(signature).is_ok()
            }
            PinProtocol::Two => signature.len() == 32 && mac.verify_slice(signature).is_ok(),
        }
    }
}

/// The shared secret of one ECDH exchange with the platform.
#[derive(Debug)]
pub struct SharedSecret {
    protocol: PinProtocol,
    hmac_key: Secret<32>,
    aes_key: Secret<32>,
}

impl SharedSecret {
    /// ECDH between our key-agreement key and the platform's COSE key (`keyAgreement`, 0x02).
    pub fn agree(
        protocol: PinProtocol,
        ours: &p256::SecretKey,
        platform: &Value,
    ) -> Result<Self, Status> {
        let peer = CoseKey::from_cbor(platform).map_err(|_| Status::InvalidParameter)?;
        let peer = peer.as_p256().ok_or(Status::InvalidParameter)?;
        let shared = p256::ecdh::diffie_hellman(ours.to_nonzero_scalar(), peer.as_affine());
        let z = shared.raw_secret_bytes();
        let (hmac_key, aes_key) = match protocol {
            PinProtocol::One => {
                let k: [u8; 32] = Sha256::digest(z).into();
                (Secret::new(k), Secret::new(k))
            }
            PinProtocol::Two => {
                let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
                let mut h = [0u8; 32];
                let mut a = [0u8; 32];
                hk.expand(b"CTAP2 HMAC key", &mut h).map_err(|_| Status::OtherError)?;
                hk.expand(b"CTAP2 AES key", &mut a).map_err(|_| Status::OtherError)?;
                (Secret::new(h), Secret::new(a))
            }
        };
        Ok(SharedSecret { protocol, hmac_key, aes_key })
    }

    /// Verifies a `pinUvAuthParam` computed with this shared secret.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.protocol.verify(self.hmac_key.expose(), message, signature)
    }

    /// Decrypts `newPinEnc` / `pinHashEnc`; the ciphertext must be whole blocks.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<SecretBytes, Status> {
        let (iv, body) = match self.protocol {
            PinProtocol::One => ([0u8; 16], ciphertext),
            PinProtocol::Two => {
                let (iv, body) = ciphertext.split_at_checked(16).ok_or(Status::InvalidParameter)?;
                (iv.try_into().map_err(|_| Status::InvalidParameter)?, body)
            }
        };
        if body.is_empty() || body.len() % 16 != 0 {
            return Err(Status::InvalidParameter);
        }
        let mut buf = body.to_vec();
        let dec = Aes256CbcDec::new(self.aes_key.expose().into(), &iv.into());
        dec.decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf)
            .map_err(|_| Status::InvalidParameter)?;
        Ok(SecretBytes::new(buf))
    }

    /// Encrypts whole blocks (the PIN token) for the platform.
    pub fn encrypt(&self, plaintext: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        let mut iv = [0u8; 16];
        if self.protocol == PinProtocol::Two {
            rng.fill_bytes(&mut iv);
        }
        let enc = Aes256CbcEnc::new(self.aes_key.expose().into(), &iv.into());
        let ct = enc.encrypt_padded_vec_mut::<aes::cipher::block_padding::NoPadding>(plaintext);
        match self.protocol {
            PinProtocol::One => ct,
            PinProtocol::Two => [iv.as_slice(), &ct].concat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Platform side, written independently from the spec text for the test.
    fn platform_keys(proto: PinProtocol, z: &[u8]) -> ([u8; 32], [u8; 32]) {
        match proto {
            PinProtocol::One => {
                let k: [u8; 32] = Sha256::digest(z).into();
                (k, k)
            }
            PinProtocol::Two => {
                let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
                let (mut h, mut a) = ([0u8; 32], [0u8; 32]);
                hk.expand(b"CTAP2 HMAC key", &mut h).unwrap();
                hk.expand(b"CTAP2 AES key", &mut a).unwrap();
                (h, a)
            }
        }
    }

    #[test]
    fn both_protocols_agree_encrypt_and_authenticate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for proto in [PinProtocol::One, PinProtocol::Two] {
            let ours = p256::SecretKey::random(&mut rng);
            let theirs = p256::SecretKey::random(&mut rng);
            let cose = CoseKey::key_agreement(theirs.public_key()).to_cbor();
            let ss = SharedSecret::agree(proto, &ours, &cose).unwrap();
            let z = p256::ecdh::diffie_hellman(
                theirs.to_nonzero_scalar(),
                ours.public_key().as_affine(),
            );
            let (h, _a) = platform_keys(proto, z.raw_secret_bytes());
            let mut mac = Hmac::<Sha256>::new_from_slice(&h).unwrap();
            mac.update(b"msg");
            let tag = mac.finalize().into_bytes();
            let tag = if proto == PinProtocol::One { &tag[..16] } else { &tag[..] };
            assert!(ss.verify(b"msg", tag));
            assert!(!ss.verify(b"msh", tag));
            let ct = ss.encrypt(&[7u8; 32], &mut rng);
            assert_eq!(ss.decrypt(&ct).unwrap().expose(), &[7u8; 32]);
            assert!(ss.decrypt(&ct[..ct.len() - 1]).is_err());
        }
    }
}
