//! WebAuthn attestation statements of every format a lab meets, verified (WebAuthn Level 3 §8):
//! `packed` (self and x5c, §8.2), `tpm` (§8.3), `android-key` (§8.4), `android-safetynet`
//! (§8.5, legacy), `fido-u2f` (§8.6), `none` (§8.7) and `apple` (§8.8).
//!
//! What it is: pure, deterministic verification of one attestation object against a client
//! data hash — no IO, no clock. [`verify`] gives an [`AttestationReport`]: the format, whether
//! the statement verified (and the attestation type it established) or a typed
//! [`AttestationError`] naming the format and the failing [`Check`], the certificate chain
//! (subject, issuer, SHA-256 fingerprint, key per certificate), the backup flags (synced vs
//! device-bound), format facts (TPM manufacturer, Android security level, SafetyNet timestamp
//! and verdicts), and — given metadata roots ([`AttestationReport::with_roots`]) — whether the
//! chain leads to one ([`super::chain`]).
//!
//! What it is not: a trust decision. Validity periods are not compared with a clock (SafetyNet's
//! `timestampMs` is reported, not enforced), revocation is not checked, and an x5c chain is only
//! "trusted" when it reaches a root of the MDS blob the user passed. Its JSON is the `attestation`
//! field of a registration result.

mod android_key;
mod apple;
mod crypto;
mod der;
mod packed;
mod safetynet;
mod tpm;
mod u2f;

use std::fmt;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    AttestationObject, AttestedCredentialData, AuthDataFlags, AuthenticatorData,
};
use serde_json::{json, Map};

pub use crypto::{alg_name, certificate_signed_by, PublicKey};

use super::chain::{verify_attestation_chain, ChainStatus};
use super::Aaguid;

/// An attestation statement format (`fmt`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// `none`.
    None,
    /// `packed`.
    Packed,
    /// `fido-u2f`.
    FidoU2f,
    /// `tpm`.
    Tpm,
    /// `android-key`.
    AndroidKey,
    /// `android-safetynet`.
    AndroidSafetynet,
    /// `apple` (Apple anonymous attestation).
    Apple,
    /// Anything else.
    Unknown(String),
}

impl Format {
    /// From `fmt`.
    pub fn parse(fmt: &str) -> Self {
        match fmt {
            "none" => Format::None,
            "packed" => Format::Packed,
            "fido-u2f" => Format::FidoU2f,
            "tpm" => Format::Tpm,
            "android-key" => Format::AndroidKey,
            "android-safetynet" => Format::AndroidSafetynet,
            "apple" => Format::Apple,
            other => Format::Unknown(other.to_owned()),
        }
    }

