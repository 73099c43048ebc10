//! Method-call dispatch of the mock: ObjectManager, Properties, Adapter1, LEAdvertisingManager1.

use super::{adverts, lock, props, State};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zbus::message::{Message, Type};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

pub(crate) type Reply = Result<Message, zbus::Error>;

pub(crate) fn error(msg: &Message, name: &str, text: &str) -> Reply {
    Message::error(&msg.header(), name)?.build(&(text,))
}

fn ok<B: serde::Serialize + zbus::zvariant::DynamicType>(msg: &Message, body: &B) -> Reply {
    Message::method_return(&msg.header())?.build(body)
}

pub(crate) async fn properties_changed(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    changed: Vec<(&str, Value<'_>)>,
) -> zbus::Result<()> {
    let changed: HashMap<&str, Value<'_>> = changed.into_iter().collect();
    conn.emit_signal(
        None::<()>,
        path,
        "org.freedesktop.DBus.Properties",
        "PropertiesChanged",
        &(iface, changed, Vec::<&str>::new()),
    )
    .await
}

pub(crate) async fn interfaces_added(
    conn: &zbus::Connection,
    path: &str,
    ifaces: HashMap<String, props::Props>,
) -> zbus::Result<()> {
    let path = ObjectPath::try_from(path)?;
    conn.emit_signal(
        None::<()>,
        "/",
        "org.freedesktop.DBus.ObjectManager",
        "InterfacesAdded",
        &(path, ifaces),
    )
    .await
}

/// Serve method calls until the connection ends.
pub(crate) async fn run(
    mut stream: zbus::MessageStream,
    conn: zbus::Connection,
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
) {
    while let Some(Ok(msg)) = stream.next().await {
        if msg.message_type() != Type::MethodCall {
            continue;
        }
        let hdr = msg.header();
        let member = hdr.member().map(|m| m.to_string()).unwrap_or_default();
        let iface = hdr.interface().map(|i| i.to_string()).unwrap_or_default();
        if iface == props::ADV_MANAGER {
            // Registration calls back into the caller: never block this loop on it.
            tokio::spawn(adverts::handle(
                msg.clone(),
                member,
                conn.clone(),
                state.clone(),
                changed.clone(),
            ));
            continue;
        }
        let reply = handle(&conn, &state, &msg, &iface, &member).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => match error(&msg, "org.freedesktop.DBus.Error.Failed", &e.to_string()) {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        conn.send(&reply).await.ok();
        changed.notify_waiters();
    }
}

fn path_of(msg: &Message) -> String {
    msg.header().path().map(|p| p.to_string()).unwrap_or_default()
}

/// Interfaces and properties of one object, if it exists.
fn object(st: &State, path: &str) -> Option<HashMap<String, props::Props>> {
    if let Some(name) = path.strip_prefix("/org/bluez/") {
        if let Some(a) = st.adapters.get(name) {
            let mut m = HashMap::from([(props::ADAPTER.to_owned(), props::adapter(a))]);
            if a.spec.can_advertise {
                let active = st.adverts.iter().filter(|r| r.adapter == a.spec.name).count();
                let active = u8::try_from(active).unwrap_or(u8::MAX);
                m.insert(props::ADV_MANAGER.to_owned(), props::adv_manager(active));
            }
            return Some(m);
        }
    }
    let d = st.devices.get(path)?;
    Some(HashMap::from([(props::DEVICE.to_owned(), props::device(d))]))
}

async fn handle(
    conn: &zbus::Connection,
    state: &Mutex<State>,
    msg: &Message,
    iface: &str,
    member: &str,
) -> Reply {
    let path = path_of(msg);
    match (iface, member) {
        ("org.freedesktop.DBus.ObjectManager", "GetManagedObjects") => {
            let st = lock(state);
            let mut all: HashMap<OwnedObjectPath, HashMap<String, props::Props>> = HashMap::new();
            let paths: Vec<String> = st
                .adapters
                .keys()
                .map(|n| format!("/org/bluez/{n}"))
                .chain(st.devices.keys().cloned())
                .collect();
            for p in paths {
                if let (Some(o), Ok(op)) = (object(&st, &p), OwnedObjectPath::try_from(p)) {
                    all.insert(op, o);
                }
            }
            ok(msg, &(all,))
        }
        ("org.freedesktop.DBus.Properties", "GetAll") => {
            let (wanted,): (String,) = msg.body().deserialize()?;
            let found = object(&lock(state), &path).and_then(|mut o| o.remove(&wanted));
            match found {
                Some(p) => ok(msg, &(p,)),
                None => error(msg, "org.freedesktop.DBus.Error.UnknownObject", &path),
            }
        }
        ("org.freedesktop.DBus.Properties", "Get") => {
            let (wanted, name): (String, String) = msg.body().deserialize()?;
            let found = object(&lock(state), &path)
                .and_then(|mut o| o.remove(&wanted))
                .and_then(|mut p| p.remove(&name));
            match found {
                Some(v) => ok(msg, &(v,)),
                None => error(msg, "org.freedesktop.DBus.Error.InvalidArgs", &name),
            }
        }
        ("org.freedesktop.DBus.Properties", "Set") => {
            let (wanted, name, value): (String, String, OwnedValue) = msg.body().deserialize()?;
            let adapter = path.strip_prefix("/org/bluez/").unwrap_or("").to_owned();
            if wanted != props::ADAPTER || name != "Powered" {
                return error(msg, "org.freedesktop.DBus.Error.PropertyReadOnly", &name);
            }
            let on = bool::try_from(&value).unwrap_or(false);
            {
                let mut st = lock(state);
                let Some(a) = st.adapters.get_mut(&adapter) else {
                    return error(msg, "org.freedesktop.DBus.Error.UnknownObject", &path);
                };
                if on && a.spec.rfkill_blocked {
                    return error(msg, "org.bluez.Error.Blocked", "Blocked through rfkill");
                }
                a.powered = on;
            }
            properties_changed(conn, &path, props::ADAPTER, vec![("Powered", Value::from(on))])
                .await?;
            ok(msg, &())
        }
        (props::ADAPTER, "SetDiscoveryFilter") => {
            let (filter,): (HashMap<String, OwnedValue>,) = msg.body().deserialize()?;
            lock(state).discovery_filters.push(filter);
            ok(msg, &())
        }
        (props::ADAPTER, "StartDiscovery" | "StopDiscovery") => {
            let start = member == "StartDiscovery";
            let adapter = path.strip_prefix("/org/bluez/").unwrap_or("").to_owned();
            {
                let mut st = lock(state);
                let Some(a) = st.adapters.get_mut(&adapter) else {
                    return error(msg, "org.freedesktop.DBus.Error.UnknownObject", &path);
                };
                if start && !a.powered {
                    return error(msg, "org.bluez.Error.NotReady", "Resource Not Ready");
                }
                a.discovering = start;
            }
            properties_changed(
                conn,
                &path,
                props::ADAPTER,
                vec![("Discovering", Value::from(start))],
            )
            .await?;
            ok(msg, &())
        }
        ("org.freedesktop.DBus.Introspectable", "Introspect") => ok(msg, &("<node></node>",)),
        ("org.freedesktop.DBus.Peer", "Ping") => ok(msg, &()),
        _ => error(msg, "org.freedesktop.DBus.Error.UnknownMethod", member),
    }
}
