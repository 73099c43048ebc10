//! `runs.start`: a lab run (the engine's `labrun`, what `cablebridge run` does) as a daemon
//! session. The scenario comes from a file the daemon reads (`scenario_file`) or inline TOML
//! (`scenario`; relative paths in it resolve against the daemon's state directory). Each ceremony
//! record streams as `{"event": "record", "record": {...}}` (the CLI's `--json` line), a QR code a
//! real-phone step shows as `{"event": "qr", "url"}`; the run is stored in the daemon's
//! `runs.sqlite3` (so `runs.list/show/compare` see it) and the last event is
//! `{"event": "result", "run_id", "scenario", "interrupted", "summary"}` or an `error`.
//! Cancelling the session (`ceremony.cancel`) ends the ceremony in progress; the records so far
//! are stored with `"interrupted": true`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cablebridged::labrun::{LabRun, LabRunError, Record, RunContext, RunStore, Scenario, Summary};
use serde_json::{json, Value};

use crate::config::Config;
use crate::rpc::{Params, RpcError};
use crate::sessions::{Ending, Registry, Session};

/// A checked `runs.start`.
pub struct RunSpec {
    lab: LabRun,
    repeat: u32,
    scenario_path: String,
    /// Keep running when the requesting connection closes.
    pub detach: bool,
}

impl std::fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSpec")
            .field("scenario", &self.lab.name())
            .field("repeat", &self.repeat)
            .finish_non_exhaustive()
    }
}

/// Reads `runs.start`'s params; a bad scenario is -32602 naming the field (and the line).
pub fn parse(p: &mut Params, config: &Config) -> Result<RunSpec, RpcError> {
    let file = p.opt_string("scenario_file")?;
    let inline = p.opt_string("scenario")?;
    let (scenario, field, scenario_path) = match (file, inline) {
        (Some(path), None) => {
            let s = Scenario::load(Path::new(&path))
                .map_err(|e| RpcError::param("scenario_file", e))?;
            (s, "scenario_file", path)
        }
        (None, Some(text)) => {
            let mut s = Scenario::parse(&text).map_err(|e| RpcError::param("scenario", e))?;
            s.base_dir = config.state_dir.clone();
            if s.name.is_none() {
                s.name = Some("inline".to_owned());
            }
            (s, "scenario", "(inline)".to_owned())
        }
        _ => {
            return Err(RpcError::param(
                "scenario",
                "give exactly one of scenario_file or scenario",
            ))
        }
    };
    let lab = LabRun::prepare(scenario).map_err(|e| RpcError::param(field, e))?;
    let repeat = match p.opt_u64("repeat")? {
        Some(0) => return Err(RpcError::param("repeat", "must be at least 1")),
        Some(n) => u32::try_from(n).map_err(|_| RpcError::param("repeat", "too large"))?,
        None => lab.default_repeat(),
    };
    let detach = p.opt_bool("detach")?.unwrap_or(false);
    Ok(RunSpec { lab, repeat, scenario_path, detach })
}

fn error_object(e: &LabRunError) -> Value {
    let message = e.to_string();
    let exit_code = match e {
        LabRunError::Environment(_) => 3,
        LabRunError::Usage(_) | LabRunError::NotFound(_) => 2,
        _ => 1,
    };
    json!({"event": "error", "stage": "run", "message": message, "error": message,
           "exit_code": exit_code})
}

/// The session body: runs, streams records, stores the run.
pub async fn run(
    registry: Arc<Registry>,
    session: Arc<Session>,
    spec: RunSpec,
    state_dir: PathBuf,
) -> Ending {
    let RunSpec { lab, repeat, scenario_path, .. } = spec;
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (r, s) = (Arc::clone(&registry), Arc::clone(&session));
    let ctx = RunContext {
        state_dir: Some(state_dir.clone()),
        qr: Arc::new(move |url: &str| r.publish(&s, &json!({"event": "qr", "url": url}))),
        cancel: session.cancel.clone(),
    };
    let (r, s) = (Arc::clone(&registry), Arc::clone(&session));
    let mut on_record = move |rec: &Record| {
        s.set_stage("running");
        r.publish(&s, &json!({"event": "record", "record": rec}));
    };
    let output = match lab.run(repeat, &ctx, &mut on_record).await {
        Ok(o) => o,
        Err(e) => return Ending::Failed(error_object(&e)),
    };
    let summary = Summary::of(&output.records);
    let name = lab.name().to_owned();
    let dir = state_dir;
    let records = output.records.clone();
    let summary_for_store = summary.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut store = RunStore::open_in(&dir)?;
        store.insert(&name, &scenario_path, started_at, repeat, &records, &summary_for_store)
    })
    .await;
    let run_id = match stored {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return Ending::Failed(error_object(&e)),
        Err(e) => {
            return Ending::Failed(error_object(&LabRunError::Environment(format!(
                "storing the run: {e}"
            ))))
        }
    };
    tracing::info!(session = session.id, run_id, records = output.records.len(), "lab run stored");
    let result = json!({
        "event": "result",
        "run_id": run_id,
        "scenario": lab.name(),
        "interrupted": output.interrupted,
        "summary": summary,
    });
    if output.interrupted {
        Ending::Cancelled(result)
    } else {
        Ending::Succeeded(result)
    }
}
