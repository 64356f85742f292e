//! The download cache: `<cache>/<name>_<version>_<arch>.deb` (epoch colon
//! escaped as `%3a`, as apt names files), filled by hash from an ordered
//! list of sources and never through apt's index, so a lock keeps building
//! after Debian's index has moved on.
//!
//! - `sources.rs`: where a file can come from, in order (package caches
//!   laid out by SHA-256, the archive's mirrors, snapshot.debian.org);
//! - `http.rs`: the HTTP client (proxies, timeouts, retries);
//! - `download.rs`: one file from the first source that delivers the
//!   locked bytes;
//! - `inflight.rs`: files still on their way, which a build waits for, so
//!   unpacking overlaps downloading ([`Background`]);
//! - `check.rs`: asking every source whether each locked file is there
//!   (`imago lock --check`);
//! - `error.rs`: errors that name every source tried and its answer.
//!
//! Verification policy:
//! - a download streams into a temporary file inside the cache while its
//!   size and SHA-256 are computed; it is renamed into place only when both
//!   are the lock's. Bytes that fail are deleted and the next source is
//!   tried: the cache never holds a file that failed its digest;
//! - a file already cached is checked by size here (cheap), and its bytes
//!   are hashed again as they are unpacked ([`Sha256Reader`] in the `deb`
//!   builder), so a file corrupted in the cache fails the build instead of
//!   producing an object — the digest is checked at the moment of use at no
//!   extra read; a cached file of the wrong size is moved to
//!   `<cache>/rejected/` and fetched again;
//! - with every file cached, no network is used; `offline` turns a missing
//!   file into an error naming it.

mod check;
mod download;
pub mod error;
pub mod http;
pub mod inflight;
mod resolve;
pub mod sources;

pub use check::{Availability, CheckReport, check};
pub use error::{Attempt, Failure, FetchError, Missing};
pub use http::{Http, HttpSettings};
pub use sources::{Hashed, HashedSource, Location, Sources};

use super::lock::LockEntry;
use download::NotFetched;
use error::io_err;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where and how fetching happens.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub cache_dir: PathBuf,
    pub sources: Sources,
    pub http: HttpSettings,
    pub offline: bool,
    /// Show a progress bar on a terminal and a summary line on stderr.
    pub progress: bool,
    /// `imago lock FILE...` for the hint in errors about rotted packages.
    pub lock_command: Option<String>,
}

impl FetchOptions {
    /// Fetching into `cache_dir` from `sources` with default HTTP settings,
    /// quietly.
    pub fn new(cache_dir: PathBuf, sources: Sources) -> FetchOptions {
        FetchOptions {
            cache_dir,
            sources,
            http: HttpSettings::default(),
            offline: false,
            progress: false,
            lock_command: None,
        }
    }
}

/// The cache path of a lock entry.
pub fn cache_path(cache_dir: &Path, entry: &LockEntry) -> PathBuf {
    cache_dir.join(entry.deb_file_name())
}

/// Makes sure every package is in the cache, fetching the missing ones in
/// parallel. Returns their cache paths, in the order given.
pub fn ensure_cached(
    entries: &[LockEntry],
    opts: &FetchOptions,
) -> Result<Vec<PathBuf>, FetchError> {
    Background::start(entries, opts)?.finish()?;
    Ok(entries
        .iter()
        .map(|e| cache_path(&opts.cache_dir, e))
        .collect())
}

/// A fetch running beside the build: started before scheduling, so
/// packages unpack while others still download (the `deb` builder waits in
/// [`inflight::wait`] for a file still on its way).
pub struct Background {
    thread: Option<std::thread::JoinHandle<Result<(), FetchError>>>,
    cancel: Arc<AtomicBool>,
}

impl Background {
    /// Checks what the cache has (synchronously: an offline build with a
    /// file missing fails here) and starts fetching the rest.
    pub fn start(entries: &[LockEntry], opts: &FetchOptions) -> Result<Background, FetchError> {
        let missing = missing_entries(entries, opts)?;
        let cancel = Arc::new(AtomicBool::new(false));
        if missing.is_empty() {
            return Ok(Background {
                thread: None,
                cancel,
            });
        }
        let promised: Vec<PathBuf> = missing
            .iter()
            .map(|e| cache_path(&opts.cache_dir, e))
            .collect();
        inflight::promise(promised.iter().cloned());
        // Whatever happens to the thread — an error, a panic, or no thread
        // at all — nobody may wait for these files any more afterwards.
        let settled = inflight::SettleOnDrop(promised);
        let (opts, stop) = (opts.clone(), cancel.clone());
        let thread = std::thread::Builder::new()
            .name("imago-fetch".into())
            .spawn(move || {
                let _settled = settled;
                fetch_all(&missing, &opts, &stop)
            })
            .map_err(io_err("starting the download thread"))?;
        Ok(Background {
            thread: Some(thread),
            cancel,
        })
    }

