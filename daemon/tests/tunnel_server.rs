//! The tunnel server against the tunnel client over loopback: pairing, verbatim relay, every
//! refusal status, TTL, size/type policing, closing, and the state-assisted contact flow.
//! Every test is bounded by `tokio::time::timeout`.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::tunnel::{url, RoutingId, TunnelId, TunnelPath, SUBPROTOCOL};
use cablebridged::tunnel::client::{connect, ConnectOptions, TunnelClientError, TunnelConnection};
use cablebridged::tunnel::listen::{contact_id, listen_headers, ListenSecret};
use cablebridged::tunnel::listen_url;
use cablebridged::tunnel::server::{Reject, TunnelServer, TunnelServerConfig, TunnelServerHandle};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("test exceeded its time bound")
}

async fn server(config: TunnelServerConfig) -> TunnelServerHandle {
    TunnelServer::bind(config).await.unwrap()
}

fn opts() -> ConnectOptions {
    ConnectOptions { timeout: Duration::from_secs(5), ..ConnectOptions::default() }
}

fn tunnel(n: u8) -> TunnelId {
    TunnelId([n; 16])
}

async fn phone(s: &TunnelServerHandle, t: TunnelId) -> TunnelConnection {
    connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: t }), &opts()).await.unwrap()
}

async fn desktop(
    s: &TunnelServerHandle,
    r: RoutingId,
    t: TunnelId,
) -> Result<TunnelConnection, TunnelClientError> {
    connect(&url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: t }), &opts())
        .await
}

async fn pair(s: &TunnelServerHandle, t: TunnelId) -> (TunnelConnection, TunnelConnection) {
    let p = phone(s, t).await;
    let r = p.routing_id().expect("routing id header on /cable/new");
    let d = desktop(s, r, t).await.unwrap();
    (p, d)
}

fn status(e: TunnelClientError) -> u16 {
    match e {
        TunnelClientError::HttpStatus { status, .. } => status,
        other => panic!("expected an HTTP status, got {other}"),
    }
}

/// Polls the server counters until `check` holds (tunnel-end accounting is asynchronous).
async fn eventually(
    s: &TunnelServerHandle,
    check: impl Fn(&cablebridged::tunnel::server::ServerStats) -> bool,
) {
    for _ in 0..200 {
        if check(&s.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("stats never matched: {:?}", s.stats());
}

/// A raw tungstenite client, for what our client refuses to do (text, oversize, no subprotocol).
async fn raw(
    target: &str,
    subprotocol: bool,
    max: usize,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsError,
> {
    let mut req = target.into_client_request().unwrap();
    if subprotocol {
        req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    tokio_tungstenite::connect_async_with_config(req, Some(config), false).await.map(|(ws, _)| ws)
}

#[tokio::test]
async fn pairs_and_relays_verbatim_both_ways() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (mut p, mut d) = pair(&s, tunnel(1)).await;
        let r = p.routing_id().unwrap();
        assert_eq!(r.to_hex().len(), 6);
        eventually(&s, |st| st.paired == 1).await;
        for len in [0usize, 1, 64 * 1024, 1 << 20] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            d.send(&msg).await.unwrap();
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), &msg[..], "desktop→phone {len}");
            let back: Vec<u8> = msg.iter().map(|b| !b).collect();
            p.send(&back).await.unwrap();
            assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), &back[..], "phone→desktop {len}");
        }
        d.close().await.unwrap();
        assert!(p.recv().await.is_none(), "phone must see the close");
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1000));
        let total = 2 * (64 * 1024 + (1 << 20) + 1) as u64;
        eventually(&s, |st| {
            st.paired == 0 && st.messages_relayed == 8 && st.bytes_relayed == total
        })
        .await;
        assert_eq!(s.stats().total_paired, 1);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn desktop_messages_sent_before_phone_reads_are_delivered_in_order() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (mut p, mut d) = pair(&s, tunnel(2)).await;
        for i in 0..20u8 {
            d.send(&[i; 100]).await.unwrap();
        }
        for i in 0..20u8 {
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), &[i; 100][..]);
        }
    })
    .await;
}

