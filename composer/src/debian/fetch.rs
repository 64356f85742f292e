//! The download cache: `<cache>/<name>_<version>_<arch>.deb` (epoch colon
//! escaped as `%3a`, as apt does), filled by `apt-get download` through the
//! private apt and verified against the lock before a file enters it.
//!
//! Verification policy:
//! - a download lands in a temporary directory inside the cache; its size
//!   and SHA-256 are compared with the lock *before* it is renamed into
//!   place. A mismatch moves the file to `<cache>/rejected/` (never used)
//!   and is an error naming the package and both digests;
//! - a file already cached is checked by size here (cheap), and its bytes
//!   are hashed again as they are unpacked ([`Sha256Reader`] in the `deb`
//!   builder), so a file corrupted in the cache fails the build instead of
//!   producing an object — the digest is checked at the moment of use at no
//!   extra read;
//! - with every file cached, no apt process runs and no network is used;
//!   `offline` turns a missing file into an error naming it.

use super::apt::{AptEnv, AptError};
use super::lock::LockEntry;
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// How many packages one `apt-get download` call fetches.
const BATCH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "hash mismatch for package `{package}` ({file}): expected sha256 {expected}, got {actual}; moved to {rejected}"
    )]
    HashMismatch {
        package: String,
        file: String,
        expected: String,
        actual: String,
        rejected: PathBuf,
    },
    #[error(
        "size mismatch for package `{package}`: expected {expected} bytes, got {actual}; moved to {rejected}"
    )]
    SizeMismatch {
        package: String,
        expected: u64,
        actual: u64,
        rejected: PathBuf,
    },
    #[error("offline, and these packages are not in the cache {cache}: {}", missing.join(", "))]
    Offline {
        cache: PathBuf,
        missing: Vec<String>,
    },
    #[error("`apt-get download` did not produce {file} for package `{package}`")]
    NotDownloaded { package: String, file: String },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("downloading packages")]
    Apt(#[from] AptError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FetchError {
    let what = what.into();
    move |source| FetchError::Io { what, source }
}

/// Where fetching happens.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub cache_dir: PathBuf,
    /// The private apt directory (see `apt.rs`).
    pub apt_dir: PathBuf,
    pub offline: bool,
}

/// The cache path of a lock entry.
pub fn cache_path(cache_dir: &Path, entry: &LockEntry) -> PathBuf {
    cache_dir.join(entry.deb_file_name())
}

/// Makes sure every package is in the cache, downloading the missing ones
/// in batches. Returns their cache paths, in the order given.
pub fn ensure_cached(
    entries: &[LockEntry],
    opts: &FetchOptions,
) -> Result<Vec<PathBuf>, FetchError> {
    let cache = &opts.cache_dir;
    std::fs::create_dir_all(cache).map_err(io_err(format!("creating {}", cache.display())))?;
    let mut missing = Vec::new();
    for entry in entries {
        let path = cache_path(cache, entry);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == entry.size => {}
            Ok(meta) => {
                // Wrong size or not a file: never use it.
                let rejected = reject(cache, &path)?;
                if !meta.is_file() || opts.offline {
                    return Err(FetchError::SizeMismatch {
                        package: entry.name.clone(),
                        expected: entry.size,
                        actual: meta.len(),
                        rejected,
                    });
                }
                missing.push(entry);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(entry),
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }
    if !missing.is_empty() {
        if opts.offline {
            return Err(FetchError::Offline {
                cache: cache.clone(),
                missing: missing
                    .iter()
                    .map(|e| format!("{}={}", e.name, e.version))
                    .collect(),
            });
        }
        let apt = AptEnv::open(&opts.apt_dir)?;
        apt.ensure_lists()?;
        for batch in missing.chunks(BATCH) {
            download_batch(&apt, cache, batch)?;
        }
    }
    Ok(entries.iter().map(|e| cache_path(cache, e)).collect())
}

fn download_batch(apt: &AptEnv, cache: &Path, batch: &[&LockEntry]) -> Result<(), FetchError> {
    let tmp = tempfile::Builder::new()
        .prefix(".download.")
        .tempdir_in(cache)
        .map_err(io_err(format!(
            "creating a temporary directory in {}",
            cache.display()
        )))?;
    apt.download(batch, tmp.path())?;
    let mut first_error = None;
    for entry in batch {
        let file = entry.deb_file_name();
        let downloaded = tmp.path().join(&file);
        if let Err(e) = verify_file(&downloaded, entry, cache) {
            first_error.get_or_insert(e);
            continue;
        }
        let dest = cache.join(&file);
        std::fs::rename(&downloaded, &dest)
            .map_err(io_err(format!("moving {file} into {}", cache.display())))?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Checks a file's size and SHA-256 against its lock entry; on mismatch the
/// file is moved to `<cache>/rejected/`.
pub fn verify_file(path: &Path, entry: &LockEntry, cache: &Path) -> Result<(), FetchError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FetchError::NotDownloaded {
                package: entry.name.clone(),
                file: entry.deb_file_name(),
            });
        }
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    if !meta.is_file() || meta.len() != entry.size {
        let rejected = reject(cache, path)?;
        return Err(FetchError::SizeMismatch {
            package: entry.name.clone(),
            expected: entry.size,
            actual: meta.len(),
            rejected,
        });
    }
    let actual = sha256_file(path).map_err(io_err(format!("hashing {}", path.display())))?;
    if actual != entry.sha256 {
        let rejected = reject(cache, path)?;
        return Err(FetchError::HashMismatch {
            package: entry.name.clone(),
            file: entry.deb_file_name(),
            expected: entry.sha256.clone(),
            actual,
            rejected,
        });
    }
    Ok(())
}

/// Moves a bad file to `<cache>/rejected/<name>` (replacing an older reject
/// of the same name) and returns where it went.
pub fn reject(cache: &Path, path: &Path) -> Result<PathBuf, FetchError> {
    let dir = cache.join("rejected");
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let name = path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("unnamed"));
    let dest = dir.join(name);
    std::fs::rename(path, &dest).map_err(io_err(format!(
        "moving {} to {}",
        path.display(),
        dest.display()
    )))?;
    Ok(dest)
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut reader = Sha256Reader::new(std::fs::File::open(path)?);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.hex_digest())
}

/// A reader that hashes everything read through it.
pub struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Sha256Reader<R> {
    pub fn new(inner: R) -> Self {
        Sha256Reader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reads the rest of the input (so the digest covers the whole file).
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    pub fn hex_digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}
