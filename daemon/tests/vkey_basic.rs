//! The virtual USB key over a real UDP socket, driven through the real UDP-HID driver and the
//! CTAPHID host state machine: built-in commands, CTAP2, presence keepalives, CANCEL, PIN.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vkey_support;

use std::time::Duration;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{framing, GetInfo, StatusCode};
use cablebridge_protocol::ctaphid::{Capabilities, Command, ErrorCode, HostError, KeepAliveStatus};
use cablebridged::virtual_key::{InitialPin, VirtualKey, VirtualKeyConfig};
use tokio::time::{timeout, Instant};
use vkey_support::*;

const LIMIT: Duration = Duration::from_secs(20);

fn config() -> VirtualKeyConfig {
    VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap())
}

#[tokio::test]
async fn init_ping_wink_msg_and_get_info() {
    timeout(LIMIT, async {
        let mut cfg = config();
        cfg.initial_pin = Some(InitialPin::new("1234").unwrap());
        let key = VirtualKey::bind(cfg).await.unwrap();
        let mut client = Client::open(key.local_addr()).await;
        let info = client.init().await.unwrap();
        assert!(info.capabilities.contains(Capabilities::CBOR | Capabilities::NMSG));
        assert_eq!(info.protocol_version, 2);

        // PING echoes a multi-packet payload byte for byte.
        let data: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let out = client.transact(Command::Ping, &data, Duration::from_secs(2), None).await;
        assert_eq!(out.result.unwrap(), (Command::Ping, data));

        let out = client.transact(Command::Wink, &[], Duration::from_secs(2), None).await;
        assert_eq!(out.result.unwrap(), (Command::Wink, vec![]));

        // U2F is not spoken: ERR_INVALID_CMD, as on CTAP2-only keys.
        let out = client.transact(Command::Msg, &[0; 10], Duration::from_secs(2), None).await;
        match out.result {
            Err(DriveError::Host(HostError::Device { code, .. })) => {
                assert_eq!(code, ErrorCode::InvalidCmd)
            }
            other => panic!("MSG: {other:?}"),
        }

        let resp = client.cbor_ok(&get_info_request()).await;
        let info = GetInfo::from_cbor(&framing::decode_ok_body(&resp).unwrap()).unwrap();
        assert_eq!(info.aaguid, cablebridge_protocol::authenticator::CABLEBRIDGE_AAGUID);
        assert!(info.supports_version("FIDO_2_1"));
        assert_eq!(info.option("clientPin"), Some(true), "initial PIN was set");
        assert_eq!(info.transports, vec!["usb".to_owned()]);

        // With a PIN set, makeCredential without pinUvAuthParam is refused (CTAP 2.1 §6.1.2).
        let resp = client.cbor_ok(&make_credential_request("example.com", b"u", false, 1)).await;
        assert_eq!(framing::decode_response(&resp).unwrap().0, StatusCode::PuatRequired);
        let stats = key.shutdown().await.unwrap();
        assert_eq!(stats.winks, 1);
        assert_eq!(stats.cbor_requests, 2);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn presence_delay_sends_upneeded_keepalives_then_succeeds() {
    timeout(LIMIT, async {
        let mut cfg = config();
        cfg.presence_delay = Duration::from_millis(450);
        let key = VirtualKey::bind(cfg).await.unwrap();
        let mut client = Client::open(key.local_addr()).await;
        client.init().await.unwrap();
        let started = Instant::now();
        let out = client
            .cbor(&make_credential_request("example.com", b"u", false, 7), Duration::from_secs(5))
            .await;
        let elapsed = started.elapsed();
        let (_, resp) = out.result.unwrap();
        check_make_credential(&resp, 7);
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
        // One at once, then every 100 ms: 0, 100, 200, 300, 400 → 5 (4 allows for scheduling).
        assert!(out.keepalives.len() >= 4, "{:?}", out.keepalives);
        assert!(out.keepalives.len() <= 6, "{:?}", out.keepalives);
        assert!(out.keepalives.iter().all(|k| *k == KeepAliveStatus::UpNeeded));
        println!(
            "presence 450 ms: {} keepalives, answered after {elapsed:?}",
            out.keepalives.len()
        );
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn cancel_during_presence_answers_keepalive_cancel_and_key_stays_usable() {
    timeout(LIMIT, async {
        let mut cfg = config();
        cfg.presence_delay = Duration::from_secs(30);
        let key = VirtualKey::bind(cfg).await.unwrap();
        let mut client = Client::open(key.local_addr()).await;
        client.init().await.unwrap();
        let started = Instant::now();
        let out = client
            .transact(
                Command::Cbor,
                &make_credential_request("example.com", b"u", false, 1),
                Duration::from_secs(10),
                Some(Duration::from_millis(250)),
            )
            .await;
        // The host turns the device's CTAP2_ERR_KEEPALIVE_CANCEL answer into `Cancelled`.
        match out.result {
            Err(DriveError::Host(HostError::Cancelled { command: Command::Cbor })) => {}
            other => panic!("expected Cancelled, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(!out.keepalives.is_empty());

        // The device really answered (not the host's grace timer): the next request is served
        // at once on the same channel, and getInfo works.
        let resp = client.cbor_ok(&get_info_request()).await;
        assert_eq!(framing::decode_response(&resp).unwrap().0, StatusCode::Ok);
        let stats = key.shutdown().await.unwrap();
        assert_eq!(stats.cancels, 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn two_clients_racing_one_key_get_busy_not_corruption() {
    timeout(LIMIT, async {
        let mut cfg = config();
        cfg.presence_delay = Duration::from_millis(400);
        let key = VirtualKey::bind(cfg).await.unwrap();
        let mut a = Client::open(key.local_addr()).await;
        let mut b = Client::open(key.local_addr()).await;
        a.init().await.unwrap();
        b.init().await.unwrap();
        assert_ne!(a.chan.cid(), b.chan.cid());
        let req_a = make_credential_request("a.example", b"a", false, 1);
        let (ra, rb) = tokio::join!(a.cbor(&req_a, Duration::from_secs(5)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.cbor(&get_info_request(), Duration::from_secs(5)).await
        });
        check_make_credential(&ra.result.unwrap().1, 1);
        assert!(matches!(rb.result, Err(DriveError::Host(HostError::Busy))), "{:?}", rb.result);
        // Once A is done, B is served.
        let resp = b.cbor_ok(&get_info_request()).await;
        assert!(framing::decode_ok_body(&resp).is_ok());
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn reply_to_sends_everything_to_the_fixed_port() {
    timeout(LIMIT, async {
        // A client bound to a fixed local port; the key is told to always answer there.
        let client_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client_addr = client_sock.local_addr().unwrap();
        let mut cfg = config();
        cfg.reply_to = Some(client_addr);
        let key = VirtualKey::bind(cfg).await.unwrap();
        let hid = cablebridged::hid::UdpHid::from_bound(
            client_sock,
            key.local_addr(),
            key.device_address(),
        )
        .await
        .unwrap();
        let mut client = Client::from_hid(hid);
        client.init().await.unwrap();
        let resp = client
            .cbor_ok(&framing::encode_request(
                cablebridge_protocol::ctap2::Command::GetInfo,
                None::<&Value>,
            ))
            .await;
        assert!(framing::decode_ok_body(&resp).is_ok());
        key.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}
