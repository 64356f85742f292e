//! Errors of `imago deploy`: a targets file that cannot be used, and a
//! rollout that did not reach every machine. Each names the file and line,
//! or the machines, at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot read the targets file {path}")]
    TargetsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{place}: {message}")]
    TargetLine { place: String, message: String },
    #[error("no machine to deploy to: {path} lists none")]
    NoTargets { path: PathBuf },
    #[error("{target} is listed twice ({first} and {second})")]
    TargetTwice {
        target: String,
        first: String,
        second: String,
    },
    #[error(
        "{place}: attr={attr} chooses an attribute of the configuration FILE, which --toplevel does not build"
    )]
    AttrWithToplevel { place: String, attr: String },
    #[error("--target-substituter {reason}")]
    TargetSubstituter { reason: String },
    #[error("{error}")]
    HostFailed { error: String },
    #[error(
        "{target}: {system} failed its health checks (above); the machine is back on its previous system"
    )]
    RolledBack { target: String, system: String },
    #[error(
        "{failed} of {total} machines failed (above; rolled-back ones are back on their previous system){}",
        if *stopped { "; the rollout stopped before the machines marked `not started`" } else { "" }
    )]
    Failed {
        failed: usize,
        total: usize,
        stopped: bool,
    },
    #[error(
        "interrupted: {not_started} of {total} machines were not started (the others finished, above); run the same deploy again to continue"
    )]
    Interrupted { not_started: usize, total: usize },
}

impl DeployError {
    /// The stable code of this error (docs/errors.md, E11xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            DeployError::TargetsFile { .. } => DEPLOY_TARGETS_FILE,
            DeployError::TargetLine { .. }
            | DeployError::TargetTwice { .. }
            | DeployError::NoTargets { .. } => DEPLOY_TARGET,
            DeployError::AttrWithToplevel { .. } => DEPLOY_ATTR_WITH_TOPLEVEL,
            DeployError::TargetSubstituter { .. } => DEPLOY_TARGET_SUBSTITUTER,
            DeployError::HostFailed { .. } | DeployError::Failed { .. } => DEPLOY_FAILED,
            DeployError::RolledBack { .. } => DEPLOY_ROLLED_BACK,
            DeployError::Interrupted { .. } => DEPLOY_INTERRUPTED,
        }
    }
}
