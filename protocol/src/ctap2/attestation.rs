//! Attestation objects and statements (WebAuthn §6.5, §8.2 packed, §8.7 none).
//!
//! [`AttestationObject`] is the text-keyed WebAuthn form (`fmt`, `authData`, `attStmt`); CTAP2's
//! makeCredential response carries the same three under integer keys (see
//! [`super::make_credential::MakeCredentialResponse`]), and the two convert into each other.
//!
//! [`AttestationStatement::verify`] checks the *signature* of `none` and `packed` (self
//! attestation with the credential key, or full attestation with the leaf certificate of `x5c`).
//! It does not build or validate the certificate chain, check certificate extensions (AAGUID
//! OID, basic constraints) or consult metadata: that is trust policy, not parsing.

use super::auth_data::AuthenticatorData;
use super::cose::CoseAlgorithm;
use super::error::Ctap2Error;
use super::fields::{self, Fields, MapBuilder};
use super::make_credential::MakeCredentialResponse;
use super::verify::{verify_es256, verify_with_cose};
use crate::cbor::Value;
use p256::pkcs8::DecodePublicKey;
use x509_cert::der::{Decode, Encode};

/// `{fmt, authData, attStmt}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationObject {
    /// Statement format.
    pub fmt: String,
    /// Authenticator data bytes.
    pub auth_data: Vec<u8>,
    /// The statement map, verbatim.
    pub att_stmt: Value,
}

impl AttestationObject {
    /// Encodes as the WebAuthn text-keyed map.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_text("fmt", self.fmt.clone())
            .put_text("authData", self.auth_data.clone())
            .put_text("attStmt", self.att_stmt.clone())
            .build()
    }
    /// Decodes the WebAuthn text-keyed map.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "attestationObject")?;
        Ok(AttestationObject {
            fmt: fields::text(fields::req(f.get_text("fmt"), "fmt")?, "fmt")?,
            auth_data: fields::bytes(fields::req(f.get_text("authData"), "authData")?, "authData")?,
            att_stmt: fields::map(fields::req(f.get_text("attStmt"), "attStmt")?, "attStmt")?,
        })
    }
    /// Decodes from bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, Ctap2Error> {
        Self::from_cbor(&Value::decode(b)?)
    }
    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_cbor().to_vec()
    }
    /// Parses the authenticator data.
    pub fn auth_data(&self) -> Result<AuthenticatorData, Ctap2Error> {
        AuthenticatorData::parse(&self.auth_data)
    }
    /// Parses the statement for `fmt`.
    pub fn statement(&self) -> Result<AttestationStatement, Ctap2Error> {
        AttestationStatement::parse(&self.fmt, &self.att_stmt)
    }
    /// Parses and verifies the statement's signature.
    pub fn verify(&self, client_data_hash: &[u8; 32]) -> Result<AttestationType, Ctap2Error> {
        self.statement()?.verify(&self.auth_data, client_data_hash)
    }
}

impl From<MakeCredentialResponse> for AttestationObject {
    fn from(r: MakeCredentialResponse) -> Self {
        AttestationObject { fmt: r.fmt, auth_data: r.auth_data, att_stmt: r.att_stmt }
    }
}

/// A parsed attestation statement.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationStatement {
    /// `none`: an empty map.
    None,
    /// `packed`.
    Packed {
        /// Signature algorithm.
        alg: CoseAlgorithm,
        /// The signature over authData ‖ clientDataHash.
        sig: Vec<u8>,
        /// DER certificates, leaf first; empty for self attestation.
        x5c: Vec<Vec<u8>>,
    },
    /// Any other format, kept verbatim.
    Other {
        /// The format name.
        fmt: String,
        /// The statement.
        stmt: Value,
    },
}

/// What a successful verification established.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationType {
    /// `none`: nothing to verify.
    None,
    /// Packed, signed by the credential key itself.
    SelfAttestation,
    /// Packed, signed by the x5c leaf certificate's key (chain not validated).
    Basic,
}

