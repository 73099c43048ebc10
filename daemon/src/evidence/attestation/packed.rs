//! `packed` (WebAuthn §8.2): with `x5c`, the leaf key signs authData ‖ clientDataHash and the
//! leaf meets §8.2.1 (version 3, OU "Authenticator Attestation", not a CA, AAGUID extension
//! matching); without, the credential key signs it itself (self attestation, `alg` equal to the
//! credential key's). `ecdaaKeyId` (ECDAA, removed in Level 2) is refused.

use super::crypto::{self, PublicKey};
use super::{
    check_aaguid_extension, fail, required_x5c, stmt_alg, stmt_bytes, AttestationType, Check, Fail,
    Input, Verified,
};

pub(super) fn verify(input: &Input<'_>) -> Result<Verified, Fail> {
    let alg = stmt_alg(input)?;
    let sig = stmt_bytes(input, "sig")?;
    if input.stmt.get_text("ecdaaKeyId").is_some() {
        return fail(Check::Statement, "ECDAA (ecdaaKeyId) is not supported");
    }
    let signed = input.to_be_signed();
    if input.stmt.get_text("x5c").is_none() {
        // Self attestation: alg must be the credential key's.
        let cose_alg = input.credential.public_key.alg().map(|a| a.to_i64());
        if cose_alg != Some(alg) {
            return fail(
                Check::Alg,
                format!(
                    "alg {} is not the credential key's ({})",
                    crypto::alg_name(alg),
                    cose_alg.map(crypto::alg_name).unwrap_or("none")
                ),
            );
        }
        let key = PublicKey::from_cose(&input.credential.public_key)
            .map_err(|e| (Check::CredentialKey, e))?;
        key.verify(alg, &signed, sig).map_err(|e| (Check::Signature, e))?;
        return Ok(Verified { kind: AttestationType::SelfAttestation, alg: Some(alg) });
    }
    let x5c = required_x5c(input)?;
    let leaf = crypto::parse_certificate(&x5c[0], "x5c[0]").map_err(|e| (Check::Certificate, e))?;
    let key = PublicKey::from_certificate(&leaf).map_err(|e| (Check::Certificate, e))?;
    key.verify(alg, &signed, sig).map_err(|e| {
        let check = if e.contains("not supported") || e.contains("does not fit") {
            Check::Alg
        } else {
            Check::Signature
        };
        (check, e)
    })?;
    if leaf.tbs_certificate.version != x509_cert::Version::V3 {
        return fail(Check::CertificateRequirements, "the attestation certificate is not X.509 v3");
    }
    let ou = crypto::subject_attribute(&leaf, "2.5.4.11");
    if ou.as_deref() != Some("Authenticator Attestation") {
        return fail(
            Check::CertificateRequirements,
            format!("subject OU is {ou:?}, not \"Authenticator Attestation\""),
        );
    }
    if crypto::is_ca(&leaf) {
        return fail(Check::CertificateRequirements, "the attestation certificate is a CA");
    }
    check_aaguid_extension(&leaf, &input.credential.aaguid)?;
    Ok(Verified { kind: AttestationType::Basic, alg: Some(alg) })
}
