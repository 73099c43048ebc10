//! Tunnel faults (issue 14, "Hostile-peer and fault suite", tunnel part): a real ceremony
//! (desktop runner ↔ tunnel ↔ virtual phone) through a fault-injecting relay
//! (`fault_relay`) in front of our real tunnel server, which drops the connection at an exact
//! protocol point — mid-handshake (instead of relaying message 2) and mid-CTAP (instead of
//! relaying the desktop's request) — by FIN or by RST, or black-holes it; and a hostile server
//! that sends a text frame or an oversized frame to either end. Both ends must end with a typed
//! error naming the stage, before their timeouts' bound. Then 2,000 unpaired tunnels held at
//! once while a real ceremony completes through the same server, and expiring by their TTL.
//!
//! What `tunnel_abuse.rs` / `tunnel_server.rs` already cover is not repeated here: slow-loris
//! upgrade requests (cut at the handshake timeout), peers that never read (cut by the send
//! timeout), text and oversized frames sent *to the server* (closed with 1003/1009 on both
//! sides), idle-tunnel and absolute-lifetime limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fault_relay;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::tunnel::{
    url, TunnelId, TunnelPath, MAX_MESSAGE_LEN, SUBPROTOCOL,
};
use cablebridge_protocol::Stage;
use cablebridged::ceremony::{
    CeremonyError, CeremonyErrorKind, CeremonyOutcome, CeremonyRequest, CeremonyStage,
    HybridTransport, RegisterOptions, Transport,
};
use cablebridged::phone::{PhoneError, PhoneState, SessionSummary, VirtualPhone};
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::server::{
    ServerStats, TunnelServer, TunnelServerConfig, TunnelServerHandle,
};
use common::{desktop_config, phone_config, socket_count as fd_count};
use fault_relay::{ws_frame, Cut, Dir, Relay, Rule};
use futures_util::{stream, StreamExt};
use rand::rngs::OsRng;
use tokio::net::TcpSocket;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The desktop's stage timeouts in these cases.
const STAGE: Duration = Duration::from_secs(2);
/// The phone's timeouts (waiting for the desktop, idle between requests).
const PHONE: Duration = Duration::from_secs(3);
/// Bound for one ceremony with its fault.
const BOUND: Duration = Duration::from_secs(12);

/// One case at a time: the descriptor baseline is per process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fds_back_to(baseline: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count() > baseline {
        assert!(Instant::now() < deadline, "descriptors leaked: {} > {baseline}", fd_count());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type PhoneResult = Result<SessionSummary, PhoneError>;

