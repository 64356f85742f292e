//! [`StoreError`]: everything the store can fail with. Each variant keeps its
//! cause as a `#[source]` and names the path or object concerned.

use super::digest::Blake3Digest;
use super::path::{StorePath, StorePathError};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store database {}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store database {} has schema version {found}; this imago understands up to {supported}", path.display())]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(transparent)]
    InvalidPath(#[from] StorePathError),
    #[error("{}: unsupported file type ({kind}); store objects hold only regular files, directories and symlinks", path.display())]
    UnsupportedFileType { path: PathBuf, kind: &'static str },
    #[error("{}: file name {name:?} is not allowed in a store object ({reason})", path.display())]
    BadFileName {
        path: PathBuf,
        name: String,
        reason: &'static str,
    },
    #[error("{}: nothing was written at the build output", path.display())]
    MissingOutput { path: PathBuf },
    #[error("{}: directories nested deeper than {limit} levels", path.display())]
    TooDeep { path: PathBuf, limit: usize },
    #[error("{path} is not a valid object in this store")]
    NotValid { path: StorePath },
    #[error(
        "rebuilding {path} gave different contents ({found}, recorded {expected}); the builder is not reproducible, so the broken copy stays: restore it with `imago store verify --repair --from ARCHIVE`"
    )]
    RebuildDiffers {
        path: StorePath,
        expected: Blake3Digest,
        found: Blake3Digest,
    },
    #[error("hash mismatch for {path}: expected {expected}, found {found}")]
    HashMismatch {
        path: StorePath,
        expected: Blake3Digest,
        found: Blake3Digest,
    },
    #[error(
        "cannot determine the default store directory (neither $XDG_DATA_HOME nor $HOME is set); pass --store DIR"
    )]
    NoDefaultDir,
    #[error(
        "{} holds store objects (such as {example}) but no Imago store database (.imago/db.sqlite): it looks like a machine's store or a copy of one. Imago would take its objects for crash leftovers and delete them, so it refuses to use it; pass --store with another directory"
    , dir.display())]
    Unmanaged { dir: PathBuf, example: String },
    #[error("{}: {reason}", link.display())]
    BadRoot { link: PathBuf, reason: String },
    #[error(transparent)]
    Archive(#[from] super::archive::ArchiveError),
    #[error("{} was not registered: the batch it was committed with failed: {cause}", path.as_ref().map_or("an object", StorePath::as_str))]
    Batch {
        path: Option<StorePath>,
        cause: String,
    },
    #[error("injected fault at `{point}`")]
    InjectedFault {
        point: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// The stable code of this error (docs/errors.md, E05xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            StoreError::Io { .. } | StoreError::InjectedFault { .. } => STORE_IO,
            StoreError::Db { .. } => STORE_DB,
            StoreError::SchemaVersion { .. } => STORE_SCHEMA,
            StoreError::InvalidPath(e) => e.code(),
            StoreError::UnsupportedFileType { .. }
            | StoreError::BadFileName { .. }
            | StoreError::TooDeep { .. } => STORE_REFUSED_FILE,
            StoreError::MissingOutput { .. } => STORE_NO_OUTPUT,
            StoreError::NotValid { .. } => STORE_NOT_VALID,
            StoreError::RebuildDiffers { .. } => STORE_REBUILD_DIFFERS,
            StoreError::HashMismatch { .. } => STORE_CORRUPT,
            StoreError::NoDefaultDir => STORE_NO_DEFAULT_DIR,
            StoreError::Unmanaged { .. } => STORE_UNMANAGED,
            StoreError::BadRoot { .. } => STORE_BAD_ROOT,
            StoreError::Archive(e) => e.code(),
            StoreError::Batch { .. } => STORE_BATCH,
        }
    }
}

impl StoreError {
    /// Wraps an I/O error with what was being done and to which path.
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io {
            context,
            path,
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
