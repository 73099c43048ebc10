//! The one place that decides how results look (human text or `--json`) and which exit code a
//! failure maps to. Commands build a [`Report`] or a [`CmdError`]; nothing else prints. The
//! global output flags ([`GlobalOpts`]) live here too, so `cli.rs` and the command modules both
//! depend on this module instead of on each other.
//!
//! Exit codes (documented in `--help`): 0 ok, 1 ceremony failed / "not ours", 2 usage or input
//! error (clap's own usage errors included), 3 environment (files, devices, daemon); 141 when
//! the reader of stdout went away (broken pipe: the process ends quietly, as a C tool killed by
//! SIGPIPE would, so `set -o pipefail` scripts see the usual status).

use cablebridge_protocol::error::Fault;
use cablebridged::ceremony::CeremonyError;
use cablebridged::ctap::CtapError;
use clap::Args;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::io::Write;
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
    /// register/authenticate: run the ceremony through the cablebridged daemon; exit 3 when its
    /// control socket is not reachable, exit 2 for flags only this process can serve (stdin or
    /// fifo: advert feeds, --state-dir) [default: through the daemon when its socket is
    /// reachable, else in this process].
    #[arg(long, global = true, conflicts_with = "no_daemon")]
    pub daemon: bool,
    /// register/authenticate: always run the ceremony in this process.
    #[arg(long, global = true)]
    pub no_daemon: bool,
    /// Say more on stderr (e.g. why a ceremony runs in this process and not in the daemon).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

/// Where `register`/`authenticate` run their ceremony (`--daemon` / `--no-daemon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonMode {
    /// Through the daemon when its socket is reachable and the request needs nothing only this
    /// process has; else in this process.
    Auto,
    /// Through the daemon or not at all.
    Required,
    /// In this process.
    Off,
}

impl GlobalOpts {
    /// The `--daemon` / `--no-daemon` choice.
    pub fn daemon_mode(&self) -> DaemonMode {
        match (self.daemon, self.no_daemon) {
            (true, _) => DaemonMode::Required,
            (_, true) => DaemonMode::Off,
            _ => DaemonMode::Auto,
        }
    }

    /// A note on stderr, with `--verbose` only.
    pub fn note(&self, text: &str) {
        if self.verbose {
            eprintln!("cablebridge: {text}");
        }
    }
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

    /// The status an `exit_code` field of a daemon's `error` event stands for (the daemon
    /// computes it with the same mapping as [`Exit::from`]); anything unknown is a failed
    /// ceremony.
    pub fn from_code(code: u64) -> Exit {
        match code {
            0 => Exit::Ok,
            2 => Exit::Usage,
            3 => Exit::Environment,
            _ => Exit::Ceremony,
        }
    }
}

/// Exit status when stdout's reader went away (128 + SIGPIPE, the shell's convention).
pub const EXIT_BROKEN_PIPE: u8 = 141;

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
  3  environment error (file not writable, device or daemon unavailable)
  141  stdout was closed by its reader (broken pipe); nothing more is printed";

/// A failed command: exit code plus one human-readable line.
#[derive(Debug)]
pub struct CmdError {
    /// Exit status.
    pub exit: Exit,
    /// One line naming what failed.
    pub message: String,
    /// Protocol or ceremony stage, when known (a daemon's `error` event names it as text).
    pub stage: Option<Cow<'static, str>>,
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
        self.stage = Some(Cow::Borrowed(stage.as_str()));
        self
    }
}

/// A successful result: ordered fields, plus optional free text shown before them in human mode
/// (e.g. the QR code drawing).
#[derive(Debug, Default)]
pub struct Report {
    preamble: Option<String>,
    fields: Vec<(Cow<'static, str>, Value)>,
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
        self.fields.push((Cow::Borrowed(name), value.into()));
        self
    }
    /// Adds a field whose name is only known at run time (a daemon's result object).
    pub fn field_named(mut self, name: String, value: Value) -> Self {
        self.fields.push((Cow::Owned(name), value));
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
            self.fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Value::Object(map)
    }

    /// The human text `finish` prints.
    pub fn to_human(&self) -> String {
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
        Ok(report) => {
            let text = if json { format!("{}\n", report.to_json()) } else { report.to_human() };
            print_stdout(&text);
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
                print_stdout(&format!("{obj}\n"));
            } else {
                eprintln!("cablebridge: {}", e.message);
            }
            ExitCode::from(e.exit.code())
        }
    }
}

/// Writes `text` to stdout and flushes. When the reader went away (broken pipe) the process
/// ends here, quietly, with [`EXIT_BROKEN_PIPE`]: nobody is left to read what follows. Other
/// write errors (a full disk behind a redirect) are reported on stderr and end it with 3.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(EXIT_BROKEN_PIPE));
        }
        eprintln!("cablebridge: cannot write to stdout: {e}");
        std::process::exit(i32::from(Exit::Environment.code()));
    }
}

/// For the `println!`s outside this module: std panics when stdout's reader is gone ("failed
/// printing to stdout: Broken pipe"). This hook turns exactly that panic into the quiet
/// [`EXIT_BROKEN_PIPE`] exit; every other panic goes to the default hook unchanged.
pub fn exit_quietly_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(i32::from(EXIT_BROKEN_PIPE));
        }
        default(info);
    }));
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
