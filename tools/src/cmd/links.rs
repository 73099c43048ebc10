//! `cablebridge links list|forget`: the phones linked through earlier QR ceremonies (the store
//! of `cablebridged::store::links`). Never prints link secrets.

use crate::output::{CmdError, Report};
use cablebridged::store::{default_state_dir, LinkStore};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// `links` subcommands.
#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// List linked phones (id, name, tunnel host, dates).
    List(StateDirArg),
    /// Forget a linked phone by name or id.
    Forget(ForgetArgs),
}

/// `--state-dir`.
#[derive(Debug, Args)]
pub struct StateDirArg {
    /// Directory holding linked phones [default: $XDG_STATE_HOME/cablebridge or
    /// ~/.local/state/cablebridge].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Arguments of `links forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The phone's name or id (from `links list`).
    pub name_or_id: String,
    /// State directory.
    #[command(flatten)]
    pub state: StateDirArg,
}

fn store(arg: &StateDirArg) -> Result<LinkStore, CmdError> {
    let dir = arg.state_dir.clone().or_else(default_state_dir).ok_or_else(|| {
        CmdError::environment("no state directory: set --state-dir, XDG_STATE_HOME or HOME")
    })?;
    Ok(LinkStore::in_dir(&dir))
}

/// Runs a `links` subcommand.
pub fn run(cmd: &LinksCommand) -> Result<Report, CmdError> {
    let env = |e: cablebridged::store::StoreError| CmdError::environment(e.to_string());
    match cmd {
        LinksCommand::List(a) => {
            let store = store(a)?;
            let links = store.load().map_err(env)?;
            let summaries: Vec<Value> = links.iter().map(|l| l.summary()).collect();
            let human: String = links
                .iter()
                .map(|l| {
                    format!(
                        "{}  {}  (linked {}, updated {})\n",
                        l.id(),
                        l.name,
                        l.created,
                        l.updated
                    )
                })
                .collect();
            let preamble = if links.is_empty() { "no linked phones\n".to_owned() } else { human };
            Ok(Report::new()
                .preamble(preamble)
                .field("store", store.path().display().to_string())
                .field("links", summaries))
        }
        LinksCommand::Forget(a) => {
            let store = store(&a.state)?;
            match store.forget(&a.name_or_id).map_err(env)? {
                Some(l) => Ok(Report::new().field("forgotten", l.summary())),
                None => Err(CmdError::usage(format!(
                    "no linked phone named {:?} (see `cablebridge links list`)",
                    a.name_or_id
                ))),
            }
        }
    }
}