#[tokio::test]
async fn fixed_routing_id_is_used_and_hex_is_case_insensitive() {
    bounded(async {
        let fixed = RoutingId([0xAB, 0xCD, 0xEF]);
        let s = server(TunnelServerConfig { routing_id: Some(fixed), ..Default::default() }).await;
        let mut p = phone(&s, tunnel(3)).await;
        assert_eq!(p.routing_id(), Some(fixed));
        let lower = format!("{}/cable/connect/abcdef/{}", s.base_url(), "03".repeat(16));
        let mut d = connect(&lower, &opts()).await.unwrap();
        d.send(b"hi").await.unwrap();
        assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), b"hi");
    })
    .await;
}

#[tokio::test]
async fn refusals_carry_the_documented_statuses() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        // No subprotocol: 400, as Google's server answers.
        let new = url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(4) });
        match raw(&new, false, 1 << 20).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 400),
            other => panic!("expected HTTP 400, got {:?}", other.map(|_| ())),
        }
        // Unknown tunnel: 404.
        let e = desktop(&s, RoutingId([1, 2, 3]), tunnel(5)).await.unwrap_err();
        assert_eq!(e.fault(), Fault::Peer);
        assert_eq!(status(e), 404);
        // Wrong routing id: 404, and the tunnel stays claimable with the right one.
        let _p = phone(&s, tunnel(6)).await;
        let right = _p.routing_id().unwrap();
        let wrong = RoutingId([right.0[0] ^ 1, right.0[1], right.0[2]]);
        assert_eq!(status(desktop(&s, wrong, tunnel(6)).await.unwrap_err()), 404);
        let _d = desktop(&s, right, tunnel(6)).await.unwrap();
        // Already paired: 409. Duplicate tunnel id from a phone: 409.
        assert_eq!(status(desktop(&s, right, tunnel(6)).await.unwrap_err()), 409);
        let dup = connect(&new.replace(&tunnel(4).to_hex(), &tunnel(6).to_hex()), &opts()).await;
        assert_eq!(status(dup.unwrap_err()), 409);
        // Not our path: 404.
        let other = connect(&format!("{}/elsewhere", s.base_url()), &opts()).await;
        assert_eq!(status(other.unwrap_err()), 404);
        let st = s.stats();
        assert_eq!(st.rejected(Reject::MissingSubprotocol), 1);
        assert_eq!(st.rejected(Reject::UnknownTunnel), 1);
        assert_eq!(st.rejected(Reject::RoutingMismatch), 1);
        assert_eq!(st.rejected(Reject::AlreadyPaired), 1);
        assert_eq!(st.rejected(Reject::DuplicateTunnel), 1);
        assert_eq!(st.rejected(Reject::BadPath), 1);
    })
    .await;
}

#[tokio::test]
async fn unpaired_tunnel_expires_after_ttl() {
    bounded(async {
        let cfg = TunnelServerConfig {
            unpaired_ttl: Duration::from_millis(200),
            ..TunnelServerConfig::default()
        };
        let s = server(cfg).await;
        let mut p = phone(&s, tunnel(7)).await;
        let r = p.routing_id().unwrap();
        eventually(&s, |st| st.waiting == 1).await;
        assert!(p.recv().await.is_none(), "the server closes an expired tunnel");
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1001));
        assert_eq!(status(desktop(&s, r, tunnel(7)).await.unwrap_err()), 404);
        eventually(&s, |st| st.expired == 1 && st.waiting == 0).await;
    })
    .await;
}

