//! Abuse: the tunnel server stays bounded under many idle half-open tunnels, slow-loris upgrade
//! requests, connection floods past the global and per-source caps, contact/listen churn and
//! peers that never read — and a real ceremony (desktop runner + virtual phone) still completes
//! through the same server afterwards, with every server gauge back at 0.
//!
//! Prints the RSS growth per idle tunnel while the abuse is in place
//! (`cargo test -p cablebridged --test tunnel_abuse -- --nocapture`). Fast by default (a few
//! hundred idle tunnels); `CB_SOAK=1` uses 5000, `CB_TUNNEL_ABUSE=N` any N (clamped to the
//! open-file limit). Bounded by a timeout.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::tunnel::{url, RoutingId, TunnelId, TunnelPath, SUBPROTOCOL};
use cablebridged::ceremony::{
    self, CeremonyEvent, CeremonyOutcome, CeremonyRequest, HybridTransport, RegisterOptions,
    Transport,
};
use cablebridged::phone::{PhoneState, VirtualPhone};
use cablebridged::tunnel::client::{connect, ConnectOptions};
use cablebridged::tunnel::listen::{contact_id as contact_id_of, listen_headers, ListenSecret};
use cablebridged::tunnel::listen_url;
use cablebridged::tunnel::server::{
    Reject, ServerStats, TunnelServer, TunnelServerConfig, TunnelServerHandle,
};
use common::{desktop_config, numbered_tunnel_id, open_file_limit, phone_config, rss_kib};
use futures_util::{stream, SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Idle phones per source address (under the per-source cap below).
const PER_SOURCE: usize = 50;
/// The per-source cap: a source holding `PER_SOURCE` idle phones has room for a little more.
const PER_SOURCE_CAP: usize = 64;
/// Slow-loris connections.
const LORIS: usize = 40;
/// Tunnels whose one side never reads (half each way).
const STUCK: usize = 4;
/// Contact/listen churn rounds.
const CHURN: usize = 60;
/// Bytes each idle phone sends before a desktop comes (held in the server's buffer budget).
const EARLY: usize = 16;
/// The stated bound on RSS growth per idle tunnel (server + client side, 2 sockets, in this one
/// process). Generous: measured values are a small fraction of it.
const MAX_KIB_PER_IDLE_TUNNEL: u64 = 96;
/// Fixed allowance on top (the never-reading tunnels' 1 MiB messages, runtime, allocator).
const RSS_ALLOWANCE_KIB: u64 = 96 * 1024;

type Raw = WebSocketStream<TcpStream>;

/// One fixed routing id, so the raw clients need not read the 101's headers.
const ROUTING: RoutingId = RoutingId([0x0A, 0x0B, 0x0C]);

fn tunnel_id(i: usize) -> TunnelId {
    numbered_tunnel_id(i, 0xAB)
}

/// Loopback source address for idle phone `i` (127.0.1.x, `PER_SOURCE` phones each).
fn source(i: usize) -> IpAddr {
    let n = i / PER_SOURCE;
    IpAddr::from([127, 0, 1 + (n / 250) as u8, (n % 250) as u8 + 1])
}

async fn tcp(server: SocketAddr, from: Option<IpAddr>, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.connect(server).await.unwrap()
}

/// A small-buffered raw WebSocket client (the client side should not dominate the RSS figure).
async fn raw(
    server: &TunnelServerHandle,
    path: &TunnelPath,
    from: Option<IpAddr>,
    recv_buffer: Option<u32>,
) -> Result<Raw, u16> {
    let stream = tcp(server.local_addr(), from, recv_buffer).await;
    let mut req = url(&server.base_url(), path).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    match tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected client error: {e}"),
    }
}

