//! The build graph: from recorded steps to built store objects.
//!
//! ```text
//! evaluation --StepRequest--> StepTable (table.rs) --roots--> Graph (dag.rs)
//!     --validate--> ValidatedGraph --scheduler.rs--> builders --> store
//! ```
//!
//! - [`step`]: a step's canonical form, placeholder and parameter
//!   substitution;
//! - [`table`]: the store hook that records steps during evaluation and pins
//!   Debian packages through a [`PackageIndex`] (defined in
//!   `crate::debian::pins`, implemented by the lock file);
//! - [`dag`]: the DAG of the steps a build needs, validated acyclic;
//! - [`registry`]: the builders known by name;
//! - [`scheduler`]: builds a validated graph in parallel into the store,
//!   with caching and early cutoff; [`report`] holds what it returns and
//!   [`progress`] what it shows meanwhile;
//! - [`substitute`]: where the scheduler may take an output from instead
//!   of building it (a binary cache, implemented by the pipeline).

pub mod dag;
pub mod progress;
pub mod registry;
mod reply;
pub mod report;
pub mod scheduler;
pub mod step;
pub mod substitute;
pub mod table;

/// The pins the step table reads, defined by `debian` (below this module);
/// re-exported under their old place.
pub use crate::debian::pins::{self as packages, PackageIndex, PinnedPackage};
pub use dag::{Graph, GraphError, StepId, ValidatedGraph};
pub use report::{BuildSummary, ScheduleError, StepFailure, StepFailureCause};
pub use scheduler::{BuildOptions, BuilderSet, Registry, build, build_with};
pub use step::{PENDING_PREFIX, Step, StepError};
pub use substitute::{NoSubstitutes, Substituter, Substitution};
pub use table::StepTable;
