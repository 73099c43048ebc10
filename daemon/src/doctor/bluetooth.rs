//! `bluetooth.*`: can this user, on this machine, hear a phone's caBLE advert (desktop role) and
//! advertise one (phone role)?
//!
//! The steps build on each other and a failed step skips the ones that need it, saying why:
//! 1. `bluetooth.bus` — a zbus connection to the system bus.
//! 2. `bluetooth.bluez` — `org.bluez` has an owner (else: installed-but-stopped vs not installed,
//!    from the bus's activatable names).
//! 3. `bluetooth.adapter` / `bluetooth.powered` / `bluetooth.advertising` — BlueZ's object tree
//!    (`GetManagedObjects`): **every** adapter, its `Powered`, its `LEAdvertisingManager1`
//!    `ActiveInstances`/`SupportedInstances`.
//! 4. `bluetooth.scan` — the real scanner ([`crate::ble::scan`]: btleplug, all adapters,
//!    unfiltered) for the scan window, counting every advert and the FIDO ones (0xFFF9/0xFDE2).
//!    "Nothing at all" means a deaf radio; "others but no FIDO" means no phone is advertising.
//! 5. `bluetooth.permission` — StartDiscovery (step 4) and RegisterAdvertisement (a 20-byte test
//!    advert via [`crate::ble::AdvertisingAdapter`], unregistered at once) were accepted by the
//!    D-Bus policy; the remedy names the group the installed bus policy allows.
//! 6. `bluetooth.rfkill` — `/sys/class/rfkill` (soft/hard blocks of type bluetooth) plus BlueZ's
//!    own `org.bluez.Error.Blocked` from steps 4–5.
//! 7. `bluetooth.policy` — main.conf settings, see [`super::bluez_conf`].

use super::os::Account;
use super::{bluez_conf, Check, DoctorOptions, Status};
use crate::ble::{self, AdvertiseOptions, AdvertisingAdapter, BleAddress, BleError, ScanOptions};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tokio::time::{timeout, timeout_at, Instant};

use crate::ble::BLUEZ;
const ADAPTER_IFACE: &str = "org.bluez.Adapter1";
const ADV_MANAGER_IFACE: &str = "org.bluez.LEAdvertisingManager1";
const IDS: [&str; 9] = [
    "bluetooth.bus",
    "bluetooth.bluez",
    "bluetooth.adapter",
    "bluetooth.powered",
    "bluetooth.rfkill",
    "bluetooth.permission",
    "bluetooth.scan",
    "bluetooth.advertising",
    "bluetooth.policy",
];

/// One adapter as BlueZ describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AdapterInfo {
    name: String,
    address: String,
    alias: String,
    powered: bool,
    /// `(ActiveInstances, SupportedInstances)` when it has `LEAdvertisingManager1`.
    advertising: Option<(u8, u8)>,
}

/// One `/sys/class/rfkill/rfkillN` switch of type bluetooth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RfkillSwitch {
    id: String,
    name: String,
    soft: bool,
    hard: bool,
}

