//! `cablebridge present`: a Digital Credentials request over hybrid (PROTOCOL-hybrid.md §2.1 key 5
//! `dcp`/`dci`, §8.1 feature `"dc"`, §8.2 type 3). Shows a QR code like `register`, sends the
//! JSON of `--request FILE.json` to the phone once it announced `"dc"`, and prints the phone's
//! JSON reply. A phone without the feature (absent features mean CTAP only; a USB key behind
//! `cablebridge bridge` never has it) fails at stage `post_handshake` with nothing sent.
//! Thin over `cablebridged::desktop::present`.

use crate::cmd::ceremony::{ceremony_error, Renderer};
use crate::cmd::register::HybridArgs;
use crate::output::{CmdError, GlobalOpts, Report};
use cablebridged::advert::AdvertSource;
use cablebridged::desktop::{DcKind, DesktopConfig};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest request file read (a DC request is a few KiB; the tunnel caps frames anyway).
const MAX_REQUEST_BYTES: u64 = 256 * 1024;

/// Arguments of `present`.
#[derive(Debug, Args)]
pub struct PresentArgs {
    /// The Digital Credentials request (UTF-8 JSON, sent verbatim as the type-3 message).
    #[arg(long, value_name = "FILE.json")]
    pub request: PathBuf,
    /// An issuance request (QR hint "dci") instead of a presentation (hint "dcp").
    #[arg(long)]
    pub issuance: bool,
    /// Time for the user to answer on the phone.
    #[arg(long, value_name = "DURATION", default_value = "180s",
          value_parser = crate::cmd::ceremony::parse_duration)]
    pub user_timeout: Duration,
    /// Hybrid flags (--linked and linking do not apply: no linking is offered).
    #[command(flatten)]
    pub hybrid: HybridArgs,
}

/// Runs `present`.
pub fn run(args: &PresentArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    if args.hybrid.linked.is_some() {
        return Err(CmdError::usage("present works with a QR code only, not --linked"));
    }
    let meta = std::fs::metadata(&args.request).map_err(|e| {
        CmdError::usage(format!("cannot read --request {}: {e}", args.request.display()))
    })?;
    if meta.len() > MAX_REQUEST_BYTES {
        return Err(CmdError::usage(format!(
            "--request {} is {} bytes, more than {MAX_REQUEST_BYTES}",
            args.request.display(),
            meta.len()
        )));
    }
    let json = std::fs::read(&args.request).map_err(|e| {
        CmdError::usage(format!("cannot read --request {}: {e}", args.request.display()))
    })?;
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&json) {
        return Err(CmdError::usage(format!(
            "--request {} is not JSON: {e}",
            args.request.display()
        )));
    }
    let h = &args.hybrid;
    let source: AdvertSource = h
        .advert_source
        .parse()
        .map_err(|e: cablebridged::advert::AdvertSourceError| CmdError::usage(e.to_string()))?;
    let mut config = DesktopConfig::new(source);
    config.tunnel_url.clone_from(&h.tunnel_url);
    config.allow_insecure_tunnel = h.allow_insecure_tunnel;
    config.timeouts.advert = h.advert_timeout;
    config.timeouts.connect = h.connect_timeout;
    config.timeouts.handshake = h.handshake_timeout;
    config.timeouts.user = args.user_timeout;
    let kind = if args.issuance { DcKind::Issuance } else { DcKind::Presentation };
    let sink = Arc::new(Renderer { json: global.json });
    let adverts = config.advert_source.clone().into();
    let reply = crate::cmd::usb::block_on(|cancel| async move {
        cablebridged::desktop::present(&config, adverts, kind, &json, Some(sink), &cancel)
            .await
            .map_err(ceremony_error)
    })?;
    Ok(Report::new()
        .field("event", "result")
        .field("kind", if args.issuance { "issuance" } else { "presentation" })
        .field("response", reply))
}
