//! The phone-role advertiser: our `org.bluez.LEAdvertisement1` registered with BlueZ.
//!
//! BlueZ's advertising API (doc/org.bluez.LEAdvertisingManager.rst): we export an object with
//! `Type = "broadcast"` (non-connectable; hybrid needs no GATT), `ServiceUUIDs = [0xFFF9]` and
//! `ServiceData = {0xFFF9: 20-byte EID}` (PROTOCOL-hybrid.md §5), then call
//! `LEAdvertisingManager1.RegisterAdvertisement(path, {})`; BlueZ reads the properties back from
//! us. **Updating** the data: BlueZ ≥ 5.50 (src/advertising.c `properties_changed` →
//! `refresh_advertisement`) re-reads a property when we emit `PropertiesChanged`, which is what
//! [`AdvertisementHandle::update`] does; for older BlueZ set
//! [`AdvertiseOptions::reregister_on_update`] (unregister + register, a visible gap on air).
//! Removal: [`AdvertisementHandle::stop`], or best effort on drop (bluer's `AdvertisementHandle`
//! pattern). zbus rather than bluer: pure Rust, and bluer would add a second libdbus user.
//!
//! What this is not: EID sealing (protocol::hybrid::eid) or the phone's rotation schedule.

use super::{BleError, FidoUuid};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use super::BLUEZ;
const MANAGER_IFACE: &str = "org.bluez.LEAdvertisingManager1";
const ADAPTER_IFACE: &str = "org.bluez.Adapter1";
/// A caBLE v2 advert is exactly one sealed EID (§5.2).
const ADVERT_LEN: usize = 20;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Where and how to advertise.
#[derive(Debug, Clone, Default)]
pub struct AdvertiseOptions {
    /// Adapter (`hci0`); `None` = the first adapter that supports LE advertising.
    pub adapter: Option<String>,
    /// Update by unregister + register instead of `PropertiesChanged` (BlueZ < 5.50).
    pub reregister_on_update: bool,
}

/// The exported `org.bluez.LEAdvertisement1` object.
struct Advertisement {
    service_data: Vec<u8>,
    released: Arc<AtomicBool>,
}

#[zbus::interface(name = "org.bluez.LEAdvertisement1")]
impl Advertisement {
    /// BlueZ calls this when it drops the advertisement itself (adapter gone, bluetoothd exit).
    fn release(&self) {
        tracing::info!("BlueZ released our advertisement");
        self.released.store(true, Ordering::Release);
    }

    #[zbus(property, name = "Type")]
    fn kind(&self) -> String {
        "broadcast".to_owned()
    }

    #[zbus(property, name = "ServiceUUIDs")]
    fn service_uuids(&self) -> Vec<String> {
        vec![FidoUuid::Fff9.as_bluez_str().to_owned()]
    }

    #[zbus(property, name = "ServiceData")]
    fn service_data(&self) -> zbus::fdo::Result<HashMap<String, OwnedValue>> {
        let value = Value::from(self.service_data.clone())
            .try_into_owned()
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        Ok(HashMap::from([(FidoUuid::Fff9.as_bluez_str().to_owned(), value)]))
    }
}

/// A registered advertisement. Unregistered by [`stop`](Self::stop) or (best effort) on drop.
#[derive(Debug)]
pub struct AdvertisementHandle {
    conn: zbus::Connection,
    path: OwnedObjectPath,
    adapter: String,
    adapter_path: OwnedObjectPath,
    reregister: bool,
    released: Arc<AtomicBool>,
    active: bool,
}

fn check_len(data: &[u8]) -> Result<(), BleError> {
    if data.len() == ADVERT_LEN {
        Ok(())
    } else {
        Err(BleError::InvalidServiceData { len: data.len() })
    }
}

