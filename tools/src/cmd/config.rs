//! `cablebridge config toggle-always-uv|set-min-pin-length|enable-ep`: authenticatorConfig
//! (CTAP 2.1 §6.11), in the spirit of `fido2-token -S -a` / `-S -l` / `-S -e`. The key's PIN
//! (for the `acfg` token) comes from `CABLEBRIDGE_PIN`, `--pin-stdin` or a no-echo prompt, as
//! for `credentials`; a key without a PIN or built-in UV (and with alwaysUv off) needs none.
//! The report is the key's state afterwards, read back from getInfo.

use cablebridge_protocol::ctap2::SetMinPinLengthParams;
use clap::{Args, Subcommand};
use rand::rngs::OsRng;
use serde_json::Value;

use crate::cmd::usb::{
    block_on, choose, deadline, key_error, progress_printer, DeviceArgs, PinArgs, PinSource,
};
use crate::output::{CmdError, Report};
use cablebridged::ctap::{Call, ConfigChange};

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Toggle alwaysUv: with it on, the key refuses every registration and sign-in without user
    /// verification (PIN or built-in UV).
    ToggleAlwaysUv(ConfigArgs),
    /// Raise the minimum PIN length (it never goes down), optionally naming RP ids that may read
    /// it (minPinLength extension) and forcing a PIN change.
    SetMinPinLength(MinPinArgs),
    /// Enable enterprise attestation (makeCredential enterpriseAttestation 1|2).
    EnableEp(ConfigArgs),
}

/// Key and PIN.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// PIN input.
    #[command(flatten)]
    pub pin: PinArgs,
}

/// Arguments of `config set-min-pin-length`.
#[derive(Debug, Args)]
pub struct MinPinArgs {
    /// The new minimum, in Unicode code points (at least the current one).
    pub length: u64,
    /// An RP id allowed to read the minimum through the minPinLength extension; repeat for
    /// several (replaces the key's list; at most the key's maxRPIDsForSetMinPINLength).
    #[arg(long = "rp-id", value_name = "ID")]
    pub rp_ids: Vec<String>,
    /// Make the user change the PIN before the key can be used again (forcePINChange).
    #[arg(long)]
    pub force_change: bool,
    /// Key and PIN.
    #[command(flatten)]
    pub common: ConfigArgs,
}

/// Runs `config ...`.
pub fn run(command: &ConfigCommand) -> Result<Report, CmdError> {
    let (args, change) = match command {
        ConfigCommand::ToggleAlwaysUv(a) => (a, ConfigChange::ToggleAlwaysUv),
        ConfigCommand::EnableEp(a) => (a, ConfigChange::EnableEnterpriseAttestation),
        ConfigCommand::SetMinPinLength(m) => (
            &m.common,
            ConfigChange::SetMinPinLength(SetMinPinLengthParams {
                new_min_pin_length: Some(m.length),
                min_pin_length_rp_ids: (!m.rp_ids.is_empty()).then(|| m.rp_ids.clone()),
                force_change_pin: m.force_change.then_some(true),
                unknown: Vec::new(),
            }),
        ),
    };
    block_on(|cancel| async move {
        let mut client = choose(&args.device, &cancel).await?;
        client.check_config_support(&change).map_err(key_error)?;
        let needs_pin = client.pin_is_set();
        let pin = match needs_pin {
            true => PinSource::new(&args.pin).pin_for(&client, "CABLEBRIDGE_PIN", "PIN: ")?,
            false => None,
        };
        let mut printer = progress_printer();
        let mut call =
            Call { deadline: deadline(&args.device), cancel: &cancel, progress: &mut printer };
        client.configure(&mut OsRng, pin.as_ref(), &change, &mut call).await.map_err(key_error)?;
        let info = client.info();
        let mut report = Report::new()
            .field("device", client.path())
            .field("always_uv", info.option("alwaysUv").unwrap_or(false))
            .field("min_pin_length", info.min_pin_length)
            .field("force_pin_change", info.force_pin_change.unwrap_or(false))
            .field("enterprise_attestation", info.option("ep").unwrap_or(false));
        if let ConfigChange::SetMinPinLength(p) = &change {
            let ids = p.min_pin_length_rp_ids.clone().unwrap_or_default();
            report = report
                .field("min_pin_length_rp_ids", Value::from(ids))
                .field("force_change_requested", p.force_change_pin.unwrap_or(false));
        }
        Ok(report)
    })
}
