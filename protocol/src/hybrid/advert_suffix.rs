//! The CTAP 2.3 advert suffix (PROTOCOL-hybrid.md §12, §5.2 step 1, pitfall §11.2 item 15):
//! bytes a phone may append after the 20-byte sealed advert when the desktop's QR code offered
//! the BLE-L2CAP data channel (QR key 6 = array containing `1`).
//!
//! The suffix is **not covered by the 4-byte tag**: anyone in radio range can change it. The
//! desktop therefore trial-opens only the first 20 bytes (`eid`), and this module parses the rest
//! for reporting only — nothing here is ever used to pick a channel or a tunnel. Best evidence for
//! the layout is a CBOR map `{1: PSM}` (libwebauthn, the CTAP 2.3 summary); one WIP writes
//! `{0: transport id}` instead, so any other map is kept as "unknown entries" rather than
//! rejected.
//!
//! The phone side ([`ble_suffix`], [`qr_offers_ble`]) appends a suffix only when the QR offered
//! channel 1, so a desktop that requires exactly 20 bytes (Chrome) still sees the advert.
//!
//! What it is not: an L2CAP implementation (neither role here opens a channel).

use crate::cbor::{CborError, Value};
use crate::error::{Classify, Fault, Stage};
use crate::hybrid::qr::QrPayload;
use core::fmt;

/// Upper bound on a suffix we bother to parse: an extended advertisement carries at most 255
/// bytes of service data, and the reference layout needs four.
pub const MAX_SUFFIX_LEN: usize = 255;

/// QR key 6 (CTAP 2.3): the data-transfer channels the desktop supports.
const QR_KEY_CHANNELS: i64 = 6;
/// Channel id of the BLE L2CAP data channel in QR key 6.
const CHANNEL_BLE: u64 = 1;
/// Suffix map key carrying the L2CAP PSM (`{1: PSM}`).
const SUFFIX_KEY_PSM: i64 = 1;

/// A parsed suffix. Unauthenticated: report it, never act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertSuffix {
    /// `{1: PSM}`: the phone says it listens on this L2CAP PSM.
    pub psm: Option<u16>,
    /// Other map keys (e.g. the WIP `{0: …}` layout), as CBOR diagnostics, in wire order.
    pub unknown_keys: Vec<String>,
}

impl AdvertSuffix {
    /// Parses the bytes after the first 20. `Ok(None)` for an empty suffix.
    pub fn parse(bytes: &[u8]) -> Result<Option<AdvertSuffix>, SuffixError> {
        if bytes.is_empty() {
            return Ok(None);
        }
        if bytes.len() > MAX_SUFFIX_LEN {
            return Err(SuffixError::TooLong(bytes.len()));
        }
        let value = Value::decode(bytes).map_err(SuffixError::Cbor)?;
        let map = value.as_map().ok_or(SuffixError::NotAMap)?;
        let mut suffix = AdvertSuffix { psm: None, unknown_keys: Vec::new() };
        for (k, v) in map {
            if *k == Value::int(SUFFIX_KEY_PSM) {
                let psm = v.as_u64().and_then(|n| u16::try_from(n).ok());
                suffix.psm = Some(psm.ok_or(SuffixError::BadPsm)?);
            } else {
                suffix.unknown_keys.push(format!("{k:?}"));
            }
        }
        Ok(Some(suffix))
    }

    /// One line for progress output, e.g. `BLE L2CAP PSM 4097 (unauthenticated, not used)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(psm) = self.psm {
            parts.push(format!("BLE L2CAP PSM {psm}"));
        }
        if !self.unknown_keys.is_empty() {
            parts.push(format!("unknown keys {}", self.unknown_keys.join(", ")));
        }
        if parts.is_empty() {
            parts.push("empty map".to_owned());
        }
        format!("{} (unauthenticated, not used)", parts.join("; "))
    }
}

/// How the bytes after the first 20 turned out; for progress/evidence output.
pub fn describe_suffix(bytes: &[u8]) -> Option<String> {
    match AdvertSuffix::parse(bytes) {
        Ok(None) => None,
        Ok(Some(s)) => Some(s.describe()),
        Err(e) => Some(format!("{} suffix bytes ignored: {e}", bytes.len())),
    }
}

