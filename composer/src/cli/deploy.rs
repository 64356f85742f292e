//! `imago deploy FILE --target ssh://[user@]host[:port]...`: build a
//! system once, and on each target copy the part of its closure the target
//! lacks, run the new system's `switch-to-configuration` and its health
//! checks there, in waves (see `crate::remote` for how objects travel and
//! how a rollout proceeds; the targets need no imago).

use super::GlobalArgs;
use super::build::SystemArgs;
use super::deploy_report::{Printer, copied_lines};
use crate::cache;
use crate::debian::apt::default_deb_cache;
use crate::graph::BuildOptions;
use crate::remote::{
    self, Action, CacheArchive, DeployError, Host, Outcome, Remote, Rollout, RolloutOptions,
    SshRemote, SshTarget, Stop, TargetCacheUrl, TargetEntry, TargetSubstituter,
};
use crate::store::{Store, StorePath};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// The machine: ssh://[user@]host[:port]. Repeated: a rollout to every
    /// one, in waves (--canary, --parallel).
    #[arg(long, value_name = "URL", value_parser = remote::parse_target, required_unless_present = "targets")]
    pub target: Vec<SshTarget>,
    /// A file of machines, one a line: ssh://[user@]host[:port], optionally
    /// followed by attr=ATTR (its system's attribute path in FILE, as -A);
    /// `#` comments. After the --target machines.
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
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
    /// Make it the boot default, reboot the machine and wait for it to come
    /// back over ssh running the new system (then run its health checks).
    #[arg(long, group = "action")]
    pub reboot: bool,
    /// How long a rebooted machine may take to answer again.
    #[arg(
        long,
        default_value_t = 600,
        value_name = "SECONDS",
        requires = "reboot"
    )]
    pub reboot_timeout: u64,
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
    /// A binary cache the machines fetch the closure's objects from, as
    /// they reach it: http(s)://HOST/PATH or oci://HOST[:PORT]/REPO. An
    /// object goes from the cache only when the cache's archive of it is
    /// byte for byte this store's; the rest (and whatever a machine fails
    /// to fetch) goes over ssh.
    #[arg(long, value_name = "URL")]
    pub target_substituter: Option<String>,
    /// The --target-substituter cache as this machine reaches it, to read
    /// its metadata: file:///DIR, http(s)://… or oci://… (default: the
    /// --target-substituter URL).
    #[arg(long, value_name = "CACHE", requires = "target_substituter")]
    pub target_substituter_local: Option<String>,
    /// Print the report as one JSON document on stdout, and no progress.
    #[arg(long)]
    pub json: bool,
    /// Deploy a system that has the VM test backdoor
    /// (testing.backdoor.enable) on purpose; refused otherwise.
    #[arg(long)]
    pub allow_test_backdoor: bool,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let entries = self.entries()?;
        let substituter = self.substituter()?;
        let store = super::store::open_store(global)?;
        let Some(systems) = self.systems(global, &store, &entries)? else {
            return Ok(ExitCode::from(1));
        };
        for toplevel in systems.values() {
            super::guard::refuse_test_backdoor(
                &store,
                toplevel,
                self.allow_test_backdoor,
                "deploy",
            )?;
        }
        // Signals are caught from here on: a rollout finishes the machines
        // under way and starts no other.
        let stop = interruption()?;
        // One connection per machine, shared by its scripts; each ends
        // when `remotes` is dropped.
        let remotes: Vec<SshRemote> = entries
            .iter()
            .map(|entry| SshRemote::multiplexed(entry.target.clone(), self.ssh.clone(), true))
            .collect::<anyhow::Result<_>>()?;
        let toplevels: Vec<&StorePath> =
            entries.iter().map(|e| &systems[&self.attr_of(e)]).collect();
        if self.copy_only {
            for (done, (target, toplevel)) in remotes.iter().zip(&toplevels).enumerate() {
                if stop.load(Ordering::SeqCst) {
                    return Err(DeployError::Interrupted {
                        not_started: remotes.len() - done,
                        total: remotes.len(),
                    }
                    .into());
                }
                let copied = remote::copy_closure_via(
                    &store,
                    toplevel,
                    target,
                    &self.remote_store,
                    substituter.as_deref(),
                )?;
                print!("{}", copied_lines(&target.name(), &copied));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let action = if self.boot || self.reboot {
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
            reboot: self
                .reboot
                .then(|| Duration::from_secs(self.reboot_timeout)),
            substituter,
        };
        let parallel = usize::try_from(self.parallel).unwrap_or(usize::MAX);
        let plan = remote::waves(remotes.len(), self.canary, parallel);
        let hosts: Vec<Host<'_>> = remotes
            .iter()
            .zip(&toplevels)
            .map(|(r, toplevel)| Host {
                remote: r as &(dyn Remote + Sync),
                toplevel,
            })
            .collect();
        let printer = Printer {
            many: remotes.len() > 1,
            json: self.json,
        };
        let rollout = remote::roll_out(&store, &hosts, &plan, &options, &stop, &|event| {
            printer.event(event)
        });
        let name = if self.reboot {
            "reboot"
        } else {
            action.as_str()
        };
        printer.report(name, &rollout)?;
        match verdict(&rollout) {
            None => Ok(ExitCode::SUCCESS),
            Some(error) => Err(error.into()),
        }
    }

    /// The cache the machines fetch from (`--target-substituter`), its
    /// metadata read through `--target-substituter-local` when given.
    fn substituter(&self) -> anyhow::Result<Option<Arc<TargetSubstituter>>> {
        let Some(url) = &self.target_substituter else {
            return Ok(None);
        };
        let target_url = TargetCacheUrl::parse(url)
            .map_err(|reason| DeployError::TargetSubstituter { reason })?;
        let local = self.target_substituter_local.as_deref().unwrap_or(url);
        let location = cache::Location::parse(local)?;
        let lookup = move |path: &StorePath| -> Result<Option<CacheArchive>, String> {
            match cache::object_info(&location, path) {
                Ok(Some(info)) => Ok(Some(CacheArchive {
                    blake3: info.archive_digest,
                    size: info.archive_size,
                })),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        };
        Ok(Some(Arc::new(TargetSubstituter::new(
            target_url,
            Box::new(lookup),
        ))))
    }

    /// The machines: the --target ones, then the targets file's.
    fn entries(&self) -> Result<Vec<TargetEntry>, DeployError> {
        let mut entries: Vec<TargetEntry> = self
            .target
            .iter()
            .map(|target| TargetEntry {
                target: target.clone(),
                attr: None,
                place: "--target".to_owned(),
            })
            .collect();
        if let Some(file) = &self.targets {
            entries.extend(remote::read_targets_file(file)?);
            if entries.is_empty() {
                return Err(DeployError::NoTargets { path: file.clone() });
            }
        }
        remote::check_unique(&entries)?;
        if self.system.toplevel.is_some()
            && let Some(entry) = entries.iter().find(|e| e.attr.is_some())
        {
            return Err(DeployError::AttrWithToplevel {
                place: entry.place.clone(),
                attr: entry.attr.clone().unwrap_or_default(),
            });
        }
        Ok(entries)
    }

    /// The attribute that is `entry`'s system.
    fn attr_of(&self, entry: &TargetEntry) -> String {
        entry
            .attr
            .clone()
            .unwrap_or_else(|| self.system.attr.clone())
    }

    /// Each attribute's system, built once; `None`: a build failed (and
    /// was reported).
    fn systems(
        &self,
        global: &GlobalArgs,
        store: &Store,
        entries: &[TargetEntry],
    ) -> anyhow::Result<Option<BTreeMap<String, StorePath>>> {
        let mut systems = BTreeMap::new();
        for entry in entries {
            let attr = self.attr_of(entry);
            if systems.contains_key(&attr) {
                continue;
            }
            let args = SystemArgs {
                file: self.system.file.clone(),
                toplevel: self.system.toplevel.clone(),
                attr: attr.clone(),
            };
            let options = BuildOptions {
                jobs: 0,
                keep_going: false,
                offline: false,
                repair: false,
                deb_cache: default_deb_cache(),
                progress: if self.json {
                    crate::graph::progress::ProgressMode::Quiet
                } else {
                    global.progress()
                },
            };
            let Some(toplevel) = args.toplevel(global, store, options)? else {
                return Ok(None);
            };
            systems.insert(attr, toplevel);
        }
        Ok(Some(systems))
    }
}

/// A flag raised by SIGINT or SIGTERM; a second signal ends imago at once.
fn interruption() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// The rollout's failure, if it had one.
fn verdict(rollout: &Rollout) -> Option<DeployError> {
    let hosts = &rollout.hosts;
    let not_started = hosts
        .iter()
        .filter(|r| r.outcome == Outcome::NotStarted)
        .count();
    if rollout.stopped == Some(Stop::Interrupted) {
        return Some(DeployError::Interrupted {
            not_started,
            total: hosts.len(),
        });
    }
    let failed: Vec<_> = hosts.iter().filter(|r| r.outcome.failed()).collect();
    let first = failed.first()?;
    Some(match (&first.outcome, hosts.len()) {
        (Outcome::Failed { error }, 1) => DeployError::HostFailed {
            error: error.clone(),
        },
        (Outcome::RolledBack { .. }, 1) => DeployError::RolledBack {
            target: first.target.clone(),
            system: first.system.clone(),
        },
        _ => DeployError::Failed {
            failed: failed.len(),
            total: hosts.len(),
            stopped: not_started > 0,
        },
    })
}
