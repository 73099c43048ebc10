//! [`BleError`]: every way the Bluetooth environment can fail, each with its own remedy.
//!
//! btleplug reports almost everything as `btleplug::Error::Other` wrapping a bluez-async error,
//! and the only precise information is the D-Bus error *name* inside it. [`BleError::from_btleplug`]
//! and [`BleError::from_zbus`] reach it and map each known name to its own variant
//! (../shared/notes/testing-without-radios.md lists the shapes). What this is not: the CLI's exit
//! code mapping (Fault::Environment → exit 3 lives in tools/src/output.rs).

use cablebridge_protocol::error::{Classify, Fault, Stage};
use std::fmt;

/// A Bluetooth (BlueZ / D-Bus) failure. Display gives the diagnosis and the remedy.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BleError {
    /// No D-Bus system bus to talk to (`FileNotFound`, `NoServer`, bad address).
    NoSystemBus { detail: String },
    /// The system bus is there but nobody owns `org.bluez` (`ServiceUnknown`, `NameHasNoOwner`).
    BluezNotRunning,
    /// The bus policy refused us (`AccessDenied`).
    AccessDenied { detail: String },
    /// BlueZ runs but has no adapter (`adapters()` is empty, or the named one is absent).
    NoAdapter { wanted: Option<String> },
    /// The adapter is rfkill-blocked (`org.bluez.Error.Blocked`, or `Failed` "...rfkill").
    RfkillBlocked { adapter: String },
    /// The adapter is (or went) powered off and could not be used.
    AdapterPoweredOff { adapter: String },
    /// The adapter disappeared (USB dongle unplugged, hci device removed) mid-scan.
    AdapterRemoved { adapter: String },
    /// `org.bluez` left the bus mid-scan or mid-advertisement (bluetoothd stopped or crashed).
    BluezVanished,
    /// The adapter has no `LEAdvertisingManager1` (BlueZ too old, or controller without LE).
    AdvertisingUnsupported { adapter: String },
    /// BlueZ refused our advertisement (e.g. "Maximum advertisements reached").
    AdvertisementRejected { name: String, message: String },
    /// Service data of the wrong size was handed to the advertiser (caller bug).
    InvalidServiceData { len: usize },
    /// Any other D-Bus error, with the operation that failed and the error name.
    Dbus { operation: &'static str, name: String, message: String },
    /// A btleplug/bluez-async failure that carries no D-Bus error name.
    Bluetooth { operation: &'static str, detail: String },
}

impl fmt::Display for BleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BleError::NoSystemBus { detail } => write!(
                f,
                "no D-Bus system bus ({detail}): start dbus (systemctl start dbus) or check \
                 DBUS_SYSTEM_BUS_ADDRESS"
            ),
            BleError::BluezNotRunning => f.write_str(
                "BlueZ is not running (nobody owns org.bluez on the system bus): \
                 systemctl start bluetooth",
            ),
            BleError::AccessDenied { detail } => write!(
                f,
                "access denied by the D-Bus policy ({detail}): run as a user in the 'bluetooth' \
                 group or use the daemon"
            ),
            BleError::NoAdapter { wanted: None } => f.write_str(
                "BlueZ has no Bluetooth adapter: plug one in, or check `btmgmt info` / dmesg for \
                 firmware errors",
            ),
            BleError::NoAdapter { wanted: Some(w) } => write!(
                f,
                "no Bluetooth adapter named {w}: see `bluetoothctl list` for the adapters BlueZ has"
            ),
            BleError::RfkillBlocked { adapter } => {
                write!(f, "adapter {adapter} is rfkill-blocked: rfkill unblock bluetooth")
            }
            BleError::AdapterPoweredOff { adapter } => write!(
                f,
                "adapter {adapter} is powered off: bluetoothctl power on (or check rfkill)"
            ),
            BleError::AdapterRemoved { adapter } => write!(
                f,
                "adapter {adapter} was removed while in use (unplugged, or the controller reset)"
            ),
            BleError::BluezVanished => f.write_str(
                "BlueZ (org.bluez) left the system bus while in use: bluetoothd stopped or \
                 crashed; see journalctl -u bluetooth, then systemctl restart bluetooth",
            ),
            BleError::AdvertisingUnsupported { adapter } => write!(
                f,
                "adapter {adapter} cannot advertise (no org.bluez.LEAdvertisingManager1): needs \
                 an LE controller and BlueZ >= 5.43"
            ),
            BleError::AdvertisementRejected { name, message } => {
                write!(f, "BlueZ refused the advertisement: {name}: {message}")
            }
            BleError::InvalidServiceData { len } => {
                write!(f, "advert service data must be 20 bytes (caBLE v2 EID), got {len}")
            }
            BleError::Dbus { operation, name, message } => {
                write!(f, "D-Bus error during {operation}: {name}: {message}")
            }
            BleError::Bluetooth { operation, detail } => {
                write!(f, "Bluetooth error during {operation}: {detail}")
            }
        }
    }
}

