//! The engine's evidence and policy context for results: its one AAGUID table (built-in names,
//! extended by `--mds`) and the selected policy profile, turned into the extra fields a result
//! event carries (`attestation_chain`, `policy`). The CLI, the daemon and lab runs share it.

use std::sync::Arc;

use serde_json::{json, Value};

use super::model::SelectedPolicy;
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

impl Judge {
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
