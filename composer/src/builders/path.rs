//! The `path` builder: `{ path }` (an absolute host path) → a copy of that
//! file, symlink or directory tree.
//!
//! Symlinks are copied as symlinks, never followed — a link pointing out of
//! the tree stays a link and nothing outside is read. Devices, sockets and
//! FIFOs are refused by name. File modes are reduced to 0644/0755.
//!
//! The step's parameters only name the source, so the builder adds the
//! source's *serialization digest* ([`source_digest`]) to the cache key: an
//! unchanged source is never copied again, a changed one always is.

use super::fsutil::{Kind, copy_tree, kind_from, walk_error};
use super::{BuildContext, BuildError, Builder, ResolvedStep};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    path: String,
}

impl Params {
    fn source(step: &ResolvedStep) -> Result<PathBuf, BuildError> {
        let params: Params = step.params()?;
        let path = PathBuf::from(&params.path);
        if !path.is_absolute() {
            return Err(BuildError::Params(format!(
                "builder `path`: `{}` is not an absolute path",
                params.path
            )));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(BuildError::Params(format!(
                "builder `path`: `{}` contains `..`",
                params.path
            )));
        }
        Ok(path)
    }
}

/// Copies a host file or tree into the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathBuilder;

impl Builder for PathBuilder {
    fn build(
        &self,
        _ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        _log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let source = Params::source(step)?;
        copy_tree(&source, out, false)
    }

    fn key_salt(
        &self,
        _ctx: &BuildContext,
        step: &ResolvedStep,
    ) -> Result<Option<blake3::Hash>, BuildError> {
        source_digest(&Params::source(step)?).map(Some)
    }
}

/// BLAKE3 over a canonical serialization of the tree at `root`: for every
/// entry in name order, its kind, relative path, executable bit and content
/// (or link target). Two trees that the builder would copy identically have
/// the same digest.
pub fn source_digest(root: &Path) -> Result<blake3::Hash, BuildError> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"imago-path-v1\0");
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .follow_root_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let rel = rel.as_os_str().as_bytes();
        let put = |hasher: &mut blake3::Hasher, tag: &[u8], bytes: &[u8]| {
            hasher.update(tag);
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        match kind_from(entry.path(), &entry.file_type())? {
            Kind::Directory => put(&mut hasher, b"d", rel),
            Kind::Symlink => {
                put(&mut hasher, b"l", rel);
                let target = std::fs::read_link(entry.path()).map_err(BuildError::io(format!(
                    "reading link `{}`",
                    entry.path().display()
                )))?;
                put(&mut hasher, b"t", target.as_os_str().as_bytes());
            }
            Kind::File => {
                let context = format!("reading `{}`", entry.path().display());
                let meta = entry.metadata().map_err(|e| walk_error(root, e))?;
                let executable = meta.permissions().mode() & 0o111 != 0;
                put(&mut hasher, if executable { b"x" } else { b"f" }, rel);
                let file =
                    std::fs::File::open(entry.path()).map_err(BuildError::io(context.clone()))?;
                let mut content = blake3::Hasher::new();
                content
                    .update_reader(file)
                    .map_err(BuildError::io(context))?;
                hasher.update(content.finalize().as_bytes());
            }
        }
    }
    Ok(hasher.finalize())
}
