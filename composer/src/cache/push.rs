//! Copying closures into a cache.

use super::ahead::{ReadAhead, read_ahead};
use super::info::{ObjectInfo, fingerprint, info_name};
use super::keys::SecretKey;
use super::oci::layout::{IndexedRecord, StepIndex};
use super::steps::{StepRecord, parse_record, step_fingerprint, step_name};
use super::{CacheError, CopyReport, Location, Progress};
use crate::store::archive::ManifestObject;
use crate::store::{Blake3Digest, Store, StorePath};

/// Copies the closures of `paths` into `cache`, with the build's
/// intermediate outputs: for each object a step built here, the closures
/// of the step's inputs too (the store records them), and the step
/// records of every step whose output is copied. Objects the cache has are
/// not copied again (with `sign`, they gain its signature if they lack
/// it; their other signatures stay); each missing one is written as its
/// archive, then its metadata, references before referrers, and the step
/// records come last (as one step index too, for a registry), so a reader
/// never finds metadata whose archive or references are not there yet, nor
/// a record whose output is not.
pub fn push(
    store: &Store,
    cache: &Location,
    paths: &[StorePath],
    sign: Option<&SecretKey>,
    progress: &Progress,
) -> Result<CopyReport, CacheError> {
    cache.prepare()?;
    let store_err = |source| CacheError::Store {
        cache: cache.url(),
        source: Box::new(source),
    };
    let everything = build_closure(store, paths).map_err(store_err)?;
    let order = store.closure_sorted(&everything).map_err(store_err)?;
    // What the cache has, asked for all objects and step records at once.
    let mut rels = Vec::new();
    let mut steps = Vec::new();
    for path in &order {
        rels.push(info_name(path));
        for key in store.cache_keys_of(path).map_err(store_err)? {
            rels.push(step_name(&key));
            steps.push((key, path));
        }
    }
    let mut known = read_ahead(cache, rels);
    let mut report = CopyReport::default();
    let records = plan_steps(cache, &mut known, &steps, sign)?;
    progress.start("copying", "objects", order.len() as u64);
    for path in order {
        let rel = info_name(&path);
        let object = store
            .info(&path)
            .map_err(store_err)?
            .ok_or_else(|| store_err(crate::store::StoreError::NotValid { path: path.clone() }))?;
        let print = fingerprint(&path, &object.digest, object.size, &object.references);
        if known.vouched(&rel, &print, sign) {
            report.already_there += 1;
            progress.done("objects", 0);
            continue;
        }
        if let Some(bytes) = known.read(cache, &rel)? {
            let mut info = super::pull::parse_info(cache, &path, &bytes)?;
            report.already_there += 1;
            if let Some(key) = sign
                && info.sign(key)
            {
                write_info(cache, &info)?;
                report.signatures_added += 1;
            }
            progress.done("objects", 0);
            continue;
        }
        let (digest, size) = cache.write_archive(store, &path)?;
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
        write_info(cache, &info)?;
        report.bytes_copied += size;
        report.copied.push(path);
        progress.done("objects", size);
    }
    // The step records last, every object there (a reader never finds a
    // record, nor an index of records, whose object is not there yet).
    if !records.is_empty() {
        let records = records
            .iter()
            .map(|r| IndexedRecord {
                key: r.key.to_string(),
                output: r.output.as_str().to_owned(),
                signatures: r.signatures.clone(),
            })
            .collect();
        cache.index_steps(&StepIndex { records })?;
    }
    for record in records {
        write_step(cache, &record)?;
        report.step_records += 1;
    }
    progress.finish();
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

/// The step records to write, of `steps` (a step's key and the object
/// its build produced). A record the cache has already is kept: with
/// `sign`, it gains the signature if it names the same output; one naming
/// another output (another build of the step, whose objects the cache
/// holds too) is left as it is.
fn plan_steps(
    cache: &Location,
    known: &mut ReadAhead,
    steps: &[(Blake3Digest, &StorePath)],
    sign: Option<&SecretKey>,
) -> Result<Vec<StepRecord>, CacheError> {
    let mut planned = Vec::new();
    for &(key, path) in steps {
        let rel = step_name(&key);
        if known.vouched(&rel, &step_fingerprint(&key, path), sign) {
            continue;
        }
        let (mut record, new) = match known.read(cache, &rel)? {
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
            planned.push(record);
        }
    }
    Ok(planned)
}

fn write_step(cache: &Location, record: &StepRecord) -> Result<(), CacheError> {
    let rel = step_name(&record.key);
    let mut json = serde_json::to_vec_pretty(record)
        .map_err(|e| cache.io_err("encoding", &rel)(std::io::Error::other(e)))?;
    json.push(b'\n');
    cache.write(&rel, &json)
}

fn write_info(cache: &Location, info: &ObjectInfo) -> Result<(), CacheError> {
    let mut json = serde_json::to_vec_pretty(info)
        .map_err(|e| cache.io_err("encoding", info_name(info.path()))(std::io::Error::other(e)))?;
    json.push(b'\n');
    cache.write(&info_name(info.path()), &json)
}
