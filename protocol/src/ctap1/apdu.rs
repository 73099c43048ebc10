//! ISO 7816-4 APDUs as FIDO U2F uses them (U2F Raw Message Formats §2, "framing").
//!
//! A command is `CLA INS P1 P2` followed by its data in one of the encodings ISO 7816-4 §5.1
//! allows. U2F over HID uses **extended length**; we encode the way libfido2's `iso7816_new`
//! does: `CLA INS P1 P2 00 Lc₁ Lc₂ ‖ data ‖ Le₁ Le₂` with `Le = 00 00` (up to 65 536 bytes back).
//! A command without data is `CLA INS P1 P2 00 00 00` (Case 2E: a three-byte Le). On receive
//! (the device role) every case is accepted: no body, short Le, short Lc/Le, extended Lc/Le.
//!
//! A response is `data ‖ SW1 SW2`; the status word is mapped to [`StatusWord`] here and only here.

use core::fmt;

use super::messages::U2fError;

/// The ISO 7816 status words U2F uses (U2F Raw Message Formats §3.3).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusWord {
    /// 0x9000 `SW_NO_ERROR`.
    NoError,
    /// 0x6985 `SW_CONDITIONS_NOT_SATISFIED`: user presence is needed (touch the key), or — for a
    /// check-only authenticate — the key handle is valid.
    ConditionsNotSatisfied,
    /// 0x6A80 `SW_WRONG_DATA`: bad key handle (not this key's, or for another application).
    WrongData,
    /// 0x6700 `SW_WRONG_LENGTH`.
    WrongLength,
    /// 0x6E00 `SW_CLA_NOT_SUPPORTED`.
    ClaNotSupported,
    /// 0x6D00 `SW_INS_NOT_SUPPORTED`.
    InsNotSupported,
    /// 0x6B00 wrong P1/P2 (ISO 7816 "incorrect parameters").
    WrongParameters,
    /// Anything else.
    Other(u16),
}

impl StatusWord {
    /// From the two status bytes.
    pub fn from_u16(sw: u16) -> Self {
        match sw {
            0x9000 => StatusWord::NoError,
            0x6985 => StatusWord::ConditionsNotSatisfied,
            0x6a80 => StatusWord::WrongData,
            0x6700 => StatusWord::WrongLength,
            0x6e00 => StatusWord::ClaNotSupported,
            0x6d00 => StatusWord::InsNotSupported,
            0x6b00 => StatusWord::WrongParameters,
            other => StatusWord::Other(other),
        }
    }

    /// The two status bytes as a number.
    pub fn to_u16(self) -> u16 {
        match self {
            StatusWord::NoError => 0x9000,
            StatusWord::ConditionsNotSatisfied => 0x6985,
            StatusWord::WrongData => 0x6a80,
            StatusWord::WrongLength => 0x6700,
            StatusWord::ClaNotSupported => 0x6e00,
            StatusWord::InsNotSupported => 0x6d00,
            StatusWord::WrongParameters => 0x6b00,
            StatusWord::Other(sw) => sw,
        }
    }

    /// What it means, as a phrase.
    pub fn describe(self) -> &'static str {
        match self {
            StatusWord::NoError => "no error",
            StatusWord::ConditionsNotSatisfied => "conditions not satisfied (user presence needed)",
            StatusWord::WrongData => "wrong data (the key handle is not this key's)",
            StatusWord::WrongLength => "wrong length",
            StatusWord::ClaNotSupported => "class not supported",
            StatusWord::InsNotSupported => "instruction not supported",
            StatusWord::WrongParameters => "wrong parameters",
            StatusWord::Other(_) => "unknown status",
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X} {}", self.to_u16(), self.describe())
    }
}

/// A command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandApdu {
    /// Class byte (0 for U2F).
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1 (the control byte of U2F_AUTHENTICATE).
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// The command data (at most 65 535 bytes).
    pub data: Vec<u8>,
}

impl CommandApdu {
    /// Longest command data extended length can carry.
    pub const MAX_DATA: usize = 0xffff;

    /// Extended-length encoding as libfido2 sends it (see the module docs).
    pub fn encode(&self) -> Result<Vec<u8>, U2fError> {
        if self.data.len() > Self::MAX_DATA {
            return Err(U2fError::TooLong { field: "command data", len: self.data.len() });
        }
        let mut out = Vec::with_capacity(4 + 3 + self.data.len() + 2);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if self.data.is_empty() {
            // Case 2E: 00 Le₁ Le₂ with Le = 0 (= 65 536).
            out.extend_from_slice(&[0, 0, 0]);
            return Ok(out);
        }
        let [hi, lo] = (self.data.len() as u16).to_be_bytes();
        out.extend_from_slice(&[0, hi, lo]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&[0, 0]);
        Ok(out)
    }

    /// Parses any ISO 7816-4 case (1, 2S, 2E, 3S, 3E, 4S, 4E). Trailing or missing bytes that
    /// no case explains are [`U2fError::MalformedApdu`].
    pub fn parse(bytes: &[u8]) -> Result<Self, U2fError> {
        let malformed = |reason| U2fError::MalformedApdu { reason };
        let Some((header, body)) = bytes.split_first_chunk::<4>() else {
            return Err(malformed("shorter than the 4-byte header"));
        };
        let [cla, ins, p1, p2] = *header;
        let data: &[u8] = match body {
            // Case 1, Case 2S.
            [] | [_] => &[],
            // Extended: 00 then two length bytes.
            [0, rest @ ..] if rest.len() >= 2 => {
                let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let after = &rest[2..];
                match after.len() {
                    // Case 2E: the two bytes were Le.
                    0 => &[],
                    // Case 3E (no Le) or 4E (two Le bytes).
                    len if n > 0 && (len == n || len == n + 2) => &after[..n],
                    _ => return Err(malformed("extended Lc does not match the data length")),
                }
            }
            // Short: Lc then data, then an optional one-byte Le.
            [lc, rest @ ..] => {
                let n = usize::from(*lc);
                if n == 0 || !(rest.len() == n || rest.len() == n + 1) {
                    return Err(malformed("short Lc does not match the data length"));
                }
                &rest[..n]
            }
        };
        Ok(CommandApdu { cla, ins, p1, p2, data: data.to_vec() })
    }
}

