//! CTAPHID numbers: channel identifiers, command bytes, error codes, keepalive statuses and the
//! capability flags of the INIT response (CTAP 2.1 §11.2.4, §11.2.9).
//!
//! Every wire number is mapped to a typed value here and nowhere else: the rest of the module only
//! sees [`Command`], [`ErrorCode`], [`KeepAliveStatus`] and [`Capabilities`]. Unknown numbers are
//! kept (`Vendor`, `Other`) rather than rejected, so that a newer device is reported precisely
//! instead of as "garbage".

use core::fmt;

/// A CTAPHID channel identifier (4 bytes, big-endian on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid(pub u32);

impl Cid {
    /// The broadcast channel; only valid as the destination of `CTAPHID_INIT` (§11.2.4).
    pub const BROADCAST: Cid = Cid(0xffff_ffff);
    /// Channel 0 is reserved and never allocated.
    pub const RESERVED: Cid = Cid(0);

    /// The four wire bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// Reads a CID from its four wire bytes.
    pub fn from_bytes(bytes: [u8; 4]) -> Cid {
        Cid(u32::from_be_bytes(bytes))
    }

    /// True for a CID a device may hand out: neither reserved nor broadcast.
    pub fn is_allocatable(self) -> bool {
        self != Cid::BROADCAST && self != Cid::RESERVED
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A CTAPHID command (the low seven bits of the CMD byte of an initialization packet).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `CTAPHID_PING` (0x01): echo.
    Ping,
    /// `CTAPHID_MSG` (0x03): a U2F/CTAP1 APDU.
    Msg,
    /// `CTAPHID_LOCK` (0x04): exclusive lock for N seconds.
    Lock,
    /// `CTAPHID_INIT` (0x06): channel allocation / resynchronisation.
    Init,
    /// `CTAPHID_WINK` (0x08): "show yourself".
    Wink,
    /// `CTAPHID_CBOR` (0x10): a CTAP2 command.
    Cbor,
    /// `CTAPHID_CANCEL` (0x11): cancel the pending CBOR request; never answered.
    Cancel,
    /// `CTAPHID_KEEPALIVE` (0x3b): device → host "still working".
    KeepAlive,
    /// `CTAPHID_ERROR` (0x3f): device → host error code.
    Error,
    /// Vendor-specific command (0x40..=0x7f), passed through untouched.
    Vendor(u8),
    /// Any other value; devices answer it with `ERR_INVALID_CMD`.
    Other(u8),
}

impl Command {
    /// First vendor command number (§11.2.9.3).
    pub const VENDOR_FIRST: u8 = 0x40;

    /// The seven-bit command number.
    pub fn to_u7(self) -> u8 {
        match self {
            Command::Ping => 0x01,
            Command::Msg => 0x03,
            Command::Lock => 0x04,
            Command::Init => 0x06,
            Command::Wink => 0x08,
            Command::Cbor => 0x10,
            Command::Cancel => 0x11,
            Command::KeepAlive => 0x3b,
            Command::Error => 0x3f,
            Command::Vendor(n) | Command::Other(n) => n & 0x7f,
        }
    }

    /// The CMD byte of an initialization packet (bit 7 set).
    pub fn to_byte(self) -> u8 {
        0x80 | self.to_u7()
    }

    /// Maps a CMD byte (bit 7 ignored) to a command; total, never fails.
    pub fn from_byte(byte: u8) -> Command {
        match byte & 0x7f {
            0x01 => Command::Ping,
            0x03 => Command::Msg,
            0x04 => Command::Lock,
            0x06 => Command::Init,
            0x08 => Command::Wink,
            0x10 => Command::Cbor,
            0x11 => Command::Cancel,
            0x3b => Command::KeepAlive,
            0x3f => Command::Error,
            n if n >= Self::VENDOR_FIRST => Command::Vendor(n),
            n => Command::Other(n),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ping => f.write_str("PING"),
            Command::Msg => f.write_str("MSG"),
            Command::Lock => f.write_str("LOCK"),
            Command::Init => f.write_str("INIT"),
            Command::Wink => f.write_str("WINK"),
            Command::Cbor => f.write_str("CBOR"),
            Command::Cancel => f.write_str("CANCEL"),
            Command::KeepAlive => f.write_str("KEEPALIVE"),
            Command::Error => f.write_str("ERROR"),
            Command::Vendor(n) => write!(f, "vendor command 0x{n:02x}"),
            Command::Other(n) => write!(f, "unknown command 0x{n:02x}"),
        }
    }
}

/// The one-byte payload of a `CTAPHID_ERROR` response (§11.2.9.1.6).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `ERR_INVALID_CMD` (0x01).
    InvalidCmd,
    /// `ERR_INVALID_PAR` (0x02).
    InvalidPar,
    /// `ERR_INVALID_LEN` (0x03).
    InvalidLen,
    /// `ERR_INVALID_SEQ` (0x04).
    InvalidSeq,
    /// `ERR_MSG_TIMEOUT` (0x05).
    MsgTimeout,
    /// `ERR_CHANNEL_BUSY` (0x06).
    ChannelBusy,
    /// `ERR_LOCK_REQUIRED` (0x0a).
    LockRequired,
    /// `ERR_INVALID_CHANNEL` (0x0b).
    InvalidChannel,
    /// `ERR_OTHER` (0x7f).
    Other,
    /// A code this table does not know.
    Unknown(u8),
}

