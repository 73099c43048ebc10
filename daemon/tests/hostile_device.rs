//! Hostile-device suite: a misbehaving USB key (the virtual key with a fault switch) driven
//! through the real UDP-HID driver (`cablebridged::hid::UdpHid`) and the CTAPHID host state
//! machine. Every case must end in a typed error within its deadline (plus the host's cancel
//! grace), must not panic, and must leave the client able to run the next ceremony — on the same
//! key after a resync once the fault is off, and against a healthy key.
//!
//! Foreign-CID frames are the exception that proves the rule: a hidraw node is shared, so
//! frames for other channels are ignored and counted, and the ceremony succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vkey_support;

use std::time::Duration;

use cablebridge_protocol::ctaphid::{FrameError, HostError, Waiting};
use cablebridged::hid::HidError;
use cablebridged::virtual_key::{LabFault, VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use tokio::time::{timeout, Instant};
use vkey_support::*;

const LIMIT: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_millis(700);
/// HostConfig's 500 ms cancel grace plus scheduling slack on a loaded 2-core CI box.
const MARGIN: Duration = Duration::from_millis(1000);

async fn key(fault: LabFault) -> VirtualKeyHandle {
    let mut cfg = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.fault = fault;
    VirtualKey::bind(cfg).await.unwrap()
}

/// Runs one ceremony-sized request against a key with `fault`; returns what the host saw.
async fn against(fault: LabFault) -> (Outcome, Client, VirtualKeyHandle) {
    let key = key(fault).await;
    let mut client = Client::open(key.local_addr()).await;
    client.init().await.unwrap();
    let started = Instant::now();
    // makeCredential: a response long enough (3+ reports) for the wire faults to bite.
    let out =
        client.cbor(&make_credential_request("hostile.example", b"u", false, 1), DEADLINE).await;
    let elapsed = started.elapsed();
    assert!(elapsed < DEADLINE + MARGIN, "{fault}: took {elapsed:?} (deadline {DEADLINE:?})");
    println!("{fault}: ended after {elapsed:?}: {:?}", out.result.as_ref().err());
    (out, client, key)
}

/// The next ceremony works: on the same key after resync (fault off), and on a healthy key.
async fn next_ceremony_works(mut client: Client, key: VirtualKeyHandle) {
    if !key.is_finished() {
        key.set_fault(LabFault::None);
        client.init().await.unwrap();
        assert!(ceremony(&mut client, "next.example").await >= 1);
    }
    key.shutdown().await.unwrap();
    let healthy = self::key(LabFault::None).await;
    let mut fresh = Client::open(healthy.local_addr()).await;
    fresh.init().await.unwrap();
    assert!(ceremony(&mut fresh, "healthy.example").await >= 1);
    healthy.shutdown().await.unwrap();
}

fn host_error(out: &Outcome) -> &HostError {
    match &out.result {
        Err(DriveError::Host(e)) => e,
        other => panic!("expected a typed host error, got {other:?}"),
    }
}

#[tokio::test]
async fn device_never_answers() {
    timeout(LIMIT, async {
        let (out, client, key) = against(LabFault::NeverAnswer).await;
        assert!(matches!(host_error(&out), HostError::Timeout { waiting: Waiting::Response, .. }));
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn keepalive_forever() {
    timeout(LIMIT, async {
        let (out, client, key) = against(LabFault::KeepaliveForever).await;
        assert!(matches!(host_error(&out), HostError::Timeout { .. }));
        assert!(out.keepalives.len() >= 5, "{}", out.keepalives.len());
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn foreign_cid_frames_interleaved_are_ignored() {
    timeout(LIMIT, async {
        let (out, client, key) = against(LabFault::ForeignFrames).await;
        let (_, resp) = out.result.unwrap();
        check_make_credential(&resp, 1);
        assert!(client.chan.stats().foreign_frames >= 3, "{:?}", client.chan.stats());
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_sequence_number() {
    timeout(LIMIT, async {
        let (out, client, key) = against(LabFault::BadSequence).await;
        match host_error(&out) {
            HostError::Frame {
                source: FrameError::BadSequence { expected: 0, got: 5, .. },
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn truncated_response() {
    timeout(LIMIT, async {
        let (out, client, key) = against(LabFault::TruncatedResponse).await;
        match host_error(&out) {
            HostError::Timeout {
                waiting: Waiting::Continuation { received, expected }, ..
            } => {
                assert!(received < expected, "{received} of {expected}");
            }
            other => panic!("{other:?}"),
        }
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn oversized_bcnt() {
    timeout(LIMIT, async {
        let (out, client, key) = against(LabFault::OversizedBcnt).await;
        match host_error(&out) {
            HostError::Frame { source: FrameError::BcntTooLarge { bcnt: 0xffff, .. }, .. } => {}
            other => panic!("{other:?}"),
        }
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn device_busy() {
    timeout(LIMIT, async {
        let (out, client, key) = against(LabFault::Busy).await;
        assert!(matches!(host_error(&out), HostError::Busy));
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn device_vanishes_mid_transaction() {
    timeout(LIMIT, async {
        let (out, mut client, mut key) = against(LabFault::VanishMidTransaction).await;
        // Either the host's deadline fired (the socket just went quiet) or the transport saw
        // the ICMP "port unreachable" first; both are typed, neither hangs.
        match &out.result {
            Err(DriveError::Host(HostError::Timeout { .. }))
            | Err(DriveError::Hid(HidError::Unreachable { .. })) => {}
            other => panic!("{other:?}"),
        }
        assert!(!out.keepalives.is_empty(), "the key sent one keepalive before vanishing");
        key.wait().await.unwrap();
        // Talking to the vanished key again is a prompt typed error too.
        let started = Instant::now();
        match client.init().await {
            Err(DriveError::Hid(HidError::Unreachable { .. }))
            | Err(DriveError::Host(HostError::Timeout { .. })) => {}
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2) + MARGIN);
        next_ceremony_works(client, key).await;
    })
    .await
    .unwrap();
}
