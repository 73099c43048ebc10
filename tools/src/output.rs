//! The one place that decides how results look (human text or `--json`) and which exit code a
//! failure maps to. Commands build a [`Report`] or a [`CmdError`]; nothing else prints. The
//! global output flags ([`GlobalOpts`]) live here too, so `cli.rs` and the command modules both
//! depend on this module instead of on each other.
//!
//! Exit codes (documented in `--help`): 0 ok, 1 ceremony failed / "not ours", 2 usage or input
//! error (clap's own usage errors included), 3 environment (files, devices, daemon).

use cablebridge_protocol::error::Fault;
use cablebridged::ceremony::CeremonyError;
use cablebridged::ctap::CtapError;
use clap::Args;
use serde_json::{Map, Value};
use std::process::ExitCode;

/// Options shared by all subcommands (`global = true`: accepted before or after the subcommand).
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Print one JSON object on stdout instead of human-readable text (errors too).
    #[arg(long, global = true)]
    pub json: bool,
    /// Include secrets (QR secret, PSK) in the output. They are omitted by default.
    #[arg(long, global = true)]
    pub show_secrets: bool,
}

/// Exit statuses of the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The ceremony failed or the input was well-formed but not ours (e.g. a foreign advert).
    Ceremony = 1,
    /// Bad flags or malformed input.
    Usage = 2,
    /// The environment failed us: unwritable file, missing device, unreachable daemon.
    Environment = 3,
}

impl Exit {
    /// Numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<&CeremonyError> for Exit {
    /// The one mapping of a ceremony's failure to an exit status: the authenticator saying no, a
    /// timeout or a cancel is a failed ceremony (1); otherwise the fault decides: the caller's
    /// input 2, the environment 3, the peer 1.
    fn from(e: &CeremonyError) -> Exit {
        match e.exit_code() {
            2 => Exit::Usage,
            3 => Exit::Environment,
            _ => Exit::Ceremony,
        }
    }
}

impl From<&CtapError> for Exit {
    /// A security-key command's failure (`info`, `pin`, `credentials`, ...): the environment 3,
    /// a missing or wrong PIN 2, everything the key or user did (timeouts, cancel, statuses) 1.
    fn from(e: &CtapError) -> Exit {
        use cablebridge_protocol::error::Classify;
        match (e, e.fault()) {
            (_, Fault::Environment) => Exit::Environment,
            (
                CtapError::Cancelled { .. }
                | CtapError::Timeout { .. }
                | CtapError::NoKeyInserted { .. },
                _,
            ) => Exit::Ceremony,
            (CtapError::PinRequired { .. } | CtapError::InvalidPin(_), _) => Exit::Usage,
            _ => Exit::Ceremony,
        }
    }
}

/// Text for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  ceremony failed, or input well-formed but not ours (e.g. advert not from this QR session)
  2  usage or input error (bad flags, malformed FIDO:/ URL or hex)
  3  environment error (file not writable, device or daemon unavailable)";

/// A failed command: exit code plus one human-readable line.
#[derive(Debug)]
pub struct CmdError {
    /// Exit status.
    pub exit: Exit,
    /// One line naming what failed.
    pub message: String,
    /// Protocol stage, when the failure came from the protocol crate.
    pub stage: Option<&'static str>,
}

impl CmdError {
    /// Malformed input or flags (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CmdError { exit: Exit::Usage, message: message.into(), stage: None }
    }
    /// Ceremony failure / not ours (exit 1).
    pub fn ceremony(message: impl Into<String>) -> Self {
        CmdError { exit: Exit::Ceremony, message: message.into(), stage: None }
    }
    /// Environment failure (exit 3).
    pub fn environment(message: impl Into<String>) -> Self {
        CmdError { exit: Exit::Environment, message: message.into(), stage: None }
    }
    /// Attaches the protocol stage (`"qr"`, `"advert"`, …) for JSON output.
    pub fn at(mut self, stage: cablebridge_protocol::Stage) -> Self {
        self.stage = Some(stage.as_str());
        self
    }
}

/// A successful result: ordered fields, plus optional free text shown before them in human mode
/// (e.g. the QR code drawing).
#[derive(Debug, Default)]
pub struct Report {
    preamble: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

impl Report {
    /// Empty report.
    pub fn new() -> Self {
        Self::default()
    }
    /// Text printed before the fields in human mode only.
    pub fn preamble(mut self, text: String) -> Self {
        self.preamble = Some(text);
        self
    }
    /// Adds a field (shown as `name: value` in human mode).
    pub fn field(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.fields.push((name, value.into()));
        self
    }
    /// Adds a field only when `value` is `Some`.
    pub fn opt_field(self, name: &'static str, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(v) => self.field(name, v),
            None => self,
        }
    }

    fn to_json(&self) -> Value {
        let map: Map<String, Value> =
            self.fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Value::Object(map)
    }

    fn to_human(&self) -> String {
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = self.preamble.clone().unwrap_or_default();
        for (k, v) in &self.fields {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Null => "(absent)".to_owned(),
                other => other.to_string(),
            };
            out.push_str(&format!("{k:<width$}  {shown}\n"));
        }
        out
    }
}

/// Prints the outcome and returns the process exit code.
pub fn finish(result: Result<Report, CmdError>, json: bool) -> ExitCode {
    match result {
        Ok(report) if json => {
            println!("{}", report.to_json());
            ExitCode::from(Exit::Ok.code())
        }
        Ok(report) => {
            print!("{}", report.to_human());
            ExitCode::from(Exit::Ok.code())
        }
        Err(e) => {
            if json {
                // `event`/`message` make the line the last record of a JSON-lines stream
                // (ceremony commands); `error` is kept for the single-object commands.
                let obj = serde_json::json!({
                    "event": "error",
                    "message": e.message,
                    "error": e.message,
                    "exit_code": e.exit.code(),
                    "stage": e.stage,
                });
                println!("{obj}");
            } else {
                eprintln!("cablebridge: {}", e.message);
            }
            ExitCode::from(e.exit.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceremony_errors_map_to_exit_codes() {
        use cablebridged::ceremony::CeremonyStage;
        let s = CeremonyStage::UserResponse;
        let exit = |e: CeremonyError| Exit::from(&e);
        assert_eq!(exit(CeremonyError::usage(s, "x")), Exit::Usage);
        assert_eq!(exit(CeremonyError::environment(s, "x")), Exit::Environment);
        assert_eq!(exit(CeremonyError::peer(s, "x")), Exit::Ceremony);
        assert_eq!(exit(CeremonyError::cancelled(s)), Exit::Ceremony);
        let t = CeremonyError::timeout(s, "waiting", std::time::Duration::from_secs(1));
        assert_eq!(exit(t), Exit::Ceremony);
    }

    #[test]
    fn human_and_json_agree() {
        let r =
            Report::new().field("host", "cable.ua5v.com").field("id", 0).opt_field("x", None::<u8>);
        assert_eq!(r.to_human(), "host  cable.ua5v.com\nid    0\n");
        assert_eq!(r.to_json(), serde_json::json!({"host": "cable.ua5v.com", "id": 0}));
    }
}
