//! `imago closure`: move closures between stores as zstd-compressed tar
//! streams (`export PATH... > f.tar.zst`, `import < f.tar.zst`).

use super::GlobalArgs;
use anyhow::Context;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write the closure of the given objects to stdout (or --output).
    Export(ExportArgs),
    /// Read a closure archive from stdin (or a file) into the store.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Objects: `/imago/store/<hash>-<name>`, `<hash>-<name>`, or out-links.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Write here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Read this file instead of stdin.
    pub file: Option<PathBuf>,
}

impl Command {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
        match self {
            Command::Export(args) => {
                let mut paths = Vec::new();
                for p in &args.paths {
                    paths.push(super::store::parse_object_arg(&store, p)?);
                }
                match &args.output {
                    Some(file) => {
                        let tmp = file.with_extension("partial");
                        let out = File::create(&tmp)
                            .with_context(|| format!("creating {}", tmp.display()))?;
                        let mut out = BufWriter::new(out);
                        let result = store
                            .export(&paths, &mut out)
                            .map_err(anyhow::Error::from)
                            .and_then(|()| {
                                let f = out.into_inner().map_err(|e| e.into_error())?;
                                f.sync_all()?;
                                std::fs::rename(&tmp, file)?;
                                Ok(())
                            });
                        if let Err(e) = result {
                            let _ = std::fs::remove_file(&tmp);
                            return Err(e.context(format!("exporting to {}", file.display())));
                        }
                    }
                    None => {
                        let stdout = std::io::stdout();
                        if stdout.is_terminal() {
                            anyhow::bail!(
                                "refusing to write a binary archive to a terminal; redirect stdout or pass --output FILE"
                            );
                        }
                        let mut out = BufWriter::new(stdout.lock());
                        store
                            .export(&paths, &mut out)
                            .context("exporting the closure")?;
                        out.flush().context("writing to stdout")?;
                    }
                }
                let n = store.closure(&paths)?.len();
                eprintln!("exported {n} objects");
                Ok(ExitCode::SUCCESS)
            }
            Command::Import(args) => {
                let imported = match &args.file {
                    Some(f) => {
                        let file =
                            File::open(f).with_context(|| format!("opening {}", f.display()))?;
                        store
                            .import(BufReader::new(file))
                            .with_context(|| format!("importing {}", f.display()))?
                    }
                    None => {
                        let stdin = std::io::stdin();
                        if stdin.is_terminal() {
                            anyhow::bail!("expected a closure archive on stdin (it is a terminal)");
                        }
                        store
                            .import(BufReader::new(stdin.lock()))
                            .context("importing from stdin")?
                    }
                };
                for p in &imported {
                    println!("{}", p.to_absolute());
                }
                eprintln!("imported {} objects", imported.len());
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn export_needs_a_path() {
        assert!(Cli::try_parse_from(["imago", "closure", "export"]).is_err());
        let cli = Cli::try_parse_from(["imago", "closure", "export", "a", "b", "-o", "f"]).unwrap();
        assert!(
            matches!(cli.command, Command::Closure(super::Command::Export(a)) if a.paths.len() == 2)
        );
        let cli = Cli::try_parse_from(["imago", "closure", "import"]).unwrap();
        assert!(
            matches!(cli.command, Command::Closure(super::Command::Import(a)) if a.file.is_none())
        );
    }
}
