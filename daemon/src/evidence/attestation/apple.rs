//! `apple` (WebAuthn §8.8, Apple anonymous attestation): no signature; the leaf certificate's
//! extension 1.2.840.113635.100.8.2 holds `SEQUENCE { [1] EXPLICIT OCTET STRING nonce }` with
//! nonce = SHA-256(authData ‖ clientDataHash), and the leaf key is the credential key
//! (checked first, so a swapped key is named as such rather than as a nonce mismatch).

use sha2::{Digest, Sha256};

use super::crypto::{self, PublicKey};
use super::der;
use super::{fail, required_x5c, AttestationType, Check, Fail, Input, Verified};

const OID_APPLE_NONCE: &str = "1.2.840.113635.100.8.2";

pub(super) fn verify(input: &Input<'_>) -> Result<Verified, Fail> {
    let x5c = required_x5c(input)?;
    let leaf = crypto::parse_certificate(&x5c[0], "x5c[0]").map_err(|e| (Check::Certificate, e))?;
    let cert_key = PublicKey::from_certificate(&leaf).map_err(|e| (Check::Certificate, e))?;
    let credential = PublicKey::from_cose(&input.credential.public_key)
        .map_err(|e| (Check::CredentialKey, e))?;
    if !crypto::same_key(&credential, &cert_key) {
        return fail(Check::CredentialKey, "the credential key is not the leaf certificate's key");
    }
    let expected = Sha256::digest(input.to_be_signed());
    let (value, _) = crypto::extension(&leaf, OID_APPLE_NONCE)
        .ok_or((Check::Nonce, format!("the leaf has no nonce extension {OID_APPLE_NONCE}")))?;
    let nonce = nonce_of(value).map_err(|e| (Check::Nonce, format!("the nonce extension: {e}")))?;
    if *nonce != expected[..] {
        return fail(
            Check::Nonce,
            "the certificate nonce is not SHA-256(authData ‖ clientDataHash)",
        );
    }
    Ok(Verified { kind: AttestationType::AnonCa, alg: None })
}

fn nonce_of(value: &[u8]) -> Result<&[u8], &'static str> {
    let seq = der::read_only(value, der::SEQUENCE)?;
    let tagged = der::children(seq.value)?
        .into_iter()
        .find(|t| t.class == 2 && t.number == 1)
        .ok_or("no [1] element")?;
    Ok(der::read_only(tagged.value, der::OCTET_STRING)?.value)
}
