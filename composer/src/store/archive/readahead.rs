//! Reading a stream on a second thread.
//!
//! Import spends its time in two places of similar size: decompressing the
//! archive, and writing the files (the kernel copying data into the page
//! cache and creating inodes). [`with_read_ahead`] runs the first on a
//! thread of its own, so the two use both cores instead of taking turns on
//! one. Memory stays bounded: at most [`DEPTH`] chunks of [`CHUNK`] bytes
//! are in flight, and their buffers are handed back for reuse.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

/// Bytes read per chunk.
const CHUNK: usize = 256 << 10;
/// Chunks that may wait between the two threads.
const DEPTH: usize = 8;

/// Calls `f` with a reader that yields what `open(input)` yields, the latter
/// read on another thread. When `f` returns early, the other thread stops
/// after the read it is in.
pub(crate) fn with_read_ahead<I, R, T>(
    input: I,
    open: impl FnOnce(I) -> io::Result<R> + Send,
    f: impl FnOnce(&mut dyn Read) -> T,
) -> T
where
    I: Send,
    R: Read,
{
    let (full_tx, full_rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH + 1);
    thread::scope(|scope| {
        scope.spawn(move || produce(input, open, &full_tx, &empty_rx));
        let mut reader = AheadReader {
            full: full_rx,
            empty: empty_tx,
            current: Vec::new(),
            pos: 0,
            done: false,
        };
        // Dropping the reader (at the end of this closure) disconnects the
        // channels, which stops the producer at its next send.
        f(&mut reader)
    })
}

fn produce<I, R: Read>(
    input: I,
    open: impl FnOnce(I) -> io::Result<R>,
    full: &SyncSender<io::Result<Vec<u8>>>,
    empty: &Receiver<Vec<u8>>,
) {
    let mut source = match open(input) {
        Ok(s) => s,
        Err(e) => {
            let _ = full.send(Err(e));
            return;
        }
    };
    loop {
        let mut buf = empty.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = loop {
            match source.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let (msg, last) = match n {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                (Ok(buf), false)
            }
            Err(e) => (Err(e), true),
        };
        if full.send(msg).is_err() || last {
            return;
        }
    }
}

struct AheadReader {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for AheadReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.current, next);
                    // The producer may have stopped; then the buffer just goes.
                    let _ = self.empty.try_send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The producer finished: end of stream.
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that fails after some bytes.
    struct Failing(usize);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("the disk went away"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn yields_every_byte_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 123).map(|i| (i * 31 % 251) as u8).collect();
        let got = with_read_ahead(data.as_slice(), Ok, |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v)
        })
        .unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn passes_errors_on_after_the_data_before_them() {
        let err = with_read_ahead(CHUNK + 5, |n| Ok(Failing(n)), |r| {
            let mut v = Vec::new();
            let e = r.read_to_end(&mut v).unwrap_err();
            assert_eq!(v.len(), CHUNK + 5);
            e
        });
        assert_eq!(err.to_string(), "the disk went away");
    }

    #[test]
    fn an_error_opening_is_the_first_read() {
        let err = with_read_ahead(
            (),
            |()| -> io::Result<&[u8]> { Err(io::Error::other("bad magic")) },
            |r| r.read(&mut [0; 4]).unwrap_err(),
        );
        assert_eq!(err.to_string(), "bad magic");
    }

    #[test]
    fn stopping_early_ends_the_reading_thread() {
        // An endless source: returning must still finish the scope.
        let n = with_read_ahead(io::repeat(1), Ok, |r| r.read(&mut [0; 10]).unwrap());
        assert_eq!(n, 10);
    }
}
