//! The `cablebridged` binary on a temporary socket, driven through the real socket: version,
//! status, JSON-RPC error handling (-32700, -32600, -32601, -32602 naming the field, line cap,
//! rate limit), access control (a refused peer), devices and device.info against a virtual USB
//! key, SIGTERM, and socket activation with a passed fd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_service::client::{Client, ClientError};
use common::{plain_key, Daemon, T};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

fn rpc_code(e: ClientError) -> (i64, String, Option<Value>) {
    match e {
        ClientError::Rpc(e) => (e.code, e.message, e.data),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

#[tokio::test]
async fn version_status_and_every_error_shape() {
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;

    let v = c.call("version", json!({})).await.unwrap();
    assert_eq!(v["api_version"], 1);
    assert_eq!(v["daemon"], "cablebridged");
    assert!(v["build"].as_str().unwrap().starts_with(env!("CARGO_PKG_VERSION")));
    assert!(v["methods"].as_array().unwrap().contains(&json!("ceremony.register")));

    let s = c.call("status", json!({})).await.unwrap();
    assert_eq!(s["sessions"], json!([]));
    assert_eq!(s["pid"], daemon.pid());
    assert_eq!(s["socket"], daemon.socket.display().to_string());
    assert!(s["counters"]["requests"].as_u64().unwrap() >= 2);

    // Unknown method, bad params naming the field, unknown params.
    let (code, msg, _) = rpc_code(c.call("no.such.method", json!({})).await.unwrap_err());
    assert_eq!(code, -32601, "{msg}");
    let (code, msg, data) =
        rpc_code(c.call("ceremony.register", json!({"user_name": "a"})).await.unwrap_err());
    assert_eq!((code, data), (-32602, Some(json!({"field": "rp_id"}))), "{msg}");
    let (code, _, data) = rpc_code(
        c.call("ceremony.register", json!({"rp_id": 5, "user_name": "a"})).await.unwrap_err(),
    );
    assert_eq!((code, data), (-32602, Some(json!({"field": "rp_id"}))));
    let (code, _, data) = rpc_code(
        c.call(
            "ceremony.authenticate",
            json!({"rp_id": "example.com", "transport": "carrier-pigeon"}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, data), (-32602, Some(json!({"field": "transport"}))));
    let (code, _, data) = rpc_code(
        c.call("ceremony.authenticate", json!({"rp_id": "example.com", "advert_source": "stdin"}))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, data), (-32602, Some(json!({"field": "advert_source"}))));
    let (code, _, data) = rpc_code(
        c.call(
            "ceremony.authenticate",
            json!({"rp_id": "example.com", "allow_credentials": ["!!"]}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, data), (-32602, Some(json!({"field": "allow_credentials[0]"}))));
    let (code, _, data) = rpc_code(c.call("status", json!({"verbose": true})).await.unwrap_err());
    assert_eq!((code, data), (-32602, Some(json!({"field": "verbose"}))));
    let (code, _, _) =
        rpc_code(c.call("ceremony.cancel", json!({"session": 999})).await.unwrap_err());
    assert_eq!(code, -32002);

    // Raw lines: malformed JSON, a batch, a notification (no answer), then a normal call.
    c.send_line("{\"jsonrpc\": \"2.0\", \"method\": ").await.unwrap();
    let m = c.read_message().await.unwrap();
    assert_eq!((m["error"]["code"].as_i64(), &m["id"]), (Some(-32700), &Value::Null));
    c.send_line("[{\"jsonrpc\":\"2.0\",\"method\":\"version\",\"id\":1}]").await.unwrap();
    assert_eq!(c.read_message().await.unwrap()["error"]["code"], -32600);
    c.send_line("{\"jsonrpc\":\"2.0\",\"method\":\"version\"}").await.unwrap();
    let v = c.call("version", json!({})).await.unwrap();
    assert_eq!(v["api_version"], 1, "the notification got no response; this is the call's");

    // A line over the cap: one error, then the daemon closes this connection only.
    let mut big = daemon.client().await;
    big.send_line(&format!("{{\"x\":\"{}\"}}", "a".repeat(70 * 1024))).await.unwrap();
    let m = big.read_message().await.unwrap();
    assert_eq!(m["error"]["code"], -32600);
    assert!(m["error"]["message"].as_str().unwrap().contains("longer than 65536"), "{m}");
    assert!(matches!(big.read_message().await, Err(ClientError::Closed | ClientError::Io(_))));
    // The first connection and the daemon are unaffected.
    assert_eq!(c.call("version", json!({})).await.unwrap()["api_version"], 1);

    let (status, log) = daemon.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}

#[tokio::test]
async fn sigterm_removes_the_socket_it_bound() {
    let daemon = Daemon::start("");
    let socket = daemon.socket.clone();
    assert!(socket.exists());
    let (status, _) = daemon.terminate();
    assert!(status.success());
    assert!(!socket.exists(), "the socket file is removed on exit");
}

#[tokio::test]
async fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let daemon = Daemon::start("");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cablebridged"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("--config")
        .arg(daemon.path("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));
    // The first one still answers.
    assert_eq!(daemon.client().await.call("version", json!({})).await.unwrap()["api_version"], 1);
}

#[tokio::test]
async fn config_errors_name_the_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[control]\nallowed_groups = []\nmax_lines = 3\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cablebridged"))
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 3") && err.contains("max_lines"), "{err}");
    // Environment variables override the file, flags override the environment.
    std::fs::write(&config, "[daemon]\nsocket = \"/file.sock\"\n").unwrap();
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cablebridged"))
            .env_remove("CABLEBRIDGED_SOCKET")
            .envs(envs.iter().copied())
            .arg("--config")
            .arg(&config)
            .args(args)
            .arg("--check-config")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&[], &[]).contains("socket /file.sock"));
    assert!(run(&[("CABLEBRIDGED_SOCKET", "/env.sock")], &[]).contains("socket /env.sock"));
    assert!(run(&[("CABLEBRIDGED_SOCKET", "/env.sock")], &["--socket", "/flag.sock"])
        .contains("socket /flag.sock"));
}

#[tokio::test]
async fn a_peer_outside_the_allow_list_is_refused_and_logged() {
    // Tests run as root; root is allowed by default, so this configuration turns that off and
    // allows nobody else.
    let daemon =
        Daemon::start("[control]\nallow_root = false\nallowed_groups = []\nallowed_uids = []\n");
    let stream = tokio::net::UnixStream::connect(&daemon.socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let first = timeout(T, lines.next_line()).await.unwrap().unwrap().unwrap();
    let m: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(m["error"]["code"], -32001, "{m}");
    assert!(m["error"]["message"].as_str().unwrap().starts_with("access denied"), "{m}");
    // Nothing is served on that connection: it is closed.
    let _ = write.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n").await;
    assert_eq!(timeout(T, lines.next_line()).await.unwrap().ok().flatten(), None);
    common::eventually("the refusal is logged", || {
        daemon.log_text().contains("refused a control connection")
    })
    .await;
    let log = daemon.log_text();
    assert!(log.contains("uid=0"), "{log}");
}

#[tokio::test]
async fn the_rate_limit_answers_minus_32005_and_keeps_the_connection() {
    let daemon = Daemon::start("[control]\nrate_limit_per_second = 1\nrate_limit_burst = 3\n");
    let mut c = daemon.client().await;
    let mut limited = 0;
    for _ in 0..10 {
        match c.call("version", json!({})).await {
            Ok(_) => {}
            Err(e) => {
                let (code, _, _) = rpc_code(e);
                assert_eq!(code, -32005);
                limited += 1;
            }
        }
    }
    assert!(limited >= 6, "10 requests at once with a burst of 3: {limited} limited");
}

#[tokio::test]
async fn devices_list_and_device_info_reach_a_virtual_key() {
    let key = plain_key().await;
    let address = key.device_address();
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;

    let list = c.call("devices.list", json!({"devices": [address]})).await.unwrap();
    let entry = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == address)
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    assert_eq!(entry["transport"], "udp-hid");
    assert_eq!(entry["aaguid"].as_str().unwrap().len(), 32, "{entry}");
    assert!(entry["versions"].as_array().unwrap().contains(&json!("FIDO_2_0")), "{entry}");

    let info = c.call("device.info", json!({"device": address})).await.unwrap();
    assert_eq!(info["device"], address);
    assert_eq!(info["aaguid"], entry["aaguid"]);
    assert!(info["options"].is_object() && info["algorithms"].is_array(), "{info}");
    assert_eq!(info["ctaphid"]["protocol_version"], 2);

    let (code, _, data) =
        rpc_code(c.call("device.info", json!({"device": "usb:nope"})).await.unwrap_err());
    assert_eq!((code, data), (-32602, Some(json!({"field": "device"}))));
    // A key that does not answer: an environment error, not a hang or a crash.
    let (code, _, _) = rpc_code(
        c.call("device.info", json!({"device": "udp:127.0.0.1:9", "timeout": "300ms"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, -32004);
    assert_eq!(c.call("version", json!({})).await.unwrap()["api_version"], 1);
}

#[tokio::test]
async fn socket_activation_adopts_the_passed_fd() {
    let tool = "/usr/bin/systemd-socket-activate";
    assert!(
        std::path::Path::new(tool).exists(),
        "{tool} is needed for this test (Debian package systemd)"
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    // systemd-socket-activate binds the socket, passes it as fd 3 with LISTEN_FDS=1 and
    // LISTEN_PID, and execs the daemon on the first connection. --socket names a path the
    // daemon must NOT bind (it adopts instead).
    let unused = dir.path().join("not-bound.sock");
    let mut child = std::process::Command::new(tool)
        .arg("--listen")
        .arg(&socket)
        .arg(env!("CARGO_BIN_EXE_cablebridged"))
        .arg("--socket")
        .arg(&unused)
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = common::capture(child.stderr.take().unwrap());
    common::eventually("the activation socket exists", || socket.exists()).await;
    let mut c = Client::connect(&socket).await.unwrap();
    let status = timeout(T, c.call("status", json!({}))).await.unwrap().unwrap();
    assert!(status["socket"].as_str().unwrap().ends_with("(socket activation)"), "{status}");
    assert!(!unused.exists(), "the daemon adopted the passed socket instead of binding its own");
    drop(c);
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let st = common::wait_timeout(&mut child, T);
    assert!(st.success(), "{st:?}\n{}", log.lock().unwrap());
    // systemd-socket-activate exec'd the daemon; the socket file is systemd's to remove, so the
    // daemon left it alone.
    assert!(socket.exists(), "an adopted socket is not removed by the daemon");
}

#[tokio::test]
async fn sd_notify_status_lines_and_watchdog_pings() {
    // READY=1 was checked by Daemon::start; with WATCHDOG_USEC set the main loop pings every
    // half period, and a ceremony changes the STATUS= line.
    let daemon = Daemon::start_with("", &[("WATCHDOG_USEC", "200000")]);
    daemon.notified(|l| l == "WATCHDOG=1");
    let mut c = daemon.client().await;
    let params = common::hybrid_register("ws://127.0.0.1:9", &daemon.path("adverts.sock"));
    c.call("ceremony.register", params).await.unwrap();
    let status = daemon.notified(|l| l == "STATUS=1 ceremonies running");
    assert!(status.contains("STATUS="), "{status}");
    let (st, _) = daemon.terminate();
    assert!(st.success());
}
