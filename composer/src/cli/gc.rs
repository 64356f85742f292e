//! `imago gc`: delete store objects that no root reaches.

use super::GlobalArgs;
use anyhow::Context;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only list what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
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
