//! authenticatorLargeBlobs (0x0C, CTAP 2.1 §6.10): the serialized large-blob array, read and
//! written in fragments.
//!
//! The array lives in [`super::PersistentState::large_blob_array`] (initially
//! [`EMPTY_ARRAY`]); a write collects fragments in volatile state and commits the whole new
//! array only when the last fragment arrives and its SHA-256 trailer matches
//! (INTEGRITY_FAILURE otherwise, and nothing changes). When the authenticator is protected (a
//! PIN is set, or a built-in-UV token exists) every `set` needs a pinUvAuthParam over
//! `32×0xff ‖ 0x0c 0x00 ‖ uint32LE(offset) ‖ SHA-256(fragment)` from a token with the `lbw`
//! permission. Only virtual-key configurations (PIN-capable) offer the command.

use super::{decoded, Authenticator, CmdResult, CredentialStore, Ctx, Flow};
use crate::cbor::Value;
use crate::ctap2::extensions::large_blob::{check_trailer, write_auth_message, LargeBlobsRequest};
use crate::ctap2::{Permissions, StatusCode};

/// maxSerializedLargeBlobArray we advertise.
pub(super) const MAX_SERIALIZED_LARGE_BLOB_ARRAY: u64 = 4096;
/// maxFragmentLength = maxMsgSize − 64 (§6.10.1).
const MAX_FRAGMENT_LENGTH: u64 = super::info::MAX_MSG_SIZE - 64;

/// A write in progress.
pub(super) struct PendingWrite {
    expected_len: u64,
    buffer: Vec<u8>,
}

impl<S: CredentialStore> Authenticator<S> {
    pub(super) fn large_blobs(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let req = decoded(LargeBlobsRequest::from_cbor(p), "offset", StatusCode::InvalidParameter)?;
        match (req.get, &req.set) {
            (Some(_), Some(_)) | (None, None) => Err(StatusCode::InvalidParameter),
            (Some(get), None) => {
                if get > MAX_FRAGMENT_LENGTH {
                    return Err(StatusCode::InvalidLength);
                }
                let array = &self.store.state().large_blob_array;
                let start =
                    usize::try_from(req.offset).map_err(|_| StatusCode::InvalidParameter)?;
                if start > array.len() {
                    return Err(StatusCode::InvalidParameter);
                }
                let end = start.saturating_add(get as usize).min(array.len());
                Ok(Flow::Reply(Some(Value::int_map([(
                    1,
                    Value::bytes(array[start..end].to_vec()),
                )]))))
            }
            (None, Some(fragment)) => self.large_blob_set(&req, fragment, ctx),
        }
    }

    fn large_blob_set(
        &mut self,
        req: &LargeBlobsRequest,
        fragment: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> CmdResult {
        if fragment.len() as u64 > MAX_FRAGMENT_LENGTH {
            return Err(StatusCode::InvalidLength);
        }
        if req.offset == 0 {
            let length = req.length.ok_or(StatusCode::InvalidParameter)?;
            if length > MAX_SERIALIZED_LARGE_BLOB_ARRAY {
                return Err(StatusCode::LargeBlobStorageFull);
            }
            if length < 17 {
                return Err(StatusCode::InvalidParameter);
            }
            self.volatile.large_blob_write =
                Some(PendingWrite { expected_len: length, buffer: Vec::new() });
        } else if req.length.is_some() {
            return Err(StatusCode::InvalidParameter);
        }
        let Some(pending) = &self.volatile.large_blob_write else {
            return Err(StatusCode::InvalidSeq);
        };
        if req.offset != pending.buffer.len() as u64 {
            return Err(StatusCode::InvalidSeq);
        }
        let protected = self.store.state().pin_hash.is_some() || self.config.uv_token();
        if protected || req.pin_uv_auth_param.is_some() {
            let param = req.pin_uv_auth_param.as_deref().ok_or(StatusCode::PuatRequired)?;
            let offset = u32::try_from(req.offset).map_err(|_| StatusCode::InvalidParameter)?;
            let message = write_auth_message(offset, fragment);
            self.verify_pin_uv_auth(
                param,
                req.pin_uv_auth_protocol,
                &message,
                Permissions::LARGE_BLOB_WRITE,
                None,
                ctx.now,
            )?;
        }
        let Some(pending) = &mut self.volatile.large_blob_write else {
            return Err(StatusCode::InvalidSeq);
        };
        if req.offset + fragment.len() as u64 > pending.expected_len {
            return Err(StatusCode::InvalidParameter);
        }
        pending.buffer.extend_from_slice(fragment);
        if (pending.buffer.len() as u64) < pending.expected_len {
            return Ok(Flow::Reply(None));
        }
        let Some(done) = self.volatile.large_blob_write.take() else {
            return Err(StatusCode::InvalidSeq);
        };
        if !check_trailer(&done.buffer) {
            return Err(StatusCode::IntegrityFailure);
        }
        let mut next = self.store.state().clone();
        next.large_blob_array = done.buffer;
        self.commit(next)?;
        Ok(Flow::Reply(None))
    }
}
