//! Public keys and signatures the attestation formats use: ECDSA P-256 (ES256) and RSA
//! (RS256, PS256, RS384, RS512 and TPM's RS1), from a certificate's SubjectPublicKeyInfo or a
//! COSE credential key; certificate signatures for chain checks; certificate fields
//! (attributes, extensions, basic constraints) the per-format requirements look at.
//!
//! Algorithms not listed (EdDSA, ES384, ...) are reported as unsupported, never as valid.

use cablebridge_protocol::ctap2::{CoseAlgorithm, CoseKey};
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

/// RS1: RSASSA-PKCS1-v1_5 with SHA-1 (COSE -65535), still what most TPMs sign with.
pub const COSE_RS1: i64 = -65535;
const COSE_RS384: i64 = -258;
const COSE_RS512: i64 = -259;

/// A public key we can verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// NIST P-256.
    P256(p256::PublicKey),
    /// RSA.
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// The key of a DER certificate.
    pub fn from_certificate(cert: &Certificate) -> Result<Self, String> {
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| "subject public key info does not re-encode".to_owned())?;
        if let Ok(k) = p256::PublicKey::from_public_key_der(&spki) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(&spki) {
            return Ok(PublicKey::Rsa(k));
        }
        Err(format!(
            "subject public key ({}) is neither P-256 nor RSA",
            cert.tbs_certificate.subject_public_key_info.algorithm.oid
        ))
    }

    /// The credential key of the authenticator data.
    pub fn from_cose(key: &CoseKey) -> Result<Self, String> {
        match key {
            CoseKey::P256 { key, .. } => Ok(PublicKey::P256(*key)),
            CoseKey::Rsa { n, e, .. } => rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(n),
                rsa::BigUint::from_bytes_be(e),
            )
            .map(PublicKey::Rsa)
            .map_err(|e| format!("the RSA credential key is not usable: {e}")),
            other => Err(format!(
                "credential key type not supported (alg {})",
                other.alg().map(CoseAlgorithm::to_i64).unwrap_or(0)
            )),
        }
    }

    /// "P-256" / "RSA-2048".
    pub fn describe(&self) -> String {
        match self {
            PublicKey::P256(_) => "P-256".to_owned(),
            PublicKey::Rsa(k) => format!("RSA-{}", k.n().bits()),
        }
    }

    /// The uncompressed SEC1 point of a P-256 key.
    pub fn p256_point(&self) -> Option<Vec<u8>> {
        match self {
            PublicKey::P256(k) => Some(k.to_encoded_point(false).as_bytes().to_vec()),
            PublicKey::Rsa(_) => None,
        }
    }

    /// Verifies `sig` over `msg` with the COSE algorithm `alg`.
    pub fn verify(&self, alg: i64, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        let name = alg_name(alg);
        match (self, alg) {
            (PublicKey::P256(k), -7) => {
                let sig = p256::ecdsa::Signature::from_der(sig)
                    .map_err(|_| "ES256 signature is not DER ECDSA".to_owned())?;
                p256::ecdsa::VerifyingKey::from(k)
                    .verify(msg, &sig)
                    .map_err(|_| "ES256 signature does not verify".to_owned())
            }
            (PublicKey::Rsa(k), -257) => rsa_pkcs1::<Sha256>(k, msg, sig, name),
            (PublicKey::Rsa(k), COSE_RS384) => rsa_pkcs1::<Sha384>(k, msg, sig, name),
            (PublicKey::Rsa(k), COSE_RS512) => rsa_pkcs1::<Sha512>(k, msg, sig, name),
            (PublicKey::Rsa(k), COSE_RS1) => rsa_pkcs1::<sha1::Sha1>(k, msg, sig, name),
            (PublicKey::Rsa(k), -37) => k
                .verify(rsa::Pss::new::<Sha256>(), &Sha256::digest(msg), sig)
                .map_err(|_| "PS256 signature does not verify".to_owned()),
            (_, -7 | -257 | -37 | COSE_RS1 | COSE_RS384 | COSE_RS512) => {
                Err(format!("alg {name} does not fit a {} key", self.describe()))
            }
            _ => Err(format!("alg {alg} ({name}) is not supported")),
        }
    }
}

fn rsa_pkcs1<D>(k: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8], name: &str) -> Result<(), String>
where
    D: Digest + x509_cert::der::oid::AssociatedOid,
{
    k.verify(rsa::Pkcs1v15Sign::new::<D>(), &D::digest(msg), sig)
        .map_err(|_| format!("{name} signature does not verify"))
}

/// A short name for a COSE algorithm, including TPM's RS1.
pub fn alg_name(alg: i64) -> &'static str {
    match alg {
        COSE_RS1 => "RS1",
        COSE_RS384 => "RS384",
        COSE_RS512 => "RS512",
        other => CoseAlgorithm::from_i64(other).name(),
    }
}

/// Whether the credential key and `cert_key` are the same key.
pub fn same_key(credential: &PublicKey, cert_key: &PublicKey) -> bool {
    credential == cert_key
}

const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";

/// Whether `cert` is signed by `issuer`'s key (signature only; names are the caller's).
pub fn certificate_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let oid = cert.signature_algorithm.oid.to_string();
    let alg = match oid.as_str() {
        ECDSA_WITH_SHA256 => -7,
        SHA256_WITH_RSA => -257,
        SHA1_WITH_RSA => COSE_RS1,
        SHA384_WITH_RSA => COSE_RS384,
        SHA512_WITH_RSA => COSE_RS512,
        _ => {
            return Err(format!(
                "unsupported signature algorithm {oid} (ECDSA P-256/SHA-256 and RSA PKCS#1 only)"
            ))
        }
    };
    let key = PublicKey::from_certificate(issuer)
        .map_err(|e| format!("issuer key of {}: {e}", issuer.tbs_certificate.subject))?;
    let tbs = cert.tbs_certificate.to_der().map_err(|_| "certificate does not re-encode")?;
    let sig = cert.signature.as_bytes().ok_or("signature is not whole bytes")?;
    key.verify(alg, &tbs, sig)
        .map_err(|_| format!("signature of {} does not verify", cert.tbs_certificate.subject))
}

/// Parses a DER certificate; `what` names it in the error.
pub fn parse_certificate(der: &[u8], what: &str) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|_| format!("{what} is not a DER X.509 certificate"))
}

/// The raw value (DER inside the OCTET STRING) of the extension `oid`, if present; with its
/// criticality.
pub fn extension<'a>(cert: &'a Certificate, oid: &str) -> Option<(&'a [u8], bool)> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
        .map(|e| (e.extn_value.as_bytes(), e.critical))
}

/// Whether the certificate says `CA = true` in basic constraints (absent ⇒ false).
pub fn is_ca(cert: &Certificate) -> bool {
    extension(cert, "2.5.29.19")
        .and_then(|(v, _)| x509_cert::ext::pkix::BasicConstraints::from_der(v).ok())
        .is_some_and(|bc| bc.ca)
}

/// The first value of attribute `oid` (e.g. 2.5.4.11 OU) in the subject, as text.
pub fn subject_attribute(cert: &Certificate, oid: &str) -> Option<String> {
    let oid = ObjectIdentifier::new(oid).ok()?;
    cert.tbs_certificate.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
        (atv.oid == oid).then(|| String::from_utf8_lossy(atv.value.value()).into_owned())
    })
}

/// SHA-256 of the DER bytes, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}
