//! `cablebridge bridge`: serve a USB security key (or a UDP-HID simulator) to a desktop as if
//! it were a phone over hybrid (`cablebridged::bridge`). Scans the desktop's `FIDO:/` QR from
//! `--qr` (`-` = stdin), `--qr-file` or a screenshot (`--qr-image`, PNG/JPEG), opens `--device`,
//! runs one session and exits with the usual report.
//!
//! With `--offer-linking` the desktop may remember the bridge (linking info in the QR session),
//! and `--serve-links` keeps the bridge running after the QR session, serving that desktop's
//! linked requests (no QR) with the same key until Ctrl-C; `--state FILE` keeps the bridge's
//! identity and links across runs, and `--forget-links --state FILE` revokes them on the tunnel
//! server (desktops get 410 Gone and forget the link) without a key.
//!
//! Progress goes to stderr (JSON lines with `--json`): `key_ready`, `forwarding` (command and
//! relying party), `key_waiting` ("touch the key"), `refused`, `warning`, `responded`, `closed`. Ctrl-C sends CTAPHID_CANCEL to the key
//! and exits 1. The getInfo the desktop sees omits the key's PIN machinery: PIN/UV auth is never
//! run over hybrid (see the module docs of `cablebridged::bridge`).

use crate::cmd::phone::{stderr_events, PhoneSideArgs};
use crate::cmd::qr_input::read_qr;
use crate::cmd::tunnel_server::{init_tracing, runtime};
use crate::output::{CmdError, Exit, Report};
use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::bridge::qr_image::read_qr_image;
use cablebridged::bridge::{self, BridgeConfig, KeyBackend};
use cablebridged::hid::DeviceAddress;
use cablebridged::phone::{PhoneConfig, PhoneError, PhoneState};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a cancelled session gets to send CTAPHID_CANCEL and close the tunnel.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Arguments of `bridge`.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// The `FIDO:/` URL the desktop shows, or `-` to read it from standard input. A URL given
    /// here is readable by other local users (/proc/PID/cmdline): prefer `-` or --qr-file.
    #[arg(
        long,
        required_unless_present_any = ["qr_image", "qr_file", "serve_links", "forget_links"],
        conflicts_with_all = ["qr_image", "qr_file"]
    )]
    pub qr: Option<String>,
    /// Read the `FIDO:/` URL from this file (keep it mode 0600).
    #[arg(long, value_name = "PATH", conflicts_with = "qr_image")]
    pub qr_file: Option<PathBuf>,
    /// A PNG or JPEG picture (screenshot) of the desktop's QR code.
    #[arg(long)]
    pub qr_image: Option<PathBuf>,
    /// The security key: /dev/hidrawN or udp:HOST:PORT (a `virtual-key` simulator).
    #[arg(long, required_unless_present = "forget_links")]
    pub device: Option<DeviceAddress>,
    /// Tunnel, advert sink and timeouts (shared with `phone`).
    #[command(flatten)]
    pub side: PhoneSideArgs,
    /// Seconds one request may wait for a touch on the key (then USER_ACTION_TIMEOUT).
    #[arg(long, default_value_t = 120)]
    pub touch_timeout_secs: u64,
    /// Send linking info when the QR allows it, so the desktop remembers this bridge.
    #[arg(long)]
    pub offer_linking: bool,
    /// Name sent in linking info (what the desktop lists).
    #[arg(long, default_value = "cablebridge bridge")]
    pub name: String,
    /// Keep the bridge's identity and links in FILE (written atomically, 0600); without it
    /// they last as long as this process.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// After the QR session (if any), keep serving linked desktops through the key until
    /// Ctrl-C (without a QR: the links in --state).
    #[arg(long)]
    pub serve_links: bool,
    /// Stop --serve-links after N linked sessions.
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u32>,
    /// Revoke every link in --state on the tunnel server (desktops then get 410 Gone and forget
    /// it), forget them, and exit. Needs no key.
    #[arg(long, requires = "state",
          conflicts_with_all = ["qr", "qr_file", "qr_image", "serve_links", "offer_linking"])]
    pub forget_links: bool,
}

/// Environment → exit 3, caller → exit 2, anything else (key, desktop, tunnel) → exit 1.
fn classified<E: Classify + std::fmt::Display>(e: &E) -> CmdError {
    let exit = match e.fault() {
        Fault::Environment => Exit::Environment,
        Fault::Caller => Exit::Usage,
        _ => Exit::Ceremony,
    };
    CmdError { exit, message: e.to_string(), stage: None }.at(e.stage())
}

impl BridgeArgs {
    fn qr(&self) -> Result<QrPayload, CmdError> {
        if let Some(qr) = read_qr(self.qr.as_deref(), self.qr_file.as_deref())? {
            return Ok(qr);
        }
        match &self.qr_image {
            Some(path) => read_qr_image(path).map_err(|e| classified(&e)),
            None => Err(CmdError::usage("give --qr, --qr-file or --qr-image")),
        }
    }

