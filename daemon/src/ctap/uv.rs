//! User-verification policy for USB ceremonies: register / authenticate on a security key, the
//! CTAP2 half of a WebAuthn ceremony, with user verification done right. (Depends only on the
//! CTAP client below it; the ceremony runner in [`super::ceremony`] calls it.)
//!
//! The caller (the shared ceremony model: client data, options, result JSON) builds the
//! makeCredential / getAssertion request with its clientDataHash; this module decides how to
//! verify the user on *this* key and fills `pinUvAuthParam` / `options.uv` in:
//!
//! * key with built-in UV and `pinUvAuthToken` → a token from
//!   getPinUvAuthTokenUsingUvWithPermissions, PIN fallback when UV fails;
//! * key with a PIN set and a PIN supplied → a token with the makeCredential / getAssertion
//!   permission scoped to the rp id (CTAP 2.1), or getPinToken (CTAP 2.0);
//! * key with built-in UV but no token support → `options.uv = true`;
//! * otherwise user presence only; `UserVerification::Required` then fails early with
//!   [`CtapError::PinRequired`] or [`CtapError::Unsupported`].
//!
//! `pinUvAuthParam = authenticate(token, clientDataHash)` (CTAP 2.1 §6.1.1 step 2 / §6.2.1).

use cablebridge_protocol::ctap2::client_pin::Permissions;
use cablebridge_protocol::ctap2::pin::Pin;
use cablebridge_protocol::ctap2::{
    GetAssertionRequest, GetAssertionResponse, MakeCredentialRequest, MakeCredentialResponse,
};
use rand_core::CryptoRngCore;

use super::error::{CtapError, Result};
use super::{Call, Ctap2Client, TokenSource};
use crate::hid::HidTransport;

/// The relying party's user-verification requirement (WebAuthn `userVerification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserVerification {
    /// Fail unless the user is verified.
    Required,
    /// Verify when the key can.
    #[default]
    Preferred,
    /// Do not verify (user presence only) unless the key insists.
    Discouraged,
}

/// How the user was verified in a ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// A pinUvAuthToken from this source.
    Token(TokenSource),
    /// The key's built-in UV via `options.uv` (CTAP 2.0 style).
    BuiltInOption,
    /// User presence only.
    PresenceOnly,
}

/// Fills user verification into a request's `pinUvAuthParam` / `uv` option.
#[allow(clippy::too_many_arguments)] // one call site per ceremony; a struct would only rename them
async fn verify_user<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    rng: &mut (impl CryptoRngCore + Send),
    pin: Option<&Pin>,
    uv: UserVerification,
    permission: Permissions,
    rp_id: &str,
    client_data_hash: &[u8; 32],
    call: &mut Call<'_>,
) -> Result<(Option<(Vec<u8>, u64)>, bool, Verification)> {
    if client.is_u2f_only() {
        // CTAP1/U2F has user presence only: a PIN or required UV cannot be honoured.
        if pin.is_some() || uv == UserVerification::Required {
            return Err(CtapError::U2fOnly {
                device: client.path().to_owned(),
                what: "it cannot verify the user (no PIN, no built-in UV); drop the PIN / --uv required"
                    .to_owned(),
            });
        }
        return Ok((None, false, Verification::PresenceOnly));
    }
    let info = client.info();
    let pin_set = client.pin_is_set();
    let builtin = info.option("uv") == Some(true);
    let mc_uv_not_required = info.option("makeCredUvNotRqd") == Some(true);
    let has_client_pin = info.option("clientPin").is_some();
    // A key with a PIN set requires UV for makeCredential unless makeCredUvNotRqd says
    // otherwise; asking for the token in that case is what avoids PUAT_REQUIRED.
    let want = match uv {
        UserVerification::Discouraged => {
            pin_set && permission == Permissions::MAKE_CREDENTIAL && !mc_uv_not_required
        }
        _ => pin_set || builtin,
    };
    // alwaysUv (authenticatorConfig): the key refuses every ceremony without UV.
    let always_uv = info.option("alwaysUv") == Some(true);
    let want = want || always_uv;
    let builtin_token = builtin && client.info().option("pinUvAuthToken") == Some(true);
    let may_skip = uv != UserVerification::Required
        && !always_uv
        && (permission == Permissions::GET_ASSERTION || mc_uv_not_required);
    if want && pin.is_none() && !builtin_token && may_skip {
        // UV preferred but no PIN given: user presence is enough for this command.
        return Ok((None, false, Verification::PresenceOnly));
    }
    if want {
        if let Some(token) = client.get_token(rng, pin, permission, Some(rp_id), call).await? {
            let param = token.token.authenticate(client_data_hash);
            let protocol = token.token.protocol().to_u64();
            return Ok((Some((param, protocol)), false, Verification::Token(token.source)));
        }
        if builtin {
            return Ok((None, true, Verification::BuiltInOption));
        }
    }
    if uv == UserVerification::Required || always_uv {
        if always_uv && has_client_pin && !pin_set {
            return Err(CtapError::Unsupported {
                device: client.path().to_owned(),
                what: "this key has alwaysUv on but no PIN: set one with `cablebridge pin set`"
                    .to_owned(),
            });
        }
        if has_client_pin {
            return Err(CtapError::PinRequired { device: client.path().to_owned() });
        }
        return Err(CtapError::Unsupported {
            device: client.path().to_owned(),
            what: "user verification is required but this key has neither a PIN nor built-in UV"
                .to_owned(),
        });
    }
    Ok((None, false, Verification::PresenceOnly))
}

