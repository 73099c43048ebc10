//! Watching BlueZ itself while a scan runs.
//!
//! When bluetoothd dies or an adapter is unplugged, the signal stream just goes silent: the
//! D-Bus connection to the *bus* is still fine, so nothing errors. A ceremony would then wait for
//! an advert that can never come. This task listens on its own (zbus) connection for
//! `NameOwnerChanged(org.bluez, _, "")` and for `InterfacesRemoved` of an adapter we scan on, and
//! ends the scan with [`BleError::BluezVanished`] / [`BleError::AdapterRemoved`] (the scan ends
//! when its last adapter is gone). Powered-off is seen by the signal reader itself
//! (`PropertiesChanged` of `Adapter1`). Adapters plugged in after the scan started are not
//! added to it.

use super::queue::Shared;
use super::scan::AdapterSlot;
use super::BleError;
use futures_util::StreamExt;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::task::{AbortHandle, JoinHandle};

use super::BLUEZ;

fn zerr(op: &'static str) -> impl Fn(zbus::Error) -> BleError {
    move |e| BleError::from_zbus(op, e, None)
}

/// Subscribe (before returning, so nothing after this point is missed) and spawn the watcher.
pub(crate) async fn spawn(
    adapters: Arc<[AdapterSlot]>,
    reader: AbortHandle,
    shared: Arc<Shared>,
    live: Arc<AtomicUsize>,
) -> Result<JoinHandle<()>, BleError> {
    let op = "watch BlueZ";
    let conn = zbus::Connection::system().await.map_err(zerr(op))?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.map_err(zerr(op))?;
    let mut owner_changes =
        dbus.receive_name_owner_changed_with_args(&[(0, BLUEZ)]).await.map_err(zerr(op))?;
    let objects = super::object_manager(&conn, op).await?;
    let mut removed = objects.receive_interfaces_removed().await.map_err(zerr(op))?;
    // BlueZ may have left between start_scan and the subscription above.
    let present = dbus
        .name_has_owner(BLUEZ.try_into().map_err(|e: zbus::names::Error| zerr(op)(e.into()))?)
        .await
        .map_err(|e| zerr(op)(e.into()))?;

    let vanished = move |shared: &Shared, reader: &AbortHandle| {
        reader.abort();
        shared.fail(BleError::BluezVanished);
    };
    Ok(tokio::spawn(async move {
        let _keep = (conn, dbus, objects);
        if !present {
            vanished(&shared, &reader);
            return;
        }
        loop {
            tokio::select! {
                sig = owner_changes.next() => {
                    let Some(sig) = sig else { break };
                    let gone = sig.args().map(|a| a.new_owner().is_none()).unwrap_or(false);
                    if gone {
                        tracing::warn!("org.bluez left the system bus");
                        vanished(&shared, &reader);
                        return;
                    }
                }
                sig = removed.next() => {
                    let Some(sig) = sig else { break };
                    let Ok(args) = sig.args() else { continue };
                    let was_adapter = args
                        .interfaces()
                        .iter()
                        .any(|i| i.as_str() == "org.bluez.Adapter1");
                    let path = args.object_path().as_str();
                    if let Some(a) = adapters.iter().find(|a| {
                        was_adapter && path.strip_prefix("/org/bluez/") == Some(&*a.name)
                    }) {
                        let err = BleError::AdapterRemoved { adapter: a.name.to_string() };
                        a.stop(&shared, &live, err);
                    }
                }
            }
            if shared.is_closed() {
                return;
            }
        }
        // Our own bus connection ended: the system bus itself went away.
        vanished(&shared, &reader);
    }))
}
