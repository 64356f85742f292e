//! Copying closures from a cache into a store, trusting only signatures.

use super::info::{INFO_VERSION, ObjectInfo, archive_name, info_name};
use super::keys::PublicKey;
use super::stream;
use super::{CacheError, CopyReport, Location, Progress};
use crate::store::{ImportBatch, Store, StorePath, UnpackedArchive, Writeback};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// Copies the closures of `paths` from `cache` into `store`. Every object
/// the store lacks must carry a signature that verifies with one of
/// `trusted`, its archive must have the size and BLAKE3 its metadata
/// names, and its contents are verified as `closure import` verifies them
/// (rehashed to its store name, references recomputed) and must match the
/// metadata. All objects are registered in one transaction, or none.
pub fn pull(
    store: &Store,
    cache: &Location,
    paths: &[StorePath],
    trusted: &[PublicKey],
    progress: &Progress,
) -> Result<CopyReport, CacheError> {
    let (batch, report) = stage(store, cache, paths, trusted, progress)?;
    store
        .commit_import(batch)
        .map_err(|source| CacheError::Store {
            cache: cache.url(),
            source: Box::new(source),
        })?;
    Ok(report)
}

/// Fetches and verifies every object of the closures of `paths` that the
/// store lacks (see [`pull`]) into a batch, registering nothing.
pub(super) fn stage(
    store: &Store,
    cache: &Location,
    paths: &[StorePath],
    trusted: &[PublicKey],
    progress: &Progress,
) -> Result<(ImportBatch, CopyReport), CacheError> {
    let store_err = |source| CacheError::Store {
        cache: cache.url(),
        source: Box::new(source),
    };
    let mut report = CopyReport::default();
    // Ask the cache for everything first: nothing is fetched unless every
    // object of the closures is there and trusted. A remote cache is asked
    // several questions at a time, a level of references after another.
    let remote = !matches!(cache, Location::Dir(_));
    let mut infos: BTreeMap<StorePath, ObjectInfo> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut level: Vec<StorePath> = paths.to_vec();
    while !level.is_empty() {
        let mut ask = Vec::new();
        for path in std::mem::take(&mut level) {
            if !seen.insert(path.clone()) {
                continue;
            }
            if store.is_valid(&path).map_err(store_err)? {
                report.already_there += 1;
                continue;
            }
            ask.push(path);
        }
        let answers = super::ahead::ask_all(&ask, remote, |path| cache.read(&info_name(path)));
        for (path, answer) in ask.into_iter().zip(answers) {
            let bytes = answer?.ok_or_else(|| CacheError::Missing {
                cache: cache.url(),
                path: path.clone(),
            })?;
            let info = parse_info(cache, &path, &bytes)?;
            info.trusted_by(trusted)
                .map_err(|reason| CacheError::Untrusted {
                    path: path.clone(),
                    cache: cache.url(),
                    reason,
                })?;
            level.extend(info.object.references.iter().cloned());
            infos.insert(path, info);
        }
    }
    let order = dependency_order(infos);
    progress.start("copying", "objects", order.len() as u64);
    // Each object's archive is streamed into its staging directory (see
    // `stream`); several at once, the largest first, while the file
    // system is written back in the background.
    let writeback = Writeback::start(store.dir());
    let unpacked = unpack_all(store, cache, &order, progress);
    drop(writeback);
    let mut batch = ImportBatch::new();
    for (info, part) in order.iter().zip(unpacked?) {
        batch.add(part).map_err(|source| CacheError::Refused {
            path: info.path().clone(),
            cache: cache.url(),
            source: Box::new(source),
        })?;
        report.bytes_copied += info.archive_size;
        report.copied.push(info.path().clone());
    }
    progress.finish();
    Ok((batch, report))
}

/// Objects streamed at once: enough to keep two cores busy while small
/// archives wait for their answers.
const STREAMS: usize = 4;

