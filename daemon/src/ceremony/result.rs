//! Ceremony results with the exact JSON fields of the CLI (`{"event":"result", ...}`), built from
//! CTAP2 responses, and the checks a relying party would run on them (WebAuthn §7.1 steps 13–16
//! and 19, §7.2 steps 15–21, minus trust policy): RP id hash, UP flag, and the attestation or
//! assertion signature.
//!
//! `public_key_cose` is the credential key re-encoded canonically from the parsed authenticator
//! data; it equals the authenticator's bytes for every authenticator that encodes canonically
//! (CTAP2 requires it).

use cablebridge_protocol::ctap2::{
    verify, AttestationObject, AttestationType, AuthDataFlags, AuthenticatorData, CoseKey,
    CredentialDescriptor, Ctap2Error, GetAssertionResponse, MakeCredentialResponse,
};
use sha2::{Digest, Sha256};

use super::{b64url, CeremonyError, CeremonyStage, ClientData, ExtensionOutputs, Timings};
use crate::evidence::aaguid::{Aaguid, AaguidTable};
use crate::evidence::attestation::{self, AttestationError, AttestationReport};

/// How the authenticator was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// FIDO hybrid (caBLE v2) through a tunnel.
    Hybrid,
    /// USB HID.
    Usb,
}

impl TransportKind {
    /// `"hybrid"` / `"usb"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Hybrid => "hybrid",
            TransportKind::Usb => "usb",
        }
    }
}

/// Which protocol the authenticator spoke (USB keys: CTAP2, or the CTAP1/U2F fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtapProtocol {
    /// CTAP2 (CTAPHID_CBOR).
    Ctap2,
    /// CTAP1/U2F APDUs (CTAPHID_MSG) on a key without CTAP2.
    Ctap1U2f,
}

impl CtapProtocol {
    /// `"ctap2"` / `"ctap1/u2f"` (the result's `protocol`).
    pub fn as_str(self) -> &'static str {
        match self {
            CtapProtocol::Ctap2 => "ctap2",
            CtapProtocol::Ctap1U2f => "ctap1/u2f",
        }
    }
}

/// The fields of a `result` event in the order the CLI prints them; the daemon's `result`
/// notification carries the same set (one list for both, plus `verification` and policy fields).
pub const RESULT_FIELDS: [&str; 25] = [
    "event",
    "ceremony",
    "transport",
    "protocol",
    "rp_id",
    "credential_id",
    "aaguid",
    "authenticator_name",
    "attestation_format",
    "attestation",
    "attestation_object",
    "authenticator_data",
    "signature",
    "user_handle",
    "client_data_json",
    "public_key_cose",
    "credentials",
    "prf",
    "cred_protect",
    "cred_blob",
    "large_blob",
    "timings_ms",
    "linked_phone",
    "min_pin_length",
    "enterprise_attestation",
];

