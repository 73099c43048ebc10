//! The PIN/UV auth protocol primitives (CTAP 2.1 §6.5.6 protocol one, §6.5.7 protocol two).
//!
//! | | one | two |
//! |---|---|---|
//! | KDF(Z) | SHA-256(Z) (one key for HMAC and AES) | HKDF-SHA-256, salt 32×0x00, info "CTAP2 HMAC key" ‖ "CTAP2 AES key" |
//! | encrypt | AES-256-CBC, IV = 0 | random IV ‖ AES-256-CBC |
//! | authenticate | LEFT(HMAC-SHA-256, 16) | HMAC-SHA-256 |
//!
//! Neither protocol pads: plaintexts are always whole AES blocks (64-byte PINs, 16-byte PIN
//! hashes, 32-byte tokens), so a plaintext of another length is a caller error and a ciphertext
//! of another length is a peer error.

use crate::ctap2::error::Ctap2Error;
use crate::secret::{Secret, SecretBytes};
use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

const BLOCK: usize = 16;

/// Which PIN/UV auth protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinUvAuthProtocol {
    /// Protocol one (CTAP 2.0 compatible).
    One,
    /// Protocol two (CTAP 2.1, FIPS-friendly).
    Two,
}

impl PinUvAuthProtocol {
    /// From the wire number; `None` for anything but 1 and 2.
    pub fn from_u64(n: u64) -> Option<Self> {
        match n {
            1 => Some(PinUvAuthProtocol::One),
            2 => Some(PinUvAuthProtocol::Two),
            _ => None,
        }
    }

    /// The wire number.
    pub fn to_u64(self) -> u64 {
        match self {
            PinUvAuthProtocol::One => 1,
            PinUvAuthProtocol::Two => 2,
        }
    }

    /// Picks the first protocol of an authenticator's `pinUvAuthProtocols` list we support
    /// (the list is in the authenticator's order of preference).
    pub fn preferred(supported: &[u64]) -> Option<Self> {
        supported.iter().find_map(|&p| Self::from_u64(p))
    }

    /// KDF(Z): derives the shared secret from the ECDH x-coordinate.
    pub fn kdf(self, z: &[u8; 32]) -> SharedSecret {
        match self {
            PinUvAuthProtocol::One => {
                let k: [u8; 32] = Sha256::digest(z).into();
                SharedSecret { protocol: self, hmac_key: Secret::new(k), aes_key: Secret::new(k) }
            }
            PinUvAuthProtocol::Two => {
                let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
                let mut hmac_key = [0u8; 32];
                let mut aes_key = [0u8; 32];
                // 32 bytes is far below HKDF-SHA-256's 255×32 limit; expand cannot fail.
                let _ = hk.expand(b"CTAP2 HMAC key", &mut hmac_key);
                let _ = hk.expand(b"CTAP2 AES key", &mut aes_key);
                SharedSecret {
                    protocol: self,
                    hmac_key: Secret::new(hmac_key),
                    aes_key: Secret::new(aes_key),
                }
            }
        }
    }

    /// `authenticate(key, message)`: v1 LEFT(HMAC, 16), v2 the full HMAC.
    pub fn authenticate(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        let tag = hmac_sha256(key, message);
        match self {
            PinUvAuthProtocol::One => tag[..16].to_vec(),
            PinUvAuthProtocol::Two => tag.to_vec(),
        }
    }

    /// `verify(key, message, signature)` in constant time; the signature must have exactly the
    /// protocol's length.
    pub fn verify(self, key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), Ctap2Error> {
        let want_len = match self {
            PinUvAuthProtocol::One => 16,
            PinUvAuthProtocol::Two => 32,
        };
        if signature.len() != want_len {
            return Err(Ctap2Error::PinUvAuthInvalid);
        }
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let mut mac = HmacSha256::new_from_slice(key).map_err(|_| Ctap2Error::PinUvAuthInvalid)?;
        mac.update(message);
        mac.verify_truncated_left(signature).map_err(|_| Ctap2Error::PinUvAuthInvalid)
    }

    /// The length of a ciphertext of `plaintext_len` bytes.
    pub fn ciphertext_len(self, plaintext_len: usize) -> usize {
        match self {
            PinUvAuthProtocol::One => plaintext_len,
            PinUvAuthProtocol::Two => plaintext_len + BLOCK,
        }
    }
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error arm is unreachable but kept panic-free.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// The shared secret of one key agreement: for protocol one the HMAC and AES keys are the same
/// 32 bytes; for protocol two they are the two HKDF outputs.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret {
    protocol: PinUvAuthProtocol,
    hmac_key: Secret<32>,
    aes_key: Secret<32>,
}

impl core::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SharedSecret({:?}, <redacted>)", self.protocol)
    }
}

impl SharedSecret {
    /// The protocol this secret belongs to.
    pub fn protocol(&self) -> PinUvAuthProtocol {
        self.protocol
    }