async fn settle(server: &TunnelServerHandle, what: &str, check: impl Fn(&ServerStats) -> bool) {
    common::settle(server, what, 3000, check).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_under_abuse_then_a_real_ceremony_completes() {
    let soak = std::env::var("CB_SOAK").is_ok_and(|v| v == "1");
    let requested: usize = std::env::var("CB_TUNNEL_ABUSE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if soak { 5000 } else { 300 });
    // Each idle tunnel costs 2 descriptors here (client and server end); keep room for the rest.
    let fd_cap = open_file_limit().map_or(requested, |l| l.saturating_sub(512) / 2);
    let n = requested.min(fd_cap).max(PER_SOURCE);
    let limit = Duration::from_secs(if soak { 600 } else { 120 });
    tokio::time::timeout(limit, run(n)).await.expect("abuse test exceeded its time bound");
}

async fn run(n: usize) {
    // Idle phones plus the slow-loris requests fill the cap exactly; once the dribblers are
    // cut, their room serves the stuck tunnels and the churn.
    let max_connections = n + LORIS;
    let config = TunnelServerConfig {
        routing_id: Some(ROUTING),
        max_connections,
        max_connections_per_ip: PER_SOURCE_CAP,
        // Everything here comes from 127.0.0.1 except the idle phones: room for the churn.
        unpaired_ttl: Duration::from_secs(300),
        handshake_timeout: Duration::from_secs(3),
        send_timeout: Duration::from_millis(500),
        max_unpaired_buffer: n * EARLY + (4 << 20),
        ..TunnelServerConfig::default()
    };
    let server = TunnelServer::bind(config).await.unwrap();
    let rss_start = rss_kib();
    let started = Instant::now();

    // 1. Idle half-open tunnels: phones on /cable/new that send an early message and wait for
    //    a desktop that never comes, spread over source addresses under the per-source cap.
    let idle: Vec<Raw> = stream::iter(0..n)
        .map(|i| {
            let server = &server;
            async move {
                let path = TunnelPath::New { tunnel_id: tunnel_id(i) };
                let mut ws = raw(server, &path, Some(source(i)), None).await.unwrap();
                ws.send(Message::binary(vec![0xEE; EARLY])).await.unwrap();
                ws
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    settle(&server, "all idle phones waiting with their early bytes", |st| {
        st.waiting == n as u64 && st.unpaired_buffered_bytes == (n * EARLY) as u64
    })
    .await;
    let idle_time = started.elapsed();
    let rss_idle = rss_kib();

    // 2. Per-source cap: the first source holds PER_SOURCE phones; its extra connections past
    //    the cap get 429 before any upgrade, while other sources are unaffected.
    let mut extra = Vec::new();
    let mut per_source_refusals = 0;
    for j in 0..(PER_SOURCE_CAP - PER_SOURCE + 3) {
        let path = TunnelPath::New { tunnel_id: tunnel_id(1_000_000 + j) };
        match raw(&server, &path, Some(source(0)), None).await {
            Ok(ws) => extra.push(ws),
            Err(status) => {
                assert_eq!(status, 429);
                per_source_refusals += 1;
            }
        }
    }
    assert_eq!(per_source_refusals, 3);
    assert_eq!(server.stats().rejected(Reject::TooManyFromSource), 3);
    drop(extra);
    settle(&server, "extra phones gone", |st| st.waiting == n as u64).await;

    // 3. Slow-loris: connections that dribble an incomplete upgrade request fill the
    //    connection cap; while they hold it, a new connection gets 503 before any upgrade.
    let mut loris = Vec::new();
    for _ in 0..LORIS {
        let mut s = tcp(server.local_addr(), None, None).await;
        s.write_all(b"GET /cable/new/").await.unwrap();
        loris.push(s);
    }
    settle(&server, "connection cap filled", |st| st.connections == max_connections as u64).await;
    let path = TunnelPath::New { tunnel_id: tunnel_id(3_000_000) };
    let refused = raw(&server, &path, Some(IpAddr::from([127, 0, 0, 3])), None).await.err();
    assert_eq!(refused, Some(503), "a connection past the cap must get 503");
    assert_eq!(server.stats().rejected(Reject::Overloaded), 1);
    // The server gives up on the dribblers at the handshake timeout.
    settle(&server, "slow-loris cut", |st| st.request_timeouts >= LORIS as u64).await;
    drop(loris);
    settle(&server, "slow-loris released", |st| st.connections == n as u64).await;

    // 4. Peers that never read: half the stuck tunnels have a desktop that never reads while
    //    its phone floods (starting with a 1 MiB early message the server must flush), half
    //    the other way round. Tiny receive windows make them stall at once; the send timeout
    //    must end each tunnel.
    let mut stuck_clients = Vec::new();
    let mut floods = Vec::new();
    for k in 0..STUCK {
        let t = tunnel_id(2_000_000 + k);
        let desktop_stalls = k % 2 == 0;
        let phone_buf = (!desktop_stalls).then_some(4096);
        let desktop_buf = desktop_stalls.then_some(4096);
        let new = TunnelPath::New { tunnel_id: t };
        let mut phone = raw(&server, &new, None, phone_buf).await.unwrap();
        let early = if desktop_stalls { 1 << 20 } else { EARLY };
        phone.send(Message::binary(vec![1u8; early])).await.unwrap();
        let path = TunnelPath::Connect { routing_id: ROUTING, tunnel_id: t };
        let desktop = raw(&server, &path, None, desktop_buf).await.unwrap();
        let (sender, reader) = if desktop_stalls { (phone, desktop) } else { (desktop, phone) };
        stuck_clients.push(reader);
        floods.push(tokio::spawn(async move {
            let mut sender = sender;
            for _ in 0..32 {
                let sent = tokio::time::timeout(
                    Duration::from_secs(20),
                    sender.send(Message::binary(vec![0x5A; 1 << 20])),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
        }));
    }
    let rss_abuse = rss_kib();
    settle(&server, "stuck tunnels ended by the send timeout", |st| {
        st.send_timeouts >= STUCK as u64 && st.paired == 0
    })
    .await;
    for f in floods {
        f.await.unwrap();
    }
    drop(stuck_clients);
    let overloaded = server.stats().rejected(Reject::Overloaded);

    // 5. Contact/listen churn: register, get contacted, relay, close; listeners replaced by
    //    newer ones; contacts for nobody.
    let base = server.base_url();
    let copts = ConnectOptions { timeout: Duration::from_secs(10), ..ConnectOptions::default() };
    for round in 0..CHURN {
        // The phone proves its listen secret; the contact id desktops use is derived from it.
        let secret = ListenSecret::random(&mut rand::rngs::OsRng);
        let contact_id = contact_id_of(&secret).to_vec();
        let lopts =
            ConnectOptions { extra_headers: listen_headers(&secret, false), ..copts.clone() };
        let _replaced = connect(&listen_url(&base, &contact_id), &lopts).await.unwrap();
        let mut listener = connect(&listen_url(&base, &contact_id), &lopts).await.unwrap();
        let contact = url(&base, &TunnelPath::Contact { contact_id: contact_id.clone() });
        let with_payload = ConnectOptions { client_payload: Some("A1".into()), ..copts.clone() };
        // The listener's registration may trail its 101 by a moment.
        let mut desktop = None;
        for _ in 0..200 {
            match connect(&contact, &with_payload).await {
                Ok(d) => {
                    desktop = Some(d);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        let mut desktop = desktop.expect("contact never reached the listener");
        assert_eq!(listener.await_client_payload().await.unwrap(), vec![0xA1]);
        desktop.send(b"ping").await.unwrap();
        assert_eq!(listener.recv().await.unwrap().unwrap().as_ref(), b"ping");
        let nobody = url(&base, &TunnelPath::Contact { contact_id: b"nobody".to_vec() });
        assert!(connect(&nobody, &with_payload).await.is_err());
        if round % 2 == 0 {
            drop(desktop);
        } else {
            drop(listener);
        }
    }

    // 6. Idle phones leave; every gauge returns to 0.
    drop(idle);
    settle(&server, "every gauge at 0 after the abuse", ServerStats::is_idle).await;

    // 7. A real ceremony through the same server.
    register_through(&server).await;
    settle(&server, "every gauge at 0 after the ceremony", ServerStats::is_idle).await;

    let stats = server.stats();
    let growth = match (rss_start, rss_idle) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let per_idle = growth.map(|g| g as f64 / n as f64);
    println!(
        "tunnel abuse: {n} idle half-open tunnels (set up in {idle_time:?}), {LORIS} slow-loris, \
         {STUCK} never-reading peers, {CHURN} contact/listen rounds\n  \
         RSS: start {rss_start:?} KiB, with idle tunnels {rss_idle:?} KiB, under full abuse \
         {rss_abuse:?} KiB\n  \
         RSS per idle tunnel (server + client, 2 sockets): {}\n  \
         refused: {} over the connection cap (503), {} over the per-source cap (429); \
         {} request timeouts, {} send timeouts, {} dropped unanswered",
        per_idle.map_or("unavailable".to_owned(), |k| format!("{k:.1} KiB")),
        overloaded,
        stats.rejected(Reject::TooManyFromSource),
        stats.request_timeouts,
        stats.send_timeouts,
        stats.dropped_connections,
    );
    if let Some(g) = growth {
        let bound = MAX_KIB_PER_IDLE_TUNNEL * n as u64;
        assert!(g < bound, "RSS grew {g} KiB for {n} idle tunnels (bound {bound} KiB)");
    }
    if let (Some(a), Some(b)) = (rss_start, rss_abuse) {
        let bound = MAX_KIB_PER_IDLE_TUNNEL * n as u64 + RSS_ALLOWANCE_KIB;
        assert!(b.saturating_sub(a) < bound, "RSS under abuse grew {} KiB (bound {bound})", b - a);
    }
    assert!(stats.request_timeouts >= LORIS as u64);
    assert!(stats.send_timeouts >= STUCK as u64);
    server.shutdown().await;
}

/// Registers a credential: desktop runner ↔ this server ↔ the virtual phone, adverts over a
/// Unix datagram socket (as `desktop_hybrid.rs` does).
async fn register_through(server: &TunnelServerHandle) {
    let dir = tempfile::tempdir().unwrap();
    let adverts = dir.path().join("adverts.sock");
    let mut config = desktop_config(server.base_url(), adverts.clone());
    config.timeouts.late_updates = Duration::from_millis(500);

    let mut phone_config = phone_config(server.base_url(), adverts);
    phone_config.desktop_timeout = Duration::from_secs(5);
    let mut phone =
        VirtualPhone::new(phone_config, PhoneState::new(&mut rand::rngs::OsRng), None, None);

    let (qr_tx, mut qr_rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = move |e: &CeremonyEvent| {
        if let CeremonyEvent::Qr { url } = e {
            let _ = qr_tx.send(url.clone());
        }
    };
    let request = CeremonyRequest::Register(RegisterOptions::new("example.com", "alice"));
    let desktop_side = ceremony::run(
        Transport::Hybrid(HybridTransport::new(config)),
        request,
        Some(Arc::new(sink)),
        tokio_util::sync::CancellationToken::new(),
    );
    let phone_side = async {
        let url = qr_rx.recv().await.expect("desktop showed no QR");
        let qr = QrPayload::from_url(&url).unwrap();
        let _ = phone.run_qr(&qr).await;
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(desktop_side, phone_side)
    })
    .await
    .expect("ceremony exceeded its time bound");
    match result {
        Ok(CeremonyOutcome::Registered(reg)) => {
            reg.verify().expect("the registration verifies");
        }
        other => panic!("expected a registration through the abused server, got {other:?}"),
    }
}
