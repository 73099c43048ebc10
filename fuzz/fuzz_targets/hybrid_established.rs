//! Established hybrid sessions without the handshake: like `hybrid_session`, but the session
//! under test is built from fixed traffic keys and a fixed handshake hash
//! (`from_established_for_tests`), so an input costs a few AES-GCM operations instead of a
//! P-256 handshake (which held `hybrid_session` to ~460 execs/s). The fuzzer plays the peer
//! with the matching keys: typed and untyped frames, post-handshake messages, update/linking maps
//! with good and bad signatures, raw bytes, replays and skipped frames, QR and linked sessions
//! (linked: linking info must be refused), and counters started just below the 2^24-frame limit
//! so sequence exhaustion is reached. Checks: an error is fatal (nothing is accepted after one);
//! what the session seals opens under the peer's keys; linking info is never sent in a linked
//! session.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use cablebridge_fuzz as fx;
use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::hybrid::crypter::{Crypter, MAX_SEQUENCE};
use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridge_protocol::hybrid::messages::{
    encode_padded_update, FrameType, LinkingInfo, PostHandshake,
};
use cablebridge_protocol::hybrid::session::{
    DesktopAwaitingPostHandshake, DesktopAwaitingResponse, DesktopClosed, DesktopOpen,
    PhoneHandshaken,
};
use libfuzzer_sys::fuzz_target;
use p256::{PublicKey, SecretKey};

/// Traffic keys and handshake hash of "a" completed handshake: any values do, both ends agree.
const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];
const HANDSHAKE_HASH: [u8; 32] = [0x33; 32];

struct Fixed {
    qr_private: SecretKey,
    qr_public: PublicKey,
    phone_public: PublicKey,
    /// The phone's linking signature over HANDSHAKE_HASH (one ECDH, computed once).
    signature: [u8; 32],
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let qr_private = fx::key(fx::QR_PRIVATE);
        let qr_public = qr_private.public_key();
        let phone_identity = fx::key(fx::PHONE_IDENTITY);
        let phone_public = phone_identity.public_key();
        let signature = LinkingInfo::sign(&phone_identity, &qr_public, &HANDSHAKE_HASH);
        Fixed { qr_private, qr_public, phone_public, signature }
    })
}

#[derive(Debug, Arbitrary)]
enum PeerFrame {
    /// Type byte + payload, sealed with the next sequence number.
    Typed { ty: u8, payload: Vec<u8> },
    /// A whole plaintext (no type byte added).
    Plain(Vec<u8>),
    /// A CTAP frame (type 1) with a status/command byte and a CBOR-ish body.
    Ctap { first: u8, body: Vec<u8> },
    /// An update carrying linking info, signed over this session (or not).
    Linking { contact_id: Vec<u8>, link_id: [u8; 8], name: String, good_signature: bool },
    /// An update without linking info (padding only).
    EmptyUpdate,
    /// A shutdown frame.
    Shutdown,
    /// Bytes delivered as they are (not sealed).
    Raw(Vec<u8>),
    /// The previous sealed frame again.
    Replay,
    /// The previous sealed frame with one bit flipped.
    Flip { at: u16, bit: u8 },
    /// Seal a frame but never deliver it (the next arrives out of order).
    Skip,
}

#[derive(Debug, Arbitrary)]
enum Step {
    Peer(PeerFrame),
    /// The session under test sends: the desktop its CTAP request, the phone a response.
    Send {
        command: u8,
        payload: Vec<u8>,
    },
    /// Desktop: shutdown. Phone: an update (with linking info when `link`).
    Close {
        link: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// true: fuzz the desktop (the fuzzer is the phone); false: fuzz the phone.
    desktop: bool,
    /// A QR session (linking allowed) or a linked one (linking info refused).
    qr: bool,
    /// Start both directions' counters this far below MAX_SEQUENCE (None: at 0).
    near_wrap: Option<u8>,
    /// The phone's post-handshake message plaintext (desktop role; None = a valid one).
    post_handshake: Option<Vec<u8>>,
    steps: Vec<Step>,
}

const GET_INFO: &[u8] = &[0xa1, 0x01, 0x81, 0x68, b'F', b'I', b'D', b'O', b'_', b'2', b'_', b'0'];

/// Seals as the peer; remembers the last sealed frame for replays.
struct Peer {
    crypter: Crypter,
    last: Vec<u8>,
}

impl Peer {
    fn seal(&mut self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.crypter.seal_plain(plain, &mut out).ok()?;
        self.last.clone_from(&out);
        Some(out)
    }

