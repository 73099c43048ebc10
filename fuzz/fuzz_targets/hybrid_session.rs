//! Established hybrid sessions (protocol/src/hybrid/session), past the handshake: a structured
//! target (`arbitrary`) that completes a QR handshake with the transcript's fixed keys, then lets
//! the fuzzer play the peer with the peer's real traffic keys. Each frame's plaintext is the
//! fuzzer's (any type byte, any payload; post-handshake maps, CTAP frames, update/linking maps,
//! with or without a valid linking signature), sealed in order, out of order, replayed, or raw
//! ciphertext; the session under test also acts (sends its CTAP request, shuts down), so every
//! phase of both roles is reached: desktop (`DesktopOpen` → `DesktopAwaitingResponse` →
//! `DesktopClosed`) and phone (`PhoneOpen`).
#![no_main]

use arbitrary::Arbitrary;
use cablebridge_fuzz as fx;
use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::hybrid::crypter::Crypter;
use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridge_protocol::hybrid::messages::{
    encode_padded_update, FrameType, LinkingInfo, PostHandshake,
};
use cablebridge_protocol::hybrid::noise::{self, InitiatorKeys, ResponderKeys};
use cablebridge_protocol::hybrid::session::{
    DesktopAwaitingResponse, DesktopClosed, DesktopHandshake, DesktopOpen, PhoneHandshaken,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum PeerFrame {
    /// Type byte + payload, sealed with the next sequence number.
    Typed { ty: u8, payload: Vec<u8> },
    /// A whole plaintext (no type byte added).
    Plain(Vec<u8>),
    /// An update carrying linking info, signed over this session (or not).
    Linking {
        contact_id: Vec<u8>,
        link_id: [u8; 8],
        name: String,
        good_signature: bool,
        gms: Option<bool>,
    },
    /// Bytes delivered as they are (not sealed).
    Raw(Vec<u8>),
    /// The previous sealed frame again.
    Replay,
    /// Seal a frame but never deliver it (the next arrives out of order).
    Skip,
}

#[derive(Debug, Arbitrary)]
enum Step {
    Peer(PeerFrame),
    /// The session under test sends: the desktop its CTAP request, the phone a response/update.
    Send {
        command: u8,
        payload: Vec<u8>,
    },
    /// Desktop: shutdown. Phone: an update without linking.
    Close,
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// true: fuzz the desktop (the fuzzer is the phone); false: fuzz the phone.
    desktop: bool,
    /// The phone's post-handshake message plaintext (desktop role; None = a valid one).
    post_handshake: Option<Vec<u8>>,
    steps: Vec<Step>,
}

const GET_INFO: &[u8] = &[0xa1, 0x01, 0x81, 0x68, b'F', b'I', b'D', b'O', b'_', b'2', b'_', b'0'];

enum Desktop {
    Open(DesktopOpen),
    Awaiting(DesktopAwaitingResponse),
    Closed(DesktopClosed),
    Gone,
}

/// Seals `plain` as the peer and returns the ciphertext to deliver (None: skipped).
struct Peer {
    crypter: Crypter,
    last: Vec<u8>,
}

impl Peer {
    fn frame(&mut self, f: PeerFrame, link: impl Fn(LinkingInfo) -> Vec<u8>) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let sealed = match f {
            PeerFrame::Typed { ty, payload } => {
                let mut plain = vec![ty];
                plain.extend_from_slice(&payload);
                self.crypter.seal_plain(&plain, &mut out).ok().map(|_| out)
            }
            PeerFrame::Plain(p) => self.crypter.seal_plain(&p, &mut out).ok().map(|_| out),
            PeerFrame::Linking { contact_id, link_id, name, good_signature, gms } => {
                let mut info = LinkingInfo {
                    contact_id,
                    link_id,
                    link_secret: LinkSecret::new([0x42; 32]),
                    phone_public_key: *fx::phone_identity_public(),
                    name,
                    signature: [0; 32],
                    gms_marker: gms,
                };
                let payload = if good_signature {
                    link(info)
                } else {
                    info.signature = [0x55; 32];
                    encode_padded_update(Some(&info))
                };
                self.crypter.seal_frame(FrameType::Update, &payload, &mut out).ok().map(|_| out)
            }
            PeerFrame::Raw(r) => return Some(r),
            PeerFrame::Replay => return Some(self.last.clone()),
            PeerFrame::Skip => {
                let _ = self.crypter.seal_plain(&[2, 0xa0], &mut out);
                return None;
            }
        };
        let sealed = sealed?;
        self.last = sealed.clone();
        Some(sealed)
    }
}

