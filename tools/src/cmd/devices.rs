//! `cablebridge devices`: the FIDO security keys attached (hidraw, from sysfs) plus any
//! `--device` given, each with its ids, strings and — when it opens within a second — AAGUID,
//! model name and CTAP versions. A device that fails to open is listed with the reason.
//!
//! `--watch` then follows kernel hot-plug events (no polling) and prints one line per FIDO key
//! plugged in or removed until Ctrl-C ([`watch`]).

mod watch;

use std::time::Duration;

use cablebridged::ctap::{open_client, Call, DeviceProgress, OpenOptions};
use cablebridged::evidence::aaguid::{Aaguid, AaguidTable};
use cablebridged::hid::{enumerate, DeviceAddress, HidrawOptions};
use clap::Args;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cmd::usb::{block_on, hex};
use crate::output::{CmdError, Report};

/// Arguments of `devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Extra devices to probe (e.g. udp:127.0.0.1:8111); repeatable.
    #[arg(long, short = 'd')]
    pub device: Vec<String>,
    /// Print the keys attached now, then one line per FIDO key plugged in or removed until
    /// Ctrl-C (kernel hot-plug events, no polling). With --json: one JSON object per line,
    /// {"event":"present"|"added"|"removed","path","vendor_id","product_id","product"}, ending
    /// with {"event":"stopped"}. Fails with exit 3 where hot-plug events are unavailable
    /// (e.g. a container without netlink uevents).
    #[arg(long)]
    pub watch: bool,
}

/// Runs `devices`.
pub fn run(args: &DevicesArgs, json: bool) -> Result<Report, CmdError> {
    if args.watch {
        if !args.device.is_empty() {
            return Err(CmdError::usage("--watch follows hidraw keys only; drop --device"));
        }
        return block_on(|cancel| watch::run(cancel, json));
    }
    let mut extra = Vec::new();
    for d in &args.device {
        extra.push(d.parse::<DeviceAddress>().map_err(|e| CmdError::usage(e.to_string()))?);
    }
    block_on(|cancel| async move {
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
        let mut devices = Vec::new();
        let mut lines = String::new();
        for (address, mut entry) in entries {
            let mut ignore = |_: DeviceProgress| {};
            let mut call = Call {
                deadline: Instant::now() + Duration::from_millis(1500),
                cancel: &cancel,
                progress: &mut ignore,
            };
            match open_client(&address, &OpenOptions::default(), &mut call).await {
                Ok(client) => {
                    let aaguid = Aaguid(client.info().aaguid);
                    entry["aaguid"] = json!(hex(&aaguid.0));
                    entry["model"] = json!(table.describe(&aaguid));
                    entry["versions"] = json!(client.info().versions);
                    lines.push_str(&format!("{address}: {}\n", table.describe(&aaguid)));
                }
                Err(e) => {
                    entry["problem"] = json!(e.to_string());
                    lines.push_str(&format!("{address}: cannot open: {e}\n"));
                }
            }
            devices.push(entry);
        }
        for skipped in &found.skipped {
            devices.push(json!({"path": skipped.name, "problem": skipped.reason}));
            lines.push_str(&format!("{}: skipped: {}\n", skipped.name, skipped.reason));
        }
        if devices.is_empty() {
            lines.push_str("no FIDO security key found\n");
        }
        Ok(Report::new().preamble(lines).field("devices", Value::Array(devices)))
    })
}