/// Registration failures that are BlueZ saying no (rather than the environment) are rejections.
fn register_error(e: zbus::Error, adapter: &str) -> BleError {
    match BleError::from_zbus("register advertisement", e, Some(adapter)) {
        BleError::Dbus { name, message, .. } if name.starts_with("org.bluez.Error.") => {
            BleError::AdvertisementRejected { name, message }
        }
        other => other,
    }
}

/// Register `service_data` (20 bytes) as a non-connectable 0xFFF9 advertisement.
pub async fn advertise(
    service_data: &[u8],
    opts: AdvertiseOptions,
) -> Result<AdvertisementHandle, BleError> {
    check_len(service_data)?;
    AdvertisingAdapter::open(opts).await?.advertise(service_data).await
}

/// A bus connection and a chosen, powered adapter that can advertise — everything
/// [`advertise`] checks before it has the data. Lets a caller surface the environment errors
/// (no bus, no BlueZ, no adapter, rfkill, no LE advertising) *before* it knows the advert, e.g.
/// the virtual phone when its advert sink is opened.
#[derive(Debug, Clone)]
pub struct AdvertisingAdapter {
    conn: zbus::Connection,
    adapter: String,
    adapter_path: OwnedObjectPath,
    reregister: bool,
}

impl AdvertisingAdapter {
    /// Connect to the system bus and pick (and power on) the adapter.
    pub async fn open(opts: AdvertiseOptions) -> Result<AdvertisingAdapter, BleError> {
        let conn = zbus::Connection::system()
            .await
            .map_err(|e| BleError::from_zbus("connect to the system bus", e, None))?;
        let (adapter, adapter_path) = pick_adapter(&conn, opts.adapter.as_deref()).await?;
        Ok(AdvertisingAdapter {
            conn,
            adapter,
            adapter_path,
            reregister: opts.reregister_on_update,
        })
    }

