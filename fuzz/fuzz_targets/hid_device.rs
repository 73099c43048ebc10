//! What a hostile USB device (or whatever sits on the HID bus) controls before the first CTAPHID
//! report: its HID report descriptor (daemon/src/hid/descriptor.rs: the collections, usage
//! pages and report sizes that decide whether it is a FIDO key and its report length), its sysfs
//! `uevent` text (names, ids), and hot-plug uevent messages (daemon/src/hid/hotplug.rs).
#![no_main]

use cablebridged::hid::{descriptor, hotplug, sysfs};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            let _ = descriptor::parse(rest);
            if let Ok(Some(layout)) = descriptor::fido_layout(rest) {
                let _ = format!("{layout:?}");
            }
        }
        1 => {
            if let Some(event) = hotplug::parse_event(rest, Path::new("/dev")) {
                let _ = format!("{event:?}");
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = format!("{:?}", sysfs::parse_hid_uevent(text));
            }
        }
    }
});
