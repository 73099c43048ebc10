//! `cablebridge wink`: make the key flash (CTAPHID_WINK), to find which one is which.

use clap::Args;

use crate::cmd::usb::{block_on, choose, deadline, key_error, progress_printer, DeviceArgs};
use crate::output::{CmdError, Report};
use cablebridged::ctap::Call;

/// Arguments of `wink`.
#[derive(Debug, Args)]
pub struct WinkArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs `wink`.
pub fn run(args: &WinkArgs) -> Result<Report, CmdError> {
    block_on(|cancel| async move {
        let mut client = choose(&args.device, &cancel).await?;
        let mut printer = progress_printer();
        let mut call =
            Call { deadline: deadline(&args.device), cancel: &cancel, progress: &mut printer };
        client.wink(&mut call).await.map_err(key_error)?;
        Ok(Report::new().field("device", client.path()).field("winked", true))
    })
}
