//! A mock `org.bluez` for the sim tier: enough of BlueZ for btleplug's scanner and our advertiser.
//!
//! Objects: `/org/bluez/<hciN>` with `Adapter1` (+ `LEAdvertisingManager1` when the adapter can
//! advertise) and `/org/bluez/<hciN>/dev_XX_..` with `Device1`. New devices are announced with
//! `InterfacesAdded`, advert updates with `PropertiesChanged` — the shapes real BlueZ uses.
//!
//! Why hand-rolled message dispatch rather than zbus's object server: the mock must answer
//! `Properties.Set(Powered)` with `org.bluez.Error.Blocked` (rfkill), which zbus's built-in
//! Properties interface cannot name, and it must emit thousands of `PropertiesChanged` per second
//! for the flood test without per-object bookkeeping. [`dispatch`] answers method calls,
//! [`adverts`] implements advertisement registration (reading our exported object back over the
//! bus) and the loop-back that turns a registered advertisement into a `Device1` another scanner
//! can hear.

mod adverts;
mod dispatch;
pub(crate) mod props;

pub use adverts::RegisteredAdvert;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::JoinHandle;
use zbus::zvariant::{as_value, ObjectPath, OwnedValue, Value};

/// An adapter to create.
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    /// `hci0`.
    pub name: String,
    pub address: [u8; 6],
    pub powered: bool,
    /// Powering on fails with `org.bluez.Error.Blocked`.
    pub rfkill_blocked: bool,
    /// Exposes `LEAdvertisingManager1`.
    pub can_advertise: bool,
}

impl AdapterSpec {
    /// A powered, unblocked adapter that can advertise.
    pub fn new(name: &str) -> AdapterSpec {
        let n = name.bytes().last().unwrap_or(b'0');
        AdapterSpec {
            name: name.to_owned(),
            address: [0x00, 0x1a, 0x7d, 0xda, 0x71, n],
            powered: true,
            rfkill_blocked: false,
            can_advertise: true,
        }
    }
}

#[derive(Debug)]
pub(crate) struct AdapterState {
    pub spec: AdapterSpec,
    pub powered: bool,
    pub discovering: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceState {
    pub address: [u8; 6],
    pub rssi: Option<i16>,
    /// UUID (BlueZ text form) → data.
    pub service_data: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub adapters: BTreeMap<String, AdapterState>,
    /// Device object path → device.
    pub devices: BTreeMap<String, DeviceState>,
    pub adverts: Vec<RegisteredAdvert>,
    /// Every `SetDiscoveryFilter` argument received, in order.
    pub discovery_filters: Vec<HashMap<String, OwnedValue>>,
    /// Adapter on which registered advertisements reappear as devices.
    pub loopback: Option<String>,
    /// PropertiesChanged watchers of registered advertisements, by `owner path`.
    pub advert_watchers: HashMap<String, tokio::task::AbortHandle>,
    /// Advertisements registered so far (gives each loop-back device its own address).
    pub adverts_ever: u8,
}

/// The running mock. Dropping it (or [`MockBluez::vanish`]) takes `org.bluez` off the bus.
#[derive(Debug)]
pub struct MockBluez {
    pub(crate) conn: zbus::Connection,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) changed: Arc<tokio::sync::Notify>,
    task: JoinHandle<()>,
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn device_path(adapter: &str, address: &[u8; 6]) -> String {
    let a: Vec<String> = address.iter().map(|b| format!("{b:02X}")).collect();
    format!("/org/bluez/{adapter}/dev_{}", a.join("_"))
}

impl MockBluez {
    /// Connect to `address`, own `org.bluez` and start answering.
    pub async fn start(address: &str) -> zbus::Result<MockBluez> {
        let conn = zbus::connection::Builder::address(address)?.name("org.bluez")?.build().await?;
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let stream = zbus::MessageStream::from(&conn);
        let task =
            tokio::spawn(dispatch::run(stream, conn.clone(), state.clone(), changed.clone()));
        Ok(MockBluez { conn, state, changed, task })
    }

