//! Shared by the daemon's integration tests: the hybrid rig (a tunnel server on loopback and a
//! temp dir; a desktop reading adverts from a Unix datagram socket there, a virtual phone
//! writing them), a phone-event recorder, the advert reader and QR connect of hand-made
//! desktops, a throwaway test CA, and the process probes of the load and fault tests (RSS,
//! open-file limit, open sockets, tunnel-server gauges).
//!
//! Each test binary uses a subset (`mod common;`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, OpenedAdvert, TrialOpen};
use cablebridge_protocol::hybrid::noise::IdentityKeyPair;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::DesktopHandshake;
use cablebridge_protocol::hybrid::tunnel::{url, TunnelId};
use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::Events;
use cablebridged::desktop::DesktopConfig;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{phone_sink, PhoneConfig, PhoneEvent};
use cablebridged::store::LinkStore;
use cablebridged::tunnel::client::{connect, ConnectOptions, TunnelConnection};
use cablebridged::tunnel::server::{
    ServerStats, TunnelServer, TunnelServerConfig, TunnelServerHandle,
};
use rand::rngs::OsRng;
use tokio::net::UnixDatagram;

/// A tunnel server on loopback and a temp dir for the advert socket and link stores. Each test
/// adds its own methods (`impl Rig { .. }` in the test file).
pub struct TunnelRig {
    pub server: TunnelServerHandle,
    pub dir: tempfile::TempDir,
}

impl TunnelRig {
    /// On a server with the default config.
    pub async fn new() -> TunnelRig {
        TunnelRig::on(TunnelServerConfig::default()).await
    }

    pub async fn on(config: TunnelServerConfig) -> TunnelRig {
        let server = TunnelServer::bind(config).await.unwrap();
        TunnelRig { server, dir: tempfile::tempdir().unwrap() }
    }

    /// Where desktops read (and phones send) adverts.
    pub fn advert_path(&self) -> PathBuf {
        self.dir.path().join("adverts.sock")
    }

    /// The desktop's link store (in `state/`).
    pub fn state_store(&self) -> LinkStore {
        LinkStore::in_dir(&self.dir.path().join("state"))
    }

    /// A desktop on this rig ([`desktop_config`]) that keeps links in [`Self::state_store`] and
    /// waits `late_updates` for a phone's late linking update.
    pub fn linking_desktop(&self, late_updates: Duration) -> DesktopConfig {
        let mut c = desktop_config(self.server.base_url(), self.advert_path());
        c.link_store = Some(self.state_store());
        c.timeouts.late_updates = late_updates;
        c
    }
}

/// A desktop on the tunnel server at `tunnel`, reading adverts from the Unix datagram socket
/// `adverts`, waiting 10 s for the advert and for the user (callers change what they need).
pub fn desktop_config(tunnel: String, adverts: PathBuf) -> DesktopConfig {
    let mut c = DesktopConfig::new(AdvertSource::UnixDatagram(adverts));
    c.tunnel_url = Some(tunnel);
    c.timeouts.advert = Duration::from_secs(10);
    c.timeouts.user = Duration::from_secs(10);
    c
}

/// A virtual phone's config on the tunnel server at `tunnel`, advertising into the Unix
/// datagram socket `adverts` every 20 ms (its other settings are the defaults).
pub fn phone_config(tunnel: String, adverts: PathBuf) -> PhoneConfig {
    let mut c = PhoneConfig::new(tunnel);
    c.sink = AdvertSinkSpec::Unix(adverts);
    c.advert_interval = Duration::from_millis(20);
    c
}

/// The events a phone (or bridge) reported, in order.
pub type Seen = Arc<Mutex<Vec<PhoneEvent>>>;

/// A progress sink recording every phone event into the returned list.
pub fn recording_sink() -> (Seen, Events) {
    let seen: Seen = Arc::default();
    let s2 = Arc::clone(&seen);
    let progress = phone_sink(move |_: u64, p: &PhoneEvent| s2.lock().unwrap().push(p.clone()));
    (seen, progress)
}

/// Reads hex adverts from `sock` until one opens under `key` (unbounded: callers bound it).
pub async fn next_advert(sock: &UnixDatagram, key: &EidKey, mode: EidMode) -> OpenedAdvert {
    let mut buf = [0u8; 256];
    loop {
        let n = sock.recv(&mut buf).await.unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap().trim();
        if let TrialOpen::Match(opened) = key.trial_open(&hex::decode(line).unwrap(), mode) {
            return opened;
        }
    }
}

/// A hand-made desktop's first steps after the phone's advert opened: connects to the phone's
/// tunnel on the server at `base` and sends handshake message 1 (QR-initiated, `sk` being the
/// key pair of the QR code); returns the connection and the handshake waiting for message 2.
pub async fn qr_connect(
    base: &str,
    opened: &OpenedAdvert,
    qr: &QrPayload,
    sk: &IdentityKeyPair,
) -> (TunnelConnection, DesktopHandshake) {
    let psk = opened.psk(&qr.secret);
    let path = opened.plaintext.connect_path(qr.tunnel_id());
    let mut conn = connect(&url(base, &path), &ConnectOptions::default()).await.unwrap();
    let (hs, msg1) = DesktopHandshake::start_qr(&psk, sk, &mut OsRng);
    conn.send(&msg1).await.unwrap();
    (conn, hs)
}

/// A throwaway test CA ("cablebridge test CA") and a leaf for `names` signed by it: the CA
/// certificate, the leaf certificate and the leaf's key.
pub fn test_ca_and_leaf(
    names: Vec<String>,
) -> (rcgen::Certificate, rcgen::Certificate, rcgen::KeyPair) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "cablebridge test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(names).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    (ca, leaf, leaf_key)
}

/// This process's resident set size in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's soft limit on open files.
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Tunnel id number `i`, byte 8 set to `tag` (each test its own tag).
pub fn numbered_tunnel_id(i: usize, tag: u8) -> TunnelId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    id[8] = tag;
    TunnelId(id)
}

/// Waits until the server's gauges satisfy `check`, re-checking every 10 ms, `tries` times at
/// most (the counters follow the connection tasks, which may run after a client saw its 101).
pub async fn settle(
    server: &TunnelServerHandle,
    what: &str,
    tries: usize,
    check: impl Fn(&ServerStats) -> bool,
) {
    for _ in 0..tries {
        if check(&server.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("server stats never reached {what}: {:?}", server.stats());
}

/// Distinct open sockets of this process. Sockets only, each counted once: the other tests'
/// runtimes start and stop in parallel threads while a case runs (epoll, eventfd, and a dup
/// of tokio's one signal socket each); sockets of their own are what a case opens.
pub fn socket_count() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.starts_with("socket:"))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}
