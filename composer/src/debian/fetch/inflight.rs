//! Downloads in flight in this process, by destination path, so a build can
//! start unpacking packages while others are still downloading: the `deb`
//! builder waits here for its file ([`wait`]) when a background fetch has
//! promised it ([`promise`]) and not yet delivered it ([`settle`]). A path
//! nobody promised returns at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, PoisonError};

#[derive(Default)]
struct Flight {
    settled: Mutex<bool>,
    cond: Condvar,
}

static FLIGHTS: LazyLock<Mutex<HashMap<PathBuf, Arc<Flight>>>> = LazyLock::new(Mutex::default);

fn table() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Arc<Flight>>> {
    FLIGHTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks `paths` as being fetched.
pub(super) fn promise(paths: impl IntoIterator<Item = PathBuf>) {
    let mut t = table();
    for p in paths {
        t.entry(p).or_default();
    }
}

/// The fetch of `path` is over, delivered or not: wake its waiters.
pub(super) fn settle(path: &Path) {
    let flight = table().remove(path);
    if let Some(f) = flight {
        *f.settled.lock().unwrap_or_else(PoisonError::into_inner) = true;
        f.cond.notify_all();
    }
}

/// Settles every path it holds when dropped.
pub(super) struct SettleOnDrop(pub(super) Vec<PathBuf>);

impl Drop for SettleOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            settle(path);
        }
    }
}

/// Blocks until a promised fetch of `path` is over; returns at once when
/// none is in flight.
pub fn wait(path: &Path) {
    let flight = table().get(path).cloned();
    if let Some(f) = flight {
        let mut settled = f.settled.lock().unwrap_or_else(PoisonError::into_inner);
        while !*settled {
            settled = f.cond.wait(settled).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn waiters_wake_when_the_fetch_settles() {
        let path = PathBuf::from("/nonexistent/inflight-test.deb");
        wait(&path); // nothing promised: returns at once
        promise([path.clone()]);
        let started = Instant::now();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                wait(&path);
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        settle(&path);
        assert!(waiter.join().unwrap() >= Duration::from_millis(100));
        wait(&path);
    }
}