    fn frame(&mut self, f: PeerFrame, qr: bool) -> Option<Vec<u8>> {
        match f {
            PeerFrame::Typed { ty, payload } => self.seal(&[&[ty][..], &payload].concat()),
            PeerFrame::Plain(p) => self.seal(&p),
            PeerFrame::Ctap { first, body } => {
                self.seal(&[&[FrameType::Ctap as u8, first][..], &body].concat())
            }
            PeerFrame::Linking { contact_id, link_id, name, good_signature } => {
                let fx = fixed();
                let info = LinkingInfo {
                    contact_id,
                    link_id,
                    link_secret: LinkSecret::new([0x42; 32]),
                    phone_public_key: fx.phone_public,
                    name,
                    signature: if good_signature && qr { fx.signature } else { [0x55; 32] },
                    gms_marker: None,
                };
                let update = encode_padded_update(Some(&info));
                self.seal(&[&[FrameType::Update as u8][..], &update].concat())
            }
            PeerFrame::EmptyUpdate => {
                self.seal(&[&[FrameType::Update as u8][..], &encode_padded_update(None)].concat())
            }
            PeerFrame::Shutdown => self.seal(&[FrameType::Shutdown as u8]),
            PeerFrame::Raw(r) => Some(r),
            PeerFrame::Replay => Some(self.last.clone()),
            PeerFrame::Flip { at, bit } => {
                let mut f = self.last.clone();
                let n = f.len();
                if let Some(b) = f.get_mut(usize::from(at) % n.max(1)) {
                    *b ^= 1 << (bit % 8);
                }
                Some(f)
            }
            PeerFrame::Skip => {
                let _ = self.seal(&[FrameType::Update as u8, 0xa0]);
                None
            }
        }
    }
}

/// The session's own crypter and the peer's, counters optionally near the limit.
fn crypters(desktop: bool, near_wrap: Option<u8>) -> (Crypter, Crypter) {
    let (mut desk, mut phone) = (Crypter::new(&K1, &K2), Crypter::new(&K2, &K1));
    if let Some(back) = near_wrap {
        let start = MAX_SEQUENCE.saturating_sub(u32::from(back % 16));
        desk.set_sequences_for_tests(start, start);
        phone.set_sequences_for_tests(start, start);
    }
    if desktop {
        (desk, phone)
    } else {
        (phone, desk)
    }
}

enum Desktop {
    Open(DesktopOpen),
    Awaiting(DesktopAwaitingResponse),
    Closed(DesktopClosed),
    Gone,
}

impl Desktop {
    /// Delivers a frame; an error must be final.
    fn deliver(&mut self, ct: &[u8]) {
        let receive = |s: &mut Desktop| match s {
            Desktop::Open(d) => d.receive(ct).is_err(),
            Desktop::Awaiting(d) => d.receive(ct).is_err(),
            Desktop::Closed(d) => d.receive(ct).is_err(),
            Desktop::Gone => true,
        };
        if receive(self) {
            assert!(receive(self), "a failed desktop session accepted a frame");
        }
    }
}

fn fuzz_desktop(input: Input) {
    let fx = fixed();
    let (mine, theirs) = crypters(true, input.near_wrap);
    let qr_identity = input.qr.then(|| fx.qr_private.clone());
    let session =
        DesktopAwaitingPostHandshake::from_established_for_tests(mine, HANDSHAKE_HASH, qr_identity);
    let mut peer = Peer { crypter: theirs, last: Vec::new() };
    let post =
        input.post_handshake.unwrap_or_else(|| PostHandshake::ctap(GET_INFO.to_vec()).encode());
    let Some(sealed) = peer.seal(&post) else { return };
    let mut state = match session.read_post_handshake(&sealed) {
        Ok(open) => Desktop::Open(open),
        Err(_) => return,
    };
    for step in input.steps.into_iter().take(64) {
        state = match (step, state) {
            (_, Desktop::Gone) => return,
            (Step::Peer(f), mut s) => {
                if let Some(ct) = peer.frame(f, input.qr) {
                    s.deliver(&ct);
                }
                s
            }
            (Step::Send { command, payload }, Desktop::Open(d)) => {
                match d.send_ctap(Command::from_u8(command), &payload) {
                    Ok((awaiting, request)) => {
                        // What the desktop sealed opens under the peer's keys.
                        let mut opened = request.clone();
                        assert!(
                            peer.crypter.open_in_place(&mut opened).is_ok(),
                            "the desktop's request does not open with the phone's keys"
                        );
                        Desktop::Awaiting(awaiting)
                    }
                    Err(_) => Desktop::Gone,
                }
            }
            (Step::Close { .. }, Desktop::Open(d)) => match d.shutdown() {
                Ok((closed, _)) => Desktop::Closed(closed),
                Err(_) => Desktop::Gone,
            },
            (Step::Close { .. }, Desktop::Awaiting(d)) => match d.shutdown() {
                Ok((closed, _)) => Desktop::Closed(closed),
                Err(_) => Desktop::Gone,
            },
            (_, s) => s,
        };
    }
}

fn fuzz_phone(input: Input) {
    let fx = fixed();
    let (mine, theirs) = crypters(false, input.near_wrap);
    let desktop_qr = input.qr.then_some(fx.qr_public);
    let session = PhoneHandshaken::from_established_for_tests(mine, HANDSHAKE_HASH, desktop_qr);
    let mut peer = Peer { crypter: theirs, last: Vec::new() };
    let Ok((mut phone, post)) =
        session.send_post_handshake(&PostHandshake::ctap(GET_INFO.to_vec()))
    else {
        return;
    };
    let mut opened = post.clone();
    assert!(peer.crypter.open_in_place(&mut opened).is_ok(), "post-handshake does not open");
    for step in input.steps.into_iter().take(64) {
        match step {
            Step::Peer(f) => {
                if let Some(ct) = peer.frame(f, input.qr) {
                    if phone.receive(&ct).is_err() {
                        assert!(
                            phone.receive(&ct).is_err(),
                            "a failed phone session accepted a frame"
                        );
                    }
                }
            }
            Step::Send { command, payload } => {
                let _ = phone.respond_ctap(StatusCode::from_u8(command), &payload);
            }
            Step::Close { link } => {
                let info = link.then(|| LinkingInfo {
                    contact_id: vec![1, 2, 3],
                    link_id: [7; 8],
                    link_secret: LinkSecret::new([0x42; 32]),
                    phone_public_key: fx.phone_public,
                    name: "fuzz".into(),
                    signature: fx.signature,
                    gms_marker: None,
                });
                // Linking info is refused in linked sessions.
                let sent = phone.send_update(info.as_ref());
                if link && !input.qr {
                    assert!(sent.is_err(), "linking info sent in a linked session");
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    if input.desktop {
        fuzz_desktop(input)
    } else {
        fuzz_phone(input)
    }
});
