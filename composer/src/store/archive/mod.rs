//! Closure archives: a closure of store objects as one zstd-compressed tar
//! stream, for moving objects between stores.
//!
//! Layout of the (decompressed) tar stream:
//! 1. `imago-manifest.json`: a [`Manifest`] listing every object of the
//!    closure in dependency order (an object's references come before it):
//!    path, digest, size, references, deriver;
//! 2. each object in manifest order: `<hash>-<name>` itself (a file, a
//!    symlink, or a directory followed by its contents depth-first in name
//!    order, each directory before its entries).
//!
//! Import ([`Store::import`](super::Store::import)) trusts nothing: it
//! unpacks each object into a temp dir through a strict tar reader
//! ([`tar`]), rehashes it, recomputes its references, compares both with the
//! manifest, and registers all objects in one transaction only when every
//! one verified.

mod export;
mod import;
pub mod tar;
mod writer;

pub(crate) use import::Verified;
pub use import::{ImportBatch, ImportLimits, UnpackedArchive};

use super::digest::Blake3Digest;
use super::path::StorePath;
use std::collections::BTreeSet;

/// Name of the first entry of every closure archive.
pub const MANIFEST_NAME: &str = "imago-manifest.json";
/// Version written in (and required of) manifests.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub objects: Vec<ManifestObject>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestObject {
    pub path: StorePath,
    pub digest: Blake3Digest,
    /// Size of the canonical serialization.
    pub size: u64,
    pub references: BTreeSet<StorePath>,
    #[serde(default)]
    pub deriver: Option<String>,
}

/// Why a closure archive was refused. Every variant names the object or
/// entry concerned.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading the archive")]
    Read {
        #[source]
        source: std::io::Error,
    },
    #[error("writing")]
    Write {
        #[source]
        source: std::io::Error,
    },
    #[error("the archive is truncated at byte {offset} (while reading {what})")]
    Truncated { offset: u64, what: String },
    #[error("malformed tar at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    #[error("trailing garbage after the end of the archive at byte {offset}")]
    TrailingGarbage { offset: u64 },
    #[error("entry `{path}` at byte {offset}: {kind} entries are not allowed")]
    UnsupportedEntry {
        offset: u64,
        path: String,
        kind: String,
    },
    #[error("entry `{path}`: {reason}")]
    BadEntry { path: String, reason: String },
    #[error("the manifest is invalid: {reason}")]
    BadManifest { reason: String },
    #[error("object {path}: {reason}")]
    BadObject { path: StorePath, reason: String },
    #[error(
        "object {path}: hash mismatch: the manifest says {expected}, the contents hash to {found}"
    )]
    HashMismatch {
        path: StorePath,
        expected: Blake3Digest,
        found: Blake3Digest,
    },
    #[error(
        "object {path}: the manifest lies about its references: it lists [{claimed}] but the contents refer to [{found}]"
    )]
    LyingReferences {
        path: StorePath,
        claimed: String,
        found: String,
    },
    #[error("the archive exceeds the import limit of {limit} {what}")]
    LimitExceeded { what: &'static str, limit: u64 },
    #[error("refusing to write a binary archive to a terminal")]
    Terminal,
}

impl ArchiveError {
    /// The stable code of this error (docs/errors.md, E05xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            ArchiveError::Read { .. } | ArchiveError::Write { .. } => ARCHIVE_IO,
            ArchiveError::Truncated { .. }
            | ArchiveError::Malformed { .. }
            | ArchiveError::TrailingGarbage { .. }
            | ArchiveError::UnsupportedEntry { .. }
            | ArchiveError::BadEntry { .. }
            | ArchiveError::BadManifest { .. }
            | ArchiveError::LimitExceeded { .. } => ARCHIVE_MALFORMED,
            ArchiveError::BadObject { .. }
            | ArchiveError::HashMismatch { .. }
            | ArchiveError::LyingReferences { .. } => ARCHIVE_MISMATCH,
            ArchiveError::Terminal => ARCHIVE_TERMINAL,
        }
    }
}
