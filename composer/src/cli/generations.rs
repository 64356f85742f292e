//! `imago generations`: list or delete the generations of a profile
//! directory (`/imago/var/profiles` of a mounted image, or any directory
//! laid out the same way), and with `--esp` their boot entries; with
//! `--target`, those of a machine.

use super::GlobalArgs;
use crate::generations::{Esp, Generation, Profile, SwitchLock, format_utc_date, parse_age};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The profile directory (holds system-<N>-link and system).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/imago/var/profiles"
    )]
    pub profile: PathBuf,
    /// A mounted EFI system partition whose boot entries follow the
    /// generations: deleting a generation deletes its entry, and kernels and
    /// initrds no entry uses.
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "target")]
    pub esp: Option<PathBuf>,
    /// The machine's run directory (the script's IMAGO_RUN): the
    /// generations booted-system and current-system name are marked and
    /// never deleted, and `delete` takes its lock imago-switch.lock, which
    /// switch-to-configuration takes too.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/run",
        alias = "run-dir"
    )]
    pub run: PathBuf,
    #[command(flatten)]
    pub target: super::target::TargetArgs,
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List the generations (the default).
    List,
    /// Delete generations by number, or those older than an age. The current,
    /// booted and running generations are never deleted.
    Delete {
        /// Generation numbers.
        #[arg(
            value_name = "N",
            required_unless_present = "older_than",
            conflicts_with = "older_than"
        )]
        numbers: Vec<u32>,
        /// Delete the generations whose link is older than this (e.g. 30d, 12h, 2w).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
    },
}

impl Args {
    pub fn run(self, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        if let Some(remote) = self.target.remote() {
            let args: Vec<String> = match self.action.unwrap_or(Action::List) {
                Action::List => vec!["list-generations".into()],
                Action::Delete {
                    older_than: Some(_),
                    ..
                } => anyhow::bail!(
                    "--older-than works on a local profile directory only; with --target, name the generations (see `imago generations --target URL`)"
                ),
                Action::Delete { numbers, .. } => std::iter::once("delete-generations".into())
                    .chain(numbers.iter().map(u32::to_string))
                    .collect(),
            };
            return super::target::run_on_target(&remote, &args);
        }
        let profile = Profile::open(&self.profile)?;
        let esp = self.esp.as_deref().map(Esp::open).transpose()?;
        match self.action.unwrap_or(Action::List) {
            Action::List => list(&profile, esp.as_ref(), &self.run),
            Action::Delete {
                numbers,
                older_than,
            } => {
                let age = older_than.as_deref().map(parse_age).transpose()?;
                let _lock = SwitchLock::take(&self.run)?;
                let deleted = match age {
                    Some(age) => profile.delete_older_than(age, SystemTime::now(), &self.run),
                    None => profile.delete(&numbers, &self.run),
                }
                .with_context(|| format!("deleting generations of {}", self.profile.display()))?;
                for g in &deleted {
                    println!("deleted generation {} ({})", g.number, g.target.display());
                    if let Some(esp) = &esp {
                        let target = g.target.to_string_lossy();
                        for path in esp.remove_generation(g.number, &target).with_context(|| {
                            format!("removing the boot entry of generation {}", g.number)
                        })? {
                            println!("removed {}", path.display());
                        }
                    }
                }
                if deleted.is_empty() {
                    println!("no generation deleted");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn list(profile: &Profile, esp: Option<&Esp>, run: &std::path::Path) -> anyhow::Result<ExitCode> {
    let gens = profile
        .generations()
        .with_context(|| format!("listing {}", profile.dir().display()))?;
    let entries = match esp {
        Some(esp) => esp.entries()?,
        None => Vec::new(),
    };
    if gens.is_empty() {
        println!("no generations in {}", profile.dir().display());
    }
    let booted = std::fs::read_link(run.join("booted-system")).ok();
    for g in &gens {
        let is_booted = booted.as_deref() == Some(g.target.as_path());
        println!("{}", line(g, is_booted, &entries, esp.is_some()));
    }
    Ok(ExitCode::SUCCESS)
}

fn line(
    g: &Generation,
    booted: bool,
    entries: &[crate::generations::EntryFile],
    with_esp: bool,
) -> String {
    let secs = g
        .created
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = format!(
        "{:>4}  {}  {}",
        g.number,
        format_utc_date(secs),
        g.target.display()
    );
    if g.current {
        s.push_str("  (current)");
    }
    if booted {
        s.push_str("  (booted)");
    }
    if with_esp {
        let target = g.target.to_string_lossy();
        match entries
            .iter()
            .find(|e| e.generation == g.number && e.system.as_deref() == Some(&*target))
        {
            Some(e) => match e.tries_left {
                Some(n) => s.push_str(&format!("  [entry: not yet good, {n} tries left]")),
                None => s.push_str("  [entry]"),
            },
            None => s.push_str("  [no boot entry]"),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn parses_delete_forms() {
        let cli = Cli::try_parse_from([
            "imago",
            "generations",
            "--profile",
            "/p",
            "delete",
            "3",
            "4",
        ])
        .unwrap();
        let Command::Generations(args) = cli.command else {
            panic!()
        };
        assert!(
            matches!(args.action, Some(super::Action::Delete { ref numbers, older_than: None }) if numbers == &[3, 4])
        );
        let cli =
            Cli::try_parse_from(["imago", "generations", "delete", "--older-than", "30d"]).unwrap();
        let Command::Generations(args) = cli.command else {
            panic!()
        };
        assert!(matches!(
            args.action,
            Some(super::Action::Delete {
                older_than: Some(_),
                ..
            })
        ));
        assert!(Cli::try_parse_from(["imago", "generations", "delete"]).is_err());
        assert!(
            Cli::try_parse_from(["imago", "generations", "delete", "1", "--older-than", "1d"])
                .is_err()
        );
    }
}
