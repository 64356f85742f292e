//! `imago deploy FILE --target ssh://[user@]host[:port]`: build a system,
//! copy the part of its closure the target lacks, and run the new system's
//! `switch-to-configuration` there (see `crate::remote` for how objects
//! travel; the target needs no imago).

use super::GlobalArgs;
use super::build::SystemArgs;
use crate::debian::apt::default_deb_cache;
use crate::graph::BuildOptions;
use crate::remote::{self, Action, SshRemote, SshTarget};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// The machine: ssh://[user@]host[:port].
    #[arg(long, value_name = "URL", value_parser = remote::parse_target)]
    pub target: SshTarget,
    /// Activate now and make it the boot default (the default).
    #[arg(long, group = "action")]
    pub switch: bool,
    /// Only make it the boot default.
    #[arg(long, group = "action")]
    pub boot: bool,
    /// Only activate it now.
    #[arg(long, group = "action")]
    pub test: bool,
    /// Only copy the closure.
    #[arg(long, group = "action")]
    pub copy_only: bool,
    /// The ssh program.
    #[arg(long, env = "IMAGO_SSH", default_value = "ssh", value_name = "PROGRAM")]
    pub ssh: String,
    /// The store directory on the target.
    #[arg(long, default_value = "/imago/store", value_name = "DIR")]
    pub remote_store: String,
    /// Do not run the system's health checks (system.healthChecks) after
    /// switching, nor roll back when they fail.
    #[arg(long)]
    pub no_health_checks: bool,
    /// Deploy a system that has the VM test backdoor
    /// (testing.backdoor.enable) on purpose; refused otherwise.
    #[arg(long)]
    pub allow_test_backdoor: bool,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
        let Some(toplevel) = self.system.toplevel(
            global,
            &store,
            BuildOptions {
                jobs: 0,
                keep_going: false,
                offline: false,
                repair: false,
                deb_cache: default_deb_cache(),
                progress: global.progress(),
            },
        )?
        else {
            return Ok(ExitCode::from(1));
        };
        super::guard::refuse_test_backdoor(&store, &toplevel, self.allow_test_backdoor, "deploy")?;
        let target = SshRemote {
            target: self.target.clone(),
            program: self.ssh.clone(),
        };
        let copied = remote::copy_closure(&store, &toplevel, &target, &self.remote_store)?;
        if copied == 0 {
            println!("{} has the whole closure", self.target.destination);
        } else {
            println!("copied {copied} objects to {}", self.target.destination);
        }
        if self.copy_only {
            return Ok(ExitCode::SUCCESS);
        }
        let action = if self.boot {
            Action::Boot
        } else if self.test {
            Action::Test
        } else {
            Action::Switch
        };
        let out = remote::run_switch(&target, &self.remote_store, &toplevel, action)?;
        print!("{}", out.stdout_text());
        // A system that runs now says whether it is healthy; `boot` runs
        // nothing until the next boot.
        let has_checks = store.physical(&toplevel).join("bin/check-health").exists();
        if action == Action::Boot || self.no_health_checks || !has_checks {
            return Ok(ExitCode::SUCCESS);
        }
        match remote::check_health(&target, &self.remote_store, &toplevel)? {
            remote::Health::Passed(report) => {
                print!("{report}");
                Ok(ExitCode::SUCCESS)
            }
            remote::Health::Failed(report) => {
                eprint!("{report}");
                let back = remote::roll_back(&target, &self.remote_store, &toplevel, action)?;
                print!("{}", back.stdout_text());
                anyhow::bail!(
                    "{}: {} failed its health checks (above); the machine is back on its previous system",
                    self.target.destination,
                    toplevel.to_absolute()
                )
            }
        }
    }
}
