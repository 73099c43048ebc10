//! The uhid front against a socketpair standing in for the kernel: the test plays `/dev/uhid`
//! (reads CREATE2 and checks the FIDO descriptor, name and ids; sends START, OPEN and OUTPUT
//! reports; reads INPUT2 replies) through the same `UhidPort` + `serve` path the daemon runs on
//! the real device. Output reports carry the report-id byte 0 in front, as hidraw passes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{GetAssertionResponse, GetInfo};
use cablebridge_protocol::ctaphid::{fragment, Cid, Command, Packet, Reassembler, ReportLen};
use cablebridged::advert::AdvertSource;
use cablebridged::desktop::DesktopConfig;
use cablebridged::uhid::backend::{BridgeConfig, NoHooks, PassThrough, PhoneBridge};
use cablebridged::uhid::codec::{self, Create2, KernelEvent, EVENT_LEN};
use cablebridged::uhid::device::{fido_create2, serve, UhidPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

struct Kernel {
    io: UnixStream,
    cid: Cid,
}

impl Kernel {
    async fn read_event(&mut self) -> Vec<u8> {
        let mut buf = vec![0u8; EVENT_LEN];
        tokio::time::timeout(Duration::from_secs(10), self.io.read_exact(&mut buf))
            .await
            .expect("the device did not write an event within 10 s")
            .unwrap();
        buf
    }

    async fn send(&mut self, e: &KernelEvent) {
        self.io.write_all(&codec::encode_kernel(e)).await.unwrap();
    }

    /// Writes a CTAPHID message as hidraw would: OUTPUT events of 65 bytes, report id 0 first.
    async fn write_msg(&mut self, cid: Cid, cmd: Command, payload: &[u8]) {
        for report in fragment(cid, cmd, payload, ReportLen::DEFAULT).unwrap() {
            let mut data = vec![0u8];
            data.extend_from_slice(&report);
            self.send(&KernelEvent::Output { data, rtype: codec::RTYPE_OUTPUT }).await;
        }
    }

    /// Reads INPUT2 events until one whole message arrives; keepalives are counted.
    async fn read_msg(&mut self) -> (Command, Vec<u8>, usize) {
        let mut r = Reassembler::new(ReportLen::DEFAULT);
        let mut keepalives = 0;
        loop {
            let event = self.read_event().await;
            let report = codec::decode_input2(&event).unwrap();
            assert_eq!(report.len(), 64, "INPUT2 carries one 64-byte report, no report id");
            if let Some(msg) = r.push(Packet::parse(&report).unwrap()).unwrap() {
                if msg.cmd == Command::KeepAlive {
                    keepalives += 1;
                    r = Reassembler::new(ReportLen::DEFAULT);
                    continue;
                }
                return (msg.cmd, msg.payload, keepalives);
            }
        }
    }

    async fn cbor(&mut self, request: &[u8]) -> Vec<u8> {
        let cid = self.cid;
        self.write_msg(cid, Command::Cbor, request).await;
        let (cmd, payload, _) = self.read_msg().await;
        assert_eq!(cmd, Command::Cbor);
        payload
    }
}

fn bridge_with(
    advert_dir: &std::path::Path,
    linked: Option<String>,
    hooks: Arc<dyn cablebridged::uhid::backend::SessionHooks>,
) -> PhoneBridge {
    // Adverts from a socket nobody writes to: a phone ceremony waits at `advert` until cancelled.
    let mut desktop =
        DesktopConfig::new(AdvertSource::UnixDatagram(advert_dir.join("adverts.sock")));
    desktop.tunnel_url = Some("ws://127.0.0.1:9".into());
    if linked.is_some() {
        desktop.link_store = Some(cablebridged::store::LinkStore::in_dir(advert_dir));
    }
    PhoneBridge::new(BridgeConfig {
        desktop,
        linked,
        memory: None,
        hooks,
        review: Arc::new(PassThrough),
    })
}

async fn start() -> (Kernel, CancellationToken, tokio::task::JoinHandle<()>, std::path::PathBuf) {
    start_with(None, Arc::new(NoHooks)).await
}

async fn start_with(
    linked: Option<String>,
    hooks: Arc<dyn cablebridged::uhid::backend::SessionHooks>,
) -> (Kernel, CancellationToken, tokio::task::JoinHandle<()>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "cb-uhid-kernel-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (kernel_side, device_side) = UnixStream::pair().unwrap();
    let stop = CancellationToken::new();
    let stop2 = stop.clone();
    let mut backend = bridge_with(&dir, linked, hooks);
    let task = tokio::spawn(async move {
        let mut port = UhidPort::create(device_side, "socketpair", &fido_create2("test-serial"))
            .await
            .unwrap();
        serve(&mut port, &mut backend, &stop2).await.unwrap();
    });
    let mut k = Kernel { io: kernel_side, cid: Cid::BROADCAST };

    // CREATE2 first: the FIDO descriptor, our name and documented ids.
    let create = Create2::decode(&k.read_event().await).unwrap();
    assert_eq!(create.name, "cablebridge phone");
    assert_eq!((create.vendor, create.product), (0x1209, 0xCB1D));
    assert_eq!(create.bus, codec::BUS_USB);
    assert_eq!(create.uniq, "test-serial");
    assert_eq!(create.descriptor, codec::FIDO_REPORT_DESCRIPTOR);
    assert_eq!(&create.descriptor[..3], &[0x06, 0xd0, 0xf1], "usage page 0xF1D0");

    k.send(&KernelEvent::Start { dev_flags: 0 }).await;
    k.send(&KernelEvent::Open).await;
    // A feature-report request gets EIO, not silence (the kernel would wait 5 s).
    k.send(&KernelEvent::GetReport { id: 42 }).await;
    let reply = k.read_event().await;
    assert_eq!(codec::event_kind(&reply).unwrap(), codec::kind::GET_REPORT_REPLY);
    assert_eq!(&reply[4..10], &[42, 0, 0, 0, 5, 0]);

    // CTAPHID INIT on the broadcast channel.
    let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
    k.write_msg(Cid::BROADCAST, Command::Init, &nonce).await;
    let (cmd, payload, _) = k.read_msg().await;
    assert_eq!(cmd, Command::Init);
    assert_eq!(&payload[..8], &nonce);
    k.cid = Cid(u32::from_be_bytes(payload[8..12].try_into().unwrap()));
    assert_ne!(k.cid, Cid::BROADCAST);
    (k, stop, task, dir)
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[tokio::test]
async fn kernel_sees_a_fido_device_that_answers_get_info_and_probes_locally() {
    let (mut k, stop, task, dir) = start().await;

    let info = k.cbor(&[0x04]).await;
    assert_eq!(info[0], 0, "getInfo status OK");
    let info = GetInfo::from_cbor(&Value::decode(&info[1..]).unwrap()).unwrap();
    assert!(info.supports_version("FIDO_2_0") && info.supports_version("FIDO_2_1"));
    assert_eq!(info.option("clientPin"), None, "no clientPin: phones verify their user");
    assert_eq!(info.option("rk"), Some(true));

    // makeCredential with up:false can never register silently.
    let mc = Value::decode(&hex::decode(
        "a5015820000000000000000000000000000000000000000000000000000000000000000002a16269646b6578616d706c652e636f6d03a26269644101646e616d6561610481a263616c672664747970656a7075626c69632d6b657907a1627570f4",
    ).unwrap()).unwrap();
    let mut req = vec![0x01];
    req.extend(mc.to_vec());
    assert_eq!(k.cbor(&req).await, vec![0x2c], "CTAP2_ERR_INVALID_OPTION");

    // A silent getAssertion probe with an allowList: answered locally, no signature.
    let ga = Value::decode(&hex::decode(
        "a4016b6578616d706c652e636f6d02582000000000000000000000000000000000000000000000000000000000000000000381a2626964430a0b0c64747970656a7075626c69632d6b657905a1627570f4",
    ).unwrap()).unwrap();
    let mut req = vec![0x02];
    req.extend(ga.to_vec());
    let answer = k.cbor(&req).await;
    assert_eq!(answer[0], 0);
    let r = GetAssertionResponse::from_cbor(&Value::decode(&answer[1..]).unwrap()).unwrap();
    assert!(r.signature.is_empty(), "a probe answer signs nothing");
    assert_eq!(r.credential.unwrap().id, vec![0x0a, 0x0b, 0x0c]);

    // Anything else (clientPin) is not a command this device has.
    assert_eq!(k.cbor(&[0x06, 0xa1, 0x01, 0x01]).await, vec![0x01]);

    k.send(&KernelEvent::Close).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_phone_request_sends_keepalives_and_cancel_ends_it() {
    let (mut k, stop, task, dir) = start().await;
    // A real makeCredential: the bridge starts a hybrid session that waits for an advert.
    let mc = Value::decode(&hex::decode(
        "a4015820000000000000000000000000000000000000000000000000000000000000000002a16269646b6578616d706c652e636f6d03a26269644101646e616d6561610481a263616c672664747970656a7075626c69632d6b6579",
    ).unwrap()).unwrap();
    let mut req = vec![0x01];
    req.extend(mc.to_vec());
    let cid = k.cid;
    k.write_msg(cid, Command::Cbor, &req).await;
    // Keepalives (UPNEEDED) arrive while the phone is awaited.
    let mut seen = 0;
    while seen < 3 {
        let report = codec::decode_input2(&k.read_event().await).unwrap();
        let p = Packet::parse(&report).unwrap();
        match p {
            Packet::Init(init) if init.command() == Command::KeepAlive => {
                assert_eq!(init.data()[0], 2, "STATUS_UPNEEDED");
                seen += 1;
            }
            other => panic!("expected a keepalive, got {other:?}"),
        }
    }
    // Another channel is told the device is busy.
    k.write_msg(Cid::BROADCAST, Command::Init, &[9; 8]).await;
    let other = loop {
        let (cmd, payload, _) = k.read_msg().await;
        if cmd == Command::Init {
            break Cid(u32::from_be_bytes(payload[8..12].try_into().unwrap()));
        }
    };
    k.write_msg(other, Command::Cbor, &[0x04]).await;
    let (cmd, payload, _) = k.read_msg().await;
    assert_eq!((cmd, payload), (Command::Error, vec![0x06]), "ERR_CHANNEL_BUSY");

    // CTAPHID_CANCEL ends the hybrid session; the client gets KEEPALIVE_CANCEL.
    k.write_msg(cid, Command::Cancel, &[]).await;
    let (cmd, payload, _) = k.read_msg().await;
    assert_eq!((cmd, payload), (Command::Cbor, vec![0x2d]));

    // The device serves the next request normally.
    assert_eq!(k.cbor(&[0x04]).await[0], 0);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Records each session's outcome (as the daemon's registry would publish it).
#[derive(Default, Clone)]
struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

impl cablebridged::uhid::backend::SessionHooks for Recorder {
    fn start(
        &self,
        ceremony: &'static str,
        rp_id: &str,
    ) -> Option<cablebridged::uhid::backend::BridgeSession> {
        let me = self.clone();
        me.0.lock().unwrap().push(format!("start {ceremony} {rp_id}"));
        Some(cablebridged::uhid::backend::BridgeSession {
            events: None,
            cancel: CancellationToken::new(),
            finish: Box::new(move |r| {
                let line = match r {
                    Ok(reply) => format!("ok {}", reply.status.name()),
                    Err(e) => format!("error {} {e}", e.stage.as_str()),
                };
                me.0.lock().unwrap().push(line);
            }),
        })
    }
}

#[tokio::test]
async fn a_configured_linked_phone_is_asked_instead_of_a_qr_code() {
    let recorder = Recorder::default();
    let (mut k, stop, task, dir) =
        start_with(Some("Pixel".into()), Arc::new(recorder.clone())).await;
    let mc = Value::decode(&hex::decode(
        "a4015820000000000000000000000000000000000000000000000000000000000000000002a16269646b6578616d706c652e636f6d03a26269644101646e616d6561610481a263616c672664747970656a7075626c69632d6b6579",
    ).unwrap()).unwrap();
    let mut req = vec![0x01];
    req.extend(mc.to_vec());
    // No phone is linked under that name: the linked route fails at setup (no QR shown) and
    // the client gets CTAP1_ERR_OTHER at once.
    assert_eq!(k.cbor(&req).await, vec![0x7f]);
    let log = recorder.0.lock().unwrap().clone();
    assert_eq!(log[0], "start register example.com");
    assert!(
        log[1].starts_with("error setup") && log[1].contains("no linked phone named"),
        "{log:?}"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