/// A successful registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResult {
    /// How the authenticator was reached.
    pub transport: TransportKind,
    /// The protocol a USB key spoke (`None` over hybrid).
    pub protocol: Option<CtapProtocol>,
    /// The relying party id the credential is scoped to.
    pub rp_id: String,
    /// The new credential's id.
    pub credential_id: Vec<u8>,
    /// The authenticator model's AAGUID.
    pub aaguid: Aaguid,
    /// Friendly model name when known.
    pub authenticator_name: Option<String>,
    /// `fmt` of the attestation object.
    pub attestation_format: String,
    /// The attestation statement verified (every WebAuthn format), its chain summarised and
    /// checked against the metadata roots of the engine's AAGUID table (`--mds`).
    pub attestation: Result<Box<AttestationReport>, AttestationError>,
    /// The WebAuthn attestation object (text-keyed CBOR).
    pub attestation_object: Vec<u8>,
    /// The exact client data JSON.
    pub client_data_json: Vec<u8>,
    /// The credential public key (COSE_Key CBOR).
    pub public_key_cose: Vec<u8>,
    /// The credential public key, parsed.
    pub public_key: CoseKey,
    /// Client extension outputs (set by the transport, which knows what was asked).
    pub extensions: ExtensionOutputs,
    /// Per-stage timings.
    pub timings: Timings,
    /// The `minPinLength` extension output (the key's minimum PIN length), when it answered.
    pub min_pin_length: Option<u64>,
    /// makeCredential `epAtt`: whether the attestation is an enterprise attestation.
    pub enterprise_attestation: Option<bool>,
}

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationResult {
    /// How the authenticator was reached.
    pub transport: TransportKind,
    /// The protocol a USB key spoke (`None` over hybrid).
    pub protocol: Option<CtapProtocol>,
    /// The relying party id.
    pub rp_id: String,
    /// The credential that signed.
    pub credential_id: Vec<u8>,
    /// Authenticator data bytes.
    pub authenticator_data: Vec<u8>,
    /// DER signature over `authenticatorData ‖ SHA-256(clientDataJSON)`.
    pub signature: Vec<u8>,
    /// The user handle (discoverable credentials).
    pub user_handle: Option<Vec<u8>>,
    /// The exact client data JSON.
    pub client_data_json: Vec<u8>,
    /// Every discoverable credential the key offered when it had several (the result's
    /// `credentials`); empty otherwise.
    pub candidates: Vec<Candidate>,
    /// Client extension outputs (set by the transport, which knows what was asked).
    pub extensions: ExtensionOutputs,
    /// Per-stage timings.
    pub timings: Timings,
}

/// One of several discoverable credentials for an RP (getAssertion/getNextAssertion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The user handle.
    pub user_handle: Option<Vec<u8>>,
    /// The account name, when the key returned it (only with UV, CTAP 2.1 §6.2.2).
    pub user_name: Option<String>,
    /// The display name, likewise.
    pub display_name: Option<String>,
    /// This credential's authenticator data (so a picker can choose it after the fact).
    pub authenticator_data: Vec<u8>,
    /// This credential's signature over `authenticatorData ‖ clientDataHash`.
    pub signature: Vec<u8>,
}

impl Candidate {
    /// From one getAssertion/getNextAssertion response.
    pub fn from_response(response: &GetAssertionResponse) -> Self {
        Candidate {
            credential_id: response.credential.as_ref().map(|c| c.id.clone()).unwrap_or_default(),
            user_handle: response.user.as_ref().map(|u| u.id.clone()),
            user_name: response.user.as_ref().and_then(|u| u.name.clone()),
            display_name: response.user.as_ref().and_then(|u| u.display_name.clone()),
            authenticator_data: response.auth_data.clone(),
            signature: response.signature.clone(),
        }
    }
}

fn bad(stage: CeremonyStage, e: &Ctap2Error) -> CeremonyError {
    CeremonyError::classified(stage, "the authenticator's response is invalid", e)
}

fn check_auth_data(auth_data: &AuthenticatorData, rp_id: &str) -> Result<(), Ctap2Error> {
    let expected: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
    if auth_data.rp_id_hash != expected {
        return Err(Ctap2Error::InvalidField {
            field: "authData.rpIdHash",
            problem: "is not SHA-256 of the requested RP id",
        });
    }
    if !auth_data.flags.contains(AuthDataFlags::UP) {
        return Err(Ctap2Error::InvalidField {
            field: "authData.flags",
            problem: "user presence (UP) is not set",
        });
    }
    Ok(())
}

