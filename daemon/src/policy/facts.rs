//! [`CeremonyFacts`] from the engine's ceremony results: the one place that knows the result
//! types, so the verdict rules stay a pure function over plain data.

use cablebridge_protocol::ctap2::{AttestationObject, AuthDataFlags, AuthenticatorData};
use sha2::{Digest, Sha256};

use super::verdict::{AttestationFacts, CeremonyFacts, CeremonyKind, SignatureStatus};
use crate::ceremony::{AuthenticationResult, RegistrationResult, TransportKind};
use crate::evidence::attestation::{self, AttestationReport, AttestationType};
use crate::evidence::{Aaguid, AaguidTable, ChainStatus};

fn flags(flags: AuthDataFlags) -> (bool, bool) {
    (flags.contains(AuthDataFlags::BE), flags.contains(AuthDataFlags::BS))
}

/// The attestation of a registration: the statement verified by its format's rules
/// ([`attestation::verify`], every WebAuthn format) and its x5c chain against the table's
/// metadata roots.
pub fn attestation_facts(
    object: &AttestationObject,
    client_data_json: &[u8],
    aaguid: &Aaguid,
    table: &AaguidTable,
) -> AttestationFacts {
    let hash: [u8; 32] = Sha256::digest(client_data_json).into();
    match attestation::verify(&object.to_bytes(), &hash) {
        Ok(report) => report_facts(&report.with_roots(table.roots(aaguid))),
        Err(e) => AttestationFacts {
            format: object.fmt.clone(),
            signature: SignatureStatus::Invalid(e.to_string()),
            chain: ChainStatus::NoCertificates,
        },
    }
}

/// The policy's view of an attestation report (chain status as the report's `trust`).
pub fn report_facts(report: &AttestationReport) -> AttestationFacts {
    let signature = match &report.outcome {
        Ok(v) if v.kind == AttestationType::None => SignatureStatus::Unsigned,
        Ok(v) if v.kind == AttestationType::SelfAttestation => SignatureStatus::SelfAttestation,
        Ok(_) => SignatureStatus::Verified,
        Err(e) => SignatureStatus::Invalid(e.to_string()),
    };
    AttestationFacts {
        format: report.format.as_str().to_owned(),
        signature,
        chain: report.trust.clone(),
    }
}

impl CeremonyFacts {
    /// The facts of a registration; `table` supplies the metadata roots for the chain check.
    pub fn registration(result: &RegistrationResult, table: &AaguidTable) -> Self {
        let parsed = AttestationObject::from_bytes(&result.attestation_object).ok();
        let (backup_eligible, backed_up) = parsed
            .as_ref()
            .and_then(|o| o.auth_data().ok())
            .map(|d| flags(d.flags))
            .unwrap_or_default();
        // The report the result carries was checked against the engine's table; a different
        // table here (a judge loaded with other metadata) re-checks the chain with its roots.
        let attestation = match &result.attestation {
            Ok(report) => {
                Some(report_facts(&(**report).clone().with_roots(table.roots(&result.aaguid))))
            }
            Err(_) => parsed
                .map(|o| attestation_facts(&o, &result.client_data_json, &result.aaguid, table)),
        };
        CeremonyFacts {
            kind: CeremonyKind::Registration,
            cross_device: result.transport == TransportKind::Hybrid,
            aaguid: Some(result.aaguid),
            backup_eligible,
            backed_up,
            attestation,
        }
    }

    /// The facts of a sign-in. Assertions carry no AAGUID: pass the one the credential was
    /// registered with when known.
    pub fn authentication(result: &AuthenticationResult, aaguid: Option<Aaguid>) -> Self {
        let (backup_eligible, backed_up) = AuthenticatorData::parse(&result.authenticator_data)
            .map(|d| flags(d.flags))
            .unwrap_or_default();
        CeremonyFacts {
            kind: CeremonyKind::Authentication,
            cross_device: result.transport == TransportKind::Hybrid,
            aaguid,
            backup_eligible,
            backed_up,
            attestation: None,
        }
    }
}
