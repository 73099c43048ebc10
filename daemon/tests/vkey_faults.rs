//! The `--fault` switches of the virtual key, each as documented, seen through the real UDP-HID
//! driver and the CTAPHID host state machine; after each, a resync (INIT on the same channel)
//! and a healthy ceremony prove the key recovers once the switch is off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vkey_support;

use std::time::Duration;

use cablebridge_protocol::ctaphid::{HostError, KeepAliveStatus, Waiting};
use cablebridged::virtual_key::{LabFault, VirtualKey, VirtualKeyConfig};
use tokio::time::{timeout, Instant};
use vkey_support::*;

const LIMIT: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_millis(600);
/// The host's cancel grace (HostConfig default 500 ms) plus scheduling slack.
const MARGIN: Duration = Duration::from_millis(900);

async fn with_fault(
    fault: LabFault,
) -> (Outcome, Duration, Client, cablebridged::virtual_key::VirtualKeyHandle) {
    let mut cfg = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.fault = fault;
    let key = VirtualKey::bind(cfg).await.unwrap();
    let mut client = Client::open(key.local_addr()).await;
    client.init().await.unwrap();
    let started = Instant::now();
    let out = client.cbor(&get_info_request(), DEADLINE).await;
    let elapsed = started.elapsed();
    assert!(elapsed < DEADLINE + MARGIN, "{fault}: took {elapsed:?}");
    (out, elapsed, client, key)
}

async fn recovers(mut client: Client, key: cablebridged::virtual_key::VirtualKeyHandle) {
    key.set_fault(LabFault::None);
    client.init().await.unwrap(); // resync aborts whatever the key was stuck on for us
    assert!(ceremony(&mut client, "after-fault.example").await >= 1);
    key.shutdown().await.unwrap();
}

#[tokio::test]
async fn never_answer_times_out_waiting_for_the_response() {
    timeout(LIMIT, async {
        let (out, _, client, key) = with_fault(LabFault::NeverAnswer).await;
        match out.result {
            Err(DriveError::Host(HostError::Timeout { waiting: Waiting::Response, .. })) => {}
            other => panic!("{other:?}"),
        }
        assert!(out.keepalives.is_empty());
        recovers(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn keepalive_forever_times_out_despite_keepalives() {
    timeout(LIMIT, async {
        let (out, _, client, key) = with_fault(LabFault::KeepaliveForever).await;
        assert!(
            matches!(out.result, Err(DriveError::Host(HostError::Timeout { .. }))),
            "{:?}",
            out.result
        );
        // ~6 in 600 ms, and more during the cancel grace; keepalives never extend the deadline.
        assert!(out.keepalives.len() >= 4, "{:?}", out.keepalives);
        assert!(out.keepalives.iter().all(|k| *k == KeepAliveStatus::Processing));
        recovers(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn wrong_cid_answers_are_ignored_as_foreign_and_time_out() {
    timeout(LIMIT, async {
        let (out, _, client, key) = with_fault(LabFault::WrongCid).await;
        assert!(
            matches!(out.result, Err(DriveError::Host(HostError::Timeout { .. }))),
            "{:?}",
            out.result
        );
        assert!(client.chan.stats().foreign_frames >= 1, "{:?}", client.chan.stats());
        recovers(client, key).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn busy_is_reported_as_busy_at_once() {
    timeout(LIMIT, async {
        let (out, elapsed, client, key) = with_fault(LabFault::Busy).await;
        assert!(matches!(out.result, Err(DriveError::Host(HostError::Busy))), "{:?}", out.result);
        assert!(elapsed < Duration::from_millis(300), "{elapsed:?}");
        recovers(client, key).await;
    })
    .await
    .unwrap();
}
