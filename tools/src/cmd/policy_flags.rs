//! `--policy FILE`, `--profile ID|NAME` and `--mds FILE`, shared by `register`, `authenticate`
//! and `demo`, loaded into a [`Judge`] (`cablebridged::policy`): the engine's one AAGUID table
//! (built-in names, extended by an MDS3 blob) and the Entra policy verdict added to each result
//! as `"policy": {...}`.
//!
//! A rejected verdict does not change the exit code: the ceremony itself succeeded (exit 0) and
//! the verdict predicts what Entra ID would do with it; scripts read `.policy.verdict`.

use crate::output::{CmdError, Exit};
use cablebridged::evidence::Aaguid;
use cablebridged::policy::{Judge, JudgeLoadError, PolicyError};
use clap::Args;
use std::path::PathBuf;

/// The policy and metadata flags.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// Entra ID Passkey (FIDO2) policy: the Graph fido2AuthenticationMethodConfiguration JSON
    /// (legacy or passkey-profile shape). Adds `"policy":{"verdict":"accept|reject",...}` to the
    /// result; a reject still exits 0 (the ceremony succeeded; the verdict predicts Entra's).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The passkey profile to judge against (id or name) [default: the one the all_users
    /// target allows].
    #[arg(long, value_name = "ID|NAME", requires = "policy")]
    pub profile: Option<String>,
    /// A FIDO MDS3 blob (the JWT as downloaded, or its JSON payload), read offline: friendly
    /// names, and attestation roots to check packed x5c chains against ("attestation_chain").
    #[arg(long, value_name = "FILE")]
    pub mds: Option<PathBuf>,
}

/// What the flags loaded: the engine's AAGUID table and the selected policy.
pub type PolicyContext = Judge;

fn policy_error(e: PolicyError) -> CmdError {
    CmdError {
        exit: if e.is_environment() { Exit::Environment } else { Exit::Usage },
        message: e.to_string(),
        stage: None,
    }
}

impl PolicyArgs {
    /// Loads the metadata and the policy (before any ceremony starts, so bad files fail fast).
    pub fn load(&self) -> Result<PolicyContext, CmdError> {
        Judge::load(self.policy.as_deref(), self.profile.as_deref(), self.mds.as_deref()).map_err(
            |e| match e {
                JudgeLoadError::Policy(e) => policy_error(e),
                e @ JudgeLoadError::MdsRead { .. } => CmdError {
                    exit: if e.is_environment() { Exit::Environment } else { Exit::Usage },
                    message: format!("--mds: {e}"),
                    stage: None,
                },
                e => CmdError::usage(format!("--mds {e}")),
            },
        )
    }
}

/// Parses `--credential-aaguid` / `--phone-aaguid` (dashed or 32 hex digits).
pub fn parse_aaguid(s: &str) -> Result<Aaguid, String> {
    s.parse::<Aaguid>().map_err(|e| e.to_string())
}