    /// The adapter's name (`hci0`).
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Register `service_data` (20 bytes) on this adapter.
    pub async fn advertise(&self, service_data: &[u8]) -> Result<AdvertisementHandle, BleError> {
        check_len(service_data)?;
        let path =
            format!("/org/cablebridge/advertisement{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let path = OwnedObjectPath::try_from(path)
            .map_err(|e| BleError::from_zbus("export advertisement", e.into(), None))?;
        let released = Arc::new(AtomicBool::new(false));
        let object =
            Advertisement { service_data: service_data.to_vec(), released: released.clone() };
        self.conn
            .object_server()
            .at(&path, object)
            .await
            .map_err(|e| BleError::from_zbus("export advertisement", e, None))?;
        let handle = AdvertisementHandle {
            conn: self.conn.clone(),
            path,
            adapter: self.adapter.clone(),
            adapter_path: self.adapter_path.clone(),
            reregister: self.reregister,
            released,
            active: true,
        };
        // On failure the handle's Drop removes the exported object again.
        handle.register().await?;
        Ok(handle)
    }
}

/// The named adapter (or the first one with LE advertising), powered on if it is off.
async fn pick_adapter(
    conn: &zbus::Connection,
    wanted: Option<&str>,
) -> Result<(String, OwnedObjectPath), BleError> {
    let op = "list adapters";
    let objects = super::managed_objects(conn, op).await?;
    let mut adapters: Vec<_> = objects
        .iter()
        .filter_map(|(path, ifaces)| {
            let props = ifaces.iter().find(|(i, _)| i.as_str() == ADAPTER_IFACE)?.1;
            let name = path.as_str().strip_prefix("/org/bluez/")?.to_owned();
            let can_advertise = ifaces.keys().any(|i| i.as_str() == MANAGER_IFACE);
            let powered =
                props.get("Powered").and_then(|v| bool::try_from(v).ok()).unwrap_or(false);
            Some((name, path.clone(), can_advertise, powered))
        })
        .collect();
    adapters.sort_by(|a, b| a.0.cmp(&b.0));
    let chosen = match wanted {
        Some(w) => adapters
            .into_iter()
            .find(|a| a.0 == w)
            .ok_or(BleError::NoAdapter { wanted: Some(w.to_owned()) })?,
        None => {
            let first = adapters.first().cloned().ok_or(BleError::NoAdapter { wanted: None })?;
            adapters.into_iter().find(|a| a.2).unwrap_or(first)
        }
    };
    let (name, path, can_advertise, powered) = chosen;
    if !can_advertise {
        return Err(BleError::AdvertisingUnsupported { adapter: name });
    }
    if !powered {
        tracing::info!(adapter = %name, "powering the adapter on to advertise");
        let props = zbus::fdo::PropertiesProxy::builder(conn)
            .destination(BLUEZ)
            .and_then(|b| b.path(path.clone()))
            .map_err(|e| BleError::from_zbus("power on", e, Some(&name)))?
            .build()
            .await
            .map_err(|e| BleError::from_zbus("power on", e, Some(&name)))?;
        let iface = zbus::names::InterfaceName::from_static_str_unchecked(ADAPTER_IFACE);
        props
            .set(iface, "Powered", Value::from(true))
            .await
            .map_err(|e| BleError::from_zbus("power on", e.into(), Some(&name)))?;
    }
    Ok((name, path))
}

impl AdvertisementHandle {
    /// The adapter advertising.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Whether BlueZ has released (dropped) the advertisement on its own.
    pub fn released_by_bluez(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    async fn register(&self) -> Result<(), BleError> {
        let options: HashMap<&str, Value<'_>> = HashMap::new();
        let path = ObjectPath::from(&self.path);
        self.conn
            .call_method(
                Some(BLUEZ),
                &self.adapter_path,
                Some(MANAGER_IFACE),
                "RegisterAdvertisement",
                &(path, options),
            )
            .await
            .map(drop)
            .map_err(|e| register_error(e, &self.adapter))
    }

    async fn unregister(&self) -> Result<(), BleError> {
        let path = ObjectPath::from(&self.path);
        self.conn
            .call_method(
                Some(BLUEZ),
                &self.adapter_path,
                Some(MANAGER_IFACE),
                "UnregisterAdvertisement",
                &(path,),
            )
            .await
            .map(drop)
            .map_err(|e| BleError::from_zbus("unregister advertisement", e, Some(&self.adapter)))
    }

    /// Replace the advertised service data (the phone's EID rotation).
    pub async fn update(&mut self, service_data: &[u8]) -> Result<(), BleError> {
        check_len(service_data)?;
        let iface = self
            .conn
            .object_server()
            .interface::<_, Advertisement>(&self.path)
            .await
            .map_err(|e| BleError::from_zbus("update advertisement", e, None))?;
        iface.get_mut().await.service_data = service_data.to_vec();
        if self.reregister {
            self.unregister().await?;
            return self.register().await;
        }
        let result = iface.get().await.service_data_changed(iface.signal_emitter()).await;
        result.map_err(|e| BleError::from_zbus("update advertisement", e, Some(&self.adapter)))
    }

    /// Unregister and stop exporting the object.
    pub async fn stop(mut self) -> Result<(), BleError> {
        self.active = false;
        let result = if self.released_by_bluez() { Ok(()) } else { self.unregister().await };
        self.conn.object_server().remove::<Advertisement, _>(&self.path).await.ok();
        result
    }
}

impl Drop for AdvertisementHandle {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime: BlueZ drops the advertisement when our connection closes.
            return;
        };
        let (conn, path, adapter_path) =
            (self.conn.clone(), self.path.clone(), self.adapter_path.clone());
        rt.spawn(async move {
            let body = (ObjectPath::from(&path),);
            conn.call_method(
                Some(BLUEZ),
                &adapter_path,
                Some(MANAGER_IFACE),
                "UnregisterAdvertisement",
                &body,
            )
            .await
            .ok();
            conn.object_server().remove::<Advertisement, _>(&path).await.ok();
        });
    }
}
