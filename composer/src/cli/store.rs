//! `imago store`.

use super::GlobalArgs;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Placeholder until the subcommands land.
    Info,
}

impl Command {
    pub fn run(self, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!("`imago store` is not implemented yet")
    }
}
