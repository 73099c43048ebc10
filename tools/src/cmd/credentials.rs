//! `cablebridge credentials list|delete`: discoverable credentials on the key (CTAP 2.1 §6.8
//! credential management), with a pinUvAuthToken carrying the credentialManagement permission —
//! or, for `list` on keys that advertise `perCredMgmtRO`, the persistent read-only token
//! (`pcmr`, CTAP 2.2), which can enumerate but never delete; the report's `token` says which.

use cablebridge_protocol::ctap2::client_pin::Permissions;
use clap::{Args, Subcommand};
use rand::rngs::OsRng;
use serde_json::{json, Value};

use crate::cmd::parse_hex_arg;
use crate::cmd::usb::{
    block_on, choose, deadline, hex, key_error, progress_printer, DeviceArgs, PinArgs, PinSource,
};
use crate::output::{CmdError, Report};
use cablebridged::ctap::{Call, CtapError};

/// `credentials` subcommands.
#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// List relying parties and their discoverable credentials.
    List(CredArgs),
    /// Delete one credential by id (hex).
    Delete(DeleteArgs),
}

/// Arguments of `credentials list`.
#[derive(Debug, Args)]
pub struct CredArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// PIN input.
    #[command(flatten)]
    pub pin: PinArgs,
}

/// Arguments of `credentials delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The credential id, hex.
    pub credential_id: String,
    /// Key and PIN.
    #[command(flatten)]
    pub common: CredArgs,
}

/// Runs `credentials ...`.
pub fn run(command: &CredentialsCommand) -> Result<Report, CmdError> {
    let (args, delete) = match command {
        CredentialsCommand::List(a) => (a, None),
        CredentialsCommand::Delete(d) => {
            (&d.common, Some(parse_hex_arg("credential id", &d.credential_id)?))
        }
    };
    block_on(|cancel| async move {
        let mut client = choose(&args.device, &cancel).await?;
        client.cred_mgmt_command().map_err(key_error)?;
        let pin = PinSource::new(&args.pin).pin_for(&client, "CABLEBRIDGE_PIN", "PIN: ")?;
        let mut printer = progress_printer();
        let mut call =
            Call { deadline: deadline(&args.device), cancel: &cancel, progress: &mut printer };
        // Listing only reads: use the persistent read-only token where the key has one.
        let read_only = delete.is_none() && client.info().option("perCredMgmtRO") == Some(true);
        let (permission, token_kind) = match read_only {
            true => (
                Permissions::PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY,
                "persistent-read-only (pcmr)",
            ),
            false => (Permissions::CREDENTIAL_MANAGEMENT, "credential-management (cm)"),
        };
        let token = client
            .get_token(&mut OsRng, pin.as_ref(), permission, None, &mut call)
            .await
            .map_err(key_error)?
            .ok_or_else(|| {
                key_error(CtapError::Unsupported {
                    device: client.path().to_owned(),
                    what: "credential management needs a PIN: set one with `cablebridge pin set`"
                        .to_owned(),
                })
            })?
            .token;
        let report = Report::new().field("device", client.path()).field("token", token_kind);
        if let Some(id) = delete {
            client.delete_credential(&token, &id, &mut call).await.map_err(key_error)?;
            return Ok(report.field("deleted", hex(&id)));
        }
        let meta = client.creds_metadata(&token, &mut call).await.map_err(key_error)?;
        let rps = client.enumerate_credentials(&token, &mut call).await.map_err(key_error)?;
        let rps: Vec<Value> = rps
            .iter()
            .map(|rp| {
                let creds: Vec<Value> = rp
                    .credentials
                    .iter()
                    .map(|c| {
                        json!({
                            "credential_id": hex(&c.id),
                            "user_id": c.user.as_ref().map(|u| hex(&u.id)),
                            "user_name": c.user.as_ref().and_then(|u| u.name.clone()),
                            "display_name": c.user.as_ref().and_then(|u| u.display_name.clone()),
                            "cred_protect": c.cred_protect,
                        })
                    })
                    .collect();
                json!({
                    "rp_id": rp.rp.as_ref().map(|r| r.id.clone()),
                    "rp_id_hash": hex(&rp.rp_id_hash),
                    "credentials": creds,
                })
            })
            .collect();
        Ok(report
            .field("existing", meta.existing)
            .field("remaining", meta.remaining)
            .field("relying_parties", Value::Array(rps)))
    })
}