impl RegistrationResult {
    /// Interprets a makeCredential response. Fails (stage `user_response`) when the response
    /// lacks attested credential data.
    pub fn from_response(
        transport: TransportKind,
        rp_id: &str,
        response: MakeCredentialResponse,
        client_data: &ClientData,
        aaguids: &AaguidTable,
        timings: Timings,
    ) -> Result<Self, CeremonyError> {
        let stage = CeremonyStage::UserResponse;
        let enterprise_attestation = response.ep_att;
        let object = AttestationObject::from(response);
        let auth_data = object.auth_data().map_err(|e| bad(stage, &e))?;
        let min_pin_length = auth_data
            .extensions
            .as_ref()
            .and_then(|e| e.as_map())
            .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("minPinLength")))
            .and_then(|(_, v)| v.as_u64());
        let cred = auth_data
            .attested_credential
            .ok_or_else(|| bad(stage, &Ctap2Error::MissingField("attestedCredentialData")))?;
        let aaguid = Aaguid(cred.aaguid);
        let attestation_object = object.to_bytes();
        let client_data_hash: [u8; 32] = Sha256::digest(client_data.json()).into();
        let attestation = attestation::verify(&attestation_object, &client_data_hash)
            .map(|r| Box::new(r.with_roots(aaguids.roots(&aaguid))));
        Ok(RegistrationResult {
            transport,
            protocol: None,
            rp_id: rp_id.to_owned(),
            credential_id: cred.credential_id,
            aaguid,
            authenticator_name: aaguids.lookup(&aaguid).map(|(n, _)| n.to_owned()),
            attestation_format: object.fmt.clone(),
            attestation,
            attestation_object,
            client_data_json: client_data.json().to_vec(),
            public_key_cose: cred.public_key.to_cbor().to_vec(),
            public_key: cred.public_key,
            extensions: ExtensionOutputs::default(),
            timings,
            min_pin_length,
            enterprise_attestation,
        })
    }

    /// Relying-party checks: RP id hash, UP, and the attestation statement (`none` has none;
    /// formats other than none/packed by [`attestation::verify`], whose detail is the result's
    /// `attestation` field).
    pub fn verify(&self) -> Result<AttestationType, Ctap2Error> {
        let object = AttestationObject::from_bytes(&self.attestation_object)?;
        check_auth_data(&object.auth_data()?, &self.rp_id)?;
        let hash: [u8; 32] = Sha256::digest(&self.client_data_json).into();
        if matches!(object.fmt.as_str(), "none" | "packed") {
            return object.verify(&hash);
        }
        match self.attestation.as_ref().map(|r| &r.outcome) {
            Ok(Ok(verified)) if verified.kind == attestation::AttestationType::None => {
                Ok(AttestationType::None)
            }
            Ok(Ok(_)) => Ok(AttestationType::Basic),
            Ok(Err(_)) | Err(_) => Err(Ctap2Error::SignatureInvalid(
                "the attestation statement does not verify (see the attestation field)",
            )),
        }
    }

    /// The `{"event":"result", ...}` line.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "event": "result",
            "ceremony": "register",
            "transport": self.transport.as_str(),
            "rp_id": self.rp_id,
            "credential_id": b64url(&self.credential_id),
            "aaguid": self.aaguid.to_string(),
            "authenticator_name": self.authenticator_name,
            "attestation_format": self.attestation_format,
            "attestation": match &self.attestation {
                Ok(report) => report.to_json(),
                Err(e) => attestation::error_json(e),
            },
            "attestation_object": b64url(&self.attestation_object),
            "client_data_json": b64url(&self.client_data_json),
            "public_key_cose": b64url(&self.public_key_cose),
            "timings_ms": self.timings.to_json(),
        });
        if let Some(protocol) = self.protocol {
            json["protocol"] = protocol.as_str().into();
        }
        // Only when the authenticator answered (extension output / epAtt present).
        if let Some(m) = json.as_object_mut() {
            if let Some(n) = self.min_pin_length {
                m.insert("min_pin_length".into(), n.into());
            }
            if let Some(ep) = self.enterprise_attestation {
                m.insert("enterprise_attestation".into(), ep.into());
            }
        }
        self.extensions.add_json(&mut json);
        json
    }
}

