//! The engine's evidence and policy context for results: its one AAGUID table (built-in names,
//! extended by `--mds`) and the selected policy profile, turned into the extra fields a result
//! event carries (`attestation_chain`, `policy`). The CLI, the daemon and lab runs share it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use super::model::{PolicyError, SelectedPolicy};
use super::verdict::{evaluate, CeremonyFacts};
use crate::ceremony::{AuthenticationResult, RegistrationResult};
use crate::evidence::{Aaguid, AaguidTable};

/// The table and policy results are judged with.
#[derive(Debug, Clone, Default)]
pub struct Judge {
    /// The engine's AAGUID table.
    pub table: Arc<AaguidTable>,
    /// The policy profile, when one was given.
    pub policy: Option<SelectedPolicy>,
    /// Report `attestation_chain` on registrations (when metadata was loaded).
    pub report_chain: bool,
}

/// Why [`Judge::load`] failed: the MDS blob or the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgeLoadError {
    /// The MDS blob could not be read.
    MdsRead {
        /// The file.
        path: PathBuf,
        /// The OS error.
        problem: String,
        /// Missing (a usage error) rather than unreadable (environment).
        not_found: bool,
    },
    /// The MDS blob is not one.
    MdsMalformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The policy file (or the profile choice).
    Policy(PolicyError),
}

impl std::fmt::Display for JudgeLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JudgeLoadError::MdsRead { path, problem, .. } => {
                write!(f, "cannot read {}: {problem}", path.display())
            }
            JudgeLoadError::MdsMalformed { path, problem } => {
                write!(f, "{}: {problem}", path.display())
            }
            JudgeLoadError::Policy(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for JudgeLoadError {}

impl JudgeLoadError {
    /// The environment's fault (an unreadable existing file), not the caller's.
    pub fn is_environment(&self) -> bool {
        match self {
            JudgeLoadError::MdsRead { not_found, .. } => !not_found,
            JudgeLoadError::MdsMalformed { .. } => false,
            JudgeLoadError::Policy(e) => e.is_environment(),
        }
    }
}

impl Judge {
    /// Loads the metadata (`--mds`: extends the built-in AAGUID table, turns on
    /// `attestation_chain`) and the policy (`--policy`, `--profile`), before any ceremony starts
    /// so bad files fail fast. The CLI's flags and the daemon's ceremony params both come here.
    pub fn load(
        policy: Option<&Path>,
        profile: Option<&str>,
        mds: Option<&Path>,
    ) -> Result<Judge, JudgeLoadError> {
        let mut table = AaguidTable::built_in();
        if let Some(path) = mds {
            let blob = std::fs::read(path).map_err(|e| JudgeLoadError::MdsRead {
                path: path.to_owned(),
                problem: e.to_string(),
                not_found: e.kind() == std::io::ErrorKind::NotFound,
            })?;
            table.extend_from_mds(&blob).map_err(|e| JudgeLoadError::MdsMalformed {
                path: path.to_owned(),
                problem: e.to_string(),
            })?;
        }
        let policy = policy
            .map(|p| SelectedPolicy::load(p, profile))
            .transpose()
            .map_err(JudgeLoadError::Policy)?;
        Ok(Judge { table: Arc::new(table), policy, report_chain: mds.is_some() })
    }

    /// Extra result fields of a registration: `attestation_chain` (with `report_chain`) and
    /// `policy` (with a policy).
    pub fn registration_fields(&self, reg: &RegistrationResult) -> Vec<(&'static str, Value)> {
        let facts = CeremonyFacts::registration(reg, &self.table);
        let mut fields = Vec::new();
        if self.report_chain {
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
