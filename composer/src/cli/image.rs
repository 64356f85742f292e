//! `imago image FILE [--format raw|qcow2] [-o PATH] [--size SIZE] [--check]`:
//! build the system, then a bootable GPT disk image of it (see
//! [`crate::image`]).

use super::GlobalArgs;
use super::build::build_toplevel;
use crate::debian::apt::default_deb_cache;
use crate::graph::BuildOptions;
use crate::image::{ImageOptions, build_raw};
use crate::pipeline::{BuildRequest, DEFAULT_ATTR};
use crate::store::{Store, StorePath};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Raw,
    Qcow2,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file.
    pub file: PathBuf,
    /// The attribute that is the system.
    #[arg(short = 'A', long = "attr", default_value = DEFAULT_ATTR)]
    pub attr: String,
    /// The image format.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    pub format: Format,
    /// Where to write the image (default: <system name>.raw or .qcow2 here).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The disk size: bytes, or with a K, M or G suffix (default: the closure plus room).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub size: Option<u64>,
    /// Build the image twice and check that both are byte-identical.
    #[arg(long)]
    pub check: bool,
    /// Never touch the network while building.
    #[arg(long)]
    pub offline: bool,
    /// Make an image of a system that has the VM test backdoor
    /// (testing.backdoor.enable) on purpose; refused otherwise.
    #[arg(long)]
    pub allow_test_backdoor: bool,
}

/// Parses `1073741824`, `512M`, `2G`, `100K`.
fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, factor) = match text.char_indices().last() {
        Some((i, 'G' | 'g')) => (&text[..i], 1u64 << 30),
        Some((i, 'M' | 'm')) => (&text[..i], 1 << 20),
        Some((i, 'K' | 'k')) => (&text[..i], 1 << 10),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(factor))
        .ok_or_else(|| format!("`{text}` is not a size (examples: 2G, 512M)"))
}

impl Args {
    pub fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = super::store::open_store(global)?;
        let Some(toplevel) = self.build_system(global, &store)? else {
            return Ok(ExitCode::from(1));
        };
        super::guard::refuse_test_backdoor(
            &store,
            &toplevel,
            self.allow_test_backdoor,
            "make an image of",
        )?;
        let ext = match self.format {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        };
        let name = toplevel.name().trim_start_matches("imago-system-");
        let output = self
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}.{ext}")));
        let first = self.make(&store, &toplevel, &output)?;
        if self.check {
            let again = output.with_extension(format!("{ext}.check"));
            self.make(&store, &toplevel, &again)?;
            let same = same_bytes(&output, &again)?;
            std::fs::remove_file(&again)
                .with_context(|| format!("removing {}", again.display()))?;
            anyhow::ensure!(
                same,
                "the image is not reproducible: two builds of {} differ",
                toplevel.to_absolute()
            );
            eprintln!("imago: two builds are byte-identical");
        }
        println!("{}", first.display());
        Ok(ExitCode::SUCCESS)
    }

    /// Writes the image of `toplevel` at `output` in the requested format.
    fn make(&self, store: &Store, toplevel: &StorePath, output: &Path) -> anyhow::Result<PathBuf> {
        let raw = match self.format {
            Format::Raw => output.to_owned(),
            Format::Qcow2 => output.with_extension("raw.tmp"),
        };
        let options = ImageOptions {
            size: self.size,
            esp_size: ImageOptions::DEFAULT_ESP,
            output: raw.clone(),
        };
        let report = build_raw(store, toplevel, &options)
            .with_context(|| format!("making a disk image of {}", toplevel.to_absolute()))?;
        eprintln!(
            "imago: {} MiB disk, {} store objects ({} MiB)",
            report.size >> 20,
            report.closure_objects,
            report.closure_bytes >> 20
        );
        if self.format == Format::Qcow2 {
            let status = Command::new("qemu-img")
                .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
                .arg(&raw)
                .arg(output)
                .status()
                .context("running qemu-img (package qemu-utils)")?;
            std::fs::remove_file(&raw).with_context(|| format!("removing {}", raw.display()))?;
            anyhow::ensure!(status.success(), "qemu-img convert failed ({status})");
        }
        Ok(output.to_owned())
    }

    /// Builds the system; `None` when the build failed (already reported).
    fn build_system(
        &self,
        global: &GlobalArgs,
        store: &Store,
    ) -> anyhow::Result<Option<StorePath>> {
        let request = BuildRequest {
            file: self.file.clone(),
            attr: self.attr.clone(),
            modules: None,
            options: BuildOptions {
                jobs: 0,
                keep_going: false,
                offline: self.offline,
                repair: false,
                deb_cache: default_deb_cache(),
                progress: global.progress(),
            },
        };
        build_toplevel(global, store, &request)
    }
}

fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let hash = |p: &Path| -> anyhow::Result<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        let mut f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
        std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", p.display()))?;
        Ok(h.finalize())
    };
    Ok(hash(a)? == hash(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("big").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
