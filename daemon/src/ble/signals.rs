//! Typed, borrowing views of the two BlueZ signals the scanner reads.
//!
//! * `org.freedesktop.DBus.Properties.PropertiesChanged` — body `sa{sv}as`: the interface, the
//!   changed properties, the invalidated names. For `org.bluez.Device1` the scanner wants
//!   `ServiceData` (`a{sv}`, each value `ay`) and `RSSI` (`n`); for `org.bluez.Adapter1`,
//!   `Powered` (`b`).
//! * `org.freedesktop.DBus.ObjectManager.InterfacesAdded` — body `oa{sa{sv}}`: a new object and
//!   its interfaces' properties; a new `Device1` (a new, often rotated, address) carries its first
//!   advert here.
//!
//! Both are deserialised straight from the message bytes with zvariant's serde visitors: the
//! interface names and property names are borrowed `&str`, service data is a borrowed `&[u8]`,
//! and every property the scanner does not use (Address, Alias, UUIDs, ManufacturerData...) is
//! skipped without being built. A property whose variant carries an unexpected type (a `ServiceData`
//! that is not `a{sv}`, an entry that is not `ay`, an `RSSI` that is not `n`) is skipped and
//! counted in [`Props::malformed`] — never an error for the whole signal, never a panic.
//!
//! What this is not: matching, de-duplication or the D-Bus subscription (see `scan`).

use super::FidoUuid;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize as _, Deserializer};
use std::collections::HashMap;
use std::fmt;
use zbus::zvariant::{ObjectPath, Signature, Type, Value};

pub(crate) const DEVICE_IFACE: &str = "org.bluez.Device1";
pub(crate) const ADAPTER_IFACE: &str = "org.bluez.Adapter1";

/// The advert-related properties of one `Device1` / `Adapter1` property dictionary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Props<'a> {
    /// FIDO service data by [`FidoUuid`] index (0xFFF9, then 0xFDE2).
    pub fido: [Option<&'a [u8]>; 2],
    /// The dictionary carried advert content (ServiceData, ManufacturerData, UUIDs): an advert,
    /// FIDO or not. RSSI-only and Powered-only changes are not adverts.
    pub advert: bool,
    pub rssi: Option<i16>,
    pub powered: Option<bool>,
    /// Properties (or service-data entries) skipped because of an unexpected variant type.
    pub malformed: u32,
}

impl<'a> Props<'a> {
    /// The FIDO entries present, in a fixed order.
    pub fn fido_entries(&self) -> impl Iterator<Item = (FidoUuid, &'a [u8])> + '_ {
        [FidoUuid::Fff9, FidoUuid::Fde2]
            .into_iter()
            .zip(self.fido)
            .filter_map(|(u, d)| Some((u, d?)))
    }
}

fn fido_slot(uuid: &str) -> Option<usize> {
    [FidoUuid::Fff9, FidoUuid::Fde2]
        .iter()
        .position(|f| f.as_bluez_str().eq_ignore_ascii_case(uuid))
}

/// `PropertiesChanged` body.
#[derive(Debug)]
pub(crate) struct PropertiesChanged<'a> {
    pub interface: &'a str,
    pub props: Props<'a>,
}

impl Type for PropertiesChanged<'_> {
    const SIGNATURE: &'static Signature = <(
        &'static str,
        HashMap<&'static str, Value<'static>>,
        Vec<&'static str>,
    ) as Type>::SIGNATURE;
}

impl<'de> serde::Deserialize<'de> for PropertiesChanged<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PropertiesChanged<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("PropertiesChanged (sa{sv}as)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let interface: &'de str =
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let props = seq
                    .next_element_seed(PropsSeed)?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                // The invalidated names: consumed, unused.
                let _: Option<IgnoredAny> = seq.next_element()?;
                Ok(PropertiesChanged { interface, props })
            }
        }
        d.deserialize_tuple(3, V)
    }
}

/// `InterfacesAdded` body, reduced to the object path and its `Device1` properties (if any).
#[derive(Debug)]
pub(crate) struct InterfacesAdded<'a> {
    pub path: &'a str,
    pub device: Option<Props<'a>>,
}

impl Type for InterfacesAdded<'_> {
    const SIGNATURE: &'static Signature = <(
        ObjectPath<'static>,
        HashMap<&'static str, HashMap<&'static str, Value<'static>>>,
    ) as Type>::SIGNATURE;
}

impl<'de> serde::Deserialize<'de> for InterfacesAdded<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InterfacesAdded<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("InterfacesAdded (oa{sa{sv}})")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let path: &'de str =
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let device = seq
                    .next_element_seed(DeviceOfInterfaces)?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Ok(InterfacesAdded { path, device })
            }
        }
        d.deserialize_tuple(2, V)
    }
}

