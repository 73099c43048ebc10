//! WebAuthn extensions through the binary against the virtual key (USB over UDP-HID): `--prf-*`
//! (hmac-secret-mc at registration, hmac-secret at authentication), `--cred-protect`,
//! `--cred-blob` / `--get-cred-blob`, `--large-blob*`, and their result fields; the same over
//! hybrid with the virtual phone (its own prf, credProtect 3 usable with its built-in UV) and
//! through the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{json_command, last_json, run_expecting, virtual_key};
use serde_json::Value;

async fn cli(args: &[&str], code: i32) -> Value {
    let (stdout, _) = run_cli(args, code).await;
    last_json(&stdout)
}

/// A flag error from clap: exit 2, the message on stderr.
async fn usage_error(args: &[&str]) -> String {
    run_cli(args, 2).await.1
}

/// In this process: no daemon reachable.
async fn run_cli(args: &[&str], code: i32) -> (String, String) {
    let mut c = json_command(args);
    c.env("CABLEBRIDGE_SOCKET", "/nonexistent/cablebridge.sock");
    run_expecting(c, args, code).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prf_on_the_virtual_key_is_stable_and_input_dependent() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let key = virtual_key().await;
        let d = key.device_address();
        let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
        // "aW5wdXQtb25l" = "input-one", "aW5wdXQtdHdv" = "input-two".
        let reg = cli(
            &[&["register"], &usb[..], &["--user-name", "alice", "--prf-first", "aW5wdXQtb25l"]]
                .concat(),
            0,
        )
        .await;
        assert_eq!(reg["prf"]["enabled"], true, "{reg}");
        let at_mc = reg["prf"]["results"]["first"].as_str().unwrap().to_owned();
        assert_eq!(at_mc.len(), 43, "32 bytes base64url");
        let id = reg["credential_id"].as_str().unwrap();
        let auth = |extra: Vec<&'static str>| {
            let mut a = vec!["authenticate"];
            a.extend_from_slice(&usb);
            a.extend(["--allow-credential", id]);
            a.extend(extra);
            a.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        let run = |args: Vec<String>| async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&refs, 0).await
        };
        let one = run(auth(vec!["--prf-first", "aW5wdXQtb25l"])).await;
        assert_eq!(one["prf"]["results"]["first"], at_mc.as_str(), "{one}");
        assert!(one["prf"]["results"].get("second").is_none(), "{one}");
        assert!(one["prf"].get("enabled").is_none(), "enabled is a registration output");
        let two =
            run(auth(vec!["--prf-first", "aW5wdXQtdHdv", "--prf-second", "aW5wdXQtb25l"])).await;
        assert_eq!(two["prf"]["results"]["second"], at_mc.as_str(), "{two}");
        assert_ne!(two["prf"]["results"]["first"], at_mc.as_str(), "other input, other output");
        let none = run(auth(vec![])).await;
        assert!(none.get("prf").is_none(), "no flag, no field: {none}");
        // --prf-second alone is a usage error.
        let bad =
            usage_error(&[&["authenticate"], &usb[..], &["--prf-second", "aW5wdXQtb25l"]].concat())
                .await;
        assert!(bad.contains("--prf-first"), "{bad}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cred_protect_and_cred_blob_through_the_cli() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let key = virtual_key().await;
        let d = key.device_address();
        let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
        let reg = cli(
            &[
                &["register"],
                &usb[..],
                &["--user-name", "alice", "--resident-key", "required"],
                &["--cred-protect", "2", "--cred-blob", "bGFiIGJsb2I"],
            ]
            .concat(),
            0,
        )
        .await;
        assert_eq!(reg["cred_protect"], 2, "{reg}");
        assert_eq!(reg["cred_blob"]["stored"], true, "{reg}");
        let id = reg["credential_id"].as_str().unwrap();
        // Level 2 without UV: not offered as a discoverable credential...
        let hidden = cli(&[&["authenticate"], &usb[..]].concat(), 1).await;
        assert!(hidden["error"].as_str().unwrap().contains("holds no credential"), "{hidden}");
        // ...but usable with its ID in the allow list, and its blob comes back.
        let got = cli(
            &[&["authenticate"], &usb[..], &["--allow-credential", id, "--get-cred-blob"]].concat(),
            0,
        )
        .await;
        assert_eq!(got["cred_blob"]["blob"], "bGFiIGJsb2I", "{got}");
        let level = usage_error(
            &[&["register"], &usb[..], &["--user-name", "b", "--cred-protect", "4"]].concat(),
        )
        .await;
        assert!(level.contains("--cred-protect"), "{level}");
    })
    .await
    .unwrap();
}

