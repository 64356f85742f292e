//! Where a cache is: `file:///DIR` (a directory of this machine, read and
//! written), `http(s)://HOST/PATH` (read with the HTTP client Debian
//! fetching uses: its timeouts, retries and proxy variables; written with
//! PUT where the server allows it), or
//! `oci://HOST/REPO` (a registry's repository, read and written with the
//! same client).

use super::oci::Registry;
use super::oci::layout::StepIndex;
use super::put::Upload;
use super::transfer::consume_retrying;
use super::{CACHE_INFO_NAME, CacheError, MAX_METADATA_BYTES};
use crate::debian::fetch::{Http, HttpSettings};
use crate::store::{Blake3Digest, Store, StorePath};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
pub enum Location {
    /// A directory, `file:///DIR`.
    Dir(PathBuf),
    /// A base URL, `http(s)://…`, without a final `/`.
    Http { base: String, client: Arc<Http> },
    /// A registry's repository, `oci://HOST[:PORT]/REPO`.
    Oci(Arc<Registry>),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({})", self.url())
    }
}

impl Location {
    /// Parses a cache URL: `file:///absolute/dir`, `http(s)://…` or
    /// `oci://HOST[:PORT]/REPO` (`oci+http://`, `oci+https://`).
    pub fn parse(url: &str) -> Result<Location, CacheError> {
        let bad = |reason: &str| CacheError::BadLocation {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("a file URL names an absolute directory, file:///DIR"));
            }
            return Ok(Location::Dir(PathBuf::from(path)));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let client = Http::new(HttpSettings::default()).map_err(|e| bad(&e))?;
            return Ok(Location::Http {
                base: url.trim_end_matches('/').to_owned(),
                client: Arc::new(client),
            });
        }
        if let Some(registry) = Registry::parse(url) {
            return Ok(Location::Oci(Arc::new(registry.map_err(|e| bad(&e))?)));
        }
        Err(bad(
            "expected file:///DIR, http(s)://HOST/PATH or oci://HOST[:PORT]/REPOSITORY",
        ))
    }

    /// The URL, for messages.
    pub fn url(&self) -> String {
        match self {
            Location::Dir(dir) => format!("file://{}", dir.display()),
            Location::Http { base, .. } => base.clone(),
            Location::Oci(registry) => registry.url().to_owned(),
        }
    }

    pub(super) fn io_err(
        &self,
        what: &'static str,
        file: impl AsRef<Path>,
    ) -> impl FnOnce(std::io::Error) -> CacheError {
        super::io_error(self.url(), what, file)
    }

    /// Hands a reader of the file `rel` (a relative name of the layout) to
    /// `consume`, which reads it whole; `None` if the cache has no such
    /// file. Over HTTP, a failed transfer is tried again (a fresh
    /// `consume` call) as Debian fetching does; an error of `consume`
    /// itself is not.
    pub(super) fn fetch<T>(
        &self,
        rel: &str,
        mut consume: impl FnMut(&mut dyn Read) -> Result<T, CacheError>,
    ) -> Result<Option<T>, CacheError> {
        match self {
            Location::Dir(dir) => match File::open(dir.join(rel)) {
                Ok(mut f) => consume(&mut f).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io_err("opening", rel)(e)),
            },
            Location::Http { base, client } => {
                let url = format!("{base}/{rel}");
                consume_retrying(&self.url(), rel, |c| client.get(&url, c), consume)
            }
            Location::Oci(registry) => registry.fetch(rel, consume),
        }
    }

    /// The whole file `rel` (metadata, at most [`MAX_METADATA_BYTES`]), or
    /// `None` if the cache has no such file.
    pub(super) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, CacheError> {
        if let Location::Oci(registry) = self {
            return registry.read(rel);
        }
        self.fetch(rel, |r| {
            let mut bytes = Vec::new();
            r.take(MAX_METADATA_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(self.io_err("reading", rel))?;
            if bytes.len() as u64 > MAX_METADATA_BYTES {
                return Err(self.io_err("refusing", rel)(std::io::Error::other(
                    format!("longer than {MAX_METADATA_BYTES} bytes, the limit for metadata"),
                )));
            }
            Ok(bytes)
        })
    }

    /// Makes the location a cache if it is not one yet (its directories,
    /// its `imago-cache.json`).
    pub(super) fn prepare(&self) -> Result<(), CacheError> {
        match self {
            Location::Dir(dir) => super::dir::prepare(&self.url(), dir),
            Location::Http { .. } => {
                if self.read(CACHE_INFO_NAME)?.is_none() {
                    self.write(CACHE_INFO_NAME, &super::dir::cache_info())?;
                }
                Ok(())
            }
            Location::Oci(registry) => {
                if registry.read(CACHE_INFO_NAME)?.is_none() {
                    registry.write(CACHE_INFO_NAME, &super::dir::cache_info())?;
                }
                Ok(())
            }
        }
    }

    /// Writes the file `rel` of the layout, whole or not at all.
    pub(super) fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), CacheError> {
        match self {
            Location::Dir(dir) => super::dir::write_atomic(&self.url(), dir, rel, bytes),
            Location::Http { base, client } => {
                super::put::put(client, &self.url(), base, rel, Upload::Bytes(bytes))
            }
            Location::Oci(registry) => registry.write(rel, bytes),
        }
    }

    /// Notes the step records a copy is about to write, before it writes
    /// them: a registry writes them as one step index, which each of
    /// their manifests lists (docs/cache.md, "OCI registry"); other caches
    /// have no use for it.
    pub(super) fn index_steps(&self, index: &StepIndex) -> Result<(), CacheError> {
        match self {
            Location::Oci(registry) => registry.index_steps(index),
            _ => Ok(()),
        }
    }

    /// Writes the archive of `path` alone; returns its BLAKE3 and size.
    pub(super) fn write_archive(
        &self,
        store: &Store,
        path: &StorePath,
    ) -> Result<(Blake3Digest, u64), CacheError> {
        match self {
            Location::Dir(dir) => super::dir::write_archive(store, &self.url(), dir, path),
            Location::Http { base, client } => {
                super::put::put_archive(store, client, &self.url(), base, path)
            }
            Location::Oci(registry) => registry.write_archive(store, path),
        }
    }

    /// An error unless the location is a cache: a directory must have its
    /// `imago-cache.json` (a mistyped path, a disk not mounted is not a
    /// cache without the step), a registry its `imago-cache` tag.
    pub(super) fn check_is_cache(&self) -> Result<(), CacheError> {
        let not_a_cache = |why: &str| {
            self.io_err("opening", CACHE_INFO_NAME)(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("not a binary cache: {why}"),
            ))
        };
        match self {
            Location::Dir(dir) if !dir.join(CACHE_INFO_NAME).is_file() => {
                Err(not_a_cache("it has no imago-cache.json"))
            }
            Location::Oci(registry) if !registry.is_cache()? => Err(not_a_cache(
                "the repository has no tag imago-cache (`imago copy --to` creates it)",
            )),
            _ => Ok(()),
        }
    }

    /// An error unless `tag` can tag a closure in this cache (a registry
    /// cache, a tag of the grammar, not one of the cache's own).
    pub fn check_tag(&self, tag: &str) -> Result<(), CacheError> {
        let bad = |reason: String| CacheError::BadLocation {
            url: self.url(),
            reason,
        };
        if !matches!(self, Location::Oci(_)) {
            return Err(bad(
                "only a registry cache (oci://HOST/REPO) has tags".to_owned()
            ));
        }
        match super::oci::layout::closure_tag_problem(tag) {
            Some(reason) => Err(bad(format!("`{tag}` cannot tag a closure: {reason}"))),
            None => Ok(()),
        }
    }

    /// With `--tag NAME` on a copy to a registry: tags an index of the
    /// closures of `roots` (all in the cache) as `tag`.
    pub fn tag_closure(
        &self,
        store: &Store,
        tag: &str,
        roots: &[StorePath],
    ) -> Result<(), CacheError> {
        self.check_tag(tag)?;
        let Location::Oci(registry) = self else {
            return Ok(());
        };
        let closure = store
            .closure_sorted(roots)
            .map_err(|source| CacheError::Store {
                cache: self.url(),
                source: Box::new(source),
            })?;
        registry.tag_closure(tag, roots, &closure)
    }
}
