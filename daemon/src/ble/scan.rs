//! The desktop-role scanner: btleplug on BlueZ, every adapter, unfiltered.
//!
//! Event shapes (../shared/notes/testing-without-radios.md): a new device arrives as
//! `DeviceDiscovered` with **no** service-data event, so its first advert is read with
//! `properties()`; later adverts from the same address come as `ServiceDataAdvertisement`, which
//! carries the data itself — those are forwarded with no further D-Bus round trip (RSSI comes from
//! the last `RssiUpdate`). btleplug does not de-duplicate; identical repeats within
//! [`ScanOptions::dedupe_window`] are dropped here. Everything ends up in a drop-oldest
//! [`AdvertStream`](super::AdvertStream).
//!
//! What this is not: matching (the consumer trial-decrypts), connecting, GATT.

use super::queue::{AdvertStream, ScanStats, Shared};
use super::watch::{self, WatchedAdapter};
use super::{BleAddress, BleError, FidoUuid, ReceivedAdvert};
use btleplug::api::{
    Central, CentralEvent, CentralState, Manager as _, Peripheral as _, ScanFilter,
};
use btleplug::platform::{Adapter, Manager, PeripheralId};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Per-task maps are cleared past this many entries: a bound under address-rotation floods.
const MAP_BOUND: usize = 8192;

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Only these adapters (`hci0`...); `None` = every adapter BlueZ has.
    pub adapters: Option<Vec<String>>,
    /// Queue capacity before the oldest advert is dropped.
    pub queue_capacity: usize,
    /// An identical (address, uuid, data) repeat inside this window is dropped. A window rather
    /// than "forever" so a copy lost to queue overflow is offered again on the next repeat.
    pub dedupe_window: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { adapters: None, queue_capacity: 1024, dedupe_window: Duration::from_secs(1) }
    }
}

/// One adapter the scan runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterStatus {
    /// `hci0`.
    pub name: String,
    /// Whether it was powered before we started (start_scan powers it on otherwise).
    pub was_powered: bool,
}

/// A running scan. Dropping it stops the tasks (and, best effort, discovery).
#[derive(Debug)]
pub struct BleScan {
    /// The adverts. Take it with [`BleScan::take_stream`] or read through [`BleScan::recv`].
    stream: Option<AdvertStream>,
    adapters: Vec<AdapterStatus>,
    /// Adapters that could not be used while others could (e.g. one rfkill-blocked dongle).
    skipped: Vec<BleError>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    scanning: Vec<Adapter>,
}

impl BleScan {
    /// Adapters scanning.
    pub fn adapters(&self) -> &[AdapterStatus] {
        &self.adapters
    }
    /// Adapters that failed to start while at least one other did.
    pub fn skipped(&self) -> &[BleError] {
        &self.skipped
    }
    /// Take the consumer end (the scan keeps running while `self` lives).
    pub fn take_stream(&mut self) -> Option<AdvertStream> {
        self.stream.take()
    }
    /// Next advert or the terminal error (see [`AdvertStream::recv`]); `None` after the end or
    /// when the stream was taken.
    pub async fn recv(&mut self) -> Option<Result<ReceivedAdvert, BleError>> {
        match self.stream.as_mut() {
            Some(s) => s.recv().await,
            None => None,
        }
    }
    /// Counters so far.
    pub fn stats(&self) -> ScanStats {
        self.shared.stats()
    }
}

impl Drop for BleScan {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // StopDiscovery is async; best effort on the current runtime, if any.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            for adapter in self.scanning.drain(..) {
                rt.spawn(async move { adapter.stop_scan().await.ok() });
            }
        }
    }
}

