//! `cablebridge` command-line tool: parse flags, dispatch to one `cmd` module, print through
//! `output`, exit with the documented code. Nothing else lives here.

mod alloc_count;
mod cli;
mod cmd;
mod output;

use clap::Parser;
use std::process::ExitCode;

/// Counts allocations only while `cablebridge bench` asks (see alloc_count.rs).
#[global_allocator]
static ALLOC: alloc_count::CountingAlloc = alloc_count::CountingAlloc;

fn main() -> ExitCode {
    output::exit_quietly_on_broken_stdout();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help/--version print to stdout and succeed; real usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(output::Exit::Usage.code())
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = cli.global.json;
    // doctor's exit code depends on what it found, not on success/failure of the run.
    if let cli::Command::Doctor(args) = &cli.command {
        return cmd::doctor::main(args, json);
    }
    if let cli::Command::Watch(args) = &cli.command {
        return cmd::watch::main(args, json);
    }
    if let cli::Command::Bench(args) = &cli.command {
        return cmd::bench::main(args, json);
    }
    output::finish(cmd::run(&cli), json)
}
