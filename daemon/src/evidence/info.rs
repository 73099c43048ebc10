//! authenticatorGetInfo (CTAP 2.1 §6.4) as the JSON fields `cablebridge info` and the daemon's
//! `device.info` print: one rendering for both.

use cablebridge_protocol::ctap2::GetInfo;
use serde_json::{json, Map, Value};

use super::{Aaguid, AaguidTable};

/// getInfo as JSON fields (names as in the spec, snake_case), the model named from `table`.
pub fn get_info_fields(info: &GetInfo, table: &AaguidTable) -> Vec<(&'static str, Value)> {
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
        ("aaguid", json!(hex::encode(info.aaguid))),
        ("model", json!(table.describe(&aaguid))),
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
