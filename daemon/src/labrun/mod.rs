//! Lab runs: a scenario of register/authenticate steps over USB, hybrid or linked phones, run N
//! times, with one record per ceremony (transport, device, AAGUID and name, per-stage timings,
//! outcome, failure stage, policy verdict, expectation met or not), a summary (success rate,
//! p50/p95/max per stage, failures by stage), JUnit XML, and an embedded SQLite store of past
//! runs with comparison.
//!
//! What it is: the engine side of `cablebridge run` and `cablebridge runs`, a library so the
//! daemon can offer the same. [`scenario`] parses the TOML, [`runner`] drives
//! [`crate::ceremony::run`] (no ceremony code of its own), [`report`] holds the records,
//! summaries, comparisons and JUnit rendering, [`store`] the SQLite file.
//!
//! What it is not: a load generator. Steps run one after another; timings are wall-clock
//! milliseconds per ceremony stage as the engine's progress events report them.

pub mod report;
pub mod runner;
pub mod scenario;
pub mod store;

pub use report::{junit_xml, Comparison, Record, StageDelta, StageStats, Summary};
pub use runner::{LabRun, QrCallback, RunContext, RunOutput};
pub use scenario::{Scenario, Step};
pub use store::{RunStore, StoredRun, RUNS_FILE};

/// Why a run could not start or be stored (ceremony failures are records, not errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabRunError {
    /// The scenario or an argument is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A file, socket or the store failed us (exit 3).
    #[error("{0}")]
    Environment(String),
    /// No such run in the store (exit 2).
    #[error("{0}")]
    NotFound(String),
}
