//! `imago closure`.

use super::GlobalArgs;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Placeholder until the subcommands land.
    Info,
}

impl Command {
    pub fn run(self, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!("`imago closure` is not implemented yet")
    }
}
