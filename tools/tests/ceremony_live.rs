//! `cablebridge register --transport hybrid` as a lab runs it: adverts relayed through a feed that
//! stays open (issue 8.1), and Ctrl-C (SIGINT) in the middle of a ceremony (issue 9.2).
//!
//! Every test runs the built binary against our tunnel server and the virtual phone (both in
//! this test process, on loopback). The phone's advert sink is a Unix datagram socket the test
//! owns; a relay task forwards each advert into the binary's advert source (stdin, a FIFO, a Unix
//! datagram socket or a Unix stream socket) and keeps it open (and silent once the phone stopped
//! advertising) when the ceremony ends. Exit latencies are printed (`--nocapture` shows them);
//! the assertions only use generous bounds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixDatagram;
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

/// Upper bound for a whole test ceremony (loopback work).
const T: Duration = Duration::from_secs(30);
/// Generous bound on "exits promptly" (the measured value is printed; it is milliseconds).
const PROMPT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
enum Feed {
    Stdin,
    Fifo,
    Unix,
    UnixStream,
}

struct Rig {
    server: TunnelServerHandle,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Rig {
        let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
        Rig { server, dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The phone's advert sink (a datagram socket the relay reads).
    fn phone(&self, presence_delay: Duration) -> VirtualPhone {
        let mut c = PhoneConfig::new(self.server.base_url());
        c.sink = AdvertSinkSpec::Unix(self.path("phone.sock"));
        c.advert_interval = Duration::from_millis(20);
        c.presence_delay = presence_delay;
        c.desktop_timeout = Duration::from_secs(10);
        c.idle_timeout = Duration::from_secs(10);
        VirtualPhone::new(c, PhoneState::new(&mut rand::rngs::OsRng), None, None)
    }

    /// `cablebridge register --json --advert-source <spec>` against this rig.
    fn register(&self, spec: &str, stdin: Stdio) -> Child {
        Command::new(env!("CARGO_BIN_EXE_cablebridge"))
            .args(["register", "--json", "--rp-id", "example.com", "--user-name", "alice"])
            .args(["--no-linking", "--advert-source", spec, "--tunnel-url"])
            .arg(self.server.base_url())
            .args(["--advert-timeout", "20s", "--user-timeout", "20s"])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }
}

/// Where the relay writes.
enum Out {
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
    Datagram(UnixDatagram, PathBuf),
}

impl Out {
    async fn send(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Stream(w) => {
                w.write_all(line).await?;
                w.flush().await
            }
            Out::Datagram(sock, path) => sock.send_to(line, &*path).await.map(|_| ()),
        }
    }
}

/// Opens the binary's side of `feed` (retrying while the binary has not created it yet).
async fn open_out(feed: Feed, path: &Path, stdin: Option<tokio::process::ChildStdin>) -> Out {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let opened = match feed {
            Feed::Stdin => return Out::Stream(Box::new(stdin.unwrap())),
            Feed::Fifo => tokio::net::unix::pipe::OpenOptions::new()
                .open_sender(path)
                .map(|tx| Out::Stream(Box::new(tx))),
            Feed::Unix => UnixDatagram::unbound().map(|s| Out::Datagram(s, path.to_path_buf())),
            Feed::UnixStream => {
                tokio::net::UnixStream::connect(path).await.map(|s| Out::Stream(Box::new(s)))
            }
        };
        match opened {
            Ok(out) => return out,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot open the {feed:?} feed: {e}"),
        }
    }
}

/// Forwards the phone's adverts into the feed and never closes it (the task is aborted by the
/// test after the binary exited). After the phone stops advertising the feed is open and
/// silent, like a `tail -F` relay between two log lines: the case where a reader blocked in
/// `read` would keep the process alive (a feed that keeps talking would unblock it by luck).
fn relay(phone_in: UnixDatagram, mut out: Out) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1024];
        let _ = out.send(b"# relay up\n").await;
        loop {
            let Ok(n) = phone_in.recv(&mut buf).await else { return };
            let mut line = buf[..n].to_vec();
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            // The binary may be gone already (EPIPE); keep the feed open regardless.
            let _ = out.send(&line).await;
        }
    })
}

async fn next_event(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<Value> {
    let line = lines.next_line().await.unwrap()?;
    Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
}

/// Waits for the process, returning its status and how long it took (bounded by `T`).
async fn exit_within(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    let start = Instant::now();
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => (status.unwrap(), start.elapsed()),
        Err(_) => {
            let _ = child.start_kill();
            panic!("the process did not exit within {limit:?}");
        }
    }
}

