//! Builders: Rust functions that turn a step's parameters into a store object.
//!
//! A builder receives a [`ResolvedStep`] — the step's parameters with every
//! input placeholder already replaced by that input's real store path — and
//! writes exactly one file, directory or symlink at `out`, a path inside a
//! temporary directory of the store. It may read its inputs (through
//! [`BuildContext::physical`]) and nothing else of the store; it never writes
//! outside `out`. The store canonicalizes, hashes and registers the result.
//!
//! Each builder deserializes its parameters into a typed struct with
//! `deny_unknown_fields`, so a misspelt parameter is an error naming it.

pub mod confine;
pub mod fsutil;
pub mod meta;
pub mod nftables;
pub mod path;
pub mod profile;
pub mod text;
pub mod tree;

use imago_lang::hook::StepValue;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::STORE_PREFIX;

/// What a builder may use besides its parameters.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The physical directory that holds the store objects (`/imago/store` for
    /// root, elsewhere for unprivileged builds).
    pub store_dir: PathBuf,
    /// The shared download cache for Debian packages.
    pub deb_cache: PathBuf,
    /// When true, nothing may touch the network.
    pub offline: bool,
}

impl BuildContext {
    /// Maps a logical store path (`/imago/store/<hash>-<name>/sub/path`) to its
    /// physical location. Anything outside the store is refused.
    pub fn physical(&self, logical: &str) -> Result<PathBuf, BuildError> {
        let rest = logical
            .strip_prefix(STORE_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                BuildError::Params(format!("`{logical}` is not inside {STORE_PREFIX}"))
            })?;
        if rest.split('/').any(|c| c == ".." || c == ".") {
            return Err(BuildError::Params(format!(
                "`{logical}` contains `.` or `..` components"
            )));
        }
        Ok(self.store_dir.join(rest))
    }
}

/// A step ready to run: placeholders replaced by real store paths.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedStep {
    pub builder: String,
    pub name: String,
    /// The parameters as JSON; strings mention inputs by their real paths.
    pub params: serde_json::Value,
    /// The real store paths of every input, sorted.
    pub inputs: Vec<String>,
    /// The closure of the inputs (every object they refer to, directly or
    /// not, and the inputs themselves) as absolute store paths, sorted. The
    /// scheduler fills it in once the build cache has missed, just before
    /// [`Builder::build`]; it is empty when the cache key and the key salt
    /// are computed, and not part of the key (it follows from the inputs,
    /// which the parameters already name).
    pub closure: Vec<String>,
}

impl ResolvedStep {
    /// The parameters as the builder's typed struct; unknown or missing fields
    /// are an error naming the builder and the field.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, BuildError> {
        serde_json::from_value(self.params.clone())
            .map_err(|e| BuildError::Params(format!("builder `{}`: {e}", self.builder)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl BuildError {
    /// The stable code of this error (docs/errors.md, E07xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            BuildError::Params(_) => STEP_PARAMS,
            BuildError::Io { .. } => BUILDER_IO,
            BuildError::Failed(_) | BuildError::Other(_) => STEP_FAILED,
        }
    }
}

impl BuildError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let context = context.into();
        move |source| BuildError::Io { context, source }
    }
}

/// One kind of build step.
pub trait Builder: Sync {
    /// Builds the step's output at `out` (which does not exist yet). Progress
    /// and diagnostics go to `log`, which is shown when the step fails.
    fn build(
        &self,
        ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError>;

    /// The builder's version. It is part of every cache key, so bumping it
    /// after a change in what the builder produces rebuilds its steps.
    fn version(&self) -> u32 {
        1
    }

    /// A rough measure of the work the step takes, in bytes of package
    /// unpacked, from its parameters and `inputs`, the weights of the steps
    /// it reads (the `deb` builder: the package's size; the `kernel`
    /// builder: its largest package's). Of the steps ready to run, the
    /// scheduler starts first the one with the heaviest chain of work ahead
    /// of it, so that a long step does not run alone at the end while the
    /// other cores idle. 0 (the default) for builders whose steps are all
    /// small.
    fn weight(&self, _params: &BTreeMap<String, StepValue>, _inputs: &[u64]) -> u64 {
        0
    }

    /// Whether the step reads the Debian package `package` when it is a
    /// dependency of a package in its `packages` list: the step table
    /// expands that list to the packages named and, transitively, every
    /// dependency this accepts (`graph/table.rs`). The default, every
    /// dependency, gives the whole closure, which a profile needs; a kernel
    /// reads only its image packages.
    fn reads_dependency(&self, _package: &str) -> bool {
        true
    }

    /// Extra input to the step's cache key beyond its parameters, for
    /// builders that read something the parameters do not pin (the `path`
    /// builder hashes its source tree). `None` when the parameters suffice.
    fn key_salt(
        &self,
        _ctx: &BuildContext,
        _step: &ResolvedStep,
    ) -> Result<Option<blake3::Hash>, BuildError> {
        Ok(None)
    }
}
