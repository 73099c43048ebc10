//! The objects a ceremony streams: exactly what `cablebridge register|authenticate --json`
//! prints per event (`qr`, `progress`, `warning`, then `result` or `error`), so a client of the
//! daemon and a script reading the CLI see the same shapes.
//!
//! `qr`, `progress` and `warning` lines are the engine's own serialisation
//! (`CeremonyEvent::to_json`), as in the CLI. The last line is assembled by the CLI's binary
//! (tools/src/cmd/ceremony.rs `result_report`, tools/src/output.rs `finish`), which a library
//! cannot import; this module follows it field for field. The exit code is the engine's rule
//! (`CeremonyError::exit_code`), shared with the CLI's `Exit::from(&CeremonyError)`.

use cablebridged::ceremony::{CeremonyError, CeremonyEvent};
use serde_json::{json, Value};

/// The line of a `qr`, `progress` or `warning` event (the engine's serialisation, which the CLI
/// prints too); `None` for `result`/`error`, which the service builds itself like the CLI does.
pub fn event_line(event: &CeremonyEvent) -> Option<Value> {
    match event {
        CeremonyEvent::Result(_) | CeremonyEvent::Error(_) => None,
        other => Some(other.to_json()),
    }
}

/// The CLI's exit code for a ceremony error: the engine's one rule
/// ([`CeremonyError::exit_code`]), which tools' `Exit::from(&CeremonyError)` uses too.
pub fn exit_code(e: &CeremonyError) -> u8 {
    e.exit_code()
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
    let mut out = serde_json::Map::new();
    for key in cablebridged::ceremony::RESULT_FIELDS {
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
    fn qr_line_and_error_shape() {
        let e = CeremonyEvent::Qr { url: "FIDO:/123".into() };
        assert_eq!(event_line(&e), Some(json!({"event": "qr", "url": "FIDO:/123"})));
        let err = CeremonyError::new(CeremonyStage::Advert, CeremonyErrorKind::Timeout, "late");
        assert_eq!(event_line(&CeremonyEvent::Error(err.clone())), None);
        let o = error_object(&err);
        assert_eq!((o["event"].as_str(), o["exit_code"].as_u64()), (Some("error"), Some(1)));
        assert_eq!(o["stage"], "advert");
        let p = with_session(7, &o);
        assert_eq!(p["session"], 7);
        assert_eq!(p["stage"], "advert");
        let cancelled = error_object(&CeremonyError::cancelled(CeremonyStage::Advert));
        assert_eq!(cancelled["exit_code"], 1);
    }
}
