//! [`Writeback`]: the file system written back in the background while a
//! long import stages its objects, so that the one sync owed before they
//! are registered finds little left to write. The writes overlap the
//! unpacking instead of following it; durability still rests on that
//! final sync alone.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the background thread writes the file system back.
const PERIOD: Duration = Duration::from_millis(50);

/// A thread that `syncfs`es the file system of a directory every
/// [`PERIOD`] until dropped. Its errors are ignored: the caller's own sync
/// reports them.
pub struct Writeback {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    /// Starts writing back the file system holding `dir`; a directory that
    /// cannot be opened starts nothing.
    pub fn start(dir: &Path) -> Writeback {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = File::open(dir).ok().and_then(|handle| {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("imago-writeback".to_owned())
                .spawn(move || {
                    let (lock, wake) = &*stop;
                    let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    while !*stopped {
                        stopped = wake
                            .wait_timeout(stopped, PERIOD)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        if *stopped {
                            break;
                        }
                        drop(stopped);
                        let _ = rustix::fs::syncfs(&handle);
                        stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    }
                })
                .ok()
        });
        Writeback { stop, thread }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_when_dropped_and_starts_nothing_without_a_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let running = Writeback::start(dir.path());
        assert!(running.thread.is_some());
        // Long enough for a few rounds; the drop wakes and joins it.
        std::thread::sleep(PERIOD * 3);
        drop(running);
        let none = Writeback::start(&dir.path().join("missing"));
        assert!(none.thread.is_none());
    }
}
