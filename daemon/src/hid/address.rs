//! Device addresses as users type them: `/dev/hidrawN` or `udp:HOST:PORT[,local=HOST:PORT]`.
//!
//! Parsing is pure (no DNS): host names are kept as text and resolved when the transport opens,
//! so `FromStr` never blocks and a typo is reported before any IO. The `udp:` form is the
//! authenticator-simulator convention (see shared/notes/testing-without-radios.md "UDP-HID"):
//! `local=` fixes the client's own port for simulators that always answer to a fixed port
//! (the SoloKeys PC build answers to 7112).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::error::HidError;

/// Where a HID device is.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAddress {
    /// A Linux hidraw node (any absolute path; opening checks it really is hidraw).
    Hidraw(PathBuf),
    /// A UDP-HID peer: one report per datagram, no report-ID byte.
    Udp(UdpAddress),
}

/// `HOST:PORT` as typed, resolved at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port number.
    pub port: u16,
}

/// The parts of a `udp:` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAddress {
    /// The device (simulator) address.
    pub remote: HostPort,
    /// The local address to bind (`local=`); an ephemeral port on the matching wildcard if absent.
    pub local: Option<HostPort>,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for UdpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "udp:{}", self.remote)?;
        if let Some(local) = &self.local {
            write!(f, ",local={local}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceAddress::Hidraw(path) => write!(f, "{}", path.display()),
            DeviceAddress::Udp(udp) => udp.fmt(f),
        }
    }
}

fn bad(input: &str, reason: impl Into<String>) -> HidError {
    HidError::BadAddress { input: input.to_owned(), reason: reason.into() }
}

/// Parses `HOST:PORT` or `[V6]:PORT`; `allow_zero` permits port 0 (ephemeral, for `local=`).
fn parse_host_port(input: &str, text: &str, allow_zero: bool) -> Result<HostPort, HidError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) =
            rest.split_once(']').ok_or_else(|| bad(input, "unclosed '[' in IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| bad(input, format!("missing :PORT after [{host}]")))?;
        (host, port)
    } else {
        let (host, port) =
            text.rsplit_once(':').ok_or_else(|| bad(input, format!("{text:?} has no :PORT")))?;
        if host.contains(':') {
            return Err(bad(input, "IPv6 hosts must be written in brackets, e.g. [::1]:8111"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad(input, format!("{text:?} has an empty host")));
    }
    if host.chars().any(|c| c.is_whitespace() || c == ',' || c == '/') {
        return Err(bad(input, format!("host {host:?} contains an invalid character")));
    }
    let port: u16 =
        port.parse().map_err(|_| bad(input, format!("port {port:?} is not a number 0-65535")))?;
    if port == 0 && !allow_zero {
        return Err(bad(input, "the device port must not be 0"));
    }
    Ok(HostPort { host: host.to_owned(), port })
}

impl FromStr for DeviceAddress {
    type Err = HidError;

    fn from_str(input: &str) -> Result<Self, HidError> {
        let trimmed = input.trim();
        if let Some(rest) = trimmed.strip_prefix("udp:") {
            let mut parts = rest.split(',');
            let remote = parse_host_port(input, parts.next().unwrap_or_default(), false)?;
            let mut local = None;
            for option in parts {
                match option.split_once('=') {
                    Some(("local", value)) if local.is_none() => {
                        local = Some(parse_host_port(input, value, true)?);
                    }
                    Some(("local", _)) => return Err(bad(input, "local= given twice")),
                    _ => {
                        return Err(bad(
                            input,
                            format!("unknown option {option:?} (only local=HOST:PORT)"),
                        ))
                    }
                }
            }
            return Ok(DeviceAddress::Udp(UdpAddress { remote, local }));
        }
        if trimmed.starts_with('/') {
            return Ok(DeviceAddress::Hidraw(PathBuf::from(trimmed)));
        }
        if trimmed.starts_with("hidraw") {
            return Err(bad(input, format!("write the full path, e.g. /dev/{trimmed}")));
        }
        Err(bad(input, "not a path and not a udp: address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(s: &str) -> UdpAddress {
        match s.parse::<DeviceAddress>() {
            Ok(DeviceAddress::Udp(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn parses_udp_forms() {
        let a = udp("udp:127.0.0.1:8111");
        assert_eq!(a.remote, HostPort { host: "127.0.0.1".into(), port: 8111 });
        assert_eq!(a.local, None);

        let a = udp("udp:localhost:8111,local=127.0.0.1:7112");
        assert_eq!(a.remote.host, "localhost");
        assert_eq!(a.local, Some(HostPort { host: "127.0.0.1".into(), port: 7112 }));

        let a = udp("udp:[::1]:8111,local=[::1]:0");
        assert_eq!(a.remote.host, "::1");
        assert_eq!(a.local.as_ref().map(|l| l.port), Some(0));
    }

    #[test]
    fn display_round_trips() {
        for s in ["udp:127.0.0.1:8111", "udp:[::1]:8111,local=[::1]:7112", "/dev/hidraw3"] {
            let parsed: DeviceAddress = s.parse().unwrap();
            assert_eq!(parsed.to_string(), s);
            assert_eq!(parsed.to_string().parse::<DeviceAddress>().unwrap(), parsed);
        }
    }

    #[test]
    fn parses_hidraw_paths() {
        assert_eq!(
            "/dev/hidraw3".parse::<DeviceAddress>().unwrap(),
            DeviceAddress::Hidraw(PathBuf::from("/dev/hidraw3"))
        );
    }

    #[test]
    fn rejects_malformed_addresses_with_reasons() {
        for (s, why) in [
            ("udp:", "no :PORT"),
            ("udp:127.0.0.1", "no :PORT"),
            ("udp::8111", "empty host"),
            ("udp:127.0.0.1:0", "must not be 0"),
            ("udp:127.0.0.1:70000", "not a number"),
            ("udp:::1:8111", "brackets"),
            ("udp:[::1:8111", "unclosed"),
            ("udp:127.0.0.1:8111,remote=1:2", "unknown option"),
            ("udp:127.0.0.1:8111,local=1:2,local=1:3", "twice"),
            ("hidraw3", "full path"),
            ("usb:1050:0407", "not a path"),
        ] {
            let err = s.parse::<DeviceAddress>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(why), "{s}: {msg}");
            assert!(msg.contains(s), "{s}: message names the input: {msg}");
        }
    }
}
