//! `--target ssh://…` for the commands that can act on a machine instead
//! of a local profile directory (`imago rollback`, `imago generations`).

use crate::remote::{self, SshRemote, SshTarget};

#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Act on this machine, through its current generation's
    /// switch-to-configuration, instead of on a local profile directory.
    #[arg(long, global = true, value_name = "URL", value_parser = remote::parse_target)]
    pub target: Option<SshTarget>,
    /// The ssh program for --target.
    #[arg(
        long,
        global = true,
        env = "IMAGO_SSH",
        default_value = "ssh",
        value_name = "PROGRAM"
    )]
    pub ssh: String,
}

impl TargetArgs {
    /// The remote machine, when `--target` was given.
    pub fn remote(&self) -> Option<SshRemote> {
        self.target.clone().map(|target| SshRemote {
            target,
            program: self.ssh.clone(),
            own_group: false,
            multiplex: None,
        })
    }
}

/// Runs the target's generation tool with `args` and prints its output.
pub fn run_on_target(
    remote: &SshRemote,
    args: &[String],
) -> anyhow::Result<std::process::ExitCode> {
    let out = remote::run_generation_tool(remote, args)?;
    print!("{}", out.stdout_text());
    Ok(std::process::ExitCode::SUCCESS)
}
