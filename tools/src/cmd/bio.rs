//! `cablebridge bio info|list|enroll|rename|remove`: fingerprint enrollment (CTAP 2.1 §6.7 bio
//! enrollment, or the 0x40 preview on older keys), in the spirit of `fido2-token -I -b` /
//! `-L -e` / `-S -e` / `-S -b` / `-D -e`. Template ids are hex, as `list` prints them. Every
//! subcommand but `info` needs a token with the `be` permission: the key's PIN from
//! `CABLEBRIDGE_PIN`, `--pin-stdin` or a no-echo prompt (or built-in UV once a finger is
//! enrolled). A key without a fingerprint sensor is a clear error (exit 1).

use cablebridge_protocol::ctap2::client_pin::Permissions;
use clap::{Args, Subcommand};
use rand::rngs::OsRng;
use serde_json::{json, Value};

use crate::cmd::parse_hex_arg;
use crate::cmd::usb::{
    block_on, choose, deadline, hex, key_error, progress_printer, DeviceArgs, PinArgs, PinSource,
};
use crate::output::{CmdError, Report};
use cablebridged::ctap::bio::Sample;
use cablebridged::ctap::{Call, CtapError};

/// `bio` subcommands.
#[derive(Debug, Subcommand)]
pub enum BioCommand {
    /// The fingerprint sensor: modality, kind, samples per enrollment (no PIN needed).
    Info(BioArgs),
    /// List enrolled fingerprints (template id, friendly name).
    List(BioArgs),
    /// Enroll a finger: touch the sensor until no samples remain.
    Enroll(EnrollArgs),
    /// Give an enrolled fingerprint a friendly name.
    Rename(RenameArgs),
    /// Remove an enrolled fingerprint.
    Remove(RemoveArgs),
}

/// Key and PIN.
#[derive(Debug, Args)]
pub struct BioArgs {
    /// Which key.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// PIN input.
    #[command(flatten)]
    pub pin: PinArgs,
}

/// Arguments of `bio enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Friendly name for the new fingerprint.
    #[arg(long)]
    pub name: Option<String>,
    /// Key and PIN.
    #[command(flatten)]
    pub common: BioArgs,
}

/// Arguments of `bio rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// Template id (hex, from `bio list`).
    pub id: String,
    /// The new friendly name.
    pub name: String,
    /// Key and PIN.
    #[command(flatten)]
    pub common: BioArgs,
}

/// Arguments of `bio remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Template id (hex, from `bio list`).
    pub id: String,
    /// Key and PIN.
    #[command(flatten)]
    pub common: BioArgs,
}

fn kind_name(kind: Option<u64>) -> Value {
    match kind {
        Some(1) => "touch".into(),
        Some(2) => "swipe".into(),
        Some(n) => n.into(),
        None => Value::Null,
    }
}

/// Runs `bio ...`.
pub fn run(command: &BioCommand) -> Result<Report, CmdError> {
    let args = match command {
        BioCommand::Info(a) | BioCommand::List(a) => a,
        BioCommand::Enroll(e) => &e.common,
        BioCommand::Rename(r) => &r.common,
        BioCommand::Remove(r) => &r.common,
    };
    let template = match command {
        BioCommand::Rename(RenameArgs { id, .. }) | BioCommand::Remove(RemoveArgs { id, .. }) => {
            Some(parse_hex_arg("template id", id)?)
        }
        _ => None,
    };
    block_on(|cancel| async move {
        let mut client = choose(&args.device, &cancel).await?;
        client.bio_command().map_err(key_error)?;
        let mut printer = progress_printer();
        let mut call =
            Call { deadline: deadline(&args.device), cancel: &cancel, progress: &mut printer };
        let report = Report::new().field("device", client.path());
        if let BioCommand::Info(_) = command {
            let s = client.bio_sensor_info(&mut call).await.map_err(key_error)?;
            return Ok(report
                .field(
                    "modality",
                    if s.modality == Some(1) { "fingerprint".into() } else { json!(s.modality) },
                )
                .field("fingerprint_kind", kind_name(s.fingerprint_kind))
                .field("max_capture_samples", s.max_capture_samples)
                .field("max_friendly_name_bytes", s.max_friendly_name)
                .field("enrolled", client.info().option("bioEnroll").unwrap_or(false)));
        }
        let pin = PinSource::new(&args.pin).pin_for(&client, "CABLEBRIDGE_PIN", "PIN: ")?;
        let token = client
            .get_token(&mut OsRng, pin.as_ref(), Permissions::BIO_ENROLLMENT, None, &mut call)
            .await
            .map_err(key_error)?
            .ok_or_else(|| {
                key_error(CtapError::Unsupported {
                    device: client.path().to_owned(),
                    what: "bio enrollment needs a PIN: set one with `cablebridge pin set`"
                        .to_owned(),
                })
            })?
            .token;
        match command {
            BioCommand::List(_) => {
                let list = client.bio_enrollments(&token, &mut call).await.map_err(key_error)?;
                let items: Vec<Value> = list
                    .iter()
                    .map(|t| json!({"template_id": hex(&t.template_id), "name": t.friendly_name}))
                    .collect();
                Ok(report.field("enrollments", Value::Array(items)))
            }
            BioCommand::Enroll(e) => {
                let mut on_sample = |s: Sample| {
                    if s.remaining > 0 {
                        eprintln!(
                            "cablebridge: sample captured (status {}); touch the sensor again, \
                             {} to go",
                            s.status, s.remaining
                        );
                    }
                };
                let (id, samples) = client
                    .bio_enroll(&token, None, &mut on_sample, &mut call)
                    .await
                    .map_err(key_error)?;
                if let Some(name) = &e.name {
                    client.bio_rename(&token, &id, name, &mut call).await.map_err(key_error)?;
                }
                let samples: Vec<Value> = samples
                    .iter()
                    .map(|s| json!({"status": s.status, "remaining": s.remaining}))
                    .collect();
                Ok(report
                    .field("template_id", hex(&id))
                    .field("name", e.name.clone())
                    .field("samples", Value::Array(samples)))
            }
            BioCommand::Rename(r) => {
                let id = template.unwrap_or_default();
                client.bio_rename(&token, &id, &r.name, &mut call).await.map_err(key_error)?;
                Ok(report.field("template_id", hex(&id)).field("name", r.name.clone()))
            }
            BioCommand::Remove(_) => {
                let id = template.unwrap_or_default();
                client.bio_remove(&token, &id, &mut call).await.map_err(key_error)?;
                Ok(report.field("removed", hex(&id)))
            }
            BioCommand::Info(_) => Ok(report),
        }
    })
}
