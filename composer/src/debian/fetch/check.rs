//! `imago lock --check`: asks the sources whether each locked file is still
//! there, with HEAD requests (no downloads), so a scheduled job learns that
//! a lock is rotting before a fresh machine fails to build it.
//!
//! Every package is asked of the package caches and the mirrors; the
//! snapshot archive is asked only for packages that none of them has, which
//! keeps the check quick and spares snapshot.debian.org.

use super::error::{Attempt, Failure};
use super::http::Http;
use super::sources::{Candidate, Location, MIRROR, SNAPSHOT, Sources};
use crate::debian::lock::LockEntry;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a locked file can still be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Availability {
    /// A mirror of its archive has it.
    Mirror,
    /// No mirror has it any more, but a package cache or the snapshot
    /// archive does: builds work, the lock is rotting.
    Elsewhere,
    /// No source has it: a build on a fresh machine fails.
    Nowhere,
}

/// The answer for one package.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub name: String,
    pub version: String,
    pub availability: Availability,
    /// The sources that have it.
    pub found: Vec<(&'static str, String)>,
    /// The sources that did not, with their answer.
    pub failed: Vec<Attempt>,
}

/// Checks every entry against `sources`, `parallel` at a time.
pub fn check(entries: &[LockEntry], sources: &Sources, http: &Http) -> Vec<CheckReport> {
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<CheckReport>> = Mutex::default();
    let workers = http.settings().parallel.max(1).min(entries.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let report = check_one(entry, sources, http);
                    reports
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(report);
                }
            });
        }
    });
    let mut reports = reports
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    reports
}

fn check_one(entry: &LockEntry, sources: &Sources, http: &Http) -> CheckReport {
    let mut report = CheckReport {
        name: entry.name.clone(),
        version: entry.version.clone(),
        availability: Availability::Nowhere,
        found: Vec::new(),
        failed: Vec::new(),
    };
    let candidates = sources.candidates(entry);
    let (snapshot, first): (Vec<&Candidate>, Vec<&Candidate>) =
        candidates.iter().partition(|c| c.source == SNAPSHOT);
    for candidate in first {
        ask(entry, candidate, http, &mut report);
    }
    if report.found.is_empty() {
        for candidate in snapshot {
            ask(entry, candidate, http, &mut report);
        }
    }
    report.availability = if report.found.iter().any(|(s, _)| *s == MIRROR) {
        Availability::Mirror
    } else if report.found.is_empty() {
        Availability::Nowhere
    } else {
        Availability::Elsewhere
    };
    report
}

fn ask(entry: &LockEntry, candidate: &Candidate, http: &Http, report: &mut CheckReport) {
    let answer = match &candidate.location {
        Location::Dir(path) => match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => Ok(Some(Some(meta.len()))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::Transport(format!("cannot read: {e}"))),
        },
        Location::Url(url) => http.head(url),
        Location::Hashed(source, sha256) => source.0.head(sha256),
    };
    let failure = match answer {
        Ok(Some(len)) => match len {
            Some(n) if n < entry.size => Failure::Truncated {
                expected: entry.size,
                got: n,
            },
            Some(n) if n > entry.size => Failure::TooLong {
                expected: entry.size,
            },
            _ => {
                report
                    .found
                    .push((candidate.source, candidate.location.to_string()));
                return;
            }
        },
        Ok(None) => Failure::NotFound,
        Err(f) => f,
    };
    report.failed.push(Attempt {
        source: candidate.source,
        location: candidate.location.to_string(),
        failure,
    });
}
