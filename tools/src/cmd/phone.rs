//! `cablebridge phone`: the virtual phone (`cablebridged::phone`) as a command. Scans a
//! `FIDO:/` QR (`--qr`), runs one session through a tunnel server and exits; with
//! `--serve-links` it then (or only, without `--qr`) holds its stored contacts and serves linked
//! desktops until Ctrl-C or `--max-sessions`.
//!
//! Progress goes to stderr (JSON lines with `--json`); the advert goes to `--advert-sink`; the
//! final summary is the usual report on stdout. A real Google/Apple tunnel will not accept this
//! phone (their phone side is private): point `--tunnel-url` at `cablebridge tunnel-server`.

use crate::cmd::tunnel_server::{init_tracing, runtime};
use crate::output::{CmdError, Exit, Report};
use cablebridge_protocol::authenticator::AttestationMode;
use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::advert_suffix::MAX_SUFFIX_LEN;
use cablebridged::ceremony::{CeremonyEvent, Events};
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{
    AdvertSuffixPolicy, FailAt, PhoneConfig, PhoneError, PhoneState, VirtualPhone,
};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `--attestation` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AttestationArg {
    /// `fmt: "none"` (what real phones send).
    None,
    /// `fmt: "packed"` with an x5c chain from a per-phone test CA.
    Packed,
}

/// Arguments of `phone`.
#[derive(Debug, Args)]
pub struct PhoneArgs {
    /// The `FIDO:/` URL the desktop shows, or `-` to read it from standard input. A URL given
    /// here is readable by other local users (/proc/PID/cmdline): prefer `-` or --qr-file.
    #[arg(long, required_unless_present_any = ["serve_links", "qr_file"], conflicts_with = "qr_file")]
    pub qr: Option<String>,
    /// Read the `FIDO:/` URL from this file (keep it mode 0600).
    #[arg(long, value_name = "PATH")]
    pub qr_file: Option<PathBuf>,
    /// Tunnel, advert sink and timeouts (shared with `bridge`).
    #[command(flatten)]
    pub side: PhoneSideArgs,
    /// AAGUID (32 hex digits, dashes allowed).
    #[arg(long)]
    pub aaguid: Option<String>,
    /// makeCredential attestation format.
    #[arg(long, value_enum, default_value_t = AttestationArg::None)]
    pub attestation: AttestationArg,
    /// Answer as a synced passkey provider: authenticator data flags BE (backup eligible) and
    /// BS (backed up) set, which Entra's passkey profiles read as a synced passkey.
    #[arg(long)]
    pub backup_eligible: bool,
    /// Milliseconds the simulated user takes to approve.
    #[arg(long, default_value_t = 0)]
    pub user_presence_delay_ms: u64,
    /// Keep credentials, the phone's root secret and links in FILE (written atomically, 0600).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Send linking info when the QR allows it (key 4 = true).
    #[arg(long)]
    pub offer_linking: bool,
    /// Authenticator name sent in linking info.
    #[arg(long, default_value = "cablebridge virtual phone")]
    pub name: String,
    /// Hold the stored contacts and serve linked desktops (needs --state).
    #[arg(long, requires = "state")]
    pub serve_links: bool,
    /// Stop --serve-links after N sessions.
    #[arg(long)]
    pub max_sessions: Option<u32>,
    /// Revoke every stored link on the tunnel server (desktops then get 410 Gone and forget
    /// it), forget them here, and exit.
    #[arg(long, requires = "state", conflicts_with_all = ["qr", "qr_file", "serve_links"])]
    pub forget_links: bool,
    /// Lab fault: misbehave at handshake (corrupt message 2), post-handshake (corrupt message)
    /// or ctap (answer CTAP2_ERR_OPERATION_DENIED).
    #[arg(long)]
    pub fail_at: Option<FailAt>,
    /// Lab fault: close the tunnel after N frames sent (0 = mid-handshake, before message 2).
    #[arg(long)]
    pub drop_after: Option<u32>,
    /// Lab fault: never open the tunnel (the desktop must time out waiting for an advert).
    #[arg(long)]
    pub never_connect: bool,
    /// CTAP 2.3: append the advert suffix {1: PSM} when the QR offers the BLE channel (key 6
    /// contains 1); without that offer the advert stays 20 bytes so older desktops see it. This
    /// phone serves no L2CAP channel: the desktop falls back to the tunnel.
    #[arg(long, value_name = "PSM", conflicts_with = "force_advert_suffix")]
    pub advert_suffix_psm: Option<u16>,
    /// Lab switch: append these hex bytes to every QR-session advert whatever the QR offered
    /// (malformed suffixes included), to see how a desktop reports them.
    #[arg(long, value_name = "HEX")]
    pub force_advert_suffix: Option<String>,
    /// Lab switch: speak the legacy protocol revision 0 (padded post-handshake message, no
    /// type bytes afterwards, linking info in post-handshake key 2).
    #[arg(long)]
    pub legacy_revision_0: bool,
    /// Lab switch: send the linking update late, N milliseconds after the desktop's shutdown
    /// (needs --offer-linking; the desktop must still be reading late updates).
    #[arg(long, value_name = "MS", requires = "offer_linking")]
    pub late_linking_ms: Option<u64>,
    /// Digital Credentials (lab fixture): announce the "dc" feature and answer every JSON
    /// request with this JSON document verbatim.
    #[arg(long, value_name = "FILE.json")]
    pub dc_document: Option<PathBuf>,
}

