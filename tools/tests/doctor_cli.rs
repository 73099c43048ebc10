//! `cablebridge doctor` through the built binary: JSON and table output, exit codes (1 when a
//! check fails, 2 on usage errors). Every tunnel host is sent to a local TLS tunnel server with
//! `--resolve` (a test CA via `--ca-file`), and the system bus is pointed at a socket that does
//! not exist, so nothing leaves loopback and nothing depends on the machine's Bluetooth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridged::tunnel::server::{
    TlsFiles, TunnelServer, TunnelServerConfig, TunnelServerHandle,
};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const HOSTS: [&str; 5] = [
    "cable.ua5v.com",
    "cable.auth.com",
    "cable.example.org",
    "app-site-association.cdn-apple.com",
    "app-site-association.networking.apple",
];

struct Rig {
    dir: tempfile::TempDir,
    server: TunnelServerHandle,
}

impl Rig {
    async fn start() -> Rig {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "cablebridge test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = HOSTS.iter().map(|h| (*h).to_owned()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("leaf.key"), leaf_key.serialize_pem()).unwrap();
        let tls = TlsFiles { cert: dir.path().join("leaf.pem"), key: dir.path().join("leaf.key") };
        let server =
            TunnelServer::bind(TunnelServerConfig { tls: Some(tls), ..Default::default() })
                .await
                .unwrap();
        Rig { dir, server }
    }

    /// The flags that keep every probe on loopback.
    fn args(&self) -> Vec<String> {
        let addr = self.server.local_addr();
        let mut a: Vec<String> = vec![
            "doctor".into(),
            "--scan-seconds".into(),
            "0".into(),
            "--tunnel-host".into(),
            "cable.example.org".into(),
            "--ca-file".into(),
            self.dir.path().join("ca.pem").display().to_string(),
            "--socket".into(),
            self.dir.path().join("no-daemon.sock").display().to_string(),
        ];
        for h in HOSTS {
            a.push("--resolve".into());
            a.push(format!("{h}:{addr}"));
        }
        a
    }

    async fn run(&self, args: &[String]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cablebridge"));
        cmd.args(args)
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={}", self.dir.path().join("no-bus").display()),
            )
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        for v in
            ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"]
        {
            cmd.env_remove(v);
        }
        tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("doctor is bounded")
            .unwrap()
    }
}

#[tokio::test]
async fn doctor_json_lists_every_check_and_exits_1_when_one_fails() {
    let rig = Rig::start().await;
    let mut args = rig.args();
    args.push("--json".into());
    let out = rig.run(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "bluetooth.bus fails without a bus; stdout: {stdout}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let checks = v["checks"].as_array().expect("checks array");
    let by_id = |id: &str| {
        checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no {id}: {stdout}"))
    };
    for c in checks {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{c}");
        for k in ["id", "status", "detail", "remedy"] {
            assert!(keys.contains(&k), "{c}");
        }
        assert!(["pass", "warn", "fail", "skip"].contains(&c["status"].as_str().unwrap()), "{c}");
    }
    assert_eq!(by_id("bluetooth.bus")["status"], "fail");
    assert!(by_id("bluetooth.bus")["remedy"].as_str().unwrap().contains("DBUS_SYSTEM_BUS_ADDRESS"));
    assert_eq!(by_id("bluetooth.scan")["status"], "skip");
    for h in HOSTS {
        for step in ["dns", "tcp", "tls"] {
            assert_eq!(by_id(&format!("tunnel.{h}.{step}"))["status"], "pass", "{h} {step}");
        }
    }
    for h in &HOSTS[..3] {
        let ws = by_id(&format!("tunnel.{h}.websocket"));
        assert_eq!(ws["status"], "pass", "{ws}");
        assert_eq!(ws["remedy"], Value::Null);
    }
    assert_eq!(by_id("tunnel.proxy")["status"], "pass");
    assert_eq!(by_id("service.status")["status"], "skip");
    assert!(by_id("hid.devices").is_object() && by_id("hid.permissions").is_object());
    // Order: bluetooth, tunnel, hid, service.
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let pos = |p: &str| ids.iter().position(|i| i.starts_with(p)).unwrap();
    assert!(
        pos("bluetooth.") < pos("tunnel.")
            && pos("tunnel.") < pos("hid.")
            && pos("hid.") < pos("service.")
    );
    rig.server.shutdown().await;
}

#[tokio::test]
async fn doctor_table_is_aligned_with_remedies_and_no_colour_off_a_terminal() {
    let rig = Rig::start().await;
    let out = rig.run(&rig.args()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("STATUS  CHECK"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "no colour when stdout is not a terminal: {stdout}");
    let line = stdout.lines().find(|l| l.contains("bluetooth.bus")).unwrap();
    assert!(line.starts_with("fail "), "{line}");
    let detail_col = stdout.lines().next().unwrap().find("DETAIL").unwrap();
    let ws = stdout.lines().find(|l| l.contains("tunnel.cable.ua5v.com.websocket")).unwrap();
    assert!(ws.starts_with("pass "), "{ws}");
    assert_eq!(ws.find("HTTP 404"), Some(detail_col), "detail column aligned: {stdout}");
    assert!(stdout.contains("↳ fix: start D-Bus"), "{stdout}");
    assert!(stdout.lines().last().unwrap().contains(" checks: "), "{stdout}");
    rig.server.shutdown().await;
}

#[tokio::test]
async fn doctor_usage_errors_exit_2() {
    let rig = Rig::start().await;
    for (extra, expect) in [
        (vec!["--resolve", "garbage"], "expected HOST:ADDR"),
        (vec!["--resolve", "not-probed.example:127.0.0.1"], "not probed"),
        (vec!["--ca-file", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
    ] {
        let mut args: Vec<String> = vec!["doctor".into()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let out = rig.run(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expect), "{extra:?}: {stderr}");
    }
    rig.server.shutdown().await;
}

fn fixture(name: &str) -> String {
    format!("{}/../daemon/tests/fixtures/policy/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn doctor_policy_checks_and_malformed_policy_exit_2() {
    let rig = Rig::start().await;
    let inventory = rig.dir.path().join("inventory.csv");
    std::fs::write(&inventory, "upn,aaguid\na@x,de1e552d-db1d-4423-a619-566b625cdc84\n").unwrap();
    let mut args = rig.args();
    args.extend(
        ["--json", "--policy", &fixture("legacy-block-authenticator.json"), "--registered"]
            .map(str::to_owned),
    );
    args.push(inventory.display().to_string());
    let out = rig.run(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let by_id = |id: &str| checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id}"));
    let aaguids = by_id("policy.aaguids");
    assert_eq!(aaguids["status"], "fail", "{aaguids}");
    assert!(aaguids["remedy"].as_str().unwrap().contains("remove de1e552d"), "{aaguids}");
    let reg = by_id("policy.registered");
    assert_eq!(reg["status"], "fail", "{reg}");
    assert!(reg["detail"].as_str().unwrap().contains("1 × Microsoft Authenticator"), "{reg}");
    assert_eq!(checks.last().unwrap()["id"], "policy.registered", "policy checks come last");

    let mut args: Vec<String> = vec!["doctor".into(), "--policy".into()];
    args.push(fixture("malformed-syntax.json"));
    let out = rig.run(&args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("malformed-syntax.json"), "{stderr}");
    rig.server.shutdown().await;
}
