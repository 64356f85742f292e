//! Moving a cache's bytes, whatever the cache: a retried read whose
//! consumer's own errors survive the retries, and an object's archive
//! exported to a file while its BLAKE3 (and, for a registry, its SHA-256)
//! is computed.

use super::CacheError;
use crate::debian::fetch::Failure;
use crate::store::{Blake3Digest, Store, StorePath};
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Read, Write};

/// Runs `transfer`, which hands a body to the consumer it is given and is
/// retried on transport failures, with `consume` as that consumer. A
/// body that broke off while `consume` read it (a `reading` I/O error) is
/// worth another attempt; any other error of `consume` ends the transfer
/// and is returned as it is. `Ok(None)` when the file is not there;
/// another failure is an HTTP error naming `cache` and `file`.
pub(super) fn consume_retrying<T, R>(
    cache: &str,
    file: &str,
    transfer: impl FnOnce(&mut dyn FnMut(&mut dyn Read) -> Result<T, Failure>) -> Result<R, Failure>,
    mut consume: impl FnMut(&mut dyn Read) -> Result<T, CacheError>,
) -> Result<Option<R>, CacheError> {
    let own = RefCell::new(None);
    let mut consumer = |body: &mut dyn Read| {
        consume(body).map_err(|e| match e {
            CacheError::Io {
                what: "reading",
                source,
                ..
            } => Failure::Transport(source.to_string()),
            e => {
                let text = e.to_string();
                *own.borrow_mut() = Some(e);
                Failure::Local(text)
            }
        })
    };
    match transfer(&mut consumer) {
        Ok(r) => Ok(Some(r)),
        Err(Failure::NotFound) => Ok(None),
        Err(failure) => match own.into_inner() {
            Some(e) => Err(e),
            None => Err(CacheError::Http {
                cache: cache.to_owned(),
                file: file.to_owned(),
                failure: failure.to_string(),
            }),
        },
    }
}

/// What [`export_archive`] wrote.
pub(super) struct Exported {
    pub blake3: Blake3Digest,
    pub size: u64,
    /// `sha256:<hex>`, when asked for.
    pub sha256: Option<String>,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    blake3: blake3::Hasher,
    sha256: Option<sha2::Sha256>,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.blake3.update(&buf[..n]);
        if let Some(sha) = &mut self.sha256 {
            sha2::Digest::update(sha, &buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the archive of `path` alone into `file` (synced), hashing it;
/// `cache` and `name` are for messages.
pub(super) fn export_archive(
    store: &Store,
    path: &StorePath,
    file: File,
    sha256: bool,
    cache: &str,
    name: &str,
) -> Result<Exported, CacheError> {
    let io_err = |what| super::io_error(cache.to_owned(), what, name);
    let mut out = Hashing {
        inner: BufWriter::new(file),
        blake3: blake3::Hasher::new(),
        sha256: sha256.then(<sha2::Sha256 as sha2::Digest>::new),
        len: 0,
    };
    store
        .export_objects(std::slice::from_ref(path), &mut out)
        .map_err(|source| CacheError::Store {
            cache: cache.to_owned(),
            source: Box::new(source),
        })?;
    let file = out
        .inner
        .into_inner()
        .map_err(|e| io_err("writing")(e.into_error()))?;
    file.sync_all().map_err(io_err("syncing"))?;
    Ok(Exported {
        blake3: Blake3Digest::from(out.blake3.finalize()),
        size: out.len,
        sha256: out
            .sha256
            .map(|s| format!("sha256:{:x}", sha2::Digest::finalize(s))),
    })
}
