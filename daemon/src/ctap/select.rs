//! Finding and choosing a security key: open a named device, list attached keys, and
//! touch-to-select among several (CTAP 2.1 §6.9 authenticatorSelection).
//!
//! With several keys, every key is asked for a touch concurrently (each blinks); the first one
//! the user touches wins and every other one gets CTAPHID_CANCEL through a shared
//! [`tokio_util::sync::CancellationToken`], so it stops blinking. We wait for the losers to finish cancelling
//! (bounded by the driver's cancel grace) before returning, so the CANCEL reports really left.

use std::path::Path;

use tokio::task::JoinSet;

use super::client::Ctap2Client;
use super::error::{CtapError, Result};
use super::hid_channel::{Call, CtapHidDevice, DeviceProgress, DriverConfig};
use crate::hid::{enumerate, DeviceAddress, HidDevice, HidError, HidrawOptions};

/// How to open devices.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// hidraw roots and lock policy.
    pub hidraw: HidrawOptions,
    /// CTAPHID driver parameters.
    pub driver: DriverConfig,
}

/// Opens one device, allocates a channel and reads getInfo.
pub async fn open_client(
    address: &DeviceAddress,
    options: &OpenOptions,
    call: &mut Call<'_>,
) -> Result<Ctap2Client<HidDevice>> {
    let transport = HidDevice::open(address, &options.hidraw).await?;
    let mut rng = rand::rngs::OsRng;
    let dev = CtapHidDevice::open(transport, &mut rng, options.driver).await?;
    Ctap2Client::connect(dev, call).await
}

/// The hidraw FIDO keys sysfs lists, as addresses; plus a hint when nodes exist but none could
/// be examined.
pub fn attached_keys(options: &HidrawOptions) -> (Vec<DeviceAddress>, Option<String>) {
    let found = enumerate(&options.roots);
    let addresses = found.devices.iter().map(|d| DeviceAddress::Hidraw(d.path.clone())).collect();
    let hint = (!found.skipped.is_empty()).then(|| {
        let names: Vec<_> =
            found.skipped.iter().map(|s| format!("{} ({})", s.name, s.reason)).collect();
        format!("; could not examine {}", names.join(", "))
    });
    (addresses, hint)
}

fn permission_hint(errors: &[CtapError]) -> String {
    let denied =
        errors.iter().any(|e| matches!(e, CtapError::Hid(HidError::PermissionDenied { .. })));
    let mut hint = String::new();
    if denied {
        hint.push_str(
            "; hidraw nodes exist but cannot be opened (permission denied): install the \
             cablebridge udev rule, add your user to its group and re-plug the key",
        );
    }
    for e in errors {
        hint.push_str(&format!("; {e}"));
    }
    hint
}

/// Opens every address; with one usable key returns it, with several runs touch-to-select.
pub async fn select_device(
    addresses: &[DeviceAddress],
    options: &OpenOptions,
    call: &mut Call<'_>,
    extra_hint: Option<String>,
) -> Result<Ctap2Client<HidDevice>> {
    let mut opened = Vec::new();
    let mut errors = Vec::new();
    for address in addresses {
        match open_client(address, options, call).await {
            Ok(c) => opened.push(c),
            Err(e) if e.is_timeout_or_cancel() && call.cancel.is_cancelled() => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    if opened.len() <= 1 {
        return opened.pop().ok_or_else(|| CtapError::NoDevice {
            hint: format!("{}{}", permission_hint(&errors), extra_hint.unwrap_or_default()),
        });
    }
    (call.progress)(DeviceProgress::TouchNeeded);
    touch_to_select(opened, call).await
}

/// Asks every client for a touch; returns the one touched first and cancels the rest.
pub async fn touch_to_select(
    clients: Vec<Ctap2Client<HidDevice>>,
    call: &mut Call<'_>,
) -> Result<Ctap2Client<HidDevice>> {
    let losers = call.cancel.child_token();
    let deadline = call.deadline;
    let mut set = JoinSet::new();
    for client in clients {
        let cancel = losers.clone();
        set.spawn(async move {
            let mut client = client;
            let mut ignore = |_: DeviceProgress| {};
            let mut task_call = Call { deadline, cancel: &cancel, progress: &mut ignore };
            let result = client.selection(&mut task_call).await;
            (client, result)
        });
    }
    let mut winner = None;
    let mut last_error = None;
    while let Some(joined) = set.join_next().await {
        let Ok((client, result)) = joined else { continue };
        match result {
            Ok(()) if winner.is_none() => {
                tracing::info!(device = client.path(), "touched; cancelling the other keys");
                losers.cancel();
                winner = Some(client);
            }
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(device = client.path(), error = %e, "not selected");
                if !e.is_timeout_or_cancel() || last_error.is_none() {
                    last_error = Some(e);
                }
                // Only an error from every key ends the wait; a denied key just drops out.
            }
        }
    }
    winner.ok_or_else(|| last_error.unwrap_or_else(|| CtapError::NoDevice { hint: String::new() }))
}

/// Whether `path` looks like a hidraw node (used to explain permission problems).
pub fn is_hidraw_path(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("hidraw"))
}
