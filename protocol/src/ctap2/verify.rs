//! Signature checks a platform runs on results (WebAuthn §6.3.3 step 11 / §7.2 step 20): ES256
//! over `authenticatorData ‖ clientDataHash`, DER-encoded ECDSA as CTAP2 carries it.
//!
//! Only ES256 is implemented; other algorithms give [`Ctap2Error::UnsupportedAlgorithm`] rather
//! than a false "valid".

use super::cose::{CoseAlgorithm, CoseKey};
use super::error::Ctap2Error;
use super::get_assertion::GetAssertionResponse;
use p256::ecdsa::signature::Verifier;

/// Verifies a DER ECDSA P-256/SHA-256 signature over `auth_data ‖ client_data_hash`.
pub fn verify_es256(
    key: &p256::PublicKey,
    auth_data: &[u8],
    client_data_hash: &[u8; 32],
    der_signature: &[u8],
) -> Result<(), Ctap2Error> {
    let sig = p256::ecdsa::Signature::from_der(der_signature)
        .map_err(|_| Ctap2Error::SignatureInvalid("not a DER ECDSA signature"))?;
    let vk = p256::ecdsa::VerifyingKey::from(key);
    let msg = [auth_data, client_data_hash.as_slice()].concat();
    vk.verify(&msg, &sig).map_err(|_| Ctap2Error::SignatureInvalid("ES256 signature mismatch"))
}

/// Verifies with a COSE credential key (ES256 only).
pub fn verify_with_cose(
    key: &CoseKey,
    auth_data: &[u8],
    client_data_hash: &[u8; 32],
    signature: &[u8],
) -> Result<(), Ctap2Error> {
    match key {
        CoseKey::P256 { alg: CoseAlgorithm::Es256, key } => {
            verify_es256(key, auth_data, client_data_hash, signature)
        }
        other => Err(Ctap2Error::UnsupportedAlgorithm(
            other.alg().map(CoseAlgorithm::to_i64).unwrap_or(0),
        )),
    }
}

/// Verifies a getAssertion response's signature with the credential's public key.
pub fn verify_assertion(
    credential_key: &CoseKey,
    response: &GetAssertionResponse,
    client_data_hash: &[u8; 32],
) -> Result<(), Ctap2Error> {
    verify_with_cose(credential_key, &response.auth_data, client_data_hash, &response.signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use rand::SeedableRng;

    #[test]
    fn es256_accepts_good_and_rejects_bad() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let sk = p256::ecdsa::SigningKey::random(&mut rng);
        let pk = p256::PublicKey::from(sk.verifying_key());
        let ad = [1u8; 37];
        let cdh = [2u8; 32];
        let sig: p256::ecdsa::Signature = sk.sign(&[ad.as_slice(), &cdh].concat());
        let der = sig.to_der().as_bytes().to_vec();
        assert!(verify_es256(&pk, &ad, &cdh, &der).is_ok());
        assert!(verify_with_cose(&CoseKey::es256(pk), &ad, &cdh, &der).is_ok());
        assert!(verify_es256(&pk, &ad, &[3u8; 32], &der).is_err());
        assert!(verify_es256(&pk, &ad, &cdh, &der[..der.len() - 1]).is_err());
        let rsa = CoseKey::Rsa { alg: CoseAlgorithm::Rs256, n: vec![1], e: vec![1] };
        assert_eq!(
            verify_with_cose(&rsa, &ad, &cdh, &der),
            Err(Ctap2Error::UnsupportedAlgorithm(-257))
        );
    }
}