/// A full registration fed through `feed`, which is still open and live when the ceremony
/// ends: the result line is printed and the process exits promptly.
async fn live_feed_ceremony(feed: Feed) {
    let rig = Rig::new().await;
    let phone_in = UnixDatagram::bind(rig.path("phone.sock")).unwrap();
    let feed_path = rig.path("adverts");
    let spec = match feed {
        Feed::Stdin => "stdin".to_owned(),
        Feed::Fifo => {
            let made = std::process::Command::new("mkfifo").arg(&feed_path).status().unwrap();
            assert!(made.success(), "mkfifo");
            format!("fifo:{}", feed_path.display())
        }
        Feed::Unix => format!("unix:{}", feed_path.display()),
        Feed::UnixStream => format!("unix-stream:{}", feed_path.display()),
    };
    let stdin = if matches!(feed, Feed::Stdin) { Stdio::piped() } else { Stdio::null() };
    let mut child = rig.register(&spec, stdin);
    let out = open_out(feed, &feed_path, child.stdin.take()).await;
    let relay = relay(phone_in, out);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut phone = rig.phone(Duration::ZERO);

    let (result, result_at) = tokio::time::timeout(T, async {
        let qr = loop {
            let e = next_event(&mut lines).await.expect("stdout ended before the QR");
            if e["event"] == "qr" {
                break QrPayload::from_url(e["url"].as_str().unwrap()).unwrap();
            }
        };
        let (phone_done, last) = tokio::join!(phone.run_qr(&qr), async {
            loop {
                let e = next_event(&mut lines).await.expect("stdout ended before the result");
                if e["event"] == "result" || e["event"] == "error" {
                    return (e, Instant::now());
                }
            }
        });
        phone_done.unwrap();
        last
    })
    .await
    .unwrap_or_else(|_| panic!("{feed:?}: no result line within {T:?} (the process hangs)"));
    assert_eq!(result["event"], "result", "{feed:?}: {result}");
    assert_eq!(result["verification"]["ok"], true);

    let (status, _) = exit_within(&mut child, T).await;
    let latency = result_at.elapsed();
    println!("{feed:?}: exited {latency:?} after printing its result, feed still open");
    assert_eq!(status.code(), Some(0));
    assert!(latency < PROMPT, "{feed:?}: exit took {latency:?} after the result");
    assert!(!relay.is_finished(), "the relay kept the feed open throughout");
    relay.abort();
}

#[tokio::test]
async fn live_stdin_feed_result_then_exit() {
    live_feed_ceremony(Feed::Stdin).await;
}

#[tokio::test]
async fn live_fifo_feed_result_then_exit() {
    live_feed_ceremony(Feed::Fifo).await;
}

#[tokio::test]
async fn live_unix_datagram_feed_result_then_exit() {
    live_feed_ceremony(Feed::Unix).await;
}

#[tokio::test]
async fn live_unix_stream_feed_result_then_exit() {
    live_feed_ceremony(Feed::UnixStream).await;
}

/// An over-long line (far beyond the 4 KiB line limit, no newline for 1 MiB) is skipped with a
/// warning and the next advert still counts: the ceremony completes.
#[tokio::test]
async fn over_long_line_is_skipped_then_ceremony_completes() {
    let rig = Rig::new().await;
    let phone_in = UnixDatagram::bind(rig.path("phone.sock")).unwrap();
    let mut child = rig.register("stdin", Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let junk = vec![b'a'; 1 << 20];
    let mut phone = rig.phone(Duration::ZERO);
    let outcome = tokio::time::timeout(T, async {
        let qr = loop {
            let e = next_event(&mut lines).await.expect("stdout ended before the QR");
            if e["event"] == "qr" {
                break QrPayload::from_url(e["url"].as_str().unwrap()).unwrap();
            }
        };
        stdin.write_all(&junk).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        let relay = relay(phone_in, Out::Stream(Box::new(stdin)));
        let (phone_done, events) = tokio::join!(phone.run_qr(&qr), async {
            let mut seen = Vec::new();
            while let Some(e) = next_event(&mut lines).await {
                let end = e["event"] == "result" || e["event"] == "error";
                seen.push(e);
                if end {
                    break;
                }
            }
            seen
        });
        phone_done.unwrap();
        relay.abort();
        events
    })
    .await
    .unwrap();
    let warned = outcome
        .iter()
        .any(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains("longer than"));
    assert!(warned, "{outcome:?}");
    assert_eq!(outcome.last().unwrap()["event"], "result");
    let (status, _) = exit_within(&mut child, T).await;
    assert_eq!(status.code(), Some(0));
}

fn sigint(child: &Child) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
}

