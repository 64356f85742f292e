//! The machine's run directory (`/run`, the script's `IMAGO_RUN`):
//! `booted-system` and `current-system` name the toplevels in use, which
//! are never deleted, and `imago-switch.lock` is the lock that lets one
//! process at a time change generations. The lock follows the protocol of
//! switch-to-configuration (modules/system/switch/lock.sh), so that the
//! script and these helpers exclude each other: a symlink naming the
//! holder's pid, created atomically; the lock of a holder that is gone is
//! taken over only by the process that creates the takeover guard
//! directory (`mkdir` is atomic), which checks the holder again under it.

use super::GenerationsError;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock's file name in the run directory.
pub const LOCK_NAME: &str = "imago-switch.lock";
/// The takeover guard's directory name in the run directory.
pub const GUARD_NAME: &str = "imago-switch.lock.takeover";
/// How often `take` looks again when the lock changes hands (as the script).
const ATTEMPTS: u32 = 20;

/// The toplevels that `<run>/booted-system` and `<run>/current-system`
/// name, as the links spell them (the script compares them so too).
pub fn in_use_systems(run: &Path) -> Vec<String> {
    ["booted-system", "current-system"]
        .iter()
        .filter_map(|l| fs::read_link(run.join(l)).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct SwitchLock {
    lock: PathBuf,
    guard: PathBuf,
    me: String,
    held: bool,
    guard_held: bool,
}

impl SwitchLock {
    /// Takes `<run>/imago-switch.lock` for this process, or fails naming
    /// the live process that holds it.
    pub fn take(run: &Path) -> Result<SwitchLock, GenerationsError> {
        let mut this = SwitchLock {
            lock: run.join(LOCK_NAME),
            guard: run.join(GUARD_NAME),
            me: std::process::id().to_string(),
            held: false,
            guard_held: false,
        };
        for attempt in 1..=ATTEMPTS {
            match std::os::unix::fs::symlink(&this.me, &this.lock) {
                Ok(()) => {
                    this.held = true;
                    return Ok(this);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(source) => return Err(this.cannot_create(source)),
            }
            match fs::symlink_metadata(&this.lock) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    this.refuse_if_held()?;
                    match fs::create_dir(&this.guard) {
                        Ok(()) => {
                            this.guard_held = true;
                            this.take_over()?;
                            return Ok(this);
                        }
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(source) => {
                            return Err(GenerationsError::Lock {
                                path: this.guard.clone(),
                                source,
                            });
                        }
                    }
                }
                Ok(_) => {
                    return Err(GenerationsError::NotALock {
                        path: this.lock.clone(),
                    });
                }
                // Released meanwhile: try again.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => return Err(this.cannot_create(source)),
            }
            if attempt < ATTEMPTS {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if this.guard.symlink_metadata().is_ok() {
            return Err(GenerationsError::LockTakeover {
                lock: this.lock.clone(),
                guard: this.guard.clone(),
            });
        }
        Err(this.cannot_create(std::io::Error::from(ErrorKind::AlreadyExists)))
    }

    fn cannot_create(&self, source: std::io::Error) -> GenerationsError {
        GenerationsError::Lock {
            path: self.lock.clone(),
            source,
        }
    }

    /// Under the guard: replaces the stale lock with this process's own.
    fn take_over(&mut self) -> Result<(), GenerationsError> {
        self.refuse_if_held()?;
        match fs::remove_file(&self.lock) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => return Err(self.cannot_create(source)),
        }
        if std::os::unix::fs::symlink(&self.me, &self.lock).is_err() {
            // A process that started meanwhile found no lock and took it.
            self.refuse_if_held()?;
            return Err(GenerationsError::LockTakenMeanwhile {
                lock: self.lock.clone(),
            });
        }
        self.held = true;
        if fs::remove_dir(&self.guard).is_ok() {
            self.guard_held = false;
        }
        Ok(())
    }

    /// Fails when the lock names a live process other than this one.
    fn refuse_if_held(&self) -> Result<(), GenerationsError> {
        let Ok(holder) = fs::read_link(&self.lock) else {
            return Ok(());
        };
        let holder = holder.to_string_lossy().into_owned();
        if holder == self.me || holder.is_empty() || !holder.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(());
        }
        if process_exists(&holder) {
            return Err(GenerationsError::LockHeld {
                pid: holder,
                lock: self.lock.clone(),
            });
        }
        Ok(())
    }
}

/// Whether the decimal pid names a live process (as the script's `kill -0`;
/// a process this one may not signal exists all the same).
fn process_exists(pid: &str) -> bool {
    let Some(pid) = pid
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

impl Drop for SwitchLock {
    fn drop(&mut self) {
        if self.held {
            let _ = fs::remove_file(&self.lock);
        }
        if self.guard_held {
            let _ = fs::remove_dir(&self.guard);
        }
    }
}
