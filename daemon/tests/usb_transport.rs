//! The CTAPHID driver loop against the virtual key over loopback UDP: keepalive + deadline →
//! CANCEL → typed timeout (and the next command works), external cancel, two clients racing one
//! key (busy reported, nothing corrupted), touch-to-select between two keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod usb_common;

use std::time::Duration;

use cablebridged::ctap::{
    open_client, select_device, BusyPolicy, CtapError, DeviceProgress, DriverConfig, OpenOptions,
};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use usb_common::*;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn deadline_sends_cancel_and_the_next_command_works() {
    timeout(LIMIT, async {
        let key = key(60_000, None).await;
        let mut client = connect(&key).await;
        let cancel = CancellationToken::new();
        let mut log = Vec::new();
        let started = Instant::now();
        let err = client.selection(&mut call!(cancel, log, 600)).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, CtapError::Timeout { touch_needed: true, .. }), "{err}");
        assert!(err.to_string().contains("waiting for a touch"), "{err}");
        assert!(log.contains(&DeviceProgress::TouchNeeded));
        // Deadline 600 ms + at most the 500 ms cancel grace.
        assert!(took < Duration::from_millis(1300), "{took:?}");
        // The key answered the CANCEL and is idle again: the next transaction succeeds.
        client.refresh_info(&mut call!(cancel, log, 2000)).await.unwrap();
        let stats = key.shutdown().await.unwrap();
        assert!(stats.cancels >= 1, "{stats:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn external_cancel_is_typed_and_prompt() {
    timeout(LIMIT, async {
        let key = key(60_000, None).await;
        let mut client = connect(&key).await;
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            trigger.cancel();
        });
        let mut log = Vec::new();
        let started = Instant::now();
        let err = client.selection(&mut call!(cancel, log, 10_000)).await.unwrap_err();
        assert!(matches!(err, CtapError::Cancelled { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let fresh = CancellationToken::new();
        client.refresh_info(&mut call!(fresh, log, 2000)).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn two_clients_racing_one_key_get_busy_not_corruption() {
    timeout(LIMIT, async {
        let key = key(800, None).await;
        let options = OpenOptions {
            driver: DriverConfig {
                busy: BusyPolicy { retries: 2, step: Duration::from_millis(50) },
                ..DriverConfig::default()
            },
            ..OpenOptions::default()
        };
        let cancel = CancellationToken::new();
        let mut log = Vec::new();
        let mut a =
            open_client(&address(&key), &options, &mut call!(cancel, log, 3000)).await.unwrap();
        let mut b =
            open_client(&address(&key), &options, &mut call!(cancel, log, 3000)).await.unwrap();
        // A waits for a touch (800 ms); meanwhile B's commands meet ERR_CHANNEL_BUSY.
        let a_task = tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let mut log = Vec::new();
            let r = a.selection(&mut call!(cancel, log, 5000)).await;
            (a, r)
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut b_log = Vec::new();
        let err = b.refresh_info(&mut call!(cancel, b_log, 3000)).await.unwrap_err();
        assert!(matches!(err, CtapError::Busy { attempts: 3, .. }), "{err}");
        assert!(err.to_string().contains("another client is using it"), "{err}");
        assert!(b_log.contains(&DeviceProgress::BusyRetry { attempt: 2 }), "{b_log:?}");
        let (mut a, r) = a_task.await.unwrap();
        r.unwrap();
        // Both channels still work afterwards.
        b.refresh_info(&mut call!(cancel, log, 3000)).await.unwrap();
        a.refresh_info(&mut call!(cancel, log, 3000)).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn touch_to_select_uses_the_touched_key_and_cancels_the_other() {
    timeout(LIMIT, async {
        let touched = key(300, None).await;
        let ignored = key(3_600_000, None).await;
        let cancel = CancellationToken::new();
        let mut log = Vec::new();
        let addresses = [address(&ignored), address(&touched)];
        let started = Instant::now();
        let winner =
            select_device(&addresses, &OpenOptions::default(), &mut call!(cancel, log, 5000), None)
                .await
                .unwrap();
        assert_eq!(winner.path(), touched.device_address());
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(log.contains(&DeviceProgress::TouchNeeded));
        // The loser got CTAPHID_CANCEL (it stops blinking) before select_device returned.
        let stats = ignored.shutdown().await.unwrap();
        assert!(stats.cancels >= 1, "{stats:?}");
        drop(winner);
        touched.shutdown().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn no_keys_is_an_environment_error_with_a_hint() {
    let cancel = CancellationToken::new();
    let mut log = Vec::new();
    let err = select_device(
        &[],
        &OpenOptions::default(),
        &mut call!(cancel, log, 1000),
        Some("; extra".into()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().starts_with("no FIDO security key found"), "{err}");
    assert!(err.to_string().contains("extra"));
}