    /// The `fmt` string.
    pub fn as_str(&self) -> &str {
        match self {
            Format::None => "none",
            Format::Packed => "packed",
            Format::FidoU2f => "fido-u2f",
            Format::Tpm => "tpm",
            Format::AndroidKey => "android-key",
            Format::AndroidSafetynet => "android-safetynet",
            Format::Apple => "apple",
            Format::Unknown(s) => s,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verification step that failed (named as in WebAuthn §8).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The attestation object is not `{fmt, authData, attStmt}` CBOR.
    AttestationObject,
    /// The authenticator data does not parse or has no attested credential.
    AuthData,
    /// A required `attStmt` field is missing or has the wrong type.
    Statement,
    /// `alg` is unsupported or does not fit the key.
    Alg,
    /// An `x5c` certificate does not parse, or the chain is the wrong length.
    Certificate,
    /// The attestation certificate misses a requirement of its format (§8.2.1, §8.3.1, ...).
    CertificateRequirements,
    /// The certificate's AAGUID extension differs from the authenticator data's.
    Aaguid,
    /// The credential key is not the attested key (or not of an allowed type).
    CredentialKey,
    /// `sig` does not verify.
    Signature,
    /// tpm: `ver` is not "2.0".
    TpmVersion,
    /// tpm: `pubArea` does not parse.
    PubArea,
    /// tpm: `certInfo.magic` is not TPM_GENERATED_VALUE, or certInfo does not parse.
    CertInfoMagic,
    /// tpm: `certInfo.type` is not TPM_ST_ATTEST_CERTIFY.
    CertInfoType,
    /// tpm: `certInfo.extraData` is not the hash of authData ‖ clientDataHash.
    ExtraData,
    /// tpm: `certInfo.attested.name` is not the name of `pubArea`.
    AttestedName,
    /// android-key: the key description's attestationChallenge is not the clientDataHash.
    AttestationChallenge,
    /// android-key: the authorization lists (allApplications, origin, purpose).
    AuthorizationList,
    /// apple / android-safetynet: the nonce is not SHA-256(authData ‖ clientDataHash).
    Nonce,
    /// android-safetynet: the JWS does not parse or its signature does not verify.
    Jws,
    /// android-safetynet: ctsProfileMatch is not true.
    CtsProfileMatch,
    /// android-safetynet: the leaf is not issued to attest.android.com.
    Hostname,
    /// A format we do not know.
    UnsupportedFormat,
}

impl Check {
    /// The name of the check, as the JSON `check` field shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::AttestationObject => "attestationObject",
            Check::AuthData => "authData",
            Check::Statement => "attStmt",
            Check::Alg => "alg",
            Check::Certificate => "x5c",
            Check::CertificateRequirements => "x5c[0].requirements",
            Check::Aaguid => "x5c[0].aaguid",
            Check::CredentialKey => "credentialPublicKey",
            Check::Signature => "sig",
            Check::TpmVersion => "ver",
            Check::PubArea => "pubArea",
            Check::CertInfoMagic => "certInfo.magic",
            Check::CertInfoType => "certInfo.type",
            Check::ExtraData => "certInfo.extraData",
            Check::AttestedName => "certInfo.attested.name",
            Check::AttestationChallenge => "attestationChallenge",
            Check::AuthorizationList => "authorizationList",
            Check::Nonce => "nonce",
            Check::Jws => "response.jws",
            Check::CtsProfileMatch => "ctsProfileMatch",
            Check::Hostname => "x5c[0].hostname",
            Check::UnsupportedFormat => "fmt",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a statement did not verify: the format, the check and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format} attestation: {check}: {detail}")]
pub struct AttestationError {
    /// The statement's format.
    pub format: Format,
    /// The failing check.
    pub check: Check,
    /// What was wrong.
    pub detail: String,
}

/// A failed check inside a format module.
type Fail = (Check, String);

fn fail<T>(check: Check, detail: impl Into<String>) -> Result<T, Fail> {
    Err((check, detail.into()))
}

/// The attestation type a verified statement established (WebAuthn §6.5.4).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationType {
    /// `none`: no attestation.
    None,
    /// Self attestation: signed by the credential key.
    SelfAttestation,
    /// Basic attestation: signed by an attestation key whose certificate is in x5c.
    Basic,
    /// Attestation CA (tpm): an AIK certified by the TPM vendor's CA.
    AttCa,
    /// Anonymization CA (apple): a per-credential certificate.
    AnonCa,
}

impl AttestationType {
    /// `none` / `self` / `basic` / `attca` / `anonca`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationType::None => "none",
            AttestationType::SelfAttestation => "self",
            AttestationType::Basic => "basic",
            AttestationType::AttCa => "attca",
            AttestationType::AnonCa => "anonca",
        }
    }
}

/// What a verified statement established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The attestation type.
    pub kind: AttestationType,
    /// The statement's signature algorithm (COSE), when it has one.
    pub alg: Option<i64>,
}

/// One certificate of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// Subject DN (RFC 4514 string).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    /// The public key ("P-256", "RSA-2048") or why it is not understood.
    pub public_key: String,
}

/// Everything [`verify`] established about one attestation object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationReport {
    /// The format.
    pub format: Format,
    /// The authenticator data's AAGUID.
    pub aaguid: Aaguid,
    /// BE: the credential may be backed up (a multi-device, "synced" passkey).
    pub backup_eligible: bool,
    /// BS: the credential is backed up now.
    pub backup_state: bool,
    /// The statement: verified, or the failed check.
    pub outcome: Result<Verified, AttestationError>,
    /// The certificates (DER, leaf first) the statement carries.
    pub x5c: Vec<Vec<u8>>,
    /// One summary per certificate of `x5c` (those that parse).
    pub chain: Vec<CertificateSummary>,
    /// The chain against metadata roots ([`Self::with_roots`]); `NoRoots` until then.
    pub trust: ChainStatus,
    /// Format facts (TPM manufacturer, SafetyNet timestamp and verdicts, ...).
    pub facts: Map<String, serde_json::Value>,
}

