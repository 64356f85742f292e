//! File-system helpers shared by the tree-shaped builders.
//!
//! Nothing here follows a symlink: entries are inspected with
//! `symlink_metadata`, symlinks are recreated with the same target, and
//! anything that is not a file, directory or symlink is refused by name.
//! Store files are hard-linked (the temporary build directory lives on the
//! store's file system); when that is impossible (another file system, or
//! the inode's link count is exhausted) the file is copied instead.

use super::{BuildContext, BuildError};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The three kinds of entry a store object may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::File => "a file",
            Kind::Directory => "a directory",
            Kind::Symlink => "a symlink",
        }
    }
}

/// What `path` is, without following a final symlink; special files are an
/// error naming them.
pub fn kind_of(path: &Path) -> Result<Kind, BuildError> {
    let meta = fs::symlink_metadata(path)
        .map_err(BuildError::io(format!("reading `{}`", path.display())))?;
    kind_from(path, &meta.file_type())
}

pub fn kind_from(path: &Path, file_type: &fs::FileType) -> Result<Kind, BuildError> {
    if file_type.is_symlink() {
        Ok(Kind::Symlink)
    } else if file_type.is_dir() {
        Ok(Kind::Directory)
    } else if file_type.is_file() {
        Ok(Kind::File)
    } else {
        Err(BuildError::Failed(format!(
            "`{}` is a special file (device, socket or FIFO); only files, directories and symlinks are allowed",
            path.display()
        )))
    }
}

/// Recreates the symlink `src` at `dst` with the same target.
pub fn copy_symlink(src: &Path, dst: &Path) -> Result<(), BuildError> {
    let target =
        fs::read_link(src).map_err(BuildError::io(format!("reading link `{}`", src.display())))?;
    std::os::unix::fs::symlink(&target, dst).map_err(BuildError::io(format!(
        "creating symlink `{}`",
        dst.display()
    )))
}

/// Hard-links the file `src` to `dst`, or copies it when linking is
/// impossible.
pub fn link_or_copy(src: &Path, dst: &Path) -> Result<(), BuildError> {
    match fs::hard_link(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if link_unsupported(&e) => copy_file(src, dst),
        Err(e) => Err(BuildError::Io {
            context: format!("linking `{}` to `{}`", src.display(), dst.display()),
            source: e,
        }),
    }
}

fn link_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::XDEV.raw_os_error()
            || code == rustix::io::Errno::MLINK.raw_os_error()
            || code == rustix::io::Errno::PERM.raw_os_error()
    )
}

/// Copies the file `src` to `dst`, keeping only its executable bit
/// (0755 or 0644).
pub fn copy_file(src: &Path, dst: &Path) -> Result<(), BuildError> {
    fs::copy(src, dst).map_err(BuildError::io(format!(
        "copying `{}` to `{}`",
        src.display(),
        dst.display()
    )))?;
    let executable = fs::metadata(src)
        .map_err(BuildError::io(format!("reading `{}`", src.display())))?
        .permissions()
        .mode()
        & 0o111
        != 0;
    set_mode(dst, if executable { 0o755 } else { 0o644 })
}

/// Creates the file `path` (which must not exist) holding `bytes`, with the
/// mode the store gives it in the end: 0444, or 0555 when `executable`.
/// Created that way, it leaves the store's canonicalization nothing to
/// change: a text step costs one inode update less, and no chmod of its own.
pub fn write_new_file(path: &Path, bytes: &[u8], executable: bool) -> Result<(), BuildError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mode = if executable { 0o555 } else { 0o444 };
    let err = || BuildError::io(format!("writing `{}`", path.display()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err())?;
    file.write_all(bytes).map_err(err())?;
    // The umask may have taken bits away.
    if file.metadata().map_err(err())?.permissions().mode() & 0o7777 != mode {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err())?;
    }
    Ok(())
}

pub fn set_mode(path: &Path, mode: u32) -> Result<(), BuildError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(BuildError::io(format!(
        "setting the mode of `{}`",
        path.display()
    )))
}

pub fn create_dir(path: &Path) -> Result<(), BuildError> {
    fs::create_dir(path).map_err(BuildError::io(format!("creating `{}`", path.display())))
}

/// Copies the tree at `src` to `dst` (which must not exist): directories
/// created, files hard-linked (`link` true) or copied, symlinks recreated.
pub fn copy_tree(src: &Path, dst: &Path, link: bool) -> Result<(), BuildError> {
    let put_file = |s: &Path, d: &Path| {
        if link {
            link_or_copy(s, d)
        } else {
            copy_file(s, d)
        }
    };
    match kind_of(src)? {
        Kind::File => return put_file(src, dst),
        Kind::Symlink => return copy_symlink(src, dst),
        Kind::Directory => {}
    }
    for entry in walkdir::WalkDir::new(src)
        .follow_links(false)
        .follow_root_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| walk_error(src, e))?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .map_err(|e| BuildError::Failed(format!("walking `{}`: {e}", src.display())))?;
        let target = if rel.as_os_str().is_empty() {
            dst.to_path_buf()
        } else {
            dst.join(rel)
        };
        match kind_from(entry.path(), &entry.file_type())? {
            Kind::Directory => {
                create_dir(&target)?;
                set_mode(&target, 0o755)?;
            }
            Kind::File => put_file(entry.path(), &target)?,
            Kind::Symlink => copy_symlink(entry.path(), &target)?,
        }
    }
    Ok(())
}

/// A walkdir error as a [`BuildError`] naming the root walked.
pub fn walk_error(root: &Path, e: walkdir::Error) -> BuildError {
    let context = match e.path() {
        Some(p) => format!("reading `{}`", p.display()),
        None => format!("reading `{}`", root.display()),
    };
    match e.into_io_error() {
        Some(source) => BuildError::Io { context, source },
        None => BuildError::Failed(format!("{context}: a directory loop")),
    }
}

/// The physical location of a logical store path (`/imago/store/<obj>/sub`),
/// refusing a path that passes through a symlink on the way: reading
/// `<obj>/link/file` where `link -> /etc` would read the host. The last
/// component may itself be a symlink (it is copied as one, never followed).
pub fn store_source(ctx: &BuildContext, logical: &str) -> Result<std::path::PathBuf, BuildError> {
    let physical = ctx.physical(logical)?;
    let mut dir = ctx.store_dir.clone();
    let rel = physical
        .strip_prefix(&ctx.store_dir)
        .map_err(|_| BuildError::Params(format!("`{logical}` is not inside the store")))?;
    let parts: Vec<_> = rel.components().collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        dir.push(part);
        let meta =
            fs::symlink_metadata(&dir).map_err(BuildError::io(format!("reading `{logical}`")))?;
        if !meta.is_dir() {
            return Err(BuildError::Failed(format!(
                "`{logical}` passes through `{}`, which is {} and not a directory",
                dir.display(),
                kind_from(&dir, &meta.file_type()).map_or("a special file", Kind::describe)
            )));
        }
    }
    Ok(physical)
}
