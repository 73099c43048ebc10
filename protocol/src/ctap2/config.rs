//! `authenticatorConfig` (0x0D, CTAP 2.1 §6.11): enableEnterpriseAttestation, toggleAlwaysUv,
//! setMinPINLength.
//!
//! Wire shapes only. [`ConfigRequest::auth_message`] gives the exact bytes `pinUvAuthParam` is
//! computed over (§6.11.1): `32×0xff ‖ 0x0d ‖ subCommand ‖ CBOR(subCommandParams)?`, made with
//! a token holding the `acfg` permission ([`super::Permissions::AUTHENTICATOR_CONFIG`]).
//! Unknown parameter keys are kept so re-encoding decoded parameters reproduces the bytes the
//! platform authenticated.

use super::error::Ctap2Error;
use super::fields::{self, opt, Fields, MapBuilder};
use crate::cbor::Value;

/// An authenticatorConfig subcommand (§6.11).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSubcommand {
    /// 0x01 enableEnterpriseAttestation (§6.11.2).
    EnableEnterpriseAttestation,
    /// 0x02 toggleAlwaysUv (§6.11.3).
    ToggleAlwaysUv,
    /// 0x03 setMinPINLength (§6.11.4).
    SetMinPinLength,
    /// 0xFF vendorPrototype, and anything else (an authenticator answers INVALID_SUBCOMMAND).
    Other(u8),
}

impl ConfigSubcommand {
    /// From the wire number.
    pub fn from_u8(n: u8) -> Self {
        match n {
            1 => ConfigSubcommand::EnableEnterpriseAttestation,
            2 => ConfigSubcommand::ToggleAlwaysUv,
            3 => ConfigSubcommand::SetMinPinLength,
            n => ConfigSubcommand::Other(n),
        }
    }
    /// The wire number.
    pub fn to_u8(self) -> u8 {
        match self {
            ConfigSubcommand::EnableEnterpriseAttestation => 1,
            ConfigSubcommand::ToggleAlwaysUv => 2,
            ConfigSubcommand::SetMinPinLength => 3,
            ConfigSubcommand::Other(n) => n,
        }
    }
}

/// setMinPINLength's `subCommandParams` (§6.11.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetMinPinLengthParams {
    /// 0x01 newMinPINLength (code points); absent = keep the current one.
    pub new_min_pin_length: Option<u64>,
    /// 0x02 minPinLengthRPIDs: RP ids allowed to read the minimum through the `minPinLength`
    /// extension.
    pub min_pin_length_rp_ids: Option<Vec<String>>,
    /// 0x03 forceChangePin.
    pub force_change_pin: Option<bool>,
    /// Other keys, kept so the authenticated bytes survive a decode/encode.
    pub unknown: Vec<(Value, Value)>,
}

impl SetMinPinLengthParams {
    /// Encodes the params map.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.new_min_pin_length)
            .put_opt(0x02, self.min_pin_length_rp_ids.as_deref().map(fields::texts))
            .put_opt(0x03, self.force_change_pin)
            .extend(&self.unknown)
            .build()
    }
    /// Decodes the params map.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "subCommandParams")?;
        Ok(SetMinPinLengthParams {
            new_min_pin_length: opt(f.get(0x01), "newMinPINLength", fields::uint)?,
            min_pin_length_rp_ids: opt(f.get(0x02), "minPinLengthRPIDs", fields::text_list)?,
            force_change_pin: opt(f.get(0x03), "forceChangePin", fields::boolean)?,
            unknown: f.unknown_int(&[0x01, 0x02, 0x03]),
        })
    }
}

