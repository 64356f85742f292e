//! Early writeback for import: file data is pushed to disk on a helper
//! thread while unpacking goes on, so the sync that makes the objects
//! durable before they are registered finds little left to write.
//!
//! Every [`CHUNK`] bytes written to a file (and at its end, for files of at
//! least one chunk), a clone of its descriptor is handed to the helper,
//! which `fdatasync`s it. This only starts the writes sooner: durability
//! still comes from the `syncfs` after unpacking, which reports any write
//! error, so the helper's own errors are not needed and are dropped.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes written between two hand-offs of the same file.
pub(crate) const CHUNK: u64 = 16 << 20;

pub(crate) struct Flusher {
    tx: Option<mpsc::SyncSender<File>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub(crate) fn start() -> Flusher {
        let (tx, rx) = mpsc::sync_channel::<File>(4);
        let thread = std::thread::Builder::new()
            .name("imago-import-flush".to_owned())
            .spawn(move || {
                for file in rx {
                    let _ = file.sync_data();
                }
            })
            .ok();
        Flusher {
            tx: thread.is_some().then_some(tx),
            thread,
        }
    }

    fn flush(&self, file: &File) {
        // When the helper is behind, this hand-off is skipped: its next
        // `fdatasync` of the file covers the data too.
        if let (Some(tx), Ok(clone)) = (&self.tx, file.try_clone()) {
            let _ = tx.try_send(clone);
        }
    }

    /// A writer for `file` that hands it to the helper every [`CHUNK`].
    pub(crate) fn writer<'a>(&'a self, file: &'a mut File) -> FlushingWriter<'a> {
        FlushingWriter {
            flusher: self,
            file,
            since: 0,
            total: 0,
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct FlushingWriter<'a> {
    flusher: &'a Flusher,
    file: &'a mut File,
    since: u64,
    total: u64,
}

impl FlushingWriter<'_> {
    /// Hands over the file's tail once it is completely written.
    pub(crate) fn finish(self) {
        if self.total >= CHUNK && self.since > 0 {
            self.flusher.flush(self.file);
        }
    }
}

impl Write for FlushingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        self.total += n as u64;
        if self.since >= CHUNK {
            self.since = 0;
            self.flusher.flush(self.file);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