fn phone_error(e: PhoneError) -> CmdError {
    let exit = match e.fault() {
        Fault::Environment => Exit::Environment,
        Fault::Caller => Exit::Usage,
        _ => Exit::Ceremony,
    };
    CmdError { exit, message: e.to_string(), stage: None }.at(e.stage())
}

fn parse_aaguid(s: &str) -> Result<[u8; 16], CmdError> {
    let bytes = crate::cmd::parse_hex_arg("--aaguid", &s.replace('-', ""))?;
    <[u8; 16]>::try_from(bytes).map_err(|_| CmdError::usage("--aaguid must be 16 bytes"))
}

/// The phone-side flags `phone` and `bridge` share: where the tunnel is, where adverts go, and
/// how long to wait for the desktop.
#[derive(Debug, Clone, clap::Args)]
pub struct PhoneSideArgs {
    /// Tunnel server base URL (`ws://127.0.0.1:PORT`); default: the domain's production host,
    /// which will refuse us.
    #[arg(long)]
    pub tunnel_url: Option<String>,
    /// Tunnel domain id written into the advert (0 = cable.ua5v.com, 1 = cable.auth.com).
    #[arg(long, default_value_t = 0)]
    pub domain_id: u16,
    /// Where adverts go: stdout, fifo:PATH or unix:PATH (one hex line per advert, every 200 ms),
    /// or bluez / bluez:ADAPTER (a real BLE advertisement through BlueZ, removed when the
    /// handshake starts; a Bluetooth failure exits 3 with its remedy).
    #[arg(long, default_value = "stdout")]
    pub advert_sink: AdvertSinkSpec,
    /// Seconds to wait for the desktop at each step.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Allow plain ws:// to a non-loopback tunnel.
    #[arg(long)]
    pub allow_insecure_tunnel: bool,
}

impl PhoneSideArgs {
    /// A phone configuration with these flags applied.
    pub fn phone_config(&self) -> Result<PhoneConfig, CmdError> {
        let base = match &self.tunnel_url {
            Some(u) => u.clone(),
            None => PhoneConfig::default_tunnel_base(self.domain_id).map_err(phone_error)?,
        };
        let mut c = PhoneConfig::new(base);
        c.domain_id = self.domain_id;
        c.sink = self.advert_sink.clone();
        c.desktop_timeout = Duration::from_secs(self.timeout_secs);
        c.idle_timeout = Duration::from_secs(self.timeout_secs);
        c.connect.allow_insecure = self.allow_insecure_tunnel;
        Ok(c)
    }
}

/// Events on stderr: JSON lines ([`CeremonyEvent::to_json`]) or human lines (the same renderer
/// as ceremonies). The phone and the bridge only emit [`CeremonyEvent::Phone`].
pub fn stderr_events(json: bool) -> Events {
    let sink = move |e: &CeremonyEvent| {
        let mut err = std::io::stderr().lock();
        let _ = if json {
            writeln!(err, "{}", e.to_json())
        } else {
            write!(err, "{}", crate::cmd::ceremony::Renderer::human_text(e))
        };
    };
    Some(Arc::new(sink))
}