#[tokio::test]
async fn oversize_message_closes_with_policy_violation_and_closes_the_peer() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let mut p = phone(&s, tunnel(8)).await;
        let r = p.routing_id().unwrap();
        let target =
            url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: tunnel(8) });
        let mut d = raw(&target, true, 4 << 20).await.unwrap();
        d.send(Message::binary(vec![0u8; (1 << 20) + 1])).await.unwrap();
        match d.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
            other => panic!("expected a 1008 close, got {other:?}"),
        }
        assert!(p.recv().await.is_none(), "the phone side is closed too");
        // Our client refuses to send what the server would refuse.
        let (_p2, mut d2) = pair(&s, tunnel(9)).await;
        let e = d2.send(&vec![0u8; (1 << 20) + 1]).await.unwrap_err();
        assert_eq!(e.fault(), Fault::Caller);
    })
    .await;
}

#[tokio::test]
async fn text_message_closes_both_sides() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let mut p = phone(&s, tunnel(10)).await;
        let r = p.routing_id().unwrap();
        let target =
            url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: tunnel(10) });
        let mut d = raw(&target, true, 1 << 20).await.unwrap();
        d.send(Message::text("hello")).await.unwrap();
        match d.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1003),
            other => panic!("expected a 1003 close, got {other:?}"),
        }
        assert!(p.recv().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn phone_closing_closes_desktop_and_frees_the_slot() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (p, mut d) = pair(&s, tunnel(11)).await;
        let r = d.routing_id();
        assert!(r.is_none(), "only /cable/new carries a routing id");
        p.close().await.unwrap();
        assert!(d.recv().await.is_none());
        eventually(&s, |st| st.paired == 0).await;
        // The tunnel id is free again.
        let _p = phone(&s, tunnel(11)).await;
    })
    .await;
}

#[tokio::test]
async fn message_budget_per_peer_is_enforced() {
    bounded(async {
        let cfg = TunnelServerConfig { max_messages_per_peer: 3, ..Default::default() };
        let s = server(cfg).await;
        let (mut p, mut d) = pair(&s, tunnel(12)).await;
        for i in 0..3u8 {
            d.send(&[i]).await.unwrap();
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), &[i]);
        }
        d.send(&[3]).await.unwrap();
        assert!(p.recv().await.is_none(), "the fourth message ends the tunnel");
        assert!(d.recv().await.is_none());
        assert_eq!(d.close_frame().map(|(c, _)| c), Some(1008));
    })
    .await;
}

#[tokio::test]
async fn idle_tunnel_is_closed() {
    bounded(async {
        let cfg =
            TunnelServerConfig { idle_timeout: Duration::from_millis(300), ..Default::default() };
        let s = server(cfg).await;
        let (mut p, mut d) = pair(&s, tunnel(13)).await;
        // Activity postpones the idle close.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            d.send(b"x").await.unwrap();
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), b"x");
        }
        assert!(p.recv().await.is_none());
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1001));
        assert!(d.recv().await.is_none());
    })
    .await;
}

/// Holds `/cable/listen` for the contact id of listen secret `[seed; 32]` (the phone's
/// credential; see `cablebridged::tunnel::listen`).
async fn listen(s: &TunnelServerHandle, seed: u8) -> (Vec<u8>, TunnelConnection) {
    let secret = ListenSecret::new([seed; 32]);
    let id = contact_id(&secret).to_vec();
    let o = ConnectOptions { extra_headers: listen_headers(&secret, false), ..opts() };
    let conn = connect(&listen_url(&s.base_url(), &id), &o).await.unwrap();
    (id, conn)
}

#[tokio::test]
async fn contact_flow_delivers_payload_and_connect_signal() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (contact_id, mut listener) = listen(&s, 1).await;
        eventually(&s, |st| st.listening == 1).await;
        let contact = url(&s.base_url(), &TunnelPath::Contact { contact_id: contact_id.clone() });
        let payload = vec![0xA3, 0x01, 0x48, 0x00, 0xFF];
        let desktop_opts = ConnectOptions {
            client_payload: Some(hex::encode_upper(&payload)),
            signal_connection: true,
            ..opts()
        };
        let mut d = connect(&contact, &desktop_opts).await.unwrap();
        assert!(d.signal_connection(), "server echoes X-caBLE-Signal-Connection");
        d.await_phone_connected().await.unwrap();
        assert_eq!(listener.await_client_payload().await.unwrap(), payload);
        d.send(b"noise msg 1").await.unwrap();
        assert_eq!(listener.recv().await.unwrap().unwrap().as_ref(), b"noise msg 1");
        listener.send(b"noise msg 2").await.unwrap();
        assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), b"noise msg 2");
        // The listener was consumed: the phone is not reachable on it now (404, not Gone).
        let again = connect(&contact, &desktop_opts).await.unwrap_err();
        assert_eq!(status(again), 404);
        assert_eq!(s.stats().rejected(Reject::UnknownContact), 1);
    })
    .await;
}

