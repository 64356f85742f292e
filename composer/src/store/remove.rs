//! Deleting trees whose directories are read-only (store objects, and build
//! outputs after canonicalization): each directory gets its owner write bit
//! back before its entries are removed. Symlinks are never followed.

use super::error::{Result, StoreError};
use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Renames `src` to `dest` unless something is there: `Ok(false)` then,
/// and `src` is left alone. One `renameat2(RENAME_NOREPLACE)`, so the
/// common case costs one lookup of `dest` (on ext4, a lookup in a large
/// store directory cost as much as the rename itself). A file system without
/// the flag also answers `Ok(false)`: the caller then looks and decides.
pub(crate) fn rename_if_free(src: &Path, dest: &Path) -> Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, src, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST | Errno::NOTEMPTY | Errno::INVAL | Errno::NOSYS) => Ok(false),
        Err(e) => Err(StoreError::io("moving object into the store", dest)(
            e.into(),
        )),
    }
}

/// Removes `path` (file, symlink or directory tree). A missing path is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("removing", path)(e)),
    };
    if meta.is_dir() {
        make_writable(path)?;
        fs::remove_dir_all(path)
            .or_else(ignore_missing)
            .map_err(StoreError::io("removing", path))
    } else {
        fs::remove_file(path)
            .or_else(ignore_missing)
            .map_err(StoreError::io("removing", path))
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Adds the owner write (and search) bit to every directory under `dir`,
/// iteratively (no recursion, so depth is not a problem).
fn make_writable(dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        match fs::set_permissions(&d, Permissions::from_mode(0o755)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("making writable for removal", &d)(e)),
        }
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("reading directory", &d)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(StoreError::io("reading directory", &d))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}
