//! `--state FILE`: the virtual key's credentials, PIN and counters survive a restart; a corrupt
//! file is refused at start-up with its path and left untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vkey_support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cablebridge_protocol::ctap2::{framing, GetInfo};
use cablebridged::virtual_key::{InitialPin, VirtualKey, VirtualKeyConfig, VirtualKeyError};
use tokio::time::timeout;
use vkey_support::*;

const LIMIT: Duration = Duration::from_secs(20);

fn config(path: &std::path::Path) -> VirtualKeyConfig {
    let mut cfg = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.state_file = Some(path.to_owned());
    cfg
}

#[tokio::test]
async fn resident_credential_and_sign_counter_survive_a_restart() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vkey").join("state.cbor");

        let key = VirtualKey::bind(config(&path)).await.unwrap();
        let mut client = Client::open(key.local_addr()).await;
        client.init().await.unwrap();
        let resp =
            client.cbor_ok(&make_credential_request("persist.example", b"user-p", true, 1)).await;
        let (_, ad) = check_make_credential(&resp, 1);
        let resp = client.cbor_ok(&get_assertion_request("persist.example", None, 2)).await;
        let first = check_assertion(&resp, &ad, 2).sign_count;
        let stats = key.shutdown().await.unwrap();
        assert!(stats.state_writes >= 2, "{stats:?}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // A new process on the same file: the discoverable credential is still there (no
        // allow list) and signs with the same key; the counter continues upwards.
        let key = VirtualKey::bind(config(&path)).await.unwrap();
        let mut client = Client::open(key.local_addr()).await;
        client.init().await.unwrap();
        let resp = client.cbor_ok(&get_assertion_request("persist.example", None, 3)).await;
        let second = check_assertion(&resp, &ad, 3).sign_count;
        assert!(second > first, "sign count {first} then {second}");
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn initial_pin_is_set_once_and_persisted() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.cbor");
        let mut cfg = config(&path);
        cfg.initial_pin = Some(InitialPin::new("123456").unwrap());
        VirtualKey::bind(cfg).await.unwrap().shutdown().await.unwrap();
        // Restart without a PIN: the stored one is still in force.
        let key = VirtualKey::bind(config(&path)).await.unwrap();
        let mut client = Client::open(key.local_addr()).await;
        client.init().await.unwrap();
        let resp = client.cbor_ok(&get_info_request()).await;
        let info = GetInfo::from_cbor(&framing::decode_ok_body(&resp).unwrap()).unwrap();
        assert_eq!(info.option("clientPin"), Some(true));
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn corrupt_state_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.cbor");
    std::fs::write(&path, b"\xa1\x01\x02 definitely not a key").unwrap();
    let err = VirtualKey::bind(config(&path)).await.unwrap_err();
    match &err {
        VirtualKeyError::CorruptState { path: p, .. } => assert_eq!(p, &path),
        other => panic!("expected CorruptState, got {other:?}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"\xa1\x01\x02 definitely not a key");
}
