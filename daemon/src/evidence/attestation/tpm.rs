//! `tpm` (WebAuthn §8.3): `ver` "2.0"; `pubArea` (TPMT_PUBLIC) holds the credential key;
//! `certInfo` (TPMS_ATTEST) has magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_CERTIFY,
//! extraData = hash_alg(authData ‖ clientDataHash) and attested.name = nameAlg ‖
//! H_nameAlg(pubArea); the AIK certificate (x5c[0]) signs certInfo and meets §8.3.1 (v3, empty
//! subject, a subjectAltName, EKU tcg-kp-AIKCertificate, not a CA, AAGUID extension matching).
//! Structures per TPM 2.0 Part 2 (§10.12.8 TPMS_ATTEST, §12.2.4 TPMT_PUBLIC); big-endian.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::crypto::{self, PublicKey, COSE_RS1};
use super::{
    check_aaguid_extension, fail, required_x5c, stmt_alg, stmt_bytes, AttestationType, Check, Fail,
    Input, Verified,
};

const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ECC_NIST_P256: u16 = 0x0003;
const OID_TCG_KP_AIK_CERTIFICATE: [u8; 7] = [0x06, 0x05, 0x67, 0x81, 0x05, 0x08, 0x03];

/// A big-endian reader over a TPM structure; errors name the field.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!("truncated at {what}"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A TPM2B: u16 size, then that many bytes.
    fn sized(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
    /// A scheme (u16) followed by a hash algorithm unless it is TPM_ALG_NULL.
    fn scheme(&mut self, what: &str) -> Result<(), String> {
        if self.u16(what)? != TPM_ALG_NULL {
            self.u16(what)?;
        }
        Ok(())
    }
}

/// The key of a TPMT_PUBLIC.
#[derive(Debug, PartialEq, Eq)]
enum PubKey {
    Rsa { n: Vec<u8>, e: u32 },
    Ecc { curve: u16, x: Vec<u8>, y: Vec<u8> },
}

struct PubArea {
    name_alg: u16,
    key: PubKey,
}

fn parse_pub_area(bytes: &[u8]) -> Result<PubArea, String> {
    let mut r = Reader { bytes };
    let kind = r.u16("type")?;
    let name_alg = r.u16("nameAlg")?;
    r.u32("objectAttributes")?;
    r.sized("authPolicy")?;
    if r.u16("symmetric")? != TPM_ALG_NULL {
        r.take(4, "symmetric.keyBits/mode")?;
    }
    let key = match kind {
        TPM_ALG_RSA => {
            r.scheme("scheme")?;
            r.u16("keyBits")?;
            let e = r.u32("exponent")?;
            let n = r.sized("unique")?.to_vec();
            // An exponent of zero means the default, 2^16 + 1 (Part 2 §12.2.3.5).
            PubKey::Rsa { n, e: if e == 0 { 65537 } else { e } }
        }
        TPM_ALG_ECC => {
            r.scheme("scheme")?;
            let curve = r.u16("curveID")?;
            r.scheme("kdf")?;
            let x = r.sized("unique.x")?.to_vec();
            let y = r.sized("unique.y")?.to_vec();
            PubKey::Ecc { curve, x, y }
        }
        other => return Err(format!("type 0x{other:04x} is neither RSA nor ECC")),
    };
    Ok(PubArea { name_alg, key })
}

struct CertInfo<'a> {
    magic: u32,
    kind: u16,
    extra_data: &'a [u8],
    attested_name: &'a [u8],
}

fn parse_cert_info(bytes: &[u8]) -> Result<CertInfo<'_>, String> {
    let mut r = Reader { bytes };
    let magic = r.u32("magic")?;
    let kind = r.u16("type")?;
    r.sized("qualifiedSigner")?;
    let extra_data = r.sized("extraData")?;
    r.take(17, "clockInfo")?;
    r.take(8, "firmwareVersion")?;
    let attested_name = r.sized("attested.name")?;
    r.sized("attested.qualifiedName")?;
    Ok(CertInfo { magic, kind, extra_data, attested_name })
}

/// H_alg(data) for a TPM_ALG_ID.
fn tpm_hash(alg: u16, data: &[u8]) -> Option<Vec<u8>> {
    match alg {
        0x0004 => Some(sha1::Sha1::digest(data).to_vec()),
        0x000b => Some(Sha256::digest(data).to_vec()),
        0x000c => Some(Sha384::digest(data).to_vec()),
        0x000d => Some(Sha512::digest(data).to_vec()),
        _ => None,
    }
}

/// The hash of the COSE signature algorithm (what extraData is computed with).
fn cose_hash(alg: i64, data: &[u8]) -> Option<Vec<u8>> {
    match alg {
        COSE_RS1 => tpm_hash(0x0004, data),
        -7 | -257 | -37 => tpm_hash(0x000b, data),
        -35 | -258 | -38 => tpm_hash(0x000c, data),
        -36 | -259 | -39 => tpm_hash(0x000d, data),
        _ => None,
    }
}

fn key_matches(pub_key: &PubKey, credential: &PublicKey) -> bool {
    match (pub_key, credential) {
        (PubKey::Rsa { n, e }, PublicKey::Rsa(k)) => {
            use rsa::traits::PublicKeyParts;
            k.n().to_bytes_be() == strip(n) && k.e().to_bytes_be() == strip(&e.to_be_bytes())
        }
        (PubKey::Ecc { curve, x, y }, PublicKey::P256(_)) => {
            let point = credential.p256_point().unwrap_or_default();
            *curve == TPM_ECC_NIST_P256 && point.get(1..33) == Some(x) && point.get(33..) == Some(y)
        }
        _ => false,
    }
}

