//! UDP-HID transport against loopback peers: echo, strangers, `local=`, cancel safety, vanishing.
//! Every wait is bounded by a tokio timeout so a regression fails instead of hanging CI.

// Helpers outside #[test] fns are test code too; clippy.toml only exempts #[test] bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use cablebridge_protocol::error::{Classify, Fault, Stage};
use cablebridged::hid::{DeviceAddress, HidDevice, HidError, HidTransport, HidrawOptions, UdpHid};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

fn report(tag: u8) -> [u8; 64] {
    let mut r = [0u8; 64];
    for (i, b) in r.iter_mut().enumerate() {
        *b = tag.wrapping_add(i as u8);
    }
    r
}

async fn peer() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    (sock, addr)
}

async fn open(addr: &str) -> HidDevice {
    let address: DeviceAddress = addr.parse().unwrap();
    timeout(LIMIT, HidDevice::open(&address, &HidrawOptions::default())).await.unwrap().unwrap()
}

async fn recv(dev: &impl HidTransport) -> [u8; 64] {
    let mut buf = [0u8; 64];
    let n = timeout(LIMIT, dev.recv_report(&mut buf)).await.expect("report in time").unwrap();
    assert_eq!(n, 64);
    buf
}

#[tokio::test]
async fn echo_peer_round_trip_one_report_per_datagram() {
    let (sim, sim_addr) = peer().await;
    let dev = open(&format!("udp:{sim_addr}")).await;
    assert_eq!(dev.report_len(), 64);
    assert!(dev.describe().contains(&sim_addr.to_string()));

    let sent = report(1);
    dev.send_report(&sent).await.unwrap();
    let mut dgram = [0u8; 100];
    let (n, from) = timeout(LIMIT, sim.recv_from(&mut dgram)).await.unwrap().unwrap();
    assert_eq!(n, 64, "no report-ID byte on UDP-HID");
    assert_eq!(&dgram[..n], &sent);

    // Answer with a different report, as an authenticator would.
    sim.send_to(&report(2), from).await.unwrap();
    assert_eq!(recv(&dev).await, report(2));
    assert_eq!(dev.stats().dropped_foreign, 0);
}

#[tokio::test]
async fn strangers_and_wrong_sizes_are_dropped_and_counted() {
    let (sim, sim_addr) = peer().await;
    // Bind ourselves first so a stranger's datagram is queued before connect(), the case the
    // kernel's connected-socket filter cannot catch.
    let ours = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let our_addr = ours.local_addr().unwrap();
    let (stranger, _) = peer().await;
    stranger.send_to(&report(9), our_addr).await.unwrap();
    let dev = UdpHid::from_bound(ours, sim_addr, format!("udp:{sim_addr}")).await.unwrap();

    // Sent after connect(): the kernel drops this one silently.
    stranger.send_to(&report(10), our_addr).await.unwrap();
    // Wrong sizes from the device itself.
    sim.send_to(&[0u8; 63], our_addr).await.unwrap();
    sim.send_to(&[0u8; 65], our_addr).await.unwrap();
    sim.send_to(&report(3), our_addr).await.unwrap();

    assert_eq!(recv(&dev).await, report(3));
    let stats = HidTransport::stats(&dev);
    assert_eq!(stats.dropped_foreign, 1, "the datagram queued before connect()");
    assert_eq!(stats.dropped_malformed, 2);
}

#[tokio::test]
async fn local_option_binds_the_fixed_port_simulators_reply_to() {
    // A simulator that ignores the source and always answers to a fixed port (SoloKeys: 7112).
    let (sim, sim_addr) = peer().await;
    let fixed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let fixed_port = fixed.local_addr().unwrap().port();
    drop(fixed); // free the port; the transport binds it again below
    let dev = open(&format!("udp:{sim_addr},local=127.0.0.1:{fixed_port}")).await;
    let HidDevice::Udp(udp) = &dev else { panic!("expected a UDP device") };
    assert_eq!(udp.local_addr().unwrap().port(), fixed_port);

    dev.send_report(&report(4)).await.unwrap();
    let mut dgram = [0u8; 64];
    let (_, from) = timeout(LIMIT, sim.recv_from(&mut dgram)).await.unwrap().unwrap();
    assert_eq!(from.port(), fixed_port);
    sim.send_to(&report(5), ("127.0.0.1", fixed_port)).await.unwrap();
    assert_eq!(recv(&dev).await, report(5));
}

