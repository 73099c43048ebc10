//! systemd integration: socket activation (adopt the listening socket passed with
//! `LISTEN_FDS`/`LISTEN_PID`, through the `listenfd` crate, which checks `LISTEN_PID` and the
//! socket type), readiness and status (`READY=1`, `STATUS=…`, `STOPPING=1`) and the watchdog
//! (`WATCHDOG=1` every half `WATCHDOG_USEC`), through the `sd-notify` crate. Outside systemd
//! (no `NOTIFY_SOCKET`) every notification is a no-op.
//!
//! Readiness is sent only after the socket is bound or adopted, so `Type=notify` units and
//! `systemctl start` return when clients can connect.

use std::time::Duration;

use sd_notify::NotifyState;

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
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A `STATUS=` line (`systemctl status` shows it).
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// `STOPPING=1`.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `WATCHDOG=1`.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
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

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}
