//! What fetching can fail with. A package that no source could deliver is
//! reported with every source tried and its answer, so the user sees at a
//! glance whether the file is gone, the network is down, or a source serves
//! bad bytes, and what command moves the lock forward.

use std::fmt;
use std::io;
use std::path::PathBuf;

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
    #[error("{}", unavailable_text(.missing, .lock_command.as_deref()))]
    Unavailable {
        missing: Vec<Missing>,
        /// `imago lock FILE...`, to which the hint adds `--update NAMES`.
        lock_command: Option<String>,
    },
    #[error(
        "{package}={version} is not in the download cache {cache} (a build fetches every package before it starts)"
    )]
    NotCached {
        package: String,
        version: String,
        cache: PathBuf,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// The stable code of this error (docs/errors.md, E06xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            FetchError::HashMismatch { .. } | FetchError::SizeMismatch { .. } => FETCH_MISMATCH,
            FetchError::Offline { .. } | FetchError::NotCached { .. } => FETCH_OFFLINE,
            FetchError::Unavailable { .. } => FETCH_UNAVAILABLE,
            FetchError::Io { .. } => FETCH_IO,
        }
    }
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FetchError {
    let what = what.into();
    move |source| FetchError::Io { what, source }
}

/// A package no source delivered, with each source's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub attempts: Vec<Attempt>,
}

/// One source asked for one file, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `package cache`, `mirror` or `snapshot`.
    pub source: &'static str,
    /// The URL or path asked.
    pub location: String,
    pub failure: Failure,
}

/// Why a source did not deliver a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 404 or 410, or no such file in a directory.
    NotFound,
    /// Any other HTTP status (after retries for 5xx and 429).
    Status(u16),
    /// 206 Partial Content answering a request for the whole file.
    Partial,
    /// The body ended before the lock's size.
    Truncated { expected: u64, got: u64 },
    /// The body is longer than the lock's size.
    TooLong { expected: u64 },
    /// The bytes' SHA-256 is not the lock's.
    DigestMismatch { expected: String, actual: String },
    /// Timeouts, refused or reset connections, redirect loops, TLS errors.
    Transport(String),
    /// Reading a local source or writing the download failed (a full disk):
    /// no other source would do better, so fetching stops.
    Local(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotFound => write!(f, "not found"),
            Failure::Status(code) => write!(f, "HTTP {code}"),
            Failure::Partial => write!(f, "partial content (206) for a whole-file request"),
            Failure::Truncated { expected, got } => {
                write!(f, "truncated: {got} of {expected} bytes")
            }
            Failure::TooLong { expected } => {
                write!(f, "longer than the locked size of {expected} bytes")
            }
            Failure::DigestMismatch { expected, actual } => {
                write!(f, "hash mismatch: expected sha256 {expected}, got {actual}")
            }
            Failure::Transport(text) | Failure::Local(text) => f.write_str(text),
        }
    }
}

fn unavailable_text(missing: &[Missing], lock_command: Option<&str>) -> String {
    let mut out = format!(
        "{} locked package{} could not be fetched from any source:",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" }
    );
    for m in missing {
        out.push_str(&format!("\n  {} {} ({})", m.name, m.version, m.filename));
        if m.attempts.is_empty() {
            out.push_str("\n    no source is configured for it");
        }
        for a in &m.attempts {
            out.push_str(&format!("\n    {} {}: {}", a.source, a.location, a.failure));
        }
    }
    let names: Vec<&str> = missing.iter().map(|m| m.name.as_str()).collect();
    let command = format!(
        "{} --update {}",
        lock_command.unwrap_or("imago lock FILE..."),
        names.join(" ")
    );
    let all_gone = missing
        .iter()
        .flat_map(|m| &m.attempts)
        .all(|a| a.failure == Failure::NotFound);
    if all_gone {
        out.push_str(&format!(
            "\nNo source has these versions any more. Move them to current ones with:\n  {command}\nor add a package cache that still holds them (--package-cache URL; see docs/packages.md)."
        ));
    } else {
        out.push_str(&format!(
            "\nCheck the network and the sources above. If the versions are gone, move them to current ones with:\n  {command}"
        ));
    }
    out
}
