//! The `deb` and `deb-file` builders.
//!
//! `deb` (params `{ package, version, architecture, size, sha256 }`, filled
//! from the lock by the graph): takes `<deb_cache>/<name>_<version>_<arch>.deb`
//! (the build fetches every package in the background as it starts and
//! the builder waits for its file; a builder never touches the network),
//! unpacks it into `out` while hashing every byte
//! read, then checks size and SHA-256 against the parameters and the control
//! file's Package/Version/Architecture against the step. Any failure removes
//! `out`, so nothing half-written is left for the store.
//!
//! `deb-file` (params `{ file }`, a store path of an imported .deb): unpacks
//! it the same way; the package name in messages is the step's name.

use super::control;
use super::fetch::{self, FetchError, Sha256Reader};
use super::lock::LockEntry;
use super::unpack::{self, Limits, Summary};
use crate::builders::{BuildContext, BuildError, Builder, ResolvedStep};
use imago_lang::hook::StepValue;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::Path;

/// The `deb` builder.
#[derive(Debug, Clone, Default)]
pub struct DebBuilder {
    pub limits: Option<Limits>,
}

/// The `deb-file` builder.
#[derive(Debug, Clone, Default)]
pub struct DebFileBuilder {
    pub limits: Option<Limits>,
}

/// Instances for the builder registry.
pub static DEB: DebBuilder = DebBuilder { limits: None };
pub static DEB_FILE: DebFileBuilder = DebFileBuilder { limits: None };

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DebParams {
    package: String,
    version: String,
    architecture: String,
    size: u64,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DebFileParams {
    file: String,
}

impl Builder for DebBuilder {
    /// The .deb's size: decompressing dominates unpacking.
    fn weight(&self, params: &BTreeMap<String, StepValue>, _inputs: &[u64]) -> u64 {
        match params.get("size") {
            Some(StepValue::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        }
    }

    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let p: DebParams = step.params()?;
        if !control::is_package_name(&p.package) {
            return Err(BuildError::Params(format!(
                "invalid package name `{}`",
                p.package
            )));
        }
        let entry = LockEntry {
            name: p.package.clone(),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
            size: p.size,
            sha256: p.sha256.to_ascii_lowercase(),
            filename: String::new(),
            archive: None,
            snapshot: None,
            depends: Vec::new(),
        };
        let path = fetch::cache_path(&ctx.deb_cache, &entry);
        // The build's background fetch may still be bringing it.
        fetch::inflight::wait(&path);
        // Packages from the archive are authenticated by the lock, which is
        // why they may hold case-only name pairs (Debian ships such pairs;
        // see `Limits`) and skip xz's CRC64: so check that this file is the
        // locked one before relaxing anything. (Its bytes are hashed again
        // while they unpack, which catches a file changed in between.)
        fetch::verify_file(&path, &entry, &ctx.deb_cache).map_err(|e| match e {
            FetchError::NotCached { .. } => BuildError::Other(e.into()),
            other => BuildError::Failed(other.to_string()),
        })?;
        let limits = self.limits.unwrap_or(Limits {
            allow_case_only_collisions: true,
            xz_check: false,
            ..Limits::default()
        });
        let result = unpack_verified(&path, &entry, out, &limits, &ctx.deb_cache);
        finish(result, out, log)
    }
}

impl Builder for DebFileBuilder {
    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let p: DebFileParams = step.params()?;
        let path = ctx.physical(&p.file)?;
        let result = (|| {
            let file = std::fs::File::open(&path)
                .map_err(BuildError::io(format!("opening {}", p.file)))?;
            let len = file
                .metadata()
                .map_err(BuildError::io(format!("reading {}", p.file)))?
                .len();
            let summary = unpack::unpack_deb_sized(
                BufReader::with_capacity(256 * 1024, file),
                Some(len),
                &step.name,
                out,
                &self.limits.unwrap_or_default(),
            )
            .map_err(|e| BuildError::Failed(e.to_string()))?;
            if summary.control.is_none() {
                return Err(BuildError::Failed(format!(
                    "package `{}`: {} has no control file",
                    step.name, p.file
                )));
            }
            Ok(summary)
        })();
        finish(result, out, log)
    }
}

/// Unpacks a cached .deb while hashing it, then checks it against `entry`.
fn unpack_verified(
    path: &Path,
    entry: &LockEntry,
    out: &Path,
    limits: &Limits,
    cache: &Path,
) -> Result<Summary, BuildError> {
    let file =
        std::fs::File::open(path).map_err(BuildError::io(format!("opening {}", path.display())))?;
    let mut hashing = Sha256Reader::new(file);
    // The locked size bounds every ar member before it is read.
    let unpacked = unpack::unpack_deb_sized(
        BufReader::with_capacity(256 * 1024, &mut hashing),
        Some(entry.size),
        &entry.name,
        out,
        limits,
    );
    // Hash the whole file even when unpacking failed: a corrupted file must
    // be reported (and rejected) as such, not as a malformed archive.
    hashing
        .drain()
        .map_err(BuildError::io(format!("reading {}", path.display())))?;
    let actual = hashing.hex_digest();
    if actual != entry.sha256 || hashing.bytes() != entry.size {
        let rejected = fetch::reject(cache, path).map_err(|e| BuildError::Other(e.into()))?;
        return Err(BuildError::Failed(format!(
            "hash mismatch for package `{}`: expected sha256 {} ({} bytes), got {actual} ({} bytes); moved to {}",
            entry.name,
            entry.sha256,
            entry.size,
            hashing.bytes(),
            rejected.display()
        )));
    }
    let summary = unpacked.map_err(|e| BuildError::Failed(e.to_string()))?;
    let text = summary.control.as_deref().unwrap_or_default();
    let para = control::parse_paragraphs(text)
        .ok()
        .and_then(|ps| ps.into_iter().next())
        .unwrap_or_default();
    for (field, want) in [
        ("Package", &entry.name),
        ("Version", &entry.version),
        ("Architecture", &entry.architecture),
    ] {
        let got = para.get(field).unwrap_or("");
        if got != want {
            return Err(BuildError::Failed(format!(
                "package `{}`: control file says {field} `{got}`, the lock says `{want}`",
                entry.name
            )));
        }
    }
    Ok(summary)
}

fn finish(
    result: Result<Summary, BuildError>,
    out: &Path,
    log: &mut dyn Write,
) -> Result<(), BuildError> {
    match result {
        Ok(summary) => {
            let _ = writeln!(
                log,
                "unpacked {} entries, {} bytes{}",
                summary.entries,
                summary.bytes,
                if summary.setuid.is_empty() {
                    String::new()
                } else {
                    format!(", {} setuid/setgid files recorded", summary.setuid.len())
                }
            );
            Ok(())
        }
        Err(e) => {
            if let Err(cleanup) = remove_tree(out) {
                let _ = writeln!(log, "could not remove {}: {cleanup}", out.display());
            }
            Err(e)
        }
    }
}

/// Removes a partial output, making directories writable first (modes are
/// applied at the end of unpacking, so they may be read-only).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return std::fs::remove_file(path),
        Ok(_) => {}
    }
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
        }
    }
    std::fs::remove_dir_all(path)
}