impl std::error::Error for BleError {}

impl Classify for BleError {
    fn fault(&self) -> Fault {
        match self {
            BleError::InvalidServiceData { .. } => Fault::Caller,
            _ => Fault::Environment,
        }
    }
    /// The protocol crate has no radio stage; every BLE failure is about the advert path.
    fn stage(&self) -> Stage {
        Stage::Advert
    }
}

impl BleError {
    /// Stable machine name of the variant, for JSON output and the doctor.
    pub fn kind(&self) -> &'static str {
        match self {
            BleError::NoSystemBus { .. } => "no_system_bus",
            BleError::BluezNotRunning => "bluez_not_running",
            BleError::AccessDenied { .. } => "access_denied",
            BleError::NoAdapter { .. } => "no_adapter",
            BleError::RfkillBlocked { .. } => "rfkill_blocked",
            BleError::AdapterPoweredOff { .. } => "adapter_powered_off",
            BleError::AdapterRemoved { .. } => "adapter_removed",
            BleError::BluezVanished => "bluez_vanished",
            BleError::AdvertisingUnsupported { .. } => "advertising_unsupported",
            BleError::AdvertisementRejected { .. } => "advertisement_rejected",
            BleError::InvalidServiceData { .. } => "invalid_service_data",
            BleError::Dbus { .. } => "dbus",
            BleError::Bluetooth { .. } => "bluetooth",
        }
    }

    /// Map a D-Bus error name (from either D-Bus library) to its variant. `adapter` names the
    /// adapter the operation was about, when there is one.
    pub fn from_dbus_name(
        operation: &'static str,
        name: &str,
        message: &str,
        adapter: Option<&str>,
    ) -> BleError {
        let adapter_name = || adapter.unwrap_or("(unknown)").to_owned();
        match name {
            "org.freedesktop.DBus.Error.FileNotFound"
            | "org.freedesktop.DBus.Error.NoServer"
            | "org.freedesktop.DBus.Error.BadAddress"
            | "org.freedesktop.DBus.Error.Spawn.ExecFailed" => {
                BleError::NoSystemBus { detail: message.to_owned() }
            }
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => BleError::BluezNotRunning,
            "org.freedesktop.DBus.Error.AccessDenied" => {
                BleError::AccessDenied { detail: message.to_owned() }
            }
            "org.bluez.Error.Blocked" => BleError::RfkillBlocked { adapter: adapter_name() },
            // BlueZ before 5.62 answered a blocked power-on with a generic Failed.
            "org.bluez.Error.Failed" if message.to_ascii_lowercase().contains("rfkill") => {
                BleError::RfkillBlocked { adapter: adapter_name() }
            }
            "org.bluez.Error.NotReady" => BleError::AdapterPoweredOff { adapter: adapter_name() },
            _ => BleError::Dbus { operation, name: name.to_owned(), message: message.to_owned() },
        }
    }

    /// Classify a btleplug error by reaching the D-Bus error inside it.
    pub fn from_btleplug(
        operation: &'static str,
        err: btleplug::Error,
        adapter: Option<&str>,
    ) -> BleError {
        match err {
            btleplug::Error::PermissionDenied => {
                BleError::AccessDenied { detail: "btleplug: permission denied".to_owned() }
            }
            btleplug::Error::Other(inner) => {
                if let Some(e) = inner.downcast_ref::<bluez_async::BluetoothError>() {
                    return Self::from_bluez_async(operation, e, adapter);
                }
                if let Some(e) = inner.downcast_ref::<dbus::Error>() {
                    return Self::from_libdbus(operation, e, adapter);
                }
                BleError::Bluetooth { operation, detail: inner.to_string() }
            }
            other => BleError::Bluetooth { operation, detail: other.to_string() },
        }
    }

    fn from_bluez_async(
        operation: &'static str,
        err: &bluez_async::BluetoothError,
        adapter: Option<&str>,
    ) -> BleError {
        match err {
            bluez_async::BluetoothError::DbusError(e) => Self::from_libdbus(operation, e, adapter),
            bluez_async::BluetoothError::NoBluetoothAdapters => {
                BleError::NoAdapter { wanted: None }
            }
            other => BleError::Bluetooth { operation, detail: other.to_string() },
        }
    }

    fn from_libdbus(operation: &'static str, err: &dbus::Error, adapter: Option<&str>) -> BleError {
        match err.name() {
            Some(name) => {
                Self::from_dbus_name(operation, name, err.message().unwrap_or(""), adapter)
            }
            None => BleError::Bluetooth { operation, detail: err.to_string() },
        }
    }

    /// Classify a zbus error (advertiser and BlueZ watcher).
    pub fn from_zbus(operation: &'static str, err: zbus::Error, adapter: Option<&str>) -> BleError {
        use std::io::ErrorKind;
        match err {
            zbus::Error::MethodError(name, message, _) => Self::from_dbus_name(
                operation,
                name.as_str(),
                message.as_deref().unwrap_or(""),
                adapter,
            ),
            zbus::Error::FDO(e) => {
                let name = zbus::DBusError::name(e.as_ref());
                let message = zbus::DBusError::description(e.as_ref()).unwrap_or("");
                Self::from_dbus_name(operation, name.as_str(), message, adapter)
            }
            zbus::Error::InputOutput(io)
                if matches!(
                    io.kind(),
                    ErrorKind::NotFound
                        | ErrorKind::ConnectionRefused
                        | ErrorKind::PermissionDenied
                ) =>
            {
                BleError::NoSystemBus { detail: io.to_string() }
            }
            // Connecting failed (no socket, refused); zbus keeps the io::Error and the address.
            zbus::Error::Connection(io, address) => {
                BleError::NoSystemBus { detail: format!("{address}: {io}") }
            }
            zbus::Error::Address(a) => BleError::NoSystemBus { detail: a },
            other => BleError::Bluetooth { operation, detail: other.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dbus_failure_shape_has_its_own_variant_and_remedy() {
        let cases = [
            (
                "org.freedesktop.DBus.Error.FileNotFound",
                "",
                "no_system_bus",
                "DBUS_SYSTEM_BUS_ADDRESS",
            ),
            (
                "org.freedesktop.DBus.Error.ServiceUnknown",
                "",
                "bluez_not_running",
                "systemctl start bluetooth",
            ),
            (
                "org.freedesktop.DBus.Error.AccessDenied",
                "policy",
                "access_denied",
                "'bluetooth' group",
            ),
            ("org.bluez.Error.Blocked", "", "rfkill_blocked", "rfkill unblock bluetooth"),
            ("org.bluez.Error.Failed", "Blocked through rfkill", "rfkill_blocked", "hci0"),
            ("org.bluez.Error.NotReady", "", "adapter_powered_off", "power on"),
            ("org.bluez.Error.InProgress", "busy", "dbus", "InProgress"),
        ];
        for (name, msg, kind, remedy) in cases {
            let e = BleError::from_dbus_name("start_scan", name, msg, Some("hci0"));
            assert_eq!(e.kind(), kind, "{name}");
            assert!(e.to_string().contains(remedy), "{name}: {e}");
            assert_eq!(e.fault(), Fault::Environment);
        }
        assert_eq!(BleError::InvalidServiceData { len: 3 }.fault(), Fault::Caller);
    }

    #[test]
    fn btleplug_other_is_downcast_to_the_dbus_name() {
        let dbus_err = dbus::Error::new_custom("org.bluez.Error.Blocked", "blocked");
        let err =
            btleplug::Error::Other(Box::new(bluez_async::BluetoothError::DbusError(dbus_err)));
        assert_eq!(
            BleError::from_btleplug("start_scan", err, Some("hci1")),
            BleError::RfkillBlocked { adapter: "hci1".into() }
        );
        let err =
            btleplug::Error::Other(Box::new(bluez_async::BluetoothError::NoBluetoothAdapters));
        assert_eq!(BleError::from_btleplug("adapters", err, None).kind(), "no_adapter");
    }
}
