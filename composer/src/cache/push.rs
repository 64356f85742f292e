//! Copying closures into a cache.

use super::info::{ObjectInfo, archive_name, info_name};
use super::keys::SecretKey;
use super::steps::{StepRecord, parse_record, step_name};
use super::{CACHE_INFO_NAME, CacheError, CopyReport, Location};
use crate::store::archive::ManifestObject;
use crate::store::{Blake3Digest, STORE_PREFIX, Store, StorePath};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Copies the closures of `paths` into `cache`, with the build's
/// intermediate outputs: for each object a step built here, the closures
/// of the step's inputs too (the store records them), and the step
/// records of every step whose output is copied. Objects the cache has are
/// not copied again (with `sign`, they gain its signature if they lack
/// it; their other signatures stay); each missing one is written as its
/// archive, then its metadata, references before referrers, so a reader
/// never finds metadata whose archive or references are not there yet.
pub fn push(
    store: &Store,
    cache: &Location,
    paths: &[StorePath],
    sign: Option<&SecretKey>,
) -> Result<CopyReport, CacheError> {
    let Location::Dir(dir) = cache else {
        return Err(CacheError::BadLocation {
            url: cache.url(),
            reason: "only a file:///DIR cache can be written to yet".to_owned(),
        });
    };
    prepare(cache, dir)?;
    let store_err = |source| CacheError::Store {
        cache: cache.url(),
        source: Box::new(source),
    };
    let everything = build_closure(store, paths).map_err(store_err)?;
    let order = store.closure_sorted(&everything).map_err(store_err)?;
    let mut report = CopyReport::default();
    for path in order {
        let rel = info_name(&path);
        if let Some(bytes) = cache.read(&rel)? {
            let mut info = super::pull::parse_info(cache, &path, &bytes)?;
            report.already_there += 1;
            if let Some(key) = sign
                && info.sign(key)
            {
                write_info(cache, dir, &info)?;
                report.signatures_added += 1;
            }
            record_steps(store, cache, dir, &path, sign, &mut report)?;
            continue;
        }
        let object = store
            .info(&path)
            .map_err(store_err)?
            .ok_or_else(|| store_err(crate::store::StoreError::NotValid { path: path.clone() }))?;
        let (digest, size) = write_archive(store, cache, dir, &path)?;
        let mut info = ObjectInfo::new(
            ManifestObject {
                path: path.clone(),
                digest: object.digest,
                size: object.size,
                references: object.references,
                deriver: object.deriver,
            },
            digest,
            size,
        );
        if let Some(key) = sign {
            info.sign(key);
        }
        write_info(cache, dir, &info)?;
        record_steps(store, cache, dir, &path, sign, &mut report)?;
        report.bytes_copied += size;
        report.copied.push(path);
    }
    Ok(report)
}

/// The objects of the closures of `paths` and, for each step the build
/// cache names one of them the output of, of the step's recorded inputs,
/// recursively.
fn build_closure(
    store: &Store,
    paths: &[StorePath],
) -> Result<Vec<StorePath>, crate::store::StoreError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = paths.to_vec();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        todo.extend(store.references(&path)?);
        for key in store.cache_keys_of(&path)? {
            todo.extend(store.step_inputs(&key)?);
        }
    }
    Ok(seen.into_iter().collect())
}

