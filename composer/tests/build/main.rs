//! The composer's build tests, one test binary (see tests/support for what they share).

#[path = "../support/mod.rs"]
mod support;

mod builders;
mod cli;
mod graph_dag;
mod graph_table;
mod references;
mod scheduler;
mod writers;
