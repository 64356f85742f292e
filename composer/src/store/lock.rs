//! File locks (`flock`, through `std::fs::File::lock`) that coordinate
//! processes sharing a store. Locks are released when the process dies.
//!
//! - `.imago/locks/steps/<hex key>.lock` ([`StepLock`]): exclusive while one
//!   process builds a step, so a second process waits and then finds the
//!   cache entry.
//! - `.imago/locks/objects/<hash>-<name>.lock`: exclusive from the moment an
//!   object is renamed into place until it is registered (or found valid).
//! - `.imago/locks/gc.lock`: shared by every add and every cache lookup while
//!   they register temporary roots; exclusive for garbage collection and for
//!   the crash recovery at open. So GC never sees an object between "renamed"
//!   and "protected by a root".
//!
//! Lock files are never deleted (deleting a lock file others may hold open
//! would split the lock); they are empty and small.

use super::digest::Blake3Digest;
use super::error::{Result, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// An exclusive lock on one build step, released on drop.
#[derive(Debug)]
pub struct StepLock {
    _file: File,
    key: Blake3Digest,
}

impl StepLock {
    pub fn key(&self) -> &Blake3Digest {
        &self.key
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(StoreError::io("opening lock file", path))
}

/// Blocks until the exclusive lock on `path` is held.
pub(crate) fn exclusive(path: &Path) -> Result<File> {
    let file = open_lock_file(path)?;
    file.lock().map_err(StoreError::io("locking", path))?;
    Ok(file)
}

/// Blocks until a shared lock on `path` is held.
pub(crate) fn shared(path: &Path) -> Result<File> {
    let file = open_lock_file(path)?;
    file.lock_shared()
        .map_err(StoreError::io("locking", path))?;
    Ok(file)
}

/// Takes the exclusive lock on `path` if nobody holds it.
pub(crate) fn try_exclusive(path: &Path) -> Result<Option<File>> {
    let file = open_lock_file(path)?;
    Ok(if try_lock_file(&file, path)? {
        Some(file)
    } else {
        None
    })
}

/// Tries to lock an already open file exclusively.
pub(crate) fn try_lock_file(file: &File, path: &Path) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(StoreError::io("locking", path)(e)),
    }
}

pub(crate) fn step_lock(locks_dir: &Path, key: &Blake3Digest) -> Result<StepLock> {
    let path: PathBuf = locks_dir
        .join("steps")
        .join(format!("{}.lock", key.to_hex()));
    Ok(StepLock {
        _file: exclusive(&path)?,
        key: *key,
    })
}
