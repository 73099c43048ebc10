//! The phone's post-handshake message (§8.1): CBOR `{1: getInfo bytes, [2: legacy linking],
//! [3: features]}`, encrypted at phone write sequence 0 with no type byte.
//!
//! Decoding is tolerant the way interop requires (§11.2 item 9): key 0 (padding) and unknown keys
//! are ignored, an absent key 3 means `["ctap"]`.
//!
//! Revision 0 (§8.1, §11.3): a plaintext that is not exactly one CBOR item is the legacy padded
//! form — CBOR ‖ zeros ‖ a count of the zeros, either (a) a 16-bit little-endian count with the
//! total a multiple of 512, or (b) an 8-bit count with the total a multiple of 256; (a) is tried
//! first, as Chrome does. [`PostHandshake::decode_revision`] accepts both and says which
//! [`Revision`] the phone speaks: in revision 0 the later frames carry no type byte.

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

/// The post-handshake protocol revision a phone speaks (§8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// Legacy: padded post-handshake message, no type bytes afterwards (so no shutdown,
    /// update or JSON frames; linking info only in post-handshake key 2).
    Zero,
    /// Current: one CBOR item, typed frames afterwards (§8.2).
    One,
}

impl Revision {
    /// `0` or `1`, for reports.
    pub fn number(self) -> u8 {
        match self {
            Revision::Zero => 0,
            Revision::One => 1,
        }
    }
}

/// Revision-0 padding (a): blocks of 512 with a 16-bit LE trailer.
const REV0_BLOCK16: usize = 512;
/// Revision-0 padding (b): blocks of 256 with an 8-bit trailer.
const REV0_BLOCK8: usize = 256;

/// Strips revision-0 padding: the CBOR prefix, or `None` when neither scheme fits. The zeros
/// must be zeros and the total a multiple of the block size (§11.3).
fn unpad_revision0(plaintext: &[u8]) -> Option<&[u8]> {
    let try16 = || {
        let (rest, trailer) = plaintext.split_last_chunk::<2>()?;
        let zeros = usize::from(u16::from_le_bytes(*trailer));
        unpad_with(plaintext.len(), REV0_BLOCK16, rest, zeros)
    };
    let try8 = || {
        let (&count, rest) = plaintext.split_last()?;
        unpad_with(plaintext.len(), REV0_BLOCK8, rest, usize::from(count))
    };
    try16().or_else(try8)
}

fn unpad_with(total: usize, block: usize, rest: &[u8], zeros: usize) -> Option<&[u8]> {
    if total == 0 || !total.is_multiple_of(block) || zeros > rest.len() {
        return None;
    }
    let (cbor, padding) = rest.split_at(rest.len() - zeros);
    padding.iter().all(|&b| b == 0).then_some(cbor)
}