fuzz_target!(|input: Input| {
    let psk = fx::psk();
    let desktop_identity = fx::desktop_identity();
    let desktop_public = desktop_identity.public_key();
    let keys = InitiatorKeys::Qr { desktop_identity };
    let (desktop, msg1) =
        DesktopHandshake::start_with_ephemeral(keys, &psk, fx::key(fx::DESKTOP_EPHEMERAL));
    let phone_keys = ResponderKeys::Qr { desktop_identity: &desktop_public };
    let Ok((phone, msg2)) = PhoneHandshaken::respond_with_ephemeral(
        phone_keys,
        &psk,
        &msg1,
        fx::key(fx::PHONE_EPHEMERAL),
    ) else {
        panic!("fixture handshake failed")
    };
    let steps = input.steps.into_iter().take(64);
    if input.desktop {
        // The peer is the phone: its raw traffic keys from the same deterministic handshake.
        let Ok((phone_raw, _)) =
            noise::respond_with_ephemeral(phone_keys, &psk, &msg1, fx::key(fx::PHONE_EPHEMERAL))
        else {
            panic!("fixture handshake failed")
        };
        let Ok((phone_real, _)) =
            phone.send_post_handshake(&PostHandshake::ctap(GET_INFO.to_vec()))
        else {
            return;
        };
        let signer = fx::key(fx::PHONE_IDENTITY);
        let Ok(signature) = phone_real.linking_signature(&signer) else { return };
        let link = |mut info: LinkingInfo| {
            info.signature = signature;
            encode_padded_update(Some(&info))
        };
        let mut peer = Peer { crypter: phone_raw.crypter, last: Vec::new() };
        let Ok(desktop) = desktop.read_response(&msg2) else { panic!("fixture msg2 refused") };
        let post =
            input.post_handshake.unwrap_or_else(|| PostHandshake::ctap(GET_INFO.to_vec()).encode());
        let mut sealed = Vec::new();
        if peer.crypter.seal_plain(&post, &mut sealed).is_err() {
            return;
        }
        let mut state = match desktop.read_post_handshake(&sealed) {
            Ok(open) => Desktop::Open(open),
            Err(_) => return,
        };
        for step in steps {
            state = match (step, state) {
                (_, Desktop::Gone) => return,
                (Step::Peer(f), mut s) => {
                    if let Some(ct) = peer.frame(f, link) {
                        let failed = match &mut s {
                            Desktop::Open(d) => d.receive(&ct).is_err(),
                            Desktop::Awaiting(d) => d.receive(&ct).is_err(),
                            Desktop::Closed(d) => d.receive(&ct).is_err(),
                            Desktop::Gone => true,
                        };
                        // Errors are fatal: the session must refuse everything after one.
                        if failed {
                            let again = match &mut s {
                                Desktop::Open(d) => d.receive(&ct).is_err(),
                                Desktop::Awaiting(d) => d.receive(&ct).is_err(),
                                Desktop::Closed(d) => d.receive(&ct).is_err(),
                                Desktop::Gone => true,
                            };
                            assert!(again, "a failed session accepted a frame");
                        }
                    }
                    s
                }
                (Step::Send { command, payload }, Desktop::Open(d)) => {
                    match d.send_ctap(Command::from_u8(command), &payload) {
                        Ok((awaiting, _request)) => Desktop::Awaiting(awaiting),
                        Err(_) => Desktop::Gone,
                    }
                }
                (Step::Close, Desktop::Open(d)) => match d.shutdown() {
                    Ok((closed, _)) => Desktop::Closed(closed),
                    Err(_) => Desktop::Gone,
                },
                (Step::Close, Desktop::Awaiting(d)) => match d.shutdown() {
                    Ok((closed, _)) => Desktop::Closed(closed),
                    Err(_) => Desktop::Gone,
                },
                (_, s) => s,
            };
        }
    } else {
        // The peer is the desktop: its raw traffic keys from the same deterministic handshake.
        let (initiator, _) = noise::Initiator::start_with_ephemeral(
            InitiatorKeys::Qr { desktop_identity },
            &psk,
            fx::key(fx::DESKTOP_EPHEMERAL),
        );
        let Ok(desktop_raw) = initiator.read_response(&msg2) else {
            panic!("fixture msg2 refused")
        };
        let mut peer = Peer { crypter: desktop_raw.crypter, last: Vec::new() };
        let Ok((mut phone, _post)) =
            phone.send_post_handshake(&PostHandshake::ctap(GET_INFO.to_vec()))
        else {
            return;
        };
        let no_link = |info: LinkingInfo| encode_padded_update(Some(&info));
        for step in steps {
            match step {
                Step::Peer(f) => {
                    if let Some(ct) = peer.frame(f, no_link) {
                        if phone.receive(&ct).is_err() {
                            assert!(
                                phone.receive(&ct).is_err(),
                                "a failed session accepted a frame"
                            );
                        }
                    }
                }
                Step::Send { command, payload } => {
                    let _ = phone.respond_ctap(StatusCode::from_u8(command), &payload);
                }
                Step::Close => {
                    let _ = phone.send_update(None);
                }
            }
        }
    }
});
