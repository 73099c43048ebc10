//! A private `dbus-daemon` for one test process.
//!
//! The daemon runs with a session-style config that lets anyone own any name (so the mock can own
//! `org.bluez`), optionally with a deny rule to reproduce a restrictive system-bus policy. It is
//! started under `sh` holding our stdin pipe: when this process exits (even on a panic or
//! SIGKILL) the pipe closes, `read` returns and the shell kills the daemon — no stray daemons and
//! no `unsafe` `prctl`.
//!
//! libdbus (btleplug's backend) reads `DBUS_SYSTEM_BUS_ADDRESS` once per process, before its first
//! system-bus connection; [`PrivateBus::install_as_system_bus`] must therefore run before any
//! Bluetooth code, and a scenario needing a different bus needs its own test binary.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Extra policy for the private bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusPolicy {
    /// Anyone may own and call anything (the usual session bus).
    Open,
    /// Like the system bus when the caller is not in the `bluetooth` group: method calls to
    /// `org.bluez` are refused (`AccessDenied`); owning the name is still allowed.
    DenyCallsToBluez,
}

/// A running private bus; dropping it stops the daemon.
#[derive(Debug)]
pub struct PrivateBus {
    address: String,
    child: Child,
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

fn config(policy: BusPolicy, dir: &std::path::Path) -> String {
    let deny = match policy {
        BusPolicy::Open => "",
        BusPolicy::DenyCallsToBluez => {
            r#"<deny send_destination="org.bluez" send_type="method_call"/>"#
        }
    };
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow send_destination="*" eavesdrop="false"/>
    {deny}
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="max_replies_per_connection">1000000</limit>
  <limit name="reply_timeout">60000</limit>
</busconfig>
"#,
        dir = dir.display()
    )
}

impl PrivateBus {
    /// Start a daemon and wait for its address.
    pub fn start(policy: BusPolicy) -> std::io::Result<PrivateBus> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("bus.conf");
        std::fs::write(&conf, config(policy, dir.path()))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"dbus-daemon --nofork --print-address=1 --config-file="$1" & pid=$!; read _; kill $pid; wait $pid"#)
            .arg("sh")
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line.trim().to_owned();
        if address.is_empty() {
            child.kill().ok();
            return Err(std::io::Error::other(
                "dbus-daemon printed no address (is the dbus-daemon package installed?)",
            ));
        }
        Ok(PrivateBus { address, child, stdin, _dir: dir })
    }

    /// The bus address (`unix:path=...,guid=...`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Point `DBUS_SYSTEM_BUS_ADDRESS` at this bus. Call before any system-bus connection in the
    /// process (libdbus caches it); the tests call it once from a `OnceLock` initialiser.
    pub fn install_as_system_bus(&self) {
        std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &self.address);
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            stdin.write_all(b"\n").ok();
        }
        self.child.wait().ok();
    }
}