impl PhoneArgs {
    fn config(&self) -> Result<PhoneConfig, CmdError> {
        let mut c = self.side.phone_config()?;
        if let Some(a) = &self.aaguid {
            c.aaguid = parse_aaguid(a)?;
        }
        c.attestation = match self.attestation {
            AttestationArg::None => AttestationMode::None,
            AttestationArg::Packed => AttestationMode::PackedTestCa,
        };
        c.backup_eligible = self.backup_eligible;
        c.presence_delay = Duration::from_millis(self.user_presence_delay_ms);
        c.offer_linking = self.offer_linking;
        c.name = self.name.clone();
        c.faults.fail_at = self.fail_at;
        c.faults.drop_after = self.drop_after;
        c.faults.never_connect = self.never_connect;
        if let Some(psm) = self.advert_suffix_psm {
            c.advert_suffix = AdvertSuffixPolicy::BlePsm(psm);
        }
        if let Some(hex) = &self.force_advert_suffix {
            let bytes = crate::cmd::parse_hex_arg("--force-advert-suffix", hex)?;
            if bytes.is_empty() || bytes.len() > MAX_SUFFIX_LEN {
                return Err(CmdError::usage(format!(
                    "--force-advert-suffix must be 1 to {MAX_SUFFIX_LEN} bytes"
                )));
            }
            c.advert_suffix = AdvertSuffixPolicy::Force(bytes);
        }
        c.legacy_revision_0 = self.legacy_revision_0;
        c.late_linking = self.late_linking_ms.map(Duration::from_millis);
        if let Some(path) = &self.dc_document {
            let doc = std::fs::read(path).map_err(|e| {
                CmdError::usage(format!("cannot read --dc-document {}: {e}", path.display()))
            })?;
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&doc) {
                return Err(CmdError::usage(format!(
                    "--dc-document {} is not JSON: {e}",
                    path.display()
                )));
            }
            c.dc_document = Some(doc);
        }
        Ok(c)
    }
}

/// Runs the phone.
pub fn run(args: &PhoneArgs, json: bool) -> Result<Report, CmdError> {
    init_tracing("warn");
    let qr = crate::cmd::qr_input::read_qr(args.qr.as_deref(), args.qr_file.as_deref())?;
    let config = args.config()?;
    let progress = stderr_events(json);
    let mut phone = match &args.state {
        Some(path) => {
            VirtualPhone::with_state_file(config, path.clone(), progress).map_err(phone_error)?
        }
        None => VirtualPhone::new(config, PhoneState::new(&mut rand::rngs::OsRng), None, progress),
    };
    if args.forget_links {
        // Revokes each contact on the tunnel server (desktops then get 410 and forget the link).
        let done = runtime()?.block_on(phone.forget_links()).map_err(phone_error)?;
        for why in &done.unconfirmed {
            eprintln!("warning: revocation not confirmed: {why}");
        }
        return Ok(Report::new()
            .field("links_forgotten", true)
            .field("revoked", done.revoked)
            .field("revocations_unconfirmed", done.unconfirmed));
    }
    runtime()?.block_on(async move {
        let mut report = Report::new();
        if let Some(qr) = &qr {
            let s = tokio::select! {
                r = phone.run_qr(qr) => r.map_err(phone_error)?,
                _ = tokio::signal::ctrl_c() => return Err(CmdError::ceremony("interrupted")),
            };
            report = report
                .opt_field("routing_id", s.routing_id)
                .field("requests", s.requests)
                .opt_field("last_status", s.last_status)
                .field("linking_sent", s.linking_sent)
                .field("frames_sent", s.frames_sent)
                .field("fault_injected", s.fault_injected);
        }
        if args.serve_links {
            let served = tokio::select! {
                r = phone.serve_links(args.max_sessions) => Some(r.map_err(phone_error)?),
                // Ctrl-C is how a listening phone normally stops.
                _ = tokio::signal::ctrl_c() => None,
            };
            report = report.opt_field("linked_sessions", served);
        }
        Ok(report)
    })
}
