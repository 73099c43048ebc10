//! Real-hardware tier: the design card's independent client, the Rust crate `ctap-hid-fido2`,
//! cross-checks what our CLI does on a **real** key, and each side's signature is verified here
//! (p256, ES256 over `authenticatorData ‖ clientDataHash`) with the public key the *other* side
//! reported, and again by ctap-hid-fido2's own verifier (ring).
//!
//! - `a_credential_our_cli_creates_is_asserted_by_ctap_hid_fido2`: `cablebridge register` on the
//!   key; ctap-hid-fido2's getAssertion with that credential id; the signature verifies under the
//!   COSE key our CLI reported, the rpIdHash is SHA-256 of the RP id and UP is set.
//! - `a_credential_ctap_hid_fido2_creates_is_asserted_by_our_cli`: ctap-hid-fido2's
//!   makeCredential; `cablebridge authenticate --allow-credential ID`; our assertion verifies under
//!   the public key ctap-hid-fido2 returned.
//!
//! python-fido2 does the same through `tests/interop/python_fido2_cross.py`
//! (`python_fido2_cross_real.rs`, which also covers U2F-only keys). ARCHITECTURE.md
//! ("Independent clients") says why neither is our driver.
//!
//! `the_signature_checks_accept_a_good_assertion_and_refuse_another` runs in CI (no key): the
//! verification used below, on a software key. The two cross-checks are `#[ignore]`d (CI has no
//! USB). Procedure (hw-tests/README.md "Cross-check with an independent client"):
//! 1. One CTAP2 (FIDO2) key attached, readable by you (the udev rule; see "Real USB security
//!    keys"). ctap-hid-fido2 speaks CTAP2 only: a U2F-only key is for the python-fido2 test.
//!    Close browsers and other FIDO clients.
//! 2. `cargo build -p cablebridge` (the CLI under test: `target/debug/cablebridge`, or set
//!    `CABLEBRIDGE_BIN`). Building this test needs libudev-dev and pkg-config (hidapi's hidraw
//!    backend; `scripts/test.sh` installs them).
//! 3. `CABLEBRIDGE_HIDRAW=/dev/hidrawN [CABLEBRIDGE_PIN=…] cargo test -p cablebridge-hw-tests
//!    --test ctap_hid_fido2_cross -- --ignored --nocapture`
//! 4. Touch the key each time it blinks: twice per test (one registration, one assertion), four
//!    times in all. The two tests take turns on the key (a lock in this file), so
//!    `--test-threads=1` is not needed.
//!
//! Environment: `CABLEBRIDGE_BIN` (the CLI; default `target/debug/cablebridge` of this
//! workspace), `CABLEBRIDGE_HIDRAW` (default: the only FIDO key attached; with several, set it),
//! `CABLEBRIDGE_PIN` (keys with a PIN: used by both sides; ignored by ctap-hid-fido2 when the key
//! has none), `CABLEBRIDGE_RP_ID` (default `cablebridge.test`). Each test prints what both sides
//! produced. With no key attached both fail at once with "no FIDO key found".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::cose::{CoseAlgorithm, CoseKey};
use ctap_hid_fido2::fidokey::get_assertion::get_assertion_params::Assertion;
use ctap_hid_fido2::fidokey::get_info::InfoOption;
use ctap_hid_fido2::fidokey::{GetAssertionArgsBuilder, MakeCredentialArgsBuilder};
use ctap_hid_fido2::public_key::{PublicKey, PublicKeyType};
use ctap_hid_fido2::public_key_credential_user_entity::PublicKeyCredentialUserEntity;
use ctap_hid_fido2::{verifier, Cfg, FidoKeyHid, FidoKeyHidFactory, HidParam};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};

/// How long a ctap-hid-fido2 call may take, the touch included. Its HID reads have no timeout
/// (a key never touched would hang the test), so each call runs on its own thread and the test
/// fails after this; our CLI bounds itself (`--timeout`, 30 s by default).
const TOUCH_WAIT: Duration = Duration::from_secs(60);

/// One key, one ceremony at a time: the two tests take turns instead of interleaving touches.
static ONE_KEY: Mutex<()> = Mutex::new(());

