//! End-to-end hybrid ceremonies across network namespaces with network faults (issue 14,
//! "Hostile-peer and fault suite"): the built `cablebridge` binary as three processes in three
//! namespaces — `register` (desktop), `tunnel-server` (middle), `phone` (virtual phone) — joined
//! by veth pairs, adverts through a Unix datagram socket on the shared file system (the "radio"
//! between phone and desktop; path-named Unix sockets are not namespaced).
//!
//! ```text
//!  [ns D] register ──veth── [root] fault relay ──veth── [ns M] tunnel-server ──veth── [ns P] phone
//!          10.R.1.2         10.R.1.1   10.R.2.1         10.R.2.2   10.R.3.1         10.R.3.2
//! ```
//!
//! The desktop's tunnel leg runs through a userspace fault relay (`fault_relay`, in the root
//! namespace, which routes between D and M by terminating TCP) so delay and stalls can be
//! injected at the WebSocket level; both links to the desktop and the phone carry a `tbf` rate
//! limit. `sch_netem` is used when the kernel has it (delay + loss on the desktop link);
//! without it (this machine) delay is the relay's per-chunk delay and loss is not emulated
//! (TCP would retransmit it anyway; a *stall* — the relay forwarding nothing — stands for
//! sustained loss). A cut is `ip link set … down` on the desktop's link mid-ceremony.
//!
//! Each case ends in success or in a typed error naming the stage (the `--json` error line)
//! within its bound — never a hang. Needs root (CI runs as root); otherwise every test skips
//! with a loud message. Namespaces, links and processes are removed by a drop guard even when
//! an assertion fails. See docs/reliability.md, "Hostile-peer and network-fault suite".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../daemon/tests/fault_relay/mod.rs"]
mod fault_relay;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fault_relay::{Cut, Dir, Relay, Rule};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_cablebridge");
/// The tunnel server's port inside the middle namespace.
const SERVER_PORT: u16 = 8080;
/// Bound for one ceremony (its stage timeouts are 5 to 20 s).
const BOUND: Duration = Duration::from_secs(45);

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn must(args: &[&str]) {
    sh(args).unwrap_or_else(|e| panic!("{e}"));
}

/// `None` with the reason when this process cannot build namespaces.
fn unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some(format!("not root (uid {uid:?})"));
    }
    if sh(&["ip", "netns", "list"]).is_err() {
        return Some("`ip netns` does not work here".into());
    }
    None
}

macro_rules! require_netns {
    () => {
        if let Some(why) = unavailable() {
            eprintln!(
                "\n!!!!!!!!!! SKIPPED {}: network namespaces unavailable ({why}). \
                 Run as root (CI does) to exercise it. !!!!!!!!!!\n",
                module_path!()
            );
            return;
        }
    };
}

