//! Entra ID passkey (FIDO2) policy files (daemon/src/policy): Graph JSON in the legacy and the
//! passkey-profile shapes, then profile selection and a verdict for fixed ceremony facts.
#![no_main]

use cablebridged::evidence::{AaguidTable, ChainStatus};
use cablebridged::policy::{
    evaluate, AttestationFacts, CeremonyFacts, CeremonyKind, Fido2Policy, SignatureStatus,
};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = Fido2Policy::parse(data, Path::new("policy.json")) else { return };
    let names = AaguidTable::built_in();
    for wanted in [None, Some("default"), Some("passkeys")] {
        let Ok(selected) = policy.clone().select(wanted) else { continue };
        for aaguid in [None, "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4".parse().ok()] {
            let facts = CeremonyFacts {
                kind: CeremonyKind::Registration,
                cross_device: true,
                aaguid,
                backup_eligible: true,
                backed_up: false,
                attestation: Some(AttestationFacts {
                    format: "packed".into(),
                    signature: SignatureStatus::Verified,
                    chain: ChainStatus::NotVerified("fuzz".into()),
                }),
            };
            let verdict = evaluate(&selected, &facts, &names);
            let _ = verdict.to_json();
        }
    }
});
