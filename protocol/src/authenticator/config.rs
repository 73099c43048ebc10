//! Authenticator configuration and the user-presence hook.
//!
//! [`Config::virtual_key`] models a USB security key (PIN, no built-in UV, packed attestation);
//! [`Config::virtual_phone`] models a phone answering over the hybrid tunnel (built-in UV, no PIN,
//! `none` attestation; turn on [`Config::builtin_uv_token`] for pinUvAuthTokens from built-in UV). Presence is decided by the embedder through [`UserPresence`]: answer now
//! (a policy) or [`PresenceDecision::Defer`] and call `Authenticator::complete` later.

use super::attestation::AttestationMode;
use core::time::Duration;

/// cablebridge's fixed AAGUID, `e0e1bb60-ee6d-4c0d-82a5-bf6653a6c08f` (a random v4 UUID chosen
/// once). Not all-zero, so relying parties and our own tools can tell the software authenticator
/// apart from real phones (which often report all-zero).
pub const CABLEBRIDGE_AAGUID: [u8; 16] = [
    0xe0, 0xe1, 0xbb, 0x60, 0xee, 0x6d, 0x4c, 0x0d, 0x82, 0xa5, 0xbf, 0x66, 0x53, 0xa6, 0xc0, 0x8f,
];

/// Static configuration of one authenticator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Reported in getInfo and attested credential data.
    pub aaguid: [u8; 16],
    /// makeCredential attestation format.
    pub attestation: AttestationMode,
    /// Built-in user verification (a phone's screen lock). When true every ceremony sets UV.
    pub builtin_uv: bool,
    /// Whether clientPIN (protocols 2 and 1), pinUvAuthToken and credential management exist.
    pub pin_capable: bool,
    /// With `builtin_uv`: clientPIN getKeyAgreement, getPinUvAuthTokenUsingUvWithPermissions
    /// (0x06) and getUVRetries (0x07) are answered, and getInfo advertises `pinUvAuthToken` and
    /// `pinUvAuthProtocols`. Off in [`Config::virtual_phone`] because phones over hybrid
    /// advertise neither (platforms then rely on the `uv` option alone); ignored without
    /// `builtin_uv`.
    pub builtin_uv_token: bool,
    /// getInfo `transports`.
    pub transports: Vec<String>,
    /// getInfo `versions`.
    pub versions: Vec<String>,
    /// Maximum number of resident credentials.
    pub max_credentials: usize,
    /// How long a pinUvAuthToken stays usable after issue (CTAP 2.1 caps it at 10 minutes).
    pub token_lifetime: Duration,
    /// reset is only allowed this long after power-up; `None` = always (virtual key default).
    pub reset_window: Option<Duration>,
    /// How long getNextAssertion state lives (CTAP 2.1 §6.3: 30 s).
    pub next_assertion_timeout: Duration,
    /// Model a synced passkey provider: authenticator data carries BE (backup eligible) and BS
    /// (backed up), WebAuthn §6.1 flag bits 3 and 4. Off by default (device-bound). Relying
    /// parties such as Entra ID read BE to tell synced from device-bound passkeys.
    pub backup_eligible: bool,
    /// Enterprise attestation capability (getInfo `ep`, off until authenticatorConfig
    /// enableEnterpriseAttestation turns it on). On for [`Config::virtual_key`].
    pub enterprise_attestation: bool,
    /// RP ids of the vendor-facilitated enterprise attestation list (enterpriseAttestation 1
    /// returns an enterprise attestation only for these; 2, platform-managed, for any RP).
    pub enterprise_rp_ids: Vec<String>,
    /// A simulated fingerprint sensor: bio enrollment (0x09 and the 0x40 preview) exists, every
    /// sample is "captured" at once, and once a finger is enrolled built-in UV (`uv`) works
    /// through the presence hook, tokens included. Off by default.
    pub bio: bool,
}

impl Config {
    /// A USB security key: PIN-capable, no built-in UV, packed attestation from a test CA.
    pub fn virtual_key() -> Self {
        Config {
            aaguid: CABLEBRIDGE_AAGUID,
            attestation: AttestationMode::PackedTestCa,
            builtin_uv: false,
            pin_capable: true,
            builtin_uv_token: false,
            transports: vec!["usb".into()],
            versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
            max_credentials: 64,
            token_lifetime: Duration::from_secs(600),
            reset_window: None,
            next_assertion_timeout: Duration::from_secs(30),
            backup_eligible: false,
            enterprise_attestation: true,
            enterprise_rp_ids: Vec::new(),
            bio: false,
        }
    }

    /// A phone over hybrid: built-in UV, no PIN, `none` attestation.
    pub fn virtual_phone() -> Self {
        Config {
            attestation: AttestationMode::None,
            builtin_uv: true,
            pin_capable: false,
            transports: vec!["internal".into(), "hybrid".into()],
            enterprise_attestation: false,
            ..Config::virtual_key()
        }
    }

    /// Whether the built-in-UV token subcommands are on (needs built-in UV).
    pub(crate) fn uv_token(&self) -> bool {
        self.builtin_uv && self.builtin_uv_token
    }

    /// Whether authenticatorConfig exists (PIN-capable keys and keys with a fingerprint sensor;
    /// not the virtual phone, which phones over hybrid do not offer).
    pub(crate) fn configurable(&self) -> bool {
        self.pin_capable || self.bio
    }
}

/// Why presence is being requested.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    /// makeCredential.
    MakeCredential,
    /// getAssertion.
    GetAssertion,
    /// authenticatorReset.
    Reset,
    /// authenticatorSelection.
    Selection,
    /// Built-in user verification for getPinUvAuthTokenUsingUvWithPermissions.
    UserVerification,
}

/// What the authenticator asks the user to confirm (shown by a UI or logged by a driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRequest {
    /// The command.
    pub kind: PresenceKind,
    /// The RP, for makeCredential/getAssertion.
    pub rp_id: Option<String>,
    /// Whether built-in user verification is also being performed.
    pub user_verification: bool,
}

/// How a presence request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceOutcome {
    /// The user touched / confirmed.
    Approved,
    /// The user declined → CTAP2_ERR_OPERATION_DENIED.
    Denied,
    /// The platform sent CTAPHID_CANCEL → CTAP2_ERR_KEEPALIVE_CANCEL.
    Cancelled,
    /// Nobody answered in time → CTAP2_ERR_USER_ACTION_TIMEOUT.
    TimedOut,
}

/// The embedder's answer to a presence request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceDecision {
    /// Decided synchronously.
    Now(PresenceOutcome),
    /// Decide later: `handle` returns `Step::Pending` and the caller calls `complete`.
    Defer,
}

/// Decides user presence.
pub trait UserPresence {
    /// Called once per request that needs presence.
    fn request(&mut self, request: &PresenceRequest) -> PresenceDecision;
}

/// Ready-made presence policies (`--user-presence` in the tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresencePolicy {
    /// Approve at once.
    AlwaysApprove,
    /// Deny at once.
    AlwaysDeny,
    /// Defer; the driver arms a timer (`--user-presence-delay-ms`) and then calls `complete`.
    Deferred,
}

impl UserPresence for PresencePolicy {
    fn request(&mut self, _: &PresenceRequest) -> PresenceDecision {
        match self {
            PresencePolicy::AlwaysApprove => PresenceDecision::Now(PresenceOutcome::Approved),
            PresencePolicy::AlwaysDeny => PresenceDecision::Now(PresenceOutcome::Denied),
            PresencePolicy::Deferred => PresenceDecision::Defer,
        }
    }
}
