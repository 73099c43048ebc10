//! One module per subcommand. Each exposes its clap arguments and a `run` that returns a
//! [`Report`] or a [`CmdError`]; printing and exit codes belong to `output`.

pub mod advert;
pub mod bench;
pub mod bio;
pub mod bridge;
pub mod ceremony;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod devices;
pub mod doctor;
pub mod domain;
pub mod extension_flags;
pub mod info;
pub mod links;
pub mod phone;
pub mod picker;
pub mod pin;
pub mod policy_flags;
pub mod present;
pub mod qr;
pub mod qr_input;
pub mod register;
pub mod reset;
pub mod run;
pub mod runs;
pub mod tunnel_server;
pub mod usb;
pub mod virtual_key;
pub mod watch;
pub mod wink;

use crate::cli::{Cli, Command};
use crate::output::{CmdError, Report};
use cablebridge_protocol::error::Classify;

/// Dispatches to the subcommand.
pub fn run(cli: &Cli) -> Result<Report, CmdError> {
    match &cli.command {
        Command::Qr(c) => qr::run(c, &cli.global),
        Command::Advert(c) => advert::run(c, &cli.global),
        Command::TunnelDomain(a) => domain::run(a),
        Command::Register(a) => register::register(a, &cli.global),
        Command::Authenticate(a) => register::authenticate(a, &cli.global),
        Command::Links(c) => links::run(c, cli.global.json),
        Command::TunnelServer(a) => tunnel_server::run(a, cli.global.json),
        Command::Phone(a) => phone::run(a, cli.global.json),
        Command::Present(a) => present::run(a, &cli.global),
        Command::Bridge(a) => bridge::run(a, cli.global.json),
        Command::Demo(a) => demo::run(a, cli.global.json),
        Command::VirtualKey(a) => virtual_key::run(a, &cli.global),
        Command::Devices(a) => devices::run(a, cli.global.json),
        Command::Info(a) => info::run(a),
        Command::Wink(a) => wink::run(a),
        Command::Pin(c) => pin::run(c),
        Command::Reset(a) => reset::run(a),
        Command::Credentials(c) => credentials::run(c),
        Command::Config(c) => config::run(c),
        Command::Bio(c) => bio::run(c),
        // Prints its own table and picks its exit code from the checks (see cmd/doctor.rs).
        Command::Doctor(_) => Err(CmdError::usage("doctor is dispatched by main")),
        Command::Run(a) => run::run(a, &cli.global),
        Command::Runs(c) => runs::run(c, &cli.global),
        Command::Status(a) => daemon::status(a),
        // Prints events as they come; its exit code is the watched session's (see cmd/watch.rs).
        Command::Watch(_) => Err(CmdError::usage("watch is dispatched by main")),
        Command::Completions(a) => daemon::completions(a, cli.global.json),
        Command::Man(a) => daemon::man(a),
        // Prints one line per measurement as it goes (see cmd/bench.rs).
        Command::Bench(_) => Err(CmdError::usage("bench is dispatched by main")),
    }
}

/// Malformed user input reported by the protocol crate: exit 2, one line, stage attached.
pub fn input_error<E: Classify + std::fmt::Display>(context: &str, e: &E) -> CmdError {
    CmdError::usage(format!("{context}: {e}")).at(e.stage())
}

/// Parses hex typed by a person: surrounding whitespace, inner spaces and `:` separators allowed.
pub fn parse_hex_arg(what: &str, s: &str) -> Result<Vec<u8>, CmdError> {
    let cleaned: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    hex::decode(&cleaned).map_err(|e| CmdError::usage(format!("{what} is not valid hex: {e}")))
}

/// Parses a QR URL typed or pasted by a person (surrounding whitespace is ignored).
pub fn parse_qr_url(url: &str) -> Result<cablebridge_protocol::hybrid::qr::QrPayload, CmdError> {
    cablebridge_protocol::hybrid::qr::QrPayload::from_url(url.trim())
        .map_err(|e| input_error("invalid FIDO:/ URL", &e))
}