    /// Add an adapter (announced with `InterfacesAdded`).
    pub async fn add_adapter(&self, spec: AdapterSpec) -> zbus::Result<()> {
        let path = format!("/org/bluez/{}", spec.name);
        let ifaces = {
            let mut st = lock(&self.state);
            let a = AdapterState { powered: spec.powered, discovering: false, spec: spec.clone() };
            let mut ifaces = HashMap::from([(props::ADAPTER.to_owned(), props::adapter(&a))]);
            if spec.can_advertise {
                ifaces.insert(props::ADV_MANAGER.to_owned(), props::adv_manager(0));
            }
            st.adapters.insert(spec.name.clone(), a);
            ifaces
        };
        self.interfaces_added(&path, ifaces).await
    }

    /// Remove an adapter and its devices (`InterfacesRemoved`), like unplugging a dongle.
    pub async fn remove_adapter(&self, name: &str) -> zbus::Result<()> {
        let prefix = format!("/org/bluez/{name}/");
        let devices: Vec<String> = {
            let mut st = lock(&self.state);
            st.adapters.remove(name);
            let gone: Vec<String> =
                st.devices.keys().filter(|p| p.starts_with(&prefix)).cloned().collect();
            for p in &gone {
                st.devices.remove(p);
            }
            gone
        };
        for d in devices {
            self.interfaces_removed(&d, &[props::DEVICE]).await?;
        }
        let path = format!("/org/bluez/{name}");
        self.interfaces_removed(&path, &[props::ADAPTER, props::ADV_MANAGER]).await
    }

    /// Power an adapter on or off from "outside" (bluetoothctl, rfkill), with `PropertiesChanged`.
    pub async fn set_powered(&self, name: &str, powered: bool) -> zbus::Result<()> {
        let changed = {
            let mut st = lock(&self.state);
            match st.adapters.get_mut(name) {
                Some(a) => {
                    a.powered = powered;
                    if !powered {
                        a.discovering = false;
                    }
                    true
                }
                None => false,
            }
        };
        if changed {
            let path = format!("/org/bluez/{name}");
            self.properties_changed(&path, props::ADAPTER, vec![("Powered", Value::from(powered))])
                .await?;
        }
        Ok(())
    }

    /// Add a device heard on `adapter` with its first advert (`InterfacesAdded`); returns its path.
    pub async fn add_device(
        &self,
        adapter: &str,
        address: [u8; 6],
        rssi: Option<i16>,
        service_data: &[(&str, &[u8])],
    ) -> zbus::Result<String> {
        let path = device_path(adapter, &address);
        let device = DeviceState {
            address,
            rssi,
            service_data: service_data.iter().map(|(u, d)| ((*u).to_owned(), d.to_vec())).collect(),
        };
        let ifaces = HashMap::from([(props::DEVICE.to_owned(), props::device(&device))]);
        lock(&self.state).devices.insert(path.clone(), device);
        self.interfaces_added(&path, ifaces).await?;
        Ok(path)
    }

    /// A later advert from a known device: `PropertiesChanged` with the new ServiceData (and RSSI).
    pub async fn advertise_from(
        &self,
        device: &str,
        rssi: Option<i16>,
        service_data: &[(&str, &[u8])],
    ) -> zbus::Result<()> {
        let value = {
            let mut st = lock(&self.state);
            let Some(d) = st.devices.get_mut(device) else {
                return Ok(());
            };
            d.service_data =
                service_data.iter().map(|(u, data)| ((*u).to_owned(), data.to_vec())).collect();
            if rssi.is_some() {
                d.rssi = rssi;
            }
            props::service_data(d)
        };
        let mut changed = vec![];
        if let Some(r) = rssi {
            changed.push(("RSSI", Value::from(r)));
        }
        changed.push(("ServiceData", value));
        self.properties_changed(device, props::DEVICE, changed).await
    }

