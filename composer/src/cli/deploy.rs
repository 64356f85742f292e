//! `imago deploy FILE --target ssh://[user@]host[:port]...`: build a
//! system once, and on each target copy the part of its closure the target
//! lacks, run the new system's `switch-to-configuration` and its health
//! checks there, in waves (see `crate::remote` for how objects travel and
//! how a rollout proceeds; the targets need no imago).

use super::GlobalArgs;
use super::build::SystemArgs;
use crate::debian::apt::default_deb_cache;
use crate::graph::BuildOptions;
use crate::remote::{
    self, Action, HostReport, Outcome, Remote, RolloutOptions, SshRemote, SshTarget,
};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// The machine: ssh://[user@]host[:port]. Repeated: a rollout to every
    /// one, in waves (--canary, --parallel).
    #[arg(long, value_name = "URL", value_parser = remote::parse_target, required = true)]
    pub target: Vec<SshTarget>,
    /// Machines of the first wave (the canaries), before any other.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub canary: usize,
    /// Machines deployed at once in each later wave.
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub parallel: u64,
    /// Machines that may fail (or be rolled back) before the rollout stops
    /// after their wave.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_failures: usize,
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
        let remotes: Vec<SshRemote> = self
            .target
            .iter()
            .map(|target| SshRemote {
                target: target.clone(),
                program: self.ssh.clone(),
            })
            .collect();
        if self.copy_only {
            for target in &remotes {
                let copied = remote::copy_closure(&store, &toplevel, target, &self.remote_store)?;
                println!("{}", copied_line(&target.name(), copied));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let action = if self.boot {
            Action::Boot
        } else if self.test {
            Action::Test
        } else {
            Action::Switch
        };
        let options = RolloutOptions {
            action,
            remote_store: self.remote_store.clone(),
            health_checks: !self.no_health_checks,
            max_failures: self.max_failures,
        };
        let parallel = usize::try_from(self.parallel).unwrap_or(usize::MAX);
        let plan = remote::waves(remotes.len(), self.canary, parallel);
        let targets: Vec<&(dyn Remote + Sync)> =
            remotes.iter().map(|r| r as &(dyn Remote + Sync)).collect();
        let many = remotes.len() > 1;
        let reports = remote::roll_out(&store, &toplevel, &targets, &plan, &options, &|r| {
            print_host(r, many)
        });
        if many {
            print!("{}", summary(&reports));
        }
        let failed: Vec<&HostReport> = reports.iter().filter(|r| r.outcome.failed()).collect();
        let Some(first) = failed.first() else {
            return Ok(ExitCode::SUCCESS);
        };
        let stopped = reports.iter().any(|r| r.outcome == Outcome::NotStarted);
        match (&first.outcome, many) {
            (Outcome::Failed { error }, false) => anyhow::bail!("{error}"),
            (Outcome::RolledBack { .. }, false) => anyhow::bail!(
                "{}: {} failed its health checks (above); the machine is back on its previous system",
                first.target,
                toplevel.to_absolute()
            ),
            _ => anyhow::bail!(
                "{} of {} machines failed (above; rolled-back ones are back on their previous system){}",
                failed.len(),
                reports.len(),
                if stopped {
                    "; the rollout stopped before the machines marked `not started`"
                } else {
                    ""
                }
            ),
        }
    }
}

/// "copied N objects to T" or "T has the whole closure".
fn copied_line(target: &str, copied: usize) -> String {
    if copied == 0 {
        format!("{target} has the whole closure")
    } else {
        format!("copied {copied} objects to {target}")
    }
}

/// What one machine did, as soon as it is done: the copy, the switch's and
/// the checks' output on stdout, a failure on stderr. With several
/// machines each line is prefixed with the machine's name.
fn print_host(report: &HostReport, many: bool) {
    let prefix = |text: &str| -> String {
        if many {
            text.lines()
                .map(|l| format!("{}: {l}\n", report.target))
                .collect()
        } else {
            text.to_owned()
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    match &report.outcome {
        Outcome::Done { copied } => {
            out.push_str(&copied_line(&report.target, *copied));
            out.push('\n');
            out.push_str(&prefix(&report.output));
        }
        Outcome::AlreadyThere => {
            out.push_str(&format!("{} runs this system already\n", report.target));
        }
        Outcome::RolledBack { report: checks } => {
            out.push_str(&prefix(&report.output));
            err.push_str(&prefix(checks));
        }
        Outcome::Failed { error } if many => {
            out.push_str(&prefix(&report.output));
            err.push_str(&format!("{}: {error}\n", report.target));
        }
        Outcome::Failed { .. } | Outcome::NotStarted => out.push_str(&prefix(&report.output)),
    }
    print!("{out}");
    eprint!("{err}");
}

/// The rollout's report: a line per machine.
fn summary(reports: &[HostReport]) -> String {
    let mut text = String::from("rollout:\n");
    for r in reports {
        let name = |p: &Option<String>| {
            p.as_deref()
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or("-")
                .to_owned()
        };
        text.push_str(&format!(
            "  wave {} {}: {} ({:.1} s) {} -> {}\n",
            r.wave + 1,
            r.target,
            r.outcome.word(),
            r.seconds,
            name(&r.before),
            name(&r.after)
        ));
    }
    text
}
