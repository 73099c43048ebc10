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
        GetInfo {
            versions: c.versions.clone(),
            aaguid: c.aaguid,
            options: options.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            max_msg_size: Some(MAX_MSG_SIZE),
            pin_uv_auth_protocols: protocols,
            max_credential_count_in_list: Some(MAX_CREDENTIAL_COUNT_IN_LIST),
            max_credential_id_length: Some(WRAPPED_ID_LEN as u64),
            transports: c.transports.clone(),
            algorithms: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
            extensions: super::extensions::advertised(c.pin_capable || c.uv_token(), c.pin_capable),
            max_cred_blob_length: Some(super::MAX_CRED_BLOB_LENGTH as u64),
            max_serialized_large_blob_array: c
                .pin_capable
                .then_some(super::large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY),
            ..GetInfo::default()
        }
    }
}
