//! The daemon's configuration: one TOML file (`/etc/cablebridge/config.toml` by default; every
//! key is documented in `systemd/config.toml.example`), then the command-line flags and their
//! environment variables on top.
//!
//! Unknown keys and wrong types are errors that name the line (the `toml` crate's spans), so a
//! typo never silently falls back to a default. Values are checked once here ([`Config::load`])
//! and the rest of the service uses the typed [`Config`].
//!
//! What it is not: per-request options. Ceremony parameters sent over the control API override
//! the `[hybrid]` defaults for that one session only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cablebridged::advert::AdvertSource;
use serde::Deserialize;

/// Where the daemon listens, keeps state and reads its configuration when nothing says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/cablebridge/control.sock";
/// Linked phones and other state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cablebridge";
/// The configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/cablebridge/config.toml";

/// A configuration problem: the file could not be read, did not parse, or a value is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read (or an explicitly named file is missing).
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type; the message names line and column.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `toml`'s message ("TOML parse error at line 3, column 1 … unknown field `x`").
        message: String,
    },
    /// A well-formed value that is not acceptable.
    #[error("{path}: [{section}] {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The table.
        section: &'static str,
        /// The key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// The file as written (every field optional; unknown keys rejected).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    daemon: FileDaemon,
    #[serde(default)]
    control: FileControl,
    #[serde(default)]
    hybrid: FileHybrid,
    #[serde(default)]
    usb: FileUsb,
    #[serde(default)]
    uhid: FileUhid,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDaemon {
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    log: Option<String>,
    socket_group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileControl {
    allow_root: Option<bool>,
    allowed_groups: Option<Vec<String>>,
    allowed_uids: Option<Vec<u32>>,
    max_line_bytes: Option<usize>,
    rate_limit_per_second: Option<u32>,
    rate_limit_burst: Option<u32>,
    max_sessions: Option<usize>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHybrid {
    tunnel_url: Option<String>,
    advert_source: Option<String>,
    allow_insecure_tunnel: Option<bool>,
    linking: Option<bool>,
    advert_timeout: Option<String>,
    connect_timeout: Option<String>,
    handshake_timeout: Option<String>,
    user_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUsb {
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUhid {
    enabled: Option<bool>,
    front: Option<String>,
    device: Option<PathBuf>,
    linked: Option<String>,
}

/// Who may use the control socket and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// uid 0 is always allowed (default true; tests turn it off to see a refusal as root).
    pub allow_root: bool,
    /// Groups whose members may connect (primary or supplementary group of the peer's uid).
    pub allowed_groups: Vec<String>,
    /// Users that may connect whatever their groups.
    pub allowed_uids: Vec<u32>,
    /// Longest request line; longer ones are answered with an error and the connection closed.
    pub max_line_bytes: usize,
    /// Sustained requests per second per connection (token bucket refill rate).
    pub rate_limit_per_second: u32,
    /// Requests a connection may send at once before the rate applies (bucket size).
    pub rate_limit_burst: u32,
    /// Ceremonies running at once, daemon-wide.
    pub max_sessions: usize,
    /// Control connections open at once.
    pub max_connections: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            allow_root: true,
            allowed_groups: vec!["cablebridge".to_owned()],
            allowed_uids: Vec::new(),
            max_line_bytes: 64 * 1024,
            rate_limit_per_second: 20,
            rate_limit_burst: 50,
            max_sessions: 64,
            max_connections: 128,
        }
    }
}

/// Defaults of hybrid ceremonies (each request may override them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridConfig {
    /// Tunnel base URL instead of the host the advert names.
    pub tunnel_url: Option<String>,
    /// Advert source, in the CLI's `--advert-source` syntax (`bluez`, `fifo:PATH`, `unix:PATH`,
    /// `unix-stream:PATH`; `stdin` is refused: a daemon has none).
    pub advert_source: String,
    /// Allow plain `ws://` to non-loopback hosts.
    pub allow_insecure_tunnel: bool,
    /// Offer linking and store linked phones in the state directory.
    pub linking: bool,
    /// `--advert-timeout`.
    pub advert_timeout: Duration,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--handshake-timeout`.
    pub handshake_timeout: Duration,
    /// `--user-timeout`.
    pub user_timeout: Duration,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig {
            tunnel_url: None,
            advert_source: "bluez".to_owned(),
            allow_insecure_tunnel: false,
            linking: true,
            advert_timeout: Duration::from_secs(180),
            connect_timeout: Duration::from_secs(20),
            handshake_timeout: Duration::from_secs(20),
            user_timeout: Duration::from_secs(180),
        }
    }
}

/// The whole configuration after file, environment and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Control socket path (ignored when systemd passes a socket).
    pub socket: PathBuf,
    /// State directory (linked phones).
    pub state_dir: PathBuf,
    /// `RUST_LOG`-style filter when `RUST_LOG` is unset.
    pub log: String,
    /// Group that owns a socket we bind ourselves (mode 0660), when it exists.
    pub socket_group: String,
    /// Access control and limits.
    pub control: ControlConfig,
    /// Hybrid defaults.
    pub hybrid: HybridConfig,
    /// USB ceremony deadline (plugging in and the touch included).
    pub usb_timeout: Duration,
    /// `[uhid]`: the phone as a local security key.
    pub uhid: crate::uhid::UhidConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from(DEFAULT_SOCKET),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log: "info".to_owned(),
            socket_group: "cablebridge".to_owned(),
            control: ControlConfig::default(),
            hybrid: HybridConfig::default(),
            usb_timeout: Duration::from_secs(60),
            uhid: crate::uhid::UhidConfig::default(),
        }
    }
}

/// What the command line (and its environment variables) said; `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--socket` / `CABLEBRIDGED_SOCKET`.
    pub socket: Option<PathBuf>,
    /// `--state-dir` / `CABLEBRIDGED_STATE_DIR`.
    pub state_dir: Option<PathBuf>,
}

impl Config {
    /// Reads `path` (a missing file is fine when `required` is false: the defaults apply),
    /// then applies `overrides`.
    pub fn load(path: &Path, required: bool, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        let mut config = Config::from_toml(&text, path)?;
        if let Some(s) = &overrides.socket {
            config.socket.clone_from(s);
        }
        if let Some(s) = &overrides.state_dir {
            config.state_dir.clone_from(s);
        }
        Ok(config)
    }

    /// Parses and checks the text of a configuration file (`path` only names it in errors).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |section, key, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            section,
            key,
            message,
        };
        let duration = |section, key, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => parse_duration(&s).map_err(|m| invalid(section, key, m)),
        };
        let mut c = Config::default();
        let d = file.daemon;
        if let Some(s) = d.socket {
            c.socket = s;
        }
        if let Some(s) = d.state_dir {
            c.state_dir = s;
        }
        if let Some(l) = d.log {
            tracing_subscriber::EnvFilter::try_new(&l)
                .map_err(|e| invalid("daemon", "log", format!("not a log filter: {e}")))?;
            c.log = l;
        }
        if let Some(g) = d.socket_group {
            c.socket_group = g;
        }

        let k = file.control;
        let ctl = &mut c.control;
        ctl.allow_root = k.allow_root.unwrap_or(ctl.allow_root);
        if let Some(g) = k.allowed_groups {
            ctl.allowed_groups = g;
        }
        if let Some(u) = k.allowed_uids {
            ctl.allowed_uids = u;
        }
        if let Some(n) = k.max_line_bytes {
            if !(256..=16 * 1024 * 1024).contains(&n) {
                return Err(invalid(
                    "control",
                    "max_line_bytes",
                    format!("{n} is not in 256..=16777216"),
                ));
            }
            ctl.max_line_bytes = n;
        }
        if let Some(n) = k.rate_limit_per_second {
            if n == 0 {
                return Err(invalid(
                    "control",
                    "rate_limit_per_second",
                    "must be at least 1".into(),
                ));
            }
            ctl.rate_limit_per_second = n;
        }
        if let Some(n) = k.rate_limit_burst {
            if n == 0 {
                return Err(invalid("control", "rate_limit_burst", "must be at least 1".into()));
            }
            ctl.rate_limit_burst = n;
        }
        if let Some(n) = k.max_sessions {
            if n == 0 {
                return Err(invalid("control", "max_sessions", "must be at least 1".into()));
            }
            ctl.max_sessions = n;
        }
        if let Some(n) = k.max_connections {
            if n == 0 {
                return Err(invalid("control", "max_connections", "must be at least 1".into()));
            }
            ctl.max_connections = n;
        }

        let h = file.hybrid;
        let hy = &mut c.hybrid;
        if let Some(url) = h.tunnel_url {
            check_tunnel_url(&url).map_err(|m| invalid("hybrid", "tunnel_url", m))?;
            hy.tunnel_url = Some(url);
        }
        if let Some(src) = h.advert_source {
            check_advert_source(&src).map_err(|m| invalid("hybrid", "advert_source", m))?;
            hy.advert_source = src;
        }
        hy.allow_insecure_tunnel = h.allow_insecure_tunnel.unwrap_or(hy.allow_insecure_tunnel);
        hy.linking = h.linking.unwrap_or(hy.linking);
        hy.advert_timeout =
            duration("hybrid", "advert_timeout", h.advert_timeout, hy.advert_timeout)?;
        hy.connect_timeout =
            duration("hybrid", "connect_timeout", h.connect_timeout, hy.connect_timeout)?;
        hy.handshake_timeout =
            duration("hybrid", "handshake_timeout", h.handshake_timeout, hy.handshake_timeout)?;
        hy.user_timeout = duration("hybrid", "user_timeout", h.user_timeout, hy.user_timeout)?;

        c.usb_timeout = duration("usb", "timeout", file.usb.timeout, c.usb_timeout)?;

        let u = file.uhid;
        c.uhid = crate::uhid::UhidConfig::from_file(u.enabled, u.front, u.device, u.linked)
            .map_err(|(key, m)| invalid("uhid", key, m))?;
        Ok(c)
    }
}

/// `ws://…` or `wss://…` with a host.
pub fn check_tunnel_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("wss://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| format!("{url:?} is not a ws:// or wss:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} names no host"));
    }
    Ok(())
}

