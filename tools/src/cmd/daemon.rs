//! Commands about the service and the installation: `cablebridge status` (asks a running
//! `cablebridged` over its control socket through `cablebridge_service::client`),
//! `cablebridge completions SHELL` and `cablebridge man DIR` (generated from the clap
//! definitions, used by systemd/install.sh); and the client side of a ceremony run through the
//! daemon ([`connect_for_ceremony`], [`start`], [`follow`]) for `register`/`authenticate`.
//!
//! Through the daemon, a ceremony prints exactly what it prints in this process: the daemon's
//! `ceremony.event` params are the CLI's own `--json` lines plus `session`, so they go through
//! the same [`Renderer`]; the last event becomes the same `Report` or `CmdError` (its exit code
//! is the `exit_code` the daemon computed with the one ceremony-error mapping). Ctrl-C sends
//! `ceremony.cancel` (on a second connection: the first one is busy reading events) and waits
//! for the session's own `error` event, so the output is the in-process Ctrl-C's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cablebridge_service::client::{default_socket, Client, ClientError};
use cablebridge_service::rpc::code;
use clap::{Args, CommandFactory};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::cmd::ceremony::Renderer;
use crate::output::{CmdError, DaemonMode, Exit, GlobalOpts, Report};

/// `--socket` of the commands that talk to the daemon.
#[derive(Debug, Clone, Default, Args)]
pub struct SocketArgs {
    /// The daemon's control socket [default: $CABLEBRIDGE_SOCKET, else
    /// /run/cablebridge/control.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl SocketArgs {
    /// `--socket`, else `$CABLEBRIDGE_SOCKET`, else the daemon's default path.
    pub fn path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(default_socket)
    }
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Where the daemon listens.
    #[command(flatten)]
    pub daemon: SocketArgs,
}

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write cablebridge.1 and one cablebridge-SUBCOMMAND.1 per subcommand into.
    pub dir: PathBuf,
}

/// Runs `status`: exit 3 when no daemon answers.
pub fn status(args: &StatusArgs) -> Result<Report, CmdError> {
    let path = args.daemon.path();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::environment(format!("cannot start the async runtime: {e}")))?;
    let status = runtime.block_on(async {
        let mut client = Client::connect(&path).await?;
        client.call("status", serde_json::json!({})).await
    });
    let status = status.map_err(unreachable)?;
    let sessions = status["sessions"].as_array().cloned().unwrap_or_default();
    let mut human = format!(
        "cablebridged {} (pid {}) on {}, up {} s\n",
        status["version"].as_str().unwrap_or("?"),
        status["pid"],
        status["socket"].as_str().unwrap_or("?"),
        status["uptime_ms"].as_u64().unwrap_or(0) / 1000,
    );
    human.push_str(&format!("{} ceremonies running\n", sessions.len()));
    for s in &sessions {
        human.push_str(&format!(
            "  session {}: {} over {}, stage {}\n",
            s["session"],
            str_of(&s["ceremony"]),
            str_of(&s["transport"]),
            str_of(&s["stage"])
        ));
    }
    let mut report = Report::new().preamble(human);
    for key in [
        "api_version",
        "version",
        "pid",
        "uptime_ms",
        "socket",
        "state_dir",
        "connections",
        "sessions",
        "devices",
        "ble",
        "adverts",
        "counters",
    ] {
        if let Some(v) = status.get(key) {
            report = report.field(key, v.clone());
        }
    }
    Ok(report)
}

/// A failed connection or call as exit 3, saying how to start the service.
fn unreachable(e: ClientError) -> CmdError {
    match e {
        ClientError::Unreachable { .. } => CmdError::environment(format!(
            "{e} (is the service running? `systemctl enable --now cablebridged.socket`, or set \
             --socket / CABLEBRIDGE_SOCKET)"
        )),
        other => CmdError::environment(other.to_string()),
    }
}

/// How long the daemon may take to accept a ceremony request.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// After Ctrl-C, how long to wait for the session's own `error` event before giving up on the
/// connection (closing it cancels the session too).
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// The daemon connection a ceremony should use, or `None` to run it in this process.
///
/// `cli_only` names the flag that needs this process (`--advert-source stdin`, ...): with
/// `--daemon` that is a usage error naming it; in auto mode the ceremony runs here (said on
/// stderr with `--verbose`). `--daemon` with no daemon reachable is exit 3.
pub async fn connect_for_ceremony(
    global: &GlobalOpts,
    socket: &SocketArgs,
    cli_only: Option<String>,
) -> Result<Option<Client>, CmdError> {
    if global.daemon && global.no_daemon {
        // clap's conflict check misses the pair when one comes before the subcommand.
        return Err(CmdError::usage("--daemon and --no-daemon exclude each other"));
    }
    let mode = global.daemon_mode();
    if mode == DaemonMode::Off {
        return Ok(None);
    }
    if let Some(why) = cli_only {
        if mode == DaemonMode::Required {
            return Err(CmdError::usage(format!(
                "--daemon: {why}; drop --daemon (or the flag) to run the ceremony here"
            )));
        }
        global.note(&format!("running the ceremony in this process: {why}"));
        return Ok(None);
    }
    let path = socket.path();
    match Client::connect(&path).await {
        Ok(client) => {
            global
                .note(&format!("running the ceremony through cablebridged at {}", path.display()));
            Ok(Some(client))
        }
        Err(e) if mode == DaemonMode::Required => Err(unreachable(e)),
        Err(e) => {
            global.note(&format!("running the ceremony in this process: {e}"));
            Ok(None)
        }
    }
}