/// A response APDU, borrowing the response bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseApdu<'a> {
    /// The response data.
    pub data: &'a [u8],
    /// The status word.
    pub status: StatusWord,
}

impl<'a> ResponseApdu<'a> {
    /// Splits `data ‖ SW1 SW2`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, U2fError> {
        let Some((data, sw)) = bytes.split_last_chunk::<2>() else {
            return Err(U2fError::MalformedApdu {
                reason: "response shorter than its status word",
            });
        };
        Ok(ResponseApdu { data, status: StatusWord::from_u16(u16::from_be_bytes(*sw)) })
    }

    /// `data ‖ SW1 SW2`.
    pub fn encode(data: &[u8], status: StatusWord) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 2);
        out.extend_from_slice(data);
        out.extend_from_slice(&status.to_u16().to_be_bytes());
        out
    }

    /// The data when the status is 0x9000, else [`U2fError::Status`].
    pub fn ok(self) -> Result<&'a [u8], U2fError> {
        match self.status {
            StatusWord::NoError => Ok(self.data),
            status => Err(U2fError::Status(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(data: &[u8]) -> CommandApdu {
        CommandApdu { cla: 0, ins: 0x02, p1: 0x07, p2: 0, data: data.to_vec() }
    }

    #[test]
    fn extended_encoding_matches_libfido2() {
        // libfido2 iso7816_new: header, 00 Lc(2), data, Le 00 00.
        assert_eq!(cmd(&[0xaa, 0xbb]).encode().unwrap(), [0, 2, 7, 0, 0, 0, 2, 0xaa, 0xbb, 0, 0]);
        assert_eq!(cmd(&[]).encode().unwrap(), [0, 2, 7, 0, 0, 0, 0]);
        let long = vec![7u8; 300];
        let bytes = cmd(&long).encode().unwrap();
        assert_eq!(&bytes[4..7], &[0, 0x01, 0x2c]);
        assert_eq!(CommandApdu::parse(&bytes).unwrap(), cmd(&long));
        assert!(cmd(&vec![0; 0x1_0000]).encode().is_err());
    }

    #[test]
    fn every_iso_case_parses() {
        let with = cmd(&[1, 2, 3]);
        for bytes in [
            vec![0, 2, 7, 0, 0, 0, 3, 1, 2, 3, 0, 0], // 4E
            vec![0, 2, 7, 0, 0, 0, 3, 1, 2, 3],       // 3E
            vec![0, 2, 7, 0, 3, 1, 2, 3],             // 3S
            vec![0, 2, 7, 0, 3, 1, 2, 3, 0],          // 4S
        ] {
            assert_eq!(CommandApdu::parse(&bytes).unwrap(), with, "{bytes:?}");
        }
        for bytes in [vec![0, 2, 7, 0], vec![0, 2, 7, 0, 0], vec![0, 2, 7, 0, 0, 0, 0]] {
            assert_eq!(CommandApdu::parse(&bytes).unwrap(), cmd(&[]), "{bytes:?}");
        }
    }

    #[test]
    fn malformed_commands_are_refused() {
        for bytes in [
            &[0, 2, 7][..],                         // no header
            &[0, 2, 7, 0, 0, 0, 5, 1, 2][..],       // extended Lc 5, 2 bytes
            &[0, 2, 7, 0, 0, 0, 1, 1, 2, 3, 4][..], // extended Lc 1, 4 bytes
            &[0, 2, 7, 0, 4, 1, 2][..],             // short Lc 4, 2 bytes
            &[0, 2, 7, 0, 1, 1, 2, 3][..],          // short Lc 1, 3 bytes
        ] {
            assert!(
                matches!(CommandApdu::parse(bytes), Err(U2fError::MalformedApdu { .. })),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn responses_split_the_status_word() {
        let r = ResponseApdu::parse(&[1, 2, 0x90, 0x00]).unwrap();
        assert_eq!((r.data, r.status), (&[1u8, 2][..], StatusWord::NoError));
        assert_eq!(r.ok().unwrap(), &[1, 2]);
        let r = ResponseApdu::parse(&[0x69, 0x85]).unwrap();
        assert_eq!(r.status, StatusWord::ConditionsNotSatisfied);
        assert_eq!(r.ok(), Err(U2fError::Status(StatusWord::ConditionsNotSatisfied)));
        assert_eq!(ResponseApdu::parse(&[0x6a, 0x80]).unwrap().status, StatusWord::WrongData);
        assert_eq!(StatusWord::from_u16(0x6f00), StatusWord::Other(0x6f00));
        assert_eq!(
            StatusWord::WrongData.to_string(),
            "0x6A80 wrong data (the key handle is not this key's)"
        );
        assert!(ResponseApdu::parse(&[0x90]).is_err());
        assert!(ResponseApdu::parse(&[]).is_err());
        assert_eq!(ResponseApdu::encode(&[9], StatusWord::WrongData), [9, 0x6a, 0x80]);
    }
}
