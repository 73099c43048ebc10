//! `uhid.permissions`: can this account create the uhid front's virtual FIDO device? Only run
//! when the front is on ([`super::DoctorOptions::uhid_device`]; the daemon sets it from
//! `[uhid] enabled`). The device node is opened read-write, exactly as the front opens it, and
//! closed at once (no device is created: that takes a CREATE2 write).
//!
//! Failure shapes and remedies: no node (the `uhid` module is not loaded → `modprobe uhid`,
//! `/etc/modules-load.d`), not a character device, permission denied (the udev rule
//! `systemd/71-cablebridge-uhid.rules` + the unit drop-in `cablebridged.service.d/uhid.conf`).

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::Check;

const ID: &str = "uhid.permissions";

/// The check for `device` (normally `/dev/uhid`).
pub fn check(device: &Path) -> Check {
    let shown = device.display();
    let meta = match std::fs::metadata(device) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Check::fail(
                ID,
                format!("{shown} does not exist: the uhid kernel module is not loaded"),
                "modprobe uhid, and keep it with `echo uhid > /etc/modules-load.d/uhid.conf`",
            )
        }
        Err(e) => {
            return Check::fail(
                ID,
                format!("cannot inspect {shown}: {e}"),
                "check the path in [uhid] device",
            )
        }
    };
    if !meta.file_type().is_char_device() {
        return Check::fail(
            ID,
            format!("{shown} is not a character device"),
            "point [uhid] device at the kernel's uhid node (/dev/uhid)",
        );
    }
    let mode = meta.mode() & 0o777;
    match std::fs::OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Check::pass(
            ID,
            format!("{shown} opens read-write (mode {mode:04o}, gid {}): the virtual FIDO device can be created", meta.gid()),
        ),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Check::fail(
            ID,
            format!("{shown} is mode {mode:04o}, gid {}: this account may not open it ({e})", meta.gid()),
            "install systemd/71-cablebridge-uhid.rules (group cablebridge, mode 0660; udevadm \
             control --reload && udevadm trigger /dev/uhid) and, for the service, the drop-in \
             cablebridged.service.d/uhid.conf (DeviceAllow=/dev/uhid rw): UHID=1 systemd/install.sh",
        ),
        Err(e) => Check::fail(
            ID,
            format!("opening {shown} failed: {e}"),
            "see the kernel log (dmesg) for uhid errors",
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn missing_node_and_wrong_type_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let c = check(&dir.path().join("uhid"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.remedy.unwrap().contains("modprobe uhid"));
        let file = dir.path().join("plain");
        std::fs::write(&file, b"").unwrap();
        let c = check(&file);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("not a character device"), "{}", c.detail);
    }

    #[test]
    fn a_character_device_that_opens_passes() {
        // /dev/null is a character device anyone may open read-write.
        let c = check(Path::new("/dev/null"));
        assert_eq!(c.status, Status::Pass, "{c:?}");
    }
}
