//! Key derivation (§3): every hybrid key comes from one HKDF-SHA256 call whose `info` is the
//! purpose as a **4-byte little-endian** integer (pitfall §11.2 item 5).
//!
//! Also holds the phone-local derivations (purposes 4–6, never on the wire) and BoringSSL's
//! `EC_KEY_derive_from_secret` ([`derive_p256_from_seed`], §2.3). Not here: what the keys are used
//! for (see `eid`, `noise`, `crypter`).

use crate::secret_type;
use hkdf::Hkdf;
use sha2::Sha256;

/// The HKDF purposes of §3. Values are the wire-relevant `info` integers.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum KeyPurpose {
    /// Advert key: AES-256 key ‖ HMAC-SHA256 key (64 bytes).
    EidKey = 1,
    /// Tunnel ID in URLs (16 bytes).
    TunnelId = 2,
    /// Noise psk0 (32 bytes), salted with the whole 16-byte EID plaintext.
    Psk = 3,
    /// Phone-local: link secret from the per-contact secret, salted with the link ID.
    PairedSecret = 4,
    /// Phone-local: seed for the long-term identity key.
    IdentityKeySeed = 5,
    /// Phone-local: per-contact-ID secret, salted with the contact ID.
    PerContactIdSecret = 6,
}

/// `Derive(secret, salt, purpose, out.len())` of §3. An empty salt is HKDF's all-zero salt.
///
/// HKDF-SHA256 can produce up to 8160 bytes; every caller asks for ≤ 64, and a longer request is
/// a programming error reported by returning `false` (the output is then zeroed).
#[must_use = "false means the requested length was impossible"]
pub fn derive(secret: &[u8], salt: &[u8], purpose: KeyPurpose, out: &mut [u8]) -> bool {
    let hk = Hkdf::<Sha256>::new(Some(salt), secret);
    let info = (purpose as u32).to_le_bytes();
    if hk.expand(&info, out).is_err() {
        out.fill(0);
        return false;
    }
    true
}

/// Fixed-size [`derive`]: the length is checked at compile time to be within HKDF's limit.
pub fn derive_array<const N: usize>(secret: &[u8], salt: &[u8], purpose: KeyPurpose) -> [u8; N] {
    const { assert!(N <= 255 * 32) };
    let mut out = [0u8; N];
    // Cannot fail: N is within the HKDF-SHA256 limit (asserted above).
    let _ = derive(secret, salt, purpose, &mut out);
    out
}

/// A secret a session's EID key and PSK are derived from (§3): the QR secret of a QR-initiated
/// session or the link secret of a linked one. Sealed: only those two types implement it, so a
/// PSK can never be derived from an arbitrary byte string by mistake.
pub trait PairingSecret: sealed::Sealed {
    /// The secret bytes (the HKDF input keying material).
    #[doc(hidden)]
    fn ikm(&self) -> &[u8];
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::QrSecret {}
    impl Sealed for super::LinkSecret {}
}

impl PairingSecret for QrSecret {
    fn ikm(&self) -> &[u8] {
        self.expose()
    }
}

impl PairingSecret for LinkSecret {
    fn ikm(&self) -> &[u8] {
        self.expose()
    }
}

secret_type!(
    /// The 16-byte QR secret shared through the QR code.
    QrSecret,
    16
);
secret_type!(
    /// A 32-byte link secret (state-assisted transactions).
    LinkSecret,
    32
);
secret_type!(
    /// The 64-byte EID key: AES-256 key ‖ HMAC key.
    EidKeyBytes,
    64
);
secret_type!(
    /// The 32-byte Noise pre-shared key.
    Psk,
    32
);

secret_type!(
    /// Phone-local 32-byte root secret from which identity and link secrets are derived (§3).
    PhoneRootSecret,
    32
);
secret_type!(
    /// Phone-local per-contact-ID secret (purpose 6): rotates link secrets when the contact ID
    /// changes.
    PerContactSecret,
    32
);
secret_type!(
    /// Seed for a P-256 key fed to [`derive_p256_from_seed`] (Chrome's QR generator seed, or the
    /// phone's identity-key seed of purpose 5).
    P256Seed,
    32
);

/// Phone-local purpose 6: `Derive(root, contact_id, PerContactIDSecret, 32)`.
pub fn per_contact_secret(root: &PhoneRootSecret, contact_id: &[u8]) -> PerContactSecret {
    PerContactSecret::new(derive_array(root.expose(), contact_id, KeyPurpose::PerContactIdSecret))
}

/// Phone-local purpose 4: the link secret sent to the desktop,
/// `Derive(per_contact, link_id, PairedSecret, 32)`.
pub fn paired_secret(per_contact: &PerContactSecret, link_id: &[u8; 8]) -> LinkSecret {
    LinkSecret::new(derive_array(per_contact.expose(), link_id, KeyPurpose::PairedSecret))
}