#[tokio::test]
async fn bind_conflict_is_a_typed_environment_error() {
    let (_sim, sim_addr) = peer().await;
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let address: DeviceAddress = format!("udp:{sim_addr},local=127.0.0.1:{port}").parse().unwrap();
    let err = HidDevice::open(&address, &HidrawOptions::default()).await.unwrap_err();
    assert!(matches!(err, HidError::Bind { .. }), "{err:?}");
    assert_eq!((err.fault(), err.stage()), (Fault::Environment, Stage::CtapHid));
    assert!(err.to_string().contains(&port.to_string()));
}

#[tokio::test]
async fn recv_is_cancel_safe_under_select() {
    let (sim, sim_addr) = peer().await;
    let dev = open(&format!("udp:{sim_addr}")).await;
    dev.send_report(&report(0)).await.unwrap();
    let mut dgram = [0u8; 64];
    let (_, ours) = timeout(LIMIT, sim.recv_from(&mut dgram)).await.unwrap().unwrap();

    // Nothing arrives: the timer wins and the receive future is dropped mid-wait.
    let mut buf = [0u8; 64];
    tokio::select! {
        r = dev.recv_report(&mut buf) => panic!("unexpected report {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    // A report that arrives while nobody is receiving is not lost.
    sim.send_to(&report(6), ours).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(recv(&dev).await, report(6));
}

#[tokio::test]
async fn vanished_device_keeps_recv_pending_and_fails_sends() {
    let (sim, sim_addr) = peer().await;
    let dev = open(&format!("udp:{sim_addr}")).await;
    dev.send_report(&report(0)).await.unwrap();
    let mut dgram = [0u8; 64];
    timeout(LIMIT, sim.recv_from(&mut dgram)).await.unwrap().unwrap();
    drop(sim); // the simulator exits

    // This send succeeds locally; the ICMP "port unreachable" comes back afterwards.
    dev.send_report(&report(1)).await.unwrap();
    let mut buf = [0u8; 64];
    let pending = timeout(Duration::from_millis(200), dev.recv_report(&mut buf)).await;
    assert!(pending.is_err(), "recv must stay pending, got {pending:?}");

    // The next send reports the vanished simulator, with a typed, human error.
    let err = dev.send_report(&report(2)).await.unwrap_err();
    assert!(matches!(err, HidError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Environment);
    assert!(err.to_string().contains(&sim_addr.to_string()), "{err}");
}

#[tokio::test]
async fn vanished_device_is_reported_by_send_even_without_a_pending_recv() {
    let (sim, sim_addr) = peer().await;
    let dev = open(&format!("udp:{sim_addr}")).await;
    drop(sim);
    dev.send_report(&report(1)).await.unwrap();
    // Loopback ICMP is delivered synchronously, so the second send sees ECONNREFUSED.
    let err = dev.send_report(&report(2)).await.unwrap_err();
    assert!(matches!(err, HidError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn caller_errors_for_wrong_lengths() {
    let (_sim, sim_addr) = peer().await;
    let dev = open(&format!("udp:{sim_addr}")).await;
    let err = dev.send_report(&[0u8; 65]).await.unwrap_err();
    assert!(matches!(err, HidError::ReportLength { .. }));
    assert_eq!(err.fault(), Fault::Caller);
    let mut small = [0u8; 10];
    let err = dev.recv_report(&mut small).await.unwrap_err();
    assert!(err.to_string().contains("receive buffer is 10 bytes"), "{err}");
}
