//! `--mds` end to end in the engine: a generated MDS3 blob whose entry carries the virtual key's
//! attestation root extends the one AAGUID table the USB ceremony uses (friendly name in the
//! result) and lets the packed x5c chain be verified; a blob with another root (same subject,
//! other key) does not; no blob means "no roots". The verdict under an attestation-enforced
//! policy follows each case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod usb_common;

use base64::Engine as _;
use cablebridged::ceremony::{
    run, CeremonyOutcome, CeremonyRequest, RegisterOptions, Transport, UsbTransport,
};
use cablebridged::evidence::{Aaguid, AaguidTable, ChainStatus};
use cablebridged::policy::{evaluate, CeremonyFacts, CheckStatus, SelectedPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use usb_common::{address, key};

const KEY_AAGUID: &str = "e0e1bb60-ee6d-4c0d-82a5-bf6653a6c08f";

/// An MDS3 payload with one FIDO2 entry for the virtual key's AAGUID and `root` as its
/// attestation root; as the signed-JWT form when `jwt` (the signature is not checked).
fn mds_blob(root_der: &[u8], jwt: bool) -> Vec<u8> {
    let payload = serde_json::json!({
        "legalHeader": "test fixture",
        "no": 7,
        "nextUpdate": "2099-12-31",
        "entries": [
            {"aaid": "4e4e#4005", "metadataStatement": {"description": "a UAF authenticator"}},
            {
                "aaguid": KEY_AAGUID,
                "metadataStatement": {
                    "description": "cablebridge virtual key (lab metadata)",
                    "aaguid": KEY_AAGUID,
                    "protocolFamily": "fido2",
                    "attestationTypes": ["basic_full"],
                    "attestationRootCertificates": [
                        base64::engine::general_purpose::STANDARD.encode(root_der)
                    ]
                },
                "statusReports": [{"status": "NOT_FIDO_CERTIFIED"}]
            }
        ]
    })
    .to_string();
    if jwt {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        format!("eyJhbGciOiJFUzI1NiJ9.{b64}.c2ln").into_bytes()
    } else {
        payload.into_bytes()
    }
}

/// A root with the virtual key's CA subject but a different key.
fn impostor_root() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CountryName, "US");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "cablebridge");
    params.distinguished_name.push(rcgen::DnType::CommonName, "cablebridge test attestation CA");
    params.self_signed(&key).unwrap().der().to_vec()
}

fn enforced_policy() -> SelectedPolicy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/policy/legacy-attestation-enforced.json");
    SelectedPolicy::load(&path, None).unwrap()
}

#[tokio::test]
async fn usb_registration_chain_against_mds_roots() {
    let key = key(0, None).await;
    let ca = key.attestation_ca_der().expect("packed attestation has a CA").to_vec();
    let aaguid: Aaguid = KEY_AAGUID.parse().unwrap();

    let mut with_root = AaguidTable::built_in();
    assert_eq!(with_root.extend_from_mds(&mds_blob(&ca, true)).unwrap(), 1);
    let mut other_root = AaguidTable::built_in();
    other_root.extend_from_mds(&mds_blob(&impostor_root(), false)).unwrap();

    let cases: [(&str, AaguidTable, &str, CheckStatus); 3] = [
        ("root in the blob", with_root, "verified", CheckStatus::Pass),
        ("another root", other_root, "not_verified", CheckStatus::Fail),
        ("no blob", AaguidTable::built_in(), "no_roots", CheckStatus::Warn),
    ];
    for (what, table, chain, attestation) in cases {
        let table = Arc::new(table);
        let config = UsbTransport {
            devices: vec![address(&key)],
            timeout: Duration::from_secs(20),
            aaguids: table.clone(),
            ..Default::default()
        };
        let request = CeremonyRequest::Register(RegisterOptions::new("example.com", "alice"));
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            run(Transport::Usb(config), request, None, CancellationToken::new()),
        )
        .await
        .unwrap()
        .unwrap();
        let CeremonyOutcome::Registered(reg) = outcome else {
            panic!("{what}: not a registration")
        };
        assert_eq!(reg.aaguid, aaguid);
        // The USB path names the model from the configured table, not the built-in one.
        let name = reg.authenticator_name.as_deref();
        if what == "no blob" {
            assert_eq!(name, None, "{what}");
        } else {
            assert_eq!(name, Some("cablebridge virtual key (lab metadata)"), "{what}");
        }

        let facts = CeremonyFacts::registration(&reg, &table);
        let att = facts.attestation.as_ref().unwrap();
        assert_eq!(att.format, "packed");
        assert_eq!(att.chain.as_str(), chain, "{what}: {:?}", att.chain);
        if let ChainStatus::Verified { root } = &att.chain {
            assert!(root.contains("cablebridge test attestation CA"), "{root}");
        }
        assert!(!facts.backup_eligible && !facts.cross_device);

        let verdict = evaluate(&enforced_policy(), &facts, &table);
        let check = verdict.checks.iter().find(|c| c.rule == "attestation").unwrap();
        assert_eq!(check.status, attestation, "{what}: {check:?}");
        assert_eq!(verdict.accepted(), attestation != CheckStatus::Fail, "{what}");
    }
}

#[test]
fn mds_errors_name_the_entry() {
    let mut t = AaguidTable::built_in();
    let bad = format!(
        r#"{{"entries":[{{"aaguid":"{KEY_AAGUID}","metadataStatement":{{"attestationRootCertificates":["%%%"]}}}}]}}"#
    );
    let e = t.extend_from_mds(bad.as_bytes()).unwrap_err().to_string();
    assert!(e.contains(KEY_AAGUID) && e.contains("attestationRootCertificates[0]"), "{e}");
}
