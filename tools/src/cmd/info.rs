//! `cablebridge info`: the key's authenticatorGetInfo, fully decoded (CTAP 2.1 §6.4), plus the
//! CTAPHID INIT data and the AAGUID's model name.

use cablebridge_protocol::ctap2::GetInfo;
use cablebridged::evidence::{get_info_fields, AaguidTable};
use clap::Args;
use serde_json::{json, Value};

use crate::cmd::usb::{block_on, choose, DeviceArgs};
use crate::output::{CmdError, Report};

/// Arguments of `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// getInfo as JSON (names as in the spec, snake_case), models from the built-in table.
pub fn info_json(info: &GetInfo) -> Vec<(&'static str, Value)> {
    get_info_fields(info, &AaguidTable::built_in())
}

/// Runs `info`.
pub fn run(args: &InfoArgs) -> Result<Report, CmdError> {
    block_on(|cancel| async move {
        let client = choose(&args.device, &cancel).await?;
        let hid = *client.device().info();
        let mut report = Report::new().field("device", client.path()).field(
            "ctaphid",
            json!({
                "protocol_version": hid.protocol_version,
                "device_version": format!("{}.{}.{}", hid.major, hid.minor, hid.build),
                "capabilities": hid.capabilities.0,
            }),
        );
        for (name, value) in info_json(client.info()) {
            report = report.field(name, value);
        }
        Ok(report)
    })
}