#[tokio::test]
async fn contact_without_signal_and_unknown_contact_gone() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let gone = url(&s.base_url(), &TunnelPath::Contact { contact_id: b"nobody".to_vec() });
        let with_payload = ConnectOptions { client_payload: Some("A0".into()), ..opts() };
        // Nobody listens on it: not reachable (404); only a revoked id is Gone (410).
        let e = connect(&gone, &with_payload).await.unwrap_err();
        assert!(!e.is_gone());
        assert_eq!(e.fault(), Fault::Peer);
        assert!(e.to_string().contains("404"), "{e}");

        let (phone_1, mut listener) = listen(&s, 2).await;
        eventually(&s, |st| st.listening == 1).await;
        let contact = url(&s.base_url(), &TunnelPath::Contact { contact_id: phone_1 });
        // Missing client payload: 400, and the listener stays registered.
        assert_eq!(status(connect(&contact, &opts()).await.unwrap_err()), 400);
        let mut d = connect(&contact, &with_payload).await.unwrap();
        assert!(!d.signal_connection());
        assert_eq!(listener.await_client_payload().await.unwrap(), vec![0xA0]);
        // No 0x00 signal: the first message is the phone's.
        listener.send(b"first").await.unwrap();
        assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), b"first");
    })
    .await;
}

#[tokio::test]
async fn newer_listener_replaces_older() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (p, mut old) = listen(&s, 3).await;
        eventually(&s, |st| st.listening == 1).await;
        let (_, mut new) = listen(&s, 3).await;
        assert!(old.recv().await.is_none(), "the replaced listener is closed");
        let contact = url(&s.base_url(), &TunnelPath::Contact { contact_id: p });
        let with_payload = ConnectOptions { client_payload: Some("01".into()), ..opts() };
        let _d = connect(&contact, &with_payload).await.unwrap();
        assert_eq!(new.await_client_payload().await.unwrap(), vec![1]);
    })
    .await;
}

#[tokio::test]
async fn capacity_limit_answers_503_and_shutdown_closes_tunnels() {
    bounded(async {
        let s = server(TunnelServerConfig { max_tunnels: 1, ..Default::default() }).await;
        let (mut p, mut d) = pair(&s, tunnel(14)).await;
        let e = connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(15) }), &opts())
            .await
            .unwrap_err();
        assert_eq!(status(e), 503);
        s.shutdown().await;
        assert!(p.recv().await.is_none());
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1001));
        assert!(d.recv().await.is_none());
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Bounded resources under abuse (issue 8 item 2): caps, id shapes, request limits, lifetimes
// and send timeouts. Each of these failed on the server before the limits existed.

/// A WebSocket upgrade request for `path`, with `extra` header lines (each ending in CRLF).
fn upgrade_request(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: fido.cable\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A TCP connection to the server, optionally from a chosen loopback source address.
async fn tcp_from(
    s: &TunnelServerHandle,
    source: Option<std::net::IpAddr>,
) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = source {
        socket.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
    }
    socket.connect(s.local_addr()).await.unwrap()
}

