//! WebAuthn extension flags of `register` and `authenticate`: `--prf-first/--prf-second`
//! (WebAuthn `prf`: hashed into hmac-secret salts for a key, sent as `prf` to a phone),
//! `--cred-protect`, `--cred-blob` / `--get-cred-blob`, `--large-blob` / `--large-blob-read` /
//! `--large-blob-write`. They become the engine's [`ExtensionInputs`]; the outputs are the
//! result's `prf`, `cred_protect`, `cred_blob` and `large_blob` fields.
//!
//! Through the daemon they become the `ceremony.*` params of the same names in snake_case
//! ([`RegisterExtensionArgs::params`], [`AuthenticateExtensionArgs::params`]; the large blob to
//! write travels as base64url, read here from FILE).

use crate::output::CmdError;
use cablebridge_protocol::ctap2::extensions::CredProtect;
use cablebridged::ceremony::{from_b64url, ExtensionInputs, LargeBlobInput, PrfInputs};
use clap::Args;
use std::path::PathBuf;

/// `--prf-first` / `--prf-second`, on both ceremonies.
#[derive(Debug, Clone, Default, Args)]
pub struct PrfArgs {
    /// WebAuthn PRF: evaluate the credential's PRF at this input (base64url, any length; hashed
    /// with SHA-256("WebAuthn PRF" || 0x00 || input) as browsers do). On a security key this is
    /// hmac-secret (hmac-secret-mc at registration, where the key supports it); over hybrid the
    /// phone's own prf. The result's `prf.results.first` is the output.
    #[arg(long, value_name = "BASE64URL")]
    pub prf_first: Option<String>,
    /// A second PRF input (key rotation); `prf.results.second` in the result. Needs --prf-first.
    #[arg(long, value_name = "BASE64URL", requires = "prf_first")]
    pub prf_second: Option<String>,
}

/// Extension flags of `register`.
#[derive(Debug, Clone, Default, Args)]
pub struct RegisterExtensionArgs {
    #[command(flatten)]
    pub prf: PrfArgs,
    /// credProtect level: 1 = UV optional, 2 = UV optional only with the credential ID in an
    /// allow list, 3 = UV required. The result's `cred_protect` is the level the
    /// authenticator applied (absent: it does not support credProtect).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=3))]
    pub cred_protect: Option<u64>,
    /// Store this credBlob (base64url, at most the key's maxCredBlobLength, 32 on ours) with the
    /// credential; `cred_blob.stored` says whether it was.
    #[arg(long, value_name = "BASE64URL")]
    pub cred_blob: Option<String>,
    /// Ask for large-blob support (largeBlobKey; needs a discoverable credential);
    /// `large_blob.supported` in the result.
    #[arg(long)]
    pub large_blob: bool,
}

/// Extension flags of `authenticate`.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthenticateExtensionArgs {
    #[command(flatten)]
    pub prf: PrfArgs,
    /// Read the credential's credBlob (`cred_blob.blob` in the result).
    #[arg(long)]
    pub get_cred_blob: bool,
    /// Read the credential's large blob (`large_blob.blob`, base64url, null when it has none).
    #[arg(long, conflicts_with = "large_blob_write")]
    pub large_blob_read: bool,
    /// Write FILE's bytes as the credential's large blob (`large_blob.written`).
    #[arg(long, value_name = "FILE")]
    pub large_blob_write: Option<PathBuf>,
}

fn b64(flag: &str, s: &str) -> Result<Vec<u8>, CmdError> {
    from_b64url(s).ok_or_else(|| CmdError::usage(format!("{flag} is not valid base64url: {s:?}")))
}

impl PrfArgs {
    fn inputs(&self) -> Result<Option<PrfInputs>, CmdError> {
        let Some(first) = &self.prf_first else { return Ok(None) };
        Ok(Some(PrfInputs {
            first: b64("--prf-first", first)?,
            second: self.prf_second.as_deref().map(|s| b64("--prf-second", s)).transpose()?,
        }))
    }
}

impl RegisterExtensionArgs {
    /// The engine's extension inputs.
    pub fn inputs(&self) -> Result<ExtensionInputs, CmdError> {
        Ok(ExtensionInputs {
            prf: self.prf.inputs()?,
            cred_protect: self.cred_protect.and_then(CredProtect::from_u64),
            cred_blob: self.cred_blob.as_deref().map(|s| b64("--cred-blob", s)).transpose()?,
            get_cred_blob: false,
            large_blob: self.large_blob.then_some(LargeBlobInput::Support),
        })
    }
}

impl AuthenticateExtensionArgs {
    /// The engine's extension inputs (reads `--large-blob-write`'s file).
    pub fn inputs(&self) -> Result<ExtensionInputs, CmdError> {
        let large_blob = match (&self.large_blob_write, self.large_blob_read) {
            (Some(path), _) => Some(LargeBlobInput::Write(std::fs::read(path).map_err(|e| {
                CmdError::usage(format!("--large-blob-write {}: {e}", path.display()))
            })?)),
            (None, true) => Some(LargeBlobInput::Read),
            (None, false) => None,
        };
        Ok(ExtensionInputs {
            prf: self.prf.inputs()?,
            get_cred_blob: self.get_cred_blob,
            large_blob,
            ..ExtensionInputs::default()
        })
    }
}

type Params = serde_json::Map<String, serde_json::Value>;

impl PrfArgs {
    fn params(&self, p: &mut Params) {
        if let Some(f) = &self.prf_first {
            p.insert("prf_first".into(), f.clone().into());
        }
        if let Some(s) = &self.prf_second {
            p.insert("prf_second".into(), s.clone().into());
        }
    }
}

impl RegisterExtensionArgs {
    /// The daemon's `ceremony.register` extension params.
    pub fn params(&self, p: &mut Params) {
        self.prf.params(p);
        if let Some(n) = self.cred_protect {
            p.insert("cred_protect".into(), n.into());
        }
        if let Some(b) = &self.cred_blob {
            p.insert("cred_blob".into(), b.clone().into());
        }
        if self.large_blob {
            p.insert("large_blob".into(), true.into());
        }
    }
}

impl AuthenticateExtensionArgs {
    /// The daemon's `ceremony.authenticate` extension params (`inputs`: the parsed flags, so
    /// the large blob is read from its file once).
    pub fn params(&self, inputs: &ExtensionInputs, p: &mut Params) {
        self.prf.params(p);
        if self.get_cred_blob {
            p.insert("get_cred_blob".into(), true.into());
        }
        match &inputs.large_blob {
            Some(LargeBlobInput::Read) => {
                p.insert("large_blob_read".into(), true.into());
            }
            Some(LargeBlobInput::Write(b)) => {
                p.insert("large_blob_write".into(), cablebridged::ceremony::b64url(b).into());
            }
            _ => {}
        }
    }
}
