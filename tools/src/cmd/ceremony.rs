//! What `register` and `authenticate` share whatever the transport: the WebAuthn option flags,
//! their conversion into `cablebridged::ceremony` options, and the progress/result renderer.
//!
//! Output contract: with `--json`, stdout is JSON lines, each with an `event` field —
//! `{"event":"qr","url":"FIDO:/..."}`, `{"event":"progress","stage":..,"elapsed_ms":..}`, and
//! last either `{"event":"result",...}` or `{"event":"error","stage":..,"message":..}`. Without
//! it, the QR code and the staged progress go to stderr (so stdout stays the result alone).

use crate::cmd::qr::render_terminal;
use crate::output::{CmdError, Exit, Report};
use cablebridged::ceremony::{
    from_b64url, AuthenticateOptions, CeremonyError, CeremonyEvent, CeremonyStage, EventSink,
    ProgressDetail, RegisterOptions, Requirement,
};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// `--help` text of the ceremony commands' exit codes.
pub const CEREMONY_EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  ceremony failed: the authenticator said no, a stage timed out, or the phone/tunnel misbehaved
  2  usage or input error (bad flags, bad base64url, unknown linked phone, insecure tunnel URL)
  3  environment error (no Bluetooth, tunnel unreachable, state directory not writable)";

/// `--resident-key` / `--uv` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RequirementArg {
    /// Fail if the authenticator cannot.
    Required,
    /// Use it when available.
    Preferred,
    /// Do not ask for it.
    Discouraged,
}

impl From<RequirementArg> for Requirement {
    fn from(r: RequirementArg) -> Self {
        match r {
            RequirementArg::Required => Requirement::Required,
            RequirementArg::Preferred => Requirement::Preferred,
            RequirementArg::Discouraged => Requirement::Discouraged,
        }
    }
}

/// `--transport`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum TransportArg {
    /// A phone over the FIDO hybrid transport (QR code, BLE advert, tunnel).
    #[default]
    Hybrid,
    /// A security key over USB HID.
    Usb,
}

/// Flags of every ceremony.
#[derive(Debug, Clone, Args)]
pub struct CeremonyArgs {
    /// Relying party id (a domain, e.g. example.com).
    #[arg(long)]
    pub rp_id: String,
    /// Origin written into clientDataJSON [default: https://<rp-id>].
    #[arg(long)]
    pub origin: Option<String>,
    /// Challenge as base64url (at least 16 bytes) [default: 32 random bytes].
    #[arg(long)]
    pub challenge: Option<String>,
    /// User verification.
    #[arg(long, value_enum, default_value = "preferred")]
    pub uv: RequirementArg,
    /// How to reach the authenticator.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub transport: TransportArg,
    /// Time the user has to answer on the authenticator (e.g. 180s, 2m, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "180s", value_parser = parse_duration)]
    pub user_timeout: Duration,
}

/// Parses `500ms`, `30s`, `2m` or a bare number of seconds.
pub use cablebridged::ceremony::parse_duration;

fn b64_arg(what: &str, s: &str) -> Result<Vec<u8>, CmdError> {
    from_b64url(s).ok_or_else(|| CmdError::usage(format!("{what} is not valid base64url: {s:?}")))
}

impl CeremonyArgs {
    fn challenge(&self) -> Result<Option<Vec<u8>>, CmdError> {
        self.challenge.as_deref().map(|c| b64_arg("--challenge", c)).transpose()
    }

    /// Registration options from these flags plus the registration-only ones.
    pub fn register_options(
        &self,
        user_name: &str,
        user_id: Option<&str>,
        display_name: Option<&str>,
        resident_key: RequirementArg,
    ) -> Result<RegisterOptions, CmdError> {
        let mut o = RegisterOptions::new(&self.rp_id, user_name);
        o.origin.clone_from(&self.origin);
        if let Some(c) = self.challenge()? {
            o.challenge = c;
        }
        if let Some(id) = user_id {
            o.user.id = b64_arg("--user-id", id)?;
        }
        if let Some(d) = display_name {
            d.clone_into(&mut o.user.display_name);
        }
        o.resident_key = resident_key.into();
        o.uv = self.uv.into();
        o.validate().map_err(ceremony_error)?;
        Ok(o)
    }

