//! The desktop-role scanner: BlueZ's own signals read directly (zbus), discovery through
//! btleplug, every adapter, unfiltered.
//!
//! Why not btleplug's event stream (ARCHITECTURE.md, "BLE scan"): btleplug 0.13 (bluez-async over
//! libdbus) answers every device signal with a `Properties.GetAll` round trip to bluetoothd before
//! it emits the event, which capped intake near 4-5k adverts/s on the mock and left a matching
//! advert queued behind hundreds of round trips under a flood. So:
//!
//! * **Discovery** stays with btleplug: `start_scan` powers the adapter on, sets the discovery
//!   filter (no UUID list: a UUID filter loses iOS, which sends service data only;
//!   `DuplicateData: true`, `Transport: auto`) and calls `StartDiscovery`; the same errors, the
//!   same [`BleError`] mapping as before. `stop_scan` on drop.
//! * **Adverts** come from one zbus connection subscribed (before `StartDiscovery`) to every
//!   signal of `org.bluez`: `InterfacesAdded` of a `Device1` (a new — often just rotated —
//!   address with its first advert) and `PropertiesChanged` of a `Device1` (later adverts:
//!   `ServiceData`, `RSSI`). The bodies are deserialised in place ([`super::signals`]): only
//!   0xFFF9 / 0xFDE2 service data and RSSI are read, borrowed from the message; a property of the
//!   wrong type is skipped and counted ([`ScanStats::malformed`](super::ScanStats)). Our only
//!   per-advert allocation is the [`ReceivedAdvert`]'s own copy of the data (plus the
//!   de-duplication entry of a sender's first advert; zbus allocates each message it reads).
//! * **Adapter state**: `PropertiesChanged(Adapter1, Powered=false)` ends that adapter's scan
//!   ([`BleError::AdapterPoweredOff`]); removal and BlueZ leaving the bus are the watcher's
//!   ([`super::watch`]). The scan ends when no adapter is left.
//!
//! BlueZ does not de-duplicate (`DuplicateData: true`); identical repeats within
//! [`ScanOptions::dedupe_window`] are dropped here. Everything ends up in a drop-oldest
//! [`AdvertStream`](super::AdvertStream). Devices BlueZ already knew before the scan started are
//! not replayed: their next advert arrives as `PropertiesChanged`.
//!
//! What this is not: matching (the consumer trial-decrypts), connecting, GATT.

use super::queue::{AdvertStream, ScanStats, Shared};
use super::signals::{InterfacesAdded, PropertiesChanged, Props, ADAPTER_IFACE, DEVICE_IFACE};
use super::watch;
use super::{BleAddress, BleError, FidoUuid, ReceivedAdvert};
use btleplug::api::{Central, CentralState, Manager as _, ScanFilter};
use btleplug::platform::{Adapter, Manager};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use zbus::message::{Message, Type as MessageType};
use zbus::zvariant::ObjectPath;

/// Per-scan maps are cleared past this many entries: a bound under address-rotation floods.
const MAP_BOUND: usize = 8192;
/// zbus's queue for our subscription. When full, zbus stops reading the socket (back-pressure
/// into the bus daemon) until the reader catches up; the reader does no IO, so it rarely is.
const SIGNAL_QUEUE: usize = 1024;
use super::BLUEZ;

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

    // Subscribe before StartDiscovery so the first adverts are not missed.
    let signals = subscribe().await?;
    let shared = Shared::new(opts.queue_capacity);
    let (mut adapters, mut skipped, mut scanning, mut slots) = (vec![], vec![], vec![], vec![]);
    for (name, adapter) in named {
        let was_powered = matches!(adapter.adapter_state().await, Ok(CentralState::PoweredOn));
        if !was_powered {
            tracing::info!(adapter = %name, "adapter is powered off; start_scan powers it on");
        }
        // Unfiltered on purpose: a UUID filter makes BlueZ drop iOS adverts (service data only).
        if let Err(e) = adapter.start_scan(ScanFilter::default()).await {
            skipped.push(BleError::from_btleplug("start scan", e, Some(&name)));
            continue;
        }
        slots.push(AdapterSlot { name: name.as_str().into(), alive: AtomicBool::new(true) });
        scanning.push(adapter);
        adapters.push(AdapterStatus { name, was_powered });
    }
    if adapters.is_empty() {
        // The most specific diagnosis: the first adapter's failure.
        return Err(skipped.swap_remove(0));
    }
    let slots: Arc<[AdapterSlot]> = slots.into();
    let live = Arc::new(AtomicUsize::new(slots.len()));
    let reader = Reader {
        slots: slots.clone(),
        shared: shared.clone(),
        live: live.clone(),
        dedupe_window: opts.dedupe_window,
        rssi: HashMap::new(),
        last: HashMap::new(),
    };
    let reader = tokio::spawn(reader.run(signals));
    let watcher = match watch::spawn(slots, reader.abort_handle(), shared.clone(), live).await {
        Ok(w) => w,
        Err(e) => {
            reader.abort();
            return Err(e);
        }
    };
    Ok(BleScan {
        stream: Some(AdvertStream::new(shared.clone())),
        adapters,
        skipped,
        shared,
        tasks: vec![reader, watcher],
        scanning,
    })
}

