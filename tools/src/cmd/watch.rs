//! `cablebridge watch`: subscribe to the daemon's ceremony events (`events.subscribe`) and show
//! them as they come: the QR code in the terminal (as `register` draws it), stage progress,
//! results and errors, each headed by its session id. This is how a user sees the QR of a
//! session the daemon started on its own (the uhid front, issue 11) or one another client
//! started.
//!
//! Without `--session` it runs until Ctrl-C (exit 0). With `--session ID` it ends with that
//! session: exit 0 after its `result`, else the `exit_code` of its `error` event. `--json`
//! prints each `ceremony.event`'s params unchanged (the CLI's `--json` object plus `session`),
//! one per line.

use cablebridge_service::client::{Client, ClientError};
use cablebridge_service::rpc::code;
use clap::Args;
use serde_json::{json, Value};
use std::process::ExitCode;

use crate::cmd::ceremony::{daemon_result_report, Renderer};
use crate::cmd::daemon::{error_event, SocketArgs};
use crate::output::{print_stdout, CmdError, Exit};

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this session (its id from `status` or `register --json`'s daemon); the command ends
    /// when it does, with its exit code.
    #[arg(long, value_name = "ID")]
    pub session: Option<u64>,
    /// Where the daemon listens.
    #[command(flatten)]
    pub daemon: SocketArgs,
}

/// Runs `watch`; prints as events arrive and picks its exit code from `--session`'s outcome.
pub fn main(args: &WatchArgs, json: bool) -> ExitCode {
    let outcome = crate::cmd::usb::block_on(|cancel| async move {
        let path = args.daemon.path();
        let mut client = Client::connect(&path).await.map_err(|e| {
            CmdError::environment(format!(
                "{e} (is cablebridged running? see `cablebridge status`)"
            ))
        })?;
        let params = match args.session {
            Some(id) => json!({"session": id}),
            None => json!({}),
        };
        client.call("events.subscribe", params).await.map_err(|e| match e {
            ClientError::Rpc(r) if r.code == code::NO_SUCH_SESSION => {
                CmdError::usage(format!("--session: {}", r.message))
            }
            other => CmdError::environment(other.to_string()),
        })?;
        // On stderr in both modes: scripts (and the tests) know the subscription is live.
        eprintln!("cablebridge: watching {} (Ctrl-C to stop)", what(args.session));
        loop {
            let message = tokio::select! {
                () = cancel.cancelled() => return Ok(Exit::Ok),
                m = client.next_notification() => m,
            };
            let message = message.map_err(|e| {
                CmdError::environment(format!("lost cablebridged at {}: {e}", path.display()))
            })?;
            let params = &message["params"];
            match message["method"].as_str() {
                Some("ceremony.event") => {
                    show(params, json);
                    let last = matches!(params["event"].as_str(), Some("result" | "error"));
                    if last && args.session.is_some() {
                        return Ok(match params["event"].as_str() {
                            Some("result") => Exit::Ok,
                            _ => error_event(params).exit,
                        });
                    }
                }
                Some("events.lagged") => {
                    eprintln!("cablebridge: missed {} event(s) (read too slowly)", params["missed"])
                }
                _ => {}
            }
        }
    });
    match outcome {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => crate::output::finish(Err(e), json),
    }
}

fn what(session: Option<u64>) -> String {
    match session {
        Some(id) => format!("session {id}"),
        None => "every ceremony of cablebridged".to_owned(),
    }
}

/// One event: its params as a JSON line, or its text headed by the session.
fn show(params: &Value, json: bool) {
    if json {
        print_stdout(&format!("{params}\n"));
        return;
    }
    let session = &params["session"];
    let text = match params["event"].as_str() {
        Some("result") => {
            let mut fields = params.clone();
            if let Value::Object(map) = &mut fields {
                map.remove("session");
            }
            format!(
                "session {session}: {} succeeded\n{}",
                params["ceremony"].as_str().unwrap_or("ceremony"),
                daemon_result_report(&fields).to_human()
            )
        }
        Some("error") => {
            let e = error_event(params);
            format!(
                "session {session}: failed at {}: {} (exit code {})\n",
                e.stage.as_deref().unwrap_or("?"),
                e.message,
                e.exit.code()
            )
        }
        // The drawing needs its own lines.
        Some("qr") => format!("session {session}: QR code\n{}", Renderer::human_line(params)),
        _ => format!("session {session}: {}", Renderer::human_line(params)),
    };
    print_stdout(&text);
}
