//! Copying closures from a cache into a store, trusting only signatures.

use super::info::{INFO_VERSION, ObjectInfo, archive_name, info_name};
use super::keys::PublicKey;
use super::{CacheError, CopyReport, Location, Progress};
use crate::store::{ImportBatch, ImportLimits, Store, StorePath};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

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
    // object of the closures is there and trusted.
    let mut infos: BTreeMap<StorePath, ObjectInfo> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<StorePath> = paths.to_vec();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if store.is_valid(&path).map_err(store_err)? {
            report.already_there += 1;
            continue;
        }
        let bytes = cache
            .read(&info_name(&path))?
            .ok_or_else(|| CacheError::Missing {
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
        todo.extend(info.object.references.iter().cloned());
        infos.insert(path, info);
    }
    let mut batch = ImportBatch::new();
    progress.start("copying", "objects", infos.len() as u64);
    for info in dependency_order(infos) {
        let path = info.path().clone();
        let download = store.temp_output().map_err(store_err)?;
        fetch_archive(cache, &info, &download.out())?;
        let file = File::open(download.out())
            .map_err(cache.io_err("reading the download of", &info.archive))?;
        let staged = store
            .stage_archive(&mut batch, BufReader::new(file), ImportLimits::default())
            .map_err(|source| CacheError::Refused {
                path: path.clone(),
                cache: cache.url(),
                source: Box::new(source),
            })?;
        let expected = &info.object;
        if staged.as_slice() != std::slice::from_ref(expected) {
            let found: Vec<String> = staged
                .iter()
                .map(|o| serde_json::to_string(o).unwrap_or_default())
                .collect();
            return Err(CacheError::BadInfo {
                path,
                cache: cache.url(),
                reason: format!(
                    "its archive holds [{}], the metadata says {}",
                    found.join(", "),
                    serde_json::to_string(expected).unwrap_or_default()
                ),
            });
        }
        report.bytes_copied += info.archive_size;
        report.copied.push(path);
        progress.done("objects", info.archive_size);
    }
    progress.finish();
    Ok((batch, report))
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

/// Copies the archive of `info` to `to`, checking its size and BLAKE3.
fn fetch_archive(
    cache: &Location,
    info: &ObjectInfo,
    to: &std::path::Path,
) -> Result<(), CacheError> {
    let bad = |reason: String| CacheError::BadArchive {
        path: info.path().clone(),
        cache: cache.url(),
        file: info.archive.clone(),
        reason,
    };
    let copy = |input: &mut dyn Read| -> Result<(u64, blake3::Hash), CacheError> {
        // A fresh file for every attempt.
        let file = File::create(to).map_err(cache.io_err("downloading", &info.archive))?;
        let mut out = BufWriter::new(file);
        let mut hasher = blake3::Hasher::new();
        let mut limited = input.take(info.archive_size.saturating_add(1));
        let mut buf = vec![0u8; 1 << 16];
        let mut len: u64 = 0;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(cache.io_err("reading", &info.archive)(e)),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(cache.io_err("downloading", &info.archive))?;
            len += n as u64;
        }
        out.flush()
            .map_err(cache.io_err("downloading", &info.archive))?;
        Ok((len, hasher.finalize()))
    };
    let (len, hash) = cache
        .fetch(&info.archive, copy)
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
    Ok(())
}
