//! `cablebridge qr new` and `cablebridge qr decode`: make a fresh `FIDO:/` QR code (as a desktop
//! would, §2) or take one apart.

use crate::cmd::parse_qr_url;
use crate::output::GlobalOpts;
use crate::output::{CmdError, Report};
use cablebridge_protocol::hybrid::qr::{QrPayload, RequestHint};
use clap::{Args, Subcommand, ValueEnum};
use qrcode::render::{svg, unicode};
use qrcode::QrCode;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `qr` subcommands.
#[derive(Debug, Subcommand)]
pub enum QrCommand {
    /// Generate a fresh QR identity key and secret; print the FIDO:/ URL as a terminal QR code.
    New(NewArgs),
    /// Decode a FIDO:/ URL and print its fields (including the secret: you supplied it).
    Decode(DecodeArgs),
}

/// Request-type hint written as QR key 5.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HintArg {
    /// getAssertion (sign in).
    Ga,
    /// makeCredential (create a passkey).
    Mc,
    /// Digital-credential presentation.
    Dcp,
    /// Digital-credential issuance.
    Dci,
}

impl From<HintArg> for RequestHint {
    fn from(h: HintArg) -> Self {
        match h {
            HintArg::Ga => RequestHint::GetAssertion,
            HintArg::Mc => RequestHint::MakeCredential,
            HintArg::Dcp => RequestHint::DcPresentation,
            HintArg::Dci => RequestHint::DcIssuance,
        }
    }
}

/// Arguments of `qr new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Request-type hint (QR key 5).
    #[arg(long, value_enum, default_value = "ga")]
    pub hint: HintArg,
    /// Advertise that this desktop can store linking info (QR key 4 = true).
    #[arg(long)]
    pub linking: bool,
    /// Also write the QR code as a PNG image.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Also write the QR code as an SVG image.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Arguments of `qr decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The URL, e.g. `FIDO:/1234...` (prefix case-insensitive).
    pub url: String,
}

/// Runs a `qr` subcommand.
pub fn run(cmd: &QrCommand, global: &GlobalOpts) -> Result<Report, CmdError> {
    match cmd {
        QrCommand::New(a) => new(a, global),
        QrCommand::Decode(a) => {
            let qr = parse_qr_url(&a.url)?;
            Ok(describe(Report::new(), &qr, true))
        }
    }
}

/// The payload's fields, in wire-key order.
fn describe(report: Report, qr: &QrPayload, show_secret: bool) -> Report {
    let unknown: Vec<Value> =
        qr.unknown_keys.iter().map(|(k, v)| Value::String(format!("{k:?}: {v:?}"))).collect();
    let report = report.field("public_key", hex::encode(qr.public_key_compressed()));
    let report =
        if show_secret { report.field("secret", hex::encode(qr.secret.expose())) } else { report };
    let report = report
        .field("known_domains", qr.known_domains)
        .field("timestamp", qr.timestamp)
        .field("linking", qr.linking)
        .field("hint", qr.hint.as_ref().map(|h| h.as_str().to_owned()))
        .field("tunnel_id", qr.tunnel_id().to_hex());
    if unknown.is_empty() {
        report
    } else {
        report.field("unknown_keys", unknown)
    }
}

fn new(args: &NewArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| CmdError::environment("system clock is before 1970"))?
        .as_secs();
    let (_private_key, qr) =
        QrPayload::generate(&mut rand::rngs::OsRng, now, args.hint.into(), args.linking);
    let url = qr.to_url();
    // `QrCode::new` picks segment modes itself: alphanumeric for `FIDO:/`, numeric for digits.
    let code = QrCode::new(url.as_bytes())
        .map_err(|e| CmdError::usage(format!("cannot render QR code: {e}")))?;
    if let Some(path) = &args.png {
        write_png(&code, path)?;
    }
    if let Some(path) = &args.svg {
        let image = code.render::<svg::Color<'_>>().min_dimensions(256, 256).build();
        std::fs::write(path, image)
            .map_err(|e| CmdError::environment(format!("cannot write {}: {e}", path.display())))?;
    }
    let drawing = terminal_drawing(&code);
    let report = Report::new().preamble(format!("{drawing}\n")).field("url", url.clone());
    let report = describe(report, &qr, global.show_secrets);
    Ok(report
        .opt_field("png", args.png.as_deref().map(path_string))
        .opt_field("svg", args.svg.as_deref().map(path_string)))
}

/// The QR code of `url` drawn with Unicode half blocks for a terminal (shared with the ceremony
/// commands, which show the QR while they wait for a phone).
pub fn render_terminal(url: &str) -> Result<String, CmdError> {
    let code = QrCode::new(url.as_bytes())
        .map_err(|e| CmdError::usage(format!("cannot render QR code: {e}")))?;
    Ok(terminal_drawing(&code))
}

fn terminal_drawing(code: &QrCode) -> String {
    // Light-on-dark, as the qrcode docs recommend for terminals; the quiet zone keeps it scannable.
    code.render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build()
}

fn path_string(p: &Path) -> String {
    p.display().to_string()
}

fn write_png(code: &QrCode, path: &Path) -> Result<(), CmdError> {
    let image = code.render::<image::Luma<u8>>().quiet_zone(true).min_dimensions(256, 256).build();
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| CmdError::environment(format!("cannot write {}: {e}", path.display())))
}