/// Sends `request` on a raw connection and returns the HTTP status of the answer.
async fn raw_status(
    s: &TunnelServerHandle,
    source: Option<std::net::IpAddr>,
    request: &[u8],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tcp_from(s, source).await;
    // The server may answer (and stop reading) before all of an oversized request is written.
    let _ = tcp.write_all(request).await;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

#[tokio::test]
async fn contact_tunnels_count_against_max_tunnels() {
    bounded(async {
        let s = server(TunnelServerConfig { max_tunnels: 1, ..Default::default() }).await;
        let (contact_id, mut listener) = listen(&s, 9).await;
        eventually(&s, |st| st.listening == 1).await;
        let contact = url(&s.base_url(), &TunnelPath::Contact { contact_id });
        let with_payload = ConnectOptions { client_payload: Some("01".into()), ..opts() };
        let d = connect(&contact, &with_payload).await.unwrap();
        assert_eq!(listener.await_client_payload().await.unwrap(), vec![1]);
        eventually(&s, |st| st.paired == 1).await;
        // The claimed contact tunnel still holds the only place.
        let e = connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(20) }), &opts())
            .await
            .unwrap_err();
        assert_eq!(status(e), 503);
        assert_eq!(s.stats().rejected(Reject::AtCapacity), 1);
        d.close().await.unwrap();
        eventually(&s, |st| st.paired == 0).await;
        let _p = phone(&s, tunnel(20)).await;
    })
    .await;
}

#[tokio::test]
async fn connection_cap_answers_503_before_upgrading() {
    bounded(async {
        let s = server(TunnelServerConfig { max_connections: 2, ..Default::default() }).await;
        // Two connections that have not sent their request yet already count.
        let a = tcp_from(&s, None).await;
        let b = tcp_from(&s, None).await;
        eventually(&s, |st| st.connections == 2).await;
        let e = connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(21) }), &opts())
            .await
            .unwrap_err();
        assert_eq!(status(e), 503);
        assert_eq!(s.stats().rejected(Reject::Overloaded), 1);
        drop((a, b));
        eventually(&s, |st| st.connections == 0).await;
        // A paired tunnel holds both of its connections.
        let (_p, _d) = pair(&s, tunnel(21)).await;
        eventually(&s, |st| st.connections == 2 && st.paired == 1).await;
        let e = desktop(&s, RoutingId([1, 2, 3]), tunnel(22)).await.unwrap_err();
        assert_eq!(status(e), 503);
    })
    .await;
}

#[tokio::test]
async fn per_source_cap_answers_429_and_other_sources_still_connect() {
    bounded(async {
        let s =
            server(TunnelServerConfig { max_connections_per_ip: 2, ..Default::default() }).await;
        let _a = tcp_from(&s, None).await;
        let _b = tcp_from(&s, None).await;
        eventually(&s, |st| st.connections == 2).await;
        let e = connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(23) }), &opts())
            .await
            .unwrap_err();
        assert_eq!(status(e), 429);
        assert_eq!(s.stats().rejected(Reject::TooManyFromSource), 1);
        // Another source address is counted on its own.
        let other = Some(std::net::IpAddr::from([127, 0, 0, 2]));
        let path = TunnelPath::New { tunnel_id: tunnel(23) }.to_path();
        assert_eq!(raw_status(&s, other, &upgrade_request(&path, "")).await, 101);
    })
    .await;
}

#[tokio::test]
async fn unpaired_buffer_budget_is_server_wide() {
    bounded(async {
        let s = server(TunnelServerConfig { max_unpaired_buffer: 100, ..Default::default() }).await;
        let mut a = phone(&s, tunnel(24)).await;
        a.send(&[1; 60]).await.unwrap();
        eventually(&s, |st| st.unpaired_buffered_bytes == 60).await;
        // 60 more would cross the budget: that phone is closed with 1008.
        let mut b = phone(&s, tunnel(25)).await;
        b.send(&[2; 60]).await.unwrap();
        assert!(b.recv().await.is_none());
        assert_eq!(b.close_frame().map(|(c, _)| c), Some(1008));
        let mut c = phone(&s, tunnel(26)).await;
        c.send(&[3; 40]).await.unwrap();
        eventually(&s, |st| st.unpaired_buffered_bytes == 100 && st.buffer_overflows == 1).await;
        // Budget used up: no new unpaired phones.
        let e = connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(27) }), &opts())
            .await
            .unwrap_err();
        assert_eq!(status(e), 503);
        assert_eq!(s.stats().rejected(Reject::BufferFull), 1);
        // Pairing delivers the early message and gives its bytes back.
        let mut d = desktop(&s, a.routing_id().unwrap(), tunnel(24)).await.unwrap();
        assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), &[1; 60][..]);
        eventually(&s, |st| st.unpaired_buffered_bytes == 40).await;
        drop(c);
        eventually(&s, |st| st.unpaired_buffered_bytes == 0).await;
    })
    .await;
}

