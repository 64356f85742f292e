//! `imago store`: inspect, add to and check the store.

use super::GlobalArgs;
use crate::store::{Problem, Store, StorePath};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Rehash every object and report the ones that changed.
    Verify(VerifyArgs),
    /// Show what the store knows about an object.
    Info(InfoArgs),
    /// Copy a local file or directory into the store and print its path.
    Add(AddArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Restore broken objects from a source when one exists.
    #[arg(long)]
    pub repair: bool,
    /// The source to repair from: a closure archive (`imago closure export`)
    /// holding the broken objects.
    #[arg(long, value_name = "ARCHIVE", requires = "repair")]
    pub from: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// `/imago/store/<hash>-<name>`, `<hash>-<name>`, or a symlink into the store (an out-link).
    pub path: String,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The file, symlink or directory to copy (symlinks inside are kept as symlinks).
    pub path: PathBuf,
    /// The object's name (default: the file name).
    #[arg(long)]
    pub name: Option<String>,
}

impl Command {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = open_store(global)?;
        match self {
            Command::Verify(args) => verify(&store, args.repair, args.from.as_deref()),
            Command::Info(args) => info(&store, &args.path),
            Command::Add(args) => add(&store, &args),
        }
    }
}

/// Opens the store named by `--store` / `IMAGO_STORE`, or the default one.
pub fn open_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let store = Store::open_or_default(global.store.as_deref()).context("opening the store")?;
    Ok(store)
}

/// Parses an object argument: a logical path, a base name, or a symlink
/// (such as an out-link) to an object of `store`.
pub fn parse_object_arg(store: &Store, arg: &str) -> anyhow::Result<StorePath> {
    if let Ok(p) = arg.parse::<StorePath>() {
        return Ok(p);
    }
    if arg.starts_with(crate::store::STORE_PREFIX) {
        let (p, _) = StorePath::from_absolute(arg)?;
        return Ok(p);
    }
    let path = Path::new(arg);
    let resolved = std::fs::canonicalize(path)
        .with_context(|| format!("`{arg}` is neither a store path nor an existing file"))?;
    let rest = resolved.strip_prefix(store.dir()).map_err(|_| {
        anyhow::anyhow!(
            "`{arg}` resolves to {}, which is not inside the store {}",
            resolved.display(),
            store.dir().display()
        )
    })?;
    let first = rest
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .with_context(|| format!("`{arg}` is the store directory itself, not an object"))?;
    Ok(first.parse::<StorePath>()?)
}

fn verify(store: &Store, repair: bool, from: Option<&Path>) -> anyhow::Result<ExitCode> {
    let report = match from {
        Some(archive) => {
            let file = std::fs::File::open(archive)
                .with_context(|| format!("opening {}", archive.display()))?;
            store
                .repair_from(std::io::BufReader::new(file))
                .with_context(|| format!("repairing the store from {}", archive.display()))?
        }
        None => store.verify(repair).context("verifying the store")?,
    };
    for p in &report.problems {
        let what = match &p.problem {
            Problem::Missing => "missing".to_owned(),
            Problem::HashMismatch { expected, found } => {
                format!("hash mismatch: expected {expected}, found {found}")
            }
            Problem::Unreadable { error } => format!("unreadable: {error}"),
        };
        let note = p
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        println!("{}: {what}{note}", p.path.to_absolute());
    }
    println!(
        "checked {} objects: {} broken{}",
        report.checked,
        report.problems.len(),
        if repair {
            format!(
                ", {} repaired",
                report.problems.iter().filter(|p| p.repaired).count()
            )
        } else {
            String::new()
        }
    );
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn info(store: &Store, arg: &str) -> anyhow::Result<ExitCode> {
    let path = parse_object_arg(store, arg)?;
    let info = store
        .info(&path)
        .with_context(|| format!("reading {path}"))?
        .with_context(|| {
            format!(
                "{} is not a valid object in {}",
                path.to_absolute(),
                store.dir().display()
            )
        })?;
    println!("path:       {}", path.to_absolute());
    println!("physical:   {}", store.physical(&path).display());
    println!("digest:     {}", info.digest);
    println!("size:       {} bytes (canonical serialization)", info.size);
    println!("deriver:    {}", info.deriver.as_deref().unwrap_or("-"));
    println!("registered: {} (Unix time)", info.registered);
    if info.references.is_empty() {
        println!("references: none");
    } else {
        println!("references:");
        for r in &info.references {
            println!("  {}", r.to_absolute());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn add(store: &Store, args: &AddArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| {
                format!(
                    "{} has no usable file name; pass --name",
                    args.path.display()
                )
            })?
            .to_owned(),
    };
    let p = store
        .add_path(&args.path, &name)
        .with_context(|| format!("adding {} to the store", args.path.display()))?;
    println!("{}", p.to_absolute());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn parses_subcommands() {
        let cli = Cli::try_parse_from(["imago", "store", "verify", "--repair"]).unwrap();
        assert!(matches!(cli.command, Command::Store(super::Command::Verify(a)) if a.repair));
        let cli = Cli::try_parse_from([
            "imago",
            "store",
            "verify",
            "--repair",
            "--from",
            "c.tar.zst",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Store(super::Command::Verify(a)) if a.from.is_some())
        );
        assert!(Cli::try_parse_from(["imago", "store", "verify", "--from", "c.tar.zst"]).is_err());
        let cli = Cli::try_parse_from(["imago", "--store", "/s", "store", "info", "x"]).unwrap();
        assert_eq!(
            cli.global.store.as_deref(),
            Some(std::path::Path::new("/s"))
        );
        assert!(Cli::try_parse_from(["imago", "store", "info"]).is_err());
    }
}
