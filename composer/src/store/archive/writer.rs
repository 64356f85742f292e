//! [`FileWriter`]: the files of an archive being unpacked, created and
//! written by a thread of their own while the unpacking thread reads on
//! (decompression, the tar stream, every check of a path). On two cores
//! the two halves overlap; writing an object's files was as long as
//! reading its archive.
//!
//! Only the writing moves: the unpacking thread has already checked the
//! path, created its parent directory, and recorded the entry, so a file
//! is created exactly where it would have been, with `O_EXCL` as before.
//! Large files are written by the unpacking thread itself, so that what
//! waits in memory stays small.

use crate::store::error::{Result, StoreError};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Files up to this size are handed to the writing thread.
pub(super) const HANDED_OVER: u64 = 1 << 20;
/// Files waiting to be written, at most, and spare buffers kept: with
/// [`HANDED_OVER`], at most 32 MiB held per archive being unpacked.
const QUEUE: usize = 16;

/// One file to write.
struct Job {
    target: PathBuf,
    executable: bool,
    data: Vec<u8>,
}

/// The writing thread, and the buffers it gives back to be filled again
/// (fresh memory is costly to touch on some hosts).
pub(super) struct FileWriter {
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<Vec<u8>>,
    failed: Arc<Mutex<Option<StoreError>>>,
    /// Set after a failure, or when the unpacking gave up: the files
    /// still waiting are not written.
    abandon: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Creates `target`, which must not exist, with the mode the store gives
/// it (the umask may take bits away; hashing then puts them back), not
/// changed after: thousands of files, a `chmod` each, were a cost of
/// their own.
pub(super) fn create_file(target: &Path, executable: bool) -> Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o555 } else { 0o444 })
        .open(target)
        .map_err(StoreError::io("creating file", target))
}

/// Creates `target` ([`create_file`]) and writes `data`.
fn write_file(target: &Path, executable: bool, data: &[u8]) -> Result<()> {
    create_file(target, executable)?
        .write_all(data)
        .map_err(StoreError::io("writing file", target))
}

impl FileWriter {
    pub(super) fn start() -> FileWriter {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let (give_back, spare) = sync_channel::<Vec<u8>>(QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let failure = Arc::clone(&failed);
        let abandon = Arc::new(AtomicBool::new(false));
        let skip = Arc::clone(&abandon);
        let thread = std::thread::Builder::new()
            .name("imago-unpack".to_owned())
            .spawn(move || {
                for mut job in queue {
                    if !skip.load(Ordering::Relaxed)
                        && let Err(e) = write_file(&job.target, job.executable, &job.data)
                    {
                        skip.store(true, Ordering::Relaxed);
                        *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                    }
                    job.data.clear();
                    let _ = give_back.try_send(job.data);
                }
            })
            .ok();
        // Without a thread, nothing is handed over: `write` writes itself.
        let jobs = thread.as_ref().map(|_| jobs);
        FileWriter {
            jobs,
            spare,
            failed,
            abandon,
            thread,
        }
    }

    /// A buffer to read a file's data into.
    pub(super) fn buffer(&self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Writes `data` to the new file `target`, now or on the thread.
    pub(super) fn write(&self, target: &Path, executable: bool, data: Vec<u8>) -> Result<()> {
        self.check()?;
        let Some(jobs) = &self.jobs else {
            return write_file(target, executable, &data);
        };
        let job = Job {
            target: target.to_owned(),
            executable,
            data,
        };
        if let Err(returned) = jobs.send(job) {
            let job = returned.0;
            return write_file(&job.target, job.executable, &job.data);
        }
        Ok(())
    }

    /// The first error of the thread so far.
    fn check(&self) -> Result<()> {
        match self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for every file handed over; the first error, if any.
    pub(super) fn finish(mut self) -> Result<()> {
        self.stop();
        self.check()
    }

    fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Not finished: the unpacking failed, and its directory goes.
        self.abandon.store(true, Ordering::Relaxed);
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_written_with_the_store_mode_and_a_failure_is_reported_by_finish() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = FileWriter::start();
        let a = dir.path().join("a");
        let mut data = files.buffer();
        data.extend_from_slice(b"contents of a");
        files
            .write(&a, false, data)
            .unwrap_or_else(|e| panic!("{e}"));
        files
            .write(&dir.path().join("run"), true, b"#!/bin/sh\n".to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        files.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&a).ok().as_deref(), Some(&b"contents of a"[..]));
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
        assert_eq!(mode(&a), Some(0o444));
        assert_eq!(mode(&dir.path().join("run")), Some(0o555));

        // An existing file is never overwritten; the error names it.
        let files = FileWriter::start();
        files
            .write(&a, false, b"other".to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        let e = files
            .finish()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("creating file") && e.contains(&*a.to_string_lossy()),
            "{e}"
        );
        assert_eq!(fs::read(&a).ok().as_deref(), Some(&b"contents of a"[..]));
    }

    #[test]
    fn after_a_failure_nothing_more_is_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = FileWriter::start();
        let missing = dir.path().join("no-such-dir/file");
        files
            .write(&missing, false, b"x".to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        // Until the thread has met the failure, writes are accepted; once
        // it has, they are refused with it.
        let mut refused = None;
        for i in 0..1000 {
            match files.write(&dir.path().join(format!("f{i}")), false, b"y".to_vec()) {
                Ok(()) => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(e) => {
                    refused = Some((i, e.to_string()));
                    break;
                }
            }
        }
        let (i, e) = refused.unwrap_or_else(|| panic!("the failure was never reported"));
        assert!(e.contains("no-such-dir"), "{e}");
        drop(files);
        // The files handed over after the failing one were skipped.
        let written = (0..i)
            .filter(|n| dir.path().join(format!("f{n}")).exists())
            .count();
        assert_eq!(written, 0, "{written} of {i} written after the failure");
    }
}
