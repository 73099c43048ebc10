//! `fido-u2f` (WebAuthn §8.6): one certificate whose key is P-256, a P-256 credential key, and
//! an ES256 signature over `0x00 ‖ rpIdHash ‖ clientDataHash ‖ credentialId ‖ 0x04‖x‖y` (the
//! U2F registration message, FIDO U2F raw message formats §4.3).

use super::crypto::{self, PublicKey};
use super::{fail, required_x5c, stmt_bytes, AttestationType, Check, Fail, Input, Verified};

pub(super) fn verify(input: &Input<'_>) -> Result<Verified, Fail> {
    let sig = stmt_bytes(input, "sig")?;
    let x5c = required_x5c(input)?;
    if x5c.len() != 1 {
        return fail(Check::Certificate, format!("x5c holds {} certificates, not one", x5c.len()));
    }
    let cert = crypto::parse_certificate(&x5c[0], "x5c[0]").map_err(|e| (Check::Certificate, e))?;
    let key = PublicKey::from_certificate(&cert).map_err(|e| (Check::Certificate, e))?;
    if !matches!(key, PublicKey::P256(_)) {
        return fail(
            Check::Certificate,
            format!("the certificate key is {}, not P-256", key.describe()),
        );
    }
    let credential = PublicKey::from_cose(&input.credential.public_key)
        .map_err(|e| (Check::CredentialKey, e))?;
    let Some(point) = credential.p256_point() else {
        return fail(Check::CredentialKey, "the credential key is not P-256");
    };
    let rp_id_hash =
        input.auth_data.get(..32).ok_or((Check::Statement, "authData too short".to_owned()))?;
    let mut message = Vec::with_capacity(1 + 32 + 32 + input.credential.credential_id.len() + 65);
    message.push(0x00);
    message.extend_from_slice(rp_id_hash);
    message.extend_from_slice(input.client_data_hash);
    message.extend_from_slice(&input.credential.credential_id);
    message.extend_from_slice(&point);
    key.verify(-7, &message, sig).map_err(|e| (Check::Signature, e))?;
    Ok(Verified { kind: AttestationType::Basic, alg: Some(-7) })
}