/// The authenticatorConfig request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRequest {
    /// 0x01 subCommand.
    pub sub_command: ConfigSubcommand,
    /// 0x02 subCommandParams, kept as the map received (only setMinPINLength has any; decode
    /// with [`SetMinPinLengthParams::from_cbor`]).
    pub params: Option<Value>,
    /// 0x03 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x04 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl ConfigRequest {
    /// A request without authentication (fill `pin_uv_auth_*` in with
    /// [`super::pin::PinUvAuthToken::authenticate`] over [`Self::auth_message`]).
    pub fn new(sub_command: ConfigSubcommand, params: Option<Value>) -> Self {
        ConfigRequest { sub_command, params, pin_uv_auth_protocol: None, pin_uv_auth_param: None }
    }

    /// setMinPINLength with `params`.
    pub fn set_min_pin_length(params: &SetMinPinLengthParams) -> Self {
        Self::new(ConfigSubcommand::SetMinPinLength, Some(params.to_cbor()))
    }

    /// `32×0xff ‖ 0x0d ‖ subCommand ‖ CBOR(subCommandParams)?` (§6.11.1).
    pub fn auth_message(&self) -> Vec<u8> {
        let mut m = vec![0xff; 32];
        m.push(super::Command::Config.to_u8());
        m.push(self.sub_command.to_u8());
        if let Some(p) = &self.params {
            p.encode_into(&mut m);
        }
        m
    }

    /// Encodes the request body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put(0x01, u64::from(self.sub_command.to_u8()))
            .put_opt(0x02, self.params.clone())
            .put_opt(0x03, self.pin_uv_auth_protocol)
            .put_opt(0x04, self.pin_uv_auth_param.clone())
            .build()
    }

    /// Decodes the request body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "authenticatorConfig request")?;
        let sub = fields::uint(fields::req(f.get(0x01), "subCommand")?, "subCommand")?;
        let sub = u8::try_from(sub).map_err(|_| Ctap2Error::field("subCommand", "out of range"))?;
        Ok(ConfigRequest {
            sub_command: ConfigSubcommand::from_u8(sub),
            params: opt(f.get(0x02), "subCommandParams", fields::map)?,
            pin_uv_auth_protocol: opt(f.get(0x03), "pinUvAuthProtocol", fields::uint)?,
            pin_uv_auth_param: opt(f.get(0x04), "pinUvAuthParam", fields::bytes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_message_is_ff_padding_command_subcommand_params() {
        let toggle = ConfigRequest::new(ConfigSubcommand::ToggleAlwaysUv, None);
        let mut want = vec![0xff; 32];
        want.extend([0x0d, 0x02]);
        assert_eq!(toggle.auth_message(), want);
        let params = SetMinPinLengthParams {
            new_min_pin_length: Some(6),
            min_pin_length_rp_ids: Some(vec!["a.com".into()]),
            force_change_pin: Some(true),
            ..Default::default()
        };
        let set = ConfigRequest::set_min_pin_length(&params);
        // … 0d 03 ‖ {1: 6, 2: ["a.com"], 3: true}
        let tail = &set.auth_message()[32..];
        assert_eq!(hex::encode(tail), "0d03a30106028165612e636f6d03f5");
        assert_eq!(ConfigSubcommand::EnableEnterpriseAttestation.to_u8(), 1);
        for n in 0..=u8::MAX {
            assert_eq!(ConfigSubcommand::from_u8(n).to_u8(), n);
        }
    }

    #[test]
    fn round_trips_and_names_bad_fields() {
        let params = SetMinPinLengthParams {
            new_min_pin_length: Some(8),
            unknown: vec![(Value::int(9), Value::int(1))],
            ..Default::default()
        };
        let mut req = ConfigRequest::set_min_pin_length(&params);
        req.pin_uv_auth_protocol = Some(2);
        req.pin_uv_auth_param = Some(vec![1; 32]);
        let wire = req.to_cbor().to_vec();
        let back = ConfigRequest::from_cbor(&Value::decode(&wire).unwrap()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.auth_message(), req.auth_message());
        let p = SetMinPinLengthParams::from_cbor(back.params.as_ref().unwrap()).unwrap();
        assert_eq!(p, params);
        let bad = Value::int_map([(1, Value::text("x"))]);
        assert_eq!(
            SetMinPinLengthParams::from_cbor(&bad),
            Err(Ctap2Error::field("newMinPINLength", "not an unsigned integer"))
        );
        assert_eq!(
            ConfigRequest::from_cbor(&Value::int_map([(3, Value::int(1))])),
            Err(Ctap2Error::MissingField("subCommand"))
        );
    }
}