/// The CLI's `--advert-source` syntax, minus `stdin` (a daemon has no terminal).
pub fn check_advert_source(spec: &str) -> Result<AdvertSource, String> {
    let source: AdvertSource =
        spec.parse().map_err(|e: cablebridged::advert::AdvertSourceError| e.to_string())?;
    if source == AdvertSource::Stdin {
        return Err(
            "stdin is not an advert source for the daemon (use fifo:, unix: or unix-stream:)"
                .into(),
        );
    }
    Ok(source)
}

/// Parses `500ms`, `30s`, `2m` or a bare number of seconds: the engine's one rule, shared with
/// the CLI's flags.
pub use cablebridged::ceremony::parse_duration;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/cablebridge/config.toml"))
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_line() {
        let text = "[control]\nallowed_groups = [\"wheel\"]\nmax_line_byte = 10\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("max_line_byte"), "{e}");
        assert!(e.starts_with("/etc/cablebridge/config.toml: "), "{e}");
    }

    #[test]
    fn unknown_section_and_wrong_type_name_the_line() {
        let e = parse("\n\n[contrl]\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("contrl"), "{e}");
        let e = parse("[control]\n\nallowed_uids = \"root\"\n").unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn values_are_checked() {
        let e = parse("[hybrid]\nadvert_source = \"stdin\"\n").unwrap_err().to_string();
        assert!(e.contains("[hybrid] advert_source") && e.contains("stdin"), "{e}");
        let e = parse("[hybrid]\nadvert_source = \"bluetooth\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown advert source"), "{e}");
        let e = parse("[hybrid]\ntunnel_url = \"http://x\"\n").unwrap_err().to_string();
        assert!(e.contains("tunnel_url"), "{e}");
        let e = parse("[hybrid]\nuser_timeout = \"2h\"\n").unwrap_err().to_string();
        assert!(e.contains("user_timeout") && e.contains("unknown unit"), "{e}");
        let e = parse("[control]\nrate_limit_per_second = 0\n").unwrap_err().to_string();
        assert!(e.contains("rate_limit_per_second"), "{e}");
    }

    #[test]
    fn uhid_section_is_parsed() {
        let c = parse("[uhid]\nenabled = true\nfront = \"udp:127.0.0.1:0\"\nlinked = \"Pixel\"\n")
            .unwrap();
        assert!(c.uhid.enabled);
        assert_eq!(c.uhid.front, crate::uhid::UhidFront::Udp("127.0.0.1:0".parse().unwrap()));
        assert_eq!(c.uhid.linked.as_deref(), Some("Pixel"));
        assert!(parse("[uhid]\nfront = \"uhid\"\n").is_ok());
        let e = parse("[uhid]\nfront = \"udp:192.0.2.1:9\"\n").unwrap_err().to_string();
        assert!(e.contains("[uhid] front") && e.contains("loopback"), "{e}");
        let e = parse("[uhid]\nfront = \"hid\"\n").unwrap_err().to_string();
        assert!(e.contains("[uhid] front"), "{e}");
    }

    #[test]
    fn file_values_and_overrides() {
        let text = "[daemon]\nsocket = \"/tmp/a.sock\"\nstate_dir = \"/tmp/state\"\n\
                    [control]\nallow_root = false\nallowed_uids = [1000]\n\
                    [hybrid]\nadvert_source = \"unix:/tmp/adv.sock\"\ntunnel_url = \"ws://127.0.0.1:1\"\nadvert_timeout = \"5s\"\n";
        let c = parse(text).unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/a.sock"));
        assert!(!c.control.allow_root);
        assert_eq!(c.control.allowed_uids, vec![1000]);
        assert_eq!(c.hybrid.advert_timeout, Duration::from_secs(5));
        assert_eq!(c.hybrid.tunnel_url.as_deref(), Some("ws://127.0.0.1:1"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, text).unwrap();
        let o = Overrides { socket: Some("/tmp/b.sock".into()), state_dir: None };
        let c = Config::load(&file, true, &o).unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/b.sock"));
        assert_eq!(c.state_dir, PathBuf::from("/tmp/state"));
        // A missing default file is fine; a missing named one is not.
        let missing = dir.path().join("nope.toml");
        assert!(Config::load(&missing, false, &Overrides::default()).is_ok());
        assert!(Config::load(&missing, true, &Overrides::default()).is_err());
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../systemd/config.toml.example");
        // The example spells out every default: parsing it gives exactly the built-in defaults.
        assert_eq!(parse(text).unwrap(), Config::default());
    }
}
