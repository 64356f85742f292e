//! `imago cache export DIR [--lock FILE]...`: writes the download cache
//! (or the files the given locks name, fetching any that are missing) as a
//! package cache: `DIR/sha256/<hex>`, one file per .deb, named by its
//! SHA-256. Any static web server can serve DIR to a team's machines and
//! CI (`--package-cache URL`). Every file is hashed as it is copied, so a
//! corrupted cache file is never published under the wrong name; files
//! already exported are left as they are.

use super::GlobalArgs;
use crate::debian::apt::default_deb_cache;
use crate::debian::fetch::{self, Sha256Reader, sources::hashed_path};
use crate::debian::lock::Lock;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write cached .debs into DIR as a package cache (DIR/sha256/<hex>).
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The directory to write (created if missing).
    pub dir: PathBuf,
    /// Export exactly the files this lock names, fetching missing ones
    /// (repeatable); without it, every .deb in the download cache.
    #[arg(long = "lock", value_name = "FILE")]
    pub locks: Vec<PathBuf>,
}

impl Command {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Command::Export(args) => args.run(global),
        }
    }
}

impl ExportArgs {
    fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let cache = default_deb_cache();
        let files = if self.locks.is_empty() {
            cached_debs(&cache)?
        } else {
            let mut entries = Vec::new();
            for path in &self.locks {
                let lock = Lock::read(path)?;
                entries.extend(lock.packages.into_values());
            }
            let options = super::fetching::fetch_options(global, cache.clone(), false, None)?;
            fetch::ensure_cached(&entries, &options).context("fetching the locked packages")?
        };
        let out = self.dir.join("sha256");
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let (mut written, mut present, mut bytes) = (0usize, 0usize, 0u64);
        for file in &files {
            match export_one(file, &self.dir)? {
                Some(n) => {
                    written += 1;
                    bytes += n;
                }
                None => present += 1,
            }
        }
        println!(
            "{}: {written} files written ({:.1} MB), {present} already there",
            self.dir.display(),
            bytes as f64 / 1e6
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// The `.deb` files directly in the download cache, sorted.
fn cached_debs(cache: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let dir = match std::fs::read_dir(cache) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e).with_context(|| format!("reading {}", cache.display())),
    };
    for entry in dir {
        let entry = entry.with_context(|| format!("reading {}", cache.display()))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && entry.file_name().to_string_lossy().ends_with(".deb") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Copies `file` to `dir/sha256/<its hash>` through a temporary file;
/// `None` when that name exists already.
fn export_one(file: &Path, dir: &Path) -> anyhow::Result<Option<u64>> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".export.")
        .tempfile_in(dir.join("sha256"))
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let source =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut reader = Sha256Reader::new(source);
    let n = std::io::copy(&mut reader, &mut tmp)
        .with_context(|| format!("copying {}", file.display()))?;
    tmp.flush()?;
    let dest = dir.join(hashed_path(&reader.hex_digest()));
    if dest.exists() {
        return Ok(None);
    }
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .context("setting the mode of an exported file")?;
    }
    tmp.persist(&dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(Some(n))
}
