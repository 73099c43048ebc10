//! Shared by the `faults_*` tests: the daemon's resource baseline (open fds from
//! `/proc/PID/fd`, OS threads from `/proc/PID/task`, live tokio tasks from `status`'s
//! `runtime.tasks`) and the check that a test left it where it found it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{status_now, Daemon, T};

/// What an idle daemon holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub fds: usize,
    pub threads: usize,
    pub tasks: u64,
}

fn fd_targets(daemon: &Daemon) -> Vec<(String, std::path::PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), std::fs::read_link(e.path()).ok()?))
        })
        .collect();
    v.sort_by_key(|(n, _)| n.parse::<u32>().unwrap_or(0));
    v
}

fn threads(daemon: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).unwrap().count()
}

fn tasks(daemon: &Daemon) -> u64 {
    let s = status_now(daemon);
    s["runtime"]["tasks"].as_u64().unwrap_or_else(|| panic!("no runtime.tasks in {s}"))
}

impl Baseline {
    /// The idle daemon's baseline: measured until two readings 100 ms apart agree (just after
    /// READY=1 the daemon may still hold a transient fd, e.g. its sd_notify socket, and each
    /// reading's own `status` connection takes a moment to close).
    pub async fn settled(daemon: &Daemon) -> Baseline {
        let mut last = Baseline::of(daemon);
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let now = Baseline::of(daemon);
            if now == last {
                return now;
            }
            last = now;
        }
        panic!("the idle daemon never settled: {last:?}");
    }

    /// One reading (fds first, then threads, then `status` over a fresh connection).
    pub fn of(daemon: &Daemon) -> Baseline {
        if std::env::var_os("CB_FAULTS_DEBUG").is_some() {
            println!("fds: {:?}", fd_targets(daemon));
        }
        Baseline { fds: daemon.fd_count(), threads: threads(daemon), tasks: tasks(daemon) }
    }

    /// Waits (bounded) until fds and tokio tasks are back at the baseline and no OS thread is
    /// left over (tokio's blocking-pool threads linger up to 10 s after their last job, so
    /// threads only have to come back down to the baseline, not exactly to it).
    pub async fn check(&self, daemon: &Daemon, after: &str) {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let now = Baseline::of(daemon);
            if now.fds == self.fds && now.tasks == self.tasks && now.threads <= self.threads {
                println!("{after}: back to baseline {now:?} (was {self:?})");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "after {after}: daemon resources {now:?}, baseline {self:?}; fds: {:?}",
                fd_targets(daemon)
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
