//! `cablebridge config …` (authenticatorConfig), `register --min-pin-length` /
//! `--enterprise-attestation`, and `credentials list` with the persistent read-only token, run
//! through the real binary against an in-process virtual key on loopback UDP-HID.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use cablebridged::virtual_key::{VirtualKey, VirtualKeyHandle};
use common::{
    cli, json_command, key_config, last_json, read_rest, register_args, run_expecting, spawn_lines,
};

async fn key(enterprise: &[&str]) -> (VirtualKeyHandle, String) {
    let mut config = key_config();
    config.enterprise_rp_ids = enterprise.iter().map(|s| s.to_string()).collect();
    let key = VirtualKey::bind(config).await.unwrap();
    let addr = key.device_address();
    (key, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_uv_and_min_pin_length_through_the_binary() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let (key, addr) = key(&[]).await;
        let d = addr.as_str();
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["options"]["authnrCfg"], true, "{info}");
        assert_eq!(info["options"]["alwaysUv"], false, "{info}");

        // No PIN yet: no token needed to toggle; afterwards registration demands a PIN.
        let on = cli(&["config", "toggle-always-uv", "--device", d], &[], "", 0).await;
        assert_eq!(on["always_uv"], true, "{on}");
        let err = cli(&register_args(d, "example.com", "alice"), &[], "", 1).await;
        assert!(err["error"].as_str().unwrap().contains("pin set"), "{err}");
        cli(&["pin", "set", "--device", d], &[("CABLEBRIDGE_NEW_PIN", "24680")], "", 0).await;
        // A PIN is set now: without it the toggle is refused (exit 2, says how to give it).
        let no_pin = cli(&["config", "toggle-always-uv", "--device", d], &[], "", 2).await;
        assert!(no_pin["error"].as_str().unwrap().contains("--pin-stdin"), "{no_pin}");
        let pin_env = [("CABLEBRIDGE_PIN", "24680")];
        // Discouraged UV still gets a token: alwaysUv wins.
        let mut args = register_args(d, "example.com", "alice");
        args.extend(["--uv", "discouraged", "--pin-stdin"]);
        let reg = cli(&args, &[], "24680\n", 0).await;
        assert_eq!(reg["verification"]["ok"], true, "{reg}");
        let off =
            cli(&["config", "toggle-always-uv", "--device", d, "--pin-stdin"], &[], "24680\n", 0)
                .await;
        assert_eq!(off["always_uv"], false, "{off}");

        // setMinPINLength 6 with an RP list and a forced change (the PIN has 5 characters).
        let set = cli(
            &[
                "config",
                "set-min-pin-length",
                "6",
                "--rp-id",
                "example.com",
                "--rp-id",
                "corp.example",
                "--force-change",
                "--device",
                d,
            ],
            &pin_env,
            "",
            0,
        )
        .await;
        assert_eq!(set["min_pin_length"], 6, "{set}");
        assert_eq!(set["force_pin_change"], true, "{set}");
        assert_eq!(
            set["min_pin_length_rp_ids"],
            serde_json::json!(["example.com", "corp.example"])
        );
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["min_pin_length"], 6, "{info}");
        assert_eq!(info["force_pin_change"], true, "{info}");
        // Until the PIN is changed nothing that needs a token works, and the error says so.
        let forced = cli(&["credentials", "list", "--device", d], &pin_env, "", 1).await;
        assert!(forced["error"].as_str().unwrap().contains("pin change"), "{forced}");
        let config =
            cli(&["config", "set-min-pin-length", "7", "--device", d], &pin_env, "", 1).await;
        assert!(config["error"].as_str().unwrap().contains("pin change"), "{config}");
        // Too short for the new minimum: refused before the key is asked.
        let short = cli(
            &["pin", "change", "--device", d],
            &[("CABLEBRIDGE_PIN", "24680"), ("CABLEBRIDGE_NEW_PIN", "13579")],
            "",
            2,
        )
        .await;
        assert!(short["error"].as_str().unwrap().contains("invalid PIN"), "{short}");
        cli(
            &["pin", "change", "--device", d],
            &[("CABLEBRIDGE_PIN", "24680"), ("CABLEBRIDGE_NEW_PIN", "135790")],
            "",
            0,
        )
        .await;
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["force_pin_change"], false, "{info}");
        let new_pin = [("CABLEBRIDGE_PIN", "135790")];
        // Lowering is refused by the key.
        let lower =
            cli(&["config", "set-min-pin-length", "5", "--device", d], &new_pin, "", 1).await;
        assert!(lower["error"].as_str().unwrap().contains("only grows (it is 6 now)"), "{lower}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_pin_length_extension_and_enterprise_attestation_on_register() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let (key, addr) = key(&["corp.example"]).await;
        let d = addr.as_str();
        let with = |rp: &'static str, extra: &[&'static str]| {
            let mut a = register_args(d, rp, "carol");
            a.extend_from_slice(extra);
            a
        };
        // ep is off until enabled: refused before the key is asked, naming the remedy.
        let off = cli(&with("corp.example", &["--enterprise-attestation", "1"]), &[], "", 1).await;
        assert!(off["error"].as_str().unwrap().contains("enable-ep"), "{off}");
        let ep = cli(&["config", "enable-ep", "--device", d], &[], "", 0).await;
        assert_eq!(ep["enterprise_attestation"], true, "{ep}");
        // Vendor-facilitated: only the key's configured RP ids get one.
        let corp = cli(&with("corp.example", &["--enterprise-attestation", "1"]), &[], "", 0).await;
        assert_eq!(corp["enterprise_attestation"], true, "{corp}");
        assert_eq!(corp["attestation_format"], "packed", "{corp}");
        assert_eq!(corp["verification"]["ok"], true, "{corp}");
        let other =
            cli(&with("other.example", &["--enterprise-attestation", "1"]), &[], "", 0).await;
        assert!(other.get("enterprise_attestation").is_none(), "{other}");
        // Platform-managed: any RP.
        let managed =
            cli(&with("other.example", &["--enterprise-attestation", "2"]), &[], "", 0).await;
        assert_eq!(managed["enterprise_attestation"], true, "{managed}");

        // minPinLength: only for RP ids on the key's list.
        cli(
            &["config", "set-min-pin-length", "6", "--rp-id", "example.com", "--device", d],
            &[],
            "",
            0,
        )
        .await;
        let listed = cli(&with("example.com", &["--min-pin-length"]), &[], "", 0).await;
        assert_eq!(listed["min_pin_length"], 6, "{listed}");
        assert_eq!(listed["verification"]["ok"], true, "{listed}");
        let unlisted = cli(&with("other.example", &["--min-pin-length"]), &[], "", 0).await;
        assert!(unlisted.get("min_pin_length").is_none(), "{unlisted}");
        let plain = cli(&with("example.com", &[]), &[], "", 0).await;
        assert!(plain.get("min_pin_length").is_none(), "not asked: {plain}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_list_uses_the_persistent_read_only_token() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let (key, addr) = key(&[]).await;
        let d = addr.as_str();
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["options"]["perCredMgmtRO"], true, "{info}");
        cli(&["pin", "set", "--device", d], &[("CABLEBRIDGE_NEW_PIN", "97531")], "", 0).await;
        let pin_env = [("CABLEBRIDGE_PIN", "97531")];
        let mut reg = register_args(d, "example.com", "dave");
        reg.extend(["--resident-key", "required"]);
        let made = cli(&reg, &pin_env, "", 0).await;
        let listed = cli(&["credentials", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["token"], "persistent-read-only (pcmr)", "{listed}");
        assert_eq!(listed["existing"], 1, "{listed}");
        assert_eq!(listed["relying_parties"][0]["rp_id"], "example.com", "{listed}");
        let id = listed["relying_parties"][0]["credentials"][0]["credential_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!made["credential_id"].as_str().unwrap().is_empty());
        // Deleting needs the full cm token (the pcmr one could not), and works.
        let deleted = cli(&["credentials", "delete", &id, "--device", d], &pin_env, "", 0).await;
        assert_eq!(deleted["token"], "credential-management (cm)", "{deleted}");
        let listed = cli(&["credentials", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["existing"], 0, "{listed}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bio_enrollment_end_to_end_on_the_simulated_sensor() {
    tokio::time::timeout(Duration::from_secs(90), async {
        // A key without a sensor: a clear error, exit 1.
        let (plain, plain_addr) = key(&[]).await;
        let none = cli(&["bio", "info", "--device", &plain_addr], &[], "", 1).await;
        assert!(none["error"].as_str().unwrap().contains("no fingerprint sensor"), "{none}");
        plain.shutdown().await.unwrap();

        let mut config = key_config();
        config.bio = true;
        let key = VirtualKey::bind(config).await.unwrap();
        let addr = key.device_address();
        let d = addr.as_str();
        let info = cli(&["bio", "info", "--device", d], &[], "", 0).await;
        assert_eq!(info["modality"], "fingerprint", "{info}");
        assert_eq!(info["fingerprint_kind"], "touch", "{info}");
        assert_eq!(info["max_capture_samples"], 4, "{info}");
        assert_eq!(info["enrolled"], false, "{info}");
        let no_pin = cli(&["bio", "list", "--device", d], &[], "", 1).await;
        assert!(no_pin["error"].as_str().unwrap().contains("pin set"), "{no_pin}");
        cli(&["pin", "set", "--device", d], &[("CABLEBRIDGE_NEW_PIN", "86420")], "", 0).await;
        let pin_env = [("CABLEBRIDGE_PIN", "86420")];
        let empty = cli(&["bio", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(empty["enrollments"], serde_json::json!([]), "{empty}");
        let enrolled =
            cli(&["bio", "enroll", "--name", "left thumb", "--device", d], &pin_env, "", 0).await;
        let samples = enrolled["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 4, "{enrolled}");
        assert_eq!(samples.last().unwrap()["remaining"], 0, "{enrolled}");
        assert!(samples.iter().all(|s| s["status"] == 0), "{enrolled}");
        let id = enrolled["template_id"].as_str().unwrap().to_owned();
        let listed = cli(&["bio", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["enrollments"][0]["template_id"], id.as_str(), "{listed}");
        assert_eq!(listed["enrollments"][0]["name"], "left thumb", "{listed}");
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["options"]["uv"], true, "built-in UV once enrolled: {info}");
        assert_eq!(info["options"]["bioEnroll"], true, "{info}");
        // With a finger enrolled the key verifies the user itself: no PIN needed to register.
        let reg = cli(&register_args(d, "example.com", "erin"), &[], "", 0).await;
        assert_eq!(reg["verification"]["ok"], true, "{reg}");
        let renamed =
            cli(&["bio", "rename", &id, "right index", "--device", d], &pin_env, "", 0).await;
        assert_eq!(renamed["name"], "right index", "{renamed}");
        let listed = cli(&["bio", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["enrollments"][0]["name"], "right index", "{listed}");
        let unknown = cli(&["bio", "remove", "abcdef", "--device", d], &pin_env, "", 1).await;
        assert!(unknown["error"].is_string(), "{unknown}");
        let removed = cli(&["bio", "remove", &id, "--device", d], &pin_env, "", 0).await;
        assert_eq!(removed["removed"], id.as_str(), "{removed}");
        let listed = cli(&["bio", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["enrollments"], serde_json::json!([]), "{listed}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_enrollments_survive_a_restart_with_a_state_file() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("vkey.cbor");
        let bind = || {
            let mut config = key_config();
            config.state_file = Some(state.clone());
            config.bio = true;
            VirtualKey::bind(config)
        };
        let key = bind().await.unwrap();
        let addr = key.device_address();
        let d = addr.as_str();
        cli(&["config", "toggle-always-uv", "--device", d], &[], "", 0).await;
        // alwaysUv without a PIN: config needs one now, and says how to get one.
        let no_pin = cli(&["config", "enable-ep", "--device", d], &[], "", 1).await;
        assert!(no_pin["error"].as_str().unwrap().contains("pin set"), "{no_pin}");
        cli(&["pin", "set", "--device", d], &[("CABLEBRIDGE_NEW_PIN", "11223344")], "", 0).await;
        let pin_env = [("CABLEBRIDGE_PIN", "11223344")];
        cli(&["config", "enable-ep", "--device", d], &pin_env, "", 0).await;
        cli(&["config", "set-min-pin-length", "8", "--device", d], &pin_env, "", 0).await;
        cli(&["bio", "enroll", "--name", "kept", "--device", d], &pin_env, "", 0).await;
        key.shutdown().await.unwrap();

        let key = bind().await.unwrap();
        let addr = key.device_address();
        let d = addr.as_str();
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["options"]["alwaysUv"], true, "{info}");
        assert_eq!(info["options"]["ep"], true, "{info}");
        assert_eq!(info["options"]["bioEnroll"], true, "{info}");
        assert_eq!(info["min_pin_length"], 8, "{info}");
        assert_eq!(info["force_pin_change"], false, "the 8-digit PIN is long enough: {info}");
        let listed = cli(&["bio", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["enrollments"][0]["name"], "kept", "{listed}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

/// Two clients on one key at once: a registration holds the key (the CTAPHID channel lock)
/// while it waits for the touch; `config toggle-always-uv` from a second process meets
/// ERR_CHANNEL_BUSY, says it is retrying, and goes through once the registration is done.
/// Both exit 0, the registration verifies, and the key ends with alwaysUv on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_while_another_client_registers_waits_for_the_key() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut config = key_config();
        // Long enough that the second process starts while the key still waits for the touch;
        // shorter than the busy back-off (about 3.6 s) it then waits through.
        config.presence_delay = Duration::from_millis(2500);
        let key = VirtualKey::bind(config).await.unwrap();
        let addr = key.device_address();
        let d = addr.as_str();
        let register = register_args(d, "example.com", "alice");
        let (mut registering, mut lines) = spawn_lines(&mut json_command(&register));
        let mut events: Vec<serde_json::Value> = Vec::new();
        // The key's keepalive (user presence needed): the registration holds the key now.
        loop {
            let line = lines.next_line().await.unwrap().expect("register ended before the touch");
            let e: serde_json::Value = serde_json::from_str(&line).unwrap();
            let waiting = e.to_string().contains("touch your key");
            events.push(e);
            if waiting {
                break;
            }
        }
        let toggle = ["config", "toggle-always-uv", "--device", d];
        let ((stdout, stderr), ()) = tokio::join!(
            run_expecting(json_command(&toggle), toggle, 0),
            read_rest(&mut lines, &mut events)
        );
        assert!(stderr.contains("busy with another client; retrying"), "{stderr}");
        let toggled = last_json(&stdout);
        assert_eq!(toggled["always_uv"], true, "{toggled}");

        let code = registering.wait().await.unwrap().code();
        let reg = events.last().unwrap();
        assert_eq!(code, Some(0), "{events:?}");
        assert_eq!(reg["event"], "result", "{reg}");
        assert_eq!(reg["verification"]["ok"], true, "{reg}");
        // The key is usable by either afterwards and kept the change.
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["options"]["alwaysUv"], true, "{info}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}
