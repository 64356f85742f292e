//! Where a cache is: `file:///DIR` (a directory of this machine, read and
//! written) or `http(s)://HOST/PATH` (read with the HTTP client Debian
//! fetching uses: its timeouts, retries and proxy variables).

use super::CacheError;
use crate::debian::fetch::{Failure, Http, HttpSettings};
use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest metadata file a cache may serve (an object with a million
/// references stays well below it).
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

#[derive(Clone)]
pub enum Location {
    /// A directory, `file:///DIR`.
    Dir(PathBuf),
    /// A base URL, `http(s)://…`, without a final `/`.
    Http { base: String, client: Arc<Http> },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({})", self.url())
    }
}

impl Location {
    /// Parses a cache URL: `file:///absolute/dir` or `http(s)://…`.
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
        Err(bad("expected file:///DIR or http(s)://HOST/PATH"))
    }

    /// The URL, for messages.
    pub fn url(&self) -> String {
        match self {
            Location::Dir(dir) => format!("file://{}", dir.display()),
            Location::Http { base, .. } => base.clone(),
        }
    }

    pub(super) fn io_err(
        &self,
        what: &'static str,
        file: impl AsRef<Path>,
    ) -> impl FnOnce(std::io::Error) -> CacheError {
        let cache = self.url();
        let file = file.as_ref().display().to_string();
        move |source| CacheError::Io {
            cache,
            what,
            file,
            source,
        }
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
                let own = RefCell::new(None);
                let result = client.get(&url, |body| {
                    consume(body).map_err(|e| match e {
                        // The body broke off: worth another attempt.
                        CacheError::Io {
                            what: "reading",
                            source,
                            ..
                        } => Failure::Transport(source.to_string()),
                        e => {
                            let text = e.to_string();
                            *own.borrow_mut() = Some(e);
                            Failure::Local(text)
                        }
                    })
                });
                match result {
                    Ok(t) => Ok(Some(t)),
                    Err(Failure::NotFound) => Ok(None),
                    Err(failure) => match own.into_inner() {
                        Some(e) => Err(e),
                        None => Err(CacheError::Http {
                            cache: self.url(),
                            file: rel.to_owned(),
                            failure: failure.to_string(),
                        }),
                    },
                }
            }
        }
    }

    /// The whole file `rel` (metadata, at most [`MAX_METADATA_BYTES`]), or
    /// `None` if the cache has no such file.
    pub(super) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, CacheError> {
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
}
