//! The `attestation` field of `cablebridge register --json`, end to end through the binary:
//! the virtual USB key's packed x5c statement (verified, chain reported, then checked against
//! its CA given as an MDS root, and against a wrong root), and the virtual phone's packed self
//! attestation of a synced passkey over hybrid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use cablebridge_protocol::authenticator::AttestationMode;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const T: Duration = Duration::from_secs(60);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
}

/// `register` over USB against `device`; the last JSON line (the result).
async fn register_usb(device: &str, extra: &[&str]) -> Value {
    let out = bin()
        .args(["register", "--json", "--transport", "usb", "--device", device])
        .args(["--rp-id", "example.com", "--user-name", "alice"])
        .args(extra)
        .env_remove("CABLEBRIDGE_PIN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
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
        let key =
            VirtualKey::bind(VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap())).await.unwrap();
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
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("adverts.sock");
    let mut child = bin()
        .args(["register", "--json", "--rp-id", "example.com", "--user-name", "alice"])
        .args(["--advert-source", &format!("unix:{}", sock.display())])
        .args(["--tunnel-url", &server.base_url()])
        .args(["--state-dir", dir.path().join("state").to_str().unwrap()])
        .args(["--advert-timeout", "20s", "--user-timeout", "20s"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = Value::Null;
    tokio::time::timeout(T, async {
        let qr = loop {
            let e: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            if e["event"] == "qr" {
                break QrPayload::from_url(e["url"].as_str().unwrap()).unwrap();
            }
        };
        let mut cfg = PhoneConfig::new(server.base_url());
        cfg.sink = AdvertSinkSpec::Unix(sock.clone());
        cfg.advert_interval = Duration::from_millis(20);
        cfg.attestation = AttestationMode::PackedSelf;
        cfg.backup_eligible = true;
        let mut phone = VirtualPhone::new(cfg, PhoneState::new(&mut rand::rngs::OsRng), None, None);
        let (_, ()) = tokio::join!(phone.run_qr(&qr), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                last = serde_json::from_str(&line).unwrap();
            }
        });
    })
    .await
    .unwrap();
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