/// Pads `cbor` with scheme (a): zeros and a 16-bit LE count up to a multiple of 512.
fn pad_revision0(cbor: &[u8]) -> Vec<u8> {
    let total = (cbor.len() + 2).div_ceil(REV0_BLOCK16) * REV0_BLOCK16;
    let zeros = total - cbor.len() - 2;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(cbor);
    out.resize(total - 2, 0);
    // A zero count always fits: it is below 512.
    out.extend_from_slice(&u16::try_from(zeros).unwrap_or(0).to_le_bytes());
    out
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

    /// What a phone that also takes Digital Credentials requests sends:
    /// `{1: getInfo, 3: ["ctap", "dc"]}` (the 2026 iPhone capture, §8.1).
    pub fn ctap_and_dc(get_info: Vec<u8>) -> Self {
        PostHandshake {
            get_info: Some(get_info),
            features: vec![Feature::Ctap, Feature::Dc],
            legacy_linking: None,
        }
    }

    /// Whether CTAP frames may be sent.
    pub fn supports_ctap(&self) -> bool {
        self.features.contains(&Feature::Ctap)
    }

    /// Whether Digital Credentials JSON frames may be sent (feature `"dc"`; an absent key 3
    /// means `["ctap"]` only).
    pub fn supports_dc(&self) -> bool {
        self.features.contains(&Feature::Dc)
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

    /// The revision-0 plaintext of this message (legacy phones; the lab switch of the virtual
    /// phone): canonical CBOR padded with scheme (a).
    pub fn encode_revision0(&self) -> Vec<u8> {
        pad_revision0(&self.encode())
    }

    /// Decodes either revision (desktop side, §8.1): exactly one CBOR item is revision 1;
    /// otherwise the revision-0 padding is stripped ((a), then (b)) and the rest must be
    /// exactly one CBOR item. Neither ⇒ [`MessageError::Revision0PostHandshake`].
    pub fn decode_revision(plaintext: &[u8]) -> Result<(Self, Revision), MessageError> {
        match Self::decode(plaintext) {
            Err(MessageError::Revision0PostHandshake) => {
                let cbor =
                    unpad_revision0(plaintext).ok_or(MessageError::Revision0PostHandshake)?;
                let decoded = match Self::decode(cbor) {
                    Err(MessageError::Revision0PostHandshake) => {
                        Err(MessageError::Revision0PostHandshake)
                    }
                    other => other,
                }?;
                Ok((decoded, Revision::Zero))
            }
            other => other.map(|d| (d, Revision::One)),
        }
    }

    /// Tolerant decode of a revision-1 message (one CBOR item); a padded plaintext is
    /// [`MessageError::Revision0PostHandshake`] (use [`Self::decode_revision`] to accept it).
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
    use crate::error::Classify;

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
    fn revision0_both_paddings_decode() {
        let ph = PostHandshake::ctap(INFO.to_vec());
        let padded = ph.encode_revision0();
        assert_eq!(padded.len(), 512);
        assert_eq!(PostHandshake::decode_revision(&padded), Ok((ph.clone(), Revision::Zero)));
        assert_eq!(PostHandshake::decode_revision(&ph.encode()), Ok((ph.clone(), Revision::One)));
        // Scheme (b): 8-bit count, multiple of 256.
        let cbor = ph.encode();
        let mut b = cbor.clone();
        b.resize(255, 0);
        b.push((255 - cbor.len()) as u8);
        assert_eq!(PostHandshake::decode_revision(&b), Ok((ph.clone(), Revision::Zero)));
        // A message longer than one block pads to the next multiple of 512.
        let big = PostHandshake::ctap(vec![0xa0; 1]);
        let mut long = big.clone();
        long.get_info = Some({
            let mut m = vec![0xb9, 0x00, 0xc8];
            for i in 0..200u8 {
                m.extend_from_slice(&[0x18, i, 0x59, 0x00, 0x01, 0]);
            }
            m
        });
        let p = long.encode_revision0();
        assert_eq!(p.len() % 512, 0);
        assert!(p.len() > 512);
        assert_eq!(PostHandshake::decode_revision(&p).unwrap().1, Revision::Zero);
    }

    #[test]
    fn revision0_padding_rules() {
        let cbor = PostHandshake::ctap(INFO.to_vec()).encode();
        // Non-zero padding byte.
        let mut bad = PostHandshake::ctap(INFO.to_vec()).encode_revision0();
        bad[cbor.len() + 3] = 1;
        assert_eq!(PostHandshake::decode_revision(&bad), Err(MessageError::Revision0PostHandshake));
        // Count larger than the message.
        let mut bad = cbor.clone();
        bad.resize(510, 0);
        bad.extend_from_slice(&600u16.to_le_bytes());
        assert_eq!(PostHandshake::decode_revision(&bad), Err(MessageError::Revision0PostHandshake));
        // Not a multiple of the block.
        let mut bad = cbor.clone();
        bad.extend_from_slice(&[0, 0, 2, 0]);
        assert_eq!(PostHandshake::decode_revision(&bad), Err(MessageError::Revision0PostHandshake));
        // Padding fine but the prefix is not one CBOR item.
        let mut bad = cbor.clone();
        bad.push(0x01);
        let bad = pad_revision0(&bad);
        let e = PostHandshake::decode_revision(&bad).unwrap_err();
        assert_eq!(e, MessageError::Revision0PostHandshake);
        assert_eq!(e.stage(), crate::error::Stage::PostHandshake);
        // Empty plaintext stays a CBOR error.
        assert!(matches!(PostHandshake::decode_revision(&[]), Err(MessageError::PostHandshake(_))));
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
