//! Cross-check with an independent CTAP2 client: python-fido2 (PyPI, pinned in scripts/test.sh)
//! runs tests/interop/python_fido2_udp.py against the virtual key over UDP-HID — getInfo,
//! packed attestation verified by python-fido2's own verifier, assertion signature, clientPIN,
//! credential management; python-fido2's WebAuthn client extensions (prf over
//! hmac-secret-mc / hmac-secret, credProtect enforced, credBlob, largeBlob write + read); then
//! authenticatorConfig (Config), the minPinLength extension, enterprise attestation, the pcmr
//! token and FPBioEnrollment on the key's simulated sensor (`bio`).
//!
//! CI must not skip this silently: without python3 or the `fido2` module the test FAILS with the
//! command that fixes it. A developer can opt out with CB_SKIP_PYTHON_INTEROP=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/python_fido2_udp.py");
/// Keep in step with the pin in scripts/test.sh.
const FIDO2_PIN: &str = "fido2==2.2.1";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test]
async fn python_fido2_drives_the_virtual_key() {
    if std::env::var("CB_SKIP_PYTHON_INTEROP").as_deref() == Ok("1") {
        eprintln!("CB_SKIP_PYTHON_INTEROP=1: python-fido2 cross-check skipped on request");
        return;
    }
    let py = python();
    let probe = tokio::process::Command::new(&py)
        .args(["-c", "import fido2.hid, fido2.ctap2, fido2.attestation"])
        .output()
        .await;
    match probe {
        Err(e) => panic!(
            "python-fido2 cross-check needs {py} ({e}); install Python 3 and run \
             `{py} -m pip install '{FIDO2_PIN}'` (scripts/test.sh does), or set \
             CB_SKIP_PYTHON_INTEROP=1 to skip locally"
        ),
        Ok(out) if !out.status.success() => panic!(
            "python-fido2 is not importable by {py}: {}; run `{py} -m pip install '{FIDO2_PIN}'` \
             (scripts/test.sh does), or set CB_SKIP_PYTHON_INTEROP=1 to skip locally",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }

    let mut config = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    config.bio = true;
    let key = VirtualKey::bind(config).await.unwrap();
    let addr = key.local_addr().to_string();
    let run = tokio::process::Command::new(&py).arg(SCRIPT).arg(&addr).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("python-fido2 script did not finish within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python-fido2 cross-check failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["attestation"], "BASIC", "packed x5c attestation verified by python-fido2");
    assert_eq!(report["credentials_enumerated"], 1);
    assert_eq!(report["min_pin_length"], 6, "python-fido2 Config.set_min_pin_length");
    assert_eq!(report["enterprise_attestation"], true);
    // Two discoverable credentials for interop.example by then: the credential-management
    // one (py-user-2) and the one the extensions check made through the WebAuthn client.
    assert_eq!(report["pcmr_creds"], 2);
    assert_eq!(report["bio_samples"], report["bio_max_samples"], "FPBioEnrollment captures");
    for checked in ["prf_enabled", "prf_matches_mc", "cred_blob", "cred_protect_enforced"] {
        assert_eq!(report[checked], true, "{checked}: {report}");
    }
    assert_eq!(report["cred_protect"], 3);
    assert_eq!(report["large_blob"], 192);
    println!("python-fido2: {report}");
    let stats = key.shutdown().await.unwrap();
    assert!(stats.cbor_requests >= 10, "{stats:?}");
}
