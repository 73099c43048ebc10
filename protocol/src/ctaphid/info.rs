//! The INIT response payload (CTAP 2.1 §11.2.9.1.3): nonce, allocated CID, protocol and device
//! versions, capability flags. Shared by the host (parse) and the device (encode).

use super::codes::{Capabilities, Cid};
use super::error::HostError;
use super::{INIT_NONCE_LEN, INIT_RESPONSE_LEN};

/// What the INIT response says about the device (§11.2.9.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The channel the device allocated (or confirmed, on resync).
    pub cid: Cid,
    /// CTAPHID protocol version (2).
    pub protocol_version: u8,
    /// Device version, major.
    pub major: u8,
    /// Device version, minor.
    pub minor: u8,
    /// Device version, build.
    pub build: u8,
    /// Capability flags.
    pub capabilities: Capabilities,
}

impl DeviceInfo {
    /// Encodes the 17-byte INIT response payload for `nonce`.
    pub fn encode(&self, nonce: &[u8; INIT_NONCE_LEN]) -> [u8; INIT_RESPONSE_LEN] {
        let mut out = [0u8; INIT_RESPONSE_LEN];
        out[..8].copy_from_slice(nonce);
        out[8..12].copy_from_slice(&self.cid.to_bytes());
        out[12] = self.protocol_version;
        out[13] = self.major;
        out[14] = self.minor;
        out[15] = self.build;
        out[16] = self.capabilities.0;
        out
    }

    /// Parses an INIT response payload into (nonce, info). Longer payloads are accepted (the
    /// spec allows growth); shorter ones and reserved CIDs are errors.
    pub fn parse(payload: &[u8]) -> Result<([u8; INIT_NONCE_LEN], DeviceInfo), HostError> {
        let Some(b) = payload.get(..INIT_RESPONSE_LEN) else {
            return Err(HostError::BadInitResponse { reason: "shorter than 17 bytes" });
        };
        let mut nonce = [0u8; INIT_NONCE_LEN];
        nonce.copy_from_slice(&b[..8]);
        let cid = Cid::from_bytes([b[8], b[9], b[10], b[11]]);
        if !cid.is_allocatable() {
            return Err(HostError::BadInitResponse {
                reason: "allocated channel is 0 or broadcast",
            });
        }
        let info = DeviceInfo {
            cid,
            protocol_version: b[12],
            major: b[13],
            minor: b[14],
            build: b[15],
            capabilities: Capabilities(b[16]),
        };
        Ok((nonce, info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parse_round_trip_and_rejections() {
        let info = DeviceInfo {
            cid: Cid(0x0a0b_0c0d),
            protocol_version: 2,
            major: 1,
            minor: 2,
            build: 3,
            capabilities: Capabilities::CBOR,
        };
        let bytes = info.encode(&[7; 8]);
        assert_eq!(&bytes[8..], &[0x0a, 0x0b, 0x0c, 0x0d, 2, 1, 2, 3, 4]);
        assert_eq!(DeviceInfo::parse(&bytes).unwrap(), ([7; 8], info));
        // Longer is fine (room for growth); shorter or a reserved CID is not.
        assert!(DeviceInfo::parse(&[bytes.as_slice(), &[0; 3]].concat()).is_ok());
        assert!(DeviceInfo::parse(&bytes[..16]).is_err());
        let mut broadcast = bytes;
        broadcast[8..12].copy_from_slice(&[0xff; 4]);
        assert!(DeviceInfo::parse(&broadcast).is_err());
    }
}
