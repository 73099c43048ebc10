//! Waiting for a security key to be plugged in, driven by hot-plug events (no polling).
//!
//! [`select_attached`] is what "no `--device` given" means: subscribe to hot-plug events
//! *first*, then enumerate (so a key plugged in between the two is not missed); with keys
//! attached, open them / touch-to-select ([`super::select::select_device`]); with none, report
//! [`DeviceProgress::InsertKey`] and wait — bounded by the call's deadline and cancel token — for
//! an added node that is a FIDO key, then open it.
//!
//! The event source is injectable ([`KeyArrivals::new`]): a stream of [`HotplugEvent`]s plus a
//! `recognise` function turning an added path into a [`DeviceAddress`] (or `None` for a
//! non-FIDO node). [`KeyArrivals::kernel`] is the real one: the kernel uevent socket
//! ([`HotplugMonitor`]) and sysfs ([`crate::hid::sysfs::examine`]). Tests feed UDP-HID addresses.
//!
//! The kernel `add` can arrive before udev has applied the rule's group/mode (see
//! [`crate::hid::hotplug`]), so the open of a new node is retried on `PermissionDenied` /
//! `DeviceGone` a few times over [`OPEN_RETRY_WINDOW`]: a bounded back-off on one node, not a
//! device-list poll. Where the netlink socket is refused (EPERM in containers) there is no
//! waiting: the "no FIDO security key found" error says why hot-plug is unavailable.
//!
//! Keys removed mid-ceremony: the hidraw read path reports those itself
//! ([`crate::hid::HidError::DeviceGone`] from ENODEV/EIO), but a UDP-HID device (or a key whose
//! node the kernel removes while no read is pending) gives no such error: the transaction would
//! only end at its deadline, as a generic timeout. So the USB ceremony keeps the same event
//! source open after selecting a key and races the transaction against
//! [`KeyArrivals::removed`]: a `remove` for the selected device ends it at once with
//! `DeviceGone` ([`super::ceremony`]).

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use super::client::Ctap2Client;
use super::error::{CtapError, Result};
use super::hid_channel::{Call, DeviceProgress};
use super::select::{attached_keys, open_client, select_device, OpenOptions};
use crate::hid::sysfs::{examine, SysRoots};
use crate::hid::{DeviceAddress, HidDevice, HidError, HotplugEvent, HotplugMonitor};

/// How long a freshly added node may refuse to open (udev still applying permissions).
pub const OPEN_RETRY_WINDOW: Duration = Duration::from_millis(2000);
const OPEN_RETRY_STEP: Duration = Duration::from_millis(100);

type EventStream = Pin<Box<dyn Stream<Item = std::result::Result<HotplugEvent, HidError>> + Send>>;
type Recognise = Box<dyn Fn(&Path) -> Option<DeviceAddress> + Send + Sync>;

/// A source of newly plugged-in FIDO keys.
pub struct KeyArrivals {
    events: EventStream,
    recognise: Recognise,
    /// Added paths recognised so far, with the address each was opened as: a later `remove`
    /// of the path names that device (the kernel's sysfs entry is gone by then, so the path
    /// cannot be recognised again).
    seen: Vec<(std::path::PathBuf, DeviceAddress)>,
}

impl std::fmt::Debug for KeyArrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyArrivals").finish_non_exhaustive()
    }
}

impl KeyArrivals {
    /// Any event stream; `recognise` says which added paths are FIDO keys and how to open them.
    pub fn new(
        events: impl Stream<Item = std::result::Result<HotplugEvent, HidError>> + Send + 'static,
        recognise: impl Fn(&Path) -> Option<DeviceAddress> + Send + Sync + 'static,
    ) -> Self {
        KeyArrivals { events: Box::pin(events), recognise: Box::new(recognise), seen: Vec::new() }
    }

    /// The kernel's uevents, filtered through sysfs. Fails with [`HidError::Hotplug`] where
    /// the netlink socket is refused.
    pub fn kernel(roots: &SysRoots) -> std::result::Result<Self, HidError> {
        let monitor = HotplugMonitor::open(&roots.dev)?;
        let roots = roots.clone();
        Ok(KeyArrivals::new(monitor, move |path: &Path| {
            let name = path.file_name()?.to_str()?;
            match examine(&roots, name) {
                Ok(Some(info)) => Some(DeviceAddress::Hidraw(info.path)),
                Ok(None) => None,
                Err(reason) => {
                    tracing::debug!(node = name, %reason, "new hidraw node not examinable");
                    None
                }
            }
        }))
    }

