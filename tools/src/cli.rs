//! The top-level clap definition: global options and the subcommand enum. Each subcommand's own
//! arguments live next to its implementation in `cmd/`; adding a subcommand means one new module
//! and one variant here (plus one arm in `cmd::run`).

use crate::cmd;
pub use crate::output::GlobalOpts;
use crate::output::EXIT_CODES_HELP;
use clap::{Parser, Subcommand};

/// Work with FIDO hybrid (caBLE v2) QR codes, adverts and tunnels.
#[derive(Debug, Parser)]
#[command(name = "cablebridge", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Options accepted by every subcommand.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make or decode `FIDO:/` QR codes.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Qr(cmd::qr::QrCommand),
    /// Work with BLE advert service data.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Advert(cmd::advert::AdvertCommand),
    /// Print the tunnel-server host for an encoded domain id (0/1 assigned, >=256 hashed).
    #[command(after_help = EXIT_CODES_HELP)]
    TunnelDomain(cmd::domain::TunnelDomainArgs),
    /// List attached FIDO security keys (hidraw) and probe --device addresses.
    #[command(after_help = EXIT_CODES_HELP)]
    Devices(cmd::devices::DevicesArgs),
    /// Show a security key's getInfo, decoded.
    #[command(after_help = EXIT_CODES_HELP)]
    Info(cmd::info::InfoArgs),
    /// Make a security key flash.
    #[command(after_help = EXIT_CODES_HELP)]
    Wink(cmd::wink::WinkArgs),
    /// Set or change a security key's PIN, or show its retries.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Pin(cmd::pin::PinCommand),
    /// Reset a security key (deletes every credential and the PIN).
    #[command(after_help = EXIT_CODES_HELP)]
    Reset(cmd::reset::ResetArgs),
    /// List or delete discoverable credentials on a security key.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Credentials(cmd::credentials::CredentialsCommand),
    /// Change a security key's settings (authenticatorConfig): alwaysUv, minimum PIN length,
    /// enterprise attestation.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Config(cmd::config::ConfigCommand),
    /// Fingerprint enrollment on a security key with a sensor: info, list, enroll, rename,
    /// remove.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Bio(cmd::bio::BioCommand),
    /// Run a virtual USB security key (CTAP2 over UDP-HID) until Ctrl-C.
    #[command(after_help = EXIT_CODES_HELP)]
    VirtualKey(cmd::virtual_key::VirtualKeyArgs),
    /// Create a credential (WebAuthn registration) on a phone (hybrid) or security key (usb).
    /// With --json, stdout is JSON lines: qr, progress, warning events, then result or error.
    #[command(after_help = cmd::ceremony::CEREMONY_EXIT_CODES)]
    Register(cmd::register::RegisterArgs),
    /// Sign in (WebAuthn authentication) with a phone (hybrid) or security key (usb).
    /// With --json, stdout is JSON lines: qr, progress, warning events, then result or error.
    #[command(after_help = cmd::ceremony::CEREMONY_EXIT_CODES)]
    Authenticate(cmd::register::AuthenticateArgs),
    /// Phones linked through earlier QR ceremonies.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Links(cmd::links::LinksCommand),
    /// Run a caBLE tunnel server (relay for /cable/new, /cable/connect, /cable/contact).
    #[command(after_help = EXIT_CODES_HELP)]
    TunnelServer(cmd::tunnel_server::TunnelServerArgs),
    /// A virtual phone: scan a FIDO:/ QR and answer the desktop with a software authenticator.
    #[command(after_help = EXIT_CODES_HELP)]
    Phone(cmd::phone::PhoneArgs),
    /// Send a Digital Credentials request (--request FILE.json; presentation, or --issuance)
    /// to a phone that scans our QR code and print its JSON reply. Phones that do not announce
    /// the "dc" feature (and the bridge's USB keys) are refused at stage post_handshake.
    #[command(after_help = cmd::ceremony::CEREMONY_EXIT_CODES)]
    Present(cmd::present::PresentArgs),
    /// Serve a USB security key to a desktop as a hybrid phone: scan the desktop's FIDO:/ QR
    /// (--qr or a PNG/JPEG screenshot via --qr-image) and forward its CTAP requests to --device.
    /// The key's PIN is never used over hybrid. Progress on stderr (JSON lines with --json).
    #[command(after_help = EXIT_CODES_HELP)]
    Bridge(cmd::bridge::BridgeArgs),
    /// Check whether hybrid (and USB keys) can work here: Bluetooth, tunnel reachability, HID
    /// permissions, the daemon. A table of pass/warn/fail/skip with remedies (JSON with --json).
    /// Exit 0 when nothing fails, 1 when a check fails, 2 on usage errors.
    Doctor(cmd::doctor::DoctorArgs),
    /// Run a complete offline hybrid ceremony (tunnel server + virtual phone + desktop) and
    /// verify it: register, then authenticate with the new credential.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(cmd::demo::DemoArgs),
    /// Lab run: run a scenario of register/authenticate steps N times; records, summary
    /// (p50/p95/max per stage), --report JSON, --junit XML, stored for `runs`. Exit 1 when an
    /// expectation was not met.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(cmd::run::RunArgs),
    /// Stored lab runs: list, show ID, compare A B.
    #[command(subcommand, after_help = EXIT_CODES_HELP)]
    Runs(cmd::runs::RunsCommand),
    /// Show the running cablebridged service: sessions, counters, devices (exit 3 when no
    /// daemon answers on the control socket).
    #[command(after_help = EXIT_CODES_HELP)]
    Status(cmd::daemon::StatusArgs),
    /// Show the daemon's ceremonies as they run (QR codes, progress, results) until Ctrl-C;
    /// with --session ID, until that session ends (exit 0 or its error's exit code).
    #[command(after_help = EXIT_CODES_HELP)]
    Watch(cmd::watch::WatchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::daemon::CompletionsArgs),
    /// Write man pages (cablebridge.1 and one per subcommand) into a directory.
    Man(cmd::daemon::ManArgs),
    /// Measure the hot paths against same-run baselines: eid, crypter, handshake, ctaphid,
    /// tunnel, or all. Median and p10/p90 per measurement; --json prints one object per
    /// measurement with unit-suffixed fields (median_ns, allocs_per_frame, ...).
    Bench(cmd::bench::BenchArgs),
}
