//! The phone's post-handshake message (§8.1): CBOR `{1: getInfo bytes, [2: legacy linking],
//! [3: features]}`, encrypted at phone write sequence 0 with no type byte.
//!
//! Decoding is tolerant the way interop requires (§11.2 item 9): key 0 (padding) and unknown keys
//! are ignored, an absent key 3 means `["ctap"]`. A plaintext that is not exactly one CBOR item
//! is reported as the legacy revision 0, which is not supported.

use super::{LinkingInfo, MessageError};
use crate::cbor::{field, CborError, Value};

/// A feature from key 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// `"ctap"`: CTAP2 frames.
    Ctap,
    /// `"dc"`: Digital Credentials JSON frames.
    Dc,
    /// Anything else, kept for diagnostics.
    Other(String),
}

impl Feature {
    fn as_str(&self) -> &str {
        match self {
            Feature::Ctap => "ctap",
            Feature::Dc => "dc",
            Feature::Other(s) => s,
        }
    }

    fn from_str(s: &str) -> Feature {
        match s {
            "ctap" => Feature::Ctap,
            "dc" => Feature::Dc,
            other => Feature::Other(other.to_owned()),
        }
    }
}

/// The decoded post-handshake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostHandshake {
    /// Raw `authenticatorGetInfo` response CBOR (no status byte).
    pub get_info: Option<Vec<u8>>,
    /// Key 3; `["ctap"]` when absent on the wire. An empty list is encoded by omitting key 3.
    pub features: Vec<Feature>,
    /// Legacy linking info in key 2 (unverified).
    pub legacy_linking: Option<LinkingInfo>,
}

impl PostHandshake {
    /// What a CTAP-only phone sends: `{1: getInfo, 3: ["ctap"]}`.
    pub fn ctap(get_info: Vec<u8>) -> Self {
        PostHandshake {
            get_info: Some(get_info),
            features: vec![Feature::Ctap],
            legacy_linking: None,
        }
    }

    /// Whether CTAP frames may be sent.
    pub fn supports_ctap(&self) -> bool {
        self.features.contains(&Feature::Ctap)
    }

    /// Canonical CBOR plaintext (phone side).
    pub fn encode(&self) -> Vec<u8> {
        let mut entries = Vec::with_capacity(3);
        if let Some(info) = &self.get_info {
            entries.push((1, Value::bytes(info.clone())));
        }
        if let Some(link) = &self.legacy_linking {
            entries.push((2, link.to_value()));
        }
        if !self.features.is_empty() {
            let list = self.features.iter().map(|f| Value::text(f.as_str())).collect();
            entries.push((3, Value::Array(list)));
        }
        Value::int_map(entries).to_vec()
    }

    /// Tolerant decode (desktop side).
    pub fn decode(plaintext: &[u8]) -> Result<Self, MessageError> {
        let mut map = match Value::decode(plaintext) {
            Ok(v) => v,
            // One CBOR item followed by garbage is the revision-0 padded form (§8.1).
            Err(CborError::TrailingBytes(_)) => return Err(MessageError::Revision0PostHandshake),
            Err(e) => return Err(MessageError::PostHandshake(e)),
        };
        let decoded = Self::from_map(&map);
        // Key 2 (legacy linking info) may carry a link secret.
        super::linking::wipe(&mut map);
        decoded
    }

    fn from_map(map: &Value) -> Result<Self, MessageError> {
        let bad = |problem| {
            MessageError::PostHandshake(CborError::Field { field: "post-handshake", problem })
        };
        if map.as_map().is_none() {
            return Err(bad("not a map"));
        }
        let get_info = match map.get(1) {
            None => None,
            Some(v) => {
                let bytes =
                    field::bytes(Some(v), "getInfo (1)").map_err(MessageError::PostHandshake)?;
                // getInfo must itself be a CBOR map; its content is the CTAP layer's business.
                match Value::decode(bytes) {
                    Ok(info) if info.as_map().is_some() => Some(bytes.to_vec()),
                    Ok(_) => return Err(bad("getInfo is not a CBOR map")),
                    Err(e) => return Err(MessageError::PostHandshake(e)),
                }
            }
        };
        let features = match map.get(3) {
            None => vec![Feature::Ctap],
            Some(v) => field::array(Some(v), "features (3)")
                .map_err(MessageError::PostHandshake)?
                .iter()
                .map(|f| f.as_text().map(Feature::from_str).ok_or(bad("feature is not text")))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let has_ctap = features.contains(&Feature::Ctap);
        if has_ctap != get_info.is_some() {
            return Err(MessageError::GetInfoMismatch);
        }
        let legacy_linking = match map.get(2) {
            None => None,
            Some(v) => Some(LinkingInfo::from_value(v)?),
        };
        Ok(PostHandshake { get_info, features, legacy_linking })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &[u8] = &[0xa1, 0x01, 0x81, 0x68, b'F', b'I', b'D', b'O', b'_', b'2', b'_', b'0'];

    #[test]
    fn round_trip_and_defaults() {
        let ph = PostHandshake::ctap(INFO.to_vec());
        assert_eq!(PostHandshake::decode(&ph.encode()), Ok(ph));
        // Absent key 3 ⇒ ["ctap"]; key 0 and unknown keys tolerated.
        let plain = Value::int_map([
            (0, Value::bytes(vec![0; 5])),
            (1, Value::bytes(INFO.to_vec())),
            (77, Value::Null),
        ])
        .to_vec();
        let d = PostHandshake::decode(&plain).unwrap();
        assert_eq!(d.features, vec![Feature::Ctap]);
        assert!(d.supports_ctap());
        let dc = Value::int_map([(3, Value::Array(vec![Value::text("dc"), Value::text("x")]))]);
        let d = PostHandshake::decode(&dc.to_vec()).unwrap();
        assert_eq!(d.features, vec![Feature::Dc, Feature::Other("x".into())]);
        assert_eq!(d.get_info, None);
    }

    #[test]
    fn revision0_and_inconsistent_messages_are_typed_errors() {
        let mut padded = PostHandshake::ctap(INFO.to_vec()).encode();
        let zeros = 512 - padded.len() - 2;
        padded.resize(510, 0);
        padded.extend_from_slice(&(zeros as u16).to_le_bytes());
        assert_eq!(PostHandshake::decode(&padded), Err(MessageError::Revision0PostHandshake));
        let no_info = Value::int_map([(3, Value::Array(vec![Value::text("ctap")]))]).to_vec();
        assert_eq!(PostHandshake::decode(&no_info), Err(MessageError::GetInfoMismatch));
        assert!(matches!(PostHandshake::decode(&[0x01]), Err(MessageError::PostHandshake(_))));
        assert!(matches!(PostHandshake::decode(&[]), Err(MessageError::PostHandshake(_))));
    }
}
