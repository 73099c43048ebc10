//! Enumerating FIDO keys from sysfs, without libudev.
//!
//! Walks `<sys>/class/hidraw/*`, reads each node's `device/report_descriptor` (world-readable, so
//! enumeration works even before the udev rule grants access to `/dev/hidrawN`) and keeps the ones
//! whose descriptor has a FIDO CTAPHID collection ([`super::descriptor`]). Identity comes from the
//! HID device's `uevent` (`HID_ID=0003:00001050:00000407`, `HID_NAME=...`, as libfido2's
//! `parse_uevent` reads it) and, when the key is on USB, from the ancestor `usb_device`'s
//! `manufacturer`/`product`/`serial` attributes. Both roots are configurable so tests run over a
//! fake tree in a tempdir. This module does not open device nodes; see [`super::hidraw`].

use std::fs;
use std::path::{Path, PathBuf};

use super::descriptor::{fido_layout, FidoReportLayout};

/// Where sysfs and device nodes live (`/sys` and `/dev` outside tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoots {
    /// The sysfs mount point.
    pub sys: PathBuf,
    /// The directory holding `hidrawN` nodes.
    pub dev: PathBuf,
}

impl Default for SysRoots {
    fn default() -> Self {
        SysRoots { sys: PathBuf::from("/sys"), dev: PathBuf::from("/dev") }
    }
}

/// A FIDO key found on a hidraw node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HidrawInfo {
    /// The device node, e.g. `/dev/hidraw3`.
    pub path: PathBuf,
    /// The kernel name, e.g. `hidraw3`.
    pub name: String,
    /// Bus type from `HID_ID` (0x0003 USB, 0x0005 Bluetooth, 0x0006 virtual).
    pub bus: Option<u16>,
    /// USB vendor id.
    pub vendor_id: Option<u16>,
    /// USB product id.
    pub product_id: Option<u16>,
    /// `HID_NAME` (usually "Manufacturer Product").
    pub hid_name: Option<String>,
    /// The USB device's manufacturer string.
    pub manufacturer: Option<String>,
    /// The USB device's product string.
    pub product: Option<String>,
    /// The USB device's serial number string.
    pub serial: Option<String>,
    /// Report ID and sizes from the report descriptor.
    pub layout: FidoReportLayout,
}

impl HidrawInfo {
    /// One-line human description: `/dev/hidraw3: Yubico YubiKey OTP+FIDO+CCID (1050:0407)`.
    pub fn describe(&self) -> String {
        let name = match (&self.manufacturer, &self.product, &self.hid_name) {
            (Some(m), Some(p), _) => format!("{m} {p}"),
            (_, _, Some(n)) => n.clone(),
            (_, Some(p), None) => p.clone(),
            _ => "unknown FIDO device".to_owned(),
        };
        match (self.vendor_id, self.product_id) {
            (Some(v), Some(p)) => format!("{}: {name} ({v:04x}:{p:04x})", self.path.display()),
            _ => format!("{}: {name}", self.path.display()),
        }
    }
}

/// A hidraw node that could not be classified, kept so `doctor` can say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedNode {
    /// The kernel name, e.g. `hidraw2`.
    pub name: String,
    /// What went wrong.
    pub reason: String,
}

/// Result of a scan: the FIDO keys and the nodes that could not be examined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enumeration {
    /// FIDO keys, sorted by node name.
    pub devices: Vec<HidrawInfo>,
    /// Nodes whose descriptor was unreadable or malformed (non-FIDO devices are not listed).
    pub skipped: Vec<SkippedNode>,
}

/// Identity fields of a HID device's `uevent` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HidUevent {
    /// Bus type.
    pub bus: Option<u16>,
    /// Vendor id.
    pub vendor_id: Option<u16>,
    /// Product id.
    pub product_id: Option<u16>,
    /// `HID_NAME`.
    pub name: Option<String>,
}

