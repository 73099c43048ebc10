//! Entra ID passkey policy verdicts: would Microsoft Entra ID accept this registration or
//! sign-in under the tenant's Passkey (FIDO2) policy?
//!
//! What it is: the Graph `fido2AuthenticationMethodConfiguration` document as an administrator
//! exports it (`GET /v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/
//! fido2`), in the legacy shape and the passkey-profile shape ([`model`]); the choice of the
//! profile that applies ([`Fido2Policy::select`]); and [`evaluate`], a pure function from a small
//! view of a ceremony result ([`CeremonyFacts`], built by [`facts`]) to a [`Verdict`] whose JSON
//! is a result's `"policy"` field. The rules and their sources are listed in [`verdict`].
//!
//! What it is not: Entra. It cannot see Conditional Access, authentication strengths or the
//! user's group memberships (choose the profile with `--profile`), and it does not call Graph.
//! A verdict is advice for a lab or an administrator; the ceremony's own outcome is unchanged.

pub mod facts;
pub mod judge;
pub mod model;
mod parse;
pub mod verdict;

pub use judge::{Judge, JudgeLoadError};
pub use model::{
    AttestationEnforcement, EnforcementType, Fido2Policy, KeyRestrictions, PasskeyProfile,
    PasskeyTypes, PolicyError, SelectedPolicy, DEFAULT_PROFILE_ID,
};
pub use verdict::{
    evaluate, AttestationFacts, CeremonyFacts, CeremonyKind, Check, CheckStatus, SignatureStatus,
    Verdict, AUTHENTICATOR_ANDROID, AUTHENTICATOR_IOS,
};
