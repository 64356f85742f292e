//! `imago options`.

use super::GlobalArgs;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file.
    pub file: Option<std::path::PathBuf>,
}

impl Args {
    pub fn run(self, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!("`imago options` is not implemented yet")
    }
}
