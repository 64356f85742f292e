//! `imago gc`: delete store objects that no root reaches, and with `--esp`
//! first the boot entries (and kernels and initrds) of deleted generations.

use super::GlobalArgs;
use crate::generations::{Esp, Profile, in_use_systems};
use crate::store::{Store, StoreError};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only list what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// A mounted EFI system partition: remove the boot entries of
    /// generations no longer in the profile (never the booted, running or
    /// default one), then kernels and initrds no entry uses.
    #[arg(long, value_name = "DIR")]
    pub esp: Option<PathBuf>,
    /// The profile directory whose generations keep their entries.
    #[arg(long, value_name = "DIR", default_value = "/imago/var/profiles")]
    pub profile: PathBuf,
    /// The directory holding booted-system and current-system.
    #[arg(long, value_name = "DIR", default_value = "/run", hide = true)]
    pub run_dir: PathBuf,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        if let Some(dir) = &self.esp {
            let esp = Esp::open(dir)?;
            let profile = Profile::open(&self.profile)?;
            let stale = esp.deleted_generation_entries(&profile, &in_use_systems(&self.run_dir))?;
            if self.dry_run {
                for e in &stale {
                    println!(
                        "would remove {} (and the kernel and initrd only it uses)",
                        e.path.display()
                    );
                }
            } else {
                for path in esp
                    .remove_entries(&stale)
                    .with_context(|| format!("removing boot entries on {}", dir.display()))?
                {
                    println!("removed {}", path.display());
                }
            }
        }
        let store = match Store::open_or_default(global.store.as_deref()) {
            Ok(store) => store,
            // On an Imago machine the store carries no database: the boot
            // entries were the part to collect.
            Err(StoreError::Unmanaged { dir, .. }) if self.esp.is_some() => {
                println!(
                    "{} has no store database (a machine's own store): its objects are not collected",
                    dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(anyhow::Error::new(e).context("opening the store")),
        };
        let report = store.gc(self.dry_run).context("collecting garbage")?;
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for p in &report.deleted {
            println!("{verb} {}", p.to_absolute());
        }
        for p in &report.leftovers {
            println!("removed unregistered leftover {}", p.to_absolute());
        }
        println!(
            "{verb} {} objects, {} freed; {} objects kept",
            report.deleted.len(),
            human_bytes(report.freed_bytes),
            report.kept
        );
        Ok(ExitCode::SUCCESS)
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn parses_dry_run() {
        let cli = Cli::try_parse_from(["imago", "gc", "--dry-run"]).unwrap();
        assert!(matches!(cli.command, Command::Gc(a) if a.dry_run));
        let cli = Cli::try_parse_from(["imago", "gc"]).unwrap();
        assert!(matches!(cli.command, Command::Gc(a) if !a.dry_run));
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(super::human_bytes(12), "12 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
