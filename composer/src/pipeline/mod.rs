//! The build pipeline of `imago build`, as a library for every command that
//! builds (`build`, `run`, `image`, `deploy`, `lock`) and for the VM tests:
//!
//! 1. Evaluation (`evaluate.rs`): evaluate the request's file with the real file system
//!    and a [`StepTable`](crate::graph::StepTable) as the store hook
//!    (packages pinned by `imago.lock` beside the file, if present). An
//!    attribute path starting with `config.` evaluates the file as a system
//!    — merged with the module library — and selects that option; any other
//!    path selects from the file's own value. The selected value, coerced to
//!    a string, must be a placeholder of a recorded step (optionally
//!    followed by `/sub/path`) or a store path.
//! 2. Build the graph of the steps it needs and validate it.
//! 3. Prefetching ([`prefetch`]): start fetching the Debian packages the download cache
//!    lacks in the background, and schedule, asking the [`Settings`]'
//!    substituters for each step the local build cache lacks
//!    (`substitute.rs`).
//! 4. The outcome (`outcome.rs`): hand back the object built, or the failure as data.
//!
//! The pipeline prints nothing itself: diagnostics are rendered in the
//! [`Settings`]' style and returned ([`Failure`]) or handed to a
//! [`Reporter`] (warnings of a configuration that evaluated, before the
//! build starts); errors of the machine (I/O, the store) are `Err`.

mod error;
mod evaluate;
mod outcome;
pub mod prefetch;
mod request;
mod substitute;

pub use error::PipelineError;
pub use evaluate::{Requested, requested_packages};
pub use outcome::{Built, Failure, Outcome};
pub use request::{BuildRequest, DEFAULT_ATTR, DiagnosticStyle, Settings};

use crate::cache::Location;
use crate::debian::lock::Lock;
use crate::graph::{BuildSummary, Graph, Registry, ScheduleError, build_with};
use crate::store::{Store, StorePath};
use anyhow::Context;
use evaluate::{Root, TableMode, evaluate_on_thread, find_root};

/// Where the pipeline reports what happens before its outcome.
pub trait Reporter {
    /// The rendered warnings of a configuration that evaluated, before its
    /// build starts.
    fn warnings(&self, rendered: &str);
}

/// A closure is a reporter.
impl<F: Fn(&str)> Reporter for F {
    fn warnings(&self, rendered: &str) {
        self(rendered);
    }
}

/// Evaluates and builds `request` into `store`.
pub fn build_file(
    store: &Store,
    settings: &Settings,
    request: &BuildRequest,
    reporter: &dyn Reporter,
) -> anyhow::Result<Outcome> {
    let lock_path = Lock::path_for(&request.file);
    let lock = if lock_path.exists() {
        Some(Lock::read(&lock_path).with_context(|| format!("reading {}", lock_path.display()))?)
    } else {
        None
    };
    let evaluated = match evaluate_on_thread(
        settings,
        &request.file,
        &request.attr,
        request.modules.as_deref(),
        TableMode::Build(lock.clone().map(|l| (l, lock_path.clone()))),
    )? {
        Ok(e) => e,
        Err(rendered) => return Ok(Outcome::Failed(Failure::Evaluation(rendered))),
    };
    if !evaluated.warnings.is_empty() {
        reporter.warnings(&evaluated.warnings);
    }
    let (root, suffix) = match find_root(&evaluated, &request.attr)? {
        Root::Step(placeholder, suffix) => (placeholder, suffix),
        Root::StorePath(path, suffix) => {
            let valid = store
                .is_valid(&path)
                .context("reading the store database")?;
            if !valid {
                return Err(PipelineError::NotInStore {
                    path,
                    store: store.dir().to_owned(),
                }
                .into());
            }
            return Ok(Outcome::Built(Built {
                path,
                suffix,
                summary: BuildSummary::default(),
            }));
        }
    };
    let graph = Graph::from_steps(&evaluated.steps, std::slice::from_ref(&root))
        .and_then(Graph::validate)
        .context("building the step graph")?;
    // Packages download in the background while the build runs: a `deb`
    // step waits only for its own file.
    let fetch = prefetch::start(
        &graph,
        lock.as_ref(),
        &request.options,
        &settings.package_caches,
        &settings.package_substituters,
        &request.file,
    )?;
    let caches: Vec<Location> = settings
        .substituters
        .iter()
        .filter(|c| {
            !(request.options.offline && matches!(c, Location::Http { .. } | Location::Oci(_)))
        })
        .cloned()
        .collect();
    let substituter = substitute::Caches::new(&caches, &settings.trusted_public_keys);
    let built = build_with(&graph, store, &Registry, &request.options, &substituter);
    let fetched = match fetch {
        Some(background) => {
            if built.is_err() {
                background.cancel();
            }
            background.finish().context("fetching Debian packages")
        }
        None => Ok(()),
    };
    match built {
        Ok(summary) => {
            fetched?;
            let output = summary.outputs.first().ok_or(PipelineError::NoOutput)?;
            let (path, _) = StorePath::from_absolute(&output.path)?;
            Ok(Outcome::Built(Built {
                path,
                suffix,
                summary,
            }))
        }
        Err(ScheduleError::Failed { failures, .. }) => {
            // A package no source delivered explains the steps that
            // failed for want of it: say that, once.
            fetched?;
            Ok(Outcome::Failed(Failure::Steps(failures)))
        }
        Err(other) => {
            fetched?;
            Err(other.into())
        }
    }
}

/// Builds `request` and insists that the result is a whole object — a
/// system toplevel, as `imago run`, `image` and `deploy` need — not a path
/// inside one. `Ok(Err(_))`: the configuration failed to build.
pub fn build_toplevel(
    store: &Store,
    settings: &Settings,
    request: &BuildRequest,
    reporter: &dyn Reporter,
) -> anyhow::Result<Result<StorePath, Failure>> {
    match build_file(store, settings, request, reporter)
        .with_context(|| format!("building {}", request.file.display()))?
    {
        Outcome::Built(built) if built.suffix.is_empty() => Ok(Ok(built.path)),
        Outcome::Built(built) => Err(PipelineError::InsideAnObject {
            attr: request.attr.clone(),
            file: request.file.clone(),
            path: built.path,
            suffix: built.suffix,
        }
        .into()),
        Outcome::Failed(failure) => Ok(Err(failure)),
    }
}
