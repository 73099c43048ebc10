//! Attestation certificate chains (`x5c` of a packed statement, WebAuthn §8.2) checked against
//! the attestation root certificates of a FIDO MDS3 entry (`attestationRootCertificates`).
//!
//! What is checked: each certificate is signed by the next one in `x5c` (issuer name equal to
//! the signer's subject, the signature over the TBS bytes), and the last one is
//! either itself one of the roots or signed by a root whose subject is its issuer. A leaf that
//! carries the `id-fido-gen-ce-aaguid` extension must name the authenticator data's AAGUID.
//!
//! What is not: validity periods, revocation, key usage and path-length constraints. The
//! verdict is a lab statement ("this chain leads to the vendor's root in the blob you gave"),
//! not a production trust decision; Entra's own checks stay authoritative. Signatures: ECDSA
//! P-256/SHA-256 and RSA PKCS#1 v1.5 (SHA-1/256/384/512, the TPM vendors' CAs); others (Apple's
//! ECDSA P-384) are reported as "not verified: unsupported", never as valid.

use cablebridge_protocol::authenticator::OID_FIDO_GEN_CE_AAGUID;
use x509_cert::der::Decode;
use x509_cert::Certificate;

/// What the chain check established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// The chain leads to a root of the metadata; the root's subject.
    Verified {
        /// Subject of the root certificate reached.
        root: String,
    },
    /// Roots exist for this AAGUID but the chain does not lead to one; why.
    NotVerified(String),
    /// No metadata roots for this AAGUID (no `--mds`, or the blob has no entry for it).
    NoRoots,
    /// The statement carries no certificates (`none`, or packed self attestation).
    NoCertificates,
}

impl ChainStatus {
    /// `verified` / `not_verified` / `no_roots` / `no_certificates`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChainStatus::Verified { .. } => "verified",
            ChainStatus::NotVerified(_) => "not_verified",
            ChainStatus::NoRoots => "no_roots",
            ChainStatus::NoCertificates => "no_certificates",
        }
    }

    /// A sentence for humans.
    pub fn detail(&self) -> String {
        match self {
            ChainStatus::Verified { root } => format!("chain verified up to the root {root}"),
            ChainStatus::NotVerified(why) => format!("chain not verified: {why}"),
            ChainStatus::NoRoots => {
                "chain not checked: no attestation roots for this AAGUID (pass --mds)".to_owned()
            }
            ChainStatus::NoCertificates => "no certificate chain (no x5c)".to_owned(),
        }
    }
}

fn parse(der: &[u8], what: &str) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|_| format!("{what} is not a DER X.509 certificate"))
}

/// Whether `cert` is signed by `issuer` (name chaining and signature).
fn signed_by(cert: &Certificate, _issuer_der: &[u8], issuer: &Certificate) -> Result<(), String> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(format!(
            "issuer {} is not the subject {}",
            cert.tbs_certificate.issuer, issuer.tbs_certificate.subject
        ));
    }
    super::attestation::certificate_signed_by(cert, issuer)
}

/// The `id-fido-gen-ce-aaguid` extension of a certificate (WebAuthn §8.2.1): `None` when absent,
/// `Some(Err)` when present but not an OCTET STRING of 16 bytes.
pub fn certificate_aaguid(cert_der: &[u8]) -> Option<Result<[u8; 16], String>> {
    let cert = Certificate::from_der(cert_der).ok()?;
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == OID_FIDO_GEN_CE_AAGUID)?;
    Some(
        x509_cert::der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
            .ok()
            .and_then(|o| <[u8; 16]>::try_from(o.as_bytes()).ok())
            .ok_or_else(|| "the AAGUID extension is not an OCTET STRING of 16 bytes".to_owned()),
    )
}

/// Checks a packed statement for `aaguid`: when the leaf carries the AAGUID extension it must
/// equal the authenticator data's AAGUID (WebAuthn §8.2 verification step 2), then
/// [`verify_x5c`].
pub fn verify_attestation_chain(
    aaguid: &[u8; 16],
    x5c: &[Vec<u8>],
    roots: &[Vec<u8>],
) -> ChainStatus {
    if let Some(ext) = x5c.first().and_then(|leaf| certificate_aaguid(leaf)) {
        match ext {
            Ok(a) if a == *aaguid => {}
            Ok(a) => {
                return ChainStatus::NotVerified(format!(
                    "the leaf certificate's AAGUID extension {} differs from the authenticator \
                     data's {}",
                    super::Aaguid(a),
                    super::Aaguid(*aaguid)
                ))
            }
            Err(why) => return ChainStatus::NotVerified(why),
        }
    }
    verify_x5c(x5c, roots)
}

