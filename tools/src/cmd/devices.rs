//! `cablebridge devices`: the FIDO security keys attached (hidraw, from sysfs) plus any
//! `--device` given, each with its ids, strings and — when it opens within a second — AAGUID,
//! model name and CTAP versions. A device that fails to open is listed with the reason.
//!
//! `--watch` then follows kernel hot-plug events (no polling) and prints one line per FIDO key
//! plugged in or removed until Ctrl-C ([`watch`]).

mod watch;

use std::time::Duration;

use cablebridged::ctap::list_devices;
use cablebridged::hid::DeviceAddress;
use clap::Args;
use serde_json::Value;

use crate::cmd::usb::block_on;
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
        let listed = list_devices(extra, Duration::from_millis(1500), &cancel).await;
        let mut lines: String = listed.iter().map(|d| format!("{}\n", d.line)).collect();
        let devices: Vec<Value> = listed.into_iter().map(|d| d.json).collect();
        if devices.is_empty() {
            lines.push_str("no FIDO security key found\n");
        }
        Ok(Report::new().preamble(lines).field("devices", Value::Array(devices)))
    })
}
