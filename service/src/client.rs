//! A client of the control socket, for the `cablebridge` CLI and for tests: connect, call a
//! method, read the notifications that arrive meanwhile.
//!
//! Responses are matched by id; notifications read while waiting for a response are kept in
//! order and handed out by [`Client::next_notification`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use zeroize::Zeroize;

use crate::rpc::RpcError;

/// The socket the CLI uses: `$CABLEBRIDGE_SOCKET`, else the daemon's default path.
pub fn default_socket() -> PathBuf {
    std::env::var_os("CABLEBRIDGE_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_SOCKET))
}

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon at the path (not running, wrong path, no permission).
    #[error("no cablebridged daemon reachable at {path}: {source}")]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke or the daemon closed it.
    #[error("the connection to cablebridged failed: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon closed the connection.
    #[error("cablebridged closed the connection")]
    Closed,
    /// A line that is not a JSON-RPC message.
    #[error("cablebridged sent something that is not JSON-RPC: {0}")]
    Protocol(String),
    /// The daemon answered with an error.
    #[error("cablebridged: {} (code {})", .0.message, .0.code)]
    Rpc(RpcError),
}

/// How long a failed send waits for the daemon's refusal line.
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn rpc_error(e: &Value) -> RpcError {
    RpcError {
        code: e["code"].as_i64().unwrap_or(0),
        message: e["message"].as_str().unwrap_or("").to_owned(),
        data: e.get("data").cloned(),
    }
}

/// One connection to the daemon.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    notifications: VecDeque<Value>,
}

impl Client {
    /// Connects to `path`.
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Unreachable { path: path.to_owned(), source })?;
        let (read, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(read),
            writer,
            next_id: 1,
            notifications: VecDeque::new(),
        })
    }

    /// Sends one raw line (tests use it for malformed input).
    pub async fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.write_all(b"\n").await?;
        Ok(())
    }

    /// Reads the next message of any kind.
    pub async fn read_message(&mut self) -> Result<Value, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Calls `method` and waits for its response; notifications that arrive first are queued.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut line = zeroize::Zeroizing::new(request.to_string());
        let sent = self.send_line(&line).await;
        // A `pin` param (a USB ceremony's PIN) is wiped with the line that carried it.
        line.zeroize();
        if let Some(Value::String(pin)) = request["params"].get_mut("pin") {
            pin.zeroize();
        }
        if let Err(e) = sent {
            // A daemon that refused this connection (access denied) wrote one error line and
            // closed: that line, not our broken pipe, says why.
            let refusal = tokio::time::timeout(REFUSAL_WAIT, self.read_message()).await;
            if let Ok(Ok(msg)) = refusal {
                if let Some(e) = msg.get("error") {
                    return Err(ClientError::Rpc(rpc_error(e)));
                }
            }
            return Err(e);
        }
        loop {
            let msg = self.read_message().await?;
            if msg.get("id").is_none() && msg.get("method").is_some() {
                self.notifications.push_back(msg);
                continue;
            }
            if msg.get("id") != Some(&json!(id)) && !msg["id"].is_null() {
                return Err(ClientError::Protocol(format!("response to an unknown id: {msg}")));
            }
            if let Some(e) = msg.get("error") {
                return Err(ClientError::Rpc(rpc_error(e)));
            }
            return msg
                .get("result")
                .cloned()
                .ok_or_else(|| ClientError::Protocol(format!("a response without result: {msg}")));
        }
    }

    /// The next notification (`{"method": ..., "params": ...}`), waiting for one.
    pub async fn next_notification(&mut self) -> Result<Value, ClientError> {
        if let Some(n) = self.notifications.pop_front() {
            return Ok(n);
        }
        loop {
            let msg = self.read_message().await?;
            if msg.get("method").is_some() {
                return Ok(msg);
            }
        }
    }
}
