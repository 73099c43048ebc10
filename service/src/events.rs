//! The objects a ceremony streams: exactly what `cablebridge register|authenticate --json`
//! prints per event (`qr`, `progress`, `warning`, then `result` or `error`), so a client of the
//! daemon and a script reading the CLI see the same shapes.
//!
//! The CLI's renderer lives in the `cablebridge` binary (tools/src/cmd/ceremony.rs,
//! tools/src/output.rs), which a library cannot import; this module follows it field for field.
//! Once the engine serialises its one events type itself (issue 9), both sides should call that.

use cablebridged::ceremony::{CeremonyError, ProgressDetail, ProgressEvent};
use serde_json::{json, Value};

/// The JSON lines of one progress event (a QR event precedes its progress event).
pub fn event_lines(event: &ProgressEvent) -> Vec<Value> {
    if let ProgressDetail::Warning(message) = &event.detail {
        return vec![json!({
            "event": "warning",
            "stage": event.stage.as_str(),
            "elapsed_ms": event.elapsed_ms,
            "message": message,
        })];
    }
    let mut lines = Vec::new();
    if let ProgressDetail::Qr { url } = &event.detail {
        lines.push(json!({"event": "qr", "url": url}));
    }
    let mut progress = json!({
        "event": "progress",
        "stage": event.stage.as_str(),
        "elapsed_ms": event.elapsed_ms,
        "stage_ms": event.stage_ms,
    });
    match &event.detail {
        ProgressDetail::Advert { rssi, routing_id, tunnel_host } => {
            progress["rssi"] = json!(rssi);
            progress["routing_id"] = json!(routing_id);
            progress["tunnel_host"] = json!(tunnel_host);
        }
        ProgressDetail::Text(t) => progress["detail"] = json!(t),
        _ => {}
    }
    lines.push(progress);
    lines
}

/// The CLI's exit code for a ceremony error (0 never; 1 ceremony, 2 usage, 3 environment).
pub fn exit_code(e: &CeremonyError) -> u8 {
    match e.exit_code() {
        2 => 2,
        3 => 3,
        _ => 1,
    }
}

/// The final `error` object, as the CLI prints a failed ceremony with `--json`.
pub fn error_object(e: &CeremonyError) -> Value {
    let message = e.to_string();
    json!({
        "event": "error",
        "message": message,
        "error": message,
        "exit_code": exit_code(e),
        "stage": e.stage.as_str(),
    })
}

/// The final `result` object: the result's JSON restricted to the fields the CLI prints, plus
/// `verification`.
pub fn result_object(result: &Value, verification: Value) -> Value {
    // The CLI's report keeps exactly these keys (tools/src/cmd/ceremony.rs `result_report`).
    const KEYS: [&str; 16] = [
        "event",
        "ceremony",
        "transport",
        "rp_id",
        "credential_id",
        "aaguid",
        "authenticator_name",
        "attestation_format",
        "attestation_object",
        "authenticator_data",
        "signature",
        "user_handle",
        "client_data_json",
        "public_key_cose",
        "timings_ms",
        "linked_phone",
    ];
    let mut out = serde_json::Map::new();
    for key in KEYS {
        if let Some(v) = result.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    out.insert("verification".to_owned(), verification);
    Value::Object(out)
}

/// `{"session": id}` merged with `object` (the params of a `ceremony.event` notification).
pub fn with_session(session: u64, object: &Value) -> Value {
    let mut params = serde_json::Map::new();
    params.insert("session".to_owned(), json!(session));
    if let Value::Object(fields) = object {
        for (k, v) in fields {
            params.insert(k.clone(), v.clone());
        }
    }
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cablebridged::ceremony::{CeremonyErrorKind, CeremonyStage};

    #[test]
    fn qr_then_progress_and_error_shape() {
        let e = ProgressEvent {
            stage: CeremonyStage::QrShown,
            elapsed_ms: 3,
            stage_ms: 3,
            detail: ProgressDetail::Qr { url: "FIDO:/123".into() },
        };
        let lines = event_lines(&e);
        assert_eq!(lines[0], json!({"event": "qr", "url": "FIDO:/123"}));
        assert_eq!(lines[1]["stage"], "qr_shown");
        let err = CeremonyError::new(CeremonyStage::Advert, CeremonyErrorKind::Timeout, "late");
        let o = error_object(&err);
        assert_eq!((o["event"].as_str(), o["exit_code"].as_u64()), (Some("error"), Some(1)));
        assert_eq!(o["stage"], "advert");
        let p = with_session(7, &o);
        assert_eq!(p["session"], 7);
        assert_eq!(p["stage"], "advert");
    }
}
