//! Crash-safe whole-file writes and "missing is fine" reads.
//!
//! [`write_atomic`] writes to a temporary file in the same directory, `fsync`s it, renames it over
//! the target and `fsync`s the directory, so after a crash the path holds either the old or the new
//! contents, never a torn mix (rename is atomic within one filesystem; the directory fsync makes the
//! rename itself durable). Parent directories are created `0700` because they hold secrets (link
//! secrets, credential keys). It is not a lock: two concurrent writers each produce a whole file and
//! the last rename wins; read-modify-write updates take [`lock_for_update`] for that.
//!
//! A process killed mid-write (SIGKILL, power loss) leaves its temporary file behind: mode 0600
//! like the target, so nothing leaks, but it may hold secrets. The next successful write of the
//! same file removes such leftovers of processes that no longer exist ([`remove_stale_temps`]);
//! a live process's temporary file (a concurrent write in progress) is never touched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cablebridge_protocol::error::{Classify, Fault, Stage};

/// File mode for files holding secrets (link secrets, credential private keys).
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode for directories created on the way to a state file.
pub const STATE_DIR_MODE: u32 = 0o700;

/// Errors of the on-disk stores. Every variant names the file.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing, syncing or renaming failed at the OS level.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("write", "rename", "create directory"...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file exists but its contents are not what we wrote (hand-edited, truncated, wrong
    /// version). The file is left untouched so nothing is lost.
    #[error("{path} is corrupt: {reason} (fix or remove the file)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The path cannot hold a file (no file name, e.g. `/` or `..`).
    #[error("{path} is not a usable file path")]
    BadPath {
        /// The path given.
        path: PathBuf,
    },
    /// Another process held the file's update lock for longer than we wait (a stopped or hung
    /// writer); nothing was changed.
    #[error(
        "{path} is being updated by another process (its lock {lock} was held for over {waited_ms} ms); nothing was changed, try again"
    )]
    Locked {
        /// The file.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// How long we waited.
        waited_ms: u64,
    },
}

impl StoreError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        StoreError::Io { action, path: path.to_path_buf(), source }
    }
}

impl Classify for StoreError {
    fn fault(&self) -> Fault {
        match self {
            StoreError::Io { .. } | StoreError::Corrupt { .. } | StoreError::Locked { .. } => {
                Fault::Environment
            }
            StoreError::BadPath { .. } => Fault::Caller,
        }
    }
    fn stage(&self) -> Stage {
        // State files hold links and credentials; linking is the protocol stage that owns them.
        Stage::Linking
    }
}

/// Reads a whole file; `Ok(None)` when it does not exist (first run).
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

/// An exclusive advisory lock (`flock`) on `.{file_name}.lock` beside a state file, held until
/// dropped. Read-modify-write updates take it so that two *processes* (the daemon and a CLI
/// with the same `--state-dir`) do not each write back the list they read and lose the other's
/// change; within a process the caller serialises its own threads first. Readers do not take it:
/// files are replaced whole, so a read sees the old or the new contents.
#[derive(Debug)]
pub struct UpdateLock {
    _file: File,
}

/// Takes `path`'s [`UpdateLock`], waiting up to `wait` for another process to release it
/// (polling every few milliseconds: `flock` itself cannot time out). The lock file is created
/// 0600 (with its directory, 0700) and left in place; it holds nothing.
pub fn lock_for_update(path: &Path, wait: std::time::Duration) -> Result<UpdateLock, StoreError> {
    let file_name =
        path.file_name().ok_or_else(|| StoreError::BadPath { path: path.to_path_buf() })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(&dir)
        .map_err(|e| StoreError::io("create directory", &dir, e))?;
    let lock = dir.join(format!(".{}.lock", file_name.to_string_lossy()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(SECRET_FILE_MODE)
        .open(&lock)
        .map_err(|e| StoreError::io("open lock", &lock, e))?;
    let started = std::time::Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(UpdateLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) if started.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(StoreError::Locked {
                    path: path.to_path_buf(),
                    lock,
                    waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                })
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(StoreError::io("lock", &lock, e.into())),
        }
    }
}

