//! Extensions on a security key that need more than a request field: `hmac-secret` /
//! `hmac-secret-mc` under WebAuthn `prf` (CTAP 2.1 §12.5, CTAP 2.2 §12.7), and `largeBlob`
//! through `largeBlobKey` + authenticatorLargeBlobs (§6.10, §12.3).
//!
//! The salts travel encrypted under a PIN/UV auth protocol shared secret: one getKeyAgreement
//! (clientPIN 0x02, no PIN needed), an ephemeral platform key, and [`HmacSecretInput::seal`].
//! The key answers with the encrypted outputs in its authenticator-data extensions, which
//! [`HmacSecretSession::open`] decrypts. The key-agreement key survives token acquisition (it is
//! regenerated only at power-up and after a wrong PIN), so this runs before the PIN/UV step,
//! as libfido2 shares one key agreement between the token and hmac-secret.
//!
//! Also used by the bridge (`crate::bridge`) to serve a desktop's `prf` with a key's
//! hmac-secret. Outputs are secrets and are never logged.

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::extensions::hmac_secret::open_outputs;
use cablebridge_protocol::ctap2::extensions::{self as ext, HmacSecretInput, PrfOutputs, Salts};
use cablebridge_protocol::ctap2::pin::client::key_agreement_request;
use cablebridge_protocol::ctap2::pin::key_agreement::encapsulate;
use cablebridge_protocol::ctap2::pin::SharedSecret;
use cablebridge_protocol::ctap2::{self, AuthenticatorData, Ctap2Error};
use rand_core::CryptoRngCore;

use super::error::{CtapError, Result};
use super::{Call, Ctap2Client};
use crate::ceremony::{LargeBlobInput, LargeBlobOutput};
use crate::hid::HidTransport;
use cablebridge_protocol::ctap2::client_pin::Permissions;
use cablebridge_protocol::ctap2::extensions::large_blob::{self, LargeBlobsRequest};
use cablebridge_protocol::ctap2::pin::{Pin, PinUvAuthToken};

/// The secret to open one request's hmac-secret answer with.
#[derive(Debug)]
pub struct HmacSecretSession {
    shared: SharedSecret,
    two: bool,
    /// `hmac-secret` (getAssertion) or `hmac-secret-mc` (makeCredential).
    name: &'static str,
}

impl HmacSecretSession {
    /// Decrypts the outputs from a response's authenticator data; `Ok(None)` when the key
    /// returned none (the credential was made without hmac-secret, or the key ignored it).
    pub fn open(&self, auth_data: &[u8]) -> std::result::Result<Option<PrfOutputs>, Ctap2Error> {
        let ad = AuthenticatorData::parse(auth_data)?;
        let Some(enc) = ad.extensions.as_ref().and_then(|e| e.get_text(self.name)) else {
            return Ok(None);
        };
        let enc = enc.as_bytes().ok_or(Ctap2Error::InvalidField {
            field: "hmac-secret output",
            problem: "not a byte string",
        })?;
        open_outputs(&self.shared, enc, self.two).map(Some)
    }
}

/// Seals `salts` for the key's hmac-secret (getAssertion) or hmac-secret-mc (makeCredential,
/// when the key lists it) and adds them to `extensions`. `None` when the key lists neither or
/// has no PIN/UV protocol for the key agreement.
pub async fn add_hmac_secret<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    rng: &mut (impl CryptoRngCore + Send),
    salts: &Salts,
    make_credential: bool,
    extensions: &mut Option<Value>,
    call: &mut Call<'_>,
) -> Result<Option<HmacSecretSession>> {
    let has = |name: &str| client.info().extensions.iter().any(|e| e == name);
    let name = if make_credential { ext::HMAC_SECRET_MC } else { ext::HMAC_SECRET };
    if !has(ext::HMAC_SECRET) || !has(name) {
        return Ok(None);
    }
    // hmac-secret without any PIN/UV protocol cannot carry salts: the key then just reports
    // `enabled` (registration) and no results, as a browser would see it.
    let Ok(protocol) = client.pin_protocol() else { return Ok(None) };
    let command = ctap2::Command::ClientPin;
    let answer = client.client_pin(&key_agreement_request(protocol), call).await?;
    let peer = answer
        .key_agreement
        .ok_or_else(|| client.decode_err(command, Ctap2Error::MissingField("keyAgreement")))?;
    let (platform_key, shared) =
        encapsulate(protocol, rng, &peer).map_err(|e| client.decode_err(command, e))?;
    let input = HmacSecretInput::seal(&shared, platform_key, salts, rng)
        .map_err(|e| client.decode_err(command, e))?;
    insert(extensions, name, input.to_cbor());
    if make_credential {
        insert(extensions, ext::HMAC_SECRET, Value::Bool(true));
    }
    Ok(Some(HmacSecretSession { shared, two: salts.second.is_some(), name }))
}