/// `a{sa{sv}}` → the `Device1` dictionary, other interfaces skipped.
struct DeviceOfInterfaces;

impl<'de> DeserializeSeed<'de> for DeviceOfInterfaces {
    type Value = Option<Props<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DeviceOfInterfaces {
    type Value = Option<Props<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a{sa{sv}}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut device = None;
        while let Some(iface) = map.next_key::<&'de str>()? {
            if iface == DEVICE_IFACE {
                device = Some(map.next_value_seed(PropsSeed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(device)
    }
}

/// `a{sv}` → [`Props`].
struct PropsSeed;

impl<'de> DeserializeSeed<'de> for PropsSeed {
    type Value = Props<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PropsSeed {
    type Value = Props<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a{sv}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut p = Props::default();
        while let Some(name) = map.next_key::<&'de str>()? {
            match name {
                "ServiceData" => {
                    p.advert = true;
                    match map.next_value_seed(Variant("a{sv}", ServiceDataSeed))? {
                        Some(sd) => {
                            p.fido = sd.fido;
                            p.malformed += sd.malformed;
                        }
                        None => p.malformed += 1,
                    }
                }
                "RSSI" => match map.next_value_seed(Variant("n", I16))? {
                    Some(r) => p.rssi = Some(r),
                    None => p.malformed += 1,
                },
                "Powered" => match map.next_value_seed(Variant("b", Bool))? {
                    Some(b) => p.powered = Some(b),
                    None => p.malformed += 1,
                },
                "ManufacturerData" | "UUIDs" => {
                    p.advert = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

/// The FIDO entries of a `ServiceData` dictionary.
struct ServiceData<'a> {
    fido: [Option<&'a [u8]>; 2],
    malformed: u32,
}

/// `a{sv}` with `ay` values → [`ServiceData`].
#[derive(Clone, Copy)]
struct ServiceDataSeed;

impl<'de> DeserializeSeed<'de> for ServiceDataSeed {
    type Value = ServiceData<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ServiceDataSeed {
    type Value = ServiceData<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a{sv} of ay")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut sd = ServiceData { fido: [None, None], malformed: 0 };
        while let Some(uuid) = map.next_key::<&'de str>()? {
            let data = map.next_value_seed(Variant("ay", Bytes))?;
            match (fido_slot(uuid), data) {
                (_, None) => sd.malformed += 1,
                (Some(slot), Some(d)) => {
                    if let Some(s) = sd.fido.get_mut(slot) {
                        *s = Some(d);
                    }
                }
                (None, Some(_)) => {}
            }
        }
        Ok(sd)
    }
}

/// A `v` whose content is decoded with the inner seed only when its signature is exactly the
/// expected one; otherwise the content is consumed unparsed and the result is `None`.
#[derive(Clone, Copy)]
struct Variant<S>(&'static str, S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for Variant<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        // zvariant presents a `v` as a two-element sequence: its signature, then its value.
        d.deserialize_seq(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for Variant<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a variant holding {}", self.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let signature: &'de str =
            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        if signature == self.0 {
            seq.next_element_seed(self.1)?
                .map(Some)
                .ok_or_else(|| de::Error::invalid_length(1, &self))
        } else {
            seq.next_element::<IgnoredAny>()?;
            Ok(None)
        }
    }
}

#[derive(Clone, Copy)]
struct Bytes;

impl<'de> DeserializeSeed<'de> for Bytes {
    type Value = &'de [u8];
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <&'de [u8]>::deserialize(d)
    }
}

#[derive(Clone, Copy)]
struct I16;

impl<'de> DeserializeSeed<'de> for I16 {
    type Value = i16;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <i16 as serde::Deserialize>::deserialize(d)
    }
}

#[derive(Clone, Copy)]
struct Bool;

impl<'de> DeserializeSeed<'de> for Bool {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <bool as serde::Deserialize>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::message::Message;

    const FFF9: &str = "0000fff9-0000-1000-8000-00805f9b34fb";
    const FDE2: &str = "0000fde2-0000-1000-8000-00805f9b34fb";
    const DEV: &str = "/org/bluez/hci0/dev_4A_01_02_03_04_05";

    fn sd(entries: &[(&str, Value<'static>)]) -> Value<'static> {
        let m: HashMap<String, Value<'static>> =
            entries.iter().map(|(k, v)| ((*k).to_owned(), v.try_clone().unwrap())).collect();
        Value::from(m)
    }

    /// A signal as BlueZ would send it, through zbus's own message encoding.
    fn signal<B: serde::Serialize + zbus::zvariant::DynamicType>(
        path: &str,
        iface: &str,
        member: &str,
        body: &B,
    ) -> Message {
        Message::signal(path, iface, member).unwrap().build(body).unwrap()
    }

    fn changed(body: HashMap<&str, Value<'_>>) -> Message {
        let body = (DEVICE_IFACE, body, vec!["Name"]);
        signal(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged", &body)
    }

    #[test]
    fn properties_changed_yields_fido_data_rssi_and_counts_bad_types() {
        let msg = changed(HashMap::from([
            (
                "ServiceData",
                sd(&[
                    (FFF9, Value::from(vec![1u8, 2, 3])),
                    (FDE2, Value::from("not bytes")),
                    ("0000180f-0000-1000-8000-00805f9b34fb", Value::from(vec![9u8])),
                ]),
            ),
            ("RSSI", Value::from(-61i16)),
            ("Alias", Value::from("phone")),
            ("ManufacturerData", Value::from(HashMap::from([(76u16, Value::from(vec![1u8]))]))),
        ]));
        let body = msg.body();
        let pc: PropertiesChanged<'_> = body.deserialize().unwrap();
        assert_eq!(pc.interface, DEVICE_IFACE);
        assert_eq!(pc.props.fido, [Some(&[1u8, 2, 3][..]), None]);
        assert_eq!((pc.props.rssi, pc.props.malformed, pc.props.advert), (Some(-61), 1, true));

        // ServiceData of the wrong shape altogether, RSSI as a string.
        let msg = changed(HashMap::from([
            ("ServiceData", Value::from(vec![1u8, 2])),
            ("RSSI", Value::from("loud")),
        ]));
        let body = msg.body();
        let pc: PropertiesChanged<'_> = body.deserialize().unwrap();
        assert_eq!((pc.props.fido, pc.props.rssi, pc.props.malformed), ([None, None], None, 2));

        // RSSI alone is not an advert; Powered is read for adapters.
        let msg = changed(HashMap::from([("RSSI", Value::from(-3i16))]));
        let body = msg.body();
        let pc: PropertiesChanged<'_> = body.deserialize().unwrap();
        assert!(!pc.props.advert);
        let msg = signal(
            "/org/bluez/hci0",
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
            &(ADAPTER_IFACE, HashMap::from([("Powered", Value::from(false))]), Vec::<&str>::new()),
        );
        let body = msg.body();
        let pc: PropertiesChanged<'_> = body.deserialize().unwrap();
        assert_eq!((pc.interface, pc.props.powered), (ADAPTER_IFACE, Some(false)));

        // A body of another signature is an error, not a panic.
        let msg = signal(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged", &(1u32,));
        assert!(msg.body().deserialize::<PropertiesChanged<'_>>().is_err());
    }

    #[test]
    fn interfaces_added_picks_the_device_dictionary() {
        let device: HashMap<&str, Value<'_>> = HashMap::from([
            ("Address", Value::from("4A:01:02:03:04:05")),
            ("ServiceData", sd(&[(FDE2, Value::from(vec![7u8; 20]))])),
            ("RSSI", Value::from(-40i16)),
        ]);
        let other: HashMap<&str, Value<'_>> = HashMap::from([("X", Value::from(1u32))]);
        let ifaces =
            HashMap::from([("org.freedesktop.DBus.Properties", other), (DEVICE_IFACE, device)]);
        let path = ObjectPath::try_from(DEV).unwrap();
        let om = "org.freedesktop.DBus.ObjectManager";
        let msg = signal("/", om, "InterfacesAdded", &(path, ifaces));
        let body = msg.body();
        let ia: InterfacesAdded<'_> = body.deserialize().unwrap();
        assert_eq!(ia.path, DEV);
        let p = ia.device.unwrap();
        assert_eq!(p.fido_entries().collect::<Vec<_>>(), [(FidoUuid::Fde2, &[7u8; 20][..])]);
        assert_eq!(p.rssi, Some(-40));

        let ifaces: HashMap<&str, HashMap<&str, Value<'_>>> =
            HashMap::from([(ADAPTER_IFACE, HashMap::from([("Powered", Value::from(true))]))]);
        let path = ObjectPath::try_from("/org/bluez/hci1").unwrap();
        let msg = signal("/", om, "InterfacesAdded", &(path, ifaces));
        let body = msg.body();
        let ia: InterfacesAdded<'_> = body.deserialize().unwrap();
        assert!(ia.device.is_none());
    }
}
