//! One object's archive streamed from a cache into a store's staging: it
//! is unpacked as it arrives (the unpacker trusts nothing and registers
//! nothing), hashed on the way, and checked once it ends, in the order a
//! copy to a file would check it: the transfer (for a registry, the
//! blob's digest), then the archive's size and BLAKE3 from the signed
//! metadata, then what the unpacking found. No copy of the archive is
//! written: on a store's file system a temporary file cost as much as the
//! object's own files.

use super::info::ObjectInfo;
use super::{CacheError, Location};
use crate::store::{ImportLimits, Store, StorePath, UnpackedArchive};
use std::collections::BTreeSet;
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};

/// What a stream that [`fetch_object`] broke off on its `stop` says.
pub(super) const STOPPED: &str = "stopped: another object failed";

/// Reads `inner`, hashing and counting; tells a transfer that broke off
/// (worth another attempt) from the unpacker's own errors, and breaks off
/// itself once `stop` is set.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hasher: blake3::Hasher,
    len: u64,
    broke: Option<String>,
    stop: &'a AtomicBool,
    stopped: bool,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            self.stopped = true;
            return Err(std::io::Error::other(STOPPED));
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.broke = Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// What one attempt read: the unpacking's result, and the archive's
/// length and BLAKE3.
type Attempt = (
    Result<UnpackedArchive, crate::store::StoreError>,
    u64,
    blake3::Hash,
);

/// Streams the archive of `info` from `cache` into an unpacked archive for
/// a batch whose other objects are `pending`, checked against `info`;
/// breaks off once `stop` is set.
pub(super) fn fetch_object(
    store: &Store,
    cache: &Location,
    info: &ObjectInfo,
    pending: &BTreeSet<StorePath>,
    stop: &AtomicBool,
) -> Result<UnpackedArchive, CacheError> {
    let bad = |reason: String| CacheError::BadArchive {
        path: info.path().clone(),
        cache: cache.url(),
        file: info.archive.clone(),
        reason,
    };
    let attempt = |input: &mut dyn Read| -> Result<Attempt, CacheError> {
        let mut limited = input.take(info.archive_size.saturating_add(1));
        let mut hashing = Hashing {
            inner: &mut limited,
            hasher: blake3::Hasher::new(),
            len: 0,
            broke: None,
            stop,
            stopped: false,
        };
        let mut buffered = BufReader::with_capacity(1 << 17, &mut hashing);
        let unpacked = store.unpack_archive(&mut buffered, ImportLimits::default(), pending);
        // The rest, which the unpacker did not need, is part of the
        // archive too (and should not be there).
        let drained = std::io::copy(&mut buffered, &mut std::io::sink());
        drop(buffered);
        if hashing.stopped {
            return Err(cache.io_err("downloading", &info.archive)(
                std::io::Error::other(STOPPED),
            ));
        }
        if let Some(broke) = hashing.broke {
            // A `reading` error: the transfer is tried again.
            return Err(cache.io_err("reading", &info.archive)(
                std::io::Error::other(broke),
            ));
        }
        drained.map_err(cache.io_err("reading", &info.archive))?;
        Ok((unpacked, hashing.len, hashing.hasher.finalize()))
    };
    let (unpacked, len, hash) = cache
        .fetch(&info.archive, attempt)
        .map_err(|e| match e {
            CacheError::Http {
                cache,
                file,
                failure,
            } => CacheError::Http {
                cache,
                file: format!("{file} (the archive of {})", info.path()),
                failure,
            },
            CacheError::BadBlob {
                cache,
                what,
                reason,
            } => CacheError::BadBlob {
                cache,
                what: format!("{what} (the archive of {})", info.path()),
                reason,
            },
            e => e,
        })?
        .ok_or_else(|| bad("is missing".to_owned()))?;
    if len < info.archive_size {
        return Err(bad(format!(
            "is truncated: {len} bytes, the metadata says {}",
            info.archive_size
        )));
    }
    if len > info.archive_size {
        return Err(bad(format!(
            "is longer than the {} bytes the metadata says",
            info.archive_size
        )));
    }
    let found = crate::store::Blake3Digest::from(hash);
    if found != info.archive_digest {
        return Err(bad(format!(
            "hashes to {found}, the metadata says {}",
            info.archive_digest
        )));
    }
    let unpacked = unpacked.map_err(|source| CacheError::Refused {
        path: info.path().clone(),
        cache: cache.url(),
        source: Box::new(source),
    })?;
    let held = unpacked.objects();
    if held.as_slice() != std::slice::from_ref(&info.object) {
        let found: Vec<String> = held
            .iter()
            .map(|o| serde_json::to_string(o).unwrap_or_default())
            .collect();
        return Err(CacheError::BadInfo {
            path: info.path().clone(),
            cache: cache.url(),
            reason: format!(
                "its archive holds [{}], the metadata says {}",
                found.join(", "),
                serde_json::to_string(&info.object).unwrap_or_default()
            ),
        });
    }
    Ok(unpacked)
}