/// Writes the record of every step the store's build cache names `path`
/// the output of, after `path`'s metadata (so a reader never finds a
/// record whose object is not there yet). A record the cache has already
/// is kept: with `sign`, it gains the signature if it names the same
/// output; one naming another output (another build of the step, whose
/// objects the cache holds too) is left as it is.
fn record_steps(
    store: &Store,
    cache: &Location,
    dir: &Path,
    path: &StorePath,
    sign: Option<&SecretKey>,
    report: &mut CopyReport,
) -> Result<(), CacheError> {
    let keys = store
        .cache_keys_of(path)
        .map_err(|source| CacheError::Store {
            cache: cache.url(),
            source: Box::new(source),
        })?;
    for key in keys {
        let rel = step_name(&key);
        let (mut record, new) = match cache.read(&rel)? {
            Some(bytes) => {
                let record = parse_record(cache, &key, &bytes)?;
                if record.output != *path {
                    continue;
                }
                (record, false)
            }
            None => (StepRecord::new(key, path.clone()), true),
        };
        let signed = sign.is_some_and(|k| record.sign(k));
        if new || signed {
            let mut json = serde_json::to_vec_pretty(&record)
                .map_err(|e| cache.io_err("encoding", &rel)(std::io::Error::other(e)))?;
            json.push(b'\n');
            write_atomic(cache, dir, &rel, &json)?;
            report.step_records += 1;
        }
    }
    Ok(())
}

/// Creates the cache's directories and its `imago-cache.json`.
fn prepare(cache: &Location, dir: &Path) -> Result<(), CacheError> {
    for sub in ["objects", "archives", "steps"] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).map_err(cache.io_err("creating", &d))?;
    }
    if cache.read(CACHE_INFO_NAME)?.is_none() {
        let text = serde_json::json!({ "version": 1, "store": STORE_PREFIX }).to_string() + "\n";
        write_atomic(cache, dir, CACHE_INFO_NAME, text.as_bytes())?;
    }
    Ok(())
}

fn write_info(cache: &Location, dir: &Path, info: &ObjectInfo) -> Result<(), CacheError> {
    let mut json = serde_json::to_vec_pretty(info)
        .map_err(|e| cache.io_err("encoding", info_name(info.path()))(std::io::Error::other(e)))?;
    json.push(b'\n');
    write_atomic(cache, dir, &info_name(info.path()), &json)
}

/// A temporary file beside its final place, removed unless renamed.
struct Partial(Option<PathBuf>);

impl Partial {
    fn new(dir: &Path) -> Partial {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Partial(Some(
            dir.join(format!(".partial-{}-{n}", std::process::id())),
        ))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn rename(mut self, to: &Path) -> std::io::Result<()> {
        let from = self.0.take().unwrap_or_default();
        fs::rename(&from, to).inspect_err(|_| {
            let _ = fs::remove_file(&from);
        })
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Writes `bytes` to `dir/rel` through a temporary file and a rename.
fn write_atomic(cache: &Location, dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), CacheError> {
    let target = dir.join(rel);
    let parent = target.parent().unwrap_or(dir);
    let tmp = Partial::new(parent);
    let err = cache.io_err("writing", rel);
    let result = File::create_new(tmp.path()).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    result.and_then(|()| tmp.rename(&target)).map_err(err)
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the archive of `path` alone as `archives/<blake3>.tar.zst`;
/// returns its digest and size.
fn write_archive(
    store: &Store,
    cache: &Location,
    dir: &Path,
    path: &StorePath,
) -> Result<(Blake3Digest, u64), CacheError> {
    let archives = dir.join("archives");
    let tmp = Partial::new(&archives);
    let file = File::create_new(tmp.path()).map_err(cache.io_err("creating", tmp.path()))?;
    let mut out = Hashing {
        inner: BufWriter::new(file),
        hasher: blake3::Hasher::new(),
        len: 0,
    };
    store
        .export_objects(std::slice::from_ref(path), &mut out)
        .map_err(|source| CacheError::Store {
            cache: cache.url(),
            source: Box::new(source),
        })?;
    let digest = Blake3Digest::from(out.hasher.finalize());
    let len = out.len;
    let file = out
        .inner
        .into_inner()
        .map_err(|e| cache.io_err("writing", tmp.path())(e.into_error()))?;
    file.sync_all()
        .map_err(cache.io_err("syncing", tmp.path()))?;
    let name = archive_name(&digest);
    tmp.rename(&dir.join(&name))
        .map_err(cache.io_err("writing", &name))?;
    Ok((digest, len))
}
