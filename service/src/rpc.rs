//! JSON-RPC 2.0 framing for the control socket: one JSON object per line in each direction.
//!
//! What it is: request parsing into [`Request`] (or the exact error object to send back), the
//! error codes ([`code`]), response and notification builders, and [`Params`], a reader over a
//! request's `params` that names the offending field in every `-32602` error and rejects fields
//! it does not know. What it is not: dispatch (see `methods`) or socket IO (see `server`).
//!
//! Batches (a JSON array) are not supported and answered with `-32600`; docs/api.md says so.

use serde_json::{json, Map, Value};
use std::time::Duration;

/// JSON-RPC error codes used by the daemon. -32700..-32600 are the specification's; -32000 and
/// below are ours (documented in docs/api.md).
pub mod code {
    /// Not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a JSON-RPC 2.0 request object (or a batch, or a line over the size cap).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// A parameter is missing, unknown or has the wrong type/value; `data.field` names it.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A bug on our side (never expected).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The peer's credentials are not allowed by the configuration.
    pub const ACCESS_DENIED: i64 = -32001;
    /// No such session (finished, or never existed).
    pub const NO_SUCH_SESSION: i64 = -32002;
    /// Too many sessions running already (`[control] max_sessions`).
    pub const TOO_MANY_SESSIONS: i64 = -32003;
    /// The device or store could not be used (unplugged, permission, unreadable file).
    pub const ENVIRONMENT: i64 = -32004;
    /// The connection sent requests faster than `[control] rate_limit_*` allows.
    pub const RATE_LIMITED: i64 = -32005;
    /// The request was well-formed but cannot be done (e.g. unknown linked phone).
    pub const REFUSED: i64 = -32006;
}

/// The version of this API: bumped on incompatible changes (docs/api.md, "Versioning").
pub const API_VERSION: u32 = 1;

/// An error to send back.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// One of [`code`].
    pub code: i64,
    /// One line for people.
    pub message: String,
    /// Structured detail (`{"field": ...}` for -32602).
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    /// -32602 naming `field`.
    pub fn param(field: &str, problem: impl std::fmt::Display) -> Self {
        RpcError {
            code: code::INVALID_PARAMS,
            message: format!("invalid params: {field}: {problem}"),
            data: Some(json!({"field": field})),
        }
    }

    /// The `error` member.
    pub fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `None` for a notification (no `id` member): executed, never answered.
    pub id: Option<Value>,
    /// The method name.
    pub method: String,
    /// `params` (an object; absent = empty).
    pub params: Map<String, Value>,
}

/// Parses one line. `Err((id, error))` is what to answer (id `null` when unknown).
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, RpcError)> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        (Value::Null, RpcError::new(code::PARSE_ERROR, format!("parse error: {e}")))
    })?;
    let Value::Object(mut obj) = value else {
        let what =
            if value.is_array() { "batch requests are not supported" } else { "not an object" };
        return Err((
            Value::Null,
            RpcError::new(code::INVALID_REQUEST, format!("invalid request: {what}")),
        ));
    };
    let id = obj.remove("id");
    if let Some(id) = &id {
        if !(id.is_string() || id.is_number() || id.is_null()) {
            return Err((
                Value::Null,
                RpcError::new(
                    code::INVALID_REQUEST,
                    "invalid request: id must be a string, number or null",
                ),
            ));
        }
    }
    let reply_id = id.clone().unwrap_or(Value::Null);
    let invalid = |m: &str| {
        (reply_id.clone(), RpcError::new(code::INVALID_REQUEST, format!("invalid request: {m}")))
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("jsonrpc must be \"2.0\""));
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(invalid("method must be a string")),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err((
                reply_id,
                RpcError::param("params", "must be an object (named parameters)"),
            ))
        }
    };
    Ok(Request { id, method, params })
}

/// A success response line.
pub fn response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response line.
pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()})
}

/// A notification line (no id).
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// Reads named parameters; each getter removes the field, [`Params::finish`] rejects the rest.
#[derive(Debug)]
pub struct Params {
    map: Map<String, Value>,
}

impl Params {
    /// Wraps a request's params.
    pub fn new(map: Map<String, Value>) -> Self {
        Params { map }
    }