    /// Stops starting new downloads (the build failed anyway).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Waits for the fetch to end and returns its outcome.
    pub fn finish(mut self) -> Result<(), FetchError> {
        match self.thread.take() {
            None => Ok(()),
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(FetchError::Io {
                    what: "fetching Debian packages".into(),
                    source: io::Error::other("the download thread panicked"),
                })
            }),
        }
    }
}

/// The entries whose file the cache lacks (largest first, each once); a
/// cached file of the wrong size is moved aside and counts as missing.
fn missing_entries(
    entries: &[LockEntry],
    opts: &FetchOptions,
) -> Result<Vec<LockEntry>, FetchError> {
    let cache = &opts.cache_dir;
    std::fs::create_dir_all(cache).map_err(io_err(format!("creating {}", cache.display())))?;
    let mut missing: Vec<LockEntry> = Vec::new();
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
                missing.push(entry.clone());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(entry.clone()),
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }
    missing.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    missing.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    if opts.offline && !missing.is_empty() {
        return Err(FetchError::Offline {
            cache: cache.clone(),
            missing: missing
                .iter()
                .map(|e| format!("{}={}", e.name, e.version))
                .collect(),
        });
    }
    Ok(missing)
}

/// Fetches `missing` (largest first) with a few workers and one progress
/// bar for the bytes of all of them; `cancel` stops it between files.
fn fetch_all(
    missing: &[LockEntry],
    opts: &FetchOptions,
    cancel: &AtomicBool,
) -> Result<(), FetchError> {
    let http = Http::new(opts.http.clone()).map_err(|e| FetchError::Io {
        what: "configuring HTTP".into(),
        source: io::Error::other(e),
    })?;
    let total: u64 = missing.iter().map(|e| e.size).sum();
    let bar = progress_bar(opts.progress, total, missing.len());
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failures: Mutex<Vec<NotFetched>> = Mutex::default();
    let workers = opts.http.parallel.clamp(1, missing.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = missing.get(i) else { break };
                    let candidates = opts.sources.candidates(entry);
                    let dest = cache_path(&opts.cache_dir, entry);
                    let result = download::fetch_one(
                        &http,
                        entry,
                        &candidates,
                        &opts.cache_dir,
                        &dest,
                        &bar,
                    );
                    inflight::settle(&dest);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    bar.set_message(format!("{n}/{} packages", missing.len()));
                    if let Err(e) = result {
                        let local = matches!(e, NotFetched::Local(_));
                        failures
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(e);
                        if local {
                            // A full disk fails every other download too.
                            cancel.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let failures = failures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(NotFetched::Local(text)) =
        failures.iter().find(|f| matches!(f, NotFetched::Local(_)))
    {
        return Err(FetchError::Io {
            what: "fetching Debian packages".into(),
            source: io::Error::other(text.clone()),
        });
    }
    let mut unavailable: Vec<Missing> = failures
        .into_iter()
        .filter_map(|f| match f {
            NotFetched::Missing(m) => Some(m),
            NotFetched::Local(_) => None,
        })
        .collect();
    if !unavailable.is_empty() {
        unavailable.sort_by(|a, b| a.name.cmp(&b.name));
        return Err(FetchError::Unavailable {
            missing: unavailable,
            lock_command: opts.lock_command.clone(),
        });
    }
    if opts.progress {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "fetched {} package{} ({:.1} MB) in {secs:.1}s",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            total as f64 / 1e6
        );
    }
    Ok(())
}

fn progress_bar(show: bool, total: u64, packages: usize) -> ProgressBar {
    if !show || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "fetching [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(format!("0/{packages} packages"));
    bar
}

/// Checks a file's size and SHA-256 against its lock entry; on mismatch the
/// file is moved to `<cache>/rejected/`.
pub fn verify_file(path: &Path, entry: &LockEntry, cache: &Path) -> Result<(), FetchError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FetchError::NotCached {
                package: entry.name.clone(),
                version: entry.version.clone(),
                cache: cache.to_path_buf(),
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