/// makeCredential with user verification handled.
pub async fn register<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    rng: &mut (impl CryptoRngCore + Send),
    mut request: MakeCredentialRequest,
    uv: UserVerification,
    pin: Option<&Pin>,
    call: &mut Call<'_>,
) -> Result<(MakeCredentialResponse, Verification)> {
    let rp_id = request.rp.id.clone();
    let (param, uv_option, how) = verify_user(
        client,
        rng,
        pin,
        uv,
        Permissions::MAKE_CREDENTIAL,
        &rp_id,
        &request.client_data_hash,
        call,
    )
    .await?;
    apply_verification(
        param,
        uv_option,
        &mut request.pin_uv_auth_param,
        &mut request.pin_uv_auth_protocol,
        &mut request.options.uv,
    );
    Ok((client.make_credential(&request, call).await?, how))
}

/// Puts the outcome of [`verify_user`] into a makeCredential or getAssertion request: a token's
/// pinUvAuthParam and protocol, or the built-in `uv` option.
fn apply_verification(
    param: Option<(Vec<u8>, u64)>,
    uv_option: bool,
    auth_param: &mut Option<Vec<u8>>,
    auth_protocol: &mut Option<u64>,
    uv: &mut Option<bool>,
) {
    if let Some((param, protocol)) = param {
        *auth_param = Some(param);
        *auth_protocol = Some(protocol);
        // With a token the "uv" option must be absent (CTAP 2.1 §6.1.2 step 5).
        *uv = None;
    }
    if uv_option {
        *uv = Some(true);
    }
}

/// getAssertion (+ getNextAssertion) with user verification handled.
pub async fn authenticate<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    rng: &mut (impl CryptoRngCore + Send),
    mut request: GetAssertionRequest,
    uv: UserVerification,
    pin: Option<&Pin>,
    call: &mut Call<'_>,
) -> Result<(Vec<GetAssertionResponse>, Verification)> {
    let rp_id = request.rp_id.clone();
    let (param, uv_option, how) = verify_user(
        client,
        rng,
        pin,
        uv,
        Permissions::GET_ASSERTION,
        &rp_id,
        &request.client_data_hash,
        call,
    )
    .await?;
    apply_verification(
        param,
        uv_option,
        &mut request.pin_uv_auth_param,
        &mut request.pin_uv_auth_protocol,
        &mut request.options.uv,
    );
    Ok((client.get_assertion(&request, call).await?, how))
}
