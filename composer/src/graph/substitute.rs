//! Substitution: taking a step's output from elsewhere (a binary cache)
//! instead of building it, once the step's key is known and the local
//! build cache lacks it. The scheduler asks a [`Substituter`]; the
//! pipeline implements it with `crate::cache`, which sits in this module's
//! layer and so is not named here.

use crate::store::{Blake3Digest, Store, StorePath};

/// A step's output, taken from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    pub output: StorePath,
    /// Where it came from (a cache's URL), for the build summary.
    pub source: String,
}

/// Where outputs can come from besides the builders. A step is
/// substituted in two parts: [`Substituter::lookup`] names its output (so
/// that its dependents' keys can be computed), and
/// [`Substituter::fetch`] copies the output into the store, which the
/// scheduler asks for only when the object is needed: a wanted output, or
/// an input of a step that is built. An output that only served to
/// compute the keys of substituted steps is never copied.
pub trait Substituter: Sync {
    /// A trusted record of the step `key` (named `step`): its output and
    /// the source that holds it; fetches nothing. A source that fails (it
    /// is unreachable, or its record is malformed or not trusted) is
    /// reported to `warn` and the next one asked; `None` when none has
    /// the step.
    fn lookup(
        &self,
        key: &Blake3Digest,
        step: &str,
        warn: &mut dyn FnMut(String),
    ) -> Option<Substitution>;

    /// How many steps may be looked up at once, apart from the build's
    /// `jobs` slots: a lookup mostly waits for a cache's answer, so the
    /// scheduler resolves ready steps on that many threads of their own and
    /// only the steps no source has take a build slot. 0, the default:
    /// the build's workers look up.
    fn lookups_in_flight(&self) -> usize {
        0
    }

    /// Copies `found.output` and its closure from `found.source` into
    /// `store`, with the build-cache entry `key` → output, in one
    /// transaction (the output then stays protected from GC for the life
    /// of `store`). A failure is reported to `warn`, with nothing of it
    /// registered; the `Err` names the object of the closure that failed,
    /// when one did.
    fn fetch(
        &self,
        store: &Store,
        key: &Blake3Digest,
        found: &Substitution,
        step: &str,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), Option<StorePath>>;
}

/// No source: every step is built (or found in the local build cache).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSubstitutes;

impl Substituter for NoSubstitutes {
    fn lookup(
        &self,
        _key: &Blake3Digest,
        _step: &str,
        _warn: &mut dyn FnMut(String),
    ) -> Option<Substitution> {
        None
    }

    fn fetch(
        &self,
        _store: &Store,
        _key: &Blake3Digest,
        _found: &Substitution,
        _step: &str,
        _warn: &mut dyn FnMut(String),
    ) -> Result<(), Option<StorePath>> {
        Err(None)
    }
}

/// `inner`, except for the steps whose outputs could not be fetched: a
/// build that failed to fetch one runs again without it, building it.
pub(crate) struct Refusing<'a> {
    pub inner: &'a dyn Substituter,
    pub refused: std::collections::BTreeSet<Blake3Digest>,
}

impl Substituter for Refusing<'_> {
    fn lookup(
        &self,
        key: &Blake3Digest,
        step: &str,
        warn: &mut dyn FnMut(String),
    ) -> Option<Substitution> {
        if self.refused.contains(key) {
            return None;
        }
        self.inner.lookup(key, step, warn)
    }

    fn lookups_in_flight(&self) -> usize {
        self.inner.lookups_in_flight()
    }

    fn fetch(
        &self,
        store: &Store,
        key: &Blake3Digest,
        found: &Substitution,
        step: &str,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), Option<StorePath>> {
        self.inner.fetch(store, key, found, step, warn)
    }
}