    /// The next added FIDO key; `None` when the stream ends. Stream errors are logged and
    /// skipped (an overflowed socket still delivers later events).
    pub async fn next_key(&mut self) -> Option<DeviceAddress> {
        while let Some(event) = self.events.next().await {
            match event {
                Ok(HotplugEvent::Added(path)) => {
                    if let Some(address) = (self.recognise)(&path) {
                        self.seen.push((path, address.clone()));
                        return Some(address);
                    }
                    tracing::debug!(path = %path.display(), "added hidraw node is not a FIDO key");
                }
                Ok(HotplugEvent::Removed(_)) => {}
                Err(e) => tracing::warn!(error = %e, "hot-plug event error"),
            }
        }
        None
    }
}

impl KeyArrivals {
    /// Waits until the device `device` (a transport path as [`crate::hid::HidTransport::path`]
    /// gives it: `/dev/hidraw3`, `udp:127.0.0.1:8111`) is removed; pending forever when the
    /// event stream ends first (no events means no removal). Other events are consumed: keys
    /// arriving now are not wanted, the ceremony already has one.
    pub async fn removed(&mut self, device: &str) {
        while let Some(event) = self.events.next().await {
            match event {
                Ok(HotplugEvent::Removed(path)) => {
                    if self.names(&path, device) {
                        tracing::info!(device, "security key removed mid-ceremony");
                        return;
                    }
                }
                Ok(HotplugEvent::Added(path)) => {
                    if let Some(address) = (self.recognise)(&path) {
                        self.seen.push((path, address));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "hot-plug event error"),
            }
        }
        std::future::pending::<()>().await;
    }

    /// Whether a removed `path` is the device the transport calls `device`.
    fn names(&self, path: &Path, device: &str) -> bool {
        if path.to_str() == Some(device) {
            return true;
        }
        let latest = self.seen.iter().rev().find(|(p, _)| p == path).map(|(_, a)| a.clone());
        // A device given by address (never seen added): the injected recogniser may still map
        // the path (the kernel one cannot any more: its sysfs entry is gone).
        latest.or_else(|| (self.recognise)(path)).is_some_and(|a| a.to_string() == device)
    }
}

/// Opens a newly added key, retrying briefly while the node is not yet accessible.
async fn open_new(
    address: &DeviceAddress,
    options: &OpenOptions,
    call: &mut Call<'_>,
) -> Result<Ctap2Client<HidDevice>> {
    let give_up = (Instant::now() + OPEN_RETRY_WINDOW).min(call.deadline);
    loop {
        match open_client(address, options, call).await {
            Err(CtapError::Hid(
                HidError::PermissionDenied { .. } | HidError::DeviceGone { .. },
            )) if Instant::now() + OPEN_RETRY_STEP < give_up && !call.cancel.is_cancelled() => {
                tokio::select! {
                    () = tokio::time::sleep(OPEN_RETRY_STEP) => {}
                    () = call.cancel.cancelled() => {}
                }
            }
            other => return other,
        }
    }
}

/// Waits for a FIDO key to be plugged in, until the call's deadline or cancel.
pub async fn wait_for_key(
    arrivals: &mut KeyArrivals,
    options: &OpenOptions,
    call: &mut Call<'_>,
) -> Result<Ctap2Client<HidDevice>> {
    let started = Instant::now();
    (call.progress)(DeviceProgress::InsertKey);
    let cancel = call.cancel.clone();
    let address = tokio::select! {
        found = arrivals.next_key() => found,
        () = tokio::time::sleep_until(call.deadline) => None,
        () = cancel.cancelled() => None,
    };
    let Some(address) = address else {
        return Err(CtapError::NoKeyInserted {
            waited: started.elapsed(),
            cancelled: call.cancel.is_cancelled(),
        });
    };
    tracing::info!(device = %address, "security key plugged in");
    open_new(&address, options, call).await
}

/// Every attached key (touch-to-select among several), or — with none — the next key plugged
/// in. `arrivals` is `Err` when hot-plug is unavailable: then no key fails at once, saying why.
pub async fn select_attached(
    options: &OpenOptions,
    mut arrivals: std::result::Result<KeyArrivals, HidError>,
    call: &mut Call<'_>,
) -> Result<Ctap2Client<HidDevice>> {
    select_attached_with(options, arrivals.as_mut(), call).await
}

/// [`select_attached`] on a borrowed event source, which the caller keeps (to watch for the
/// selected key's removal afterwards).
pub async fn select_attached_with(
    options: &OpenOptions,
    arrivals: std::result::Result<&mut KeyArrivals, &mut HidError>,
    call: &mut Call<'_>,
) -> Result<Ctap2Client<HidDevice>> {
    // Subscribed before enumerating, so a key plugged in meanwhile still produces an event.
    let (found, hint) = attached_keys(&options.hidraw);
    match arrivals {
        _ if !found.is_empty() => select_device(&found, options, call, hint).await,
        Ok(arrivals) => wait_for_key(arrivals, options, call).await,
        Err(e) => Err(CtapError::NoDevice {
            hint: format!(
                "{}; not waiting for one to be plugged in: {e}",
                hint.unwrap_or_default()
            ),
        }),
    }
}
