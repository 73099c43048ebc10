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
    RegisterOptions, Requirement,
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
    CmdError { exit: Exit::from(&e), message: e.to_string(), stage: Some(e.stage.as_str().into()) }
}

/// Prints progress: JSON lines on stdout, or QR + staged lines on stderr. The same renderer
/// shows a daemon's `ceremony.event` objects (they are these JSON lines plus `session`), so
/// both paths print byte for byte the same: the human text is made from the JSON line.
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
            CeremonyEvent::Phone { elapsed_ms, event } => {
                format!("{}\n", event.to_human(*elapsed_ms))
            }
            other => Self::event_line(other).map(|v| Self::human_line(&v)).unwrap_or_default(),
        }
    }

    /// The human text of a `qr`, `progress` or `warning` JSON line (empty for anything else).
    pub fn human_line(line: &Value) -> String {
        let text = |key: &str| line.get(key).and_then(Value::as_str).unwrap_or_default();
        let elapsed_ms = line.get("elapsed_ms").and_then(Value::as_u64).unwrap_or(0);
        match text("event") {
            "warning" => format!("[{elapsed_ms:>6} ms] warning: {}\n", text("message")),
            "qr" => {
                let url = text("url");
                let mut out = String::new();
                if let Ok(drawing) = render_terminal(url) {
                    out.push_str(&drawing);
                    out.push('\n');
                }
                out.push_str(&format!("Scan with your phone's camera, or paste: {url}\n"));
                out
            }
            "progress" => {
                let extra = match (line.get("routing_id"), line.get("detail")) {
                    (Some(routing_id), _) => {
                        let routing_id = routing_id.as_str().unwrap_or_default();
                        match line.get("rssi").and_then(Value::as_i64) {
                            Some(r) => format!(" (RSSI {r} dBm, routing id {routing_id})"),
                            None => format!(" (routing id {routing_id})"),
                        }
                    }
                    (None, Some(Value::String(t))) => format!(" ({t})"),
                    _ => String::new(),
                };
                let name = text("stage");
                let said = match CeremonyStage::from_name(name) {
                    Some(CeremonyStage::Done) => "done",
                    Some(stage) => stage.finished_text(),
                    None => name,
                };
                format!("[{elapsed_ms:>6} ms] {said}{extra}\n")
            }
            _ => String::new(),
        }
    }

    /// Shows one `qr`/`progress`/`warning` JSON line: on stdout with `--json` (a reader that
    /// went away ends the process quietly, see `output::print_stdout`), else as text on stderr.
    pub fn show_line(&self, line: &Value) {
        if self.json {
            crate::output::print_stdout(&format!("{line}\n"));
        } else {
            let _ = std::io::stderr().write_all(Self::human_line(line).as_bytes());
        }
    }
}

impl EventSink for Renderer {
    fn emit(&self, event: &CeremonyEvent) {
        match event {
            CeremonyEvent::Phone { .. } if !self.json => {
                let _ = std::io::stderr().write_all(Self::human_text(event).as_bytes());
            }
            _ => {
                if let Some(line) = Self::event_line(event) {
                    self.show_line(&line);
                }
            }
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

/// A daemon's `result` object (the `ceremony.event` params minus `session`) as the same
/// [`Report`] [`result_report`] makes in this process: the result fields in their order, then
/// `verification`, then what the evidence flags added (`attestation_chain`, `policy`).
pub fn daemon_result_report(result: &Value) -> Report {
    let mut report = result_report(result, Vec::new());
    let Value::Object(fields) = result else { return report };
    let known = |k: &str| cablebridged::ceremony::RESULT_FIELDS.contains(&k) || k == "session";
    if let Some(v) = fields.get("verification") {
        report = report.field("verification", v.clone());
    }
    for (k, v) in fields.iter().filter(|(k, _)| !known(k) && *k != "verification") {
        report = report.field_named(k.clone(), v.clone());
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
    fn human_text_of_every_event_kind() {
        use cablebridged::ceremony::{ProgressDetail, ProgressEvent};
        let progress = |stage, detail| {
            CeremonyEvent::Progress(ProgressEvent { stage, elapsed_ms: 42, stage_ms: 1, detail })
        };
        let advert = |rssi| ProgressDetail::Advert {
            rssi,
            routing_id: "A1B2C3".into(),
            tunnel_host: "cable.ua5v.com".into(),
            suffix: None,
        };
        let cases = [
            (
                progress(CeremonyStage::Advert, advert(Some(-60))),
                "[    42 ms] advert received (RSSI -60 dBm, routing id A1B2C3)\n",
            ),
            (
                progress(CeremonyStage::Advert, advert(None)),
                "[    42 ms] advert received (routing id A1B2C3)\n",
            ),
            (
                progress(CeremonyStage::UserPresence, ProgressDetail::Text("touch".into())),
                "[    42 ms] touch your security key (touch)\n",
            ),
            (progress(CeremonyStage::Done, ProgressDetail::None), "[    42 ms] done\n"),
            (
                CeremonyEvent::Warning {
                    stage: CeremonyStage::Advert,
                    elapsed_ms: 7,
                    message: "odd".into(),
                },
                "[     7 ms] warning: odd\n",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(Renderer::human_text(&event), text);
        }
    }

    #[test]
    fn daemon_result_keeps_the_in_process_field_order() {
        let obj = json!({"event": "result", "session": 3, "aaguid": "x", "policy": {"v": 1},
            "verification": {"ok": true}, "attestation_chain": null, "ceremony": "register"});
        let report = daemon_result_report(&obj);
        let local = result_report(
            &obj,
            vec![
                ("verification", json!({"ok": true})),
                ("attestation_chain", Value::Null),
                ("policy", json!({"v": 1})),
            ],
        );
        assert_eq!(format!("{report:?}"), format!("{local:?}"));
    }

    #[test]
    fn qr_event_then_progress_line() {
        use cablebridged::ceremony::{ProgressDetail, ProgressEvent};
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
