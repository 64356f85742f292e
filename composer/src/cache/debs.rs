//! The .debs a lock names in a cache, by SHA-256: `<cache>/sha256/<hex>`
//! in a directory or on a web server (a package cache's layout, so one
//! directory is both), a blob `sha256:<hex>` kept by a manifest `d-<hex>`
//! in a registry. Written by `imago copy --to CACHE --lock FILE`; read by
//! the fetcher, to which every substituter is a package source
//! ([`Location::package_source`]).

use super::put::{Upload, put};
use super::{CacheError, CopyReport, Location, Progress};
use crate::debian::fetch::{self, Hashed, sources::hashed_path};
use crate::debian::lock::LockEntry;
use std::path::Path;

impl Location {
    /// This cache as a source of locked .debs: a directory or base URL
    /// laid out as a package cache, or a registry's blobs.
    pub fn package_source(&self) -> fetch::Location {
        match self {
            Location::Dir(dir) => fetch::Location::Dir(dir.clone()),
            Location::Http { base, .. } => fetch::Location::Url(base.clone()),
            Location::Oci(registry) => {
                fetch::Location::Hashed(Hashed(registry.clone()), String::new())
            }
        }
    }

    /// Whether the cache has the .deb of `entry` (of its size, where the
    /// cache says).
    fn has_deb(&self, entry: &LockEntry) -> Result<bool, CacheError> {
        let rel = hashed_path(&entry.sha256);
        match self {
            Location::Dir(dir) => match std::fs::metadata(dir.join(&rel)) {
                Ok(meta) => Ok(meta.is_file() && meta.len() == entry.size),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(self.io_err("reading", &rel)(e)),
            },
            Location::Http { base, client } => match client.head(&format!("{base}/{rel}")) {
                Ok(found) => Ok(found.is_some_and(|len| len.is_none_or(|n| n == entry.size))),
                Err(failure) => Err(CacheError::Http {
                    cache: self.url(),
                    file: rel,
                    failure: failure.to_string(),
                }),
            },
            Location::Oci(registry) => registry.has_deb(&entry.sha256),
        }
    }

    /// Writes the .deb `file` of `entry`, whole or not at all (over
    /// HTTP, a reader checks the SHA-256 of what it gets anyway).
    fn write_deb(&self, entry: &LockEntry, file: &Path) -> Result<(), CacheError> {
        let rel = hashed_path(&entry.sha256);
        match self {
            Location::Dir(dir) => super::dir::copy_atomic(&self.url(), dir, &rel, file),
            Location::Http { base, client } => {
                put(client, &self.url(), base, &rel, Upload::File(file))
            }
            Location::Oci(registry) => registry.write_deb(entry, file),
        }
    }
}

/// Copies the .debs of `entries` from the download cache `deb_cache`
/// (where they must be: fetch them first) into `cache`, each once. A
/// .deb the cache has (asked for all first, eight at a time from a
/// server) does not travel; each one that does is checked
/// against its lock entry (size and SHA-256) first: a file of the
/// download cache that fails is moved to its `rejected/` and nothing of
/// it is sent.
pub fn push_debs(
    cache: &Location,
    entries: &[LockEntry],
    deb_cache: &Path,
    progress: &Progress,
) -> Result<CopyReport, CacheError> {
    cache.prepare()?;
    let mut unique: Vec<&LockEntry> = entries.iter().collect();
    unique.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    unique.dedup_by(|a, b| a.sha256 == b.sha256);
    // Ask for every .deb first, several at a time from a server.
    let remote = !matches!(cache, Location::Dir(_));
    let present = super::ahead::ask_all(&unique, remote, |e| cache.has_deb(e));
    let mut report = CopyReport::default();
    progress.start("copying", "packages", unique.len() as u64);
    for (entry, present) in unique.into_iter().zip(present) {
        if present? {
            report.debs_already_there += 1;
            progress.done("packages", 0);
            continue;
        }
        let file = fetch::cache_path(deb_cache, entry);
        fetch::verify_file(&file, entry, deb_cache).map_err(|source| CacheError::Package {
            cache: cache.url(),
            package: format!("{}={}", entry.name, entry.version),
            source: Box::new(source),
        })?;
        cache.write_deb(entry, &file)?;
        report.debs_copied += 1;
        report.deb_bytes_copied += entry.size;
        progress.done("packages", entry.size);
    }
    progress.finish();
    Ok(report)
}
