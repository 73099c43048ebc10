//! `cablebridge reset`: authenticatorReset — deletes every credential and the PIN. Asks for
//! confirmation on a TTY (`--yes` skips it; without a TTY `--yes` is required). Real keys only
//! accept a reset within about 10 s of being plugged in, and want a touch.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use crate::cmd::usb::{block_on, choose, deadline, key_error, progress_printer, DeviceArgs};
use crate::output::{CmdError, Report};
use cablebridged::ctap::Call;

/// Arguments of `reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

fn confirm() -> Result<(), CmdError> {
    if !std::io::stdin().is_terminal() {
        return Err(CmdError::usage("reset deletes every credential on the key: pass --yes"));
    }
    eprint!("Reset deletes every credential and the PIN on this key. Type 'yes' to continue: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(CmdError::ceremony("reset not confirmed; nothing was changed"))
    }
}

/// Runs `reset`.
pub fn run(args: &ResetArgs) -> Result<Report, CmdError> {
    if !args.yes {
        confirm()?;
    }
    block_on(|cancel| async move {
        let mut client = choose(&args.device, &cancel).await?;
        let mut printer = progress_printer();
        let mut call =
            Call { deadline: deadline(&args.device), cancel: &cancel, progress: &mut printer };
        client.reset(&mut call).await.map_err(key_error)?;
        Ok(Report::new().field("device", client.path()).field("reset", true))
    })
}