/// Sets `name` in an extensions map (creating it).
pub fn insert(extensions: &mut Option<Value>, name: &str, value: Value) {
    let map = extensions.get_or_insert_with(|| Value::Map(Vec::new()));
    if let Value::Map(m) = map {
        m.retain(|(k, _)| k.as_text() != Some(name));
        m.push((Value::text(name), value));
    }
}

/// The key's maxFragmentLength for authenticatorLargeBlobs (maxMsgSize − 64, CTAP 2.1 §6.10).
fn max_fragment<T: HidTransport>(client: &Ctap2Client<T>) -> usize {
    let msg = client.info().max_msg_size.unwrap_or(1024);
    usize::try_from(msg.saturating_sub(64)).unwrap_or(960).max(1)
}

/// Reads the whole serialized large-blob array (fragment by fragment) and returns its entries
/// (trailer checked).
pub async fn read_large_blobs<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    call: &mut Call<'_>,
) -> Result<Vec<Value>> {
    let command = ctap2::Command::LargeBlobs;
    let n = max_fragment(client);
    let mut array = Vec::new();
    // A hostile key could answer forever: stop at 64 fragments (far beyond what keys store).
    for _ in 0..64 {
        let req = LargeBlobsRequest {
            get: Some(n as u64),
            offset: array.len() as u64,
            ..LargeBlobsRequest::default()
        };
        let body = client.command(command, Some(&req.to_cbor()), call).await?;
        let body = client.require_body(command, body)?;
        let fragment = body
            .get(1)
            .and_then(Value::as_bytes)
            .ok_or_else(|| client.decode_err(command, Ctap2Error::MissingField("config")))?;
        array.extend_from_slice(fragment);
        if fragment.len() < n {
            return large_blob::parse_array(&array).map_err(|e| client.decode_err(command, e));
        }
    }
    Err(client.decode_err(
        command,
        Ctap2Error::InvalidField { field: "large-blob array", problem: "longer than 64 fragments" },
    ))
}

/// Writes a whole serialized large-blob array, each fragment authorised with `token` (with the
/// `lbw` permission) when the key is protected.
pub async fn write_large_blobs<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    serialized: &[u8],
    token: Option<&PinUvAuthToken>,
    call: &mut Call<'_>,
) -> Result<()> {
    let command = ctap2::Command::LargeBlobs;
    let n = max_fragment(client);
    for (i, fragment) in serialized.chunks(n).enumerate() {
        let offset = i * n;
        let offset32 = u32::try_from(offset).unwrap_or(u32::MAX);
        let req = LargeBlobsRequest {
            set: Some(fragment.to_vec()),
            offset: offset as u64,
            length: (offset == 0).then_some(serialized.len() as u64),
            pin_uv_auth_param: token
                .map(|t| t.authenticate(&large_blob::write_auth_message(offset32, fragment))),
            pin_uv_auth_protocol: token.map(|t| t.protocol().to_u64()),
            ..LargeBlobsRequest::default()
        };
        client.command(command, Some(&req.to_cbor()), call).await?;
    }
    Ok(())
}

/// Reads or writes the large blob of the credential whose `largeBlobKey` is `key`.
pub async fn large_blob<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    rng: &mut (impl CryptoRngCore + Send),
    key: &[u8],
    op: &LargeBlobInput,
    pin: Option<&Pin>,
    call: &mut Call<'_>,
) -> Result<LargeBlobOutput> {
    let command = ctap2::Command::LargeBlobs;
    let key: [u8; 32] = key.try_into().map_err(|_| {
        client.decode_err(
            command,
            Ctap2Error::InvalidField { field: "largeBlobKey", problem: "not 32 bytes" },
        )
    })?;
    let key = zeroize::Zeroizing::new(key);
    let entries = read_large_blobs(client, call).await?;
    match op {
        LargeBlobInput::Support => Ok(LargeBlobOutput::Supported(true)),
        LargeBlobInput::Read => {
            Ok(LargeBlobOutput::Blob(entries.iter().find_map(|e| large_blob::open(&key, e))))
        }
        LargeBlobInput::Write(blob) => {
            let mut kept: Vec<Value> =
                entries.into_iter().filter(|e| large_blob::open(&key, e).is_none()).collect();
            kept.push(large_blob::seal(&key, blob, rng));
            let serialized = large_blob::serialize_array(kept);
            let max = client.info().max_serialized_large_blob_array.unwrap_or(1024);
            if serialized.len() as u64 > max {
                return Err(CtapError::Unsupported {
                    device: client.path().to_owned(),
                    what: format!(
                        "the large-blob array would be {} bytes; this key stores at most {max}",
                        serialized.len()
                    ),
                });
            }
            let token = if client.pin_is_set() || client.info().option("uv") == Some(true) {
                let t =
                    client.get_token(rng, pin, Permissions::LARGE_BLOB_WRITE, None, call).await?;
                match t {
                    Some(t) => Some(t.token),
                    None => {
                        return Err(CtapError::PinRequired { device: client.path().to_owned() })
                    }
                }
            } else {
                None
            };
            write_large_blobs(client, &serialized, token.as_ref(), call).await?;
            Ok(LargeBlobOutput::Written(true))
        }
    }
}