fn rp_id() -> String {
    std::env::var("CABLEBRIDGE_RP_ID").unwrap_or_else(|_| "cablebridge.test".to_owned())
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A base64url field of our CLI's result line.
fn field(result: &Json, name: &str) -> Vec<u8> {
    let text = result[name].as_str().unwrap_or_else(|| panic!("no {name} in {result}"));
    URL_SAFE_NO_PAD.decode(text).unwrap_or_else(|e| panic!("{name} is not base64url: {e}"))
}

/// The key's hidraw node: `CABLEBRIDGE_HIDRAW`, else the only FIDO key attached. Enumeration
/// only (nothing is opened), so with no key this fails at once, before our CLI would wait for
/// one to be plugged in.
fn key_path() -> String {
    let paths: Vec<String> = ctap_hid_fido2::get_fidokey_devices()
        .into_iter()
        .filter_map(|k| match k.param {
            HidParam::Path(p) => Some(p),
            HidParam::VidPid { .. } => None,
        })
        .collect();
    match std::env::var("CABLEBRIDGE_HIDRAW") {
        Ok(p) => {
            assert!(
                paths.contains(&p),
                "CABLEBRIDGE_HIDRAW={p} is not a FIDO key ctap-hid-fido2 can see (FIDO keys \
                 found: {paths:?}); check the node (hw-tests/README.md, \"Real USB security keys\")"
            );
            p
        }
        Err(_) => match paths.as_slice() {
            [] => panic!(
                "no FIDO key found: ctap-hid-fido2 lists no HID device with the FIDO usage page \
                 (0xF1D0). Attach one CTAP2 security key, readable by you (the udev rule in \
                 hw-tests/README.md), and rerun; CABLEBRIDGE_HIDRAW=/dev/hidrawN picks one."
            ),
            [one] => one.clone(),
            several => panic!(
                "several FIDO keys found ({several:?}): set CABLEBRIDGE_HIDRAW to the one to use"
            ),
        },
    }
}

/// Runs `call` with the key opened by ctap-hid-fido2, on its own thread, bounded by
/// [`TOUCH_WAIT`]. The device is closed before this returns: ctap-hid-fido2 takes any input
/// report as its own (no CID check), so it must not hold the node open while our CLI talks.
fn with_key<T: Send + 'static>(
    path: &str,
    what: &str,
    call: impl FnOnce(&mut FidoKeyHid) -> Result<T, String> + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let param = HidParam::Path(path.to_owned());
    std::thread::spawn(move || {
        let result = FidoKeyHidFactory::create_by_params(
            &[param],
            &Cfg::init().with_keep_alive_msg_to_stderr(true),
        )
        .map_err(|e| format!("cannot open the key: {e} (permissions: the udev rule)"))
        .and_then(|mut dev| call(&mut dev));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(TOUCH_WAIT) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what} on {path}: {e}"),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} on {path}: no answer within {TOUCH_WAIT:?} (was the key touched?)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} on {path}: the call panicked"),
    }
}

/// `CABLEBRIDGE_PIN` when the key has a PIN set (PIN/UV auth protocol 2 when the key offers
/// it); `None` otherwise, and then the call asks for neither PIN nor UV.
fn pin_for(dev: &mut FidoKeyHid) -> Result<Option<String>, String> {
    let Ok(pin) = std::env::var("CABLEBRIDGE_PIN") else {
        return Ok(None);
    };
    match dev.enable_info_option(&InfoOption::ClientPin).map_err(|e| format!("getInfo: {e}"))? {
        Some(true) => {
            dev.set_pin_uv_auth_protocol_two().map_err(|e| format!("getInfo: {e}"))?;
            Ok(Some(pin))
        }
        _ => Ok(None),
    }
}

fn cli_path() -> String {
    let bin = std::env::var("CABLEBRIDGE_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/cablebridge").to_owned()
    });
    assert!(
        Path::new(&bin).is_file(),
        "{bin} does not exist: `cargo build -p cablebridge` first (or set CABLEBRIDGE_BIN)"
    );
    bin
}

/// `cablebridge <args> --transport usb --device PATH --rp-id RP --json --no-daemon`; the PIN
/// comes from `CABLEBRIDGE_PIN`, which the CLI reads itself.
fn ours(path: &str, args: &[&str], what: &str) -> Json {
    let out = Command::new(cli_path())
        .args(args)
        .args(["--transport", "usb", "--device", path, "--rp-id", &rp_id(), "--json"])
        .arg("--no-daemon")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what} failed ({}): {stdout}", out.status);
    let v: Json = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{what}: the last line is not JSON ({e}): {stdout}"));
    eprintln!("{what}: {v}");
    v
}