    /// The HMAC key (v1: the whole secret).
    pub fn hmac_key(&self) -> &Secret<32> {
        &self.hmac_key
    }

    /// The AES key (v1: the whole secret).
    pub fn aes_key(&self) -> &Secret<32> {
        &self.aes_key
    }

    /// `encrypt(shared, plaintext)`. The plaintext must be a whole number of 16-byte blocks
    /// (caller error otherwise). Protocol two draws the IV from `rng`; protocol one ignores it.
    pub fn encrypt(
        &self,
        rng: &mut impl rand_core::CryptoRngCore,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Ctap2Error> {
        if !plaintext.len().is_multiple_of(BLOCK) {
            return Err(Ctap2Error::InvalidArgument("plaintext is not a multiple of 16 bytes"));
        }
        let key = self.aes_key.expose().into();
        match self.protocol {
            PinUvAuthProtocol::One => {
                let iv = [0u8; BLOCK];
                Ok(Aes256CbcEnc::new(key, &iv.into())
                    .encrypt_padded_vec_mut::<NoPadding>(plaintext))
            }
            PinUvAuthProtocol::Two => {
                let mut iv = [0u8; BLOCK];
                rng.fill_bytes(&mut iv);
                let mut out = iv.to_vec();
                out.extend(
                    Aes256CbcEnc::new(key, &iv.into())
                        .encrypt_padded_vec_mut::<NoPadding>(plaintext),
                );
                Ok(out)
            }
        }
    }

    /// `decrypt(shared, ciphertext)`. A ciphertext that is not whole blocks (or, for protocol two,
    /// has no IV) is the peer's fault.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<SecretBytes, Ctap2Error> {
        let (iv, body) = match self.protocol {
            PinUvAuthProtocol::One => ([0u8; BLOCK], ciphertext),
            PinUvAuthProtocol::Two => {
                if ciphertext.len() < BLOCK {
                    return Err(Ctap2Error::Decrypt("ciphertext shorter than the IV"));
                }
                let (iv, body) = ciphertext.split_at(BLOCK);
                let mut a = [0u8; BLOCK];
                a.copy_from_slice(iv);
                (a, body)
            }
        };
        if body.len() % BLOCK != 0 {
            return Err(Ctap2Error::Decrypt("ciphertext is not a multiple of 16 bytes"));
        }
        Aes256CbcDec::new(self.aes_key.expose().into(), &iv.into())
            .decrypt_padded_vec_mut::<NoPadding>(body)
            .map(SecretBytes::new)
            .map_err(|_| Ctap2Error::Decrypt("AES-CBC rejected the ciphertext"))
    }

    /// `authenticate(shared, message)` with the HMAC key.
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol.authenticate(self.hmac_key.expose(), message)
    }

    /// `verify(shared, message, signature)` in constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Ctap2Error> {
        self.protocol.verify(self.hmac_key.expose(), message, signature)
    }
}

/// A PIN/UV auth token together with the protocol it is used under.
///
/// Authenticators generate 32 random bytes (CTAP 2.1 §6.5.2.1); some CTAP 2.0 keys hand out
/// 16-byte tokens under protocol one, so any non-empty multiple of 16 up to 64 bytes is accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct PinUvAuthToken {
    protocol: PinUvAuthProtocol,
    key: SecretBytes,
}

impl core::fmt::Debug for PinUvAuthToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PinUvAuthToken({:?}, <{} bytes redacted>)", self.protocol, self.key.len())
    }
}

impl PinUvAuthToken {
    /// A fresh 32-byte token (authenticator side).
    pub fn random(protocol: PinUvAuthProtocol, rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let s = Secret::<32>::random(rng);
        PinUvAuthToken { protocol, key: SecretBytes::new(s.expose().to_vec()) }
    }

    /// Wraps token bytes, checking the length rule above.
    pub fn new(protocol: PinUvAuthProtocol, key: SecretBytes) -> Result<Self, Ctap2Error> {
        let ok = match protocol {
            PinUvAuthProtocol::One => {
                !key.is_empty() && key.len().is_multiple_of(16) && key.len() <= 64
            }
            PinUvAuthProtocol::Two => key.len() == 32,
        };
        if ok {
            Ok(PinUvAuthToken { protocol, key })
        } else {
            Err(Ctap2Error::field("pinUvAuthToken", "wrong length"))
        }
    }

    /// The protocol.
    pub fn protocol(&self) -> PinUvAuthProtocol {
        self.protocol
    }

    /// The same token used under another protocol (an authenticator has one token for both).
    pub fn with_protocol(&self, protocol: PinUvAuthProtocol) -> Self {
        PinUvAuthToken { protocol, key: self.key.clone() }
    }

    /// The token bytes.
    pub fn expose(&self) -> &[u8] {
        self.key.expose()
    }