    fn take(&mut self, field: &str) -> Option<Value> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A required string.
    pub fn string(&mut self, field: &str) -> Result<String, RpcError> {
        self.opt_string(field)?.ok_or_else(|| RpcError::param(field, "missing"))
    }

    /// An optional string.
    pub fn opt_string(&mut self, field: &str) -> Result<Option<String>, RpcError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(RpcError::param(field, format!("expected a string, got {}", kind(&other))))
            }
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, field: &str) -> Result<Option<bool>, RpcError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => {
                Err(RpcError::param(field, format!("expected a boolean, got {}", kind(&other))))
            }
        }
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&mut self, field: &str) -> Result<Option<u64>, RpcError> {
        match self.take(field) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                RpcError::param(field, format!("expected a non-negative integer, got {}", kind(&v)))
            }),
        }
    }

    /// A required non-negative integer.
    pub fn u64(&mut self, field: &str) -> Result<u64, RpcError> {
        self.opt_u64(field)?.ok_or_else(|| RpcError::param(field, "missing"))
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn strings(&mut self, field: &str) -> Result<Vec<String>, RpcError> {
        match self.take(field) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s]),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    other => Err(RpcError::param(
                        &format!("{field}[{i}]"),
                        format!("expected a string, got {}", kind(&other)),
                    )),
                })
                .collect(),
            Some(other) => Err(RpcError::param(
                field,
                format!("expected a list of strings, got {}", kind(&other)),
            )),
        }
    }

    /// A duration: the CLI's syntax (`"500ms"`, `"30s"`, `"2m"`) or a number of seconds.
    pub fn opt_duration(&mut self, field: &str) -> Result<Option<Duration>, RpcError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                crate::config::parse_duration(&s).map(Some).map_err(|m| RpcError::param(field, m))
            }
            Some(v) => v.as_u64().map(|n| Some(Duration::from_secs(n))).ok_or_else(|| {
                RpcError::param(
                    field,
                    format!("expected a duration like \"30s\", got {}", kind(&v)),
                )
            }),
        }
    }

    /// Fails on the first field nobody asked for (typos are errors, not ignored).
    pub fn finish(self) -> Result<(), RpcError> {
        match self.map.into_iter().next() {
            None => Ok(()),
            Some((k, _)) => Err(RpcError::param(&k, "unknown parameter")),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parse_errors_have_the_right_codes() {
        assert_eq!(parse_request(b"{nope").unwrap_err().1.code, code::PARSE_ERROR);
        assert_eq!(parse_request(b"[]").unwrap_err().1.code, code::INVALID_REQUEST);
        assert_eq!(
            parse_request(b"{\"jsonrpc\":\"1.0\",\"method\":\"x\",\"id\":4}").unwrap_err(),
            (
                json!(4),
                RpcError::new(code::INVALID_REQUEST, "invalid request: jsonrpc must be \"2.0\"")
            )
        );
        let (id, e) =
            parse_request(b"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":\"a\",\"params\":[1]}")
                .unwrap_err();
        assert_eq!((id, e.code), (json!("a"), code::INVALID_PARAMS));
        let r = parse_request(b"{\"jsonrpc\":\"2.0\",\"method\":\"status\"}").unwrap();
        assert_eq!((r.id, r.method.as_str()), (None, "status"));
    }

    #[test]
    fn params_name_the_field() {
        let map = json!({"rp_id": 5, "extra": true}).as_object().unwrap().clone();
        let mut p = Params::new(map.clone());
        let e = p.string("rp_id").unwrap_err();
        assert_eq!(e.data, Some(json!({"field": "rp_id"})));
        assert!(e.message.contains("rp_id") && e.message.contains("expected a string"));
        let mut p = Params::new(map);
        let _ = p.opt_u64("rp_id").unwrap();
        assert_eq!(p.finish().unwrap_err().data, Some(json!({"field": "extra"})));
        let mut p =
            Params::new(json!({"t": "2m", "u": 3, "l": ["a", 1]}).as_object().unwrap().clone());
        assert_eq!(p.opt_duration("t").unwrap(), Some(Duration::from_secs(120)));
        assert_eq!(p.opt_duration("u").unwrap(), Some(Duration::from_secs(3)));
        assert_eq!(p.strings("l").unwrap_err().data, Some(json!({"field": "l[1]"})));
    }
}
