//! Binary caches: store objects signed with ed25519 keys, laid out as
//! static files that any web server can serve (docs/cache.md).
//!
//! ```text
//! <cache>/imago-cache.json             {"version":1,"store":"/imago/store"}
//! <cache>/objects/<hash>.json          an object's metadata and signatures
//! <cache>/archives/<blake3>.tar.zst    its closure archive (the object alone)
//! <cache>/steps/<key hex>.json         a step record
//! <cache>/sha256/<hex>                 a .deb a lock names, by its SHA-256
//! ```
//!
//! A cache is a directory (`file:///DIR`), a web server's copy of one
//! (`http(s)://…`, written with PUT where the server allows it), or an
//! OCI registry's repository (`oci://HOST/REPO`), where each file of the
//! layout is a manifest or a blob ([`oci`]).
//!
//! [`push`] copies closures into a cache, signing them; [`pull`] copies
//! them into a store, accepting only objects signed by a trusted key and
//! verifying each as `closure import` does, and registers every object in
//! one transaction or none. [`push_debs`] adds the .debs a lock names
//! (`<cache>/sha256/<hex>`, a package cache's layout), so that a cache is
//! a package source too.

mod ahead;
mod debs;
mod dir;
pub mod info;
pub mod keys;
mod location;
mod oci;
mod progress;
mod pull;
mod push;
mod put;
pub mod steps;
mod stream;
mod transfer;

pub use debs::push_debs;
pub use info::{Distrust, ObjectInfo, fingerprint};
pub use keys::{PublicKey, SecretKey};
pub use location::Location;
pub use progress::Progress;
pub use pull::pull;
pub use push::push;
pub use steps::{StepRecord, fetch_output, lookup, step_fingerprint};

use crate::store::{Blake3Digest, StoreError, StorePath};
use std::path::PathBuf;

/// The name of the file that marks a directory as a cache.
pub const CACHE_INFO_NAME: &str = "imago-cache.json";

/// The largest metadata file a cache may serve (an object with a million
/// references stays well below it).
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

/// An I/O error of the cache `cache`: `what` (creating, reading…) its
/// file `file`.
pub(crate) fn io_error(
    cache: String,
    what: &'static str,
    file: impl AsRef<std::path::Path>,
) -> impl FnOnce(std::io::Error) -> CacheError {
    let file = file.as_ref().display().to_string();
    move |source| CacheError::Io {
        cache,
        what,
        file,
        source,
    }
}

/// The metadata of `path` in `cache`, checked as a copy from the cache
/// checks it (its signatures are not: the caller decides whom it trusts);
/// `None` when the cache does not have the object.
pub fn object_info(cache: &Location, path: &StorePath) -> Result<Option<ObjectInfo>, CacheError> {
    match cache.read(&info::info_name(path))? {
        None => Ok(None),
        Some(bytes) => pull::parse_info(cache, path, &bytes).map(Some),
    }
}