    /// `authenticate(token, message)`: the pinUvAuthParam for makeCredential / getAssertion
    /// (message = clientDataHash) or credentialManagement (message = its auth message).
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol.authenticate(self.key.expose(), message)
    }

    /// `verify(token, message, param)` in constant time.
    pub fn verify(&self, message: &[u8], param: &[u8]) -> Result<(), Ctap2Error> {
        self.protocol.verify(self.key.expose(), message, param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockEncrypt, KeyInit};
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(42)
    }

    #[test]
    fn v2_kdf_matches_rfc5869_by_hand() {
        let z = [0x5a; 32];
        let s = PinUvAuthProtocol::Two.kdf(&z);
        // HKDF by hand: PRK = HMAC(salt, Z); T(1) = HMAC(PRK, info ‖ 0x01).
        let prk = hmac_sha256(&[0u8; 32], &z);
        let t1 = |info: &[u8]| hmac_sha256(&prk, &[info, &[1u8]].concat());
        assert_eq!(s.hmac_key().expose(), &t1(b"CTAP2 HMAC key"));
        assert_eq!(s.aes_key().expose(), &t1(b"CTAP2 AES key"));
        let v1 = PinUvAuthProtocol::One.kdf(&z);
        let h: [u8; 32] = Sha256::digest(z).into();
        assert_eq!(v1.hmac_key().expose(), &h);
        assert_eq!(v1.aes_key().expose(), &h);
    }

    #[test]
    fn cbc_matches_block_cipher_by_hand() {
        let s = PinUvAuthProtocol::Two.kdf(&[1; 32]);
        let pt = [0x42u8; 32];
        let ct = s.encrypt(&mut rng(), &pt).unwrap();
        assert_eq!(ct.len(), 48);
        // C1 = AES(K, P1 ⊕ IV), C2 = AES(K, P2 ⊕ C1).
        let aes = aes::Aes256::new(s.aes_key().expose().into());
        let mut b1: [u8; 16] = core::array::from_fn(|i| pt[i] ^ ct[i]);
        aes.encrypt_block((&mut b1).into());
        assert_eq!(&ct[16..32], &b1);
        let mut b2: [u8; 16] = core::array::from_fn(|i| pt[16 + i] ^ b1[i]);
        aes.encrypt_block((&mut b2).into());
        assert_eq!(&ct[32..48], &b2);
        assert_eq!(s.decrypt(&ct).unwrap().expose(), &pt);
    }

    #[test]
    fn encrypt_decrypt_authenticate_verify_both_protocols() {
        for p in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
            let s = p.kdf(&[9; 32]);
            let pt = [7u8; 64];
            let ct = s.encrypt(&mut rng(), &pt).unwrap();
            assert_eq!(ct.len(), p.ciphertext_len(64));
            assert_eq!(s.decrypt(&ct).unwrap().expose(), &pt);
            assert!(s.encrypt(&mut rng(), &[0; 15]).is_err());
            assert!(matches!(s.decrypt(&ct[..ct.len() - 1]), Err(Ctap2Error::Decrypt(_))));
            let tag = s.authenticate(b"msg");
            assert_eq!(tag.len(), if p == PinUvAuthProtocol::One { 16 } else { 32 });
            assert!(s.verify(b"msg", &tag).is_ok());
            assert_eq!(s.verify(b"msh", &tag), Err(Ctap2Error::PinUvAuthInvalid));
            assert_eq!(s.verify(b"msg", &tag[..8]), Err(Ctap2Error::PinUvAuthInvalid));
            let mut bad = tag.clone();
            bad[0] ^= 1;
            assert_eq!(s.verify(b"msg", &bad), Err(Ctap2Error::PinUvAuthInvalid));
        }
        assert!(matches!(
            PinUvAuthProtocol::Two.kdf(&[0; 32]).decrypt(&[0; 8]),
            Err(Ctap2Error::Decrypt(_))
        ));
    }

    #[test]
    fn token_rules_and_redaction() {
        let t = PinUvAuthToken::random(PinUvAuthProtocol::Two, &mut rng());
        assert!(!format!("{t:?}").contains(&hex::encode(&t.expose()[..4])));
        assert_eq!(t.authenticate(b"x"), hmac_sha256(t.expose(), b"x").to_vec());
        let t1 = t.with_protocol(PinUvAuthProtocol::One);
        assert_eq!(t1.authenticate(b"x"), hmac_sha256(t.expose(), b"x")[..16].to_vec());
        assert!(t1.verify(b"x", &t1.authenticate(b"x")).is_ok());
        assert!(PinUvAuthToken::new(PinUvAuthProtocol::One, SecretBytes::new(vec![1; 16])).is_ok());
        assert!(PinUvAuthToken::new(PinUvAuthProtocol::Two, SecretBytes::new(vec![1; 16])).is_err());
        assert_eq!(PinUvAuthProtocol::preferred(&[3, 2, 1]), Some(PinUvAuthProtocol::Two));
        assert_eq!(PinUvAuthProtocol::preferred(&[7]), None);
    }
}
