//! `--policy FILE`, `--profile ID|NAME` and `--mds FILE`, shared by `register`, `authenticate`
//! and `demo`: the engine's one AAGUID table (built-in names, extended by an MDS3 blob) and the
//! Entra policy verdict (`cablebridged::policy`) added to each result as `"policy": {...}`.
//!
//! A rejected verdict does not change the exit code: the ceremony itself succeeded (exit 0) and
//! the verdict predicts what Entra ID would do with it; scripts read `.policy.verdict`.

use crate::output::{CmdError, Exit};
use cablebridged::ceremony::{AuthenticationResult, RegistrationResult};
use cablebridged::evidence::{Aaguid, AaguidTable};
use cablebridged::policy::{evaluate, CeremonyFacts, PolicyError, SelectedPolicy};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

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

/// What the flags loaded: the table every transport uses and the selected policy.
#[derive(Debug, Clone)]
pub struct PolicyContext {
    /// The engine's AAGUID table.
    pub table: Arc<AaguidTable>,
    /// The policy profile, when `--policy` was given.
    pub policy: Option<SelectedPolicy>,
    /// Whether `--mds` was given (chain results are then reported).
    pub mds: bool,
}

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
        let mut table = AaguidTable::built_in();
        if let Some(path) = &self.mds {
            let blob = std::fs::read(path).map_err(|e| {
                let message = format!("--mds: cannot read {}: {e}", path.display());
                if e.kind() == std::io::ErrorKind::NotFound {
                    CmdError::usage(message)
                } else {
                    CmdError::environment(message)
                }
            })?;
            table
                .extend_from_mds(&blob)
                .map_err(|e| CmdError::usage(format!("--mds {}: {e}", path.display())))?;
        }
        let policy = self
            .policy
            .as_deref()
            .map(|p| SelectedPolicy::load(p, self.profile.as_deref()))
            .transpose()
            .map_err(policy_error)?;
        Ok(PolicyContext { table: Arc::new(table), policy, mds: self.mds.is_some() })
    }
}

impl PolicyContext {
    /// Extra result fields of a registration: `attestation_chain` (with `--mds`) and `policy`.
    pub fn registration_fields(&self, reg: &RegistrationResult) -> Vec<(&'static str, Value)> {
        let facts = CeremonyFacts::registration(reg, &self.table);
        let mut fields = Vec::new();
        if self.mds {
            let chain = facts
                .attestation
                .as_ref()
                .map(|a| json!({"status": a.chain.as_str(), "detail": a.chain.detail()}));
            fields.push(("attestation_chain", chain.unwrap_or(Value::Null)));
        }
        if let Some(p) = &self.policy {
            fields.push(("policy", evaluate(p, &facts, &self.table).to_json()));
        }
        fields
    }

    /// Extra result fields of a sign-in: `policy`. `aaguid` is the credential's model from its
    /// registration (assertions carry none).
    pub fn authentication_fields(
        &self,
        auth: &AuthenticationResult,
        aaguid: Option<Aaguid>,
    ) -> Vec<(&'static str, Value)> {
        match &self.policy {
            Some(p) => {
                let facts = CeremonyFacts::authentication(auth, aaguid);
                vec![("policy", evaluate(p, &facts, &self.table).to_json())]
            }
            None => Vec::new(),
        }
    }
}

/// Parses `--credential-aaguid` / `--phone-aaguid` (dashed or 32 hex digits).
pub fn parse_aaguid(s: &str) -> Result<Aaguid, String> {
    s.parse::<Aaguid>().map_err(|e| e.to_string())
}
