//! Key derivation (§3): every hybrid key comes from one HKDF-SHA256 call whose `info` is the
//! purpose as a **4-byte little-endian** integer (pitfall §11.2 item 5).

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
    fn oversize_request_is_reported() {
        let mut big = vec![1u8; 255 * 32 + 1];
        assert!(!derive(b"s", b"", KeyPurpose::Psk, &mut big));
        assert!(big.iter().all(|b| *b == 0));
    }
}
