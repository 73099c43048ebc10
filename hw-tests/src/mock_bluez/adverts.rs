//! The mock's `LEAdvertisingManager1`: registration reads the caller's exported
//! `LEAdvertisement1` over the bus (`Properties.GetAll`, as BlueZ does), follows its
//! `PropertiesChanged` (BlueZ ≥ 5.50 behaviour), and with loop-back enabled republishes the
//! service data as a `Device1` so a scanner on the same mock hears the "phone".

use super::dispatch::{error, interfaces_added, properties_changed, Reply};
use super::{device_path, lock, props, DeviceState, State};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use zbus::message::{Message, Type};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

const ADV_IFACE: &str = "org.bluez.LEAdvertisement1";
/// Like a typical controller: at most 5 concurrent advertisement instances.
const MAX_INSTANCES: usize = 5;

/// An advertisement as the mock read it from its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredAdvert {
    pub adapter: String,
    /// Unique bus name of the registering connection.
    pub owner: String,
    pub path: String,
    /// `Type`: "broadcast" or "peripheral".
    pub kind: String,
    pub service_uuids: Vec<String>,
    /// UUID → data.
    pub service_data: BTreeMap<String, Vec<u8>>,
    /// `PropertiesChanged` updates applied since registration.
    pub updates: u32,
    /// Address of the loop-back device.
    pub loop_address: [u8; 6],
}

pub(crate) async fn handle(
    msg: Message,
    member: String,
    conn: zbus::Connection,
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
) {
    let reply = match member.as_str() {
        "RegisterAdvertisement" => register(&msg, &conn, &state, &changed).await,
        "UnregisterAdvertisement" => unregister(&msg, &state),
        _ => error(&msg, "org.freedesktop.DBus.Error.UnknownMethod", &member),
    };
    let reply = reply.or_else(|e| error(&msg, "org.bluez.Error.Failed", &e.to_string()));
    if let Ok(r) = reply {
        conn.send(&r).await.ok();
    }
    changed.notify_waiters();
}

fn service_data_of(v: &OwnedValue) -> BTreeMap<String, Vec<u8>> {
    let Ok(map) = HashMap::<String, OwnedValue>::try_from(
        v.try_clone().unwrap_or_else(|_| OwnedValue::from(0u8)),
    ) else {
        return BTreeMap::new();
    };
    map.into_iter().filter_map(|(k, v)| Some((k, Vec::<u8>::try_from(v).ok()?))).collect()
}

