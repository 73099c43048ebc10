//! CTAP2 requests as an authenticator receives them: the framing and every typed request decoder
//! in protocol/src/ctap2, then the software authenticator (the virtual key's and the virtual
//! phone's CTAP2 engine) handling the same bytes, with and without a PIN set. Whatever the
//! request, the answer is a status byte (+ CBOR) and the store stays importable.
#![no_main]

use cablebridge_protocol::authenticator::{
    AttestationMode, Authenticator, Config, CredentialStore, Ctx, MemoryStore, PersistentState,
    PresenceOutcome, PresencePolicy, Step,
};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    decode_request, ClientPinRequest, Command, CredentialManagementRequest, GetAssertionRequest,
    MakeCredentialRequest,
};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    // Typed decoders, whatever the command byte says.
    if let Ok((cmd, params)) = decode_request(data) {
        let params = params.unwrap_or(Value::Null);
        let _ = MakeCredentialRequest::from_cbor(&params);
        let _ = GetAssertionRequest::from_cbor(&params);
        let _ = ClientPinRequest::from_cbor(&params);
        let _ = CredentialManagementRequest::from_cbor(&params);
        let _ = cmd == Command::GetInfo;
    }

    // The authenticator: the input may hold several requests separated by 0xFF 0xFF 0xFF 0xFF.
    let mut rng = cablebridge_fuzz::rng(3);
    let now = Instant::now();
    let config = Config { attestation: AttestationMode::PackedSelf, ..Config::virtual_key() };
    let store = MemoryStore::new(&mut rng);
    let mut auth = Authenticator::new(config, store, &mut rng, now);
    let mut presence = PresencePolicy::AlwaysApprove;
    let mut t = now;
    for request in split4(data).into_iter().take(16) {
        let mut ctx = Ctx { rng: &mut rng, now: t, presence: &mut presence };
        let response = match auth.handle(request, &mut ctx) {
            Step::Done(r) => r,
            Step::Pending(op) => match auth.complete(op, PresenceOutcome::Approved, &mut ctx) {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        assert!(!response.as_bytes().is_empty(), "a response always has a status byte");
        t += Duration::from_secs(1);
    }
    let exported = auth.store().state().export();
    assert_eq!(
        PersistentState::import(exported.expose()).ok().as_ref(),
        Some(auth.store().state()),
        "the store no longer round-trips"
    );
});

/// Splits on a 4-byte 0xFF marker (never a valid CTAP2 command + CBOR start in practice).
fn split4(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 4 <= data.len() {
        if data[i..i + 4] == [0xff; 4] {
            parts.push(&data[start..i]);
            i += 4;
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&data[start..]);
    parts
}
