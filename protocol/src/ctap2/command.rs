//! CTAP2 command bytes (CTAP 2.1 §6 "Authenticator API", table in §6 and §8.1).
//!
//! The first byte of every CTAP2 request (inside a CTAPHID_CBOR message) selects the command.
//! Unknown bytes become [`Command::Other`]; an authenticator answers those with
//! `CTAP1_ERR_INVALID_COMMAND`. This module is only the byte; request bodies live in the
//! per-command modules.

use core::fmt;

/// An authenticator API command.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `authenticatorMakeCredential` (0x01, §6.1).
    MakeCredential,
    /// `authenticatorGetAssertion` (0x02, §6.2).
    GetAssertion,
    /// `authenticatorGetInfo` (0x04, §6.4).
    GetInfo,
    /// `authenticatorClientPIN` (0x06, §6.5).
    ClientPin,
    /// `authenticatorReset` (0x07, §6.6).
    Reset,
    /// `authenticatorGetNextAssertion` (0x08, §6.3).
    GetNextAssertion,
    /// `authenticatorBioEnrollment` (0x09, §6.7).
    BioEnrollment,
    /// `authenticatorCredentialManagement` (0x0A, §6.8).
    CredentialManagement,
    /// `authenticatorSelection` (0x0B, §6.9).
    Selection,
    /// `authenticatorLargeBlobs` (0x0C, §6.10).
    LargeBlobs,
    /// `authenticatorConfig` (0x0D, §6.11).
    Config,
    /// Pre-2.1 `authenticatorBioEnrollment` (0x40, `FIDO_2_1_PRE`).
    BioEnrollmentPreview,
    /// Pre-2.1 `authenticatorCredentialManagement` (0x41, `FIDO_2_1_PRE`); same body as 0x0A.
    CredentialManagementPreview,
    /// Any other byte (vendor commands 0x40..=0xBF not named above, or garbage).
    Other(u8),
}

impl Command {
    /// Maps a wire byte to a command; never fails.
    pub fn from_u8(b: u8) -> Self {
        match b {
            0x01 => Command::MakeCredential,
            0x02 => Command::GetAssertion,
            0x04 => Command::GetInfo,
            0x06 => Command::ClientPin,
            0x07 => Command::Reset,
            0x08 => Command::GetNextAssertion,
            0x09 => Command::BioEnrollment,
            0x0A => Command::CredentialManagement,
            0x0B => Command::Selection,
            0x0C => Command::LargeBlobs,
            0x0D => Command::Config,
            0x40 => Command::BioEnrollmentPreview,
            0x41 => Command::CredentialManagementPreview,
            other => Command::Other(other),
        }
    }

    /// The wire byte (`const`, so other constants can be defined from it, e.g. the hybrid
    /// session's getInfo byte: one definition per command byte).
    pub const fn to_u8(self) -> u8 {
        match self {
            Command::MakeCredential => 0x01,
            Command::GetAssertion => 0x02,
            Command::GetInfo => 0x04,
            Command::ClientPin => 0x06,
            Command::Reset => 0x07,
            Command::GetNextAssertion => 0x08,
            Command::BioEnrollment => 0x09,
            Command::CredentialManagement => 0x0A,
            Command::Selection => 0x0B,
            Command::LargeBlobs => 0x0C,
            Command::Config => 0x0D,
            Command::BioEnrollmentPreview => 0x40,
            Command::CredentialManagementPreview => 0x41,
            Command::Other(b) => b,
        }
    }

    /// The spec's name (`authenticatorMakeCredential`).
    pub fn name(self) -> &'static str {
        match self {
            Command::MakeCredential => "authenticatorMakeCredential",
            Command::GetAssertion => "authenticatorGetAssertion",
            Command::GetInfo => "authenticatorGetInfo",
            Command::ClientPin => "authenticatorClientPIN",
            Command::Reset => "authenticatorReset",
            Command::GetNextAssertion => "authenticatorGetNextAssertion",
            Command::BioEnrollment => "authenticatorBioEnrollment",
            Command::CredentialManagement => "authenticatorCredentialManagement",
            Command::Selection => "authenticatorSelection",
            Command::LargeBlobs => "authenticatorLargeBlobs",
            Command::Config => "authenticatorConfig",
            Command::BioEnrollmentPreview => "authenticatorBioEnrollment (preview)",
            Command::CredentialManagementPreview => "authenticatorCredentialManagement (preview)",
            Command::Other(_) => "unknown command",
        }
    }
}

impl From<u8> for Command {
    fn from(b: u8) -> Self {
        Command::from_u8(b)
    }
}

impl From<Command> for u8 {
    fn from(c: Command) -> u8 {
        c.to_u8()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.to_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_match_the_spec_and_round_trip() {
        assert_eq!(Command::MakeCredential.to_u8(), 0x01);
        assert_eq!(Command::GetAssertion.to_u8(), 0x02);
        assert_eq!(Command::GetInfo.to_u8(), 0x04);
        assert_eq!(Command::ClientPin.to_u8(), 0x06);
        assert_eq!(Command::Reset.to_u8(), 0x07);
        assert_eq!(Command::GetNextAssertion.to_u8(), 0x08);
        assert_eq!(Command::CredentialManagement.to_u8(), 0x0A);
        assert_eq!(Command::CredentialManagementPreview.to_u8(), 0x41);
        assert_eq!(Command::Selection.to_u8(), 0x0B);
        for b in 0..=u8::MAX {
            assert_eq!(Command::from_u8(b).to_u8(), b);
        }
        assert_eq!(Command::from_u8(0x03), Command::Other(0x03));
        assert_eq!(Command::GetInfo.to_string(), "authenticatorGetInfo (0x04)");
    }
}
