//! `cablebridge bench <what> [--json] [--quick]`: the measurements of `cablebridged::bench`,
//! printed one line (or one JSON object) per measurement. Allocation counts come from the
//! binary's counting allocator (`alloc_count`).

use crate::output::{CmdError, Exit};
use cablebridged::bench::{self, Options, BENCHES, NOT_DONE};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

/// `bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: eid, crypter, handshake, ctaphid, session, ceremony, tunnel (starts
    /// `cablebridge tunnel-server` and load generator child processes, then repeats in one
    /// process), idle, adverts (needs the cablebridge-mock-bluez binary and dbus-daemon), or all.
    #[arg(value_name = "WHAT")]
    pub what: String,
    /// Small counts (each bench in well under a few seconds): for CI; numbers are indicative.
    #[arg(long)]
    pub quick: bool,
}

/// Runs the benches; prints as it goes so a slow one shows progress. Exit 0, 2 on an unknown
/// name, 3 when a bench cannot run (e.g. the tunnel server cannot bind).
pub fn main(args: &BenchArgs, json: bool) -> ExitCode {
    // Hidden: one load generator of `bench tunnel` (the bench re-executes itself; see
    // cablebridged::bench::tunnel_generator for the stdin/stdout protocol).
    if args.what == "tunnel-generator" {
        return match bench::tunnel_generator() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("error {}", e.replace('\n', " "));
                ExitCode::from(3)
            }
        };
    }
    let names: Vec<&str> = match args.what.as_str() {
        "all" => BENCHES.to_vec(),
        w if BENCHES.contains(&w) => vec![w],
        w => {
            let hint = if NOT_DONE.contains(&w) { " (not implemented yet)" } else { "" };
            let e = CmdError::usage(format!(
                "unknown bench `{w}`{hint}; choose one of: {}, all",
                BENCHES.join(", ")
            ));
            return crate::output::finish(Err(e), json);
        }
    };
    let opts = Options { quick: args.quick, allocs: Some(&crate::alloc_count::Counter) };
    if !json {
        println!(
            "# cablebridge bench ({}), {}",
            if args.quick { "quick" } else { "full" },
            bench::cpu_summary()
        );
    }
    let mut stdout = std::io::stdout();
    for name in names {
        let Some(result) = bench::run(name, &opts) else { continue };
        match result {
            Ok(measurements) => {
                for m in measurements {
                    let line = if json { m.to_json().to_string() } else { m.to_line() };
                    let _ = writeln!(stdout, "{line}");
                }
                let _ = stdout.flush();
            }
            Err(e) => {
                let e = CmdError::environment(e);
                return crate::output::finish(Err(e), json);
            }
        }
    }
    ExitCode::from(Exit::Ok.code())
}
