//! Errors of the generations helpers: each names the path or value at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GenerationsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a profile directory (no such directory)")]
    NoProfile { path: PathBuf },
    #[error("{path} is not an EFI system partition (no loader/ directory)")]
    NoEsp { path: PathBuf },
    #[error("generation {number} does not exist in {profile}")]
    NoSuchGeneration { number: u32, profile: PathBuf },
    #[error(
        "generation {number} is the current generation of {profile}; roll back or switch first"
    )]
    DeleteCurrent { number: u32, profile: PathBuf },
    #[error("{profile} has no current generation (`system` is missing or dangling)")]
    NoCurrent { profile: PathBuf },
    #[error("generation {current} is the oldest in {profile}; there is nothing to roll back to")]
    NothingOlder { current: u32, profile: PathBuf },
    #[error("invalid age `{text}`: expected a number followed by s, m, h, d or w (e.g. 30d)")]
    BadAge { text: String },
}

impl GenerationsError {
    /// The stable code of this error (docs/errors.md, E09xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            GenerationsError::Read { .. } | GenerationsError::Write { .. } => GENERATIONS_IO,
            GenerationsError::NoProfile { .. } => NO_PROFILE,
            GenerationsError::NoEsp { .. } => NO_ESP,
            GenerationsError::NoSuchGeneration { .. } => NO_SUCH_GENERATION,
            GenerationsError::DeleteCurrent { .. } => DELETE_CURRENT,
            GenerationsError::NoCurrent { .. } => NO_CURRENT,
            GenerationsError::NothingOlder { .. } => NOTHING_OLDER,
            GenerationsError::BadAge { .. } => BAD_AGE,
        }
    }
}
