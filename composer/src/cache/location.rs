//! Where a cache is: `file:///DIR` (a directory of this machine).

use super::CacheError;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory, `file:///DIR`.
    Dir(PathBuf),
}

impl Location {
    /// Parses a cache URL: `file:///absolute/dir`.
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
        Err(bad("expected file:///DIR"))
    }

    /// The URL, for messages.
    pub fn url(&self) -> String {
        match self {
            Location::Dir(dir) => format!("file://{}", dir.display()),
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

    /// The whole file `rel` (a relative name of the layout), or `None` if
    /// the cache has no such file.
    pub(super) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            Location::Dir(dir) => match fs::read(dir.join(rel)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io_err("reading", rel)(e)),
            },
        }
    }

    /// A reader of the file `rel`, or `None` if the cache has no such file.
    pub(super) fn open(&self, rel: &str) -> Result<Option<Box<dyn Read>>, CacheError> {
        match self {
            Location::Dir(dir) => match File::open(dir.join(rel)) {
                Ok(f) => Ok(Some(Box::new(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io_err("opening", rel)(e)),
            },
        }
    }
}
