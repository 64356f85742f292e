//! The build's substituters: binary caches asked, in order, for the output
//! of every step the local build cache lacks (`--substituter CACHE`,
//! `IMAGO_SUBSTITUTERS`, `substituters` in configuration; docs/cache.md,
//! "Substitution").

use crate::cache::{self, CacheError, Location, PublicKey};
use crate::graph::{Substituter, Substitution};
use crate::store::{Blake3Digest, Store, StorePath};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Binary caches and the keys whose signatures they are trusted with.
pub(super) struct Caches<'a> {
    caches: &'a [Location],
    trusted: &'a [PublicKey],
    /// The caches that could not be read (an I/O error, a transfer that
    /// failed after its retries): not asked again in this build, so that
    /// an unreachable server costs its timeouts once, not once per step.
    given_up: Mutex<BTreeSet<usize>>,
}

impl<'a> Caches<'a> {
    pub(super) fn new(caches: &'a [Location], trusted: &'a [PublicKey]) -> Caches<'a> {
        Caches {
            caches,
            trusted,
            given_up: Mutex::default(),
        }
    }

    fn given_up(&self) -> std::sync::MutexGuard<'_, BTreeSet<usize>> {
        self.given_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `e` says the cache itself cannot be read, rather than that one
/// of its files is bad.
fn unreadable(e: &CacheError) -> bool {
    matches!(e, CacheError::Io { .. } | CacheError::Http { .. })
}

/// Step lookups in flight at once: a registry or web server answers each
/// after a round trip, and a substitution is mostly lookups until its
/// output is fetched (docs/performance.md, "Substitution").
const LOOKUPS_IN_FLIGHT: usize = 8;

impl Substituter for Caches<'_> {
    fn lookups_in_flight(&self) -> usize {
        if self.caches.is_empty() {
            0
        } else {
            LOOKUPS_IN_FLIGHT
        }
    }

    fn lookup(
        &self,
        key: &Blake3Digest,
        step: &str,
        warn: &mut dyn FnMut(String),
    ) -> Option<Substitution> {
        for (i, cache) in self.caches.iter().enumerate() {
            if self.given_up().contains(&i) {
                continue;
            }
            match cache::lookup(cache, key, self.trusted) {
                Ok(Some(record)) => {
                    return Some(Substitution {
                        output: record.output,
                        source: cache.url(),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    let gone = unreadable(&e) && self.given_up().insert(i);
                    warn(format!(
                        "substituter {} not used for step `{step}`{}: [{}] {}",
                        cache.url(),
                        if gone {
                            " nor for the rest of this build"
                        } else {
                            ""
                        },
                        e.code(),
                        error_chain(&e)
                    ));
                }
            }
        }
        None
    }

    fn fetch(
        &self,
        store: &Store,
        key: &Blake3Digest,
        found: &Substitution,
        step: &str,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), Option<StorePath>> {
        let Some(cache) = self.caches.iter().find(|c| c.url() == found.source) else {
            return Err(None);
        };
        match cache::fetch_output(store, cache, key, &found.output, self.trusted) {
            Ok(_) => Ok(()),
            Err(e) => {
                warn(format!(
                    "substituter {} not used for step `{step}`: cannot fetch its output {}: [{}] {}",
                    found.source,
                    found.output.to_absolute(),
                    e.code(),
                    error_chain(&e)
                ));
                Err(e.object().cloned())
            }
        }
    }
}

/// An error with its causes, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
