//! Verification: rehash every valid object and compare with the digest
//! recorded when it was added. A missing object or a single flipped byte is
//! named. Repair needs a source for the object's bytes: a closure archive
//! ([`Store::repair_from`], `repair.rs`), or the build that made it
//! (`imago build --repair`, [`Store::repair_with`]). Without one, `repair`
//! reports "no source to repair from" for each problem instead of
//! pretending.

use super::Store;
use super::canon::{self, Mode};
use super::db;
use super::digest::Blake3Digest;
use super::error::{Result, StoreError};
use super::path::StorePath;

/// The note of a problem `repair` had nothing to restore from.
pub const NO_SOURCE: &str = "no source to repair from: pass --from ARCHIVE, a closure export holding it, or rebuild it with `imago build --repair`";

/// What is wrong with one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// The object's files are gone.
    Missing,
    /// The contents changed.
    HashMismatch {
        expected: Blake3Digest,
        found: Blake3Digest,
    },
    /// The object could not be read (a file type or permission problem).
    Unreadable { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyProblem {
    pub path: StorePath,
    pub problem: Problem,
    /// Whether `--repair` restored it.
    pub repaired: bool,
    /// What repair did or why it could not.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub checked: usize,
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.iter().all(|p| p.repaired)
    }
}

impl Store {
    /// Rehashes every valid object; with `repair`, tries to restore the
    /// broken ones.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport> {
        let objects = db::all_objects(&self.conn()).map_err(db::db_err(&self.db_path))?;
        let mut report = VerifyReport {
            checked: objects.len(),
            problems: Vec::new(),
        };
        for (path, expected) in objects {
            let Some(problem) = self.check_against(&path, expected) else {
                continue;
            };
            let note = repair.then(|| NO_SOURCE.to_owned());
            report.problems.push(VerifyProblem {
                path,
                problem,
                repaired: false,
                note,
            });
        }
        Ok(report)
    }

    /// Rehashes one valid object: `None` if it still holds what was
    /// registered. An object that is not valid is an error.
    pub fn check_object(&self, path: &StorePath) -> Result<Option<Problem>> {
        let info = self
            .info(path)?
            .ok_or_else(|| StoreError::NotValid { path: path.clone() })?;
        Ok(self.check_against(path, info.digest))
    }

    fn check_against(&self, path: &StorePath, expected: Blake3Digest) -> Option<Problem> {
        match canon::hash_tree(&self.physical(path), Mode::ReadOnly, &[]) {
            Ok(h) if h.digest == expected => None,
            Ok(h) => Some(Problem::HashMismatch {
                expected,
                found: h.digest,
            }),
            Err(StoreError::MissingOutput { .. }) => Some(Problem::Missing),
            Err(e) => Some(Problem::Unreadable {
                error: format!("{e}"),
            }),
        }
    }
}