/// Parsed inputs every format module gets.
struct Input<'a> {
    auth_data: &'a [u8],
    credential: &'a AttestedCredentialData,
    client_data_hash: &'a [u8; 32],
    stmt: &'a Value,
}

impl Input<'_> {
    /// `authData ‖ clientDataHash`, the bytes most formats sign.
    fn to_be_signed(&self) -> Vec<u8> {
        [self.auth_data, self.client_data_hash.as_slice()].concat()
    }
}

/// Verifies `attestation_object` (WebAuthn CBOR) for `client_data_hash` =
/// SHA-256(clientDataJSON). Fails only when the object or its authenticator data is unusable;
/// a statement that does not verify is a report whose `outcome` is the error.
pub fn verify(
    attestation_object: &[u8],
    client_data_hash: &[u8; 32],
) -> Result<AttestationReport, AttestationError> {
    let object =
        AttestationObject::from_bytes(attestation_object).map_err(|e| AttestationError {
            format: Format::Unknown(String::new()),
            check: Check::AttestationObject,
            detail: e.to_string(),
        })?;
    let format = Format::parse(&object.fmt);
    let outer =
        |check: Check, detail: String| AttestationError { format: format.clone(), check, detail };
    let auth_data = AuthenticatorData::parse(&object.auth_data)
        .map_err(|e| outer(Check::AuthData, e.to_string()))?;
    let credential = auth_data.attested_credential.as_ref().ok_or_else(|| {
        outer(Check::AuthData, "no attested credential data (AT not set)".to_owned())
    })?;
    let input = Input {
        auth_data: &object.auth_data,
        credential,
        client_data_hash,
        stmt: &object.att_stmt,
    };
    let mut facts = Map::new();
    let x5c = match format {
        Format::AndroidSafetynet => safetynet::certificates(&input),
        _ => x5c_field(&input),
    };
    let outcome = match format {
        Format::None => match object.att_stmt.as_map() {
            Some([]) => Ok(Verified { kind: AttestationType::None, alg: None }),
            _ => fail(Check::Statement, "attStmt of fmt none is not an empty map"),
        },
        Format::Packed => packed::verify(&input),
        Format::FidoU2f => u2f::verify(&input),
        Format::Tpm => tpm::verify(&input, &mut facts),
        Format::AndroidKey => android_key::verify(&input, &mut facts),
        Format::AndroidSafetynet => safetynet::verify(&input, &mut facts),
        Format::Apple => apple::verify(&input),
        Format::Unknown(_) => fail(Check::UnsupportedFormat, "not a WebAuthn attestation format"),
    }
    .map_err(|(check, detail)| outer(check, detail));
    let chain = x5c.iter().filter_map(|der| summarize(der)).collect();
    Ok(AttestationReport {
        format,
        aaguid: Aaguid(credential.aaguid),
        backup_eligible: auth_data.flags.contains(AuthDataFlags::BE),
        backup_state: auth_data.flags.contains(AuthDataFlags::BS),
        outcome,
        x5c,
        chain,
        trust: ChainStatus::NoRoots,
        facts,
    })
}

/// The `x5c` byte strings of the statement (empty when absent or malformed: the format
/// module reports that).
fn x5c_field(input: &Input<'_>) -> Vec<Vec<u8>> {
    input
        .stmt
        .get_text("x5c")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_bytes).map(<[u8]>::to_vec).collect())
        .unwrap_or_default()
}

fn summarize(der: &[u8]) -> Option<CertificateSummary> {
    let cert = crypto::parse_certificate(der, "certificate").ok()?;
    Some(CertificateSummary {
        subject: cert.tbs_certificate.subject.to_string(),
        issuer: cert.tbs_certificate.issuer.to_string(),
        sha256: crypto::fingerprint(der),
        public_key: PublicKey::from_certificate(&cert).map(|k| k.describe()).unwrap_or_else(|e| e),
    })
}