/// Ctrl-C while the desktop waits for the phone's advert: an error event naming `advert`,
/// exit 1, promptly.
#[tokio::test]
async fn ctrl_c_while_waiting_for_the_advert() {
    let rig = Rig::new().await;
    let spec = format!("unix:{}", rig.path("adverts").display());
    let mut child = rig.register(&spec, Stdio::null());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(T, async {
        while let Some(e) = next_event(&mut lines).await {
            if e["event"] == "progress" && e["stage"] == "qr_shown" {
                return;
            }
        }
        panic!("no qr_shown event");
    })
    .await
    .unwrap();
    let sent_at = Instant::now();
    sigint(&child);
    let last = tokio::time::timeout(T, async {
        let mut last = None;
        while let Some(e) = next_event(&mut lines).await {
            last = Some(e);
        }
        last
    })
    .await
    .unwrap()
    .expect("an error line");
    let (status, _) = exit_within(&mut child, T).await;
    let took = sent_at.elapsed();
    println!("SIGINT at the advert stage: exited {took:?} after the signal");
    assert_eq!((last["event"].as_str(), last["stage"].as_str()), (Some("error"), Some("advert")));
    assert!(last["message"].as_str().unwrap().contains("cancelled"), "{last}");
    assert_eq!(status.code(), Some(1));
    assert!(took < PROMPT, "took {took:?}");
}

/// Ctrl-C while the phone holds the request (user presence delayed by 20 s): an error event
/// naming `user_response`, exit 1, promptly (the desktop sends the hybrid shutdown message on
/// the open tunnel before closing it).
#[tokio::test]
async fn ctrl_c_while_waiting_for_the_user() {
    let rig = Rig::new().await;
    let phone_in = UnixDatagram::bind(rig.path("phone.sock")).unwrap();
    let feed_path = rig.path("adverts");
    let spec = format!("unix:{}", feed_path.display());
    let mut child = rig.register(&spec, Stdio::null());
    let out = open_out(Feed::Unix, &feed_path, None).await;
    let relay = relay(phone_in, out);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut phone = rig.phone(Duration::from_secs(20));
    let (phone_took, last, took, status) = tokio::time::timeout(T, async {
        let qr = loop {
            let e = next_event(&mut lines).await.expect("stdout ended before the QR");
            if e["event"] == "qr" {
                break QrPayload::from_url(e["url"].as_str().unwrap()).unwrap();
            }
        };
        let child_side = async {
            // The request is with the phone once post_handshake finished.
            while let Some(e) = next_event(&mut lines).await {
                if e["event"] == "progress" && e["stage"] == "post_handshake" {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let sent_at = Instant::now();
            sigint(&child);
            let mut last = None;
            while let Some(e) = next_event(&mut lines).await {
                last = Some(e);
            }
            let (status, _) = exit_within(&mut child, T).await;
            (last.expect("an error line"), sent_at.elapsed(), status)
        };
        // The phone runs alongside; the test does not wait for it to give up on its own.
        let phone_started = Instant::now();
        let phone_run = phone.run_qr(&qr);
        tokio::pin!(phone_run);
        tokio::pin!(child_side);
        let mut phone_finished = None;
        let (last, took, status) = loop {
            tokio::select! {
                r = &mut child_side => break r,
                p = &mut phone_run, if phone_finished.is_none() => {
                    phone_finished = Some((p.is_ok(), phone_started.elapsed()));
                }
            }
        };
        (phone_finished, last, took, status)
    })
    .await
    .unwrap();
    relay.abort();
    println!(
        "SIGINT at the user stage: exited {took:?} after the signal; phone (ok, after): \
         {phone_took:?}"
    );
    assert_eq!(
        (last["event"].as_str(), last["stage"].as_str()),
        (Some("error"), Some("user_response")),
        "{last}"
    );
    assert!(last["message"].as_str().unwrap().contains("cancelled"), "{last}");
    assert_eq!(status.code(), Some(1));
    assert!(took < PROMPT, "took {took:?}");
}
