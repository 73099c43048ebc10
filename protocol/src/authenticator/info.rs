//! authenticatorGetInfo (0x04, CTAP 2.1 §6.4): the configuration and state rendered as a
//! [`GetInfo`]. Not the encoding (that is [`GetInfo::to_cbor`]).

use super::keys::WRAPPED_ID_LEN;
use super::{Authenticator, CredentialStore};
use crate::ctap2::{CoseAlgorithm, CredentialParameters, GetInfo};

/// The largest request we accept (what we advertise as maxMsgSize).
pub(super) const MAX_MSG_SIZE: u64 = 2048;
/// Advertised maxCredentialCountInList.
const MAX_CREDENTIAL_COUNT_IN_LIST: u64 = 8;

impl<S: CredentialStore> Authenticator<S> {
    pub(super) fn get_info(&self) -> GetInfo {
        let c = &self.config;
        let mut options = vec![("rk", true), ("up", true)];
        if c.builtin_uv {
            options.push(("uv", true));
        }
        if c.pin_capable {
            options.push(("clientPin", self.store.state().pin_hash.is_some()));
        }
        // Protocol two preferred; one kept for CTAP 2.0 platforms.
        let protocols = if c.pin_capable || c.uv_token() { vec![2, 1] } else { Vec::new() };
        if c.pin_capable || c.uv_token() {
            options.push(("pinUvAuthToken", true));
        }
        if c.pin_capable {
            options.push(("credMgmt", true));
            options.push(("largeBlobs", true));
        }
        // authenticatorConfig and friends (see `auth_config`).
        let settings = &self.store.state().settings;
        if c.configurable() {
            options.push(("authnrCfg", true));
            options.push(("alwaysUv", settings.always_uv));
        }
        if c.pin_capable {
            options.push(("setMinPINLength", true));
            options.push(("perCredMgmtRO", true));
        }
        if c.enterprise_attestation {
            options.push(("ep", settings.enterprise_attestation));
        }
        // A simulated fingerprint sensor (see `bio`): uv/bioEnroll true once a finger is enrolled.
        if c.bio && !c.builtin_uv {
            options.push(("uv", self.bio_enrolled()));
        }
        if c.bio {
            options.push(("bioEnroll", self.bio_enrolled()));
        }
        let mut info = GetInfo {
            versions: c.versions.clone(),
            aaguid: c.aaguid,
            options: options.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            max_msg_size: Some(MAX_MSG_SIZE),
            pin_uv_auth_protocols: protocols,
            max_credential_count_in_list: Some(MAX_CREDENTIAL_COUNT_IN_LIST),
            max_credential_id_length: Some(WRAPPED_ID_LEN as u64),
            transports: c.transports.clone(),
            algorithms: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
            force_pin_change: c.pin_capable.then_some(settings.force_pin_change),
            min_pin_length: c.pin_capable.then_some(settings.min_pin_length.into()),
            // FIDO registry UVM fingerprint_internal (0x02).
            uv_modality: c.bio.then_some(0x02),
            max_rpids_for_set_min_pin_length: c
                .pin_capable
                .then_some(super::MAX_MIN_PIN_LENGTH_RPIDS as u64),
            extensions: super::extensions::advertised(c.pin_capable || c.uv_token(), c.pin_capable),
            max_cred_blob_length: Some(super::MAX_CRED_BLOB_LENGTH as u64),
            max_serialized_large_blob_array: c
                .pin_capable
                .then_some(super::large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY),
            ..GetInfo::default()
        };
        if c.pin_capable {
            info.extensions.push("minPinLength".to_owned());
        }
        info
    }
}