/// Reads the Bluetooth rfkill switches under `<sys>/class/rfkill` (empty when there are none).
pub(crate) fn read_rfkill(sys: &Path) -> Vec<RfkillSwitch> {
    let Ok(dir) = std::fs::read_dir(sys.join("class/rfkill")) else {
        return Vec::new();
    };
    let mut out: Vec<RfkillSwitch> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            let attr =
                |a: &str| std::fs::read_to_string(p.join(a)).ok().map(|s| s.trim().to_owned());
            if attr("type")? != "bluetooth" {
                return None;
            }
            Some(RfkillSwitch {
                id: e.file_name().to_string_lossy().into_owned(),
                name: attr("name").unwrap_or_default(),
                soft: attr("soft").as_deref() == Some("1"),
                hard: attr("hard").as_deref() == Some("1"),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// What [`BleError`] means for an admin: `(detail, remedy)`.
pub(crate) fn diagnose(e: &BleError) -> (String, String) {
    match e {
        BleError::NoSystemBus { detail } => (
            format!("no D-Bus system bus ({detail})"),
            "start D-Bus (systemctl start dbus); if DBUS_SYSTEM_BUS_ADDRESS is set, make it name the system bus".into(),
        ),
        BleError::BluezNotRunning => (
            "nobody owns org.bluez on the system bus: bluetoothd is not running".into(),
            "systemctl enable --now bluetooth".into(),
        ),
        BleError::AccessDenied { detail } => (
            format!("the D-Bus policy refused the call to org.bluez ({detail})"),
            "see bluetooth.permission".into(),
        ),
        BleError::NoAdapter { wanted } => (
            match wanted {
                Some(w) => format!("BlueZ has no adapter named {w}"),
                None => "BlueZ runs but has no Bluetooth adapter".into(),
            },
            "plug in a Bluetooth LE adapter or enable the built-in one (BIOS/UEFI); `btmgmt info` and `dmesg | grep -i bluetooth` show firmware or driver errors".into(),
        ),
        BleError::RfkillBlocked { adapter } => (
            format!("{adapter} is rfkill-blocked (BlueZ answered org.bluez.Error.Blocked)"),
            "rfkill unblock bluetooth (or switch off airplane mode / switch Bluetooth on in the desktop settings)".into(),
        ),
        BleError::AdapterPoweredOff { adapter } => (
            format!("{adapter} is powered off and could not be used"),
            format!("bluetoothctl power on (adapter {adapter}); if that fails, check rfkill"),
        ),
        BleError::AdapterRemoved { adapter } => (
            format!("{adapter} disappeared while in use (unplugged, or the controller reset)"),
            "re-plug the adapter; `dmesg | grep -i bluetooth` shows controller resets".into(),
        ),
        BleError::BluezVanished => (
            "bluetoothd left the system bus while in use (stopped or crashed)".into(),
            "journalctl -u bluetooth shows why; then systemctl restart bluetooth".into(),
        ),
        BleError::AdvertisingUnsupported { adapter } => (
            format!("{adapter} has no LEAdvertisingManager1 (no LE advertising)"),
            "only the phone role needs it: use an LE-capable controller and BlueZ >= 5.43".into(),
        ),
        BleError::AdvertisementRejected { name, message } => (
            format!("BlueZ refused a test advertisement: {name}: {message}"),
            "free an advertising slot (stop other advertisers, e.g. bluetoothctl advertise off) and retry".into(),
        ),
        BleError::InvalidServiceData { len } => (
            format!("internal error: test advert of {len} bytes"),
            "report this as a cablebridge bug".into(),
        ),
        BleError::Dbus { operation, name, message } => (
            format!("D-Bus error during {operation}: {name}: {message}"),
            "journalctl -u bluetooth may say more".into(),
        ),
        BleError::Bluetooth { operation, detail } => (
            format!("Bluetooth error during {operation}: {detail}"),
            "journalctl -u bluetooth may say more".into(),
        ),
    }
}

fn check_from(id: &str, status: Status, e: &BleError) -> Check {
    let (detail, remedy) = diagnose(e);
    Check { id: id.into(), status, detail, remedy: Some(remedy) }
}

/// The groups the installed D-Bus policy lets talk to org.bluez (`<policy group="...">` blocks
/// mentioning org.bluez); `bluetooth` when the files cannot be read.
fn bluez_policy_groups() -> Vec<String> {
    let mut groups = Vec::new();
    for path in ["/etc/dbus-1/system.d/bluetooth.conf", "/usr/share/dbus-1/system.d/bluetooth.conf"]
    {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        for block in text.split("<policy").skip(1) {
            let body = block.split("</policy>").next().unwrap_or("");
            if !body.contains("org.bluez") {
                continue;
            }
            if let Some(rest) = body.trim_start().strip_prefix("group=\"") {
                if let Some(name) = rest.split('"').next() {
                    if !groups.iter().any(|g| g == name) {
                        groups.push(name.to_owned());
                    }
                }
            }
        }
    }
    if groups.is_empty() {
        groups.push("bluetooth".into());
    }
    groups
}

fn permission_remedy(account: &Account) -> String {
    let group = bluez_policy_groups().into_iter().next().unwrap_or_else(|| "bluetooth".into());
    let user = &account.user;
    format!(
        "add {user} to the '{group}' group (usermod -aG {group} {user}, then log in again; for the \
         daemon: SupplementaryGroups={group} in cablebridged.service), or allow it in \
         /etc/dbus-1/system.d/bluetooth.conf: <policy user=\"{user}\"><allow \
         send_destination=\"org.bluez\"/></policy>"
    )
}

/// Everything the steps found; turned into checks in [`IDS`] order at the end.
#[derive(Default)]
struct Findings {
    checks: HashMap<&'static str, Check>,
    /// Why the remaining checks could not run.
    stopped: Option<String>,
    adapters: Vec<AdapterInfo>,
    /// Adapters BlueZ reported as rfkill-blocked during the active steps.
    blocked: Vec<String>,
    /// An adapter scanned successfully.
    scanned: bool,
    /// StartDiscovery outcome: `Some(true)` accepted by the bus policy, `Some(false)` denied.
    discovery_allowed: Option<bool>,
    /// RegisterAdvertisement outcome, as above.
    advertise_allowed: Option<bool>,
    denied: Option<BleError>,
    advert_probe: Option<Result<String, BleError>>,
}

impl Findings {
    fn put(&mut self, c: Check) {
        if let Some(id) = IDS.iter().find(|i| **i == c.id) {
            self.checks.insert(id, c);
        }
    }
    fn note_error(&mut self, e: &BleError) {
        match e {
            BleError::RfkillBlocked { adapter } => self.blocked.push(adapter.clone()),
            BleError::AccessDenied { .. } => self.denied = Some(e.clone()),
            _ => {}
        }
    }
}

/// Runs the Bluetooth section.
pub async fn run(opts: &DoctorOptions) -> Vec<Check> {
    let account = Account::current();
    let mut f = Findings::default();
    if let Err(why) = probe(opts, &mut f).await {
        f.stopped = Some(why);
    }
    f.put(rfkill_check(&read_rfkill(&opts.sys_root), &f));
    f.put(permission_check(&f, &account));
    f.put(bluez_conf::check(&opts.bluez_main_conf));
    let why = f.stopped.clone().unwrap_or_else(|| "not reached".into());
    IDS.iter()
        .map(|id| {
            f.checks.remove(id).unwrap_or_else(|| Check::skip(*id, format!("skipped: {why}")))
        })
        .collect()
}

fn bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into())
}

async fn probe(opts: &DoctorOptions, f: &mut Findings) -> Result<(), String> {
    let t = opts.step_timeout;
    let late = |what: &str| format!("{what} did not answer within {t:?}");

    // 1. The bus.
    let conn = match timeout(t, zbus::Connection::system()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let e = BleError::from_zbus("connect to the system bus", e, None);
            f.put(check_from("bluetooth.bus", Status::Fail, &e));
            return Err("no D-Bus system bus".into());
        }
        Err(_) => {
            f.put(Check::fail(
                "bluetooth.bus",
                late("the D-Bus system bus"),
                "check the bus daemon: systemctl status dbus",
            ));
            return Err("no D-Bus system bus".into());
        }
    };
    f.put(Check::pass(
        "bluetooth.bus",
        format!("connected to the D-Bus system bus ({})", bus_address()),
    ));

    // 2. BlueZ on the bus.
    let dbus_err = |e: zbus::Error| BleError::from_zbus("ask the bus about org.bluez", e, None);
    let owner = async {
        let proxy = zbus::fdo::DBusProxy::new(&conn).await.map_err(dbus_err)?;
        let name = zbus::names::BusName::try_from(BLUEZ).map_err(|e| dbus_err(e.into()))?;
        let present = proxy.name_has_owner(name).await.map_err(|e| dbus_err(e.into()))?;
        let activatable = if present {
            false
        } else {
            proxy
                .list_activatable_names()
                .await
                .map(|names| names.iter().any(|n| n.as_str() == BLUEZ))
                .unwrap_or(false)
        };
        Ok::<_, BleError>((present, activatable))
    };
    match timeout(t, owner).await {
        Ok(Ok((true, _))) => {
            f.put(Check::pass("bluetooth.bluez", "org.bluez (bluetoothd) is on the system bus"))
        }
        Ok(Ok((false, activatable))) => {
            let remedy = if activatable {
                "BlueZ is installed (org.bluez is D-Bus activatable) but not running: systemctl enable --now bluetooth"
            } else {
                "install BlueZ (apt install bluez / dnf install bluez) and systemctl enable --now bluetooth"
            };
            f.put(Check::fail(
                "bluetooth.bluez",
                "nobody owns org.bluez on the system bus: bluetoothd is not running",
                remedy,
            ));
            return Err("BlueZ is not running".into());
        }
        Ok(Err(e)) => {
            f.put(check_from("bluetooth.bluez", Status::Fail, &e));
            return Err("BlueZ could not be asked for".into());
        }
        Err(_) => {
            f.put(Check::fail("bluetooth.bluez", late("the bus daemon"), "systemctl status dbus"));
            return Err("the bus did not answer".into());
        }
    }

    // 3. Every adapter, from BlueZ's object tree.
    match timeout(t, adapters(&conn)).await {
        Ok(Ok(list)) => f.adapters = list,
        Ok(Err(e)) => {
            f.note_error(&e);
            if matches!(e, BleError::AccessDenied { .. }) {
                f.discovery_allowed = Some(false);
                return Err(
                    "the D-Bus policy denies access to org.bluez (see bluetooth.permission)".into(),
                );
            }
            f.put(check_from("bluetooth.adapter", Status::Fail, &e));
            return Err("BlueZ's adapters could not be listed".into());
        }
        Err(_) => {
            f.put(Check::fail(
                "bluetooth.adapter",
                late("BlueZ (GetManagedObjects)"),
                "bluetoothd is hanging: journalctl -u bluetooth, then systemctl restart bluetooth",
            ));
            return Err("BlueZ did not answer".into());
        }
    }
    if f.adapters.is_empty() {
        let (detail, remedy) = diagnose(&BleError::NoAdapter { wanted: None });
        f.put(Check::fail("bluetooth.adapter", detail, remedy));
        return Err("no Bluetooth adapter".into());
    }
    let listed: Vec<String> =
        f.adapters.iter().map(|a| format!("{} ({}, \"{}\")", a.name, a.address, a.alias)).collect();
    f.put(Check::pass(
        "bluetooth.adapter",
        format!("{} adapter(s): {}", f.adapters.len(), listed.join(", ")),
    ));
    f.put(powered_check(&f.adapters));

    // 4. The scan window (also the StartDiscovery permission probe).
    scan_step(opts, f).await;

    // 5. A test advertisement (RegisterAdvertisement permission and slots).
    let advert = async {
        let adapter = AdvertisingAdapter::open(AdvertiseOptions::default()).await?;
        let handle = adapter.advertise(&rand::random::<[u8; 20]>()).await?;
        let name = handle.adapter().to_owned();
        handle.stop().await?;
        Ok::<_, BleError>(name)
    };
    let probe = match timeout(t, advert).await {
        Ok(r) => r,
        Err(_) => Err(BleError::Bluetooth {
            operation: "register advertisement",
            detail: format!("no answer within {t:?}"),
        }),
    };
    match &probe {
        Ok(_) => f.advertise_allowed = Some(true),
        Err(BleError::AccessDenied { .. }) => f.advertise_allowed = Some(false),
        Err(BleError::AdvertisementRejected { .. } | BleError::RfkillBlocked { .. }) => {
            f.advertise_allowed = Some(true)
        }
        Err(_) => {}
    }
    if let Err(e) = &probe {
        f.note_error(e);
    }
    f.advert_probe = Some(probe);
    f.put(advertising_check(f));
    Ok(())
}