/// Start scanning on every (selected) adapter. Errors are environment diagnoses: no bus, BlueZ
/// not running, access denied, no adapter, rfkill... (each its own [`BleError`]). With several
/// adapters the scan starts if at least one does; the others are listed in [`BleScan::skipped`].
pub async fn scan(opts: ScanOptions) -> Result<BleScan, BleError> {
    let manager = Manager::new()
        .await
        .map_err(|e| BleError::from_btleplug("connect to the system bus", e, None))?;
    let all =
        manager.adapters().await.map_err(|e| BleError::from_btleplug("list adapters", e, None))?;
    if all.is_empty() {
        return Err(BleError::NoAdapter { wanted: None });
    }
    let mut named = Vec::with_capacity(all.len());
    for adapter in all {
        let info = adapter
            .adapter_info()
            .await
            .map_err(|e| BleError::from_btleplug("read adapter", e, None))?;
        // btleplug formats it as "hci0 (usb:v1D6Bp0246d0537)".
        let name = info.split(' ').next().unwrap_or(&info).to_owned();
        if opts.adapters.as_ref().is_none_or(|w| w.contains(&name)) {
            named.push((name, adapter));
        }
    }
    if named.is_empty() {
        return Err(BleError::NoAdapter { wanted: opts.adapters.as_ref().map(|w| w.join(",")) });
    }

    let shared = Shared::new(opts.queue_capacity);
    let live = Arc::new(AtomicUsize::new(0));
    let (mut adapters, mut skipped, mut tasks, mut scanning, mut watched) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (name, adapter) in named {
        let was_powered = matches!(adapter.adapter_state().await, Ok(CentralState::PoweredOn));
        if !was_powered {
            tracing::info!(adapter = %name, "adapter is powered off; start_scan powers it on");
        }
        // Subscribe before StartDiscovery so the first adverts are not missed.
        let events = match adapter.events().await {
            Ok(ev) => ev,
            Err(e) => {
                skipped.push(BleError::from_btleplug(
                    "subscribe to adapter events",
                    e,
                    Some(&name),
                ));
                continue;
            }
        };
        // Unfiltered on purpose: a UUID filter makes BlueZ drop iOS adverts (service data only).
        if let Err(e) = adapter.start_scan(ScanFilter::default()).await {
            skipped.push(BleError::from_btleplug("start scan", e, Some(&name)));
            continue;
        }
        let name: Arc<str> = name.into();
        live.fetch_add(1, Ordering::Relaxed);
        let task = AdapterTask {
            adapter: adapter.clone(),
            name: name.clone(),
            shared: shared.clone(),
            live: live.clone(),
            dedupe_window: opts.dedupe_window,
        };
        let handle = tokio::spawn(task.run(events));
        watched.push(WatchedAdapter { name: name.to_string(), abort: handle.abort_handle() });
        tasks.push(handle);
        scanning.push(adapter);
        adapters.push(AdapterStatus { name: name.to_string(), was_powered });
    }
    if adapters.is_empty() {
        // The most specific diagnosis: the first adapter's failure.
        return Err(skipped.swap_remove(0));
    }
    let watcher = watch::spawn(watched, shared.clone(), live).await?;
    tasks.push(watcher);
    Ok(BleScan {
        stream: Some(AdvertStream::new(shared.clone())),
        adapters,
        skipped,
        shared,
        tasks,
        scanning,
    })
}

/// Mark one adapter as failed; the scan ends when no adapter is left.
pub(crate) fn adapter_failed(shared: &Shared, live: &AtomicUsize, err: BleError) {
    tracing::warn!(error = %err, "adapter stopped scanning");
    if live.fetch_sub(1, Ordering::AcqRel) <= 1 {
        shared.fail(err);
    }
}

struct AdapterTask {
    adapter: Adapter,
    name: Arc<str>,
    shared: Arc<Shared>,
    live: Arc<AtomicUsize>,
    dedupe_window: Duration,
}

type Events = std::pin::Pin<Box<dyn futures_util::Stream<Item = CentralEvent> + Send>>;

