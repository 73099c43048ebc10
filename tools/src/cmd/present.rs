//! `cablebridge present`: a Digital Credentials request over hybrid (PROTOCOL-hybrid.md §2.1 key 5
//! `dcp`/`dci`, §8.1 feature `"dc"`, §8.2 type 3). Shows a QR code like `register`, sends the
//! JSON of `--request FILE.json` to the phone once it announced `"dc"`, and prints the phone's
//! JSON reply. A phone without the feature (absent features mean CTAP only; a USB key behind
//! `cablebridge bridge` never has it) fails at stage `post_handshake` with nothing sent.
//! Thin over `cablebridged::desktop::present`; like `register`, it runs through the daemon's
//! `ceremony.present` when the daemon is reachable (`--daemon` / `--no-daemon`), with the same
//! lines printed either way, and in this process when a flag needs it (`--advert-source
//! stdin|fifo:`, `--state-dir`).

use crate::cmd::ceremony::{ceremony_error, Renderer};
use crate::cmd::daemon::SocketArgs;
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
    /// The daemon's socket (used when reachable, see --daemon / --no-daemon).
    #[command(flatten)]
    pub daemon: SocketArgs,
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
    let kind_name = if args.issuance { "issuance" } else { "presentation" };
    let text = String::from_utf8(json.clone()).map_err(|_| {
        CmdError::usage(format!("--request {} is not UTF-8", args.request.display()))
    })?;
    let ms = |d: Duration| serde_json::json!(format!("{}ms", d.as_millis()));
    let mut params = serde_json::json!({
        "request": text,
        "kind": kind_name,
        "user_timeout": ms(args.user_timeout),
        "advert_source": crate::cmd::register::daemon_advert_source(h)?,
        "allow_insecure_tunnel": h.allow_insecure_tunnel,
        "advert_timeout": ms(h.advert_timeout),
        "connect_timeout": ms(h.connect_timeout),
        "handshake_timeout": ms(h.handshake_timeout),
    });
    if let Some(url) = &h.tunnel_url {
        params["tunnel_url"] = serde_json::json!(url);
    }
    let cli_only = crate::cmd::register::hybrid_needs_this_process(h);
    let renderer = Renderer { json: global.json };
    let socket = &args.daemon;
    let reply = crate::cmd::usb::block_on(|cancel| async move {
        let daemon = crate::cmd::daemon::connect_for_ceremony(global, socket, cli_only);
        if let Some(mut client) = daemon.await? {
            match crate::cmd::daemon::start(&mut client, "ceremony.present", params).await {
                Ok(session) => {
                    let path = socket.path();
                    let result =
                        crate::cmd::daemon::follow(client, &path, session, renderer, cancel)
                            .await?;
                    return Ok(result["response"].clone());
                }
                Err(e) if global.daemon => return Err(crate::cmd::daemon::refused(e)),
                Err(e) => global.note(&format!(
                    "running the request in this process: the daemon did not start it ({e})"
                )),
            }
        }
        let sink = Arc::new(renderer);
        let adverts = config.advert_source.clone().into();
        cablebridged::desktop::present(&config, adverts, kind, &json, Some(sink), &cancel)
            .await
            .map_err(ceremony_error)
    })?;
    Ok(Report::new().field("event", "result").field("kind", kind_name).field("response", reply))
}
