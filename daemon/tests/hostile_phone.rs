//! Hostile peers in a hybrid ceremony (issue 14, "Hostile-peer and fault suite", phone side).
//!
//! A hostile phone against our desktop role (`cablebridged::ceremony::run`), through the real
//! tunnel server on loopback, adverts through the desktop's Unix datagram source. The phone is
//! written here by hand from the protocol crate's pieces (EID seal, Noise responder, `Crypter`),
//! so it can do what the virtual phone never does: answer with a PSK that does not match its
//! advert, replay / reorder / truncate sealed frames, seal at sequence numbers that wrap, send
//! frames at and over 1 MiB, send a shutdown, answer with the wrong frame type, or stay silent.
//! Each case asserts the typed [`CeremonyError`] (stage, kind, fault) and that it arrives
//! before the case's bound. A flood of 10,000 random adverts per second runs while a real
//! ceremony is pending; the real one still completes.
//!
//! Then the mirror image, where it is cheap: a hand-made hostile desktop against the virtual
//! phone (wrong PSK, garbage after the handshake, an oversize frame), asserting the phone's
//! typed `PhoneError` and its stage.
//!
//! The cases run one at a time (a file-wide lock) so the process's descriptor count can be
//! compared with its value before each case: every case ends with the count back at (or
//! under) its baseline. Timings are printed (`-- --nocapture`), never asserted beyond the bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cablebridge_protocol::ctap2::GetInfo;
use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::crypter::{Crypter, MAX_SEQUENCE};
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, EidPlaintext, OpenedAdvert};
use cablebridge_protocol::hybrid::keys::QrSecret;
use cablebridge_protocol::hybrid::messages::{FrameType, PostHandshake};
use cablebridge_protocol::hybrid::noise::{self, InitiatorKeys, ResponderKeys};
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::DesktopHandshake;
use cablebridge_protocol::hybrid::tunnel::{
    url, RequestHint, RoutingId, TunnelPath, MAX_MESSAGE_LEN, ROUTING_ID_HEADER, SUBPROTOCOL,
};
use cablebridge_protocol::Stage;
use cablebridged::ceremony::{
    CeremonyError, CeremonyErrorKind, CeremonyOutcome, CeremonyRequest, CeremonyStage,
    HybridTransport, RegisterOptions, Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::phone::{PhoneError, PhoneState, SessionSummary, VirtualPhone};
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use common::{desktop_config, next_advert, phone_config, socket_count as fd_count};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::OsRng;
use rand::RngCore;
use tokio::net::{TcpStream, UnixDatagram};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

/// The desktop's handshake timeout (message 2 and the post-handshake message) in these cases.
const HANDSHAKE: Duration = Duration::from_secs(2);
/// The desktop's timeout for the phone's answer.
const USER: Duration = Duration::from_secs(2);
/// The desktop's advert timeout.
const ADVERT: Duration = Duration::from_secs(2);
/// Upper bound for one case (ceremony + hostile peer), well past every stage timeout above.
const BOUND: Duration = Duration::from_secs(10);

/// One case at a time: the descriptor baseline is per process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What each open descriptor points at (for the leak message).
fn fd_targets() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect()
}