/// Whether the QR code offered the BLE data channel: key 6 is an array containing `1`. The
/// legacy boolean form of key 6 (old GMS, webauthn-rs) is not an offer (§2.1).
pub fn qr_offers_ble(qr: &QrPayload) -> bool {
    qr.unknown_keys.iter().any(|(k, v)| {
        *k == Value::int(QR_KEY_CHANNELS)
            && matches!(v, Value::Array(a) if a.iter().any(|c| c.as_u64() == Some(CHANNEL_BLE)))
    })
}

/// The suffix `{1: psm}` (canonical CBOR) a phone appends when it offers BLE.
pub fn ble_suffix(psm: u16) -> Vec<u8> {
    Value::int_map([(SUFFIX_KEY_PSM, Value::int(i64::from(psm)))]).to_vec()
}

/// A suffix that cannot be parsed. Always [`Fault::Peer`] at [`Stage::Advert`]; the advert
/// itself still matches (the first 20 bytes decide that).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuffixError {
    /// Longer than [`MAX_SUFFIX_LEN`].
    TooLong(usize),
    /// Not exactly one CBOR item.
    Cbor(CborError),
    /// A CBOR item but not a map.
    NotAMap,
    /// Key 1 is not an unsigned 16-bit PSM.
    BadPsm,
}

impl fmt::Display for SuffixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuffixError::TooLong(n) => {
                write!(f, "advert suffix is {n} bytes, more than {MAX_SUFFIX_LEN}")
            }
            SuffixError::Cbor(e) => write!(f, "advert suffix is not one CBOR item: {e}"),
            SuffixError::NotAMap => write!(f, "advert suffix is CBOR but not a map"),
            SuffixError::BadPsm => write!(f, "advert suffix key 1 (PSM) is not a u16"),
        }
    }
}

impl std::error::Error for SuffixError {}

impl Classify for SuffixError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Advert
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn reference_layout_and_others() {
        let s = AdvertSuffix::parse(&ble_suffix(0x1001)).unwrap().unwrap();
        assert_eq!(s.psm, Some(0x1001));
        assert!(s.describe().contains("PSM 4097"));
        assert_eq!(ble_suffix(0x1001), vec![0xa1, 0x01, 0x19, 0x10, 0x01]);
        assert_eq!(AdvertSuffix::parse(&[]), Ok(None));
        // The WIP layout {0: 1} is kept as unknown, not rejected.
        let wip = AdvertSuffix::parse(&[0xa1, 0x00, 0x01]).unwrap().unwrap();
        assert_eq!((wip.psm, wip.unknown_keys.len()), (None, 1));
    }

    #[test]
    fn only_a_channel_array_with_1_offers_ble() {
        use crate::hybrid::tunnel::RequestHint;
        let mut rng = rand_core::OsRng;
        let (_, mut qr) = QrPayload::generate(&mut rng, 0, RequestHint::GetAssertion, false);
        assert!(!qr_offers_ble(&qr));
        qr.unknown_keys = vec![(Value::int(6), Value::Bool(true))];
        assert!(!qr_offers_ble(&qr), "the legacy bool is not a channel offer");
        qr.unknown_keys = vec![(Value::int(6), Value::Array(vec![Value::int(0)]))];
        assert!(!qr_offers_ble(&qr));
        qr.unknown_keys = vec![(Value::int(6), Value::Array(vec![Value::int(0), Value::int(1)]))];
        assert!(qr_offers_ble(&qr));
        // As a desktop offering BLE would write it (we never emit key 6 ourselves).
        let Value::Map(mut entries) = Value::decode(&qr.to_cbor()).unwrap() else { panic!() };
        entries.push((Value::int(6), Value::Array(vec![Value::int(0), Value::int(1)])));
        assert!(qr_offers_ble(&QrPayload::from_cbor(&Value::Map(entries).to_vec()).unwrap()));
    }

    #[test]
    fn malformed_suffixes_are_typed() {
        assert!(matches!(AdvertSuffix::parse(&[0xff, 0x00]), Err(SuffixError::Cbor(_))));
        assert_eq!(AdvertSuffix::parse(&[0x01]), Err(SuffixError::NotAMap));
        let big_psm = Value::int_map([(1, Value::int(70_000))]).to_vec();
        assert_eq!(AdvertSuffix::parse(&big_psm), Err(SuffixError::BadPsm));
        let e = AdvertSuffix::parse(&vec![0xa0; 300]).unwrap_err();
        assert_eq!((e.stage(), e.fault()), (Stage::Advert, Fault::Peer));
        assert!(describe_suffix(&[0x01]).unwrap().contains("ignored"));
    }
}