/// Parses a HID device `uevent` file (`KEY=value` lines).
pub fn parse_hid_uevent(text: &str) -> HidUevent {
    let mut out = HidUevent::default();
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("HID_ID=") {
            // Kernel format "%04X:%08X:%08X"; vendor/product ids are 16-bit on every bus we use.
            let mut fields = id.split(':').map(|f| u32::from_str_radix(f, 16).ok());
            if let (Some(Some(bus)), Some(Some(vendor)), Some(Some(product))) =
                (fields.next(), fields.next(), fields.next())
            {
                out.bus = u16::try_from(bus).ok();
                out.vendor_id = u16::try_from(vendor & 0xFFFF).ok();
                out.product_id = u16::try_from(product & 0xFFFF).ok();
            }
        } else if let Some(name) = line.strip_prefix("HID_NAME=") {
            out.name = Some(name.to_owned()).filter(|n| !n.is_empty());
        }
    }
    out
}

fn read_attr(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim_end_matches(['\n', '\0']).trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Finds the nearest ancestor that is a `usb_device` (it has `idVendor`), staying inside `sys`.
fn usb_device_dir(hid_dir: &Path, sys: &Path) -> Option<PathBuf> {
    let sys = sys.canonicalize().ok()?;
    // hidraw's parent is the HID device, whose parent is the USB interface, whose parent is the
    // usb_device: three levels suffice; a few more tolerate hubs of virtual drivers.
    hid_dir
        .ancestors()
        .skip(1)
        .take(4)
        .take_while(|dir| dir.starts_with(&sys) && *dir != sys)
        .find(|dir| dir.join("idVendor").is_file())
        .map(Path::to_path_buf)
}

/// Examines one hidraw node by kernel name. `Ok(None)`: not a FIDO device.
pub fn examine(roots: &SysRoots, name: &str) -> Result<Option<HidrawInfo>, String> {
    let hid_dir = roots.sys.join("class/hidraw").join(name).join("device");
    let desc_path = hid_dir.join("report_descriptor");
    let desc =
        fs::read(&desc_path).map_err(|e| format!("cannot read {}: {e}", desc_path.display()))?;
    let layout = match fido_layout(&desc) {
        Ok(Some(layout)) => layout,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("malformed report descriptor: {}", e.0)),
    };
    let ids = read_attr(&hid_dir.join("uevent")).map(|t| parse_hid_uevent(&t)).unwrap_or_default();
    let usb = hid_dir.canonicalize().ok().and_then(|dir| usb_device_dir(&dir, &roots.sys));
    let usb_attr = |attr: &str| usb.as_ref().and_then(|dir| read_attr(&dir.join(attr)));
    Ok(Some(HidrawInfo {
        path: roots.dev.join(name),
        name: name.to_owned(),
        bus: ids.bus,
        vendor_id: ids.vendor_id,
        product_id: ids.product_id,
        hid_name: ids.name,
        manufacturer: usb_attr("manufacturer"),
        product: usb_attr("product"),
        serial: usb_attr("serial"),
        layout,
    }))
}

/// Lists the FIDO keys on hidraw nodes. A missing `class/hidraw` (no hidraw driver loaded, or a
/// container without sysfs) is an empty list, not an error.
pub fn enumerate(roots: &SysRoots) -> Enumeration {
    let mut out = Enumeration::default();
    let Ok(entries) = fs::read_dir(roots.sys.join("class/hidraw")) else {
        return out;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("hidraw"))
        .collect();
    // Numeric order so hidraw10 sorts after hidraw9.
    names.sort_by_key(|n| (n.len(), n.clone()));
    for name in names {
        match examine(roots, &name) {
            Ok(Some(info)) => out.devices.push(info),
            Ok(None) => {}
            Err(reason) => out.skipped.push(SkippedNode { name, reason }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yubikey_uevent() {
        let text = "DRIVER=hid-generic\nHID_ID=0003:00001050:00000407\n\
                    HID_NAME=Yubico YubiKey OTP+FIDO+CCID\nHID_PHYS=usb-0000:00:14.0-2/input1\n\
                    HID_UNIQ=\nMODALIAS=hid:b0003g0001v00001050p00000407\n";
        let ids = parse_hid_uevent(text);
        assert_eq!(ids.bus, Some(3));
        assert_eq!(ids.vendor_id, Some(0x1050));
        assert_eq!(ids.product_id, Some(0x0407));
        assert_eq!(ids.name.as_deref(), Some("Yubico YubiKey OTP+FIDO+CCID"));
    }

    #[test]
    fn malformed_uevent_yields_no_ids() {
        let ids = parse_hid_uevent("HID_ID=0003:zz:00000407\nHID_NAME=\n");
        assert_eq!(ids, HidUevent::default());
    }
}
