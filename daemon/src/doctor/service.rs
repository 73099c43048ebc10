//! `service.status`: is the daemon running, is its control socket reachable by this user, and
//! which version answers.
//!
//! One connection, one JSON-RPC 2.0 request `{"method":"version"}` as a newline-terminated line,
//! one answer line read with a size and time bound. A missing socket is `skip` (the CLI works
//! without the daemon); a socket nobody listens on, a refused connection or a non-JSON-RPC answer
//! is `fail`.

use super::os::{Account, Groups};
use super::{Check, DoctorOptions};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::timeout;

const ID: &str = "service.status";
/// Longest answer line read.
const MAX_LINE: u64 = 64 * 1024;

/// Runs the service section.
pub async fn run(opts: &DoctorOptions) -> Vec<Check> {
    vec![status(opts).await]
}

async fn status(opts: &DoctorOptions) -> Check {
    let path = &opts.control_socket;
    let shown = path.display();
    let t = opts.step_timeout;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::skip(
                ID,
                format!("cablebridged is not running here (no control socket at {shown}); the CLI works without it"),
            )
            .with_remedy("to use the daemon API: systemctl enable --now cablebridged.socket");
        }
        Err(e) => {
            return Check::fail(
                ID,
                format!("cannot look at {shown}: {e}"),
                "check the path (--socket)",
            )
        }
    };
    let mut stream = match timeout(t, UnixStream::connect(path)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let account = Account::current();
            let group = Groups::load().name(meta.gid());
            let user = &account.user;
            return Check::fail(
                ID,
                format!("uid {} ({user}) may not connect to {shown} (group {group}, mode {:04o})", account.uid, meta.mode() & 0o7777),
                format!("add {user} to the '{group}' group (usermod -aG {group} {user}, then log in again)"),
            );
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Check::fail(
                ID,
                format!("nothing listens on {shown} (a stale socket: the daemon stopped)"),
                "systemctl restart cablebridged (journalctl -u cablebridged says why it stopped)",
            )
        }
        Ok(Err(e)) => {
            return Check::fail(
                ID,
                format!("cannot connect to {shown}: {e}"),
                "systemctl status cablebridged",
            )
        }
        Err(_) => {
            return Check::fail(
                ID,
                format!("connecting to {shown} took longer than {t:?}"),
                "systemctl status cablebridged",
            )
        }
    };
    let exchange = async {
        stream.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n").await?;
        let mut line = String::new();
        BufReader::new((&mut stream).take(MAX_LINE)).read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = match timeout(t, exchange).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            return Check::fail(
                ID,
                format!("{shown}: the version request failed: {e}"),
                "systemctl status cablebridged",
            )
        }
        Err(_) => {
            return Check::fail(
                ID,
                format!(
                    "{shown} accepted the connection but did not answer `version` within {t:?}"
                ),
                "the daemon is hanging: systemctl restart cablebridged",
            )
        }
    };
    judge_answer(&shown.to_string(), &line)
}

/// Judges the answer line to the `version` request.
pub(crate) fn judge_answer(socket: &str, line: &str) -> Check {
    let not_ours = |why: &str| {
        Check::fail(
            ID,
            format!("{socket} answered, but not as cablebridged: {why}"),
            format!("check which program listens on {socket} (ss -xlp | grep cablebridge)"),
        )
    };
    let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
        return not_ours(if line.is_empty() { "no answer line" } else { "not JSON" });
    };
    if let Some(result) = v.get("result") {
        let version = result
            .as_str()
            .or_else(|| result.get("version").and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| result.to_string());
        return Check::pass(ID, format!("cablebridged {version} answers on {socket}"));
    }
    if let Some(err) = v.get("error") {
        let message = err.get("message").and_then(Value::as_str).unwrap_or("?");
        return Check::warn(
            ID,
            format!("{socket} is reachable, but `version` failed: {message}"),
            "update the CLI and the daemon to the same release",
        );
    }
    not_ours("a JSON value without result or error")
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn answers_are_judged() {
        let s = "/run/cablebridge/control.sock";
        let c = judge_answer(s, r#"{"jsonrpc":"2.0","id":1,"result":{"version":"0.1.0"}}"#);
        assert_eq!((c.status, c.detail.contains("0.1.0")), (Status::Pass, true), "{c:?}");
        assert_eq!(
            judge_answer(s, r#"{"jsonrpc":"2.0","id":1,"result":"0.2"}"#).status,
            Status::Pass
        );
        let c = judge_answer(
            s,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#,
        );
        assert_eq!(c.status, Status::Warn);
        assert_eq!(judge_answer(s, "HTTP/1.1 400 Bad Request").status, Status::Fail);
        assert_eq!(judge_answer(s, "").status, Status::Fail);
    }

    #[tokio::test]
    async fn missing_socket_skips_and_live_socket_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let opts = DoctorOptions { control_socket: path.clone(), ..DoctorOptions::default() };
        let c = status(&opts).await;
        assert_eq!(c.status, Status::Skip, "{c:?}");

        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut line = String::new();
            BufReader::new(&mut s).read_line(&mut line).await.unwrap();
            let req: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(req["method"], "version");
            s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"version\":\"9.9.9\"}}\n")
                .await
                .unwrap();
        });
        let c = status(&opts).await;
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.detail.contains("9.9.9"));
        server.await.unwrap();

        // The listener is gone: a stale socket file.
        let c = status(&opts).await;
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("stale"), "{c:?}");
    }
}
