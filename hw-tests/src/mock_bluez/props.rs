//! Property dictionaries of the mock's objects, shaped exactly as bluez-async expects them.
//!
//! bluez-async silently ignores an object that lacks a property it requires (no event, no
//! error), so every property listed in ../shared/notes/testing-without-radios.md is here.

use super::{AdapterState, DeviceState};
use std::collections::HashMap;
use zbus::zvariant::{OwnedValue, Value};

pub(crate) const ADAPTER: &str = "org.bluez.Adapter1";
pub(crate) const DEVICE: &str = "org.bluez.Device1";
pub(crate) const ADV_MANAGER: &str = "org.bluez.LEAdvertisingManager1";

pub(crate) type Props = HashMap<String, OwnedValue>;

fn owned(v: Value<'_>) -> OwnedValue {
    // Only fd-carrying values can fail to convert; none of ours carry fds.
    v.try_to_owned().unwrap_or_else(|_| OwnedValue::from(0u8))
}

pub(crate) fn address_string(a: &[u8; 6]) -> String {
    a.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

pub(crate) fn adapter(a: &AdapterState) -> Props {
    let name = a.spec.name.clone();
    HashMap::from([
        ("Address".into(), owned(Value::from(address_string(&a.spec.address)))),
        ("AddressType".into(), owned(Value::from("public"))),
        ("Name".into(), owned(Value::from(format!("mock-{name}")))),
        ("Alias".into(), owned(Value::from(format!("mock-{name}")))),
        // Parsed by bluez-async: "usb:vVVVVpPPPPdDDDD".
        ("Modalias".into(), owned(Value::from("usb:v1D6Bp0246d0548"))),
        ("Powered".into(), owned(Value::from(a.powered))),
        ("Discovering".into(), owned(Value::from(a.discovering))),
        ("Discoverable".into(), owned(Value::from(false))),
        ("Pairable".into(), owned(Value::from(false))),
        ("Class".into(), owned(Value::from(0u32))),
        ("UUIDs".into(), owned(Value::from(Vec::<String>::new()))),
    ])
}

pub(crate) fn adv_manager(active: u8) -> Props {
    HashMap::from([
        ("ActiveInstances".into(), owned(Value::from(active))),
        ("SupportedInstances".into(), owned(Value::from(5u8.saturating_sub(active)))),
        ("SupportedIncludes".into(), owned(Value::from(vec!["tx-power".to_owned()]))),
    ])
}

pub(crate) fn service_data(d: &DeviceState) -> Value<'static> {
    let map: HashMap<String, Value<'static>> = d
        .service_data
        .iter()
        .map(|(uuid, data)| (uuid.clone(), Value::from(data.clone())))
        .collect();
    Value::from(map)
}

pub(crate) fn device(d: &DeviceState) -> Props {
    let mut p: Props = HashMap::from([
        ("Address".into(), owned(Value::from(address_string(&d.address)))),
        ("AddressType".into(), owned(Value::from("random"))),
        ("Alias".into(), owned(Value::from(address_string(&d.address).replace(':', "-")))),
        ("Paired".into(), owned(Value::from(false))),
        ("Bonded".into(), owned(Value::from(false))),
        ("Connected".into(), owned(Value::from(false))),
        ("ServicesResolved".into(), owned(Value::from(false))),
        ("Trusted".into(), owned(Value::from(false))),
        ("Blocked".into(), owned(Value::from(false))),
        ("LegacyPairing".into(), owned(Value::from(false))),
        ("UUIDs".into(), owned(Value::from(Vec::<String>::new()))),
        ("ServiceData".into(), owned(service_data(d))),
    ]);
    if let Some(rssi) = d.rssi {
        p.insert("RSSI".into(), owned(Value::from(rssi)));
    }
    p
}
