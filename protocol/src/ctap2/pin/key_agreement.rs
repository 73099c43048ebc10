//! P-256 ECDH key agreement for the PIN/UV auth protocols (CTAP 2.1 §6.5.6 `ecdh`,
//! `encapsulate`, `decapsulate`; protocol two reuses it unchanged).
//!
//! The same operation serves both sides: the platform makes an ephemeral key pair per exchange,
//! the authenticator keeps one from power-up until it is regenerated. Z is the x-coordinate of
//! the shared point; the protocol's KDF turns it into a [`SharedSecret`]. Keys travel as COSE_Key
//! with alg -25 (ECDH-ES+HKDF-256), the value the spec mandates for both protocols.

use super::protocol::{PinUvAuthProtocol, SharedSecret};
use crate::ctap2::cose::CoseKey;
use crate::ctap2::error::Ctap2Error;
use zeroize::Zeroize;

/// A P-256 key agreement key pair (the private half zeroizes on drop, inside `p256`).
#[derive(Clone)]
pub struct KeyAgreementKey {
    secret: p256::SecretKey,
}

/// The platform's ephemeral key pair (one per clientPIN exchange).
pub type PlatformKeyAgreement = KeyAgreementKey;
/// The authenticator's key pair (regenerated at power-up and after reset).
pub type AuthenticatorKeyAgreement = KeyAgreementKey;

impl core::fmt::Debug for KeyAgreementKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyAgreementKey(<redacted>)")
    }
}

impl KeyAgreementKey {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        KeyAgreementKey { secret: p256::SecretKey::random(rng) }
    }

    /// Wraps an existing private key (tests, known-answer vectors).
    pub fn from_secret_key(secret: p256::SecretKey) -> Self {
        KeyAgreementKey { secret }
    }

    /// Replaces the key pair (authenticator `regenerate()`).
    pub fn regenerate(&mut self, rng: &mut impl rand_core::CryptoRngCore) {
        self.secret = p256::SecretKey::random(rng);
    }

    /// The public half as a COSE_Key with alg -25.
    pub fn public_cose(&self) -> CoseKey {
        CoseKey::key_agreement(self.secret.public_key())
    }

    /// The public half.
    pub fn public_key(&self) -> p256::PublicKey {
        self.secret.public_key()
    }

    /// ECDH with the peer's COSE key, then the protocol's KDF. The peer key must be a P-256
    /// point (the COSE parser has already checked it is on the curve); its `alg` is not checked
    /// because CTAP 2.0 keys are inconsistent about it.
    pub fn shared_secret(
        &self,
        protocol: PinUvAuthProtocol,
        peer: &CoseKey,
    ) -> Result<SharedSecret, Ctap2Error> {
        let peer = peer
            .as_p256()
            .ok_or(Ctap2Error::InvalidPublicKey("keyAgreement is not a P-256 COSE key"))?;
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        let mut z = [0u8; 32];
        z.copy_from_slice(shared.raw_secret_bytes());
        let s = protocol.kdf(&z);
        z.zeroize();
        Ok(s)
    }
}

/// Platform `encapsulate(peerCoseKey)`: a fresh ephemeral key pair, the COSE key to send, and the
/// shared secret.
pub fn encapsulate(
    protocol: PinUvAuthProtocol,
    rng: &mut impl rand_core::CryptoRngCore,
    peer: &CoseKey,
) -> Result<(CoseKey, SharedSecret), Ctap2Error> {
    let eph = KeyAgreementKey::generate(rng);
    let s = eph.shared_secret(protocol, peer)?;
    Ok((eph.public_cose(), s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cose::CoseAlgorithm;
    use rand::SeedableRng;

    #[test]
    fn both_sides_agree_for_both_protocols() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let auth = AuthenticatorKeyAgreement::generate(&mut rng);
        for p in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
            let (platform_pub, s_platform) = encapsulate(p, &mut rng, &auth.public_cose()).unwrap();
            let s_auth = auth.shared_secret(p, &platform_pub).unwrap();
            assert_eq!(s_platform, s_auth);
            assert_eq!(s_auth.protocol(), p);
        }
        assert_eq!(auth.public_cose().alg(), Some(CoseAlgorithm::EcdhEsHkdf256));
        let ed = CoseKey::Ed25519 { alg: CoseAlgorithm::EdDsa, x: [0; 32] };
        assert!(matches!(
            auth.shared_secret(PinUvAuthProtocol::One, &ed),
            Err(Ctap2Error::InvalidPublicKey(_))
        ));
        let mut regen = auth.clone();
        regen.regenerate(&mut rng);
        assert_ne!(regen.public_key(), auth.public_key());
        assert_eq!(format!("{auth:?}"), "KeyAgreementKey(<redacted>)");
    }
}
