//! `imago rollback`: make the generation before the current one current in
//! a profile directory, and with `--esp` the boot default; with `--target`,
//! on a machine (activated at once unless `--boot`).

use super::GlobalArgs;
use crate::generations::{Esp, Profile, SwitchLock};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The profile directory (holds system-<N>-link and system).
    #[arg(long, value_name = "DIR", default_value = "/imago/var/profiles")]
    pub profile: PathBuf,
    /// A mounted EFI system partition: its loader.conf default becomes the
    /// previous generation's entry (the next `switch-to-configuration boot`
    /// restores the "newest good" default).
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub esp: Option<PathBuf>,
    /// The machine's run directory (the script's IMAGO_RUN), whose lock
    /// imago-switch.lock is held while the profile and the ESP change, as
    /// switch-to-configuration holds it.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/run",
        alias = "run-dir",
        conflicts_with = "target"
    )]
    pub run: PathBuf,
    #[command(flatten)]
    pub target: super::target::TargetArgs,
    /// With --target: only make the previous generation the boot default
    /// (the running system stays until the next boot).
    #[arg(long, requires = "target")]
    pub boot: bool,
}

impl Args {
    pub fn run(self, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        if let Some(remote) = self.target.remote() {
            let mode = if self.boot { "boot" } else { "switch" };
            return super::target::run_on_target(&remote, &["rollback".into(), mode.into()]);
        }
        let profile = Profile::open(&self.profile)?;
        let _lock = SwitchLock::take(&self.run)?;
        // Check the ESP before changing the profile, so that a missing entry
        // leaves both untouched.
        let esp_entry = match &self.esp {
            None => None,
            Some(dir) => {
                let esp = Esp::open(dir)?;
                let current = profile.current()?.ok_or_else(|| {
                    anyhow::anyhow!("{} has no current generation", self.profile.display())
                })?;
                let gens = profile.generations()?;
                let Some(prev) = gens.iter().rev().find(|g| g.number < current) else {
                    anyhow::bail!(
                        "generation {current} is the oldest in {}; there is nothing to roll back to",
                        self.profile.display()
                    );
                };
                let target = prev.target.to_string_lossy().into_owned();
                let entry = esp
                    .entries()?
                    .into_iter()
                    .find(|e| e.generation == prev.number && e.system.as_deref() == Some(&*target))
                    .with_context(|| {
                        format!(
                            "generation {} has no boot entry on {}; nothing was changed",
                            prev.number,
                            dir.display()
                        )
                    })?;
                Some((esp, entry))
            }
        };
        let (from, to) = profile
            .rollback()
            .with_context(|| format!("rolling back {}", self.profile.display()))?;
        println!("rolled back from generation {from} to generation {to}");
        if let Some((esp, entry)) = esp_entry {
            // The entry's id, as systemd-boot matches `default` against it:
            // the file name without the boot counter, which systemd-boot
            // changes at each try (and the script writes the same).
            let name = entry.blessed_name();
            esp.set_default(&name)
                .context("making the previous generation the boot default")?;
            println!("boot default: {name}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
