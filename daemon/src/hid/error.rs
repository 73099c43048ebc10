//! The one error type of the HID transport layer.
//!
//! Every variant names the device it concerns and, where the user can do something about it, says
//! what (udev group, another FIDO client, unplugged key). Classification follows STYLE.md
//! principle 5: the OS and other processes are [`Fault::Environment`], a device that describes
//! itself wrongly is [`Fault::Peer`], misuse of the API or a bad device address is
//! [`Fault::Caller`]. All of them happen at [`Stage::CtapHid`], the layer these reports carry.

use std::io;

use cablebridge_protocol::error::{Classify, Fault, Stage};

/// Errors of the HID transports (udp-hid, hidraw, hot-plug).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HidError {
    /// A device address string could not be parsed.
    #[error(
        "invalid HID device address {input:?}: {reason} \
         (expected /dev/hidrawN or udp:HOST:PORT[,local=HOST:PORT])"
    )]
    BadAddress {
        /// What the user typed.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The OS refused access to the device node.
    #[error(
        "permission denied on {device}: add your user (or the daemon's user) to the group of the \
         cablebridge udev rule and re-plug the key, see README \"USB keys\""
    )]
    PermissionDenied {
        /// The device path.
        device: String,
    },
    /// The device node does not exist or the device was unplugged.
    #[error("{device} is gone (unplugged or reset): plug the key in again and retry")]
    DeviceGone {
        /// The device path or address.
        device: String,
    },
    /// Another process holds the advisory lock libfido2-based clients take on the node.
    #[error(
        "busy: another FIDO client holds {device} (ssh, systemd-cryptenroll, a browser?); \
         finish or cancel it and retry"
    )]
    Busy {
        /// The device path.
        device: String,
    },
    /// The path is not a hidraw character device.
    #[error(
        "{device} is not a hidraw device ({reason}); list FIDO keys with `cablebridge devices`"
    )]
    NotHidraw {
        /// The path that was opened.
        device: String,
        /// What was found instead.
        reason: String,
    },
    /// The device is a HID device, but its report descriptor has no FIDO (0xF1D0/0x01) collection.
    #[error(
        "{device} is not a FIDO security key (its report descriptor has no FIDO usage page \
         0xF1D0 collection); list FIDO keys with `cablebridge devices`"
    )]
    NotFido {
        /// The device path.
        device: String,
    },
    /// The report descriptor is malformed or describes report sizes CTAPHID cannot use.
    #[error("{device} has an unusable HID report descriptor: {reason}")]
    BadDescriptor {
        /// The device path (or "descriptor" when parsing bytes alone).
        device: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller passed a report of the wrong length or a receive buffer that is too small.
    #[error("{device}: {reason}")]
    ReportLength {
        /// The device path or address.
        device: String,
        /// Which length was wrong.
        reason: String,
    },
    /// The UDP peer is unreachable (ICMP port unreachable: the simulator is not running).
    #[error(
        "UDP-HID device {device} is unreachable (nothing listens there): start the \
         authenticator simulator or fix the address"
    )]
    Unreachable {
        /// The `udp:` address.
        device: String,
    },
    /// Binding the local UDP address failed.
    #[error("cannot bind local UDP address {local} for {device}: {source}")]
    Bind {
        /// The `udp:` address.
        device: String,
        /// The local address from `local=`.
        local: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The hot-plug (kernel uevent netlink) socket could not be opened.
    #[error("cannot listen for USB hot-plug events ({reason}): {source}")]
    Hotplug {
        /// Which step failed and what it means.
        reason: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Any other OS error on a device.
    #[error("I/O error on {device} while {action}: {source}")]
    Io {
        /// The device path or address.
        device: String,
        /// What we were doing ("reading a report", "opening").
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl HidError {
    /// Maps an OS error on `device` to the most precise variant.
    pub(crate) fn from_io(device: &str, action: &'static str, err: io::Error) -> Self {
        let device = device.to_owned();
        match err.raw_os_error() {
            Some(code) if code == rustix::io::Errno::ACCESS.raw_os_error() => {
                HidError::PermissionDenied { device }
            }
            Some(code) if code == rustix::io::Errno::PERM.raw_os_error() => {
                HidError::PermissionDenied { device }
            }
            // ENODEV/ENXIO: node without a device behind it; EIO: hidraw reports an unplugged
            // device this way on read; ENOENT: the node was removed by udev.
            Some(code)
                if code == rustix::io::Errno::NODEV.raw_os_error()
                    || code == rustix::io::Errno::NXIO.raw_os_error()
                    || code == rustix::io::Errno::IO.raw_os_error()
                    || code == rustix::io::Errno::NOENT.raw_os_error() =>
            {
                HidError::DeviceGone { device }
            }
            _ => HidError::Io { device, action, source: err },
        }
    }
}

impl Classify for HidError {
    fn fault(&self) -> Fault {
        match self {
            HidError::BadAddress { .. }
            | HidError::ReportLength { .. }
            | HidError::NotHidraw { .. }
            | HidError::NotFido { .. } => Fault::Caller,
            HidError::BadDescriptor { .. } => Fault::Peer,
            HidError::PermissionDenied { .. }
            | HidError::DeviceGone { .. }
            | HidError::Busy { .. }
            | HidError::Unreachable { .. }
            | HidError::Bind { .. }
            | HidError::Hotplug { .. }
            | HidError::Io { .. } => Fault::Environment,
        }
    }

    fn stage(&self) -> Stage {
        Stage::CtapHid
    }
}

/// Result alias for this module.
pub type Result<T, E = HidError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_precise_variants() {
        let eacces = io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
        let e = HidError::from_io("/dev/hidraw3", "opening", eacces);
        assert!(matches!(e, HidError::PermissionDenied { .. }));
        assert_eq!(e.fault(), Fault::Environment);
        let msg = e.to_string();
        assert!(msg.contains("/dev/hidraw3") && msg.contains("udev rule"), "{msg}");

        let eio = io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(matches!(
            HidError::from_io("/dev/hidraw3", "reading", eio),
            HidError::DeviceGone { .. }
        ));
        let other = io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error());
        let e = HidError::from_io("/dev/hidraw3", "reading a report", other);
        assert!(matches!(e, HidError::Io { .. }));
        assert!(e.to_string().contains("reading a report"));
    }

    #[test]
    fn classification() {
        let busy = HidError::Busy { device: "/dev/hidraw1".into() };
        assert_eq!(busy.fault(), Fault::Environment);
        assert_eq!(busy.stage(), Stage::CtapHid);
        assert!(busy.to_string().starts_with("busy: another FIDO client holds /dev/hidraw1"));
        let bad = HidError::BadDescriptor { device: "x".into(), reason: "y".into() };
        assert_eq!(bad.fault(), Fault::Peer);
        let addr = HidError::BadAddress { input: "udp:".into(), reason: "r".into() };
        assert_eq!(addr.fault(), Fault::Caller);
    }
}
