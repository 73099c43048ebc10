//! Runs the real `cablebridge` binary against an in-process virtual key on loopback UDP:
//! devices, info, wink, pin set/retries/change (PINs via env and --pin-stdin), credentials
//! list/delete, reset, the error exit codes, and Ctrl-C during a touch (CANCEL reaches the key).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use cablebridge_protocol::ctap2::{
    CoseAlgorithm, CredentialParameters, MakeCredentialRequest, RelyingParty, User,
};
use cablebridged::ctap::uv::{register, UserVerification};
use cablebridged::ctap::{open_client, Call, OpenOptions};
use cablebridged::virtual_key::{VirtualKey, VirtualKeyHandle};
use common::{cli, cli_lines, key_config, register_args};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

async fn key() -> (VirtualKeyHandle, String) {
    let mut config = key_config();
    config.presence_delay = Duration::from_millis(50);
    let key = VirtualKey::bind(config).await.unwrap();
    let addr = key.device_address();
    (key, addr)
}

async fn make_discoverable(addr: &str, pin: &str, user: &[u8]) {
    let cancel = CancellationToken::new();
    let mut sink = |_| {};
    let mut call = Call {
        deadline: tokio::time::Instant::now() + Duration::from_secs(5),
        cancel: &cancel,
        progress: &mut sink,
    };
    let mut client =
        open_client(&addr.parse().unwrap(), &OpenOptions::default(), &mut call).await.unwrap();
    let request = MakeCredentialRequest {
        client_data_hash: [1; 32],
        rp: RelyingParty { id: "example.org".into(), name: None },
        user: User { id: user.to_vec(), name: Some("bob".into()), display_name: None },
        pub_key_cred_params: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
        exclude_list: vec![],
        extensions: None,
        options: cablebridge_protocol::ctap2::CommandOptions {
            rk: Some(true),
            ..Default::default()
        },
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    };
    let pin = cablebridge_protocol::ctap2::pin::Pin::new(pin).unwrap();
    register(
        &mut client,
        &mut rand::rngs::OsRng,
        request,
        UserVerification::Preferred,
        Some(&pin),
        &mut call,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_management_end_to_end_through_the_binary() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (key, addr) = key().await;
        let d = addr.as_str();

        let devices = cli(&["devices", "--device", d], &[], "", 0).await;
        let entry = devices["devices"].as_array().unwrap().iter().find(|e| e["path"] == d).unwrap();
        assert_eq!(entry["aaguid"].as_str().unwrap().len(), 32);
        assert!(entry["versions"].as_array().unwrap().iter().any(|v| v == "FIDO_2_1"));

        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["device"], d);
        assert_eq!(info["options"]["clientPin"], false);
        assert!(info["pin_uv_auth_protocols"].as_array().unwrap().contains(&Value::from(2)));
        assert_eq!(info["algorithms"][0]["name"], "ES256");

        let wink = cli(&["wink", "--device", d], &[], "", 0).await;
        assert_eq!(wink["winked"], true);

        // pin set from the environment, retries, change from stdin (current, then new).
        cli(&["pin", "set", "--device", d], &[("CABLEBRIDGE_NEW_PIN", "2468")], "", 0).await;
        let retries = cli(&["pin", "retries", "--device", d], &[], "", 0).await;
        assert_eq!(retries["pin_set"], true);
        assert_eq!(retries["retries"], 8);
        let wrong =
            cli(&["pin", "change", "--device", d, "--pin-stdin"], &[], "0000\n13579\n", 1).await;
        assert!(wrong["error"].as_str().unwrap().contains("wrong PIN (7 retries left)"), "{wrong}");
        assert_eq!(wrong["stage"], "ctap2");
        cli(&["pin", "change", "--device", d, "--pin-stdin"], &[], "2468\n13579\n", 0).await;
        let short = cli(
            &["pin", "change", "--device", d],
            &[("CABLEBRIDGE_PIN", "13579"), ("CABLEBRIDGE_NEW_PIN", "12")],
            "",
            2,
        )
        .await;
        assert!(short["error"].as_str().unwrap().contains("invalid PIN"), "{short}");

        // Credentials: none needs a PIN; two listed; one deleted.
        let no_pin = cli(&["credentials", "list", "--device", d], &[], "", 2).await;
        assert!(no_pin["error"].as_str().unwrap().contains("--pin-stdin"), "{no_pin}");
        make_discoverable(d, "13579", b"u1").await;
        make_discoverable(d, "13579", b"u2").await;
        let pin_env = [("CABLEBRIDGE_PIN", "13579")];
        let listed = cli(&["credentials", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["existing"], 2);
        let rp = &listed["relying_parties"][0];
        assert_eq!(rp["rp_id"], "example.org");
        let victim = rp["credentials"][0]["credential_id"].as_str().unwrap().to_owned();
        let deleted = cli(
            &["credentials", "delete", &victim, "--device", d, "--pin-stdin"],
            &[],
            "13579\n",
            0,
        )
        .await;
        assert_eq!(deleted["deleted"], victim.as_str());
        let listed = cli(&["credentials", "list", "--device", d], &pin_env, "", 0).await;
        assert_eq!(listed["existing"], 1);

        // reset without a TTY needs --yes; with it the PIN is gone.
        let refused = cli(&["reset", "--device", d], &[], "", 2).await;
        assert!(refused["error"].as_str().unwrap().contains("--yes"));
        cli(&["reset", "--device", d, "--yes"], &[], "", 0).await;
        let info = cli(&["info", "--device", d], &[], "", 0).await;
        assert_eq!(info["options"]["clientPin"], false);
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_device_and_bad_address_exit_codes() {
    // A bound-then-dropped port: nothing listens there.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("udp:127.0.0.1:{port}");
    let err = cli(&["info", "--device", &dead, "--timeout", "2"], &[], "", 3).await;
    assert_eq!(err["exit_code"], 3, "{err}");
    let bad = cli(&["info", "--device", "hidraw0"], &[], "", 2).await;
    assert!(bad["error"].as_str().unwrap().contains("/dev/hidraw0"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_authenticate_with_transport_usb() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (key, addr) = key().await;
        let d = addr.as_str();
        let (reg, events) = cli_lines(&register_args(d, "example.com", "alice"), &[], "", 0).await;
        assert_eq!(reg["transport"], "usb", "{reg}");
        assert_eq!(reg["ceremony"], "register");
        assert_eq!(reg["verification"]["ok"], true, "{reg}");
        // The key's keepalive status reached the progress stream.
        assert!(events.iter().any(|e| e.to_string().contains("touch your key")), "{events:?}");
        let cred = reg["credential_id"].as_str().unwrap();
        let public_key = reg["public_key_cose"].as_str().unwrap();
        let auth = cli(
            &[
                "authenticate",
                "--transport",
                "usb",
                "--device",
                d,
                "--rp-id",
                "example.com",
                "--allow-credential",
                cred,
                "--public-key",
                public_key,
            ],
            &[],
            "",
            0,
        )
        .await;
        assert_eq!(auth["transport"], "usb", "{auth}");
        assert_eq!(auth["verification"]["ok"], true, "{auth}");

        // With a PIN set, registration needs it: exit 2 naming the remedy, then success with it.
        cli(&["pin", "set", "--device", d], &[("CABLEBRIDGE_NEW_PIN", "1122")], "", 0).await;
        let args = register_args(d, "example.com", "bob");
        let err = cli(&args, &[], "", 2).await;
        assert!(err.to_string().contains("--pin-stdin"), "{err}");
        let ok = cli(&[&args[..], &["--pin-stdin"]].concat(), &[], "1122\n", 0).await;
        assert_eq!(ok["verification"]["ok"], true, "{ok}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

/// Ctrl-C while a CTAP2 key waits for its touch: the CLI sends CTAPHID_CANCEL, prints an error
/// naming `user_presence` and the CANCEL, exits 1, and the key is free at once (getInfo answers;
/// a key still holding the makeCredential would answer BUSY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_for_a_touch_cancels_on_the_key_and_frees_it() {
    let t = Duration::from_secs(30);
    let mut config = key_config();
    config.presence_delay = Duration::from_secs(60);
    let key = VirtualKey::bind(config).await.unwrap();
    let addr = key.device_address();
    let mut child = common::bin()
        .args(register_args(&addr, "example.com", "alice"))
        .args(["--json", "--no-daemon"])
        .env_remove("CABLEBRIDGE_PIN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(t, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("ended before asking for a touch");
            let e: Value = serde_json::from_str(&line).unwrap();
            if e["stage"] == "user_presence" && e["event"] == "progress" {
                break;
            }
        }
    })
    .await
    .unwrap();
    let sent = std::time::Instant::now();
    common::sigint(&child);
    let mut after = Vec::new();
    tokio::time::timeout(t, common::read_rest(&mut lines, &mut after)).await.unwrap();
    let last = after.last().cloned().unwrap_or(Value::Null);
    let code = tokio::time::timeout(t, child.wait()).await.unwrap().unwrap().code();
    println!("SIGINT at user_presence (USB): exited {:?} after the signal", sent.elapsed());
    assert_eq!(code, Some(1), "{last}");
    assert_eq!(
        (last["event"].as_str(), last["stage"].as_str()),
        (Some("error"), Some("user_presence"))
    );
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("cancelled") && message.contains("CANCEL sent"), "{last}");

    // The key let go of the request: getInfo answers now, well before the 60 s touch.
    let info = cli(&["info", "--device", &addr], &[], "", 0).await;
    assert!(info["versions"].to_string().contains("FIDO_2"), "{info}");
    let stats = key.shutdown().await.unwrap();
    assert_eq!(stats.cancels, 1, "{stats:?}");
}
