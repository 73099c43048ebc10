//! hidraw enumeration over a fake sysfs tree, and clean failures when opening non-hidraw files.
//! (Real keys: hw-tests/tests/hidraw_real.rs, #[ignore]d.)

// Helpers outside #[test] fns are test code too; clippy.toml only exempts #[test] bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use cablebridge_protocol::error::{Classify, Fault};
use cablebridged::hid::descriptor::FidoReportLayout;
use cablebridged::hid::{enumerate, DeviceAddress, HidDevice, HidError, HidrawOptions, SysRoots};

/// YubiKey 5 FIDO interface descriptor (see src/hid/descriptor_tests.rs for provenance).
const FIDO_DESC: [u8; 34] = [
    0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08,
    0x95, 0x40, 0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91,
    0x02, 0xC0,
];
/// A boot keyboard (HID 1.11 E.6), trimmed to its first fields.
const KEYBOARD_DESC: [u8; 15] =
    [0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x91, 0x02, 0xC0];

struct FakeSys {
    _dir: tempfile::TempDir,
    roots: SysRoots,
}

impl FakeSys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let roots = SysRoots { sys: dir.path().join("sys"), dev: dir.path().join("dev") };
        fs::create_dir_all(roots.sys.join("class/hidraw")).unwrap();
        fs::create_dir_all(&roots.dev).unwrap();
        FakeSys { _dir: dir, roots }
    }

    /// Lays out a USB device → interface → HID device → hidraw chain like the kernel does and
    /// links `class/hidraw/<name>` to it. Returns the HID device directory.
    fn add(&self, name: &str, usb: Option<(&str, &str, &str)>, uevent: Option<&str>) -> PathBuf {
        let usb_dir = self.roots.sys.join("devices/pci0000:00/usb1").join(format!("1-{name}"));
        let hid_dir = usb_dir.join("1-2:1.1/0003:1050:0407.0001");
        let node_dir = hid_dir.join("hidraw").join(name);
        fs::create_dir_all(&node_dir).unwrap();
        if let Some((manufacturer, product, serial)) = usb {
            fs::write(usb_dir.join("idVendor"), "1050\n").unwrap();
            fs::write(usb_dir.join("manufacturer"), format!("{manufacturer}\n")).unwrap();
            fs::write(usb_dir.join("product"), format!("{product}\n")).unwrap();
            fs::write(usb_dir.join("serial"), format!("{serial}\n")).unwrap();
        }
        if let Some(text) = uevent {
            fs::write(hid_dir.join("uevent"), text).unwrap();
        }
        symlink(&hid_dir, node_dir.join("device")).unwrap();
        symlink(&node_dir, self.roots.sys.join("class/hidraw").join(name)).unwrap();
        hid_dir
    }
}

const YUBI_UEVENT: &str =
    "DRIVER=hid-generic\nHID_ID=0003:00001050:00000407\nHID_NAME=Yubico YubiKey OTP+FIDO+CCID\n";

#[test]
fn enumerates_fido_keys_with_identity_and_skips_the_rest() {
    let sys = FakeSys::new();
    let key = sys.add("hidraw1", Some(("Yubico", "YubiKey OTP+FIDO+CCID", "")), Some(YUBI_UEVENT));
    fs::write(key.join("report_descriptor"), FIDO_DESC).unwrap();
    let kb = sys.add("hidraw0", None, Some("HID_ID=0003:0000046D:0000C31C\nHID_NAME=kbd\n"));
    fs::write(kb.join("report_descriptor"), KEYBOARD_DESC).unwrap();
    // A FIDO device on a non-USB bus without uevent or USB parent (e.g. a uhid virtual key).
    let bare = sys.add("hidraw10", None, None);
    fs::write(bare.join("report_descriptor"), FIDO_DESC).unwrap();
    // No report_descriptor at all (driver racing with us): skipped with a reason.
    sys.add("hidraw2", None, None);
    // Unreadable descriptor (a directory stands in for EACCES, which root would bypass).
    let odd = sys.add("hidraw3", None, None);
    fs::create_dir(odd.join("report_descriptor")).unwrap();
    // Malformed descriptor.
    let bad = sys.add("hidraw4", None, None);
    fs::write(bad.join("report_descriptor"), [0x06, 0xD0]).unwrap();

    let found = enumerate(&sys.roots);
    let names: Vec<&str> = found.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["hidraw1", "hidraw10"], "FIDO only, numeric order");

    let yk = &found.devices[0];
    assert_eq!(yk.path, sys.roots.dev.join("hidraw1"));
    assert_eq!((yk.bus, yk.vendor_id, yk.product_id), (Some(3), Some(0x1050), Some(0x0407)));
    assert_eq!(yk.manufacturer.as_deref(), Some("Yubico"));
    assert_eq!(yk.product.as_deref(), Some("YubiKey OTP+FIDO+CCID"));
    assert_eq!(yk.serial, None, "empty serial attribute means none");
    assert_eq!(yk.layout, FidoReportLayout { report_id: None, input_len: 64, output_len: 64 });
    assert!(yk.describe().ends_with("hidraw1: Yubico YubiKey OTP+FIDO+CCID (1050:0407)"));

    let bare = &found.devices[1];
    assert_eq!((bare.vendor_id, bare.manufacturer.as_ref()), (None, None));
    assert!(bare.describe().ends_with("hidraw10: unknown FIDO device"));

    let skipped: Vec<(&str, &str)> =
        found.skipped.iter().map(|s| (s.name.as_str(), s.reason.as_str())).collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].0 == "hidraw2" && skipped[0].1.contains("cannot read"));
    assert!(skipped[1].0 == "hidraw3" && skipped[1].1.contains("cannot read"));
    assert!(skipped[2].0 == "hidraw4" && skipped[2].1.contains("malformed"));
}

#[test]
fn missing_hidraw_class_is_an_empty_list() {
    let roots = SysRoots { sys: PathBuf::from("/nonexistent/sys"), dev: PathBuf::from("/dev") };
    let found = enumerate(&roots);
    assert!(found.devices.is_empty() && found.skipped.is_empty());
}

async fn open_err(path: &Path) -> HidError {
    let options = HidrawOptions::default();
    HidDevice::open(&DeviceAddress::Hidraw(path.to_path_buf()), &options).await.unwrap_err()
}

#[tokio::test]
async fn opening_a_regular_file_fails_cleanly() {
    let sys = FakeSys::new();
    let node = sys.roots.dev.join("hidraw1");
    fs::write(&node, b"").unwrap();
    let err = open_err(&node).await;
    assert!(matches!(err, HidError::NotHidraw { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Caller);
    assert!(err.to_string().contains("not a character device"), "{err}");
}

#[tokio::test]
async fn opening_a_non_hidraw_character_device_fails_cleanly() {
    let err = open_err(Path::new("/dev/null")).await;
    assert!(matches!(err, HidError::NotHidraw { .. }), "{err:?}");
    assert!(err.to_string().contains("HIDIOCGRAWINFO"), "{err}");
}

#[tokio::test]
async fn opening_a_missing_node_says_the_device_is_gone() {
    let err = open_err(Path::new("/nonexistent/hidraw42")).await;
    assert!(matches!(err, HidError::DeviceGone { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Environment);
    assert!(err.to_string().contains("/nonexistent/hidraw42"));
}