/// One hybrid ceremony through the binary with the virtual `phone` scanning its QR code.
async fn hybrid(
    rig: &common::Hybrid,
    phone: &mut cablebridged::phone::VirtualPhone,
    args: &[&str],
    more: &[&str],
) -> Value {
    let mut c = common::bin();
    c.args(args)
        .args(more)
        .args(["--json", "--rp-id", "example.com", "--no-linking"])
        .args(common::hybrid_flags(&rig.adverts, &rig.tunnel(), "15s"))
        .env("CABLEBRIDGE_SOCKET", "/nonexistent/cablebridge.sock");
    let (mut child, mut lines) = common::spawn_lines(&mut c);
    let mut events = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        common::phone_answers(phone, &mut lines, &mut events),
    )
    .await
    .unwrap();
    let last = events.last().cloned().unwrap_or(Value::Null);
    assert_eq!(child.wait().await.unwrap().code(), Some(0), "{last}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prf_over_hybrid_with_the_virtual_phone() {
    let rig = common::Hybrid::start().await;
    let mut phone = common::virtual_phone(rig.phone_config());
    let reg = hybrid(
        &rig,
        &mut phone,
        &["register", "--user-name", "alice", "--prf-first", "aW5wdXQtb25l"],
        &["--cred-protect", "3", "--cred-blob", "YmxvYg"],
    )
    .await;
    assert_eq!(reg["transport"], "hybrid");
    assert_eq!(reg["cred_protect"], 3, "{reg}");
    assert_eq!(reg["cred_blob"]["stored"], true, "{reg}");
    assert_eq!(reg["prf"]["enabled"], true, "{reg}");
    let at_mc = reg["prf"]["results"]["first"].as_str().unwrap().to_owned();
    let key = reg["public_key_cose"].as_str().unwrap();
    let auth = hybrid(
        &rig,
        &mut phone,
        &["authenticate", "--prf-first", "aW5wdXQtdHdv", "--prf-second", "aW5wdXQtb25l"],
        &["--public-key", key, "--get-cred-blob"],
    )
    .await;
    assert_eq!(auth["cred_blob"]["blob"], "YmxvYg", "{auth}");
    assert_eq!(auth["verification"]["ok"], true, "{auth}");
    assert_eq!(auth["prf"]["results"]["second"], at_mc.as_str(), "{auth}");
    assert_ne!(auth["prf"]["results"]["first"], at_mc.as_str(), "{auth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blob_write_then_read_on_the_virtual_key() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let key = virtual_key().await;
        let d = key.device_address();
        let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
        let reg = cli(
            &[
                &["register"],
                &usb[..],
                &["--user-name", "alice", "--resident-key", "required", "--large-blob"],
            ]
            .concat(),
            0,
        )
        .await;
        assert_eq!(reg["large_blob"]["supported"], true, "{reg}");
        let id = reg["credential_id"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob.bin");
        // Two fragments' worth (maxFragmentLength is 1984 on the virtual key), compressible.
        let blob: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &blob).unwrap();
        let allow = ["--allow-credential", id];
        let empty =
            cli(&[&["authenticate"], &usb[..], &allow, &["--large-blob-read"]].concat(), 0).await;
        assert_eq!(empty["large_blob"]["blob"], Value::Null, "{empty}");
        let path = file.to_str().unwrap();
        let wrote =
            cli(&[&["authenticate"], &usb[..], &allow, &["--large-blob-write", path]].concat(), 0)
                .await;
        assert_eq!(wrote["large_blob"]["written"], true, "{wrote}");
        let read =
            cli(&[&["authenticate"], &usb[..], &allow, &["--large-blob-read"]].concat(), 0).await;
        let got = cablebridged::ceremony::from_b64url(read["large_blob"]["blob"].as_str().unwrap())
            .unwrap();
        assert_eq!(got, blob);
    })
    .await
    .unwrap();
}

/// Through the daemon (the service library on a temporary socket): the extension flags become
/// `ceremony.*` params and the results carry the same fields as in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_through_the_daemon_match_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let socket = common::daemon(dir.path()).await;
    let key = virtual_key().await;
    let d = key.device_address();
    let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
    let run = |mode: &'static str, args: Vec<String>| {
        let socket = socket.clone();
        async move {
            let all: Vec<&str> =
                [mode].into_iter().chain(args.iter().map(String::as_str)).collect();
            let mut c = json_command(&all);
            c.env("CABLEBRIDGE_SOCKET", &socket);
            last_json(&run_expecting(c, &all, 0).await.0)
        }
    };
    let strings = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let reg = run(
        "--daemon",
        strings(
            &[
                &["register"],
                &usb[..],
                &["--user-name", "alice", "--resident-key", "required", "--large-blob"],
                &["--prf-first", "aW5wdXQtb25l", "--cred-protect", "1", "--cred-blob", "YmxvYg"],
            ]
            .concat(),
        ),
    )
    .await;
    assert_eq!(reg["prf"]["enabled"], true, "{reg}");
    assert_eq!(reg["cred_protect"], 1, "{reg}");
    assert_eq!(reg["cred_blob"]["stored"], true, "{reg}");
    assert_eq!(reg["large_blob"]["supported"], true, "{reg}");
    let at_mc = reg["prf"]["results"]["first"].as_str().unwrap().to_owned();
    let id = reg["credential_id"].as_str().unwrap().to_owned();
    let file = dir.path().join("blob.bin");
    std::fs::write(&file, b"written through the daemon").unwrap();
    let auth = |extra: &[&str]| {
        let mut a = strings(&[&["authenticate"], &usb[..], &["--allow-credential"]].concat());
        a.push(id.clone());
        a.extend(strings(extra));
        a
    };
    let path = file.to_str().unwrap();
    let there = run(
        "--daemon",
        auth(&["--prf-first", "aW5wdXQtb25l", "--get-cred-blob", "--large-blob-write", path]),
    )
    .await;
    let here =
        run("--no-daemon", auth(&["--prf-first", "aW5wdXQtb25l", "--large-blob-read"])).await;
    assert_eq!(there["prf"]["results"]["first"], at_mc.as_str(), "{there}");
    assert_eq!(here["prf"]["results"]["first"], at_mc.as_str(), "{here}");
    assert_eq!(there["cred_blob"]["blob"], "YmxvYg", "{there}");
    assert_eq!(there["large_blob"]["written"], true, "{there}");
    let blob = cablebridged::ceremony::from_b64url(here["large_blob"]["blob"].as_str().unwrap());
    assert_eq!(blob.as_deref(), Some(&b"written through the daemon"[..]));
}