impl AuthenticationResult {
    /// Interprets a getAssertion response. `allow_list` is the request's: CTAP2 lets the
    /// authenticator omit the credential when the list had exactly one entry.
    pub fn from_response(
        transport: TransportKind,
        rp_id: &str,
        response: GetAssertionResponse,
        allow_list: &[CredentialDescriptor],
        client_data: &ClientData,
        timings: Timings,
    ) -> Result<Self, CeremonyError> {
        let stage = CeremonyStage::UserResponse;
        let credential_id = match (response.credential, allow_list) {
            (Some(c), _) => c.id,
            (None, [only]) => only.id.clone(),
            (None, _) => return Err(bad(stage, &Ctap2Error::MissingField("credential"))),
        };
        if !allow_list.is_empty() && !allow_list.iter().any(|d| d.id == credential_id) {
            return Err(bad(
                stage,
                &Ctap2Error::InvalidField {
                    field: "credential",
                    problem: "is not one of the allowed credentials",
                },
            ));
        }
        Ok(AuthenticationResult {
            transport,
            protocol: None,
            rp_id: rp_id.to_owned(),
            credential_id,
            authenticator_data: response.auth_data,
            signature: response.signature,
            user_handle: response.user.map(|u| u.id),
            client_data_json: client_data.json().to_vec(),
            candidates: Vec::new(),
            extensions: ExtensionOutputs::default(),
            timings,
        })
    }

    /// Makes candidate `index` (1-based, as listed in `credentials`) the one this result
    /// reports: every candidate's assertion was signed over the same client data, so an
    /// account picker can choose after the key answered (as browsers do with CTAP 2.0 keys).
    /// `false` when there is no such candidate.
    pub fn pick(&mut self, index: usize) -> bool {
        let Some(chosen) = index.checked_sub(1).and_then(|i| self.candidates.get(i)) else {
            return false;
        };
        if chosen.authenticator_data.is_empty() || chosen.signature.is_empty() {
            return false;
        }
        self.credential_id = chosen.credential_id.clone();
        self.authenticator_data = chosen.authenticator_data.clone();
        self.signature = chosen.signature.clone();
        self.user_handle = chosen.user_handle.clone();
        true
    }

    /// Relying-party checks with the credential's public key (from registration): RP id hash,
    /// UP, and the signature (ES256).
    pub fn verify(&self, public_key: &CoseKey) -> Result<(), Ctap2Error> {
        check_auth_data(&AuthenticatorData::parse(&self.authenticator_data)?, &self.rp_id)?;
        let hash: [u8; 32] = Sha256::digest(&self.client_data_json).into();
        verify::verify_with_cose(public_key, &self.authenticator_data, &hash, &self.signature)
    }

    /// The `{"event":"result", ...}` line (`credentials` only when the key offered several).
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "event": "result",
            "ceremony": "authenticate",
            "transport": self.transport.as_str(),
            "rp_id": self.rp_id,
            "credential_id": b64url(&self.credential_id),
            "authenticator_data": b64url(&self.authenticator_data),
            "signature": b64url(&self.signature),
            "user_handle": self.user_handle.as_deref().map(b64url),
            "client_data_json": b64url(&self.client_data_json),
            "timings_ms": self.timings.to_json(),
        });
        if !self.candidates.is_empty() {
            json["credentials"] = self.candidates_json();
        }
        if let Some(protocol) = self.protocol {
            json["protocol"] = protocol.as_str().into();
        }
        self.extensions.add_json(&mut json);
        json
    }

    /// `[{"index", "credential_id", "user_handle", "user_name", "display_name", "picked"}]`.
    fn candidates_json(&self) -> serde_json::Value {
        self.candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({
                    "index": i + 1,
                    "credential_id": b64url(&c.credential_id),
                    "user_handle": c.user_handle.as_deref().map(b64url),
                    "user_name": c.user_name,
                    "display_name": c.display_name,
                    "picked": c.credential_id == self.credential_id,
                })
            })
            .collect()
    }
}
