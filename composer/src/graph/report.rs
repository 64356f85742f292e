//! What a build reports: the summary of a finished build and the failures of
//! a broken one.
//!
//! [`BuildSummary`] serializes to JSON for `imago build --json`. A
//! [`StepFailure`] keeps the failed step's cause (with its `#[source]`
//! chain), the builder's log and the chain of steps that needed it, from the
//! wanted root down to the failed step.

use crate::builders::BuildError;
use crate::store::{Blake3Digest, StoreError};
use std::fmt::Write as _;

/// One step of a finished build.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepReport {
    pub name: String,
    pub builder: String,
    pub placeholder: String,
    /// The output, `/imago/store/<hash>-<name>`.
    pub path: String,
    /// Where the output came from.
    pub origin: Origin,
    /// The cache it was substituted from (`origin` "substituted").
    pub substituter: Option<String>,
    /// True when the output came from the local build cache (`origin`
    /// "local").
    pub cached: bool,
    /// True when the cached output was broken and `--repair` rebuilt it
    /// in place.
    pub repaired: bool,
    /// The cache key, `blake3:<hex>`.
    pub key: String,
    /// When the step started and ended, in milliseconds since the build
    /// started.
    pub start_ms: f64,
    pub end_ms: f64,
}

/// Where a step's output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Its builder ran (`--repair` included).
    Built,
    /// The local store's build cache had it.
    Local,
    /// A substituter (a binary cache) had it.
    Substituted,
}

/// A wanted output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RootOutput {
    pub placeholder: String,
    /// `/imago/store/<hash>-<name>`.
    pub path: String,
    /// Where it lives on this machine.
    pub physical: String,
}

/// What a build did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BuildSummary {
    /// Steps whose builder ran.
    pub built: usize,
    /// Steps answered by the local build cache.
    pub cached: usize,
    /// Steps whose output was taken from a substituter (a binary cache).
    pub substituted: usize,
    /// Of the steps built, those whose cached output was broken and was
    /// replaced by the rebuilt one (`--repair`).
    pub repaired: usize,
    /// Steps never run because an input failed (or the build stopped).
    pub skipped: usize,
    pub outputs: Vec<RootOutput>,
    /// Every completed step, in completion order.
    pub steps: Vec<StepReport>,
    /// Why a substituter could not be used for a step, which was built
    /// instead (each also shown as it happens, with progress).
    pub warnings: Vec<String>,
    pub elapsed_ms: f64,
}

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepFailureCause {
    #[error(transparent)]
    Builder(#[from] BuildError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "its parameters mention `{0}`, a placeholder that is not in the context of the string holding it"
    )]
    UnresolvedPlaceholder(String),
    #[error("the builder panicked: {0}")]
    Panicked(String),
    #[error("its output was never registered (the thread committing it to the store stopped)")]
    Unregistered,
    /// The output of `step` (this step, or an input of it), named by a
    /// substituter's record, could not be fetched: the build runs again
    /// and builds it (the warning says why).
    #[error("the output of step `{step}` could not be fetched from {source_url}")]
    Unfetched {
        step: String,
        key: Blake3Digest,
        source_url: String,
    },
}

impl StepFailureCause {
    /// The stable code of this error (docs/errors.md, E07xx; a store
    /// error keeps its E05xx code).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            StepFailureCause::Builder(e) => e.code(),
            StepFailureCause::Store(e) => e.code(),
            StepFailureCause::UnresolvedPlaceholder(_) => STEP_PLACEHOLDER,
            StepFailureCause::Panicked(_) | StepFailureCause::Unregistered => STEP_INTERNAL,
            StepFailureCause::Unfetched { .. } => STEP_FAILED,
        }
    }
}

/// A failed step, its log and who needed it.
#[derive(Debug, thiserror::Error)]
#[error("step `{name}` (builder `{builder}`) failed: {cause}")]
pub struct StepFailure {
    pub name: String,
    pub builder: String,
    pub placeholder: String,
    #[source]
    pub cause: StepFailureCause,
    /// What the builder wrote to its log.
    pub log: String,
    /// Step names from the wanted root down to the failed step.
    pub chain: Vec<String>,
}

impl StepFailure {
    /// The code of its cause.
    pub fn code(&self) -> crate::codes::Code {
        self.cause.code()
    }
}

impl StepFailure {
    /// A human report: the error with its causes, the chain and the log.
    pub fn report(&self) -> String {
        let mut out = format!("step `{}` (builder `{}`) failed", self.name, self.builder);
        let mut cause: Option<&dyn std::error::Error> = Some(&self.cause);
        while let Some(c) = cause {
            let _ = write!(out, ": {c}");
            cause = c.source();
        }
        if self.chain.len() > 1 {
            let _ = write!(out, "\n  needed by: {}", self.chain.join(" <- "));
        }
        let log = self.log.trim_end();
        if !log.is_empty() {
            let _ = write!(out, "\n  log:");
            for line in log.lines() {
                let _ = write!(out, "\n    {line}");
            }
        }
        out
    }
}

/// Why a build did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("step `{step}` uses builder `{builder}`, which does not exist")]
    UnknownBuilder { builder: String, step: String },
    #[error("cannot start {jobs} build threads")]
    ThreadPool {
        jobs: usize,
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    #[error("cannot start the commit thread")]
    CommitThread {
        #[source]
        source: std::io::Error,
    },
    #[error("{} step(s) failed; first: {}", .failures.len(), .failures.first().map(ToString::to_string).unwrap_or_default())]
    Failed {
        failures: Vec<StepFailure>,
        summary: Box<BuildSummary>,
    },
}

impl ScheduleError {
    /// The stable code of this error (docs/errors.md, E07xx): a failed
    /// build has the code of its first failure.
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            ScheduleError::UnknownBuilder { .. } => UNKNOWN_BUILDER,
            ScheduleError::ThreadPool { .. } | ScheduleError::CommitThread { .. } => THREADS,
            ScheduleError::Failed { failures, .. } => {
                failures.first().map_or(STEP_FAILED, StepFailure::code)
            }
        }
    }
}
