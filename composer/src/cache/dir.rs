//! Writing a directory cache (`file:///DIR`): every file through a
//! temporary file beside it and a rename, so a reader never sees half a
//! file.

use super::info::archive_name;
use super::transfer::export_archive;
use super::{CACHE_INFO_NAME, CacheError};
use crate::store::{Blake3Digest, STORE_PREFIX, Store, StorePath};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn io_err(
    cache: &str,
    what: &'static str,
    file: impl AsRef<Path>,
) -> impl FnOnce(std::io::Error) -> CacheError {
    super::io_error(cache.to_owned(), what, file)
}

/// Creates the cache's directories and its `imago-cache.json`.
pub(super) fn prepare(cache: &str, dir: &Path) -> Result<(), CacheError> {
    for sub in ["objects", "archives", "steps"] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).map_err(io_err(cache, "creating", &d))?;
    }
    if !dir.join(CACHE_INFO_NAME).is_file() {
        write_atomic(cache, dir, CACHE_INFO_NAME, &cache_info())?;
    }
    Ok(())
}

/// The text of a new cache's `imago-cache.json`.
pub(super) fn cache_info() -> Vec<u8> {
    let text = serde_json::json!({ "version": 1, "store": STORE_PREFIX }).to_string() + "\n";
    text.into_bytes()
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
pub(super) fn write_atomic(
    cache: &str,
    dir: &Path,
    rel: &str,
    bytes: &[u8],
) -> Result<(), CacheError> {
    let target = dir.join(rel);
    let parent = target.parent().unwrap_or(dir);
    let tmp = Partial::new(parent);
    let result = File::create_new(tmp.path()).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    result
        .and_then(|()| tmp.rename(&target))
        .map_err(io_err(cache, "writing", rel))
}

/// Copies the file `src` to `dir/rel` through a temporary file and a
/// rename.
pub(super) fn copy_atomic(
    cache: &str,
    dir: &Path,
    rel: &str,
    src: &Path,
) -> Result<(), CacheError> {
    let target = dir.join(rel);
    let parent = target.parent().unwrap_or(dir);
    fs::create_dir_all(parent).map_err(io_err(cache, "creating", parent))?;
    let tmp = Partial::new(parent);
    let result = File::open(src).and_then(|mut from| {
        let mut to = File::create_new(tmp.path())?;
        std::io::copy(&mut from, &mut to)?;
        to.sync_all()
    });
    result
        .and_then(|()| tmp.rename(&target))
        .map_err(io_err(cache, "writing", rel))
}

/// Writes the archive of `path` alone as `archives/<blake3>.tar.zst`;
/// returns its digest and size.
pub(super) fn write_archive(
    store: &Store,
    cache: &str,
    dir: &Path,
    path: &StorePath,
) -> Result<(Blake3Digest, u64), CacheError> {
    let tmp = Partial::new(&dir.join("archives"));
    let file = File::create_new(tmp.path()).map_err(io_err(cache, "creating", tmp.path()))?;
    let name = tmp.path().display().to_string();
    let exported = export_archive(store, path, file, false, cache, &name)?;
    let name = archive_name(&exported.blake3);
    tmp.rename(&dir.join(&name))
        .map_err(io_err(cache, "writing", &name))?;
    Ok((exported.blake3, exported.size))
}
