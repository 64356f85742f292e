//! The build's substituters: binary caches asked, in order, for the output
//! of every step the local build cache lacks (`--substituter CACHE`,
//! `IMAGO_SUBSTITUTERS`, `substituters` in configuration; docs/cache.md,
//! "Substitution").

use crate::cache::{self, Location, PublicKey};
use crate::graph::{Substituter, Substitution};
use crate::store::{Blake3Digest, Store, StorePath};

/// Binary caches and the keys whose signatures they are trusted with.
pub(super) struct Caches<'a> {
    pub caches: &'a [Location],
    pub trusted: &'a [PublicKey],
}

impl Substituter for Caches<'_> {
    fn lookup(
        &self,
        key: &Blake3Digest,
        step: &str,
        warn: &mut dyn FnMut(String),
    ) -> Option<Substitution> {
        for cache in self.caches {
            match cache::lookup(cache, key, self.trusted) {
                Ok(Some(record)) => {
                    return Some(Substitution {
                        output: record.output,
                        source: cache.url(),
                    });
                }
                Ok(None) => {}
                Err(e) => warn(format!(
                    "substituter {} not used for step `{step}`: [{}] {}",
                    cache.url(),
                    e.code(),
                    error_chain(&e)
                )),
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
