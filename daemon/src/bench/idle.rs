//! `idle`: the background service (`cablebridged`, the service crate's binary) started on a
//! private control socket and left alone: its RSS after start-up and how often its threads wake
//! (voluntary + involuntary context switches of every thread, from `/proc/PID/task/*/status`)
//! with one control client connected (after a `status` call) over 10 s (1 s with `--quick`). Goals: ≤ 10 MiB, ≤ 1 wake-up per second.
//!
//! The binary is looked for next to the running executable (`cargo build` puts `cablebridge`
//! and `cablebridged` in the same directory), then as `$CABLEBRIDGED`. It runs with its own
//! state directory and socket in a private temporary directory and is stopped with SIGTERM.

use super::{Measurement, Options};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the daemon binary is: `$CABLEBRIDGED`, else next to this executable.
fn daemon_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CABLEBRIDGED") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // Test binaries live one level down (target/debug/deps).
    [dir.join("cablebridged"), dir.parent()?.join("cablebridged")].into_iter().find(|p| p.is_file())
}

/// A field of `/proc/PID/status` in its own unit (kB for memory, a count for switches).
fn status_field(path: &Path, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Context switches of every thread of `pid` (a thread that exited meanwhile is not counted).
fn wakeups(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .map(|t| {
            let status = t.path().join("status");
            status_field(&status, "voluntary_ctxt_switches:").unwrap_or(0)
                + status_field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0)
        })
        .sum()
}

/// Stops the daemon on drop (SIGTERM, then SIGKILL after 5 s) and removes its directory.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the daemon, waits for its socket, samples.
pub fn idle(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let Some(binary) = daemon_binary() else {
        // Not an error of the bench run (`bench all` goes on): the service is a separate build.
        return Ok(vec![Measurement::new("idle", "skipped: no cablebridged binary").note(
            "build it next to cablebridge (`cargo build -p cablebridge-service`, same profile) \
             or set CABLEBRIDGED=PATH",
        )]);
    };
    let window = if opts.quick { Duration::from_secs(1) } else { Duration::from_secs(10) };
    let dir = std::env::temp_dir().join(format!(
        "cablebridge-idle-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("idle bench: cannot create {}: {e}", dir.display()))?;
    }
    let socket = dir.join("control.sock");
    // An empty configuration: defaults, whatever /etc holds on this machine.
    let config = dir.join("config.toml");
    std::fs::write(&config, "")
        .map_err(|e| format!("idle bench: cannot write {}: {e}", config.display()))?;
    let child = Command::new(&binary)
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--config")
        .arg(&config)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("idle bench: cannot start {}: {e}", binary.display()))?;
    let pid = child.id();
    let mut daemon = Daemon { child, dir };
    let started = Instant::now();
    // Ready = it answers `status` on its socket; the client stays connected while idle.
    let client = loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&socket) {
            break s;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return Err(format!("idle bench: {} exited at start-up ({status})", binary.display()));
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err("idle bench: the daemon did not open its socket within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    {
        use std::io::{BufRead, Write};
        let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
        let mut w = &client;
        w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n")
            .map_err(|e| format!("idle bench: cannot talk to the daemon: {e}"))?;
        let mut line = String::new();
        std::io::BufReader::new(&client)
            .read_line(&mut line)
            .map_err(|e| format!("idle bench: no status answer: {e}"))?;
        if !line.contains("\"result\"") {
            return Err(format!("idle bench: unexpected status answer: {}", line.trim()));
        }
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1e3;
    // Let start-up work (config, socket, first timers) finish before the window opens.
    std::thread::sleep(Duration::from_millis(200));
    let status = PathBuf::from(format!("/proc/{pid}/status"));
    let rss_start = status_field(&status, "VmRSS:").unwrap_or(0);
    let threads = status_field(&status, "Threads:").unwrap_or(0);
    let before = wakeups(pid);
    let t = Instant::now();
    std::thread::sleep(window);
    let after = wakeups(pid);
    let secs = t.elapsed().as_secs_f64();
    let rss_end = status_field(&status, "VmRSS:").unwrap_or(0);
    let alive = matches!(daemon.child.try_wait(), Ok(None));
    drop(client);
    drop(daemon);
    if !alive {
        return Err("idle bench: the daemon exited during the idle window".into());
    }
    Ok(vec![Measurement::new("idle", format!("daemon idle {:.0} s", secs))
        .field("window_s", secs)
        .field("ready_ms", ready_ms)
        .field("rss_kib", rss_start as f64)
        .field("rss_end_kib", rss_end as f64)
        .field("threads", threads as f64)
        .field("wakeups_per_s", after.saturating_sub(before) as f64 / secs)
        .note(
            "cablebridged on a private socket, one client connected after a status call; wake-ups = voluntary + involuntary \
             context switches of all its threads; goal <= 10 MiB, <= 1/s",
        )])
}
