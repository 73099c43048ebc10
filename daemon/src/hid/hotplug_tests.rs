//! uevent parser tests over kernel- and udev-framed messages.

use super::*;

/// Captured on this machine class from a NETLINK_KOBJECT_UEVENT socket (group 1) after
/// `echo change > /sys/class/mem/null/uevent`: the exact kernel framing, a non-hidraw subsystem.
const CAPTURED_MEM_NULL: &[u8] = b"change@/devices/virtual/mem/null\0ACTION=change\0\
DEVPATH=/devices/virtual/mem/null\0SUBSYSTEM=mem\0SYNTH_UUID=0\0MAJOR=1\0MINOR=3\0DEVNAME=null\0\
DEVMODE=0666\0SEQNUM=814\0";

/// A YubiKey's hidraw node appearing, in the same kernel framing (kobject_uevent_env emits
/// ACTION, DEVPATH, SUBSYSTEM, then the class's MAJOR/MINOR/DEVNAME, then SEQNUM).
const HIDRAW_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.1/\
0003:1050:0407.0005/hidraw/hidraw3\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/\
1-2/1-2:1.1/0003:1050:0407.0005/hidraw/hidraw3\0SUBSYSTEM=hidraw\0MAJOR=243\0MINOR=3\0\
DEVNAME=hidraw3\0SEQNUM=4521\0";

fn hidraw_remove() -> Vec<u8> {
    let text = std::str::from_utf8(HIDRAW_ADD).unwrap().replace("add", "remove");
    text.into_bytes()
}

/// libudev's monitor framing around the given properties.
fn udev_framed(props: &[u8]) -> Vec<u8> {
    let header_size = 40u32;
    let mut msg = b"libudev\0".to_vec();
    msg.extend_from_slice(&0xfeed_cafe_u32.to_be_bytes());
    msg.extend_from_slice(&header_size.to_ne_bytes());
    msg.extend_from_slice(&header_size.to_ne_bytes()); // properties_off
    msg.extend_from_slice(&(props.len() as u32).to_ne_bytes());
    msg.extend_from_slice(&[0u8; 16]); // filter hashes and tag bloom
    assert_eq!(msg.len(), header_size as usize);
    msg.extend_from_slice(props);
    msg
}

#[test]
fn captured_kernel_message_parses_but_is_not_hidraw() {
    let props = properties(CAPTURED_MEM_NULL).unwrap();
    assert!(props.contains(&("SUBSYSTEM", "mem")));
    assert!(props.contains(&("DEVNAME", "null")));
    assert_eq!(props.len(), 9);
    assert_eq!(parse_event(CAPTURED_MEM_NULL, Path::new("/dev")), None);
}

#[test]
fn hidraw_add_and_remove() {
    let dev = Path::new("/dev");
    assert_eq!(
        parse_event(HIDRAW_ADD, dev),
        Some(HotplugEvent::Added(PathBuf::from("/dev/hidraw3")))
    );
    assert_eq!(
        parse_event(&hidraw_remove(), Path::new("/tmp/fakedev")),
        Some(HotplugEvent::Removed(PathBuf::from("/tmp/fakedev/hidraw3")))
    );
}

#[test]
fn other_actions_are_ignored() {
    let text = std::str::from_utf8(HIDRAW_ADD).unwrap().replace("add", "change");
    assert_eq!(parse_event(text.as_bytes(), Path::new("/dev")), None);
}

#[test]
fn udev_framing_with_absolute_devname() {
    let props = b"ACTION=add\0DEVPATH=/devices/x/hidraw/hidraw7\0SUBSYSTEM=hidraw\0\
DEVNAME=/dev/hidraw7\0SEQNUM=9\0USEC_INITIALIZED=123\0";
    let msg = udev_framed(props);
    assert_eq!(
        parse_event(&msg, Path::new("/ignored")),
        Some(HotplugEvent::Added(PathBuf::from("/dev/hidraw7")))
    );
}

#[test]
fn malformed_messages_are_ignored_without_panicking() {
    let dev = Path::new("/dev");
    // No "ACTION@DEVPATH" summary (e.g. a stray non-kernel message).
    assert_eq!(parse_event(b"ACTION=add\0SUBSYSTEM=hidraw\0DEVNAME=hidraw1\0", dev), None);
    // libudev prefix, wrong magic.
    let mut bad = udev_framed(b"ACTION=add\0SUBSYSTEM=hidraw\0DEVNAME=/dev/hidraw1\0");
    bad[8] ^= 0xff;
    assert_eq!(parse_event(&bad, dev), None);
    // libudev header whose properties run past the end.
    let good = udev_framed(b"ACTION=add\0SUBSYSTEM=hidraw\0DEVNAME=/dev/hidraw1\0");
    assert_eq!(parse_event(&good[..good.len() - 5], dev), None);
    // Path tricks in DEVNAME.
    let evil = b"add@/x\0ACTION=add\0SUBSYSTEM=hidraw\0DEVNAME=../etc/hidraw1\0";
    assert_eq!(parse_event(evil, dev), None);
    let not_hidraw = b"add@/x\0ACTION=add\0SUBSYSTEM=hidraw\0DEVNAME=sda\0";
    assert_eq!(parse_event(not_hidraw, dev), None);
    for cut in 0..HIDRAW_ADD.len() {
        let _ = parse_event(&HIDRAW_ADD[..cut], dev);
    }
}
