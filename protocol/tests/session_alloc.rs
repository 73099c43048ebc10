//! A whole established phone session exchanging frames allocates nothing per frame: after a
//! warm-up, 500 CTAP requests are opened by `PhoneOpen::receive_borrowed` (the session's reusable
//! scratch) and answered by `PhoneOpen::respond_ctap_into` (a reused output buffer), with the
//! desktop's side sealing and opening in place, under a counting global allocator. (The
//! crypter-only version of this proof is `crypter_alloc.rs`.) The desktop side of the same
//! session seals its CTAP request with `DesktopOpen::send_ctap_into` into a reused buffer,
//! without allocating.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not peer input

use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::hybrid::crypter::sealed_len;
use cablebridge_protocol::hybrid::keys::{KeyPurpose, Psk, QrSecret};
use cablebridge_protocol::hybrid::messages::PostHandshake;
use cablebridge_protocol::hybrid::noise::{IdentityKeyPair, Initiator, InitiatorKeys};
use cablebridge_protocol::hybrid::session::{
    DesktopEvent, DesktopHandshake, PhoneFrame, PhoneHandshaken,
};
use p256::SecretKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

mod alloc_support;
use alloc_support::allocations;

const MAX_BODY: usize = 4096;

#[test]
fn established_phone_session_allocates_nothing_per_frame() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let secret = QrSecret::random(&mut rng);
    let psk = Psk::new(cablebridge_protocol::hybrid::keys::derive_array(
        secret.expose(),
        &[0u8; 16],
        KeyPurpose::Psk,
    ));
    let (initiator, msg1) =
        Initiator::start(InitiatorKeys::Qr { desktop_identity: &identity }, &psk, &mut rng);
    let (phone, msg2) =
        PhoneHandshaken::respond_qr(&psk, &identity.public_key(), &msg1, &mut rng).unwrap();
    let mut desktop = initiator.read_response(&msg2).unwrap().crypter;
    let (mut phone, mut post) =
        phone.send_post_handshake(&PostHandshake::ctap(vec![0xa0])).unwrap();
    desktop.open_in_place(&mut post).unwrap();

    // Buffers of each side, grown once to the largest frame (warm-up below).
    let mut request = vec![0u8; sealed_len(MAX_BODY + 2)];
    let mut response: Vec<u8> = Vec::with_capacity(sealed_len(MAX_BODY + 2));
    let body = vec![0x5au8; MAX_BODY];
    let mut exchange = |len: usize, count: bool| {
        // Desktop: `[0x01] ‖ command ‖ params`, sealed in place.
        request[0] = 0x01;
        request[1] = 0x02;
        request[2..2 + len].fill(0xa0);
        let n = desktop.seal_in_place(&mut request, 2 + len).unwrap();
        let before = allocations();
        let params_len = match phone.receive_borrowed(&request[..n]).unwrap() {
            PhoneFrame::CtapRequest { command: Command::GetAssertion, params } => params.len(),
            other => panic!("{other:?}"),
        };
        phone.respond_ctap_into(StatusCode::Ok, &body[..len], &mut response).unwrap();
        let during = allocations() - before;
        assert_eq!(params_len, len);
        let m = desktop.open_in_place(&mut response).unwrap();
        assert_eq!(&response[..2], &[0x01, 0x00]);
        assert_eq!(m, len + 2);
        if count {
            assert_eq!(during, 0, "allocations for a {len}-byte exchange");
        }
        during
    };
    // Warm-up: the largest frame grows the phone's scratch and the response buffer once.
    exchange(MAX_BODY, false);
    let total: usize = (0..500).map(|i| exchange((i * 977) % MAX_BODY, true)).sum();
    assert_eq!(total, 0);
}

#[test]
fn desktop_request_is_sealed_into_a_reused_buffer_without_allocating() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let secret = QrSecret::random(&mut rng);
    let psk = Psk::new(cablebridge_protocol::hybrid::keys::derive_array(
        secret.expose(),
        &[0u8; 16],
        KeyPurpose::Psk,
    ));
    // The desktop's request buffer, grown once to the largest request (one per connection).
    let mut out: Vec<u8> = Vec::with_capacity(sealed_len(MAX_BODY + 2));
    let params = vec![0xa0u8; MAX_BODY];
    let mut response = Vec::with_capacity(sealed_len(MAX_BODY + 2));
    for (round, len) in [MAX_BODY, 0, 1, 31, 977, MAX_BODY - 1].into_iter().enumerate() {
        let (desktop, msg1) = DesktopHandshake::start_qr(&psk, &identity, &mut rng);
        let (phone, msg2) =
            PhoneHandshaken::respond_qr(&psk, &identity.public_key(), &msg1, &mut rng).unwrap();
        let desktop = desktop.read_response(&msg2).unwrap();
        let (mut phone, post) =
            phone.send_post_handshake(&PostHandshake::ctap(vec![0xa0])).unwrap();
        let open = desktop.read_post_handshake(&post).unwrap();

        let before = allocations();
        let mut awaiting =
            open.send_ctap_into(Command::GetAssertion, &params[..len], &mut out).unwrap();
        let during = allocations() - before;
        assert_eq!(during, 0, "round {round}: allocations sealing a {len}-byte request");

        // The phone reads exactly the request the desktop meant, and its answer comes back.
        match phone.receive_borrowed(&out).unwrap() {
            PhoneFrame::CtapRequest { command: Command::GetAssertion, params: got } => {
                assert_eq!(got, &params[..len])
            }
            other => panic!("{other:?}"),
        }
        phone.respond_ctap_into(StatusCode::Ok, &params[..len], &mut response).unwrap();
        match awaiting.receive(&response).unwrap() {
            DesktopEvent::CtapResponse { status: StatusCode::Ok, body } => {
                assert_eq!(body, &params[..len])
            }
            other => panic!("{other:?}"),
        }
    }
}
