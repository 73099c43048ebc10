//! `devices.list` and `device.info` through the engine's USB code (`cablebridged::ctap::list_devices`,
//! `cablebridged::ctap::open_client`): the same objects `cablebridge devices
//! --json` and `cablebridge info --json` print. Works for hidraw keys and `udp:` virtual keys.

use std::time::Duration;

use cablebridge_protocol::ctap2::GetInfo;
use cablebridged::ctap::{list_devices, open_client, Call, CtapError, DeviceProgress, OpenOptions};
use cablebridged::evidence::{get_info_fields, AaguidTable};
use cablebridged::hid::{enumerate, DeviceAddress, HidrawOptions};
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::rpc::{code, RpcError};

/// getInfo as JSON, as `cablebridge info` prints it (the engine's one rendering).
pub fn info_json(info: &GetInfo) -> Vec<(&'static str, Value)> {
    get_info_fields(info, &AaguidTable::built_in())
}

fn device_error(e: &CtapError) -> RpcError {
    RpcError {
        code: code::ENVIRONMENT,
        message: e.to_string(),
        data: Some(json!({"stage": "device_select"})),
    }
}

/// Attached hidraw keys plus `extra` addresses, each probed for getInfo within `probe`: the
/// engine's one listing (`ctap::list_devices`), which `cablebridge devices` prints too.
pub async fn list(extra: Vec<DeviceAddress>, probe: Duration, cancel: &CancellationToken) -> Value {
    let devices: Vec<Value> =
        list_devices(extra, probe, cancel).await.into_iter().map(|d| d.json).collect();
    json!({"devices": devices})
}

/// Number of attached hidraw FIDO keys (sysfs only, no IO to the keys).
pub fn attached_count() -> usize {
    enumerate(&HidrawOptions::default().roots).devices.len()
}

/// The key's getInfo and CTAPHID INIT data, as `cablebridge info --json`.
pub async fn info(
    address: &DeviceAddress,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Value, RpcError> {
    let mut ignore = |_: DeviceProgress| {};
    let mut call = Call { deadline: Instant::now() + timeout, cancel, progress: &mut ignore };
    let client = open_client(address, &OpenOptions::default(), &mut call)
        .await
        .map_err(|e| device_error(&e))?;
    let hid = *client.device().info();
    let mut out = Map::new();
    out.insert("device".into(), json!(client.path()));
    out.insert(
        "ctaphid".into(),
        json!({
            "protocol_version": hid.protocol_version,
            "device_version": format!("{}.{}.{}", hid.major, hid.minor, hid.build),
            "capabilities": hid.capabilities.0,
        }),
    );
    for (name, value) in info_json(client.info()) {
        out.insert(name.into(), value);
    }
    Ok(Value::Object(out))
}
