//! `cablebridge virtual-key`: run the virtual USB security key on a UDP-HID socket until Ctrl-C.
//!
//! A thin front end over [`cablebridged::virtual_key`]. The one line printed at start-up (the
//! bound address, JSON with `--json`) is printed here, before the key runs, so scripts can ask
//! for port 0 and read the real port back; the final report carries the key's counters.
//! The initial PIN comes from an environment variable, never from a flag value (shell history).
//! It listens on loopback only unless `--allow-remote` is given: it approves user presence by
//! itself, so a reachable port is a key anyone can use without a touch.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cablebridge_protocol::error::{Classify, Fault as Blame};
use cablebridged::evidence::aaguid::Aaguid;
use cablebridged::virtual_key::{
    Attestation, InitialPin, LabFault, VirtualKey, VirtualKeyConfig, VirtualKeyError,
};
use clap::{Args, ValueEnum};

use crate::cli::GlobalOpts;
use crate::output::{CmdError, Report};

/// Environment variable read for the initial PIN when `--pin-env` is not given.
pub const DEFAULT_PIN_ENV: &str = "CABLEBRIDGE_VKEY_PIN";

/// Attestation formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttestationArg {
    /// `packed` with an x5c chain from a per-process test CA.
    Packed,
    /// `none`.
    None,
}

/// Arguments of `virtual-key`.
#[derive(Debug, Args)]
pub struct VirtualKeyArgs {
    /// Where to listen: `udp:HOST:PORT` (port 0 picks a free port, printed at start-up).
    /// Loopback only unless --allow-remote is given.
    #[arg(long, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address. The virtual key approves user presence by itself,
    /// so anyone who can reach the port gets signatures from it without a touch.
    #[arg(long)]
    pub allow_remote: bool,
    /// Send every report to this HOST:PORT instead of to the sender (clients on a fixed port).
    #[arg(long, value_name = "HOST:PORT")]
    pub reply_to: Option<SocketAddr>,
    /// AAGUID to report (dashed UUID or 32 hex digits); default: cablebridge's own.
    #[arg(long, value_parser = parse_aaguid)]
    pub aaguid: Option<Aaguid>,
    /// Read the initial PIN from this environment variable (default: CABLEBRIDGE_VKEY_PIN if
    /// set). It is set only when the key's state has no PIN yet.
    #[arg(long, value_name = "VAR")]
    pub pin_env: Option<String>,
    /// makeCredential attestation format.
    #[arg(long, value_enum, default_value_t = AttestationArg::Packed)]
    pub attestation: AttestationArg,
    /// Simulated touch: approve user presence after this many milliseconds (0: at once).
    /// KEEPALIVE(UPNEEDED) is sent every 100 ms meanwhile.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub user_presence_delay_ms: u64,
    /// Persist the key's state (credentials, PIN, counters) in this file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Misbehave on CBOR requests: never-answer, keepalive-forever, wrong-cid or busy.
    #[arg(long, value_parser = |s: &str| s.parse::<LabFault>())]
    pub fault: Option<LabFault>,
    /// With --fault: misbehave only on this CTAP2 command, answering the others normally, so
    /// the fault hits mid-ceremony (after getInfo): make-credential, get-assertion,
    /// client-pin, or a command byte such as 0x01.
    #[arg(long, value_name = "COMMAND", requires = "fault", value_parser = parse_ctap2_command)]
    pub fault_on: Option<u8>,
    /// Be a U2F-only (CTAP1) key: INIT advertises no CBOR, CTAPHID_MSG is answered with U2F
    /// APDUs, registrations carry `fido-u2f` attestation from a self-signed certificate.
    /// Requests that need a touch answer 0x6985 until --user-presence-delay-ms has passed.
    #[arg(long)]
    pub u2f_only: bool,
    /// An RP id on the key's vendor-facilitated enterprise-attestation list (repeat for
    /// several): once `cablebridge config enable-ep` turned enterprise attestation on,
    /// `register --enterprise-attestation 1` gets an attestation marked epAtt for these RPs
    /// only (2, platform-managed, for any RP).
    #[arg(long = "enterprise-rp-id", value_name = "ID")]
    pub enterprise_rp_ids: Vec<String>,
    /// Give the key a simulated fingerprint sensor: bio enrollment works (`cablebridge bio`,
    /// every sample is captured at once) and, once a finger is enrolled, built-in user
    /// verification (the `uv` option) approves with the touch.
    #[arg(long)]
    pub bio: bool,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let rest = s.strip_prefix("udp:").ok_or("expected udp:HOST:PORT (e.g. udp:127.0.0.1:0)")?;
    rest.parse::<SocketAddr>().map_err(|e| format!("{rest:?} is not an IP:PORT: {e}"))
}

fn parse_aaguid(s: &str) -> Result<Aaguid, String> {
    s.parse::<Aaguid>().map_err(|e| e.to_string())
}

fn key_error(e: &VirtualKeyError) -> CmdError {
    let err = match e.fault() {
        Blame::Caller => CmdError::usage(e.to_string()),
        Blame::Peer => CmdError::ceremony(e.to_string()),
        _ => CmdError::environment(e.to_string()),
    };
    err.at(e.stage())
}

