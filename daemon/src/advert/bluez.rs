//! The `bluez` advert source: the BLE scanner ([`crate::ble::scan`]) as one more producer of
//! [`AdvertItem`]s.
//!
//! Every caBLE advert the scanner hears (0xFFF9 / 0xFDE2 service data, all adapters, unfiltered)
//! is forwarded as [`AdvertItem::Advert`]; the desktop's matcher trial-decrypts it before
//! anything else. A failure of BlueZ itself (org.bluez vanished, adapter removed or powered off,
//! rfkill) is forwarded once as the terminal [`AdvertItem::Failed`], so the ceremony ends with an
//! environment error naming the remedy instead of waiting for its advert timeout.
//!
//! Flood behaviour: the scanner's own queue drops the *oldest* advert when the matcher falls
//! behind (see `ble::queue`), and this forwarder only blocks on the bounded channel, so a
//! phone's fresh advert is never the one lost. What this is not: matching, or the scanner.

use super::source::AdvertItem;
use crate::ble::{self, BleError, BleScan, ScanOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Starts scanning; opening failures (no bus, BlueZ not running, access denied, no adapter,
/// rfkill on every adapter) are returned here, before the QR is shown.
pub(super) async fn open(tx: mpsc::Sender<AdvertItem>) -> Result<JoinHandle<()>, BleError> {
    let scan = ble::scan(ScanOptions::default()).await?;
    let adapters: Vec<&str> = scan.adapters().iter().map(|a| a.name.as_str()).collect();
    tracing::info!(adapters = ?adapters, "BLE scan started");
    // An adapter that could not start while another did is worth telling the user about.
    for skipped in scan.skipped() {
        let warning = AdvertItem::Warning(format!("BLE adapter skipped: {skipped}"));
        // Fresh channel with room for QUEUE items: cannot be full here.
        let _ = tx.try_send(warning);
    }
    Ok(tokio::spawn(forward(scan, tx)))
}

/// Moves adverts from the scan to the channel until the scan ends or nobody listens. Dropping
/// the task (the stream was dropped) drops the scan, which stops discovery.
async fn forward(mut scan: BleScan, tx: mpsc::Sender<AdvertItem>) {
    loop {
        let item = match scan.recv().await {
            Some(Ok(advert)) => {
                AdvertItem::Advert { service_data: advert.service_data, rssi: advert.rssi }
            }
            Some(Err(e)) => {
                let stats = scan.stats();
                tracing::warn!(error = %e, ?stats, "BLE scan ended");
                let _ = tx.send(AdvertItem::Failed(e)).await;
                return;
            }
            None => return,
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}
