//! systemd integration: socket activation (adopt the listening socket passed with
//! `LISTEN_FDS`/`LISTEN_PID`, through the `listenfd` crate, which checks `LISTEN_PID` and the
//! socket type), readiness and status (`READY=1`, `STATUS=…`, `STOPPING=1`) and the watchdog
//! (`WATCHDOG=1` every half `WATCHDOG_USEC`). Outside systemd (no `NOTIFY_SOCKET`) every
//! notification is a no-op.
//!
//! Hand-written on purpose (ARCHITECTURE.md): the notification sender is ~20 lines over std's
//! `UnixDatagram`, set non-blocking. The `sd-notify` crate sends with a blocking socket, and
//! STATUS= lines go out from the runtime's worker threads whenever a session starts or ends: a
//! manager that stops reading (a full socket buffer) would then stall every ceremony. A
//! notification that cannot be sent at once is dropped and logged instead.
//!
//! Readiness is sent only after the socket is bound or adopted, so `Type=notify` units and
//! `systemctl start` return when clients can connect.

use std::time::Duration;

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The socket systemd passed us, if any (the first of `LISTEN_FDS`).
pub fn adopted_listener() -> std::io::Result<Option<std::os::unix::net::UnixListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    fds.take_unix_listener(0)
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}\n"));
}

/// A `STATUS=` line (`systemctl status` shows it).
pub fn status(status: &str) {
    notify(&format!("STATUS={status}\n"));
}

/// `STOPPING=1`.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping\n");
}

/// `WATCHDOG=1`.
pub fn watchdog() {
    notify("WATCHDOG=1\n");
}

/// How often to ping the watchdog (half of `WATCHDOG_USEC`), when the unit set `WatchdogSec=`.
///
/// Follows sd_watchdog_enabled(3): `WATCHDOG_PID`, when set, must be our pid; when unset the
/// watchdog applies to us. (`sd_notify::watchdog_enabled` insists on `WATCHDOG_PID`, which
/// would turn the watchdog off under supervisors that set only `WATCHDOG_USEC`.)
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends one datagram to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace)
/// without ever blocking.
fn notify(message: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = (|| -> std::io::Result<()> {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(&target)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        socket.send_to_addr(message.as_bytes(), &addr)?;
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify message dropped");
    }
}
