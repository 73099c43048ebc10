//! Credential key handling: ES256 credential keys, the master key, and the non-resident credential
//! ID format (an AEAD-wrapped private key bound to the RP).
//!
//! A non-resident credential stores nothing on the authenticator: its credential ID is
//! `0x01 ‖ nonce(12) ‖ AES-256-GCM(wrap key, nonce, aad = rpIdHash, private scalar) ‖ tag(16)`
//! (61 bytes), where the wrap key is HKDF-SHA-256 of the master key. Binding the rpIdHash as AAD
//! means an ID presented for another RP fails to open, exactly like a foreign credential.
//! Resident credentials use a random 32-byte ID (first byte `0x02`) and keep their key in the store.
//!
//! Not the PIN protocol keys (those are [`crate::ctap2::pin::KeyAgreementKey`]) and not
//! attestation keys (see `attestation`).

use super::store::CredRandom;
use crate::ctap2::extensions::CredProtect;
use crate::ctap2::CoseKey;
use crate::secret_type;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use p256::ecdsa::SigningKey;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

secret_type!(
    /// The authenticator's 32-byte master key: wraps non-resident credential keys. Persistent.
    MasterKey,
    32
);
secret_type!(
    /// An ES256 credential private scalar (big-endian), valid for P-256.
    CredentialKey,
    32
);

/// Length of a wrapped (non-resident) credential ID.
pub const WRAPPED_ID_LEN: usize = 1 + 12 + 32 + 16;
const WRAPPED_VERSION: u8 = 0x01;
/// First byte of a resident credential ID.
pub const RESIDENT_ID_PREFIX: u8 = 0x02;
/// Length of a resident credential ID.
pub const RESIDENT_ID_LEN: usize = 32;

/// SHA-256 of an RP ID (the `rpIdHash` of authenticator data).
pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

impl CredentialKey {
    /// A fresh P-256 credential key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let sk = p256::SecretKey::random(rng);
        Self::new(sk.to_bytes().into())
    }

    /// The ECDSA signing key. `None` only if the stored scalar is invalid (a corrupt import).
    pub fn signing_key(&self) -> Option<SigningKey> {
        SigningKey::from_bytes(self.expose().into()).ok()
    }

    /// The public key as a COSE_Key (EC2, P-256, ES256).
    pub fn public_cose(&self) -> Option<CoseKey> {
        Some(CoseKey::es256(p256::PublicKey::from(self.signing_key()?.verifying_key())))
    }

    /// ES256 signature (ASN.1 DER, as WebAuthn requires) over `message`.
    pub fn sign_der(&self, message: &[u8]) -> Option<Vec<u8>> {
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = self.signing_key()?.try_sign(message).ok()?;
        Some(sig.to_der().as_bytes().to_vec())
    }
}

impl MasterKey {
    fn wrap_cipher(&self) -> Aes256Gcm {
        let hk = hkdf::Hkdf::<Sha256>::new(None, self.expose());
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's 8160-byte limit, so expand cannot fail.
        let _ = hk.expand(b"cablebridge authenticator credential wrap v1", k.as_mut());
        Aes256Gcm::new(k.as_ref().into())
    }

    /// Wraps a credential key into a non-resident credential ID bound to `rp_id_hash`.
    pub fn wrap(
        &self,
        key: &CredentialKey,
        rp_id_hash: &[u8; 32],
        rng: &mut impl CryptoRngCore,
    ) -> Vec<u8> {
        self.wrap_protected(key, rp_id_hash, CredProtect::UvOptional, rng)
    }

    /// [`MasterKey::wrap`] with a credProtect level. Level 1 keeps the original format
    /// (version `0x01`, AAD = rpIdHash); levels 2 and 3 use version byte `0x42` / `0x43` and
    /// bind it in the AAD (`rpIdHash ‖ version`), so the level cannot be changed without the
    /// ID failing to open.
    pub fn wrap_protected(
        &self,
        key: &CredentialKey,
        rp_id_hash: &[u8; 32],
        protect: CredProtect,
        rng: &mut impl CryptoRngCore,
    ) -> Vec<u8> {
        let version = wrapped_version(protect);
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let mut body = zeroize::Zeroizing::new(key.expose().to_vec());
        let mut out = Vec::with_capacity(WRAPPED_ID_LEN);
        out.push(version);
        out.extend_from_slice(&nonce);
        match self.wrap_cipher().encrypt_in_place_detached(
            &Nonce::from(nonce),
            &wrapped_aad(rp_id_hash, version),
            &mut body,
        ) {
            Ok(tag) => {
                out.extend_from_slice(&body);
                out.extend_from_slice(&tag);
            }
            // AES-GCM only fails for plaintexts over 64 GiB; a 32-byte key cannot hit that.
            Err(_) => out.clear(),
        }
        out
    }

    /// Opens a non-resident credential ID for `rp_id_hash`; `None` if it is not ours, was made
    /// for another RP, or was tampered with.
    pub fn unwrap(&self, credential_id: &[u8], rp_id_hash: &[u8; 32]) -> Option<CredentialKey> {
        self.unwrap_protected(credential_id, rp_id_hash).map(|(k, _)| k)
    }