    /// Authentication options from these flags plus `--allow-credential`s.
    pub fn authenticate_options(&self, allow: &[String]) -> Result<AuthenticateOptions, CmdError> {
        let mut o = AuthenticateOptions::new(&self.rp_id);
        o.origin.clone_from(&self.origin);
        if let Some(c) = self.challenge()? {
            o.challenge = c;
        }
        o.allow_credentials =
            allow.iter().map(|a| b64_arg("--allow-credential", a)).collect::<Result<_, _>>()?;
        o.uv = self.uv.into();
        o.validate().map_err(ceremony_error)?;
        Ok(o)
    }
}

/// A [`CeremonyError`] as a CLI failure: its exit code ([`Exit::from`]), message and stage.
pub fn ceremony_error(e: CeremonyError) -> CmdError {
    CmdError { exit: Exit::from(&e), message: e.to_string(), stage: Some(e.stage.as_str()) }
}

/// Prints progress: JSON lines on stdout, or QR + staged lines on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Renderer {
    /// `--json`.
    pub json: bool,
}

impl Renderer {
    /// The JSON line of one event; `None` for the terminal `result`/`error` events, which the
    /// command prints itself (with `verification`, through `output::finish`).
    pub fn event_line(event: &CeremonyEvent) -> Option<Value> {
        match event {
            CeremonyEvent::Result(_) | CeremonyEvent::Error(_) => None,
            other => Some(other.to_json()),
        }
    }

    /// The human text (and QR drawing) of one event.
    pub fn human_text(event: &CeremonyEvent) -> String {
        match event {
            CeremonyEvent::Warning { elapsed_ms, message, .. } => {
                format!("[{elapsed_ms:>6} ms] warning: {message}\n")
            }
            CeremonyEvent::Phone { elapsed_ms, event } => {
                format!("{}\n", event.to_human(*elapsed_ms))
            }
            CeremonyEvent::Qr { url } => {
                let mut out = String::new();
                if let Ok(drawing) = render_terminal(url) {
                    out.push_str(&drawing);
                    out.push('\n');
                }
                out.push_str(&format!("Scan with your phone's camera, or paste: {url}\n"));
                out
            }
            CeremonyEvent::Progress(event) => {
                let extra = match &event.detail {
                    ProgressDetail::Advert { rssi: Some(r), routing_id, .. } => {
                        format!(" (RSSI {r} dBm, routing id {routing_id})")
                    }
                    ProgressDetail::Advert { rssi: None, routing_id, .. } => {
                        format!(" (routing id {routing_id})")
                    }
                    ProgressDetail::Text(t) => format!(" ({t})"),
                    _ => String::new(),
                };
                let stage = event.stage;
                format!(
                    "[{:>6} ms] {}{extra}\n",
                    event.elapsed_ms,
                    if stage == CeremonyStage::Done { "done" } else { stage.finished_text() }
                )
            }
            _ => String::new(),
        }
    }
}

impl EventSink for Renderer {
    fn emit(&self, event: &CeremonyEvent) {
        if self.json {
            if let Some(line) = Self::event_line(event) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        } else {
            let _ = std::io::stderr().write_all(Self::human_text(event).as_bytes());
        }
    }
}

/// A result object (`{"event":"result",...}`) as a [`Report`]: in JSON mode it prints as the
/// last line unchanged; in human mode as aligned `name value` lines.
pub fn result_report(result: &Value, extra: Vec<(&'static str, Value)>) -> Report {
    let mut report = Report::new();
    for key in cablebridged::ceremony::RESULT_FIELDS {
        if let Some(v) = result.get(key) {
            report = report.field(key, v.clone());
        }
    }
    for (k, v) in extra {
        report = report.field(k, v);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn qr_event_then_progress_line() {
        use cablebridged::ceremony::ProgressEvent;
        let qr = CeremonyEvent::Qr { url: "FIDO:/123".into() };
        assert_eq!(Renderer::event_line(&qr), Some(json!({"event": "qr", "url": "FIDO:/123"})));
        assert!(Renderer::human_text(&qr).contains("FIDO:/123"));
        let shown = CeremonyEvent::Progress(ProgressEvent {
            stage: CeremonyStage::QrShown,
            elapsed_ms: 3,
            stage_ms: 3,
            detail: ProgressDetail::None,
        });
        let line = Renderer::event_line(&shown).unwrap_or_default();
        assert_eq!(
            line.to_string(),
            r#"{"elapsed_ms":3,"event":"progress","stage":"qr_shown","stage_ms":3}"#
        );
    }
}