#[tokio::test]
async fn malformed_ids_are_400_and_unknown_paths_404() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let t = "AB".repeat(16);
        let long_contact = "A".repeat(400);
        let malformed = [
            "/cable/new/ABCDEF".to_owned(),
            format!("/cable/new/{t}00"),
            format!("/cable/new/{}", "ZZ".repeat(16)),
            format!("/cable/new/{t}/extra"),
            format!("/cable/connect/ABCD/{t}"),
            format!("/cable/connect/ABCDEF/{t}/x"),
            format!("/cable/contact/{long_contact}"),
            "/cable/contact/a+b".to_owned(),
            format!("/cable/listen/{long_contact}"),
            "/cable/listen/a.b".to_owned(),
            format!("/cable/new/{}", "A".repeat(4000)),
        ];
        for path in &malformed {
            let extra = "X-caBLE-Client-Payload: 01\r\n";
            assert_eq!(raw_status(&s, None, &upgrade_request(path, extra)).await, 400, "{path}");
        }
        assert_eq!(s.stats().rejected(Reject::MalformedId), malformed.len() as u64);
        assert_eq!(raw_status(&s, None, &upgrade_request("/cable/other/x", "")).await, 404);
        eventually(&s, |st| st.connections == 0).await;
    })
    .await;
}

#[tokio::test]
async fn oversized_upgrade_request_gets_431() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let path = TunnelPath::New { tunnel_id: tunnel(28) }.to_path();
        let pad = format!("X-Pad: {}\r\n", "p".repeat(16 * 1024));
        assert_eq!(raw_status(&s, None, &upgrade_request(&path, &pad)).await, 431);
        assert_eq!(s.stats().rejected(Reject::RequestTooLarge), 1);
        // Just under the limit is fine.
        let pad = format!("X-Pad: {}\r\n", "p".repeat(6 * 1024));
        assert_eq!(raw_status(&s, None, &upgrade_request(&path, &pad)).await, 101);
    })
    .await;
}

#[tokio::test]
async fn slow_loris_upgrade_is_cut_counted_and_released() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded(async {
        let cfg = TunnelServerConfig {
            handshake_timeout: Duration::from_millis(300),
            ..TunnelServerConfig::default()
        };
        let s = server(cfg).await;
        let mut tcp = tcp_from(&s, None).await;
        let request = upgrade_request(&TunnelPath::New { tunnel_id: tunnel(29) }.to_path(), "");
        // One byte every 50 ms: the request would take seconds; the server cuts it at 300 ms.
        let mut cut = false;
        for byte in request {
            if tcp.write_all(&[byte]).await.is_err() {
                cut = true;
                break;
            }
            let mut buf = [0u8; 16];
            match tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    cut = true;
                    break;
                }
                Ok(Ok(_)) => panic!("the server answered a slow request"),
                Err(_) => {}
            }
        }
        assert!(cut, "the server let a slow request complete");
        eventually(&s, |st| st.request_timeouts == 1 && st.connections == 0).await;
    })
    .await;
}

