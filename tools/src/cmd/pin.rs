//! `cablebridge pin set|change|retries`: clientPIN management (CTAP 2.1 §6.5.5). PINs come from
//! `CABLEBRIDGE_PIN` / `CABLEBRIDGE_NEW_PIN`, `--pin-stdin` (one per line: current, then new) or
//! a no-echo TTY prompt — never from a flag.

use clap::{Args, Subcommand};
use rand::rngs::OsRng;

use crate::cmd::usb::{
    block_on, choose, deadline, key_error, progress_printer, DeviceArgs, PinArgs, PinSource,
};
use crate::output::{CmdError, Report};
use cablebridged::ctap::Call;

/// `pin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Set the first PIN (the key has none).
    Set(PinOpArgs),
    /// Change the PIN.
    Change(PinOpArgs),
    /// How many PIN attempts are left.
    Retries(PinOpArgs),
}

/// Arguments shared by the `pin` subcommands.
#[derive(Debug, Args)]
pub struct PinOpArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// PIN input.
    #[command(flatten)]
    pub pin: PinArgs,
}

/// Runs `pin ...`.
pub fn run(command: &PinCommand) -> Result<Report, CmdError> {
    let args = match command {
        PinCommand::Set(a) | PinCommand::Change(a) | PinCommand::Retries(a) => a,
    };
    block_on(|cancel| async move {
        let mut client = choose(&args.device, &cancel).await?;
        let source = PinSource::new(&args.pin);
        let mut printer = progress_printer();
        let mut call =
            Call { deadline: deadline(&args.device), cancel: &cancel, progress: &mut printer };
        let report = Report::new().field("device", client.path());
        match command {
            PinCommand::Retries(_) => {
                let r = client.pin_retries(&mut call).await.map_err(key_error)?;
                Ok(report
                    .field("pin_set", client.pin_is_set())
                    .field("retries", r.retries)
                    .field("power_cycle_required", r.power_cycle_required))
            }
            PinCommand::Set(_) => {
                if client.pin_is_set() {
                    return Err(CmdError::usage(
                        "this key already has a PIN: use `cablebridge pin change`",
                    ));
                }
                let new_pin = new_pin(&source, &client)?;
                client.set_pin(&mut OsRng, &new_pin, &mut call).await.map_err(key_error)?;
                Ok(report.field("pin_set", true))
            }
            PinCommand::Change(_) => {
                let current = source
                    .pin_for(&client, "CABLEBRIDGE_PIN", "Current PIN: ")?
                    .ok_or_else(|| {
                        CmdError::usage("no current PIN given: use --pin-stdin or CABLEBRIDGE_PIN")
                    })?;
                let new_pin = new_pin(&source, &client)?;
                client
                    .change_pin(&mut OsRng, &current, &new_pin, &mut call)
                    .await
                    .map_err(key_error)?;
                Ok(report.field("pin_changed", true))
            }
        }
    })
}

fn new_pin<T: cablebridged::hid::HidTransport>(
    source: &PinSource,
    client: &cablebridged::ctap::Ctap2Client<T>,
) -> Result<cablebridge_protocol::ctap2::pin::Pin, CmdError> {
    let pin = source.pin_for(client, "CABLEBRIDGE_NEW_PIN", "New PIN: ")?.ok_or_else(|| {
        CmdError::usage("no new PIN given: use --pin-stdin or CABLEBRIDGE_NEW_PIN")
    })?;
    // Only a prompt can be mistyped unseen; ask again there.
    if std::env::var("CABLEBRIDGE_NEW_PIN").is_err() && source.is_prompt() {
        let again = source.read("CABLEBRIDGE_NEW_PIN_CONFIRM", "New PIN again: ")?;
        if again.as_deref().map(str::as_bytes) != Some(pin.expose()) {
            return Err(CmdError::usage("the two new PINs differ; nothing was changed"));
        }
    }
    Ok(pin)
}
