//! File locks that coordinate processes sharing a store: `flock` (through
//! `std::fs::File::lock`) on whole files, and open-file-description
//! byte-range locks for build steps. Locks are released when the process
//! dies.
//!
//! - `.imago/locks/steps-NN.lock` ([`StepLock`]): one byte per build step
//!   key, locked exclusively (an open-file-description lock, `F_OFD_SETLKW`,
//!   on the byte at an offset taken from the key) while one thread or
//!   process builds the step, so a second one waits and then finds the
//!   cache entry. Sixteen files (`NN` is `00` to `15`, also taken from the
//!   key) serve every step: no lock file is created per step, and the
//!   kernel, which searches a file's whole list of locks at every lock and
//!   unlock, has a sixteenth of them to search (a build holds a lock per
//!   output waiting for its commit: hundreds).
//! - `.imago/locks/commit.lock`: exclusive while objects are moved into
//!   place and registered (a group commit, a repair's exchange), so that no
//!   object is renamed twice or replaced before it is registered.
//! - `.imago/locks/gc.lock`: shared by every add and every cache lookup while
//!   they register temporary roots; exclusive for garbage collection and for
//!   the crash recovery at open. So GC never sees an object between "renamed"
//!   and "protected by a root".
//!
//! Lock files are never deleted (deleting a lock file others may hold open
//! would split the lock); they are empty, and there are eighteen.

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

/// Opens the lock file, creating it only if it is missing. A build opens
/// lock files a few times per step, and an open with `O_CREAT` takes the
/// directory's lock exclusively even when the file exists: two workers'
/// opens then queued behind each other on every step.
fn open_lock_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            options.create(true).truncate(false).open(path)
        }
        opened => opened,
    }
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
    let path: PathBuf = locks_dir.join(step_lock_file(key));
    // Its own open file description, so that threads of one process exclude
    // each other as processes do; closing it (on drop) releases the lock.
    let file = open_lock_file(&path)?;
    lock_byte(&file, key_offset(key)).map_err(StoreError::io("locking", &path))?;
    Ok(StepLock {
        _file: file,
        key: *key,
    })
}

/// How many files the step locks are spread over.
const STEP_LOCK_FILES: u8 = 16;

/// The file that holds `key`'s lock: chosen by the key's last byte (the
/// offset comes from its first eight).
fn step_lock_file(key: &Blake3Digest) -> String {
    format!("steps-{:02}.lock", key.0[31] % STEP_LOCK_FILES)
}

/// The byte of its lock file that stands for `key`: 62 bits of the key, so
/// that two keys share a byte with negligible probability (and then only
/// wait for each other) and every offset is a valid `off_t`.
fn key_offset(key: &Blake3Digest) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&key.0[..8]);
    i64::try_from(u64::from_le_bytes(first) >> 2).unwrap_or(i64::MAX - 1)
}

/// Blocks until the exclusive open-file-description lock on the one byte
/// at `offset` of `file` is held.
fn lock_byte(file: &File, offset: i64) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::libc;
    let request = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: offset,
        l_len: 1,
        // Must be 0 for open-file-description locks.
        l_pid: 0,
    };
    loop {
        match fcntl(file, FcntlArg::F_OFD_SETLKW(&request)) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    fn key(n: u8) -> Blake3Digest {
        Blake3Digest::of(&[n])
    }

    #[test]
    fn a_step_lock_excludes_other_threads_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = step_lock(dir.path(), &key(1)).unwrap();
        let taken = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (started, wait) = mpsc::channel();
            let (dir, taken) = (&dir, &taken);
            s.spawn(move || {
                started.send(()).unwrap();
                let _second = step_lock(dir.path(), &key(1)).unwrap();
                taken.store(true, Ordering::SeqCst);
            });
            wait.recv().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !taken.load(Ordering::SeqCst),
                "a second lock on the same key was granted while the first is held"
            );
            drop(held);
        });
        assert!(taken.load(Ordering::SeqCst));
    }

    #[test]
    fn a_missing_lock_file_is_created_and_an_existing_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.lock");
        drop(shared(&path).unwrap());
        assert!(path.is_file());
        std::fs::write(&path, b"kept").unwrap();
        drop(exclusive(&path).unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"kept",
            "reopening truncated it"
        );
        let missing_dir = dir.path().join("no-such-dir/gc.lock");
        let err = shared(&missing_dir).unwrap_err().to_string();
        assert!(err.contains("no-such-dir"), "{err}");
    }

    #[test]
    fn different_steps_lock_independently_and_create_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let _a = step_lock(dir.path(), &key(1)).unwrap();
        // Would block forever if the keys shared a lock.
        let _b = step_lock(dir.path(), &key(2)).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let expected: std::collections::BTreeSet<_> = [key(1), key(2)]
            .iter()
            .map(|k| std::ffi::OsString::from(step_lock_file(k)))
            .collect();
        assert_eq!(
            names.into_iter().collect::<std::collections::BTreeSet<_>>(),
            expected
        );
        assert_ne!(key_offset(&key(1)), key_offset(&key(2)));
        // However many steps, the files stay a fixed few.
        let held: Vec<StepLock> = (3..203)
            .map(|n| step_lock(dir.path(), &key(n)).unwrap())
            .collect();
        assert_eq!(held.len(), 200);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, usize::from(STEP_LOCK_FILES));
        assert!(key_offset(&key(1)) >= 0);
    }
}