/// Phone-local purpose 5: the seed of the phone's long-term identity key
/// (then [`derive_p256_from_seed`]).
pub fn identity_key_seed(root: &PhoneRootSecret) -> P256Seed {
    P256Seed::new(derive_array(root.expose(), &[], KeyPurpose::IdentityKeySeed))
}

/// The seed reduced to the scalar zero, which is not a valid private key.
///
/// Probability ≈ 2^-256 per seed; the documented rule is "draw a new seed". BoringSSL's
/// `EC_KEY_derive_from_secret` fails in the same case.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroScalarError;

impl core::fmt::Display for ZeroScalarError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("P-256 key derivation from seed produced the zero scalar; draw a new seed")
    }
}
impl std::error::Error for ZeroScalarError {}
impl crate::error::Classify for ZeroScalarError {
    fn fault(&self) -> crate::error::Fault {
        crate::error::Fault::Caller
    }
    fn stage(&self) -> crate::error::Stage {
        // The derived key is always a Noise static key (QR identity or phone identity).
        crate::error::Stage::Handshake
    }
}

/// BoringSSL `EC_KEY_derive_from_secret(P-256, seed)` (§2.3): HKDF-SHA256(ikm = seed, salt =
/// empty, info = `"derive EC key P-256"`, L = 48), read big-endian and reduced mod the group
/// order n. The 16 extra bytes make the modular bias negligible.
///
/// Used for Chrome's QR identity key (seed = first 32 bytes of the QR generator key) and for the
/// phone identity key (seed = [`identity_key_seed`]).
pub fn derive_p256_from_seed(seed: &[u8; 32]) -> Result<p256::SecretKey, ZeroScalarError> {
    use p256::elliptic_curve::ops::Reduce;
    use p256::elliptic_curve::PrimeField;
    use p256::{FieldBytes, NonZeroScalar, Scalar, U256};
    use zeroize::Zeroize;

    let mut okm = [0u8; 48];
    let hk = Hkdf::<Sha256>::new(Some(&[]), seed);
    // 48 ≤ 255·32, so expand cannot fail; a failure would leave okm zero → ZeroScalarError.
    let _ = hk.expand(b"derive EC key P-256", &mut okm);
    // x = hi·2^256 + lo with hi < 2^128 < n; 2^256 ≡ (2^128)^2 (mod n).
    let mut hi = FieldBytes::default();
    hi[16..].copy_from_slice(&okm[..16]);
    let mut lo = FieldBytes::default();
    lo.copy_from_slice(&okm[16..]);
    let mut two128 = FieldBytes::default();
    two128[15] = 1;
    let hi = Option::<Scalar>::from(Scalar::from_repr(hi)).unwrap_or(Scalar::ZERO);
    let two128 = Option::<Scalar>::from(Scalar::from_repr(two128)).unwrap_or(Scalar::ZERO);
    let lo = <Scalar as Reduce<U256>>::reduce_bytes(&lo);
    okm.zeroize();
    let d = hi * two128 * two128 + lo;
    let d = Option::<NonZeroScalar>::from(NonZeroScalar::new(d)).ok_or(ZeroScalarError)?;
    Ok(p256::SecretKey::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libwebauthn_kdf_vectors() {
        let secret = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        let out: [u8; 64] = derive_array(&secret, &[], KeyPurpose::EidKey);
        assert_eq!(hex::encode(out), "efafab5b2c84a11c80e3ad0770353138b414a859ccd3afcc99e3d3250dba65084ede8e38e75432617c0ccae1ffe5d8143df0db0cd6d296f489419cd6411ee505");
        let salt = hex::decode("ffeeddccbbaa998877665544332211").unwrap();
        let out: [u8; 64] = derive_array(&secret, &salt, KeyPurpose::EidKey);
        assert_eq!(hex::encode(out), "168cf3dd220a7907f8bac30f559be92a3b6d937fe5594beeaf1e50e35976b7d654dd550e22ae4c801b9d1cdbf0d2b1472daa1328661eb889acae3023b7ffa509");
    }

    #[test]
    fn derive_p256_from_seed_matches_transcript_vectors() {
        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        let k = derive_p256_from_seed(&seed).unwrap();
        assert_eq!(
            hex::encode(k.to_bytes()),
            "5cb95a87ceaaae2635ff47b44ba90165a845191589b9b909ea5a15c2cdb74e63"
        );
    }

    #[test]
    fn oversize_request_is_reported() {
        let mut big = vec![1u8; 255 * 32 + 1];
        assert!(!derive(b"s", b"", KeyPurpose::Psk, &mut big));
        assert!(big.iter().all(|b| *b == 0));
    }
}
