//! The `profile` builder: one directory merging the trees of several store
//! objects, the way `/usr` is assembled from Debian packages.
//!
//! Parameters: `{ packages = [ path | { path; priority ? 5; } ]; exclude ? [ ".imago" ]; }`.
//! Files are HARD LINKS to the inputs' files (the output is built on the
//! store's file system), directories are created, symlinks are copied as
//! symlinks (never followed). Entries whose relative path is, or lies under,
//! an `exclude` path are left out.
//!
//! Sources are merged in order of priority (lower number first, then list
//! order). When two sources provide the same path: two directories merge;
//! identical files (same content and executable bit) or identical symlinks
//! are fine; anything else — different content, a file against a directory —
//! is won by the source with the lower priority number, and with equal
//! priorities is an error naming the path and both sources. A directory that
//! loses takes its whole subtree with it.

use super::fsutil::{
    Kind, copy_symlink, create_dir, kind_from, link_or_copy, set_mode, store_source, walk_error,
};
use super::{BuildContext, BuildError, Builder, ResolvedStep};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The priority of a package given as a bare path.
pub const DEFAULT_PRIORITY: i64 = 5;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    packages: Vec<serde_json::Value>,
    #[serde(default = "default_exclude")]
    exclude: Vec<String>,
}

fn default_exclude() -> Vec<String> {
    vec![".imago".to_owned()]
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Prioritized {
    path: String,
    #[serde(default = "default_priority")]
    priority: i64,
}

fn default_priority() -> i64 {
    DEFAULT_PRIORITY
}

struct Source {
    logical: String,
    physical: PathBuf,
    priority: i64,
}

struct Claim {
    kind: Kind,
    source: usize,
    physical: PathBuf,
}

/// Merges store trees into one directory of hard links.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProfileBuilder;

impl Builder for ProfileBuilder {
    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let params: Params = step.params()?;
        let exclude = params
            .exclude
            .iter()
            .map(|e| {
                relative(e).map_err(|why| {
                    BuildError::Params(format!("builder `profile`: exclude `{e}` {why}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut sources = params
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| source(ctx, i, p))
            .collect::<Result<Vec<_>, _>>()?;
        sources.sort_by_key(|s| s.priority);
        let claims = merge(&sources, &exclude, log)?;
        create_dir(out)?;
        set_mode(out, 0o755)?;
        for (rel, claim) in &claims {
            let target = out.join(rel);
            match claim.kind {
                Kind::Directory => {
                    create_dir(&target)?;
                    set_mode(&target, 0o755)?;
                }
                Kind::File => link_or_copy(&claim.physical, &target)?,
                Kind::Symlink => copy_symlink(&claim.physical, &target)?,
            }
        }
        let _ = writeln!(
            log,
            "merged {} entries from {} packages",
            claims.len(),
            sources.len()
        );
        Ok(())
    }
}

fn source(
    ctx: &BuildContext,
    index: usize,
    value: &serde_json::Value,
) -> Result<Source, BuildError> {
    let (logical, priority) = match value {
        serde_json::Value::String(s) => (s.clone(), DEFAULT_PRIORITY),
        serde_json::Value::Object(_) => {
            let p: Prioritized = serde_json::from_value(value.clone()).map_err(|e| {
                BuildError::Params(format!("builder `profile`: packages[{index}]: {e}"))
            })?;
            (p.path, p.priority)
        }
        other => {
            return Err(BuildError::Params(format!(
                "builder `profile`: packages[{index}] must be a store path or {{ path; priority; }}, not {other}"
            )));
        }
    };
    let physical = store_source(ctx, &logical)?;
    match fs::symlink_metadata(&physical) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(BuildError::Failed(format!(
                "builder `profile`: `{logical}` is not a directory"
            )));
        }
        Err(e) => {
            return Err(BuildError::Io {
                context: format!("builder `profile`: reading `{logical}`"),
                source: e,
            });
        }
    }
    Ok(Source {
        logical,
        physical,
        priority,
    })
}

/// A validated relative path (no `..`, `.`, empty or absolute parts).
pub(crate) fn relative(text: &str) -> Result<PathBuf, &'static str> {
    if text.is_empty() {
        return Err("is empty");
    }
    if text.starts_with('/') {
        return Err("is absolute; it must be relative");
    }
    if text.contains('\0') {
        return Err("contains a NUL byte");
    }
    for part in text.split('/') {
        match part {
            "" => return Err("has an empty component (`//` or a trailing `/`)"),
            "." => return Err("has a `.` component"),
            ".." => return Err("has a `..` component"),
            _ => {}
        }
    }
    let path = PathBuf::from(text);
    debug_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(path)
}

fn merge(
    sources: &[Source],
    exclude: &[PathBuf],
    log: &mut dyn Write,
) -> Result<BTreeMap<PathBuf, Claim>, BuildError> {
    let mut claims: BTreeMap<PathBuf, Claim> = BTreeMap::new();
    for (index, source) in sources.iter().enumerate() {
        let mut walk = walkdir::WalkDir::new(&source.physical)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name()
            .min_depth(1)
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry.map_err(|e| walk_error(&source.physical, e))?;
            let rel = entry
                .path()
                .strip_prefix(&source.physical)
                .map_err(|e| BuildError::Failed(format!("walking `{}`: {e}", source.logical)))?
                .to_path_buf();
            let kind = kind_from(entry.path(), &entry.file_type())?;
            if exclude.iter().any(|e| rel.starts_with(e)) {
                if kind == Kind::Directory {
                    walk.skip_current_dir();
                }
                continue;
            }
            let Some(existing) = claims.get(&rel) else {
                claims.insert(
                    rel,
                    Claim {
                        kind,
                        source: index,
                        physical: entry.path().to_path_buf(),
                    },
                );
                continue;
            };
            if existing.kind == Kind::Directory && kind == Kind::Directory {
                continue;
            }
            if existing.kind == kind && same_content(kind, &existing.physical, entry.path())? {
                continue;
            }
            let winner = &sources[existing.source];
            if winner.priority < source.priority {
                let _ = writeln!(
                    log,
                    "`{}`: `{}` (priority {}) wins over `{}` (priority {})",
                    rel.display(),
                    winner.logical,
                    winner.priority,
                    source.logical,
                    source.priority
                );
                if kind == Kind::Directory {
                    walk.skip_current_dir();
                }
                continue;
            }
            let what = if existing.kind == kind {
                "with different content".to_owned()
            } else {
                format!("as {} and as {}", existing.kind.describe(), kind.describe())
            };
            return Err(BuildError::Failed(format!(
                "conflict at `{}`: `{}` and `{}` both provide it {what}; give one of them a lower `priority` number to let it win",
                rel.display(),
                winner.logical,
                source.logical
            )));
        }
    }
    Ok(claims)
}

/// Whether two entries of the same kind are interchangeable.
fn same_content(kind: Kind, a: &Path, b: &Path) -> Result<bool, BuildError> {
    match kind {
        Kind::Directory => Ok(true),
        Kind::Symlink => {
            let read = |p: &Path| {
                fs::read_link(p).map_err(BuildError::io(format!("reading link `{}`", p.display())))
            };
            Ok(read(a)? == read(b)?)
        }
        Kind::File => {
            let meta = |p: &Path| {
                fs::metadata(p).map_err(BuildError::io(format!("reading `{}`", p.display())))
            };
            let (ma, mb) = (meta(a)?, meta(b)?);
            if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
                return Ok(true);
            }
            if ma.len() != mb.len()
                || (ma.permissions().mode() & 0o111 != 0) != (mb.permissions().mode() & 0o111 != 0)
            {
                return Ok(false);
            }
            let open = |p: &Path| {
                fs::File::open(p).map_err(BuildError::io(format!("reading `{}`", p.display())))
            };
            let (mut fa, mut fb) = (open(a)?, open(b)?);
            let mut ba = vec![0u8; 64 * 1024];
            let mut bb = vec![0u8; 64 * 1024];
            loop {
                let n = fa
                    .read(&mut ba)
                    .map_err(BuildError::io(format!("reading `{}`", a.display())))?;
                if n == 0 {
                    return Ok(true);
                }
                fb.read_exact(&mut bb[..n])
                    .map_err(BuildError::io(format!("reading `{}`", b.display())))?;
                if ba[..n] != bb[..n] {
                    return Ok(false);
                }
            }
        }
    }
}
