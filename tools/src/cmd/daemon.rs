//! Commands about the service and the installation: `cablebridge status` (asks a running
//! `cablebridged` over its control socket through `cablebridge_service::client`),
//! `cablebridge completions SHELL` and `cablebridge man DIR` (generated from the clap
//! definitions, used by systemd/install.sh).

use std::path::PathBuf;

use cablebridge_service::client::{default_socket, Client, ClientError};
use clap::{Args, CommandFactory};
use serde_json::Value;

use crate::output::{CmdError, Report};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's control socket [default: $CABLEBRIDGE_SOCKET, else
    /// /run/cablebridge/control.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
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
    let path = args.socket.clone().unwrap_or_else(default_socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::environment(format!("cannot start the async runtime: {e}")))?;
    let status = runtime.block_on(async {
        let mut client = Client::connect(&path).await?;
        client.call("status", serde_json::json!({})).await
    });
    let status = status.map_err(|e| match e {
        ClientError::Unreachable { .. } => CmdError::environment(format!(
            "{e} (is the service running? `systemctl enable --now cablebridged.socket`, or set \
             --socket / CABLEBRIDGE_SOCKET)"
        )),
        other => CmdError::environment(other.to_string()),
    })?;
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