/// What a copy did, for printing and `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Objects that travelled, in the order they were copied.
    pub copied: Vec<StorePath>,
    /// Bytes of the archives that travelled (compressed).
    pub bytes_copied: u64,
    /// Objects of the closures the destination already had.
    pub already_there: usize,
    /// Signatures added to objects the cache already had.
    pub signatures_added: usize,
    /// Step records written or signed (`imago copy --to`): the steps the
    /// store's build cache names an object of the closures the output of.
    pub step_records: usize,
    /// .debs a lock names that travelled (`imago copy --to … --lock`).
    pub debs_copied: usize,
    /// Their bytes.
    pub deb_bytes_copied: u64,
    /// .debs the cache had already.
    pub debs_already_there: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("`{url}` is not a cache location: {reason}")]
    BadLocation { url: String, reason: String },
    #[error("{path}: {source}")]
    KeyIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a key file: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("`{name}` is not a key name: {reason}")]
    BadKeyName { name: String, reason: String },
    #[error("{path} exists already; refusing to overwrite a key")]
    KeyExists { path: PathBuf },
    #[error("no random bytes for a new key: {reason}")]
    Random { reason: String },
    #[error("cache {cache}: {what} {file}")]
    Io {
        cache: String,
        what: &'static str,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cache {cache}: fetching {file}: {failure}")]
    Http {
        cache: String,
        file: String,
        failure: String,
    },
    #[error("cache {cache}: storing {url}: {failure}")]
    HttpWrite {
        cache: String,
        url: String,
        failure: String,
    },
    #[error(
        "cache {cache}: the server refuses to store {url} (HTTP {status}); an HTTP cache is written with PUT: allow it there, or write to a file:///DIR cache and publish that"
    )]
    WriteRefused {
        cache: String,
        url: String,
        status: u16,
    },
    #[error("cache {cache}: package {package} not sent")]
    Package {
        cache: String,
        package: String,
        #[source]
        source: Box<crate::debian::fetch::FetchError>,
    },
    #[error("cache {cache}: {what}: {failure}")]
    RegistryIo {
        cache: String,
        what: String,
        failure: String,
    },
    #[error("cache {cache}: {what}: the registry answered {answer}")]
    Registry {
        cache: String,
        what: String,
        answer: String,
    },
    #[error("cache {cache}: {what} is not what the registry says: {reason}")]
    BadBlob {
        cache: String,
        what: String,
        reason: String,
    },
    #[error("cache {cache} has no object {path}")]
    Missing { cache: String, path: StorePath },
    #[error("object {path} in cache {cache}: {reason}")]
    Untrusted {
        path: StorePath,
        cache: String,
        reason: Distrust,
    },
    #[error("step {key} in cache {cache}: its record is not trusted: {reason}")]
    UntrustedStep {
        key: Blake3Digest,
        cache: String,
        reason: Distrust,
    },
    #[error("step {key} in cache {cache}: bad step record: {reason}")]
    BadStepRecord {
        key: Blake3Digest,
        cache: String,
        reason: String,
    },
    #[error("object {path} in cache {cache}: bad metadata: {reason}")]
    BadInfo {
        path: StorePath,
        cache: String,
        reason: String,
    },
    #[error("object {path} in cache {cache}: its archive {file} {reason}")]
    BadArchive {
        path: StorePath,
        cache: String,
        file: String,
        reason: String,
    },
    #[error("object {path} in cache {cache}: refused")]
    Refused {
        path: StorePath,
        cache: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("copying to cache {cache}")]
    Store {
        cache: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl CacheError {
    /// The object the error is about, when it is about one.
    pub fn object(&self) -> Option<&StorePath> {
        match self {
            CacheError::Missing { path, .. }
            | CacheError::Untrusted { path, .. }
            | CacheError::BadInfo { path, .. }
            | CacheError::BadArchive { path, .. }
            | CacheError::Refused { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The stable code of this error (docs/errors.md, E10xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            CacheError::BadLocation { .. } => CACHE_LOCATION,
            CacheError::KeyIo { .. }
            | CacheError::BadKey { .. }
            | CacheError::BadKeyName { .. }
            | CacheError::Random { .. } => CACHE_KEY,
            CacheError::KeyExists { .. } => CACHE_KEY_EXISTS,
            CacheError::Io { .. }
            | CacheError::Http { .. }
            | CacheError::HttpWrite { .. }
            | CacheError::RegistryIo { .. } => CACHE_IO,
            CacheError::WriteRefused { .. } => CACHE_WRITE_REFUSED,
            CacheError::Package { source, .. } => source.code(),
            CacheError::Registry { .. } => CACHE_REGISTRY,
            CacheError::Missing { .. } => CACHE_MISSING,
            CacheError::Untrusted { .. } | CacheError::UntrustedStep { .. } => CACHE_UNTRUSTED,
            CacheError::BadInfo { .. }
            | CacheError::BadArchive { .. }
            | CacheError::BadStepRecord { .. }
            | CacheError::BadBlob { .. } => CACHE_BAD_OBJECT,
            CacheError::Refused { source, .. } | CacheError::Store { source, .. } => source.code(),
        }
    }
}
