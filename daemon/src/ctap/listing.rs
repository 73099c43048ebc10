//! The device listing behind `cablebridge devices` and the daemon's `devices.list`: attached
//! hidraw FIDO keys (sysfs) plus extra addresses (`udp:` virtual keys), each probed for getInfo
//! within a deadline. One copy for both front ends: each entry carries the JSON object both
//! print and the one human line the CLI prints.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{open_client, Call, DeviceProgress, OpenOptions};
use crate::evidence::aaguid::{Aaguid, AaguidTable};
use crate::hid::{enumerate, DeviceAddress, HidrawOptions};

/// One listed device.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedDevice {
    /// `{"path", "vendor_id", …, "aaguid", "model", "versions"}` or `{"path", "problem"}`.
    pub json: Value,
    /// `PATH: MODEL`, `PATH: cannot open: WHY` or `NAME: skipped: WHY`.
    pub line: String,
}

/// Lists attached hidraw keys plus `extra`, each probed within `probe` (cancelled by `cancel`).
pub async fn list_devices(
    extra: Vec<DeviceAddress>,
    probe: Duration,
    cancel: &CancellationToken,
) -> Vec<ListedDevice> {
    let found = enumerate(&HidrawOptions::default().roots);
    let table = AaguidTable::built_in();
    let mut entries: Vec<(DeviceAddress, Value)> = found
        .devices
        .iter()
        .map(|d| {
            let entry = json!({
                "path": d.path.display().to_string(),
                "vendor_id": d.vendor_id.map(|v| format!("{v:04x}")),
                "product_id": d.product_id.map(|v| format!("{v:04x}")),
                "manufacturer": d.manufacturer,
                "product": d.product.clone().or_else(|| d.hid_name.clone()),
                "serial": d.serial,
            });
            (DeviceAddress::Hidraw(d.path.clone()), entry)
        })
        .collect();
    for address in extra {
        let entry = json!({"path": address.to_string(), "transport": "udp-hid"});
        entries.push((address, entry));
    }
    let mut listed = Vec::new();
    for (address, mut entry) in entries {
        let mut ignore = |_: DeviceProgress| {};
        let mut call = Call { deadline: Instant::now() + probe, cancel, progress: &mut ignore };
        let line = match open_client(&address, &OpenOptions::default(), &mut call).await {
            Ok(client) => {
                let aaguid = Aaguid(client.info().aaguid);
                entry["aaguid"] = json!(hex::encode(aaguid.0));
                entry["model"] = json!(table.describe(&aaguid));
                entry["versions"] = json!(client.info().versions);
                format!("{address}: {}", table.describe(&aaguid))
            }
            Err(e) => {
                entry["problem"] = json!(e.to_string());
                format!("{address}: cannot open: {e}")
            }
        };
        listed.push(ListedDevice { json: entry, line });
    }
    for skipped in &found.skipped {
        listed.push(ListedDevice {
            json: json!({"path": skipped.name, "problem": skipped.reason}),
            line: format!("{}: skipped: {}", skipped.name, skipped.reason),
        });
    }
    listed
}