/// Replaces `path` with `bytes` atomically (see the module docs), creating the file with `mode`
/// (use [`SECRET_FILE_MODE`] for anything holding secrets) and missing parent directories with
/// [`STATE_DIR_MODE`].
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let file_name =
        path.file_name().ok_or_else(|| StoreError::BadPath { path: path.to_path_buf() })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(&dir)
        .map_err(|e| StoreError::io("create directory", &dir, e))?;

    let tmp = dir.join(format!(
        ".{}.tmp.{}.{:016x}",
        file_name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = write_then_rename(&tmp, path, &dir, bytes, mode);
    if result.is_err() {
        // Best effort: a failed write must not leave temporary files behind.
        let _ = fs::remove_file(&tmp);
    } else {
        remove_stale_temps(&dir, &file_name.to_string_lossy());
    }
    result
}

/// Removes `.{file_name}.tmp.{pid}.{random}` files in `dir` whose writer process is gone (it
/// was killed mid-write). Best effort: errors are ignored, the write itself already succeeded.
pub fn remove_stale_temps(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.tmp.");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(file = %entry.path().display(), "removing a write interrupted by a crash");
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn write_then_rename(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| StoreError::io("create", tmp, e))?;
    // The umask may have narrowed the mode; make it exactly what was asked.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| StoreError::io("chmod", tmp, e))?;
    file.write_all(bytes).map_err(|e| StoreError::io("write", tmp, e))?;
    file.sync_all().map_err(|e| StoreError::io("fsync", tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_update_lock_held_elsewhere_is_waited_for_then_refused_typed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/links.json");
        let held = lock_for_update(&path, std::time::Duration::ZERO).unwrap();
        let lock = dir.path().join("state/.links.json.lock");
        assert_eq!(fs::metadata(&lock).unwrap().permissions().mode() & 0o777, 0o600);
        // A second open file description is refused like another process would be.
        let started = std::time::Instant::now();
        let err = lock_for_update(&path, std::time::Duration::from_millis(50)).unwrap_err();
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        assert!(matches!(err, StoreError::Locked { waited_ms: 50, .. }), "{err:?}");
        assert!(err.to_string().contains("being updated by another process"), "{err}");
        assert_eq!(err.fault(), Fault::Environment);
        // Released: the next waiter gets it, even one that started waiting before.
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || lock_for_update(&path, std::time::Duration::from_secs(10)).map(drop)
        });
        std::thread::sleep(std::time::Duration::from_millis(30));
        drop(held);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn missing_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_optional(&dir.path().join("absent")).unwrap().is_none());
    }

    #[test]
    fn write_creates_parents_with_modes_and_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        write_atomic(&path, b"first version, longer", SECRET_FILE_MODE).unwrap();
        write_atomic(&path, b"second", SECRET_FILE_MODE).unwrap();
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"second");
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dmeta = fs::metadata(dir.path().join("a/b")).unwrap();
        assert_eq!(dmeta.permissions().mode() & 0o777, 0o700);
        // No temporary files left behind.
        let names: Vec<_> =
            fs::read_dir(dir.path().join("a/b")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn failed_write_keeps_old_contents_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old", SECRET_FILE_MODE).unwrap();
        // A directory where the file should be: rename fails, the error names the path.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"x").unwrap();
        let err = write_atomic(&blocked, b"new", SECRET_FILE_MODE).unwrap_err();
        assert!(err.to_string().contains("blocked"), "{err}");
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"old");
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp."))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn a_crashed_writers_temp_file_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.json");
        // A dead writer (no such pid), a live one (us: a write in progress), another file's.
        let dead = dir.path().join(".links.json.tmp.4294967295.00000000000000aa");
        let live = dir.path().join(format!(".links.json.tmp.{}.bb", std::process::id()));
        let other = dir.path().join(".runs.json.tmp.4294967295.cc");
        for f in [&dead, &live, &other] {
            fs::write(f, b"half").unwrap();
        }
        write_atomic(&path, b"whole", SECRET_FILE_MODE).unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"whole");
    }

    #[test]
    fn path_without_file_name_is_rejected() {
        let err = write_atomic(Path::new("/"), b"x", SECRET_FILE_MODE).unwrap_err();
        assert!(matches!(err, StoreError::BadPath { .. }));
    }
}
