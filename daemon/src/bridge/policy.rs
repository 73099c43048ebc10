//! What the bridge lets through between a hybrid desktop and a USB key: the getInfo it
//! announces ([`hybrid_get_info`]) and which requests it forwards ([`check_request`]).
//!
//! PIN/UV auth is never run over hybrid (PROTOCOL-hybrid.md §8.3, §11.2 item 10): phones verify
//! the user themselves, Chrome and Safari never send `pinUvAuthParam` to a hybrid
//! authenticator, and the PIN would have to be typed on the desktop and travel to a key the
//! desktop does not know is a USB key. So the announced getInfo drops `pinUvAuthProtocols` and
//! every option that only makes sense with a PIN/UV token or an authenticator-management
//! channel; requests that carry `pinUvAuthParam`, and commands other than the four a hybrid
//! ceremony uses, are refused with a CTAP status instead of reaching the key.
//!
//! What it is not: a CTAP parser for the forwarded bytes — requests that pass go to the key
//! exactly as the desktop sent them, and the key's answers come back untouched.

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{Command, GetInfo, StatusCode};

/// Options removed from the announced getInfo, and why each cannot work over hybrid.
pub const REMOVED_OPTIONS: &[(&str, &str)] = &[
    ("clientPin", "PIN protocols are not run over hybrid"),
    ("pinUvAuthToken", "no PIN/UV auth token can be obtained over hybrid"),
    ("noMcGaPermissionsWithClientPin", "PIN permissions are not used over hybrid"),
    ("credMgmt", "credential management needs a PIN/UV auth token"),
    ("credentialMgmtPreview", "credential management needs a PIN/UV auth token"),
    ("bioEnroll", "enrollment needs a PIN/UV auth token"),
    ("userVerificationMgmtPreview", "enrollment needs a PIN/UV auth token"),
    ("authnrCfg", "authenticatorConfig needs a PIN/UV auth token"),
    ("largeBlobs", "largeBlobs writes need a PIN/UV auth token"),
    ("setMinPINLength", "PIN policy is not managed over hybrid"),
];

/// The getInfo the desktop sees: the key's own (versions, AAGUID, algorithms, extensions,
/// limits) minus PIN/UV-auth machinery, with `"hybrid"` added to the transports.
pub fn hybrid_get_info(key: &GetInfo) -> GetInfo {
    let mut info = key.clone();
    info.pin_uv_auth_protocols.clear();
    info.options.retain(|(name, _)| !REMOVED_OPTIONS.iter().any(|(n, _)| n == name));
    // PIN-policy fields describe a PIN the desktop can neither set nor use.
    info.force_pin_change = None;
    info.min_pin_length = None;
    info.max_rpids_for_set_min_pin_length = None;
    info.max_serialized_large_blob_array = None;
    if !info.transports.iter().any(|t| t == "hybrid") {
        info.transports.push("hybrid".to_owned());
    }
    info
}

