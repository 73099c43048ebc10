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
//! getAssertion with `options.up = false` is refused too (`CTAP2_ERR_UNSUPPORTED_OPTION`): a
//! silent assertion needs no touch, so a desktop could probe the operator's key for credential
//! ids (allowList after allowList) without the person at the bridge ever noticing.
//!
//! Each checked request names its relying party ([`Checked::rp_id`]: `rp.id` of
//! makeCredential, `rpId` of getAssertion) so the operator sees who is asking before touching.
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
    // hmac-secret needs a key agreement the desktop cannot run over hybrid: offer `prf`, which
    // the bridge translates (super::prf).
    if super::prf::can_serve(key) {
        info.extensions.retain(|e| e != "hmac-secret" && e != "hmac-secret-mc");
        if !info.extensions.iter().any(|e| e == "prf") {
            info.extensions.push("prf".to_owned());
        }
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
    /// The relying party the request named, when it could be read.
    pub rp_id: Option<String>,
}

/// A request that may go to the key, and what the operator is shown about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The command.
    pub command: Command,
    /// The relying party it is for (makeCredential `rp.id`, getAssertion `rpId`), if present.
    pub rp_id: Option<String>,
}

/// Longest RP id shown (DNS names are at most 253 characters).
const MAX_SHOWN_RP_ID: usize = 253;

/// The relying party named by a makeCredential (key 2, `rp.id`) or getAssertion (key 1), made
/// safe for a terminal: the desktop chooses these bytes, so control characters are escaped
/// and the length is capped.
fn rp_id(command: Command, map: &Value) -> Option<String> {
    let v = match command {
        Command::MakeCredential => map.get(2)?.get_text("id"),
        Command::GetAssertion => map.get(1),
        _ => None,
    }?;
    let raw = v.as_text()?;
    let mut shown = String::with_capacity(raw.len().min(MAX_SHOWN_RP_ID));
    for c in raw.chars().take(MAX_SHOWN_RP_ID) {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if raw.chars().nth(MAX_SHOWN_RP_ID).is_some() {
        shown.push('…');
    }
    Some(shown)
}

/// Checks one desktop request (`command ‖ CBOR`) before it goes to the key.
pub fn check_request(request: &[u8]) -> Result<Checked, Refusal> {
    let Some((&byte, params)) = request.split_first() else {
        return Err(Refusal {
            status: StatusCode::InvalidLength,
            reason: "empty request".to_owned(),
            rp_id: None,
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
                rp_id: None,
            })
        }
    };
    let Some(key) = pin_param_key.filter(|_| !params.is_empty()) else {
        return Ok(Checked { command, rp_id: None });
    };
    // Lenient decode: the key itself judges the CBOR; we only look at a few fields.
    let map = Value::decode(params).map_err(|e| Refusal {
        status: StatusCode::InvalidCbor,
        reason: format!("{} parameters are not CBOR: {e}", command.name()),
        rp_id: None,
    })?;
    let rp_id = rp_id(command, &map);
    if map.get(key).is_some() {
        return Err(Refusal {
            status: StatusCode::PinAuthInvalid,
            reason: format!(
                "{} carries pinUvAuthParam; PIN/UV auth is never run over hybrid",
                command.name()
            ),
            rp_id,
        });
    }
    // getAssertion options (key 5): `up: false` asks for an assertion without a touch.
    let up = map.get(5).and_then(|o| o.get_text("up")).and_then(Value::as_bool);
    if command == Command::GetAssertion && up == Some(false) {
        return Err(Refusal {
            status: StatusCode::UnsupportedOption,
            reason: "getAssertion asks for no user presence (up: false); the bridge never \
                     signs without a touch (silent requests would let the desktop probe the \
                     key's credential ids)"
                .to_owned(),
            rp_id,
        });
    }
    Ok(Checked { command, rp_id })
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
        let ok = |command, rp: Option<&str>| Ok(Checked { command, rp_id: rp.map(Into::into) });
        assert_eq!(
            check_request(&encode_request(Command::GetAssertion, Some(&plain))),
            ok(Command::GetAssertion, Some("example.com"))
        );
        assert_eq!(check_request(&[0x08]), ok(Command::GetNextAssertion, None));
        assert_eq!(check_request(&[0x0b]), ok(Command::Selection, None));
        let mc = Value::int_map([(2, Value::text_map([("id", Value::text("rp.example"))]))]);
        assert_eq!(
            check_request(&encode_request(Command::MakeCredential, Some(&mc))),
            ok(Command::MakeCredential, Some("rp.example"))
        );
    }

    #[test]
    fn refuses_silent_assertions_but_not_explicit_presence() {
        let ga = |up: Option<bool>| {
            let mut m = vec![(1, Value::text("example.com")), (2, Value::Bytes(vec![0; 32]))];
            if let Some(up) = up {
                m.push((5, Value::text_map([("up", Value::Bool(up))])));
            }
            encode_request(Command::GetAssertion, Some(&Value::int_map(m)))
        };
        let r = check_request(&ga(Some(false))).unwrap_err();
        assert_eq!(r.status, StatusCode::UnsupportedOption);
        assert_eq!(r.rp_id.as_deref(), Some("example.com"));
        assert!(r.reason.contains("up: false"), "{}", r.reason);
        for up in [None, Some(true)] {
            assert_eq!(check_request(&ga(up)).unwrap().command, Command::GetAssertion, "{up:?}");
        }
        // A hostile RP id cannot drive the operator's terminal.
        let evil =
            Value::int_map([(1, Value::text("a\u{1b}[2Jb\n".to_owned() + &"x".repeat(400)))]);
        let shown = check_request(&encode_request(Command::GetAssertion, Some(&evil)))
            .unwrap()
            .rp_id
            .unwrap();
        assert!(shown.starts_with("a\\u{1b}[2Jb\\n"), "{shown}");
        assert!(!shown.chars().any(char::is_control) && shown.chars().count() < 300, "{shown}");
        // makeCredential with up: false is the key's to reject (CTAP2_ERR_INVALID_OPTION).
        let mc = Value::int_map([(7, Value::text_map([("up", Value::Bool(false))]))]);
        assert!(check_request(&encode_request(Command::MakeCredential, Some(&mc))).is_ok());
    }
}