/// Every object of `order` unpacked and checked (see
/// [`stream::fetch_object`]), [`STREAMS`] at a time, the largest first;
/// returned in the order of `order`. A failure stops the others; the one
/// reported is the first in `order` that was not a stop.
fn unpack_all(
    store: &Store,
    cache: &Location,
    order: &[ObjectInfo],
    progress: &Progress,
) -> Result<Vec<UnpackedArchive>, CacheError> {
    // The objects of other archives an archive may refer to: all are
    // registered together, or none.
    let pending: BTreeSet<StorePath> = order.iter().map(|i| i.path().clone()).collect();
    let mut largest_first: Vec<usize> = (0..order.len()).collect();
    largest_first.sort_by_key(|&i| std::cmp::Reverse(order[i].archive_size));
    let stop = AtomicBool::new(false);
    let results = super::ahead::in_parallel(&largest_first, STREAMS, |&i| {
        let info = &order[i];
        if stop.load(Ordering::Relaxed) {
            return (i, None);
        }
        let result = stream::fetch_object(store, cache, info, &pending, &stop);
        match &result {
            Ok(_) => progress.done("objects", info.archive_size),
            Err(_) => stop.store(true, Ordering::Relaxed),
        }
        (i, Some(result))
    });
    let mut done: Vec<Option<Result<UnpackedArchive, CacheError>>> =
        order.iter().map(|_| None).collect();
    for (i, result) in results {
        done[i] = result;
    }
    // The first real failure: objects stopped because of it say so only.
    let mut parts = Vec::with_capacity(done.len());
    let mut stopped = None;
    for result in done {
        match result {
            Some(Ok(part)) => parts.push(part),
            Some(Err(e)) if is_stop(&e) => stopped = stopped.or(Some(e)),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    match stopped {
        Some(e) => Err(e),
        None => Ok(parts),
    }
}

/// Whether `e` only says that a stream was stopped because another failed.
fn is_stop(e: &CacheError) -> bool {
    matches!(e, CacheError::Io { what: "downloading", source, .. } if source.to_string() == stream::STOPPED)
}

/// Parses and checks the metadata file of `path`.
pub(super) fn parse_info(
    cache: &Location,
    path: &StorePath,
    bytes: &[u8],
) -> Result<ObjectInfo, CacheError> {
    let bad = |reason: String| CacheError::BadInfo {
        path: path.clone(),
        cache: cache.url(),
        reason,
    };
    let info: ObjectInfo = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("{} is not valid: {e}", info_name(path))))?;
    if info.version != INFO_VERSION {
        return Err(bad(format!(
            "version {} (this imago reads version {INFO_VERSION})",
            info.version
        )));
    }
    if info.path() != path {
        return Err(bad(format!(
            "{} describes {}",
            info_name(path),
            info.path()
        )));
    }
    if info.object.references.contains(path) {
        return Err(bad("it lists itself as a reference".to_owned()));
    }
    if info.archive != archive_name(&info.archive_digest) {
        return Err(bad(format!(
            "its archive is `{}`, expected `{}`",
            info.archive,
            archive_name(&info.archive_digest)
        )));
    }
    Ok(info)
}

/// The objects in dependency order (references first; ties by path).
fn dependency_order(mut infos: BTreeMap<StorePath, ObjectInfo>) -> Vec<ObjectInfo> {
    let mut order = Vec::with_capacity(infos.len());
    while !infos.is_empty() {
        let ready: Vec<StorePath> = infos
            .iter()
            .filter(|(_, i)| i.object.references.iter().all(|r| !infos.contains_key(r)))
            .map(|(p, _)| p.clone())
            .collect();
        // References cannot form a cycle between content-addressed objects;
        // should metadata claim one, take the rest in path order and let
        // the import refuse what does not verify.
        let ready = if ready.is_empty() {
            infos.keys().cloned().collect()
        } else {
            ready
        };
        for p in ready {
            if let Some(i) = infos.remove(&p) {
                order.push(i);
            }
        }
    }
    order
}