/// The statement's `x5c` as a list of byte strings; `Certificate` when absent or empty.
fn required_x5c(input: &Input<'_>) -> Result<Vec<Vec<u8>>, Fail> {
    let x5c = input
        .stmt
        .get_text("x5c")
        .and_then(Value::as_array)
        .ok_or((Check::Certificate, "x5c is missing or not an array".to_owned()))?;
    let certs: Vec<Vec<u8>> = x5c.iter().filter_map(Value::as_bytes).map(<[u8]>::to_vec).collect();
    if certs.is_empty() || certs.len() != x5c.len() {
        return fail(Check::Certificate, "x5c is empty or holds a non-byte-string");
    }
    Ok(certs)
}

fn stmt_bytes<'a>(input: &Input<'a>, key: &'static str) -> Result<&'a [u8], Fail> {
    input
        .stmt
        .get_text(key)
        .and_then(Value::as_bytes)
        .ok_or((Check::Statement, format!("{key} is missing or not a byte string")))
}

fn stmt_alg(input: &Input<'_>) -> Result<i64, Fail> {
    input
        .stmt
        .get_text("alg")
        .and_then(Value::as_i64)
        .ok_or((Check::Statement, "alg is missing or not an integer".to_owned()))
}

/// The leaf certificate's AAGUID extension, when present, must name the authenticator data's
/// AAGUID and must not be critical (§8.2.1, §8.3.1).
fn check_aaguid_extension(cert: &x509_cert::Certificate, aaguid: &[u8; 16]) -> Result<(), Fail> {
    let Some((value, critical)) = crypto::extension(cert, "1.3.6.1.4.1.45724.1.1.4") else {
        return Ok(());
    };
    if critical {
        return fail(Check::Aaguid, "the AAGUID extension is marked critical");
    }
    let inner = der::read_only(value, der::OCTET_STRING)
        .map_err(|e| (Check::Aaguid, format!("the AAGUID extension: {e}")))?;
    if inner.value != aaguid {
        return fail(
            Check::Aaguid,
            format!(
                "the certificate names AAGUID {} but the authenticator data {}",
                hex::encode(inner.value),
                Aaguid(*aaguid)
            ),
        );
    }
    Ok(())
}

/// The `attestation` field when the object itself was unusable (no report).
pub fn error_json(e: &AttestationError) -> serde_json::Value {
    json!({
        "format": e.format.as_str(),
        "verified": false,
        "check": e.check.as_str(),
        "detail": e.to_string(),
        "chain": [],
    })
}

impl AttestationReport {
    /// Checks the chain against metadata attestation roots (the MDS entry of this AAGUID);
    /// `NoCertificates` without x5c, `NoRoots` with no roots.
    pub fn with_roots(mut self, roots: &[Vec<u8>]) -> Self {
        self.trust = if self.x5c.is_empty() {
            ChainStatus::NoCertificates
        } else {
            verify_attestation_chain(&self.aaguid.0, &self.x5c, roots)
        };
        self
    }

    /// Whether the statement verified.
    pub fn verified(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The `attestation` field of a registration result.
    pub fn to_json(&self) -> serde_json::Value {
        let (kind, alg, check, detail) = match &self.outcome {
            Ok(v) => {
                let detail = match (v.kind, v.alg) {
                    (AttestationType::None, _) => {
                        format!("{} attestation: nothing to verify", self.format)
                    }
                    (kind, Some(alg)) => format!(
                        "{} attestation verified ({} attestation, {})",
                        self.format,
                        kind.as_str(),
                        alg_name(alg)
                    ),
                    (kind, None) => format!(
                        "{} attestation verified ({} attestation)",
                        self.format,
                        kind.as_str()
                    ),
                };
                (Some(v.kind.as_str()), v.alg, None, detail)
            }
            Err(e) => (None, None, Some(e.check.as_str()), e.to_string()),
        };
        let chain: Vec<_> = self
            .chain
            .iter()
            .map(|c| {
                json!({"subject": c.subject, "issuer": c.issuer, "sha256": c.sha256,
                       "public_key": c.public_key})
            })
            .collect();
        json!({
            "format": self.format.as_str(),
            "verified": self.outcome.is_ok(),
            "type": kind,
            "alg": alg.map(alg_name),
            "check": check,
            "detail": detail,
            "chain": chain,
            "trust": {"status": self.trust.as_str(), "detail": self.trust.detail()},
            "backup_eligible": self.backup_eligible,
            "backup_state": self.backup_state,
            "passkey_type": if self.backup_eligible { "synced" } else { "device_bound" },
            "facts": self.facts,
        })
    }
}