/// One registration through `relay` (or straight to the server): both ends' results.
async fn ceremony(
    server: &TunnelServerHandle,
    base: &str,
    name: &str,
) -> (Result<CeremonyOutcome, CeremonyError>, PhoneResult, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let adverts = dir.path().join("adverts.sock");
    let mut config = desktop_config(base.to_owned(), adverts.clone());
    config.timeouts.advert = Duration::from_secs(5);
    config.timeouts.connect = STAGE;
    config.timeouts.handshake = STAGE;
    config.timeouts.user = STAGE;
    config.timeouts.late_updates = Duration::from_millis(200);
    let mut pc = phone_config(base.to_owned(), adverts);
    pc.desktop_timeout = PHONE;
    pc.idle_timeout = PHONE;
    let mut phone = VirtualPhone::new(pc, PhoneState::new(&mut OsRng), None, None);
    let started = Instant::now();
    let mut log = EventLog::new();
    let request = CeremonyRequest::Register(RegisterOptions::new("example.com", "alice"));
    let transport = Transport::Hybrid(HybridTransport::new(config));
    let (desktop, phone) = timeout(
        BOUND,
        with_phone(transport, request, &mut log, |qr| async move { phone.run_qr(&qr).await }),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: outlived its bound {BOUND:?}"));
    let elapsed = started.elapsed();
    let phone = phone.expect("the desktop showed a QR");
    let d = match &desktop {
        Ok(_) => "desktop ok".to_owned(),
        Err(e) => format!(
            "desktop {} {} after {} ms: {e}",
            e.stage.as_str(),
            e.kind.as_str(),
            elapsed.as_millis()
        ),
    };
    let p = match &phone {
        Ok(_) => "phone ok".to_owned(),
        Err(e) => format!("phone {}: {e}", e.stage().as_str()),
    };
    println!("tunnel fault / {name}: {d}; {p}");
    let _ = server;
    (desktop, phone, elapsed)
}

fn desktop_error(r: Result<CeremonyOutcome, CeremonyError>, name: &str) -> CeremonyError {
    match r {
        Err(e) => e,
        Ok(o) => panic!("{name}: the desktop succeeded through the fault: {o:?}"),
    }
}

fn phone_error(r: PhoneResult, name: &str) -> PhoneError {
    match r {
        Err(e) => e,
        Ok(s) => panic!("{name}: the phone succeeded through the fault: {s:?}"),
    }
}

async fn settle(server: &TunnelServerHandle, what: &str, check: impl Fn(&ServerStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check(&server.stats()) {
        assert!(Instant::now() < deadline, "server never reached {what}: {:?}", server.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `rule` on `/cable/connect` (the desktop's side) through a fresh relay.
async fn through(rule: Rule, name: &str) -> (CeremonyError, PhoneError) {
    let _serial = SERIAL.lock().await;
    let fds = fd_count();
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let relay = Relay::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        server.local_addr(),
        Some(rule),
        Duration::ZERO,
    )
    .await;
    let (d, p, _) = ceremony(&server, &relay.base_url(), name).await;
    assert_eq!(relay.fired(), 1, "{name}: the fault fired once");
    let e = desktop_error(d, name);
    let pe = phone_error(p, name);
    drop(relay);
    settle(&server, "idle", ServerStats::is_idle).await;
    server.shutdown().await;
    fds_back_to(fds).await;
    (e, pe)
}

fn connect_rule(dir: Dir, nth: u32, cut: Cut) -> Rule {
    Rule { path: "/cable/connect/", dir, nth, cut }
}

#[tokio::test]
async fn a_dropped_tunnel_mid_handshake_is_typed_on_both_ends() {
    for (how, cut) in [("FIN", Cut::Close), ("RST", Cut::Reset)] {
        let name = format!("drop instead of message 2 ({how})");
        // The server's copy of message 2 never reaches the desktop; both TCP legs go down.
        let (e, p) = through(connect_rule(Dir::ToClient, 1, cut), &name).await;
        assert_eq!((e.stage, e.fault), (CeremonyStage::Handshake, Fault::Peer), "{name}: {e}");
        assert_eq!(e.kind, CeremonyErrorKind::Peer, "{name}: {e}");
        assert_eq!(p.fault(), Fault::Peer, "{name}: {p}");
        assert!(
            matches!(p, PhoneError::DesktopClosed { .. } | PhoneError::Tunnel(_)),
            "{name}: {p}"
        );
    }
}

#[tokio::test]
async fn a_dropped_tunnel_mid_ctap_is_typed_on_both_ends() {
    for (how, cut) in [("FIN", Cut::Close), ("RST", Cut::Reset)] {
        let name = format!("drop instead of the CTAP request ({how})");
        // The desktop's second message (the CTAP request) never reaches the phone.
        let (e, p) = through(connect_rule(Dir::ToServer, 2, cut), &name).await;
        // The desktop, waiting for the answer, sees the connection die.
        assert_eq!(
            (e.stage, e.kind, e.fault),
            (CeremonyStage::UserResponse, CeremonyErrorKind::Peer, Fault::Peer),
            "{name}: {e}"
        );
        // The phone, waiting for a request, is told only that its peer left.
        assert!(matches!(p, PhoneError::DesktopClosed { stage: Stage::Transport }), "{name}: {p}");
        assert_eq!(p.fault(), Fault::Peer, "{name}: {p}");
    }
}

#[tokio::test]
async fn a_black_holed_tunnel_mid_ctap_ends_at_each_sides_timeout() {
    let name = "black hole from the CTAP request on";
    let (e, p) = through(connect_rule(Dir::ToServer, 2, Cut::Stall), name).await;
    assert_eq!((e.stage, e.kind), (CeremonyStage::UserResponse, CeremonyErrorKind::Timeout), "{e}");
    // Neither side hears anything: each ends on its own clock (desktop: user timeout; phone:
    // idle timeout), with a typed timeout naming the stage.
    assert!(matches!(p, PhoneError::Timeout { stage: Stage::Transport, .. }), "{p}");
    assert_eq!(p.fault(), Fault::Peer, "{p}");
}

#[tokio::test]
async fn a_hostile_server_sending_text_or_oversized_frames() {
    // Text where message 2 belongs (the tunnel is binary only, §6.1).
    let text = ws_frame(0x1, b"hello");
    let (e, p) =
        through(connect_rule(Dir::ToClient, 1, Cut::Inject(text)), "text to the desktop").await;
    assert_eq!((e.stage, e.fault), (CeremonyStage::Handshake, Fault::Peer), "{e}");
    assert_eq!(p.fault(), Fault::Peer, "{p}");
    // One byte over 1 MiB where message 2 belongs: the client's reader refuses it.
    let big = ws_frame(0x2, &vec![0u8; MAX_MESSAGE_LEN + 1]);
    let (e, p) =
        through(connect_rule(Dir::ToClient, 1, Cut::Inject(big)), "oversize to the desktop").await;
    assert_eq!((e.stage, e.fault), (CeremonyStage::Handshake, Fault::Peer), "{e}");
    assert_eq!(p.fault(), Fault::Peer, "{p}");
    // The same towards the phone, in place of message 1.
    let big = ws_frame(0x2, &vec![0u8; MAX_MESSAGE_LEN + 1]);
    let rule = Rule { path: "/cable/new/", dir: Dir::ToClient, nth: 1, cut: Cut::Inject(big) };
    let (e, p) = through(rule, "oversize to the phone").await;
    assert_eq!(e.fault, Fault::Peer, "{e}");
    assert_eq!((p.stage(), p.fault()), (Stage::Tunnel, Fault::Peer), "{p}");
    let rule = Rule {
        path: "/cable/new/",
        dir: Dir::ToClient,
        nth: 1,
        cut: Cut::Inject(ws_frame(0x1, b"x")),
    };
    let (e, p) = through(rule, "text to the phone").await;
    assert_eq!(e.fault, Fault::Peer, "{e}");
    assert_eq!(p.fault(), Fault::Peer, "{p}");
}

/// Unpaired tunnels held at once.
const UNPAIRED: usize = 2_000;

fn source(i: usize) -> IpAddr {
    // 200 per source address, under the default per-source cap of 256.
    let n = i / 200;
    IpAddr::from([127, 0, 2, n as u8 + 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_unpaired_tunnels_then_a_real_ceremony_then_ttl_expiry() {
    let _serial = SERIAL.lock().await;
    let fds = fd_count();
    // Long enough that the first tunnels cannot expire before the last one opened, even on a
    // loaded CI machine (opening all 2,000 takes about half a second here).
    let ttl = Duration::from_secs(8);
    let config = TunnelServerConfig { unpaired_ttl: ttl, ..TunnelServerConfig::default() };
    let server = TunnelServer::bind(config).await.unwrap();
    let started = Instant::now();
    let held: Vec<_> = stream::iter(0..UNPAIRED)
        .map(|i| {
            let server = &server;
            async move {
                let socket = TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::new(source(i), 0)).unwrap();
                let stream = socket.connect(server.local_addr()).await.unwrap();
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                let path = TunnelPath::New { tunnel_id: TunnelId(id) };
                let mut req = url(&server.base_url(), &path).into_client_request().unwrap();
                req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
                tokio_tungstenite::client_async(req, stream).await.unwrap().0
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    settle(&server, "all unpaired tunnels waiting", |s| s.waiting == UNPAIRED as u64).await;
    let opened = started.elapsed();
    // A real ceremony through the same server while they wait.
    let (d, p, took) = ceremony(&server, &server.base_url(), "beside 2,000 unpaired tunnels").await;
    match d {
        Ok(CeremonyOutcome::Registered(reg)) => {
            reg.verify().unwrap();
        }
        other => panic!("the real ceremony failed beside the unpaired tunnels: {other:?}"),
    };
    p.unwrap();
    // Every unpaired tunnel ends at its TTL: the server closes it, the gauge returns to 0.
    settle(&server, "unpaired tunnels expired", |s| s.waiting == 0).await;
    let expired = started.elapsed();
    let closed = timeout(Duration::from_secs(10), async {
        let mut closed = 0;
        for mut ws in held {
            while let Some(Ok(_)) = ws.next().await {}
            closed += 1;
        }
        closed
    })
    .await
    .expect("clients saw their tunnels close");
    assert_eq!(closed, UNPAIRED);
    settle(&server, "idle", ServerStats::is_idle).await;
    println!(
        "{UNPAIRED} unpaired tunnels open in {opened:?}; a real registration beside them took \
         {took:?}; all expired by {expired:?} (TTL {ttl:?})"
    );
    server.shutdown().await;
    fds_back_to(fds).await;
}
