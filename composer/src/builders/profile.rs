//! The `profile` builder: one directory merging the trees of several store
//! objects, the way `/usr` is assembled from Debian packages.
//!
//! Parameters: `{ packages = [ path | { path; priority ? 5; } ]; exclude ? [ ".imago" ]; setuid ? false; }`.
//! Files are HARD LINKS to the inputs' files (the output is built on the
//! store's file system), directories are created, symlinks are copied as
//! symlinks (never followed). Entries whose relative path is, or lies under,
//! an `exclude` path are left out.
//!
//! With `setuid = true` the output also gets `.imago/setuid` (see
//! [`SETUID_LIST`]): the lines of the sources' `.imago/deb/setuid` (where the
//! .deb unpacker records the setuid/setgid files Debian allows, since the
//! store clears those bits) whose file this profile took from that source,
//! sorted by path. The system modules make setuid wrappers from it
//! (modules/security/wrappers.imago). Each line is checked again here: a
//! path outside [`SETUID_ALLOW_LIST`], a mode with write bits for group or
//! others, or an owner that is not a plain `user:group` is an error naming
//! the source and the line.
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
use super::meta::{META_DIR, SETUID_ALLOW_LIST};
use super::{BuildContext, BuildError, Builder, ResolvedStep};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The priority of a package given as a bare path.
pub const DEFAULT_PRIORITY: i64 = 5;

/// Where a profile built with `setuid = true` lists its setuid/setgid
/// files, one `MODE USER:GROUP PATH` line each (`4755 root:root
/// usr/bin/su`), sorted by path; empty when there are none.
pub const SETUID_LIST: &str = ".imago/setuid";

/// The longest `.imago/deb/setuid` a source may have (the allow-list has
/// 29 entries; a line is well under 100 bytes).
const MAX_SETUID_BYTES: u64 = 64 * 1024;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    packages: Vec<serde_json::Value>,
    #[serde(default = "default_exclude")]
    exclude: Vec<String>,
    #[serde(default)]
    setuid: bool,
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
        let setuid = if params.setuid {
            Some(setuid_list(&sources, &claims)?)
        } else {
            None
        };
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
        if let Some(text) = setuid {
            write_setuid_list(out, &claims, &text)?;
            let _ = writeln!(
                log,
                "{} setuid/setgid files listed in {SETUID_LIST}",
                text.lines().count()
            );
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

/// The lines of the sources' setuid lists whose file the profile holds from
/// that source (or an identical one), sorted by path.
fn setuid_list(
    sources: &[Source],
    claims: &BTreeMap<PathBuf, Claim>,
) -> Result<String, BuildError> {
    let mut lines: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (index, source) in sources.iter().enumerate() {
        let list = source.physical.join(META_DIR).join("setuid");
        let what = format!("`{}/{META_DIR}/setuid`", source.logical);
        let file = match fs::File::open(&list) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(BuildError::Io {
                    context: format!("builder `profile`: reading {what}"),
                    source: e,
                });
            }
        };
        let mut text = String::new();
        file.take(MAX_SETUID_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(BuildError::io(format!("builder `profile`: reading {what}")))?;
        if text.len() as u64 > MAX_SETUID_BYTES {
            return Err(BuildError::Failed(format!(
                "builder `profile`: {what} is longer than {MAX_SETUID_BYTES} bytes"
            )));
        }
        for (n, line) in text.lines().enumerate() {
            let (mode, owner, path) = parse_setuid_line(line).map_err(|why| {
                BuildError::Failed(format!(
                    "builder `profile`: {what} line {}: {why}: `{}`",
                    n + 1,
                    line.escape_debug()
                ))
            })?;
            let in_source = source.physical.join(&path);
            if kind_of_opt(&in_source)? != Some(Kind::File) {
                return Err(BuildError::Failed(format!(
                    "builder `profile`: {what} line {}: `{}` lists a file it does not contain",
                    n + 1,
                    path.display()
                )));
            }
            let Some(claim) = claims.get(&path) else {
                continue;
            };
            let ours = claim.kind == Kind::File
                && (claim.source == index
                    || same_content(Kind::File, &claim.physical, &in_source)?);
            if ours && !lines.contains_key(&path) {
                lines.insert(
                    path.clone(),
                    format!("{mode:04o} {owner} {}\n", path.display()),
                );
            }
        }
    }
    Ok(lines.into_values().collect())
}

/// `MODE USER:GROUP PATH`: a setuid or setgid mode without write bits for
/// group or others, plain names, a path of the allow-list.
fn parse_setuid_line(line: &str) -> Result<(u32, String, PathBuf), String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let [mode, owner, path] = fields[..] else {
        return Err("not `MODE USER:GROUP PATH`".to_owned());
    };
    let mode = (mode.len() == 4 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        .then(|| u32::from_str_radix(mode, 8).ok())
        .flatten()
        .ok_or_else(|| format!("mode `{mode}` is not four octal digits"))?;
    if mode & 0o6000 == 0 {
        return Err(format!("mode {mode:04o} is neither setuid nor setgid"));
    }
    if mode & !0o6755 != 0 {
        return Err(format!(
            "mode {mode:04o} lets group or others write, or sets the sticky bit"
        ));
    }
    let plain = |name: &str| {
        !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !name.starts_with('-')
    };
    match owner.split_once(':') {
        Some((user, group)) if plain(user) && plain(group) => {}
        _ => return Err(format!("owner `{owner}` is not USER:GROUP")),
    }
    if !SETUID_ALLOW_LIST.contains(&path) {
        return Err(format!(
            "`{path}` is not a file Debian installs setuid or setgid"
        ));
    }
    let path = relative(path).map_err(|why| format!("the path {why}"))?;
    Ok((mode, owner.to_owned(), path))
}

/// What `path` is, or `None` when nothing is there.
fn kind_of_opt(path: &Path) -> Result<Option<Kind>, BuildError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => kind_from(path, &meta.file_type()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BuildError::Io {
            context: format!("reading `{}`", path.display()),
            source: e,
        }),
    }
}

/// Writes [`SETUID_LIST`] into the output; the merged entries must leave
/// its place free (exclude `.imago`, as by default).
fn write_setuid_list(
    out: &Path,
    claims: &BTreeMap<PathBuf, Claim>,
    text: &str,
) -> Result<(), BuildError> {
    let list = Path::new(SETUID_LIST);
    let dir = list.parent().unwrap_or(Path::new(""));
    if claims.contains_key(list) || claims.get(dir).is_some_and(|c| c.kind != Kind::Directory) {
        return Err(BuildError::Failed(format!(
            "builder `profile`: `setuid = true` writes `{SETUID_LIST}`, which a package provides; exclude `.imago`"
        )));
    }
    let dir = out.join(dir);
    if !dir.is_dir() {
        create_dir(&dir)?;
        set_mode(&dir, 0o755)?;
    }
    let path = out.join(list);
    fs::write(&path, text).map_err(BuildError::io(format!("writing `{}`", path.display())))?;
    set_mode(&path, 0o644)
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
