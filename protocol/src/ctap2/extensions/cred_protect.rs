//! `credProtect` (CTAP 2.1 §12.1): how a credential may be used without user verification.
//!
//! | level | name | getAssertion without UV |
//! |---|---|---|
//! | 1 | userVerificationOptional | always |
//! | 2 | userVerificationOptionalWithCredentialIDList | only with an allowList naming it |
//! | 3 | userVerificationRequired | never (the credential does not exist) |

/// A credProtect level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub enum CredProtect {
    /// 0x01: UV optional (the default when the extension is absent).
    #[default]
    UvOptional,
    /// 0x02: UV optional when the platform names the credential in an allowList.
    UvOptionalWithCredentialIdList,
    /// 0x03: UV required.
    UvRequired,
}

impl CredProtect {
    /// From the wire number (1..=3).
    pub fn from_u64(n: u64) -> Option<Self> {
        match n {
            1 => Some(CredProtect::UvOptional),
            2 => Some(CredProtect::UvOptionalWithCredentialIdList),
            3 => Some(CredProtect::UvRequired),
            _ => None,
        }
    }

    /// The wire number.
    pub fn to_u64(self) -> u64 {
        match self {
            CredProtect::UvOptional => 1,
            CredProtect::UvOptionalWithCredentialIdList => 2,
            CredProtect::UvRequired => 3,
        }
    }

    /// Whether a getAssertion may return the credential: `uv` is the assertion's UV,
    /// `listed` whether the platform sent an allowList (which then contained it).
    pub fn allows(self, uv: bool, listed: bool) -> bool {
        match self {
            CredProtect::UvOptional => true,
            CredProtect::UvOptionalWithCredentialIdList => uv || listed,
            CredProtect::UvRequired => uv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_and_enforce() {
        for n in 1..=3 {
            assert_eq!(CredProtect::from_u64(n).map(CredProtect::to_u64), Some(n));
        }
        assert_eq!(CredProtect::from_u64(0), None);
        assert_eq!(CredProtect::from_u64(4), None);
        let two = CredProtect::UvOptionalWithCredentialIdList;
        assert!(two.allows(false, true) && two.allows(true, false) && !two.allows(false, false));
        assert!(!CredProtect::UvRequired.allows(false, true));
        assert!(CredProtect::UvRequired.allows(true, false));
        assert!(CredProtect::UvOptional.allows(false, false));
    }
}