async fn register(
    msg: &Message,
    conn: &zbus::Connection,
    state: &Arc<Mutex<State>>,
    changed: &Arc<tokio::sync::Notify>,
) -> Reply {
    let hdr = msg.header();
    let (path, _options): (OwnedObjectPath, HashMap<String, OwnedValue>) =
        msg.body().deserialize()?;
    let adapter = hdr
        .path()
        .and_then(|p| p.as_str().strip_prefix("/org/bluez/").map(str::to_owned))
        .unwrap_or_default();
    let Some(owner) = hdr.sender().map(|s| s.to_string()) else {
        return error(msg, "org.bluez.Error.InvalidArguments", "no sender");
    };
    {
        let st = lock(state);
        match st.adapters.get(&adapter) {
            Some(a) if a.spec.can_advertise => {}
            _ => return error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "no such adapter"),
        }
        if st.adverts.iter().any(|a| a.owner == owner && a.path == path.as_str()) {
            return error(msg, "org.bluez.Error.AlreadyExists", "Already Exists");
        }
        if st.adverts.iter().filter(|a| a.adapter == adapter).count() >= MAX_INSTANCES {
            return error(msg, "org.bluez.Error.NotPermitted", "Maximum advertisements reached");
        }
    }
    // Subscribe before reading so no update between the two is lost.
    let rule = zbus::MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(owner.as_str())?
        .path(path.as_str())?
        .interface("org.freedesktop.DBus.Properties")?
        .member("PropertiesChanged")?
        .build();
    let mut updates = zbus::MessageStream::for_match_rule(rule, conn, Some(64)).await?;
    let props_reply = conn
        .call_method(
            Some(owner.as_str()),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "GetAll",
            &(ADV_IFACE,),
        )
        .await;
    let Ok(props_reply) = props_reply else {
        return error(msg, "org.bluez.Error.Failed", "Failed to parse advertisement.");
    };
    let props: HashMap<String, OwnedValue> = props_reply.body().deserialize()?;
    let kind = props
        .get("Type")
        .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_default();
    if kind != "broadcast" && kind != "peripheral" {
        return error(msg, "org.bluez.Error.InvalidArguments", "Invalid Type");
    }
    let service_uuids = props
        .get("ServiceUUIDs")
        .and_then(|v| Vec::<String>::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_default();
    let service_data = props.get("ServiceData").map(service_data_of).unwrap_or_default();
    let advert = {
        let mut st = lock(state);
        st.adverts_ever = st.adverts_ever.wrapping_add(1);
        let advert = RegisteredAdvert {
            adapter,
            owner: owner.clone(),
            path: path.to_string(),
            kind,
            service_uuids,
            service_data,
            updates: 0,
            loop_address: [0xc0, 0xff, 0xee, 0x00, 0x00, st.adverts_ever],
        };
        st.adverts.push(advert.clone());
        advert
    };
    loopback(conn, state, &advert).await?;

    let key = format!("{owner} {}", path.as_str());
    let (conn2, state2, changed2) = (conn.clone(), state.clone(), changed.clone());
    let watcher = tokio::spawn(async move {
        while let Some(Ok(sig)) = updates.next().await {
            let Ok((iface, props, _)) =
                sig.body().deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
            else {
                continue;
            };
            let Some(data) = props.get("ServiceData").filter(|_| iface == ADV_IFACE) else {
                continue;
            };
            let data = service_data_of(data);
            let updated = {
                let mut st = lock(&state2);
                let found =
                    st.adverts.iter_mut().find(|a| a.owner == owner && a.path == path.as_str());
                found.map(|a| {
                    a.service_data = data;
                    a.updates += 1;
                    a.clone()
                })
            };
            if let Some(a) = updated {
                loopback(&conn2, &state2, &a).await.ok();
            }
            changed2.notify_waiters();
        }
    });
    lock(state).advert_watchers.insert(key, watcher.abort_handle());
    Message::method_return(&hdr)?.build(&())
}

fn unregister(msg: &Message, state: &Mutex<State>) -> Reply {
    let hdr = msg.header();
    let (path,): (OwnedObjectPath,) = msg.body().deserialize()?;
    let owner = hdr.sender().map(|s| s.to_string()).unwrap_or_default();
    let mut st = lock(state);
    let before = st.adverts.len();
    st.adverts.retain(|a| !(a.owner == owner && a.path == path.as_str()));
    if st.adverts.len() == before {
        return error(msg, "org.bluez.Error.DoesNotExist", "Does Not Exist");
    }
    if let Some(w) = st.advert_watchers.remove(&format!("{owner} {}", path.as_str())) {
        w.abort();
    }
    Message::method_return(&hdr)?.build(&())
}

/// Republish `advert` as a device on the loop-back adapter (new device or a later advert).
async fn loopback(
    conn: &zbus::Connection,
    state: &Mutex<State>,
    advert: &RegisteredAdvert,
) -> zbus::Result<()> {
    let (path, existing, device) = {
        let mut st = lock(state);
        let Some(target) = st.loopback.clone() else {
            return Ok(());
        };
        let path = device_path(&target, &advert.loop_address);
        let existing = st.devices.contains_key(&path);
        let device = DeviceState {
            address: advert.loop_address,
            rssi: Some(-42),
            service_data: advert.service_data.clone(),
        };
        st.devices.insert(path.clone(), device.clone());
        (path, existing, device)
    };
    if existing {
        let value: Value<'_> = props::service_data(&device);
        properties_changed(conn, &path, props::DEVICE, vec![("ServiceData", value)]).await
    } else {
        let ifaces = HashMap::from([(props::DEVICE.to_owned(), props::device(&device))]);
        interfaces_added(conn, &path, ifaces).await
    }
}