    fn config(&self) -> Result<PhoneConfig, CmdError> {
        let mut c = self.side.phone_config()?;
        c.name.clone_from(&self.name);
        c.offer_linking = self.offer_linking;
        Ok(c)
    }

    fn has_qr(&self) -> bool {
        self.qr.is_some() || self.qr_file.is_some() || self.qr_image.is_some()
    }
}

/// `--forget-links`: the phone role's revocation over the stored contacts (no key needed: the
/// links belong to the bridge's identity, not to the key).
fn forget_links(args: &BridgeArgs, json: bool) -> Result<Report, CmdError> {
    let Some(path) = args.state.clone() else {
        return Err(CmdError::usage("--forget-links needs --state FILE"));
    };
    let mut phone = cablebridged::phone::VirtualPhone::with_state_file(
        args.config()?,
        path,
        stderr_events(json),
    )
    .map_err(|e| classified(&e))?;
    let done = runtime()?.block_on(phone.forget_links()).map_err(|e| classified(&e))?;
    for why in &done.unconfirmed {
        eprintln!("warning: revocation not confirmed: {why}");
    }
    Ok(Report::new()
        .field("links_forgotten", true)
        .field("revoked", done.revoked)
        .field("revocations_unconfirmed", done.unconfirmed))
}

/// Runs the bridge: the QR session (if any), then linked desktops with `--serve-links`.
pub fn run(args: &BridgeArgs, json: bool) -> Result<Report, CmdError> {
    init_tracing("warn");
    if args.forget_links {
        return forget_links(args, json);
    }
    let qr = if args.has_qr() { Some(args.qr()?) } else { None };
    if qr.is_none() && !args.serve_links {
        return Err(CmdError::usage("give --qr, --qr-file or --qr-image (or --serve-links)"));
    }
    if qr.is_none() && args.state.is_none() {
        return Err(CmdError::usage("--serve-links without a QR code needs --state with links"));
    }
    let Some(device) = args.device.clone() else {
        return Err(CmdError::usage("--device is required"));
    };
    let config = args.config()?;
    let bridge_config = BridgeConfig {
        request_timeout: Duration::from_secs(args.touch_timeout_secs),
        ..BridgeConfig::default()
    };
    let state = match &args.state {
        Some(path) => PhoneState::load_or_new(path, &mut rand::rngs::OsRng)
            .map_err(|e| classified(&PhoneError::from(e)))?,
        None => PhoneState::new(&mut rand::rngs::OsRng),
    };
    let progress = stderr_events(json);
    runtime()?.block_on(async move {
        let cancel = CancellationToken::new();
        let opened = tokio::select! {
            r = KeyBackend::open(&device, &bridge_config, &cancel) => r,
            _ = tokio::signal::ctrl_c() => return Err(CmdError::ceremony("interrupted")),
        };
        let backend = opened.map_err(|e| classified(&e))?;
        let path = backend.path().to_owned();
        let aaguid = hex::encode(backend.key_info().aaguid);
        let mut bridge =
            bridge::bridge_with_state(config, backend, state, args.state.clone(), progress);
        let mut report = Report::new().field("device", path).field("aaguid", aaguid);
        if let Some(qr) = &qr {
            let shutdown = bridge.shutdown_token();
            let result = {
                let session = bridge.run_qr(qr);
                tokio::pin!(session);
                tokio::select! {
                    r = &mut session => r,
                    _ = tokio::signal::ctrl_c() => {
                        // Let the session cancel the key (CTAPHID_CANCEL) and close the tunnel.
                        shutdown.cancel();
                        match tokio::time::timeout(CANCEL_GRACE, &mut session).await {
                            Ok(Err(PhoneError::Cancelled { .. })) | Err(_) => {
                                return Err(CmdError::ceremony(
                                    "interrupted; the key was sent CANCEL",
                                ))
                            }
                            Ok(r) => r,
                        }
                    }
                }
            };
            let s = result.map_err(|e| classified(&e))?;
            bridge.save().map_err(|e| classified(&e))?;
            report = report
                .opt_field("routing_id", s.routing_id)
                .field("requests", s.requests)
                .opt_field("last_status", s.last_status)
                .field("frames_sent", s.frames_sent);
            if args.offer_linking {
                report = report.field("linking_sent", s.linking_sent);
            }
        }
        if args.serve_links {
            let shutdown = bridge.shutdown_token();
            let served = {
                let serving = bridge.serve_links(args.max_sessions);
                tokio::pin!(serving);
                tokio::select! {
                    r = &mut serving => Some(r.map_err(|e| classified(&e))?),
                    // Ctrl-C is how a serving bridge normally stops: a pending key request gets
                    // CTAPHID_CANCEL, the listeners close.
                    _ = tokio::signal::ctrl_c() => {
                        shutdown.cancel();
                        let _ = tokio::time::timeout(CANCEL_GRACE, &mut serving).await;
                        None
                    }
                }
            };
            bridge.save().map_err(|e| classified(&e))?;
            report = report.opt_field("linked_sessions", served);
        }
        Ok(report)
    })
}
