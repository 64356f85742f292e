//! Fetching one locked file: each candidate source in turn, the bytes
//! hashed and counted while they stream into a temporary file inside the
//! download cache, which is renamed into place only when its size and
//! SHA-256 are the lock's. A source that serves anything else is recorded
//! with its answer and the next one is tried; its bytes are deleted, never
//! cached.

use super::error::{Attempt, Failure, Missing};
use super::http::Http;
use super::sources::{Candidate, Location};
use crate::debian::lock::LockEntry;
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::path::Path;
use tempfile::NamedTempFile;

/// Why one package was not fetched.
pub(super) enum NotFetched {
    /// Every source was tried; none delivered.
    Missing(Missing),
    /// A local failure (writing the cache): fetching stops.
    Local(String),
}

/// Fetches `entry` into `dest` (a path inside `cache`) from the first of
/// `candidates` that delivers the locked bytes.
pub(super) fn fetch_one(
    http: &Http,
    entry: &LockEntry,
    candidates: &[Candidate],
    cache: &Path,
    dest: &Path,
    bar: &ProgressBar,
) -> Result<(), NotFetched> {
    let mut attempts = Vec::new();
    for candidate in candidates {
        let received = match &candidate.location {
            Location::Dir(path) => match std::fs::File::open(path) {
                Ok(mut file) => receive(&mut file, entry, cache, bar),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Failure::NotFound),
                Err(e) => Err(Failure::Transport(format!("cannot read: {e}"))),
            },
            Location::Url(url) => http.get(url, |body| receive(body, entry, cache, bar)),
            Location::Hashed(source, sha256) => {
                let mut got = None;
                source
                    .0
                    .get(sha256, &mut |body| {
                        got = Some(receive(body, entry, cache, bar)?);
                        Ok(())
                    })
                    .and_then(|()| {
                        got.take()
                            .ok_or_else(|| Failure::Transport("no body".to_owned()))
                    })
            }
        };
        match received {
            Ok(tmp) => {
                return tmp.persist(dest).map(|_| ()).map_err(|e| {
                    NotFetched::Local(format!(
                        "moving the download to {}: {}",
                        dest.display(),
                        e.error
                    ))
                });
            }
            Err(Failure::Local(text)) => return Err(NotFetched::Local(text)),
            Err(failure) => attempts.push(Attempt {
                source: candidate.source,
                location: candidate.location.to_string(),
                failure,
            }),
        }
    }
    Err(NotFetched::Missing(Missing {
        name: entry.name.clone(),
        version: entry.version.clone(),
        filename: entry.filename.clone(),
        attempts,
    }))
}

/// Streams `body` into a temporary file in `cache`, checking it against
/// the lock: never more than its size, exactly its SHA-256.
fn receive(
    body: &mut dyn Read,
    entry: &LockEntry,
    cache: &Path,
    bar: &ProgressBar,
) -> Result<NamedTempFile, Failure> {
    let local =
        |what: &str, e: io::Error| Failure::Local(format!("{what} in {}: {e}", cache.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".download.")
        .tempfile_in(cache)
        .map_err(|e| local("creating a download file", e))?;
    let mut hasher = Sha256::new();
    let mut got: u64 = 0;
    let mut counted: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    let result = loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                break Err(Failure::Transport(format!(
                    "the body broke off after {got} of {} bytes: {e}",
                    entry.size
                )));
            }
        };
        got += n as u64;
        if got > entry.size {
            break Err(Failure::TooLong {
                expected: entry.size,
            });
        }
        hasher.update(&buf[..n]);
        if let Err(e) = tmp.write_all(&buf[..n]) {
            break Err(local("writing a download", e));
        }
        bar.inc(n as u64);
        counted += n as u64;
    };
    let result = result.and_then(|()| {
        if got < entry.size {
            return Err(Failure::Truncated {
                expected: entry.size,
                got,
            });
        }
        let actual = hex::encode(hasher.finalize());
        if actual != entry.sha256 {
            return Err(Failure::DigestMismatch {
                expected: entry.sha256.clone(),
                actual,
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| local("syncing a download", e))
    });
    match result {
        Ok(()) => Ok(tmp),
        Err(failure) => {
            // These bytes do not count: take them off the bar. Dropping
            // `tmp` deletes the file.
            bar.set_position(bar.position().saturating_sub(counted));
            Err(failure)
        }
    }
}
