//! `cablebridge doctor`: runs [`cablebridged::doctor`] and prints its checks as an aligned table
//! (colour only on a terminal, and not with `NO_COLOR`) or, with `--json`, as `{"checks":[...]}`.
//!
//! Unlike the other subcommands the exit status depends on the content of a successful run
//! (0 nothing failed, 1 something failed), so `main` hands doctor its own printing; usage errors
//! (a malformed `--resolve`, an unreadable `--ca-file`) still go through `output` and exit 2.

use crate::output::{CmdError, Exit};
use cablebridged::doctor::{self, DoctorOptions, DoctorReport, ResolveOverride, Status};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Length of the Bluetooth scan window (counts all adverts and FIDO ones); 0 skips the scan.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub scan_seconds: u64,
    /// Send HOST to ADDR instead of DNS: an IP, IP:PORT, NAME[:PORT], or `nxdomain` (tests,
    /// split-horizon checks). Repeatable.
    #[arg(long, value_name = "HOST:ADDR")]
    pub resolve: Vec<ResolveOverride>,
    /// Also probe this tunnel host (a self-hosted tunnel). Repeatable.
    #[arg(long = "tunnel-host", value_name = "H")]
    pub tunnel_host: Vec<String>,
    /// Trust only the CA certificates in this PEM file for the tunnel TLS checks (instead of
    /// the system roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = doctor::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
    /// Limit for each network or D-Bus step, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub step_timeout: u64,
    /// The tenant's Passkey (FIDO2) policy as Graph exports it
    /// (`fido2AuthenticationMethodConfiguration` JSON): adds the `policy.*` checks.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The passkey profile to judge (id or name); default: the one the all_users target allows.
    #[arg(long, value_name = "ID|NAME", requires = "policy")]
    pub profile: Option<String>,
    /// AAGUID inventory of registered passkeys (CSV or JSON export; every AAGUID in it counts):
    /// reports registered models the profile no longer admits.
    #[arg(long, value_name = "FILE", requires = "policy")]
    pub registered: Option<PathBuf>,
}

fn options(args: &DoctorArgs) -> Result<DoctorOptions, CmdError> {
    if args.step_timeout == 0 {
        return Err(CmdError::usage("--step-timeout must be at least 1 second"));
    }
    let mut opts = DoctorOptions {
        scan_window: Duration::from_secs(args.scan_seconds),
        step_timeout: Duration::from_secs(args.step_timeout),
        extra_tunnel_hosts: args.tunnel_host.clone(),
        resolve: args.resolve.clone(),
        control_socket: args.socket.clone(),
        ..DoctorOptions::default()
    };
    let probed: Vec<String> = doctor::network::hosts(&opts).into_iter().map(|(h, _)| h).collect();
    if let Some(r) = opts.resolve.iter().find(|r| !probed.contains(&r.host)) {
        return Err(CmdError::usage(format!(
            "--resolve names {}, which is not probed (add --tunnel-host {})",
            r.host, r.host
        )));
    }
    if let Some(path) = &args.policy {
        let sel = cablebridged::policy::SelectedPolicy::load(path, args.profile.as_deref())
            .map_err(|e| {
                if e.is_environment() {
                    CmdError::environment(e.to_string())
                } else {
                    CmdError::usage(e.to_string())
                }
            })?;
        opts.policy = Some(sel);
    }
    if let Some(path) = &args.registered {
        opts.registered = Some(doctor::policy::read_registered(path).map_err(CmdError::usage)?);
    }
    if let Some(path) = &args.ca_file {
        opts.tls_roots = Some(DoctorOptions::load_ca_file(path).map_err(CmdError::usage)?);
    }
    Ok(opts)
}

/// Runs `doctor`, prints, and returns the exit code (0 nothing failed, 1 something failed).
pub fn main(args: &DoctorArgs, json: bool) -> ExitCode {
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => return crate::output::finish(Err(e), json),
    };
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let e = CmdError::environment(format!("cannot start the async runtime: {e}"));
                return crate::output::finish(Err(e), json);
            }
        };
    let report = runtime.block_on(doctor::run(&opts));
    // A resolver thread stuck in getaddrinfo must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    if json {
        println!("{}", report.to_json());
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", table(&report, colour));
    }
    ExitCode::from(if report.failed() { Exit::Ceremony.code() } else { Exit::Ok.code() })
}

/// The human table: `STATUS  CHECK  DETAIL`, remedies on an indented line below their check.
pub fn table(report: &DoctorReport, colour: bool) -> String {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(5).max(5);
    let paint = |s: Status| -> (&str, &str) {
        if !colour {
            return ("", "");
        }
        match s {
            Status::Pass => ("\x1b[32m", "\x1b[0m"),
            Status::Warn => ("\x1b[33m", "\x1b[0m"),
            Status::Fail => ("\x1b[31;1m", "\x1b[0m"),
            Status::Skip => ("\x1b[2m", "\x1b[0m"),
        }
    };
    let mut out = format!("{:<6}  {:<width$}  DETAIL\n", "STATUS", "CHECK");
    for c in &report.checks {
        let (on, off) = paint(c.status);
        out.push_str(&format!(
            "{on}{:<6}{off}  {:<width$}  {}\n",
            c.status.as_str(),
            c.id,
            c.detail
        ));
        if let Some(r) = &c.remedy {
            out.push_str(&format!("{:<6}  {:<width$}  ↳ fix: {r}\n", "", ""));
        }
    }
    out.push_str(&format!(
        "\n{} checks: {} pass, {} warn, {} fail, {} skip\n",
        report.checks.len(),
        report.count(Status::Pass),
        report.count(Status::Warn),
        report.count(Status::Fail),
        report.count(Status::Skip)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cablebridged::doctor::Check;

    #[test]
    fn colour_only_when_asked() {
        let report = DoctorReport {
            checks: vec![Check::pass("x.ok", "fine"), Check::fail("x.broken", "no", "fix")],
        };
        let plain = table(&report, false);
        assert!(!plain.contains('\x1b'));
        assert!(plain.contains("↳ fix: fix") && plain.contains("2 checks: 1 pass, 0 warn, 1 fail"));
        let coloured = table(&report, true);
        assert!(coloured.contains("\x1b[31;1mfail  \x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[32mpass  \x1b[0m"), "{coloured:?}");
    }
}
