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
//!   Debian packages through a [`packages::PackageIndex`];
//! - [`dag`]: the DAG of the steps a build needs, validated acyclic.

pub mod dag;
pub mod packages;
pub mod step;
pub mod table;

pub use dag::{Graph, GraphError, StepId, ValidatedGraph};
pub use packages::{PackageIndex, PinnedPackage};
pub use step::{PENDING_PREFIX, Step, StepError};
pub use table::StepTable;
