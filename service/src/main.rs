//! `cablebridged`: parse flags, load the configuration, start logging and the runtime, call
//! [`cablebridge_service::run`]. Exit codes: 0 stopped cleanly, 2 configuration error, 3 the
//! environment failed (socket in use, not permitted).

use std::path::PathBuf;
use std::process::ExitCode;

use cablebridge_service::config::{self, Config, Overrides};
use clap::Parser;

/// The cablebridge service: runs passkey ceremonies for clients of its control socket
/// (JSON-RPC 2.0, newline-delimited; see docs/api.md).
#[derive(Debug, Parser)]
#[command(name = "cablebridged", version)]
struct Args {
    /// Control socket path (ignored under socket activation) [default: from the config file,
    /// else /run/cablebridge/control.sock].
    #[arg(long, value_name = "PATH", env = "CABLEBRIDGED_SOCKET")]
    socket: Option<PathBuf>,
    /// State directory (linked phones) [default: from the config file, else
    /// /var/lib/cablebridge].
    #[arg(long, value_name = "DIR", env = "CABLEBRIDGED_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Configuration file (TOML; see systemd/config.toml.example). A missing file is an error
    /// when named here; the default path may be absent.
    #[arg(long, value_name = "FILE", env = "CABLEBRIDGED_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration, print the result and exit (0 valid, 2 invalid).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(config::DEFAULT_CONFIG), false),
    };
    let overrides = Overrides { socket: args.socket.clone(), state_dir: args.state_dir.clone() };
    let config = match Config::load(&path, required, &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cablebridged: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!(
            "{}: ok (socket {}, state dir {})",
            path.display(),
            config.socket.display(),
            config.state_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    cablebridge_service::logging::init(&config.log);
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cablebridged: cannot start the async runtime: {e}");
                return ExitCode::from(3);
            }
        };
    match runtime.block_on(cablebridge_service::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cablebridged cannot run");
            eprintln!("cablebridged: {e}");
            ExitCode::from(3)
        }
    }
}
