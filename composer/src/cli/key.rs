//! `imago key generate NAME [--dir DIR]`: a new ed25519 key pair for
//! signing binary caches, `NAME.secret` (mode 0600) and `NAME.public`.

use super::GlobalArgs;
use crate::cache::keys;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a new key pair NAME.secret (mode 0600) and NAME.public.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The key's name, written into both files and every signature
    /// (letters, digits, `.`, `_`, `-`; e.g. `ci.example.com-1`).
    pub name: String,
    /// The directory to write the files into (default: the current one).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

impl Command {
    pub fn run(self, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Command::Generate(args) => {
                let (secret, public) = keys::generate_files(&args.dir, &args.name)?;
                println!("{}", secret.display());
                println!("{}", public.display());
                eprintln!(
                    "keep {} secret; give {} to whoever should trust it",
                    secret.display(),
                    public.display()
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