#[tokio::test]
async fn pings_do_not_keep_a_tunnel_alive() {
    bounded(async {
        let cfg =
            TunnelServerConfig { idle_timeout: Duration::from_millis(400), ..Default::default() };
        let s = server(cfg).await;
        let mut p = phone(&s, tunnel(30)).await;
        let r = p.routing_id().unwrap();
        let target =
            url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: tunnel(30) });
        let mut d = raw(&target, true, 1 << 20).await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let code = loop {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = d.send(Message::Ping(vec![1u8].into())).await;
                }
                msg = d.next() => match msg {
                    Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    other => panic!("expected a close, got {other:?}"),
                },
            }
        };
        assert_eq!(code, Some(1001));
        assert!(p.recv().await.is_none());
        eventually(&s, |st| st.idle_closed == 1).await;
    })
    .await;
}

#[tokio::test]
async fn tunnel_lifetime_is_absolute_however_busy() {
    bounded(async {
        let cfg = TunnelServerConfig {
            max_tunnel_lifetime: Duration::from_millis(500),
            max_messages_per_peer: 10_000,
            ..Default::default()
        };
        let s = server(cfg).await;
        let (mut p, mut d) = pair(&s, tunnel(31)).await;
        let mut sent = 0u32;
        loop {
            if d.send(b"busy").await.is_err() {
                break;
            }
            sent += 1;
            match p.recv().await {
                Some(Ok(m)) => assert_eq!(m.as_ref(), b"busy"),
                None => break,
                Some(Err(e)) => panic!("{e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(sent >= 2, "the tunnel relayed before its end");
        assert_eq!(p.recv().await.map(|r| r.is_ok()), None);
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1001));
        eventually(&s, |st| st.lifetime_closed == 1 && st.paired == 0).await;
    })
    .await;
}

#[tokio::test]
async fn peer_that_stops_reading_is_cut_by_the_send_timeout() {
    bounded(async {
        let cfg =
            TunnelServerConfig { send_timeout: Duration::from_millis(300), ..Default::default() };
        let s = server(cfg).await;
        let mut p = phone(&s, tunnel(32)).await;
        let r = p.routing_id().unwrap();
        // A desktop with a tiny receive window that never reads.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(s.local_addr()).await.unwrap();
        let target =
            url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: tunnel(32) });
        let mut req = target.into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
        let (_stuck_desktop, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        eventually(&s, |st| st.paired == 1).await;
        // The phone sends far more than the kernel buffers hold; the server must give up on the
        // desktop instead of waiting forever, and close the phone.
        let flood = async {
            for _ in 0..64 {
                if p.send(&vec![0x55u8; 1 << 20]).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), flood).await;
        eventually(&s, |st| st.send_timeouts == 1).await;
        // Whatever the phone still had in flight, it ends with the close.
        while let Some(Ok(_)) = p.recv().await {}
        eventually(&s, |st| st.paired == 0).await;
    })
    .await;
}

#[tokio::test]
async fn early_messages_to_a_desktop_that_never_reads_are_cut_by_the_send_timeout() {
    bounded(async {
        // Early messages larger than the kernel's socket buffers (tcp_wmem max is 4 MiB), so
        // the flush to a desktop that never reads cannot finish.
        let big = 12 << 20;
        let fixed = RoutingId([7, 7, 7]);
        let cfg = TunnelServerConfig {
            send_timeout: Duration::from_millis(300),
            max_message: big,
            max_unpaired_buffer: 2 * big,
            routing_id: Some(fixed),
            ..Default::default()
        };
        let s = server(cfg).await;
        let new = url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(33) });
        let mut p = raw(&new, true, 2 * big).await.unwrap();
        p.send(Message::binary(vec![0x33u8; big])).await.unwrap();
        eventually(&s, |st| st.unpaired_buffered_bytes == big as u64).await;
        // The desktop arrives with a tiny receive window and never reads.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(s.local_addr()).await.unwrap();
        let target =
            url(&s.base_url(), &TunnelPath::Connect { routing_id: fixed, tunnel_id: tunnel(33) });
        let mut req = target.into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
        let (_stuck_desktop, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        eventually(&s, |st| st.send_timeouts == 1 && st.unpaired_buffered_bytes == 0).await;
        // The phone's side is closed too.
        loop {
            match p.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        eventually(&s, |st| st.paired == 0).await;
    })
    .await;
}
