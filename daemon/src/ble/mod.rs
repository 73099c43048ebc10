//! Bluetooth LE radio paths through BlueZ: scanning for caBLE adverts (desktop role) and
//! advertising one (phone role).
//!
//! * [`scan`] — discovery started through btleplug on every adapter, **unfiltered** (a
//!   service-UUID filter loses iOS, which sends service data without a UUID list); the adverts
//!   themselves read straight from BlueZ's D-Bus signals with zbus ([`signals`]: typed, borrowing
//!   decoding), picking out service data for 0xFFF9 and the legacy 0xFDE2 (PROTOCOL-hybrid.md §5). The result is a bounded [`AdvertStream`] meant to be
//!   drained by a matcher that trial-decrypts every advert against every pending key before doing
//!   anything else.
//! * [`advertise`] — registers our exported `org.bluez.LEAdvertisement1` with
//!   `LEAdvertisingManager1` (zbus); the [`AdvertisementHandle`] unregisters on drop.
//! * BlueZ itself is watched ([`watch`]): `org.bluez` leaving the bus, an adapter removed or
//!   powered off end the scan with a precise [`BleError`] instead of a silent stream.
//!
//! What this is not: EID decryption (protocol::hybrid::eid), the ceremony, or a GATT client.
//! Both directions are exercised in CI against the mock BlueZ in `hw-tests/`.

mod advertise;
mod error;
mod queue;
mod scan;
mod signals;
mod watch;

pub use advertise::{advertise, AdvertiseOptions, AdvertisementHandle, AdvertisingAdapter};
pub use error::BleError;
pub use queue::{AdvertStream, ScanStats};
pub use scan::{scan, AdapterStatus, BleScan, ScanOptions};

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// BlueZ's well-known bus name.
pub(crate) const BLUEZ: &str = "org.bluez";

/// BlueZ's `org.freedesktop.DBus.ObjectManager` at `/` on `conn`; errors name `op`.
pub(crate) async fn object_manager(
    conn: &zbus::Connection,
    op: &'static str,
) -> Result<zbus::fdo::ObjectManagerProxy<'static>, BleError> {
    zbus::fdo::ObjectManagerProxy::builder(conn)
        .destination(BLUEZ)
        .and_then(|b| b.path("/"))
        .map_err(|e| BleError::from_zbus(op, e, None))?
        .build()
        .await
        .map_err(|e| BleError::from_zbus(op, e, None))
}

/// Every object BlueZ exports (adapters, devices) with its interfaces and properties.
pub(crate) async fn managed_objects(
    conn: &zbus::Connection,
    op: &'static str,
) -> Result<zbus::fdo::ManagedObjects, BleError> {
    object_manager(conn, op)
        .await?
        .get_managed_objects()
        .await
        .map_err(|e| BleError::from_zbus(op, e.into(), None))
}

/// The 16-bit service UUIDs a caBLE v2 advert is carried under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FidoUuid {
    /// 0xFFF9, the FIDO Alliance assignment used by current phones.
    Fff9,
    /// 0xFDE2, Google's older assignment, still sent by some Android builds.
    Fde2,
}

/// Bluetooth base UUID: a 16-bit UUID `xxxx` is `0000xxxx-0000-1000-8000-00805f9b34fb`.
const BASE_UUID: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;

impl FidoUuid {
    /// The 16-bit short form.
    pub fn short(self) -> u16 {
        match self {
            FidoUuid::Fff9 => 0xfff9,
            FidoUuid::Fde2 => 0xfde2,
        }
    }
    /// The full 128-bit UUID as an integer.
    pub fn as_u128(self) -> u128 {
        BASE_UUID | (u128::from(self.short()) << 96)
    }
    /// The full UUID in BlueZ's textual form (lower case), e.g. `0000fff9-0000-1000-8000-00805f9b34fb`.
    pub fn as_bluez_str(self) -> &'static str {
        match self {
            FidoUuid::Fff9 => "0000fff9-0000-1000-8000-00805f9b34fb",
            FidoUuid::Fde2 => "0000fde2-0000-1000-8000-00805f9b34fb",
        }
    }
    /// Recognise a full 128-bit UUID.
    pub fn from_u128(uuid: u128) -> Option<FidoUuid> {
        [FidoUuid::Fff9, FidoUuid::Fde2].into_iter().find(|f| f.as_u128() == uuid)
    }
}

/// A Bluetooth device address, most significant byte first (as printed by BlueZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BleAddress(pub [u8; 6]);

impl fmt::Display for BleAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

/// One caBLE advert as heard on one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAdvert {
    /// The raw service data (20 bytes for a well-formed caBLE v2 advert; not checked here so the
    /// matcher can report malformed ones).
    pub service_data: Vec<u8>,
    /// Which UUID it was carried under.
    pub uuid: FidoUuid,
    /// Signal strength of the latest report from this device, when BlueZ gave one.
    pub rssi: Option<i16>,
    /// The (usually random, rotating) sender address.
    pub address: BleAddress,
    /// The adapter that heard it (`hci0`).
    pub adapter: Arc<str>,
    /// When the scanner received it from BlueZ (for latency accounting).
    pub received_at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fido_uuids_expand_from_the_base_uuid() {
        for f in [FidoUuid::Fff9, FidoUuid::Fde2] {
            let text = format!("{:032x}", f.as_u128());
            let dashed = format!(
                "{}-{}-{}-{}-{}",
                &text[..8],
                &text[8..12],
                &text[12..16],
                &text[16..20],
                &text[20..]
            );
            assert_eq!(dashed, f.as_bluez_str());
            assert_eq!(FidoUuid::from_u128(f.as_u128()), Some(f));
        }
        assert_eq!(FidoUuid::from_u128(BASE_UUID | (0x180f_u128 << 96)), None);
        assert_eq!(BleAddress([0xaa, 0xbb, 0, 1, 2, 0xff]).to_string(), "AA:BB:00:01:02:FF");
    }
}