/// The names of the options [`hybrid_get_info`] removed from `key`'s getInfo.
pub fn removed_options(key: &GetInfo) -> Vec<String> {
    key.options
        .iter()
        .filter(|(name, _)| REMOVED_OPTIONS.iter().any(|(n, _)| n == name))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether the key will refuse makeCredential without a PIN/UV auth token (which the bridge
/// can never supply): a PIN is set and the key either always wants UV or does not waive it
/// for makeCredential (CTAP 2.1 §6.1.2 step 6, `makeCredUvNotRqd`), and it has no built-in UV.
pub fn needs_pin_for_make_credential(key: &GetInfo) -> bool {
    let built_in_uv = key.option("uv") == Some(true);
    let pin_set = key.option("clientPin") == Some(true);
    let always_uv = key.option("alwaysUv") == Some(true);
    let waived = key.option("makeCredUvNotRqd") == Some(true);
    !built_in_uv && pin_set && (always_uv || !waived)
}

/// Why a request is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The CTAP status the desktop gets.
    pub status: StatusCode,
    /// Why, for the operator's log.
    pub reason: String,
}

/// Checks one desktop request (`command ‖ CBOR`) before it goes to the key.
pub fn check_request(request: &[u8]) -> Result<Command, Refusal> {
    let Some((&byte, params)) = request.split_first() else {
        return Err(Refusal {
            status: StatusCode::InvalidLength,
            reason: "empty request".to_owned(),
        });
    };
    let command = Command::from_u8(byte);
    // CTAP 2.1 key numbers of pinUvAuthParam in each request map.
    let pin_param_key = match command {
        Command::MakeCredential => Some(8),
        Command::GetAssertion => Some(6),
        Command::GetNextAssertion | Command::Selection => None,
        other => {
            return Err(Refusal {
                status: StatusCode::InvalidCommand,
                reason: format!(
                    "{} is not forwarded over hybrid (only makeCredential, getAssertion, \
                     getNextAssertion and selection are)",
                    other.name()
                ),
            })
        }
    };
    if let (Some(key), false) = (pin_param_key, params.is_empty()) {
        // Lenient decode: the key itself judges the CBOR; we only look for key `key`.
        let map = Value::decode(params).map_err(|e| Refusal {
            status: StatusCode::InvalidCbor,
            reason: format!("{} parameters are not CBOR: {e}", command.name()),
        })?;
        if map.get(key).is_some() {
            return Err(Refusal {
                status: StatusCode::PinAuthInvalid,
                reason: format!(
                    "{} carries pinUvAuthParam; PIN/UV auth is never run over hybrid",
                    command.name()
                ),
            });
        }
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cablebridge_protocol::ctap2::framing::encode_request;

    fn key_info() -> GetInfo {
        GetInfo {
            versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
            aaguid: [7; 16],
            options: [
                ("rk", true),
                ("up", true),
                ("clientPin", true),
                ("pinUvAuthToken", true),
                ("credMgmt", true),
                ("bioEnroll", false),
                ("authnrCfg", true),
                ("largeBlobs", true),
            ]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), *v))
            .collect(),
            pin_uv_auth_protocols: vec![2, 1],
            transports: vec!["usb".into()],
            min_pin_length: Some(4),
            ..GetInfo::default()
        }
    }

    #[test]
    fn get_info_drops_pin_machinery_and_adds_hybrid() {
        let key = key_info();
        let info = hybrid_get_info(&key);
        assert!(info.pin_uv_auth_protocols.is_empty());
        let names: Vec<_> = info.options.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rk", "up"]);
        assert_eq!(info.transports, ["usb", "hybrid"]);
        assert_eq!(info.aaguid, key.aaguid);
        assert_eq!(info.versions, key.versions);
        assert_eq!(info.min_pin_length, None);
        // The announced getInfo survives the CBOR round trip the desktop does.
        let back = GetInfo::from_cbor(&info.to_cbor()).unwrap();
        assert_eq!(back, info);
        assert_eq!(
            removed_options(&key),
            ["clientPin", "pinUvAuthToken", "credMgmt", "bioEnroll", "authnrCfg", "largeBlobs"]
        );
        // Idempotent: "hybrid" is not added twice.
        assert_eq!(hybrid_get_info(&info).transports, ["usb", "hybrid"]);
    }

    #[test]
    fn pin_requirement_follows_ctap_2_1_rules() {
        let mut key = key_info();
        assert!(needs_pin_for_make_credential(&key));
        key.options.push(("makeCredUvNotRqd".into(), true));
        assert!(!needs_pin_for_make_credential(&key));
        key.options.push(("alwaysUv".into(), true));
        assert!(needs_pin_for_make_credential(&key));
        let mut no_pin = key_info();
        no_pin.options.retain(|(n, _)| n != "clientPin");
        no_pin.options.push(("clientPin".into(), false));
        assert!(!needs_pin_for_make_credential(&no_pin));
    }

    #[test]
    fn refuses_pin_auth_and_management_commands() {
        let with_pin = Value::int_map([(1, Value::Bytes(vec![0; 32])), (6, Value::Bytes(vec![]))]);
        let r = check_request(&encode_request(Command::GetAssertion, Some(&with_pin))).unwrap_err();
        assert_eq!(r.status, StatusCode::PinAuthInvalid);
        assert!(r.reason.contains("pinUvAuthParam"), "{}", r.reason);

        let mc = Value::int_map([(8, Value::Bytes(vec![1; 16]))]);
        let r = check_request(&encode_request(Command::MakeCredential, Some(&mc))).unwrap_err();
        assert_eq!(r.status, StatusCode::PinAuthInvalid);

        for cmd in [Command::ClientPin, Command::Reset, Command::CredentialManagement] {
            let r = check_request(&encode_request(cmd, None)).unwrap_err();
            assert_eq!(r.status, StatusCode::InvalidCommand, "{cmd:?}");
        }
        assert_eq!(check_request(&[]).unwrap_err().status, StatusCode::InvalidLength);
        assert_eq!(
            check_request(&[0x02, 0xff]).unwrap_err().status,
            StatusCode::InvalidCbor,
            "garbage parameters"
        );

        let plain = Value::int_map([(1, Value::Text("example.com".into()))]);
        assert_eq!(
            check_request(&encode_request(Command::GetAssertion, Some(&plain))),
            Ok(Command::GetAssertion)
        );
        assert_eq!(check_request(&[0x08]), Ok(Command::GetNextAssertion));
        assert_eq!(check_request(&[0x0b]), Ok(Command::Selection));
    }
}