    /// [`MasterKey::unwrap`] that also returns the credential's credProtect level.
    pub fn unwrap_protected(
        &self,
        credential_id: &[u8],
        rp_id_hash: &[u8; 32],
    ) -> Option<(CredentialKey, CredProtect)> {
        let version = *credential_id.first()?;
        let protect = match version {
            WRAPPED_VERSION => CredProtect::UvOptional,
            0x42 => CredProtect::UvOptionalWithCredentialIdList,
            0x43 => CredProtect::UvRequired,
            _ => return None,
        };
        if credential_id.len() != WRAPPED_ID_LEN {
            return None;
        }
        let nonce: [u8; 12] = credential_id.get(1..13)?.try_into().ok()?;
        let mut body = zeroize::Zeroizing::new(credential_id.get(13..45)?.to_vec());
        let tag = credential_id.get(45..61)?;
        self.wrap_cipher()
            .decrypt_in_place_detached(
                &Nonce::from(nonce),
                &wrapped_aad(rp_id_hash, version),
                &mut body,
                tag.into(),
            )
            .ok()?;
        let key = CredentialKey::from_slice(&body)?;
        key.signing_key()?;
        Some((key, protect))
    }

    /// The hmac-secret `CredRandom` of a credential that is not stored (a wrapped ID, or a
    /// resident credential from a state file older than extensions): derived from the master
    /// key and the credential ID, so it is as persistent as the master key.
    pub fn derived_cred_random(&self, credential_id: &[u8]) -> CredRandom {
        let hk = hkdf::Hkdf::<Sha256>::new(None, self.expose());
        let mut r = zeroize::Zeroizing::new([0u8; 64]);
        // 64 bytes is far below HKDF-SHA-256's limit, so expand cannot fail.
        let _ = hk.expand_multi_info(
            &[b"cablebridge authenticator hmac-secret v1", credential_id],
            r.as_mut(),
        );
        CredRandom::new(*r)
    }
}

fn wrapped_version(protect: CredProtect) -> u8 {
    match protect {
        CredProtect::UvOptional => WRAPPED_VERSION,
        CredProtect::UvOptionalWithCredentialIdList => 0x42,
        CredProtect::UvRequired => 0x43,
    }
}

/// Level 1 keeps the original AAD so IDs made before credProtect still open.
fn wrapped_aad(rp_id_hash: &[u8; 32], version: u8) -> Vec<u8> {
    let mut aad = rp_id_hash.to_vec();
    if version != WRAPPED_VERSION {
        aad.push(version);
    }
    aad
}

/// A fresh resident credential ID.
pub fn resident_id(rng: &mut impl CryptoRngCore) -> Vec<u8> {
    let mut id = vec![0u8; RESIDENT_ID_LEN];
    rng.fill_bytes(&mut id);
    id[0] = RESIDENT_ID_PREFIX;
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::Value;
    use rand::SeedableRng;

    #[test]
    fn wrap_round_trip_is_bound_to_rp_and_tamper_evident() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mk = MasterKey::random(&mut rng);
        let key = CredentialKey::generate(&mut rng);
        let h = rp_id_hash("example.com");
        let id = mk.wrap(&key, &h, &mut rng);
        assert_eq!(id.len(), WRAPPED_ID_LEN);
        assert_eq!(mk.unwrap(&id, &h), Some(key.clone()));
        assert_eq!(mk.unwrap(&id, &rp_id_hash("evil.example")), None);
        let mut bad = id.clone();
        bad[20] ^= 1;
        assert_eq!(mk.unwrap(&bad, &h), None);
        assert_eq!(MasterKey::random(&mut rng).unwrap(&id, &h), None);
        assert_eq!(mk.unwrap(&id[..60], &h), None);
        // credProtect levels are bound: flipping the version byte breaks the ID.
        let three = mk.wrap_protected(&key, &h, CredProtect::UvRequired, &mut rng);
        assert_eq!(mk.unwrap_protected(&three, &h), Some((key.clone(), CredProtect::UvRequired)));
        let mut downgraded = three.clone();
        downgraded[0] = WRAPPED_VERSION;
        assert_eq!(mk.unwrap(&downgraded, &h), None);
        assert_eq!(mk.unwrap_protected(&id, &h).map(|(_, p)| p), Some(CredProtect::UvOptional));
        assert_ne!(mk.derived_cred_random(&id), mk.derived_cred_random(&three));
        assert_eq!(mk.derived_cred_random(&id), mk.derived_cred_random(&id));
    }

    #[test]
    fn cose_key_has_p256_coordinates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let key = CredentialKey::generate(&mut rng);
        let cose = key.public_cose().unwrap().to_cbor();
        assert_eq!(cose.get(3).and_then(Value::as_i64), Some(-7));
        assert_eq!(cose.get(-2).and_then(Value::as_bytes).map(<[u8]>::len), Some(32));
        assert_eq!(resident_id(&mut rng)[0], RESIDENT_ID_PREFIX);
    }
}