async fn adapters(conn: &zbus::Connection) -> Result<Vec<AdapterInfo>, BleError> {
    let op = "list adapters";
    let objects = ble::managed_objects(conn, op).await?;
    let mut out: Vec<AdapterInfo> = objects
        .iter()
        .filter_map(|(path, ifaces)| {
            let props = ifaces.iter().find(|(i, _)| i.as_str() == ADAPTER_IFACE)?.1;
            let text = |k: &str| {
                props.get(k).and_then(|v| <&str>::try_from(v).ok()).unwrap_or("?").to_owned()
            };
            let advertising =
                ifaces.iter().find(|(i, _)| i.as_str() == ADV_MANAGER_IFACE).map(|(_, p)| {
                    let n = |k: &str| p.get(k).and_then(|v| u8::try_from(v).ok()).unwrap_or(0);
                    (n("ActiveInstances"), n("SupportedInstances"))
                });
            Some(AdapterInfo {
                name: path.as_str().strip_prefix("/org/bluez/")?.to_owned(),
                address: text("Address"),
                alias: text("Alias"),
                powered: props.get("Powered").and_then(|v| bool::try_from(v).ok()).unwrap_or(false),
                advertising,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn powered_check(adapters: &[AdapterInfo]) -> Check {
    let off: Vec<&str> = adapters.iter().filter(|a| !a.powered).map(|a| a.name.as_str()).collect();
    let states: Vec<String> = adapters
        .iter()
        .map(|a| format!("{} {}", a.name, if a.powered { "on" } else { "off" }))
        .collect();
    if off.is_empty() {
        return Check::pass("bluetooth.powered", states.join(", "));
    }
    Check::warn(
        "bluetooth.powered",
        format!(
            "{} (before the doctor's scan; cablebridge powers an adapter on to scan, browsers may \
             not and then offer \"use a phone\" only to fail)",
            states.join(", ")
        ),
        format!(
            "bluetoothctl power on (adapter {}); to keep it on after boot or re-plug set \
             AutoEnable=true under [Policy] in /etc/bluetooth/main.conf",
            off.join(", ")
        ),
    )
}

async fn scan_step(opts: &DoctorOptions, f: &mut Findings) {
    let window = opts.scan_window;
    if window.is_zero() {
        f.put(Check::skip("bluetooth.scan", "skipped: scan window is 0 s (--scan-seconds 0)"));
        return;
    }
    let started = match timeout(opts.step_timeout, ble::scan(ScanOptions::default())).await {
        Ok(r) => r,
        Err(_) => Err(BleError::Bluetooth {
            operation: "start scan",
            detail: format!("no answer within {:?}", opts.step_timeout),
        }),
    };
    let mut scan = match started {
        Ok(s) => s,
        Err(e) => {
            f.note_error(&e);
            f.discovery_allowed = match e {
                BleError::AccessDenied { .. } => Some(false),
                BleError::NoSystemBus { .. } | BleError::BluezNotRunning => None,
                _ => Some(true),
            };
            let (detail, remedy) = diagnose(&e);
            let detail = match e {
                BleError::RfkillBlocked { .. } => format!("cannot scan, radio blocked: {detail}"),
                _ => format!("cannot scan: {detail}"),
            };
            f.put(Check::fail("bluetooth.scan", detail, remedy));
            return;
        }
    };
    f.discovery_allowed = Some(true);
    f.scanned = true;
    let skipped: Vec<String> = scan
        .skipped()
        .iter()
        .map(|e| {
            f.note_error(e);
            diagnose(e).0
        })
        .collect();
    let on: Vec<String> = scan.adapters().iter().map(|a| a.name.clone()).collect();
    let deadline = Instant::now() + window;
    let mut senders: HashSet<BleAddress> = HashSet::new();
    let mut terminal = None;
    loop {
        match timeout_at(deadline, scan.recv()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Ok(advert))) => {
                senders.insert(advert.address);
            }
            Ok(Some(Err(e))) => {
                terminal = Some(e);
                break;
            }
        }
    }
    let stats = scan.stats();
    drop(scan);
    let total = stats.fido_adverts + stats.foreign_events;
    let secs = window.as_secs_f64();
    let mut detail = format!(
        "{total} advert(s) in {secs:.0} s on {}: {} FIDO (0xFFF9/0xFDE2) from {} sender(s)",
        on.join(", "),
        stats.fido_adverts,
        senders.len()
    );
    if !skipped.is_empty() {
        detail.push_str(&format!("; not scanned: {}", skipped.join("; ")));
    }
    let check = if let Some(e) = terminal {
        f.note_error(&e);
        let (d, remedy) = diagnose(&e);
        Check::fail("bluetooth.scan", format!("{detail}; then the scan ended: {d}"), remedy)
    } else if stats.fido_adverts > 0 {
        Check::pass("bluetooth.scan", format!("{detail} — a phone is advertising nearby"))
    } else if total > 0 {
        Check::pass(
            "bluetooth.scan",
            format!(
                "{detail} — the radio receives; no phone is offering hybrid right now (expected \
                 unless one is showing a passkey prompt)"
            ),
        )
    } else {
        Check::warn(
            "bluetooth.scan",
            format!(
                "{detail} — heard nothing at all: the radio may be deaf, not just no phone nearby"
            ),
            "run `bluetoothctl scan on` (nearby devices should appear within seconds); if none \
             do, check rfkill, `btmgmt info` (LE enabled?), and any site policy that blocks LE \
             scanning; then re-run with a longer window (--scan-seconds 30)",
        )
    };
    f.put(check);
}

fn advertising_check(f: &Findings) -> Check {
    let id = "bluetooth.advertising";
    let capable: Vec<&AdapterInfo> =
        f.adapters.iter().filter(|a| a.advertising.is_some()).collect();
    if capable.is_empty() {
        return Check::warn(
            id,
            "no adapter offers LE advertising (no org.bluez.LEAdvertisingManager1): scanning (the \
             desktop role) is unaffected, the phone role (bridge, virtual phone over the radio) \
             cannot advertise",
            "for the phone role use an LE-capable controller and BlueZ >= 5.43",
        );
    }
    let slots: Vec<String> = capable
        .iter()
        .map(|a| {
            let (active, free) = a.advertising.unwrap_or((0, 0));
            format!("{}: {active} active, {free} free instance(s)", a.name)
        })
        .collect();
    let slots = slots.join("; ");
    match &f.advert_probe {
        Some(Ok(adapter)) => Check::pass(
            id,
            format!("{slots}; a test advertisement registered and unregistered on {adapter}"),
        ),
        Some(Err(e @ BleError::AdvertisementRejected { .. })) => {
            let (d, remedy) = diagnose(e);
            Check::warn(id, format!("{slots}; {d}"), remedy)
        }
        Some(Err(e))
            if capable.iter().all(|a| a.advertising.is_some_and(|(_, free)| free == 0)) =>
        {
            let (d, _) = diagnose(e);
            Check::warn(
                id,
                format!("{slots}: no free advertisement instance; {d}"),
                "stop other advertisers (bluetoothctl advertise off, other BLE apps) to free a slot",
            )
        }
        Some(Err(BleError::AccessDenied { .. })) => {
            Check::skip(id, format!("{slots}; registration denied (see bluetooth.permission)"))
        }
        Some(Err(e)) => {
            let (d, remedy) = diagnose(e);
            Check::warn(id, format!("{slots}; test advertisement failed: {d}"), remedy)
        }
        None => Check::skip(id, format!("{slots}; not probed")),
    }
}

fn rfkill_check(switches: &[RfkillSwitch], f: &Findings) -> Check {
    let id = "bluetooth.rfkill";
    let hard: Vec<String> =
        switches.iter().filter(|s| s.hard).map(|s| format!("{} ({})", s.id, s.name)).collect();
    let soft: Vec<String> = switches
        .iter()
        .filter(|s| s.soft && !s.hard)
        .map(|s| format!("{} ({})", s.id, s.name))
        .collect();
    let mut dbus_blocked = f.blocked.clone();
    dbus_blocked.sort();
    dbus_blocked.dedup();
    if hard.is_empty() && soft.is_empty() && dbus_blocked.is_empty() {
        let listed: Vec<String> =
            switches.iter().map(|s| format!("{} ({})", s.id, s.name)).collect();
        return Check::pass(
            id,
            match (listed.is_empty(), f.discovery_allowed.or(f.advertise_allowed).is_some()) {
                (true, true) => {
                    "no Bluetooth rfkill switch in /sys/class/rfkill and no block reported by BlueZ"
                        .into()
                }
                (true, false) => "no Bluetooth rfkill switch in /sys/class/rfkill".into(),
                (false, _) => format!("not blocked: {}", listed.join(", ")),
            },
        );
    }
    let mut parts = Vec::new();
    if !hard.is_empty() {
        parts.push(format!("hard-blocked: {}", hard.join(", ")));
    }
    if !soft.is_empty() {
        parts.push(format!("soft-blocked: {}", soft.join(", ")));
    }
    if !dbus_blocked.is_empty() {
        parts.push(format!(
            "BlueZ answered org.bluez.Error.Blocked for {}",
            dbus_blocked.join(", ")
        ));
    }
    let remedy = if hard.is_empty() {
        "rfkill unblock bluetooth (or switch off airplane mode / switch Bluetooth on in the desktop \
         settings); if it returns after a reboot, look for TLP or systemd-rfkill saving the block"
            .to_owned()
    } else {
        "a hardware switch, airplane-mode key or BIOS/UEFI setting disables the radio: turn it on \
         there (rfkill unblock cannot lift a hard block)"
            .to_owned()
    };
    // Another adapter scanning means hybrid still works, through that one.
    let status = if f.scanned { Status::Warn } else { Status::Fail };
    Check { id: id.into(), status, detail: parts.join("; "), remedy: Some(remedy) }
}

fn permission_check(f: &Findings, account: &Account) -> Check {
    let id = "bluetooth.permission";
    let who = format!("uid {} ({})", account.uid, account.user);
    let denied = f.denied.as_ref().map(|e| diagnose(e).0).unwrap_or_default();
    match (f.discovery_allowed, f.advertise_allowed) {
        (Some(false), _) => Check::fail(
            id,
            format!("{who} may not use BlueZ: {denied}"),
            permission_remedy(account),
        ),
        (Some(true), Some(true)) => {
            Check::pass(id, format!("{who} may start discovery and register an advertisement"))
        }
        (Some(true), Some(false)) => Check::warn(
            id,
            format!(
                "{who} may start discovery (desktop role) but not register an advertisement \
                 (phone role): {denied}"
            ),
            permission_remedy(account),
        ),
        (None, Some(false)) => Check::fail(
            id,
            format!("{who} may not register an advertisement: {denied}"),
            permission_remedy(account),
        ),
        (Some(true), None) => Check::pass(
            id,
            format!("{who} may start discovery (advertisement registration not tested)"),
        ),
        (None, Some(true)) => Check::pass(
            id,
            format!("{who} may register an advertisement (discovery not tested: no scan window)"),
        ),
        (None, None) => match &f.stopped {
            Some(why) => Check::skip(id, format!("skipped: {why}")),
            None => Check::skip(id, "neither discovery nor advertising could be tried"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings() -> Findings {
        Findings::default()
    }

    #[test]
    fn rfkill_reads_sysfs_and_names_the_block() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |n: &str, ty: &str, name: &str, soft: &str, hard: &str| {
            let d = dir.path().join("class/rfkill").join(n);
            std::fs::create_dir_all(&d).ok();
            for (a, v) in [("type", ty), ("name", name), ("soft", soft), ("hard", hard)] {
                std::fs::write(d.join(a), format!("{v}\n")).ok();
            }
        };
        mk("rfkill0", "wlan", "phy0", "1", "0");
        mk("rfkill1", "bluetooth", "hci0", "1", "0");
        let sw = read_rfkill(dir.path());
        assert_eq!(sw.len(), 1, "only bluetooth switches: {sw:?}");
        let c = rfkill_check(&sw, &findings());
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("soft-blocked: rfkill1 (hci0)"), "{c:?}");
        assert!(c.remedy.as_deref().unwrap_or("").contains("rfkill unblock bluetooth"));

        mk("rfkill1", "bluetooth", "hci0", "0", "1");
        let c = rfkill_check(&read_rfkill(dir.path()), &findings());
        assert!(c.detail.contains("hard-blocked"), "{c:?}");
        assert!(c.remedy.as_deref().unwrap_or("").contains("cannot lift a hard block"));

        mk("rfkill1", "bluetooth", "hci0", "0", "0");
        assert_eq!(rfkill_check(&read_rfkill(dir.path()), &findings()).status, Status::Pass);
        assert_eq!(rfkill_check(&[], &findings()).status, Status::Pass);
    }

    #[test]
    fn every_ble_error_has_a_remedy() {
        let all = [
            BleError::NoSystemBus { detail: "x".into() },
            BleError::BluezNotRunning,
            BleError::AccessDenied { detail: "x".into() },
            BleError::NoAdapter { wanted: None },
            BleError::RfkillBlocked { adapter: "hci0".into() },
            BleError::AdapterPoweredOff { adapter: "hci0".into() },
            BleError::AdapterRemoved { adapter: "hci0".into() },
            BleError::BluezVanished,
            BleError::AdvertisingUnsupported { adapter: "hci0".into() },
            BleError::AdvertisementRejected { name: "n".into(), message: "m".into() },
            BleError::Dbus { operation: "op", name: "n".into(), message: "m".into() },
            BleError::Bluetooth { operation: "op", detail: "d".into() },
        ];
        for e in all {
            let (detail, remedy) = diagnose(&e);
            assert!(!detail.is_empty() && !remedy.is_empty(), "{e:?}");
        }
    }

    #[test]
    fn permission_denied_names_user_and_group() {
        let account = Account { uid: 1000, user: "alice".into(), gids: vec![1000] };
        let f = Findings {
            discovery_allowed: Some(false),
            denied: Some(BleError::AccessDenied { detail: "policy".into() }),
            ..Findings::default()
        };
        let c = permission_check(&f, &account);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("uid 1000 (alice)"), "{c:?}");
        let remedy = c.remedy.unwrap_or_default();
        assert!(remedy.contains("usermod -aG") && remedy.contains("alice"), "{remedy}");
    }
}
