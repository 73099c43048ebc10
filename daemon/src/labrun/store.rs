//! The lab-run results store: one SQLite file (`runs.sqlite3`, mode 0600) in the state
//! directory, next to the link store. A run row holds the scenario name, times and the summary
//! JSON; its records are rows of JSON (the report's records, verbatim), so `runs show` can
//! print exactly what the run printed and old rows stay readable as records gain fields.
//!
//! Library API so the daemon can offer the same listing and comparison.
//!
//! Crash safety is SQLite's: each run is stored in one transaction under the default rollback
//! journal with `synchronous = FULL` (set explicitly), so a process killed mid-insert (or a power
//! loss) leaves a hot journal the next open rolls back — the store then holds every earlier run
//! and none of the interrupted one. SQLite creates the journal with the database file's mode
//! (0600), and fsyncs the directory after creating it. Not the temp-and-rename of
//! [`crate::store::atomic`], which suits whole small files, not an append-only table.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::report::{Comparison, Record, Summary};
use super::LabRunError;

/// The file name inside the state directory.
pub const RUNS_FILE: &str = "runs.sqlite3";

/// One stored run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredRun {
    /// Run id (1, 2, ...).
    pub id: i64,
    /// Scenario name.
    pub scenario: String,
    /// Scenario file as given.
    pub scenario_path: String,
    /// Unix seconds when it started.
    pub started_at: i64,
    /// Iterations.
    pub repeat: u32,
    /// The summary.
    pub summary: Summary,
}

/// An open store.
#[derive(Debug)]
pub struct RunStore {
    conn: Connection,
    path: PathBuf,
}

fn env(path: &Path, e: impl std::fmt::Display) -> LabRunError {
    LabRunError::Environment(format!("runs store {}: {e}", path.display()))
}

impl RunStore {
    /// Opens (creating with mode 0600, in a 0700 directory) the store in `state_dir`.
    pub fn open_in(state_dir: &Path) -> Result<RunStore, LabRunError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|e| env(state_dir, e))?;
        let path = state_dir.join(RUNS_FILE);
        // Create it ourselves so SQLite never creates it with the umask's mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| env(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| env(&path, e))?;
        let conn = Connection::open(&path).map_err(|e| env(&path, e))?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS runs (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 scenario TEXT NOT NULL,
                 scenario_path TEXT NOT NULL,
                 started_at INTEGER NOT NULL,
                 repeat INTEGER NOT NULL,
                 summary TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS records (
                 run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                 seq INTEGER NOT NULL,
                 record TEXT NOT NULL,
                 PRIMARY KEY (run_id, seq)
             );",
        )
        .map_err(|e| env(&path, e))?;
        Ok(RunStore { conn, path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a finished run in one transaction; returns its id.
    pub fn insert(
        &mut self,
        scenario: &str,
        scenario_path: &str,
        started_at: i64,
        repeat: u32,
        records: &[Record],
        summary: &Summary,
    ) -> Result<i64, LabRunError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| env(&path, e))?;
        tx.execute(
            "INSERT INTO runs (scenario, scenario_path, started_at, repeat, summary)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![scenario, scenario_path, started_at, repeat, to_json(&path, summary)?],
        )
        .map_err(|e| env(&path, e))?;
        let id = tx.last_insert_rowid();
        for (seq, r) in records.iter().enumerate() {
            tx.execute(
                "INSERT INTO records (run_id, seq, record) VALUES (?1, ?2, ?3)",
                params![id, i64::try_from(seq).unwrap_or(i64::MAX), to_json(&path, r)?],
            )
            .map_err(|e| env(&path, e))?;
        }
        tx.commit().map_err(|e| env(&path, e))?;
        Ok(id)
    }

    /// Every run, oldest first.
    pub fn list(&self) -> Result<Vec<StoredRun>, LabRunError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, scenario, scenario_path, started_at, repeat, summary FROM runs ORDER BY id",
            )
            .map_err(|e| env(&self.path, e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, u32>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(|e| env(&self.path, e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, scenario, scenario_path, started_at, repeat, summary) =
                row.map_err(|e| env(&self.path, e))?;
            let summary = serde_json::from_str(&summary)
                .map_err(|e| env(&self.path, format!("run {id}: unreadable summary: {e}")))?;
            out.push(StoredRun { id, scenario, scenario_path, started_at, repeat, summary });
        }
        Ok(out)
    }

    /// One run and its records; `NotFound` when there is no such id.
    pub fn get(&self, id: i64) -> Result<(StoredRun, Vec<Record>), LabRunError> {
        let run = self
            .conn
            .query_row(
                "SELECT scenario, scenario_path, started_at, repeat, summary FROM runs WHERE id = ?1",
                [id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, u32>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| env(&self.path, e))?;
        let Some((scenario, scenario_path, started_at, repeat, summary)) = run else {
            return Err(LabRunError::NotFound(format!(
                "no run {id} in {} (see `cablebridge runs list`)",
                self.path.display()
            )));
        };
        let summary = serde_json::from_str(&summary)
            .map_err(|e| env(&self.path, format!("run {id}: unreadable summary: {e}")))?;
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM records WHERE run_id = ?1 ORDER BY seq")
            .map_err(|e| env(&self.path, e))?;
        let rows =
            stmt.query_map([id], |row| row.get::<_, String>(0)).map_err(|e| env(&self.path, e))?;
        let mut records = Vec::new();
        for row in rows {
            let text = row.map_err(|e| env(&self.path, e))?;
            records.push(
                serde_json::from_str(&text)
                    .map_err(|e| env(&self.path, format!("run {id}: unreadable record: {e}")))?,
            );
        }
        Ok((StoredRun { id, scenario, scenario_path, started_at, repeat, summary }, records))
    }

    /// Per-stage p50/p95 and success-rate deltas from run `a` to run `b`.
    pub fn compare(&self, a: i64, b: i64) -> Result<Comparison, LabRunError> {
        let (ra, _) = self.get(a)?;
        let (rb, _) = self.get(b)?;
        Ok(Comparison::of(a, &ra.summary, b, &rb.summary))
    }
}

fn to_json(path: &Path, v: &impl serde::Serialize) -> Result<String, LabRunError> {
    serde_json::to_string(v).map_err(|e| env(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn insert_list_get_compare() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut store = RunStore::open_in(&state).unwrap();
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let summary = Summary::of(&[]);
        let a = store.insert("s", "s.toml", 1, 1, &[], &summary).unwrap();
        let b = store.insert("s", "s.toml", 2, 1, &[], &summary).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(store.list().unwrap().len(), 2);
        assert!(matches!(store.get(9), Err(LabRunError::NotFound(_))));
        let c = store.compare(a, b).unwrap();
        assert_eq!((c.a, c.b), (1, 2));
        drop(store);
        // Reopening keeps the rows.
        assert_eq!(RunStore::open_in(&state).unwrap().list().unwrap()[1].started_at, 2);
    }
}