struct Rig {
    server: TunnelServerHandle,
    dir: tempfile::TempDir,
    fds: usize,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Rig {
    async fn new() -> Rig {
        let serial = SERIAL.lock().await;
        let fds = fd_count();
        let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
        Rig { server, dir: tempfile::tempdir().unwrap(), fds, _serial: serial }
    }

    fn adverts(&self) -> PathBuf {
        self.dir.path().join("adverts.sock")
    }

    fn desktop(&self) -> DesktopConfig {
        let mut c = desktop_config(self.server.base_url(), self.adverts());
        c.timeouts.advert = ADVERT;
        c.timeouts.handshake = HANDSHAKE;
        c.timeouts.user = USER;
        c.timeouts.late_updates = Duration::from_millis(200);
        c
    }

    fn peer(&self) -> Peer {
        Peer { base: self.server.base_url(), adverts: self.adverts() }
    }

    /// Shuts the server down and waits (bounded) for the descriptor count to return.
    async fn finish(self) {
        self.server.shutdown().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while fd_count() > self.fds {
            if Instant::now() > deadline {
                panic!(
                    "descriptors leaked: {} open, {} before the case: {:?}",
                    fd_count(),
                    self.fds,
                    fd_targets()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What a hand-made phone needs: where the tunnel server is and where the desktop listens for
/// adverts.
#[derive(Clone)]
struct Peer {
    base: String,
    adverts: PathBuf,
}

fn register() -> CeremonyRequest {
    CeremonyRequest::Register(RegisterOptions::new("example.com", "alice@example.com"))
}

/// Runs one desktop ceremony against `phone`; returns its error and how long it took.
async fn case<F, Fut>(rig: &Rig, config: DesktopConfig, name: &str, phone: F) -> CeremonyError
where
    F: FnOnce(QrPayload, Peer) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let mut log = EventLog::new();
    let peer = rig.peer();
    let transport = Transport::Hybrid(HybridTransport::new(config));
    let (result, _) =
        timeout(BOUND, with_phone(transport, register(), &mut log, |qr| phone(qr, peer)))
            .await
            .unwrap_or_else(|_| panic!("{name}: the ceremony outlived its bound {BOUND:?}"));
    let e = match result {
        Err(e) => e,
        Ok(o) => panic!("{name}: the desktop accepted a hostile phone: {o:?}"),
    };
    println!(
        "hostile phone / {name}: {} {} ({:?}) after {} ms: {}",
        e.stage.as_str(),
        e.kind.as_str(),
        e.fault,
        started.elapsed().as_millis(),
        e.message
    );
    e
}

fn assert_typed(e: &CeremonyError, stage: CeremonyStage, kind: CeremonyErrorKind, what: &str) {
    assert_eq!((e.stage, e.kind), (stage, kind), "{what}: {e}");
    assert_eq!(e.fault, Fault::Peer, "{what}: a hostile phone is the peer's fault: {e}");
}

/// A raw tunnel WebSocket: unlike the tunnel client it sends whatever it is given (text,
/// more than 1 MiB), which is the point of a hostile peer.
type Ws = WebSocketStream<TcpStream>;

async fn raw_connect(base: &str, path: &TunnelPath) -> (Ws, Option<RoutingId>) {
    let mut req = url(base, path).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    let host = req.uri().authority().unwrap().as_str().to_owned();
    let stream = TcpStream::connect(host).await.unwrap();
    let config =
        WebSocketConfig::default().max_message_size(Some(4 << 20)).max_frame_size(Some(4 << 20));
    let (ws, response) = client_async_with_config(req, stream, Some(config)).await.unwrap();
    let routing = response
        .headers()
        .get(ROUTING_ID_HEADER)
        .and_then(|v| RoutingId::parse_hex(v.to_str().ok()?).ok());
    (ws, routing)
}

/// The next binary message, `None` when the tunnel closed (or after `BOUND`).
async fn raw_recv(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        match timeout(BOUND, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => return Some(b.to_vec()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// A phone written by hand: everything up to the chosen misbehaviour is done correctly.
struct Hostile {
    conn: Ws,
    crypter: Crypter,
}

/// How the phone keys its Noise response.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keying {
    /// The PSK of the advert it broadcast (as a real phone does).
    Honest,
    /// No PSK: message 1 authenticates under the PSK, so a phone without it cannot even read
    /// message 1; the best it can send is a forged message 2 (a valid ephemeral point and a
    /// tag it cannot compute).
    WrongPsk,
}

fn eid(routing: RoutingId) -> EidPlaintext {
    let mut nonce = [0u8; 10];
    OsRng.fill_bytes(&mut nonce);
    EidPlaintext::new(nonce, routing, 0)
}

/// Opens `/cable/new` for the QR's tunnel and broadcasts `seal(plaintext)` under `secret` every
/// 20 ms until message 1 arrives (or `within` passes).
async fn advertise(
    peer: &Peer,
    qr: &QrPayload,
    secret: &QrSecret,
    within: Duration,
) -> (Ws, EidPlaintext, Option<Vec<u8>>) {
    let path = TunnelPath::New { tunnel_id: qr.tunnel_id() };
    let (mut conn, routing) = raw_connect(&peer.base, &path).await;
    let routing = routing.expect("the server assigns a routing id");
    let plaintext = eid(routing);
    let advert = EidKey::from_qr_secret(secret).seal(&plaintext);
    let line = format!("{}\n", hex::encode(advert));
    let sock = UnixDatagram::unbound().unwrap();
    let deadline = tokio::time::sleep(within);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let msg1 = loop {
        tokio::select! {
            m = conn.next() => match m {
                Some(Ok(Message::Binary(b))) => break Some(b.to_vec()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => break None,
            },
            _ = tick.tick() => { let _ = sock.send_to(line.as_bytes(), &peer.adverts).await; }
            () = &mut deadline => break None,
        }
    };
    (conn, plaintext, msg1)
}

fn get_info() -> Vec<u8> {
    GetInfo {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        aaguid: [0x48; 16],
        options: vec![("rk".into(), true), ("uv".into(), true)],
        ..GetInfo::default()
    }
    .to_cbor()
    .to_vec()
}

impl Hostile {
    /// Advertises, takes message 1 and sends message 2 keyed as `keying` says.
    async fn handshake(qr: &QrPayload, peer: &Peer, keying: Keying) -> Hostile {
        let (mut conn, plaintext, msg1) = advertise(peer, qr, &qr.secret, BOUND).await;
        let msg1 = msg1.expect("message 1 from the desktop");
        let psk = OpenedAdvert { plaintext, suffix: Vec::new() }.psk(&qr.secret);
        let keys = ResponderKeys::Qr { desktop_identity: &qr.public_key };
        let (est, msg2) = noise::respond(keys, &psk, &msg1, &mut OsRng).unwrap();
        let msg2 = match keying {
            Keying::Honest => msg2.to_vec(),
            Keying::WrongPsk => {
                let e = p256::SecretKey::random(&mut OsRng).public_key();
                let mut forged =
                    p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&e, false)
                        .as_bytes()
                        .to_vec();
                let mut tag = [0u8; 16];
                OsRng.fill_bytes(&mut tag);
                forged.extend_from_slice(&tag);
                assert_eq!(forged.len(), msg2.len());
                forged
            }
        };
        conn.send(Message::binary(msg2)).await.unwrap();
        Hostile { conn, crypter: est.crypter }
    }

    /// Handshake and a correct post-handshake message; returns after the desktop's request
    /// arrived (decrypted and checked to be a CTAP request).
    async fn open(qr: &QrPayload, peer: &Peer) -> (Hostile, Vec<u8>) {
        let mut h = Hostile::handshake(qr, peer, Keying::Honest).await;
        let post = h.seal_plain(&PostHandshake::ctap(get_info()).encode());
        h.send(&post).await;
        let mut request = h.recv().await.expect("the desktop's CTAP request");
        let n = h.crypter.open_in_place(&mut request).expect("the request opens");
        request.truncate(n);
        assert_eq!(request.first(), Some(&(FrameType::Ctap as u8)), "a CTAP request frame");
        (h, post)
    }

    fn seal_plain(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.crypter.seal_plain(plain, &mut out).unwrap();
        out
    }

    fn seal(&mut self, frame: FrameType, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.crypter.seal_frame(frame, payload, &mut out).unwrap();
        out
    }

    /// A CTAP response frame `[0x01] ‖ status 0 ‖ body`.
    fn response(&mut self, body: &[u8]) -> Vec<u8> {
        let mut payload = vec![0u8];
        payload.extend_from_slice(body);
        self.seal(FrameType::Ctap, &payload)
    }

    async fn send(&mut self, frame: &[u8]) {
        // The desktop may already have given up and closed: that is its answer, not ours.
        let _ = self.conn.send(Message::binary(frame.to_vec())).await;
    }

    async fn recv(&mut self) -> Option<Vec<u8>> {
        raw_recv(&mut self.conn).await
    }

    /// Holds the tunnel until the desktop closes it (bounded), so the desktop decides alone.
    async fn linger(mut self) {
        while self.recv().await.is_some() {}
    }
}

#[tokio::test]
async fn wrong_psk_wrong_qr_secret_and_handshake_replays() {
    let rig = Rig::new().await;
    // The phone answers message 1 with a PSK that is not its advert's: the desktop's Noise
    // read of message 2 fails.
    let e = case(&rig, rig.desktop(), "wrong PSK", |qr, peer| async move {
        Hostile::handshake(&qr, &peer, Keying::WrongPsk).await.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::Handshake, CeremonyErrorKind::Peer, "wrong PSK");

    // A phone that scanned a different QR (wrong secret): its adverts never open under the
    // desktop's EID key, so no handshake starts and the advert timeout names the stage.
    let e = case(&rig, rig.desktop(), "wrong QR secret", |qr, peer| async move {
        let wrong = QrSecret::new([0x5A; 16]);
        let (conn, _, msg1) = advertise(&peer, &qr, &wrong, ADVERT + Duration::from_secs(1)).await;
        assert!(msg1.is_none(), "the desktop answered an advert sealed under another secret");
        drop(conn);
    })
    .await;
    assert_typed(&e, CeremonyStage::Advert, CeremonyErrorKind::Timeout, "wrong QR secret");

    // Message 2 sent twice: the copy arrives where the post-handshake message belongs and
    // does not open as a sealed frame.
    let e = case(&rig, rig.desktop(), "message 2 replayed", |qr, peer| async move {
        let (mut conn, plaintext, msg1) = advertise(&peer, &qr, &qr.secret, BOUND).await;
        let psk = OpenedAdvert { plaintext, suffix: Vec::new() }.psk(&qr.secret);
        let keys = ResponderKeys::Qr { desktop_identity: &qr.public_key };
        let (_, msg2) = noise::respond(keys, &psk, &msg1.unwrap(), &mut OsRng).unwrap();
        let _ = conn.send(Message::binary(msg2.to_vec())).await;
        let _ = conn.send(Message::binary(msg2.to_vec())).await;
        while raw_recv(&mut conn).await.is_some() {}
    })
    .await;
    assert_typed(&e, CeremonyStage::PostHandshake, CeremonyErrorKind::Peer, "msg2 replayed");

    // Junk sent before any desktop arrived (the server holds early messages for the desktop):
    // it is taken as message 2 and fails the handshake; the real message 2 never matters.
    let e = case(&rig, rig.desktop(), "junk before message 1", |qr, peer| async move {
        let path = TunnelPath::New { tunnel_id: qr.tunnel_id() };
        let (mut conn, routing) = raw_connect(&peer.base, &path).await;
        let _ = conn.send(Message::binary(vec![0x04; 81])).await;
        let advert = EidKey::from_qr_secret(&qr.secret).seal(&eid(routing.unwrap()));
        let sock = UnixDatagram::unbound().unwrap();
        let line = format!("{}\n", hex::encode(advert));
        let _ = sock.send_to(line.as_bytes(), &peer.adverts).await;
        while raw_recv(&mut conn).await.is_some() {}
    })
    .await;
    assert_typed(&e, CeremonyStage::Handshake, CeremonyErrorKind::Peer, "early junk");
    rig.finish().await;
}

#[tokio::test]
async fn replayed_reordered_and_truncated_frames_are_refused() {
    let rig = Rig::new().await;
    // Replay: the post-handshake frame (sealed at write sequence 0) sent again as the answer.
    let e = case(&rig, rig.desktop(), "replayed post-handshake", |qr, peer| async move {
        let (mut h, post) = Hostile::open(&qr, &peer).await;
        h.send(&post).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "replay");
    assert!(e.message.contains("sequence 1"), "names the read sequence: {e}");

    // Replay of a frame the desktop accepted: an update (sequence 1) sent twice.
    let e = case(&rig, rig.desktop(), "replayed update", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        let update = h.seal(FrameType::Update, &[0xA0]);
        h.send(&update).await;
        h.send(&update).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "replayed update");
    assert!(e.message.contains("sequence 2"), "{e}");

    // Reorder: an update sealed at 1 and the response sealed at 2, sent response first.
    let e = case(&rig, rig.desktop(), "reordered", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        let update = h.seal(FrameType::Update, &[0xA0]);
        let response = h.response(&[0xA0]);
        h.send(&response).await;
        h.send(&update).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "reordered");

    // Truncation: one byte short, shorter than a tag, and empty.
    for (name, keep) in
        [("truncated by one byte", None), ("shorter than a tag", Some(5)), ("empty", Some(0))]
    {
        let e = case(&rig, rig.desktop(), name, |qr, peer| async move {
            let (mut h, _) = Hostile::open(&qr, &peer).await;
            let mut response = h.response(&[0xA0]);
            let len = keep.unwrap_or(response.len() - 1);
            response.truncate(len);
            h.send(&response).await;
            h.linger().await;
        })
        .await;
        assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, name);
    }
    rig.finish().await;
}

#[tokio::test]
async fn counter_wrap_attempts_are_refused() {
    let rig = Rig::new().await;
    // The nonce carries the sequence number (32-bit big-endian). A phone whose counter wrapped
    // would seal at sequence 0 again (nonce reuse under GCM); one that jumps ahead seals at the
    // 2^24-1 limit (a conforming sealer refuses anything past it, so nothing higher can be
    // produced with the session's keys). The desktop's read counter is 1 here: each is a tag
    // mismatch at sequence 1.
    for (name, sequence) in [("wrapped to 0", 0u32), ("jumped to the 2^24-1 limit", MAX_SEQUENCE)] {
        let e = case(&rig, rig.desktop(), name, |qr, peer| async move {
            let (mut h, _) = Hostile::open(&qr, &peer).await;
            let read = h.crypter.read_sequence();
            h.crypter.set_sequences_for_tests(sequence, read);
            let frame = h.response(&[0xA0]);
            h.send(&frame).await;
            h.linger().await;
        })
        .await;
        assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, name);
        assert!(e.message.contains("sequence 1"), "{name}: {e}");
    }
    rig.finish().await;
}

#[tokio::test]
async fn frames_at_and_over_one_mebibyte() {
    let rig = Rig::new().await;
    // The largest sealed frame that fits 1 MiB: a well-sealed CTAP "success" whose body is not
    // CBOR. The server relays it (at the limit); the desktop opens it and refuses the body.
    let e = case(&rig, rig.desktop(), "sealed frame at 1 MiB", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        // sealed_len(p) = p rounded up to 32 (+1 padding byte) + 16-byte tag ≤ 1 MiB.
        let body = vec![0xFFu8; MAX_MESSAGE_LEN - 16 - 32 - 2];
        let frame = h.response(&body);
        assert!(frame.len() <= MAX_MESSAGE_LEN && frame.len() > MAX_MESSAGE_LEN - 64);
        h.send(&frame).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "1 MiB sealed");

    // Exactly 1 MiB of noise: relayed, refused by the tag check.
    let e = case(&rig, rig.desktop(), "1 MiB of noise", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        let mut noise = vec![0u8; MAX_MESSAGE_LEN];
        OsRng.fill_bytes(&mut noise);
        h.send(&noise).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "1 MiB noise");
    assert!(e.message.contains("sequence 1"), "{e}");

    // A text message: the tunnel is binary only; the server closes both sides (1003).
    let e = case(&rig, rig.desktop(), "text message", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        let _ = h.conn.send(Message::text("{\"status\":0}")).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "text message");

    // One byte over: the server closes both sides (policy violation); the desktop reports the
    // closed tunnel at the stage it was in.
    let e = case(&rig, rig.desktop(), "1 MiB + 1", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        h.send(&vec![0u8; MAX_MESSAGE_LEN + 1]).await;
        h.linger().await;
    })
    .await;
    assert_eq!(e.stage, CeremonyStage::UserResponse, "{e}");
    assert_eq!(e.fault, Fault::Peer, "{e}");
    rig.finish().await;
}

#[tokio::test]
async fn shutdown_silence_and_wrong_frame_types() {
    let rig = Rig::new().await;
    // A phone never sends shutdown (§8.2: desktop → phone only): refused.
    let e = case(&rig, rig.desktop(), "phone sends shutdown", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        let bye = h.seal(FrameType::Shutdown, &[]);
        h.send(&bye).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "phone shutdown");

    // A shutdown (or anything but the post-handshake CBOR map) where the post-handshake
    // message belongs.
    let e =
        case(&rig, rig.desktop(), "shutdown instead of post-handshake", |qr, peer| async move {
            let mut h = Hostile::handshake(&qr, &peer, Keying::Honest).await;
            let bye = h.seal(FrameType::Shutdown, &[]);
            h.send(&bye).await;
            h.linger().await;
        })
        .await;
    assert_typed(&e, CeremonyStage::PostHandshake, CeremonyErrorKind::Peer, "early shutdown");

    // The phone closes the tunnel right after message 2.
    let e = case(&rig, rig.desktop(), "close after message 2", |qr, peer| async move {
        let mut h = Hostile::handshake(&qr, &peer, Keying::Honest).await;
        let _ = h.conn.close(None).await;
    })
    .await;
    assert_typed(&e, CeremonyStage::PostHandshake, CeremonyErrorKind::Peer, "closed early");

    // Wrong frame types as the answer to a CTAP request: a Digital Credentials reply nobody
    // asked for, and a type byte that does not exist.
    let e = case(&rig, rig.desktop(), "JSON instead of CTAP", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        let json = h.seal(FrameType::Json, b"{}");
        h.send(&json).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "JSON answer");
    let e = case(&rig, rig.desktop(), "unknown frame type", |qr, peer| async move {
        let (mut h, _) = Hostile::open(&qr, &peer).await;
        let frame = h.seal_plain(&[0x7F, 0x00]);
        h.send(&frame).await;
        h.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "unknown type");
    // A CTAP response whose body is a CBOR map of the wrong shape (a getInfo where an
    // attestation object belongs).
    let e =
        case(&rig, rig.desktop(), "getInfo as makeCredential response", |qr, peer| async move {
            let (mut h, _) = Hostile::open(&qr, &peer).await;
            let frame = h.response(&get_info());
            h.send(&frame).await;
            h.linger().await;
        })
        .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Peer, "wrong body");

    // Silence at each stage: the stage's own timeout fires and names it.
    let e = case(&rig, rig.desktop(), "silent after message 1", |qr, peer| async move {
        let (mut conn, _, msg1) = advertise(&peer, &qr, &qr.secret, BOUND).await;
        assert!(msg1.is_some());
        while raw_recv(&mut conn).await.is_some() {}
    })
    .await;
    assert_typed(&e, CeremonyStage::Handshake, CeremonyErrorKind::Timeout, "no message 2");
    let e = case(&rig, rig.desktop(), "silent after message 2", |qr, peer| async move {
        Hostile::handshake(&qr, &peer, Keying::Honest).await.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::PostHandshake, CeremonyErrorKind::Timeout, "no post-handshake");
    let e = case(&rig, rig.desktop(), "never answers the request", |qr, peer| async move {
        Hostile::open(&qr, &peer).await.0.linger().await;
    })
    .await;
    assert_typed(&e, CeremonyStage::UserResponse, CeremonyErrorKind::Timeout, "no answer");
    rig.finish().await;
}

/// 10,000 random adverts per second into the desktop's advert source while a real ceremony is
/// pending: at least 10,000 arrive before the real phone even starts advertising, the flood
/// goes on throughout, and the real registration still completes and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advert_flood_while_a_real_session_is_pending() {
    const RATE: u64 = 10_000;
    const BEFORE_PHONE: u64 = 10_000;
    let rig = Rig::new().await;
    let mut config = rig.desktop();
    config.timeouts.advert = Duration::from_secs(20);
    config.timeouts.handshake = Duration::from_secs(10);
    config.timeouts.user = Duration::from_secs(10);
    let mut phone_config = phone_config(rig.server.base_url(), rig.adverts());
    phone_config.desktop_timeout = Duration::from_secs(10);
    let mut phone = VirtualPhone::new(phone_config, PhoneState::new(&mut OsRng), None, None);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let adverts = rig.adverts();
    let mut log = EventLog::new();
    let started = Instant::now();
    let (result, flooded) = timeout(Duration::from_secs(40), {
        let sent = sent.clone();
        let stop = stop.clone();
        with_phone(
            Transport::Hybrid(HybridTransport::new(config)),
            register(),
            &mut log,
            |qr| async move {
                let flood = tokio::spawn(flood(adverts, RATE, sent.clone(), stop.clone()));
                let waited = Instant::now();
                while sent.load(std::sync::atomic::Ordering::Relaxed) < BEFORE_PHONE {
                    assert!(waited.elapsed() < Duration::from_secs(15), "flood too slow");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let before = sent.load(std::sync::atomic::Ordering::Relaxed);
                let answered = phone.run_qr(&qr).await;
                stop.cancel();
                let total = flood.await.unwrap();
                (answered.is_ok(), before, total)
            },
        )
    })
    .await
    .expect("the flooded ceremony outlived its bound");
    let (phone_ok, before, total) = flooded.expect("the desktop showed a QR");
    let reg = match result {
        Ok(CeremonyOutcome::Registered(reg)) => reg,
        other => panic!("the real session failed under the flood: {other:?}"),
    };
    reg.verify().unwrap();
    assert!(phone_ok);
    assert!(before >= BEFORE_PHONE);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "advert flood: {total} random adverts ({before} before the phone started) in {secs:.2} s \
         ({:.0}/s); the real registration completed and verified",
        total as f64 / secs
    );
    rig.finish().await;
}

/// Sends random 20-byte adverts (one hex line per datagram) at `rate` per second until
/// `stop`; returns how many went out.
async fn flood(
    path: PathBuf,
    rate: u64,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
) -> u64 {
    let sock = UnixDatagram::unbound().unwrap();
    let started = Instant::now();
    let mut advert = [0u8; 20];
    let limit = Duration::from_secs(30);
    while !stop.is_cancelled() && started.elapsed() < limit {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let mut n = sent.load(std::sync::atomic::Ordering::Relaxed);
        if n >= due {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        while n < due {
            OsRng.fill_bytes(&mut advert);
            let line = format!("{}\n", hex::encode(advert));
            if sock.send_to(line.as_bytes(), &path).await.is_err() {
                // The desktop's socket is gone (the ceremony ended) or not there yet.
                tokio::time::sleep(Duration::from_millis(1)).await;
                break;
            }
            n += 1;
        }
        sent.store(n, std::sync::atomic::Ordering::Relaxed);
    }
    sent.load(std::sync::atomic::Ordering::Relaxed)
}

// ---- A hostile desktop against the virtual phone ----

/// What the hostile desktop does after reaching the phone's tunnel.
#[derive(Clone, Copy, Debug)]
enum DesktopMove {
    /// Message 1 keyed with a PSK that is not the advert's.
    WrongPsk,
    /// A correct handshake, then random bytes where the CTAP request belongs.
    Garbage,
    /// A correct handshake, then the post-handshake frame echoed back (a replay of the
    /// phone's own sequence 0 frame: wrong direction and key).
    Reflect,
    /// A correct handshake, then a message one byte over 1 MiB.
    Oversize,
    /// A correct handshake, then a Digital Credentials request (type 3 JSON) although the
    /// phone announced only `ctap` (the bridge's case: a USB key has no documents).
    JsonUnasked,
}

async fn hostile_desktop(mv: DesktopMove) -> (Result<SessionSummary, PhoneError>, Duration) {
    let rig = Rig::new().await;
    let sock = UnixDatagram::bind(rig.adverts()).unwrap();
    let mut config = phone_config(rig.server.base_url(), rig.adverts());
    config.desktop_timeout = Duration::from_secs(3);
    config.idle_timeout = Duration::from_secs(3);
    let mut phone = VirtualPhone::new(config, PhoneState::new(&mut OsRng), None, None);
    let (sk, qr) =
        QrPayload::generate(&mut OsRng, 1_700_000_000, RequestHint::MakeCredential, false);
    let started = Instant::now();
    let desktop = async {
        let key = EidKey::from_qr_secret(&qr.secret);
        let opened = next_advert(&sock, &key, EidMode::Qr).await;
        let path = opened.plaintext.connect_path(qr.tunnel_id());
        let (mut conn, _) = raw_connect(&rig.server.base_url(), &path).await;
        let keyed = match mv {
            DesktopMove::WrongPsk => eid(RoutingId([9, 9, 9])),
            _ => opened.plaintext,
        };
        let psk = OpenedAdvert { plaintext: keyed, suffix: Vec::new() }.psk(&qr.secret);
        if let DesktopMove::JsonUnasked = mv {
            // The typed session refuses to send JSON to a ctap-only phone
            // (SessionError::DcNotSupported), so this desktop keeps the raw Noise keys.
            let keys = InitiatorKeys::Qr { desktop_identity: &sk };
            let (init, msg1) = noise::Initiator::start(keys, &psk, &mut OsRng);
            conn.send(Message::binary(msg1.to_vec())).await.unwrap();
            let Some(msg2) = raw_recv(&mut conn).await else { return };
            let mut est = init.read_response(&msg2).unwrap();
            let Some(mut post) = raw_recv(&mut conn).await else { return };
            let n = est.crypter.open_in_place(&mut post).unwrap();
            let announced = PostHandshake::decode(&post[..n]).unwrap();
            assert!(!announced.supports_dc(), "the virtual phone has no dc document here");
            let mut json = Vec::new();
            let request = br#"{"requests":[{"protocol":"openid4vp","data":{}}]}"#;
            est.crypter.seal_frame(FrameType::Json, request, &mut json).unwrap();
            let _ = conn.send(Message::binary(json)).await;
            while raw_recv(&mut conn).await.is_some() {}
            return;
        }
        let (hs, msg1) = DesktopHandshake::start_qr(&psk, &sk, &mut OsRng);
        conn.send(Message::binary(msg1.to_vec())).await.unwrap();
        let Some(msg2) = raw_recv(&mut conn).await else { return };
        let hs = hs.read_response(&msg2).unwrap();
        let Some(post) = raw_recv(&mut conn).await else { return };
        let open = hs.read_post_handshake(&post).unwrap();
        match mv {
            DesktopMove::WrongPsk => unreachable!("the phone answered a wrong PSK"),
            DesktopMove::JsonUnasked => unreachable!("handled above"),
            DesktopMove::Garbage => {
                let mut junk = vec![0u8; 100];
                OsRng.fill_bytes(&mut junk);
                let _ = conn.send(Message::binary(junk)).await;
            }
            DesktopMove::Reflect => {
                let _ = conn.send(Message::binary(post)).await;
            }
            DesktopMove::Oversize => {
                let _ = conn.send(Message::binary(vec![0u8; MAX_MESSAGE_LEN + 1])).await;
            }
        }
        // Hold on until the phone gives up (its answer is the case's result).
        while raw_recv(&mut conn).await.is_some() {}
        drop(open);
    };
    let (phone_result, ()) = timeout(BOUND, async { tokio::join!(phone.run_qr(&qr), desktop) })
        .await
        .unwrap_or_else(|_| panic!("{mv:?}: the phone outlived its bound"));
    let elapsed = started.elapsed();
    match &phone_result {
        Err(e) => println!(
            "hostile desktop / {mv:?}: phone error at {} after {} ms: {e}",
            e.stage().as_str(),
            elapsed.as_millis()
        ),
        Ok(s) => println!(
            "hostile desktop / {mv:?}: phone ended after {} ms answering {} requests",
            elapsed.as_millis(),
            s.requests
        ),
    }
    drop(sock);
    rig.finish().await;
    (phone_result, elapsed)
}

fn refused(r: Result<SessionSummary, PhoneError>, mv: DesktopMove) -> PhoneError {
    match r {
        Err(e) => e,
        Ok(s) => panic!("{mv:?}: the phone accepted a hostile desktop: {s:?}"),
    }
}

#[tokio::test]
async fn the_phone_refuses_a_hostile_desktop() {
    let mv = DesktopMove::WrongPsk;
    let e = refused(hostile_desktop(mv).await.0, mv);
    assert_eq!((e.stage(), e.fault()), (Stage::Handshake, Fault::Peer), "{e}");
    for mv in [DesktopMove::Garbage, DesktopMove::Reflect] {
        let e = refused(hostile_desktop(mv).await.0, mv);
        assert_eq!((e.stage(), e.fault()), (Stage::Transport, Fault::Peer), "{e}");
        assert!(e.to_string().contains("read sequence 0"), "{e}");
    }
    // Over 1 MiB: the server closes the desktop with 1008 and tells the phone only that its
    // peer left (a normal close). Regression: the phone used to call that a clean end (exit 0,
    // nothing answered); a tunnel that ends before any request is a failed session now.
    let (r, took) = hostile_desktop(DesktopMove::Oversize).await;
    let e = refused(r, DesktopMove::Oversize);
    assert!(matches!(e, PhoneError::DesktopClosed { stage: Stage::Transport }), "{e}");
    assert_eq!(e.fault(), Fault::Peer, "{e}");
    assert!(took < Duration::from_secs(3), "ended by the close, not the idle timeout: {took:?}");
    // A Digital Credentials request to a phone that announced only ctap: refused at once,
    // naming the frame, and nothing is answered.
    let (r, took) = hostile_desktop(DesktopMove::JsonUnasked).await;
    let e = refused(r, DesktopMove::JsonUnasked);
    assert_eq!((e.stage(), e.fault()), (Stage::Transport, Fault::Peer), "{e}");
    assert!(e.to_string().contains("only the ctap feature"), "{e}");
    assert!(took < Duration::from_secs(3), "refused at once, not at a timeout: {took:?}");
}
