//! `cablebridge advert decrypt`: trial-open BLE service data with a QR session's key (§5) and
//! print what a desktop would do next (which tunnel to connect to, §6.1).

use crate::cmd::{parse_hex_arg, parse_qr_url};
use crate::output::GlobalOpts;
use crate::output::{CmdError, Report};
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, TrialOpen};
use cablebridge_protocol::hybrid::keys::QrSecret;
use cablebridge_protocol::hybrid::tunnel::{self, TunnelId};
use cablebridge_protocol::Stage;
use clap::{ArgGroup, Args, Subcommand};

/// `advert` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdvertCommand {
    /// Decrypt advert service data with the key of a QR session (exit 1 if it is not ours).
    Decrypt(DecryptArgs),
}

/// Arguments of `advert decrypt`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("key").required(true).args(["qr", "secret"])))]
pub struct DecryptArgs {
    /// The session's FIDO:/ URL.
    #[arg(long, value_name = "FIDO:/...")]
    pub qr: Option<String>,
    /// The session's 16-byte QR secret as hex.
    #[arg(long, value_name = "HEX")]
    pub secret: Option<String>,
    /// Service data (0xFFF9 or 0xFDE2) as hex: 20 bytes, optionally followed by a CTAP 2.3 suffix.
    #[arg(value_name = "SERVICE-DATA-HEX")]
    pub service_data: String,
}

/// Runs an `advert` subcommand.
pub fn run(cmd: &AdvertCommand, global: &GlobalOpts) -> Result<Report, CmdError> {
    match cmd {
        AdvertCommand::Decrypt(a) => decrypt(a, global),
    }
}

fn session_secret(args: &DecryptArgs) -> Result<QrSecret, CmdError> {
    match (&args.qr, &args.secret) {
        (Some(url), _) => Ok(parse_qr_url(url)?.secret),
        (None, Some(hex)) => {
            let bytes = parse_hex_arg("--secret", hex)?;
            QrSecret::from_slice(&bytes).ok_or_else(|| {
                CmdError::usage(format!("--secret must be 16 bytes, got {}", bytes.len()))
            })
        }
        // clap's required group makes this unreachable; still an input error, not a panic.
        (None, None) => Err(CmdError::usage("one of --qr or --secret is required")),
    }
}

fn decrypt(args: &DecryptArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    let secret = session_secret(args)?;
    let data = parse_hex_arg("service data", &args.service_data)?;
    if data.len() < 20 {
        return Err(CmdError::usage(format!(
            "service data is {} bytes; an advert is at least 20",
            data.len()
        )));
    }
    let key = EidKey::from_qr_secret(&secret);
    // The diagnostic variant verifies the tag even when the reserved byte is wrong, so a user
    // learns "ours but malformed" instead of "not ours".
    let opened = match key.trial_open_diagnostic(&data, EidMode::Qr) {
        TrialOpen::Match(o) => o,
        TrialOpen::NotOurs => {
            return Err(CmdError::ceremony("advert not from this QR session").at(Stage::Advert))
        }
        TrialOpen::Invalid(e) => return Err(CmdError::ceremony(e.to_string()).at(Stage::Advert)),
    };
    let pt = &opened.plaintext;
    let tunnel_id = TunnelId::derive(&secret);
    // QR mode already rejected reserved domains, so this only fails if that rule changes.
    let host = pt.tunnel_host().map_err(|e| CmdError::ceremony(e.to_string()).at(Stage::Tunnel))?;
    let connect_url = tunnel::url(&tunnel::wss_base(&host), &pt.connect_path(tunnel_id));
    let report = Report::new()
        .field("eid_plaintext", hex::encode(pt.as_bytes()))
        .field("nonce", hex::encode(pt.nonce()))
        .field("routing_id", pt.routing_id().to_hex())
        .field("domain_id", pt.domain_id())
        .field("tunnel_host", host.as_ref())
        .field("tunnel_id", tunnel_id.to_hex())
        .field("connect_url", connect_url);
    let report = if opened.suffix.is_empty() {
        report
    } else {
        report.field("suffix", hex::encode(&opened.suffix))
    };
    Ok(if global.show_secrets {
        report.field("psk", hex::encode(opened.psk(secret.expose()).expose()))
    } else {
        report
    })
}
