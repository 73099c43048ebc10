//! Credential management over a [`Ctap2Client`] (CTAP 2.1 §6.8): metadata, enumerate relying
//! parties and their discoverable credentials, delete one.
//!
//! The command byte is picked from getInfo: `authenticatorCredentialManagement` (0x0A) when the
//! `credMgmt` option is present, the pre-2.1 preview (0x41) when only `credentialMgmtPreview` is;
//! the bodies are the same. Each authenticated subcommand carries
//! `authenticate(token, subCommand ‖ CBOR(params))`; the "get next" subcommands carry none.
//! The token must have the credentialManagement permission (see [`super::pin`]).

use cablebridge_protocol::ctap2::pin::PinUvAuthToken;
use cablebridge_protocol::ctap2::{
    self, CoseKey, CredMgmtParams, CredMgmtSubcommand, CredentialDescriptor,
    CredentialManagementRequest, CredentialManagementResponse, RelyingParty, User,
};

use super::client::Ctap2Client;
use super::error::{CtapError, Result};
use super::hid_channel::Call;
use crate::hid::HidTransport;

/// getCredsMetadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredsMetadata {
    /// Discoverable credentials stored.
    pub existing: u64,
    /// How many more fit (at most).
    pub remaining: u64,
}

/// One discoverable credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// The credential id.
    pub id: Vec<u8>,
    /// The user entity.
    pub user: Option<User>,
    /// The public key.
    pub public_key: Option<CoseKey>,
    /// credProtect level.
    pub cred_protect: Option<u64>,
}

/// A relying party and its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpCredentials {
    /// The relying party (id, name).
    pub rp: Option<RelyingParty>,
    /// SHA-256(rp id).
    pub rp_id_hash: [u8; 32],
    /// Its credentials.
    pub credentials: Vec<StoredCredential>,
}

/// Upper bound on enumeration counts a key claims (a hostile key must not make us loop forever).
const MAX_ENUMERATED: u64 = 1024;

impl<T: HidTransport> Ctap2Client<T> {
    /// The credential-management command this key speaks, or `Unsupported`.
    pub fn cred_mgmt_command(&self) -> Result<ctap2::Command> {
        if self.info().option("credMgmt").is_some() {
            Ok(ctap2::Command::CredentialManagement)
        } else if self.info().option("credentialMgmtPreview").is_some() {
            Ok(ctap2::Command::CredentialManagementPreview)
        } else {
            Err(CtapError::Unsupported {
                device: self.path().to_owned(),
                what: "this key does not support credential management (CTAP 2.1 credMgmt)"
                    .to_owned(),
            })
        }
    }

    async fn cred_mgmt(
        &mut self,
        token: Option<&PinUvAuthToken>,
        sub: CredMgmtSubcommand,
        params: Option<CredMgmtParams>,
        call: &mut Call<'_>,
    ) -> Result<CredentialManagementResponse> {
        let command = self.cred_mgmt_command()?;
        let mut request = CredentialManagementRequest::new(sub, params);
        if let Some(token) = token {
            request.pin_uv_auth_protocol = Some(token.protocol().to_u64());
            request.pin_uv_auth_param = Some(token.authenticate(&request.auth_message()));
        }
        match self.command(command, Some(&request.to_cbor()), call).await? {
            None => Ok(CredentialManagementResponse::default()),
            Some(v) => {
                CredentialManagementResponse::from_cbor(&v).map_err(|e| self.decode_err(command, e))
            }
        }
    }

    /// getCredsMetadata.
    pub async fn creds_metadata(
        &mut self,
        token: &PinUvAuthToken,
        call: &mut Call<'_>,
    ) -> Result<CredsMetadata> {
        let r =
            self.cred_mgmt(Some(token), CredMgmtSubcommand::GetCredsMetadata, None, call).await?;
        Ok(CredsMetadata {
            existing: r.existing_resident_credentials_count.unwrap_or(0),
            remaining: r.max_possible_remaining_resident_credentials_count.unwrap_or(0),
        })
    }

    /// Every relying party with its discoverable credentials. A key with none answers
    /// NO_CREDENTIALS to enumerateRPsBegin; that is an empty list here.
    pub async fn enumerate_credentials(
        &mut self,
        token: &PinUvAuthToken,
        call: &mut Call<'_>,
    ) -> Result<Vec<RpCredentials>> {
        let first = match self
            .cred_mgmt(Some(token), CredMgmtSubcommand::EnumerateRpsBegin, None, call)
            .await
        {
            Err(CtapError::Status { status: ctap2::StatusCode::NoCredentials, .. }) => {
                return Ok(Vec::new())
            }
            other => other?,
        };
        let total = first.total_rps.unwrap_or(0).min(MAX_ENUMERATED);
        let mut rps = vec![(first.rp, first.rp_id_hash)];
        for _ in 1..total {
            let r =
                self.cred_mgmt(None, CredMgmtSubcommand::EnumerateRpsGetNextRp, None, call).await?;
            rps.push((r.rp, r.rp_id_hash));
        }
        let mut out = Vec::with_capacity(rps.len());
        for (rp, hash) in rps {
            let command = self.cred_mgmt_command()?;
            let rp_id_hash = hash.ok_or_else(|| {
                self.decode_err(command, ctap2::Ctap2Error::MissingField("rpIDHash"))
            })?;
            let params = CredMgmtParams { rp_id_hash: Some(rp_id_hash), ..Default::default() };
            let first = self
                .cred_mgmt(
                    Some(token),
                    CredMgmtSubcommand::EnumerateCredentialsBegin,
                    Some(params),
                    call,
                )
                .await?;
            let total = first.total_credentials.unwrap_or(1).clamp(1, MAX_ENUMERATED);
            let mut credentials = vec![stored(first)];
            for _ in 1..total {
                let r = self
                    .cred_mgmt(
                        None,
                        CredMgmtSubcommand::EnumerateCredentialsGetNextCredential,
                        None,
                        call,
                    )
                    .await?;
                credentials.push(stored(r));
            }
            out.push(RpCredentials { rp, rp_id_hash, credentials });
        }
        Ok(out)
    }

    /// deleteCredential.
    pub async fn delete_credential(
        &mut self,
        token: &PinUvAuthToken,
        credential_id: &[u8],
        call: &mut Call<'_>,
    ) -> Result<()> {
        let params = CredMgmtParams {
            credential_id: Some(CredentialDescriptor::public_key(credential_id.to_vec())),
            ..Default::default()
        };
        self.cred_mgmt(Some(token), CredMgmtSubcommand::DeleteCredential, Some(params), call)
            .await?;
        Ok(())
    }
}

fn stored(r: CredentialManagementResponse) -> StoredCredential {
    StoredCredential {
        id: r.credential_id.map(|c| c.id).unwrap_or_default(),
        user: r.user,
        public_key: r.public_key,
        cred_protect: r.cred_protect,
    }
}
