//! Attestation: the `none` and `packed` formats (WebAuthn §8.2, §8.7) and a test CA that issues a
//! FIDO-conformant attestation certificate at construction.
//!
//! The leaf certificate follows WebAuthn §8.2.1 "Packed Attestation Statement Certificate
//! Requirements": version 3, subject `C`, `O`, `OU = "Authenticator Attestation"`, `CN`; basic
//! constraints `CA = false`; and the non-critical extension `id-fido-gen-ce-aaguid`
//! (1.3.6.1.4.1.45724.1.1.4) whose value is an OCTET STRING holding the 16-byte AAGUID.
//! Validity is fixed (2024-01-01 .. 2099-12-31) because this crate reads no clock.
//!
//! Not a real attestation root: the CA key is generated per authenticator and lives only in
//! memory; relying parties that want to verify the chain get [`TestCa::ca_der`].

use super::keys::CredentialKey;
use crate::ctap2::{AttestationStatement, CoseAlgorithm};
use core::time::Duration;
use p256::ecdsa::{DerSignature, SigningKey};
use rand_core::CryptoRngCore;
use std::str::FromStr;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString, UtcTime};
use x509_cert::der::Encode;
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

/// `id-fido-gen-ce-aaguid`.
pub const OID_FIDO_GEN_CE_AAGUID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4");
const CA_SUBJECT: &str = "CN=cablebridge test attestation CA,O=cablebridge,C=US";
const LEAF_SUBJECT: &str =
    "CN=cablebridge virtual authenticator,OU=Authenticator Attestation,O=cablebridge,C=US";
const NOT_BEFORE_UNIX: u64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const NOT_AFTER_UNIX: u64 = 4_102_358_400; // 2099-12-31T00:00:00Z

/// The AAGUID extension value (DER OCTET STRING of the AAGUID inside the extnValue).
struct AaguidExtension(OctetString);

impl x509_cert::der::oid::AssociatedOid for AaguidExtension {
    const OID: ObjectIdentifier = OID_FIDO_GEN_CE_AAGUID;
}
impl Encode for AaguidExtension {
    fn encoded_len(&self) -> x509_cert::der::Result<x509_cert::der::Length> {
        self.0.encoded_len()
    }
    fn encode(&self, w: &mut impl x509_cert::der::Writer) -> x509_cert::der::Result<()> {
        self.0.encode(w)
    }
}
impl AsExtension for AaguidExtension {
    fn critical(&self, _: &Name, _: &[Extension]) -> bool {
        // WebAuthn §8.2.1: "MUST NOT be marked as critical".
        false
    }
}

/// A per-authenticator test CA and the attestation leaf it issued.
pub struct TestCa {
    ca_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key: CredentialKey,
}

impl core::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TestCa").field("ca_der_len", &self.ca_der.len()).finish_non_exhaustive()
    }
}

fn serial(rng: &mut impl CryptoRngCore) -> Result<SerialNumber, x509_cert::der::Error> {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[0] = (b[0] & 0x7f) | 0x01; // positive and minimal-length DER INTEGER
    SerialNumber::new(&b)
}

fn validity() -> Result<Validity, x509_cert::der::Error> {
    Ok(Validity {
        not_before: Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(
            NOT_BEFORE_UNIX,
        ))?),
        not_after: Time::GeneralTime(GeneralizedTime::from_unix_duration(Duration::from_secs(
            NOT_AFTER_UNIX,
        ))?),
    })
}