/// The uncompressed SEC1 point of an ES256 COSE key (what ctap-hid-fido2 calls `der`).
fn es256_point(cose: &[u8]) -> Vec<u8> {
    let key = CoseKey::from_cbor(&Value::decode(cose).unwrap()).unwrap();
    assert_eq!(key.alg(), Some(CoseAlgorithm::Es256), "{key:?}");
    key.as_p256().unwrap().to_encoded_point(false).as_bytes().to_vec()
}

/// The relying party's checks on an assertion, with p256: rpIdHash, UP, and the ES256 signature
/// over `authData ‖ clientDataHash` under `point`; a changed byte must then fail (the check is
/// not vacuous).
fn verify_assertion(rp: &str, point: &[u8], auth_data: &[u8], cdh: &[u8; 32], sig: &[u8]) {
    assert!(auth_data.len() >= 37, "authenticator data too short: {}", auth_data.len());
    assert_eq!(
        auth_data[..32],
        Sha256::digest(rp.as_bytes())[..],
        "rpIdHash is not SHA-256(rp id)"
    );
    assert_ne!(auth_data[32] & 0x01, 0, "user presence (UP) flag not set");
    let key = VerifyingKey::from_sec1_bytes(point).unwrap();
    let sig = Signature::from_der(sig).unwrap();
    let mut message = [auth_data, cdh.as_slice()].concat();
    key.verify(&message, &sig).unwrap_or_else(|e| panic!("ES256 signature does not verify: {e}"));
    message[33] ^= 0x01;
    assert!(key.verify(&message, &sig).is_err(), "a changed counter byte still verified");
}

#[test]
#[ignore = "needs a real CTAP2 key; see the procedure in this file's docs"]
fn a_credential_our_cli_creates_is_asserted_by_ctap_hid_fido2() {
    let _turn = ONE_KEY.lock().unwrap_or_else(PoisonError::into_inner);
    let path = key_path();
    let rp = rp_id();

    eprintln!("touch the key to register (our CLI)…");
    let reg = ours(&path, &["register", "--user-name", "ctap-hid-fido2 cross-check"], "register");
    assert_eq!(reg["verification"]["ok"], true, "{reg}");
    assert_eq!(reg["protocol"], "ctap2", "ctap-hid-fido2 speaks CTAP2 only: {reg}");
    let id = field(&reg, "credential_id");
    let point = es256_point(&field(&reg, "public_key_cose"));

    eprintln!("touch the key to assert (ctap-hid-fido2)…");
    let challenge = verifier::create_challenge();
    let assertions = with_key(&path, "ctap-hid-fido2 getAssertion", {
        let (rp, id) = (rp.clone(), id.clone());
        move |dev| {
            let pin = pin_for(dev)?;
            let args = GetAssertionArgsBuilder::new(&rp, &challenge).credential_id(&id);
            let args = match pin.as_deref() {
                Some(p) => args.pin(p),
                None => args.without_pin_and_uv(),
            };
            dev.get_assertion_with_args(&args.build()).map_err(|e| e.to_string())
        }
    });
    let [assertion] = assertions.as_slice() else {
        panic!("one allowed credential, {} assertions", assertions.len());
    };
    eprintln!("ctap-hid-fido2 getAssertion: {assertion}");
    // CTAP2 lets the key omit the credential when the allow list had one entry.
    assert!(
        assertion.credential_id.is_empty() || assertion.credential_id == id,
        "the key signed with another credential"
    );

    let cdh: [u8; 32] = Sha256::digest(challenge).into();
    verify_assertion(&rp, &point, &assertion.auth_data, &cdh, &assertion.signature);
    let our_key = PublicKey::with_der(&point, PublicKeyType::Ecdsa256);
    assert!(
        verifier::verify_assertion(&rp, &our_key, &challenge, assertion),
        "ctap-hid-fido2's verifier rejects the assertion under the key our CLI reported"
    );
}

