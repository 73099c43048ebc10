//! Entra policy verdicts through the built binary, as a user runs them: `demo` with the virtual
//! phone's `--phone-aaguid/--phone-attestation/--phone-backup-eligible` and `--policy`, and
//! `register --policy` against the virtual phone (in this process) over our tunnel server. The
//! policy files are the Graph exports under daemon/tests/fixtures/policy/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{answer_qr, bin, phone_answers, spawn_lines, virtual_phone, Hybrid};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const AUTHENTICATOR_ANDROID: &str = "de1e552d-db1d-4423-a619-566b625cdc84";
const DEVICE_BOUND: &str = "Device-bound Authenticator and lab keys";

fn fixture(name: &str) -> String {
    format!("{}/../daemon/tests/fixtures/policy/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `demo --json` with `args`; returns the exit code and the register/authenticate results.
async fn demo(args: &[&str]) -> (Option<i32>, Value, Value, Value) {
    let out = tokio::time::timeout(
        T,
        bin()
            .args(["demo", "--json", "--user-presence-delay-ms", "0"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("demo finishes within 60 s")
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let results: Vec<&Value> = lines.iter().filter(|l| l["event"] == "result").collect();
    assert_eq!(
        results.len(),
        2,
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = lines.last().unwrap().clone();
    (out.status.code(), results[0].clone(), results[1].clone(), summary)
}

fn failed_rules(policy: &Value) -> Vec<String> {
    policy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn demo_blocked_authenticator_aaguid_is_rejected_at_registration_and_sign_in() {
    let (code, reg, auth, summary) = demo(&[
        "--policy",
        &fixture("legacy-block-authenticator.json"),
        "--phone-aaguid",
        AUTHENTICATOR_ANDROID,
    ])
    .await;
    // A rejected verdict does not fail the ceremony.
    assert_eq!(code, Some(0));
    assert_eq!(reg["aaguid"], AUTHENTICATOR_ANDROID);
    assert_eq!(reg["authenticator_name"], "Microsoft Authenticator (Android)");
    assert_eq!(reg["policy"]["verdict"], "reject", "{reg}");
    assert_eq!(reg["policy"]["profile"]["id"], "legacy");
    assert_eq!(failed_rules(&reg["policy"]), ["key_restrictions"]);
    assert!(reg["policy"]["reasons"][0].as_str().unwrap().contains("block list"));
    // Sign-in uses the AAGUID from registration.
    assert_eq!(auth["policy"]["verdict"], "reject", "{auth}");
    assert_eq!(failed_rules(&auth["policy"]), ["key_restrictions"]);
    assert_eq!(summary["policy"]["register"], "reject");

    // Another AAGUID passes the same block list.
    let (code, reg, auth, _) =
        demo(&["--policy", &fixture("legacy-block-authenticator.json")]).await;
    assert_eq!(code, Some(0));
    assert_eq!(reg["policy"]["verdict"], "accept", "{reg}");
    assert_eq!(auth["policy"]["verdict"], "accept", "{auth}");
}

#[tokio::test]
async fn demo_synced_passkey_against_a_device_bound_profile() {
    let policy = fixture("profiles.json");
    let (code, reg, auth, _) =
        demo(&["--policy", &policy, "--profile", DEVICE_BOUND, "--phone-backup-eligible"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(reg["policy"]["profile"]["name"], DEVICE_BOUND);
    assert_eq!(reg["policy"]["verdict"], "reject", "{reg}");
    assert_eq!(failed_rules(&reg["policy"]), ["passkey_type"]);
    let reason = reg["policy"]["reasons"][0].as_str().unwrap();
    assert!(reason.contains("synced") && reason.contains("BE=1 BS=1"), "{reason}");
    assert_eq!(failed_rules(&auth["policy"]), ["passkey_type"]);

    // The same phone device-bound is accepted (its AAGUID is on the profile's allow list).
    let (_, reg, auth, _) = demo(&["--policy", &policy, "--profile", DEVICE_BOUND]).await;
    assert_eq!(reg["policy"]["verdict"], "accept", "{reg}");
    assert_eq!(auth["policy"]["verdict"], "accept", "{auth}");
    // The all_users default profile admits synced passkeys.
    let (_, reg, _, _) = demo(&["--policy", &policy, "--phone-backup-eligible"]).await;
    assert_eq!(reg["policy"]["profile"]["name"], "Default passkey profile");
    assert_eq!(reg["policy"]["verdict"], "accept", "{reg}");
}

#[tokio::test]
async fn demo_attestation_enforced_with_none_is_rejected() {
    let policy = fixture("legacy-attestation-enforced.json");
    let (code, reg, auth, _) = demo(&["--policy", &policy, "--phone-attestation", "none"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(reg["attestation_format"], "none");
    assert_eq!(reg["policy"]["verdict"], "reject", "{reg}");
    assert_eq!(failed_rules(&reg["policy"]), ["attestation"]);
    // registrationOnly: the sign-in itself is not judged on attestation.
    assert_eq!(auth["policy"]["verdict"], "accept", "{auth}");

    // Packed: the signature verifies; without --mds roots the chain is unchecked (warn).
    let (_, reg, _, _) = demo(&["--policy", &policy, "--phone-attestation", "packed"]).await;
    assert_eq!(reg["policy"]["verdict"], "accept", "{reg}");
    let att = reg["policy"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "attestation")
        .unwrap()
        .clone();
    assert_eq!(att["status"], "warn", "{att}");
}

#[tokio::test]
async fn bad_policy_files_are_usage_errors_naming_the_file_before_any_ceremony() {
    let cases: [(&str, Option<&str>, &[&str]); 5] = [
        (
            "malformed-aaguid.json",
            None,
            &["malformed-aaguid.json", "/passkeyProfiles/0/keyRestrictions/aaGuids/1"],
        ),
        ("malformed-syntax.json", None, &["malformed-syntax.json", "line 1 column"]),
        ("profiles-ambiguous.json", None, &["Synced only", "Default passkey profile", "--profile"]),
        ("profiles.json", Some("no such profile"), &["no such profile", DEVICE_BOUND]),
        ("missing.json", None, &["missing.json"]),
    ];
    for (file, profile, needles) in cases {
        let path = fixture(file);
        let mut cmd = bin();
        cmd.args(["register", "--json", "--rp-id", "example.com", "--user-name", "a"]).args([
            "--advert-source",
            "stdin",
            "--no-linking",
            "--policy",
            &path,
        ]);
        if let Some(p) = profile {
            cmd.args(["--profile", p]);
        }
        let out =
            tokio::time::timeout(T, cmd.stdin(Stdio::null()).output()).await.unwrap().unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(!stdout.contains("\"qr\""), "{file}: no ceremony started: {stdout}");
        let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        for needle in needles {
            assert!(all.contains(needle), "{file}: {needle:?} missing from {all}");
        }
    }
}

/// `register --policy` over hybrid with the virtual phone answering as a synced provider.
#[tokio::test]
async fn register_over_hybrid_reports_the_verdict_in_the_result_event() {
    let rig = Hybrid::start().await;
    let mut c = rig.register("15s");
    c.args(["--no-linking", "--policy", &fixture("profiles.json"), "--profile", DEVICE_BOUND]);
    let (mut child, mut lines) = spawn_lines(&mut c);
    let mut cfg = rig.phone_config();
    cfg.backup_eligible = true;
    let mut phone = virtual_phone(cfg);
    let mut events: Vec<Value> = Vec::new();
    tokio::time::timeout(T, phone_answers(&mut phone, &mut lines, &mut events)).await.unwrap();
    assert_eq!(child.wait().await.unwrap().code(), Some(0), "{events:?}");
    let result = events.last().unwrap();
    assert_eq!(result["event"], "result", "{result}");
    assert_eq!(result["verification"]["ok"], true);
    assert_eq!(result["policy"]["verdict"], "reject", "{result}");
    assert_eq!(failed_rules(&result["policy"]), ["passkey_type"]);
}

/// `register --policy` with the `cablebridge phone` binary answering: its `--aaguid`,
/// `--attestation none` and `--backup-eligible` reach the verdict.
#[tokio::test]
async fn register_with_the_phone_binary_flags() {
    let rig = Hybrid::start().await;
    let mut c = rig.register("15s");
    c.args(["--no-linking", "--policy", &fixture("legacy-attestation-enforced.json")]);
    let (mut desktop, mut lines) = spawn_lines(&mut c);
    let mut events: Vec<Value> = Vec::new();
    let (tunnel, sink) = (rig.tunnel(), format!("unix:{}", rig.adverts.display()));
    let answer = |qr: String| async move {
        bin()
            .args(["phone", "--json", "--qr", &qr, "--tunnel-url", &tunnel])
            .args(["--advert-sink", &sink])
            .args(["--aaguid", AUTHENTICATOR_ANDROID, "--attestation", "none"])
            .args(["--backup-eligible", "--timeout-secs", "15"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    };
    let phone = tokio::time::timeout(T, answer_qr(&mut lines, &mut events, answer)).await.unwrap();
    assert_eq!(phone.status.code(), Some(0), "{}", String::from_utf8_lossy(&phone.stderr));
    assert_eq!(desktop.wait().await.unwrap().code(), Some(0), "{events:?}");
    let result = events.last().unwrap();
    assert_eq!(result["aaguid"], AUTHENTICATOR_ANDROID, "{result}");
    assert_eq!(result["attestation_format"], "none");
    let policy = &result["policy"];
    assert_eq!(policy["verdict"], "reject", "{result}");
    // none under enforced attestation; Authenticator over hybrid while enforced; synced under
    // the legacy model.
    assert_eq!(failed_rules(policy), ["attestation", "authenticator_hybrid", "passkey_type"]);
    let reasons: Vec<&str> =
        policy["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("BE=1 BS=1")), "{reasons:?}");
}

/// `--mds` through the binary: names from the blob reach the hybrid result, and the phone's
/// per-run test CA does not chain to the blob's (other) root, which an attestation-enforcing
/// policy rejects.
#[tokio::test]
async fn demo_with_mds_names_the_model_and_reports_the_chain() {
    let mds =
        format!("{}/../daemon/tests/fixtures/mds/mds3-payload.json", env!("CARGO_MANIFEST_DIR"));
    let policy = fixture("legacy-attestation-enforced.json");
    let (code, reg, _, _) = demo(&["--mds", &mds, "--policy", &policy]).await;
    assert_eq!(code, Some(0));
    assert_eq!(reg["authenticator_name"], "cablebridge virtual authenticator (fixture metadata)");
    assert_eq!(reg["attestation_chain"]["status"], "not_verified", "{reg}");
    let detail = reg["attestation_chain"]["detail"].as_str().unwrap();
    assert!(detail.contains("cablebridge test attestation CA"), "{detail}");
    assert_eq!(reg["policy"]["verdict"], "reject", "{reg}");
    assert_eq!(failed_rules(&reg["policy"]), ["attestation"]);

    let (_, reg, _, _) = demo(&["--mds", &mds, "--phone-attestation", "none"]).await;
    assert_eq!(reg["attestation_chain"]["status"], "no_certificates", "{reg}");
    assert!(reg.get("policy").is_none(), "no --policy, no verdict: {reg}");

    // Without --mds the result is unchanged: no chain field.
    let (_, reg, _, _) = demo(&[]).await;
    assert!(reg.get("attestation_chain").is_none() && reg.get("policy").is_none(), "{reg}");
}

#[tokio::test]
async fn bad_mds_blob_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("blob.jwt");
    std::fs::write(&bad, "not.a-jwt").unwrap();
    let out = tokio::time::timeout(
        T,
        bin().args(["demo", "--json", "--mds"]).arg(&bad).kill_on_drop(true).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("blob.jwt") && all.contains("MDS3"), "{all}");
}

#[tokio::test]
async fn credential_aaguid_and_profile_flags_are_checked() {
    // --credential-aaguid must be an AAGUID; --profile needs --policy (clap: exit 2).
    for args in [
        vec!["authenticate", "--rp-id", "example.com", "--credential-aaguid", "de1e552d"],
        vec!["register", "--rp-id", "example.com", "--user-name", "a", "--profile", "x"],
    ] {
        let out = tokio::time::timeout(T, bin().args(&args).stdin(Stdio::null()).output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--credential-aaguid") || err.contains("--policy"), "{err}");
    }
}
