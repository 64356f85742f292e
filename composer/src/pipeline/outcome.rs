//! How a build ended, as data for the caller to print.

use crate::graph::{BuildSummary, StepFailure};
use crate::store::StorePath;

/// A successful build.
#[derive(Debug)]
pub struct Built {
    /// The object built for the attribute.
    pub path: StorePath,
    /// What followed the object in the attribute's string (`/bin/sh` for
    /// `"${pkg}/bin/sh"`), empty for the object itself.
    pub suffix: String,
    pub summary: BuildSummary,
}

/// Why a build did not produce its object, when the configuration (not the
/// machine) is at fault.
#[derive(Debug)]
pub enum Failure {
    /// Evaluation failed: the diagnostics (the configuration's warnings
    /// first), rendered in the settings' [`super::DiagnosticStyle`].
    Evaluation(String),
    /// Steps failed; each carries its log and the chain of steps that
    /// needed it.
    Steps(Vec<StepFailure>),
}

/// How [`super::build_file`] ended.
#[derive(Debug)]
pub enum Outcome {
    Built(Built),
    Failed(Failure),
}

/// The rendered diagnostics, or each failed step's report.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Evaluation(rendered) => f.write_str(rendered.trim_end()),
            Failure::Steps(failures) => {
                for (i, failure) in failures.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{}", failure.report())?;
                }
                Ok(())
            }
        }
    }
}