/// Asks the daemon to start a ceremony (`ceremony.register` / `ceremony.authenticate`);
/// returns its session id.
pub async fn start(client: &mut Client, method: &str, params: Value) -> Result<u64, ClientError> {
    let answer = tokio::time::timeout(START_TIMEOUT, client.call(method, params)).await.map_err(
        |_| {
            ClientError::Protocol(format!(
                "no answer to {method} within {} s",
                START_TIMEOUT.as_secs()
            ))
        },
    )??;
    answer["session"]
        .as_u64()
        .ok_or_else(|| ClientError::Protocol(format!("{method} answered without a session")))
}

/// A refused `start` with `--daemon`: bad params or a refusal 2, anything else 3.
pub fn refused(e: ClientError) -> CmdError {
    let exit = match &e {
        ClientError::Rpc(r) if r.code == code::INVALID_PARAMS || r.code == code::REFUSED => {
            Exit::Usage
        }
        _ => Exit::Environment,
    };
    CmdError { exit, message: format!("the daemon did not start the ceremony: {e}"), stage: None }
}

/// Follows session `session` on `client` until its `result` (returned: the `result` object
/// without `session`) or `error` (returned as the CLI's failure), showing every other event
/// through `renderer`. `cancel` (Ctrl-C) sends `ceremony.cancel` for it.
pub async fn follow(
    mut client: Client,
    path: &Path,
    session: u64,
    renderer: Renderer,
    cancel: CancellationToken,
) -> Result<Value, CmdError> {
    let give_up = CancellationToken::new();
    let watcher = tokio::spawn({
        let give_up = give_up.clone();
        let path = path.to_owned();
        async move {
            cancel.cancelled().await;
            let ask = async {
                let mut other = Client::connect(&path).await?;
                other.call("ceremony.cancel", json!({"session": session})).await
            };
            // A session that just ended is "no such session": its last event is on its way.
            let _ = tokio::time::timeout(CANCEL_GRACE, ask).await;
            tokio::time::sleep(CANCEL_GRACE).await;
            give_up.cancel();
        }
    });
    let outcome = loop {
        let message = tokio::select! {
            biased;
            // Only after the grace period: the half-read line this drops no longer matters,
            // and closing the connection cancels the session.
            () = give_up.cancelled() => break Err(CmdError::ceremony(
                "cancelled (cablebridged did not confirm; the connection is closed)",
            )),
            m = client.next_notification() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                break Err(CmdError::environment(format!(
                    "lost cablebridged in the middle of the ceremony (session {session}): {e}"
                )))
            }
        };
        match message["method"].as_str() {
            Some("events.lagged") => eprintln!(
                "cablebridge: missed {} event(s) of the ceremony (read too slowly)",
                message["params"]["missed"]
            ),
            Some("ceremony.event") if message["params"]["session"].as_u64() == Some(session) => {
                let mut event = message["params"].clone();
                if let Value::Object(fields) = &mut event {
                    fields.remove("session");
                }
                match event["event"].as_str() {
                    Some("result") => break Ok(event),
                    Some("error") => break Err(error_event(&event)),
                    _ => renderer.show_line(&event),
                }
            }
            _ => {}
        }
    };
    watcher.abort();
    outcome
}

/// A daemon's `error` event as the CLI's failure: its message, stage and exit code.
pub fn error_event(event: &Value) -> CmdError {
    CmdError {
        exit: Exit::from_code(event["exit_code"].as_u64().unwrap_or(1)),
        message: event["message"].as_str().unwrap_or("the ceremony failed").to_owned(),
        stage: event["stage"].as_str().map(|s| s.to_owned().into()),
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// Runs `completions`: the script on stdout (with --json: `{"script": ...}`).
pub fn completions(args: &CompletionsArgs, json: bool) -> Result<Report, CmdError> {
    let mut cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cablebridge", &mut out);
    let text = String::from_utf8(out)
        .map_err(|e| CmdError::environment(format!("completion script is not UTF-8: {e}")))?;
    // Human mode prints the preamble and no fields: exactly the script.
    Ok(if json { Report::new().field("script", text) } else { Report::new().preamble(text) })
}

/// Runs `man`: writes the pages, reports their paths.
pub fn man(args: &ManArgs) -> Result<Report, CmdError> {
    let io = |p: &std::path::Path, e: std::io::Error| {
        CmdError::environment(format!("cannot write {}: {e}", p.display()))
    };
    std::fs::create_dir_all(&args.dir).map_err(|e| io(&args.dir, e))?;
    let cmd = crate::cli::Cli::command();
    let mut pages = Vec::new();
    let mut write = |name: String, command: clap::Command| -> Result<(), CmdError> {
        let path = args.dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(command.display_name(name.clone()))
            .render(&mut buf)
            .map_err(|e| io(&path, e))?;
        std::fs::write(&path, buf).map_err(|e| io(&path, e))?;
        pages.push(Value::String(path.display().to_string()));
        Ok(())
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write(format!("cablebridge-{}", sub.get_name()), sub.clone())?;
    }
    write("cablebridge".to_owned(), cmd.clone())?;
    Ok(Report::new().field("pages", Value::Array(pages)))
}
