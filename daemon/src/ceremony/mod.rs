//! The WebAuthn client ("platform") side of a ceremony, independent of the transport: the same
//! model drives a phone over hybrid and a security key over USB.
//!
//! [`run`] is the engine's one entry point for a ceremony on any transport (USB key, hybrid QR,
//! linked phone); see [`run`'s module](run()) docs for the contract.
//!
//! What it is: options as a user gives them ([`RegisterOptions`], [`AuthenticateOptions`]), the
//! client data (WebAuthn §5.8.1), the mapping of options onto CTAP2 requests given the
//! authenticator's `getInfo` (CTAP 2.1 §6.1/§6.2), results with the exact JSON fields the CLI
//! prints and `verify()` helpers, stage-by-stage progress and timings, and the one error type
//! ([`CeremonyError`]) that every lower error is mapped into, each naming its stage.
//!
//! What it is not: a transport. The hybrid runner (`crate::desktop`) and the USB client
//! (`crate::ctap::ceremony`) own their IO loops and call into this module to build requests and interpret responses. PIN/UV
//! auth params are the USB client's business: hybrid never sends a PIN (the phone verifies the
//! user itself), so the builders here never set `pinUvAuthParam`.

mod client_data;
mod error;
mod extensions;
mod options;
mod progress;
mod result;
mod run;

pub use client_data::{ClientData, ClientDataType};
pub use error::{exit_code_for_fault, CeremonyError, CeremonyErrorKind};
pub use extensions::{
    CredBlobOutput, ExtensionInputs, ExtensionOutputs, LargeBlobInput, LargeBlobOutput, PrfInputs,
    PrfOutput,
};
pub use options::{
    AuthenticateOptions, RegisterOptions, Requirement, UserInfo, DEFAULT_ALGORITHMS,
};
pub use progress::{
    CeremonyEvent, CeremonyStage, EventSink, Events, ProgressDetail, ProgressEvent, StageClock,
    Timings,
};
pub use result::{
    AuthenticationResult, Candidate, CtapProtocol, RegistrationResult, TransportKind, RESULT_FIELDS,
};
pub(crate) use run::cancellable;
pub use run::{
    run, run_raw, AdvertInput, CeremonyOutcome, CeremonyRequest, HybridTransport, LinkedTransport,
    RawCtapReply, RawCtapRequest, Transport, UsbTransport,
};

/// base64url without padding, as WebAuthn JSON uses it everywhere.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Parses a duration: `500ms`, `30s`, `2m` or a bare number of seconds. The one copy of this
/// rule: CLI flags (`--user-timeout`, ...), the daemon's config file and request params, and lab
/// scenarios all use it.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 30s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        other => Err(format!("unknown unit {other:?} in {s:?} (use ms, s or m)")),
    }
}

/// Parses base64url (padding tolerated, as people paste both forms).
pub fn from_b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim().trim_end_matches('=')).ok()
}
