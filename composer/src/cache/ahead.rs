//! What a copy to a registry asks first: the manifests of every object
//! and step record it copies, several requests in flight, so that the
//! objects the cache has cost one round trip each and no config
//! (docs/cache.md, "OCI registry"); and [`ask_all`], the same for any
//! question of a remote cache (whether it has each .deb of a lock).

use super::keys::SecretKey;
use super::oci::layout::listed_signatures;
use super::{CacheError, Location};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Requests in flight at once ([`read_ahead`]).
const REMOTE_READS: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a copy learnt of a registry's files ahead ([`read_ahead`]): for
/// each file, whether it is there and the signatures its manifest lists.
#[derive(Default)]
pub(super) struct ReadAhead(HashMap<String, Result<Option<Vec<String>>, CacheError>>);

impl ReadAhead {
    /// The file `rel` of `cache`: as read ahead, or read now.
    pub(super) fn read(
        &mut self,
        cache: &Location,
        rel: &str,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        match self.0.remove(rel) {
            Some(Ok(None)) => Ok(None),
            _ => cache.read(rel),
        }
    }

    /// Whether the cache is known to hold the file `rel` and, with `sign`,
    /// to carry that key's signature of `fingerprint` (which the caller
    /// computes from its own store, so that nothing the cache says is
    /// trusted): then a copy has nothing to do for it.
    pub(super) fn vouched(&self, rel: &str, fingerprint: &str, sign: Option<&SecretKey>) -> bool {
        let Some(Ok(Some(signatures))) = self.0.get(rel) else {
            return false;
        };
        let Some(key) = sign else {
            return true;
        };
        let prefix = format!("{}:", key.name());
        let public = key.public();
        signatures
            .iter()
            .filter_map(|s| s.strip_prefix(prefix.as_str()))
            .any(|sig| public.verifies(fingerprint.as_bytes(), sig))
    }
}

/// Asks a registry for the manifests of the files `rels`,
/// [`REMOTE_READS`] at a time (a round trip each is what a copy of
/// objects the cache has costs): whether each is there, and its
/// signatures. Nothing for another cache, whose files are read when
/// needed.
pub(super) fn read_ahead(cache: &Location, rels: Vec<String>) -> ReadAhead {
    let Location::Oci(registry) = cache else {
        return ReadAhead::default();
    };
    let queue = Mutex::new(rels.into_iter());
    let done = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for _ in 0..REMOTE_READS {
            s.spawn(|| {
                loop {
                    // Not `while let`: its guard would hold the queue
                    // through the request.
                    let next = lock(&queue).next();
                    let Some(rel) = next else { break };
                    let signatures = registry
                        .annotations(&rel)
                        .map(|a| a.map(|a| listed_signatures(&a)));
                    lock(&done).insert(rel, signatures);
                }
            });
        }
    });
    ReadAhead(done.into_inner().unwrap_or_else(PoisonError::into_inner))
}

/// `ask` of each of `items`, [`REMOTE_READS`] at a time when `remote`
/// (one after the other otherwise), in the order of `items`.
pub(super) fn ask_all<T: Sync, R: Send>(
    items: &[T],
    remote: bool,
    ask: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    in_parallel(items, if remote { REMOTE_READS } else { 1 }, ask)
}

/// `work` on each of `items`, `threads` at a time, taking them in the
/// order of `items`; the answers in that order.
pub(super) fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 {
        return items.iter().map(work).collect();
    }
    let queue = Mutex::new(items.iter().enumerate());
    let done = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            s.spawn(|| {
                loop {
                    let next = lock(&queue).next();
                    let Some((i, item)) = next else { break };
                    let answer = work(item);
                    lock(&done).push((i, answer));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}