impl ErrorCode {
    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            ErrorCode::InvalidCmd => 0x01,
            ErrorCode::InvalidPar => 0x02,
            ErrorCode::InvalidLen => 0x03,
            ErrorCode::InvalidSeq => 0x04,
            ErrorCode::MsgTimeout => 0x05,
            ErrorCode::ChannelBusy => 0x06,
            ErrorCode::LockRequired => 0x0a,
            ErrorCode::InvalidChannel => 0x0b,
            ErrorCode::Other => 0x7f,
            ErrorCode::Unknown(n) => n,
        }
    }

    /// Maps a wire byte; total, never fails.
    pub fn from_u8(byte: u8) -> ErrorCode {
        match byte {
            0x01 => ErrorCode::InvalidCmd,
            0x02 => ErrorCode::InvalidPar,
            0x03 => ErrorCode::InvalidLen,
            0x04 => ErrorCode::InvalidSeq,
            0x05 => ErrorCode::MsgTimeout,
            0x06 => ErrorCode::ChannelBusy,
            0x0a => ErrorCode::LockRequired,
            0x0b => ErrorCode::InvalidChannel,
            0x7f => ErrorCode::Other,
            n => ErrorCode::Unknown(n),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorCode::InvalidCmd => "ERR_INVALID_CMD (command not supported)",
            ErrorCode::InvalidPar => "ERR_INVALID_PAR (invalid parameter)",
            ErrorCode::InvalidLen => "ERR_INVALID_LEN (invalid message length)",
            ErrorCode::InvalidSeq => "ERR_INVALID_SEQ (packet out of sequence)",
            ErrorCode::MsgTimeout => "ERR_MSG_TIMEOUT (message continuation timed out)",
            ErrorCode::ChannelBusy => "ERR_CHANNEL_BUSY (device busy with another channel)",
            ErrorCode::LockRequired => "ERR_LOCK_REQUIRED",
            ErrorCode::InvalidChannel => "ERR_INVALID_CHANNEL (channel not allocated)",
            ErrorCode::Other => "ERR_OTHER",
            ErrorCode::Unknown(n) => return write!(f, "unknown CTAPHID error 0x{n:02x}"),
        };
        f.write_str(name)
    }
}

/// The one-byte status of a `CTAPHID_KEEPALIVE` (§11.2.9.2.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepAliveStatus {
    /// `STATUS_PROCESSING` (1): the authenticator is still working.
    Processing,
    /// `STATUS_UPNEEDED` (2): waiting for user presence ("touch your key").
    UpNeeded,
    /// A status this table does not know; still a sign of life.
    Other(u8),
}

impl KeepAliveStatus {
    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            KeepAliveStatus::Processing => 1,
            KeepAliveStatus::UpNeeded => 2,
            KeepAliveStatus::Other(n) => n,
        }
    }

    /// Maps a wire byte; total, never fails.
    pub fn from_u8(byte: u8) -> KeepAliveStatus {
        match byte {
            1 => KeepAliveStatus::Processing,
            2 => KeepAliveStatus::UpNeeded,
            n => KeepAliveStatus::Other(n),
        }
    }
}

/// Capability flags of the INIT response (§11.2.9.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u8);

impl Capabilities {
    /// `CAPABILITY_WINK`: the device implements `CTAPHID_WINK`.
    pub const WINK: Capabilities = Capabilities(0x01);
    /// `CAPABILITY_CBOR`: the device implements `CTAPHID_CBOR` (CTAP2).
    pub const CBOR: Capabilities = Capabilities(0x04);
    /// `CAPABILITY_NMSG`: the device does NOT implement `CTAPHID_MSG` (no CTAP1/U2F).
    pub const NMSG: Capabilities = Capabilities(0x08);

    /// True if every flag in `other` is set.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_bytes_round_trip_for_every_value() {
        for b in 0u8..=0x7f {
            let c = Command::from_byte(b | 0x80);
            assert_eq!(c.to_u7(), b, "{c}");
            assert_eq!(c.to_byte(), b | 0x80);
        }
        assert_eq!(Command::from_byte(0x90), Command::Cbor);
        assert_eq!(Command::from_byte(0xc1), Command::Vendor(0x41));
        assert_eq!(Command::from_byte(0x82), Command::Other(0x02));
    }

    #[test]
    fn error_and_keepalive_codes_round_trip() {
        for b in 0u8..=0xff {
            assert_eq!(ErrorCode::from_u8(b).to_u8(), b);
            assert_eq!(KeepAliveStatus::from_u8(b).to_u8(), b);
        }
        assert_eq!(ErrorCode::from_u8(6), ErrorCode::ChannelBusy);
        assert_eq!(ErrorCode::from_u8(0x0b), ErrorCode::InvalidChannel);
        assert_eq!(KeepAliveStatus::from_u8(2), KeepAliveStatus::UpNeeded);
    }

    #[test]
    fn cids_and_capabilities() {
        assert!(!Cid::BROADCAST.is_allocatable());
        assert!(!Cid::RESERVED.is_allocatable());
        assert_eq!(Cid::from_bytes([1, 2, 3, 4]), Cid(0x0102_0304));
        assert_eq!(Cid(0x0102_0304).to_string(), "01020304");
        let caps = Capabilities::WINK | Capabilities::CBOR;
        assert!(caps.contains(Capabilities::CBOR));
        assert!(!caps.contains(Capabilities::NMSG));
    }
}