fn initial_pin(args: &VirtualKeyArgs) -> Result<Option<InitialPin>, CmdError> {
    let (var, explicit) = match &args.pin_env {
        Some(var) => (var.as_str(), true),
        None => (DEFAULT_PIN_ENV, false),
    };
    match std::env::var(var) {
        Ok(pin) => InitialPin::new(&pin).map(Some).map_err(|e| key_error(&e)),
        Err(_) if explicit => {
            Err(CmdError::usage(format!("--pin-env {var}: the variable is not set (or not UTF-8)")))
        }
        Err(_) => Ok(None),
    }
}

/// A non-loopback listen address needs `--allow-remote` (exit 2 otherwise): the key approves
/// user presence by itself, so exposing it hands out touch-free signatures.
fn check_listen(args: &VirtualKeyArgs) -> Result<(), CmdError> {
    if args.listen.ip().is_loopback() || args.allow_remote {
        return Ok(());
    }
    Err(CmdError::usage(format!(
        "refusing to listen on non-loopback address {}: the virtual key approves user presence \
         by itself, so anyone who can reach it gets signatures without a touch; listen on \
         127.0.0.1 or [::1], or pass --allow-remote if that is what you want",
        args.listen.ip()
    )))
}

/// Runs `virtual-key` until Ctrl-C (or until a fatal error stops the key).
pub fn run(args: &VirtualKeyArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    check_listen(args)?;
    let config = VirtualKeyConfig {
        listen: args.listen,
        reply_to: args.reply_to,
        aaguid: args
            .aaguid
            .map_or(cablebridge_protocol::authenticator::CABLEBRIDGE_AAGUID, |a| a.0),
        attestation: match args.attestation {
            AttestationArg::Packed => Attestation::Packed,
            AttestationArg::None => Attestation::None,
        },
        presence_delay: Duration::from_millis(args.user_presence_delay_ms),
        state_file: args.state.clone(),
        initial_pin: initial_pin(args)?,
        fault: args.fault.unwrap_or_default(),
        fault_on: args.fault_on,
        u2f_only: args.u2f_only,
        u2f_claims_cbor: false,
        enterprise_rp_ids: args.enterprise_rp_ids.clone(),
        bio: args.bio,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::environment(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let mut key = VirtualKey::bind(config.clone()).await.map_err(|e| key_error(&e))?;
        announce(&key.device_address(), &config, global.json);
        let (stopped_by, result) = tokio::select! {
            r = key.wait() => ("error", r),
            _ = tokio::signal::ctrl_c() => ("ctrl-c", key.shutdown().await),
        };
        let stats = result.map_err(|e| key_error(&e))?;
        Ok(Report::new()
            .field("stopped_by", stopped_by)
            .field("cbor_requests", stats.cbor_requests)
            .field("msg_requests", stats.msg_requests)
            .field("keepalives", stats.keepalives)
            .field("cancels", stats.cancels)
            .field("winks", stats.winks)
            .field("state_writes", stats.state_writes)
            .field("datagrams_in", stats.datagrams_in)
            .field("reports_out", stats.reports_out))
    })
}

/// The start-up line: scripts read the address from it (port 0 → the real port).
fn announce(address: &str, config: &VirtualKeyConfig, json: bool) {
    let aaguid = Aaguid(config.aaguid).to_string();
    let attestation = match config.attestation {
        _ if config.u2f_only => "fido-u2f",
        Attestation::None => "none",
        _ => "packed",
    };
    let line = if json {
        serde_json::json!({
            "event": "listening",
            "address": address,
            "aaguid": aaguid,
            "attestation": attestation,
            "user_presence_delay_ms": config.presence_delay.as_millis() as u64,
            "state": config.state_file.as_ref().map(|p| p.display().to_string()),
            "fault": config.fault.name(),
            "fault_on": config.fault_on,
            "protocol": if config.u2f_only { "ctap1/u2f" } else { "ctap2" },
        })
        .to_string()
    } else {
        format!(
            "virtual key listening on {address} (aaguid {aaguid}, attestation {attestation}, \
             fault {}); Ctrl-C stops it",
            config.fault
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `--fault-on`: a CTAP2 command by name or as a byte (`0x01`, `1`).
fn parse_ctap2_command(s: &str) -> Result<u8, String> {
    let named = match s {
        "make-credential" => Some(0x01),
        "get-assertion" => Some(0x02),
        "get-info" => Some(0x04),
        "client-pin" => Some(0x06),
        "reset" => Some(0x07),
        "get-next-assertion" => Some(0x08),
        "bio-enrollment" => Some(0x09),
        "credential-management" => Some(0x0a),
        "selection" => Some(0x0b),
        "large-blobs" => Some(0x0c),
        "config" => Some(0x0d),
        _ => None,
    };
    named
        .or_else(|| match s.strip_prefix("0x") {
            Some(hex) => u8::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        })
        .ok_or_else(|| {
            format!(
                "unknown CTAP2 command {s:?}: expected make-credential, get-assertion, \
                 get-info, client-pin, reset, get-next-assertion, bio-enrollment, \
                 credential-management, selection, large-blobs, config, or a byte like 0x01"
            )
        })
}
