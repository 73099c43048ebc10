//! `cablebridge bridge`: serve a USB security key (or a UDP-HID simulator) to a desktop as if
//! it were a phone over hybrid (`cablebridged::bridge`). Scans the desktop's `FIDO:/` QR from
//! `--qr` (`-` = stdin), `--qr-file` or a screenshot (`--qr-image`, PNG/JPEG), opens `--device`,
//! runs one session and exits with the usual report.
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
use cablebridged::phone::{PhoneConfig, PhoneError};
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
        required_unless_present_any = ["qr_image", "qr_file"],
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
    #[arg(long)]
    pub device: DeviceAddress,
    /// Tunnel, advert sink and timeouts (shared with `phone`).
    #[command(flatten)]
    pub side: PhoneSideArgs,
    /// Seconds one request may wait for a touch on the key (then USER_ACTION_TIMEOUT).
    #[arg(long, default_value_t = 120)]
    pub touch_timeout_secs: u64,
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
        c.name = "cablebridge bridge".to_owned();
        Ok(c)
    }
}

/// Runs the bridge for one session.
pub fn run(args: &BridgeArgs, json: bool) -> Result<Report, CmdError> {
    init_tracing("warn");
    let qr = args.qr()?;
    let config = args.config()?;
    let bridge_config = BridgeConfig {
        request_timeout: Duration::from_secs(args.touch_timeout_secs),
        ..BridgeConfig::default()
    };
    let progress = stderr_events(json);
    runtime()?.block_on(async move {
        let cancel = CancellationToken::new();
        let opened = tokio::select! {
            r = KeyBackend::open(&args.device, &bridge_config, &cancel) => r,
            _ = tokio::signal::ctrl_c() => return Err(CmdError::ceremony("interrupted")),
        };
        let backend = opened.map_err(|e| classified(&e))?;
        let device = backend.path().to_owned();
        let aaguid = hex::encode(backend.key_info().aaguid);
        let mut bridge = bridge::bridge(config, backend, progress);
        let shutdown = bridge.shutdown_token();
        let session = bridge.run_qr(&qr);
        tokio::pin!(session);
        let result = tokio::select! {
            r = &mut session => r,
            _ = tokio::signal::ctrl_c() => {
                // Let the session cancel the key (CTAPHID_CANCEL) and close the tunnel.
                shutdown.cancel();
                match tokio::time::timeout(CANCEL_GRACE, &mut session).await {
                    Ok(Err(PhoneError::Cancelled { .. })) | Err(_) => {
                        return Err(CmdError::ceremony("interrupted; the key was sent CANCEL"))
                    }
                    Ok(r) => r,
                }
            }
        };
        let s = result.map_err(|e| classified(&e))?;
        Ok(Report::new()
            .field("device", device)
            .field("aaguid", aaguid)
            .opt_field("routing_id", s.routing_id)
            .field("requests", s.requests)
            .opt_field("last_status", s.last_status)
            .field("frames_sent", s.frames_sent))
    })
}
