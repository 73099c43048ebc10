//! The `attestation` field of `cablebridge register --json`, end to end through the binary:
//! the virtual USB key's packed x5c statement (verified, chain reported, then checked against
//! its CA given as an MDS root, and against a wrong root), and the virtual phone's packed self
//! attestation of a synced passkey over hybrid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use cablebridge_protocol::authenticator::AttestationMode;
use common::{json_cli, phone_answers, spawn_lines, virtual_key, virtual_phone, Hybrid};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

/// `register` over USB against `device`; the last JSON line (the result).
async fn register_usb(device: &str, extra: &[&str]) -> Value {
    let args = [
        &["register", "--transport", "usb", "--device", device][..],
        &["--rp-id", "example.com", "--user-name", "alice"],
        extra,
    ]
    .concat();
    json_cli(&args, 0).await
}

fn mds_with_root(dir: &std::path::Path, aaguid: &str, root_der: &[u8]) -> std::path::PathBuf {
    let root = base64::engine::general_purpose::STANDARD.encode(root_der);
    let blob = json!({"no": 1, "entries": [{"aaguid": aaguid, "metadataStatement": {
        "description": "cablebridge virtual key", "attestationRootCertificates": [root]}}]});
    let path = dir.join(format!("mds-{}.json", root_der.len()));
    std::fs::write(&path, blob.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_key_packed_attestation_is_verified_and_checked_against_mds_roots() {
    tokio::time::timeout(T, async {
        let key = virtual_key().await;
        let device = key.device_address();
        let reg = register_usb(&device, &[]).await;
        let att = &reg["attestation"];
        assert_eq!(att["format"], "packed", "{reg}");
        assert_eq!(
            (&att["verified"], &att["type"], &att["alg"]),
            (&json!(true), &json!("basic"), &json!("ES256")),
            "{att}"
        );
        assert_eq!(att["check"], Value::Null);
        let chain = att["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 1, "{att}");
        assert!(chain[0]["subject"].as_str().unwrap().contains("OU=Authenticator Attestation"));
        assert!(chain[0]["issuer"].as_str().unwrap().contains("cablebridge test attestation CA"));
        assert_eq!(chain[0]["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(chain[0]["public_key"], "P-256");
        // No --mds: nothing to check the chain against.
        assert_eq!(att["trust"]["status"], "no_roots", "{att}");
        assert_eq!(
            (&att["backup_eligible"], &att["passkey_type"]),
            (&json!(false), &json!("device_bound"))
        );
        assert_eq!(reg["verification"]["ok"], true, "{reg}");

        // The key's own CA as the metadata root: the chain verifies.
        let dir = tempfile::tempdir().unwrap();
        let aaguid = reg["aaguid"].as_str().unwrap();
        let ca = key.attestation_ca_der().unwrap().to_vec();
        let mds = mds_with_root(dir.path(), aaguid, &ca);
        let reg = register_usb(&device, &["--mds", mds.to_str().unwrap()]).await;
        assert_eq!(reg["attestation"]["trust"]["status"], "verified", "{reg}");
        assert!(reg["attestation"]["trust"]["detail"]
            .as_str()
            .unwrap()
            .contains("test attestation CA"));
        assert_eq!(reg["attestation_chain"]["status"], "verified", "{reg}");

        // Another vendor's root (a TPM CA from the published vectors): not verified.
        let tpm: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../daemon/tests/fixtures/attestation/tpm-rsa-dell-xps-13.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let object = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tpm["attestation_object"].as_str().unwrap())
            .unwrap();
        let report = cablebridged::evidence::attestation::verify(&object, &[0; 32]).unwrap();
        let mds = mds_with_root(dir.path(), aaguid, &report.x5c[1]);
        let reg = register_usb(&device, &["--mds", mds.to_str().unwrap()]).await;
        assert_eq!(reg["attestation"]["trust"]["status"], "not_verified", "{reg}");
        assert_eq!(reg["attestation"]["verified"], true, "the statement itself still verifies");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_phone_packed_self_attestation_of_a_synced_passkey() {
    let rig = Hybrid::start().await;
    let mut c = rig.register("20s");
    c.args(["--state-dir", rig.dir.path().join("state").to_str().unwrap()]);
    let (mut child, mut lines) = spawn_lines(&mut c);
    let mut cfg = rig.phone_config();
    cfg.attestation = AttestationMode::PackedSelf;
    cfg.backup_eligible = true;
    let mut phone = virtual_phone(cfg);
    let mut events = Vec::new();
    tokio::time::timeout(T, phone_answers(&mut phone, &mut lines, &mut events)).await.unwrap();
    let last = events.last().cloned().unwrap_or(Value::Null);
    assert_eq!(child.wait().await.unwrap().code(), Some(0), "{last}");
    assert_eq!(last["event"], "result", "{last}");
    let att = &last["attestation"];
    assert_eq!(
        (&att["format"], &att["verified"], &att["type"]),
        (&json!("packed"), &json!(true), &json!("self")),
        "{att}"
    );
    assert_eq!(att["chain"], json!([]));
    assert_eq!(att["trust"]["status"], "no_certificates");
    assert_eq!((&att["backup_eligible"], &att["backup_state"]), (&json!(true), &json!(true)));
    assert_eq!(att["passkey_type"], "synced");
}
