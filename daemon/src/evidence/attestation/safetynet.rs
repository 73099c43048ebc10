//! `android-safetynet` (WebAuthn §8.5, legacy: Google shut the SafetyNet Attestation API down in
//! 2025, but old registrations and captures still carry it). `response` is a JWS (compact form);
//! its header's `x5c` (standard base64 DER, leaf first) signs `header.payload`; the leaf is
//! issued to `attest.android.com`; the payload's `nonce` is base64(SHA-256(authData ‖
//! clientDataHash)) and `ctsProfileMatch` is true. `timestampMs` is reported in the facts, not
//! compared with a clock (this module reads none).

use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::crypto::{self, PublicKey};
use super::{fail, stmt_bytes, AttestationType, Check, Fail, Input, Verified};

const HOSTNAME: &str = "attest.android.com";

struct Jws<'a> {
    signed: &'a str,
    header: Value,
    payload: Value,
    signature: Vec<u8>,
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

fn parse_jws<'a>(input: &Input<'a>) -> Result<Jws<'a>, Fail> {
    let response = stmt_bytes(input, "response")?;
    let text = std::str::from_utf8(response)
        .map_err(|_| (Check::Jws, "response is not UTF-8".to_owned()))?;
    let text = text.trim();
    let mut parts = text.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return fail(Check::Jws, "response is not a three-part JWS");
    };
    let json = |part: &str, what: &str| -> Result<Value, Fail> {
        let raw = b64url(part).map_err(|e| (Check::Jws, format!("{what}: {e}")))?;
        serde_json::from_slice(&raw).map_err(|e| (Check::Jws, format!("{what}: {e}")))
    };
    Ok(Jws {
        signed: &text[..h.len() + 1 + p.len()],
        header: json(h, "header")?,
        payload: json(p, "payload")?,
        signature: b64url(s).map_err(|e| (Check::Jws, format!("signature: {e}")))?,
    })
}

fn header_x5c(header: &Value) -> Result<Vec<Vec<u8>>, Fail> {
    let list = header
        .get("x5c")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or((Check::Certificate, "the JWS header has no x5c".to_owned()))?;
    list.iter()
        .map(|c| {
            c.as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or((Check::Certificate, "a JWS x5c entry is not base64".to_owned()))
        })
        .collect()
}

/// The JWS header's certificates (for the chain report); empty when it does not parse.
pub(super) fn certificates(input: &Input<'_>) -> Vec<Vec<u8>> {
    parse_jws(input).and_then(|j| header_x5c(&j.header)).unwrap_or_default()
}

pub(super) fn verify(input: &Input<'_>, facts: &mut Map<String, Value>) -> Result<Verified, Fail> {
    let ver = input.stmt.get_text("ver").and_then(|v| v.as_text()).unwrap_or_default();
    if ver.is_empty() {
        return fail(Check::Statement, "ver is missing or empty");
    }
    let jws = parse_jws(input)?;
    let payload = &jws.payload;
    facts.insert(
        "safetynet".to_owned(),
        json!({
            "ver": ver,
            "timestamp_ms": payload.get("timestampMs"),
            "cts_profile_match": payload.get("ctsProfileMatch"),
            "basic_integrity": payload.get("basicIntegrity"),
            "apk_package_name": payload.get("apkPackageName"),
            "evaluation_type": payload.get("evaluationType"),
        }),
    );
    let x5c = header_x5c(&jws.header)?;
    let leaf = crypto::parse_certificate(&x5c[0], "x5c[0]").map_err(|e| (Check::Certificate, e))?;
    let key = PublicKey::from_certificate(&leaf).map_err(|e| (Check::Certificate, e))?;
    let alg = match jws.header.get("alg").and_then(Value::as_str) {
        Some("RS256") => -257,
        Some("ES256") => -7,
        other => return fail(Check::Jws, format!("JWS alg {other:?} is not RS256 or ES256")),
    };
    let signature = if alg == -7 {
        // JWS ES256 is raw r ‖ s (RFC 7518 §3.4), not DER.
        p256::ecdsa::Signature::from_slice(&jws.signature)
            .map(|s| s.to_der().as_bytes().to_vec())
            .map_err(|_| (Check::Jws, "ES256 JWS signature is not 64 bytes".to_owned()))?
    } else {
        jws.signature.clone()
    };
    key.verify(alg, jws.signed.as_bytes(), &signature).map_err(|e| (Check::Jws, e))?;
    let cn = crypto::subject_attribute(&leaf, "2.5.4.3");
    if cn.as_deref() != Some(HOSTNAME) {
        return fail(Check::Hostname, format!("the leaf is issued to {cn:?}, not {HOSTNAME}"));
    }
    let expected =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(input.to_be_signed()));
    if payload.get("nonce").and_then(Value::as_str) != Some(expected.as_str()) {
        return fail(Check::Nonce, "nonce is not base64(SHA-256(authData ‖ clientDataHash))");
    }
    if payload.get("ctsProfileMatch").and_then(Value::as_bool) != Some(true) {
        return fail(Check::CtsProfileMatch, "ctsProfileMatch is not true");
    }
    Ok(Verified { kind: AttestationType::Basic, alg: Some(alg) })
}