/// Checks `x5c` (leaf first, DER) against `roots` (DER).
pub fn verify_x5c(x5c: &[Vec<u8>], roots: &[Vec<u8>]) -> ChainStatus {
    if x5c.is_empty() {
        return ChainStatus::NoCertificates;
    }
    if roots.is_empty() {
        return ChainStatus::NoRoots;
    }
    match walk(x5c, roots) {
        Ok(root) => ChainStatus::Verified { root },
        Err(why) => ChainStatus::NotVerified(why),
    }
}

fn walk(x5c: &[Vec<u8>], roots: &[Vec<u8>]) -> Result<String, String> {
    let certs = x5c
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der, &format!("x5c[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, pair) in certs.windows(2).enumerate() {
        if let [cert, issuer] = pair {
            signed_by(cert, &x5c[i + 1], issuer).map_err(|e| format!("x5c[{i}]: {e}"))?;
        }
    }
    let (Some(last_der), Some(last)) = (x5c.last(), certs.last()) else {
        return Err("empty chain".to_owned());
    };
    if let Some(root) = roots.iter().find(|r| *r == last_der) {
        return parse(root, "root").map(|r| r.tbs_certificate.subject.to_string());
    }
    let mut last_error = format!(
        "no root in the metadata has the subject {} (the issuer of x5c[{}])",
        last.tbs_certificate.issuer,
        x5c.len() - 1
    );
    for root_der in roots {
        let Ok(root) = parse(root_der, "root") else { continue };
        if root.tbs_certificate.subject != last.tbs_certificate.issuer {
            continue;
        }
        match signed_by(last, root_der, &root) {
            Ok(()) => return Ok(root.tbs_certificate.subject.to_string()),
            Err(e) => last_error = format!("x5c[{}]: {e}", x5c.len() - 1),
        }
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Issued {
        cert: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    fn ca(name: &str, issuer: Option<&Issued>) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = match issuer {
            None => params.self_signed(&key).unwrap(),
            Some(i) => params.signed_by(&key, &i.cert, &i.key).unwrap(),
        };
        Issued { cert, key }
    }

    fn der(i: &Issued) -> Vec<u8> {
        i.cert.der().to_vec()
    }

    #[test]
    fn chains_through_an_intermediate_to_a_root() {
        let root = ca("Vendor Root", None);
        let inter = ca("Vendor Intermediate", Some(&root));
        let leaf = ca("Authenticator Attestation", Some(&inter));
        let roots = vec![der(&root)];
        let full = vec![der(&leaf), der(&inter)];
        assert!(
            matches!(verify_x5c(&full, &roots), ChainStatus::Verified { root } if root.contains("Vendor Root"))
        );
        // The root itself at the end of x5c is fine too.
        let with_root = vec![der(&leaf), der(&inter), der(&root)];
        assert!(matches!(verify_x5c(&with_root, &roots), ChainStatus::Verified { .. }));
        // The intermediate missing: the leaf's issuer is no root.
        let short = vec![der(&leaf)];
        let ChainStatus::NotVerified(why) = verify_x5c(&short, &roots) else { panic!() };
        assert!(why.contains("Vendor Intermediate"), "{why}");
        // Same names, other keys: the signature check catches it.
        let impostor = ca("Vendor Root", None);
        let ChainStatus::NotVerified(why) = verify_x5c(&full, &[der(&impostor)]) else { panic!() };
        assert!(why.contains("does not verify"), "{why}");
        // Order matters: x5c[0] must be signed by x5c[1].
        let swapped = vec![der(&inter), der(&leaf)];
        assert!(matches!(verify_x5c(&swapped, &roots), ChainStatus::NotVerified(_)));
        assert_eq!(verify_x5c(&full, &[]), ChainStatus::NoRoots);
        assert_eq!(verify_x5c(&[], &roots), ChainStatus::NoCertificates);
        let ChainStatus::NotVerified(why) = verify_x5c(&[vec![0x30, 0x03, 1, 2, 3]], &roots) else {
            panic!()
        };
        assert!(why.contains("x5c[0]"), "{why}");
    }

    #[test]
    fn leaf_aaguid_extension_must_match_the_authenticator_data() {
        let root = ca("Vendor Root", None);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "Authenticator Attestation");
        let mut content = vec![0x04, 0x10];
        content.extend_from_slice(&[0x42; 16]);
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4],
            content,
        )];
        let leaf = params.signed_by(&key, &root.cert, &root.key).unwrap().der().to_vec();
        assert_eq!(certificate_aaguid(&leaf), Some(Ok([0x42; 16])));
        let roots = [der(&root)];
        let x5c = [leaf];
        assert!(matches!(
            verify_attestation_chain(&[0x42; 16], &x5c, &roots),
            ChainStatus::Verified { .. }
        ));
        let ChainStatus::NotVerified(why) = verify_attestation_chain(&[7; 16], &x5c, &roots) else {
            panic!()
        };
        assert!(why.contains("42424242-4242") && why.contains("differs"), "{why}");
        // No extension (the intermediate-style certificates above): nothing to compare.
        assert_eq!(certificate_aaguid(&der(&root)), None);
    }
}
