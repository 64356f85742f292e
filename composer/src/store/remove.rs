//! Deleting trees whose directories are read-only (store objects, and build
//! outputs after canonicalization): each directory gets its owner write bit
//! back before its entries are removed. Symlinks are never followed.

use super::error::{Result, StoreError};
use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
