//! `cablebridge runs list|show ID|compare A B`: the lab-run results store
//! (`cablebridged::labrun::RunStore`, runs.sqlite3 in the state directory). Human tables, or
//! one JSON object with `--json`.

use crate::cmd::run::{lab_error, state_dir};
use crate::output::{CmdError, GlobalOpts, Report};
use cablebridged::labrun::RunStore;
use clap::{Args, Subcommand};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Where the store is.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of runs.sqlite3 [default: $XDG_STATE_HOME/cablebridge or
    /// ~/.local/state/cablebridge].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List stored runs (id, start time, scenario, success rate, expectations).
    List(StoreArgs),
    /// Show one run: its summary and every record.
    Show {
        /// Run id (from `runs list`).
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Per-stage p50/p95 deltas and the success-rate delta from run A to run B.
    Compare {
        /// The baseline run.
        a: i64,
        /// The run compared with it.
        b: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC (civil-from-days, no time zone database).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Runs a `runs` subcommand.
pub fn run(cmd: &RunsCommand, global: &GlobalOpts) -> Result<Report, CmdError> {
    let store_args = match cmd {
        RunsCommand::List(s)
        | RunsCommand::Show { store: s, .. }
        | RunsCommand::Compare { store: s, .. } => s,
    };
    let store =
        RunStore::open_in(&state_dir(store_args.state_dir.as_deref())?).map_err(lab_error)?;
    match cmd {
        RunsCommand::List(_) => {
            let runs = store.list().map_err(lab_error)?;
            if global.json {
                return Ok(
                    Report::new().field("runs", serde_json::to_value(&runs).unwrap_or_default())
                );
            }
            let mut out = format!(
                "{:>4}  {:<19}  {:<24} {:>10} {:>8} {:>12}\n",
                "id", "started (UTC)", "scenario", "ceremonies", "success", "expectations"
            );
            for r in &runs {
                let _ = writeln!(
                    out,
                    "{:>4}  {:<19}  {:<24} {:>10} {:>7.1}% {:>6}/{:<5}",
                    r.id,
                    utc(r.started_at),
                    r.scenario,
                    r.summary.ceremonies,
                    r.summary.success_rate * 100.0,
                    r.summary.expectations_met,
                    r.summary.ceremonies
                );
            }
            print!("{out}");
            Ok(Report::new())
        }
        RunsCommand::Show { id, .. } => {
            let (run, records) = store.get(*id).map_err(lab_error)?;
            if global.json {
                return Ok(Report::new()
                    .field("run", serde_json::to_value(&run).unwrap_or_default())
                    .field("records", serde_json::to_value(&records).unwrap_or_default()));
            }
            let mut out = format!(
                "run {} — {} ({}), started {} UTC, {} iteration(s)\n",
                run.id,
                run.scenario,
                run.scenario_path,
                utc(run.started_at),
                run.repeat
            );
            for r in &records {
                let _ = writeln!(
                    out,
                    "  #{} {:<20} {:<12} {:<6} {:<7} {:>6} ms  {}{}",
                    r.iteration,
                    r.step,
                    r.action,
                    r.transport,
                    r.outcome,
                    r.total_ms,
                    if r.expectation_met { "ok" } else { "FAILED" },
                    r.expectation_detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
                );
            }
            out.push_str(&run.summary.to_human());
            print!("{out}");
            Ok(Report::new())
        }
        RunsCommand::Compare { a, b, .. } => {
            let c = store.compare(*a, *b).map_err(lab_error)?;
            if global.json {
                return Ok(
                    Report::new().field("comparison", serde_json::to_value(&c).unwrap_or_default())
                );
            }
            print!("{}", c.to_human());
            Ok(Report::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_709_210_096), "2024-02-29 12:34:56");
    }
}
