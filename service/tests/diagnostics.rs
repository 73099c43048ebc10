//! The daemon's `doctor.run` through the real socket: every probed host resolved to `nxdomain`
//! or a closed loopback port and no system bus, so nothing leaves the machine; the answer is the
//! CLI's `{"checks":[...]}` with the policy checks when a policy is given; bad params name the
//! field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_service::client::ClientError;
use common::{policy_fixture as fixture, Daemon};
use serde_json::{json, Value};

fn status<'a>(checks: &'a [Value], id: &str) -> &'a str {
    checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id} in {checks:?}"))
        ["status"]
        .as_str()
        .unwrap()
}

fn field(e: ClientError) -> (i64, Value) {
    match e {
        ClientError::Rpc(e) => (e.code, e.data.unwrap_or(Value::Null)),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

#[tokio::test]
async fn doctor_run_offline_answers_the_cli_checks() {
    let nobus = tempfile::tempdir().unwrap();
    let bus = format!("unix:path={}", nobus.path().join("no-bus").display());
    let daemon = Daemon::start_with("", &[("DBUS_SYSTEM_BUS_ADDRESS", &bus)]);
    let mut c = daemon.client().await;
    // A closed loopback port: bind, note the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let params = json!({
        "scan_seconds": 0,
        "step_timeout": "2s",
        "tunnel_host": ["cable.example.test"],
        "resolve": [
            "cable.ua5v.com:nxdomain",
            "cable.auth.com:nxdomain",
            "app-site-association.cdn-apple.com:nxdomain",
            "app-site-association.networking.apple:nxdomain",
            format!("cable.example.test:{closed}"),
        ],
        "policy": fixture("legacy-block-authenticator.json"),
    });
    let r = c.call("doctor.run", params).await.unwrap();
    let checks = r["checks"].as_array().unwrap();
    assert_eq!(r.as_object().unwrap().len(), 1, "{r}");
    for check in checks {
        let keys: Vec<&String> = check.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["detail", "id", "remedy", "status"], "{check}");
    }
    assert_eq!(status(checks, "bluetooth.bus"), "fail");
    assert_eq!(status(checks, "tunnel.cable.ua5v.com.dns"), "fail");
    assert_eq!(status(checks, "tunnel.cable.auth.com.dns"), "fail");
    assert_eq!(status(checks, "tunnel.cable.example.test.dns"), "pass");
    assert_eq!(status(checks, "tunnel.cable.example.test.tcp"), "fail");
    // The daemon checks itself through its own socket.
    assert_eq!(status(checks, "service.status"), "pass");
    assert!(checks.iter().any(|c| c["id"].as_str().unwrap().starts_with("policy.")), "{r}");

    // Bad params name the field.
    for (params, want) in [
        (json!({"resolve": ["nowhere.example:127.0.0.1"]}), "resolve[0]"),
        (json!({"resolve": ["cable.ua5v.com"]}), "resolve[0]"),
        (json!({"policy": fixture("malformed-syntax.json")}), "policy"),
        (json!({"policy": "/nonexistent/policy.json"}), "policy"),
        (json!({"ca_file": "/nonexistent/ca.pem"}), "ca_file"),
        (json!({"profile": "x"}), "profile"),
        (json!({"step_timeout": 0}), "step_timeout"),
        (json!({"scan_secs": 1}), "scan_secs"),
    ] {
        let (code, data) = field(c.call("doctor.run", params.clone()).await.unwrap_err());
        assert_eq!((code, data), (-32602, json!({"field": want})), "{params}");
    }
}