/// Our own connection, subscribed to every signal `org.bluez` sends. One rule without argument
/// matches: zbus re-checks rules client-side and an `arg0` rule would make it decode every
/// body into a `Structure` first; interface and member are checked here from the header instead.
async fn subscribe() -> Result<zbus::MessageStream, BleError> {
    let op = "subscribe to BlueZ signals";
    let err = |e: zbus::Error| BleError::from_zbus(op, e, None);
    let conn = zbus::Connection::system()
        .await
        .map_err(|e| BleError::from_zbus("connect to the system bus", e, None))?;
    let rule = zbus::MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender(BLUEZ)
        .map_err(err)?
        .build();
    zbus::MessageStream::for_match_rule(rule, &conn, Some(SIGNAL_QUEUE)).await.map_err(err)
}

/// One adapter being scanned; shared with the watcher.
#[derive(Debug)]
pub(crate) struct AdapterSlot {
    /// `hci0`.
    pub name: Arc<str>,
    /// Still scanning: cleared exactly once (powered off, removed), by whoever saw it first.
    pub alive: AtomicBool,
}

impl AdapterSlot {
    /// Stop this adapter and report `err` (the scan ends when it was the last one). `false` if
    /// it had already stopped.
    pub(crate) fn stop(&self, shared: &Shared, live: &AtomicUsize, err: BleError) -> bool {
        if !self.alive.swap(false, Ordering::AcqRel) {
            return false;
        }
        tracing::warn!(error = %err, "adapter stopped scanning");
        if live.fetch_sub(1, Ordering::AcqRel) <= 1 {
            shared.fail(err);
        }
        true
    }
}

/// Reads BlueZ's signals and feeds the queue (one task for every adapter).
struct Reader {
    slots: Arc<[AdapterSlot]>,
    shared: Arc<Shared>,
    live: Arc<AtomicUsize>,
    dedupe_window: Duration,
    /// Latest RSSI per (adapter slot, address).
    rssi: HashMap<(usize, BleAddress), i16>,
    /// Latest data per (adapter slot, address, uuid), for de-duplication.
    last: HashMap<(usize, BleAddress, FidoUuid), (Vec<u8>, Instant)>,
}

impl Reader {
    async fn run(mut self, mut signals: zbus::MessageStream) {
        while let Some(msg) = signals.next().await {
            // A read error is followed by the end of the stream.
            let Ok(msg) = msg else { continue };
            self.handle(&msg);
            if self.live.load(Ordering::Acquire) == 0 {
                return; // every adapter stopped; the terminal error is queued
            }
        }
        // Our connection ended: the system bus itself went away.
        self.shared.fail(BleError::BluezVanished);
    }