fn strip(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

pub(super) fn verify(input: &Input<'_>, facts: &mut Map<String, Value>) -> Result<Verified, Fail> {
    let ver = input.stmt.get_text("ver").and_then(|v| v.as_text());
    if ver != Some("2.0") {
        return fail(Check::TpmVersion, format!("ver is {ver:?}, not \"2.0\""));
    }
    let alg = stmt_alg(input)?;
    let sig = stmt_bytes(input, "sig")?;
    let cert_info_bytes = stmt_bytes(input, "certInfo")?;
    let pub_area_bytes = stmt_bytes(input, "pubArea")?;
    if input.stmt.get_text("ecdaaKeyId").is_some() {
        return fail(Check::Statement, "ECDAA (ecdaaKeyId) is not supported");
    }
    let pub_area = parse_pub_area(pub_area_bytes).map_err(|e| (Check::PubArea, e))?;
    let credential = PublicKey::from_cose(&input.credential.public_key)
        .map_err(|e| (Check::CredentialKey, e))?;
    if !key_matches(&pub_area.key, &credential) {
        return fail(Check::CredentialKey, "pubArea's key is not the credential public key");
    }
    let cert_info = parse_cert_info(cert_info_bytes).map_err(|e| (Check::CertInfoMagic, e))?;
    if cert_info.magic != TPM_GENERATED_VALUE {
        return fail(Check::CertInfoMagic, format!("magic is 0x{:08x}", cert_info.magic));
    }
    if cert_info.kind != TPM_ST_ATTEST_CERTIFY {
        return fail(Check::CertInfoType, format!("type is 0x{:04x}", cert_info.kind));
    }
    let expected = cose_hash(alg, &input.to_be_signed())
        .ok_or((Check::Alg, format!("alg {alg} has no hash we know")))?;
    if cert_info.extra_data != expected.as_slice() {
        return fail(
            Check::ExtraData,
            format!("extraData is not {}(authData ‖ clientDataHash)", crypto::alg_name(alg)),
        );
    }
    let mut name = pub_area.name_alg.to_be_bytes().to_vec();
    name.extend(tpm_hash(pub_area.name_alg, pub_area_bytes).ok_or((
        Check::AttestedName,
        format!("nameAlg 0x{:04x} is not a hash we know", pub_area.name_alg),
    ))?);
    if cert_info.attested_name != name.as_slice() {
        return fail(Check::AttestedName, "attested.name is not nameAlg ‖ H(pubArea)");
    }
    let x5c = required_x5c(input)?;
    let aik = crypto::parse_certificate(&x5c[0], "x5c[0]").map_err(|e| (Check::Certificate, e))?;
    let aik_key = PublicKey::from_certificate(&aik).map_err(|e| (Check::Certificate, e))?;
    aik_key.verify(alg, cert_info_bytes, sig).map_err(|e| (Check::Signature, e))?;
    let san = crypto::extension(&aik, "2.5.29.17").map(|(v, _)| v);
    facts.insert("tpm".to_owned(), tpm_facts(san.unwrap_or_default()));
    aik_requirements(&aik, san.is_some())?;
    check_aaguid_extension(&aik, &input.credential.aaguid)?;
    Ok(Verified { kind: AttestationType::AttCa, alg: Some(alg) })
}

/// §8.3.1 TPM attestation statement certificate requirements.
fn aik_requirements(aik: &x509_cert::Certificate, has_san: bool) -> Result<(), Fail> {
    let req = |why: &str| fail(Check::CertificateRequirements, format!("AIK certificate: {why}"));
    if aik.tbs_certificate.version != x509_cert::Version::V3 {
        return req("not X.509 v3");
    }
    if !aik.tbs_certificate.subject.0.is_empty() {
        return req("subject is not empty");
    }
    if !has_san {
        return req("no subject alternative name");
    }
    let eku = crypto::extension(aik, "2.5.29.37").map(|(v, _)| v).unwrap_or_default();
    if !eku.windows(OID_TCG_KP_AIK_CERTIFICATE.len()).any(|w| w == OID_TCG_KP_AIK_CERTIFICATE) {
        return req("extended key usage lacks tcg-kp-AIKCertificate (2.23.133.8.3)");
    }
    if crypto::is_ca(aik) {
        return req("it is a CA");
    }
    Ok(())
}

/// The TPM manufacturer, model and version from the AIK's subjectAltName directory name
/// (TCG EK Credential Profile §3.2.9: 2.23.133.2.1/2/3 as UTF8Strings).
fn tpm_facts(san: &[u8]) -> Value {
    let find = |last: u8| -> Option<String> {
        let oid = [0x06, 0x05, 0x67, 0x81, 0x05, 0x02, last];
        let at = san.windows(oid.len()).position(|w| w == oid)?;
        let (tlv, _) = super::der::read(&san[at + oid.len()..]).ok()?;
        Some(String::from_utf8_lossy(tlv.value).into_owned())
    };
    json!({"manufacturer": find(1), "model": find(2), "version": find(3)})
}