    /// [`advertise_from`](Self::advertise_from) for one service-data entry and no RSSI, at the
    /// lowest cost the mock can manage — for floods (`cablebridge bench adverts`), where the
    /// emitter must not be what limits the rate. The signal is identical on the wire; the body
    /// is serialised from typed values (no `Value` tree, no signature parsing), the path is
    /// validated once by the caller, and the device's stored data is updated in place: about a
    /// fifth less mock CPU per advert than `advertise_from` (docs/performance.md, adverts).
    pub async fn flood_advert(
        &self,
        device: &ObjectPath<'_>,
        uuid: &str,
        data: &[u8],
    ) -> zbus::Result<()> {
        {
            let mut st = lock(&self.state);
            if let Some(d) = st.devices.get_mut(device.as_str()) {
                let only = d.service_data.len() == 1;
                match d.service_data.get_mut(uuid) {
                    Some(v) if only => {
                        v.clear();
                        v.extend_from_slice(data);
                    }
                    _ => {
                        d.service_data.clear();
                        d.service_data.insert(uuid.to_owned(), data.to_vec());
                    }
                }
            }
        }
        let service_data = HashMap::from([(uuid, as_value::Serialize(&data))]);
        let changed = HashMap::from([("ServiceData", as_value::Serialize(&service_data))]);
        let body = (props::DEVICE, changed, Vec::<&str>::new());
        let msg = zbus::message::Message::signal(
            device,
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
        )?
        .build(&body)?;
        self.conn.send(&msg).await
    }

    /// `PropertiesChanged` of `Device1` on `device` with exactly `changed`, whatever its types,
    /// and no bookkeeping: for scanner tests that send what a broken or hostile BlueZ might
    /// (`ServiceData` that is not `a{sv}` of `ay`, an `RSSI` that is not `n`...).
    pub async fn emit_device_properties(
        &self,
        device: &str,
        changed: Vec<(&str, Value<'_>)>,
    ) -> zbus::Result<()> {
        self.properties_changed(device, props::DEVICE, changed).await
    }

    /// Make registered advertisements reappear as devices on `adapter` (phone → desktop).
    pub fn set_loopback(&self, adapter: Option<&str>) {
        lock(&self.state).loopback = adapter.map(str::to_owned);
    }

    /// Every `SetDiscoveryFilter` dictionary received so far.
    pub fn discovery_filters(&self) -> Vec<HashMap<String, OwnedValue>> {
        lock(&self.state)
            .discovery_filters
            .iter()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.try_clone().ok()?))).collect())
            .collect()
    }

    /// Whether `adapter` is discovering / powered.
    pub fn adapter_state(&self, adapter: &str) -> Option<(bool, bool)> {
        lock(&self.state).adapters.get(adapter).map(|a| (a.powered, a.discovering))
    }

    /// Currently registered advertisements.
    pub fn advertisements(&self) -> Vec<RegisteredAdvert> {
        lock(&self.state).adverts.clone()
    }

    /// Wait (bounded by the caller's timeout) until `pred` holds for the registered adverts.
    pub async fn wait_for_adverts(&self, pred: impl Fn(&[RegisteredAdvert]) -> bool) {
        loop {
            let notified = self.changed.notified();
            if pred(&lock(&self.state).adverts) {
                return;
            }
            notified.await;
        }
    }

    /// Take `org.bluez` off the bus, as when bluetoothd stops.
    pub async fn vanish(self) {
        self.task.abort();
        self.conn.release_name("org.bluez").await.ok();
    }

    pub(crate) async fn interfaces_added(
        &self,
        path: &str,
        ifaces: HashMap<String, props::Props>,
    ) -> zbus::Result<()> {
        dispatch::interfaces_added(&self.conn, path, ifaces).await
    }

    async fn interfaces_removed(&self, path: &str, ifaces: &[&str]) -> zbus::Result<()> {
        let path = ObjectPath::try_from(path)?;
        self.conn
            .emit_signal(
                None::<()>,
                "/",
                "org.freedesktop.DBus.ObjectManager",
                "InterfacesRemoved",
                &(path, ifaces),
            )
            .await
    }

    pub(crate) async fn properties_changed(
        &self,
        path: &str,
        iface: &str,
        changed: Vec<(&str, Value<'_>)>,
    ) -> zbus::Result<()> {
        dispatch::properties_changed(&self.conn, path, iface, changed).await
    }
}

impl Drop for MockBluez {
    fn drop(&mut self) {
        self.task.abort();
    }
}