impl AdapterTask {
    async fn run(self, mut events: Events) {
        let mut rssi: HashMap<PeripheralId, i16> = HashMap::new();
        let mut addresses: HashMap<PeripheralId, BleAddress> = HashMap::new();
        let mut last: HashMap<(BleAddress, FidoUuid), (Vec<u8>, Instant)> = HashMap::new();
        while let Some(event) = events.next().await {
            match event {
                CentralEvent::DeviceDiscovered(id) => {
                    // The first advert of a new device only exists in its properties.
                    let Ok(p) = self.adapter.peripheral(&id).await else {
                        continue; // gone again before we asked
                    };
                    let Ok(Some(props)) = p.properties().await else {
                        continue;
                    };
                    let address = BleAddress(props.address.into_inner());
                    bounded_insert(&mut addresses, id.clone(), address);
                    if let Some(r) = props.rssi {
                        bounded_insert(&mut rssi, id, r);
                    }
                    self.offer(address, props.rssi, props.service_data.iter(), &mut last);
                }
                CentralEvent::ServiceDataAdvertisement { id, service_data } => {
                    let address = match addresses.get(&id) {
                        Some(a) => *a,
                        None => match parse_device_address(&id.to_string()) {
                            Some(a) => a,
                            None => continue,
                        },
                    };
                    let r = rssi.get(&id).copied();
                    self.offer(address, r, service_data.iter(), &mut last);
                }
                CentralEvent::RssiUpdate { id, rssi: r } => bounded_insert(&mut rssi, id, r),
                // Adverts of other devices: only counted (the doctor's "is the radio deaf?").
                CentralEvent::ManufacturerDataAdvertisement { .. }
                | CentralEvent::ServicesAdvertisement { .. } => {
                    self.shared.counters.foreign_events.fetch_add(1, Ordering::Relaxed);
                }
                CentralEvent::StateUpdate(CentralState::PoweredOff) => {
                    let err = BleError::AdapterPoweredOff { adapter: self.name.to_string() };
                    adapter_failed(&self.shared, &self.live, err);
                    return;
                }
                _ => {}
            }
        }
        // The dbus-tokio connection ended: the bus itself went away.
        adapter_failed(&self.shared, &self.live, BleError::BluezVanished);
    }

    fn offer<'a>(
        &self,
        address: BleAddress,
        rssi: Option<i16>,
        service_data: impl Iterator<Item = (&'a uuid::Uuid, &'a Vec<u8>)>,
        last: &mut HashMap<(BleAddress, FidoUuid), (Vec<u8>, Instant)>,
    ) {
        let counters = &self.shared.counters;
        let now = Instant::now();
        let mut any = false;
        for (uuid, data) in service_data {
            let Some(uuid) = FidoUuid::from_u128(uuid.as_u128()) else {
                continue;
            };
            any = true;
            counters.fido_adverts.fetch_add(1, Ordering::Relaxed);
            let key = (address, uuid);
            if let Some((prev, at)) = last.get(&key) {
                if prev == data && now.duration_since(*at) < self.dedupe_window {
                    counters.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            bounded_insert(last, key, (data.clone(), now));
            self.shared.push(ReceivedAdvert {
                service_data: data.clone(),
                uuid,
                rssi,
                address,
                adapter: self.name.clone(),
                received_at: now,
            });
        }
        if !any {
            counters.foreign_events.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= MAP_BOUND && !map.contains_key(&k) {
        map.clear();
    }
    map.insert(k, v);
}

/// `hci0/dev_AA_BB_CC_DD_EE_FF` (BlueZ object path form) → address.
fn parse_device_address(id: &str) -> Option<BleAddress> {
    let tail = &id[id.rfind("dev_")? + 4..];
    let mut out = [0u8; 6];
    let mut parts = tail.split('_');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?.get(..2)?, 16).ok()?;
    }
    Some(BleAddress(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_parse_to_addresses() {
        assert_eq!(
            parse_device_address("hci0/dev_AA_BB_CC_00_11_FF"),
            Some(BleAddress([0xaa, 0xbb, 0xcc, 0, 0x11, 0xff]))
        );
        assert_eq!(
            parse_device_address("/org/bluez/hci1/dev_01_02_03_04_05_06"),
            Some(BleAddress([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(parse_device_address("hci0"), None);
        assert_eq!(parse_device_address("hci0/dev_AA_BB"), None);
        assert_eq!(parse_device_address("hci0/dev_ZZ_BB_CC_00_11_FF"), None);
    }

    #[test]
    fn maps_stay_bounded() {
        let mut m = HashMap::new();
        for i in 0..(MAP_BOUND as u32 * 2 + 5) {
            bounded_insert(&mut m, i, ());
        }
        assert!(m.len() <= MAP_BOUND);
    }
}