    fn handle(&mut self, msg: &Message) {
        let hdr = msg.header();
        let (Some(iface), Some(member)) = (hdr.interface(), hdr.member()) else { return };
        match (iface.as_str(), member.as_str()) {
            ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
                let Some((slot, device)) = hdr.path().and_then(|p| self.locate(p.as_str())) else {
                    return;
                };
                let body = msg.body();
                let Ok(pc) = body.deserialize::<PropertiesChanged<'_>>() else {
                    self.shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                match (pc.interface, device) {
                    (DEVICE_IFACE, Some(address)) => self.device(slot, address, &pc.props, false),
                    (ADAPTER_IFACE, None) if pc.props.powered == Some(false) => {
                        if let Some(s) = self.slots.get(slot) {
                            let err = BleError::AdapterPoweredOff { adapter: s.name.to_string() };
                            s.stop(&self.shared, &self.live, err);
                        }
                    }
                    _ => {}
                }
            }
            ("org.freedesktop.DBus.ObjectManager", "InterfacesAdded") => {
                let body = msg.body();
                let Ok(added) = body.deserialize::<InterfacesAdded<'_>>() else {
                    self.shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let Some(props) = added.device else { return };
                if let Some((slot, Some(address))) = self.locate(added.path) {
                    self.device(slot, address, &props, true);
                }
            }
            // The watcher reports removals too; seeing it here, in order, guarantees that no
            // advert signal that BlueZ flushes after the removal is delivered.
            ("org.freedesktop.DBus.ObjectManager", "InterfacesRemoved") => {
                let body = msg.body();
                let Ok((path, ifaces)) = body.deserialize::<(ObjectPath<'_>, Vec<&str>)>() else {
                    return;
                };
                if !ifaces.contains(&ADAPTER_IFACE) {
                    return;
                }
                if let Some((slot, None)) = self.locate(path.as_str()) {
                    if let Some(s) = self.slots.get(slot) {
                        let err = BleError::AdapterRemoved { adapter: s.name.to_string() };
                        s.stop(&self.shared, &self.live, err);
                    }
                }
            }
            _ => {}
        }
    }

    /// `/org/bluez/hci0` → (slot, None); `/org/bluez/hci0/dev_AA_..` → (slot, Some(address));
    /// anything else (a GATT object below a device, an adapter we do not scan, a stopped one)
    /// → None.
    fn locate(&self, path: &str) -> Option<(usize, Option<BleAddress>)> {
        let rest = path.strip_prefix("/org/bluez/")?;
        let (adapter, device) = match rest.split_once('/') {
            Some((a, d)) => (a, Some(d)),
            None => (rest, None),
        };
        let slot = self.slots.iter().position(|s| &*s.name == adapter)?;
        if !self.slots.get(slot)?.alive.load(Ordering::Acquire) {
            return None;
        }
        match device {
            None => Some((slot, None)),
            Some(d) if d.starts_with("dev_") && !d.contains('/') => {
                Some((slot, Some(parse_device_address(d)?)))
            }
            Some(_) => None,
        }
    }

    /// One advert (or RSSI update) of a device. `new`: its InterfacesAdded, which is an advert
    /// even without advert properties.
    fn device(&mut self, slot: usize, address: BleAddress, props: &Props<'_>, new: bool) {
        let counters = &self.shared.counters;
        if props.malformed > 0 {
            counters.malformed.fetch_add(u64::from(props.malformed), Ordering::Relaxed);
        }
        let rssi = match props.rssi {
            Some(r) => {
                bounded_insert(&mut self.rssi, (slot, address), r);
                Some(r)
            }
            None => self.rssi.get(&(slot, address)).copied(),
        };
        let Some(adapter) = self.slots.get(slot).map(|s| s.name.clone()) else { return };
        let now = Instant::now();
        let mut any = false;
        for (uuid, data) in props.fido_entries() {
            any = true;
            counters.fido_adverts.fetch_add(1, Ordering::Relaxed);
            match self.last.get_mut(&(slot, address, uuid)) {
                Some((prev, at)) if prev.as_slice() == data => {
                    if now.duration_since(*at) < self.dedupe_window {
                        counters.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    *at = now;
                }
                Some((prev, at)) => {
                    // Reuse the stored buffer: a busy sender costs no allocation here.
                    prev.clear();
                    prev.extend_from_slice(data);
                    *at = now;
                }
                None => bounded_insert(&mut self.last, (slot, address, uuid), (data.to_vec(), now)),
            }
            self.shared.push(ReceivedAdvert {
                service_data: data.to_vec(),
                uuid,
                rssi,
                address,
                adapter: adapter.clone(),
                received_at: now,
            });
        }
        if !any && (props.advert || new) {
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
    fn signal_paths_locate_adapter_and_device_of_scanned_adapters_only() {
        let slot =
            |name: &str, alive| AdapterSlot { name: name.into(), alive: AtomicBool::new(alive) };
        let reader = Reader {
            slots: vec![slot("hci0", true), slot("hci1", false)].into(),
            shared: Shared::new(4),
            live: Arc::new(AtomicUsize::new(1)),
            dedupe_window: Duration::from_secs(1),
            rssi: HashMap::new(),
            last: HashMap::new(),
        };
        let dev = BleAddress([0xaa, 0xbb, 0xcc, 0, 0x11, 0xff]);
        assert_eq!(reader.locate("/org/bluez/hci0"), Some((0, None)));
        assert_eq!(reader.locate("/org/bluez/hci0/dev_AA_BB_CC_00_11_FF"), Some((0, Some(dev))));
        // GATT objects below a device, other adapters, stopped adapters, junk: not ours.
        assert_eq!(reader.locate("/org/bluez/hci0/dev_AA_BB_CC_00_11_FF/service000a"), None);
        assert_eq!(reader.locate("/org/bluez/hci1/dev_AA_BB_CC_00_11_FF"), None);
        assert_eq!(reader.locate("/org/bluez/hci2"), None);
        assert_eq!(reader.locate("/org/bluez/hci0/player0"), None);
        assert_eq!(reader.locate("/org/bluez/hci0/dev_AA_BB"), None);
        assert_eq!(reader.locate("/"), None);
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
