//! authenticatorConfig over a [`Ctap2Client`] (CTAP 2.1 §6.11): toggleAlwaysUv,
//! setMinPINLength (with minPinLengthRPIDs and forceChangePin) and enableEnterpriseAttestation.
//!
//! Each subcommand carries `authenticate(token, 32×0xff ‖ 0x0d ‖ subCommand ‖ params)` made
//! with a token holding the `acfg` permission ([`super::pin`] obtains it: built-in UV or the
//! PIN). A key with no PIN, no built-in UV and `alwaysUv` off has nothing to authenticate with;
//! the request then goes without a pinUvAuthParam, as §6.11.1 allows. getInfo is re-read after
//! every change so callers report the key's new state.

use cablebridge_protocol::ctap2::client_pin::Permissions;
use cablebridge_protocol::ctap2::pin::Pin;
use cablebridge_protocol::ctap2::{
    self, ConfigRequest, ConfigSubcommand, SetMinPinLengthParams, StatusCode,
};
use rand_core::CryptoRngCore;

use super::client::Ctap2Client;
use super::error::{CtapError, Result};
use super::hid_channel::Call;
use crate::hid::HidTransport;

/// What to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// toggleAlwaysUv.
    ToggleAlwaysUv,
    /// setMinPINLength.
    SetMinPinLength(SetMinPinLengthParams),
    /// enableEnterpriseAttestation.
    EnableEnterpriseAttestation,
}

impl ConfigChange {
    fn request(&self) -> ConfigRequest {
        match self {
            ConfigChange::ToggleAlwaysUv => {
                ConfigRequest::new(ConfigSubcommand::ToggleAlwaysUv, None)
            }
            ConfigChange::SetMinPinLength(p) => ConfigRequest::set_min_pin_length(p),
            ConfigChange::EnableEnterpriseAttestation => {
                ConfigRequest::new(ConfigSubcommand::EnableEnterpriseAttestation, None)
            }
        }
    }
}

impl<T: HidTransport> Ctap2Client<T> {
    /// `Unsupported` unless getInfo lists `authnrCfg` (and, for the subcommand, `setMinPINLength`
    /// or `ep`).
    pub fn check_config_support(&self, change: &ConfigChange) -> Result<()> {
        let info = self.info();
        let missing = if info.option("authnrCfg") != Some(true) {
            Some("authenticatorConfig (CTAP 2.1 authnrCfg)")
        } else {
            match change {
                ConfigChange::SetMinPinLength(_)
                    if info.option("setMinPINLength") != Some(true) =>
                {
                    Some("setMinPINLength")
                }
                ConfigChange::EnableEnterpriseAttestation if info.option("ep").is_none() => {
                    Some("enterprise attestation (no `ep` option)")
                }
                _ => None,
            }
        };
        match missing {
            Some(what) => Err(CtapError::Unsupported {
                device: self.path().to_owned(),
                what: format!("this key does not support {what}"),
            }),
            None => Ok(()),
        }
    }

    /// Applies `change`: a token with `acfg` when the key is protected (PIN, built-in UV or
    /// `alwaysUv`), then authenticatorConfig, then getInfo again.
    pub async fn configure(
        &mut self,
        rng: &mut (impl CryptoRngCore + Send),
        pin: Option<&Pin>,
        change: &ConfigChange,
        call: &mut Call<'_>,
    ) -> Result<()> {
        self.check_config_support(change)?;
        let mut request = change.request();
        let info = self.info();
        let protected = self.pin_is_set()
            || info.option("uv") == Some(true)
            || info.option("alwaysUv") == Some(true);
        if protected {
            let token = self
                .get_token(rng, pin, Permissions::AUTHENTICATOR_CONFIG, None, call)
                .await?
                // Only alwaysUv protects a key without PIN or UV: nothing to authenticate with.
                .ok_or_else(|| CtapError::Unsupported {
                    device: self.path().to_owned(),
                    what: "alwaysUv is on and the key has no PIN: set one with `cablebridge pin \
                           set` first"
                        .to_owned(),
                })?
                .token;
            request.pin_uv_auth_protocol = Some(token.protocol().to_u64());
            request.pin_uv_auth_param = Some(token.authenticate(&request.auth_message()));
        }
        match self.command(ctap2::Command::Config, Some(&request.to_cbor()), call).await {
            // The generic text talks about a new PIN; say what the key refused here.
            Err(CtapError::Status { status: StatusCode::PinPolicyViolation, device, .. })
                if matches!(change, ConfigChange::SetMinPinLength(_)) =>
            {
                let current = self.info().min_pin_length.unwrap_or(4);
                let max_rps = self.info().max_rpids_for_set_min_pin_length.unwrap_or(0);
                return Err(CtapError::Unsupported {
                    device,
                    what: format!(
                        "the key refused setMinPINLength (PIN policy): the minimum only grows \
                         (it is {current} now) and it takes at most {max_rps} RP ids"
                    ),
                });
            }
            other => other?,
        };
        self.refresh_info(call).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_map_to_their_subcommands() {
        assert_eq!(ConfigChange::ToggleAlwaysUv.request().sub_command.to_u8(), 2);
        assert_eq!(ConfigChange::EnableEnterpriseAttestation.request().sub_command.to_u8(), 1);
        let p = SetMinPinLengthParams { new_min_pin_length: Some(6), ..Default::default() };
        let r = ConfigChange::SetMinPinLength(p).request();
        assert_eq!(r.sub_command.to_u8(), 3);
        assert_eq!(r.params.and_then(|v| v.get(1).and_then(|n| n.as_u64())), Some(6));
    }
}