fn spki(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned, x509_cert::spki::Error> {
    SubjectPublicKeyInfoOwned::from_key(*key.verifying_key())
}

impl TestCa {
    /// Generates a P-256 CA and an attestation leaf for `aaguid`.
    pub fn generate(
        aaguid: [u8; 16],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, x509_cert::builder::Error> {
        let ca_key_bytes = CredentialKey::generate(rng);
        let leaf_key = CredentialKey::generate(rng);
        let (Some(ca_key), Some(leaf_signing)) =
            (ca_key_bytes.signing_key(), leaf_key.signing_key())
        else {
            return Err(x509_cert::builder::Error::Signature(p256::ecdsa::Error::new()));
        };
        let ca_name = Name::from_str(CA_SUBJECT)?;
        let ca = CertificateBuilder::new(
            Profile::Root,
            serial(rng)?,
            validity()?,
            ca_name.clone(),
            spki(&ca_key)?,
            &ca_key,
        )?
        .build::<DerSignature>()?;
        let mut leaf = CertificateBuilder::new(
            Profile::Leaf {
                issuer: ca_name,
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            serial(rng)?,
            validity()?,
            Name::from_str(LEAF_SUBJECT)?,
            spki(&leaf_signing)?,
            &ca_key,
        )?;
        leaf.add_extension(&AaguidExtension(OctetString::new(aaguid.to_vec())?))?;
        let leaf = leaf.build::<DerSignature>()?;
        Ok(TestCa { ca_der: ca.to_der()?, leaf_der: leaf.to_der()?, leaf_key })
    }

    /// The CA certificate (DER), the trust anchor for verifying `x5c`.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }
    /// The attestation leaf certificate (DER), sent as `x5c[0]`.
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf_der
    }
}

/// A self-signed P-256 certificate for `subject` (a U2F attestation certificate: one
/// certificate, no chain; see `crate::ctap1::authenticator`).
pub(crate) fn self_signed_certificate(
    subject: &str,
    key: &CredentialKey,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, x509_cert::builder::Error> {
    let Some(signing) = key.signing_key() else {
        return Err(x509_cert::builder::Error::Signature(p256::ecdsa::Error::new()));
    };
    let name = Name::from_str(subject)?;
    let cert = CertificateBuilder::new(
        Profile::Leaf {
            issuer: name.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        serial(rng)?,
        validity()?,
        name,
        spki(&signing)?,
        &signing,
    )?
    .build::<DerSignature>()?;
    Ok(cert.to_der()?)
}

/// Which attestation statement makeCredential produces.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationMode {
    /// `fmt: "none"`, empty attStmt (what phones send).
    None,
    /// `fmt: "packed"` self attestation: signed by the new credential key, no `x5c`.
    PackedSelf,
    /// `fmt: "packed"` with `x5c = [leaf]` issued by a per-authenticator [`TestCa`].
    PackedTestCa,
}

/// Builds the statement over `auth_data ‖ client_data_hash`. `None` if signing failed (a corrupt
/// key), which the caller maps to CTAP1_ERR_OTHER.
pub(crate) fn statement(
    mode: AttestationMode,
    ca: Option<&TestCa>,
    credential_key: &CredentialKey,
    auth_data: &[u8],
    client_data_hash: &[u8],
) -> Option<AttestationStatement> {
    let signed = [auth_data, client_data_hash].concat();
    let (signer, x5c) = match (mode, ca) {
        (AttestationMode::None, _) => return Some(AttestationStatement::None),
        (AttestationMode::PackedTestCa, Some(ca)) => (&ca.leaf_key, vec![ca.leaf_der.clone()]),
        // PackedSelf, or a CA that failed to generate: self attestation is still verifiable.
        _ => (credential_key, Vec::new()),
    };
    let sig = signer.sign_der(&signed)?;
    Some(AttestationStatement::Packed { alg: CoseAlgorithm::Es256, sig, x5c })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use x509_cert::der::Decode;

    #[test]
    fn leaf_meets_fido_packed_requirements() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let aaguid = [0x42; 16];
        let ca = TestCa::generate(aaguid, &mut rng).unwrap();
        let leaf = x509_cert::Certificate::from_der(ca.leaf_der()).unwrap();
        let subject = leaf.tbs_certificate.subject.to_string();
        assert!(subject.contains("OU=Authenticator Attestation"), "{subject}");
        assert!(subject.contains("C=US") && subject.contains("O=cablebridge"));
        let exts = leaf.tbs_certificate.extensions.unwrap();
        let aaguid_ext = exts.iter().find(|e| e.extn_id == OID_FIDO_GEN_CE_AAGUID).unwrap();
        assert!(!aaguid_ext.critical);
        let inner = OctetString::from_der(aaguid_ext.extn_value.as_bytes()).unwrap();
        assert_eq!(inner.as_bytes(), &aaguid);
        let bc = exts.iter().find(|e| e.extn_id.to_string() == "2.5.29.19").unwrap();
        let bc =
            x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes()).unwrap();
        assert!(!bc.ca);
    }
}
