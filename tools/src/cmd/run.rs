//! `cablebridge run SCENARIO.toml`: a lab run. Parses the scenario (unknown keys and bad values
//! are usage errors naming the line), runs it `--repeat` times through the engine
//! (`cablebridged::labrun`), shows progress (a bar on a TTY, plain lines otherwise, JSON lines
//! with `--json`), prints the summary, writes `--report` JSON and `--junit` XML, and stores the
//! run in the SQLite runs store under the state directory. Exit 0 when every expectation was
//! met, 1 otherwise (or when Ctrl-C cut the run short), 2 usage, 3 environment.

use crate::output::{CmdError, Exit, GlobalOpts, Report};
use cablebridged::labrun::{
    junit_xml, LabRun, LabRunError, Record, RunContext, RunStore, Scenario, Summary,
};
use cablebridged::store::default_state_dir;
use clap::Args;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML; every key is listed in README "Lab runs").
    #[arg(value_name = "SCENARIO.toml")]
    pub scenario: PathBuf,
    /// Iterations of the whole scenario [default: the file's `repeat`, else 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub repeat: Option<u32>,
    /// Write every record and the summary as one JSON document.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write JUnit XML: one testcase per step per iteration, unmet expectations are failures.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Directory of the runs store (runs.sqlite3) and linked phones [default:
    /// $XDG_STATE_HOME/cablebridge or ~/.local/state/cablebridge].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not store the run.
    #[arg(long)]
    pub no_store: bool,
}

/// Maps an engine error onto the CLI's exit codes.
pub fn lab_error(e: LabRunError) -> CmdError {
    let exit = match e {
        LabRunError::Environment(_) => Exit::Environment,
        _ => Exit::Usage,
    };
    CmdError { exit, message: e.to_string(), stage: None }
}

/// The state directory from the flag or the default.
pub fn state_dir(flag: Option<&Path>) -> Result<PathBuf, CmdError> {
    flag.map(Path::to_path_buf).or_else(default_state_dir).ok_or_else(|| {
        CmdError::environment("no state directory: set --state-dir, XDG_STATE_HOME or HOME")
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CmdError> {
    std::fs::write(path, bytes)
        .map_err(|e| CmdError::environment(format!("cannot write {}: {e}", path.display())))
}

/// Progress on stderr: a redrawn bar on a TTY, one line per ceremony otherwise; JSON lines of
/// records on stdout with `--json`.
struct Progress {
    total: usize,
    done: usize,
    tty: bool,
    json: bool,
}

impl Progress {
    fn record(&mut self, r: &Record) {
        self.done += 1;
        if self.json {
            if let Ok(line) = serde_json::to_string(&json!({"event": "record", "record": r})) {
                println!("{line}");
            }
            return;
        }
        let mark = if r.expectation_met { "ok" } else { "FAILED" };
        let what = match &r.failure_stage {
            Some(stage) => format!("error at {stage}"),
            None => r.outcome.clone(),
        };
        let mut err = std::io::stderr().lock();
        if self.tty {
            const WIDTH: usize = 30;
            let filled = WIDTH * self.done / self.total.max(1);
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] {}/{} {} {mark}",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                self.done,
                self.total,
                r.step
            );
            if self.done == self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(
                err,
                "[{}/{}] iteration {} step {} ({} over {}): {what} in {} ms, expectation {mark}",
                self.done, self.total, r.iteration, r.step, r.action, r.transport, r.total_ms
            );
        }
    }
}

/// Runs `run`.
pub fn run(args: &RunArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    let scenario = Scenario::load(&args.scenario).map_err(lab_error)?;
    let lab = LabRun::prepare(scenario).map_err(lab_error)?;
    let repeat = args.repeat.unwrap_or_else(|| lab.default_repeat());
    let state = state_dir(args.state_dir.as_deref()).ok();
    // Open the store first: a broken store fails before any ceremony, not after them all.
    let mut store =
        match (&state, args.no_store) {
            (_, true) => None,
            (Some(dir), false) => Some(RunStore::open_in(dir).map_err(lab_error)?),
            (None, false) => return Err(CmdError::environment(
                "no state directory for the runs store: set --state-dir, XDG_STATE_HOME or HOME \
                 (or pass --no-store)",
            )),
        };
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let total =
        lab.steps_per_iteration().saturating_mul(usize::try_from(repeat).unwrap_or(usize::MAX));
    let mut progress =
        Progress { total, done: 0, tty: std::io::stderr().is_terminal(), json: global.json };
    let state_for_links = state;
    let output = crate::cmd::usb::block_on(|cancel| async {
        let ctx = RunContext {
            state_dir: state_for_links,
            qr: Arc::new(|url: &str| eprintln!("scan this QR code with the phone: {url}")),
            cancel,
        };
        lab.run(repeat, &ctx, &mut |r: &Record| progress.record(r)).await.map_err(lab_error)
    })?;
    let summary = Summary::of(&output.records);
    let scenario_path = args.scenario.display().to_string();
    let run_id = match store.as_mut() {
        Some(s) => Some(
            s.insert(lab.name(), &scenario_path, started_at, repeat, &output.records, &summary)
                .map_err(lab_error)?,
        ),
        None => None,
    };
    let document = json!({
        "run_id": run_id,
        "scenario": lab.name(),
        "scenario_path": scenario_path,
        "started_at": started_at,
        "repeat": repeat,
        "interrupted": output.interrupted,
        "records": output.records,
        "summary": summary,
    });
    if let Some(path) = &args.report {
        let text = serde_json::to_vec_pretty(&document)
            .map_err(|e| CmdError::environment(format!("cannot encode the report: {e}")))?;
        write_file(path, &text)?;
    }
    if let Some(path) = &args.junit {
        write_file(path, junit_xml(lab.name(), &output.records).as_bytes())?;
    }
    let stored = match (run_id, &store) {
        (Some(id), Some(s)) => format!("stored as run {id} in {}\n", s.path().display()),
        _ => "not stored (--no-store)\n".to_owned(),
    };
    let failed = summary.expectations_failed;
    let report = Report::new()
        .field("event", "summary")
        .field("run_id", run_id)
        .field("scenario", lab.name())
        .field("interrupted", output.interrupted)
        .field("summary", serde_json::to_value(&summary).unwrap_or_default());
    if failed == 0 && !output.interrupted {
        if global.json {
            return Ok(report);
        }
        print!("{}{stored}", summary.to_human());
        return Ok(Report::new());
    }
    if global.json {
        crate::output::finish(Ok(report), true);
    } else {
        print!("{}{stored}", summary.to_human());
    }
    let id = run_id.map(|i| format!(" (run {i})")).unwrap_or_default();
    let message = if output.interrupted {
        format!("interrupted after {} of {total} ceremonies{id}", output.records.len())
    } else {
        format!("{failed} of {} expectations not met{id}", summary.ceremonies)
    };
    Err(CmdError { exit: Exit::Ceremony, message, stage: None })
}