#[test]
#[ignore = "needs a real CTAP2 key; see the procedure in this file's docs"]
fn a_credential_ctap_hid_fido2_creates_is_asserted_by_our_cli() {
    let _turn = ONE_KEY.lock().unwrap_or_else(PoisonError::into_inner);
    let path = key_path();
    let rp = rp_id();

    eprintln!("touch the key to register (ctap-hid-fido2)…");
    let challenge = verifier::create_challenge();
    let made = with_key(&path, "ctap-hid-fido2 makeCredential", {
        let rp = rp.clone();
        move |dev| {
            let pin = pin_for(dev)?;
            let user_id = verifier::create_challenge();
            let user = PublicKeyCredentialUserEntity::new(
                Some(&user_id[..16]),
                Some("ctap-hid-fido2"),
                Some("ctap-hid-fido2 cross-check"),
            );
            let args = MakeCredentialArgsBuilder::new(&rp, &challenge).user_entity(&user);
            let args = match pin.as_deref() {
                Some(p) => args.pin(p),
                None => args.without_pin_and_uv(),
            };
            dev.make_credential_with_args(&args.build()).map_err(|e| e.to_string())
        }
    });
    eprintln!("ctap-hid-fido2 makeCredential: {made}");
    assert_eq!(made.rpid_hash, Sha256::digest(rp.as_bytes())[..], "rpIdHash of makeCredential");
    assert!(
        matches!(made.credential_publickey.key_type, PublicKeyType::Ecdsa256),
        "asked for ES256, got {:?}",
        made.credential_publickey.key_type
    );
    let id = made.credential_descriptor.id.clone();
    let point = made.credential_publickey.der.clone();

    eprintln!("touch the key to assert (our CLI)…");
    let id64 = b64url(&id);
    let auth = ours(&path, &["authenticate", "--allow-credential", &id64], "authenticate");
    assert_eq!(auth["credential_id"], id64.as_str(), "{auth}");
    assert_eq!(auth["protocol"], "ctap2", "{auth}");
    let auth_data = field(&auth, "authenticator_data");
    let signature = field(&auth, "signature");
    let client_data_json = field(&auth, "client_data_json");

    let cdh: [u8; 32] = Sha256::digest(&client_data_json).into();
    verify_assertion(&rp, &point, &auth_data, &cdh, &signature);
    // ctap-hid-fido2's verifier hashes its "challenge" into the clientDataHash: for a WebAuthn
    // client that is the client data JSON.
    let ours_as_theirs = Assertion {
        rpid_hash: auth_data[..32].to_vec(),
        auth_data: auth_data.clone(),
        signature,
        ..Assertion::default()
    };
    assert!(
        verifier::verify_assertion(
            &rp,
            &made.credential_publickey,
            &client_data_json,
            &ours_as_theirs
        ),
        "ctap-hid-fido2's verifier rejects our CLI's assertion under its own credential key"
    );
}

/// Runs in CI (no key): the checks above are not vacuous and read both sides' key formats the
/// same way. A software ES256 key signs `authData ‖ clientDataHash`; its COSE encoding (what our
/// CLI reports) becomes the SEC1 point ctap-hid-fido2 uses, and both verifiers (p256 here,
/// ring in ctap-hid-fido2) accept the signature with the challenge hashed the way each side
/// hashes it, while a signature over other data is refused by both.
#[test]
fn the_signature_checks_accept_a_good_assertion_and_refuse_another() {
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::SigningKey;

    let rp = "cablebridge.test";
    let signer = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let cose = CoseKey::es256(p256::PublicKey::from(signer.verifying_key())).to_cbor().to_vec();
    let point = es256_point(&cose);
    assert_eq!(point.len(), 65, "uncompressed SEC1 point");

    let mut auth_data = Sha256::digest(rp.as_bytes()).to_vec();
    auth_data.extend_from_slice(&[0x01, 0, 0, 0, 42]); // UP, counter 42
    let challenge = b"{\"type\":\"webauthn.get\",\"challenge\":\"AAAA\"}";
    let cdh: [u8; 32] = Sha256::digest(challenge).into();
    let sig: Signature = signer.sign(&[auth_data.as_slice(), &cdh].concat());
    let sig = sig.to_der().as_bytes().to_vec();

    verify_assertion(rp, &point, &auth_data, &cdh, &sig);
    let theirs = PublicKey::with_der(&point, PublicKeyType::Ecdsa256);
    let mut assertion = Assertion {
        rpid_hash: auth_data[..32].to_vec(),
        auth_data: auth_data.clone(),
        signature: sig,
        ..Assertion::default()
    };
    assert!(verifier::verify_assertion(rp, &theirs, challenge, &assertion));

    let other: Signature = signer.sign(b"something else");
    assertion.signature = other.to_der().as_bytes().to_vec();
    assert!(!verifier::verify_assertion(rp, &theirs, challenge, &assertion));
    let refused = std::panic::catch_unwind(|| {
        verify_assertion(rp, &point, &auth_data, &cdh, &assertion.signature);
    });
    assert!(refused.is_err(), "p256 accepted a signature over other data");
}
