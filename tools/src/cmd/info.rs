//! `cablebridge info`: the key's authenticatorGetInfo, fully decoded (CTAP 2.1 §6.4), plus the
//! CTAPHID INIT data and the AAGUID's model name.

use cablebridge_protocol::ctap2::GetInfo;
use cablebridged::evidence::{Aaguid, AaguidTable};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::cmd::usb::{block_on, choose, hex, DeviceArgs};
use crate::output::{CmdError, Report};

/// Arguments of `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// getInfo as JSON (names as in the spec, snake_case).
pub fn info_json(info: &GetInfo) -> Vec<(&'static str, Value)> {
    let aaguid = Aaguid(info.aaguid);
    let options: Map<String, Value> =
        info.options.iter().map(|(k, v)| (k.clone(), Value::Bool(*v))).collect();
    let algorithms: Vec<Value> = info
        .algorithms
        .iter()
        .map(|a| json!({"type": a.cred_type, "alg": a.alg.to_i64(), "name": a.alg.name()}))
        .collect();
    vec![
        ("versions", json!(info.versions)),
        ("extensions", json!(info.extensions)),
        ("aaguid", json!(hex(&info.aaguid))),
        ("model", json!(AaguidTable::built_in().describe(&aaguid))),
        ("options", Value::Object(options)),
        ("max_msg_size", json!(info.max_msg_size)),
        ("pin_uv_auth_protocols", json!(info.pin_uv_auth_protocols)),
        ("max_credential_count_in_list", json!(info.max_credential_count_in_list)),
        ("max_credential_id_length", json!(info.max_credential_id_length)),
        ("transports", json!(info.transports)),
        ("algorithms", Value::Array(algorithms)),
        ("min_pin_length", json!(info.min_pin_length)),
        ("force_pin_change", json!(info.force_pin_change)),
        ("firmware_version", json!(info.firmware_version)),
        ("remaining_discoverable_credentials", json!(info.remaining_discoverable_credentials)),
        ("uv_modality", json!(info.uv_modality)),
    ]
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