/// Whether `tc qdisc add … netem` works on this kernel (probed on a throwaway link).
fn netem_available(ns: &str, dev: &str) -> bool {
    let ok = sh(&[
        "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay",
        "1ms",
    ])
    .is_ok();
    if ok {
        let _ = sh(&["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"]);
    }
    ok
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Three namespaces and three veth pairs; everything removed on drop.
struct Topology {
    d: String,
    m: String,
    p: String,
    /// Root-side ends of the D and M links (the P link lives between M and P).
    root_links: Vec<String>,
    /// D's end of its link (cut by setting it down).
    d_link: String,
    /// P's end of its link.
    p_link: String,
    /// The root's end of the D link and M's end of the root link (netem goes there).
    toward_desktop: String,
    from_server: String,
    /// Second octet of 10.R.x.y.
    r: u8,
    children: Vec<Child>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for l in &self.root_links {
            let _ = sh(&["ip", "link", "del", l]);
        }
        for ns in [&self.d, &self.m, &self.p] {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

impl Topology {
    fn new() -> Topology {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", std::process::id() % 100_000);
        let r = 200 + (std::process::id() % 40) as u8 + n as u8;
        let name = |s: &str| format!("cbh{id}{s}");
        let t = Topology {
            d: name("d"),
            m: name("m"),
            p: name("p"),
            root_links: vec![name("D"), name("M")],
            d_link: name("d"),
            p_link: name("p"),
            toward_desktop: name("D"),
            from_server: name("m"),
            r,
            children: Vec::new(),
        };
        for ns in [&t.d, &t.m, &t.p] {
            must(&["ip", "netns", "add", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // D ↔ root, M ↔ root, M ↔ P.
        let links = [
            (
                name("D"),
                None,
                format!("10.{r}.1.1/24"),
                name("d"),
                t.d.clone(),
                format!("10.{r}.1.2/24"),
            ),
            (
                name("M"),
                None,
                format!("10.{r}.2.1/24"),
                name("m"),
                t.m.clone(),
                format!("10.{r}.2.2/24"),
            ),
            (
                name("Mp"),
                Some(t.m.clone()),
                format!("10.{r}.3.1/24"),
                name("p"),
                t.p.clone(),
                format!("10.{r}.3.2/24"),
            ),
        ];
        for (a, a_ns, a_ip, b, b_ns, b_ip) in &links {
            must(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
            must(&["ip", "link", "set", b, "netns", b_ns]);
            must(&["ip", "-n", b_ns, "addr", "add", b_ip, "dev", b]);
            must(&["ip", "-n", b_ns, "link", "set", b, "up"]);
            match a_ns {
                Some(ns) => {
                    must(&["ip", "link", "set", a, "netns", ns]);
                    must(&["ip", "-n", ns, "addr", "add", a_ip, "dev", a]);
                    must(&["ip", "-n", ns, "link", "set", a, "up"]);
                }
                None => {
                    must(&["ip", "addr", "add", a_ip, "dev", a]);
                    must(&["ip", "link", "set", a, "up"]);
                }
            }
        }
        t
    }

    fn ip(&self, net: u8, host: u8) -> String {
        format!("10.{}.{net}.{host}", self.r)
    }

    fn spawn(&mut self, ns: &str, args: &[&str], stdout: Stdio) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }
}

/// What happens to the network during the ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Delay (netem delay+loss when available, else the relay's per-chunk delay) and a tbf rate
    /// limit on the desktop and phone links.
    DelayLossRate,
    /// The desktop's link goes down once its tunnel is connected.
    CutAfterConnect,
    /// The relay stops forwarding the desktop's CTAP request and everything after it.
    Stall,
}

struct Outcome {
    last: Value,
    code: Option<i32>,
    took: Duration,
    phone_code: Option<i32>,
    phone_stderr: String,
    emulation: String,
}

async fn run(fault: Fault) -> Outcome {
    let mut t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let adverts = dir.path().join("adverts.sock");
    let qr_file = dir.path().join("qr.url");
    let server_ip = t.ip(2, 2);
    let m = t.m.clone();
    let listen = format!("0.0.0.0:{SERVER_PORT}");
    t.spawn(&m, &["tunnel-server", "--listen", &listen], Stdio::null());
    let server: SocketAddr = format!("{server_ip}:{SERVER_PORT}").parse().unwrap();
    let up = Instant::now();
    while TcpStream::connect_timeout(&server, Duration::from_millis(200)).is_err() {
        assert!(up.elapsed() < Duration::from_secs(20), "tunnel server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut emulation = Vec::new();
    let mut relay_delay = Duration::ZERO;
    if fault == Fault::DelayLossRate {
        // Rate limits on both access links (tbf works on this kernel).
        for (ns, dev) in [(t.d.clone(), t.d_link.clone()), (t.p.clone(), t.p_link.clone())] {
            must(&[
                "ip", "netns", "exec", &ns, "tc", "qdisc", "add", "dev", &dev, "root", "tbf",
                "rate", "2mbit", "burst", "32kbit", "latency", "400ms",
            ]);
        }
        emulation.push("tbf 2 Mbit/s on the desktop's and the phone's links".to_owned());
        if netem_available(&t.m, &t.from_server) {
            let netem = ["root", "netem", "delay", "40ms", "10ms", "loss", "2%"];
            let from_server = ["ip", "netns", "exec", &t.m, "tc", "qdisc", "add", "dev"];
            must(&[&from_server[..], &[t.from_server.as_str()], &netem].concat());
            let toward_desktop = ["tc", "qdisc", "add", "dev", t.toward_desktop.as_str()];
            must(&[&toward_desktop[..], &netem].concat());
            emulation.push("netem delay 40±10 ms + loss 2% each way on the desktop's leg".into());
        } else {
            relay_delay = Duration::from_millis(40);
            emulation.push(
                "no sch_netem: relay delay 40 ms per chunk each way, loss not emulated".into(),
            );
        }
    }
    let rule = (fault == Fault::Stall).then_some(Rule {
        path: "/cable/connect/",
        dir: Dir::ToServer,
        nth: 2,
        cut: Cut::Stall,
    });
    if rule.is_some() {
        emulation.push("relay stalls from the desktop's CTAP request on (sustained loss)".into());
    }
    if fault == Fault::CutAfterConnect {
        emulation.push("ip link set <desktop link> down after tunnel_connect".into());
    }
    let relay_at: SocketAddr = format!("{}:0", t.ip(1, 1)).parse().unwrap();
    let relay = Relay::start(relay_at, server, rule, relay_delay).await;

    let adverts_spec = format!("unix:{}", adverts.display());
    let tunnel = relay.base_url();
    let d = t.d.clone();
    let desktop = t.spawn(
        &d,
        &[
            "register",
            "--json",
            "--rp-id",
            "example.com",
            "--user-name",
            "alice",
            "--no-linking",
            "--advert-source",
            &adverts_spec,
            "--tunnel-url",
            &tunnel,
            "--allow-insecure-tunnel",
            "--advert-timeout",
            "20s",
            "--connect-timeout",
            "5s",
            "--handshake-timeout",
            "5s",
            "--user-timeout",
            "5s",
        ],
        Stdio::piped(),
    );
    let started = Instant::now();
    let stdout = t.children[desktop].stdout.take().unwrap();
    // With a cut, the phone takes 2 s to "touch": without it a loopback-fast ceremony can be
    // over before `ip link set … down` has even run, and the cut would land after the result.
    let presence = if fault == Fault::CutAfterConnect { "2000" } else { "0" };
    let mut lines = BufReader::new(tokio::process::ChildStdout::from_std(stdout).unwrap()).lines();
    let mut phone = None;
    let mut last = Value::Null;
    let bounded = tokio::time::timeout(BOUND, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let e: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            if e["event"] == "qr" {
                write_private(&qr_file, e["url"].as_str().unwrap());
                let phone_tunnel = format!("ws://{}:{SERVER_PORT}", t.ip(3, 1));
                let p = t.p.clone();
                let qr = qr_file.display().to_string();
                phone = Some(t.spawn(
                    &p,
                    &[
                        "phone",
                        "--qr-file",
                        &qr,
                        "--tunnel-url",
                        &phone_tunnel,
                        "--allow-insecure-tunnel",
                        "--advert-sink",
                        &adverts_spec,
                        "--timeout-secs",
                        "8",
                        "--user-presence-delay-ms",
                        presence,
                    ],
                    Stdio::null(),
                ));
            }
            if fault == Fault::CutAfterConnect
                && e["event"] == "progress"
                && e["stage"] == "tunnel_connect"
            {
                must(&["ip", "-n", &t.d, "link", "set", &t.d_link, "down"]);
            }
            if e["event"] == "result" || e["event"] == "error" {
                last = e;
            }
        }
    })
    .await;
    assert!(bounded.is_ok(), "{fault:?}: the desktop did not finish within {BOUND:?}");
    let took = started.elapsed();
    let code = wait_within(&mut t.children[desktop], Duration::from_secs(10));
    let (phone_code, phone_stderr) = match phone {
        Some(i) => {
            let code = wait_within(&mut t.children[i], Duration::from_secs(20));
            let mut err = String::new();
            if let Some(mut s) = t.children[i].stderr.take() {
                use std::io::Read;
                let _ = s.read_to_string(&mut err);
            }
            (code, err)
        }
        None => (None, String::new()),
    };
    drop(relay);
    drop(t);
    Outcome { last, code, took, phone_code, phone_stderr, emulation: emulation.join("; ") }
}

fn write_private(path: &Path, url: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, url.as_bytes()).unwrap();
}

/// Waits for `child` (bounded); `None` if it had to be killed.
fn wait_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("a process outlived its bound {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `--json` error line reports a stage timeout (its message says so; exit code 1).
fn timed_out(last: &Value) -> bool {
    last["message"].as_str().is_some_and(|m| m.contains("timed out")) && last["exit_code"] == 1
}

fn report(name: &str, o: &Outcome) {
    let desktop = match o.last["event"].as_str() {
        Some("result") => format!(
            "result, verification ok {}, stage timings {}",
            o.last["verification"]["ok"], o.last["timings_ms"]
        ),
        _ => format!("error at {}: {}", o.last["stage"], o.last["message"]),
    };
    println!(
        "netns {name} [{}]: desktop exit {:?} after {:?}: {desktop}; phone exit {:?}: {}",
        o.emulation,
        o.code,
        o.took,
        o.phone_code,
        o.phone_stderr.lines().last().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_loss_and_rate_limit_still_register() {
    require_netns!();
    let o = run(Fault::DelayLossRate).await;
    report("delay/loss/rate", &o);
    if o.emulation.contains("netem") && o.last["event"] == "error" {
        // Real loss may cost a timeout; then it must be typed and name the stage.
        assert!(o.last["stage"].is_string() && o.last["message"].is_string(), "{}", o.last);
        assert_eq!(o.code, Some(1));
        return;
    }
    assert_eq!(o.last["event"], "result", "{}", o.last);
    assert_eq!(o.last["verification"]["ok"], true, "{}", o.last);
    assert_eq!(o.code, Some(0));
    assert_eq!(o.phone_code, Some(0), "{}", o.phone_stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_ends_in_a_typed_error_naming_the_stage() {
    require_netns!();
    let o = run(Fault::CutAfterConnect).await;
    report("cut", &o);
    assert_eq!(o.last["event"], "error", "{}", o.last);
    let stage = o.last["stage"].as_str().unwrap_or_default();
    // Where the cut lands depends on how far message 1 and 2 got before the link went down
    // (usually "handshake"); it is always that stage's timeout.
    assert!(["handshake", "post_handshake", "user_response"].contains(&stage), "{}", o.last);
    assert!(timed_out(&o.last), "{}", o.last);
    assert_eq!(o.code, Some(1), "a peer/network failure exits 1");
    // The phone, cut off from the desktop, ends on its own timeout with a typed error.
    assert_ne!(o.phone_code, Some(0), "{}", o.phone_stderr);
    assert!(!o.phone_stderr.is_empty(), "the phone says why it failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_path_ends_at_the_desktops_stage_timeout() {
    require_netns!();
    let o = run(Fault::Stall).await;
    report("stall", &o);
    assert_eq!(o.last["event"], "error", "{}", o.last);
    assert_eq!(o.last["stage"], "user_response", "{}", o.last);
    assert!(timed_out(&o.last), "{}", o.last);
    assert_eq!(o.code, Some(1));
    assert_ne!(o.phone_code, Some(0), "{}", o.phone_stderr);
}
