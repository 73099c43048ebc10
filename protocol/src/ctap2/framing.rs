//! CTAP2 message framing (CTAP 2.1 §8.1): a request is `command byte ‖ CBOR map?`, a response is
//! `status byte ‖ CBOR map?`. This is the payload of one CTAPHID_CBOR message (or one hybrid
//! CTAP frame); transport framing is not here.
//!
//! Commands with no parameters (getInfo, reset, getNextAssertion, selection) are just the byte.

use super::command::Command;
use super::error::Ctap2Error;
use super::status::StatusCode;
use crate::cbor::Value;

/// `command ‖ canonical CBOR(params)`.
pub fn encode_request(command: Command, params: Option<&Value>) -> Vec<u8> {
    let mut out = vec![command.to_u8()];
    if let Some(p) = params {
        p.encode_into(&mut out);
    }
    out
}

/// Splits a request into its command and decoded parameters (authenticator side). Empty input
/// is an error; a body that is present must be exactly one CBOR item.
pub fn decode_request(bytes: &[u8]) -> Result<(Command, Option<Value>), Ctap2Error> {
    let (&cmd, body) = bytes.split_first().ok_or(Ctap2Error::MissingField("command byte"))?;
    let params = if body.is_empty() { None } else { Some(Value::decode(body)?) };
    Ok((Command::from_u8(cmd), params))
}

/// `status ‖ canonical CBOR(body)` (authenticator side).
pub fn encode_response(status: StatusCode, body: Option<&Value>) -> Vec<u8> {
    let mut out = vec![status.to_u8()];
    if let Some(b) = body {
        b.encode_into(&mut out);
    }
    out
}

/// Splits a response into status and decoded body (platform side). Empty input is
/// [`Ctap2Error::EmptyResponse`]. An error status never carries a meaningful body, so for one
/// whose trailing bytes do not decode the body is dropped rather than hiding the status.
pub fn decode_response(bytes: &[u8]) -> Result<(StatusCode, Option<Value>), Ctap2Error> {
    let (&status, body) = bytes.split_first().ok_or(Ctap2Error::EmptyResponse)?;
    let status = StatusCode::from_u8(status);
    if body.is_empty() {
        return Ok((status, None));
    }
    match Value::decode(body) {
        Ok(v) => Ok((status, Some(v))),
        Err(_) if !status.is_ok() => Ok((status, None)),
        Err(e) => Err(e.into()),
    }
}

/// [`decode_response`], turning any non-OK status into [`Ctap2Error::Status`].
pub fn decode_ok_response(bytes: &[u8]) -> Result<Option<Value>, Ctap2Error> {
    match decode_response(bytes)? {
        (StatusCode::Ok, body) => Ok(body),
        (status, _) => Err(Ctap2Error::Status(status)),
    }
}

/// Like [`decode_ok_response`] for commands that must return a body.
pub fn decode_ok_body(bytes: &[u8]) -> Result<Value, Ctap2Error> {
    decode_ok_response(bytes)?.ok_or(Ctap2Error::MissingField("response body"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_frame_and_unframe() {
        assert_eq!(encode_request(Command::GetInfo, None), [0x04]);
        assert_eq!(encode_request(Command::Reset, None), [0x07]);
        assert_eq!(encode_request(Command::Selection, None), [0x0B]);
        let p = Value::int_map([(2, Value::int(1)), (1, Value::int(1))]);
        let req = encode_request(Command::ClientPin, Some(&p));
        assert_eq!(req, [0x06, 0xa2, 0x01, 0x01, 0x02, 0x01]);
        let (c, body) = decode_request(&req).unwrap();
        assert_eq!(c, Command::ClientPin);
        assert_eq!(body.unwrap().to_vec(), req[1..]);
        assert_eq!(decode_request(&[0x08]).unwrap(), (Command::GetNextAssertion, None));
        assert!(decode_request(&[]).is_err());
        assert!(matches!(decode_request(&[0x01, 0xa1]), Err(Ctap2Error::Cbor(_))));
    }

    #[test]
    fn responses_frame_and_unframe() {
        assert_eq!(decode_response(&[]), Err(Ctap2Error::EmptyResponse));
        assert_eq!(decode_response(&[0x31]).unwrap(), (StatusCode::PinInvalid, None));
        // Garbage after an error status does not hide the status.
        assert_eq!(decode_response(&[0x2e, 0xff]).unwrap(), (StatusCode::NoCredentials, None));
        assert!(matches!(decode_response(&[0x00, 0xa1]), Err(Ctap2Error::Cbor(_))));
        let body = Value::int_map([(3, Value::int(8))]);
        let resp = encode_response(StatusCode::Ok, Some(&body));
        assert_eq!(resp, [0x00, 0xa1, 0x03, 0x08]);
        assert_eq!(decode_ok_body(&resp).unwrap(), body);
        assert_eq!(decode_ok_response(&[0x00]).unwrap(), None);
        assert_eq!(decode_ok_response(&[0x32]), Err(Ctap2Error::Status(StatusCode::PinBlocked)));
        assert_eq!(decode_ok_body(&[0x00]), Err(Ctap2Error::MissingField("response body")));
    }
}
