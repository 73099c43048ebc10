//! `cablebridge links list|forget`: the phones linked through earlier QR ceremonies (the store
//! of `cablebridged::store::links`). Never prints link secrets.

use crate::output::{CmdError, Report};
use cablebridged::store::{default_state_dir, LinkLookup, LinkStore};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// `links` subcommands.
#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// List linked phones (id, name, tunnel host, dates).
    List(StateDirArg),
    /// Forget a linked phone by id (or a longer prefix of its full id) or name. Ids win over
    /// names; a name several phones share is refused as ambiguous.
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
    /// The phone's id or name (from `links list`); an id always means that link, even if
    /// another phone named itself after it.
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

/// Runs a `links` subcommand. Human output shows phone-chosen names escaped and capped
/// (`store::display_name`); JSON carries them capped and JSON-escaped.
pub fn run(cmd: &LinksCommand, json: bool) -> Result<Report, CmdError> {
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
                        l.display_name(),
                        l.created,
                        l.updated
                    )
                })
                .collect();
            let preamble = if links.is_empty() { "no linked phones\n".to_owned() } else { human };
            let report = Report::new().preamble(preamble);
            let report = report.field("store", store.path().display().to_string());
            // Human mode lists the links in the preamble, names escaped; the raw JSON summaries
            // (whose names a terminal would interpret) are for --json only.
            Ok(if json { report.field("links", summaries) } else { report })
        }
        LinksCommand::Forget(a) => {
            let store = store(&a.state)?;
            let query = cablebridged::store::display_name(&a.name_or_id);
            match store.forget(&a.name_or_id).map_err(env)? {
                LinkLookup::Found(l) if json => Ok(Report::new().field("forgotten", l.summary())),
                LinkLookup::Found(l) => {
                    Ok(Report::new()
                        .field("forgotten", format!("{}  {}", l.id(), l.display_name())))
                }
                LinkLookup::NotFound => Err(CmdError::usage(format!(
                    "no linked phone named {query} (see `cablebridge links list`)"
                ))),
                LinkLookup::Ambiguous(ids) => Err(CmdError::usage(format!(
                    "{query} matches several linked phones; name one by id: {}",
                    ids.join(", ")
                ))),
            }
        }
    }
}