impl AttestationStatement {
    /// Parses `att_stmt` according to `fmt`.
    pub fn parse(fmt: &str, att_stmt: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(att_stmt, "attStmt")?;
        match fmt {
            "none" => {
                if att_stmt.as_map().is_some_and(|m| !m.is_empty()) {
                    return Err(Ctap2Error::field("attStmt", "not empty for fmt none"));
                }
                Ok(AttestationStatement::None)
            }
            "packed" => {
                let alg =
                    fields::int(fields::req(f.get_text("alg"), "attStmt.alg")?, "attStmt.alg")?;
                let sig =
                    fields::bytes(fields::req(f.get_text("sig"), "attStmt.sig")?, "attStmt.sig")?;
                let x5c = match f.get_text("x5c") {
                    None => Vec::new(),
                    Some(v) => {
                        let certs = fields::array(v, "attStmt.x5c")?;
                        if certs.is_empty() {
                            return Err(Ctap2Error::field("attStmt.x5c", "empty"));
                        }
                        certs
                            .iter()
                            .map(|c| fields::bytes(c, "attStmt.x5c[]"))
                            .collect::<Result<_, _>>()?
                    }
                };
                if f.get_text("ecdaaKeyId").is_some() {
                    return Err(Ctap2Error::UnsupportedAlgorithm(alg));
                }
                Ok(AttestationStatement::Packed { alg: CoseAlgorithm::from_i64(alg), sig, x5c })
            }
            other => {
                Ok(AttestationStatement::Other { fmt: other.to_owned(), stmt: att_stmt.clone() })
            }
        }
    }

    /// The format name.
    pub fn fmt(&self) -> &str {
        match self {
            AttestationStatement::None => "none",
            AttestationStatement::Packed { .. } => "packed",
            AttestationStatement::Other { fmt, .. } => fmt,
        }
    }

    /// Encodes the statement map.
    pub fn to_cbor(&self) -> Value {
        match self {
            AttestationStatement::None => Value::Map(Vec::new()),
            AttestationStatement::Packed { alg, sig, x5c } => MapBuilder::new()
                .put_text("alg", Value::int(alg.to_i64()))
                .put_text("sig", sig.clone())
                .put_text_opt(
                    "x5c",
                    (!x5c.is_empty()).then(|| {
                        Value::Array(x5c.iter().map(|c| Value::bytes(c.clone())).collect())
                    }),
                )
                .build(),
            AttestationStatement::Other { stmt, .. } => stmt.clone(),
        }
    }

    /// Verifies the signature over `auth_data ‖ client_data_hash` (WebAuthn §8.2 steps 2–3;
    /// ES256 only). Formats other than none/packed give `UnsupportedAlgorithm(0)`.
    pub fn verify(
        &self,
        auth_data: &[u8],
        client_data_hash: &[u8; 32],
    ) -> Result<AttestationType, Ctap2Error> {
        match self {
            AttestationStatement::None => Ok(AttestationType::None),
            AttestationStatement::Packed { alg, sig, x5c } => {
                if let Some(leaf) = x5c.first() {
                    if *alg != CoseAlgorithm::Es256 {
                        return Err(Ctap2Error::UnsupportedAlgorithm(alg.to_i64()));
                    }
                    let key = leaf_public_key(leaf)?;
                    verify_es256(&key, auth_data, client_data_hash, sig)?;
                    Ok(AttestationType::Basic)
                } else {
                    let parsed = AuthenticatorData::parse(auth_data)?;
                    let cred = parsed.attested_credential.ok_or(Ctap2Error::AuthData {
                        what: "attestedCredentialData",
                        problem: "missing (AT not set)",
                    })?;
                    // §8.2: in self attestation alg must match the credential key's alg.
                    if cred.public_key.alg() != Some(*alg) {
                        return Err(Ctap2Error::field(
                            "attStmt.alg",
                            "does not match the credential key",
                        ));
                    }
                    verify_with_cose(&cred.public_key, auth_data, client_data_hash, sig)?;
                    Ok(AttestationType::SelfAttestation)
                }
            }
            AttestationStatement::Other { .. } => Err(Ctap2Error::UnsupportedAlgorithm(0)),
        }
    }
}

/// The P-256 public key of a DER X.509 certificate.
pub fn leaf_public_key(cert_der: &[u8]) -> Result<p256::PublicKey, Ctap2Error> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|_| Ctap2Error::Certificate("not a DER X.509 certificate"))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| Ctap2Error::Certificate("subject public key info does not re-encode"))?;
    p256::PublicKey::from_public_key_der(&spki)
        .map_err(|_| Ctap2Error::Certificate("subject public key is not a P-256 key"))
}
